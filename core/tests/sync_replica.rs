//! The sync replica's rules, one at a time: batching, persistence before
//! sending, never reissuing a dot, the state-since fallback, buffer
//! collection, and hostile messages.

use neuroplex_core::sync::{Bytes, Config, Message, Outgoing, Payload, PeerId, Replica, SyncError};
use neuroplex_core::{AWSet, Causal, DotStore, Lattice, ReplicaId, codec};
use proptest::prelude::*;

type Set = AWSet<u64>;
type R = Replica<Set>;

const A: PeerId = 1;
const B: PeerId = 2;

fn id(p: PeerId) -> ReplicaId {
    ReplicaId::new(p)
}

fn replica(p: PeerId, config: Config) -> R {
    R::new(id(p), 1000 + p, config)
}

/// Delivers messages between two replicas until none is left; returns the
/// number of messages and their total encoded size.
fn settle(a: &mut R, b: &mut R, first: Vec<(PeerId, PeerId, Message)>) -> (usize, usize) {
    let mut queue = first;
    let (mut count, mut bytes) = (0, 0);
    while let Some((from, to, msg)) = queue.pop() {
        count += 1;
        bytes += msg.encode().len();
        let r = if to == A { &mut *a } else { &mut *b };
        let out = r.receive(from, msg).expect("honest message");
        for (next, m) in out.messages {
            queue.push((to, next, m));
        }
    }
    (count, bytes)
}

fn sent(from: PeerId, out: Outgoing<Set>) -> Vec<(PeerId, PeerId, Message)> {
    out.messages
        .into_iter()
        .map(|(to, m)| (from, to, m))
        .collect()
}

/// Brings two replicas in sync and establishes acknowledgements both ways.
fn pair(config: Config) -> (R, R) {
    let (mut a, mut b) = (replica(A, config), replica(B, config));
    for _ in 0..2 {
        let out = a.push(&[B]);
        settle(&mut a, &mut b, sent(A, out));
        let out = b.push(&[A]);
        settle(&mut a, &mut b, sent(B, out));
    }
    (a, b)
}

#[test]
fn local_changes_between_two_sends_travel_as_one_delta() {
    let (mut a, mut b) = pair(Config::default());
    let mut expected: Causal<Set> = Causal::new();
    for x in 0..3 {
        expected.join(a.mutate(|s, cx| s.add(cx, id(A), x)));
    }
    let out = a.push(&[B]);
    assert_eq!(out.messages.len(), 1);
    let Message::Delta { payload, .. } = &out.messages[0].1 else {
        panic!("expected a delta, got {:?}", out.messages[0].1)
    };
    let shipped: Causal<Set> = payload.open(&Config::default()).unwrap();
    assert_eq!(shipped, expected);
    settle(&mut a, &mut b, sent(A, out));
    assert_eq!(a.state(), b.state());
}

#[test]
fn changes_are_handed_out_for_persistence_before_they_are_sent() {
    let (mut a, _) = pair(Config::default());
    let delta = a.mutate(|s, cx| s.add(cx, id(A), 42));
    let out = a.push(&[B]);
    let persist = out
        .persist
        .expect("a change that leaves must be persisted first");
    assert!(delta.context().cloud().iter().chain([].iter()).count() <= 1);
    // What is persisted holds the new dot.
    let new_dot = *delta
        .store()
        .dots_of(&42)
        .unwrap()
        .iter()
        .collect::<Vec<_>>()
        .first()
        .unwrap();
    assert!(persist.context().contains(new_dot));
    // Nothing new: nothing to persist.
    assert!(a.push(&[B]).persist.is_none());
}

