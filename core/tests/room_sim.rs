//! Seeded simulation of a room ([`neuroplex_core::doc::Room`]) with honest
//! and hostile clients, disconnects, slow consumers and relay restarts.
//!
//! Each seed builds a room with 2–20 clients: honest clients of both
//! protocols, mixed in a proportion drawn per seed (most seeds mix them,
//! some have one kind only), and hostile clients that each try one attack
//! from docs/PROTOCOL.md's list, on either protocol.
//! - y-websocket clients: a yrs document speaking the y-websocket
//!   protocol, as an unmodified Yjs client does, editing a text and a map
//!   and announcing awareness;
//! - native clients: a `SharedDoc` driven by a `ClientSession`, as the
//!   Rust client and the npm package drive theirs, editing the same text
//!   and map (local yrs transactions, queued with `queue_yrs`) and CRDT
//!   values (a counter and its reset, a multi-value register and its
//!   removal, a set, flags in a nested map), flushing, and setting
//!   presence.
//!
//! Frames travel through per-connection queues delivered in random order
//! of connections (some clients are slow: they read rarely); clients
//! disconnect and come back at random points (a native session is stopped
//! and started again, as its shells do); the relay restarts from exactly
//! what it stored (its log and snapshot, written only when a batch
//! commits). At the end every honest client reconnects and the network
//! drains. Checked:
//! - every honest client holds the same text and map as the room;
//! - every native client holds the room's CRDT state (values and causal
//!   context), and its session ends online and synced (nothing queued, no
//!   delta unacknowledged, every Yjs update it sent reported durable);
//! - a relay restarted from storage holds the same text, map and CRDT
//!   state, at every restart and at the end (nothing persisted, and
//!   nothing any client saw, is lost);
//! - every honest client sees every other honest client's own presence
//!   state, across protocols (no spoofed name, nobody missing);
//! - every hostile connection was closed with its documented code (a
//!   read-only one stays open, and a native one is told 4403), nothing a
//!   read-only connection wrote reached the document, and no honest
//!   connection of either kind was ever closed with a 44xx code (nor did
//!   an honest native client refuse a frame of the relay's).
//!
//! `make test` runs 200 seeds; `NEUROPLEX_SEEDS=n` runs more, and
//! `NEUROPLEX_SEED=s` replays one.
#![cfg(feature = "yrs")]

mod crafted;
mod seeds;

use std::collections::{BTreeMap, VecDeque};

use crafted::put_var;
use neuroplex_core::ReplicaId;
use neuroplex_core::doc::room::{EntryKind, LogEntry, Output};
use neuroplex_core::doc::yws;
use neuroplex_core::doc::{
    ClientSession, CloseCode, ConnId, Frame, Hold, PROTOCOL_VERSION, PresenceClock, PresenceEntry,
    PresenceMap, Protocol, Room, RoomLimits, SessionOutput, SharedDoc, Snapshot,
};
use neuroplex_core::document::{Atom, Document, Value, apply_at, apply_in, remove_in};
use neuroplex_core::sim::Rng;
use neuroplex_core::sync::{Bytes, Config, Message, Payload};
use yrs::types::ToJson;
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{GetString, Map, ReadTxn, StateVector, Text, Transact, Update};

/// What storage holds: a snapshot and the log after it.
#[derive(Default, Clone)]
struct Disk {
    snapshot: Option<(u64, Snapshot)>,
    log: Vec<LogEntry>,
    /// Everything ever stored (for diagnosis).
    all: Vec<LogEntry>,
}

/// What a hostile client tries, and the close code it must get.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Attack {
    /// An update whose value nests far deeper than the bound.
    DeepUpdate,
    /// A presence state nested far deeper than the bound.
    DeepPresence,
    /// One frame of many awareness queries.
    QueryFlood,
    /// One frame of many sync step 1 messages.
    Step1Flood,
    /// An awareness update claiming far more entries than its bytes hold.
    ClaimedCount,
    /// A state vector claiming far more clients than its bytes hold.
    ClaimedStateVector,
    /// Awareness entries for honest clients' ids (of both protocols), with
    /// higher clocks.
    Spoof,
    /// A presence state over the size bound.
    BigPresence,
    /// More presence ids than one connection may hold.
    ManyIds,
    /// Bytes that are not a Yjs update.
    BadUpdate,
    /// An update whose item has its origins in two sequences of one type
    /// (its list and a map entry), and which deletes the type.
    CrossedOrigins,
    /// A read-only connection that writes (dropped, not closed) and sets
    /// its own presence (allowed).
    ReadOnlyWriter,
    /// Native: after its hello, a frame whose length prefix claims far more
    /// than it holds (the bytes of a Yjs update, or presence entries).
    NativeClaimedLength,
    /// Native: a read-only connection that writes text and a CRDT value
    /// (refused with an `Error` frame 4403, not closed) and sets its own
    /// presence (allowed).
    NativeReadOnlyWriter,
}

