//! The y-websocket protocol's frames (`WS /yjs/{room}`): bounded decoding of
//! what a client sends, and encoding of what the relay sends back.
//!
//! A client frame may hold several messages (lib0 encoding: a varuint type,
//! then its body); a relay frame holds exactly one, because the y-websocket
//! 3.x client reads only the first. Decoding trusts nothing: every length is
//! checked against the bytes that remain before anything is allocated, the
//! number of messages in one frame is bounded, and awareness states must be
//! JSON nested no deeper than a limit. What the bytes inside a sync message
//! mean (a state vector, an update) is checked where they are used, by
//! [`super::guard`] and yrs.

use std::string::String;
use std::vec::Vec;

use super::frame::CloseCode;
use super::presence::PresenceEntry;

/// Message type: sync (with a sub-type).
const MSG_SYNC: u64 = 0;
/// Message type: awareness update.
const MSG_AWARENESS: u64 = 1;
/// Message type: auth (server to client only).
const MSG_AUTH: u64 = 2;
/// Message type: "send me everyone's awareness".
const MSG_QUERY_AWARENESS: u64 = 3;
const SYNC_STEP1: u64 = 0;
const SYNC_STEP2: u64 = 1;
const SYNC_UPDATE: u64 = 2;

/// One message of a client frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum YwsMessage {
    /// Sync step 1: the client's state vector (v1 bytes, not yet checked).
    SyncStep1(Vec<u8>),
    /// Sync step 2: what the relay lacked (a v1 update, not yet checked).
    SyncStep2(Vec<u8>),
    /// A live edit (a v1 update, not yet checked).
    Update(Vec<u8>),
    /// Awareness entries; a `null` state is a removal (`state: None`).
    Awareness(Vec<PresenceEntry>),
    /// "Send me everyone's awareness."
    AwarenessQuery,
    /// An auth message (the server's to send): ignored.
    Auth,
    /// A message type this relay does not know: ignored, as y-websocket
    /// servers do.
    Custom(u64),
}

impl YwsMessage {
    /// The kind, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            YwsMessage::SyncStep1(_) => "sync_step1",
            YwsMessage::SyncStep2(_) => "sync_step2",
            YwsMessage::Update(_) => "update",
            YwsMessage::Awareness(_) => "awareness",
            YwsMessage::AwarenessQuery => "awareness_query",
            YwsMessage::Auth => "auth",
            YwsMessage::Custom(_) => "custom",
        }
    }
}

/// Why a client frame was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum YwsError {
    /// The bytes are not y-websocket messages.
    Malformed(String),
    /// More messages in one frame than allowed.
    TooManyMessages {
        /// The bound.
        max: usize,
    },
    /// An awareness state nested deeper than allowed.
    TooDeep(String),
}

impl YwsError {
    /// The close code for the connection that sent it.
    pub fn close_code(&self) -> u16 {
        match self {
            YwsError::Malformed(_) => CloseCode::MALFORMED,
            YwsError::TooManyMessages { .. } => CloseCode::TOO_MANY,
            YwsError::TooDeep(_) => CloseCode::TOO_NESTED,
        }
    }

    /// The reason, for `neuroplex_rejected_total`.
    pub fn metric(&self) -> &'static str {
        match self {
            YwsError::Malformed(_) => "malformed",
            YwsError::TooManyMessages { .. } => "too_many",
            YwsError::TooDeep(_) => "too_deep",
        }
    }
}

impl core::fmt::Display for YwsError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            YwsError::Malformed(e) => write!(f, "undecodable y-websocket message: {e}"),
            YwsError::TooManyMessages { max } => {
                write!(f, "a frame may hold at most {max} messages")
            }
            YwsError::TooDeep(e) => write!(f, "awareness state refused: {e}"),
        }
    }
}

impl std::error::Error for YwsError {}

