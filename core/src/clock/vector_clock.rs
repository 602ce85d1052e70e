use core::cmp::Ordering;
use core::fmt;

use serde::{Deserialize, Deserializer, Serialize, de::Error as _};
use smallvec::SmallVec;

use super::{Dot, ReplicaId};

/// How two vector clocks (or the histories they summarise) relate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Causality {
    /// Same history.
    Equal,
    /// `self` happened before `other`: every event of `self` is in `other`.
    Before,
    /// `self` happened after `other`.
    After,
    /// Each has events the other lacks.
    Concurrent,
}

/// A version vector: for each replica, how many of its events are included.
///
/// Stored as a vector sorted by replica with no zero entries, so equal clocks
/// are structurally equal and one entry (the common case for a counter's
/// delta) needs no heap allocation.
#[derive(Clone, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct VectorClock {
    entries: SmallVec<[(ReplicaId, u64); 1]>,
}

impl VectorClock {
    /// The empty clock (bottom).
    pub const fn new() -> Self {
        Self {
            entries: SmallVec::new_const(),
        }
    }

    /// Number of replicas with a non-zero entry.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if no replica has an entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry of `replica` (0 if absent).
    #[inline]
    pub fn get(&self, replica: ReplicaId) -> u64 {
        match self.entries.binary_search_by_key(&replica, |e| e.0) {
            Ok(i) => self.entries[i].1,
            Err(_) => 0,
        }
    }

    /// True if the event `dot` is included.
    #[inline]
    pub fn contains(&self, dot: Dot) -> bool {
        self.get(dot.replica) >= dot.counter
    }

    /// Adds one event of `replica` and returns its dot.
    ///
    /// Saturates at `u64::MAX` (2^64 events is out of reach in practice).
    pub fn increment(&mut self, replica: ReplicaId) -> Dot {
        match self.entries.binary_search_by_key(&replica, |e| e.0) {
            Ok(i) => {
                let c = &mut self.entries[i].1;
                *c = c.saturating_add(1);
                Dot::new(replica, *c)
            }
            Err(i) => {
                self.entries.insert(i, (replica, 1));
                Dot::new(replica, 1)
            }
        }
    }

    /// Raises the entry of `replica` to at least `counter`.
    #[inline]
    pub fn raise(&mut self, replica: ReplicaId, counter: u64) {
        if counter == 0 {
            return;
        }
        match self.entries.binary_search_by_key(&replica, |e| e.0) {
            Ok(i) => {
                let c = &mut self.entries[i].1;
                *c = (*c).max(counter);
            }
            Err(i) => self.entries.insert(i, (replica, counter)),
        }
    }

    /// Pointwise maximum: afterwards `self` includes every event of `other`.
    pub fn merge(&mut self, other: &VectorClock) {
        if other.entries.len() <= 8 {
            for &(r, c) in &other.entries {
                self.raise(r, c);
            }
            return;
        }
        let mut out: SmallVec<[(ReplicaId, u64); 1]> =
            SmallVec::with_capacity(self.entries.len().max(other.entries.len()));
        let (mut a, mut b) = (
            self.entries.iter().peekable(),
            other.entries.iter().peekable(),
        );
        loop {
            match (a.peek(), b.peek()) {
                (Some(&&x), Some(&&y)) => match x.0.cmp(&y.0) {
                    Ordering::Less => {
                        out.push(x);
                        a.next();
                    }
                    Ordering::Greater => {
                        out.push(y);
                        b.next();
                    }
                    Ordering::Equal => {
                        out.push((x.0, x.1.max(y.1)));
                        a.next();
                        b.next();
                    }
                },
                (Some(&&x), None) => {
                    out.push(x);
                    a.next();
                }
                (None, Some(&&y)) => {
                    out.push(y);
                    b.next();
                }
                (None, None) => break,
            }
        }
        self.entries = out;
    }

    /// True if `self` includes every event of `other` (`self ≥ other`).
    pub fn dominates(&self, other: &VectorClock) -> bool {
        matches!(self.compare(other), Causality::Equal | Causality::After)
    }

    /// Compares two histories.
    pub fn compare(&self, other: &VectorClock) -> Causality {
        // Walk both sorted entry lists once, noting whether either side has
        // something the other lacks.
        let (mut self_ahead, mut other_ahead) = (false, false);
        let (mut i, mut j) = (0, 0);
        let (a, b) = (&self.entries, &other.entries);
        while i < a.len() || j < b.len() {
            let ord = match (a.get(i), b.get(j)) {
                (Some(x), Some(y)) => x.0.cmp(&y.0),
                (Some(_), None) => Ordering::Less,
                (None, _) => Ordering::Greater,
            };
            match ord {
                Ordering::Less => {
                    self_ahead = true;
                    i += 1;
                }
                Ordering::Greater => {
                    other_ahead = true;
                    j += 1;
                }
                Ordering::Equal => {
                    match a[i].1.cmp(&b[j].1) {
                        Ordering::Greater => self_ahead = true,
                        Ordering::Less => other_ahead = true,
                        Ordering::Equal => {}
                    }
                    i += 1;
                    j += 1;
                }
            }
            if self_ahead && other_ahead {
                return Causality::Concurrent;
            }
        }
        match (self_ahead, other_ahead) {
            (false, false) => Causality::Equal,
            (true, false) => Causality::After,
            (false, true) => Causality::Before,
            (true, true) => Causality::Concurrent,
        }
    }

    /// The entries, sorted by replica.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (ReplicaId, u64)> + '_ {
        self.entries.iter().copied()
    }

    /// Removes the entry of `replica`, returning it. Used by actor pruning.
    pub fn remove(&mut self, replica: ReplicaId) -> u64 {
        match self.entries.binary_search_by_key(&replica, |e| e.0) {
            Ok(i) => self.entries.remove(i).1,
            Err(_) => 0,
        }
    }

    /// Sum of all entries: the number of events included (saturating).
    pub fn total(&self) -> u64 {
        self.entries
            .iter()
            .fold(0u64, |acc, e| acc.saturating_add(e.1))
    }
}

impl PartialOrd for VectorClock {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        match self.compare(other) {
            Causality::Equal => Some(Ordering::Equal),
            Causality::Before => Some(Ordering::Less),
            Causality::After => Some(Ordering::Greater),
            Causality::Concurrent => None,
        }
    }
}

impl FromIterator<(ReplicaId, u64)> for VectorClock {
    fn from_iter<I: IntoIterator<Item = (ReplicaId, u64)>>(iter: I) -> Self {
        let mut vc = VectorClock::new();
        for (r, c) in iter {
            vc.raise(r, c);
        }
        vc
    }
}

impl fmt::Debug for VectorClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.entries.iter().map(|e| (e.0, e.1)))
            .finish()
    }
}

impl<'de> Deserialize<'de> for VectorClock {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let entries = SmallVec::<[(ReplicaId, u64); 1]>::deserialize(d)?;
        // Only the canonical form is accepted: sorted, unique, no zeros.
        // Anything else would break binary search and structural equality.
        if entries.iter().any(|e| e.1 == 0) {
            return Err(D::Error::custom("vector clock entry of 0"));
        }
        if entries.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err(D::Error::custom(
                "vector clock entries not sorted by replica",
            ));
        }
        Ok(Self { entries })
    }
}
