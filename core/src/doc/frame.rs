//! The native protocol's frames (`WS /sync/{room}`): what a client and the
//! relay say to each other about one room. See `docs/PROTOCOL.md`.

use std::string::String;
use std::vec::Vec;

use serde::{Deserialize, Serialize};

use super::presence::PresenceEntry;
use crate::codec;
use crate::sync::{Bytes, Message, SyncError};

/// The version of the native protocol spoken by this build. A peer that
/// says another one in its [`Frame::Hello`] is closed with
/// [`CloseCode::UNSUPPORTED_PROTOCOL`].
pub const PROTOCOL_VERSION: u16 = 1;

/// One WebSocket binary message of the native protocol: the codec's
/// version byte, then the postcard encoding of this enum.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Frame {
    /// The first frame each way.
    Hello {
        /// [`PROTOCOL_VERSION`] of the sender.
        protocol: u16,
        /// The sender's CRDT replica id (`0` from the relay, which makes no
        /// changes of its own).
        replica: u64,
        /// Whether the receiver may write (relay → client only; always
        /// `true` from a client).
        writable: bool,
    },
    /// A core::sync message for the CRDT store.
    Sync(Message),
    /// "This is my Yjs state vector (v1): send me what I lack" (Yjs sync
    /// step 1).
    YrsSyncRequest {
        /// The sender's state vector, v1 encoding.
        state_vector: Bytes,
    },
    /// A Yjs update (v1): an answer to a request (sync step 2) or a live
    /// edit.
    YrsUpdate {
        /// The update, v1 encoding.
        update: Bytes,
    },
    /// Relay → client: the first `count` Yjs updates this connection sent
    /// are durable (and forwarded).
    YrsSaved {
        /// How many updates of this connection are durable.
        count: u64,
    },
    /// Presence changes, with Yjs awareness semantics.
    Presence {
        /// The changed entries.
        entries: Vec<PresenceEntry>,
    },
    /// A refusal. With a code in 4400–4499 the connection is closed with it
    /// right after; with [`Frame::ERROR_READ_ONLY`] it stays open.
    Error {
        /// What went wrong (a [`CloseCode`] or [`Frame::ERROR_READ_ONLY`]).
        code: u16,
        /// Human-readable detail.
        reason: String,
    },
}

impl Frame {
    /// Error code: a write from a read-only connection was refused (the
    /// connection stays open).
    pub const ERROR_READ_ONLY: u16 = 4403;

    /// The wire bytes.
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self).expect("frames always serialize")
    }

    /// Decodes a frame from the network, refusing more than `max_bytes`
    /// before looking at it.
    pub fn decode(bytes: &[u8], max_bytes: usize) -> Result<Frame, SyncError> {
        if bytes.len() > max_bytes {
            return Err(SyncError::TooLarge {
                size: bytes.len(),
                max: max_bytes,
            });
        }
        Ok(codec::decode(bytes)?)
    }

    /// The kind, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Frame::Hello { .. } => "hello",
            Frame::Sync(m) => m.kind(),
            Frame::YrsSyncRequest { .. } => "yrs_sync_request",
            Frame::YrsUpdate { .. } => "yrs_update",
            Frame::YrsSaved { .. } => "yrs_saved",
            Frame::Presence { .. } => "presence",
            Frame::Error { .. } => "error",
        }
    }
}

/// WebSocket close codes the relay uses, on both endpoints. Clients do not
/// reconnect after 4400–4499 (the y-websocket client gives up on them) and
/// do reconnect after 1001, 1013 and 4500–4599.
pub struct CloseCode;

impl CloseCode {
    /// The relay is shutting down ("going away"): reconnect later.
    pub const GOING_AWAY: u16 = 1001;
    /// A frame could not be decoded (either protocol).
    pub const MALFORMED: u16 = 4400;
    /// A message exceeds the relay's size limit.
    pub const TOO_LARGE: u16 = 4413;
    /// A text frame: both protocols are binary.
    pub const TEXT_FRAME: u16 = 4415;
    /// A value nested deeper than the protocol allows (see
    /// [`super::guard::MAX_DEPTH`]).
    pub const TOO_NESTED: u16 = 4420;
    /// A Yjs update that yrs cannot decode or integrate.
    pub const BAD_UPDATE: u16 = 4422;
    /// The peer speaks another native protocol version.
    pub const UNSUPPORTED_PROTOCOL: u16 = 4426;
    /// Too many of something: messages in one frame, presence ids held by
    /// one connection.
    pub const TOO_MANY: u16 = 4429;
    /// The relay failed (storage error, for one): reconnect later.
    pub const INTERNAL: u16 = 4500;
    /// The connection could not keep up with its room: reconnect and
    /// resync.
    pub const SLOW_CONSUMER: u16 = 4503;
    /// The connection answered nothing (no pong, no frame) within the
    /// relay's ping timeout: reconnect.
    pub const PING_TIMEOUT: u16 = 4508;
}
