//! [`Doc`]: one replica of a document, and the commit machinery every
//! handle shares.

use std::cell::{RefCell, RefMut};
use std::collections::{BTreeMap, BTreeSet};
use std::rc::{Rc, Weak};

use js_sys::{Array, Function, Object, Reflect};
use neuroplex_core::crdt::{Causal, DotStore};
use neuroplex_core::sync::{
    Config, MAX_PATH_LEN, Message, Payload, Replica, Value, apply_in, get_at, remove_in,
};
use neuroplex_core::{CausalContext, Hlc, ReplicaId};
use wasm_bindgen::prelude::*;

#[cfg(feature = "yrs")]
use neuroplex_core::doc::SharedDoc;
#[cfg(not(feature = "yrs"))]
use neuroplex_core::sync::Replica as CrdtReplica;

use crate::handles::{Counter, DocMap, DocSet, Flag, Register};
use crate::random;
use crate::value::{error, range_error, strings, type_error};

/// The CRDT store of a document.
pub(crate) type DocStore = neuroplex_core::crdt::ORMap<String, Value>;

/// The document state every handle shares.
pub(crate) type Shared = Rc<RefCell<DocInner>>;

/// Peer id under which `applyUpdate` feeds state to the sync replica.
const MANUAL_PEER: u64 = u64::MAX;

/// A change listener.
pub(crate) type Listeners = Vec<(u32, Function)>;

/// What a session registered with its document.
#[cfg(feature = "yrs")]
#[derive(Default)]
pub(crate) struct Outbox {
    /// Yjs updates (v1) to send.
    pub(crate) yrs: Vec<Vec<u8>>,
    /// Called after a commit that gave the session something to send.
    pub(crate) wake: Option<Function>,
    /// Something changed since the session last flushed.
    pub(crate) dirty: bool,
}

pub(crate) struct DocInner {
    /// The yrs side (open transaction, undo, texts). First, so that an open
    /// transaction is committed before anything else is dropped.
    #[cfg(feature = "yrs")]
    pub(crate) y: crate::text::YrsState,
    #[cfg(feature = "yrs")]
    pub(crate) shared: SharedDoc,
    #[cfg(not(feature = "yrs"))]
    pub(crate) crdt: CrdtReplica<DocStore>,
    pub(crate) replica: ReplicaId,
    pub(crate) replica_name: String,
    pub(crate) clock: Hlc,
    /// Top-level names of CRDT values changed locally since the last commit.
    pub(crate) pending: BTreeSet<String>,
    /// A commit is queued for the next microtask.
    pub(crate) scheduled: bool,
    /// `transact` calls under way (the outermost one commits).
    pub(crate) transact_depth: u32,
    pub(crate) listeners: Listeners,
    #[cfg(feature = "yrs")]
    pub(crate) text_observers: BTreeMap<String, Listeners>,
    pub(crate) next_id: u32,
    #[cfg(feature = "yrs")]
    pub(crate) sessions: BTreeMap<u64, Outbox>,
    /// The highest presence clock any session of this document used: a new
    /// session (a new connection) must go past it, or the relay, which
    /// remembers the old connection's removal, would ignore it.
    #[cfg(feature = "yrs")]
    pub(crate) presence_clock: u32,
    pub(crate) weak: Weak<RefCell<DocInner>>,
}

/// Borrows the document, or throws if a call is already using it (a
/// callback that re-entered the document from inside a value conversion).
pub(crate) fn borrow(doc: &Shared) -> Result<RefMut<'_, DocInner>, JsValue> {
    doc.try_borrow_mut()
        .map_err(|_| error("the document is busy: it cannot be used from inside this call"))
}

/// Callbacks to run once the document is no longer borrowed.
#[derive(Default)]
pub(crate) struct Dispatch {
    calls: Vec<(Function, JsValue)>,
    wakes: Vec<Function>,
}

