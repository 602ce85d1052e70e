//! `core::doc::ClientSession` against a relay stand-in built from a
//! `SharedDoc` and frames: the rules of the native protocol's client, end
//! to end, without sockets.
//!
//! The stand-in follows the relay's room (hello, sync request, presence on
//! join; answers, forwarding, `YrsSaved` counts, removals on leave) as far
//! as a client can tell, with no storage and no batching.

#![cfg(feature = "yrs")]

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use neuroplex_core::ReplicaId;
use neuroplex_core::doc::{
    ClientSession, CloseCode, Frame, PROTOCOL_VERSION, PresenceClock, PresenceEntry, PresenceMap,
    SessionEvent, SessionOutput, SharedDoc,
};
use neuroplex_core::document::{Atom, DocStore, Value, apply_in};
use neuroplex_core::sync::{Bytes, Config, Message};
use yrs::{GetString, Text, Transact};

/// The relay as the client's sync replica names it.
const RELAY: u64 = 0;

struct Conn {
    writable: bool,
    yrs_received: u64,
    awaiting_ack: bool,
    present: BTreeSet<u64>,
}

/// A room: one document, connections by id, and what each was sent.
struct Relay {
    doc: SharedDoc,
    presence: PresenceMap,
    conns: BTreeMap<u64, Conn>,
    /// Frames on their way to each connection.
    out: BTreeMap<u64, VecDeque<Vec<u8>>>,
    /// Every frame the relay received, decoded, per connection.
    seen: BTreeMap<u64, Vec<Frame>>,
}

impl Relay {
    fn new() -> Self {
        Self {
            doc: SharedDoc::new(ReplicaId::new(1 << 40), 1, 1 << 40, Config::default()),
            presence: PresenceMap::new(),
            conns: BTreeMap::new(),
            out: BTreeMap::new(),
            seen: BTreeMap::new(),
        }
    }

    fn send(&mut self, to: u64, f: Frame) {
        self.out.entry(to).or_default().push_back(f.encode());
    }

    fn join(&mut self, id: u64, writable: bool) {
        self.conns.insert(
            id,
            Conn {
                writable,
                yrs_received: 0,
                awaiting_ack: false,
                present: BTreeSet::new(),
            },
        );
        self.out.insert(id, VecDeque::new());
        self.send(
            id,
            Frame::Hello {
                protocol: PROTOCOL_VERSION,
                replica: 0,
                writable,
            },
        );
        let sv = Bytes(self.doc.yrs_state_vector());
        self.send(id, Frame::YrsSyncRequest { state_vector: sv });
        let present = self.presence.present();
        if !present.is_empty() {
            self.send(id, Frame::Presence { entries: present });
        }
    }

    fn leave(&mut self, id: u64) {
        if let Some(c) = self.conns.remove(&id) {
            self.out.remove(&id);
            self.doc.crdt_mut().forget(id);
            let removed = self.presence.remove(c.present);
            self.broadcast_presence(removed);
        }
    }

    fn broadcast_presence(&mut self, entries: Vec<PresenceEntry>) {
        if entries.is_empty() {
            return;
        }
        let ids: Vec<u64> = self.conns.keys().copied().collect();
        for to in ids {
            self.send(
                to,
                Frame::Presence {
                    entries: entries.clone(),
                },
            );
        }
    }

    fn sync_out(&mut self, out: neuroplex_core::sync::Outgoing<DocStore>) {
        for (to, m) in out.messages {
            if matches!(m, Message::Delta { .. }) {
                if let Some(c) = self.conns.get_mut(&to) {
                    c.awaiting_ack = true;
                }
            }
            self.send(to, Frame::Sync(m));
        }
    }

    /// One interval in flight per connection, as the room does.
    fn push_all(&mut self) {
        let targets: Vec<u64> = self
            .conns
            .iter()
            .filter(|(_, c)| !c.awaiting_ack)
            .map(|(id, _)| *id)
            .collect();
        let out = self.doc.crdt_mut().push(&targets);
        self.sync_out(out);
    }