/// A lib0 reader over untrusted bytes: every read is bounds-checked.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// A lib0 varuint (7 bits a byte, little end first), at most 64 bits.
    pub(crate) fn var_u64(&mut self) -> Result<u64, &'static str> {
        let mut value: u64 = 0;
        let mut shift = 0u32;
        loop {
            let Some(&b) = self.bytes.get(self.pos) else {
                return Err("truncated varint");
            };
            self.pos += 1;
            if shift == 63 && b > 1 {
                return Err("varint overflows 64 bits");
            }
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
            shift += 7;
            if shift > 63 {
                return Err("varint overflows 64 bits");
            }
        }
    }

    pub(crate) fn var_u32(&mut self) -> Result<u32, &'static str> {
        u32::try_from(self.var_u64()?).map_err(|_| "varint overflows 32 bits")
    }

    /// A length-prefixed byte string; the length must fit in what remains.
    pub(crate) fn var_buf(&mut self) -> Result<&'a [u8], &'static str> {
        let len = self.var_u64()?;
        if len > self.remaining() as u64 {
            return Err("length beyond the end of the frame");
        }
        let start = self.pos;
        self.pos += len as usize;
        Ok(&self.bytes[start..self.pos])
    }

    pub(crate) fn var_string(&mut self) -> Result<&'a str, &'static str> {
        core::str::from_utf8(self.var_buf()?).map_err(|_| "string is not UTF-8")
    }
}

/// Decodes one client frame into its messages, refusing more than
/// `max_messages` and awareness states that are not JSON or nest deeper
/// than `max_depth`.
pub fn decode_frame(
    bytes: &[u8],
    max_messages: usize,
    max_depth: usize,
) -> Result<Vec<YwsMessage>, YwsError> {
    let mut r = Reader::new(bytes);
    let mut out = Vec::new();
    let malformed = |e: &str| YwsError::Malformed(e.into());
    while !r.is_empty() {
        if out.len() == max_messages {
            return Err(YwsError::TooManyMessages { max: max_messages });
        }
        let kind = r.var_u64().map_err(malformed)?;
        let msg = match kind {
            MSG_SYNC => {
                let sub = r.var_u64().map_err(malformed)?;
                let body = r.var_buf().map_err(malformed)?.to_vec();
                match sub {
                    SYNC_STEP1 => YwsMessage::SyncStep1(body),
                    SYNC_STEP2 => YwsMessage::SyncStep2(body),
                    SYNC_UPDATE => YwsMessage::Update(body),
                    _ => return Err(malformed("unknown sync message type")),
                }
            }
            MSG_AWARENESS => {
                let body = r.var_buf().map_err(malformed)?;
                YwsMessage::Awareness(decode_awareness(body, max_depth)?)
            }
            MSG_AUTH => {
                // Type and reason; nothing to do with either.
                r.var_u64().map_err(malformed)?;
                r.var_string().map_err(malformed)?;
                YwsMessage::Auth
            }
            MSG_QUERY_AWARENESS => YwsMessage::AwarenessQuery,
            other => {
                // y-websocket has no generic length for unknown types; yrs
                // reads them as one length-prefixed buffer, and so do we.
                r.var_buf().map_err(malformed)?;
                YwsMessage::Custom(other)
            }
        };
        out.push(msg);
    }
    if out.is_empty() {
        return Err(malformed("empty frame"));
    }
    Ok(out)
}

/// An awareness update's entries: `[count][client, clock, json]*`.
fn decode_awareness(body: &[u8], max_depth: usize) -> Result<Vec<PresenceEntry>, YwsError> {
    let malformed = |e: &str| YwsError::Malformed(e.into());
    let mut r = Reader::new(body);
    let count = r.var_u64().map_err(malformed)?;
    // Each entry takes at least three bytes: nothing is reserved beyond
    // what the bytes can hold.
    if count > (r.remaining() / 3) as u64 {
        return Err(malformed(
            "awareness entry count beyond the end of the message",
        ));
    }
    let mut entries = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let client = r.var_u64().map_err(malformed)?;
        let clock = r.var_u32().map_err(malformed)?;
        let json = r.var_string().map_err(malformed)?;
        let state = if json == "null" {
            None
        } else {
            check_json(json, max_depth)?;
            Some(String::from(json))
        };
        entries.push(PresenceEntry {
            client,
            clock,
            state,
        });
    }
    if !r.is_empty() {
        return Err(malformed("bytes after the awareness entries"));
    }
    Ok(entries)
}

/// Checks that `text` is JSON nested at most `max_depth` deep: the depth
/// first (iteratively), then the syntax (serde_json, which then cannot
/// recurse further than the depth just checked).
pub fn check_json(text: &str, max_depth: usize) -> Result<(), YwsError> {
    super::guard::check_json_depth(text, max_depth)
        .map_err(|e| YwsError::TooDeep(std::string::ToString::to_string(&e)))?;
    serde_json::from_str::<serde::de::IgnoredAny>(text)
        .map(|_| ())
        .map_err(|_| YwsError::Malformed("awareness state is not JSON".into()))
}

