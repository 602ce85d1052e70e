//! The codec on hostile input: deep nesting, lying length prefixes, unknown
//! versions, and values that break their type's invariants.

use neuroplex_core::codec::{self, DecodeError, MAX_DEPTH};
use neuroplex_core::{
    AWSet, Causal, CausalContext, CausalCounter, Dot, GCounter, ORMap, ReplicaId, VectorClock,
};

#[test]
fn refuses_unknown_versions_and_empty_input() {
    assert_eq!(codec::decode::<GCounter>(&[]), Err(DecodeError::Empty));
    assert_eq!(
        codec::decode::<GCounter>(&[2, 0]),
        Err(DecodeError::UnsupportedVersion(2))
    );
}

#[test]
fn refuses_trailing_bytes() {
    let mut bytes = codec::encode(&GCounter::new()).unwrap();
    bytes.push(0);
    assert_eq!(
        codec::decode::<GCounter>(&bytes),
        Err(DecodeError::TrailingBytes(1))
    );
}

/// A recursive type, like the dynamic values the sync layer will carry.
#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
enum Nested {
    Leaf,
    List(Vec<Nested>),
}

fn nested(depth: usize) -> Nested {
    (0..depth).fold(Nested::Leaf, |n, _| Nested::List(vec![n]))
}

#[test]
fn accepts_nesting_up_to_the_limit() {
    // Each List level costs two: the enum and its sequence.
    let ok = nested(MAX_DEPTH / 2 - 1);
    let bytes = codec::encode(&ok).unwrap();
    assert_eq!(codec::decode::<Nested>(&bytes).unwrap(), ok);
}

#[test]
fn refuses_deep_nesting_without_overflowing_the_stack() {
    let too_deep = codec::encode(&nested(MAX_DEPTH)).unwrap();
    assert_eq!(
        codec::decode::<Nested>(&too_deep),
        Err(DecodeError::TooDeep)
    );

    // Hand-made: a million levels in two bytes each. Unbounded recursion
    // would abort the process here, not return.
    let mut evil = vec![codec::VERSION];
    for _ in 0..1_000_000 {
        evil.extend_from_slice(&[1, 1]); // variant List, length 1
    }
    evil.push(0);
    assert_eq!(codec::decode::<Nested>(&evil), Err(DecodeError::TooDeep));
}

#[test]
fn a_lying_length_prefix_reserves_nothing() {
    // A vector clock claiming 2^63 entries, in 11 bytes. smallvec would
    // reserve the claimed length if it were passed on.
    let mut evil = vec![codec::VERSION];
    evil.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]);
    assert!(codec::decode::<VectorClock>(&evil).is_err());
    assert!(codec::decode::<Vec<u8>>(&evil).is_err());
    assert!(codec::decode::<Causal<AWSet<u64>>>(&evil).is_err());
}

#[test]
fn zero_sized_elements_cannot_loop_for_long() {
    // A sequence of 2^40 units: no bytes per element, so only the element
    // budget stops it.
    let mut evil = vec![codec::VERSION];
    evil.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x20]);
    assert_eq!(
        codec::decode::<Vec<()>>(&evil),
        Err(DecodeError::TooManyElements)
    );
}

#[test]
fn refuses_values_that_break_invariants() {
    let r = ReplicaId::new(5);
    // A vector clock out of order.
    let unsorted = vec![(ReplicaId::new(2), 1u64), (ReplicaId::new(1), 1)];
    let bytes = codec::encode(&unsorted).unwrap();
    assert!(matches!(
        codec::decode::<VectorClock>(&bytes),
        Err(DecodeError::Invalid(_))
    ));

    // A store holding a dot its context does not cover.
    #[derive(serde::Serialize)]
    struct RawCausal<S> {
        store: S,
        context: CausalContext,
    }
    let mut set: Causal<AWSet<u8>> = Causal::new();
    set.add(r, 1);
    let raw = RawCausal {
        store: set.store().clone(),
        context: CausalContext::new(),
    };
    let bytes = codec::encode(&raw).unwrap();
    assert!(matches!(
        codec::decode::<Causal<AWSet<u8>>>(&bytes),
        Err(DecodeError::Invalid(_))
    ));

    // A context whose cloud holds a dot the vector already covers.
    #[derive(serde::Serialize)]
    struct RawContext {
        vv: VectorClock,
        cloud: Vec<Dot>,
    }
    let raw = RawContext {
        vv: [(r, 3)].into_iter().collect(),
        cloud: vec![Dot::new(r, 2)],
    };
    let bytes = codec::encode(&raw).unwrap();
    assert!(codec::decode::<CausalContext>(&bytes).is_err());

    // A map entry holding nothing.
    let empty_entry: Vec<(u8, Vec<Dot>)> = vec![(1, vec![])];
    let bytes = codec::encode(&empty_entry).unwrap();
    assert!(codec::decode::<ORMap<u8, CausalCounter>>(&bytes).is_err());
}

#[test]
fn a_small_input_cannot_allocate_much() {
    // Every decode allocates at most a constant times the input length: try
    // every 3-byte input for a nested map type and check nothing explodes
    // (the process would run out of memory or time if a prefix were trusted).
    for a in 0..=255u8 {
        for b in [0u8, 1, 0x7f, 0x80, 0xff] {
            for c in [0u8, 1, 0xff] {
                let _ = codec::decode::<Causal<ORMap<u64, ORMap<u64, AWSet<u64>>>>>(&[1, a, b, c]);
            }
        }
    }
}
