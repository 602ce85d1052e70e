//! Handles to CRDT values: a document and a path of names. A handle holds
//! no state of its own, so any number of them may name the same value.

use js_sys::Array;
use wasm_bindgen::prelude::*;

use crate::inner::{Shared, borrow, check_path};
use crate::value::{from_atom, step, strings, to_atom};

fn child(path: &[String], key: String) -> Result<Vec<String>, JsValue> {
    let mut p = Vec::with_capacity(path.len() + 1);
    p.extend_from_slice(path);
    p.push(key);
    check_path(&p)?;
    Ok(p)
}

/// A counter: the sum of every replica's increments and decrements.
#[wasm_bindgen]
pub struct Counter {
    doc: Shared,
    path: Vec<String>,
}

impl Counter {
    pub(crate) fn new(doc: Shared, path: Vec<String>) -> Self {
        Self { doc, path }
    }
}

#[wasm_bindgen]
impl Counter {
    /// Adds `n` (a safe integer, default 1).
    pub fn increment(
        &self,
        #[wasm_bindgen(unchecked_param_type = "number")] n: Option<JsValue>,
    ) -> Result<(), JsValue> {
        let by = step(n.as_ref())?;
        self.add(by)
    }

    /// Subtracts `n` (a safe integer, default 1).
    pub fn decrement(
        &self,
        #[wasm_bindgen(unchecked_param_type = "number")] n: Option<JsValue>,
    ) -> Result<(), JsValue> {
        let by = step(n.as_ref())?;
        self.add(-by)
    }

    /// The current value.
    pub fn value(&self) -> Result<f64, JsValue> {
        let d = borrow(&self.doc)?;
        Ok(d.value(&self.path).map_or(0, |v| v.counter.value()) as f64)
    }

    fn add(&self, by: i64) -> Result<(), JsValue> {
        if by == 0 {
            return Ok(());
        }
        borrow(&self.doc)?.mutate(&self.path, |v, cx, id, _| v.counter_add(cx, id, by));
        Ok(())
    }
}

/// An add-wins set of values: an add concurrent with a remove of the same
/// value wins.
#[wasm_bindgen]
pub struct DocSet {
    doc: Shared,
    path: Vec<String>,
}

impl DocSet {
    pub(crate) fn new(doc: Shared, path: Vec<String>) -> Self {
        Self { doc, path }
    }
}

#[wasm_bindgen]
impl DocSet {
    /// Adds `value`.
    pub fn add(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Value")] value: JsValue,
    ) -> Result<(), JsValue> {
        let atom = to_atom(&value)?;
        borrow(&self.doc)?.mutate(&self.path, |v, cx, id, _| v.set_add(cx, id, atom));
        Ok(())
    }

    /// Removes `value` (the adds this replica has seen).
    pub fn remove(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Value")] value: JsValue,
    ) -> Result<(), JsValue> {
        let atom = to_atom(&value)?;
        let mut d = borrow(&self.doc)?;
        if d.value(&self.path).is_some_and(|v| v.set.contains(&atom)) {
            d.mutate(&self.path, |v, _, _, _| v.set_remove(&atom));
        }
        Ok(())
    }

    /// Whether `value` is in the set.
    pub fn has(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Value")] value: JsValue,
    ) -> Result<bool, JsValue> {
        let atom = to_atom(&value)?;
        let d = borrow(&self.doc)?;
        Ok(d.value(&self.path).is_some_and(|v| v.set.contains(&atom)))
    }

    /// The values, in the same order on every replica.
    #[wasm_bindgen(unchecked_return_type = "Value[]")]
    pub fn values(&self) -> Result<Array, JsValue> {
        let d = borrow(&self.doc)?;
        Ok(d.value(&self.path)
            .map(|v| v.set.iter().map(from_atom).collect())
            .unwrap_or_default())
    }

    /// How many values the set holds.
    #[wasm_bindgen(getter)]
    pub fn size(&self) -> Result<u32, JsValue> {
        let d = borrow(&self.doc)?;
        Ok(d.value(&self.path).map_or(0, |v| v.set.len()) as u32)
    }
}

/// A register: the last write wins (hybrid logical clock, ties broken by
/// replica), and writes made concurrently stay visible as conflicts until
/// the next write.
#[wasm_bindgen]
pub struct Register {
    doc: Shared,
    path: Vec<String>,
}

impl Register {
    pub(crate) fn new(doc: Shared, path: Vec<String>) -> Self {
        Self { doc, path }
    }
}

#[wasm_bindgen]
impl Register {
    /// Writes `value`.
    pub fn set(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Value")] value: JsValue,
    ) -> Result<(), JsValue> {
        let atom = to_atom(&value)?;
        let now = js_sys::Date::now() as u64;
        borrow(&self.doc)?.mutate(&self.path, |v, cx, _, clock| {
            v.lww_write(cx, clock, now, atom)
        });
        Ok(())
    }

