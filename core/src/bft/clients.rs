//! The exactly-once table: which client requests have executed, and the
//! replies to resend when a client retries.
//!
//! A client may have up to [`CLIENT_WINDOW`] requests outstanding, so a
//! replica remembers, per client, the highest executed timestamp and a
//! bitmap of the 64 below it, and the replies of the executed requests in
//! that window (a ring of [`CLIENT_WINDOW`] slots: recording a reply costs
//! no search and, for results of up to 16 bytes, no allocation). The table
//! is part of every checkpoint (it is replicated state: all correct
//! replicas agree on it at each sequence number) and travels with state
//! transfer; its encoding is canonical (equal tables, equal bytes).

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::{SerializeSeq, SerializeTuple};
use serde::{Deserialize, Serialize, Serializer};
use smallvec::SmallVec;

use super::ClientId;

/// Most requests one client may have outstanding.
pub const CLIENT_WINDOW: u64 = 64;

/// A cached result (inline up to 16 bytes).
type Cached = SmallVec<[u8; 16]>;

/// Where a request stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    /// Not executed yet.
    Fresh,
    /// Already executed.
    Executed,
    /// Older than the window: executed or abandoned; never executes.
    TooOld,
}

/// One client's record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Entry {
    /// Highest executed timestamp (0: none).
    high: u64,
    /// Bit i set: `high - i` executed.
    seen: u64,
    /// Empty, or one slot per timestamp of the window: slot `ts % 64`
    /// holds the reply to `ts` if `ts` is in the window, executed, and its
    /// reply was recorded. Slots that leave the window are cleared, so the
    /// representation is canonical.
    replies: Vec<Option<(u64, Cached)>>,
}

impl Entry {
    fn slot(ts: u64) -> usize {
        (ts % CLIENT_WINDOW) as usize
    }

    /// The cached replies in the window, oldest first.
    fn replies_in_order(&self) -> impl Iterator<Item = (u64, &[u8])> {
        let low = self.high.saturating_sub(CLIENT_WINDOW - 1).max(1);
        (low..=self.high).filter_map(move |t| match self.replies.get(Self::slot(t)) {
            Some(Some((ts, r))) if *ts == t => Some((t, r.as_slice())),
            _ => None,
        })
    }
}

/// Per client: executed timestamps and cached replies.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientTable {
    entries: BTreeMap<ClientId, Entry>,
}

impl ClientTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Where request (`client`, `ts`) stands.
    pub fn standing(&self, client: ClientId, ts: u64) -> Standing {
        match self.entries.get(&client) {
            Some(e) => standing_in(e, ts),
            None => Standing::Fresh,
        }
    }

    /// Marks (`client`, `ts`) executed. False (and no change) unless fresh.
    pub fn mark(&mut self, client: ClientId, ts: u64) -> bool {
        if ts == 0 {
            return false;
        }
        let e = self.entries.entry(client).or_default();
        if standing_in(e, ts) != Standing::Fresh {
            return false;
        }
        if ts > e.high {
            let shift = ts - e.high;
            // Replies of the timestamps that leave the window go.
            if !e.replies.is_empty() {
                if shift >= CLIENT_WINDOW {
                    e.replies.iter_mut().for_each(|s| *s = None);
                } else {
                    for t in e.high + 1..=ts {
                        e.replies[Entry::slot(t)] = None;
                    }
                }
            }
            e.seen = if shift >= 64 { 0 } else { e.seen << shift };
            e.high = ts;
        }
        e.seen |= 1 << (e.high - ts);
        true
    }

    /// Caches the reply to (`client`, `ts`) if it is within the window.
    pub fn set_reply(&mut self, client: ClientId, ts: u64, result: &[u8]) {
        if let Some(e) = self.entries.get_mut(&client)
            && standing_in(e, ts) == Standing::Executed
        {
            if e.replies.is_empty() {
                e.replies.resize(CLIENT_WINDOW as usize, None);
            }
            e.replies[Entry::slot(ts)] = Some((ts, Cached::from_slice(result)));
        }
    }

    /// The cached reply to (`client`, `ts`), if it is within the window.
    pub fn reply(&self, client: ClientId, ts: u64) -> Option<&[u8]> {
        let e = self.entries.get(&client)?;
        if standing_in(e, ts) != Standing::Executed {
            return None;
        }
        match e.replies.get(Entry::slot(ts))? {
            Some((t, r)) if *t == ts => Some(r.as_slice()),
            _ => None,
        }
    }

    /// Number of clients with a record.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if no client has executed anything.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn standing_in(e: &Entry, ts: u64) -> Standing {
    if ts > e.high {
        Standing::Fresh
    } else if e.high - ts >= CLIENT_WINDOW {
        Standing::TooOld
    } else if e.seen & (1 << (e.high - ts)) != 0 {
        Standing::Executed
    } else {
        Standing::Fresh
    }
}

// The encoding of an entry: (high, seen, [(ts, reply)] oldest first), the
// replies as byte strings. Decoding refuses anything `mark` and
// `set_reply` could not have produced, so only canonical bytes decode.

/// The replies of an entry, encoded from the ring.
struct RepliesOut<'a>(&'a Entry);

impl Serialize for RepliesOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let n = self.0.replies_in_order().count();
        let mut seq = s.serialize_seq(Some(n))?;
        for (ts, r) in self.0.replies_in_order() {
            seq.serialize_element(&(ts, ReplyBytes(r)))?;
        }
        seq.end()
    }
}

