//! [`Session`]: the JavaScript face of `core::doc::ClientSession`, the
//! native protocol's client (`WS /sync/{room}`) for one connection. The
//! JavaScript layer opens the socket and calls `start()` when it is open,
//! `receive()` with every binary message, `flush()` when woken, and
//! `stop()` when the socket closed; it sends whatever frames those return.
//!
//! Every protocol rule is the core session's (shared with the relay's Rust
//! client). What is here is what only a document of this package has:
//! committing local edits before a frame, change events and text
//! observers around a frame, forwarding a peer's Yjs update to the
//! document's other sessions, the wake-up callback, and `Uint8Array`s.

use std::cell::RefCell;

use js_sys::{Array, Function, Reflect, Uint8Array};
use neuroplex_core::doc::{ClientSession, Frame, SessionError, SessionEvent, SessionOutput};
use neuroplex_core::document::DocStore;
use neuroplex_core::sync::Message;
use wasm_bindgen::prelude::*;

use crate::doc::Doc;
use crate::inner::{DocInner, Outbox, Shared, borrow, commit};

/// One connection's protocol state. Frames are `Uint8Array`s, one per
/// WebSocket binary message.
#[wasm_bindgen]
pub struct Session {
    doc: Shared,
    /// This session's peer id in the document's sync replica (the relay is
    /// a different peer on each of a document's connections).
    peer: u64,
    /// The document's Yjs client id, which names its presence.
    client: u64,
    /// Presence changes not yet taken by `takePresenceChanges`.
    presence_changes: RefCell<Vec<(u64, Option<String>)>>,
}

fn frame_error(e: SessionError) -> JsValue {
    let err = js_sys::Error::new(&e.reason);
    let _ = Reflect::set(&err, &"code".into(), &e.code.into());
    err.into()
}

fn gone() -> JsValue {
    crate::value::error("the session was removed from its document")
}

fn to_array(frames: Vec<Vec<u8>>) -> Array {
    frames
        .iter()
        .map(|f| JsValue::from(Uint8Array::from(f.as_slice())))
        .collect()
}

impl Session {
    /// Runs `f` on this session's protocol state.
    fn with<R>(&self, f: impl FnOnce(&ClientSession) -> R) -> Result<R, JsValue> {
        let d = borrow(&self.doc)?;
        let o = d.sessions.get(&self.peer).ok_or_else(gone)?;
        Ok(f(&o.core))
    }

    /// Keeps the output's presence changes; returns its frames.
    fn take(&self, out: SessionOutput) -> Vec<Vec<u8>> {
        let mut changes = self.presence_changes.borrow_mut();
        for e in out.events {
            if let SessionEvent::Presence { client, state } = e {
                changes.push((client, state));
            }
        }
        out.frames
    }
}

