//! [`Hold`]: Yjs updates that wait for dependencies a document lacks, kept
//! apart from yrs.
//!
//! yrs keeps such updates itself ("pending") and merges every later one
//! that waits into them. That merge (yrs 0.28) loses structs after a gap
//! (room_sim seeds 153 and 222 lost a client's clocks; seed 307 left two
//! replicas with equal state vectors and different text) and can break a
//! standard-library precondition inside `merge_updates`, which is undefined
//! behaviour in a release build (the input is
//! `core/fuzz/corpus/room/room-yrs-vecdeque-ub`). So after
//! every update the hold takes what yrs left pending out of it, keeps each
//! leftover apart, and offers it to yrs again, unmerged, once something it
//! waits for has arrived. yrs then never holds pending updates, and never
//! merges two of them.

use std::format;
use std::string::ToString;
use std::vec::Vec;

use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{ClientID, ReadTxn, StateVector, TransactionMut, Update, WriteTxn};

use super::guard;
use super::sequence::Sequences;
use super::shared::DocError;

/// At most this many updates wait for missing dependencies, holding at most
/// [`MAX_HELD_BYTES`]: every change to the document offers them to yrs
/// again, so an unbounded hold would let a client make every later update
/// costly. Beyond them the oldest are dropped (see [`Hold::apply`]).
/// Honest peers hold one or two at a time, briefly (updates that followed
/// one the relay lost in a crash, until the client's next sync).
pub const MAX_HELD: usize = 32;

/// See [`MAX_HELD`].
pub const MAX_HELD_BYTES: usize = 1 << 20;

/// An update yrs could not integrate yet.
struct Held {
    /// Its v1 encoding (yrs's own, of what was left over).
    bytes: Vec<u8>,
    /// The state vector before the update that left it over was applied.
    /// It is offered again once the document has changed since. (yrs's
    /// own `PendingUpdate::missing` is no such signal: room_sim seed 846
    /// held a struct whose dependencies were all present, waiting for a
    /// clock the document had not reached.)
    at: StateVector,
    /// For an update held whole for a gap: a client it has a gap in. It
    /// cannot come in before the document has more of that client, so it
    /// is not offered again until then — or else every change would cost
    /// a decode of every such update (at most [`MAX_HELD_BYTES`]), which
    /// is cheap for a client to arrange.
    gap: Option<ClientID>,
}

impl Held {
    fn ready(&self, sv: &StateVector) -> bool {
        match &self.gap {
            Some(client) => sv.get(client) != self.at.get(client),
            None => self.at != *sv,
        }
    }
}

/// Applies one update (`bytes`, decoded as `update`) and takes what yrs
/// left pending out of yrs, so that yrs never merges pending updates. True
/// if the whole update waits, unseen by yrs. An update with an item whose
/// origins lie in two sequences is refused before yrs sees it (see
/// [`super::sequence`]).
fn integrate(
    txn: &mut TransactionMut<'_>,
    bytes: &[u8],
    update: Update,
    held: &mut Vec<Held>,
    sequences: &mut Sequences,
) -> Result<bool, DocError> {
    let at = txn.state_vector();
    if let Some(client) = gap(&update, &at) {
        held.push(Held {
            bytes: bytes.to_vec(),
            at,
            gap: Some(client),
        });
        return Ok(true);
    }
    let structs = guard::structs_v1(bytes, guard::MAX_DEPTH)?;
    let plan = sequences.plan(&structs, &at).map_err(|c| {
        DocError::BadYrsEncoding(format!(
            "item {}#{} has its left and right origins in two different sequences",
            c.item.0, c.item.1
        ))
    })?;
    txn.apply_update(update)
        .map_err(|e| DocError::YrsRejected(e.to_string()))?;
    // One pending part, or a pending update and a delete set (a struct-free
    // update): `prune_pending` merges no two sets of structs.
    if let Some(rest) = txn.prune_pending() {
        held.push(Held {
            bytes: rest.encode_v1(),
            at: at.clone(),
            gap: None,
        });
    }
    sequences.record(plan, &at, &txn.state_vector());
    Ok(false)
}

