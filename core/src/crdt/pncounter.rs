use serde::{Deserialize, Serialize};

use super::{GCounter, Lattice};
use crate::clock::ReplicaId;

/// A counter that goes up and down: two [`GCounter`]s, increments and
/// decrements.
///
/// ```
/// use neuroplex_core::{Lattice, PNCounter, ReplicaId};
/// let id = ReplicaId::new(1);
/// let mut c = PNCounter::new();
/// c.increment(id, 10);
/// let d = c.decrement(id, 3);
/// let mut other = PNCounter::new();
/// other.join(d);
/// assert_eq!((c.value(), other.value()), (7, -3));
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PNCounter {
    inc: GCounter,
    dec: GCounter,
}

impl PNCounter {
    /// A counter at 0.
    pub const fn new() -> Self {
        Self {
            inc: GCounter::new(),
            dec: GCounter::new(),
        }
    }

    /// Adds `by` as replica `id`; returns the delta.
    #[inline]
    pub fn increment(&mut self, id: ReplicaId, by: u64) -> Self {
        Self {
            inc: self.inc.increment(id, by),
            dec: GCounter::new(),
        }
    }

    /// Subtracts `by` as replica `id`; returns the delta.
    #[inline]
    pub fn decrement(&mut self, id: ReplicaId, by: u64) -> Self {
        Self {
            inc: GCounter::new(),
            dec: self.dec.increment(id, by),
        }
    }

    /// Increments minus decrements, clamped to the `i64` range.
    pub fn value(&self) -> i64 {
        let v = i128::from(self.inc.value()) - i128::from(self.dec.value());
        v.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    }
}

impl core::fmt::Debug for PNCounter {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "PNCounter({}, +{:?}, -{:?})",
            self.value(),
            self.inc,
            self.dec
        )
    }
}

impl Lattice for PNCounter {
    fn join(&mut self, other: Self) {
        self.inc.join(other.inc);
        self.dec.join(other.dec);
    }
}