#[wasm_bindgen]
impl Session {
    /// A session for `doc`: each connection of a document has its own.
    #[wasm_bindgen(constructor)]
    pub fn new(doc: &Doc) -> Result<Session, JsValue> {
        commit(&doc.inner)?;
        let mut d = borrow(&doc.inner)?;
        d.y.capture_updates()?;
        let peer = u64::from(d.next_id());
        let core = ClientSession::new(&d.shared, peer, &d.presence_clock);
        let client = core.own_presence().client;
        d.sessions.insert(peer, Outbox { core, wake: None });
        Ok(Session {
            doc: doc.inner.clone(),
            peer,
            client,
            presence_changes: RefCell::new(Vec::new()),
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
        d.y.close_txn();
        let (s, doc, clock) = d.session_parts(self.peer).ok_or_else(gone)?;
        let out = s.start(doc, clock);
        Ok(to_array(self.take(out)))
    }

    /// Handles one frame from the relay; returns the frames to send back.
    /// Throws an `Error` with a `code` (a close code) if the frame is bad:
    /// close the socket then.
    #[wasm_bindgen(unchecked_return_type = "Uint8Array[]")]
    pub fn receive(&self, bytes: &[u8]) -> Result<Array, JsValue> {
        let frame = {
            let d = borrow(&self.doc)?;
            let o = d.sessions.get(&self.peer).ok_or_else(gone)?;
            o.core.decode(&d.shared, bytes).map_err(frame_error)?
        };
        // Local changes first, so events keep their order.
        commit(&self.doc)?;
        let (frames, dispatch) = {
            let mut d = borrow(&self.doc)?;
            if !d
                .sessions
                .get(&self.peer)
                .is_some_and(|o| o.core.connected())
            {
                return Ok(Array::new());
            }
            d.y.close_txn();
            // The names a delta changes are computed around the join.
            let delta = match &frame {
                Frame::Sync(Message::Delta { payload, .. }) => {
                    payload.open::<DocStore>(d.crdt().config()).ok()
                }
                _ => None,
            };
            let peer = self.peer;
            let (out, names) = d.remote_crdt(delta.as_ref(), |d| {
                let (s, doc, clock) = d.session_parts(peer).ok_or_else(gone)?;
                s.receive_frame(doc, clock, frame).map_err(frame_error)
            });
            let out = out?;
            let forwarded = forward_yrs(&mut d, peer, &out.events);
            let wake = (forwarded || !names.is_empty()) && d.sessions.len() > 1;
            let dispatch = d.events(false, names, wake);
            (self.take(out), dispatch)
        };
        dispatch.run_detached();
        Ok(to_array(frames))
    }

    /// What waits to be sent (local changes, presence). Nothing while the
    /// socket is closed: the next `start()` catches up.
    #[wasm_bindgen(unchecked_return_type = "Uint8Array[]")]
    pub fn flush(&self) -> Result<Array, JsValue> {
        commit(&self.doc)?;
        let mut d = borrow(&self.doc)?;
        d.y.close_txn();
        let (s, doc, _) = d.session_parts(self.peer).ok_or_else(gone)?;
        let out = s.flush(doc);
        Ok(to_array(self.take(out)))
    }

    /// The socket closed (or is being closed).
    pub fn stop(&self) -> Result<(), JsValue> {
        let mut d = borrow(&self.doc)?;
        let (s, doc, _) = d.session_parts(self.peer).ok_or_else(gone)?;
        let out = s.stop(doc);
        let _ = self.take(out);
        Ok(())
    }

    /// Sets this client's presence (JSON text), or clears it with
    /// `undefined`. Sent at the next `flush()`.
    #[wasm_bindgen(js_name = setPresence)]
    pub fn set_presence(&self, json: Option<String>) -> Result<(), JsValue> {
        let mut d = borrow(&self.doc)?;
        let (s, _, clock) = d.session_parts(self.peer).ok_or_else(gone)?;
        s.set_presence(clock, json);
        Ok(())
    }

    /// Presence changes since the last call: `[client, json | null]`
    /// pairs (null: the client left).
    #[wasm_bindgen(js_name = takePresenceChanges, unchecked_return_type = "Array<[number, string | null]>")]
    pub fn take_presence_changes(&self) -> Result<Array, JsValue> {
        let changes = std::mem::take(&mut *self.presence_changes.borrow_mut());
        Ok(changes
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
        self.with(|s| {
            s.presence()
                .present()
                .into_iter()
                .map(|e| {
                    let pair = Array::new();
                    pair.push(&JsValue::from_f64(e.client as f64));
                    pair.push(&JsValue::from_str(e.state.as_deref().unwrap_or("null")));
                    JsValue::from(pair)
                })
                .collect()
        })
    }

    /// This client's presence id (the document's Yjs client id).
    #[wasm_bindgen(getter, js_name = clientId)]
    pub fn client_id(&self) -> Result<f64, JsValue> {
        Ok(self.client as f64)
    }

    /// This client's presence (JSON text), if set.
    #[wasm_bindgen(getter, js_name = ownPresence)]
    pub fn own_presence(&self) -> Result<Option<String>, JsValue> {
        self.with(|s| s.own_presence().state.clone())
    }

    /// The relay said hello on this connection.
    #[wasm_bindgen(getter)]
    pub fn online(&self) -> Result<bool, JsValue> {
        self.with(ClientSession::online)
    }

    /// The relay lets this client write.
    #[wasm_bindgen(getter)]
    pub fn writable(&self) -> Result<bool, JsValue> {
        self.with(ClientSession::writable)
    }

    /// Online, nothing queued, no delta in flight, and every Yjs update
    /// sent on this connection reported durable by the relay.
    #[wasm_bindgen(getter)]
    pub fn synced(&self) -> Result<bool, JsValue> {
        let d = borrow(&self.doc)?;
        let o = d.sessions.get(&self.peer).ok_or_else(gone)?;
        // Uncommitted edits are this package's notion: not sent yet either.
        Ok(o.core.synced() && !d.pending_crdt())
    }

    /// The last error the relay reported (an `Error` frame): its code.
    #[wasm_bindgen(getter, js_name = lastErrorCode)]
    pub fn last_error_code(&self) -> Result<Option<u16>, JsValue> {
        self.with(|s| s.last_error().map(|e| e.0))
    }

    /// The last error the relay reported: its reason.
    #[wasm_bindgen(getter, js_name = lastErrorReason)]
    pub fn last_error_reason(&self) -> Result<Option<String>, JsValue> {
        self.with(|s| s.last_error().map(|e| e.1.clone()))
    }
}

/// A peer's Yjs update that changed the document goes on to the
/// document's other sessions (it is not a local edit, so no commit
/// captures it). Returns whether there was one.
fn forward_yrs(d: &mut DocInner, from: u64, events: &[SessionEvent]) -> bool {
    let mut forwarded = false;
    for e in events {
        if let SessionEvent::Yrs {
            update,
            changed: true,
        } = e
        {
            forwarded = true;
            for (&peer, o) in d.sessions.iter_mut() {
                if peer != from {
                    o.core.queue_yrs(update.clone());
                }
            }
        }
    }
    forwarded
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Ok(mut d) = self.doc.try_borrow_mut() {
            if let Some(mut o) = d.sessions.remove(&self.peer) {
                // Stopping forgets the relay's position in the replica.
                let _ = o.core.stop(&mut d.shared);
            }
        }
    }
}
