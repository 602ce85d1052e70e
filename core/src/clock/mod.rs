//! Identities and clocks: who did something, and what happened before what.

mod causal_context;
mod dot;
mod hlc;
mod replica;
mod vector_clock;

pub use causal_context::CausalContext;
pub use dot::Dot;
pub use hlc::{ClockDrift, Hlc, Timestamp};
pub use replica::ReplicaId;
pub use vector_clock::{Causality, VectorClock};
