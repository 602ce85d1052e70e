//! The wire encoding: a version byte, then the value in postcard (serde,
//! varint integers, no field names).
//!
//! [`decode`] is safe on untrusted bytes: it returns a value or an error,
//! never panics, refuses nesting deeper than [`MAX_DEPTH`], and allocates at
//! most in proportion to the input (no length prefix is trusted to reserve
//! memory, and a collection cannot claim more elements than there are input
//! bytes). Values are also checked for the invariants the types rely on
//! (sorted clocks, stores covered by their context, no empty map entries):
//! only the canonical encoding of a value decodes.
//!
//! ```
//! use neuroplex_core::{codec, GCounter, ReplicaId};
//! let mut c = GCounter::new();
//! c.increment(ReplicaId::new(3), 2);
//! let bytes = codec::encode(&c).unwrap();
//! assert_eq!(bytes, [1, 1, 3, 2]); // version 1; one entry: replica 3 → 2
//! assert_eq!(codec::decode::<GCounter>(&bytes).unwrap(), c);
//! assert!(codec::decode::<GCounter>(&[1, 1, 3, 0]).is_err()); // a zero entry is not canonical
//! ```

mod limits;

use alloc::vec::Vec;
use core::fmt;

use serde::{Deserialize, Serialize};

/// The encoding version this build writes and reads.
pub const VERSION: u8 = 1;

/// Deepest nesting [`decode`] accepts (a struct in a map in a struct is 3).
pub const MAX_DEPTH: usize = 32;

/// Why bytes could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// No bytes at all.
    Empty,
    /// The version byte names an encoding this build does not know.
    UnsupportedVersion(u8),
    /// Nesting deeper than [`MAX_DEPTH`].
    TooDeep,
    /// More collection elements than input bytes.
    TooManyElements,
    /// Bytes left over after the value.
    TrailingBytes(usize),
    /// The bytes do not encode a valid value; the text says why.
    Invalid(&'static str),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Empty => write!(f, "empty input"),
            DecodeError::UnsupportedVersion(v) => {
                write!(
                    f,
                    "unsupported encoding version {v} (this build reads {VERSION})"
                )
            }
            DecodeError::TooDeep => write!(f, "nested deeper than {MAX_DEPTH} levels"),
            DecodeError::TooManyElements => {
                write!(f, "collection claims more elements than the input holds")
            }
            DecodeError::TrailingBytes(n) => write!(f, "{n} bytes after the value"),
            DecodeError::Invalid(why) => write!(f, "invalid encoding: {why}"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for DecodeError {}

/// Why a value could not be encoded (only values whose `Serialize` fails,
/// which no type of this crate does).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodeError;

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "value could not be serialized")
    }
}

#[cfg(feature = "std")]
impl std::error::Error for EncodeError {}

/// Encodes `value`: the version byte, then postcard.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::with_capacity(16);
    out.push(VERSION);
    postcard::to_extend(value, out).map_err(|_| EncodeError)
}

/// Decodes a value written by [`encode`], treating `bytes` as hostile.
pub fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, DecodeError> {
    let (&version, body) = bytes.split_first().ok_or(DecodeError::Empty)?;
    if version != VERSION {
        return Err(DecodeError::UnsupportedVersion(version));
    }
    let budget = limits::Budget::new(MAX_DEPTH, body.len());
    let mut de = postcard::Deserializer::from_bytes(body);
    let value = T::deserialize(limits::Limited::new(&mut de, &budget)).map_err(|e| match budget
        .exceeded()
    {
        Some(limits::Exceeded::Depth) => DecodeError::TooDeep,
        Some(limits::Exceeded::Elements) => DecodeError::TooManyElements,
        None => DecodeError::Invalid(describe(&e)),
    })?;
    let rest = de
        .finalize()
        .map_err(|e| DecodeError::Invalid(describe(&e)))?;
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBytes(rest.len()));
    }
    Ok(value)
}

fn describe(e: &postcard::Error) -> &'static str {
    use postcard::Error as E;
    match e {
        E::DeserializeUnexpectedEnd => "input ends inside a value",
        E::DeserializeBadVarint => "bad varint",
        E::DeserializeBadBool => "bad bool",
        E::DeserializeBadChar => "bad char",
        E::DeserializeBadUtf8 => "bad UTF-8",
        E::DeserializeBadOption => "bad option tag",
        E::DeserializeBadEnum => "unknown enum variant",
        E::DeserializeBadEncoding => "bad encoding",
        E::DeserializeBadCrc => "bad checksum",
        // Our types report broken invariants through serde's custom errors,
        // which postcard does not carry the text of.
        E::SerdeDeCustom => "value breaks an invariant of its type",
        _ => "malformed input",
    }
}