impl Dispatch {
    /// Runs the callbacks: change listeners first, then session wake-ups.
    /// The first exception is returned after all have run.
    pub(crate) fn run(self) -> Result<(), JsValue> {
        let mut first = None;
        for (f, arg) in self.calls {
            if let Err(e) = f.call1(&JsValue::UNDEFINED, &arg) {
                first.get_or_insert(e);
            }
        }
        for f in self.wakes {
            if let Err(e) = f.call0(&JsValue::UNDEFINED) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Runs the callbacks; an exception becomes an unhandled rejection
    /// (there is no caller to throw to).
    pub(crate) fn run_detached(self) {
        if let Err(e) = self.run() {
            let _ = js_sys::Promise::reject(&e);
        }
    }
}

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = queueMicrotask)]
    fn queue_microtask(f: &Function);
}

thread_local! {
    /// Documents with a commit queued for the next microtask.
    static QUEUE: RefCell<Vec<Weak<RefCell<DocInner>>>> = const { RefCell::new(Vec::new()) };
    /// The one microtask callback (never dropped, so a queued call always
    /// finds it, even after the document was freed).
    static FLUSH: Closure<dyn FnMut()> = Closure::new(run_queue);
}

fn run_queue() {
    let docs = QUEUE.with(|q| std::mem::take(&mut *q.borrow_mut()));
    for weak in docs {
        let Some(doc) = weak.upgrade() else { continue };
        let dispatch = match doc.try_borrow_mut() {
            Ok(mut d) => {
                d.scheduled = false;
                d.commit_local()
            }
            Err(_) => continue,
        };
        dispatch.run_detached();
    }
}

/// Commits what is pending and runs the resulting callbacks.
pub(crate) fn commit(doc: &Shared) -> Result<(), JsValue> {
    let dispatch = borrow(doc)?.commit_local();
    dispatch.run()
}

impl DocInner {
    /// Queues a commit for the next microtask (once).
    pub(crate) fn schedule(&mut self) {
        if self.scheduled {
            return;
        }
        self.scheduled = true;
        let first = QUEUE.with(|q| {
            let mut q = q.borrow_mut();
            q.push(self.weak.clone());
            q.len() == 1
        });
        if first {
            FLUSH.with(|f| queue_microtask(f.as_ref().unchecked_ref()));
        }
    }

    #[cfg(feature = "yrs")]
    pub(crate) fn crdt(&self) -> &Replica<DocStore> {
        self.shared.crdt()
    }

    #[cfg(feature = "yrs")]
    pub(crate) fn crdt_mut(&mut self) -> &mut Replica<DocStore> {
        self.shared.crdt_mut()
    }

    #[cfg(not(feature = "yrs"))]
    pub(crate) fn crdt(&self) -> &Replica<DocStore> {
        &self.crdt
    }

    #[cfg(not(feature = "yrs"))]
    pub(crate) fn crdt_mut(&mut self) -> &mut Replica<DocStore> {
        &mut self.crdt
    }

    /// The value at `path`, if any.
    pub(crate) fn value(&self, path: &[String]) -> Option<&Value> {
        get_at(self.crdt().state(), path)
    }

    /// Applies a local change to the value at `path`.
    pub(crate) fn mutate(
        &mut self,
        path: &[String],
        f: impl FnOnce(&mut Value, &mut CausalContext, ReplicaId, &mut Hlc) -> Causal<Value>,
    ) {
        let id = self.replica;
        let mut clock = std::mem::replace(&mut self.clock, Hlc::new(id));
        self.crdt_mut()
            .mutate(|map, cx| apply_in(map, cx, path, |v, cx| f(v, cx, id, &mut clock)));
        self.clock = clock;
        self.touched(&path[0]);
    }

    /// Removes the value at `path`.
    pub(crate) fn remove(&mut self, path: &[String]) {
        if self.value(path).is_none() {
            return;
        }
        self.crdt_mut().mutate(|map, cx| remove_in(map, cx, path));
        self.touched(&path[0]);
    }

    fn touched(&mut self, name: &str) {
        if !self.pending.contains(name) {
            self.pending.insert(name.to_string());
        }
        self.schedule();
    }

    /// Commits local changes: closes the open yrs transaction, moves the
    /// CRDT batch out of the way, and returns the events to fire.
    pub(crate) fn commit_local(&mut self) -> Dispatch {
        #[cfg(feature = "yrs")]
        self.y.close_txn();
        let names = std::mem::take(&mut self.pending);
        if !names.is_empty() {
            self.settle_crdt();
        }
        let wake = !names.is_empty();
        self.events(true, names, wake)
    }

