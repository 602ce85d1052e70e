//! [`ClientSession`]: the client side of the native protocol
//! (`WS /sync/{room}`) for one connection, as a synchronous sans-IO state
//! machine. Frames in, frames and [`SessionEvent`]s out.
//!
//! The shell (the relay's tokio client, the WASM package's `Session`, a
//! simulator) opens the socket and calls [`ClientSession::start`] when it
//! is open, [`ClientSession::receive`] with every binary message,
//! [`ClientSession::flush`] when local changes wait, and
//! [`ClientSession::stop`] when the socket closed; it sends the frames
//! those return, in order.
//!
//! The conversation (docs/PROTOCOL.md): `Hello`, `YrsSyncRequest` with our
//! state vector and a `core::sync` request (`pull`) at start; the relay's
//! `YrsSyncRequest` is answered with what it lacks; at most one CRDT delta
//! interval is in flight until its `Ack`; the relay's position in the
//! replica is forgotten at every start and stop, so each connection starts
//! from contexts.
//!
//! What it is not: it owns no document (the [`SharedDoc`] is passed to
//! each call, so one document can have several sessions, and a shell can
//! keep it behind a lock), no socket, no timer, no reconnect policy (which
//! close codes to retry after is the shell's call) and no randomness (the
//! replica id and the yrs client id come with the document).

use std::string::String;
use std::vec::Vec;

use super::frame::{CloseCode, Frame, PROTOCOL_VERSION};
use super::presence::{PresenceEntry, PresenceMap};
use super::shared::SharedDoc;
use crate::document::DocStore;
use crate::sync::{Bytes, Message, Outgoing, PeerId};

/// The highest presence clock any session of one document has used.
///
/// Sessions of one document share a Yjs client id, hence one presence
/// entry: each new announcement goes past this clock, so two sessions of
/// one document never outbid each other, and an entry above it for our
/// client id was not made by us (see [`ClientSession::receive`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PresenceClock {
    highest: u32,
}

impl PresenceClock {
    /// No clock used yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The highest clock used.
    pub fn get(self) -> u32 {
        self.highest
    }

    fn raise(&mut self, clock: u32) {
        self.highest = self.highest.max(clock);
    }
}

/// What the shell may need to know about a call, besides the frames.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionEvent {
    /// The relay said hello: the session is online.
    Online {
        /// Whether the relay lets this client write.
        writable: bool,
    },
    /// A Yjs update from the relay was integrated into the document.
    Yrs {
        /// The update (v1), for a shell that forwards it to the document's
        /// other connections.
        update: Vec<u8>,
        /// Whether it changed the document.
        changed: bool,
    },
    /// A CRDT delta from the relay was handled (it may have changed the
    /// document's store).
    Crdt,
    /// A client's presence changed: its state, or `None` once it left.
    Presence {
        /// The client id.
        client: u64,
        /// Its JSON state.
        state: Option<String>,
    },
    /// The relay reported this many Yjs updates of the connection durable.
    Saved {
        /// Updates durable so far.
        count: u64,
    },
    /// The relay sent an `Error` frame (kept as [`ClientSession::last_error`]).
    Error {
        /// A [`CloseCode`] or [`Frame::ERROR_READ_ONLY`].
        code: u16,
        /// Its reason.
        reason: String,
    },
}

/// What a call produced: frames to send in order, and events for the shell.
#[must_use]
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionOutput {
    /// Encoded frames, one WebSocket binary message each.
    pub frames: Vec<Vec<u8>>,
    /// What happened, in order.
    pub events: Vec<SessionEvent>,
}

/// A frame from the relay was refused: close the connection with `code`
/// (then call [`ClientSession::stop`]). Nothing in the document changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionError {
    /// The close code ([`CloseCode::MALFORMED`], [`CloseCode::BAD_UPDATE`],
    /// [`CloseCode::UNSUPPORTED_PROTOCOL`]).
    pub code: u16,
    /// Why, for the close frame and logs.
    pub reason: String,
}