    /// The value (the winner among concurrent writes: the same on every
    /// replica), or `undefined` if never written.
    #[wasm_bindgen(unchecked_return_type = "Value | undefined")]
    pub fn get(&self) -> Result<JsValue, JsValue> {
        let d = borrow(&self.doc)?;
        Ok(d.value(&self.path)
            .and_then(|v| v.lww_value())
            .map_or(JsValue::UNDEFINED, from_atom))
    }

    /// Every value written concurrently, the winner first (one value, or
    /// none, when there is no conflict).
    #[wasm_bindgen(unchecked_return_type = "Value[]")]
    pub fn conflicts(&self) -> Result<Array, JsValue> {
        let d = borrow(&self.doc)?;
        let mut all: Vec<_> = d
            .value(&self.path)
            .map(|v| v.lww.values().collect())
            .unwrap_or_default();
        all.sort_by(|a, b| b.cmp(a));
        Ok(all.into_iter().map(|(_, a)| from_atom(a)).collect())
    }
}

/// An enable-wins flag: an enable concurrent with a disable wins.
#[wasm_bindgen]
pub struct Flag {
    doc: Shared,
    path: Vec<String>,
}

impl Flag {
    pub(crate) fn new(doc: Shared, path: Vec<String>) -> Self {
        Self { doc, path }
    }
}

#[wasm_bindgen]
impl Flag {
    /// Turns the flag on.
    pub fn enable(&self) -> Result<(), JsValue> {
        borrow(&self.doc)?.mutate(&self.path, |v, cx, id, _| v.flag_enable(cx, id));
        Ok(())
    }

    /// Turns the flag off (the enables this replica has seen).
    pub fn disable(&self) -> Result<(), JsValue> {
        let mut d = borrow(&self.doc)?;
        if d.value(&self.path).is_some_and(|v| v.flag.is_enabled()) {
            d.mutate(&self.path, |v, _, _, _| v.flag_disable());
        }
        Ok(())
    }

    /// Whether the flag is on.
    pub fn value(&self) -> Result<bool, JsValue> {
        let d = borrow(&self.doc)?;
        Ok(d.value(&self.path).is_some_and(|v| v.flag.is_enabled()))
    }
}

/// A map of named values one level down (observed-remove: a change
/// concurrent with a remove of its key survives).
#[wasm_bindgen]
pub struct DocMap {
    doc: Shared,
    path: Vec<String>,
}

impl DocMap {
    pub(crate) fn new(doc: Shared, path: Vec<String>) -> Self {
        Self { doc, path }
    }
}

#[wasm_bindgen]
impl DocMap {
    /// The counter `key`.
    pub fn counter(&self, key: String) -> Result<Counter, JsValue> {
        Ok(Counter::new(self.doc.clone(), child(&self.path, key)?))
    }

    /// The set `key`.
    #[wasm_bindgen(js_name = set)]
    pub fn set_(&self, key: String) -> Result<DocSet, JsValue> {
        Ok(DocSet::new(self.doc.clone(), child(&self.path, key)?))
    }

    /// The register `key`.
    pub fn register(&self, key: String) -> Result<Register, JsValue> {
        Ok(Register::new(self.doc.clone(), child(&self.path, key)?))
    }

    /// The flag `key`.
    pub fn flag(&self, key: String) -> Result<Flag, JsValue> {
        Ok(Flag::new(self.doc.clone(), child(&self.path, key)?))
    }

    /// The map `key`.
    pub fn map(&self, key: String) -> Result<DocMap, JsValue> {
        let path = child(&self.path, key)?;
        // A map's values sit one level further down.
        check_path(&[path.as_slice(), &[String::new()]].concat())?;
        Ok(DocMap::new(self.doc.clone(), path))
    }

    /// Removes the value `key` (every kind it holds, nested values too).
    pub fn remove(&self, key: String) -> Result<(), JsValue> {
        let path = child(&self.path, key)?;
        borrow(&self.doc)?.remove(&path);
        Ok(())
    }

    /// Whether `key` holds anything.
    pub fn has(&self, key: String) -> Result<bool, JsValue> {
        let path = child(&self.path, key)?;
        Ok(borrow(&self.doc)?.value(&path).is_some())
    }

    /// The keys present, in order.
    #[wasm_bindgen(unchecked_return_type = "string[]")]
    pub fn keys(&self) -> Result<Array, JsValue> {
        let d = borrow(&self.doc)?;
        Ok(d.value(&self.path)
            .and_then(|v| v.map.get())
            .map(|m| strings(m.keys()))
            .unwrap_or_default())
    }
}
