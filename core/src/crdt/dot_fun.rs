use core::cmp::Ordering;

use serde::{Deserialize, Deserializer, Serialize, de::Error as _};
use smallvec::SmallVec;

use super::DotStore;
use crate::clock::{CausalContext, Dot};

/// A map from dots to values: each value was written by the event that names
/// it. The store behind [`MvRegister`](super::MvRegister) and
/// [`CausalCounter`](super::CausalCounter).
///
/// A sorted vector with room for one entry inline: registers hold one value
/// almost always, and a delta holds exactly one, so neither allocates.
#[derive(Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct DotFun<V> {
    entries: SmallVec<[(Dot, V); 1]>,
}

impl<V> Default for DotFun<V> {
    fn default() -> Self {
        Self {
            entries: SmallVec::new(),
        }
    }
}

impl<V> DotFun<V> {
    /// The empty store.
    pub const fn new() -> Self {
        Self {
            entries: SmallVec::new_const(),
        }
    }

    /// A store of one entry.
    pub fn one(dot: Dot, value: V) -> Self {
        let mut entries = SmallVec::new();
        entries.push((dot, value));
        Self { entries }
    }

    fn find(&self, dot: Dot) -> Result<usize, usize> {
        // Local dots are issued in increasing order, so the common insert is
        // an append: check the end first.
        match self.entries.last() {
            Some((last, _)) if *last < dot => Err(self.entries.len()),
            _ => self.entries.binary_search_by(|e| e.0.cmp(&dot)),
        }
    }

    /// The value written by `dot`, if still held.
    pub fn get(&self, dot: Dot) -> Option<&V> {
        self.find(dot).ok().map(|i| &self.entries[i].1)
    }

    /// Adds an entry (replacing the value if `dot` is held).
    pub fn insert(&mut self, dot: Dot, value: V) {
        match self.find(dot) {
            Ok(i) => self.entries[i].1 = value,
            Err(i) => {
                // A store that outgrows its inline entry keeps growing (a
                // counter's increments): skip the 2-entry allocation.
                if !self.entries.spilled() && self.entries.len() == self.entries.inline_size() {
                    self.entries.reserve_exact(4);
                }
                self.entries.insert(i, (dot, value))
            }
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Entries in dot order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (Dot, &V)> + '_ {
        self.entries.iter().map(|(d, v)| (*d, v))
    }

    /// Removes every entry.
    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

impl<V: core::fmt::Debug> core::fmt::Debug for DotFun<V> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_map()
            .entries(self.entries.iter().map(|(d, v)| (d, v)))
            .finish()
    }
}

impl<V: Clone + Ord> DotStore for DotFun<V> {
    fn is_bottom(&self) -> bool {
        self.entries.is_empty()
    }

    fn for_each_dot(&self, f: &mut dyn FnMut(Dot)) {
        self.entries.iter().for_each(|e| f(e.0));
    }

    fn filtered(&self, keep: &dyn Fn(Dot) -> bool) -> Self {
        Self {
            entries: self.entries.iter().filter(|e| keep(e.0)).cloned().collect(),
        }
    }

    fn join_store(&mut self, cx: &CausalContext, other: Self, other_cx: &CausalContext) {
        if other.entries.is_empty() {
            if !other_cx.is_empty() {
                self.entries.retain(|e| !other_cx.contains(e.0));
            }
            return;
        }
        // One ordered walk over both sides.
        let mine = core::mem::take(&mut self.entries);
        let mut a = mine.into_iter().peekable();
        let mut b = other.entries.into_iter().peekable();
        loop {
            let ord = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) => x.0.cmp(&y.0),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => break,
            };
            match ord {
                Ordering::Less => {
                    let (d, v) = a.next().expect("peeked");
                    if !other_cx.contains(d) {
                        self.entries.push((d, v));
                    }
                }
                Ordering::Greater => {
                    let (d, v) = b.next().expect("peeked");
                    if !cx.contains(d) {
                        self.entries.push((d, v));
                    }
                }
                // A dot names one write, so both sides hold the same value;
                // taking the larger keeps the join commutative even if a
                // faulty peer disagrees.
                Ordering::Equal => {
                    let (d, v) = a.next().expect("peeked");
                    let (_, w) = b.next().expect("peeked");
                    self.entries.push((d, v.max(w)));
                }
            }
        }
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for DotFun<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let entries = SmallVec::<[(Dot, V); 1]>::deserialize(d)?;
        if entries.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err(D::Error::custom("dot function not sorted by dot"));
        }
        Ok(Self { entries })
    }
}
