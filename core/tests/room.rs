//! The room state machine's rules, one at a time (room_sim mixes them).
#![cfg(feature = "yrs")]

use neuroplex_core::doc::room::FROM_ROOM;
use neuroplex_core::doc::room::{EntryKind, LogEntry};
use neuroplex_core::doc::{CloseCode, PresenceEntry, Protocol, Room, RoomLimits, yws};
use yrs::{GetString, Text, Transact};

fn edit(client: u64, text: &str) -> Vec<u8> {
    let d = yrs::Doc::with_client_id(client);
    let t = d.get_or_insert_text("notes");
    let mut txn = d.transact_mut();
    t.insert(&mut txn, 0, text);
    txn.encode_update_v1()
}

fn text(room: &Room) -> String {
    let t = room.doc().yrs().get_or_insert_text("notes");
    t.get_string(&room.doc().yrs().transact())
}

#[test]
fn a_stored_entry_yrs_refuses_is_set_aside_and_the_room_loads() {
    let entries = vec![
        LogEntry {
            seq: 1,
            kind: EntryKind::Yrs,
            data: edit(5, "kept"),
        },
        LogEntry {
            seq: 2,
            kind: EntryKind::Yrs,
            data: vec![9, 9, 9],
        },
        LogEntry {
            seq: 3,
            kind: EntryKind::Crdt,
            data: vec![0xff, 1, 2],
        },
    ];
    let (room, aside) = Room::restore(1, 2, RoomLimits::default(), None, &entries);
    assert_eq!(text(&room), "kept");
    let seqs: Vec<_> = aside.iter().map(|a| (a.seq, a.kind)).collect();
    assert_eq!(
        seqs,
        [(Some(3), EntryKind::Crdt), (Some(2), EntryKind::Yrs)]
    );
    // New entries continue after the highest stored sequence number.
    assert_eq!(room.last_seq(), 3);
}

#[test]
fn one_answer_per_query_kind_per_batch() {
    let mut room = Room::new(1, 2, RoomLimits::default());
    room.join(7, Protocol::Yjs, true);
    let _ = room.take_batch().committed();
    // 32 messages (the bound) of each query kind, in 10 frames.
    let step1 = yws::sync_step1(&[0]);
    for _ in 0..10 {
        room.receive(7, &step1.repeat(16));
        room.receive(7, &[3u8; 16]);
    }
    let out = room.take_batch().committed();
    let kinds: Vec<_> = out.sends.iter().map(|s| s.kind).collect();
    assert_eq!(kinds, ["sync_step2", "awareness"]);
    assert!(out.closes.is_empty());
    // One more message than the bound closes it.
    room.receive(7, &[3u8; 33]);
    let out = room.take_batch().committed();
    assert_eq!(out.closes[0].code, CloseCode::TOO_MANY);
}

#[test]
fn replies_beyond_the_connection_s_budget_close_it_as_a_slow_consumer() {
    let limits = RoomLimits {
        max_reply_bytes: 4 << 10,
        ..RoomLimits::default()
    };
    let mut room = Room::new(1, 2, limits);
    let stored = |room: &mut Room| {
        let mut batch = room.take_batch();
        let _ = batch.take_entries();
        batch.committed()
    };
    room.join(1, Protocol::Yjs, true);
    room.join(2, Protocol::Yjs, true);
    room.receive(1, &yws::update(&edit(5, &"x".repeat(3 << 10))));
    let _ = stored(&mut room);
    // A reply of 3 KiB fits the budget of 4 KiB.
    let step1 = yws::sync_step1(&[0]);
    room.receive(2, &step1);
    let out = room.take_batch().committed();
    assert_eq!(out.sends.len(), 1);
    assert!(out.closes.is_empty());
    // Once the document is 5 KiB, the reply does not: the connection is
    // closed, and nothing of the reply goes to it.
    room.receive(1, &yws::update(&edit(6, &"y".repeat(2 << 10))));
    let _ = stored(&mut room);
    room.receive(2, &step1);
    let batch = room.take_batch();
    assert!(batch.stats().rejected.contains(&"slow_consumer"));
    let out = batch.committed();
    assert!(out.sends.iter().all(|s| s.to != 2));
    assert_eq!(out.closes[0].conn, 2);
    assert_eq!(out.closes[0].code, CloseCode::SLOW_CONSUMER);
}