#[test]
fn a_restarted_replica_never_reissues_a_dot_it_sent() {
    let (mut a, mut b) = pair(Config::default());
    let mut disk: Causal<Set> = Causal::new();
    a.mutate(|s, cx| s.add(cx, id(A), 1));
    let out = a.push(&[B]);
    disk.join(out.persist.clone().unwrap());
    settle(&mut a, &mut b, sent(A, out));
    let sent_dot = b
        .state()
        .store()
        .dots_of(&1)
        .unwrap()
        .iter()
        .next()
        .unwrap();

    // Crash: memory lost, disk kept; restart under a new session.
    let mut a = R::restore(id(A), 9999, disk, Config::default());
    let d = a.mutate(|s, cx| s.add(cx, id(A), 2));
    let new_dot = d.store().dots_of(&2).unwrap().iter().next().unwrap();
    assert!(
        new_dot.counter > sent_dot.counter,
        "dot {new_dot:?} reissued"
    );

    // And the two still converge (B serves A from A's restored context).
    let out = a.push(&[B]);
    settle(&mut a, &mut b, sent(A, out));
    let out = b.push(&[A]);
    settle(&mut a, &mut b, sent(B, out));
    let out = a.push(&[B]);
    settle(&mut a, &mut b, sent(A, out));
    assert_eq!(a.state(), b.state());
}

#[test]
fn received_changes_are_persisted_before_they_are_acknowledged() {
    let (mut a, mut b) = pair(Config::default());
    a.mutate(|s, cx| s.add(cx, id(A), 5));
    let out = a.push(&[B]);
    let (_, _, msg) = sent(A, out).pop().unwrap();
    let reply = b.receive(A, msg).unwrap();
    assert!(matches!(reply.messages[0].1, Message::Ack { .. }));
    let persist = reply
        .persist
        .expect("the received change is persisted with the ack");
    assert!(persist.store().contains(&5));
}

#[test]
fn a_peer_beyond_the_buffer_gets_what_it_misses_removals_included_not_the_state() {
    let config = Config {
        max_buffered_deltas: 4,
        ..Config::default()
    };
    let (mut a, mut b) = pair(config);
    for x in 0..1000 {
        a.mutate(|s, cx| s.add(cx, id(A), x));
    }
    let out = a.push(&[B]);
    settle(&mut a, &mut b, sent(A, out));
    assert_eq!(a.state(), b.state());

    // B is away while A makes more changes than its buffer holds, among them
    // removals of elements B has.
    for round in 0..20u64 {
        a.mutate(|s, _| s.remove(&round));
        a.mutate(|s, cx| s.add(cx, id(A), 5000 + round));
        let _ = a.push(&[]); // sends to nobody, but seals a buffer entry
    }
    assert!(a.buffered() <= 4);

    let out = a.push(&[B]);
    let msgs = sent(A, out);
    assert_eq!(msgs.len(), 1);
    // B's position is gone from the buffer: A answers from what it knows
    // B has seen instead of from the buffer...
    assert!(matches!(
        msgs[0].2,
        Message::Delta {
            answer: Some(_),
            ..
        }
    ));
    let mut answer_dots = None;
    let mut queue = msgs;
    while let Some((from, to, msg)) = queue.pop() {
        if let Message::Delta {
            answer: Some(_),
            payload,
            ..
        } = &msg
        {
            let d: Causal<Set> = payload.open(&config).unwrap();
            answer_dots = Some(d.store().dot_count());
        }
        let r = if to == A { &mut a } else { &mut b };
        for (next, m) in r.receive(from, msg).unwrap().messages {
            queue.push((to, next, m));
        }
    }
    // ...and sends only the 20 new elements, not the 1,000-element state,
    assert_eq!(answer_dots, Some(20));
    // while the removals arrive too.
    assert_eq!(a.state(), b.state());
    assert!(!b.state().store().contains(&3));
}

#[test]
fn acknowledged_deltas_are_collected() {
    let (mut a, mut b) = pair(Config::default());
    for x in 0..10 {
        a.mutate(|s, cx| s.add(cx, id(A), x));
        let out = a.push(&[B]);
        settle(&mut a, &mut b, sent(A, out));
    }
    assert_eq!(a.buffered(), 0, "B acknowledged everything");
    a.mutate(|s, cx| s.add(cx, id(A), 99));
    let _ = a.push(&[]); // sends to nobody
    assert_eq!(a.buffered(), 1, "kept until B acknowledges it");
    a.forget(B);
    assert_eq!(a.buffered(), 0, "no neighbour left to keep it for");
}

