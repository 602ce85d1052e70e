//! [`Room`]: everything a room does with its connections' inputs, as a
//! synchronous state machine — inputs in, effects out.
//!
//! A room holds one [`SharedDoc`], its presence and its connections (both
//! protocols: y-websocket on `/yjs` and the native frames on `/sync`). The
//! shell (the relay's room task, or a simulator) feeds it joins, leaves and
//! client bytes, then takes a [`Batch`]: the log entries to make durable and,
//! once they are, the [`Output`] — replies, forwarded updates, presence,
//! closes. Nothing a batch produced can leave before its commit: the output
//! is only reachable through [`Batch::committed`], which consumes the batch
//! after its entries were taken. The room has no clock, no IO and no
//! randomness (the shell passes the session and Yjs client ids).
//!
//! # What a hostile client cannot do (docs/PROTOCOL.md lists the bounds)
//! - Make the room recurse over its bytes: updates and JSON states are
//!   checked for depth iteratively before yrs or serde_json read them.
//! - Amplify: a frame carries at most [`RoomLimits::max_messages_per_frame`]
//!   messages, and each connection gets at most one answer to each kind of
//!   query (sync step 1, awareness query, Yjs state vector, CRDT pull) per
//!   batch, built at the end of the batch and charged against its reply
//!   budget as it is built.
//! - Change another connection's presence (see `presence`), hold more than a
//!   few presence ids, or set a state larger than a bound.
//! - Write through a read-only connection (its own presence excepted).

mod conn;
mod log;
mod presence;

use std::collections::BTreeMap;
use std::format;
use std::string::{String, ToString};
use std::vec::Vec;

use yrs::StateVector;
use yrs::updates::decoder::Decode;

pub use log::{EntryKind, LogEntry, SetAside};

use self::conn::Conn;
pub use self::conn::ConnId;
use self::presence::OwnedPresence;
use super::frame::{CloseCode, Frame, PROTOCOL_VERSION};
use super::presence::PresenceEntry;
use super::shared::{Applied, DocError, SharedDoc, Snapshot};
use super::yws::{self, YwsError, YwsMessage};
use crate::document::DocStore;
use crate::sync::{Bytes, Config as SyncConfig, Message as SyncMsg, Outgoing};

/// The sender of updates the room itself sends everyone in
/// [`Output::updates`]: held updates that became whole (see
/// [`SharedDoc::held`]). No connection has this id.
pub const FROM_ROOM: ConnId = ConnId::MAX;

/// Which protocol a connection speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// y-websocket (`/yjs`).
    Yjs,
    /// The native frames (`/sync`).
    Native,
}

/// The room's bounds. Every one has a documented default
/// (docs/PROTOCOL.md, "Bounds").
#[derive(Clone, Debug)]
pub struct RoomLimits {
    /// Largest message accepted from a client (the shell enforces it on
    /// the socket; the room uses it for CRDT payloads).
    pub max_message_bytes: usize,
    /// Most y-websocket messages in one client frame.
    pub max_messages_per_frame: usize,
    /// Deepest nesting of a value inside an update or a JSON state.
    pub max_depth: usize,
    /// Largest presence state (JSON text), in bytes.
    pub max_presence_bytes: usize,
    /// Most presence ids one `/yjs` connection may hold (a `/sync`
    /// connection holds one: its own).
    pub max_presence_ids: usize,
    /// Removed presence ids remembered (older removals are forgotten).
    pub max_presence_tombstones: usize,
    /// Bytes of replies one connection may be owed by one batch; beyond
    /// it the connection is closed as a slow consumer (it resyncs).
    pub max_reply_bytes: usize,
}

impl Default for RoomLimits {
    fn default() -> Self {
        Self {
            max_message_bytes: 16 << 20,
            max_messages_per_frame: 32,
            max_depth: super::guard::MAX_DEPTH,
            max_presence_bytes: 64 << 10,
            max_presence_ids: 4,
            max_presence_tombstones: 1024,
            max_reply_bytes: 64 << 20,
        }
    }
}

/// One frame for one connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Send {
    /// To whom.
    pub to: ConnId,
    /// What it is (for metrics).
    pub kind: &'static str,
    /// The encoded frame, in the connection's protocol.
    pub frame: Vec<u8>,
}