/// A client whose structs in `update` lie beyond a hole in what the
/// document (`sv`) and the update hold of that client, if any. yrs integrates such
/// structs after a placeholder for the hole (Yjs does not: it waits), and
/// a later lookup into the placeholder reads freed or foreign memory
/// (fuzz target room: a segmentation fault in yrs's `missing_dependency`,
/// input `core/fuzz/corpus/room/room-yrs-skip-segv`). Such an update
/// waits until the hole is filled.
fn gap(update: &Update, sv: &StateVector) -> Option<ClientID> {
    let insertions = update.insertions(true);
    let gapped = insertions.iter().find(|(client, ranges)| {
        let mut ranges: Vec<_> = ranges.iter().collect();
        ranges.sort_by_key(|r| r.start);
        let mut have = sv.get(client);
        ranges.into_iter().any(|r| {
            let gap = r.start > have;
            have = have.max(r.end);
            gap
        })
    });
    gapped.map(|(client, _)| *client)
}

/// Offers the held updates to yrs again while the document changes;
/// returns those that let something in, and how many were dropped because
/// yrs or the sequence check refused them once their dependencies came.
fn release(
    txn: &mut yrs::TransactionMut<'_>,
    held: &mut Vec<Held>,
    sequences: &mut Sequences,
) -> (Vec<Vec<u8>>, usize) {
    let mut released = Vec::new();
    let mut refused = 0;
    loop {
        let sv = txn.state_vector();
        let (ready, waiting): (Vec<Held>, Vec<Held>) =
            std::mem::take(held).into_iter().partition(|h| h.ready(&sv));
        *held = waiting;
        if ready.is_empty() {
            return (released, refused);
        }
        for h in ready {
            let Ok(update) = Update::decode_v1(&h.bytes) else {
                refused += 1;
                continue;
            };
            let at = txn.state_vector();
            // Refused now, it would be refused at every later offer: it
            // goes, and the update that let it be offered still counts.
            if integrate(txn, &h.bytes, update, held, sequences).is_err() {
                refused += 1;
                continue;
            }
            if txn.state_vector() != at {
                released.push(h.bytes);
            }
        }
    }
}

/// What [`Hold::apply`] did besides applying.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HoldOutcome {
    /// Held updates (v1) that let something in, wholly or in part.
    pub released: Vec<Vec<u8>>,
    /// Held updates dropped to keep within [`MAX_HELD`] and
    /// [`MAX_HELD_BYTES`], or refused when offered again.
    pub dropped: usize,
    /// The update itself waits whole, unseen by yrs (it has a gap): until
    /// it is released, peers have no use for it either — and a peer whose
    /// yrs integrates after a gap is hurt by it (yrs 0.28 panics).
    pub waits: bool,
}

/// Updates waiting for missing dependencies (see the module doc).
#[derive(Default)]
pub struct Hold {
    held: Vec<Held>,
    /// The sequence of every struct integrated through this hold, which
    /// is every struct yrs integrates here (see [`super::sequence`]).
    sequences: Sequences,
}

impl Hold {
    /// How many updates wait.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// Whether none waits.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Drops every waiting update; returns how many there were.
    pub fn clear(&mut self) -> usize {
        std::mem::take(&mut self.held).len()
    }

    /// The bytes the waiting updates hold.
    pub fn bytes(&self) -> usize {
        self.held.iter().map(|h| h.bytes.len()).sum()
    }

