//! The validators' ordered state machine: what a validator group executes
//! in PBFT order, and what clients check results against with the same
//! code. Deterministic, sans-IO, `no_std`: every member that executes the
//! same operations in the same order holds the same state, byte for byte.
//!
//! It holds, per room:
//! - **access control**: the owner (whoever created the room) and the
//!   rights granted to principals (ed25519 public keys): read, write, admin;
//! - **linearizable registers**: keys with values, `put`, `get` and
//!   compare-and-set;
//! - **unique claims**: a name claimed exactly once, by whoever comes first
//!   in the order;
//! - **checkpoints**: the last digest of the room's document the group
//!   certified.
//!
//! Who asks (the principal) is the shell's to establish from the
//! authenticated request; the machine decides what that principal may do.
//! Everything a client sends is bounded ([`Limits`]); an operation that is
//! malformed, over a bound or not allowed changes nothing and gets an
//! [`Outcome`] saying why.
//!
//! Not here: the group protocol (`core::bft`), the transport, or how a
//! shell turns an [`Effect`] (a revoked right) into closed connections.

mod op;
mod state;

pub use op::{Op, Outcome, Right};
pub use state::{Effect, Limits, Machine};

/// A principal: an ed25519 public key.
pub type Principal = [u8; 32];
