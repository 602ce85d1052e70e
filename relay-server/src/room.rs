//! Rooms: one task per loaded room owns its document and its connections.
//!
//! A room task takes whatever inputs are waiting, applies them to the
//! document, appends the accepted updates to storage in one write (group
//! commit), and only once that write is durable sends anything: replies,
//! forwarded updates, acknowledgements. So no client ever sees an update
//! that a crash could take back. Rooms load on first use and unload after
//! an idle timeout without connections.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use neuroplex_core::ReplicaId;
use neuroplex_core::doc::{
    CloseCode, DocError, Frame, PROTOCOL_VERSION, PresenceEntry, PresenceMap, SharedDoc,
};
use neuroplex_core::sync::{Bytes, Config as SyncConfig, Message as SyncMsg};
use tokio::sync::{mpsc, oneshot};
use yrs::sync::awareness::{AwarenessUpdate, AwarenessUpdateEntry};
use yrs::sync::{Message as YMessage, SyncMessage};
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;

use crate::fanout::FanOut;
use crate::metrics::{Direction, Endpoint, Metrics};
use crate::outbox::Outbox;
use crate::queue::Outbound;
use crate::storage::{Entry, EntryKind, Storage};

/// A connection's number, unique in the process.
pub type ConnId = u64;

/// Limits and timings of rooms.
#[derive(Clone, Debug)]
pub struct RoomConfig {
    /// A room without connections for this long is unloaded.
    pub idle_timeout: Duration,
    /// Largest message accepted from a client.
    pub max_message_bytes: usize,
    /// Compact a room's log into a snapshot after this many entries...
    pub compact_entries: usize,
    /// ...or this many bytes.
    pub compact_bytes: usize,
    /// Most inputs handled (and committed) together.
    pub max_batch: usize,
}

impl Default for RoomConfig {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(30),
            max_message_bytes: 16 << 20,
            compact_entries: 1000,
            compact_bytes: 8 << 20,
            max_batch: 512,
        }
    }
}

/// What a connection tells its room.
pub enum Input {
    /// A new connection.
    Join {
        /// Its number.
        id: ConnId,
        /// Whether it may change the document.
        writable: bool,
        /// Where the room sends to it.
        out: Arc<Outbox>,
        /// Answered once the room is loaded (or failed to load).
        joined: oneshot::Sender<Result<(), String>>,
    },
    /// The connection closed.
    Leave {
        /// Its number.
        id: ConnId,
    },
    /// Decoded y-websocket messages (one client frame may hold several).
    Yjs {
        /// From this connection.
        id: ConnId,
        /// The messages, in order.
        messages: Vec<YMessage>,
    },
    /// A decoded native frame.
    Native {
        /// From this connection.
        id: ConnId,
        /// The frame.
        frame: Frame,
    },
    /// The relay is stopping: finish what is queued, then close everyone
    /// with "going away".
    Shutdown,
}