#[test]
fn a_native_connection_gets_one_answer_per_query_kind_per_batch() {
    use neuroplex_core::CausalContext;
    use neuroplex_core::doc::{Frame, PROTOCOL_VERSION};
    use neuroplex_core::sync::{Bytes, Message};
    let mut room = Room::new(1, 2, RoomLimits::default());
    room.join(2, Protocol::Yjs, true);
    room.receive(2, &yws::update(&edit(5, "some text")));
    let mut batch = room.take_batch();
    let _ = batch.take_entries();
    let _ = batch.committed();
    room.join(1, Protocol::Native, true);
    let hello = Frame::Hello {
        protocol: PROTOCOL_VERSION,
        replica: 42,
        writable: true,
    };
    room.receive(1, &hello.encode());
    let _ = room.take_batch().committed();
    // Ten of each query kind in one batch: Yjs state vectors and CRDT sync
    // requests.
    let yrs_query = Frame::YrsSyncRequest {
        state_vector: Bytes(vec![0]),
    }
    .encode();
    let crdt_query = Frame::Sync(Message::SyncRequest {
        session: 9,
        context: CausalContext::default(),
        reply: false,
    })
    .encode();
    for _ in 0..10 {
        room.receive(1, &yrs_query);
        room.receive(1, &crdt_query);
    }
    let out = room.take_batch().committed();
    assert!(out.closes.is_empty());
    let mut kinds: Vec<_> = out
        .sends
        .iter()
        .filter(|s| s.to == 1)
        .map(|s| s.kind)
        .collect();
    let all = kinds.len();
    kinds.sort_unstable();
    kinds.dedup();
    assert_eq!(all, kinds.len(), "one answer per kind: {kinds:?}");
    assert!(all >= 1, "the Yjs query was answered");
}

#[test]
#[should_panic(expected = "only after its entries are stored")]
fn nothing_leaves_before_the_commit() {
    let mut room = Room::new(1, 2, RoomLimits::default());
    room.join(7, Protocol::Yjs, true);
    room.receive(7, &yws::update(&edit(5, "x")));
    let batch = room.take_batch();
    assert_eq!(batch.entries().len(), 1);
    let _ = batch.committed();
}

#[test]
fn a_read_only_connection_shows_its_presence_but_does_not_write() {
    let mut room = Room::new(1, 2, RoomLimits::default());
    room.join(1, Protocol::Yjs, false);
    room.join(2, Protocol::Yjs, true);
    room.receive(1, &yws::update(&edit(5, "nope")));
    let me = PresenceEntry {
        client: 77,
        clock: 1,
        state: Some("{\"name\":\"viewer\"}".into()),
    };
    room.receive(1, &yws::awareness(std::slice::from_ref(&me)));
    let mut batch = room.take_batch();
    assert!(batch.take_entries().is_empty());
    assert!(batch.stats().rejected.contains(&"read_only"));
    let out = batch.committed();
    assert!(out.updates.is_empty());
    assert_eq!(out.presence.expect("presence").entries, [me]);
    assert_eq!(text(&room), "");
}

#[test]
fn a_native_frame_before_hello_and_a_bad_update_close_with_their_codes() {
    use neuroplex_core::doc::Frame;
    use neuroplex_core::sync::Bytes;
    let mut room = Room::new(1, 2, RoomLimits::default());
    room.join(1, Protocol::Native, true);
    room.join(2, Protocol::Yjs, true);
    let f = Frame::YrsUpdate {
        update: Bytes(edit(5, "x")),
    };
    room.receive(1, &f.encode());
    room.receive(2, &yws::update(&[9, 9, 9]));
    let out = room.take_batch().committed();
    let codes: Vec<_> = out.closes.iter().map(|c| (c.conn, c.code)).collect();
    assert_eq!(
        codes,
        [(1, CloseCode::MALFORMED), (2, CloseCode::BAD_UPDATE)]
    );
    assert!(!room.contains(1) && !room.contains(2));
}

