//! The relay-facing decoders: native frames, Yjs updates and state vectors
//! as `core::doc` takes them from the network. Decoding must return (a
//! panic inside yrs is caught by `SharedDoc` and reported as an error, which
//! this target treats as a finding too: libFuzzer aborts on any panic).
#![no_main]

use libfuzzer_sys::fuzz_target;
use neuroplex_core::ReplicaId;
use neuroplex_core::doc::{Frame, SharedDoc};
use neuroplex_core::sync::Config;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else { return };
    match which % 3 {
        0 => {
            if let Ok(frame) = Frame::decode(rest, 1 << 20) {
                let again = frame.encode();
                assert_eq!(Frame::decode(&again, 1 << 20).expect("re-decodes"), frame);
            }
        }
        1 => {
            let mut doc = SharedDoc::new(ReplicaId::new(1), 1, 1, Config::default());
            if doc.apply_yrs_update(rest).is_ok() {
                // What was accepted can be served and stored.
                let snapshot = doc.snapshot();
                let mut copy = SharedDoc::new(ReplicaId::new(2), 2, 2, Config::default());
                copy.apply_yrs_update(&snapshot.yrs).expect("a snapshot applies");
                let _ = doc.yrs_diff(&[0]);
            }
        }
        _ => {
            let doc = SharedDoc::new(ReplicaId::new(1), 1, 1, Config::default());
            let _ = doc.yrs_diff(rest);
        }
    }
});
