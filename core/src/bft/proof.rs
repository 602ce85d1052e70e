//! Proofs of misbehaviour: two conflicting messages signed by one replica,
//! which anyone holding the group's public keys can check.
//!
//! Only signatures name a replica. MAC-authenticated messages can never be
//! evidence against their sender (the receiver could have made the tag
//! itself), so in MAC mode only conflicting checkpoints become proofs.

use ed25519_dalek::VerifyingKey;

use super::ReplicaIndex;
use super::auth::{Sig, ed25519_check};
use super::message::{CheckpointVote, Signed, SignedKind, Vote, VoteKind};
use crate::codec;

/// One signed statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Evidence {
    /// A signed pre-prepare, prepare or commit.
    Vote {
        /// Which vote.
        kind: VoteKind,
        /// Its fields.
        vote: Vote,
        /// The signature over [`Vote::payload`].
        sig: Sig,
    },
    /// A signed checkpoint vote.
    Checkpoint(Signed),
}

/// Two statements by one replica that no correct replica makes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proof {
    /// The first.
    pub a: Evidence,
    /// The conflicting second.
    pub b: Evidence,
}

/// Why a proof does not hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProofError {
    /// A signature does not verify.
    BadSignature,
    /// The two statements do not conflict (or are not by one replica).
    NoConflict,
}

impl Proof {
    /// Checks the proof; returns the replica it convicts.
    pub fn check(&self, public: &[VerifyingKey]) -> Result<ReplicaIndex, ProofError> {
        match (&self.a, &self.b) {
            (
                Evidence::Vote {
                    kind: ka,
                    vote: a,
                    sig: sa,
                },
                Evidence::Vote {
                    kind: kb,
                    vote: b,
                    sig: sb,
                },
            ) => {
                if ka != kb
                    || a.replica != b.replica
                    || a.view != b.view
                    || a.seq != b.seq
                    || a.digest == b.digest
                {
                    return Err(ProofError::NoConflict);
                }
                if !ed25519_check(public, a.replica, &a.payload(*ka), sa)
                    || !ed25519_check(public, b.replica, &b.payload(*kb), sb)
                {
                    return Err(ProofError::BadSignature);
                }
                Ok(a.replica)
            }
            (Evidence::Checkpoint(a), Evidence::Checkpoint(b)) => {
                if a.signer != b.signer {
                    return Err(ProofError::NoConflict);
                }
                if !a.verify_with(public, SignedKind::Checkpoint)
                    || !b.verify_with(public, SignedKind::Checkpoint)
                {
                    return Err(ProofError::BadSignature);
                }
                let (Ok(va), Ok(vb)) = (
                    codec::decode::<CheckpointVote>(&a.body),
                    codec::decode::<CheckpointVote>(&b.body),
                ) else {
                    return Err(ProofError::NoConflict);
                };
                if va.seq == vb.seq && va.digest != vb.digest {
                    Ok(a.signer)
                } else {
                    Err(ProofError::NoConflict)
                }
            }
            _ => Err(ProofError::NoConflict),
        }
    }
}
