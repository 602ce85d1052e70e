#![cfg(feature = "sim")]
//! PBFT replicas driven by hand: untrusted input (forgeries, hostile
//! bytes, floods) and the evidence a replica reports.

use neuroplex_core::bft::auth::Auth;
use neuroplex_core::bft::message::{
    AuthRequest, CheckpointVote, Message, PrePrepare, Request, Signed, SignedKind, Vote, VoteKind,
    Voted,
};
use neuroplex_core::bft::{
    Authenticator, Batch, Config, Dealer, Fault, Input, Replica, Step, Target,
};
use neuroplex_core::sim::Rng;

const CLIENT: u64 = 9;

fn group() -> (Dealer, Config) {
    let dealer = Dealer::new([42; 32], 4);
    let config = dealer.config();
    (dealer, config)
}

fn mac_replica(dealer: &Dealer, config: &Config, i: u32) -> Replica<neuroplex_core::bft::MacAuth> {
    let keys = dealer.replica(i, &[CLIENT]);
    Replica::new(config.clone(), &keys, keys.mac()).unwrap().0
}

fn ed_replica(
    dealer: &Dealer,
    config: &Config,
    i: u32,
) -> Replica<neuroplex_core::bft::Ed25519Auth> {
    let keys = dealer.replica(i, &[CLIENT]);
    let auth = keys.ed25519(config).unwrap();
    Replica::new(config.clone(), &keys, auth).unwrap().0
}

/// A batch of one request from CLIENT, MAC'd for every replica.
fn batch(dealer: &Dealer, ts: u64, op: &[u8]) -> Batch {
    let request = Request {
        client: CLIENT,
        timestamp: ts,
        op: op.to_vec(),
    };
    let macs = dealer.client(CLIENT).macs().tags(&request.digest().0);
    Batch {
        requests: vec![AuthRequest { request, macs }],
    }
}

fn pre_prepare<A: Authenticator>(primary: &A, view: u64, seq: u64, b: Batch) -> Vec<u8> {
    let vote = Vote {
        view,
        seq,
        digest: b.digest(),
        replica: 0,
    };
    let auth = primary.seal(&vote.payload(VoteKind::PrePrepare));
    Message::PrePrepare(PrePrepare {
        vote,
        auth,
        batch: b,
    })
    .encode()
}

fn msg(link: u64, bytes: Vec<u8>) -> Input {
    Input::Message { link, bytes }
}

fn prepares_sent(step: &Step) -> usize {
    step.send
        .iter()
        .filter(|o| matches!(Message::decode(&o.bytes), Ok(Message::Prepare(_))))
        .count()
}

#[test]
fn forged_votes_are_dropped_and_blamed_on_their_link() {
    let (dealer, config) = group();
    let mut r1 = mac_replica(&dealer, &config, 1);
    let r2_auth = dealer.replica(2, &[CLIENT]).mac();
    let vote = Vote {
        view: 0,
        seq: 1,
        digest: neuroplex_core::bft::Digest([1; 32]),
        replica: 2,
    };
    // Replica 3 sends a prepare in replica 2's name, with its own tags.
    let r3_auth = dealer.replica(3, &[CLIENT]).mac();
    let forged = Message::Prepare(Voted {
        vote,
        auth: r3_auth.seal(&vote.payload(VoteKind::Prepare)),
    });
    let step = r1.handle(msg(33, forged.encode()));
    assert!(
        matches!(step.faults[..], [Fault::BadAuth { link: 33, .. }]),
        "{:?}",
        step.faults
    );
    assert!(step.send.is_empty() && step.persist.is_empty());
    // A corrupted tag is caught the same way; the genuine vote is not.
    let mut auth = r2_auth.seal(&vote.payload(VoteKind::Prepare));
    if let Auth::Macs(tags) = &mut auth {
        tags[1][0] ^= 1;
    }
    let step = r1.handle(msg(34, Message::Prepare(Voted { vote, auth }).encode()));
    assert!(matches!(step.faults[..], [Fault::BadAuth { link: 34, .. }]));
    let genuine = Message::Prepare(Voted {
        vote,
        auth: r2_auth.seal(&vote.payload(VoteKind::Prepare)),
    });
    assert!(r1.handle(msg(2, genuine.encode())).faults.is_empty());
}