    /// Applies `update` (v1 `bytes`, decoded) in `txn`, keeps what waits,
    /// and offers what was waiting again while the document changes.
    /// Beyond the bounds the oldest held updates are dropped: whoever sent
    /// them still has them, and sends them again when asked (sync step 1).
    pub fn apply(
        &mut self,
        txn: &mut TransactionMut<'_>,
        bytes: &[u8],
        update: Update,
    ) -> Result<HoldOutcome, DocError> {
        let waits = integrate(txn, bytes, update, &mut self.held, &mut self.sequences)?;
        let (released, mut dropped) = release(txn, &mut self.held, &mut self.sequences);
        while self.held.len() > MAX_HELD || self.bytes() > MAX_HELD_BYTES {
            self.held.remove(0);
            dropped += 1;
        }
        Ok(HoldOutcome {
            released,
            dropped,
            waits,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use yrs::{GetString, Text, Transact};

    /// Three successive edits of one client, as three updates.
    fn edits() -> (std::string::String, Vec<Vec<u8>>) {
        let doc = yrs::Doc::with_client_id(7);
        let text = doc.get_or_insert_text("t");
        let mut updates = Vec::new();
        for (i, s) in ["ab", "cd", "ef"].iter().enumerate() {
            let mut txn = doc.transact_mut();
            text.insert(&mut txn, (i * 2) as u32, s);
            updates.push(txn.encode_update_v1());
        }
        let txn = doc.transact();
        (text.get_string(&txn), updates)
    }

    fn apply(doc: &yrs::Doc, hold: &mut Hold, bytes: &[u8]) -> HoldOutcome {
        let mut txn = doc.transact_mut();
        hold.apply(&mut txn, bytes, Update::decode_v1(bytes).unwrap())
            .unwrap()
    }

    #[test]
    fn updates_in_any_order_integrate_and_yrs_keeps_nothing_pending() {
        let (want, updates) = edits();
        for order in [[2, 1, 0], [1, 2, 0], [2, 0, 1], [0, 2, 1]] {
            let doc = yrs::Doc::with_client_id(1);
            let mut hold = Hold::default();
            let mut released = 0;
            for i in order {
                released += apply(&doc, &mut hold, &updates[i]).released.len();
                let txn = doc.transact();
                assert!(txn.store().pending_update().is_none(), "{order:?}");
                assert!(txn.store().pending_ds().is_none(), "{order:?}");
            }
            assert!(hold.is_empty(), "{order:?}");
            assert!(released > 0, "{order:?}: something waited and came in");
            let text = doc.get_or_insert_text("t");
            assert_eq!(text.get_string(&doc.transact()), want, "{order:?}");
        }
    }

    #[test]
    fn an_update_held_for_a_gap_is_offered_again_only_when_its_client_grows() {
        let (want, updates) = edits();
        let doc = yrs::Doc::with_client_id(1);
        let mut hold = Hold::default();
        assert!(apply(&doc, &mut hold, &updates[2]).waits);
        let at = hold.held[0].at.clone();
        // Another client's edit changes the document, not client 7's part.
        let other = yrs::Doc::with_client_id(9);
        let t = other.get_or_insert_text("u");
        let mut txn = other.transact_mut();
        t.insert(&mut txn, 0, "z");
        let unrelated = txn.encode_update_v1();
        drop(txn);
        assert!(!apply(&doc, &mut hold, &unrelated).waits);
        assert_eq!(hold.held[0].at, at, "not offered again");
        // Client 7's first edit: the second still waits for the hole
        // between, and is offered again (held anew, at the new state).
        apply(&doc, &mut hold, &updates[0]);
        assert_eq!(hold.len(), 1);
        assert_ne!(hold.held[0].at, at);
        let released = apply(&doc, &mut hold, &updates[1]).released;
        assert_eq!(released.len(), 1);
        assert!(hold.is_empty());
        let text = doc.get_or_insert_text("t");
        assert_eq!(text.get_string(&doc.transact()), want);
    }

    #[test]
    fn beyond_its_bound_the_hold_drops_the_oldest() {
        // Updates that each wait for a first edit that never comes.
        let mut gapped = Vec::new();
        for n in 0..(MAX_HELD as u64 + 3) {
            let doc = yrs::Doc::with_client_id(100 + n);
            let text = doc.get_or_insert_text("t");
            text.insert(&mut doc.transact_mut(), 0, "x");
            let mut txn = doc.transact_mut();
            text.insert(&mut txn, 1, "y");
            gapped.push(txn.encode_update_v1());
        }
        let doc = yrs::Doc::with_client_id(1);
        let mut hold = Hold::default();
        let mut dropped = 0;
        for g in &gapped {
            dropped += apply(&doc, &mut hold, g).dropped;
            assert!(hold.len() <= MAX_HELD);
        }
        assert_eq!(hold.len(), MAX_HELD);
        assert_eq!(dropped, 3);
    }
}
