//! State-since-context: what a peer is missing, including removals of
//! entries it still holds, equals joining the whole state.

mod support;

use neuroplex_core::{AWSet, Causal, CausalCounter, EWFlag, Lattice, MvRegister, ORMap};
use proptest::prelude::*;
use support::*;

macro_rules! since {
    ($name:ident, $store:ty) => {
        mod $name {
            use super::*;
            type T = Causal<$store>;

            proptest! {
                #![proptest_config(config())]

                #[test]
                fn delta_since_equals_full_join(h in steps::<T>(32), a in 0..REPLICAS, b in 0..REPLICAS) {
                    let w = run::<T>(&h);
                    let (x, y) = (&w.states[a], &w.states[b]);
                    let missing = x.delta_since(y.context());
                    prop_assert_eq!(y.clone().joined(missing.clone()), join(y, x));
                    // Never more than the whole state.
                    prop_assert!(missing.store().dot_count() <= x.store().dot_count());
                }

                #[test]
                fn join_changed_reports_change(h in steps::<T>(32), a in 0..REPLICAS, b in 0..REPLICAS) {
                    let w = run::<T>(&h);
                    let (x, y) = (&w.states[a], &w.states[b]);
                    let mut z = y.clone();
                    let changed = z.join_changed(x.clone());
                    prop_assert_eq!(changed, &z != y);
                    for d in &w.deltas {
                        let mut z = y.clone();
                        let changed = z.join_changed(d.clone());
                        prop_assert_eq!(changed, &z != y);
                    }
                }
            }
        }
    };
}

use neuroplex_core::DotStore as _;

since!(awset, AWSet<u8>);
since!(mv_register, MvRegister<u8>);
since!(ew_flag, EWFlag);
since!(causal_counter, CausalCounter);
since!(ormap_nested, ORMap<u8, ORMap<u8, AWSet<u8>>>);
since!(ormap_of_counters, ORMap<u8, CausalCounter>);

macro_rules! novelty {
    ($name:ident, $store:ty) => {
        mod $name {
            use super::*;
            type T = Causal<$store>;

            proptest! {
                #![proptest_config(config())]

                #[test]
                fn novelty_is_what_the_join_added(h in steps::<T>(32), a in 0..REPLICAS, b in 0..REPLICAS) {
                    let w = run::<T>(&h);
                    let (x, y) = (&w.states[a], &w.states[b]);
                    for other in w.deltas.iter().chain([x]) {
                        let mut z = y.clone();
                        let novelty = z.join_novelty(other.clone());
                        prop_assert_eq!(novelty.is_some(), &z != y);
                        if let Some(n) = novelty {
                            // Joining just the novelty gives the same result...
                            prop_assert_eq!(y.clone().joined(n.clone()), z.clone());
                            // ...and it is never more than what arrived.
                            prop_assert!(n.store().dot_count() <= other.store().dot_count());
                        }
                    }
                }
            }
        }
    };
}

mod novelty_of {
    use super::*;
    novelty!(awset, AWSet<u8>);
    novelty!(mv_register, MvRegister<u8>);
    novelty!(ew_flag, EWFlag);
    novelty!(causal_counter, CausalCounter);
    novelty!(ormap_nested, ORMap<u8, ORMap<u8, AWSet<u8>>>);
}