/// The loaded rooms, by name.
pub struct Rooms {
    rooms: Mutex<HashMap<String, mpsc::Sender<Input>>>,
    storage: Storage,
    metrics: Arc<Metrics>,
    config: RoomConfig,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Rooms {
    /// No rooms loaded yet.
    pub fn new(storage: Storage, metrics: Arc<Metrics>, config: RoomConfig) -> Arc<Self> {
        Arc::new(Self {
            rooms: Mutex::new(HashMap::new()),
            storage,
            metrics,
            config,
            tasks: Mutex::new(Vec::new()),
        })
    }

    /// Joins a connection to `room`, loading the room if needed. Returns
    /// the channel to send the connection's inputs to.
    pub async fn join(
        self: &Arc<Self>,
        room: &str,
        id: ConnId,
        writable: bool,
        out: Arc<Outbox>,
    ) -> Result<mpsc::Sender<Input>, String> {
        loop {
            let tx = self.get_or_load(room);
            let (joined, wait) = oneshot::channel();
            let sent = tx
                .send(Input::Join {
                    id,
                    writable,
                    out: out.clone(),
                    joined,
                })
                .await;
            if sent.is_ok() {
                match wait.await {
                    Ok(Ok(())) => return Ok(tx),
                    Ok(Err(e)) => return Err(e),
                    // The room unloaded as we joined: load it again.
                    Err(_) => {}
                }
            }
            tokio::task::yield_now().await;
        }
    }

    fn get_or_load(self: &Arc<Self>, room: &str) -> mpsc::Sender<Input> {
        let mut rooms = self.rooms.lock().expect("rooms lock");
        if let Some(tx) = rooms.get(room) {
            if !tx.is_closed() {
                return tx.clone();
            }
        }
        let (tx, rx) = mpsc::channel(1024);
        rooms.insert(room.to_owned(), tx.clone());
        self.metrics.room_loaded();
        let me = self.clone();
        let name = room.to_owned();
        let task = tokio::spawn(async move {
            room_task(me.clone(), name.clone(), rx).await;
            me.metrics.room_unloaded();
        });
        let mut tasks = self.tasks.lock().expect("tasks lock");
        tasks.retain(|t| !t.is_finished());
        tasks.push(task);
        tx
    }

    /// Removes `room` if its channel is still `rx`'s and nothing is
    /// waiting in it; the room task then ends. Called by an idle room.
    fn unload_if_idle(&self, room: &str, rx: &mpsc::Receiver<Input>) -> bool {
        let mut rooms = self.rooms.lock().expect("rooms lock");
        if !rx.is_empty() {
            return false;
        }
        rooms.remove(room);
        true
    }

    /// Number of loaded rooms.
    pub fn loaded(&self) -> usize {
        self.rooms.lock().expect("rooms lock").len()
    }

    /// Tells every room to finish and close its connections with "going
    /// away", and waits for them (up to `deadline`).
    pub async fn shutdown(&self, deadline: Duration) {
        let senders: Vec<_> = self
            .rooms
            .lock()
            .expect("rooms lock")
            .values()
            .cloned()
            .collect();
        for tx in senders {
            let _ = tx.send(Input::Shutdown).await;
        }
        let tasks: Vec<_> = std::mem::take(&mut *self.tasks.lock().expect("tasks lock"));
        let _ = tokio::time::timeout(deadline, futures_util::future::join_all(tasks)).await;
    }
}

struct Conn {
    out: Arc<Outbox>,
    writable: bool,
    /// Presence clients this connection announced (removed when it leaves).
    presence: BTreeSet<u64>,
    /// Native: Yjs updates received, for `YrsSaved`.
    yrs_received: u64,
    /// Native: the Hello arrived.
    hello: bool,
    /// Native: a delta was sent and its acknowledgement is awaited.
    awaiting_ack: bool,
}

/// What one batch of inputs produced, sent once its entries are durable.
#[derive(Default)]
struct Batch {
    entries: Vec<Entry>,
    /// Replies and other per-connection frames, in order.
    direct: Vec<(ConnId, Outbound, &'static str)>,
    /// Accepted Yjs updates and who sent them.
    updates: Vec<(ConnId, Vec<u8>)>,
    /// Changed presence, for everyone.
    presence: Vec<PresenceEntry>,
    /// Native connections whose Yjs updates became durable.
    saved: BTreeSet<ConnId>,
    /// Connections to close after the batch (code, reason).
    closes: Vec<(ConnId, u16, String)>,
    /// The document is unusable (yrs panicked): reload the room.
    poisoned: bool,
}

struct Room {
    name: String,
    rooms: Arc<Rooms>,
    doc: SharedDoc,
    presence: PresenceMap,
    conns: BTreeMap<ConnId, Conn>,
    next_seq: u64,
    log_entries: usize,
    log_bytes: usize,
    compacting: Arc<std::sync::atomic::AtomicBool>,
    /// Connections closed during a batch, closed for real after it.
    closing: Vec<(ConnId, Arc<Outbox>)>,
}

fn random_u64() -> u64 {
    rand::random()
}

async fn load(rooms: &Arc<Rooms>, name: &str) -> Result<Room, String> {
    let stored = rooms
        .storage
        .load(name)
        .await
        .map_err(|e| format!("cannot load room: {e}"))?;
    let sync_config = SyncConfig {
        max_message_bytes: rooms.config.max_message_bytes,
        ..SyncConfig::default()
    };
    let crdt = stored
        .entries
        .iter()
        .filter(|e| e.kind == EntryKind::Crdt)
        .map(|e| e.data.as_slice());
    let yrs = stored
        .entries
        .iter()
        .filter(|e| e.kind == EntryKind::Yrs)
        .map(|e| e.data.as_slice());
    // The relay makes no CRDT changes of its own, so its replica id only
    // names it in contexts it never adds to.
    let doc = SharedDoc::restore(
        ReplicaId::new(0),
        random_u64(),
        random_u64(),
        sync_config,
        stored.snapshot.as_ref().map(|(_, s)| s),
        crdt,
        yrs,
    )
    .map_err(|e| format!("stored room does not load: {e}"))?;
    Ok(Room {
        name: name.to_owned(),
        rooms: rooms.clone(),
        doc,
        presence: PresenceMap::new(),
        conns: BTreeMap::new(),
        next_seq: stored.last_seq() + 1,
        log_entries: stored.entries.len(),
        log_bytes: stored.log_bytes(),
        compacting: Default::default(),
        closing: Vec::new(),
    })
}

async fn room_task(rooms: Arc<Rooms>, name: String, mut rx: mpsc::Receiver<Input>) {
    let mut room = match load(&rooms, &name).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(room = %name, error = %e, "room failed to load");
            rooms.rooms.lock().expect("rooms lock").remove(&name);
            rx.close();
            while let Ok(input) = rx.try_recv() {
                if let Input::Join { joined, .. } = input {
                    let _ = joined.send(Err(e.clone()));
                }
            }
            return;
        }
    };
    tracing::debug!(room = %name, seq = room.next_seq, "room loaded");
    let max_batch = rooms.config.max_batch;
    let mut inputs = Vec::with_capacity(max_batch);
    loop {
        let got = if room.conns.is_empty() {
            match tokio::time::timeout(
                rooms.config.idle_timeout,
                rx.recv_many(&mut inputs, max_batch),
            )
            .await
            {
                Ok(n) => n,
                Err(_) => {
                    // An idle room leaves a snapshot behind, so that its next
                    // load reads one row instead of the whole log.
                    room.compact_now().await;
                    if rooms.unload_if_idle(&name, &rx) {
                        tracing::debug!(room = %name, "room unloaded (idle)");
                        return;
                    }
                    continue;
                }
            }
        } else {
            rx.recv_many(&mut inputs, max_batch).await
        };
        if got == 0 {
            return; // every sender is gone
        }
        let mut batch = Batch::default();
        let mut shutdown = false;
        for input in inputs.drain(..) {
            match input {
                Input::Shutdown => shutdown = true,
                other => room.handle(other, &mut batch),
            }
        }
        room.push_native(&mut batch);
        if !room.commit(&mut batch).await {
            room.close_all(
                CloseCode::INTERNAL,
                "the relay could not store an update",
                false,
            );
            drop_room(&rooms, &name, rx);
            return;
        }
        let poisoned = batch.poisoned;
        room.flush(batch);
        if !poisoned {
            // After the flush: encoding a snapshot must not delay the
            // batch's replies and forwards.
            room.maybe_compact();
        }
        if poisoned {
            // The document may be inconsistent (yrs failed inside an
            // update): its connections were closed; the next one loads the
            // room afresh from storage.
            drop_room(&rooms, &name, rx);
            return;
        }
        if shutdown {
            room.close_all(CloseCode::GOING_AWAY, "the relay is shutting down", true);
            drop_room(&rooms, &name, rx);
            return;
        }
    }
}

