//! A validator of Yjs v1 updates and state vectors from untrusted peers,
//! run before yrs sees the bytes.
//!
//! yrs 0.28 decodes `Any` values recursively, so one update holding an array
//! nested a million levels deep overflows the stack — an abort that
//! `catch_unwind` cannot stop (a trap in wasm). It also reserves memory from
//! claimed counts before reading the entries. This module walks the whole v1
//! format exactly as yrs's `DecoderV1` reads it, with no recursion and no
//! allocation beyond a depth-bounded stack, and refuses:
//!
//! - any count or length larger than the bytes that remain could hold;
//! - `Any` values (and JSON carried in content) nested deeper than a limit;
//! - varints that overflow the type yrs reads them into, clocks that
//!   overflow `u32` and client ids of 2^53 or more (each panics in a debug
//!   build of yrs and silently wraps or merges in release);
//! - bytes left over after the update (yrs ignores them; no encoder emits
//!   them, and a relay must not forward them);
//! - client sections out of order or repeated (every encoder writes each
//!   client once, highest first; yrs mishandles a repeated one);
//! - legacy JSON content, which yrs 0.28 cannot decode from its own
//!   encoding (a stored snapshot holding one would never load again);
//! - subdocuments (`ContentDoc`): yrs 0.28 never frees a document that
//!   integrated one (the item keeps a reference to its own document), so
//!   one ten-byte item would leak the whole room's document at every
//!   unload or reload.
//!
//! It reads every byte at the same offset as yrs, so what it accepts is what
//! yrs will decode: the walker cannot be tricked into seeing a string where
//! yrs sees a nested value.

use core::fmt;
use std::vec::Vec;

/// The deepest nesting of an `Any` value or a JSON string accepted. Real
/// documents nest a handful of levels; yrs needs a few hundred bytes of stack
/// per level (measured on a debug build, decode + apply + encode of nested
/// arrays: about 3,250 levels fit a 1 MiB stack and 26,000 an 8 MiB one), so
/// 128 levels stay far below a stack overflow even on a 1 MiB stack (native
/// threads, wasm). It is also serde_json's own limit, which
/// yrs uses for JSON content.
pub const MAX_DEPTH: usize = 128;

/// Why bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuardError {
    /// The input ended in the middle of a value.
    Truncated,
    /// A value nests `depth` levels, more than `max`.
    TooDeep {
        /// The depth reached when the walk stopped.
        depth: usize,
        /// The limit.
        max: usize,
    },
    /// A count or length claims more than the remaining input could hold.
    ClaimTooLarge {
        /// The claimed count or length.
        claimed: u64,
        /// The bytes that remained.
        remaining: usize,
    },
    /// The bytes are not a v1 update (or state vector) as yrs reads it.
    Malformed(&'static str),
    /// Well-formed, and holding what this guard refuses on purpose.
    Unsupported(&'static str),
}

impl fmt::Display for GuardError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GuardError::Truncated => write!(f, "the input ends in the middle of a value"),
            GuardError::TooDeep { depth, max } => {
                write!(
                    f,
                    "a value nests {depth} levels deep (at most {max} allowed)"
                )
            }
            GuardError::ClaimTooLarge { claimed, remaining } => write!(
                f,
                "a count or length of {claimed} exceeds what the remaining {remaining} bytes can hold"
            ),
            GuardError::Malformed(what) => write!(f, "malformed: {what}"),
            GuardError::Unsupported(what) => write!(f, "not supported: {what}"),
        }
    }
}

impl std::error::Error for GuardError {}

type Result<T> = core::result::Result<T, GuardError>;

