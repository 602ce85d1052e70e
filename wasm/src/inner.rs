//! The document state every handle, text and session shares
//! ([`DocInner`] behind [`Shared`]), and the commit machinery: local edits
//! accumulate and are committed — events fired, sessions woken — by a
//! microtask, or earlier by any call that needs them committed.
//!
//! It imports none of the modules that use it (handles, texts, state,
//! sessions, `Doc`): they all depend on it, not on each other.

use std::cell::{RefCell, RefMut};
use std::collections::{BTreeMap, BTreeSet};
use std::rc::{Rc, Weak};

use js_sys::{Function, Object, Reflect};
use neuroplex_core::crdt::{Causal, DotStore};
use neuroplex_core::document::{DocStore, MAX_PATH_LEN, Value, apply_in, get_at, remove_in};
use neuroplex_core::sync::{Config, Message, Payload, Replica};
use neuroplex_core::{CausalContext, Hlc, ReplicaId};
use wasm_bindgen::prelude::*;

#[cfg(feature = "yrs")]
use neuroplex_core::doc::{ClientSession, PresenceClock, SharedDoc};
#[cfg(not(feature = "yrs"))]
use neuroplex_core::sync::Replica as CrdtReplica;

use crate::value::{error, range_error, strings};

/// The document state every handle shares.
pub(crate) type Shared = Rc<RefCell<DocInner>>;

/// Peer id under which `applyUpdate` feeds state to the sync replica.
const MANUAL_PEER: u64 = u64::MAX;

/// A change listener.
pub(crate) type Listeners = Vec<(u32, Function)>;

/// What a session registered with its document: its protocol state
/// (which the document feeds its updates and changes) and its wake-up.
#[cfg(feature = "yrs")]
pub(crate) struct Outbox {
    /// The connection's protocol state.
    pub(crate) core: ClientSession,
    /// Called after a commit that gave the session something to send.
    pub(crate) wake: Option<Function>,
}

pub(crate) struct DocInner {
    /// The yrs side (open transaction, undo, texts). First, so that an open
    /// transaction is committed before anything else is dropped.
    #[cfg(feature = "yrs")]
    pub(crate) y: crate::yrs_state::YrsState,
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
    pub(crate) presence_clock: PresenceClock,
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
                        let _ =
                            Reflect::set(&ev, &"delta".into(), &crate::yrs_state::delta_js(delta));
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
                    for u in &updates {
                        outbox.core.queue_yrs(u.clone());
                    }
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
                o.core.note_change();
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
        // What the replica returns is for the manual peer (forgotten above)
        // and for storage, which a browser replica has none of.
        let _ = r.map_err(|e| error(&format!("not a valid document state: {e}")))?;
        self.settle_crdt();
        Ok(names)
    }

    #[cfg(feature = "yrs")]
    /// Local CRDT changes not committed yet.
    pub(crate) fn pending_crdt(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Session `peer`'s protocol state with what its calls take: the
    /// document and the presence clock all its sessions share.
    #[cfg(feature = "yrs")]
    pub(crate) fn session_parts(
        &mut self,
        peer: u64,
    ) -> Option<(&mut ClientSession, &mut SharedDoc, &mut PresenceClock)> {
        let o = self.sessions.get_mut(&peer)?;
        Some((&mut o.core, &mut self.shared, &mut self.presence_clock))
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