impl Attack {
    const ALL: [Attack; 14] = [
        Attack::DeepUpdate,
        Attack::DeepPresence,
        Attack::QueryFlood,
        Attack::Step1Flood,
        Attack::ClaimedCount,
        Attack::ClaimedStateVector,
        Attack::Spoof,
        Attack::BigPresence,
        Attack::ManyIds,
        Attack::BadUpdate,
        Attack::CrossedOrigins,
        Attack::ReadOnlyWriter,
        Attack::NativeClaimedLength,
        Attack::NativeReadOnlyWriter,
    ];

    /// The close code the attack must end with; `None`: it stays open (its
    /// attempt is dropped).
    fn expected_close(self) -> Option<u16> {
        match self {
            Attack::DeepUpdate | Attack::DeepPresence => Some(CloseCode::TOO_NESTED),
            Attack::QueryFlood | Attack::Step1Flood | Attack::ManyIds => Some(CloseCode::TOO_MANY),
            Attack::ClaimedCount | Attack::ClaimedStateVector | Attack::NativeClaimedLength => {
                Some(CloseCode::MALFORMED)
            }
            Attack::BigPresence => Some(CloseCode::TOO_LARGE),
            Attack::BadUpdate | Attack::CrossedOrigins => Some(CloseCode::BAD_UPDATE),
            Attack::Spoof | Attack::ReadOnlyWriter | Attack::NativeReadOnlyWriter => None,
        }
    }

    fn writable(self) -> bool {
        !matches!(self, Attack::ReadOnlyWriter | Attack::NativeReadOnlyWriter)
    }

    fn native(self) -> bool {
        matches!(
            self,
            Attack::NativeClaimedLength | Attack::NativeReadOnlyWriter
        )
    }
}

/// An honest client: a yrs document and the client rules of its protocol,
/// y-websocket's (here) or the native one's ([`Native`]).
struct YjsClient {
    /// The Yjs document (for a native client, a handle of its
    /// `SharedDoc`'s).
    doc: yrs::Doc,
    /// A native session, for a client of `/sync`.
    native: Option<Box<Native>>,
    /// Updates waiting for dependencies, kept apart from yrs as the room
    /// keeps them (yrs's own pending merge loses structs).
    hold: Hold,
    name: String,
    /// Own presence clock and whether it announced a state.
    clock: u32,
    /// Own presence state, as last set.
    state: String,
    /// Everyone else's presence as heard on the current connection.
    presence: PresenceMap,
    /// Reads its frames only now and then.
    slow: bool,
}

/// A native client: a `SharedDoc` (Yjs and CRDT values) driven by a
/// `ClientSession`, as the relay's Rust client and the npm package do.
struct Native {
    doc: SharedDoc,
    clock: PresenceClock,
    session: ClientSession,
}

impl Native {
    /// Runs `f` on the session and returns the frames it produced.
    fn with(
        &mut self,
        f: impl FnOnce(&mut ClientSession, &mut SharedDoc, &mut PresenceClock) -> SessionOutput,
    ) -> Vec<Vec<u8>> {
        f(&mut self.session, &mut self.doc, &mut self.clock).frames
    }
}

/// The relay's peer id in a native client's sync replica.
const RELAY_PEER: u64 = 0;

enum Role {
    Honest(YjsClient),
    Hostile {
        attack: Attack,
        id: u64,
        done: bool,
        /// `Error` frames 4403 received on the current connection.
        read_only_errors: usize,
    },
}

struct Client {
    role: Role,
    conn: Option<ConnId>,
}

struct Conn {
    client: usize,
    /// Frames on their way to the relay.
    up: VecDeque<Vec<u8>>,
    /// Frames on their way to the client.
    down: VecDeque<Vec<u8>>,
    /// The relay closed it with this code (delivered after `down` drains).
    closed: Option<u16>,
    /// A native (`/sync`) connection.
    native: bool,
}

enum Event {
    Join(ConnId, Protocol, bool),
    Frame(ConnId, Vec<u8>),
    Leave(ConnId),
}

struct World {
    rng: Rng,
    room: Room,
    disk: Disk,
    inbox: VecDeque<Event>,
    clients: Vec<Client>,
    conns: BTreeMap<ConnId, Conn>,
    next_conn: ConnId,
    /// (client, code): every close of a connection by the relay.
    closes: Vec<(usize, u16)>,
    limits: RoomLimits,
    /// The end: honest clients stay connected.
    final_phase: bool,
}

fn honest(seed: u64, i: usize, slow: bool, native: bool) -> YjsClient {
    let id = (seed.wrapping_mul(1000) + i as u64 + 1) & ((1 << 53) - 1);
    let native = native.then(|| {
        let doc = SharedDoc::new(ReplicaId::new(id), seed ^ id, id, Config::default());
        let clock = PresenceClock::new();
        let session = ClientSession::new(&doc, RELAY_PEER, &clock);
        Box::new(Native {
            doc,
            clock,
            session,
        })
    });
    YjsClient {
        doc: match &native {
            Some(n) => n.doc.yrs().clone(),
            None => yrs::Doc::with_client_id(id),
        },
        native,
        hold: Hold::default(),
        name: format!("user{i}"),
        clock: 0,
        state: String::new(),
        presence: PresenceMap::new(),
        slow,
    }
}

fn state_json(name: &str, clock: u32) -> String {
    format!("{{\"name\":\"{name}\",\"n\":{clock}}}")
}

