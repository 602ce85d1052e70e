//! [`Session`]: the client side of the native protocol (`WS /sync/{room}`)
//! as a sans-IO object. The JavaScript layer opens the socket and calls
//! `start()` when it is open, `receive()` with every binary message,
//! `flush()` when woken, and `stop()` when the socket closed; it sends
//! whatever frames those return.
//!
//! The conversation (docs/PROTOCOL.md) is the one the Rust client in
//! `relay-server/src/client.rs` follows: `Hello`, `YrsSyncRequest` with our
//! state vector, a `core::sync` request (`pull`); the relay's
//! `YrsSyncRequest` is answered with what it lacks; at most one delta
//! interval is in flight until its `Ack`; the relay's position is forgotten
//! at every connection, so each starts from contexts.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;

use js_sys::{Array, Function, Reflect, Uint8Array};
use neuroplex_core::doc::{
    CloseCode, Frame, PROTOCOL_VERSION, PresenceEntry, PresenceMap, SharedDoc,
};
use neuroplex_core::sync::{Bytes, Message, Outgoing};
use wasm_bindgen::prelude::*;

use crate::doc::{Doc, DocInner, DocStore, Outbox, Shared, borrow, commit};

/// Largest frame accepted from the relay.
const MAX_FRAME: usize = 16 << 20;

struct State {
    /// The socket is open (between `start` and `stop`).
    connected: bool,
    /// The relay said hello.
    online: bool,
    writable: bool,
    awaiting_ack: bool,
    yrs_sent: u64,
    yrs_saved: u64,
    last_error: Option<(u16, String)>,
    presence: PresenceMap,
    me: PresenceEntry,
    presence_dirty: bool,
    presence_changes: Vec<(u64, Option<String>)>,
}

/// One connection's protocol state. Frames are `Uint8Array`s, one per
/// WebSocket binary message.
#[wasm_bindgen]
pub struct Session {
    doc: Shared,
    /// This session's peer id in the document's sync replica.
    peer: u64,
    state: Rc<RefCell<State>>,
}

fn frame_error(code: u16, msg: &str) -> JsValue {
    let e = js_sys::Error::new(msg);
    let _ = Reflect::set(&e, &"code".into(), &code.into());
    e.into()
}

fn busy() -> JsValue {
    crate::value::error("the session is busy: it cannot be used from inside this call")
}

impl Session {
    fn state(&self) -> Result<std::cell::RefMut<'_, State>, JsValue> {
        self.state.try_borrow_mut().map_err(|_| busy())
    }

    /// Sync frames from a replica's output; notes a delta in flight.
    fn sync_frames(out: Outgoing<DocStore>, st: &mut State, frames: &mut Vec<Vec<u8>>) {
        for (_, m) in out.messages {
            if matches!(m, Message::Delta { .. }) {
                st.awaiting_ack = true;
            }
            frames.push(Frame::Sync(m).encode());
        }
    }

    /// What there is to send: queued Yjs updates, the next delta interval
    /// (unless one is in flight), presence.
    fn pending_frames(&self, d: &mut DocInner, st: &mut State, frames: &mut Vec<Vec<u8>>) {
        let updates = d
            .sessions
            .get_mut(&self.peer)
            .map(|o| {
                o.dirty = false;
                std::mem::take(&mut o.yrs)
            })
            .unwrap_or_default();
        if !updates.is_empty() {
            let update = if updates.len() == 1 {
                updates.into_iter().next().expect("one")
            } else {
                let parts: Vec<&[u8]> = updates.iter().map(Vec::as_slice).collect();
                match SharedDoc::merge_yrs_updates(&parts) {
                    Ok(u) => u,
                    Err(_) => {
                        // Cannot happen for updates yrs made; send them apart.
                        for u in updates {
                            st.yrs_sent += 1;
                            frames.push(Frame::YrsUpdate { update: Bytes(u) }.encode());
                        }
                        Vec::new()
                    }
                }
            };
            if !update.is_empty() {
                st.yrs_sent += 1;
                frames.push(
                    Frame::YrsUpdate {
                        update: Bytes(update),
                    }
                    .encode(),
                );
            }
        }
        if !st.awaiting_ack {
            let out = d.crdt_mut().push(&[self.peer]);
            Self::sync_frames(out, st, frames);
        }
        if st.presence_dirty {
            st.presence_dirty = false;
            if st.me.clock > 0 {
                frames.push(presence_frame(st));
            }
        }
    }

    fn note_presence(st: &mut State, changed: Vec<PresenceEntry>) {
        for e in changed {
            st.presence_changes.push((e.client, e.state));
        }
    }
}