/// Changed presence for everyone: one frame per protocol, to be shared
/// between receivers rather than copied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Broadcast {
    /// The changed entries.
    pub entries: Vec<PresenceEntry>,
    /// For `/yjs` connections.
    pub yjs: Vec<u8>,
    /// For `/sync` connections.
    pub native: Vec<u8>,
}

/// A connection the room refused: close it with this code and reason
/// (after sending what the output holds for others).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Close {
    /// Whom.
    pub conn: ConnId,
    /// The WebSocket close code ([`CloseCode`]).
    pub code: u16,
    /// Why, for the client.
    pub reason: String,
}

/// What a committed batch sends.
#[derive(Debug, Default)]
pub struct Output {
    /// Replies and other frames for one connection each, in order.
    pub sends: Vec<Send>,
    /// Accepted Yjs updates (v1) and who sent them: every other connection
    /// gets them (the shell may merge them per receiver). [`FROM_ROOM`]
    /// sends to everyone.
    pub updates: Vec<(ConnId, Vec<u8>)>,
    /// Changed presence, for every connection.
    pub presence: Option<Broadcast>,
    /// Connections to close (they are no longer in the room).
    pub closes: Vec<Close>,
    /// yrs panicked inside an update: the document may be inconsistent.
    /// The shell closes everyone with [`CloseCode::INTERNAL`] and reloads
    /// the room from storage.
    pub poisoned: bool,
}

/// Counters of one batch, for metrics (available before the commit).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stats {
    /// Refused or dropped inputs, by reason.
    pub rejected: Vec<&'static str>,
    /// Operations applied, by kind (`yrs_update`, `delta_join`).
    pub ops: Vec<&'static str>,
}

/// What one batch of inputs produced.
#[must_use = "store the entries, then send the output (Batch::committed)"]
#[derive(Debug, Default)]
pub struct Batch {
    entries: Vec<LogEntry>,
    output: Output,
    stats: Stats,
}

impl Batch {
    /// The entries to make durable before anything is sent (taken once).
    pub fn take_entries(&mut self) -> Vec<LogEntry> {
        std::mem::take(&mut self.entries)
    }

    /// The entries, to look at.
    pub fn entries(&self) -> &[LogEntry] {
        &self.entries
    }

    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The output, once the entries are durable. Panics if the entries
    /// were not taken first: sending before storing would let a crash take
    /// back what clients saw.
    pub fn committed(self) -> Output {
        assert!(
            self.entries.is_empty(),
            "a batch's output is sent only after its entries are stored"
        );
        self.output
    }

    /// The output of a batch whose commit failed: only its closes (the
    /// shell closes everyone anyway).
    pub fn failed(self) -> Vec<Close> {
        self.output.closes
    }
}

/// A room: its document, presence and connections.
pub struct Room {
    doc: SharedDoc,
    presence: OwnedPresence,
    conns: BTreeMap<ConnId, Conn>,
    limits: RoomLimits,
    next_seq: u64,
    batch: Batch,
    /// Held updates were dropped: everyone is asked for what the document
    /// lacks when a batch ends, at most once every [`ASK_EVERY_BATCHES`].
    ask_everyone: bool,
    /// Batches ended so far.
    batches: u64,
    /// The first batch at whose end everyone may be asked again.
    next_ask: u64,
}

/// At most one round of "everyone, send what the room lacks" per this many
/// batches. A round costs a frame to every connection and an answer from
/// each; without a bound, one client that keeps overflowing the hold
/// (tiny updates that can never come in) would make every batch cost the
/// whole room a round trip. A round put off is kept, not forgotten.
pub const ASK_EVERY_BATCHES: u64 = 16;

impl Room {
    /// A room restored from what storage holds: a snapshot covering the log
    /// up to `snapshot_seq`, then `entries` (in sequence order). Whatever
    /// does not load is returned as set aside, and the room loads without
    /// it. `session` and `yrs_client` are fresh random numbers (the relay
    /// makes no changes of its own; they only name it).
    pub fn restore(
        session: u64,
        yrs_client: u64,
        limits: RoomLimits,
        snapshot: Option<(u64, &Snapshot)>,
        entries: &[LogEntry],
    ) -> (Room, Vec<SetAside>) {
        let config = SyncConfig {
            max_message_bytes: limits.max_message_bytes,
            ..SyncConfig::default()
        };
        let (doc, set_aside) =
            log::restore(session, yrs_client, config, snapshot.map(|s| s.1), entries);
        let last = entries
            .iter()
            .map(|e| e.seq)
            .chain(snapshot.map(|s| s.0))
            .max()
            .unwrap_or(0);
        let room = Room {
            doc,
            presence: OwnedPresence::new(limits.max_presence_tombstones),
            conns: BTreeMap::new(),
            limits,
            next_seq: last + 1,
            batch: Batch::default(),
            ask_everyone: false,
            batches: 0,
            next_ask: 0,
        };
        (room, set_aside)
    }