impl core::fmt::Display for SessionError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} ({})", self.reason, self.code)
    }
}

impl std::error::Error for SessionError {}

fn refuse(code: u16, reason: String) -> SessionError {
    SessionError { code, reason }
}

/// One connection's protocol state (see the module doc).
#[derive(Debug)]
pub struct ClientSession {
    /// The relay's name in the document's sync replica: each connection of
    /// one document needs its own.
    peer: PeerId,
    /// Between `start` and `stop`.
    connected: bool,
    /// The relay said hello.
    online: bool,
    writable: bool,
    /// A CRDT delta interval was sent and not acknowledged yet.
    awaiting_ack: bool,
    /// Something changed that the next flush may push.
    dirty: bool,
    /// Yjs updates to send at the next flush.
    queue: Vec<Vec<u8>>,
    yrs_sent: u64,
    yrs_saved: u64,
    last_error: Option<(u16, String)>,
    presence: PresenceMap,
    me: PresenceEntry,
    presence_dirty: bool,
}

impl ClientSession {
    /// A session of `doc` whose relay is `peer` in the document's sync
    /// replica. Presence is announced as the document's Yjs client id, from
    /// `clock` on.
    pub fn new(doc: &SharedDoc, peer: PeerId, clock: &PresenceClock) -> Self {
        Self {
            peer,
            connected: false,
            online: false,
            writable: false,
            awaiting_ack: false,
            dirty: false,
            queue: Vec::new(),
            yrs_sent: 0,
            yrs_saved: 0,
            last_error: None,
            presence: PresenceMap::new(),
            me: PresenceEntry {
                client: doc.yrs().client_id().get(),
                clock: clock.get(),
                state: None,
            },
            presence_dirty: false,
        }
    }

    /// The socket opened: the frames that start the conversation. A
    /// session still connected is stopped first.
    pub fn start(&mut self, doc: &mut SharedDoc, clock: &mut PresenceClock) -> SessionOutput {
        let mut out = if self.connected {
            self.stop(doc)
        } else {
            SessionOutput::default()
        };
        // Forget the relay's old position: this connection starts from
        // contexts (what we lack, and what it lacks).
        doc.crdt_mut().forget(self.peer);
        // The state vector exchange covers whatever was queued.
        self.queue.clear();
        self.dirty = false;
        self.connected = true;
        self.online = false;
        self.awaiting_ack = false;
        self.yrs_sent = 0;
        self.yrs_saved = 0;
        out.frames.push(
            Frame::Hello {
                protocol: PROTOCOL_VERSION,
                replica: doc.crdt().id().get(),
                writable: true,
            }
            .encode(),
        );
        out.frames.push(
            Frame::YrsSyncRequest {
                state_vector: Bytes(doc.yrs_state_vector()),
            }
            .encode(),
        );
        let pulled = doc.crdt_mut().pull(&[self.peer]);
        self.sync_frames(pulled, &mut out.frames);
        self.presence_dirty = false;
        if self.me.clock > 0 {
            // When the last connection closed, the relay marked this client
            // gone one clock past its last state; a tie goes to the removal.
            self.me.clock = self.me.clock.wrapping_add(2);
            clock.raise(self.me.clock);
        }
        if self.me.state.is_some() {
            out.frames.push(self.presence_frame());
        }
        out
    }

    /// Decodes a frame from the relay, bounded by the document's
    /// `max_message_bytes`. The shell may look at it (the WASM package
    /// notes what a delta touches) before [`ClientSession::receive_frame`].
    pub fn decode(&self, doc: &SharedDoc, bytes: &[u8]) -> Result<Frame, SessionError> {
        Frame::decode(bytes, doc.crdt().config().max_message_bytes).map_err(|e| {
            refuse(
                CloseCode::MALFORMED,
                std::format!("undecodable frame from the relay: {e}"),
            )
        })
    }

