use serde::{Deserialize, Serialize};

use super::Lattice;
use crate::clock::{ReplicaId, VectorClock};

/// A grow-only counter: one monotone entry per replica, joined by maximum.
///
/// Built on [`VectorClock`]; an increment's delta is the single entry it
/// raised, held inline without allocating.
///
/// ```
/// use neuroplex_core::{GCounter, Lattice, ReplicaId};
/// let mut a = GCounter::new();
/// let mut b = GCounter::new();
/// a.increment(ReplicaId::new(1), 2);
/// let d = b.increment(ReplicaId::new(2), 3);
/// a.join(d);
/// assert_eq!(a.value(), 5);
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct GCounter {
    counts: VectorClock,
}

impl GCounter {
    /// A counter at 0.
    pub const fn new() -> Self {
        Self {
            counts: VectorClock::new(),
        }
    }

    /// Adds `by` as replica `id`; returns the delta (that replica's new
    /// entry). Saturates at `u64::MAX`.
    #[inline]
    pub fn increment(&mut self, id: ReplicaId, by: u64) -> Self {
        let now = self.counts.get(id).saturating_add(by);
        self.counts.raise(id, now);
        let mut delta = VectorClock::new();
        delta.raise(id, now);
        Self { counts: delta }
    }

    /// The total (saturating).
    pub fn value(&self) -> u64 {
        self.counts.total()
    }

    /// The per-replica contributions.
    pub fn contributions(&self) -> &VectorClock {
        &self.counts
    }
}

impl core::fmt::Debug for GCounter {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "GCounter({}, {:?})", self.value(), self.counts)
    }
}

impl Lattice for GCounter {
    fn join(&mut self, other: Self) {
        self.counts.merge(&other.counts);
    }
}