/// The frame announcing this client's presence.
fn presence_frame(st: &State) -> Vec<u8> {
    Frame::Presence {
        entries: vec![st.me.clone()],
    }
    .encode()
}

fn to_array(frames: Vec<Vec<u8>>) -> Array {
    frames
        .iter()
        .map(|f| JsValue::from(Uint8Array::from(f.as_slice())))
        .collect()
}

#[wasm_bindgen]
impl Session {
    /// A session for `doc`: each connection of a document has its own.
    #[wasm_bindgen(constructor)]
    pub fn new(doc: &Doc) -> Result<Session, JsValue> {
        commit(&doc.inner)?;
        let mut d = borrow(&doc.inner)?;
        d.y.capture_updates()?;
        // Peer ids name connections inside the replica; the relay is a
        // different peer on each of this document's connections.
        let peer = u64::from(d.next_id());
        d.sessions.insert(peer, Outbox::default());
        let client = d.shared.yrs().client_id().get();
        let clock = d.presence_clock;
        Ok(Session {
            doc: doc.inner.clone(),
            peer,
            state: Rc::new(RefCell::new(State {
                connected: false,
                online: false,
                writable: false,
                awaiting_ack: false,
                yrs_sent: 0,
                yrs_saved: 0,
                last_error: None,
                presence: PresenceMap::new(),
                me: PresenceEntry {
                    client,
                    clock,
                    state: None,
                },
                presence_dirty: false,
                presence_changes: Vec::new(),
            })),
        })
    }

    /// Registers the function called when local changes wait to be sent
    /// (call `flush()` then, preferably from a microtask).
    #[wasm_bindgen(js_name = setWake)]
    pub fn set_wake(
        &self,
        #[wasm_bindgen(unchecked_param_type = "() => void")] f: Option<Function>,
    ) -> Result<(), JsValue> {
        let mut d = borrow(&self.doc)?;
        if let Some(o) = d.sessions.get_mut(&self.peer) {
            o.wake = f;
        }
        Ok(())
    }

    /// The socket opened: the frames that start the conversation.
    #[wasm_bindgen(unchecked_return_type = "Uint8Array[]")]
    pub fn start(&self) -> Result<Array, JsValue> {
        commit(&self.doc)?;
        let mut d = borrow(&self.doc)?;
        let mut st = self.state()?;
        d.y.close_txn();
        // Forget the relay's old position: this connection starts from
        // contexts (what we lack, and what it lacks).
        d.crdt_mut().forget(self.peer);
        if let Some(o) = d.sessions.get_mut(&self.peer) {
            // The state vector exchange below covers them.
            o.yrs.clear();
            o.dirty = false;
        }
        st.connected = true;
        st.online = false;
        st.awaiting_ack = false;
        st.yrs_sent = 0;
        st.yrs_saved = 0;
        let mut frames = vec![
            Frame::Hello {
                protocol: PROTOCOL_VERSION,
                replica: d.replica.get(),
                writable: true,
            }
            .encode(),
            Frame::YrsSyncRequest {
                state_vector: Bytes(d.shared.yrs_state_vector()),
            }
            .encode(),
        ];
        let out = d.crdt_mut().pull(&[self.peer]);
        Self::sync_frames(out, &mut st, &mut frames);
        st.presence_dirty = false;
        if st.me.clock > 0 {
            // When the last connection closed, the relay marked this client
            // gone one clock past its last state; a tie goes to the removal.
            st.me.clock = st.me.clock.wrapping_add(2);
            d.presence_clock = d.presence_clock.max(st.me.clock);
        }
        if st.me.state.is_some() {
            frames.push(presence_frame(&st));
        }
        Ok(to_array(frames))
    }