    /// An empty room.
    pub fn new(session: u64, yrs_client: u64, limits: RoomLimits) -> Room {
        Self::restore(session, yrs_client, limits, None, &[]).0
    }

    /// The document.
    pub fn doc(&self) -> &SharedDoc {
        &self.doc
    }

    /// The limits.
    pub fn limits(&self) -> &RoomLimits {
        &self.limits
    }

    /// Connections in the room.
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// Whether `conn` is in the room.
    pub fn contains(&self, conn: ConnId) -> bool {
        self.conns.contains_key(&conn)
    }

    /// Everyone present.
    pub fn present(&self) -> Vec<PresenceEntry> {
        self.presence.present()
    }

    /// The sequence number of the last entry this room stored or loaded.
    pub fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    /// The whole state as a snapshot of the log up to [`Room::last_seq`].
    ///
    /// A snapshot cannot contain the updates that wait for missing
    /// dependencies ([`SharedDoc::held`]): they are dropped, counted as
    /// `held_dropped`, and every connection is asked (sync step 1, with the
    /// next batch) for what the document lacks — whoever has them sends
    /// them again, with what they wait for. Keeping the log until they are
    /// integrated instead let one client's 15-byte update that can never
    /// be integrated stop the room's compaction for good.
    pub fn snapshot(&mut self) -> (u64, Snapshot) {
        let dropped = self.doc.drop_held();
        if dropped > 0 {
            for _ in 0..dropped {
                self.batch.stats.rejected.push("held_dropped");
            }
            self.ask_everyone = true;
        }
        (self.last_seq(), self.doc.snapshot())
    }

    /// A connection joins: the frames that start its conversation.
    pub fn join(&mut self, conn: ConnId, protocol: Protocol, writable: bool) {
        if self.poisoned() {
            // It is closed with everyone else when the batch ends.
            return;
        }
        self.conns.insert(
            conn,
            Conn::new(protocol, writable, self.presence.removals()),
        );
        let present = self.presence.present();
        let sv = self.doc.yrs_state_vector();
        match protocol {
            Protocol::Yjs => {
                // Sync step 1 makes the client send what it has (its offline
                // edits); then who is here.
                self.send(conn, "sync_step1", yws::sync_step1(&sv));
                if !present.is_empty() {
                    self.send(conn, "awareness", yws::awareness(&present));
                }
            }
            Protocol::Native => {
                let hello = Frame::Hello {
                    protocol: PROTOCOL_VERSION,
                    replica: 0,
                    writable,
                };
                self.send(conn, "hello", hello.encode());
                let req = Frame::YrsSyncRequest {
                    state_vector: Bytes(sv),
                };
                self.send(conn, "yrs_sync_request", req.encode());
                if !present.is_empty() {
                    let p = Frame::Presence { entries: present };
                    self.send(conn, "presence", p.encode());
                }
            }
        }
    }

    /// A connection left (on every exit path of the shell).
    pub fn leave(&mut self, conn: ConnId) {
        if self.poisoned() {
            self.conns.remove(&conn);
            return;
        }
        if let Some(c) = self.conns.remove(&conn) {
            self.forget(conn, c);
        }
    }

    /// Bytes from a connection, in its protocol. Refusals close it (see the
    /// batch's output); a connection not in the room is ignored.
    pub fn receive(&mut self, conn: ConnId, bytes: &[u8]) {
        if self.poisoned() {
            return;
        }
        let Some(protocol) = self.conns.get(&conn).map(|c| c.protocol) else {
            return;
        };
        match protocol {
            Protocol::Yjs => match self.decode_yjs(bytes) {
                Ok(messages) => self.receive_yjs(conn, messages),
                Err(e) => self.refuse_yjs(conn, e),
            },
            Protocol::Native => match Frame::decode(bytes, self.limits.max_message_bytes) {
                Ok(frame) => self.receive_native(conn, frame),
                Err(e) => {
                    self.reject("malformed");
                    self.close(
                        conn,
                        CloseCode::MALFORMED,
                        &format!("undecodable frame: {e}"),
                    );
                }
            },
        }
    }

