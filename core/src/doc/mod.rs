//! A room's document: the delta-CRDT store of [`crate::sync`] beside a
//! [`yrs::Doc`] for text and rich JSON, with both sync paths and the native
//! wire frames that carry them (feature `yrs`, which needs `std`).
//!
//! The relay and the WASM package hold the same [`SharedDoc`], so one
//! definition decides what a document is, what a valid update is and how a
//! peer catches up. Like the rest of the crate it is sans-IO: bytes in,
//! bytes out, no clock and no randomness (the yrs client id and the sync
//! session are arguments).

mod frame;
mod presence;
mod session;
mod shared;

pub use frame::{CloseCode, Frame, PROTOCOL_VERSION};
pub use presence::{PresenceEntry, PresenceMap};
pub use session::{ClientSession, PresenceClock, SessionError, SessionEvent, SessionOutput};
pub use shared::{DocError, DocStore, SharedDoc, Snapshot};
