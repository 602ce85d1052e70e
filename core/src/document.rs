//! The document model: a root map of named values ([`Value`]), each able to
//! hold every dot-based CRDT kind, nested to any depth; the [`Atom`]s stored
//! in sets and registers; and the path helpers that edit and read a value
//! by its names from the root. [`crate::sync`] replicates it like any other
//! dot store.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use crate::clock::{CausalContext, Dot, Hlc, ReplicaId, Timestamp};
use crate::crdt::{AWSet, Causal, CausalCounter, DotStore, EWFlag, MvRegister, ORMap};

/// A JSON-like value stored in sets and registers: compared, ordered and
/// hashed as a whole (an atom is never edited in place).
///
/// Variants are only ever appended: their index is their encoding.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Atom {
    /// No value.
    Null,
    /// A boolean.
    Bool(bool),
    /// A signed integer.
    Int(i64),
    /// UTF-8 text.
    Str(String),
    /// Raw bytes.
    Bytes(Vec<u8>),
    /// A 64-bit float, never NaN. (The JavaScript bindings store integral
    /// numbers as [`Atom::Int`], so a number has one representation.)
    Float(Float),
    /// A list of atoms.
    List(Vec<Atom>),
    /// An object: string keys, each once, in order.
    Object(BTreeMap<String, Atom>),
}

/// A 64-bit float that is never NaN, with a total order (IEEE 754
/// `totalOrder`: `-0.0 < 0.0`), so that it can be a set element. Decoding
/// refuses NaN.
#[derive(Clone, Copy, Debug)]
pub struct Float(f64);

impl Float {
    /// `x`, unless it is NaN.
    pub fn new(x: f64) -> Option<Float> {
        (!x.is_nan()).then_some(Float(x))
    }

    /// The number.
    pub fn get(self) -> f64 {
        self.0
    }
}

impl PartialEq for Float {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for Float {}

impl PartialOrd for Float {
    fn partial_cmp(&self, other: &Self) -> Option<core::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Float {
    fn cmp(&self, other: &Self) -> core::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

impl core::hash::Hash for Float {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.0.to_bits().hash(state);
    }
}

impl Serialize for Float {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.0)
    }
}

impl<'de> Deserialize<'de> for Float {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let x = f64::deserialize(d)?;
        Float::new(x).ok_or_else(|| serde::de::Error::custom("NaN is not a valid float atom"))
    }
}

/// The deepest path (names from the root, nested maps included) whose
/// values every replica can decode: each level of nesting costs the codec
/// three of its [`MAX_DEPTH`](crate::codec::MAX_DEPTH) levels.
pub const MAX_PATH_LEN: usize = 4;

/// The most lists and objects nested in one [`Atom`] that every replica can
/// decode when the atom sits at a path of [`MAX_PATH_LEN`] names. Producers
/// (the JavaScript bindings) refuse deeper values rather than write state
/// other replicas would refuse.
pub const MAX_ATOM_NESTING: usize = 8;

impl Atom {
    /// How many lists and objects are nested in this atom (0 for a scalar).
    pub fn nesting(&self) -> usize {
        match self {
            Atom::List(xs) => 1 + xs.iter().map(Atom::nesting).max().unwrap_or(0),
            Atom::Object(m) => 1 + m.values().map(Atom::nesting).max().unwrap_or(0),
            _ => 0,
        }
    }
}

/// One named value of a document. Every kind sits side by side, so two
/// replicas that concurrently use a name for different kinds both keep their
/// data (no type conflict to resolve), and every part is reset together when
/// the name is removed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Value {
    /// An add-wins set.
    pub set: AWSet<Atom>,
    /// A multi-value register.
    pub register: MvRegister<Atom>,
    /// A last-writer-wins register: concurrent writes are kept (so a remove
    /// resets them all) and the one with the greatest timestamp is read.
    pub lww: MvRegister<(Timestamp, Atom)>,
    /// An enable-wins flag.
    pub flag: EWFlag,
    /// A resettable counter.
    pub counter: CausalCounter,
    /// Nested named values.
    pub map: Nested,
}

/// The nested map of a [`Value`], absent until used (and again when empty,
/// so that equal values are structurally equal).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Nested(Option<Box<DocStore>>);

