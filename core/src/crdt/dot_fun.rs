use alloc::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::DotStore;
use crate::clock::{CausalContext, Dot};

/// A map from dots to values: each value was written by the event that names
/// it. The store behind [`MvRegister`](super::MvRegister) and
/// [`CausalCounter`](super::CausalCounter).
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DotFun<V> {
    entries: BTreeMap<Dot, V>,
}

impl<V> Default for DotFun<V> {
    fn default() -> Self {
        Self {
            entries: BTreeMap::new(),
        }
    }
}

impl<V> DotFun<V> {
    /// The empty store.
    pub const fn new() -> Self {
        Self {
            entries: BTreeMap::new(),
        }
    }

    /// A store of one entry.
    pub fn one(dot: Dot, value: V) -> Self {
        let mut entries = BTreeMap::new();
        entries.insert(dot, value);
        Self { entries }
    }

    /// The value written by `dot`, if still held.
    pub fn get(&self, dot: Dot) -> Option<&V> {
        self.entries.get(&dot)
    }

    /// Adds an entry.
    pub fn insert(&mut self, dot: Dot, value: V) {
        self.entries.insert(dot, value);
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
        f.debug_map().entries(self.entries.iter()).finish()
    }
}

impl<V: Clone + Ord> DotStore for DotFun<V> {
    fn is_bottom(&self) -> bool {
        self.entries.is_empty()
    }

    fn for_each_dot(&self, f: &mut dyn FnMut(Dot)) {
        self.entries.keys().for_each(|&d| f(d));
    }

    fn join_store(&mut self, cx: &CausalContext, other: Self, other_cx: &CausalContext) {
        if !other_cx.is_empty() {
            self.entries
                .retain(|d, _| other.entries.contains_key(d) || !other_cx.contains(*d));
        }
        for (d, v) in other.entries {
            match self.entries.get_mut(&d) {
                // A dot names one write, so both sides hold the same value;
                // taking the larger keeps the join commutative even if a
                // faulty peer disagrees.
                Some(mine) => {
                    if v > *mine {
                        *mine = v;
                    }
                }
                None => {
                    if !cx.contains(d) {
                        self.entries.insert(d, v);
                    }
                }
            }
        }
    }
}
