use core::fmt;

use serde::{Deserialize, Deserializer, Serialize, de::Error as _};
use smallvec::SmallVec;

use super::{Dot, ReplicaId, VectorClock};

/// The set of events a replica has seen, as a compact version vector plus a
/// "dot cloud" of events seen out of order.
///
/// Invariant (the canonical form): every cloud dot `(r, c)` has
/// `c > vv[r] + 1`; a dot that would extend the vector is folded into it. So
/// two contexts holding the same events are structurally equal, and the cloud
/// stays empty when deltas arrive in order.
///
/// The cloud is a sorted vector with room for one dot inline: the context of
/// a typical delta is a single dot, and building it must not allocate. Clouds
/// are small in steady state (they drain into the vector as gaps fill), so
/// insertion into the middle of the vector is cheap enough.
#[derive(Clone, Default, PartialEq, Eq, Hash, Serialize)]
pub struct CausalContext {
    vv: VectorClock,
    cloud: SmallVec<[Dot; 1]>,
}

impl CausalContext {
    /// The empty context (bottom).
    pub const fn new() -> Self {
        Self {
            vv: VectorClock::new(),
            cloud: SmallVec::new_const(),
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
            cloud: SmallVec::new(),
        }
    }

    /// The compact part.
    pub fn vector_clock(&self) -> &VectorClock {
        &self.vv
    }

    /// The events seen out of order, beyond the compact part, sorted.
    pub fn cloud(&self) -> &[Dot] {
        &self.cloud
    }

    /// True if no event is held.
    pub fn is_empty(&self) -> bool {
        self.vv.is_empty() && self.cloud.is_empty()
    }

    /// True if the event `dot` is held.
    #[inline]
    pub fn contains(&self, dot: Dot) -> bool {
        self.vv.contains(dot) || (!self.cloud.is_empty() && self.cloud.binary_search(&dot).is_ok())
    }

    /// The highest counter of `replica` held.
    pub fn max_counter(&self, replica: ReplicaId) -> u64 {
        let compact = self.vv.get(replica);
        // The last cloud dot below (replica + 1, 0) is the replica's highest.
        let end = self.cloud.partition_point(|d| d.replica <= replica);
        let cloud = match end.checked_sub(1).map(|i| self.cloud[i]) {
            Some(d) if d.replica == replica => d.counter,
            _ => 0,
        };
        compact.max(cloud)
    }

    /// The dot `replica` should issue next: one past the highest it has seen.
    pub fn next_dot(&self, replica: ReplicaId) -> Dot {
        Dot::new(replica, self.max_counter(replica).saturating_add(1))
    }

    /// Issues the next dot of `replica` and adds it: what a local mutation
    /// does. One lookup when the replica's own events are all in the vector
    /// (always, for a replica's own id, unless it received its own dots back
    /// out of order).
    #[inline]
    pub fn issue(&mut self, replica: ReplicaId) -> Dot {
        if self.cloud.is_empty() {
            return self.vv.increment(replica);
        }
        let dot = self.next_dot(replica);
        self.insert(dot);
        dot
    }

    /// The context of exactly one event.
    #[inline]
    pub fn of_dot(dot: Dot) -> Self {
        let mut cx = Self::new();
        if dot.counter == 1 {
            cx.vv.raise(dot.replica, 1);
        } else {
            cx.cloud.push(dot);
        }
        cx
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
        } else if let Err(i) = self.cloud.binary_search(&dot) {
            self.cloud.insert(i, dot);
        }
    }

    /// Folds cloud dots of `replica` that now extend the vector into it.
    fn absorb(&mut self, replica: ReplicaId) {
        let mut next = self.vv.get(replica).saturating_add(1);
        while let Ok(i) = self.cloud.binary_search(&Dot::new(replica, next)) {
            self.cloud.remove(i);
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
        // Merge the two sorted clouds, then fold what extends the vector.
        let mine = core::mem::take(&mut self.cloud);
        let mut merged: SmallVec<[Dot; 1]> =
            SmallVec::with_capacity(mine.len() + other.cloud.len());
        let (mut i, mut j) = (0, 0);
        while i < mine.len() || j < other.cloud.len() {
            let next = match (mine.get(i), other.cloud.get(j)) {
                (Some(&a), Some(&b)) if a == b => {
                    i += 1;
                    j += 1;
                    a
                }
                (Some(&a), Some(&b)) if a < b => {
                    i += 1;
                    a
                }
                (Some(&a), None) => {
                    i += 1;
                    a
                }
                (_, Some(&b)) => {
                    j += 1;
                    b
                }
                (None, None) => break,
            };
            merged.push(next);
        }
        self.compact_from(merged);
    }

    /// Rebuilds the cloud from a sorted `cloud`, folding what extends the
    /// vector.
    fn compact_from(&mut self, cloud: SmallVec<[Dot; 1]>) {
        // Dots are sorted by (replica, counter), so one ascending pass folds
        // every run that continues the vector.
        let mut kept = SmallVec::new();
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
        self.cloud = kept;
    }

    /// True if every event of `other` is held by `self`.
    pub fn includes(&self, other: &CausalContext) -> bool {
        for (r, top) in other.vv.iter() {
            let have = self.vv.get(r);
            if have >= top {
                continue;
            }
            // The gap must be in our cloud; it cannot be if it is longer.
            if top - have > self.cloud.len() as u64 {
                return false;
            }
            if !(have + 1..=top).all(|c| self.cloud.binary_search(&Dot::new(r, c)).is_ok()) {
                return false;
            }
        }
        other.cloud.iter().all(|&d| self.contains(d))
    }

    /// Calls `f` for every dot held, each replica's in ascending order.
    pub fn for_each_dot(&self, mut f: impl FnMut(Dot)) {
        let mut cloud = self.cloud.iter().copied().peekable();
        for (r, top) in self.vv.iter() {
            // Cloud dots of replicas ordered before `r` come first.
            while let Some(d) = cloud.next_if(|d| d.replica < r) {
                f(d);
            }
            for c in 1..=top {
                f(Dot::new(r, c));
            }
            while let Some(d) = cloud.next_if(|d| d.replica == r) {
                f(d);
            }
        }
        cloud.for_each(f);
    }

    /// Number of events held (saturating).
    pub fn len(&self) -> u64 {
        self.vv.total().saturating_add(self.cloud.len() as u64)
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
                if other.cloud.binary_search(&d).is_err() {
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
            cloud: SmallVec<[Dot; 1]>,
        }
        let raw = Raw::deserialize(d)?;
        if raw.cloud.windows(2).any(|w| w[0] >= w[1]) {
            return Err(D::Error::custom("causal context cloud not sorted"));
        }
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
