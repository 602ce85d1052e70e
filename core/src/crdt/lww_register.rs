use serde::{Deserialize, Serialize};

use super::Lattice;
use crate::clock::{Hlc, Timestamp};

/// A last-writer-wins register ordered by hybrid-logical-clock timestamps.
///
/// The greatest timestamp wins; timestamps carry the writing replica, so two
/// writes never tie. A write stamps itself after everything the register has
/// seen, so a replica's own write always replaces what it reads.
///
/// ```
/// use neuroplex_core::{Hlc, Lattice, LwwRegister, ReplicaId};
/// let mut clock_a = Hlc::new(ReplicaId::new(1));
/// let mut clock_b = Hlc::new(ReplicaId::new(2));
/// let mut a = LwwRegister::new();
/// let mut b = LwwRegister::new();
/// let da = a.set(&mut clock_a, 1_000, "first");
/// let db = b.set(&mut clock_b, 2_000, "second"); // later physical time
/// a.join(db);
/// b.join(da);
/// assert_eq!((a.get(), b.get()), (Some(&"second"), Some(&"second")));
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LwwRegister<T> {
    entry: Option<(Timestamp, T)>,
}

impl<T> Default for LwwRegister<T> {
    fn default() -> Self {
        Self { entry: None }
    }
}

impl<T: Clone + Ord> LwwRegister<T> {
    /// The unwritten register.
    pub const fn new() -> Self {
        Self { entry: None }
    }

    /// The current value.
    pub fn get(&self) -> Option<&T> {
        self.entry.as_ref().map(|e| &e.1)
    }

    /// The timestamp of the current value.
    pub fn timestamp(&self) -> Option<Timestamp> {
        self.entry.as_ref().map(|e| e.0)
    }

    /// Writes `value` at physical time `now` (ms) with `clock`; returns the
    /// delta.
    pub fn set(&mut self, clock: &mut Hlc, now: u64, value: T) -> Self {
        if let Some((ts, _)) = &self.entry {
            // Our own clock may lag what we have merged; catch up first so
            // this write wins locally. The merged stamp was accepted already,
            // so the drift check does not apply here.
            clock.catch_up(*ts);
        }
        let ts = clock.tick(now);
        self.entry = Some((ts, value.clone()));
        Self {
            entry: Some((ts, value)),
        }
    }
}

impl<T: core::fmt::Debug> core::fmt::Debug for LwwRegister<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match &self.entry {
            Some((ts, v)) => write!(f, "Lww({v:?} @ {ts:?})"),
            None => write!(f, "Lww(⊥)"),
        }
    }
}

impl<T: Clone + Ord> Lattice for LwwRegister<T> {
    fn join(&mut self, other: Self) {
        let Some(theirs) = other.entry else { return };
        match &self.entry {
            // Equal stamps mean the same write; comparing the values too
            // keeps the join commutative even if a faulty peer disagrees.
            Some(mine) if (&mine.0, &mine.1) >= (&theirs.0, &theirs.1) => {}
            _ => self.entry = Some(theirs),
        }
    }
}
