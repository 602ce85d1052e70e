//! A per-connection outbound queue, bounded in bytes and in age.
//!
//! A pure data structure: no IO, no clock (the time comes in as an
//! [`Instant`] argument), no async. The connection's writer task wraps it in
//! a mutex plus a notification and frames each popped item itself, so the
//! queue does not care which protocol a [`Outbound::YrsUpdate`] is sent in.
//!
//! When the backlog goes over the byte limit, the queued Yjs updates are
//! first merged into one (`yrs::merge_updates_v1`), which drops duplicated
//! content and per-update overhead: a reader that fell behind during a burst
//! of typing catches up with one compact update. Only if the backlog is still
//! too large, or its oldest item has waited longer than the age limit, does
//! [`OutboundQueue::push`] fail with [`SlowConsumer`]; the caller then closes
//! the connection with a code that makes the client reconnect and resync
//! (1013 or 4500–4599 for y-websocket). Nothing is ever dropped silently.
//!
//! # Ordering when merging
//!
//! All queued updates are merged into one item that takes the place of the
//! *earliest* queued update. So frames keep their order among themselves,
//! every frame that was queued before the first update still goes before
//! it, and update content only ever moves *earlier* than frames queued after
//! the first update, never later. Merging only consecutive runs would keep
//! the exact order, but y-websocket clients send an awareness message with
//! nearly every keystroke, so runs would rarely be longer than one and
//! merging would do nothing when it matters. Moving document content
//! earlier is safe: Yjs and yrs integrate updates in any order (an update
//! whose dependencies have not arrived waits in the document's pending set),
//! and awareness or acknowledgement frames do not depend on the document
//! content that follows them.

use std::collections::VecDeque;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Bytes;

/// An item waiting to be sent to one connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outbound {
    /// A raw Yjs update (lib0 v1 encoding); the writer frames it. Queued
    /// updates may be merged into one.
    YrsUpdate(SharedUpdate),
    /// An already-encoded frame, sent as it is; never merged or reordered
    /// relative to other frames. Reference-counted: a frame for many
    /// receivers (a presence broadcast) is one allocation.
    Frame(Bytes),
}

impl Outbound {
    /// The payload size in bytes, as counted against the queue's limit.
    pub fn byte_len(&self) -> usize {
        match self {
            Outbound::YrsUpdate(u) => u.len(),
            Outbound::Frame(b) => b.len(),
        }
    }
}

/// A Yjs update queued for many connections at once: one allocation shared
/// by every queue it is in, framed at most once per protocol (the first
/// writer to send it frames it; the others send the same bytes).
#[derive(Clone)]
pub struct SharedUpdate(Arc<SharedInner>);

struct SharedInner {
    update: Vec<u8>,
    framed: [OnceLock<Bytes>; 2],
}

impl SharedUpdate {
    /// Shares `update`.
    pub fn new(update: Vec<u8>) -> Self {
        SharedUpdate(Arc::new(SharedInner {
            update,
            framed: [OnceLock::new(), OnceLock::new()],
        }))
    }

    /// The update's bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.0.update
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.0.update.len()
    }

    /// The update framed for protocol `which` (0 or 1) by `frame`, computed
    /// by the first caller and shared with the others.
    pub fn framed(&self, which: usize, frame: impl FnOnce(&[u8]) -> Vec<u8>) -> Bytes {
        self.0.framed[which]
            .get_or_init(|| Bytes::from(frame(&self.0.update)))
            .clone()
    }
}

impl From<Vec<u8>> for SharedUpdate {
    fn from(update: Vec<u8>) -> Self {
        SharedUpdate::new(update)
    }
}

impl PartialEq for SharedUpdate {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for SharedUpdate {}

impl fmt::Debug for SharedUpdate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SharedUpdate")
            .field(&self.as_slice())
            .finish()
    }
}

/// The consumer is not keeping up: even after merging, its backlog is over
/// the byte limit, or its oldest item has waited longer than the age limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlowConsumer {
    /// Bytes queued after merging, including the item being pushed.
    pub queued_bytes: usize,
    /// How long the oldest queued item has waited.
    pub oldest_age: Duration,
}

impl fmt::Display for SlowConsumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "slow consumer: {} bytes queued, oldest waiting {:.1}s",
            self.queued_bytes,
            self.oldest_age.as_secs_f64()
        )
    }
}

impl std::error::Error for SlowConsumer {}

#[derive(Debug)]
struct Entry {
    item: Outbound,
    /// When the item was queued; for a merged update, the earliest of its
    /// parts, so merging never makes a backlog look younger than it is.
    since: Instant,
}

