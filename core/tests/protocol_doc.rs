//! The byte-level examples in docs/PROTOCOL.md are real: each is encoded
//! here and must appear in the document exactly.

use neuroplex_core::sync::{Bytes, Message, Payload};
use neuroplex_core::{AWSet, Causal, CausalContext, Dot, ReplicaId, VectorClock, codec};

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn r(n: u64) -> ReplicaId {
    ReplicaId::new(n)
}

/// The delta of "replica 1 adds 42 to a set", its third event.
fn example_delta() -> Causal<AWSet<u64>> {
    let mut set: Causal<AWSet<u64>> = Causal::new();
    set.add(r(1), 10);
    set.add(r(1), 11);
    set.add(r(1), 42)
}

fn examples() -> Vec<(&'static str, Vec<u8>)> {
    let delta = example_delta();
    let plain = codec::encode(&delta).unwrap();
    let mut cx = CausalContext::from_vector_clock([(r(1), 3)].into_iter().collect());
    cx.insert(Dot::new(r(2), 5));
    vec![
        ("delta payload", plain.clone()),
        (
            "sync request",
            Message::SyncRequest {
                session: 7,
                context: cx,
                reply: true,
            }
            .encode(),
        ),
        (
            "delta",
            Message::Delta {
                session: 7,
                from: 2,
                to: 3,
                answer: None,
                payload: Payload::Plain(Bytes(plain.clone())),
            }
            .encode(),
        ),
        (
            "answer",
            Message::Delta {
                session: 7,
                from: 0,
                to: 3,
                answer: Some(9),
                payload: Payload::Plain(Bytes(plain.clone())),
            }
            .encode(),
        ),
        (
            "compressed delta",
            Message::Delta {
                session: 7,
                from: 2,
                to: 3,
                answer: None,
                payload: Payload::Lz4 {
                    len: plain.len() as u32,
                    bytes: Bytes(lz4_flex::block::compress(&plain)),
                },
            }
            .encode(),
        ),
        (
            "ack",
            Message::Ack {
                session: 7,
                to: 3,
                seen: [(r(1), 3), (r(2), 5)].into_iter().collect::<VectorClock>(),
            }
            .encode(),
        ),
    ]
}

#[test]
fn every_example_in_protocol_md_is_what_the_code_encodes() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/PROTOCOL.md"))
        .expect("docs/PROTOCOL.md");
    for (name, bytes) in examples() {
        let line = format!("{name}: {}", hex(&bytes));
        assert!(
            doc.lines().any(|l| l.trim() == line),
            "docs/PROTOCOL.md lacks the line `{line}`"
        );
    }
}

#[test]
fn the_examples_decode() {
    use neuroplex_core::sync::Config;
    // Every example but the bare payload is a whole message.
    for (name, bytes) in examples()
        .into_iter()
        .filter(|(n, _)| *n != "delta payload")
    {
        let msg = Message::decode(&bytes, &Config::default()).unwrap();
        assert_eq!(msg.encode(), bytes, "{name}");
        if let Message::Delta { payload, .. } = msg {
            assert_eq!(
                payload.open::<AWSet<u64>>(&Config::default()).unwrap(),
                example_delta()
            );
        }
    }
}

/// The native relay protocol's frames (feature `yrs`).
#[cfg(feature = "yrs")]
#[test]
fn every_frame_example_in_protocol_md_is_what_the_code_encodes() {
    use neuroplex_core::doc::{Frame, PresenceEntry};
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/PROTOCOL.md"))
        .expect("docs/PROTOCOL.md");
    let frames = [
        (
            "hello",
            Frame::Hello {
                protocol: 1,
                replica: 42,
                writable: true,
            },
        ),
        (
            "sync ack",
            Frame::Sync(Message::Ack {
                session: 7,
                to: 3,
                seen: [(r(1), 3)].into_iter().collect::<VectorClock>(),
            }),
        ),
        (
            "yrs sync request",
            Frame::YrsSyncRequest {
                state_vector: Bytes(vec![0]),
            },
        ),
        (
            "yrs update",
            Frame::YrsUpdate {
                update: Bytes(vec![0, 0]),
            },
        ),
        ("yrs saved", Frame::YrsSaved { count: 3 }),
        (
            "presence",
            Frame::Presence {
                entries: vec![PresenceEntry {
                    client: 5,
                    clock: 1,
                    state: Some("{}".into()),
                }],
            },
        ),
        (
            "error",
            Frame::Error {
                code: Frame::ERROR_READ_ONLY,
                reason: "read-only".into(),
            },
        ),
    ];
    for (name, frame) in frames {
        let bytes = frame.encode();
        let line = format!("{name}: {}", hex(&bytes));
        assert!(
            doc.lines().any(|l| l.trim() == line),
            "docs/PROTOCOL.md lacks the line `{line}`"
        );
        assert_eq!(Frame::decode(&bytes, 1 << 20).unwrap(), frame, "{name}");
    }
}
