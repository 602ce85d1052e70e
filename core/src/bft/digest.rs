//! SHA-256 digests with domain separation: what every PBFT message names a
//! batch, a request, a checkpoint or a signed body by.
//!
//! Not a general hashing API: callers pass a domain tag so that bytes hashed
//! for one purpose can never be mistaken for another.

use core::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// A SHA-256 digest.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// The digest of the state every replica starts from (sequence 0).
    pub const GENESIS: Digest = Digest([0; 32]);

    /// SHA-256 over `domain`, then each part prefixed with its length (so
    /// that `["ab", "c"]` and `["a", "bc"]` differ).
    pub fn of(domain: &[u8], parts: &[&[u8]]) -> Digest {
        let mut h = Hasher::new(domain);
        for p in parts {
            h.part(p);
        }
        h.finish()
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0[..4] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…")
    }
}

/// An incremental [`Digest::of`].
pub struct Hasher(Sha256);

impl Hasher {
    /// Starts a digest in `domain`.
    pub fn new(domain: &[u8]) -> Self {
        let mut h = Sha256::new();
        h.update((domain.len() as u64).to_le_bytes());
        h.update(domain);
        Hasher(h)
    }

    /// Adds a length-prefixed part.
    pub fn part(&mut self, bytes: &[u8]) -> &mut Self {
        self.0.update((bytes.len() as u64).to_le_bytes());
        self.0.update(bytes);
        self
    }

    /// Adds a fixed-width integer.
    pub fn u64(&mut self, x: u64) -> &mut Self {
        self.0.update(x.to_le_bytes());
        self
    }

    /// The digest.
    pub fn finish(self) -> Digest {
        Digest(self.0.finalize().into())
    }
}
