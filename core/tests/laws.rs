//! The lattice and delta laws, convergence, and the codec, for every CRDT.
//!
//! Each property runs at least 256 cases (see `support::config`).

mod support;

use neuroplex_core::{
    AWSet, Causal, CausalCounter, EWFlag, GCounter, GSet, Lattice, LwwRegister, MvRegister, ORMap,
    PNCounter, codec,
};
use proptest::prelude::*;
use support::*;

/// Delivery schedule for the convergence property.
#[derive(Clone, Debug)]
enum Event<O> {
    Op {
        at: usize,
        op: O,
    },
    /// Deliver to `to` its `pick`-th pending delta; with `dup`, keep it
    /// pending so that it is delivered again later.
    Deliver {
        to: usize,
        pick: usize,
        dup: bool,
    },
}

fn schedule<M: Model>() -> impl Strategy<Value = (usize, Vec<Event<M::Op>>, u64)> {
    (2usize..=8).prop_flat_map(|n| {
        let ev = prop_oneof![
            2 => (0..n, M::op()).prop_map(|(at, op)| Event::Op { at, op }),
            3 => (0..n, any::<usize>(), prop::bool::weighted(0.2))
                .prop_map(|(to, pick, dup)| Event::Deliver { to, pick, dup }),
        ];
        (Just(n), prop::collection::vec(ev, 0..60), any::<u64>())
    })
}

/// Runs a schedule on `n` replicas, then delivers everything still pending
/// (shuffled by `seed`, every delta twice) and returns the final states.
fn converge<M: Model>(n: usize, events: &[Event<M::Op>], seed: u64) -> Vec<M> {
    let mut states: Vec<M> = (0..n).map(|_| M::default()).collect();
    let mut envs: Vec<Env> = (0..n).map(Env::new).collect();
    let mut pending: Vec<Vec<M>> = (0..n).map(|_| Vec::new()).collect();
    for e in events {
        match e {
            Event::Op { at, op } => {
                let d = states[*at].act(&mut envs[*at], op);
                for (i, q) in pending.iter_mut().enumerate() {
                    if i != *at {
                        q.push(d.clone());
                    }
                }
            }
            Event::Deliver { to, pick, dup } => {
                let q = &mut pending[*to];
                if q.is_empty() {
                    continue;
                }
                let i = pick % q.len();
                let d = if *dup { q[i].clone() } else { q.swap_remove(i) };
                states[*to].join(d);
            }
        }
    }
    // Flush: a deterministic shuffle, each delta delivered twice.
    let mut rng = seed | 1;
    for (to, q) in pending.into_iter().enumerate() {
        let mut all: Vec<M> = q.clone();
        all.extend(q);
        while !all.is_empty() {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let i = (rng % all.len() as u64) as usize;
            let d = all.swap_remove(i);
            states[to].join(d);
        }
    }
    states
}