impl World {
    fn new(seed: u64) -> World {
        let mut rng = Rng::new(seed);
        let n_honest = rng.range(2, 13) as usize;
        let n_hostile = rng.range(0, 20 - n_honest as u64).min(8) as usize;
        // Most seeds mix both protocols; some are all one kind.
        let p_native = *rng.pick(&[0.0, 0.3, 0.5, 0.7, 1.0]).expect("shares");
        let mut clients = Vec::new();
        for i in 0..n_honest {
            let slow = rng.chance(0.2);
            let native = rng.chance(p_native);
            clients.push(Client {
                role: Role::Honest(honest(seed, i, slow, native)),
                conn: None,
            });
        }
        for h in 0..n_hostile {
            let attack = *rng.pick(&Attack::ALL).expect("attacks");
            clients.push(Client {
                role: Role::Hostile {
                    attack,
                    id: (1 << 50) | ((seed & 0xffff_ffff) << 6) | ((h as u64) << 3),
                    done: false,
                    read_only_errors: 0,
                },
                conn: None,
            });
        }
        let limits = RoomLimits::default();
        World {
            room: Room::new(rng.next_u64(), rng.next_u64(), limits.clone()),
            rng,
            disk: Disk::default(),
            inbox: VecDeque::new(),
            clients,
            conns: BTreeMap::new(),
            next_conn: 1,
            closes: Vec::new(),
            limits,
            final_phase: false,
        }
    }

    fn connect(&mut self, c: usize) {
        if self.clients[c].conn.is_some() {
            return;
        }
        let id = self.next_conn;
        self.next_conn += 1;
        let mut conn = Conn {
            client: c,
            up: VecDeque::new(),
            down: VecDeque::new(),
            closed: None,
            native: false,
        };
        let writable = match &mut self.clients[c].role {
            Role::Honest(YjsClient {
                native: Some(n),
                presence,
                name,
                clock,
                state,
                ..
            }) => {
                conn.native = true;
                if state.is_empty() {
                    // Its presence, announced by the session on start.
                    *clock += 1;
                    *state = state_json(name, *clock);
                    n.session.set_presence(&mut n.clock, Some(state.clone()));
                }
                conn.up.extend(n.with(|s, d, k| s.start(d, k)));
                *presence = PresenceMap::new();
                true
            }
            Role::Honest(y) => {
                // As a y-websocket client on open: step 1, then its own
                // presence (a new clock, past any removal the relay made).
                let sv = y.doc.transact().state_vector().encode_v1();
                conn.up.push_back(yws::sync_step1(&sv));
                y.clock += 1;
                if y.state.is_empty() {
                    y.state = state_json(&y.name, y.clock);
                }
                let me = entry(y.doc.client_id().get(), y.clock, &y.state);
                conn.up.push_back(yws::awareness(&[me]));
                y.presence = PresenceMap::new();
                true
            }
            Role::Hostile {
                attack,
                done,
                read_only_errors,
                ..
            } => {
                // Each connection makes its attack once.
                *done = false;
                *read_only_errors = 0;
                conn.native = attack.native();
                attack.writable()
            }
        };
        let protocol = if conn.native {
            Protocol::Native
        } else {
            Protocol::Yjs
        };
        self.inbox.push_back(Event::Join(id, protocol, writable));
        self.conns.insert(id, conn);
        self.clients[c].conn = Some(id);
    }

    /// The client's side of the connection goes away (frames in flight
    /// both ways are lost); the relay sees it leave.
    fn disconnect(&mut self, c: usize) {
        let Some(id) = self.clients[c].conn.take() else {
            return;
        };
        self.conns.remove(&id);
        self.inbox
            .retain(|e| !matches!(e, Event::Frame(cid, _) if *cid == id));
        self.inbox.push_back(Event::Leave(id));
        if let Role::Honest(y) = &mut self.clients[c].role {
            y.presence = PresenceMap::new();
            if let Some(n) = &mut y.native {
                let _ = n.with(|s, d, _| s.stop(d));
            }
        }
    }

    fn honest_edit(&mut self, c: usize) {
        let r = self.rng.next_u64();
        let Role::Honest(y) = &mut self.clients[c].role else {
            return;
        };
        let update = {
            let text = y.doc.get_or_insert_text("notes");
            let map = y.doc.get_or_insert_map("todo");
            let mut txn = y.doc.transact_mut();
            let len = text.len(&txn);
            match r % 4 {
                0 | 1 => {
                    let at = if len == 0 {
                        0
                    } else {
                        (r >> 8) as u32 % (len + 1)
                    };
                    text.insert(&mut txn, at, &format!("{}{} ", y.name, r % 97));
                }
                2 if len > 0 => {
                    let at = (r >> 8) as u32 % len;
                    let n = ((r >> 20) as u32 % 4 + 1).min(len - at);
                    text.remove_range(&mut txn, at, n);
                }
                _ => {
                    let key = format!("k{}", (r >> 8) % 6);
                    map.insert(&mut txn, key, format!("{}:{}", y.name, r % 1000));
                }
            }
            txn.encode_update_v1()
        };
        let frames = match &mut y.native {
            Some(n) => {
                n.session.queue_yrs(update);
                if (r >> 40) % 2 == 0 {
                    crdt_edit(n, &y.name, r >> 41);
                }
                n.with(|s, d, _| s.flush(d))
            }
            None => vec![yws::update(&update)],
        };
        if let Some(id) = self.clients[c].conn {
            if let Some(conn) = self.conns.get_mut(&id) {
                conn.up.extend(frames);
            }
        }
    }

