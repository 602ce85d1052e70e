//! Causal delivery: deltas are released only when everything they depend on
//! has been released.
//!
//! Joining deltas in any order ends in the same state (join is commutative),
//! but on the way a reader could see an effect without its cause: Alice adds
//! `x` then `y`, and Bob, receiving `y` first, shows `y` without `x`. The
//! [`CausalBuffer`] holds such early deltas back until their causes arrive.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::fmt;

use serde::{Deserialize, Serialize};

use crate::clock::{ReplicaId, VectorClock};

/// A delta stamped for causal delivery.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Envelope<D> {
    /// The replica that made the delta.
    pub origin: ReplicaId,
    /// What `origin` had delivered when it made the delta, this delta
    /// included: `deps[origin]` is the delta's sequence number at `origin`.
    pub deps: VectorClock,
    /// The payload.
    pub delta: D,
}

impl<D> Envelope<D> {
    /// The delta's sequence number at its origin.
    pub fn sequence(&self) -> u64 {
        self.deps.get(self.origin)
    }
}

/// Why [`CausalBuffer::receive`] refused an envelope. The envelope is
/// dropped; the sender's anti-entropy must offer it again later.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overflow {
    /// The buffer already holds `capacity` early deltas.
    Full {
        /// Origin of the refused delta.
        origin: ReplicaId,
        /// Its sequence number.
        sequence: u64,
    },
    /// The envelope claims sequence number 0 at its origin, which no real
    /// delta has.
    Malformed {
        /// Origin named by the envelope.
        origin: ReplicaId,
    },
}

impl fmt::Display for Overflow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Overflow::Full { origin, sequence } => write!(
                f,
                "causal buffer full: delta {sequence} from {origin} dropped"
            ),
            Overflow::Malformed { origin } => {
                write!(f, "envelope from {origin} has no sequence number")
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Overflow {}

/// Releases deltas in causal order; holds early ones (up to a bound) and
/// ignores duplicates.
///
/// ```
/// use neuroplex_core::{CausalBuffer, ReplicaId};
/// let (a, b) = (ReplicaId::new(1), ReplicaId::new(2));
/// let mut alice = CausalBuffer::new(a, 64);
/// let mut bob = CausalBuffer::new(b, 64);
/// let x = alice.stamp("add x");
/// let y = alice.stamp("add y");
/// assert_eq!(bob.receive(y.clone()), Ok(vec![]));           // early: held
/// assert_eq!(bob.receive(x), Ok(vec!["add x", "add y"]));   // cause, then effect
/// assert_eq!(bob.receive(y), Ok(vec![]));                   // duplicate: ignored
/// ```
#[derive(Clone, Debug)]
pub struct CausalBuffer<D> {
    local: ReplicaId,
    delivered: VectorClock,
    pending: BTreeMap<(ReplicaId, u64), Envelope<D>>,
    capacity: usize,
}

impl<D> CausalBuffer<D> {
    /// A buffer for replica `local` holding at most `capacity` early deltas.
    pub fn new(local: ReplicaId, capacity: usize) -> Self {
        Self {
            local,
            delivered: VectorClock::new(),
            pending: BTreeMap::new(),
            capacity,
        }
    }

    /// What has been delivered (local deltas included).
    pub fn delivered(&self) -> &VectorClock {
        &self.delivered
    }

    /// Number of early deltas waiting.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Stamps a local delta for sending. The local replica has applied it
    /// already, so it counts as delivered here.
    pub fn stamp(&mut self, delta: D) -> Envelope<D> {
        self.delivered.increment(self.local);
        Envelope {
            origin: self.local,
            deps: self.delivered.clone(),
            delta,
        }
    }

    fn is_ready(&self, env: &Envelope<D>) -> bool {
        env.deps.iter().all(|(r, c)| {
            let have = self.delivered.get(r);
            if r == env.origin {
                have.checked_add(1) == Some(c)
            } else {
                c <= have
            }
        })
    }

    /// Takes an envelope from the network and returns the deltas that are
    /// now ready, in an order that respects causality. A duplicate returns
    /// nothing.
    pub fn receive(&mut self, env: Envelope<D>) -> Result<Vec<D>, Overflow> {
        let seq = env.sequence();
        if seq == 0 {
            return Err(Overflow::Malformed { origin: env.origin });
        }
        if seq <= self.delivered.get(env.origin) || self.pending.contains_key(&(env.origin, seq)) {
            return Ok(Vec::new());
        }
        if !self.is_ready(&env) {
            if self.pending.len() >= self.capacity {
                return Err(Overflow::Full {
                    origin: env.origin,
                    sequence: seq,
                });
            }
            self.pending.insert((env.origin, seq), env);
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        self.delivered.raise(env.origin, seq);
        out.push(env.delta);
        self.release(&mut out);
        Ok(out)
    }

    /// Delivers waiting deltas until none is ready.
    fn release(&mut self, out: &mut Vec<D>) {
        loop {
            // Only the next sequence number of each origin can be ready.
            let mut ready = None;
            for (&(origin, seq), env) in &self.pending {
                if Some(seq) == self.delivered.get(origin).checked_add(1) && self.is_ready(env) {
                    ready = Some((origin, seq));
                    break;
                }
            }
            let Some(key) = ready else { return };
            if let Some(env) = self.pending.remove(&key) {
                self.delivered.raise(key.0, key.1);
                out.push(env.delta);
            }
        }
    }
}