    /// Handles one frame from the relay; returns the frames to send back.
    /// Throws an `Error` with a `code` (a close code) if the frame is bad:
    /// close the socket then.
    #[wasm_bindgen(unchecked_return_type = "Uint8Array[]")]
    pub fn receive(&self, bytes: &[u8]) -> Result<Array, JsValue> {
        let frame = Frame::decode(bytes, MAX_FRAME).map_err(|e| {
            frame_error(
                CloseCode::MALFORMED,
                &format!("undecodable frame from the relay: {e}"),
            )
        })?;
        // Local changes first, so events keep their order.
        commit(&self.doc)?;
        let mut frames = Vec::new();
        let dispatch = {
            let mut d = borrow(&self.doc)?;
            let mut st = self.state()?;
            if !st.connected {
                return Ok(Array::new());
            }
            d.y.close_txn();
            match frame {
                Frame::Hello { writable, .. } => {
                    st.online = true;
                    st.writable = writable;
                    None
                }
                Frame::Sync(m) => {
                    if matches!(m, Message::Ack { .. }) {
                        st.awaiting_ack = false;
                    }
                    let delta = match &m {
                        Message::Delta { payload, .. } => {
                            payload.open::<DocStore>(d.crdt().config()).ok()
                        }
                        _ => None,
                    };
                    let peer = self.peer;
                    let (out, names) =
                        d.remote_crdt(delta.as_ref(), |d| d.crdt_mut().receive(peer, m));
                    let out = out.map_err(|e| {
                        frame_error(CloseCode::MALFORMED, &format!("bad sync message: {e}"))
                    })?;
                    Self::sync_frames(out, &mut st, &mut frames);
                    if !st.awaiting_ack {
                        let out = d.crdt_mut().push(&[peer]);
                        Self::sync_frames(out, &mut st, &mut frames);
                    }
                    let wake = !names.is_empty() && d.sessions.len() > 1;
                    Some(d.events(false, names, wake))
                }
                Frame::YrsSyncRequest { state_vector } => {
                    let diff = d.shared.yrs_diff(&state_vector.0).map_err(|e| {
                        frame_error(CloseCode::MALFORMED, &format!("bad state vector: {e}"))
                    })?;
                    if let Some(o) = d.sessions.get_mut(&self.peer) {
                        // The diff holds everything queued.
                        o.yrs.clear();
                    }
                    st.yrs_sent += 1;
                    frames.push(
                        Frame::YrsUpdate {
                            update: Bytes(diff),
                        }
                        .encode(),
                    );
                    None
                }
                Frame::YrsUpdate { update } => {
                    let changed = d.shared.apply_yrs_update(&update.0).map_err(|e| {
                        frame_error(CloseCode::BAD_UPDATE, &format!("bad Yjs update: {e}"))
                    })?;
                    if changed {
                        for (&peer, o) in d.sessions.iter_mut() {
                            if peer != self.peer {
                                o.yrs.push(update.0.clone());
                            }
                        }
                    }
                    let wake = changed && d.sessions.len() > 1;
                    Some(d.events(false, BTreeSet::new(), wake))
                }
                Frame::YrsSaved { count } => {
                    st.yrs_saved = count;
                    None
                }
                Frame::Presence { entries } => {
                    // Our own entry with a clock none of this document's
                    // sessions used (the relay removed us when an old
                    // connection closed after this one opened): take a clock
                    // past it and say again who we are, as a Yjs client does
                    // on hearing of its own removal. Entries our sessions
                    // made are at or below `presence_clock`, so two sessions
                    // of one document never outbid each other.
                    let me = st.me.client;
                    let newer = entries
                        .iter()
                        .filter(|e| e.client == me && e.clock > d.presence_clock)
                        .map(|e| e.clock)
                        .max();
                    let changed = st.presence.apply(entries);
                    Self::note_presence(&mut st, changed);
                    if let Some(clock) = newer {
                        st.me.clock = clock.wrapping_add(1);
                        d.presence_clock = d.presence_clock.max(st.me.clock);
                        if st.me.state.is_some() {
                            frames.push(presence_frame(&st));
                        }
                    }
                    None
                }
                Frame::Error { code, reason } => {
                    st.last_error = Some((code, reason));
                    None
                }
            }
        };
        if let Some(dispatch) = dispatch {
            dispatch.run_detached();
        }
        Ok(to_array(frames))
    }

    /// What waits to be sent (local changes, presence). Nothing while the
    /// socket is closed: the next `start()` catches up.
    #[wasm_bindgen(unchecked_return_type = "Uint8Array[]")]
    pub fn flush(&self) -> Result<Array, JsValue> {
        commit(&self.doc)?;
        let mut d = borrow(&self.doc)?;
        let mut st = self.state()?;
        if !st.connected {
            return Ok(Array::new());
        }
        d.y.close_txn();
        let mut frames = Vec::new();
        self.pending_frames(&mut d, &mut st, &mut frames);
        Ok(to_array(frames))
    }

