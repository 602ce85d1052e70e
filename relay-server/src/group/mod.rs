//! The validator group, as far as it exists today: the file that lists its
//! members and this node's key, checked before a relay joins.
//!
//! What is not here yet: the group protocol itself (PBFT among the members
//! over QUIC, `core::bft::Replica` driven from a task). Until it is, `serve`
//! checks `--validators` and `--node-key` and then refuses to start, saying
//! so, rather than run as a member that orders nothing.

mod node_key;
mod validators;

pub use node_key::{NodeKey, keygen};
pub use validators::{Validator, Validators};
