//! ed25519 signatures: the [`Authenticator`] whose tags anyone can check,
//! and [`Identity`], the signer of the messages that are signed in every
//! mode (checkpoint, view-change, new-view).

use alloc::vec::Vec;

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};

use super::{Auth, Authenticator, Sig};
use crate::bft::ReplicaIndex;

/// A replica's signing key plus every replica's public key.
#[derive(Clone)]
pub struct Identity {
    me: ReplicaIndex,
    signing: SigningKey,
    public: Vec<VerifyingKey>,
}

impl Identity {
    /// The identity of replica `me`, who signs with `secret`.
    pub fn new(me: ReplicaIndex, secret: &[u8; 32], public: Vec<VerifyingKey>) -> Self {
        Self {
            me,
            signing: SigningKey::from_bytes(secret),
            public,
        }
    }

    /// Whose identity this is.
    pub fn me(&self) -> ReplicaIndex {
        self.me
    }

    /// Signs `msg`.
    pub fn sign(&self, msg: &[u8]) -> Sig {
        Sig::from_bytes(&self.signing.sign(msg).to_bytes())
    }

    /// True if `sig` is `signer`'s signature of `msg`.
    pub fn check(&self, signer: ReplicaIndex, msg: &[u8], sig: &Sig) -> bool {
        check_signature(&self.public, signer, msg, sig)
    }

    /// Every replica's public key.
    pub fn public(&self) -> &[VerifyingKey] {
        &self.public
    }
}

/// True if `sig` is `signer`'s signature of `msg` under `public`.
pub(crate) fn check_signature(
    public: &[VerifyingKey],
    signer: ReplicaIndex,
    msg: &[u8],
    sig: &Sig,
) -> bool {
    public.get(signer as usize).is_some_and(|key| {
        key.verify(msg, &Signature::from_bytes(&sig.to_bytes()))
            .is_ok()
    })
}

/// Normal-case messages signed with ed25519.
#[derive(Clone)]
pub struct Ed25519Auth {
    id: Identity,
}

impl Ed25519Auth {
    /// Signs as `id`.
    pub fn new(id: Identity) -> Self {
        Self { id }
    }
}

impl Authenticator for Ed25519Auth {
    fn seal(&self, payload: &[u8]) -> Auth {
        Auth::Signature(self.id.sign(payload))
    }

    fn verify(&self, from: ReplicaIndex, payload: &[u8], auth: &Auth) -> bool {
        match auth {
            Auth::Signature(sig) => self.id.check(from, payload, sig),
            Auth::Macs(_) => false,
        }
    }

    fn transferable(&self) -> bool {
        true
    }
}