impl<'de> Deserialize<'de> for Nested {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let inner = Option::<Box<DocStore>>::deserialize(d)?;
        Ok(Nested::from_map(inner.map(|b| *b).unwrap_or_default()))
    }
}

impl Nested {
    /// The map, if it holds anything.
    pub fn get(&self) -> Option<&DocStore> {
        self.0.as_deref()
    }

    /// Updates the nested map (created if absent).
    pub fn apply<F>(&mut self, cx: &mut CausalContext, f: F) -> Causal<Nested>
    where
        F: FnOnce(&mut DocStore, &mut CausalContext) -> Causal<DocStore>,
    {
        let map = self.0.get_or_insert_with(Default::default);
        let delta = f(map, cx);
        if map.is_bottom() {
            self.0 = None;
        }
        let (store, context) = delta.into_parts();
        Causal {
            store: Nested::from_map(store),
            context,
        }
    }

    fn from_map(map: DocStore) -> Self {
        if map.is_bottom() {
            Nested(None)
        } else {
            Nested(Some(Box::new(map)))
        }
    }
}

impl DotStore for Nested {
    fn is_bottom(&self) -> bool {
        self.0.as_ref().is_none_or(|m| m.is_bottom())
    }

    fn for_each_dot(&self, f: &mut dyn FnMut(Dot)) {
        if let Some(m) = &self.0 {
            m.for_each_dot(f);
        }
    }

    fn filtered(&self, keep: &dyn Fn(Dot) -> bool) -> Self {
        match &self.0 {
            Some(m) => Nested::from_map(m.filtered(keep)),
            None => Nested(None),
        }
    }

    fn join_store(&mut self, cx: &CausalContext, other: Self, other_cx: &CausalContext) {
        let mine = self.0.take().map(|b| *b).unwrap_or_default();
        let mut joined = mine;
        joined.join_store(cx, other.0.map(|b| *b).unwrap_or_default(), other_cx);
        *self = Nested::from_map(joined);
    }
}

impl Value {
    /// The current LWW value: the greatest timestamp among concurrent writes.
    pub fn lww_value(&self) -> Option<&Atom> {
        self.lww.values().max().map(|(_, a)| a)
    }

    /// Writes the LWW register at physical time `now` (ms) with `clock`.
    pub fn lww_write(
        &mut self,
        cx: &mut CausalContext,
        clock: &mut Hlc,
        now: u64,
        value: Atom,
    ) -> Causal<Value> {
        // Stamp after everything this register holds, so the write wins
        // locally.
        if let Some((ts, _)) = self.lww.values().max() {
            clock.catch_up(*ts);
        }
        let id = clock.replica();
        let ts = clock.tick(now);
        let d = self.lww.write(cx, id, (ts, value));
        Value::wrap(d, |v, s| v.lww = s)
    }

    /// Wraps a part's delta as a value delta.
    pub fn wrap<S>(delta: Causal<S>, place: impl FnOnce(&mut Value, S)) -> Causal<Value> {
        let Causal { store, context } = delta;
        let mut v = Value::default();
        place(&mut v, store);
        Causal { store: v, context }
    }

    /// Adds to the set as replica `id`.
    pub fn set_add(&mut self, cx: &mut CausalContext, id: ReplicaId, x: Atom) -> Causal<Value> {
        Value::wrap(self.set.add(cx, id, x), |v, s| v.set = s)
    }

    /// Removes from the set.
    pub fn set_remove(&mut self, x: &Atom) -> Causal<Value> {
        Value::wrap(self.set.remove(x), |v, s| v.set = s)
    }

    /// Writes the multi-value register as replica `id`.
    pub fn register_write(
        &mut self,
        cx: &mut CausalContext,
        id: ReplicaId,
        x: Atom,
    ) -> Causal<Value> {
        Value::wrap(self.register.write(cx, id, x), |v, s| v.register = s)
    }

    /// Enables the flag as replica `id`.
    pub fn flag_enable(&mut self, cx: &mut CausalContext, id: ReplicaId) -> Causal<Value> {
        Value::wrap(self.flag.enable(cx, id), |v, s| v.flag = s)
    }

    /// Disables the flag.
    pub fn flag_disable(&mut self) -> Causal<Value> {
        Value::wrap(self.flag.disable(), |v, s| v.flag = s)
    }

