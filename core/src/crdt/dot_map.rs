use alloc::collections::{BTreeMap, btree_map};
use alloc::vec::Vec;
use core::cmp::Ordering;
use core::hash::{Hash, Hasher};

use serde::{Deserialize, Deserializer, Serialize, Serializer, de::Error as _};

use super::DotStore;
use crate::clock::{CausalContext, Dot};

/// A map from keys to dot stores, all sharing one causal context: the store
/// behind [`AWSet`](super::AWSet) and [`ORMap`](super::ORMap).
///
/// Invariant: no value is bottom. A key whose store loses its last dot is
/// removed, which is what makes removal need no tombstone.
///
/// A map of one entry — every delta of a single mutation — is held inline;
/// larger maps are a `BTreeMap` (ordered, so iteration and encoding are
/// deterministic).
#[derive(Clone)]
pub struct DotMap<K, V> {
    repr: Repr<K, V>,
}

#[derive(Clone)]
enum Repr<K, V> {
    One(K, V),
    Many(BTreeMap<K, V>),
}

impl<K, V> Default for DotMap<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K, V> DotMap<K, V> {
    /// The empty map.
    pub const fn new() -> Self {
        Self {
            repr: Repr::Many(BTreeMap::new()),
        }
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::One(..) => 1,
            Repr::Many(m) => m.len(),
        }
    }

    /// True if no key is present.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Entries in key order.
    pub fn iter(&self) -> Iter<'_, K, V> {
        match &self.repr {
            Repr::One(k, v) => Iter::One(Some((k, v))),
            Repr::Many(m) => Iter::Many(m.iter()),
        }
    }

    /// Keys in order.
    pub fn keys(&self) -> impl Iterator<Item = &K> + '_ {
        self.iter().map(|(k, _)| k)
    }

    /// Values in key order.
    pub fn values(&self) -> impl Iterator<Item = &V> + '_ {
        self.iter().map(|(_, v)| v)
    }
}

impl<K: Ord, V> DotMap<K, V> {
    /// The store under `key`.
    pub fn get(&self, key: &K) -> Option<&V> {
        match &self.repr {
            Repr::One(k, v) => (k == key).then_some(v),
            Repr::Many(m) => m.get(key),
        }
    }

    /// True if `key` has a (non-bottom) store.
    pub fn contains_key(&self, key: &K) -> bool {
        self.get(key).is_some()
    }

    /// Moves the single inline entry into a `BTreeMap`.
    fn spill(&mut self) -> &mut BTreeMap<K, V> {
        if let Repr::One(..) = self.repr {
            let Repr::One(k, v) = core::mem::replace(&mut self.repr, Repr::Many(BTreeMap::new()))
            else {
                unreachable!()
            };
            let mut m = BTreeMap::new();
            m.insert(k, v);
            self.repr = Repr::Many(m);
        }
        match &mut self.repr {
            Repr::Many(m) => m,
            Repr::One(..) => unreachable!(),
        }
    }

    pub(crate) fn insert(&mut self, key: K, value: V) -> Option<V> {
        match &mut self.repr {
            Repr::Many(m) if m.is_empty() => {
                self.repr = Repr::One(key, value);
                None
            }
            Repr::One(k, v) if *k == key => Some(core::mem::replace(v, value)),
            _ => self.spill().insert(key, value),
        }
    }

    pub(crate) fn remove(&mut self, key: &K) -> Option<V> {
        match &mut self.repr {
            Repr::One(k, _) if k == key => {
                match core::mem::replace(&mut self.repr, Repr::Many(BTreeMap::new())) {
                    Repr::One(_, v) => Some(v),
                    Repr::Many(_) => unreachable!(),
                }
            }
            Repr::One(..) => None,
            Repr::Many(m) => m.remove(key),
        }
    }

