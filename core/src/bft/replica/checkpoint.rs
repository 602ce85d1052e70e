//! Checkpoints, garbage collection and state transfer.
//!
//! Every K sequence numbers the application returns its state; the replica
//! binds it with its exactly-once table into a [`CheckpointData`], signs a
//! vote for its digest and broadcasts it. 2f+1 matching signed votes make a
//! checkpoint stable: the low watermark moves up and the log below is
//! dropped. A replica that sees a certified checkpoint above what it
//! executed fetches that state from any replica and checks it against the
//! certified digest, so the sender need not be trusted.

use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;

use super::{Fetching, Replica};
use crate::bft::auth::{Auth, Authenticator};
use crate::bft::message::{
    CheckpointData, CheckpointVote, Fetch, Message, MessageKind, OpenError, Signed, SignedKind,
};
use crate::bft::persist::Record;
use crate::bft::proof::{Evidence, Proof};
use crate::bft::step::{Event, Fault, Link, Step};
use crate::bft::{Digest, ReplicaIndex, Seq};

/// Most checkpoint votes held per signer beyond those of the window: a
/// faulty signer can only push out its own votes.
const EXTRA_VOTES_PER_SIGNER: u64 = 2;

impl<A: Authenticator> Replica<A> {
    /// The application returned its state after `seq`.
    pub(crate) fn take_checkpoint(
        &mut self,
        seq: Seq,
        app_digest: Digest,
        snapshot: Vec<u8>,
        out: &mut Step,
    ) {
        let data = Arc::new(CheckpointData {
            seq,
            app_digest,
            snapshot,
            clients: self.clients.clone(),
        });
        let digest = data.digest();
        if let Some((d, _)) = self.own.get(&seq)
            && *d == digest
        {
            // Re-execution after a restart: already taken and announced.
            self.check_stable(seq, out);
            return;
        }
        if seq <= self.low {
            // A new view chose this checkpoint while we were executing up
            // to it: keep its state (to list it in C and serve fetches).
            if seq == self.low && digest == self.low_digest && !self.own.contains_key(&seq) {
                out.persist.push(Record::Stable {
                    data: data.clone(),
                    digest,
                    proof: self.stable_proof.clone(),
                });
                self.own.insert(seq, (digest, data));
            }
            return;
        }
        out.persist.push(Record::Checkpoint(data.clone()));
        self.own.insert(seq, (digest, data));
        let signed = Signed::sign(
            &self.id,
            SignedKind::Checkpoint,
            &CheckpointVote { seq, digest },
        );
        self.broadcast(Message::Checkpoint(signed.clone()).encode(), out);
        let me = self.me;
        self.record_ckpt_vote(me, seq, digest, signed, out);
        self.check_stable(seq, out);
    }

    pub(crate) fn on_checkpoint(&mut self, link: Link, signed: Signed, out: &mut Step) {
        let vote: CheckpointVote = match signed.open(&self.id, SignedKind::Checkpoint) {
            Ok(v) => v,
            Err(OpenError::BadSignature) => {
                out.faults.push(Fault::BadAuth {
                    link,
                    kind: MessageKind::Checkpoint,
                });
                return;
            }
            Err(OpenError::Malformed(_)) => {
                out.faults.push(Fault::Invalid {
                    link,
                    kind: MessageKind::Checkpoint,
                    reason: "signed body does not decode",
                });
                return;
            }
        };
        if vote.seq % self.cfg.checkpoint_interval != 0 {
            out.faults.push(Fault::Invalid {
                link,
                kind: MessageKind::Checkpoint,
                reason: "not a checkpoint sequence number",
            });
            return;
        }
        if vote.seq <= self.low {
            return;
        }
        let signer = signed.signer;
        self.record_ckpt_vote(signer, vote.seq, vote.digest, signed, out);
        self.check_stable(vote.seq, out);
    }