/// Takes a room out of the map and answers what is still queued for it.
fn drop_room(rooms: &Rooms, name: &str, mut rx: mpsc::Receiver<Input>) {
    {
        let mut map = rooms.rooms.lock().expect("rooms lock");
        map.remove(name);
    }
    rx.close();
    // Joins waiting in the channel see their answer dropped and retry.
    while rx.try_recv().is_ok() {}
}

impl Room {
    fn metrics(&self) -> &Metrics {
        &self.rooms.metrics
    }

    fn handle(&mut self, input: Input, batch: &mut Batch) {
        match input {
            Input::Join {
                id,
                writable,
                out,
                joined,
            } => {
                let endpoint = out.endpoint();
                self.conns.insert(
                    id,
                    Conn {
                        out,
                        writable,
                        presence: BTreeSet::new(),
                        yrs_received: 0,
                        hello: false,
                        awaiting_ack: false,
                    },
                );
                let _ = joined.send(Ok(()));
                let present = self.presence.present();
                match endpoint {
                    Endpoint::Yjs => {
                        // Sync step 1 makes the client send what it has
                        // (its offline edits); then who is here.
                        let step1 = YMessage::Sync(SyncMessage::SyncStep1(
                            yrs::StateVector::decode_v1(&self.doc.yrs_state_vector())
                                .unwrap_or_default(),
                        ));
                        batch
                            .direct
                            .push((id, Outbound::Frame(step1.encode_v1()), "sync_step1"));
                        if !present.is_empty() {
                            batch.direct.push((
                                id,
                                Outbound::Frame(awareness_message(&present)),
                                "awareness",
                            ));
                        }
                    }
                    Endpoint::Sync => {
                        let hello = Frame::Hello {
                            protocol: PROTOCOL_VERSION,
                            replica: 0,
                            writable,
                        };
                        batch
                            .direct
                            .push((id, Outbound::Frame(hello.encode()), "hello"));
                        let req = Frame::YrsSyncRequest {
                            state_vector: Bytes(self.doc.yrs_state_vector()),
                        };
                        batch
                            .direct
                            .push((id, Outbound::Frame(req.encode()), "yrs_sync_request"));
                        if !present.is_empty() {
                            let p = Frame::Presence { entries: present };
                            batch
                                .direct
                                .push((id, Outbound::Frame(p.encode()), "presence"));
                        }
                    }
                }
            }
            Input::Leave { id } => {
                if let Some(conn) = self.conns.remove(&id) {
                    batch.presence.extend(self.presence.remove(conn.presence));
                    if conn.out.endpoint() == Endpoint::Sync {
                        self.doc.crdt_mut().forget(id);
                    }
                }
            }
            Input::Yjs { id, messages } => {
                for m in messages {
                    if !self.conns.contains_key(&id) {
                        break;
                    }
                    self.handle_yjs(id, m, batch);
                }
            }
            Input::Native { id, frame } => {
                if self.conns.contains_key(&id) {
                    self.handle_native(id, frame, batch);
                }
            }
            Input::Shutdown => {}
        }
    }

