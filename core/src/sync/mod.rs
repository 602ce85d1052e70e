//! Replication between peers: delta-interval anti-entropy over any dot
//! store (the [`crate::document`] store among them).
//!
//! Sans-IO like the rest of the crate: a [`Replica`] takes messages and
//! local changes and returns what to persist and what to send; the shell
//! owns sockets, timers and disks. Messages are plain values with a
//! documented encoding (`docs/PROTOCOL.md`); decoding one is bounded and
//! never panics.

mod message;
mod replica;
#[cfg(feature = "sim")]
pub mod sim_node;

pub use message::{Bytes, Config, Message, Payload, SyncError};
pub use replica::{Outgoing, PeerId, PeerStatus, Replica};
