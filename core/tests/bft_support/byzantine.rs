//! Byzantine replica behaviours, applied to an honest replica's outputs (it
//! holds the real keys, so what it sends is validly authenticated unless it
//! forges on purpose).

use neuroplex_core::bft::message::{Message, Vote, VoteKind, Voted};
use neuroplex_core::bft::{Digest, Outgoing, ReplicaIndex, Step, Target};
use neuroplex_core::sim::Rng;

use super::AnyAuth;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    Honest,
    /// As primary, different pre-prepares to different backups; as backup,
    /// different votes to different replicas.
    Equivocate,
    /// Prepares and commits for digests it never saw.
    WrongDigests,
    /// Replays old messages (any sender, any view) to random replicas.
    Replay,
    /// Forged signatures and MACs, impersonation, garbage bytes.
    Forge,
    /// Sends nothing.
    Silent,
    /// One of two instances with the same identity and keys.
    Twin,
}

pub struct State {
    pub behaviour: Behaviour,
    auth: AnyAuth,
    id: ReplicaIndex,
    n: usize,
    rng: Rng,
    recorded: Vec<Vec<u8>>,
    pub boot: Option<Step>,
}

const RECORD_CAP: usize = 256;

fn random_digest(rng: &mut Rng) -> Digest {
    let mut d = [0; 32];
    for chunk in d.chunks_mut(8) {
        chunk.copy_from_slice(&rng.next_u64().to_le_bytes());
    }
    Digest(d)
}

impl State {
    pub fn new(behaviour: Behaviour, auth: AnyAuth, id: ReplicaIndex, n: usize, seed: u64) -> Self {
        State {
            behaviour,
            auth,
            id,
            n,
            rng: Rng::new(seed),
            recorded: Vec::new(),
            boot: None,
        }
    }

    fn others(&self) -> Vec<ReplicaIndex> {
        (0..self.n as u32).filter(|&i| i != self.id).collect()
    }

    fn revote(&self, kind: VoteKind, vote: Vote) -> Vec<u8> {
        let voted = Voted {
            vote,
            auth: self.auth.seal(&vote.payload(kind)),
        };
        match kind {
            VoteKind::Commit => Message::Commit(voted),
            _ => Message::Prepare(voted),
        }
        .encode()
    }

    /// What actually leaves, given what the honest replica wants to send.
    pub fn filter(&mut self, sends: Vec<Outgoing>, _: &mut Rng) -> Vec<(Target, Vec<u8>)> {
        match self.behaviour {
            Behaviour::Honest | Behaviour::Twin | Behaviour::Replay => {
                sends.into_iter().map(|o| (o.to, o.bytes)).collect()
            }
            Behaviour::Silent => Vec::new(),
            Behaviour::Equivocate => self.equivocate(sends),
            Behaviour::WrongDigests => self.wrong_digests(sends),
            Behaviour::Forge => self.forge(sends),
        }
    }

    fn equivocate(&mut self, sends: Vec<Outgoing>) -> Vec<(Target, Vec<u8>)> {
        let mut out = Vec::new();
        for o in sends {
            let alt = match (o.to, Message::decode(&o.bytes)) {
                (Target::AllReplicas, Ok(Message::PrePrepare(mut pp))) => {
                    // Another batch for the same sequence number: drop a
                    // request (or, if there is none, keep it equal).
                    if pp.batch.requests.pop().is_some() {
                        pp.vote.digest = pp.batch.digest();
                        pp.auth = self.auth.seal(&pp.vote.payload(VoteKind::PrePrepare));
                        Some(Message::PrePrepare(pp).encode())
                    } else {
                        None
                    }
                }
                (Target::AllReplicas, Ok(Message::Prepare(v))) => {
                    let vote = Vote {
                        digest: random_digest(&mut self.rng),
                        ..v.vote
                    };
                    Some(self.revote(VoteKind::Prepare, vote))
                }
                (Target::AllReplicas, Ok(Message::Commit(v))) => {
                    let vote = Vote {
                        digest: random_digest(&mut self.rng),
                        ..v.vote
                    };
                    Some(self.revote(VoteKind::Commit, vote))
                }
                _ => None,
            };
            match alt {
                Some(alt) => {
                    for (k, i) in self.others().into_iter().enumerate() {
                        let bytes = if k % 2 == 0 {
                            o.bytes.clone()
                        } else {
                            alt.clone()
                        };
                        out.push((Target::Replica(i), bytes));
                    }
                }
                None => out.push((o.to, o.bytes)),
            }
        }
        out
    }