    fn writable(&self, id: ConnId) -> bool {
        self.conns.get(&id).is_some_and(|c| c.writable)
    }

    /// Integrates a Yjs update from `id`; false if the connection must go.
    fn accept_update(&mut self, id: ConnId, update: Vec<u8>, batch: &mut Batch) -> bool {
        match self.doc.apply_yrs_update(&update) {
            Ok(changed) => {
                self.rooms.metrics.crdt_op("yrs_update");
                if changed {
                    batch.entries.push(Entry {
                        seq: self.next_seq,
                        kind: EntryKind::Yrs,
                        data: update.clone(),
                    });
                    self.next_seq += 1;
                    batch.updates.push((id, update));
                }
                true
            }
            Err(e) => {
                self.rooms.metrics.rejected("bad_update");
                if e == DocError::Panicked {
                    batch.poisoned = true;
                }
                self.close(id, CloseCode::BAD_UPDATE, &e.to_string(), batch);
                false
            }
        }
    }

    fn close(&mut self, id: ConnId, code: u16, reason: &str, batch: &mut Batch) {
        batch.closes.push((id, code, reason.to_owned()));
        // Nothing more from it is handled in this batch.
        if let Some(conn) = self.conns.remove(&id) {
            batch.presence.extend(self.presence.remove(conn.presence));
            if conn.out.endpoint() == Endpoint::Sync {
                self.doc.crdt_mut().forget(id);
            }
            // Keep the outbox to close it after the batch.
            batch.direct.retain(|(to, _, _)| *to != id);
            self.closing.push((id, conn.out));
        }
    }