struct ReplyBytes<'a>(&'a [u8]);

impl Serialize for ReplyBytes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

impl Serialize for Entry {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(3)?;
        t.serialize_element(&self.high)?;
        t.serialize_element(&self.seen)?;
        t.serialize_element(&RepliesOut(self))?;
        t.end()
    }
}

/// A reply read back: a byte string.
struct ReplyIn(Cached);

impl<'de> Deserialize<'de> for ReplyIn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ReplyIn;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<ReplyIn, E> {
                Ok(ReplyIn(Cached::from_slice(v)))
            }
        }
        d.deserialize_bytes(V)
    }
}

impl<'de> Deserialize<'de> for Entry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Entry;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a client entry")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Entry, A::Error> {
                let missing = || de::Error::custom("client entry too short");
                let high: u64 = seq.next_element()?.ok_or_else(missing)?;
                let seen: u64 = seq.next_element()?.ok_or_else(missing)?;
                let list: Vec<(u64, ReplyIn)> = seq.next_element()?.ok_or_else(missing)?;
                let mut e = Entry {
                    high,
                    seen,
                    replies: Vec::new(),
                };
                // As `mark` leaves it: bit 0 is `high` itself.
                if (high == 0) != (seen == 0) || (high != 0 && seen & 1 == 0) {
                    return Err(de::Error::custom("client entry not canonical"));
                }
                let mut last = 0;
                for (ts, ReplyIn(r)) in list {
                    if ts <= last || standing_in(&e, ts) != Standing::Executed {
                        return Err(de::Error::custom("cached reply not canonical"));
                    }
                    last = ts;
                    if e.replies.is_empty() {
                        e.replies.resize(CLIENT_WINDOW as usize, None);
                    }
                    e.replies[Entry::slot(ts)] = Some((ts, r));
                }
                Ok(e)
            }
        }
        d.deserialize_tuple(3, V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_semantics() {
        let mut t = ClientTable::new();
        assert!(t.mark(1, 5));
        assert!(!t.mark(1, 5));
        assert!(t.mark(1, 3));
        assert_eq!(t.standing(1, 4), Standing::Fresh);
        assert!(t.mark(1, 70));
        assert_eq!(t.standing(1, 5), Standing::TooOld);
        assert_eq!(t.standing(1, 7), Standing::Fresh);
        assert_eq!(t.standing(1, 70), Standing::Executed);
        t.set_reply(1, 70, &[1]);
        assert_eq!(t.reply(1, 70), Some(&[1u8][..]));
        assert!(t.mark(1, 200));
        assert_eq!(t.reply(1, 70), None);
        for ts in 201..400 {
            assert!(t.mark(1, ts));
            t.set_reply(1, ts, &[2]);
        }
        // Bounded: one window of replies is held.
        assert!(t.entries[&1].replies.len() as u64 <= CLIENT_WINDOW);
        assert_eq!(
            t.entries[&1].replies_in_order().count() as u64,
            CLIENT_WINDOW
        );
        // The encoding round-trips and is canonical.
        let bytes = crate::codec::encode(&t).unwrap();
        let back: ClientTable = crate::codec::decode(&bytes).unwrap();
        assert_eq!(back, t);
        assert_eq!(crate::codec::encode(&back).unwrap(), bytes);
    }

    #[test]
    fn only_canonical_tables_decode() {
        let mut t = ClientTable::new();
        assert!(t.mark(5, 3));
        assert!(t.mark(5, 1));
        t.set_reply(5, 3, &[7; 20]);
        t.set_reply(5, 1, &[8]);
        // A reply for a timestamp that did not execute is not recorded.
        t.set_reply(5, 2, &[9]);
        assert_eq!(t.reply(5, 2), None);
        let bytes = crate::codec::encode(&t).unwrap();
        assert_eq!(crate::codec::decode::<ClientTable>(&bytes).unwrap(), t);
        // Replies out of order, or for timestamps not executed, refused.
        type RawEntry = (u64, u64, Vec<(u64, ReplyOwned)>);
        #[derive(Serialize)]
        struct Raw(BTreeMap<u64, RawEntry>);
        #[derive(Serialize)]
        struct ReplyOwned(#[serde(with = "crate::bft::wire::bytes")] Vec<u8>);
        let raw = |list: Vec<(u64, ReplyOwned)>| {
            let mut m = BTreeMap::new();
            m.insert(5u64, (3u64, 0b101u64, list));
            crate::codec::encode(&Raw(m)).unwrap()
        };
        let ok = raw(alloc::vec![
            (1, ReplyOwned(alloc::vec![8])),
            (3, ReplyOwned(alloc::vec![7; 20]))
        ]);
        assert_eq!(ok, bytes);
        for bad in [
            raw(alloc::vec![
                (3, ReplyOwned(alloc::vec![7])),
                (1, ReplyOwned(alloc::vec![8]))
            ]),
            raw(alloc::vec![(2, ReplyOwned(alloc::vec![7]))]),
            raw(alloc::vec![
                (1, ReplyOwned(alloc::vec![7])),
                (1, ReplyOwned(alloc::vec![7]))
            ]),
        ] {
            assert!(crate::codec::decode::<ClientTable>(&bad).is_err());
        }
    }
}