    /// The store under `key`, inserted as `V::default()` if absent. The
    /// caller must remove it again if it stays bottom.
    pub(crate) fn get_or_default(&mut self, key: K) -> &mut V
    where
        V: Default,
    {
        match &self.repr {
            Repr::Many(m) if m.is_empty() => self.repr = Repr::One(key, V::default()),
            Repr::One(k, _) if *k == key => {}
            _ => return self.spill().entry(key).or_default(),
        }
        match &mut self.repr {
            Repr::One(_, v) => v,
            Repr::Many(_) => unreachable!(),
        }
    }

    fn from_sorted(mut entries: Vec<(K, V)>) -> Self {
        let repr = if entries.len() == 1 {
            let (k, v) = entries.pop().expect("one entry");
            Repr::One(k, v)
        } else {
            // Sorted input: `collect` bulk-builds the tree without searching.
            Repr::Many(entries.into_iter().collect())
        };
        Self { repr }
    }
}

/// Iterator over a [`DotMap`]'s entries in key order.
pub enum Iter<'a, K, V> {
    #[doc(hidden)]
    One(Option<(&'a K, &'a V)>),
    #[doc(hidden)]
    Many(btree_map::Iter<'a, K, V>),
}

impl<'a, K, V> Iterator for Iter<'a, K, V> {
    type Item = (&'a K, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Iter::One(e) => e.take(),
            Iter::Many(it) => it.next(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            Iter::One(e) => (e.is_some() as usize, Some(e.is_some() as usize)),
            Iter::Many(it) => it.size_hint(),
        }
    }
}

/// Owning iterator, in key order.
enum IntoIter<K, V> {
    One(Option<(K, V)>),
    Many(btree_map::IntoIter<K, V>),
}

impl<K, V> Iterator for IntoIter<K, V> {
    type Item = (K, V);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            IntoIter::One(e) => e.take(),
            IntoIter::Many(it) => it.next(),
        }
    }
}

impl<K, V> IntoIter<K, V> {
    fn new(map: DotMap<K, V>) -> Self {
        match map.repr {
            Repr::One(k, v) => IntoIter::One(Some((k, v))),
            Repr::Many(m) => IntoIter::Many(m.into_iter()),
        }
    }
}

impl<K: PartialEq, V: PartialEq> PartialEq for DotMap<K, V> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl<K: Eq, V: Eq> Eq for DotMap<K, V> {}

impl<K: Hash, V: Hash> Hash for DotMap<K, V> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_usize(self.len());
        for (k, v) in self.iter() {
            k.hash(state);
            v.hash(state);
        }
    }
}

impl<K: core::fmt::Debug, V: core::fmt::Debug> core::fmt::Debug for DotMap<K, V> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<K: Ord + Clone, V: DotStore> DotStore for DotMap<K, V> {
    fn is_bottom(&self) -> bool {
        self.is_empty()
    }

    fn for_each_dot(&self, f: &mut dyn FnMut(Dot)) {
        for v in self.values() {
            v.for_each_dot(f);
        }
    }

    fn filtered(&self, keep: &dyn Fn(Dot) -> bool) -> Self {
        let out: Vec<(K, V)> = self
            .iter()
            .map(|(k, v)| (k.clone(), v.filtered(keep)))
            .filter(|(_, v)| !v.is_bottom())
            .collect();
        Self::from_sorted(out)
    }

    fn join_store(&mut self, cx: &CausalContext, other: Self, other_cx: &CausalContext) {
        if other.is_empty() && other_cx.is_empty() {
            return;
        }
        // One ordered walk over both maps, then a bulk rebuild from the
        // sorted result: O(n + m), no per-key search.
        let mine = core::mem::take(self);
        let mut out: Vec<(K, V)> = Vec::with_capacity(mine.len() + other.len());
        let mut a = IntoIter::new(mine).peekable();
        let mut b = IntoIter::new(other).peekable();
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
        *self = Self::from_sorted(out);
    }
}

impl<K: Serialize, V: Serialize> Serialize for DotMap<K, V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
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
        let mut map = DotMap::new();
        if entries.len() == 1 {
            if let Some((k, v)) = entries.into_iter().next() {
                map.insert(k, v);
            }
        } else {
            map.repr = Repr::Many(entries);
        }
        Ok(map)
    }
}