    fn honest_presence(&mut self, c: usize) {
        let Role::Honest(y) = &mut self.clients[c].role else {
            return;
        };
        y.clock += 1;
        y.state = state_json(&y.name, y.clock);
        let me = entry(y.doc.client_id().get(), y.clock, &y.state);
        let frames = match &mut y.native {
            Some(n) => {
                let state = y.state.clone();
                n.session.set_presence(&mut n.clock, Some(state));
                n.with(|s, d, _| s.flush(d))
            }
            None => vec![yws::awareness(&[me])],
        };
        if let Some(id) = self.clients[c].conn {
            if let Some(conn) = self.conns.get_mut(&id) {
                conn.up.extend(frames);
            }
        }
    }

    /// A hostile client's attack, once per connection.
    fn attack(&mut self, c: usize) {
        // Whom it can see: honest clients present in the room. (Neither
        // protocol authenticates presence ids, so an id nobody holds can be
        // taken by anyone; see docs/PROTOCOL.md. What must hold is that a
        // held id cannot be changed by another connection.)
        let present: Vec<u64> = self.room.present().iter().map(|e| e.client).collect();
        let honest_ids: Vec<u64> = self
            .clients
            .iter()
            .filter_map(|cl| match &cl.role {
                Role::Honest(y) => Some(y.doc.client_id().get()),
                _ => None,
            })
            .filter(|id| present.contains(id))
            .collect();
        let Some(id) = self.clients[c].conn else {
            return;
        };
        let Role::Hostile {
            attack,
            id: me,
            done,
            ..
        } = &mut self.clients[c].role
        else {
            return;
        };
        if *done {
            return;
        }
        *done = true;
        let limits = &self.limits;
        let frames: Vec<Vec<u8>> = match *attack {
            Attack::DeepUpdate => vec![yws::update(&deep_update(limits.max_depth * 8 + 1000))],
            Attack::DeepPresence => {
                let deep = "[".repeat(100_000) + &"]".repeat(100_000);
                vec![yws::awareness(&[entry(*me, 1, &deep)])]
            }
            Attack::QueryFlood => vec![vec![3u8; 100_000]],
            Attack::Step1Flood => vec![[0u8, 0, 1, 0].repeat(10_000)],
            Attack::ClaimedCount => {
                // Awareness with a count of 2^40 and nothing after it.
                let mut body = Vec::new();
                put_var(&mut body, 1 << 40);
                let mut f = vec![1u8];
                put_var(&mut f, body.len() as u64);
                f.extend(body);
                vec![f]
            }
            Attack::ClaimedStateVector => {
                let mut sv = Vec::new();
                put_var(&mut sv, u32::MAX as u64);
                vec![yws::sync_step1(&sv)]
            }
            // Only while its victims stay connected: a free id can be taken
            // (the limit above), a held one must not change.
            Attack::Spoof if !self.final_phase => Vec::new(),
            Attack::Spoof => honest_ids
                .iter()
                .map(|h| yws::awareness(&[entry(*h, 1_000_000, "{\"name\":\"mallory\"}")]))
                .collect(),
            Attack::BigPresence => {
                let big = format!("{{\"x\":\"{}\"}}", "a".repeat(limits.max_presence_bytes));
                vec![yws::awareness(&[entry(*me, 1, &big)])]
            }
            Attack::ManyIds => (0..=limits.max_presence_ids as u64)
                .map(|k| yws::awareness(&[entry(*me + k, 1, "{}")]))
                .collect(),
            Attack::BadUpdate => vec![yws::update(&[9, 9, 9, 9, 9, 9])],
            Attack::CrossedOrigins => vec![yws::update(&crafted::crossed_update(*me, true))],
            Attack::ReadOnlyWriter => vec![
                yws::update(&read_only_update(*me)),
                yws::awareness(&[entry(*me, 1, "{\"name\":\"viewer\"}")]),
            ],
            Attack::NativeClaimedLength => {
                // `YrsUpdate` (3) claiming 2^40 bytes of update, or
                // `Presence` (5) claiming 2^40 entries; nothing follows.
                let mut f = vec![1u8, if *me & 8 == 0 { 3 } else { 5 }];
                put_var(&mut f, 1 << 40);
                vec![native_hello(*me), f]
            }
            Attack::NativeReadOnlyWriter => {
                let mut store = Document::new();
                let delta = apply_at(&mut store, &["readonly".to_string()], |v, cx| {
                    v.set_add(cx, ReplicaId::new(*me), Atom::Str("READONLY".into()))
                });
                let delta = Message::Delta {
                    session: *me,
                    from: 0,
                    to: 1,
                    answer: None,
                    payload: Payload::seal(&delta, &Config::default()),
                };
                vec![
                    native_hello(*me),
                    Frame::YrsUpdate {
                        update: Bytes(read_only_update(*me)),
                    }
                    .encode(),
                    Frame::Sync(delta).encode(),
                    Frame::Presence {
                        entries: vec![entry(*me, 1, "{\"name\":\"viewer\"}")],
                    }
                    .encode(),
                ]
            }
        };
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.up.extend(frames);
        }
    }

    /// Moves some frames of one connection from client to relay.
    fn deliver_up(&mut self, id: ConnId) {
        let n = self.rng.range(1, 4) as usize;
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        for _ in 0..n {
            match conn.up.pop_front() {
                Some(f) => self.inbox.push_back(Event::Frame(id, f)),
                None => break,
            }
        }
    }

    /// The relay takes a batch of inputs, commits, then sends.
    fn relay_batch(&mut self) {
        let n = self.rng.range(1, 33) as usize;
        for _ in 0..n {
            let Some(e) = self.inbox.pop_front() else {
                break;
            };
            match e {
                Event::Join(id, protocol, writable) => self.room.join(id, protocol, writable),
                Event::Frame(id, bytes) => self.room.receive(id, &bytes),
                Event::Leave(id) => self.room.leave(id),
            }
        }
        let mut batch = self.room.take_batch();
        let entries = batch.take_entries();
        self.disk.all.extend(entries.iter().cloned());
        self.disk.log.extend(entries);
        let output = batch.committed();
        self.send(output);
        // Now and then the relay compacts (as the relay does when the log is
        // long), so restarts also load from a snapshot.
        if self.rng.chance(0.05) {
            let (upto, snapshot) = self.room.snapshot();
            self.disk.log.retain(|e| e.seq > upto);
            self.disk.snapshot = Some((upto, snapshot));
        }
    }

    fn send(&mut self, out: Output) {
        assert!(!out.poisoned, "yrs panicked inside an update");
        for c in &out.closes {
            if let Some(conn) = self.conns.get_mut(&c.conn) {
                conn.closed = Some(c.code);
            }
        }
        for s in out.sends {
            if let Some(conn) = self.conns.get_mut(&s.to) {
                conn.down.push_back(s.frame);
            }
        }
        let in_room: Vec<ConnId> = self
            .conns
            .keys()
            .copied()
            .filter(|id| self.room.contains(*id))
            .collect();
        for (from, u) in &out.updates {
            let yjs = yws::update(u);
            let native = Frame::YrsUpdate {
                update: Bytes(u.clone()),
            }
            .encode();
            for id in &in_room {
                if id != from {
                    let conn = self.conns.get_mut(id).expect("conn");
                    let f = if conn.native { &native } else { &yjs };
                    conn.down.push_back(f.clone());
                }
            }
        }
        if let Some(p) = out.presence {
            for id in &in_room {
                let conn = self.conns.get_mut(id).expect("conn");
                let f = if conn.native { &p.native } else { &p.yjs };
                conn.down.push_back(f.clone());
            }
        }
    }

    /// The client reads what reached it; a close comes after its frames.
    fn deliver_down(&mut self, id: ConnId) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let c = conn.client;
        let frames: Vec<Vec<u8>> = conn.down.drain(..).collect();
        let closed = conn.closed;
        let mut replies = Vec::new();
        if let Role::Honest(y) = &mut self.clients[c].role {
            match &mut y.native {
                Some(n) => {
                    for f in frames {
                        match n.session.receive(&mut n.doc, &mut n.clock, &f) {
                            Ok(out) => replies.extend(out.frames),
                            Err(e) => panic!("{}: the relay sent a frame refused: {e}", y.name),
                        }
                    }
                    replies.extend(n.with(|s, d, _| s.flush(d)));
                    // Its view of who is here, kept where the checks look.
                    y.presence = n.session.presence().clone();
                }
                None => {
                    for f in frames {
                        replies.extend(yjs_client_receive(y, &f));
                    }
                }
            }
        } else if let Role::Hostile {
            read_only_errors, ..
        } = &mut self.clients[c].role
        {
            *read_only_errors += frames
                .iter()
                .filter(|f| {
                    matches!(
                        Frame::decode(f, usize::MAX),
                        Ok(Frame::Error {
                            code: Frame::ERROR_READ_ONLY,
                            ..
                        })
                    )
                })
                .count();
        }
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.up.extend(replies);
        }
        if let Some(code) = closed {
            self.closes.push((c, code));
            // The relay closed it: the socket is gone.
            self.conns.remove(&id);
            self.clients[c].conn = None;
            if let Role::Honest(y) = &mut self.clients[c].role {
                y.presence = PresenceMap::new();
                if let Some(n) = &mut y.native {
                    let _ = n.with(|s, d, _| s.stop(d));
                }
            }
        }
    }

    /// The relay process dies and comes back from its storage; every
    /// connection drops, and whatever was not committed never happened.
    fn restart(&mut self) {
        let before = clocks(self.room.doc().yrs());
        let (room, set_aside) = Room::restore(
            self.rng.next_u64(),
            self.rng.next_u64(),
            self.limits.clone(),
            self.disk.snapshot.as_ref().map(|(s, snap)| (*s, snap)),
            &self.disk.log,
        );
        assert!(
            set_aside.is_empty(),
            "the room's own log did not load: {set_aside:?}"
        );
        let after = clocks(room.doc().yrs());
        if before != after {
            let (full, _) = Room::restore(1, 2, self.limits.clone(), None, &self.disk.all);
            let snap_only = self.disk.snapshot.as_ref().map(|(s, snap)| {
                let (r, _) = Room::restore(1, 2, self.limits.clone(), Some((*s, snap)), &[]);
                clocks(r.doc().yrs())
            });
            panic!(
                "the restarted room lost stored updates: live {before:?}, restored {after:?}, from the whole log {:?}, snapshot alone {snap_only:?} (snapshot upto {:?}, log {} entries)",
                clocks(full.doc().yrs()),
                self.disk.snapshot.as_ref().map(|s| s.0),
                self.disk.log.len()
            );
        }
        assert!(
            room.doc().crdt().state() == self.room.doc().crdt().state(),
            "the restarted room's CRDT state differs from the live one: live {:?}, restored {:?}",
            self.room.doc().crdt().state(),
            room.doc().crdt().state()
        );
        self.room = room;
        self.inbox.clear();
        for c in 0..self.clients.len() {
            if let Some(id) = self.clients[c].conn.take() {
                self.conns.remove(&id);
            }
            if let Role::Honest(y) = &mut self.clients[c].role {
                y.presence = PresenceMap::new();
                if let Some(n) = &mut y.native {
                    let _ = n.with(|s, d, _| s.stop(d));
                }
            }
        }
    }

    fn step(&mut self) {
        let c = self.rng.below(self.clients.len() as u64) as usize;
        match self.rng.below(100) {
            0..=24 => self.honest_edit(c),
            25..=29 => self.honest_presence(c),
            30..=34 => {
                if self.clients[c].conn.is_none() {
                    self.connect(c);
                } else if matches!(self.clients[c].role, Role::Hostile { .. }) {
                    self.attack(c);
                }
            }
            35..=37 => self.disconnect(c),
            38..=59 => {
                if let Some(id) = self.clients[c].conn {
                    self.deliver_up(id);
                }
            }
            60..=79 => self.relay_batch(),
            80..=98 => {
                let slow = matches!(&self.clients[c].role, Role::Honest(y) if y.slow);
                if let Some(id) = self.clients[c].conn {
                    if !slow || self.rng.chance(0.1) {
                        self.deliver_down(id);
                    }
                }
            }
            _ => {
                if self.rng.chance(0.3) {
                    self.restart();
                }
            }
        }
    }

    /// Everyone honest online, hostile ones gone; run until nothing moves.
    fn settle(&mut self) -> Result<(), String> {
        for c in 0..self.clients.len() {
            match self.clients[c].role {
                Role::Honest(_) => self.connect(c),
                Role::Hostile { .. } => {}
            }
        }
        for round in 0..10_000 {
            let busy = !self.inbox.is_empty()
                || self
                    .conns
                    .values()
                    .any(|c| !c.up.is_empty() || !c.down.is_empty() || c.closed.is_some());
            if !busy && round > 0 {
                return Ok(());
            }
            let ids: Vec<ConnId> = self.conns.keys().copied().collect();
            for id in &ids {
                while self.conns.get(id).is_some_and(|c| !c.up.is_empty()) {
                    self.deliver_up(*id);
                }
            }
            while !self.inbox.is_empty() {
                self.relay_batch();
            }
            self.relay_batch();
            for id in &ids {
                self.deliver_down(*id);
            }
            for c in 0..self.clients.len() {
                if matches!(self.clients[c].role, Role::Honest(_)) {
                    self.connect(c);
                }
            }
        }
        Err("the room never went quiet".into())
    }
}

