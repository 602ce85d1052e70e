//! Texts (yrs, UTF-16 indices as in Yjs), sticky indices and undo/redo,
//! with one yrs transaction kept open across calls.

#![allow(unsafe_code)] // inside the self_cell! expansion only

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::rc::Rc;
use std::sync::Arc;

use js_sys::{Array, Function, Object, Reflect};
use wasm_bindgen::prelude::*;
use yrs::types::Delta;
use yrs::types::text::TextEvent;
use yrs::undo::{Options as UndoOptions, UndoManager};
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{
    Any, Assoc, GetString, IndexedSequence, Observable, Origin, Out, Text as _, TextRef, Transact,
    TransactionMut, WriteTxn,
};

use crate::doc::{Doc, Shared, borrow, commit, unsubscribe};
use crate::value::{error, index as to_index, range_error};

/// The origin of this document's own transactions (undo tracks them; a
/// peer's updates have none).
const LOCAL: &str = "neuroplex-local";

type OpenTxn<'a> = Option<TransactionMut<'a>>;

self_cell::self_cell!(
    /// A yrs document and the transaction open on it, if any.
    pub(crate) struct TxnCell {
        owner: yrs::Doc,
        #[not_covariant]
        dependent: OpenTxn,
    }
);

/// One recorded text change.
pub(crate) struct TextChange {
    pub(crate) name: String,
    pub(crate) local: bool,
    /// Computed only for texts someone observes.
    pub(crate) delta: Option<Vec<Op>>,
}

/// A step of a text delta.
pub(crate) enum Op {
    Insert(String),
    Delete(u32),
    Retain(u32),
}

/// Filled by yrs callbacks during a commit (while the document is
/// borrowed), read after it.
#[derive(Default)]
pub(crate) struct Recorder {
    changes: Vec<TextChange>,
    /// Texts with observers: their deltas are computed.
    wanted: BTreeSet<String>,
    /// Local updates (v1), once a session listens for them.
    updates: Vec<Vec<u8>>,
}

/// Longest pending insert (UTF-16 code units) before it goes to yrs.
const PENDING_CAP: usize = 4096;

/// A text edit not yet given to yrs. Consecutive edits that touch each
/// other (typing, backspacing, deleting forward) are merged here: yrs finds
/// a position by walking the text from its start, so one insert of a typed
/// run costs what one keystroke would.
enum PendingOp {
    /// Insert `buf` at `pos`.
    Insert { pos: u32, buf: Vec<u16> },
    /// Delete `len` from `pos`.
    Delete { pos: u32, len: u32 },
}

struct Pending {
    text: u32,
    target: TextRef,
    op: PendingOp,
}

pub(crate) struct YrsState {
    cell: TxnCell,
    pending: Option<Pending>,
    undo: Option<UndoManager<()>>,
    texts: BTreeMap<String, (u32, TextRef)>,
    recorder: Rc<RefCell<Recorder>>,
    capturing_updates: bool,
}

struct JsClock;

impl yrs::sync::Clock for JsClock {
    fn now(&self) -> yrs::sync::Timestamp {
        js_sys::Date::now() as u64
    }
}

impl YrsState {
    pub(crate) fn new(doc: yrs::Doc) -> Self {
        Self {
            cell: TxnCell::new(doc, |_| None),
            pending: None,
            undo: None,
            texts: BTreeMap::new(),
            recorder: Rc::default(),
            capturing_updates: false,
        }
    }

    /// The yrs document.
    pub(crate) fn doc(&self) -> &yrs::Doc {
        self.cell.borrow_owner()
    }

    /// Commits the open transaction, if any (pending edits first).
    pub(crate) fn close_txn(&mut self) {
        self.flush_pending();
        self.cell.with_dependent_mut(|_, txn| {
            if let Some(mut t) = txn.take() {
                t.commit();
            }
        });
    }

