//! The yrs side of a document ([`YrsState`]): one yrs transaction kept
//! open across calls beside its `Doc` (self_cell), a one-edit pending
//! buffer that merges touching edits, undo/redo, and the recorder yrs
//! callbacks fill. The `Text` and `StickyIndex` handles are in
//! [`crate::text`].

#![allow(unsafe_code)] // inside the self_cell! expansion only

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::rc::Rc;
use std::sync::Arc;

use js_sys::{Array, Object, Reflect};
use wasm_bindgen::prelude::*;
use yrs::types::Delta;
use yrs::types::text::TextEvent;
use yrs::undo::{Options as UndoOptions, UndoManager};
use yrs::{Any, Observable, Origin, Out, Text as _, TextRef, Transact, TransactionMut, WriteTxn};

use crate::value::{error, range_error};

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
    pub(crate) wanted: BTreeSet<String>,
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
    pub(crate) undo: Option<UndoManager<()>>,
    texts: BTreeMap<String, (u32, TextRef)>,
    pub(crate) recorder: Rc<RefCell<Recorder>>,
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
    pub(crate) fn visible_len(&mut self, id: u32, text: &TextRef) -> Result<u32, JsValue> {
        let len = self.with_txn(|txn| Ok(text.len(txn)))?;
        Ok(match &self.pending {
            Some(p) if p.text == id => match &p.op {
                PendingOp::Insert { buf, .. } => len + buf.len() as u32,
                PendingOp::Delete { len: n, .. } => len - n,
            },
            _ => len,
        })
    }

    pub(crate) fn insert(
        &mut self,
        id: u32,
        text: &TextRef,
        i: u32,
        s: &str,
    ) -> Result<(), JsValue> {
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

    pub(crate) fn delete(
        &mut self,
        id: u32,
        text: &TextRef,
        i: u32,
        n: u32,
    ) -> Result<(), JsValue> {
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

    pub(crate) fn text(&mut self, name: &str) -> Result<(u32, TextRef), JsValue> {
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