    /// Decodes a y-websocket frame under this room's limits (the shell may
    /// do this on the connection's own task and pass the messages to
    /// [`Room::receive_yjs`]).
    pub fn decode_yjs(&self, bytes: &[u8]) -> Result<Vec<YwsMessage>, YwsError> {
        decode_yjs(&self.limits, bytes)
    }

    /// A refused y-websocket frame: closes `conn` with the error's code.
    pub fn refuse_yjs(&mut self, conn: ConnId, e: YwsError) {
        let (reason, code) = yws_refusal(&e);
        self.reject(reason);
        self.close(conn, code, &e.to_string());
    }

    /// Decoded y-websocket messages from `conn`, in order.
    pub fn receive_yjs(&mut self, conn: ConnId, messages: Vec<YwsMessage>) {
        for m in messages {
            if !self.conns.contains_key(&conn) || self.poisoned() {
                return;
            }
            self.yjs_message(conn, m);
        }
    }

    /// A decoded native frame from `conn`.
    pub fn receive_native(&mut self, conn: ConnId, frame: Frame) {
        if self.poisoned() {
            return;
        }
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let hello = c.hello;
        match frame {
            Frame::Hello { protocol, .. } => {
                if protocol != PROTOCOL_VERSION {
                    let reason = format!(
                        "native protocol {protocol} is not supported (this relay speaks {PROTOCOL_VERSION})"
                    );
                    self.close(conn, CloseCode::UNSUPPORTED_PROTOCOL, &reason);
                } else if let Some(c) = self.conns.get_mut(&conn) {
                    c.hello = true;
                }
            }
            _ if !hello => {
                self.reject("malformed");
                self.close(conn, CloseCode::MALFORMED, "the first frame must be Hello");
            }
            Frame::Sync(msg) => self.native_sync(conn, msg),
            Frame::YrsSyncRequest { state_vector } => self.want_yrs_diff(conn, &state_vector.0),
            Frame::YrsUpdate { update } => {
                if !self.writable(conn) {
                    self.refuse_write(conn);
                    return;
                }
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.yrs_received += 1;
                }
                if self.accept_update(conn, update.0) {
                    if let Some(c) = self.conns.get_mut(&conn) {
                        c.saved_pending = true;
                    }
                }
            }
            Frame::Presence { entries } => {
                for e in &entries {
                    if let Some(s) = &e.state {
                        if let Err(err) = yws::check_json(s, self.limits.max_depth) {
                            let (reason, code) = yws_refusal(&err);
                            self.reject(reason);
                            self.close(
                                conn,
                                code,
                                "presence state refused: not JSON, or nested too deep",
                            );
                            return;
                        }
                    }
                }
                self.presence_from(conn, entries);
            }
            Frame::YrsSaved { .. } | Frame::Error { .. } => {}
        }
    }

    /// yrs panicked inside this batch: the room is to be reloaded.
    pub fn poisoned(&self) -> bool {
        self.batch.output.poisoned
    }

    /// Ends the batch: answers the queries it collected, offers CRDT changes
    /// to native peers, and hands over what to store and what to send.
    pub fn take_batch(&mut self) -> Batch {
        if self.poisoned() {
            // yrs failed half-way through an update: the document may be
            // inconsistent (even its locks), so nothing more touches it. The
            // shell closes everyone and reloads the room from storage.
            return std::mem::take(&mut self.batch);
        }
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        self.batches += 1;
        if self.ask_everyone && self.batches > self.next_ask {
            self.ask_everyone = false;
            self.next_ask = self.batches + ASK_EVERY_BATCHES - 1;
            // Sync step 1 is the server's to send at any time.
            let sv = self.doc.yrs_state_vector();
            for id in &ids {
                match self.conns.get(id).map(|c| c.protocol) {
                    Some(Protocol::Yjs) => self.send(*id, "sync_step1", yws::sync_step1(&sv)),
                    Some(Protocol::Native) => {
                        let req = Frame::YrsSyncRequest {
                            state_vector: Bytes(sv.clone()),
                        };
                        self.send(*id, "yrs_sync_request", req.encode());
                    }
                    None => {}
                }
            }
        }
        for id in &ids {
            self.answer_queries(*id);
        }
        self.push_native();
        for id in &ids {
            let Some(c) = self.conns.get_mut(id) else {
                continue;
            };
            c.reply_bytes = 0;
            if std::mem::take(&mut c.saved_pending) {
                let f = Frame::YrsSaved {
                    count: c.yrs_received,
                };
                self.send(*id, "yrs_saved", f.encode());
            }
        }
        if let Some(b) = &mut self.batch.output.presence {
            b.yjs = yws::awareness(&b.entries);
            b.native = Frame::Presence {
                entries: b.entries.clone(),
            }
            .encode();
        }
        std::mem::take(&mut self.batch)
    }

    /// Takes everyone out (shutdown, failure): the connections that were in
    /// the room. Their presence is dropped with them.
    pub fn close_all(&mut self) -> Vec<ConnId> {
        let ids = self.conns.keys().copied().collect();
        self.conns.clear();
        self.presence = OwnedPresence::new(self.limits.max_presence_tombstones);
        ids
    }

    // ---- internals ----

    fn writable(&self, conn: ConnId) -> bool {
        self.conns.get(&conn).is_some_and(|c| c.writable)
    }

    fn reject(&mut self, reason: &'static str) {
        self.batch.stats.rejected.push(reason);
    }

    fn send(&mut self, to: ConnId, kind: &'static str, frame: Vec<u8>) {
        self.batch.output.sends.push(Send { to, kind, frame });
    }

    /// Queues a reply for `to`, charging it against the connection's reply
    /// budget first; a connection owed more is closed as a slow consumer.
    fn reply(&mut self, to: ConnId, kind: &'static str, frame: Vec<u8>) {
        let max = self.limits.max_reply_bytes;
        let Some(c) = self.conns.get_mut(&to) else {
            return;
        };
        c.reply_bytes = c.reply_bytes.saturating_add(frame.len());
        if c.reply_bytes > max {
            self.reject("slow_consumer");
            self.close(
                to,
                CloseCode::SLOW_CONSUMER,
                "slow consumer: reconnect and resync",
            );
            return;
        }
        self.send(to, kind, frame);
    }

    fn forget(&mut self, conn: ConnId, c: Conn) {
        let removed = self.presence.leave(c.presence);
        self.broadcast_presence(removed);
        if c.protocol == Protocol::Native {
            self.doc.crdt_mut().forget(conn);
        }
    }

    fn close(&mut self, conn: ConnId, code: u16, reason: &str) {
        if let Some(c) = self.conns.remove(&conn) {
            self.forget(conn, c);
            // Nothing more is sent to it in this batch but the close.
            self.batch.output.sends.retain(|s| s.to != conn);
            self.batch.output.closes.push(Close {
                conn,
                code,
                reason: reason.to_string(),
            });
        }
    }

    fn broadcast_presence(&mut self, changed: Vec<PresenceEntry>) {
        if changed.is_empty() {
            return;
        }
        let b = self.batch.output.presence.get_or_insert_with(|| Broadcast {
            entries: Vec::new(),
            yjs: Vec::new(),
            native: Vec::new(),
        });
        // A later change of the same client replaces the earlier one.
        for e in changed {
            match b.entries.iter_mut().find(|x| x.client == e.client) {
                Some(x) => *x = e,
                None => b.entries.push(e),
            }
        }
    }

    /// A request for what `conn` lacks from state vector `sv` (sync step 1,
    /// `YrsSyncRequest`): answered at the end of the batch.
    fn want_yrs_diff(&mut self, conn: ConnId, sv: &[u8]) {
        match decode_state_vector(sv) {
            Ok(sv) => {
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.want_yrs_diff(sv);
                }
            }
            Err(e) => {
                self.reject("malformed");
                self.close(conn, CloseCode::MALFORMED, &e);
            }
        }
    }

    fn yjs_message(&mut self, conn: ConnId, msg: YwsMessage) {
        match msg {
            YwsMessage::SyncStep1(sv) => self.want_yrs_diff(conn, &sv),
            YwsMessage::SyncStep2(u) | YwsMessage::Update(u) => {
                if !self.writable(conn) {
                    // y-websocket has no way to say so: dropped, counted.
                    self.reject("read_only");
                    return;
                }
                self.accept_update(conn, u);
            }
            YwsMessage::Awareness(entries) => self.presence_from(conn, entries),
            YwsMessage::AwarenessQuery => {
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.awareness_query = true;
                }
            }
            // Auth messages are the server's to send; unknown kinds are
            // ignored, as y-websocket servers do.
            YwsMessage::Auth | YwsMessage::Custom(_) => {}
        }
    }

    fn presence_from(&mut self, conn: ConnId, entries: Vec<PresenceEntry>) {
        if entries.iter().any(|e| {
            e.state
                .as_ref()
                .is_some_and(|s| s.len() > self.limits.max_presence_bytes)
        }) {
            self.reject("too_large");
            let reason = format!(
                "a presence state may be at most {} bytes",
                self.limits.max_presence_bytes
            );
            self.close(conn, CloseCode::TOO_LARGE, &reason);
            return;
        }
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let max_ids = match c.protocol {
            Protocol::Yjs => self.limits.max_presence_ids,
            Protocol::Native => 1,
        };
        let mut owned = std::mem::take(&mut c.presence);
        let joined = c.joined;
        let result = self
            .presence
            .apply(conn, joined, &mut owned, max_ids, entries);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.presence = owned;
        }
        match result {
            Ok(applied) => {
                for _ in 0..applied.spoofed {
                    self.reject("presence_not_owned");
                }
                self.broadcast_presence(applied.changed);
            }
            Err(_) => {
                self.reject("too_many_ids");
                let reason = format!("a connection may hold at most {max_ids} presence ids");
                self.close(conn, CloseCode::TOO_MANY, &reason);
            }
        }
    }

    /// Integrates a Yjs update from `conn`; false if the connection was
    /// closed for it.
    fn accept_update(&mut self, conn: ConnId, update: Vec<u8>) -> bool {
        match self.doc.apply_yrs_update_releasing(&update) {
            Ok(Applied {
                changed,
                released,
                dropped,
                waits,
            }) => {
                self.batch.stats.ops.push("yrs_update");
                if dropped > 0 {
                    // What the dropped updates waited for may never come
                    // unasked; whoever has them sends them again.
                    self.batch.stats.rejected.push("held_dropped");
                    self.ask_everyone = true;
                }
                // Already stored (when they arrived); whoever joined since
                // has not seen them.
                for u in released {
                    self.batch.output.updates.push((FROM_ROOM, u));
                }
                if changed {
                    let seq = self.next_seq;
                    self.next_seq += 1;
                    self.batch.entries.push(LogEntry {
                        seq,
                        kind: EntryKind::Yrs,
                        data: update.clone(),
                    });
                    // A waiting update is forwarded when it is released
                    // (above, in a later batch), as the room has it then.
                    if !waits {
                        self.batch.output.updates.push((conn, update));
                    }
                }
                true
            }
            Err(e) => {
                let (reason, code) = update_refusal(&e);
                self.reject(reason);
                if e == DocError::Panicked {
                    self.batch.output.poisoned = true;
                }
                self.close(conn, code, &e.to_string());
                false
            }
        }
    }

    fn refuse_write(&mut self, conn: ConnId) {
        self.reject("read_only");
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        // One refusal per batch is enough to tell it.
        if std::mem::replace(&mut c.refused_write, true) {
            return;
        }
        let f = Frame::Error {
            code: Frame::ERROR_READ_ONLY,
            reason: "this connection's token is read-only".into(),
        };
        self.send(conn, "error", f.encode());
    }

    fn native_sync(&mut self, conn: ConnId, msg: SyncMsg) {
        let writable = self.writable(conn);
        match msg {
            SyncMsg::Delta { .. } if !writable => self.refuse_write(conn),
            SyncMsg::SyncRequest {
                session,
                context,
                reply,
            } => {
                // Answered at the end of the batch, the latest one only.
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.sync_request = Some(SyncMsg::SyncRequest {
                        session,
                        context,
                        // A read-only peer is not asked for its changes.
                        reply: reply && writable,
                    });
                }
            }
            msg => {
                if matches!(msg, SyncMsg::Ack { .. }) {
                    if let Some(c) = self.conns.get_mut(&conn) {
                        c.awaiting_ack = false;
                    }
                }
                let is_delta = matches!(msg, SyncMsg::Delta { .. });
                match self.doc.crdt_mut().receive(conn, msg) {
                    Ok(out) => {
                        if is_delta {
                            self.batch.stats.ops.push("delta_join");
                        }
                        self.take_outgoing(out);
                    }
                    Err(e) => {
                        self.reject("malformed");
                        self.close(conn, CloseCode::MALFORMED, &e.to_string());
                    }
                }
            }
        }
    }

    fn take_outgoing(&mut self, out: Outgoing<DocStore>) {
        if let Some(delta) = out.persist {
            let data = crate::codec::encode(&delta).expect("deltas always serialize");
            let seq = self.next_seq;
            self.next_seq += 1;
            self.batch.entries.push(LogEntry {
                seq,
                kind: EntryKind::Crdt,
                data,
            });
        }
        for (to, m) in out.messages {
            if matches!(m, SyncMsg::Delta { .. }) {
                if let Some(c) = self.conns.get_mut(&to) {
                    c.awaiting_ack = true;
                }
            }
            let kind = m.kind();
            self.reply(to, kind, Frame::Sync(m).encode());
        }
    }

    /// The batch's one answer per query kind for `conn`, from the document
    /// as the batch left it.
    fn answer_queries(&mut self, conn: ConnId) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let protocol = c.protocol;
        let diff_from = c.yrs_diff.take();
        let awareness = std::mem::take(&mut c.awareness_query);
        let request = c.sync_request.take();
        c.refused_write = false;
        if let Some(sv) = diff_from {
            match guarded_diff(&self.doc, &sv) {
                Some(diff) => match protocol {
                    Protocol::Yjs => self.reply(conn, "sync_step2", yws::sync_step2(&diff)),
                    Protocol::Native => {
                        let f = Frame::YrsUpdate {
                            update: Bytes(diff),
                        };
                        self.reply(conn, "yrs_update", f.encode());
                    }
                },
                None => {
                    self.reject("bad_update");
                    self.batch.output.poisoned = true;
                    self.close(conn, CloseCode::INTERNAL, "the room is reloading");
                }
            }
        }
        if awareness {
            let present = self.presence.present();
            self.reply(conn, "awareness", yws::awareness(&present));
        }
        if let Some(req) = request {
            match self.doc.crdt_mut().receive(conn, req) {
                Ok(out) => self.take_outgoing(out),
                Err(e) => {
                    self.reject("malformed");
                    self.close(conn, CloseCode::MALFORMED, &e.to_string());
                }
            }
        }
    }

    /// Offers new CRDT changes to native peers not already waiting to
    /// acknowledge a delta (one interval in flight per peer: resending a
    /// growing interval before the ack would multiply traffic).
    fn push_native(&mut self) {
        let targets: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.protocol == Protocol::Native && c.hello && !c.awaiting_ack)
            .map(|(id, _)| *id)
            .collect();
        if targets.is_empty() {
            return;
        }
        let out = self.doc.crdt_mut().push(&targets);
        self.take_outgoing(out);
    }
}

