//! The Yjs update guard on arbitrary bytes (up to 1 MiB: run with
//! `-max_len=1048576`): it must return, yrs must decode whatever it accepts
//! without a panic, and applying it to a fresh document must not abort (no
//! stack overflow) — the guard is what stands between yrs's recursive
//! decoder and the network.
//!
//! yrs 0.28 can still panic while *integrating* some well-formed updates
//! (e.g. `BlockStore::find_index` underflows on a delete range below a
//! client's first block). That depends on document state, not on the
//! encoding, so it is beyond the guard: `SharedDoc` catches it and returns
//! `DocError::Panicked` (discard the document). This target tolerates those
//! caught panics and nothing else: libFuzzer's hook still aborts on a panic
//! anywhere outside `apply_yrs_update`.
#![no_main]

use std::cell::Cell;
use std::sync::Once;

use libfuzzer_sys::fuzz_target;
use neuroplex_core::ReplicaId;
use neuroplex_core::doc::SharedDoc;
use neuroplex_core::doc::guard::{MAX_DEPTH, check_state_vector_v1, check_update_v1};
use neuroplex_core::sync::Config;
use yrs::Update;
use yrs::updates::decoder::Decode;

thread_local! {
    static INTEGRATING: Cell<bool> = const { Cell::new(false) };
}

/// Keeps libFuzzer's abort-on-panic hook, except inside yrs integration.
fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !INTEGRATING.with(Cell::get) {
                previous(info);
            }
        }));
    });
}

fuzz_target!(|data: &[u8]| {
    install_hook();
    let _ = check_state_vector_v1(data);
    if check_update_v1(data, MAX_DEPTH).is_err() {
        return;
    }
    // Decoding is the guard's business: no panic allowed here.
    let _ = Update::decode_v1(data);
    let mut doc = SharedDoc::new(ReplicaId::new(1), 1, 1, Config::default());
    INTEGRATING.with(|i| i.set(true));
    let result = doc.apply_yrs_update(data);
    INTEGRATING.with(|i| i.set(false));
    if result.is_ok() {
        let snapshot = doc.snapshot();
        assert!(
            check_update_v1(&snapshot.yrs, MAX_DEPTH).is_ok(),
            "yrs emitted what the guard refuses"
        );
    }
});