    /// Runs `f` in the open transaction (opened if needed).
    pub(crate) fn with_txn<R>(
        &mut self,
        f: impl for<'a> FnOnce(&mut TransactionMut<'a>) -> Result<R, JsValue>,
    ) -> Result<R, JsValue> {
        self.cell.with_dependent_mut(|doc, txn| {
            if txn.is_none() {
                *txn = Some(
                    doc.try_transact_mut_with(LOCAL)
                        .map_err(|e| error(&format!("the document is busy: {e}")))?,
                );
            }
            f(txn.as_mut().expect("opened above"))
        })
    }

    /// Gives the pending edit to yrs.
    pub(crate) fn flush_pending(&mut self) {
        let Some(p) = self.pending.take() else { return };
        let r = self.with_txn(|txn| {
            match p.op {
                PendingOp::Insert { pos, buf } => {
                    if !buf.is_empty() {
                        p.target.insert(txn, pos, &String::from_utf16_lossy(&buf));
                    }
                }
                PendingOp::Delete { pos, len } => p.target.remove_range(txn, pos, len),
            }
            Ok(())
        });
        // Only fails if the document is locked, which cannot happen here.
        let _ = r;
    }

    /// The length of text `id` as the caller sees it (pending edit
    /// included).
    fn visible_len(&mut self, id: u32, text: &TextRef) -> Result<u32, JsValue> {
        let len = self.with_txn(|txn| Ok(text.len(txn)))?;
        Ok(match &self.pending {
            Some(p) if p.text == id => match &p.op {
                PendingOp::Insert { buf, .. } => len + buf.len() as u32,
                PendingOp::Delete { len: n, .. } => len - n,
            },
            _ => len,
        })
    }

    fn insert(&mut self, id: u32, text: &TextRef, i: u32, s: &str) -> Result<(), JsValue> {
        let len = self.visible_len(id, text)?;
        if i > len {
            return Err(range_error(&format!(
                "index {i} is beyond the end of the text (length {len})"
            )));
        }
        if s.is_empty() {
            return Ok(());
        }
        if let Some(Pending {
            text: t,
            op: PendingOp::Insert { pos, buf },
            ..
        }) = &mut self.pending
        {
            if *t == id && *pos <= i && (i - *pos) as usize <= buf.len() && buf.len() < PENDING_CAP
            {
                let at = (i - *pos) as usize;
                buf.splice(at..at, s.encode_utf16());
                return Ok(());
            }
        }
        self.flush_pending();
        self.pending = Some(Pending {
            text: id,
            target: text.clone(),
            op: PendingOp::Insert {
                pos: i,
                buf: s.encode_utf16().collect(),
            },
        });
        Ok(())
    }

    fn delete(&mut self, id: u32, text: &TextRef, i: u32, n: u32) -> Result<(), JsValue> {
        let total = self.visible_len(id, text)?;
        if u64::from(i) + u64::from(n) > u64::from(total) {
            return Err(range_error(&format!(
                "cannot delete {n} from index {i}: the text's length is {total}"
            )));
        }
        if n == 0 {
            return Ok(());
        }
        if let Some(p) = &mut self.pending {
            if p.text == id {
                match &mut p.op {
                    PendingOp::Insert { pos, buf }
                        if *pos <= i && (i - *pos + n) as usize <= buf.len() =>
                    {
                        let at = (i - *pos) as usize;
                        buf.drain(at..at + n as usize);
                        return Ok(());
                    }
                    // Backspace: the range ends where the pending one starts.
                    PendingOp::Delete { pos, len } if i + n == *pos => {
                        *pos = i;
                        *len += n;
                        return Ok(());
                    }
                    // Forward delete: same place.
                    PendingOp::Delete { pos, len } if i == *pos => {
                        *len += n;
                        return Ok(());
                    }
                    _ => {}
                }
            }
        }
        self.flush_pending();
        self.pending = Some(Pending {
            text: id,
            target: text.clone(),
            op: PendingOp::Delete { pos: i, len: n },
        });
        Ok(())
    }

    /// Text changes and local updates recorded since the last call.
    pub(crate) fn take_recorded(&mut self) -> (Vec<TextChange>, Vec<Vec<u8>>) {
        let mut r = self.recorder.borrow_mut();
        (
            std::mem::take(&mut r.changes),
            std::mem::take(&mut r.updates),
        )
    }

    /// From now on, local updates are recorded for sessions.
    pub(crate) fn capture_updates(&mut self) -> Result<(), JsValue> {
        if self.capturing_updates {
            return Ok(());
        }
        self.close_txn();
        let rec = self.recorder.clone();
        self.doc()
            .observe_update_v1("neuroplex-sessions", move |txn, ev| {
                // A peer's update (no origin) is forwarded by whoever
                // applied it; local edits, undo and redo have one.
                if txn.origin().is_some() {
                    rec.borrow_mut().updates.push(ev.update.clone());
                }
            })
            .map_err(|e| error(&format!("the document is busy: {e}")))?;
        self.capturing_updates = true;
        Ok(())
    }

    fn text(&mut self, name: &str) -> Result<(u32, TextRef), JsValue> {
        if let Some(t) = self.texts.get(name) {
            return Ok(t.clone());
        }
        // Observing needs the document unlocked.
        self.close_txn();
        let doc = self.doc().clone();
        let text = {
            let mut txn = doc
                .try_transact_mut_with(LOCAL)
                .map_err(|e| error(&format!("the document is busy: {e}")))?;
            txn.get_or_insert_text(name)
        };
        let rec = self.recorder.clone();
        let key = name.to_string();
        text.observe("neuroplex", move |txn, ev: &TextEvent| {
            let mut r = rec.borrow_mut();
            let delta = r.wanted.contains(&key).then(|| delta_ops(ev.delta(txn)));
            r.changes.push(TextChange {
                name: key.clone(),
                local: txn.origin().is_some(),
                delta,
            });
        });
        match &mut self.undo {
            Some(um) => um.expand_scope(&doc, &text),
            None => {
                let mut um = UndoManager::with_options(UndoOptions {
                    capture_timeout_millis: 500,
                    tracked_origins: HashSet::new(),
                    capture_transaction: None,
                    timestamp: Arc::new(JsClock),
                    init_undo_stack: Vec::new(),
                    init_redo_stack: Vec::new(),
                });
                um.expand_scope(&doc, &text);
                // Tracking our origin by name leaves out transactions with
                // none: a peer's updates are never undone here.
                um.include_origin(Origin::from(LOCAL));
                self.undo = Some(um);
            }
        }
        let id = self.texts.len() as u32;
        self.texts.insert(name.to_string(), (id, text.clone()));
        Ok((id, text))
    }
}

fn delta_ops(delta: &[Delta]) -> Vec<Op> {
    delta
        .iter()
        .map(|d| match d {
            Delta::Inserted(Out::Any(Any::String(s)), _) => Op::Insert(s.to_string()),
            // An embed (from a Yjs peer): one position, shown as U+FFFC.
            Delta::Inserted(_, _) => Op::Insert("\u{fffc}".to_string()),
            Delta::Deleted(n) => Op::Delete(*n),
            Delta::Retain(n, _) => Op::Retain(*n),
        })
        .collect()
}

/// A delta as Yjs shows it: `[{insert}, {delete}, {retain}]`.
pub(crate) fn delta_js(ops: &[Op]) -> JsValue {
    let arr = Array::new();
    for op in ops {
        let o = Object::new();
        let (k, v): (&str, JsValue) = match op {
            Op::Insert(s) => ("insert", s.as_str().into()),
            Op::Delete(n) => ("delete", (*n).into()),
            Op::Retain(n) => ("retain", (*n).into()),
        };
        let _ = Reflect::set(&o, &k.into(), &v);
        arr.push(&o);
    }
    arr.into()
}

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
