use serde::{Deserialize, Serialize};

use super::{Causal, DotFun, DotStore};
use crate::clock::{CausalContext, Dot, ReplicaId};

/// A counter whose increments carry dots, so that it can be reset: the
/// counter to put inside an [`ORMap`](super::ORMap).
///
/// Every increment is its own dot. A reset (or the removal of the map key
/// holding the counter) deletes the increments it has seen and nothing else,
/// so an increment concurrent with a reset survives it, alone: with the
/// counter at 5, a reset concurrent with `+1` gives 1, whoever made the 5.
///
/// The price is one entry per increment until a reset; folding the entries of
/// causally stable increments into one is planned (see ARCHITECTURE.md). Use
/// [`PNCounter`](super::PNCounter) where no reset is needed.
///
/// ```
/// use neuroplex_core::{Causal, CausalCounter, Lattice, ReplicaId};
/// let (a, b) = (ReplicaId::new(1), ReplicaId::new(2));
/// let mut x: Causal<CausalCounter> = Causal::new();
/// x.increment(b, 5);
/// let mut y = x.clone();
/// let reset = x.reset();
/// let inc = y.increment(b, 1);
/// x.join(inc);
/// y.join(reset);
/// assert_eq!((x.store().value(), y.store().value()), (1, 1));
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CausalCounter {
    increments: DotFun<i64>,
}

impl CausalCounter {
    /// A counter at 0.
    pub const fn new() -> Self {
        Self {
            increments: DotFun::new(),
        }
    }

    /// The sum of the surviving increments, clamped to the `i64` range.
    pub fn value(&self) -> i64 {
        let sum: i128 = self.increments.iter().map(|(_, &v)| i128::from(v)).sum();
        sum.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    }

    /// Number of increments held.
    pub fn entries(&self) -> usize {
        self.increments.len()
    }

    /// Adds `by` (negative to decrement) as replica `id`.
    pub fn increment(&mut self, cx: &mut CausalContext, id: ReplicaId, by: i64) -> Causal<Self> {
        let dot = cx.issue(id);
        self.increments.insert(dot, by);
        Causal {
            store: CausalCounter {
                increments: DotFun::one(dot, by),
            },
            context: CausalContext::of_dot(dot),
        }
    }

    /// Resets to 0 (removes every increment seen).
    pub fn reset(&mut self) -> Causal<Self> {
        let context = CausalContext::from_dots(self.increments.dots());
        self.increments.clear();
        Causal {
            store: CausalCounter::new(),
            context,
        }
    }
}

impl core::fmt::Debug for CausalCounter {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "CausalCounter({}, {:?})", self.value(), self.increments)
    }
}

impl DotStore for CausalCounter {
    fn is_bottom(&self) -> bool {
        self.increments.is_bottom()
    }

    fn for_each_dot(&self, f: &mut dyn FnMut(Dot)) {
        self.increments.for_each_dot(f);
    }

    fn filtered(&self, keep: &dyn Fn(Dot) -> bool) -> Self {
        Self {
            increments: self.increments.filtered(keep),
        }
    }

    fn join_store(&mut self, cx: &CausalContext, other: Self, other_cx: &CausalContext) {
        self.increments.join_store(cx, other.increments, other_cx);
    }
}

impl Causal<CausalCounter> {
    /// Adds `by` as replica `id`; returns the delta.
    pub fn increment(&mut self, id: ReplicaId, by: i64) -> Self {
        self.store.increment(&mut self.context, id, by)
    }

    /// Resets to 0; returns the delta.
    pub fn reset(&mut self) -> Self {
        self.store.reset()
    }
}