// The block and content numbers of yrs's `block.rs` (the low 4 bits of an
// item's info byte) and the flag bits above them.
const BLOCK_GC: u8 = 0;
const BLOCK_SKIP: u8 = 10;
const HAS_ORIGIN: u8 = 0b1000_0000;
const HAS_RIGHT_ORIGIN: u8 = 0b0100_0000;
const HAS_PARENT_SUB: u8 = 0b0010_0000;
const CONTENT_DELETED: u8 = 1;
const CONTENT_JSON: u8 = 2;
const CONTENT_BINARY: u8 = 3;
const CONTENT_STRING: u8 = 4;
const CONTENT_EMBED: u8 = 5;
const CONTENT_FORMAT: u8 = 6;
const CONTENT_TYPE: u8 = 7;
const CONTENT_ANY: u8 = 8;
const CONTENT_DOC: u8 = 9;

// Type refs (yrs `types/mod.rs`).
const TYPE_XML_ELEMENT: u8 = 3;
const TYPE_WEAK: u8 = 7;

// Weak link flags (yrs `types/mod.rs`, feature `weak`).
const WEAK_QUOTE: u8 = 0b0000_0001;
const WEAK_START_UNBOUNDED: u8 = 0b0000_1000;
const WEAK_END_UNBOUNDED: u8 = 0b0001_0000;
const WEAK_PARENT_ROOT: u8 = 0b0010_0000;

// Smallest encodings, in bytes, of the entries a count announces: they turn
// a claimed count into the input it needs.
const MIN_CLIENT_SECTION: u64 = 3; // structs count, client, clock
const MIN_BLOCK: u64 = 1; // info byte
const MIN_DS_CLIENT: u64 = 2; // client, ranges count
const MIN_DS_RANGE: u64 = 2; // clock, length
const MIN_SV_ENTRY: u64 = 2; // client, clock
const MIN_ANY: u64 = 1; // tag
const MIN_MAP_ENTRY: u64 = 2; // key length, value tag

/// Checks that `bytes` is one Yjs update, v1 encoding, that yrs 0.28 can
/// decode without deep recursion or outsized reservations, and nothing more.
/// `max_depth` bounds every `Any` value and JSON string ([`MAX_DEPTH`] is the
/// protocol's limit).
pub fn check_update_v1(bytes: &[u8], max_depth: usize) -> core::result::Result<(), GuardError> {
    walk_update_v1(bytes, max_depth, |_| {})
}

/// An item id as the v1 encoding writes it: (client, clock).
pub type RawId = (u64, u32);

/// The parent an item names when it has no origins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawParent<'a> {
    /// A root type, by name.
    Root(&'a str),
    /// A nested type, by the id of the item that holds it.
    Item(RawId),
}

/// One struct of an update, as [`structs_v1`] reads it: where it sits in
/// the document, without its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawStruct<'a> {
    /// The client whose clock it occupies.
    pub client: u64,
    /// Its first clock.
    pub clock: u32,
    /// How many clocks it occupies (never 0: yrs drops empty items).
    pub len: u32,
    /// `None` for a GC or skip block.
    pub item: Option<RawItem<'a>>,
}

/// An item's neighbours at insertion and its parent (see [`RawStruct`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawItem<'a> {
    /// The left origin.
    pub origin: Option<RawId>,
    /// The right origin.
    pub right_origin: Option<RawId>,
    /// The parent, written only when the item has neither origin.
    pub parent: Option<RawParent<'a>>,
    /// The map key, written only with a parent.
    pub parent_sub: Option<&'a str>,
}

/// The structs of one Yjs update (v1), checked as [`check_update_v1`]
/// checks them, in the order they are encoded (clients highest first, each
/// client's clocks ascending and contiguous).
pub fn structs_v1(
    bytes: &[u8],
    max_depth: usize,
) -> core::result::Result<Vec<RawStruct<'_>>, GuardError> {
    let mut out = Vec::new();
    walk_update_v1(bytes, max_depth, |s| out.push(s))?;
    Ok(out)
}

