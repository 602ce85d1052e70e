//! The validators' ordered state machine (`core::ordered`): its rules one by
//! one, and determinism over random histories.

use neuroplex_core::codec;
use neuroplex_core::ordered::{Effect, Limits, Machine, Op, Outcome, Right};
use proptest::prelude::*;

const OWNER: [u8; 32] = [1; 32];
const ALICE: [u8; 32] = [2; 32];
const MALLORY: [u8; 32] = [3; 32];

fn room(m: &mut Machine) {
    let r = m.apply(&OWNER, Op::CreateRoom { room: "r".into() });
    assert_eq!(r, (Outcome::Done, None));
}

fn put(key: &str, value: &str) -> Op {
    Op::Put {
        room: "r".into(),
        key: key.into(),
        value: value.into(),
    }
}

fn get(key: &str) -> Op {
    Op::Get {
        room: "r".into(),
        key: key.into(),
    }
}

fn denied(o: &(Outcome, Option<Effect>)) -> bool {
    matches!(o, (Outcome::Denied(_), None))
}

#[test]
fn rights_decide_who_reads_writes_and_administers() {
    let mut m = Machine::new(Limits::default());
    room(&mut m);
    assert!(
        denied(&m.apply(&OWNER, Op::CreateRoom { room: "r".into() })),
        "a room is created once"
    );
    assert!(denied(&m.apply(&ALICE, put("k", "v"))));
    assert!(denied(&m.apply(&ALICE, get("k"))));
    let grant = |right| Op::Grant {
        room: "r".into(),
        principal: ALICE,
        right,
    };
    assert!(
        denied(&m.apply(&MALLORY, grant(Right::Admin))),
        "only an admin grants"
    );
    assert_eq!(m.apply(&OWNER, grant(Right::Read)).0, Outcome::Done);
    assert_eq!(m.apply(&ALICE, get("k")).0, Outcome::Value(None));
    assert!(denied(&m.apply(&ALICE, put("k", "v"))), "read is not write");
    assert_eq!(m.apply(&OWNER, grant(Right::Admin)).0, Outcome::Done);
    assert_eq!(m.apply(&ALICE, put("k", "v")).0, Outcome::Done);
    // An admin may grant, but not touch the owner.
    let to_mallory = Op::Grant {
        room: "r".into(),
        principal: MALLORY,
        right: Right::Write,
    };
    assert_eq!(m.apply(&ALICE, to_mallory).0, Outcome::Done);
    let revoke = |principal| Op::Revoke {
        room: "r".into(),
        principal,
    };
    assert!(denied(&m.apply(&ALICE, revoke(OWNER))));
    assert_eq!(m.right_of("r", &OWNER), Some(Right::Admin));
    // Lowering and revoking are effects the shell acts on (closing
    // connections); raising is not.
    assert_eq!(
        m.apply(&OWNER, grant(Right::Read)),
        (
            Outcome::Done,
            Some(Effect::RightsChanged {
                room: "r".into(),
                principal: ALICE,
                now: Some(Right::Read)
            })
        )
    );
    assert_eq!(
        m.apply(&OWNER, revoke(MALLORY)),
        (
            Outcome::Done,
            Some(Effect::RightsChanged {
                room: "r".into(),
                principal: MALLORY,
                now: None
            })
        )
    );
    assert!(denied(&m.apply(&MALLORY, put("k", "x"))));
    assert_eq!(
        m.apply(&OWNER, get("k")).0,
        Outcome::Value(Some(b"v".to_vec()))
    );
    // Revoking someone without rights changes nothing and needs no action.
    assert_eq!(m.apply(&OWNER, revoke(MALLORY)), (Outcome::Done, None));
}

#[test]
fn compare_and_set_and_claims_are_linearizable() {
    let mut m = Machine::new(Limits::default());
    room(&mut m);
    let cas = |expected: Option<&str>, value: Option<&str>| Op::CompareAndSet {
        room: "r".into(),
        key: b"seat".to_vec(),
        expected: expected.map(Into::into),
        value: value.map(Into::into),
    };
    assert_eq!(m.apply(&OWNER, cas(None, Some("a"))).0, Outcome::Done);
    assert_eq!(
        m.apply(&OWNER, cas(None, Some("b"))).0,
        Outcome::Mismatch(Some(b"a".to_vec()))
    );
    assert_eq!(m.apply(&OWNER, cas(Some("a"), None)).0, Outcome::Done);
    assert_eq!(m.apply(&OWNER, get("seat")).0, Outcome::Value(None));
    // A name is claimed once: whoever comes first in the order.
    m.apply(
        &OWNER,
        Op::Grant {
            room: "r".into(),
            principal: ALICE,
            right: Right::Write,
        },
    );
    let claim = Op::Claim {
        room: "r".into(),
        name: b"12A".to_vec(),
    };
    assert_eq!(m.apply(&ALICE, claim.clone()).0, Outcome::ClaimedBy(ALICE));
    assert_eq!(m.apply(&OWNER, claim.clone()).0, Outcome::ClaimedBy(ALICE));
    assert_eq!(m.apply(&ALICE, claim).0, Outcome::ClaimedBy(ALICE));
}