    /// Moves the batch of local CRDT changes into the replica's delta
    /// buffer and drops what it kept for persistence (a browser replica has
    /// no storage), so that neither grows while no session sends them.
    pub(crate) fn settle_crdt(&mut self) {
        let _ = self.crdt_mut().push(&[]);
    }

    /// The callbacks for what changed: text observers, change listeners
    /// and, if `wake` or local updates wait to be sent, the sessions'
    /// wake-ups.
    pub(crate) fn events(&mut self, local: bool, names: BTreeSet<String>, wake: bool) -> Dispatch {
        let mut dispatch = Dispatch::default();
        #[allow(unused_mut)]
        let mut texts: BTreeSet<String> = BTreeSet::new();
        #[allow(unused_mut)]
        let mut outgoing = wake;
        #[cfg(feature = "yrs")]
        {
            let (changes, updates) = self.y.take_recorded();
            for c in changes {
                if let Some(obs) = self.text_observers.get(&c.name) {
                    if let Some(delta) = &c.delta {
                        let ev = Object::new();
                        let _ = Reflect::set(&ev, &"delta".into(), &crate::text::delta_js(delta));
                        let _ = Reflect::set(&ev, &"local".into(), &c.local.into());
                        for (_, f) in obs {
                            dispatch.calls.push((f.clone(), ev.clone().into()));
                        }
                    }
                }
                texts.insert(c.name);
            }
            if !updates.is_empty() {
                outgoing = true;
                for outbox in self.sessions.values_mut() {
                    outbox.yrs.extend(updates.iter().cloned());
                }
            }
        }
        if !names.is_empty() || !texts.is_empty() {
            let ev = Object::new();
            let _ = Reflect::set(&ev, &"local".into(), &local.into());
            let _ = Reflect::set(&ev, &"names".into(), &strings(&names));
            let _ = Reflect::set(&ev, &"texts".into(), &strings(&texts));
            let ev: JsValue = ev.into();
            for (_, f) in &self.listeners {
                dispatch.calls.push((f.clone(), ev.clone()));
            }
        }
        #[cfg(feature = "yrs")]
        if outgoing {
            for o in self.sessions.values_mut() {
                o.dirty = true;
            }
            dispatch
                .wakes
                .extend(self.sessions.values().filter_map(|o| o.wake.clone()));
        }
        let _ = outgoing;
        dispatch
    }

    /// Joins a CRDT delta that came from elsewhere (a peer through
    /// `from`, already decoded), returning the top-level names whose value
    /// changed. `join` does the joining.
    pub(crate) fn remote_crdt<R>(
        &mut self,
        delta: Option<&Causal<DocStore>>,
        join: impl FnOnce(&mut Self) -> R,
    ) -> (R, BTreeSet<String>) {
        let Some(delta) = delta else {
            return (join(self), BTreeSet::new());
        };
        // Candidates: names the delta holds, and names holding a dot the
        // delta's context covers (overwritten or removed).
        let state = self.crdt().state();
        let mut names: BTreeSet<String> = delta.store().keys().cloned().collect();
        for (k, v) in state.store().iter() {
            if names.contains(k) {
                continue;
            }
            let mut hit = false;
            v.for_each_dot(&mut |d| hit |= delta.context().contains(d));
            if hit {
                names.insert(k.clone());
            }
        }
        let before: BTreeMap<String, Option<Value>> = names
            .iter()
            .map(|k| (k.clone(), state.store().get(k).cloned()))
            .collect();
        let r = join(self);
        let after = self.crdt().state().store();
        let changed = before
            .into_iter()
            .filter(|(k, v)| after.get(k) != v.as_ref())
            .map(|(k, _)| k)
            .collect();
        (r, changed)
    }

    /// Joins a whole CRDT state (from `applyUpdate`).
    pub(crate) fn join_state(
        &mut self,
        state: Causal<DocStore>,
    ) -> Result<BTreeSet<String>, JsValue> {
        let config = Config {
            max_message_bytes: usize::MAX,
            ..*self.crdt().config()
        };
        let session = self.crdt().session();
        let payload = Payload::seal(&state, &config);
        let msg = Message::Delta {
            session: 0,
            from: 0,
            to: 0,
            answer: Some(session),
            payload,
        };
        let (r, names) = self.remote_crdt(Some(&state), |d| {
            let r = d.crdt_mut().receive(MANUAL_PEER, msg);
            d.crdt_mut().forget(MANUAL_PEER);
            r
        });
        r.map_err(|e| error(&format!("not a valid document state: {e}")))?;
        self.settle_crdt();
        Ok(names)
    }