    /// Handles one binary message from the relay: [`ClientSession::decode`]
    /// then [`ClientSession::receive_frame`].
    pub fn receive(
        &mut self,
        doc: &mut SharedDoc,
        clock: &mut PresenceClock,
        bytes: &[u8],
    ) -> Result<SessionOutput, SessionError> {
        let frame = self.decode(doc, bytes)?;
        self.receive_frame(doc, clock, frame)
    }

    /// Handles one decoded frame from the relay. Frames after `stop` are
    /// ignored. An error means: close the connection with its code.
    pub fn receive_frame(
        &mut self,
        doc: &mut SharedDoc,
        clock: &mut PresenceClock,
        frame: Frame,
    ) -> Result<SessionOutput, SessionError> {
        let mut out = SessionOutput::default();
        if !self.connected {
            return Ok(out);
        }
        match frame {
            Frame::Hello {
                protocol, writable, ..
            } => {
                if protocol != PROTOCOL_VERSION {
                    return Err(refuse(
                        CloseCode::UNSUPPORTED_PROTOCOL,
                        std::format!(
                            "the relay speaks native protocol {protocol}, this client {PROTOCOL_VERSION}"
                        ),
                    ));
                }
                self.online = true;
                self.writable = writable;
                out.events.push(SessionEvent::Online { writable });
            }
            Frame::Sync(m) => {
                let delta = matches!(m, Message::Delta { .. });
                if matches!(m, Message::Ack { .. }) {
                    self.awaiting_ack = false;
                }
                let reply = doc.crdt_mut().receive(self.peer, m).map_err(|e| {
                    refuse(CloseCode::MALFORMED, std::format!("bad sync message: {e}"))
                })?;
                self.sync_frames(reply, &mut out.frames);
                if !self.awaiting_ack {
                    let pushed = doc.crdt_mut().push(&[self.peer]);
                    self.sync_frames(pushed, &mut out.frames);
                }
                if delta {
                    out.events.push(SessionEvent::Crdt);
                }
            }
            Frame::YrsSyncRequest { state_vector } => {
                let diff = doc.yrs_diff(&state_vector.0).map_err(|e| {
                    refuse(CloseCode::MALFORMED, std::format!("bad state vector: {e}"))
                })?;
                // The diff holds everything queued (queued updates are in
                // the document already).
                self.queue.clear();
                self.yrs_sent += 1;
                out.frames.push(
                    Frame::YrsUpdate {
                        update: Bytes(diff),
                    }
                    .encode(),
                );
            }
            Frame::YrsUpdate { update } => {
                let changed = doc.apply_yrs_update(&update.0).map_err(|e| {
                    refuse(CloseCode::BAD_UPDATE, std::format!("bad Yjs update: {e}"))
                })?;
                out.events.push(SessionEvent::Yrs {
                    update: update.0,
                    changed,
                });
            }
            Frame::YrsSaved { count } => {
                self.yrs_saved = count;
                out.events.push(SessionEvent::Saved { count });
            }
            Frame::Presence { entries } => {
                // Our own entry with a clock none of this document's
                // sessions used (the relay removed us when an old
                // connection closed after this one opened): take a clock
                // past it and say again who we are, as a Yjs client does on
                // hearing of its own removal. Entries our sessions made are
                // at or below the shared clock, so two sessions of one
                // document never outbid each other.
                let newer = entries
                    .iter()
                    .filter(|e| e.client == self.me.client && e.clock > clock.get())
                    .map(|e| e.clock)
                    .max();
                for e in self.presence.apply(entries) {
                    out.events.push(SessionEvent::Presence {
                        client: e.client,
                        state: e.state,
                    });
                }
                if let Some(c) = newer {
                    self.me.clock = c.wrapping_add(1);
                    clock.raise(self.me.clock);
                    if self.me.state.is_some() {
                        out.frames.push(self.presence_frame());
                    }
                }
            }
            Frame::Error { code, reason } => {
                self.last_error = Some((code, reason.clone()));
                out.events.push(SessionEvent::Error { code, reason });
            }
        }
        Ok(out)
    }