/// Two successive edits of one client, as two updates.
fn two_edits(client: u64) -> [Vec<u8>; 2] {
    let d = yrs::Doc::with_client_id(client);
    let t = d.get_or_insert_text("notes");
    let mut first = d.transact_mut();
    t.insert(&mut first, 0, "a");
    let first_update = first.encode_update_v1();
    drop(first);
    let mut second = d.transact_mut();
    t.insert(&mut second, 1, "b");
    [first_update, second.encode_update_v1()]
}

#[test]
fn an_update_that_waits_is_stored_at_once_and_forwarded_when_released() {
    let [first, second] = two_edits(5);
    let mut room = Room::new(1, 2, RoomLimits::default());
    room.join(1, Protocol::Yjs, true);
    room.join(2, Protocol::Yjs, true);
    let _ = room.take_batch().committed();
    room.receive(1, &yws::update(&second));
    let mut batch = room.take_batch();
    assert_eq!(batch.take_entries().len(), 1, "stored while it waits");
    assert!(batch.committed().updates.is_empty(), "not forwarded yet");
    room.receive(1, &yws::update(&first));
    let mut batch = room.take_batch();
    assert_eq!(batch.take_entries().len(), 1);
    let out = batch.committed();
    let from: Vec<_> = out.updates.iter().map(|(c, _)| *c).collect();
    assert_eq!(from, [FROM_ROOM, 1], "the released one goes to everyone");
    assert_eq!(text(&room), "ab");
}

#[test]
fn a_snapshot_drops_what_waits_and_asks_everyone_for_it() {
    let [_, second] = two_edits(5);
    let mut room = Room::new(1, 2, RoomLimits::default());
    room.join(1, Protocol::Yjs, true);
    room.join(2, Protocol::Native, true);
    let _ = room.take_batch().committed();
    room.receive(1, &yws::update(&second));
    let mut batch = room.take_batch();
    let _ = batch.take_entries();
    let _ = batch.committed();
    assert_eq!(room.doc().held(), 1);
    let (upto, _) = room.snapshot();
    assert_eq!(upto, room.last_seq());
    assert_eq!(room.doc().held(), 0, "a snapshot cannot hold it");
    let batch = room.take_batch();
    assert_eq!(batch.stats().rejected, ["held_dropped"]);
    let out = batch.committed();
    let asks: Vec<_> = out.sends.iter().map(|s| (s.to, s.kind)).collect();
    assert_eq!(asks, [(1, "sync_step1"), (2, "yrs_sync_request")]);
}

#[test]
fn overflowing_the_hold_asks_everyone_at_most_once_per_sixteen_batches() {
    use neuroplex_core::doc::MAX_HELD;
    use neuroplex_core::doc::room::ASK_EVERY_BATCHES;
    let mut room = Room::new(1, 2, RoomLimits::default());
    room.join(1, Protocol::Yjs, true);
    room.join(2, Protocol::Yjs, true);
    let _ = room.take_batch().committed();
    // Each batch: one more update that waits for ever (a new client's
    // second edit), beyond the hold's bound once it is full.
    let mut asks = Vec::new();
    let batches = MAX_HELD as u64 + 3 * ASK_EVERY_BATCHES;
    for n in 0..batches {
        let [_, second] = two_edits(1000 + n);
        room.receive(1, &yws::update(&second));
        let mut batch = room.take_batch();
        let _ = batch.take_entries();
        let out = batch.committed();
        let step1 = out.sends.iter().filter(|s| s.kind == "sync_step1").count();
        if step1 > 0 {
            assert_eq!(step1, 2, "everyone is asked");
            asks.push(n);
        }
    }
    // Drops from the 33rd update on: asked then, and then every 16 batches.
    let first = MAX_HELD as u64;
    let want: Vec<u64> = (0..3).map(|k| first + k * ASK_EVERY_BATCHES).collect();
    assert_eq!(asks, want);
    // A round put off is kept: with no more drops, the next one still comes.
    let _ = room.snapshot();
    let mut late = 0;
    for _ in 0..ASK_EVERY_BATCHES {
        let out = room.take_batch().committed();
        late += out.sends.iter().filter(|s| s.kind == "sync_step1").count();
    }
    assert_eq!(late, 2);
}
