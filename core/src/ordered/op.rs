//! Operations and their outcomes, as they travel (encoded with
//! [`crate::codec`]).

use alloc::string::String;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use super::Principal;

/// A right on a room. Each includes the ones before it: admin may write,
/// write may read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Right {
    /// Read the room and its registers.
    Read,
    /// Change them too.
    Write,
    /// Grant and revoke rights too.
    Admin,
}

/// One operation a client submits to the group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// Creates `room`, owned by the requester (who holds every right on it
    /// and cannot lose them).
    CreateRoom {
        /// The room's name.
        room: String,
    },
    /// Gives `principal` the right `right` on `room` (replacing what it
    /// had). Needs admin.
    Grant {
        /// The room.
        room: String,
        /// Who gets it.
        principal: Principal,
        /// What.
        right: Right,
    },
    /// Takes every right on `room` away from `principal`. Needs admin; the
    /// owner's cannot be taken.
    Revoke {
        /// The room.
        room: String,
        /// Whose.
        principal: Principal,
    },
    /// What `principal` may do in `room`. Needs read.
    Rights {
        /// The room.
        room: String,
        /// Whose.
        principal: Principal,
    },
    /// Sets `key` of `room`'s registers. Needs write.
    Put {
        /// The room.
        room: String,
        /// The key.
        key: Vec<u8>,
        /// The value.
        value: Vec<u8>,
    },
    /// Reads `key`. Needs read.
    Get {
        /// The room.
        room: String,
        /// The key.
        key: Vec<u8>,
    },
    /// Sets `key` to `value` (or removes it, with `None`) only if it holds
    /// `expected` (`None`: absent). Needs write.
    CompareAndSet {
        /// The room.
        room: String,
        /// The key.
        key: Vec<u8>,
        /// What it must hold now.
        expected: Option<Vec<u8>>,
        /// What it holds after.
        value: Option<Vec<u8>>,
    },
    /// Claims `name` in `room` for the requester, unless someone claimed it
    /// first. Needs write.
    Claim {
        /// The room.
        room: String,
        /// The name.
        name: Vec<u8>,
    },
    /// Records the digest of `room`'s document state (see PROTOCOL.md) as
    /// certified at this point of the order. Needs write.
    Checkpoint {
        /// The room.
        room: String,
        /// The document state's digest.
        digest: [u8; 32],
    },
}

/// What an operation did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Done (create, grant, revoke, put, a compare-and-set that matched,
    /// checkpoint).
    Done,
    /// A register's value (`None`: absent).
    Value(Option<Vec<u8>>),
    /// A principal's right (`None`: none).
    Rights(Option<Right>),
    /// A compare-and-set that did not match: what the key holds.
    Mismatch(Option<Vec<u8>>),
    /// Who holds the claimed name: the requester if it won.
    ClaimedBy(Principal),
    /// Not allowed: the requester lacks the right, or the room does not
    /// exist (or already exists, for create).
    Denied(String),
    /// Malformed or over a bound; nothing changed.
    Refused(String),
}