    fn wrong_digests(&mut self, sends: Vec<Outgoing>) -> Vec<(Target, Vec<u8>)> {
        let mut out = Vec::new();
        for o in sends {
            let bytes = match Message::decode(&o.bytes) {
                Ok(Message::Prepare(v)) => {
                    let vote = Vote {
                        digest: random_digest(&mut self.rng),
                        ..v.vote
                    };
                    self.revote(VoteKind::Prepare, vote)
                }
                Ok(Message::Commit(v)) => {
                    let vote = Vote {
                        digest: random_digest(&mut self.rng),
                        ..v.vote
                    };
                    self.revote(VoteKind::Commit, vote)
                }
                _ => o.bytes,
            };
            out.push((o.to, bytes));
        }
        out
    }

    fn forge(&mut self, sends: Vec<Outgoing>) -> Vec<(Target, Vec<u8>)> {
        let mut out = Vec::new();
        for o in sends {
            if self.rng.chance(0.3) {
                let forged = self.forged(&o.bytes);
                out.push((o.to, forged));
            }
            out.push((o.to, o.bytes));
        }
        out
    }

    /// A forgery of `bytes`: impersonation with our own tag, a corrupted
    /// authenticator or signature, a flipped byte, or garbage.
    fn forged(&mut self, bytes: &[u8]) -> Vec<u8> {
        let others = self.others();
        let victim = *self.rng.pick(&others).unwrap_or(&0);
        match (self.rng.below(4), Message::decode(bytes)) {
            (0, Ok(Message::Prepare(mut v))) | (0, Ok(Message::Commit(mut v))) => {
                v.vote.replica = victim;
                Message::Prepare(v).encode()
            }
            (0, Ok(Message::Checkpoint(mut s))) | (0, Ok(Message::ViewChange(mut s))) => {
                s.signer = victim;
                Message::Checkpoint(s).encode()
            }
            (1, Ok(Message::Checkpoint(mut s))) => {
                s.sig.0[0] ^= 1;
                Message::Checkpoint(s).encode()
            }
            (1, Ok(Message::ViewChange(mut s))) => {
                s.sig.1[5] ^= 0x40;
                Message::ViewChange(s).encode()
            }
            (1, Ok(Message::Status(st, _))) => {
                // A status with the victim's name and our tags.
                let st = neuroplex_core::bft::message::Status {
                    replica: victim,
                    ..st
                };
                let auth = self.auth.seal(&st.payload());
                Message::Status(st, auth).encode()
            }
            (2, _) if bytes.len() > 1 => {
                let mut b = bytes.to_vec();
                let i = self.rng.below(b.len() as u64 - 1) as usize + 1;
                b[i] ^= 1 << self.rng.below(8);
                b
            }
            _ => (0..self.rng.range(0, 64))
                .map(|_| self.rng.next_u64() as u8)
                .collect(),
        }
    }

    /// Sees a message as it arrives (before the replica handles it).
    pub fn on_receive(&mut self, bytes: &[u8], _: &mut Rng) -> Vec<(Target, Vec<u8>)> {
        if self.behaviour == Behaviour::Replay {
            if self.recorded.len() < RECORD_CAP {
                self.recorded.push(bytes.to_vec());
            } else {
                let i = self.rng.below(RECORD_CAP as u64) as usize;
                self.recorded[i] = bytes.to_vec();
            }
        }
        Vec::new()
    }

    /// Extra traffic on each status tick.
    pub fn on_tick(&mut self, _: &mut Rng) -> Vec<(Target, Vec<u8>)> {
        let others = self.others();
        let mut out = Vec::new();
        match self.behaviour {
            Behaviour::Replay => {
                for _ in 0..8 {
                    if let (Some(m), Some(&to)) = (
                        self.rng.pick(&self.recorded).cloned(),
                        self.rng.pick(&others),
                    ) {
                        out.push((Target::Replica(to), m));
                    }
                }
            }
            Behaviour::WrongDigests => {
                for _ in 0..4 {
                    let vote = Vote {
                        view: self.rng.below(4),
                        seq: self.rng.range(1, 64),
                        digest: random_digest(&mut self.rng),
                        replica: self.id,
                    };
                    out.push((Target::AllReplicas, self.revote(VoteKind::Commit, vote)));
                }
            }
            Behaviour::Forge => {
                let junk: Vec<u8> = (0..self.rng.range(1, 200))
                    .map(|_| self.rng.next_u64() as u8)
                    .collect();
                out.push((Target::AllReplicas, junk));
            }
            _ => {}
        }
        out
    }
}