    fn handle_yjs(&mut self, id: ConnId, msg: YMessage, batch: &mut Batch) {
        match msg {
            YMessage::Sync(SyncMessage::SyncStep1(sv)) => {
                let diff = self.doc.yrs_diff_from(&sv);
                let reply = YMessage::Sync(SyncMessage::SyncStep2(diff)).encode_v1();
                batch
                    .direct
                    .push((id, Outbound::Frame(reply), "sync_step2"));
            }
            YMessage::Sync(SyncMessage::SyncStep2(u)) | YMessage::Sync(SyncMessage::Update(u)) => {
                if !self.writable(id) {
                    self.metrics().rejected("read_only");
                    return;
                }
                self.accept_update(id, u, batch);
            }
            YMessage::Awareness(update) => {
                let mut entries = Vec::with_capacity(update.clients.len());
                for (client, e) in update.clients {
                    let state = if &*e.json == "null" {
                        None
                    } else if serde_json::from_str::<serde::de::IgnoredAny>(&e.json).is_ok() {
                        Some(e.json.to_string())
                    } else {
                        self.metrics().rejected("malformed");
                        self.close(
                            id,
                            CloseCode::MALFORMED,
                            "awareness state is not JSON",
                            batch,
                        );
                        return;
                    };
                    entries.push(PresenceEntry {
                        client: client.get(),
                        clock: e.clock,
                        state,
                    });
                }
                self.presence_from(id, entries, batch);
            }
            YMessage::AwarenessQuery => {
                let present = self.presence.present();
                batch.direct.push((
                    id,
                    Outbound::Frame(awareness_message(&present)),
                    "awareness",
                ));
            }
            // Auth messages are the server's to send; unknown kinds are
            // ignored, as y-websocket servers do.
            YMessage::Auth(_) | YMessage::Custom(..) => {}
        }
    }

    fn presence_from(&mut self, id: ConnId, entries: Vec<PresenceEntry>, batch: &mut Batch) {
        if let Some(conn) = self.conns.get_mut(&id) {
            for e in &entries {
                if e.state.is_some() {
                    conn.presence.insert(e.client);
                } else {
                    conn.presence.remove(&e.client);
                }
            }
        }
        batch.presence.extend(self.presence.apply(entries));
    }

    fn handle_native(&mut self, id: ConnId, frame: Frame, batch: &mut Batch) {
        let hello = self.conns.get(&id).is_some_and(|c| c.hello);
        match frame {
            Frame::Hello { protocol, .. } => {
                if protocol != PROTOCOL_VERSION {
                    let reason = format!(
                        "native protocol {protocol} is not supported (this relay speaks {PROTOCOL_VERSION})"
                    );
                    self.close(id, CloseCode::UNSUPPORTED_PROTOCOL, &reason, batch);
                } else if let Some(c) = self.conns.get_mut(&id) {
                    c.hello = true;
                }
            }
            _ if !hello => {
                self.metrics().rejected("malformed");
                self.close(
                    id,
                    CloseCode::MALFORMED,
                    "the first frame must be Hello",
                    batch,
                );
            }
            Frame::Sync(msg) => self.native_sync(id, msg, batch),
            Frame::YrsSyncRequest { state_vector } => match self.doc.yrs_diff(&state_vector.0) {
                Ok(diff) => {
                    let f = Frame::YrsUpdate {
                        update: Bytes(diff),
                    };
                    batch
                        .direct
                        .push((id, Outbound::Frame(f.encode()), "yrs_update"));
                }
                Err(e) => {
                    self.metrics().rejected("malformed");
                    self.close(id, CloseCode::MALFORMED, &e.to_string(), batch);
                }
            },
            Frame::YrsUpdate { update } => {
                if !self.writable(id) {
                    self.refuse_write(id, batch);
                    return;
                }
                if let Some(c) = self.conns.get_mut(&id) {
                    c.yrs_received += 1;
                }
                if self.accept_update(id, update.0, batch) {
                    batch.saved.insert(id);
                }
            }
            Frame::Presence { entries } => {
                if entries.iter().any(|e| {
                    e.state
                        .as_ref()
                        .is_some_and(|s| serde_json::from_str::<serde::de::IgnoredAny>(s).is_err())
                }) {
                    self.metrics().rejected("malformed");
                    self.close(
                        id,
                        CloseCode::MALFORMED,
                        "presence state is not JSON",
                        batch,
                    );
                    return;
                }
                self.presence_from(id, entries, batch);
            }
            Frame::YrsSaved { .. } | Frame::Error { .. } => {}
        }
    }

