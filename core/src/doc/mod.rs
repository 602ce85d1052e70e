//! A room's document and the protocol's two state machines (feature `yrs`,
//! which needs `std`): the delta-CRDT [`crate::document`] beside a
//! [`yrs::Doc`] for text and rich JSON ([`SharedDoc`]), the native wire
//! frames, the y-websocket codec, the client session ([`ClientSession`]) and
//! the room ([`Room`]).
//!
//! The relay, the WASM package and the simulators hold the same types, so
//! one definition decides what a document is, what a valid update is, how a
//! peer catches up and what a room does with each connection's bytes. Like
//! the rest of the crate it is sans-IO: bytes in, bytes out, no clock and no
//! randomness (ids and sessions are arguments). Bytes from the network are
//! checked by [`guard`] before yrs reads them.

mod frame;
pub mod guard;
pub mod hold;
mod presence;
pub mod room;
pub mod sequence;
mod session;
mod shared;
pub mod yws;

pub use frame::{CloseCode, Frame, PROTOCOL_VERSION};
pub use hold::{Hold, HoldOutcome, MAX_HELD, MAX_HELD_BYTES};
pub use presence::{PresenceEntry, PresenceMap};
pub use room::{ConnId, Protocol, Room, RoomLimits};
pub use session::{ClientSession, PresenceClock, SessionError, SessionEvent, SessionOutput};
pub use shared::{Applied, DocError, SharedDoc, Snapshot};