#[test]
fn forged_signatures_are_dropped() {
    let (dealer, config) = group();
    let mut r1 = ed_replica(&dealer, &config, 1);
    let id2 = dealer.replica(2, &[]).identity(&config).unwrap();
    let mut s = Signed::sign(
        &id2,
        SignedKind::Checkpoint,
        &CheckpointVote {
            seq: 16,
            digest: neuroplex_core::bft::Digest([5; 32]),
        },
    );
    s.sig.0[3] ^= 0x10;
    let step = r1.handle(msg(7, Message::Checkpoint(s.clone()).encode()));
    assert!(matches!(step.faults[..], [Fault::BadAuth { link: 7, .. }]));
    // Claiming another signer does not help either.
    s.sig.0[3] ^= 0x10;
    s.signer = 3;
    let step = r1.handle(msg(8, Message::Checkpoint(s).encode()));
    assert!(matches!(step.faults[..], [Fault::BadAuth { link: 8, .. }]));
}

#[test]
fn a_primary_cannot_invent_requests() {
    let (dealer, config) = group();
    let mut r1 = mac_replica(&dealer, &config, 1);
    let primary = dealer.replica(0, &[CLIENT]).mac();
    let mut b = batch(&dealer, 1, b"pay alice");
    b.requests[0].request.op = b"pay mallory".to_vec();
    let step = r1.handle(msg(0, pre_prepare(&primary, 0, 1, b)));
    assert_eq!(prepares_sent(&step), 0);
    assert!(matches!(
        step.faults[..],
        [Fault::UnverifiedRequest {
            link: 0,
            client: CLIENT
        }]
    ));
    // The genuine request is accepted and prepared.
    let step = r1.handle(msg(
        0,
        pre_prepare(&primary, 0, 1, batch(&dealer, 1, b"pay alice")),
    ));
    assert_eq!(prepares_sent(&step), 1);
    assert!(
        !step.persist.is_empty(),
        "the promise is persisted with the prepare"
    );
}

#[test]
fn equivocating_primary_yields_a_proof_anyone_can_check() {
    let (dealer, config) = group();
    let mut r1 = ed_replica(&dealer, &config, 1);
    let primary = dealer.replica(0, &[CLIENT]).ed25519(&config).unwrap();
    let a = r1.handle(msg(0, pre_prepare(&primary, 0, 1, batch(&dealer, 1, b"x"))));
    assert_eq!(prepares_sent(&a), 1);
    let b = r1.handle(msg(0, pre_prepare(&primary, 0, 1, batch(&dealer, 2, b"y"))));
    assert_eq!(
        prepares_sent(&b),
        0,
        "one prepare per view and sequence number"
    );
    let public = config.validate().unwrap();
    let proof = b
        .faults
        .iter()
        .find_map(|f| match f {
            Fault::Misbehaviour(p) => Some(p.clone()),
            _ => None,
        })
        .expect("a proof");
    assert_eq!(proof.check(&public), Ok(0));
    // The same two statements cannot convict anyone else, or be forged.
    let mut tampered = (*proof).clone();
    if let neuroplex_core::bft::Evidence::Vote { vote, .. } = &mut tampered.b {
        vote.seq = 2;
    }
    assert!(tampered.check(&public).is_err());
}

#[test]
fn conflicting_checkpoints_convict_in_mac_mode() {
    let (dealer, config) = group();
    let mut r1 = mac_replica(&dealer, &config, 1);
    let id3 = dealer.replica(3, &[]).identity(&config).unwrap();
    let vote = |d: u8| {
        Message::Checkpoint(Signed::sign(
            &id3,
            SignedKind::Checkpoint,
            &CheckpointVote {
                seq: 16,
                digest: neuroplex_core::bft::Digest([d; 32]),
            },
        ))
        .encode()
    };
    assert!(r1.handle(msg(3, vote(1))).faults.is_empty());
    let step = r1.handle(msg(3, vote(2)));
    let public = config.validate().unwrap();
    assert!(
        step.faults
            .iter()
            .any(|f| matches!(f, Fault::Misbehaviour(p) if p.check(&public) == Ok(3)))
    );
}

#[test]
fn a_restarted_replica_keeps_its_promises() {
    let (dealer, config) = group();
    let keys = dealer.replica(1, &[CLIENT]);
    let (mut r1, _) = Replica::new(config.clone(), &keys, keys.mac()).unwrap();
    let primary = dealer.replica(0, &[CLIENT]).mac();
    let step = r1.handle(msg(0, pre_prepare(&primary, 0, 1, batch(&dealer, 1, b"x"))));
    assert_eq!(prepares_sent(&step), 1);
    // Crash; restart from exactly what was persisted.
    let (mut again, _) =
        Replica::restore(config.clone(), &keys, keys.mac(), &step.persist).unwrap();
    // A conflicting proposal for the same view and sequence number: no
    // second prepare, even though the replica lost its memory.
    let step = again.handle(msg(0, pre_prepare(&primary, 0, 1, batch(&dealer, 2, b"y"))));
    assert_eq!(prepares_sent(&step), 0);
    // Without the journal it would have prepared it: the persisted record
    // is what prevents it.
    let (mut amnesiac, _) = Replica::restore(config, &keys, keys.mac(), &[]).unwrap();
    let step = amnesiac.handle(msg(0, pre_prepare(&primary, 0, 1, batch(&dealer, 2, b"y"))));
    assert_eq!(prepares_sent(&step), 1);
}

