//! Sync messages and their bounded, optionally compressed payloads.

use alloc::vec::Vec;
use core::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::clock::{CausalContext, VectorClock};
use crate::codec::{self, DecodeError};
use crate::crdt::Causal;

/// Limits and thresholds of a replica's sync.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Largest encoded message accepted or produced, and largest payload
    /// after decompression.
    pub max_message_bytes: usize,
    /// Payloads whose encoding is longer than this are lz4-compressed (if
    /// that makes them smaller).
    pub compress_threshold: usize,
    /// Most deltas kept for neighbours that have not acknowledged them. A
    /// neighbour that falls further behind is sent the state it is missing
    /// instead.
    pub max_buffered_deltas: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_message_bytes: 16 << 20,
            compress_threshold: 512,
            max_buffered_deltas: 4096,
        }
    }
}

/// Why a message was refused. The connection it came on should be closed
/// with this reason; the replica's state is untouched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyncError {
    /// The message (or a payload, once decompressed) is larger than allowed.
    TooLarge {
        /// Its size, or the size it claims.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The bytes are not a valid message or delta.
    Decode(DecodeError),
    /// A compressed payload is inconsistent.
    BadCompression(&'static str),
}

impl fmt::Display for SyncError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SyncError::TooLarge { size, max } => {
                write!(f, "message of {size} bytes exceeds the limit of {max}")
            }
            SyncError::Decode(e) => write!(f, "undecodable message: {e}"),
            SyncError::BadCompression(why) => write!(f, "bad compressed payload: {why}"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for SyncError {}

impl From<DecodeError> for SyncError {
    fn from(e: DecodeError) -> Self {
        SyncError::Decode(e)
    }
}

/// A message between two replicas. See `docs/PROTOCOL.md` for the bytes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Message {
    /// "Here is everything I have seen: send me what I lack." With
    /// `reply`, the receiver also sends its own context back, so that each
    /// side can serve the other.
    SyncRequest {
        /// The sender's session (new at every start).
        session: u64,
        /// The sender's causal context.
        context: CausalContext,
        /// Whether the receiver should answer with its own request.
        reply: bool,
    },
    /// Deltas, joined into one: everything the sender had from its sequence
    /// number `from` up to (not including) `to`. With `answer`, the payload
    /// is what the requester (whose session `answer` names) was missing
    /// according to its request, and `from` is 0.
    Delta {
        /// The sender's session.
        session: u64,
        /// First sequence number covered.
        from: u64,
        /// One past the last sequence number covered.
        to: u64,
        /// The requester's session, for a reply to a [`Message::SyncRequest`].
        answer: Option<u64>,
        /// The joined delta.
        payload: Payload,
    },
    /// "I have joined your deltas up to `to`" (of the sender session
    /// `session`).
    Ack {
        /// The session of the replica whose deltas are acknowledged.
        session: u64,
        /// One past the last sequence number joined.
        to: u64,
        /// The compact part of the acknowledging replica's context: what it
        /// has seen, from anyone.
        seen: VectorClock,
    },
}

impl Message {
    /// The wire bytes: the codec's version byte, then postcard.
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self).expect("sync messages always serialize")
    }

    /// Decodes a message from the network, refusing more than
    /// `max_message_bytes` before looking at it.
    pub fn decode(bytes: &[u8], config: &Config) -> Result<Message, SyncError> {
        if bytes.len() > config.max_message_bytes {
            return Err(SyncError::TooLarge {
                size: bytes.len(),
                max: config.max_message_bytes,
            });
        }
        Ok(codec::decode(bytes)?)
    }

    /// The kind, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::SyncRequest { .. } => "sync_request",
            Message::Delta { .. } => "delta",
            Message::Ack { .. } => "ack",
        }
    }
}

/// An encoded delta, as it travels.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Payload {
    /// The codec encoding of the delta.
    Plain(Bytes),
    /// The same, lz4-compressed (block format).
    Lz4 {
        /// Length once decompressed.
        len: u32,
        /// Compressed bytes.
        bytes: Bytes,
    },
}

impl Payload {
    /// Encodes a delta, compressing it when that pays.
    pub fn seal<S: Serialize>(delta: &Causal<S>, config: &Config) -> Payload {
        let plain = codec::encode(delta).expect("deltas always serialize");
        if plain.len() > config.compress_threshold && plain.len() <= u32::MAX as usize {
            let packed = lz4_flex::block::compress(&plain);
            if packed.len() < plain.len() {
                return Payload::Lz4 {
                    len: plain.len() as u32,
                    bytes: Bytes(packed),
                };
            }
        }
        Payload::Plain(Bytes(plain))
    }

    /// Decodes the delta, treating the bytes as hostile: a compressed
    /// payload's claimed size is checked against the message limit and
    /// against 255 × its compressed size (lz4's best ratio) before anything
    /// is allocated.
    pub fn open<S>(&self, config: &Config) -> Result<Causal<S>, SyncError>
    where
        S: crate::crdt::DotStore + for<'de> Deserialize<'de>,
    {
        match self {
            Payload::Plain(b) => Ok(codec::decode(&b.0)?),
            Payload::Lz4 { len, bytes } => {
                let len = *len as usize;
                if len > config.max_message_bytes {
                    return Err(SyncError::TooLarge {
                        size: len,
                        max: config.max_message_bytes,
                    });
                }
                if len > bytes.0.len().saturating_mul(255) {
                    return Err(SyncError::BadCompression(
                        "claimed size exceeds 255 times the compressed size",
                    ));
                }
                let plain = lz4_flex::block::decompress(&bytes.0, len)
                    .map_err(|_| SyncError::BadCompression("lz4 block does not decompress"))?;
                if plain.len() != len {
                    return Err(SyncError::BadCompression(
                        "size differs from the claimed size",
                    ));
                }
                Ok(codec::decode(&plain)?)
            }
        }
    }

    /// Bytes on the wire (without framing).
    pub fn len(&self) -> usize {
        match self {
            Payload::Plain(b) => b.0.len(),
            Payload::Lz4 { bytes, .. } => bytes.0.len(),
        }
    }

    /// True if there are no bytes (never, for a sealed payload).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A byte string encoded as one length-prefixed run (not a sequence of
/// numbers).
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Bytes(pub Vec<u8>);

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bytes({})", self.0.len())
    }
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Bytes;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a byte string")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Bytes, E> {
                Ok(Bytes(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Bytes, E> {
                Ok(Bytes(v))
            }
        }
        d.deserialize_byte_buf(V)
    }
}