/// A FIFO of [`Outbound`] items bounded in bytes and in age.
#[derive(Debug)]
pub struct OutboundQueue {
    items: VecDeque<Entry>,
    bytes: usize,
    max_bytes: usize,
    max_age: Duration,
    merges: u64,
}

impl OutboundQueue {
    /// An empty queue allowing `max_bytes` of backlog whose oldest item is at
    /// most `max_age` old.
    pub fn new(max_bytes: usize, max_age: Duration) -> Self {
        OutboundQueue {
            items: VecDeque::new(),
            bytes: 0,
            max_bytes,
            max_age,
            merges: 0,
        }
    }

    /// Queues `item` at time `now`.
    ///
    /// An item pushed into an empty queue is always accepted whatever its
    /// size: the limit bounds the backlog, and an update larger than
    /// `max_bytes` must still reach a consumer that keeps up. Otherwise, if
    /// the backlog is over `max_bytes`, the queued updates are merged first;
    /// if it is still over, or the oldest item is older than `max_age`
    /// (merging cannot help with that), the result is [`SlowConsumer`]. On
    /// error the item stays queued; the caller is expected to close the
    /// connection and discard the queue.
    pub fn push(&mut self, item: Outbound, now: Instant) -> Result<(), SlowConsumer> {
        let was_empty = self.items.is_empty();
        self.bytes += item.byte_len();
        self.items.push_back(Entry { item, since: now });
        if was_empty {
            return Ok(());
        }
        if self.bytes > self.max_bytes {
            self.merge_updates();
        }
        let oldest_age = self.oldest_age(now).unwrap_or_default();
        if self.bytes > self.max_bytes || oldest_age > self.max_age {
            return Err(SlowConsumer {
                queued_bytes: self.bytes,
                oldest_age,
            });
        }
        Ok(())
    }

    /// Takes the next item to send.
    pub fn pop(&mut self) -> Option<Outbound> {
        let entry = self.items.pop_front()?;
        self.bytes -= entry.item.byte_len();
        Some(entry.item)
    }

    /// Number of queued items.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True if nothing is queued.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Total payload bytes queued.
    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// How many times queued updates were merged.
    #[cfg(test)]
    pub fn merges(&self) -> u64 {
        self.merges
    }

    /// How long the oldest queued item has waited at `now` (`None` if empty).
    pub fn oldest_age(&self, now: Instant) -> Option<Duration> {
        self.items
            .front()
            .map(|e| now.saturating_duration_since(e.since))
    }

