//! The room state machine's rules, one at a time (room_sim mixes them).
#![cfg(feature = "yrs")]

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
