//! Clocks against simple models.

use std::collections::BTreeSet;

use neuroplex_core::{CausalContext, Causality, Dot, Hlc, ReplicaId, VectorClock};
use proptest::prelude::*;

fn vc() -> impl Strategy<Value = VectorClock> {
    prop::collection::vec((0u64..4, 0u64..4), 0..5)
        .prop_map(|v| v.into_iter().map(|(r, c)| (ReplicaId::new(r), c)).collect())
}

fn dots() -> impl Strategy<Value = Vec<Dot>> {
    prop::collection::vec((0u64..3, 1u64..8), 0..16).prop_map(|v| {
        v.into_iter()
            .map(|(r, c)| Dot::new(ReplicaId::new(r), c))
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn compare_matches_pointwise_order(a in vc(), b in vc()) {
        let le = (0..4).all(|r| a.get(ReplicaId::new(r)) <= b.get(ReplicaId::new(r)));
        let ge = (0..4).all(|r| a.get(ReplicaId::new(r)) >= b.get(ReplicaId::new(r)));
        let expected = match (le, ge) {
            (true, true) => Causality::Equal,
            (true, false) => Causality::Before,
            (false, true) => Causality::After,
            (false, false) => Causality::Concurrent,
        };
        prop_assert_eq!(a.compare(&b), expected);
        let mut m = a.clone();
        m.merge(&b);
        prop_assert!(m.dominates(&a) && m.dominates(&b));
        for r in 0..4 {
            let r = ReplicaId::new(r);
            prop_assert_eq!(m.get(r), a.get(r).max(b.get(r)));
        }
    }

    #[test]
    fn causal_context_is_a_canonical_dot_set(xs in dots(), ys in dots()) {
        let model: BTreeSet<Dot> = xs.iter().chain(&ys).copied().collect();
        let mut a = CausalContext::from_dots(xs.iter().copied());
        let b = CausalContext::from_dots(ys.iter().copied());
        a.join(&b);
        // Same events, built any way, give the same structure.
        let direct = CausalContext::from_dots(model.iter().copied());
        prop_assert_eq!(&a, &direct);
        for r in 0..3 {
            for c in 1..10 {
                let d = Dot::new(ReplicaId::new(r), c);
                prop_assert_eq!(a.contains(d), model.contains(&d));
            }
        }
        // Compact: no cloud dot could extend the vector.
        for d in a.cloud() {
            prop_assert!(d.counter > a.vector_clock().get(d.replica) + 1);
        }
        let mut missing = Vec::new();
        a.for_each_missing(&CausalContext::from_dots(xs.iter().copied()), |d| missing.push(d));
        let xset: BTreeSet<Dot> = xs.iter().copied().collect();
        let expected: Vec<Dot> = model.difference(&xset).copied().collect();
        let mut missing_sorted = missing.clone();
        missing_sorted.sort();
        prop_assert_eq!(missing_sorted, expected);
    }

    #[test]
    fn hlc_is_strictly_monotonic(steps in prop::collection::vec((0u64..5, any::<bool>(), 0u64..20), 1..50)) {
        let mut clock = Hlc::new(ReplicaId::new(1));
        let mut remote = Hlc::new(ReplicaId::new(2));
        let mut now = 100;
        let mut last = clock.tick(now);
        for (dt, hear, remote_ahead) in steps {
            now += dt;
            if hear {
                let stamp = remote.tick(now + remote_ahead);
                clock.observe(stamp, now).unwrap();
                let next = clock.tick(now);
                prop_assert!(next > stamp);
                prop_assert!(next > last);
                last = next;
            } else {
                let next = clock.tick(now);
                prop_assert!(next > last);
                prop_assert!(next.time >= now);
                last = next;
            }
        }
    }
}

#[test]
fn hlc_refuses_a_clock_far_in_the_future() {
    let mut clock = Hlc::new(ReplicaId::new(1)).with_max_drift(1_000);
    let mut liar = Hlc::new(ReplicaId::new(2));
    let stamp = liar.tick(10_000_000);
    assert!(clock.observe(stamp, 5_000).is_err());
    assert!(
        clock.tick(5_000).time == 5_000,
        "the refused stamp did not move the clock"
    );
}
