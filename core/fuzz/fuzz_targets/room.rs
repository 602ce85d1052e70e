//! The y-websocket path end to end: arbitrary bytes (up to 1 MiB: run with
//! `-max_len=1048576`) cut into client frames of three connections (two on
//! `/yjs`, one read-only, and one on `/sync`), each decoded and handled by
//! `core::doc::Room`, batches taken and committed. The room must never
//! panic (yrs panics it catches are reported as a poisoned batch, which the
//! relay answers by reloading the room: here the room is rebuilt), and a
//! closed connection's later frames are ignored.
#![no_main]

use libfuzzer_sys::fuzz_target;
use neuroplex_core::doc::{Protocol, Room, RoomLimits};

fn fresh() -> Room {
    let mut room = Room::new(1, 2, RoomLimits::default());
    room.join(1, Protocol::Yjs, true);
    room.join(2, Protocol::Yjs, false);
    room.join(3, Protocol::Native, true);
    room
}

fuzz_target!(|data: &[u8]| {
    let mut room = fresh();
    // Frames: [conn selector][len: u16 LE][bytes]...; a short tail is one
    // last frame of whatever remains.
    let mut rest = data;
    while !rest.is_empty() {
        let conn = u64::from(rest[0] % 4);
        rest = &rest[1..];
        let (frame, tail) = if rest.len() >= 2 {
            let len = usize::from(u16::from_le_bytes([rest[0], rest[1]]));
            let body = &rest[2..];
            body.split_at(len.min(body.len()))
        } else {
            (rest, &[][..])
        };
        rest = tail;
        if conn == 0 {
            let mut batch = room.take_batch();
            let _ = batch.take_entries();
            if batch.committed().poisoned {
                room = fresh();
            }
            continue;
        }
        room.receive(conn, frame);
    }
    let mut batch = room.take_batch();
    let _ = batch.take_entries();
    let _ = batch.committed();
});