fn entry(client: u64, clock: u32, state: &str) -> PresenceEntry {
    PresenceEntry {
        client,
        clock,
        state: Some(state.into()),
    }
}

/// A v1 update with one item on root map "m", key "k", whose Any value is
/// an array nested `depth` deep (built by hand: yrs would overflow its stack
/// encoding it, as it would decoding it).
fn deep_update(depth: usize) -> Vec<u8> {
    let mut u = Vec::new();
    put_var(&mut u, 1); // one client
    put_var(&mut u, 1); // one struct
    put_var(&mut u, 424_242); // client
    put_var(&mut u, 0); // clock
    // Item: no origins, parent sub present (bit 6), content Any (8).
    u.push(0x20 | 8);
    put_var(&mut u, 1); // parent is a root type named ...
    put_var(&mut u, 1);
    u.push(b'm');
    put_var(&mut u, 1); // parent sub "k"
    u.push(b'k');
    put_var(&mut u, 1); // one Any value
    for _ in 0..depth {
        u.push(117); // array
        put_var(&mut u, 1);
    }
    u.push(126); // null
    put_var(&mut u, 0); // empty delete set
    u
}

/// A native client's edit of its CRDT values: a counter (and its reset),
/// a multi-value register (and its removal), a set's element added or
/// removed, flags in a nested map enabled or disabled.
fn crdt_edit(n: &mut Native, name: &str, r: u64) {
    let id = n.doc.crdt().id();
    let k = (r >> 3) % 6;
    let count = ["count".to_string()];
    let title = ["title".to_string()];
    let tags = ["tags".to_string()];
    let flag = ["flags".to_string(), format!("f{}", k % 3)];
    let tag = Atom::Str(format!("t{k}"));
    n.doc.crdt_mut().mutate(|m, cx| match r % 8 {
        0 | 1 => apply_in(m, cx, &count, |v: &mut Value, cx| {
            v.counter_add(cx, id, k as i64 - 2)
        }),
        2 => apply_in(m, cx, &title, |v: &mut Value, cx| {
            v.register_write(cx, id, Atom::Str(format!("{name}:{}", r % 1000)))
        }),
        3 => apply_in(m, cx, &tags, |v: &mut Value, cx| v.set_add(cx, id, tag)),
        4 => apply_in(m, cx, &tags, |v: &mut Value, _| v.set_remove(&tag)),
        5 => apply_in(m, cx, &flag, |v: &mut Value, cx| v.flag_enable(cx, id)),
        6 => apply_in(m, cx, &flag, |v: &mut Value, _| v.flag_disable()),
        _ if k < 3 => remove_in(m, cx, &title),
        _ => apply_in(m, cx, &count, |v: &mut Value, _| v.counter_reset()),
    });
    n.session.note_change();
}