    /// Adds `by` to the counter as replica `id`.
    pub fn counter_add(&mut self, cx: &mut CausalContext, id: ReplicaId, by: i64) -> Causal<Value> {
        Value::wrap(self.counter.increment(cx, id, by), |v, s| v.counter = s)
    }

    /// Resets the counter.
    pub fn counter_reset(&mut self) -> Causal<Value> {
        Value::wrap(self.counter.reset(), |v, s| v.counter = s)
    }

    /// Updates the nested map.
    pub fn map_apply<F>(&mut self, cx: &mut CausalContext, f: F) -> Causal<Value>
    where
        F: FnOnce(&mut DocStore, &mut CausalContext) -> Causal<DocStore>,
    {
        Value::wrap(self.map.apply(cx, f), |v, s| v.map = s)
    }
}

impl DotStore for Value {
    fn is_bottom(&self) -> bool {
        self.set.is_bottom()
            && self.register.is_bottom()
            && self.lww.is_bottom()
            && self.flag.is_bottom()
            && self.counter.is_bottom()
            && self.map.is_bottom()
    }

    fn for_each_dot(&self, f: &mut dyn FnMut(Dot)) {
        self.set.for_each_dot(f);
        self.register.for_each_dot(f);
        self.lww.for_each_dot(f);
        self.flag.for_each_dot(f);
        self.counter.for_each_dot(f);
        self.map.for_each_dot(f);
    }

    fn filtered(&self, keep: &dyn Fn(Dot) -> bool) -> Self {
        Value {
            set: self.set.filtered(keep),
            register: self.register.filtered(keep),
            lww: self.lww.filtered(keep),
            flag: self.flag.filtered(keep),
            counter: self.counter.filtered(keep),
            map: self.map.filtered(keep),
        }
    }

    fn join_store(&mut self, cx: &CausalContext, other: Self, other_cx: &CausalContext) {
        self.set.join_store(cx, other.set, other_cx);
        self.register.join_store(cx, other.register, other_cx);
        self.lww.join_store(cx, other.lww, other_cx);
        self.flag.join_store(cx, other.flag, other_cx);
        self.counter.join_store(cx, other.counter, other_cx);
        self.map.join_store(cx, other.map, other_cx);
    }
}

/// Named values: the store under a document's causal context, and the
/// shape of every nested map.
pub type DocStore = ORMap<String, Value>;

/// A replicated document: named values under one causal context.
pub type Document = Causal<DocStore>;

/// Applies `f` to the value at `path` (created on the way if absent) and
/// returns the document-level delta. An empty path does nothing.
///
/// ```
/// use neuroplex_core::document::{apply_at, Atom, Document};
/// use neuroplex_core::ReplicaId;
/// let me = ReplicaId::new(9);
/// let mut doc = Document::new();
/// let path = ["todo".to_string(), "tags".to_string()];
/// apply_at(&mut doc, &path, |v, cx| v.set_add(cx, me, Atom::Str("urgent".into())));
/// let todo = doc.store().get(&"todo".to_string()).unwrap();
/// let tags = todo.map.get().unwrap().get(&"tags".to_string()).unwrap();
/// assert!(tags.set.contains(&Atom::Str("urgent".into())));
/// ```
pub fn apply_at<F>(doc: &mut Document, path: &[String], f: F) -> Document
where
    F: FnOnce(&mut Value, &mut CausalContext) -> Causal<Value>,
{
    doc.mutate(|map, cx| apply_in(map, cx, path, f))
}

/// [`apply_at`] at the store level, for use inside a mutator (such as
/// [`Replica::mutate`](crate::sync::Replica::mutate)).
pub fn apply_in<F>(
    map: &mut DocStore,
    cx: &mut CausalContext,
    path: &[String],
    f: F,
) -> Causal<DocStore>
where
    F: FnOnce(&mut Value, &mut CausalContext) -> Causal<Value>,
{
    match path {
        [] => Causal::new(),
        [key] => map.apply(cx, key.clone(), f),
        [key, rest @ ..] => map.apply(cx, key.clone(), |v, cx| {
            v.map_apply(cx, |m, cx| apply_in(m, cx, rest, f))
        }),
    }
}

/// Removes the value at `path` (every part, nested values included) and
/// returns the delta.
pub fn remove_at(doc: &mut Document, path: &[String]) -> Document {
    doc.mutate(|map, cx| remove_in(map, cx, path))
}