    /// What waits to be sent: the queued Yjs updates (merged into one
    /// frame), the next CRDT delta interval unless one is in flight, and
    /// our presence if it changed. Nothing while stopped: the next
    /// [`ClientSession::start`] catches up.
    pub fn flush(&mut self, doc: &mut SharedDoc) -> SessionOutput {
        let mut out = SessionOutput::default();
        if !self.connected {
            return out;
        }
        self.dirty = false;
        let updates = std::mem::take(&mut self.queue);
        match updates.len() {
            0 => {}
            1 => self.push_yrs(updates.into_iter().next().expect("one"), &mut out),
            _ => {
                let parts: Vec<&[u8]> = updates.iter().map(Vec::as_slice).collect();
                match SharedDoc::merge_yrs_updates(&parts) {
                    Ok(merged) => self.push_yrs(merged, &mut out),
                    // Cannot happen for updates yrs made; send them apart.
                    Err(_) => updates.into_iter().for_each(|u| self.push_yrs(u, &mut out)),
                }
            }
        }
        if !self.awaiting_ack {
            let pushed = doc.crdt_mut().push(&[self.peer]);
            self.sync_frames(pushed, &mut out.frames);
        }
        if self.presence_dirty {
            self.presence_dirty = false;
            if self.me.clock > 0 {
                out.frames.push(self.presence_frame());
            }
        }
        out
    }

    /// The socket closed (or is being closed). Whoever was present is
    /// unknown until the next connection: their removals are the events.
    pub fn stop(&mut self, doc: &mut SharedDoc) -> SessionOutput {
        let mut out = SessionOutput::default();
        self.connected = false;
        self.online = false;
        self.awaiting_ack = false;
        self.queue.clear();
        doc.crdt_mut().forget(self.peer);
        let gone: Vec<u64> = self.presence.present().iter().map(|e| e.client).collect();
        for e in self.presence.remove(gone) {
            out.events.push(SessionEvent::Presence {
                client: e.client,
                state: e.state,
            });
        }
        self.presence = PresenceMap::new();
        out
    }

    /// Queues a Yjs update (v1) already in the document — a local edit, or
    /// one that came from another connection — for the next flush.
    /// Ignored while stopped: the state vector exchange at `start` covers
    /// it.
    pub fn queue_yrs(&mut self, update: Vec<u8>) {
        if self.connected {
            self.queue.push(update);
        }
    }

    /// The document's CRDT store changed (locally, or through another
    /// connection): the next flush pushes it, and the session is not
    /// [`synced`](Self::synced) until then.
    pub fn note_change(&mut self) {
        self.dirty = true;
    }

    /// Sets this client's presence (JSON text), or clears it with `None`;
    /// sent at the next flush.
    pub fn set_presence(&mut self, clock: &mut PresenceClock, state: Option<String>) {
        self.me.clock = self.me.clock.max(clock.get()).wrapping_add(1);
        clock.raise(self.me.clock);
        self.me.state = state;
        self.presence_dirty = true;
    }

    /// The relay's peer id in the document's sync replica.
    pub fn peer(&self) -> PeerId {
        self.peer
    }

    /// Between `start` and `stop`.
    pub fn connected(&self) -> bool {
        self.connected
    }

    /// The relay said hello on this connection.
    pub fn online(&self) -> bool {
        self.online
    }

    /// The relay lets this client write (as of its last hello).
    pub fn writable(&self) -> bool {
        self.writable
    }

    /// Online, nothing queued, no delta in flight, and every Yjs update
    /// sent on this connection reported durable by the relay.
    pub fn synced(&self) -> bool {
        self.online
            && self.queue.is_empty()
            && !self.dirty
            && !self.awaiting_ack
            && self.yrs_saved >= self.yrs_sent
    }