fn native_hello(replica: u64) -> Vec<u8> {
    Frame::Hello {
        protocol: PROTOCOL_VERSION,
        replica,
        writable: true,
    }
    .encode()
}

/// A yrs update inserting "READONLY" into the text, by client `me`.
fn read_only_update(me: u64) -> Vec<u8> {
    let d = yrs::Doc::with_client_id(me & ((1 << 53) - 1));
    let t = d.get_or_insert_text("notes");
    let mut txn = d.transact_mut();
    t.insert(&mut txn, 0, "READONLY");
    txn.encode_update_v1()
}

/// An honest y-websocket client's handling of one relay frame; the frames
/// it sends back.
fn yjs_client_receive(y: &mut YjsClient, frame: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let msgs = yws::decode_frame(frame, usize::MAX, 1 << 20).expect("the relay sends valid frames");
    assert_eq!(msgs.len(), 1, "a relay frame holds exactly one message");
    for m in msgs {
        match m {
            yws::YwsMessage::SyncStep1(sv) => {
                let sv = StateVector::decode_v1(&sv).expect("relay state vector");
                let diff = y.doc.transact().encode_state_as_update_v1(&sv);
                out.push(yws::sync_step2(&diff));
            }
            yws::YwsMessage::SyncStep2(u) | yws::YwsMessage::Update(u) => {
                let decoded = Update::decode_v1(&u).expect("relay update");
                y.hold
                    .apply(&mut y.doc.transact_mut(), &u, decoded)
                    .expect("relay update applies");
            }
            yws::YwsMessage::Awareness(entries) => {
                let me = y.doc.client_id().get();
                let mut renew = false;
                let others: Vec<PresenceEntry> = entries
                    .into_iter()
                    .filter(|e| {
                        if e.client == me {
                            // Our own id: a removal at or past our clock
                            // means "say who you are again"; a state with a
                            // higher clock (the relay stamped our comeback
                            // past its removal) is adopted, as y-protocols'
                            // awareness does.
                            // Any other state of ours at or past our clock
                            // (the stamp raced a change we made) is answered
                            // by saying who we are again: a y-websocket
                            // client's 15 s renewal does the same, later.
                            if e.clock >= y.clock && e.state.as_deref() != Some(y.state.as_str()) {
                                y.clock = e.clock;
                                renew = true;
                            } else if e.clock > y.clock {
                                y.clock = e.clock;
                            }
                            false
                        } else {
                            true
                        }
                    })
                    .collect();
                let changed = y.presence.apply(others);
                if !changed.is_empty() {
                    // y-websocket clients echo what changed.
                    out.push(yws::awareness(&changed));
                }
                if renew {
                    y.clock += 1;
                    out.push(yws::awareness(&[entry(me, y.clock, &y.state)]));
                }
            }
            _ => {}
        }
    }
    out
}

