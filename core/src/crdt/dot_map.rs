use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::cmp::Ordering;

use serde::{Deserialize, Deserializer, Serialize, de::Error as _};

use super::DotStore;
use crate::clock::{CausalContext, Dot};

/// A map from keys to dot stores, all sharing one causal context: the store
/// behind [`AWSet`](super::AWSet) and [`ORMap`](super::ORMap).
///
/// Invariant: no value is bottom. A key whose store loses its last dot is
/// removed, which is what makes removal need no tombstone.
#[derive(Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct DotMap<K, V> {
    entries: BTreeMap<K, V>,
}

impl<K, V> Default for DotMap<K, V> {
    fn default() -> Self {
        Self {
            entries: BTreeMap::new(),
        }
    }
}

impl<K: Ord, V> DotMap<K, V> {
    /// The empty map.
    pub const fn new() -> Self {
        Self {
            entries: BTreeMap::new(),
        }
    }

    /// The store under `key`.
    pub fn get(&self, key: &K) -> Option<&V> {
        self.entries.get(key)
    }

    /// True if `key` has a (non-bottom) store.
    pub fn contains_key(&self, key: &K) -> bool {
        self.entries.contains_key(key)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if no key is present.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Entries in key order.
    pub fn iter(&self) -> alloc::collections::btree_map::Iter<'_, K, V> {
        self.entries.iter()
    }

    /// Keys in order.
    pub fn keys(&self) -> alloc::collections::btree_map::Keys<'_, K, V> {
        self.entries.keys()
    }

    pub(crate) fn entries_mut(&mut self) -> &mut BTreeMap<K, V> {
        &mut self.entries
    }

    pub(crate) fn insert(&mut self, key: K, value: V) -> Option<V> {
        self.entries.insert(key, value)
    }

    pub(crate) fn remove(&mut self, key: &K) -> Option<V> {
        self.entries.remove(key)
    }
}

impl<K: core::fmt::Debug, V: core::fmt::Debug> core::fmt::Debug for DotMap<K, V> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_map().entries(self.entries.iter()).finish()
    }
}

impl<K: Ord + Clone, V: DotStore> DotStore for DotMap<K, V> {
    fn is_bottom(&self) -> bool {
        self.entries.is_empty()
    }

    fn for_each_dot(&self, f: &mut dyn FnMut(Dot)) {
        for v in self.entries.values() {
            v.for_each_dot(f);
        }
    }

    fn join_store(&mut self, cx: &CausalContext, other: Self, other_cx: &CausalContext) {
        if other.entries.is_empty() && other_cx.is_empty() {
            return;
        }
        // One ordered walk over both maps, then a bulk rebuild from the
        // sorted result: O(n + m), no per-key search.
        let mine = core::mem::take(&mut self.entries);
        let mut out: Vec<(K, V)> = Vec::with_capacity(mine.len() + other.entries.len());
        let mut a = mine.into_iter().peekable();
        let mut b = other.entries.into_iter().peekable();
        loop {
            let ord = match (a.peek(), b.peek()) {
                (Some((ka, _)), Some((kb, _))) => ka.cmp(kb),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => break,
            };
            let (k, v) = match ord {
                Ordering::Less => {
                    let (k, mut v) = a.next().expect("peeked");
                    if !other_cx.is_empty() {
                        v.join_store(cx, V::default(), other_cx);
                    }
                    (k, v)
                }
                Ordering::Greater => {
                    let (k, ov) = b.next().expect("peeked");
                    let mut v = V::default();
                    v.join_store(cx, ov, other_cx);
                    (k, v)
                }
                Ordering::Equal => {
                    let (k, mut v) = a.next().expect("peeked");
                    let (_, ov) = b.next().expect("peeked");
                    v.join_store(cx, ov, other_cx);
                    (k, v)
                }
            };
            if !v.is_bottom() {
                out.push((k, v));
            }
        }
        self.entries = out.into_iter().collect();
    }
}

impl<'de, K, V> Deserialize<'de> for DotMap<K, V>
where
    K: Ord + Deserialize<'de>,
    V: DotStore + Deserialize<'de>,
{
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let entries = BTreeMap::<K, V>::deserialize(d)?;
        if entries.values().any(DotStore::is_bottom) {
            return Err(D::Error::custom("map entry holds no dot"));
        }
        Ok(Self { entries })
    }
}