#[test]
fn what_is_over_a_bound_or_not_an_operation_changes_nothing() {
    let limits = Limits {
        max_entries_per_room: 2,
        max_rooms_per_owner: 1,
        ..Limits::default()
    };
    let mut m = Machine::new(limits.clone());
    room(&mut m);
    let before = m.snapshot();
    let big = "x".repeat(limits.max_value + 1);
    for op in [
        put("k", &big),
        Op::CreateRoom {
            room: String::new(),
        },
        Op::CreateRoom {
            room: "r".repeat(limits.max_room_name + 1),
        },
        Op::CreateRoom {
            room: "second".into(),
        },
        Op::Get {
            room: "r".into(),
            key: vec![0; limits.max_key + 1],
        },
    ] {
        let (o, e) = m.apply(&OWNER, op.clone());
        assert!(matches!(o, Outcome::Refused(_)), "{op:?}: {o:?}");
        assert!(e.is_none());
    }
    assert_eq!(m.snapshot(), before);
    assert_eq!(m.apply(&OWNER, put("a", "1")).0, Outcome::Done);
    assert_eq!(m.apply(&OWNER, put("b", "2")).0, Outcome::Done);
    assert!(matches!(
        m.apply(&OWNER, put("c", "3")).0,
        Outcome::Refused(_)
    ));
    assert_eq!(
        m.apply(&OWNER, put("a", "again")).0,
        Outcome::Done,
        "overwriting is not growing"
    );
    // Bytes that are not an operation.
    let before = m.snapshot();
    for junk in [&[][..], &[0xff; 40][..], &[1, 200, 200, 200, 200, 200][..]] {
        let (bytes, effect) = m.execute(&OWNER, junk);
        let o: Outcome = codec::decode(&bytes).unwrap();
        assert!(matches!(o, Outcome::Refused(_)), "{o:?}");
        assert!(effect.is_none());
    }
    assert_eq!(m.snapshot(), before);
}

fn arb_op() -> impl Strategy<Value = Op> {
    let room = prop::sample::select(vec!["r", "s"]).prop_map(String::from);
    let key = prop::collection::vec(0u8..4, 0..3);
    let value = prop::collection::vec(any::<u8>(), 0..4);
    let who = (1u8..5).prop_map(|b| [b; 32]);
    let right = prop::sample::select(vec![Right::Read, Right::Write, Right::Admin]);
    prop_oneof![
        room.clone().prop_map(|room| Op::CreateRoom { room }),
        (room.clone(), who.clone(), right).prop_map(|(room, principal, right)| Op::Grant {
            room,
            principal,
            right
        }),
        (room.clone(), who.clone()).prop_map(|(room, principal)| Op::Revoke { room, principal }),
        (room.clone(), key.clone(), value.clone()).prop_map(|(room, key, value)| Op::Put {
            room,
            key,
            value
        }),
        (room.clone(), key.clone()).prop_map(|(room, key)| Op::Get { room, key }),
        (
            room.clone(),
            key.clone(),
            prop::option::of(value.clone()),
            prop::option::of(value)
        )
            .prop_map(|(room, key, expected, value)| Op::CompareAndSet {
                room,
                key,
                expected,
                value
            }),
        (room.clone(), key).prop_map(|(room, name)| Op::Claim { room, name }),
        (room, any::<[u8; 32]>()).prop_map(|(room, digest)| Op::Checkpoint { room, digest }),
    ]
}

proptest! {
    /// Two members executing the same history, one of them through the
    /// encoded path and restarted from a snapshot halfway, hold the same
    /// state and give the same outcomes.
    #[test]
    fn the_same_history_gives_the_same_state(
        history in prop::collection::vec(((1u8..5).prop_map(|b| [b; 32]), arb_op()), 0..60),
        cut in any::<prop::sample::Index>(),
    ) {
        let limits = Limits { max_entries_per_room: 8, max_grants_per_room: 2, ..Limits::default() };
        let mut a = Machine::new(limits.clone());
        let mut b = Machine::new(limits.clone());
        let cut = cut.index(history.len() + 1);
        for (i, (who, op)) in history.iter().enumerate() {
            if i == cut {
                b = Machine::restore(limits.clone(), &b.snapshot()).unwrap();
                prop_assert_eq!(&a, &b);
            }
            let (oa, ea) = a.apply(who, op.clone());
            let (bytes, eb) = b.execute(who, &codec::encode(op).unwrap());
            let ob: Outcome = codec::decode(&bytes).unwrap();
            prop_assert_eq!(oa, ob);
            prop_assert_eq!(ea, eb);
        }
        prop_assert_eq!(a.snapshot(), b.snapshot());
        prop_assert_eq!(a.digest(), b.digest());
    }
}