macro_rules! laws {
    ($name:ident, $ty:ty) => {
        mod $name {
            use super::*;
            type T = $ty;

            proptest! {
                #![proptest_config(config())]

                #[test]
                fn join_is_commutative(h in steps::<T>(24)) {
                    let w = run::<T>(&h);
                    prop_assert_eq!(join(&w.states[0], &w.states[1]), join(&w.states[1], &w.states[0]));
                }

                #[test]
                fn join_is_associative(h in steps::<T>(24)) {
                    let w = run::<T>(&h);
                    let (a, b, c) = (&w.states[0], &w.states[1], &w.states[2]);
                    prop_assert_eq!(join(&join(a, b), c), join(a, &join(b, c)));
                }

                #[test]
                fn join_is_idempotent(h in steps::<T>(24)) {
                    let w = run::<T>(&h);
                    for s in &w.states {
                        prop_assert_eq!(&join(s, s), s);
                    }
                    for d in &w.deltas {
                        prop_assert_eq!(&join(d, d), d);
                    }
                }

                #[test]
                fn bottom_is_identity(h in steps::<T>(24)) {
                    let w = run::<T>(&h);
                    let bottom = T::default();
                    for s in &w.states {
                        prop_assert_eq!(&join(&bottom, s), s);
                        prop_assert_eq!(&join(s, &bottom), s);
                    }
                }

                #[test]
                fn delta_mutator_law(h in steps::<T>(24), at in 0..REPLICAS, op in <T as Model>::op()) {
                    // m(X) = X ⊔ mδ(X)
                    let mut w = run::<T>(&h);
                    let before = w.states[at].clone();
                    let delta = w.states[at].act(&mut w.envs[at], &op);
                    prop_assert_eq!(before.joined(delta), w.states[at].clone());
                }

                #[test]
                fn delta_group_acts_like_its_parts(
                    h in steps::<T>(24),
                    at in 0..REPLICAS,
                    other in 0..REPLICAS,
                    op1 in <T as Model>::op(),
                    op2 in <T as Model>::op(),
                ) {
                    let mut w = run::<T>(&h);
                    let d1 = w.states[at].act(&mut w.envs[at], &op1);
                    let d2 = w.states[at].act(&mut w.envs[at], &op2);
                    let group = join(&d1, &d2);
                    for y in [w.states[other].clone(), T::default()] {
                        let one_by_one = y.clone().joined(d1.clone()).joined(d2.clone());
                        prop_assert_eq!(y.joined(group.clone()), one_by_one);
                    }
                }

                #[test]
                fn replicas_converge((n, events, seed) in schedule::<T>()) {
                    let states = converge::<T>(n, &events, seed);
                    for s in &states[1..] {
                        prop_assert_eq!(s, &states[0]);
                    }
                }

                #[test]
                fn codec_round_trips(h in steps::<T>(24)) {
                    let w = run::<T>(&h);
                    for v in w.states.iter().chain(&w.deltas) {
                        let bytes = codec::encode(v).unwrap();
                        prop_assert_eq!(&codec::decode::<T>(&bytes).unwrap(), v);
                    }
                }

                #[test]
                fn decoding_arbitrary_bytes_never_panics(
                    mut bytes in prop::collection::vec(any::<u8>(), 0..64),
                    versioned in any::<bool>(),
                ) {
                    if versioned && !bytes.is_empty() {
                        bytes[0] = codec::VERSION;
                    }
                    let _ = codec::decode::<T>(&bytes);
                }

                #[test]
                fn decoding_corrupted_encodings_never_panics(
                    h in steps::<T>(16),
                    flips in prop::collection::vec((any::<usize>(), any::<u8>()), 1..4),
                ) {
                    let w = run::<T>(&h);
                    for v in &w.states {
                        let mut bytes = codec::encode(v).unwrap();
                        for (i, b) in &flips {
                            let n = bytes.len();
                            bytes[i % n] ^= b | 1;
                        }
                        if let Ok(decoded) = codec::decode::<T>(&bytes) {
                            // Whatever decodes is a usable value: it round-trips
                            // and joins without panicking.
                            let again = codec::encode(&decoded).unwrap();
                            prop_assert_eq!(&codec::decode::<T>(&again).unwrap(), &decoded);
                            let _ = join(&decoded, v);
                            let _ = join(v, &decoded);
                        }
                    }
                }
            }
        }
    };
}

laws!(gcounter, GCounter);
laws!(pncounter, PNCounter);
laws!(gset, GSet<u8>);
laws!(lww_register, LwwRegister<u8>);
laws!(awset, Causal<AWSet<u8>>);
laws!(mv_register, Causal<MvRegister<u8>>);
laws!(ew_flag, Causal<EWFlag>);
laws!(causal_counter, Causal<CausalCounter>);
laws!(ormap_of_sets, Causal<ORMap<u8, AWSet<u8>>>);
laws!(ormap_of_registers, Causal<ORMap<u8, MvRegister<u8>>>);
laws!(ormap_of_flags, Causal<ORMap<u8, EWFlag>>);
laws!(ormap_of_counters, Causal<ORMap<u8, CausalCounter>>);
laws!(ormap_nested, Causal<ORMap<u8, ORMap<u8, CausalCounter>>>);
