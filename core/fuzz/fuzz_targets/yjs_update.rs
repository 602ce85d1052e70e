//! The Yjs update guard on arbitrary bytes (up to 1 MiB: run with
//! `-max_len=1048576`): it must return, and whatever it accepts must decode
//! and apply to a fresh document without a panic or a stack overflow — the
//! guard is what stands between yrs's recursive decoder and the network.
#![no_main]

use libfuzzer_sys::fuzz_target;
use neuroplex_core::ReplicaId;
use neuroplex_core::doc::guard::{MAX_DEPTH, check_state_vector_v1, check_update_v1};
use neuroplex_core::doc::{DocError, SharedDoc};
use neuroplex_core::sync::Config;

fuzz_target!(|data: &[u8]| {
    let _ = check_state_vector_v1(data);
    if check_update_v1(data, MAX_DEPTH).is_err() {
        return;
    }
    let mut doc = SharedDoc::new(ReplicaId::new(1), 1, 1, Config::default());
    // yrs may refuse what the guard lets through (bad JSON, a weak link
    // without the feature); it must not panic (caught and reported as
    // Panicked, which counts as a finding here) or abort.
    let result = doc.apply_yrs_update(data);
    assert_ne!(
        result,
        Err(DocError::Panicked),
        "yrs panicked on guarded bytes"
    );
    if result.is_ok() {
        let snapshot = doc.snapshot();
        assert!(
            check_update_v1(&snapshot.yrs, MAX_DEPTH).is_ok(),
            "yrs emitted what the guard refuses"
        );
    }
});
