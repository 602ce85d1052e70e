//! The y-websocket path end to end: arbitrary bytes (up to 1 MiB: run with
//! `-max_len=1048576`) cut into client frames of three connections (two on
//! `/yjs`, one read-only, and one on `/sync`), each decoded and handled by
//! `core::doc::Room`, batches taken and committed. The room must never
//! panic (yrs panics it catches are reported as a poisoned batch, which the
//! relay answers by reloading the room: here the room is rebuilt), and a
//! closed connection's later frames are ignored.
//!
//! yrs 0.28 still panics while integrating some well-formed updates (an
//! overflow in `update.rs` found by this target; see `yjs_update.rs`):
//! `SharedDoc` catches those and the room reports the batch poisoned. So
//! libFuzzer's abort-on-panic hook is kept for every panic except those
//! raised inside yrs's own source — a yrs panic that is not caught still
//! unwinds out of the target and aborts it.
#![no_main]

use std::sync::Once;

use libfuzzer_sys::fuzz_target;
use neuroplex_core::doc::{Protocol, Room, RoomLimits};

fn fresh() -> Room {
    let mut room = Room::new(1, 2, RoomLimits::default());
    room.join(1, Protocol::Yjs, true);
    room.join(2, Protocol::Yjs, false);
    room.join(3, Protocol::Native, true);
    room
}

fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let in_yrs = info
                .location()
                .is_some_and(|l| l.file().contains("/yrs-"));
            if !in_yrs {
                previous(info);
            }
        }));
    });
}

fuzz_target!(|data: &[u8]| {
    install_hook();
    let mut room = fresh();
    // Frames: [conn selector][len: u16 LE][bytes]...; a short tail is one
    // last frame of whatever remains, and the length 0xFFFF means all the
    // rest (so one frame may be as large as the input: up to 1 MiB).
    let mut rest = data;
    while !rest.is_empty() {
        let conn = u64::from(rest[0] % 4);
        rest = &rest[1..];
        let (frame, tail) = if rest.len() >= 2 {
            let len = usize::from(u16::from_le_bytes([rest[0], rest[1]]));
            let body = &rest[2..];
            if len == usize::from(u16::MAX) {
                (body, &[][..])
            } else {
                body.split_at(len.min(body.len()))
            }
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