    /// Yjs updates sent on this connection.
    pub fn yrs_sent(&self) -> u64 {
        self.yrs_sent
    }

    /// Of those, how many the relay reported durable.
    pub fn yrs_saved(&self) -> u64 {
        self.yrs_saved
    }

    /// The last `Error` frame from the relay (code, reason).
    pub fn last_error(&self) -> Option<&(u16, String)> {
        self.last_error.as_ref()
    }

    /// Everyone present in the room, as last heard on this connection.
    pub fn presence(&self) -> &PresenceMap {
        &self.presence
    }

    /// This client's own presence entry (client id, clock, state).
    pub fn own_presence(&self) -> &PresenceEntry {
        &self.me
    }

    fn push_yrs(&mut self, update: Vec<u8>, out: &mut SessionOutput) {
        self.yrs_sent += 1;
        out.frames.push(
            Frame::YrsUpdate {
                update: Bytes(update),
            }
            .encode(),
        );
    }

    /// Sync frames from the replica's output; notes a delta in flight. The
    /// client stores nothing of its own, so `persist` is dropped.
    fn sync_frames(&mut self, out: Outgoing<DocStore>, frames: &mut Vec<Vec<u8>>) {
        for (_, m) in out.messages {
            if matches!(m, Message::Delta { .. }) {
                self.awaiting_ack = true;
            }
            frames.push(Frame::Sync(m).encode());
        }
    }