fn write_var(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn write_buf(out: &mut Vec<u8>, bytes: &[u8]) {
    write_var(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn sync_message(sub: u64, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 12);
    write_var(&mut out, MSG_SYNC);
    write_var(&mut out, sub);
    write_buf(&mut out, body);
    out
}

/// A relay frame: sync step 1 with the relay's state vector (v1).
pub fn sync_step1(state_vector: &[u8]) -> Vec<u8> {
    sync_message(SYNC_STEP1, state_vector)
}

/// A relay frame: sync step 2 with what the client lacks (a v1 update).
pub fn sync_step2(update: &[u8]) -> Vec<u8> {
    sync_message(SYNC_STEP2, update)
}

/// A relay frame: a live update (v1).
pub fn update(update: &[u8]) -> Vec<u8> {
    sync_message(SYNC_UPDATE, update)
}

/// A relay frame: an awareness update with `entries` (removals as `null`).
pub fn awareness(entries: &[PresenceEntry]) -> Vec<u8> {
    let mut body = Vec::new();
    write_var(&mut body, entries.len() as u64);
    for e in entries {
        write_var(&mut body, e.client);
        write_var(&mut body, u64::from(e.clock));
        write_buf(&mut body, e.state.as_deref().unwrap_or("null").as_bytes());
    }
    let mut out = Vec::with_capacity(body.len() + 6);
    write_var(&mut out, MSG_AWARENESS);
    write_buf(&mut out, &body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;
    use std::vec;
    use yrs::sync::{Message as YMessage, SyncMessage};
    use yrs::updates::encoder::Encode;

    #[test]
    fn decodes_what_yrs_encodes() {
        let sv = yrs::StateVector::default();
        let mut frame = YMessage::Sync(SyncMessage::SyncStep1(sv.clone())).encode_v1();
        frame.extend(YMessage::Sync(SyncMessage::Update(vec![0, 0])).encode_v1());
        frame.extend(YMessage::AwarenessQuery.encode_v1());
        let msgs = decode_frame(&frame, 8, 64).unwrap();
        assert_eq!(
            msgs,
            vec![
                YwsMessage::SyncStep1(sv.encode_v1()),
                YwsMessage::Update(vec![0, 0]),
                YwsMessage::AwarenessQuery
            ]
        );
    }

    #[test]
    fn awareness_round_trips_and_matches_yrs() {
        let entries = vec![
            PresenceEntry {
                client: 7,
                clock: 3,
                state: Some("{\"name\":\"a\"}".to_string()),
            },
            PresenceEntry {
                client: 9,
                clock: 1,
                state: None,
            },
        ];
        let frame = awareness(&entries);
        let msgs = decode_frame(&frame, 8, 64).unwrap();
        assert_eq!(msgs, vec![YwsMessage::Awareness(entries)]);
        // yrs reads our encoding too.
        let mut dec = yrs::updates::decoder::DecoderV1::from(frame.as_slice());
        let read: Vec<_> = yrs::sync::MessageReader::new(&mut dec).collect();
        assert!(matches!(read.as_slice(), [Ok(YMessage::Awareness(_))]));
    }

    #[test]
    fn bounds() {
        let one = YMessage::AwarenessQuery.encode_v1();
        let many: Vec<u8> = one.iter().copied().cycle().take(one.len() * 9).collect();
        assert_eq!(
            decode_frame(&many, 8, 64),
            Err(YwsError::TooManyMessages { max: 8 })
        );
        // A claimed count far beyond the bytes.
        let mut claim = vec![1u8];
        let mut body = Vec::new();
        write_var(&mut body, u64::MAX >> 1);
        write_buf(&mut claim, &body);
        assert!(matches!(
            decode_frame(&claim, 8, 64),
            Err(YwsError::Malformed(_))
        ));
        // A claimed buffer length beyond the frame.
        assert!(matches!(
            decode_frame(&[0, 1, 0xff, 0xff, 0xff, 0x0f], 8, 64),
            Err(YwsError::Malformed(_))
        ));
        assert!(decode_frame(&[], 8, 64).is_err());
        let deep = "[".repeat(100) + &"]".repeat(100);
        let frame = awareness(&[PresenceEntry {
            client: 1,
            clock: 1,
            state: Some(deep),
        }]);
        assert!(matches!(
            decode_frame(&frame, 8, 64),
            Err(YwsError::TooDeep(_))
        ));
        let bad = awareness(&[PresenceEntry {
            client: 1,
            clock: 1,
            state: Some("{nope".into()),
        }]);
        assert!(matches!(
            decode_frame(&bad, 8, 64),
            Err(YwsError::Malformed(_))
        ));
    }
}