/// [`remove_at`] at the store level, for use inside a mutator.
pub fn remove_in(map: &mut DocStore, cx: &mut CausalContext, path: &[String]) -> Causal<DocStore> {
    match path {
        [] => Causal::new(),
        [key] => map.remove(key),
        [key, rest @ ..] => {
            if !map.contains_key(key) {
                return Causal::new();
            }
            map.apply(cx, key.clone(), |v, cx| {
                v.map_apply(cx, |m, cx| remove_in(m, cx, rest))
            })
        }
    }
}

/// The value at `path`, if present.
pub fn get_at<'a>(doc: &'a Document, path: &[String]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let mut v = doc.store().get(first)?;
    for key in rest {
        v = v.map.get()?.get(key)?;
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec;
    use alloc::string::ToString;
    use alloc::vec;

    fn nest(d: usize) -> Atom {
        let mut a = Atom::Float(Float::new(1.5).unwrap());
        for i in 0..d {
            a = if i % 2 == 0 {
                Atom::List(vec![Atom::Null, a])
            } else {
                Atom::Object([("k".to_string(), a)].into_iter().collect())
            };
        }
        a
    }

    #[test]
    fn old_variants_keep_their_encoding() {
        assert_eq!(codec::encode(&Atom::Null).unwrap(), [1, 0]);
        assert_eq!(codec::encode(&Atom::Int(-2)).unwrap(), [1, 2, 3]);
        assert_eq!(
            codec::encode(&Atom::Str("a".into())).unwrap(),
            [1, 3, 1, b'a']
        );
        assert_eq!(codec::encode(&Atom::Bytes(vec![7])).unwrap(), [1, 4, 1, 7]);
    }

    #[test]
    fn new_variants_round_trip() {
        let obj: BTreeMap<String, Atom> = [
            ("b".to_string(), Atom::Bool(true)),
            (
                "a".to_string(),
                Atom::List(vec![Atom::Int(1), Atom::Str("x".into())]),
            ),
        ]
        .into_iter()
        .collect();
        for a in [
            Atom::Float(Float::new(0.25).unwrap()),
            Atom::Float(Float::new(-0.0).unwrap()),
            Atom::Float(Float::new(f64::INFINITY).unwrap()),
            Atom::List(vec![]),
            Atom::Object(obj),
            nest(MAX_ATOM_NESTING),
        ] {
            let bytes = codec::encode(&a).unwrap();
            assert_eq!(codec::decode::<Atom>(&bytes).unwrap(), a);
        }
        assert_eq!(
            codec::encode(&Atom::Float(Float::new(1.0).unwrap())).unwrap(),
            [1, 5, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f]
        );
    }

    #[test]
    fn nan_is_refused() {
        assert!(Float::new(f64::NAN).is_none());
        let mut bytes = vec![1, 5];
        bytes.extend_from_slice(&f64::NAN.to_le_bytes());
        assert!(codec::decode::<Atom>(&bytes).is_err());
    }

    #[test]
    fn floats_have_a_total_order() {
        let f = |x: f64| Float::new(x).unwrap();
        assert!(f(-0.0) < f(0.0));
        assert!(f(f64::NEG_INFINITY) < f(-1e300));
        assert_ne!(f(-0.0), f(0.0));
        assert_eq!(f(2.5), f(2.5));
    }

    #[test]
    fn deepest_allowed_values_decode() {
        let me = ReplicaId::new(3);
        let path: Vec<String> = (0..MAX_PATH_LEN).map(|i| i.to_string()).collect();
        let deep = nest(MAX_ATOM_NESTING);
        assert_eq!(deep.nesting(), MAX_ATOM_NESTING);
        let mut doc = Document::new();
        let mut clock = Hlc::new(me);
        apply_at(&mut doc, &path, |v, cx| {
            v.lww_write(cx, &mut clock, 1, deep.clone())
        });
        apply_at(&mut doc, &path, |v, cx| v.set_add(cx, me, deep.clone()));
        apply_at(&mut doc, &path, |v, cx| {
            v.register_write(cx, me, deep.clone())
        });
        let bytes = codec::encode(&doc).unwrap();
        assert_eq!(codec::decode::<Document>(&bytes).unwrap(), doc);
    }
}
