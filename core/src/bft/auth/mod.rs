//! Authenticators: how a replica proves to the others that a normal-case
//! message (pre-prepare, prepare, commit, status, fetch) is its own.
//!
//! Two implementations of [`Authenticator`]: [`Ed25519Auth`] (one signature,
//! checkable by anyone) and [`MacAuth`] (a vector of HMAC-SHA256 tags, one
//! per receiver, over pairwise session keys: cheap, but only the receiver can
//! check its own tag). Whatever the mode, view-change, new-view and
//! checkpoint messages are signed with ed25519 ([`Identity`]), because they
//! are forwarded as evidence to third parties; client requests and replies
//! always carry MACs ([`ClientMacs`]).
//!
//! Not here: key exchange. Session keys come from outside (a handshake in
//! the shell, or [`Dealer`] for tests and benchmarks).

mod ed25519;
mod keys;
mod mac;

use alloc::vec::Vec;
use core::fmt;

use serde::{Deserialize, Serialize};

pub(crate) use ed25519::check_signature as ed25519_check;
pub use ed25519::{Ed25519Auth, Identity};
pub use keys::{ClientKeys, Dealer, ReplicaKeys};
pub use mac::{ClientMacs, MacAuth, MacKey, mac_tag};

use super::ReplicaIndex;

/// A MAC tag: HMAC-SHA256 truncated to 128 bits.
pub type Tag = [u8; 16];

/// One tag per replica (inline up to n = 4; encoded like a `Vec<Tag>`).
pub type Tags = smallvec::SmallVec<[Tag; 4]>;

/// An ed25519 signature (64 bytes; two halves because serde's arrays stop
/// at 32).
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sig(pub [u8; 32], pub [u8; 32]);

impl Sig {
    /// From the 64 signature bytes.
    pub fn from_bytes(b: &[u8; 64]) -> Self {
        let mut lo = [0; 32];
        let mut hi = [0; 32];
        lo.copy_from_slice(&b[..32]);
        hi.copy_from_slice(&b[32..]);
        Sig(lo, hi)
    }

    /// The 64 signature bytes.
    pub fn to_bytes(&self) -> [u8; 64] {
        let mut b = [0; 64];
        b[..32].copy_from_slice(&self.0);
        b[32..].copy_from_slice(&self.1);
        b
    }
}

impl fmt::Debug for Sig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sig({:02x}{:02x}…)", self.0[0], self.0[1])
    }
}

/// The authenticator a normal-case message carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Auth {
    /// A signature by the sender.
    Signature(Sig),
    /// One tag per replica, indexed by receiver (the sender's own is zero).
    Macs(#[serde(with = "super::wire::tags")] Vec<Tag>),
}

/// Authenticates normal-case messages between replicas.
///
/// `payload` is always short (a fixed-layout encoding of the message's
/// fields, with a digest standing for anything large).
pub trait Authenticator {
    /// Authenticates `payload` from this replica to every replica.
    fn seal(&self, payload: &[u8]) -> Auth;
    /// True if `auth` shows that replica `from` sent `payload` (to us).
    fn verify(&self, from: ReplicaIndex, payload: &[u8], auth: &Auth) -> bool;
    /// True if a third party can check the tags (signatures): then two
    /// conflicting messages make a proof of misbehaviour.
    fn transferable(&self) -> bool;
}

/// Compares two byte strings without an early exit on the first difference.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
