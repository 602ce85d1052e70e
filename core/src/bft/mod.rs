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
//!
//! # Where this differs from the papers
//!
//! - The view change follows TOCS §4.5 (P and Q sets in signed view-change
//!   messages, decided by quorum counts), not OSDI's transferable prepared
//!   certificates, so one code path serves signatures and MACs. View-change
//!   messages carry the batches their P and Q sets name instead of a
//!   fetch-by-digest protocol.
//! - No read-only or tentative execution and no digest-only replies: every
//!   replica returns the full result.
//! - Faulty replicas can keep correct ones out of a view (a primary by
//!   sending them another batch, voters by sending other digests). The view
//!   stays live with the rest; the excluded catch up at the next stable
//!   checkpoint or view change. PBFT promises clients their results, not
//!   that every correct replica follows every view; the simulation checks
//!   the stronger property only when no replica equivocates.
//! - The primary suspects itself too: one whose waiting requests executed
//!   nothing for a request timeout starts a view change. Otherwise a backup
//!   that left the view early, with votes the others still need, can strand
//!   a group whose only other correct replica has nothing pending
//!   (scenario `a_stuck_primary_leaves_its_view`). Likewise a backup's
//!   request timer also runs for batches it accepted, not only for requests
//!   it was sent.
//! - The null-batch probe: an idle primary that hears an authentic status
//!   from a replica that left its view and lags proposes the null batch; it
//!   commits if 2f+1 are still in the view, and otherwise their timers move
//!   them to the laggard's view change (scenario
//!   `an_idle_primary_probes_the_view_for_a_replica_that_left_it`). A faulty
//!   replica can make an idle primary propose one null batch per status.
//! - For liveness over lossy links (none needed for safety): the periodic
//!   `Status` message and the resends it drives (only the primary resends its
//!   pre-prepare; others send the bare `Batch`, which counts only once 2f+1
//!   commits name it); a replica changing views still executes batches of
//!   the view it left that show 2f+1 commits; a replica that learnt a commit
//!   from a certificate without having sent its own commit sends it then; the
//!   view-change timer counts replicas that already want a later view; a
//!   replica that executed nothing for a status period fetches the highest
//!   checkpoint f+1 replicas signed with one digest, checked on arrival as
//!   any fetched state (scenario
//!   `checkpoint_a_stuck_replica_fetches_a_checkpoint_f_plus_1_signed`).
//! - Known costs: an authentic status message, even from a faulty replica
//!   claiming to be far behind, makes each correct replica resend up to a
//!   window of pre-prepares or batches and its own votes (bounded per
//!   message, not rate-limited). View-change messages carry whole batches:
//!   up to L batches per replica per view change.

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