    #[cfg(feature = "yrs")]
    /// Local CRDT changes not committed yet.
    pub(crate) fn pending_crdt(&self) -> bool {
        !self.pending.is_empty()
    }

    pub(crate) fn next_id(&mut self) -> u32 {
        self.next_id = self.next_id.wrapping_add(1);
        self.next_id
    }
}

/// Checks a value path: names nest at most [`MAX_PATH_LEN`] deep.
pub(crate) fn check_path(path: &[String]) -> Result<(), JsValue> {
    if path.len() > MAX_PATH_LEN {
        return Err(range_error(&format!(
            "maps nest at most {} levels (a value's path has at most {MAX_PATH_LEN} names)",
            MAX_PATH_LEN - 1
        )));
    }
    Ok(())
}

/// One replica of a document: CRDT values by name (counters, sets,
/// registers, flags, nested maps) and, in the full build, texts.
#[wasm_bindgen]
pub struct Doc {
    pub(crate) inner: Shared,
}

#[wasm_bindgen]
impl Doc {
    /// A new, empty document. `options.replica` names this replica (random
    /// when omitted); two live documents must never share one.
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(unchecked_param_type = "DocOptions")] options: Option<Object>,
    ) -> Result<Doc, JsValue> {
        let mut replica_name = None;
        if let Some(o) = &options {
            let r = Reflect::get(o, &"replica".into())?;
            if !r.is_undefined() {
                match r.as_string() {
                    Some(s) if !s.is_empty() => replica_name = Some(s),
                    _ => return Err(type_error("options.replica must be a non-empty string")),
                }
            }
        }
        let (replica, replica_name) = match replica_name {
            Some(name) => {
                let id = match name.parse::<u64>() {
                    Ok(n) if n > 0 => n,
                    _ => random::hash_name(&name),
                };
                (ReplicaId::new(id), name)
            }
            None => {
                let id = random::u64()?.max(1);
                (ReplicaId::new(id), id.to_string())
            }
        };
        let session = random::u64()?;
        let config = Config::default();
        #[cfg(feature = "yrs")]
        let shared = {
            let mut opts = yrs::Options::with_client_id(yrs::ClientID::new(random::u53()?));
            opts.offset_kind = yrs::OffsetKind::Utf16;
            SharedDoc::with_yrs_options(replica, session, config, opts)
        };
        let inner = Rc::new_cyclic(|weak| {
            RefCell::new(DocInner {
                #[cfg(feature = "yrs")]
                y: crate::text::YrsState::new(shared.yrs().clone()),
                #[cfg(feature = "yrs")]
                shared,
                #[cfg(not(feature = "yrs"))]
                crdt: CrdtReplica::new(replica, session, config),
                replica,
                replica_name,
                clock: Hlc::new(replica),
                pending: BTreeSet::new(),
                scheduled: false,
                transact_depth: 0,
                listeners: Vec::new(),
                #[cfg(feature = "yrs")]
                text_observers: BTreeMap::new(),
                next_id: 0,
                #[cfg(feature = "yrs")]
                sessions: BTreeMap::new(),
                #[cfg(feature = "yrs")]
                presence_clock: 0,
                weak: weak.clone(),
            })
        });
        Ok(Doc { inner })
    }

    /// This replica's name (`options.replica`, or the random id).
    #[wasm_bindgen(getter)]
    pub fn replica(&self) -> Result<String, JsValue> {
        Ok(borrow(&self.inner)?.replica_name.clone())
    }

    /// The counter `name`.
    pub fn counter(&self, name: String) -> Counter {
        Counter::new(self.inner.clone(), vec![name])
    }

    /// The add-wins set `name`.
    #[wasm_bindgen(js_name = set)]
    pub fn set_(&self, name: String) -> DocSet {
        DocSet::new(self.inner.clone(), vec![name])
    }

    /// The register `name`: last writer wins (by hybrid logical clock),
    /// concurrent values stay visible through `conflicts()`.
    pub fn register(&self, name: String) -> Register {
        Register::new(self.inner.clone(), vec![name])
    }

    /// The enable-wins flag `name`.
    pub fn flag(&self, name: String) -> Flag {
        Flag::new(self.inner.clone(), vec![name])
    }

    /// The map `name`: named values one level down.
    pub fn map(&self, name: String) -> DocMap {
        DocMap::new(self.inner.clone(), vec![name])
    }

    /// Removes the value `name` (every kind it holds, nested values too).
    pub fn remove(&self, name: String) -> Result<(), JsValue> {
        borrow(&self.inner)?.remove(&[name]);
        Ok(())
    }

    /// Names of the CRDT values present, in order.
    #[wasm_bindgen(unchecked_return_type = "string[]")]
    pub fn keys(&self) -> Result<Array, JsValue> {
        let d = borrow(&self.inner)?;
        Ok(strings(d.crdt().state().store().keys()))
    }

    /// Runs `fn` and commits its changes as one (one change event; nested
    /// calls commit with the outermost). If `fn` throws, what it changed
    /// stays and is committed, and the exception is rethrown.
    pub fn transact(
        &self,
        #[wasm_bindgen(unchecked_param_type = "() => any")] f: &Function,
    ) -> Result<JsValue, JsValue> {
        borrow(&self.inner)?.transact_depth += 1;
        let r = f.call0(&JsValue::UNDEFINED);
        let outermost = {
            let mut d = borrow(&self.inner)?;
            d.transact_depth -= 1;
            d.transact_depth == 0
        };
        if outermost {
            commit(&self.inner)?;
        }
        r
    }

    /// Commits pending changes now (they are committed at the latest in
    /// the next microtask anyway).
    pub fn commit(&self) -> Result<(), JsValue> {
        commit(&self.inner)
    }

    /// Subscribes to `'change'`: `cb(event)` after every commit that
    /// changed something. Returns the function that unsubscribes.
    #[wasm_bindgen(unchecked_return_type = "() => void")]
    pub fn on(
        &self,
        #[wasm_bindgen(unchecked_param_type = "'change'")] event: &str,
        #[wasm_bindgen(unchecked_param_type = "(event: ChangeEvent) => void")] cb: Function,
    ) -> Result<Function, JsValue> {
        if event != "change" {
            return Err(type_error(&format!(
                "unknown event \"{event}\": a document emits \"change\""
            )));
        }
        let mut d = borrow(&self.inner)?;
        let id = d.next_id();
        d.listeners.push((id, cb));
        let weak = Rc::downgrade(&self.inner);
        Ok(unsubscribe(move || {
            if let Some(doc) = weak.upgrade() {
                if let Ok(mut d) = doc.try_borrow_mut() {
                    d.listeners.retain(|(i, _)| *i != id);
                }
            }
        }))
    }

    /// The whole state (CRDT values and texts), for `applyUpdate` on
    /// another document or for storage.
    #[wasm_bindgen(js_name = encodeState)]
    pub fn encode_state(&self) -> Result<Vec<u8>, JsValue> {
        commit(&self.inner)?;
        let mut d = borrow(&self.inner)?;
        crate::state::encode(&mut d)
    }

    /// Merges a state made by `encodeState` (of any replica). Bytes that
    /// are not one throw an `Error` and leave the document as it was.
    #[wasm_bindgen(js_name = applyUpdate)]
    pub fn apply_update(&self, bytes: &[u8]) -> Result<(), JsValue> {
        commit(&self.inner)?;
        let dispatch = {
            let mut d = borrow(&self.inner)?;
            crate::state::apply(&mut d, bytes)?
        };
        dispatch.run()
    }
}

/// A JS function that runs `f` the first time it is called (later calls
/// do nothing).
pub(crate) fn unsubscribe(f: impl FnOnce() + 'static) -> Function {
    let mut f = Some(f);
    Closure::<dyn FnMut()>::new(move || {
        if let Some(f) = f.take() {
            f();
        }
    })
    .into_js_value()
    .unchecked_into()
}