fn walk_update_v1<'a>(
    bytes: &'a [u8],
    max_depth: usize,
    mut visit: impl FnMut(RawStruct<'a>),
) -> core::result::Result<(), GuardError> {
    let mut r = Reader::new(bytes);
    let clients = r.count_u32(MIN_CLIENT_SECTION)?;
    let mut previous: Option<u64> = None;
    for _ in 0..clients {
        let blocks = r.count_u32(MIN_BLOCK)?;
        let client = r.client()?;
        // Every Yjs and yrs encoder writes each client once, highest first.
        // yrs appends a repeated client's blocks to the first section's,
        // out of clock order, and its own merge of them overflows a clock.
        if previous.is_some_and(|p| client >= p) {
            return Err(GuardError::Malformed(
                "client sections not in strictly descending client order",
            ));
        }
        previous = Some(client);
        let mut clock = r.var_u32()?;
        for _ in 0..blocks {
            let (len, item) = block(&mut r, max_depth)?;
            if len > 0 {
                visit(RawStruct {
                    client,
                    clock,
                    len,
                    item,
                });
            }
            // yrs adds each block's length to the clock in u32 arithmetic.
            clock = clock
                .checked_add(len)
                .ok_or(GuardError::Malformed("a client's clock overflows u32"))?;
        }
    }
    delete_set(&mut r)?;
    r.finish()
}

/// Checks that `bytes` is one Yjs state vector, v1 encoding: a count that
/// the input can hold, then (client, clock) pairs, and nothing more.
pub fn check_state_vector_v1(bytes: &[u8]) -> core::result::Result<(), GuardError> {
    let mut r = Reader::new(bytes);
    let entries = r.count_u32(MIN_SV_ENTRY)?;
    for _ in 0..entries {
        r.client()?;
        r.var_u32()?;
    }
    r.finish()
}

/// Checks that `text` nests `[` and `{` at most `max_depth` levels deep
/// (outside strings, escapes honoured). It does not check that `text` is
/// JSON: the parser does that, and this keeps the parser's recursion bounded
/// whatever its own limit is. For awareness / presence states and the JSON
/// inside Yjs content.
pub fn check_json_depth(text: &str, max_depth: usize) -> core::result::Result<(), GuardError> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in text.as_bytes() {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max_depth {
                    return Err(GuardError::TooDeep {
                        depth,
                        max: max_depth,
                    });
                }
            }
            // Unbalanced closers are the parser's to refuse.
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// One struct (`Update::decode_block`): the length yrs adds to the
/// client's clock (0 for an item yrs drops because its content is empty),
/// and the item's place (`None` for a GC or skip block).
fn block<'a>(r: &mut Reader<'a>, max_depth: usize) -> Result<(u32, Option<RawItem<'a>>)> {
    let info = r.u8()?;
    match info {
        BLOCK_SKIP | BLOCK_GC => {
            let len = r.var_u32()?;
            if len == 0 {
                return Err(GuardError::Malformed("a GC or skip block of length 0"));
            }
            Ok((len, None))
        }
        _ => {
            let has_origin = info & HAS_ORIGIN != 0;
            let has_right = info & HAS_RIGHT_ORIGIN != 0;
            let mut item = RawItem {
                origin: None,
                right_origin: None,
                parent: None,
                parent_sub: None,
            };
            if has_origin {
                item.origin = Some(r.id()?);
            }
            if has_right {
                item.right_origin = Some(r.id()?);
            }
            // Without origins the item names its parent (and maybe a key).
            if !has_origin && !has_right {
                item.parent = Some(if r.var_u32()? == 1 {
                    RawParent::Root(r.string()?)
                } else {
                    RawParent::Item(r.id()?)
                });
                if info & HAS_PARENT_SUB != 0 {
                    item.parent_sub = Some(r.string()?);
                }
            }
            Ok((content(r, info & 0b1111, max_depth)?, Some(item)))
        }
    }
}

