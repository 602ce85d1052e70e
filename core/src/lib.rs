//! The deterministic heart of Neuroplex: delta-state CRDTs, the clocks they
//! are ordered by, causal delivery, and the wire codec.
//!
//! This crate is `#![no_std]` (plus `alloc`) and sans-IO: it has no networking
//! code, never reads a clock, never draws a random number and starts no thread.
//! Time, replica identities and incoming bytes are passed in as arguments;
//! results come back as values. The same code therefore runs in a browser tab,
//! an edge worker, the native relay and the deterministic simulator.
//!
//! What is here:
//! - [`clock`]: [`ReplicaId`], [`Dot`], [`VectorClock`], [`CausalContext`], [`Hlc`].
//! - [`crdt`]: the [`Lattice`] trait and the delta-state types. Every mutator
//!   changes the replica and returns the delta it applied, so that
//!   `old ⊔ delta == new`.
//! - [`causal`]: a bounded buffer that releases deltas in causal order.
//! - [`codec`]: the versioned wire encoding, safe on untrusted bytes.
//! - [`document`]: the document model: named values of every CRDT kind,
//!   nested, and the path helpers that edit them.
//! - [`sync`]: delta-interval anti-entropy between replicas.
//! - [`bft`]: PBFT ordering for the few operations that need it.
//! - `doc` (feature `yrs`, needs `std`): a room's document, the CRDT store
//!   beside a `yrs::Doc`, and the native protocol's frames.
//!
//! What is not here: transports, persistence and timers; the shells
//! (relay, WASM package, simulator) own those.
//!
//! ```
//! use neuroplex_core::{AWSet, Causal, ReplicaId, Lattice};
//!
//! let (alice, bob) = (ReplicaId::new(1), ReplicaId::new(2));
//! let mut a: Causal<AWSet<&str>> = Causal::new();
//! let mut b: Causal<AWSet<&str>> = Causal::new();
//!
//! let d1 = a.add(alice, "milk");
//! b.join(d1);
//! let d2 = b.remove(&"milk"); // Bob saw Alice's add, so his remove wins over it
//! let d3 = a.add(alice, "eggs");
//! a.join(d2);
//! b.join(d3);
//! assert_eq!(a, b);
//! assert_eq!(a.store().iter().collect::<Vec<_>>(), [&"eggs"]);
//! ```
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod bft;
pub mod causal;
pub mod clock;
pub mod codec;
pub mod crdt;
#[cfg(feature = "yrs")]
pub mod doc;
pub mod document;
pub mod ordered;
#[cfg(feature = "sim")]
pub mod sim;
pub mod sync;

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctest;

pub use bft::{Client as BftClient, Config as BftConfig, Replica as BftReplica, Step as BftStep};
pub use causal::{CausalBuffer, Envelope, Overflow};
pub use clock::{CausalContext, Causality, Dot, Hlc, ReplicaId, Timestamp, VectorClock};
pub use crdt::{
    AWSet, Causal, CausalCounter, DotFun, DotMap, DotSet, DotStore, EWFlag, GCounter, GSet,
    Lattice, LwwRegister, MvRegister, ORMap, PNCounter,
};
