use core::fmt;
use serde::{Deserialize, Serialize};

/// The identity of one replica: a browser tab, an edge worker, a relay.
///
/// Ids must be unique across every replica that ever touches a document; two
/// replicas sharing an id issue the same [`Dot`](super::Dot)s for different
/// events and corrupt each other silently. The core cannot draw random numbers,
/// so the IO shell supplies them (in a browser: `crypto.getRandomValues`).
/// 64 random bits make a collision among a million replicas a 1-in-30-million
/// event.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ReplicaId(u64);

impl ReplicaId {
    /// Wraps a raw id. The caller is responsible for its uniqueness.
    pub const fn new(raw: u64) -> Self {
        Self(raw)
    }

    /// Builds an id from eight random bytes (little-endian).
    pub const fn from_random_bytes(bytes: [u8; 8]) -> Self {
        Self(u64::from_le_bytes(bytes))
    }

    /// The raw value.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl From<u64> for ReplicaId {
    fn from(raw: u64) -> Self {
        Self(raw)
    }
}

impl fmt::Debug for ReplicaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "r{:x}", self.0)
    }
}

impl fmt::Display for ReplicaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}