    fn receive(&mut self, id: u64, bytes: &[u8]) {
        let frame = Frame::decode(bytes, usize::MAX).expect("clients send valid frames");
        self.seen.entry(id).or_default().push(frame.clone());
        let writable = self.conns.get(&id).is_some_and(|c| c.writable);
        match frame {
            Frame::Hello { .. } | Frame::YrsSaved { .. } | Frame::Error { .. } => {}
            Frame::Sync(m) => {
                if matches!(m, Message::Delta { .. }) && !writable {
                    self.send(
                        id,
                        Frame::Error {
                            code: Frame::ERROR_READ_ONLY,
                            reason: "read-only".into(),
                        },
                    );
                    return;
                }
                if matches!(m, Message::Ack { .. }) {
                    if let Some(c) = self.conns.get_mut(&id) {
                        c.awaiting_ack = false;
                    }
                }
                let out = self.doc.crdt_mut().receive(id, m).expect("valid sync");
                self.sync_out(out);
                self.push_all();
            }
            Frame::YrsSyncRequest { state_vector } => {
                let diff = self.doc.yrs_diff(&state_vector.0).unwrap();
                self.send(
                    id,
                    Frame::YrsUpdate {
                        update: Bytes(diff),
                    },
                );
            }
            Frame::YrsUpdate { update } => {
                let count = {
                    let c = self.conns.get_mut(&id).unwrap();
                    c.yrs_received += 1;
                    c.yrs_received
                };
                if self.doc.apply_yrs_update(&update.0).unwrap() {
                    let others: Vec<u64> =
                        self.conns.keys().copied().filter(|&o| o != id).collect();
                    for o in others {
                        self.send(
                            o,
                            Frame::YrsUpdate {
                                update: update.clone(),
                            },
                        );
                    }
                }
                self.send(id, Frame::YrsSaved { count });
            }
            Frame::Presence { entries } => {
                if let Some(c) = self.conns.get_mut(&id) {
                    for e in &entries {
                        if e.state.is_some() {
                            c.present.insert(e.client);
                        } else {
                            c.present.remove(&e.client);
                        }
                    }
                }
                let changed = self.presence.apply(entries);
                self.broadcast_presence(changed);
            }
        }
    }
}

/// A client: its document, its presence clock and its session.
struct Peer {
    conn: u64,
    doc: SharedDoc,
    clock: PresenceClock,
    session: ClientSession,
    events: Vec<SessionEvent>,
    /// Frames on their way to the relay.
    out: VecDeque<Vec<u8>>,
}

impl Peer {
    fn new(conn: u64) -> Self {
        let doc = SharedDoc::new(
            ReplicaId::new(conn),
            10 + conn,
            100 + conn,
            Config::default(),
        );
        let clock = PresenceClock::new();
        let session = ClientSession::new(&doc, RELAY, &clock);
        Self {
            conn,
            doc,
            clock,
            session,
            events: Vec::new(),
            out: VecDeque::new(),
        }
    }

    fn take(&mut self, out: SessionOutput) {
        self.out.extend(out.frames);
        self.events.extend(out.events);
    }

    fn connect(&mut self, relay: &mut Relay, writable: bool) {
        relay.join(self.conn, writable);
        let out = self.session.start(&mut self.doc, &mut self.clock);
        self.take(out);
    }

    fn disconnect(&mut self, relay: &mut Relay) {
        relay.leave(self.conn);
        let out = self.session.stop(&mut self.doc);
        self.take(out);
        self.out.clear();
    }

    fn flush(&mut self) {
        let out = self.session.flush(&mut self.doc);
        self.take(out);
    }

    fn add_tag(&mut self, tag: &str) {
        let id = self.doc.crdt().id();
        let path = ["tags".to_string()];
        self.doc.crdt_mut().mutate(|m, cx| {
            apply_in(m, cx, &path, |v: &mut Value, cx| {
                v.set_add(cx, id, Atom::Str(tag.into()))
            })
        });
        self.session.note_change();
    }

    fn type_text(&mut self, s: &str) {
        let text = self.doc.yrs().get_or_insert_text("t");
        let mut txn = self.doc.yrs().transact_mut();
        text.push(&mut txn, s);
        let update = txn.encode_update_v1();
        drop(txn);
        self.session.queue_yrs(update);
    }

    fn text(&self) -> String {
        let text = self.doc.yrs().get_or_insert_text("t");
        text.get_string(&self.doc.yrs().transact())
    }

