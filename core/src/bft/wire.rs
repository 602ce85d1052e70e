//! Encoding helpers for the PBFT messages that keep the wire format of
//! [`crate::codec`] byte for byte while doing less work per request.
//!
//! - Byte strings (operations, results, signed bodies, snapshots) go
//!   through `serialize_bytes`: postcard writes a varint length and the raw
//!   bytes — exactly what it writes for a sequence of `u8` — but copies them
//!   in one go, and decoding makes one allocation of the right size instead
//!   of growing a vector byte by byte.
//! - A MAC vector (one 16-byte tag per replica) is one byte string of 16·n
//!   bytes, decoded in one step rather than tag by tag and byte by byte.
//! - [`encode`] is [`crate::codec::encode`] with a capacity hint, so a
//!   message is not re-allocated as it grows.
//!
//! Not here: the message types (`message`).

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Serialize, Serializer};

use super::auth::Tag;
use crate::codec;

/// Encodes `value` like [`codec::encode`], into a buffer of `capacity`
/// bytes to start with.
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T, capacity: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(capacity.max(16));
    out.push(codec::VERSION);
    // Our types always serialize; an empty buffer would be dropped as
    // malformed by the receiver.
    postcard::to_extend(value, out).unwrap_or_default()
}

/// A byte string, decoded in one copy.
struct BytesVisitor;

impl<'de> Visitor<'de> for BytesVisitor {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("bytes")
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
        Ok(v.to_vec())
    }

    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
        Ok(v)
    }

    // Formats that write byte strings as sequences.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
        let mut v = Vec::new();
        while let Some(b) = seq.next_element::<u8>()? {
            v.push(b);
        }
        Ok(v)
    }
}

/// `#[serde(with = "bytes")]` for `Vec<u8>` fields.
pub(crate) mod bytes {
    use super::*;

    pub(crate) fn serialize<S: Serializer, T: AsRef<[u8]> + ?Sized>(
        v: &T,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v.as_ref())
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        d.deserialize_byte_buf(BytesVisitor)
    }
}

/// A shared, immutable byte string: cloning it (a request put into a batch,
/// a batch kept in the log and in Q) copies a pointer, not the bytes.
struct SharedVisitor;

