//! The static configuration of a PBFT group: n = 3f + 1 replicas, their
//! public keys, and the protocol's constants (window, checkpoint interval,
//! batching, timeouts).
//!
//! Membership is static: there is no reconfiguration protocol here. Every
//! replica and client must be built from the same `Config`.

use alloc::vec::Vec;
use core::fmt;

use ed25519_dalek::VerifyingKey;

use super::{ReplicaIndex, Seq, View};

/// A group's configuration. Durations are in milliseconds of the shell's
/// clock (the replica never reads one; it only asks for timers).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The replicas' ed25519 public keys, indexed by [`ReplicaIndex`].
    pub replicas: Vec<[u8; 32]>,
    /// K: a checkpoint is taken every K sequence numbers.
    pub checkpoint_interval: Seq,
    /// L: sequence numbers above the low watermark a replica accepts
    /// (the high watermark is low + L). A multiple of K, at least 2K.
    pub window: Seq,
    /// Most requests in one batch.
    pub batch_max: usize,
    /// How long the primary waits for a batch to fill before sending it.
    pub batch_delay: u64,
    /// Most batches the primary has proposed but not yet executed.
    pub pipeline: u64,
    /// How long a backup waits for a request it knows of to execute before
    /// suspecting the primary.
    pub request_timeout: u64,
    /// How long a replica waits for a new view once 2f+1 replicas want it
    /// (doubled on each consecutive failure, up to 8×).
    pub view_change_timeout: u64,
    /// Period of the status message that drives retransmission.
    pub status_interval: u64,
    /// Largest operation a request may carry, in bytes.
    pub max_op_bytes: usize,
    /// Most client requests a replica holds that have not executed yet.
    pub max_pending: usize,
}

/// Why a [`Config`] is unusable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// n is not 3f + 1 for some f ≥ 1.
    BadSize(usize),
    /// A public key is not a valid ed25519 point.
    BadKey(ReplicaIndex),
    /// A constant is out of range; the text says which.
    BadConstant(&'static str),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::BadSize(n) => write!(f, "{n} replicas: need 3f+1 with f >= 1"),
            ConfigError::BadKey(i) => write!(f, "public key of replica {i} is invalid"),
            ConfigError::BadConstant(what) => write!(f, "bad configuration: {what}"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for ConfigError {}

impl Config {
    /// A configuration with default constants for these replicas.
    pub fn new(replicas: Vec<[u8; 32]>) -> Self {
        Self {
            replicas,
            checkpoint_interval: 16,
            window: 64,
            batch_max: 64,
            batch_delay: 2,
            pipeline: 8,
            request_timeout: 500,
            view_change_timeout: 1000,
            status_interval: 300,
            max_op_bytes: 64 * 1024,
            max_pending: 4096,
        }
    }

    /// Number of replicas.
    pub fn n(&self) -> usize {
        self.replicas.len()
    }

    /// Number of faults tolerated.
    pub fn f(&self) -> usize {
        (self.replicas.len().saturating_sub(1)) / 3
    }

    /// 2f + 1: the size of every quorum.
    pub fn quorum(&self) -> usize {
        2 * self.f() + 1
    }

    /// The primary of `view`.
    pub fn primary(&self, view: View) -> ReplicaIndex {
        (view % self.n() as u64) as ReplicaIndex
    }

    /// Checks the configuration and parses the public keys.
    pub fn validate(&self) -> Result<Vec<VerifyingKey>, ConfigError> {
        let n = self.n();
        if n < 4 || (n - 1) % 3 != 0 {
            return Err(ConfigError::BadSize(n));
        }
        let k = self.checkpoint_interval;
        if k == 0 {
            return Err(ConfigError::BadConstant("checkpoint_interval is 0"));
        }
        if self.window < 2 * k || self.window % k != 0 {
            return Err(ConfigError::BadConstant(
                "window must be a multiple of checkpoint_interval, at least twice it",
            ));
        }
        if self.batch_max == 0 || self.pipeline == 0 || self.max_pending == 0 {
            return Err(ConfigError::BadConstant(
                "batch_max, pipeline and max_pending must be positive",
            ));
        }
        if self.request_timeout == 0 || self.view_change_timeout == 0 || self.status_interval == 0 {
            return Err(ConfigError::BadConstant("timeouts must be positive"));
        }
        self.replicas
            .iter()
            .enumerate()
            .map(|(i, k)| VerifyingKey::from_bytes(k).map_err(|_| ConfigError::BadKey(i as u32)))
            .collect()
    }
}
