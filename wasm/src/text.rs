//! Texts (yrs, UTF-16 indices as in Yjs) and sticky indices, and the
//! `Doc` methods for texts and undo/redo. The open transaction and the
//! undo manager behind them are [`crate::yrs_state`].

use std::rc::Rc;

use js_sys::Function;
use wasm_bindgen::prelude::*;
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{Assoc, GetString, IndexedSequence, Text as _, TextRef};

use crate::doc::Doc;
use crate::inner::{Shared, borrow, commit, unsubscribe};
use crate::value::{error, index as to_index, range_error};

#[wasm_bindgen]
impl Doc {
    /// The text `name` (a Yjs text: indices count UTF-16 code units).
    pub fn text(&self, name: String) -> Result<Text, JsValue> {
        let (id, text) = borrow(&self.inner)?.y.text(&name)?;
        Ok(Text {
            doc: self.inner.clone(),
            id,
            name,
            text,
        })
    }

    /// Undoes this replica's last text change (changes less than 500 ms
    /// apart count as one; see `stopCapturing`). Returns whether anything
    /// was undone. A peer's changes are never undone.
    pub fn undo(&self) -> Result<bool, JsValue> {
        self.undo_redo(true)
    }

    /// Redoes what `undo` undid.
    pub fn redo(&self) -> Result<bool, JsValue> {
        self.undo_redo(false)
    }

    /// Ends the current undo step: the next change starts a new one.
    #[wasm_bindgen(js_name = stopCapturing)]
    pub fn stop_capturing(&self) -> Result<(), JsValue> {
        commit(&self.inner)?;
        if let Some(um) = &mut borrow(&self.inner)?.y.undo {
            um.reset();
        }
        Ok(())
    }

    fn undo_redo(&self, undo: bool) -> Result<bool, JsValue> {
        commit(&self.inner)?;
        let (done, dispatch) = {
            let mut d = borrow(&self.inner)?;
            d.y.close_txn();
            let done = match &mut d.y.undo {
                Some(um) if undo => um.undo_blocking(),
                Some(um) => um.redo_blocking(),
                None => false,
            };
            (done, d.commit_local())
        };
        dispatch.run()?;
        Ok(done)
    }
}

/// A text. Indices and lengths count UTF-16 code units, as JavaScript
/// strings and Yjs do.
#[wasm_bindgen]
pub struct Text {
    doc: Shared,
    /// Names the text in the pending edit.
    id: u32,
    name: String,
    text: TextRef,
}

#[wasm_bindgen]
impl Text {
    /// Inserts `s` at `index` (0 ≤ index ≤ length).
    pub fn insert(&self, index: f64, s: &str) -> Result<(), JsValue> {
        let i = to_index(index, "index")?;
        let mut d = borrow(&self.doc)?;
        d.schedule();
        d.y.insert(self.id, &self.text, i, s)
    }

    /// Deletes `len` code units from `index`.
    pub fn delete(&self, index: f64, len: f64) -> Result<(), JsValue> {
        let i = to_index(index, "index")?;
        let n = to_index(len, "length")?;
        let mut d = borrow(&self.doc)?;
        d.schedule();
        d.y.delete(self.id, &self.text, i, n)
    }

    /// The text's content.
    #[wasm_bindgen(js_name = toString)]
    pub fn to_string_(&self) -> Result<String, JsValue> {
        let mut d = borrow(&self.doc)?;
        d.schedule();
        d.y.flush_pending();
        let text = &self.text;
        d.y.with_txn(|txn| Ok(text.get_string(txn)))
    }

    /// The length in UTF-16 code units.
    #[wasm_bindgen(getter)]
    pub fn length(&self) -> Result<u32, JsValue> {
        let mut d = borrow(&self.doc)?;
        d.schedule();
        d.y.visible_len(self.id, &self.text)
    }

    /// The text's name.
    #[wasm_bindgen(getter)]
    pub fn name(&self) -> String {
        self.name.clone()
    }

    /// Calls `cb({ delta, local })` after every committed change of this
    /// text (local or from a peer). Returns the function that unsubscribes.
    #[wasm_bindgen(unchecked_return_type = "() => void")]
    pub fn observe(
        &self,
        #[wasm_bindgen(unchecked_param_type = "(event: TextEvent) => void")] cb: Function,
    ) -> Result<Function, JsValue> {
        let mut d = borrow(&self.doc)?;
        let id = d.next_id();
        d.text_observers
            .entry(self.name.clone())
            .or_default()
            .push((id, cb));
        d.y.recorder.borrow_mut().wanted.insert(self.name.clone());
        let weak = Rc::downgrade(&self.doc);
        let name = self.name.clone();
        Ok(unsubscribe(move || {
            let Some(doc) = weak.upgrade() else { return };
            let Ok(mut d) = doc.try_borrow_mut() else {
                return;
            };
            let empty = match d.text_observers.get_mut(&name) {
                Some(obs) => {
                    obs.retain(|(i, _)| *i != id);
                    obs.is_empty()
                }
                None => true,
            };
            if empty {
                d.text_observers.remove(&name);
                d.y.recorder.borrow_mut().wanted.remove(&name);
            }
        }))
    }

    /// A position that follows the text through concurrent edits: the
    /// gap before the character now at `index` (with `assoc` < 0, the gap
    /// after the character before it).
    #[wasm_bindgen(js_name = stickyIndex)]
    pub fn sticky_index(&self, index: f64, assoc: Option<i32>) -> Result<StickyIndex, JsValue> {
        let i = to_index(index, "index")?;
        let assoc = if assoc.unwrap_or(0) < 0 {
            Assoc::Before
        } else {
            Assoc::After
        };
        let mut d = borrow(&self.doc)?;
        d.schedule();
        d.y.flush_pending();
        let text = &self.text;
        let inner = d.y.with_txn(|txn| {
            let len = text.len(txn);
            if i > len {
                return Err(range_error(&format!(
                    "index {i} is beyond the end of the text (length {len})"
                )));
            }
            text.sticky_index(txn, i, assoc)
                .ok_or_else(|| range_error(&format!("no position at index {i}")))
        })?;
        Ok(StickyIndex {
            doc: self.doc.clone(),
            inner,
        })
    }

    /// A sticky index from `StickyIndex.toBytes()` (made by any replica).
    #[wasm_bindgen(js_name = stickyIndexFromBytes)]
    pub fn sticky_index_from_bytes(&self, bytes: &[u8]) -> Result<StickyIndex, JsValue> {
        let inner = yrs::StickyIndex::decode_v1(bytes)
            .map_err(|e| error(&format!("not a sticky index: {e}")))?;
        Ok(StickyIndex {
            doc: self.doc.clone(),
            inner,
        })
    }
}

/// A position in a text that survives concurrent edits.
#[wasm_bindgen]
pub struct StickyIndex {
    doc: Shared,
    inner: yrs::StickyIndex,
}

#[wasm_bindgen]
impl StickyIndex {
    /// Today's index, or `undefined` if the position's text is gone.
    pub fn resolve(&self) -> Result<Option<u32>, JsValue> {
        let mut d = borrow(&self.doc)?;
        d.schedule();
        d.y.flush_pending();
        let inner = &self.inner;
        d.y.with_txn(|txn| Ok(inner.get_offset(txn).map(|o| o.index)))
    }

    /// The position as bytes (for presence, say).
    #[wasm_bindgen(js_name = toBytes)]
    pub fn to_bytes(&self) -> Vec<u8> {
        self.inner.encode_v1()
    }
}