    fn presence_frame(&self) -> Vec<u8> {
        Frame::Presence {
            entries: std::vec![self.me.clone()],
        }
        .encode()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ReplicaId;
    use crate::sync::Config;
    use std::string::ToString;
    use std::vec;
    use yrs::{GetString, Text, Transact};

    const RELAY: PeerId = 0;

    fn doc(id: u64) -> SharedDoc {
        SharedDoc::new(ReplicaId::new(id), 100 + id, 1000 + id, Config::default())
    }

    fn decode(out: &SessionOutput) -> Vec<Frame> {
        out.frames
            .iter()
            .map(|f| Frame::decode(f, usize::MAX).unwrap())
            .collect()
    }

    fn hello(writable: bool) -> Vec<u8> {
        Frame::Hello {
            protocol: PROTOCOL_VERSION,
            replica: 0,
            writable,
        }
        .encode()
    }

    fn entry(client: u64, clock: u32, state: Option<&str>) -> PresenceEntry {
        PresenceEntry {
            client,
            clock,
            state: state.map(ToString::to_string),
        }
    }

    fn started(d: &mut SharedDoc, clock: &mut PresenceClock) -> ClientSession {
        let mut s = ClientSession::new(d, RELAY, clock);
        let _ = s.start(d, clock);
        s
    }

    #[test]
    fn start_says_hello_asks_for_both_states_and_hello_brings_it_online() {
        let (mut d, mut clock) = (doc(7), PresenceClock::new());
        let mut s = ClientSession::new(&d, RELAY, &clock);
        let frames = decode(&s.start(&mut d, &mut clock));
        assert_eq!(
            frames[0],
            Frame::Hello {
                protocol: PROTOCOL_VERSION,
                replica: 7,
                writable: true
            }
        );
        assert!(matches!(frames[1], Frame::YrsSyncRequest { .. }));
        assert!(matches!(
            frames[2],
            Frame::Sync(Message::SyncRequest { reply: true, .. })
        ));
        assert_eq!(frames.len(), 3, "no presence before one is set");
        assert!(!s.online());
        let out = s.receive(&mut d, &mut clock, &hello(false)).unwrap();
        assert_eq!(out.events, vec![SessionEvent::Online { writable: false }]);
        assert!(s.online() && !s.writable());
    }

    #[test]
    fn bad_frames_are_errors_with_close_codes() {
        let (mut d, mut clock) = (doc(1), PresenceClock::new());
        let mut s = started(&mut d, &mut clock);
        let e = s.receive(&mut d, &mut clock, &[0xff, 1, 2]).unwrap_err();
        assert_eq!(e.code, CloseCode::MALFORMED);
        let bad = Frame::YrsUpdate {
            update: Bytes(vec![0xff; 8]),
        }
        .encode();
        let e = s.receive(&mut d, &mut clock, &bad).unwrap_err();
        assert_eq!(e.code, CloseCode::BAD_UPDATE);
        let sv = Frame::YrsSyncRequest {
            state_vector: Bytes(vec![0xff; 8]),
        }
        .encode();
        let e = s.receive(&mut d, &mut clock, &sv).unwrap_err();
        assert_eq!(e.code, CloseCode::MALFORMED);
        let other = Frame::Hello {
            protocol: PROTOCOL_VERSION + 1,
            replica: 0,
            writable: true,
        }
        .encode();
        let e = s.receive(&mut d, &mut clock, &other).unwrap_err();
        assert_eq!(e.code, CloseCode::UNSUPPORTED_PROTOCOL);
        // Too large for the document's limit: refused before decoding.
        let mut small = SharedDoc::new(
            ReplicaId::new(2),
            2,
            2,
            Config {
                max_message_bytes: 4,
                ..Config::default()
            },
        );
        let mut s = started(&mut small, &mut clock);
        let e = s.receive(&mut small, &mut clock, &hello(true)).unwrap_err();
        assert_eq!(e.code, CloseCode::MALFORMED);
    }

    #[test]
    fn queued_updates_merge_into_one_frame_and_saved_makes_it_synced() {
        let (mut d, mut clock) = (doc(1), PresenceClock::new());
        let mut s = started(&mut d, &mut clock);
        let _ = s.receive(&mut d, &mut clock, &hello(true)).unwrap();
        let text = d.yrs().get_or_insert_text("t");
        for w in ["a", "b", "c"] {
            let mut txn = d.yrs().transact_mut();
            text.push(&mut txn, w);
            let u = txn.encode_update_v1();
            drop(txn);
            s.queue_yrs(u);
        }
        assert!(!s.synced());
        let frames = decode(&s.flush(&mut d));
        let yrs: Vec<_> = frames
            .iter()
            .filter_map(|f| match f {
                Frame::YrsUpdate { update } => Some(update.0.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(yrs.len(), 1, "one merged update");
        let mut other = doc(2);
        other.apply_yrs_update(&yrs[0]).unwrap();
        let t = other.yrs().get_or_insert_text("t");
        assert_eq!(t.get_string(&other.yrs().transact()), "abc");
        assert_eq!(s.yrs_sent(), 1);
        assert!(!s.synced(), "not durable yet");
        let saved = Frame::YrsSaved { count: 1 }.encode();
        let out = s.receive(&mut d, &mut clock, &saved).unwrap();
        assert_eq!(out.events, vec![SessionEvent::Saved { count: 1 }]);
        assert!(s.synced());
        s.note_change();
        assert!(!s.synced(), "a change waits for a flush");
        let _ = s.flush(&mut d);
        assert!(s.synced());
    }

    #[test]
    fn nothing_is_queued_or_sent_while_stopped() {
        let (mut d, mut clock) = (doc(1), PresenceClock::new());
        let mut s = ClientSession::new(&d, RELAY, &clock);
        s.queue_yrs(vec![1, 2, 3]);
        s.set_presence(&mut clock, Some("{}".into()));
        assert!(s.flush(&mut d).frames.is_empty());
        let out = s.receive(&mut d, &mut clock, &hello(true)).unwrap();
        assert!(out.frames.is_empty() && out.events.is_empty());
        assert!(!s.online());
    }

    #[test]
    fn restart_jumps_the_presence_clock_by_two() {
        let (mut d, mut clock) = (doc(1), PresenceClock::new());
        let mut s = started(&mut d, &mut clock);
        s.set_presence(&mut clock, Some("{\"n\":1}".into()));
        let frames = decode(&s.flush(&mut d));
        assert!(frames.contains(&Frame::Presence {
            entries: vec![entry(1001, 1, Some("{\"n\":1}"))]
        }));
        let _ = s.stop(&mut d);
        // The relay marked us gone at clock 2; we come back at 3.
        let frames = decode(&s.start(&mut d, &mut clock));
        assert_eq!(
            frames.last(),
            Some(&Frame::Presence {
                entries: vec![entry(1001, 3, Some("{\"n\":1}"))]
            })
        );
        assert_eq!(clock.get(), 3);
    }

    #[test]
    fn a_newer_own_entry_makes_us_reannounce_past_it() {
        let (mut d, mut clock) = (doc(1), PresenceClock::new());
        let mut s = started(&mut d, &mut clock);
        s.set_presence(&mut clock, Some("{}".into()));
        let _ = s.flush(&mut d);
        // Our own echo (clock 1) changes nothing.
        let echo = Frame::Presence {
            entries: vec![entry(1001, 1, Some("{}"))],
        }
        .encode();
        let out = s.receive(&mut d, &mut clock, &echo).unwrap();
        assert!(out.frames.is_empty());
        // A removal of us at clock 5 (an old connection closing late).
        let removal = Frame::Presence {
            entries: vec![entry(1001, 5, None)],
        }
        .encode();
        let frames = decode(&s.receive(&mut d, &mut clock, &removal).unwrap());
        assert_eq!(
            frames,
            vec![Frame::Presence {
                entries: vec![entry(1001, 6, Some("{}"))]
            }]
        );
        assert_eq!(clock.get(), 6);
    }

    #[test]
    fn two_sessions_of_one_document_share_the_clock() {
        let (mut d, mut clock) = (doc(1), PresenceClock::new());
        let mut a = ClientSession::new(&d, 1, &clock);
        let mut b = ClientSession::new(&d, 2, &clock);
        let _ = a.start(&mut d, &mut clock);
        let _ = b.start(&mut d, &mut clock);
        a.set_presence(&mut clock, Some("{}".into()));
        b.set_presence(&mut clock, Some("{}".into()));
        assert_eq!(b.own_presence().clock, 2);
        // a's own entry at 2 came from b: not newer than the shared clock.
        let from_b = Frame::Presence {
            entries: vec![entry(1001, 2, Some("{}"))],
        }
        .encode();
        assert!(
            a.receive(&mut d, &mut clock, &from_b)
                .unwrap()
                .frames
                .is_empty()
        );
    }

    #[test]
    fn error_frames_are_kept_and_stop_clears_presence() {
        let (mut d, mut clock) = (doc(1), PresenceClock::new());
        let mut s = started(&mut d, &mut clock);
        let err = Frame::Error {
            code: Frame::ERROR_READ_ONLY,
            reason: "read-only".into(),
        }
        .encode();
        let out = s.receive(&mut d, &mut clock, &err).unwrap();
        assert_eq!(out.events.len(), 1);
        assert_eq!(s.last_error().map(|e| e.0), Some(Frame::ERROR_READ_ONLY));
        let p = Frame::Presence {
            entries: vec![entry(9, 1, Some("{}"))],
        }
        .encode();
        let out = s.receive(&mut d, &mut clock, &p).unwrap();
        assert_eq!(
            out.events,
            vec![SessionEvent::Presence {
                client: 9,
                state: Some("{}".into())
            }]
        );
        let out = s.stop(&mut d);
        assert_eq!(
            out.events,
            vec![SessionEvent::Presence {
                client: 9,
                state: None
            }]
        );
        assert!(s.presence().is_empty());
    }
}