#[test]
fn floods_stay_bounded() {
    let (dealer, config) = group();
    let mut r1 = mac_replica(&dealer, &config, 1);
    let r2 = dealer.replica(2, &[CLIENT]).mac();
    let mut rng = Rng::new(5);
    for i in 0..20_000u64 {
        // Authentic votes for random sequence numbers, digests and views.
        let vote = Vote {
            view: rng.below(3),
            seq: rng.below(10_000),
            digest: neuroplex_core::bft::Digest([(i % 251) as u8; 32]),
            replica: 2,
        };
        let kind = if i % 2 == 0 {
            VoteKind::Prepare
        } else {
            VoteKind::Commit
        };
        let voted = Voted {
            vote,
            auth: r2.seal(&vote.payload(kind)),
        };
        let m = if i % 2 == 0 {
            Message::Prepare(voted)
        } else {
            Message::Commit(voted)
        };
        r1.handle(msg(2, m.encode()));
    }
    assert!(
        r1.log_len() as u64 <= config.window,
        "log {} > window",
        r1.log_len()
    );
    assert!(r1.buffered_len() <= neuroplex_core::bft::MAX_FUTURE);
}

#[test]
fn hostile_bytes_never_panic() {
    let (dealer, config) = group();
    let mut r1 = mac_replica(&dealer, &config, 1);
    let primary = dealer.replica(0, &[CLIENT]).mac();
    let genuine = batch(&dealer, 1, b"op");
    let digest = genuine.digest();
    let valid = pre_prepare(&primary, 0, 1, genuine);
    let mut prepared = Vec::new();
    let mut collect = |step: &Step| {
        for o in &step.send {
            if let Ok(Message::Prepare(v)) = Message::decode(&o.bytes) {
                prepared.push(v.vote);
            }
        }
    };
    let mut rng = Rng::new(11);
    let mut faults = 0;
    for i in 0..20_000u64 {
        let bytes: Vec<u8> = if i % 2 == 0 {
            (0..rng.below(300)).map(|_| rng.next_u64() as u8).collect()
        } else {
            let mut b = valid.clone();
            for _ in 0..rng.range(1, 4) {
                let k = rng.below(b.len() as u64) as usize;
                b[k] ^= 1 << rng.below(8);
            }
            if rng.chance(0.2) {
                b.truncate(rng.below(b.len() as u64) as usize);
            }
            b
        };
        let step = r1.handle(msg(66, bytes));
        collect(&step);
        faults += step.faults.len();
        assert!(step.send.iter().all(|o| o.to != Target::Client(CLIENT)));
    }
    assert!(faults > 10_000, "garbage is reported ({faults} faults)");
    // Still works: the genuine proposal is accepted (a mutation that only
    // touched another replica's tag may have delivered it already), and
    // nothing else ever was.
    collect(&r1.handle(msg(0, valid)));
    assert_eq!(prepared.len(), 1, "{prepared:?}");
    assert_eq!(
        (prepared[0].view, prepared[0].seq, prepared[0].digest),
        (0, 1, digest)
    );
}

#[test]
fn a_faulty_signer_cannot_crowd_out_checkpoint_votes() {
    let dealer = Dealer::new([43; 32], 7);
    let config = dealer.config();
    let mut r1 = mac_replica(&dealer, &config, 1);
    let vote = |i: u32, seq: u64, d: u8| {
        let id = dealer.replica(i, &[]).identity(&config).unwrap();
        Message::Checkpoint(Signed::sign(
            &id,
            SignedKind::Checkpoint,
            &CheckpointVote {
                seq,
                digest: neuroplex_core::bft::Digest([d; 32]),
            },
        ))
        .encode()
    };
    // Replica 0 floods votes for far-away checkpoints.
    for k in 1..200 {
        r1.handle(msg(0, vote(0, 16 * (k + 10), 9)));
    }
    // 2f+1 correct replicas vote for a checkpoint at 16 that r1 lacks: the
    // certificate completes and r1 asks for that state.
    let mut fetched = false;
    for i in 2..7 {
        let step = r1.handle(msg(u64::from(i), vote(i, 16, 7)));
        fetched |= step
            .send
            .iter()
            .any(|o| matches!(Message::decode(&o.bytes), Ok(Message::Fetch(f, _)) if f.seq == 16));
    }
    assert!(fetched);
}