    fn record_ckpt_vote(
        &mut self,
        signer: ReplicaIndex,
        seq: Seq,
        digest: Digest,
        signed: Signed,
        out: &mut Step,
    ) {
        let votes = self.ckpt_votes.entry(seq).or_default();
        if let Some((d, first)) = votes.get(&signer) {
            if *d != digest {
                out.faults
                    .push(Fault::Misbehaviour(alloc::boxed::Box::new(Proof {
                        a: Evidence::Checkpoint(first.clone()),
                        b: Evidence::Checkpoint(signed),
                    })));
            }
            return;
        }
        votes.insert(signer, (digest, signed));
        // Bounded per signer: forget the signer's lowest vote first (a
        // certificate far ahead is what a lagging replica needs).
        let cap =
            (self.cfg.window / self.cfg.checkpoint_interval + EXTRA_VOTES_PER_SIGNER) as usize;
        let mine: Vec<Seq> = self
            .ckpt_votes
            .iter()
            .filter(|(_, v)| v.contains_key(&signer))
            .map(|(s, _)| *s)
            .collect();
        if mine.len() > cap
            && let Some(votes) = self.ckpt_votes.get_mut(&mine[0])
        {
            votes.remove(&signer);
            if votes.is_empty() {
                self.ckpt_votes.remove(&mine[0]);
            }
        }
    }

    /// 2f+1 matching votes at `seq`: stable if we have that state, else
    /// fetch it.
    pub(crate) fn check_stable(&mut self, seq: Seq, out: &mut Step) {
        if seq <= self.low {
            return;
        }
        let Some(votes) = self.ckpt_votes.get(&seq) else {
            return;
        };
        let mut tally: BTreeMap<Digest, usize> = BTreeMap::new();
        for (d, _) in votes.values() {
            *tally.entry(*d).or_default() += 1;
        }
        let quorum = self.quorum();
        let Some((&digest, _)) = tally.iter().find(|(_, c)| **c >= quorum) else {
            return;
        };
        let proof: Vec<Signed> = votes
            .values()
            .filter(|(d, _)| *d == digest)
            .map(|(_, s)| s.clone())
            .collect();
        match self.own.get(&seq) {
            Some((d, data)) if *d == digest => {
                let data = data.clone();
                out.persist.push(Record::Stable {
                    data,
                    digest,
                    proof: proof.clone(),
                });
                self.set_low(seq, digest, proof);
                out.events.push(Event::Stable { seq });
                self.after_low_moved(out);
            }
            _ => {
                if seq > self.last_executed || self.own.contains_key(&seq) {
                    // Behind (or, if our own digest differs, diverged):
                    // get the certified state.
                    self.start_fetch(seq, digest, proof, out);
                }
            }
        }
    }

    /// Moves the low watermark and collects everything below it.
    pub(crate) fn set_low(&mut self, seq: Seq, digest: Digest, proof: Vec<Signed>) {
        if seq < self.low {
            return;
        }
        self.low = seq;
        self.low_digest = digest;
        self.stable_proof = proof;
        self.log.collect(seq);
        self.own = self.own.split_off(&seq);
        self.ckpt_votes = self.ckpt_votes.split_off(&(seq + 1));
        if self.next_seq <= seq {
            self.next_seq = seq + 1;
        }
    }

    pub(crate) fn after_low_moved(&mut self, out: &mut Step) {
        if self.fetching.as_ref().is_some_and(|f| f.seq <= self.low)
            && self.last_executed >= self.low
        {
            self.fetching = None;
        }
        self.propose(false, out);
    }

