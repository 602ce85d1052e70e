use alloc::collections::BTreeSet;
use alloc::vec::Vec;
use core::fmt;

use serde::{Deserialize, Deserializer, Serialize, de::Error as _};

use super::{Dot, ReplicaId, VectorClock};

/// The set of events a replica has seen, as a compact version vector plus a
/// "dot cloud" of events seen out of order.
///
/// Invariant (the canonical form): every cloud dot `(r, c)` has
/// `c > vv[r] + 1`; a dot that would extend the vector is folded into it. So
/// two contexts holding the same events are structurally equal, and the cloud
/// stays empty when deltas arrive in order.
#[derive(Clone, Default, PartialEq, Eq, Serialize)]
pub struct CausalContext {
    vv: VectorClock,
    cloud: BTreeSet<Dot>,
}

impl CausalContext {
    /// The empty context (bottom).
    pub const fn new() -> Self {
        Self {
            vv: VectorClock::new(),
            cloud: BTreeSet::new(),
        }
    }

    /// A context holding exactly `dots`.
    pub fn from_dots<I: IntoIterator<Item = Dot>>(dots: I) -> Self {
        let mut cx = Self::new();
        for d in dots {
            cx.insert(d);
        }
        cx
    }

    /// A context holding every event counted by `vv`.
    pub fn from_vector_clock(vv: VectorClock) -> Self {
        Self {
            vv,
            cloud: BTreeSet::new(),
        }
    }

    /// The compact part.
    pub fn vector_clock(&self) -> &VectorClock {
        &self.vv
    }

    /// The events seen out of order, beyond the compact part.
    pub fn cloud(&self) -> &BTreeSet<Dot> {
        &self.cloud
    }

    /// True if no event is held.
    pub fn is_empty(&self) -> bool {
        self.vv.is_empty() && self.cloud.is_empty()
    }

    /// True if the event `dot` is held.
    #[inline]
    pub fn contains(&self, dot: Dot) -> bool {
        self.vv.contains(dot) || (!self.cloud.is_empty() && self.cloud.contains(&dot))
    }

    /// The highest counter of `replica` held.
    pub fn max_counter(&self, replica: ReplicaId) -> u64 {
        let compact = self.vv.get(replica);
        let cloud = self
            .cloud
            .range(Dot::new(replica, 1)..=Dot::new(replica, u64::MAX))
            .next_back()
            .map_or(0, |d| d.counter);
        compact.max(cloud)
    }

    /// The dot `replica` should issue next: one past the highest it has seen.
    pub fn next_dot(&self, replica: ReplicaId) -> Dot {
        Dot::new(replica, self.max_counter(replica).saturating_add(1))
    }

    /// Adds one event, keeping the canonical form.
    pub fn insert(&mut self, dot: Dot) {
        let have = self.vv.get(dot.replica);
        if dot.counter <= have {
            return;
        }
        if dot.counter == have + 1 {
            self.vv.raise(dot.replica, dot.counter);
            if !self.cloud.is_empty() {
                self.absorb(dot.replica);
            }
        } else {
            self.cloud.insert(dot);
        }
    }

    /// Folds cloud dots of `replica` that now extend the vector into it.
    fn absorb(&mut self, replica: ReplicaId) {
        let mut next = self.vv.get(replica).saturating_add(1);
        while self.cloud.remove(&Dot::new(replica, next)) {
            self.vv.raise(replica, next);
            next = next.saturating_add(1);
        }
    }

    /// Adds every event of `other`.
    pub fn join(&mut self, other: &CausalContext) {
        self.vv.merge(&other.vv);
        if self.cloud.is_empty() && other.cloud.is_empty() {
            return;
        }
        let mut cloud = core::mem::take(&mut self.cloud);
        cloud.extend(other.cloud.iter().copied());
        self.compact_from(cloud);
    }

    /// Rebuilds the cloud from `cloud`, folding what extends the vector.
    fn compact_from(&mut self, cloud: BTreeSet<Dot>) {
        // Dots are sorted by (replica, counter), so one ascending pass folds
        // every run that continues the vector.
        let mut kept = Vec::new();
        for d in cloud {
            let have = self.vv.get(d.replica);
            if d.counter <= have {
                continue;
            }
            if d.counter == have + 1 {
                self.vv.raise(d.replica, d.counter);
            } else {
                kept.push(d);
            }
        }
        self.cloud = kept.into_iter().collect();
    }

    /// Calls `f` for every dot held by `self` and not by `other`, in order.
    ///
    /// Walks `self`'s events, so its cost is the number of events in `self`
    /// beyond `other`'s vector, not the size of either.
    pub fn for_each_missing(&self, other: &CausalContext, mut f: impl FnMut(Dot)) {
        for (r, top) in self.vv.iter() {
            let from = other.vv.get(r).saturating_add(1);
            for c in from..=top {
                let d = Dot::new(r, c);
                if !other.cloud.contains(&d) {
                    f(d);
                }
            }
        }
        for &d in &self.cloud {
            if !other.contains(d) {
                f(d);
            }
        }
    }
}

impl fmt::Debug for CausalContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.cloud.is_empty() {
            write!(f, "{:?}", self.vv)
        } else {
            write!(f, "{:?}+{:?}", self.vv, self.cloud)
        }
    }
}

impl<'de> Deserialize<'de> for CausalContext {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            vv: VectorClock,
            cloud: BTreeSet<Dot>,
        }
        let raw = Raw::deserialize(d)?;
        if raw
            .cloud
            .iter()
            .any(|d| d.counter <= raw.vv.get(d.replica).saturating_add(1))
        {
            return Err(D::Error::custom("causal context not in canonical form"));
        }
        Ok(Self {
            vv: raw.vv,
            cloud: raw.cloud,
        })
    }
}
