use serde::{Deserialize, Serialize};

use super::{Causal, DotMap, DotStore};
use crate::clock::{CausalContext, Dot};

/// An observed-remove map from keys to dot stores: [`AWSet`](super::AWSet),
/// [`MvRegister`](super::MvRegister), [`EWFlag`](super::EWFlag),
/// [`CausalCounter`](super::CausalCounter) or a nested `ORMap`.
///
/// Every value shares the map's causal context. Removing a key deletes the
/// dots of its value that the remover has seen; an update concurrent with the
/// remove carries dots the remover never saw, so the key survives holding
/// exactly that update ("a remove concurrent with an update keeps only the
/// update"). A key exists while its value holds a dot.
///
/// ```
/// use neuroplex_core::{Causal, CausalCounter, Lattice, ORMap, ReplicaId};
/// let (a, b) = (ReplicaId::new(1), ReplicaId::new(2));
/// let mut x: Causal<ORMap<&str, CausalCounter>> = Causal::new();
/// x.apply("k", |c, cx| c.increment(cx, a, 5));
/// let mut y = x.clone();
/// let rm = x.remove(&"k");                                // A removes k ...
/// let up = y.apply("k", |c, cx| c.increment(cx, b, 1)); // ... while B adds 1
/// x.join(up);
/// y.join(rm);
/// assert_eq!(x, y);
/// assert_eq!(x.store().get(&"k").map(|c| c.value()), Some(1));
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(bound(deserialize = "K: Ord + Clone + Deserialize<'de>, V: DotStore + Deserialize<'de>"))]
#[serde(transparent)]
pub struct ORMap<K, V> {
    entries: DotMap<K, V>,
}

impl<K, V> Default for ORMap<K, V> {
    fn default() -> Self {
        Self {
            entries: DotMap::default(),
        }
    }
}

impl<K: Ord + Clone, V: DotStore> ORMap<K, V> {
    /// The empty map.
    pub const fn new() -> Self {
        Self {
            entries: DotMap::new(),
        }
    }

    /// The value under `key`.
    pub fn get(&self, key: &K) -> Option<&V> {
        self.entries.get(key)
    }

    /// True if `key` is present.
    pub fn contains_key(&self, key: &K) -> bool {
        self.entries.contains_key(key)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Entries in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> + '_ {
        self.entries.iter()
    }

    /// Keys in order.
    pub fn keys(&self) -> impl Iterator<Item = &K> + '_ {
        self.entries.keys()
    }

    /// Updates the value under `key` (starting from bottom if absent) with a
    /// store-level mutator, and returns the map's delta.
    ///
    /// `f` gets the value and the shared context and returns the value's
    /// delta, exactly as the value type's own mutators do.
    pub fn apply<F>(&mut self, cx: &mut CausalContext, key: K, f: F) -> Causal<Self>
    where
        F: FnOnce(&mut V, &mut CausalContext) -> Causal<V>,
    {
        let value = self.entries.get_or_default(key.clone());
        let delta = f(value, cx);
        if value.is_bottom() {
            self.entries.remove(&key);
        }
        let (store, context) = delta.into_parts();
        let mut out = ORMap::new();
        if !store.is_bottom() {
            out.entries.insert(key, store);
        }
        Causal {
            store: out,
            context,
        }
    }

    /// Removes `key`: every dot of its value that this replica has seen.
    pub fn remove(&mut self, key: &K) -> Causal<Self> {
        let context = match self.entries.remove(key) {
            Some(v) => CausalContext::from_dots(v.dots()),
            None => CausalContext::new(),
        };
        Causal {
            store: ORMap::new(),
            context,
        }
    }

    /// Removes every key.
    pub fn clear(&mut self) -> Causal<Self> {
        let context = CausalContext::from_dots(self.entries.dots());
        *self = ORMap::new();
        Causal {
            store: ORMap::new(),
            context,
        }
    }
}

impl<K: core::fmt::Debug, V: core::fmt::Debug> core::fmt::Debug for ORMap<K, V> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.entries.fmt(f)
    }
}

impl<K: Ord + Clone, V: DotStore> DotStore for ORMap<K, V> {
    fn is_bottom(&self) -> bool {
        self.entries.is_bottom()
    }

    fn for_each_dot(&self, f: &mut dyn FnMut(Dot)) {
        self.entries.for_each_dot(f);
    }

    fn filtered(&self, keep: &dyn Fn(Dot) -> bool) -> Self {
        Self {
            entries: self.entries.filtered(keep),
        }
    }

    fn join_store(&mut self, cx: &CausalContext, other: Self, other_cx: &CausalContext) {
        self.entries.join_store(cx, other.entries, other_cx);
    }
}

impl<K: Ord + Clone, V: DotStore> Causal<ORMap<K, V>> {
    /// Updates the value under `key` with a store-level mutator (which names
    /// the replica it acts as); returns the delta.
    pub fn apply<F>(&mut self, key: K, f: F) -> Self
    where
        F: FnOnce(&mut V, &mut CausalContext) -> Causal<V>,
    {
        self.store.apply(&mut self.context, key, f)
    }

    /// Removes `key`; returns the delta.
    pub fn remove(&mut self, key: &K) -> Self {
        self.store.remove(key)
    }

    /// Removes every key; returns the delta.
    pub fn clear(&mut self) -> Self {
        self.store.clear()
    }
}
