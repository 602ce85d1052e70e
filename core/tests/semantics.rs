//! The semantics users rely on, stated as examples.

use neuroplex_core::{AWSet, Causal, CausalCounter, EWFlag, Lattice, MvRegister, ORMap, ReplicaId};

const A: ReplicaId = ReplicaId::new(1);
const B: ReplicaId = ReplicaId::new(2);

type Doc = Causal<ORMap<&'static str, CausalCounter>>;

/// {k: 5}; A removes k while B adds 1; after sync both show k = 1. Checked
/// with the 5 made by A, by B, and by both.
#[test]
fn remove_concurrent_with_update_keeps_only_the_update() {
    for (by_a, by_b) in [(5, 0), (0, 5), (2, 3)] {
        let mut a = Doc::new();
        let mut b = Doc::new();
        if by_a > 0 {
            b.join(a.apply("k", |c, cx| c.increment(cx, A, by_a)));
        }
        if by_b > 0 {
            a.join(b.apply("k", |c, cx| c.increment(cx, B, by_b)));
        }
        assert_eq!(a.store().get(&"k").unwrap().value(), 5);
        assert_eq!(a, b);

        let rm = a.remove(&"k");
        let up = b.apply("k", |c, cx| c.increment(cx, B, 1));
        a.join(up);
        b.join(rm);
        assert_eq!(a, b);
        assert_eq!(a.store().get(&"k").map(|c| c.value()), Some(1));
    }
}

#[test]
fn a_removed_key_does_not_come_back_from_a_stale_replica() {
    let mut a = Doc::new();
    let d = a.apply("k", |c, cx| c.increment(cx, A, 5));
    let mut stale = Doc::new();
    stale.join(d);
    a.remove(&"k");
    // The stale replica's full state still holds k = 5.
    a.join(stale.clone());
    assert!(a.store().get(&"k").is_none());
}

#[test]
fn nested_maps_reset_recursively() {
    type Nested = Causal<ORMap<&'static str, ORMap<&'static str, AWSet<u8>>>>;
    let mut a = Nested::new();
    let d = a.apply("doc", |m, cx| m.apply(cx, "tags", |s, cx| s.add(cx, A, 1)));
    let mut b = Nested::new();
    b.join(d);
    let rm = a.remove(&"doc");
    let add = b.apply("doc", |m, cx| m.apply(cx, "tags", |s, cx| s.add(cx, B, 2)));
    a.join(add);
    b.join(rm);
    assert_eq!(a, b);
    let tags = a.store().get(&"doc").unwrap().get(&"tags").unwrap();
    assert_eq!(tags.iter().copied().collect::<Vec<_>>(), [2]);
}

#[test]
fn re_adding_keeps_one_dot_per_element() {
    let mut s: Causal<AWSet<u8>> = Causal::new();
    for _ in 0..100 {
        s.add(A, 7);
    }
    assert_eq!(s.store().dots_of(&7).unwrap().len(), 1);
    assert!(s.context().cloud().is_empty());
}

#[test]
fn map_values_of_every_dot_kind() {
    let mut flags: Causal<ORMap<u8, EWFlag>> = Causal::new();
    flags.apply(1, |f, cx| f.enable(cx, A));
    assert!(flags.store().get(&1).unwrap().is_enabled());
    flags.apply(1, |f, _| f.disable());
    assert!(
        flags.store().get(&1).is_none(),
        "a disabled flag holds no dot"
    );

    let mut regs: Causal<ORMap<u8, MvRegister<&str>>> = Causal::new();
    let mut other = regs.clone();
    let d1 = regs.apply(1, |r, cx| r.write(cx, A, "a"));
    let d2 = other.apply(1, |r, cx| r.write(cx, B, "b"));
    regs.join(d2);
    other.join(d1);
    assert_eq!(regs, other);
    assert_eq!(regs.store().get(&1).unwrap().values().count(), 2);
}