/// An item's content (`ItemContent::decode`): returns its length as yrs
/// counts it (`len_utf16`).
fn content(r: &mut Reader<'_>, kind: u8, max_depth: usize) -> Result<u32> {
    match kind {
        CONTENT_DELETED => r.var_u32(),
        // Legacy JSON content (Yjs before v13 wrote it; no current encoder
        // does). yrs 0.28 reads `len + 1` strings where it writes `len`, so
        // it cannot re-read its own encoding of such an item: accepting one
        // would poison every later snapshot of the document. Yjs itself
        // reads `len`, so yrs also misreads what Yjs wrote. Refused.
        CONTENT_JSON => Err(GuardError::Malformed(
            "legacy JSON content (yrs 0.28 cannot round-trip it)",
        )),
        CONTENT_BINARY => {
            r.bytes()?;
            Ok(1)
        }
        CONTENT_STRING => {
            let s = r.string()?;
            // Bounded by the input length, which is far below 2^32 units.
            let units: usize = s.chars().map(char::len_utf16).sum();
            u32::try_from(units).map_err(|_| GuardError::Malformed("a string too long"))
        }
        CONTENT_EMBED => {
            check_json_depth(r.string()?, max_depth)?;
            Ok(1)
        }
        CONTENT_FORMAT => {
            r.string()?; // key
            check_json_depth(r.string()?, max_depth)?;
            Ok(1)
        }
        CONTENT_TYPE => {
            type_ref(r)?;
            Ok(1)
        }
        CONTENT_ANY => {
            let len = r.count_u32(MIN_ANY)?;
            for _ in 0..len {
                any(r, max_depth)?;
            }
            Ok(len)
        }
        // A subdocument. yrs 0.28's integration stores a reference to the
        // parent document in the item (`ItemContent::Doc(parent, _)`), a
        // cycle nothing breaks: the parent document, and all it holds, is
        // never freed (measured: every drop of a document holding one
        // leaks the whole store). The y-websocket protocol does not sync
        // subdocuments' contents anyway. Refused.
        CONTENT_DOC => Err(GuardError::Unsupported(
            "subdocuments (yrs 0.28 never frees a document that holds one)",
        )),
        _ => Err(GuardError::Malformed("unknown content kind")),
    }
}

/// A shared type's reference (`TypeRef::decode`).
fn type_ref(r: &mut Reader<'_>) -> Result<()> {
    match r.u8()? {
        0 | 1 | 2 | 4 | 5 | 6 | 9 | 15 => Ok(()),
        TYPE_XML_ELEMENT => r.string().map(drop), // the element's tag name
        // Only a yrs built with feature `weak` reads these; without it yrs
        // refuses the update, which is just as safe.
        TYPE_WEAK => weak_link(r),
        _ => Err(GuardError::Malformed("unknown type ref")),
    }
}

/// A weak link's source (`TypeRef::decode_weak_link`).
fn weak_link(r: &mut Reader<'_>) -> Result<()> {
    let flags = r.u8()?;
    let root = flags & WEAK_PARENT_ROOT != 0;
    let scope = |r: &mut Reader<'_>, unbounded: bool| {
        if unbounded && root {
            r.string().map(drop)
        } else {
            r.id().map(drop)
        }
    };
    scope(r, flags & WEAK_START_UNBOUNDED != 0)?;
    let end_unbounded = flags & WEAK_END_UNBOUNDED != 0;
    if end_unbounded || flags & WEAK_QUOTE != 0 {
        scope(r, end_unbounded)?;
    }
    Ok(())
}

/// The delete set (`IdSet::decode`): clients, each with clock ranges.
fn delete_set(r: &mut Reader<'_>) -> Result<()> {
    let clients = r.count_u32(MIN_DS_CLIENT)?;
    for _ in 0..clients {
        r.client()?;
        let ranges = r.count_u32(MIN_DS_RANGE)?;
        for _ in 0..ranges {
            let clock = r.var_u32()?;
            let len = r.var_u32()?;
            // yrs builds `clock..clock + len` in u32.
            clock
                .checked_add(len)
                .ok_or(GuardError::Malformed("a deleted range overflows u32"))?;
        }
    }
    Ok(())
}

