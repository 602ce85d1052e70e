//! The PBFT message decoders against each other: `Message::decode` (the
//! hand-written fast path for requests and pre-prepares, then serde) and
//! the plain serde/postcard path must agree on every input — both refuse,
//! or both give the same message — and what decodes re-encodes to bytes
//! that decode to it again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use neuroplex_core::bft::Message;
use neuroplex_core::codec;

fuzz_target!(|data: &[u8]| {
    let fast = Message::decode(data).ok();
    let plain = codec::decode::<Message>(data).ok();
    assert_eq!(fast, plain, "the fast and the serde decoders disagree");
    if let Some(m) = fast {
        let wire = m.encode();
        assert_eq!(Message::decode(&wire).ok().as_ref(), Some(&m));
        assert_eq!(codec::decode::<Message>(&wire).ok().as_ref(), Some(&m));
    }
});
