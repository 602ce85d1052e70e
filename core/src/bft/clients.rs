//! The exactly-once table: which client requests have executed, and the
//! replies to resend when a client retries.
//!
//! A client may have up to [`CLIENT_WINDOW`] requests outstanding, so a
//! replica remembers, per client, the highest executed timestamp and a
//! bitmap of the 64 below it. The table is part of every checkpoint (it is
//! replicated state: all correct replicas agree on it at each sequence
//! number) and travels with state transfer.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use super::ClientId;

/// Most requests one client may have outstanding.
pub const CLIENT_WINDOW: u64 = 64;

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
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    /// Highest executed timestamp (0: none).
    high: u64,
    /// Bit i set: `high - i` executed.
    seen: u64,
    /// Replies for executed timestamps within the window.
    replies: BTreeMap<u64, Vec<u8>>,
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
        let Some(e) = self.entries.get(&client) else {
            return Standing::Fresh;
        };
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

    /// Marks (`client`, `ts`) executed. False (and no change) unless fresh.
    pub fn mark(&mut self, client: ClientId, ts: u64) -> bool {
        if ts == 0 || self.standing(client, ts) != Standing::Fresh {
            return false;
        }
        let e = self.entries.entry(client).or_default();
        if ts > e.high {
            let shift = ts - e.high;
            e.seen = if shift >= 64 { 0 } else { e.seen << shift };
            e.high = ts;
            // Prune out-of-window replies in bulk, not on every request
            // (deterministic either way: it depends only on the marks).
            if e.replies.len() as u64 >= 2 * CLIENT_WINDOW {
                let floor = ts.saturating_sub(CLIENT_WINDOW - 1);
                e.replies = e.replies.split_off(&floor);
            }
        }
        e.seen |= 1 << (e.high - ts);
        true
    }

    /// Caches the reply to (`client`, `ts`) if it is within the window.
    pub fn set_reply(&mut self, client: ClientId, ts: u64, result: Vec<u8>) {
        if self.standing(client, ts) == Standing::Executed
            && let Some(e) = self.entries.get_mut(&client)
        {
            e.replies.insert(ts, result);
        }
    }

    /// The cached reply to (`client`, `ts`), if it is within the window.
    pub fn reply(&self, client: ClientId, ts: u64) -> Option<&[u8]> {
        if self.standing(client, ts) != Standing::Executed {
            return None;
        }
        self.entries
            .get(&client)?
            .replies
            .get(&ts)
            .map(Vec::as_slice)
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
        t.set_reply(1, 70, alloc::vec![1]);
        assert_eq!(t.reply(1, 70), Some(&[1u8][..]));
        assert!(t.mark(1, 200));
        assert_eq!(t.reply(1, 70), None);
        for ts in 201..400 {
            assert!(t.mark(1, ts));
            t.set_reply(1, ts, alloc::vec![2]);
        }
        // Bounded: at most two windows of replies are ever held.
        assert!(t.entries[&1].replies.len() as u64 <= 2 * CLIENT_WINDOW);
    }
}
