//! PBFT: Byzantine-fault-tolerant total order for the operations that must
//! survive lying servers (membership and access changes, votes, verifiable
//! checkpoints of a room's state).
//!
//! Practical Byzantine Fault Tolerance as in Castro & Liskov (OSDI 1999;
//! TOCS 2002), sans-IO and `no_std`: n = 3f + 1 replicas order batches of
//! client requests through pre-prepare / prepare / commit, execute them in
//! sequence order (surfaced as [`Event::Execute`]), checkpoint every K
//! sequence numbers, change views when the primary misbehaves, and catch up
//! laggards by state transfer. Safety holds with at most f Byzantine
//! replicas whatever the network does; liveness needs the network to
//! deliver eventually.
//!
//! - [`Replica`]: `handle(input) -> Step`. Timers are outputs; time and
//!   randomness never enter. [`Step::persist`] must be durable before
//!   [`Step::send`] leaves.
//! - [`Client`]: builds MAC'd requests and accepts a result once f+1
//!   replicas agree on it.
//! - [`auth`]: the [`Authenticator`] trait with ed25519 and MAC-vector
//!   implementations; checkpoint, view-change and new-view messages are
//!   signed in both modes.
//! - [`view_change`]: the new-view decision, a pure function of the signed
//!   view-change messages.
//!
//! What is not here: networking, storage, clocks, key exchange (session
//! keys come from the shell or [`auth::Dealer`]), reconfiguration
//! (membership is static), proactive recovery, and protection against
//! faulty *clients* beyond authentication (a client that MACs a request for
//! only some replicas can stall its batch until a view change).

pub mod auth;
mod client;
pub mod clients;
mod config;
mod digest;
pub mod log;
pub mod message;
pub mod persist;
pub mod proof;
mod replica;
pub mod step;
pub mod view_change;
mod wire;

pub use auth::{Authenticator, ClientKeys, Dealer, Ed25519Auth, MacAuth, ReplicaKeys};
pub use client::{Client, ClientEvent, ClientInput, ClientStep, Completed};
pub use config::{Config, ConfigError};
pub use digest::{Digest, Hasher};
pub use message::{Batch, Message, Request};
pub use persist::Record;
pub use proof::{Evidence, Proof, ProofError};
pub use replica::{Executed, Input, MAX_FUTURE, Replica, Results, UsageError};
pub use step::{Event, Execute, Fault, Link, Outgoing, Step, Target, TimerCmd, TimerId};

/// A view number (the primary of view v is replica v mod n).
pub type View = u64;
/// A sequence number (0 is the initial state; batches start at 1).
pub type Seq = u64;
/// A replica's position in [`Config::replicas`].
pub type ReplicaIndex = u32;
/// A client's identity (its MAC keys are configured per replica).
pub type ClientId = u64;
