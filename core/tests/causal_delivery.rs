//! What the causal buffer is for: without it a reader can see an effect
//! before its cause, although every delivery order ends in the same state.

use neuroplex_core::{AWSet, Causal, CausalBuffer, Envelope, Lattice, Overflow, ReplicaId};
use proptest::prelude::*;

type Set = Causal<AWSet<&'static str>>;

const A: ReplicaId = ReplicaId::new(1);
const B: ReplicaId = ReplicaId::new(2);
const C: ReplicaId = ReplicaId::new(3);

/// "y without x": the effect visible, its cause not.
fn shows_y_without_x(s: &Set) -> bool {
    s.store().contains(&"y") && !s.store().contains(&"x")
}

#[test]
fn without_the_buffer_a_reader_sees_an_effect_before_its_cause() {
    let mut a = Set::new();
    let dx = a.add(A, "x");
    let dy = a.add(A, "y");

    // B receives y first and applies it at once.
    let mut b = Set::new();
    b.join(dy.clone());
    assert!(shows_y_without_x(&b), "B shows y without x");
    b.join(dx.clone());

    // Both orders end in the same state: convergence alone does not help.
    let mut in_order = Set::new();
    in_order.join(dx);
    in_order.join(dy);
    assert_eq!(b, in_order);
    assert_eq!(b, a);
}

#[test]
fn with_the_buffer_b_never_shows_y_without_x() {
    let mut a = Set::new();
    let mut a_out = CausalBuffer::new(A, 16);
    let ex = a_out.stamp(a.add(A, "x"));
    let ey = a_out.stamp(a.add(A, "y"));

    for order in [[ey.clone(), ex.clone()], [ex.clone(), ey.clone()]] {
        let mut b = Set::new();
        let mut b_in = CausalBuffer::new(B, 16);
        for env in order {
            for delta in b_in.receive(env).unwrap() {
                b.join(delta);
                assert!(!shows_y_without_x(&b));
            }
        }
        assert_eq!(b, a);
    }
}

#[test]
fn transitive_causes_are_respected() {
    // A adds x; C sees it and adds y; B hears from C before A.
    let mut a = Set::new();
    let mut a_buf = CausalBuffer::new(A, 16);
    let mut c = Set::new();
    let mut c_buf = CausalBuffer::new(C, 16);
    let mut b = Set::new();
    let mut b_buf = CausalBuffer::new(B, 16);

    let ex = a_buf.stamp(a.add(A, "x"));
    for d in c_buf.receive(ex.clone()).unwrap() {
        c.join(d);
    }
    let ey = c_buf.stamp(c.add(C, "y"));

    assert!(b_buf.receive(ey).unwrap().is_empty(), "y waits for x");
    assert_eq!(b_buf.pending(), 1);
    let released = b_buf.receive(ex).unwrap();
    assert_eq!(released.len(), 2);
    for d in released {
        b.join(d);
        assert!(!shows_y_without_x(&b));
    }
    assert_eq!(b.store().len(), 2);
}

#[test]
fn duplicates_are_no_ops_and_overflow_is_reported() {
    let mut a_buf = CausalBuffer::new(A, 0);
    let envs: Vec<Envelope<u32>> = (0..4).map(|i| a_buf.stamp(i)).collect();

    let mut b_buf = CausalBuffer::new(B, 2);
    assert_eq!(b_buf.receive(envs[3].clone()), Ok(vec![]));
    assert_eq!(
        b_buf.receive(envs[3].clone()),
        Ok(vec![]),
        "duplicate while pending"
    );
    assert_eq!(b_buf.receive(envs[2].clone()), Ok(vec![]));
    assert_eq!(
        b_buf.receive(envs[1].clone()),
        Err(Overflow::Full {
            origin: A,
            sequence: 2
        })
    );
    assert_eq!(b_buf.pending(), 2, "the buffer did not grow past its bound");
    assert_eq!(b_buf.receive(envs[0].clone()), Ok(vec![0]));
    // The refused delta comes again (anti-entropy resends it) and unblocks the rest.
    assert_eq!(b_buf.receive(envs[1].clone()), Ok(vec![1, 2, 3]));
    assert_eq!(
        b_buf.receive(envs[0].clone()),
        Ok(vec![]),
        "duplicate after delivery"
    );
    assert_eq!(b_buf.pending(), 0);
}

#[test]
fn an_envelope_without_a_sequence_number_is_refused() {
    let mut b_buf: CausalBuffer<u32> = CausalBuffer::new(B, 4);
    let env = Envelope {
        origin: A,
        deps: Default::default(),
        delta: 7,
    };
    assert_eq!(b_buf.receive(env), Err(Overflow::Malformed { origin: A }));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Three replicas add elements, each after seeing some of the others'
    /// adds; a fourth receives every envelope in a random order, with
    /// duplicates. Whatever it shows at any moment is causally closed: every
    /// add it shows, it also shows every add that add's replica had seen.
    #[test]
    fn delivery_is_causal_in_any_order(
        script in prop::collection::vec((0usize..3, prop::collection::vec(any::<bool>(), 3)), 1..20),
        order in Just(()).prop_perturb(|_, mut rng| rng.random::<u64>()),
    ) {
        let ids = [A, B, C];
        let mut sets: Vec<Causal<AWSet<u32>>> = vec![Causal::new(); 3];
        let mut bufs: Vec<CausalBuffer<Causal<AWSet<u32>>>> =
            ids.iter().map(|&id| CausalBuffer::new(id, 1024)).collect();
        let mut sent: Vec<Envelope<Causal<AWSet<u32>>>> = Vec::new();
        // deps[e] = the elements replica had shown when it added element e
        let mut seen_when_added: Vec<Vec<u32>> = Vec::new();
        for (at, listen) in &script {
            // First hear some of what was sent so far (in send order).
            for (from, hear) in listen.iter().enumerate() {
                if *hear && from != *at {
                    for env in sent.iter().filter(|e| e.origin == ids[from]) {
                        for d in bufs[*at].receive(env.clone()).unwrap() {
                            sets[*at].join(d);
                        }
                    }
                }
            }
            let e = seen_when_added.len() as u32;
            seen_when_added.push(sets[*at].store().iter().copied().collect());
            let d = sets[*at].add(ids[*at], e);
            sent.push(bufs[*at].stamp(d));
        }
        // The observer gets everything twice, shuffled.
        let mut inbox: Vec<_> = sent.iter().chain(sent.iter()).cloned().collect();
        let mut rng = order | 1;
        let mut observer: Causal<AWSet<u32>> = Causal::new();
        let mut obuf = CausalBuffer::new(ReplicaId::new(99), 1024);
        while !inbox.is_empty() {
            rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
            let env = inbox.swap_remove((rng % inbox.len() as u64) as usize);
            for d in obuf.receive(env).unwrap() {
                observer.join(d);
                for &e in observer.store().iter() {
                    for cause in &seen_when_added[e as usize] {
                        prop_assert!(observer.store().contains(cause),
                            "shows {} without its cause {}", e, cause);
                    }
                }
            }
        }
        prop_assert_eq!(observer.store().len(), script.len());
    }
}