    fn refuse_write(&mut self, id: ConnId, batch: &mut Batch) {
        self.metrics().rejected("read_only");
        let f = Frame::Error {
            code: Frame::ERROR_READ_ONLY,
            reason: "this connection's token is read-only".into(),
        };
        batch
            .direct
            .push((id, Outbound::Frame(f.encode()), "error"));
    }

    fn native_sync(&mut self, id: ConnId, msg: SyncMsg, batch: &mut Batch) {
        let msg = match msg {
            SyncMsg::Delta { .. } if !self.writable(id) => {
                self.refuse_write(id, batch);
                return;
            }
            // A read-only peer is not asked for its changes.
            SyncMsg::SyncRequest {
                session, context, ..
            } if !self.writable(id) => SyncMsg::SyncRequest {
                session,
                context,
                reply: false,
            },
            SyncMsg::Ack { .. } => {
                if let Some(c) = self.conns.get_mut(&id) {
                    c.awaiting_ack = false;
                }
                msg
            }
            other => other,
        };
        let is_delta = matches!(msg, SyncMsg::Delta { .. });
        tracing::debug!(room = %self.name, conn = id, msg = ?msg, "native sync in");
        match self.doc.crdt_mut().receive(id, msg) {
            Ok(out) => {
                if is_delta {
                    self.rooms.metrics.crdt_op("delta_join");
                }
                self.take_outgoing(out, batch);
            }
            Err(e) => {
                self.metrics().rejected("malformed");
                self.close(id, CloseCode::MALFORMED, &e.to_string(), batch);
            }
        }
    }

    fn take_outgoing(
        &mut self,
        out: neuroplex_core::sync::Outgoing<neuroplex_core::doc::DocStore>,
        batch: &mut Batch,
    ) {
        if let Some(delta) = out.persist {
            let data = neuroplex_core::codec::encode(&delta).expect("deltas always serialize");
            batch.entries.push(Entry {
                seq: self.next_seq,
                kind: EntryKind::Crdt,
                data,
            });
            self.next_seq += 1;
        }
        for (to, m) in out.messages {
            tracing::debug!(room = %self.name, conn = to, msg = ?m, "native sync out");
            if matches!(m, SyncMsg::Delta { .. }) {
                if let Some(c) = self.conns.get_mut(&to) {
                    c.awaiting_ack = true;
                }
            }
            let kind = m.kind();
            batch
                .direct
                .push((to, Outbound::Frame(Frame::Sync(m).encode()), kind));
        }
    }