/// One `Any` value (`Any::decode`), walked with an explicit stack: one
/// entry per open array or map (how many values it still holds, and whether
/// each is preceded by a key). The stack never exceeds `max_depth` entries.
fn any(r: &mut Reader<'_>, max_depth: usize) -> Result<()> {
    let mut open: Vec<(u64, bool)> = Vec::new();
    loop {
        match r.u8()? {
            120 | 121 | 126 | 127 => {}    // true, false, null, undefined
            125 => r.var_i64()?,           // integer
            124 => drop(r.take(4)?),       // float32
            122 | 123 => drop(r.take(8)?), // bigint, float64
            119 => drop(r.string()?),      // string
            116 => drop(r.bytes()?),       // buffer
            tag @ (117 | 118) => {
                let is_map = tag == 118;
                if open.len() >= max_depth {
                    return Err(GuardError::TooDeep {
                        depth: open.len() + 1,
                        max: max_depth,
                    });
                }
                // yrs reads the length as a usize (a u64 varint).
                let len = r.var_u64()?;
                r.claim(len, if is_map { MIN_MAP_ENTRY } else { MIN_ANY })?;
                open.push((len, is_map));
            }
            _ => return Err(GuardError::Malformed("unknown Any tag")),
        }
        // Close finished containers; stop when the outermost is done, or
        // move to the next value (after its key, in a map).
        loop {
            let Some((left, is_map)) = open.last_mut() else {
                return Ok(());
            };
            if *left == 0 {
                open.pop();
                continue;
            }
            *left -= 1;
            if *is_map {
                r.string()?;
            }
            break;
        }
    }
}