    /// A replica that executed nothing for a whole status period fetches
    /// the highest checkpoint above what it executed that f+1 replicas
    /// signed with one digest. f+1 signatures include a correct replica's,
    /// so the digest is the state every correct replica has there (a weak
    /// certificate: enough to fetch and check that state, as in Castro's
    /// state transfer, though not to collect anyone else's log). This is
    /// how a replica catches up when the commits it misses can no longer
    /// be gathered: with f replicas silent, it needs every other correct
    /// replica's commit, and one that has since left the view will never
    /// send it; the others, already past it, make the checkpoint and say
    /// so, but their votes alone are short of 2f+1.
    pub(crate) fn fetch_if_stuck(&mut self, out: &mut Step) {
        if self.fetching.is_some() || self.awaiting.is_some() {
            return;
        }
        let f = self.f();
        let found = self
            .ckpt_votes
            .range(self.last_executed + 1..)
            .rev()
            .find_map(|(&seq, votes)| {
                let mut tally: BTreeMap<Digest, usize> = BTreeMap::new();
                for (d, _) in votes.values() {
                    *tally.entry(*d).or_default() += 1;
                }
                let (&digest, _) = tally.iter().find(|(_, c)| **c > f)?;
                let proof: Vec<Signed> = votes
                    .values()
                    .filter(|(d, _)| *d == digest)
                    .map(|(_, s)| s.clone())
                    .collect();
                Some((seq, digest, proof))
            });
        if let Some((seq, digest, proof)) = found {
            self.start_fetch(seq, digest, proof, out);
        }
    }

    pub(crate) fn start_fetch(
        &mut self,
        seq: Seq,
        digest: Digest,
        proof: Vec<Signed>,
        out: &mut Step,
    ) {
        if self.fetching.as_ref().is_some_and(|f| f.seq >= seq) {
            return;
        }
        self.fetching = Some(Fetching { seq, digest, proof });
        self.send_fetch(out);
    }

    pub(crate) fn send_fetch(&self, out: &mut Step) {
        if let Some(f) = &self.fetching {
            let fetch = Fetch {
                replica: self.me,
                seq: f.seq,
                digest: f.digest,
            };
            let auth = self.auth.seal(&fetch.payload());
            self.broadcast(Message::Fetch(fetch, auth).encode(), out);
        }
    }

    pub(crate) fn on_fetch(&mut self, link: Link, fetch: Fetch, auth: Auth, out: &mut Step) {
        if fetch.replica == self.me {
            return;
        }
        if !self.auth.verify(fetch.replica, &fetch.payload(), &auth) {
            out.faults.push(Fault::BadAuth {
                link,
                kind: MessageKind::Fetch,
            });
            return;
        }
        if let Some((d, data)) = self.own.get(&fetch.seq)
            && *d == fetch.digest
        {
            let bytes = Message::State((**data).clone()).encode();
            self.send_to(fetch.replica, bytes, out);
        }
    }

    pub(crate) fn on_state(&mut self, link: Link, data: CheckpointData, out: &mut Step) {
        let Some(f) = &self.fetching else {
            return;
        };
        if data.seq != f.seq {
            return;
        }
        let digest = data.digest();
        if digest != f.digest {
            out.faults.push(Fault::Invalid {
                link,
                kind: MessageKind::State,
                reason: "state does not match its certified digest",
            });
            return;
        }
        let Some(f) = self.fetching.take() else {
            return;
        };
        let data = Arc::new(data);
        out.persist.push(Record::Stable {
            data: data.clone(),
            digest,
            proof: f.proof.clone(),
        });
        self.own.insert(f.seq, (digest, data.clone()));
        self.set_low(f.seq, digest, f.proof);
        // The application's state jumps: forget any execution in flight.
        self.awaiting = None;
        self.last_executed = f.seq;
        self.clients = data.clients.clone();
        let clients = &self.clients;
        self.pending
            .retain(|&(c, t), _| clients.standing(c, t) == crate::bft::clients::Standing::Fresh);
        out.events.push(Event::Install {
            seq: f.seq,
            snapshot: Arc::new(data.snapshot.clone()),
        });
        out.events.push(Event::Stable { seq: f.seq });
        self.try_execute(out);
        self.propose(false, out);
    }
}