    /// The socket closed (or is being closed).
    pub fn stop(&self) -> Result<(), JsValue> {
        let mut d = borrow(&self.doc)?;
        let mut st = self.state()?;
        st.connected = false;
        st.online = false;
        st.awaiting_ack = false;
        d.crdt_mut().forget(self.peer);
        if let Some(o) = d.sessions.get_mut(&self.peer) {
            o.yrs.clear();
        }
        // Whoever was present is unknown until the next connection.
        let gone: Vec<u64> = st.presence.present().iter().map(|e| e.client).collect();
        let removed = st.presence.remove(gone);
        Self::note_presence(&mut st, removed);
        st.presence = PresenceMap::new();
        Ok(())
    }

    /// Sets this client's presence (JSON text), or clears it with
    /// `undefined`. Sent at the next `flush()`.
    #[wasm_bindgen(js_name = setPresence)]
    pub fn set_presence(&self, json: Option<String>) -> Result<(), JsValue> {
        let mut d = borrow(&self.doc)?;
        let mut st = self.state()?;
        st.me.clock = st.me.clock.max(d.presence_clock).wrapping_add(1);
        d.presence_clock = st.me.clock;
        st.me.state = json;
        st.presence_dirty = true;
        Ok(())
    }

    /// Presence changes since the last call: `[client, json | null]`
    /// pairs (null: the client left).
    #[wasm_bindgen(js_name = takePresenceChanges, unchecked_return_type = "Array<[number, string | null]>")]
    pub fn take_presence_changes(&self) -> Result<Array, JsValue> {
        let mut st = self.state()?;
        Ok(std::mem::take(&mut st.presence_changes)
            .into_iter()
            .map(|(client, state)| {
                let pair = Array::new();
                pair.push(&JsValue::from_f64(client as f64));
                pair.push(&state.map_or(JsValue::NULL, |s| JsValue::from_str(&s)));
                JsValue::from(pair)
            })
            .collect())
    }

    /// Everyone present, as last heard: `[client, json]` pairs.
    #[wasm_bindgen(js_name = presenceStates, unchecked_return_type = "Array<[number, string]>")]
    pub fn presence_states(&self) -> Result<Array, JsValue> {
        let st = self.state()?;
        Ok(st
            .presence
            .present()
            .into_iter()
            .map(|e| {
                let pair = Array::new();
                pair.push(&JsValue::from_f64(e.client as f64));
                pair.push(&JsValue::from_str(e.state.as_deref().unwrap_or("null")));
                JsValue::from(pair)
            })
            .collect())
    }

    /// This client's presence id (the document's Yjs client id).
    #[wasm_bindgen(getter, js_name = clientId)]
    pub fn client_id(&self) -> Result<f64, JsValue> {
        Ok(self.state()?.me.client as f64)
    }

    /// This client's presence (JSON text), if set.
    #[wasm_bindgen(getter, js_name = ownPresence)]
    pub fn own_presence(&self) -> Result<Option<String>, JsValue> {
        Ok(self.state()?.me.state.clone())
    }

    /// The relay said hello on this connection.
    #[wasm_bindgen(getter)]
    pub fn online(&self) -> Result<bool, JsValue> {
        Ok(self.state()?.online)
    }

    /// The relay lets this client write.
    #[wasm_bindgen(getter)]
    pub fn writable(&self) -> Result<bool, JsValue> {
        Ok(self.state()?.writable)
    }

    /// Online, nothing queued, no delta in flight, and every Yjs update
    /// sent on this connection reported durable by the relay.
    #[wasm_bindgen(getter)]
    pub fn synced(&self) -> Result<bool, JsValue> {
        let d = borrow(&self.doc)?;
        let st = self.state()?;
        let queued = d
            .sessions
            .get(&self.peer)
            .is_some_and(|o| o.dirty || !o.yrs.is_empty());
        Ok(st.online
            && !queued
            && !st.awaiting_ack
            && !d.pending_crdt()
            && st.yrs_saved >= st.yrs_sent)
    }

    /// The last error the relay reported (an `Error` frame): its code.
    #[wasm_bindgen(getter, js_name = lastErrorCode)]
    pub fn last_error_code(&self) -> Result<Option<u16>, JsValue> {
        Ok(self.state()?.last_error.as_ref().map(|e| e.0))
    }

    /// The last error the relay reported: its reason.
    #[wasm_bindgen(getter, js_name = lastErrorReason)]
    pub fn last_error_reason(&self) -> Result<Option<String>, JsValue> {
        Ok(self.state()?.last_error.as_ref().map(|e| e.1.clone()))
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Ok(mut d) = self.doc.try_borrow_mut() {
            d.sessions.remove(&self.peer);
            d.crdt_mut().forget(self.peer);
        }
    }
}