/// A cursor over the input with lib0's primitive reads, as yrs's
/// `encoding::read` implements them, made strict where yrs would overflow.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn finish(&self) -> Result<()> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(GuardError::Malformed("trailing bytes after the end"))
        }
    }

    fn u8(&mut self) -> Result<u8> {
        let b = *self.buf.get(self.pos).ok_or(GuardError::Truncated)?;
        self.pos += 1;
        Ok(b)
    }

    /// `n` bytes, refused before anything is read if the input is shorter.
    fn take(&mut self, n: u64) -> Result<&'a [u8]> {
        self.claim(n, 1)?;
        let start = self.pos;
        // `claim` proved `n <= remaining`, so this fits in usize.
        self.pos += n as usize;
        Ok(&self.buf[start..self.pos])
    }

    /// Refuses `count` entries of at least `min_size` bytes each if the
    /// remaining input cannot hold them.
    fn claim(&self, count: u64, min_size: u64) -> Result<()> {
        let remaining = self.remaining();
        if count.saturating_mul(min_size) > remaining as u64 {
            return Err(GuardError::ClaimTooLarge {
                claimed: count,
                remaining,
            });
        }
        Ok(())
    }

    /// A count read as yrs reads it (a u32 varint), checked against the input.
    fn count_u32(&mut self, min_size: u64) -> Result<u32> {
        let n = self.var_u32()?;
        self.claim(n.into(), min_size)?;
        Ok(n)
    }

    /// An unsigned varint: 7 bits a byte, low first. yrs accepts up to 11
    /// bytes and wraps; here the value must fit in 64 bits (10 bytes).
    fn var_u64(&mut self) -> Result<u64> {
        let mut value: u64 = 0;
        let mut shift = 0u32;
        loop {
            let b = self.u8()?;
            let bits = u64::from(b & 0x7f);
            if shift == 63 && bits > 1 {
                return Err(GuardError::Malformed("a varint overflows 64 bits"));
            }
            value |= bits << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
            shift += 7;
            if shift > 63 {
                return Err(GuardError::Malformed("a varint overflows 64 bits"));
            }
        }
    }

    /// An unsigned varint yrs reads into a u32: it must fit (yrs would
    /// silently wrap it).
    fn var_u32(&mut self) -> Result<u32> {
        u32::try_from(self.var_u64()?)
            .map_err(|_| GuardError::Malformed("a varint overflows 32 bits"))
    }

    /// lib0's signed varint (6 bits and a sign in the first byte, then 7
    /// bits a byte). yrs shifts an i64 without overflow checks and negates
    /// it; here the magnitude must stay below 2^63 (10 bytes at most).
    fn var_i64(&mut self) -> Result<()> {
        let first = self.u8()?;
        let mut magnitude = u128::from(first & 0x3f);
        let mut more = first & 0x80 != 0;
        let mut shift = 6u32;
        while more {
            if shift > 62 {
                return Err(GuardError::Malformed("a signed varint overflows 64 bits"));
            }
            let b = self.u8()?;
            magnitude |= u128::from(b & 0x7f) << shift;
            more = b & 0x80 != 0;
            shift += 7;
        }
        if magnitude > i64::MAX as u128 {
            return Err(GuardError::Malformed("a signed varint overflows 64 bits"));
        }
        Ok(())
    }

    /// A client id: yrs (`ClientID::new`) keeps 53 bits, asserts the rest
    /// is zero in a debug build and ORs it away in release (two ids would
    /// become one).
    fn client(&mut self) -> Result<u64> {
        let id = self.var_u64()?;
        if id >> 53 != 0 {
            return Err(GuardError::Malformed("a client id of 2^53 or more"));
        }
        Ok(id)
    }

    /// An item id: client (53 bits), clock (u32).
    fn id(&mut self) -> Result<RawId> {
        Ok((self.client()?, self.var_u32()?))
    }

    /// A length-prefixed byte string (the length is a u32 varint).
    fn bytes(&mut self) -> Result<&'a [u8]> {
        let len = self.var_u32()?;
        self.take(len.into())
    }

    /// A length-prefixed UTF-8 string, as yrs requires it.
    fn string(&mut self) -> Result<&'a str> {
        core::str::from_utf8(self.bytes()?).map_err(|_| GuardError::Malformed("invalid UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;
    use std::vec;

    /// An update of one client with one Any item holding `value`.
    fn any_update(value: &[u8]) -> Vec<u8> {
        // 1 client, 1 struct, client 1, clock 0; info = Any content, no
        // origins: parent is the root named "a"; 1 value.
        let mut out = vec![1, 1, 1, 0, CONTENT_ANY, 1, 1, b'a', 1];
        out.extend_from_slice(value);
        out.push(0); // empty delete set
        out
    }

    fn nested_arrays(depth: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(depth * 2 + 1);
        for _ in 0..depth {
            v.extend_from_slice(&[117, 1]);
        }
        v.push(126);
        v
    }

    #[test]
    fn empty_update_and_state_vector_pass() {
        assert_eq!(check_update_v1(&[0, 0], MAX_DEPTH), Ok(()));
        assert_eq!(check_state_vector_v1(&[0]), Ok(()));
        assert_eq!(check_state_vector_v1(&[2, 1, 5, 0x80, 0x01, 0]), Ok(()));
    }

    #[test]
    fn empty_input_is_truncated() {
        assert_eq!(check_update_v1(&[], MAX_DEPTH), Err(GuardError::Truncated));
        assert_eq!(check_update_v1(&[0], MAX_DEPTH), Err(GuardError::Truncated));
        assert_eq!(check_state_vector_v1(&[]), Err(GuardError::Truncated));
    }

    #[test]
    fn trailing_bytes_are_refused() {
        assert!(matches!(
            check_update_v1(&[0, 0, 0], MAX_DEPTH),
            Err(GuardError::Malformed(_))
        ));
        assert!(matches!(
            check_state_vector_v1(&[0, 0]),
            Err(GuardError::Malformed(_))
        ));
    }

    #[test]
    fn depth_limit_is_exact() {
        assert_eq!(check_update_v1(&any_update(&nested_arrays(10)), 10), Ok(()));
        assert_eq!(
            check_update_v1(&any_update(&nested_arrays(11)), 10),
            Err(GuardError::TooDeep { depth: 11, max: 10 })
        );
        // Maps count like arrays: {"k": {"k": null}} is two levels.
        let maps = [118, 1, 1, b'k', 118, 1, 1, b'k', 126];
        assert_eq!(check_update_v1(&any_update(&maps), 2), Ok(()));
        assert!(matches!(
            check_update_v1(&any_update(&maps), 1),
            Err(GuardError::TooDeep { depth: 2, max: 1 })
        ));
    }

    #[test]
    fn siblings_do_not_add_depth() {
        // [[null], [null], {"k": null}] is depth 2.
        let v = [117, 3, 117, 1, 126, 117, 1, 126, 118, 1, 1, b'k', 126];
        assert_eq!(check_update_v1(&any_update(&v), 2), Ok(()));
        assert!(check_update_v1(&any_update(&v), 1).is_err());
    }

    #[test]
    fn huge_claims_are_refused_before_reading() {
        let four_g = [0xff, 0xff, 0xff, 0xff, 0x0f]; // 2^32 - 1
        let mut clients = four_g.to_vec();
        clients.push(0);
        assert!(matches!(
            check_update_v1(&clients, MAX_DEPTH),
            Err(GuardError::ClaimTooLarge {
                claimed: 0xffff_ffff,
                ..
            })
        ));
        // An Any array claiming 2^40 elements.
        let arr = [117, 0x80, 0x80, 0x80, 0x80, 0x80, 0x20];
        assert!(matches!(
            check_update_v1(&any_update(&arr), MAX_DEPTH),
            Err(GuardError::ClaimTooLarge {
                claimed: 0x100_0000_0000,
                ..
            })
        ));
        // A state vector claiming 2^32 - 1 entries.
        assert!(matches!(
            check_state_vector_v1(&four_g),
            Err(GuardError::ClaimTooLarge { .. })
        ));
    }

    #[test]
    fn varint_overflow_is_refused() {
        // A count above u32.
        let mut b = vec![0x80, 0x80, 0x80, 0x80, 0x10];
        b.push(0);
        assert!(matches!(
            check_update_v1(&b, MAX_DEPTH),
            Err(GuardError::Malformed(_))
        ));
        // An 11-byte varint.
        let mut sv = vec![1];
        sv.extend_from_slice(&[0x80; 10]);
        sv.extend_from_slice(&[0x01, 0]);
        assert!(check_state_vector_v1(&sv).is_err());
        // u64::MAX is a u64, but not a client id (53 bits).
        let mut sv = vec![1];
        sv.extend_from_slice(&[0xff; 9]);
        sv.extend_from_slice(&[0x01, 0]);
        assert_eq!(
            check_state_vector_v1(&sv),
            Err(GuardError::Malformed("a client id of 2^53 or more"))
        );
        // 2^53 - 1 is the largest: 7 * 7 = 49 bits, then 4 more.
        let mut sv = vec![1];
        sv.extend_from_slice(&[0xff; 7]);
        sv.extend_from_slice(&[0x0f, 0]);
        assert_eq!(check_state_vector_v1(&sv), Ok(()));
        let mut sv = vec![1];
        sv.extend_from_slice(&[0x80; 7]);
        sv.extend_from_slice(&[0x10, 0]);
        assert!(check_state_vector_v1(&sv).is_err());
    }

    #[test]
    fn signed_varints_stay_in_i64() {
        let int = |bytes: &[u8]| {
            let mut v = vec![125];
            v.extend_from_slice(bytes);
            check_update_v1(&any_update(&v), MAX_DEPTH)
        };
        assert_eq!(int(&[0x2a]), Ok(()));
        assert_eq!(int(&[0x6a]), Ok(())); // -42
        // i64::MAX: 6 + 8 * 7 = 62 bits, then 1 bit more.
        let mut max = vec![0xbf];
        max.extend_from_slice(&[0xff; 8]);
        max.push(0x01);
        assert_eq!(int(&max), Ok(()));
        // 2^63 overflows.
        let mut over = vec![0x80];
        over.extend_from_slice(&[0x80; 8]);
        over.push(0x02);
        assert!(int(&over).is_err());
        // An 11th byte is never read.
        let mut long = vec![0x80];
        long.extend_from_slice(&[0x80; 9]);
        long.push(0x00);
        assert!(int(&long).is_err());
    }

    #[test]
    fn clock_overflow_is_refused() {
        // Client 1 at clock 2^32 - 1, one GC block of length 2.
        let b = [1, 1, 1, 0xff, 0xff, 0xff, 0xff, 0x0f, BLOCK_GC, 2, 0];
        assert!(matches!(
            check_update_v1(&b, MAX_DEPTH),
            Err(GuardError::Malformed(_))
        ));
        let ok = [1, 1, 1, 0xfe, 0xff, 0xff, 0xff, 0x0f, BLOCK_GC, 1, 0];
        assert_eq!(check_update_v1(&ok, MAX_DEPTH), Ok(()));
        // A deleted range ending past 2^32.
        let ds = [0, 1, 1, 1, 0xff, 0xff, 0xff, 0xff, 0x0f, 1];
        assert!(check_update_v1(&ds, MAX_DEPTH).is_err());
    }

    #[test]
    fn empty_blocks_and_unknown_kinds_are_refused() {
        assert!(check_update_v1(&[1, 1, 1, 0, BLOCK_GC, 0, 0], MAX_DEPTH).is_err());
        assert!(check_update_v1(&[1, 1, 1, 0, BLOCK_SKIP, 0, 0], MAX_DEPTH).is_err());
        // Content kind 11 under a named root.
        assert!(check_update_v1(&[1, 1, 1, 0, 11, 1, 1, b'a', 0], MAX_DEPTH).is_err());
        // Unknown type ref 8.
        let b = [1, 1, 1, 0, CONTENT_TYPE, 1, 1, b'a', 8, 0];
        assert_eq!(
            check_update_v1(&b, MAX_DEPTH),
            Err(GuardError::Malformed("unknown type ref"))
        );
        // Unknown Any tag.
        assert!(check_update_v1(&any_update(&[115]), MAX_DEPTH).is_err());
    }

    #[test]
    fn legacy_json_content_is_refused() {
        let b = [1, 1, 1, 0, CONTENT_JSON, 1, 1, b'a', 0, 1, b'1', 0];
        assert!(matches!(
            check_update_v1(&b, MAX_DEPTH),
            Err(GuardError::Malformed(_))
        ));
    }

    #[test]
    fn subdocuments_are_refused() {
        use yrs::{Doc, Map, Transact, WriteTxn};
        let doc = Doc::with_client_id(1);
        let mut txn = doc.transact_mut();
        let map = txn.get_or_insert_map("m");
        map.insert(&mut txn, "sub", Doc::new());
        let update = txn.encode_update_v1();
        assert!(matches!(
            check_update_v1(&update, MAX_DEPTH),
            Err(GuardError::Unsupported(_))
        ));
    }

    #[test]
    fn json_depth_scan() {
        assert_eq!(check_json_depth(r#"{"a":[1,{"b":[]}]}"#, 4), Ok(()));
        assert_eq!(
            check_json_depth(r#"{"a":[1,{"b":[]}]}"#, 3),
            Err(GuardError::TooDeep { depth: 4, max: 3 })
        );
        // Brackets inside strings, escaped quotes and backslashes.
        assert_eq!(check_json_depth(r#"["[[[[", "\"[[[", "\\"]"#, 1), Ok(()));
        assert!(check_json_depth(r#"["\\", [[]]]"#, 2).is_err());
        let deep = "[".repeat(1_000_000);
        assert!(matches!(
            check_json_depth(&deep, MAX_DEPTH),
            Err(GuardError::TooDeep { depth: 129, .. })
        ));
    }

    #[test]
    fn errors_display() {
        let e = GuardError::TooDeep {
            depth: 129,
            max: 128,
        };
        assert_eq!(
            e.to_string(),
            "a value nests 129 levels deep (at most 128 allowed)"
        );
        assert!(GuardError::Truncated.to_string().contains("ends"));
    }
}