    fn tags(&self) -> Vec<String> {
        self.doc
            .crdt()
            .state()
            .store()
            .get(&"tags".to_string())
            .map(|v| {
                v.set
                    .iter()
                    .filter_map(|a| match a {
                        Atom::Str(s) => Some(s.clone()),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Delivers frames both ways until everything is quiet.
fn settle(relay: &mut Relay, peers: &mut [&mut Peer]) {
    for _ in 0..10_000 {
        let mut moved = false;
        for p in peers.iter_mut() {
            while let Some(f) = p.out.pop_front() {
                moved = true;
                if relay.conns.contains_key(&p.conn) {
                    relay.receive(p.conn, &f);
                }
            }
            let inbound: Vec<Vec<u8>> = relay
                .out
                .get_mut(&p.conn)
                .map(|q| q.drain(..).collect())
                .unwrap_or_default();
            for f in inbound {
                moved = true;
                let out = p
                    .session
                    .receive(&mut p.doc, &mut p.clock, &f)
                    .expect("the relay sends valid frames");
                p.take(out);
            }
        }
        if !moved {
            return;
        }
    }
    panic!("no quiescence");
}

fn sent(relay: &Relay, conn: u64) -> &[Frame] {
    relay.seen.get(&conn).map_or(&[], Vec::as_slice)
}

#[test]
fn hello_brings_the_session_online_with_the_relays_writable() {
    let mut relay = Relay::new();
    let (mut a, mut r) = (Peer::new(1), Peer::new(2));
    a.connect(&mut relay, true);
    r.connect(&mut relay, false);
    settle(&mut relay, &mut [&mut a, &mut r]);
    assert!(a.session.online() && a.session.writable());
    assert!(r.session.online() && !r.session.writable());
    assert!(a.events.contains(&SessionEvent::Online { writable: true }));
    assert_eq!(
        sent(&relay, 1)[0],
        Frame::Hello {
            protocol: PROTOCOL_VERSION,
            replica: 1,
            writable: true
        }
    );
}

#[test]
fn yrs_and_crdt_flow_both_ways_and_become_synced() {
    let mut relay = Relay::new();
    let (mut a, mut b) = (Peer::new(1), Peer::new(2));
    a.connect(&mut relay, true);
    b.connect(&mut relay, true);
    settle(&mut relay, &mut [&mut a, &mut b]);
    a.type_text("hello ");
    a.add_tag("from-a");
    a.flush();
    b.type_text("world");
    b.add_tag("from-b");
    b.flush();
    settle(&mut relay, &mut [&mut a, &mut b]);
    assert_eq!(a.text(), b.text());
    assert!(a.text().contains("hello") && a.text().contains("world"));
    assert_eq!(a.doc.crdt().state(), b.doc.crdt().state());
    assert_eq!(a.tags().len(), 2);
    for p in [&a, &b] {
        assert!(p.session.synced(), "durable and acknowledged");
        assert_eq!(p.session.yrs_saved(), p.session.yrs_sent());
        assert!(p.events.iter().any(|e| matches!(e, SessionEvent::Crdt)));
        assert!(
            p.events
                .iter()
                .any(|e| matches!(e, SessionEvent::Yrs { changed: true, .. }))
        );
    }
}

#[test]
fn offline_edits_are_sent_at_start_and_converge() {
    let mut relay = Relay::new();
    let (mut a, mut b) = (Peer::new(1), Peer::new(2));
    b.connect(&mut relay, true);
    settle(&mut relay, &mut [&mut b]);
    // `a` edits before it ever connects: nothing is queued while stopped.
    a.type_text("offline");
    a.add_tag("offline");
    a.flush();
    assert!(a.out.is_empty());
    a.connect(&mut relay, true);
    settle(&mut relay, &mut [&mut a, &mut b]);
    assert_eq!(b.text(), "offline");
    assert_eq!(b.tags(), ["offline"]);
    // Then `b` goes offline, edits, and comes back.
    b.disconnect(&mut relay);
    b.type_text("!");
    b.add_tag("later");
    b.connect(&mut relay, true);
    settle(&mut relay, &mut [&mut a, &mut b]);
    assert_eq!(a.text(), "offline!");
    assert_eq!(a.doc.crdt().state(), b.doc.crdt().state());
    assert!(a.session.synced() && b.session.synced());
}

#[test]
fn at_most_one_delta_is_in_flight_until_its_ack() {
    let mut relay = Relay::new();
    let mut a = Peer::new(1);
    a.connect(&mut relay, true);
    settle(&mut relay, &mut [&mut a]);
    a.add_tag("one");
    a.flush();
    let deltas = |p: &Peer| {
        p.out
            .iter()
            .filter(|f| {
                matches!(
                    Frame::decode(f, usize::MAX),
                    Ok(Frame::Sync(Message::Delta { .. }))
                )
            })
            .count()
    };
    assert_eq!(deltas(&a), 1);
    // A second edit before the ack: nothing more is sent.
    a.add_tag("two");
    a.flush();
    assert_eq!(deltas(&a), 1);
    assert!(!a.session.synced());
    // Deliver the first delta; the ack lets the second interval go.
    settle(&mut relay, &mut [&mut a]);
    let tags = |d: &SharedDoc| d.crdt().state().store().get(&"tags".to_string()).cloned();
    assert_eq!(tags(&relay.doc), tags(&a.doc));
    let delta_frames = sent(&relay, 1)
        .iter()
        .filter(|f| matches!(f, Frame::Sync(Message::Delta { .. })))
        .count();
    assert_eq!(delta_frames, 2);
    assert!(a.session.synced());
}

#[test]
fn presence_clock_jumps_on_restart_and_reannounces_past_a_newer_own_entry() {
    let mut relay = Relay::new();
    let (mut a, mut b) = (Peer::new(1), Peer::new(2));
    a.connect(&mut relay, true);
    b.connect(&mut relay, true);
    a.session
        .set_presence(&mut a.clock, Some("{\"name\":\"a\"}".into()));
    a.flush();
    settle(&mut relay, &mut [&mut a, &mut b]);
    let me = a.session.own_presence().client;
    assert_eq!(b.session.presence().present().len(), 1);
    assert!(b.events.contains(&SessionEvent::Presence {
        client: me,
        state: Some("{\"name\":\"a\"}".into())
    }));

    // A restart: the relay marks `a` gone at clock 2, `a` returns at 3.
    a.disconnect(&mut relay);
    settle(&mut relay, &mut [&mut a, &mut b]);
    assert!(b.session.presence().is_empty());
    a.connect(&mut relay, true);
    settle(&mut relay, &mut [&mut a, &mut b]);
    assert_eq!(a.session.own_presence().clock, 3);
    assert_eq!(b.session.presence().present()[0].clock, 3);

    // An old connection of `a` closes late: its removal at clock 4 reaches
    // the new one, which takes clock 5 and says again who it is.
    let late = PresenceEntry {
        client: me,
        clock: 4,
        state: None,
    };
    let changed = relay.presence.apply(vec![late]);
    relay.broadcast_presence(changed);
    settle(&mut relay, &mut [&mut a, &mut b]);
    assert_eq!(a.session.own_presence().clock, 5);
    assert_eq!(a.clock.get(), 5);
    let present = b.session.presence().present();
    assert_eq!(present.len(), 1);
    assert_eq!(present[0].clock, 5);
    assert!(present[0].state.is_some());
}

#[test]
fn yrs_saved_counts_every_update_of_the_connection() {
    let mut relay = Relay::new();
    let mut a = Peer::new(1);
    a.connect(&mut relay, true);
    settle(&mut relay, &mut [&mut a]);
    // The answer to the relay's request is the first update sent.
    assert_eq!(a.session.yrs_sent(), 1);
    a.type_text("x");
    a.flush();
    assert!(!a.session.synced());
    settle(&mut relay, &mut [&mut a]);
    assert_eq!(a.session.yrs_sent(), 2);
    assert_eq!(a.session.yrs_saved(), 2);
    assert!(a.session.synced());
    assert!(a.events.contains(&SessionEvent::Saved { count: 2 }));
}

#[test]
fn a_read_only_session_gets_an_error_frame_and_stays_open() {
    let mut relay = Relay::new();
    let mut r = Peer::new(1);
    r.connect(&mut relay, false);
    settle(&mut relay, &mut [&mut r]);
    r.add_tag("nope");
    r.flush();
    // The relay refuses the delta; no ack comes, the session stays online.
    let mut guard = 0;
    while let Some(f) = r.out.pop_front() {
        relay.receive(1, &f);
        guard += 1;
        assert!(guard < 100);
    }
    let inbound: Vec<_> = relay.out.get_mut(&1).unwrap().drain(..).collect();
    for f in inbound {
        let out = r.session.receive(&mut r.doc, &mut r.clock, &f).unwrap();
        r.take(out);
    }
    assert_eq!(
        r.session.last_error().map(|e| e.0),
        Some(Frame::ERROR_READ_ONLY)
    );
    assert!(r.session.online());
}

#[test]
fn a_bad_frame_is_an_error_with_malformed() {
    let mut relay = Relay::new();
    let mut a = Peer::new(1);
    a.connect(&mut relay, true);
    settle(&mut relay, &mut [&mut a]);
    let e = a
        .session
        .receive(&mut a.doc, &mut a.clock, b"\x01\x63garbage")
        .unwrap_err();
    assert_eq!(e.code, CloseCode::MALFORMED);
    let e = a
        .session
        .receive(
            &mut a.doc,
            &mut a.clock,
            &Frame::YrsUpdate {
                update: Bytes(vec![0xff, 0xff, 0xff]),
            }
            .encode(),
        )
        .unwrap_err();
    assert_eq!(e.code, CloseCode::BAD_UPDATE);
    assert_eq!(a.text(), "", "nothing changed");
}

#[test]
fn stop_clears_presence_and_forgets_the_relay() {
    let mut relay = Relay::new();
    let (mut a, mut b) = (Peer::new(1), Peer::new(2));
    a.connect(&mut relay, true);
    b.connect(&mut relay, true);
    b.session.set_presence(&mut b.clock, Some("{}".into()));
    b.flush();
    settle(&mut relay, &mut [&mut a, &mut b]);
    assert_eq!(a.session.presence().len(), 1);
    a.events.clear();
    a.disconnect(&mut relay);
    assert!(a.session.presence().is_empty());
    assert!(!a.session.online() && !a.session.synced());
    let me_b = b.session.own_presence().client;
    assert_eq!(
        a.events,
        [SessionEvent::Presence {
            client: me_b,
            state: None
        }]
    );
    assert!(a.doc.crdt().peers().all(|(p, _)| p != RELAY));
}