/// Decodes a y-websocket frame under `limits`.
pub fn decode_yjs(limits: &RoomLimits, bytes: &[u8]) -> Result<Vec<YwsMessage>, YwsError> {
    yws::decode_frame(bytes, limits.max_messages_per_frame, limits.max_depth)
}

/// A state vector (v1) from a client, checked before yrs reads it.
fn decode_state_vector(bytes: &[u8]) -> Result<StateVector, String> {
    super::guard::check_state_vector_v1(bytes).map_err(|e| format!("bad state vector: {e}"))?;
    StateVector::decode_v1(bytes).map_err(|e| format!("bad state vector: {e}"))
}

/// What the document has beyond `sv`, or `None` if yrs panicked.
fn guarded_diff(doc: &SharedDoc, sv: &StateVector) -> Option<Vec<u8>> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| doc.yrs_diff_from(sv))).ok()
}

/// The metric reason and close code for a refused y-websocket frame.
fn yws_refusal(e: &YwsError) -> (&'static str, u16) {
    (e.metric(), e.close_code())
}

/// The metric reason and close code for a refused update.
fn update_refusal(e: &DocError) -> (&'static str, u16) {
    match e {
        DocError::TooDeep(_) => ("too_deep", CloseCode::TOO_NESTED),
        // The room reloads: everyone reconnects, the sender too.
        DocError::Panicked => ("yrs_panicked", CloseCode::INTERNAL),
        _ => ("bad_update", CloseCode::BAD_UPDATE),
    }
}