    /// Offers new CRDT changes to native peers not already waiting to
    /// acknowledge a delta (one interval in flight per peer: resending a
    /// growing interval before the ack would multiply traffic).
    fn push_native(&mut self, batch: &mut Batch) {
        let targets: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.out.endpoint() == Endpoint::Sync && c.hello && !c.awaiting_ack)
            .map(|(id, _)| *id)
            .collect();
        if targets.is_empty() {
            return;
        }
        let out = self.doc.crdt_mut().push(&targets);
        self.take_outgoing(out, batch);
    }

    /// Makes the batch's entries durable. False if storage failed.
    async fn commit(&mut self, batch: &mut Batch) -> bool {
        if batch.entries.is_empty() {
            return true;
        }
        let entries = std::mem::take(&mut batch.entries);
        let n = entries.len();
        let bytes: usize = entries.iter().map(|e| e.data.len()).sum();
        let started = Instant::now();
        let result = self.rooms.storage.append(&self.name, entries).await;
        self.rooms.metrics.observe_persist(started.elapsed());
        if let Err(e) = result {
            tracing::error!(room = %self.name, error = %e, "append failed");
            return false;
        }
        self.log_entries += n;
        self.log_bytes += bytes;
        true
    }

    /// The document as a snapshot of the log up to its last entry; the log
    /// counts start again from it.
    fn take_snapshot(&mut self) -> (u64, neuroplex_core::doc::Snapshot) {
        self.log_entries = 0;
        self.log_bytes = 0;
        (self.next_seq - 1, self.doc.snapshot())
    }

    /// Replaces whatever log there is by a snapshot, and waits for it.
    async fn compact_now(&mut self) {
        if self.log_entries == 0 {
            return;
        }
        let (upto, snapshot) = self.take_snapshot();
        if let Err(e) = self.rooms.storage.compact(&self.name, upto, snapshot).await {
            tracing::warn!(room = %self.name, error = %e, "compaction failed; the log stays");
        }
    }

    /// Replaces the log by a snapshot in the background once it is long.
    fn maybe_compact(&mut self) {
        use std::sync::atomic::Ordering;
        let cfg = &self.rooms.config;
        if self.log_entries < cfg.compact_entries && self.log_bytes < cfg.compact_bytes {
            return;
        }
        if self.compacting.swap(true, Ordering::AcqRel) {
            return;
        }
        let (upto, snapshot) = self.take_snapshot();
        let storage = self.rooms.storage.clone();
        let flag = self.compacting.clone();
        let name = self.name.clone();
        tokio::spawn(async move {
            if let Err(e) = storage.compact(&name, upto, snapshot).await {
                tracing::warn!(room = %name, error = %e, "compaction failed; the log stays");
            }
            flag.store(false, Ordering::Release);
        });
    }

    /// Sends what the (now durable) batch produced.
    fn flush(&mut self, batch: Batch) {
        let started = Instant::now();
        let metrics = self.rooms.metrics.clone();
        for (id, item, kind) in batch.direct {
            if let Some(c) = self.conns.get(&id) {
                metrics.message(Direction::Out, kind, item.byte_len());
                c.out.push(item, &metrics);
            }
        }
        if !batch.updates.is_empty() {
            self.fan_out_updates(&batch.updates, &metrics);
        }
        for id in &batch.saved {
            if let Some(c) = self.conns.get(id) {
                let f = Frame::YrsSaved {
                    count: c.yrs_received,
                };
                metrics.message(Direction::Out, "yrs_saved", 0);
                c.out.push_frame(f.encode(), &metrics);
            }
        }
        if !batch.presence.is_empty() {
            let yjs = awareness_message(&batch.presence);
            let native = Frame::Presence {
                entries: batch.presence,
            }
            .encode();
            for c in self.conns.values() {
                let bytes = match c.out.endpoint() {
                    Endpoint::Yjs => yjs.clone(),
                    Endpoint::Sync => native.clone(),
                };
                metrics.message(Direction::Out, "awareness", bytes.len());
                c.out.push_frame(bytes, &metrics);
            }
        }
        for (id, code, reason) in batch.closes {
            if let Some(pos) = self.closing.iter().position(|(c, _)| *c == id) {
                let (_, out) = self.closing.swap_remove(pos);
                out.close(code, reason, true);
            }
        }
        if batch.poisoned {
            // yrs failed inside an update: the in-memory document may be
            // inconsistent. Everyone reconnects to a freshly loaded room.
            self.close_all(CloseCode::INTERNAL, "the room is reloading", true);
        }
        metrics.observe_fanout(started.elapsed());
    }

    fn fan_out_updates(&self, updates: &[(ConnId, Vec<u8>)], metrics: &Metrics) {
        let plan = FanOut::plan(updates);
        let (mut count, mut bytes) = (0, 0);
        for (id, c) in &self.conns {
            for u in plan.for_conn(*id) {
                count += 1;
                bytes += u.len() as u64;
                c.out.push(Outbound::YrsUpdate(u.clone()), metrics);
            }
        }
        metrics.messages(Direction::Out, "update", count, bytes);
    }

    fn close_all(&mut self, code: u16, reason: &str, drain: bool) {
        for (_, c) in std::mem::take(&mut self.conns) {
            c.out.close(code, reason, drain);
        }
        // Connections refused during the batch get their own code if it has
        // not been sent yet (the first close request wins).
        for (_, out) in self.closing.drain(..) {
            out.close(code, reason, drain);
        }
    }
}

/// A y-websocket awareness message for `entries`.
pub fn awareness_message(entries: &[PresenceEntry]) -> Vec<u8> {
    let mut update = AwarenessUpdate {
        clients: HashMap::with_capacity(entries.len()),
    };
    for e in entries {
        update.clients.insert(
            yrs::ClientID::new(e.client),
            AwarenessUpdateEntry {
                clock: e.clock,
                json: e.state.as_deref().unwrap_or("null").into(),
            },
        );
    }
    YMessage::Awareness(update).encode_v1()
}