    /// Merges every queued update into one, placed where the earliest one
    /// was (see the module docs for why). Leaves the queue untouched if
    /// there are fewer than two updates or yrs cannot merge them.
    fn merge_updates(&mut self) {
        let parts: Vec<&[u8]> = self
            .items
            .iter()
            .filter_map(|e| match &e.item {
                Outbound::YrsUpdate(u) => Some(u.as_slice()),
                Outbound::Frame(_) => None,
            })
            .collect();
        if parts.len() < 2 {
            return;
        }
        // The updates were validated before being queued, so a failure (or a
        // panic inside yrs) is unexpected; either way the connection's items
        // stay as they were rather than taking the room's task down. Nothing
        // has been mutated yet, so unwinding leaves the queue consistent.
        let Ok(Ok(merged)) = catch_unwind(AssertUnwindSafe(|| yrs::merge_updates_v1(&parts)))
        else {
            return;
        };

        let first = self
            .items
            .iter()
            .position(|e| matches!(e.item, Outbound::YrsUpdate(_)))
            .expect("at least two updates are queued");
        let since = self
            .items
            .iter()
            .filter(|e| matches!(e.item, Outbound::YrsUpdate(_)))
            .map(|e| e.since)
            .min()
            .expect("at least two updates are queued");
        let mut index = 0;
        self.items.retain(|e| {
            let keep = index == first || matches!(e.item, Outbound::Frame(_));
            index += 1;
            keep
        });
        // Retain keeps order, and nothing before `first` was removed.
        self.items[first] = Entry {
            item: Outbound::YrsUpdate(merged.into()),
            since,
        };
        self.bytes = self.items.iter().map(|e| e.item.byte_len()).sum();
        self.merges += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use yrs::updates::decoder::Decode;
    use yrs::{ClientID, Doc, GetString, Options, Text, Transact, Update};

    /// A sequence of real updates: two clients typing into the same text,
    /// one of them deleting, each keystroke its own transaction.
    fn typing_updates() -> Vec<Vec<u8>> {
        let alice = Doc::with_options(Options {
            client_id: ClientID::new(1),
            ..Options::default()
        });
        let bob = Doc::with_options(Options {
            client_id: ClientID::new(2),
            ..Options::default()
        });
        let mut out = Vec::new();
        for (i, c) in "hello world".chars().enumerate() {
            let text = alice.get_or_insert_text("t");
            let mut txn = alice.transact_mut();
            text.insert(&mut txn, i as u32, &c.to_string());
            let u = txn.encode_update_v1();
            drop(txn);
            apply(&bob, &u);
            out.push(u);
        }
        {
            let text = bob.get_or_insert_text("t");
            let mut txn = bob.transact_mut();
            text.remove_range(&mut txn, 0, 6);
            text.insert(&mut txn, 0, "bye ");
            out.push(txn.encode_update_v1());
        }
        out
    }

    fn apply(doc: &Doc, update: &[u8]) {
        let mut txn = doc.transact_mut();
        txn.apply_update(Update::decode_v1(update).unwrap())
            .unwrap();
    }

    fn text_of(updates: &[Vec<u8>]) -> String {
        let doc = Doc::new();
        let text = doc.get_or_insert_text("t");
        for u in updates {
            apply(&doc, u);
        }
        text.get_string(&doc.transact())
    }

    fn drain(q: &mut OutboundQueue) -> Vec<Outbound> {
        std::iter::from_fn(|| q.pop()).collect()
    }

    fn updates_in(items: &[Outbound]) -> Vec<Vec<u8>> {
        items
            .iter()
            .filter_map(|i| match i {
                Outbound::YrsUpdate(u) => Some(u.as_slice().to_vec()),
                Outbound::Frame(_) => None,
            })
            .collect()
    }

    fn frames_in(items: &[Outbound]) -> Vec<Vec<u8>> {
        items
            .iter()
            .filter_map(|i| match i {
                Outbound::Frame(f) => Some(f.to_vec()),
                Outbound::YrsUpdate(_) => None,
            })
            .collect()
    }

    #[test]
    fn a_shared_update_is_framed_once_per_protocol() {
        let u = SharedUpdate::new(vec![1, 2, 3]);
        let copy = u.clone();
        let calls = std::cell::Cell::new(0);
        let frame = |b: &[u8]| {
            calls.set(calls.get() + 1);
            [&[9][..], b].concat()
        };
        let a = u.framed(0, frame);
        let b = copy.framed(0, frame);
        assert_eq!(&a[..], &[9, 1, 2, 3]);
        assert_eq!(a.as_ptr(), b.as_ptr(), "one buffer for every connection");
        assert_eq!(calls.get(), 1);
        u.framed(1, frame);
        assert_eq!(calls.get(), 2);
        assert_eq!(u.len(), 3);
        assert_eq!(Outbound::YrsUpdate(u).byte_len(), 3);
    }

    #[test]
    fn fifo_below_limits() {
        let t0 = Instant::now();
        let mut q = OutboundQueue::new(1000, Duration::from_secs(10));
        assert!(q.is_empty());
        q.push(Outbound::Frame(Bytes::from(vec![1])), t0).unwrap();
        q.push(Outbound::YrsUpdate(vec![2, 2].into()), t0).unwrap();
        q.push(Outbound::Frame(Bytes::from(vec![3, 3, 3])), t0)
            .unwrap();
        assert_eq!((q.len(), q.bytes()), (3, 6));
        assert_eq!(q.pop(), Some(Outbound::Frame(Bytes::from(vec![1]))));
        assert_eq!(q.pop(), Some(Outbound::YrsUpdate(vec![2, 2].into())));
        assert_eq!(q.pop(), Some(Outbound::Frame(Bytes::from(vec![3, 3, 3]))));
        assert_eq!(q.pop(), None);
        assert_eq!((q.len(), q.bytes(), q.merges()), (0, 0, 0));
    }

    #[test]
    fn merging_under_pressure_preserves_the_document() {
        let updates = typing_updates();
        let total: usize = updates.iter().map(Vec::len).sum();
        let expected = text_of(&updates);
        assert_eq!(expected, "bye world");

        // Room for two thirds of the updates (130 bytes, 78 once merged):
        // pressure forces merges, and the merged backlog fits.
        let t0 = Instant::now();
        let mut q = OutboundQueue::new(total * 2 / 3, Duration::from_secs(10));
        for u in &updates {
            q.push(Outbound::YrsUpdate(u.clone().into()), t0).unwrap();
        }
        assert!(q.merges() >= 1);
        assert!(q.bytes() < total, "{} !< {total}", q.bytes());
        let items = drain(&mut q);
        assert!(items.len() < updates.len());
        assert!(frames_in(&items).is_empty());
        assert_eq!(text_of(&updates_in(&items)), expected);
    }

    #[test]
    fn merged_update_alone_rebuilds_the_text() {
        let updates = typing_updates();
        let t0 = Instant::now();
        // No pressure while pushing, then one explicit merge of everything.
        let mut q = OutboundQueue::new(usize::MAX, Duration::from_secs(10));
        for u in &updates {
            q.push(Outbound::YrsUpdate(u.clone().into()), t0).unwrap();
        }
        q.max_bytes = 1;
        q.merge_updates();
        assert_eq!(q.len(), 1);
        assert_eq!(q.merges(), 1);
        let merged = updates_in(&drain(&mut q));
        assert_eq!(text_of(&merged), text_of(&updates));
    }

    #[test]
    fn duplicate_updates_shrink_when_merged() {
        let updates = typing_updates();
        let once: usize = updates.iter().map(Vec::len).sum();
        let t0 = Instant::now();
        let mut q = OutboundQueue::new(once, Duration::from_secs(10));
        // The same content twice (as after a client's resend) is over the
        // limit until merging removes the duplicates.
        for u in updates.iter().chain(&updates) {
            q.push(Outbound::YrsUpdate(u.clone().into()), t0).unwrap();
        }
        assert!(q.merges() >= 1);
        assert!(q.bytes() <= once);
        assert_eq!(text_of(&updates_in(&drain(&mut q))), text_of(&updates));
    }

    #[test]
    fn never_popping_consumer_becomes_slow() {
        let t0 = Instant::now();
        let mut q = OutboundQueue::new(4096, Duration::from_secs(3600));
        let doc = Doc::with_options(Options {
            client_id: ClientID::new(7),
            ..Options::default()
        });
        let text = doc.get_or_insert_text("t");
        let mut err = None;
        for i in 0..10_000u32 {
            let u = {
                let mut txn = doc.transact_mut();
                text.insert(&mut txn, 0, &format!("chunk {i} of new content "));
                txn.encode_update_v1()
            };
            // Awareness-like frames between updates cannot be merged away.
            let pushed = q
                .push(Outbound::YrsUpdate(u.into()), t0)
                .and_then(|()| q.push(Outbound::Frame(Bytes::from(vec![1; 64])), t0));
            if let Err(e) = pushed {
                err = Some((i, e));
                break;
            }
        }
        let (i, e) = err.expect("the consumer was never declared slow");
        assert!(i > 10, "gave up too early, after {i} pushes");
        assert!(q.merges() >= 1, "should have merged before giving up");
        assert!(e.queued_bytes > 4096);
        assert_eq!(e.queued_bytes, q.bytes());
        assert_eq!(e.oldest_age, Duration::ZERO);
        assert!(e.to_string().contains("slow consumer"));
    }

    #[test]
    fn age_limit_triggers() {
        let t0 = Instant::now();
        let mut q = OutboundQueue::new(1 << 20, Duration::from_secs(5));
        q.push(Outbound::Frame(Bytes::from(vec![0; 10])), t0)
            .unwrap();
        q.push(
            Outbound::Frame(Bytes::from(vec![0; 10])),
            t0 + Duration::from_secs(3),
        )
        .unwrap();
        // Exactly at the limit is still fine.
        q.push(
            Outbound::Frame(Bytes::from(vec![0; 10])),
            t0 + Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(
            q.oldest_age(t0 + Duration::from_secs(5)),
            Some(Duration::from_secs(5))
        );
        let e = q
            .push(
                Outbound::Frame(Bytes::from(vec![0; 10])),
                t0 + Duration::from_secs(6),
            )
            .unwrap_err();
        assert_eq!(e.oldest_age, Duration::from_secs(6));
        assert_eq!(e.queued_bytes, 40);
        // The item was not dropped.
        assert_eq!(q.len(), 4);
    }

    #[test]
    fn age_counts_from_the_oldest_item_and_popping_resets_it() {
        let t0 = Instant::now();
        let mut q = OutboundQueue::new(1 << 20, Duration::from_secs(5));
        q.push(Outbound::Frame(Bytes::from(vec![1])), t0).unwrap();
        q.push(
            Outbound::Frame(Bytes::from(vec![2])),
            t0 + Duration::from_secs(4),
        )
        .unwrap();
        q.pop();
        // The oldest is now 4 s in: 8 s is 4 s old, within the limit.
        q.push(
            Outbound::Frame(Bytes::from(vec![3])),
            t0 + Duration::from_secs(8),
        )
        .unwrap();
        // An empty queue accepts anything, however late.
        drain(&mut q);
        q.push(
            Outbound::Frame(Bytes::from(vec![4])),
            t0 + Duration::from_secs(100),
        )
        .unwrap();
    }

    #[test]
    fn merged_update_keeps_the_oldest_timestamp() {
        let updates = typing_updates();
        let t0 = Instant::now();
        let mut q = OutboundQueue::new(usize::MAX, Duration::from_secs(5));
        q.push(Outbound::YrsUpdate(updates[0].clone().into()), t0)
            .unwrap();
        for (i, u) in updates[1..4].iter().enumerate() {
            q.push(
                Outbound::YrsUpdate(u.clone().into()),
                t0 + Duration::from_secs(i as u64 + 1),
            )
            .unwrap();
        }
        q.merge_updates();
        assert_eq!(q.len(), 1);
        assert_eq!(
            q.oldest_age(t0 + Duration::from_secs(4)),
            Some(Duration::from_secs(4))
        );
        q.max_bytes = 1;
        // Merging cannot make an old backlog young: still slow at 6 s.
        let e = q
            .push(
                Outbound::YrsUpdate(updates[4].clone().into()),
                t0 + Duration::from_secs(6),
            )
            .unwrap_err();
        assert_eq!(e.oldest_age, Duration::from_secs(6));
    }

    #[test]
    fn frames_are_never_merged_dropped_or_reordered() {
        let updates = typing_updates();
        let t0 = Instant::now();
        let mut q = OutboundQueue::new(64, Duration::from_secs(10));
        let mut frames = Vec::new();
        // F0, then U0 F1 U1 F2 U2 ...: the backlog is over the limit from
        // the third push on, so merging happens repeatedly while frames
        // interleave. Whether a push also reports a slow consumer does not
        // matter here: items are queued either way.
        q.push(Outbound::Frame(Bytes::from(vec![0xF0, 0])), t0)
            .unwrap();
        frames.push(vec![0xF0, 0]);
        for (i, u) in updates.iter().enumerate() {
            let _ = q.push(Outbound::YrsUpdate(u.clone().into()), t0);
            let f = vec![0xF1, i as u8];
            let _ = q.push(Outbound::Frame(Bytes::from(f.clone())), t0);
            frames.push(f);
        }
        assert!(q.merges() >= 1);
        let items = drain(&mut q);
        // Every frame, byte for byte, in order.
        assert_eq!(frames_in(&items), frames);
        // The first frame still precedes all document content.
        assert_eq!(items[0], Outbound::Frame(Bytes::from(vec![0xF0, 0])));
        // Updates were merged, content intact.
        assert!(updates_in(&items).len() < updates.len());
        assert_eq!(text_of(&updates_in(&items)), text_of(&updates));
    }

    #[test]
    fn a_lone_item_larger_than_the_limit_is_accepted() {
        let t0 = Instant::now();
        let mut q = OutboundQueue::new(10, Duration::from_secs(1));
        q.push(Outbound::Frame(Bytes::from(vec![0; 100])), t0)
            .unwrap();
        assert_eq!(q.bytes(), 100);
        // A second item is backlog over the limit; frames cannot be merged.
        let e = q
            .push(Outbound::Frame(Bytes::from(vec![0; 1])), t0)
            .unwrap_err();
        assert_eq!(e.queued_bytes, 101);
        assert_eq!(q.len(), 2);
    }

    #[test]
    fn unmergeable_updates_are_kept_as_they_are() {
        let t0 = Instant::now();
        let mut q = OutboundQueue::new(4, Duration::from_secs(10));
        q.push(Outbound::YrsUpdate(vec![0xFF; 3].into()), t0)
            .unwrap();
        let e = q
            .push(Outbound::YrsUpdate(vec![0xFF; 3].into()), t0)
            .unwrap_err();
        assert_eq!(e.queued_bytes, 6);
        assert_eq!(q.merges(), 0);
        assert_eq!(
            drain(&mut q),
            vec![
                Outbound::YrsUpdate(vec![0xFF; 3].into()),
                Outbound::YrsUpdate(vec![0xFF; 3].into())
            ]
        );
    }
}