impl<'de> Visitor<'de> for SharedVisitor {
    type Value = Arc<[u8]>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("bytes")
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Arc<[u8]>, E> {
        Ok(Arc::from(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Arc<[u8]>, A::Error> {
        BytesVisitor.visit_seq(seq).map(Arc::from)
    }
}

/// `#[serde(with = "shared_bytes")]` for `Arc<[u8]>` fields.
pub(crate) mod shared_bytes {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(v: &Arc<[u8]>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Arc<[u8]>, D::Error> {
        d.deserialize_bytes(SharedVisitor)
    }
}

/// Tag vectors as one byte string.
struct TagsVisitor<T>(core::marker::PhantomData<T>);

impl<'de, T: Default + Extend<Tag>> Visitor<'de> for TagsVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a byte string of 16-byte tags")
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<T, E> {
        if v.len() % 16 != 0 {
            return Err(E::custom("tag vector length not a multiple of 16"));
        }
        let mut out = T::default();
        out.extend(v.chunks_exact(16).map(|c| {
            let mut t = [0; 16];
            t.copy_from_slice(c);
            t
        }));
        Ok(out)
    }
}

/// `#[serde(with = "tags")]` for tag vectors (`Vec<Tag>`, `Tags`): one
/// byte string holding the tags back to back.
pub(crate) mod tags {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(v: &[Tag], s: S) -> Result<S::Ok, S::Error> {
        // The bytes of consecutive arrays are contiguous.
        s.serialize_bytes(v.as_flattened())
    }

    pub(crate) fn deserialize<'de, D, T>(d: D) -> Result<T, D::Error>
    where
        D: Deserializer<'de>,
        T: Default + Extend<Tag>,
    {
        d.deserialize_bytes(TagsVisitor(core::marker::PhantomData))
    }
}

/// Hand-written encoding and decoding of the messages every request passes
/// through (request, pre-prepare, reply), byte for byte the postcard
/// layout the derived code reads and writes: varints are LEB128, fixed
/// arrays are raw bytes, byte strings are a varint length and the bytes,
/// an enum variant is its index as a varint. The derived path stays the
/// reference: [`Reader`] accepts only canonical input and anything it does
/// not accept is decoded by serde, so both paths always agree (checked
/// against each other by the tests).
pub(crate) mod fast {
    use alloc::sync::Arc;
    use alloc::vec::Vec;

    use crate::bft::auth::{Auth, Sig, Tag, Tags};
    use crate::bft::digest::Digest;
    use crate::bft::message::{AuthRequest, Batch, Message, PrePrepare, Request, Vote};
    use crate::codec::VERSION;

    /// `Message` variant indices.
    pub(crate) const REQUEST: u64 = 0;
    pub(crate) const PRE_PREPARE: u64 = 1;
    pub(crate) const REPLY: u64 = 10;

    /// Appends to a buffer.
    pub(crate) struct Writer(pub(crate) Vec<u8>);

    impl Writer {
        /// A message: the version byte and the variant index.
        pub(crate) fn message(variant: u64, capacity: usize) -> Self {
            let mut w = Writer(Vec::with_capacity(capacity));
            w.0.push(VERSION);
            w.varint(variant);
            w
        }

        pub(crate) fn varint(&mut self, mut x: u64) {
            while x >= 0x80 {
                self.0.push(x as u8 | 0x80);
                x >>= 7;
            }
            self.0.push(x as u8);
        }

        pub(crate) fn raw(&mut self, b: &[u8]) {
            self.0.extend_from_slice(b);
        }

        pub(crate) fn bytes(&mut self, b: &[u8]) {
            self.varint(b.len() as u64);
            self.raw(b);
        }

        pub(crate) fn vote(&mut self, v: &Vote) {
            self.varint(v.view);
            self.varint(v.seq);
            self.raw(&v.digest.0);
            self.varint(u64::from(v.replica));
        }

        pub(crate) fn auth(&mut self, a: &Auth) {
            match a {
                Auth::Signature(s) => {
                    self.varint(0);
                    self.raw(&s.0);
                    self.raw(&s.1);
                }
                Auth::Macs(t) => {
                    self.varint(1);
                    self.bytes(t.as_flattened());
                }
            }
        }

        pub(crate) fn request(&mut self, r: &AuthRequest) {
            self.varint(r.request.client);
            self.varint(r.request.timestamp);
            self.bytes(&r.request.op);
            self.bytes(r.macs.as_flattened());
        }

        pub(crate) fn batch(&mut self, b: &Batch) {
            self.varint(b.requests.len() as u64);
            for r in &b.requests {
                self.request(r);
            }
        }
    }

    /// Reads canonical input; `None` on anything else.
    pub(crate) struct Reader<'a> {
        b: &'a [u8],
    }

    impl<'a> Reader<'a> {
        /// After the version byte; `None` if it is not ours.
        pub(crate) fn message(bytes: &'a [u8]) -> Option<(u64, Self)> {
            let (&v, rest) = bytes.split_first()?;
            if v != VERSION {
                return None;
            }
            let mut r = Reader { b: rest };
            let variant = r.varint(u64::from(u32::MAX))?;
            Some((variant, r))
        }

        /// A minimal LEB128 varint of at most `max`.
        pub(crate) fn varint(&mut self, max: u64) -> Option<u64> {
            let mut x: u64 = 0;
            for i in 0..10 {
                let (&byte, rest) = self.b.split_first()?;
                self.b = rest;
                let part = u64::from(byte & 0x7f);
                if i == 9 && byte > 1 {
                    return None;
                }
                x |= part << (7 * i);
                if byte & 0x80 == 0 {
                    // Minimal: no trailing zero group.
                    if i > 0 && byte == 0 {
                        return None;
                    }
                    return (x <= max).then_some(x);
                }
            }
            None
        }

        pub(crate) fn raw<const N: usize>(&mut self) -> Option<[u8; N]> {
            if self.b.len() < N {
                return None;
            }
            let (head, rest) = self.b.split_at(N);
            self.b = rest;
            head.try_into().ok()
        }

        pub(crate) fn bytes(&mut self) -> Option<&'a [u8]> {
            let n = usize::try_from(self.varint(u64::MAX)?).ok()?;
            if self.b.len() < n {
                return None;
            }
            let (head, rest) = self.b.split_at(n);
            self.b = rest;
            Some(head)
        }

        fn tags<T: Default + Extend<Tag>>(&mut self) -> Option<T> {
            let b = self.bytes()?;
            if b.len() % 16 != 0 {
                return None;
            }
            let mut out = T::default();
            out.extend(b.chunks_exact(16).map(|c| {
                let mut t = [0; 16];
                t.copy_from_slice(c);
                t
            }));
            Some(out)
        }

        pub(crate) fn is_empty(&self) -> bool {
            self.b.is_empty()
        }

        fn vote(&mut self) -> Option<Vote> {
            Some(Vote {
                view: self.varint(u64::MAX)?,
                seq: self.varint(u64::MAX)?,
                digest: Digest(self.raw::<32>()?),
                replica: u32::try_from(self.varint(u64::from(u32::MAX))?).ok()?,
            })
        }

        fn auth(&mut self) -> Option<Auth> {
            match self.varint(u64::from(u32::MAX))? {
                0 => Some(Auth::Signature(Sig(self.raw::<32>()?, self.raw::<32>()?))),
                1 => Some(Auth::Macs(self.tags::<Vec<Tag>>()?)),
                _ => None,
            }
        }

        fn request(&mut self) -> Option<AuthRequest> {
            let client = self.varint(u64::MAX)?;
            let timestamp = self.varint(u64::MAX)?;
            let op: Arc<[u8]> = Arc::from(self.bytes()?);
            let macs: Tags = self.tags()?;
            Some(AuthRequest {
                request: Request {
                    client,
                    timestamp,
                    op,
                },
                macs,
            })
        }

        fn batch(&mut self) -> Option<Batch> {
            let n = usize::try_from(self.varint(u64::MAX)?).ok()?;
            // Each request takes at least 4 bytes: a count beyond that is
            // left to the reference decoder (which refuses it).
            if n > self.b.len() / 4 {
                return None;
            }
            let mut requests = Vec::with_capacity(n);
            for _ in 0..n {
                requests.push(self.request()?);
            }
            Some(Batch { requests })
        }
    }

    /// Decodes a request or pre-prepare; `None` for anything else, or
    /// anything not canonical (the caller then decodes with serde).
    pub(crate) fn decode(bytes: &[u8]) -> Option<Message> {
        let (variant, mut r) = Reader::message(bytes)?;
        let m = match variant {
            REQUEST => Message::Request(r.request()?),
            PRE_PREPARE => Message::PrePrepare(PrePrepare {
                vote: r.vote()?,
                auth: r.auth()?,
                batch: r.batch()?,
            }),
            _ => return None,
        };
        r.is_empty().then_some(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use serde::Deserialize;

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct AsSeq {
        a: Vec<u8>,
        b: Vec<u8>,
    }

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct AsBytes {
        #[serde(with = "bytes")]
        a: Vec<u8>,
        #[serde(with = "shared_bytes")]
        b: Arc<[u8]>,
    }

    #[test]
    fn byte_strings_encode_like_sequences_of_u8() {
        for len in [0usize, 1, 127, 128, 300] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let seq = AsSeq {
                a: data.clone(),
                b: vec![1, 2, 3],
            };
            let bytes = AsBytes {
                a: data.clone(),
                b: Arc::from(&[1u8, 2, 3][..]),
            };
            let wire = codec::encode(&seq).unwrap();
            assert_eq!(encode(&bytes, 0), wire);
            assert_eq!(codec::decode::<AsBytes>(&wire).unwrap(), bytes);
            // Truncated input is an error, not a panic.
            for cut in 0..wire.len() {
                assert!(codec::decode::<AsBytes>(&wire[..cut]).is_err());
            }
        }
    }
}