/// A document's state vector without zero entries (yrs keeps a client it
/// saw with nothing integrated; a restored document does not).
fn clocks(doc: &yrs::Doc) -> BTreeMap<u64, u32> {
    let sv = doc.transact().state_vector();
    sv.iter()
        .filter(|(_, c)| **c > 0)
        .map(|(id, c)| (id.get(), *c))
        .collect()
}

/// What a document reads: the text and the map.
fn content(doc: &yrs::Doc) -> (String, yrs::Any) {
    let text = doc.get_or_insert_text("notes");
    let map = doc.get_or_insert_map("todo");
    let txn = doc.transact();
    (text.get_string(&txn), map.to_json(&txn))
}

fn check(seed: u64) -> Result<(), String> {
    let mut w = World::new(seed);
    let steps = w.rng.range(200, 1500);
    for _ in 0..steps {
        w.step();
    }
    // Everyone honest online, then every hostile client attacks once more
    // on a fresh connection, and the room settles again.
    w.settle()?;
    let before = w.closes.len();
    w.final_phase = true;
    for c in 0..w.clients.len() {
        if matches!(w.clients[c].role, Role::Hostile { .. }) {
            w.disconnect(c);
            w.connect(c);
            w.attack(c);
        }
    }
    w.settle()?;

    let room = content(w.room.doc().yrs());
    let mut online = Vec::new();
    for (i, c) in w.clients.iter().enumerate() {
        if let Role::Honest(y) = &c.role {
            let mine = content(&y.doc);
            if mine != room {
                let sv_c = y.doc.transact().state_vector();
                let sv_r = w.room.doc().yrs().transact().state_vector();
                return Err(format!(
                    "client {i} diverged: text {} vs room {} chars, maps equal: {}, held: client {}, room {}\n  client sv {sv_c:?}\n  room sv   {sv_r:?}",
                    mine.0.len(),
                    room.0.len(),
                    mine.1 == room.1,
                    y.hold.len(),
                    w.room.doc().held(),
                ));
            }
            online.push((y.doc.client_id().get(), y.state.clone()));
        }
    }
    if room.0.contains("READONLY") {
        return Err("a read-only connection's edit reached the document".into());
    }
    // Nothing stored is lost: a relay restarted from its storage agrees.
    let (restored, aside) = Room::restore(
        1,
        2,
        w.limits.clone(),
        w.disk.snapshot.as_ref().map(|(s, snap)| (*s, snap)),
        &w.disk.log,
    );
    if !aside.is_empty() {
        return Err(format!("stored entries did not load: {aside:?}"));
    }
    if content(restored.doc().yrs()) != room {
        return Err("the room restarted from storage lost what clients had".into());
    }
    // CRDT state (values and causal context): every native client holds
    // the room's, and so does the room restarted from storage.
    let crdt = w.room.doc().crdt().state();
    if crdt.store().get(&"readonly".to_string()).is_some() {
        return Err("a read-only connection's CRDT delta reached the document".into());
    }
    if restored.doc().crdt().state() != crdt {
        return Err(format!(
            "the room restarted from storage has another CRDT state:\n  restored {:?}\n  room     {crdt:?}",
            restored.doc().crdt().state()
        ));
    }
    let mut natives = 0;
    for c in &w.clients {
        if let Role::Honest(YjsClient {
            native: Some(n),
            name,
            ..
        }) = &c.role
        {
            natives += 1;
            if n.doc.crdt().state() != crdt {
                return Err(format!(
                    "{name}'s CRDT state differs from the room's:\n  client {:?}\n  room   {crdt:?}",
                    n.doc.crdt().state()
                ));
            }
            let s = &n.session;
            if !s.online() || !s.synced() {
                return Err(format!(
                    "{name}'s session did not end synced: online {}, Yjs updates sent {}, saved {}",
                    s.online(),
                    s.yrs_sent(),
                    s.yrs_saved()
                ));
            }
        }
    }
    if natives == 0 && w.disk.log.iter().any(|e| e.kind != EntryKind::Yrs) {
        return Err("a y-websocket room stored a CRDT entry".into());
    }
    // Presence: every honest client sees every other one's own state.
    for c in &w.clients {
        if let Role::Honest(y) = &c.role {
            let seen: BTreeMap<u64, String> = y
                .presence
                .present()
                .into_iter()
                .map(|e| (e.client, e.state.unwrap_or_default()))
                .collect();
            for (id, state) in &online {
                if *id == y.doc.client_id().get() {
                    continue;
                }
                match seen.get(id) {
                    Some(s) if s == state => {}
                    other => {
                        return Err(format!(
                            "{} sees client {id} as {other:?}, not {state}; the room has {:?}",
                            y.name,
                            w.room.present()
                        ));
                    }
                }
            }
        }
    }
    // Close codes.
    for (i, code) in &w.closes {
        match &w.clients[*i].role {
            Role::Honest(y) => {
                if (4400..4500).contains(code) {
                    return Err(format!("honest {} was closed with {code}", y.name));
                }
            }
            Role::Hostile { attack, .. } => {
                if attack.expected_close() != Some(*code) && *code != CloseCode::SLOW_CONSUMER {
                    return Err(format!("{attack:?} was closed with {code}"));
                }
            }
        }
    }
    for (i, c) in w.clients.iter().enumerate() {
        if let Role::Hostile {
            attack,
            read_only_errors,
            ..
        } = &c.role
        {
            let closed: Vec<u16> = w.closes[before..]
                .iter()
                .filter(|(j, _)| *j == i)
                .map(|(_, code)| *code)
                .collect();
            // Its last connection attacked with nothing else in its way.
            match attack.expected_close() {
                Some(code) if closed != [code] => {
                    return Err(format!(
                        "{attack:?} was closed with {closed:?}, not [{code}]"
                    ));
                }
                None if !closed.is_empty() => {
                    return Err(format!(
                        "{attack:?} should stay open, closed with {closed:?}"
                    ));
                }
                _ => {}
            }
            if *attack == Attack::NativeReadOnlyWriter && *read_only_errors == 0 {
                return Err(
                    "a read-only native connection's writes were not refused with 4403".into(),
                );
            }
        }
    }
    Ok(())
}

#[test]
fn rooms_with_honest_and_hostile_clients() {
    seeds::run_seeds("room_sim", 200, check);
}