#[test]
fn large_payloads_are_compressed() {
    let config = Config::default();
    let mut big: Causal<AWSet<String>> = Causal::new();
    for x in 0..2_000 {
        big.add(id(A), format!("https://example.com/items/{x:08}"));
    }
    let p = Payload::seal(&big, &config);
    assert!(matches!(p, Payload::Lz4 { .. }));
    let plain = codec::encode(&big).unwrap().len();
    assert!(p.len() * 2 < plain, "{} vs {plain}", p.len());
    assert_eq!(p.open::<AWSet<String>>(&config).unwrap(), big);
    let small = Payload::seal(&Causal::<Set>::new(), &config);
    assert!(matches!(small, Payload::Plain(_)));
}

#[test]
fn hostile_compressed_payloads_are_refused_before_allocating() {
    let config = Config {
        max_message_bytes: 1 << 20,
        ..Config::default()
    };
    let claims_too_much = Payload::Lz4 {
        len: u32::MAX,
        bytes: Bytes(vec![0; 16]),
    };
    assert!(matches!(
        claims_too_much.open::<Set>(&config),
        Err(SyncError::TooLarge { .. })
    ));
    let impossible_ratio = Payload::Lz4 {
        len: 100_000,
        bytes: Bytes(vec![0; 10]),
    };
    assert!(matches!(
        impossible_ratio.open::<Set>(&config),
        Err(SyncError::BadCompression(_))
    ));
    let garbage = Payload::Lz4 {
        len: 1000,
        bytes: Bytes(vec![0xff; 100]),
    };
    assert!(garbage.open::<Set>(&config).is_err());
    let oversized = vec![0u8; (1 << 20) + 1];
    assert!(matches!(
        Message::decode(&oversized, &config),
        Err(SyncError::TooLarge { .. })
    ));
}

#[test]
fn a_refused_message_leaves_the_state_untouched() {
    let (mut a, _) = pair(Config::default());
    a.mutate(|s, cx| s.add(cx, id(A), 1));
    let before = a.state().clone();
    let forged = Message::Delta {
        session: 1,
        from: 0,
        to: 1,
        answer: None,
        payload: Payload::Plain(Bytes(vec![1, 9, 9, 9])),
    };
    assert!(a.receive(B, forged).is_err());
    assert_eq!(a.state(), &before);
}

#[test]
fn an_interval_with_a_gap_is_not_joined() {
    let (mut a, mut b) = pair(Config::default());
    // A sends two batches; B only gets the second.
    a.mutate(|s, cx| s.add(cx, id(A), 1));
    let first = a.push(&[B]);
    a.mutate(|s, cx| s.add(cx, id(A), 2));
    let second = a.push(&[B]);
    drop(first);
    let (_, _, msg) = sent(A, second).pop().unwrap();
    // The second interval starts where B acknowledged, so it carries both
    // batches: no gap, B gets both.
    let _ack = b.receive(A, msg).unwrap();
    assert!(b.state().store().contains(&1) && b.state().store().contains(&2));

    // An interval from a session B never joined from is refused, and B
    // answers with its context so the sender can start over.
    let stray = Message::Delta {
        session: 777,
        from: 5,
        to: 6,
        answer: None,
        payload: Payload::seal(&Causal::<Set>::new(), &Config::default()),
    };
    let out = b.receive(A, stray).unwrap();
    assert!(matches!(
        out.messages[0].1,
        Message::SyncRequest { reply: false, .. }
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic_the_replica(bytes in prop::collection::vec(any::<u8>(), 0..96), versioned in any::<bool>()) {
        let mut bytes = bytes;
        if versioned && !bytes.is_empty() {
            bytes[0] = codec::VERSION;
        }
        let (mut a, _) = pair(Config::default());
        let before = a.state().clone();
        if a.receive_bytes(B, &bytes).is_err() {
            prop_assert_eq!(a.state(), &before);
        }
    }

    #[test]
    fn corrupted_messages_never_panic_the_replica(flips in prop::collection::vec((any::<usize>(), any::<u8>()), 1..4)) {
        let (mut a, mut b) = pair(Config::default());
        for x in 0..50 {
            a.mutate(|s, cx| s.add(cx, id(A), x));
        }
        for (_, m) in a.push(&[B]).messages {
            let mut bytes = m.encode();
            for (i, f) in &flips {
                let n = bytes.len();
                bytes[i % n] ^= f | 1;
            }
            let _ = b.receive_bytes(A, &bytes);
        }
    }
}
