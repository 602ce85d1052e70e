//! Presence with owners: a connection sets or clears only the client ids it
//! introduced, holds at most a few, and its ids are removed when it leaves.
//!
//! Neither protocol authenticates a presence id (a Yjs client id is a random
//! number the client picked), so ownership is first come, first served: an
//! id no live connection holds can be claimed by the next connection that
//! announces it, and then nobody else can change it until that connection
//! leaves. That stops one client from renaming or removing another while
//! both are connected (measured before: any connection could overwrite any
//! other's state with a higher clock). It cannot stop a client from taking
//! an id in the moment between its owner leaving and coming back.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::vec::Vec;

use super::ConnId;
use crate::doc::presence::{PresenceEntry, PresenceMap};

/// A connection tried to hold more presence ids than allowed.
#[derive(Debug)]
pub(super) struct TooManyIds;

/// What applying one connection's entries did.
#[derive(Debug, Default)]
pub(super) struct Applied {
    /// Entries that changed the room's presence (for everyone).
    pub changed: Vec<PresenceEntry>,
    /// Entries dropped because another live connection owns their id and
    /// they would have changed its state (counted as rejected).
    pub spoofed: usize,
}

/// The room's presence and who owns each id.
#[derive(Debug)]
pub(super) struct OwnedPresence {
    map: PresenceMap,
    owners: BTreeMap<u64, ConnId>,
    /// Removed ids, oldest first: a removal is remembered (so that a stale
    /// entry does not bring the client back) until this many newer ones.
    tombstones: VecDeque<u64>,
    max_tombstones: usize,
    /// When each remembered removal happened (the removal count then).
    removed_at: BTreeMap<u64, u64>,
    removals: u64,
}

impl OwnedPresence {
    pub(super) fn new(max_tombstones: usize) -> Self {
        Self {
            map: PresenceMap::new(),
            owners: BTreeMap::new(),
            tombstones: VecDeque::new(),
            max_tombstones,
            removed_at: BTreeMap::new(),
            removals: 0,
        }
    }

    /// Removals so far: a joining connection's mark, to tell its echoes
    /// of older states from a comeback.
    pub(super) fn removals(&self) -> u64 {
        self.removals
    }

    /// Applies `entries` from `conn`, which joined at removal count `joined`
    /// ([`OwnedPresence::removals`]), owns `owned` and may own at most
    /// `max_ids`.
    pub(super) fn apply(
        &mut self,
        conn: ConnId,
        joined: u64,
        owned: &mut BTreeSet<u64>,
        max_ids: usize,
        entries: Vec<PresenceEntry>,
    ) -> Result<Applied, TooManyIds> {
        let mut applied = Applied::default();
        for mut e in entries {
            match self.owners.get(&e.client) {
                Some(&owner) if owner != conn => {
                    // Honest y-websocket clients echo every awareness change
                    // they hear; only an entry that would change the owner's
                    // state is an attempt worth counting.
                    if self.map.would_change(&e) {
                        applied.spoofed += 1;
                    }
                    continue;
                }
                Some(_) => {}
                None => {
                    if e.state.is_none() {
                        // Removing an id nobody holds: nothing to remove.
                        continue;
                    }
                    if !self.map.would_change(&e) {
                        // At or below the room's removal of this id. From a
                        // connection that was here before that removal it is
                        // an echo of what the room sent it (y-websocket
                        // clients echo every change they hear): dropped. From
                        // a connection that joined after it, it is the client
                        // coming back (a y-websocket client reconnects with
                        // its old clock): stamped past the removal, so it
                        // shows at once — clients adopt a higher clock for
                        // their own id, as y-protocols' awareness does.
                        let after = self
                            .removed_at
                            .get(&e.client)
                            .is_none_or(|&at| at <= joined);
                        if !after {
                            continue;
                        }
                        let known = self.map.clock(e.client).unwrap_or(0);
                        e.clock = known.wrapping_add(1);
                    }
                    if owned.len() >= max_ids {
                        return Err(TooManyIds);
                    }
                }
            }
            let client = e.client;
            let removal = e.state.is_none();
            let changed = self.map.apply(std::vec![e]);
            if changed.is_empty() {
                continue;
            }
            if owned.insert(client) {
                self.owners.insert(client, conn);
            }
            if removal {
                self.tombstone(client);
            }
            applied.changed.extend(changed);
        }
        Ok(applied)
    }

    /// `conn` left: its ids are removed (clocks one past the last) and free.
    pub(super) fn leave(&mut self, owned: BTreeSet<u64>) -> Vec<PresenceEntry> {
        for client in &owned {
            self.owners.remove(client);
        }
        let removed = self.map.remove(owned.iter().copied());
        for e in &removed {
            self.tombstone(e.client);
        }
        removed
    }

    fn tombstone(&mut self, client: u64) {
        self.removals += 1;
        self.removed_at.insert(client, self.removals);
        self.tombstones.push_back(client);
        while self.tombstones.len() > self.max_tombstones {
            let Some(old) = self.tombstones.pop_front() else {
                break;
            };
            // Only if it is still removed and free (it may have come back).
            if !self.owners.contains_key(&old) && !self.tombstones.contains(&old) {
                self.map.forget_removed(old);
                self.removed_at.remove(&old);
            }
        }
    }

    /// Everyone present.
    pub(super) fn present(&self) -> Vec<PresenceEntry> {
        self.map.present()
    }

    /// Ids known, present or removed (bounded by connections × ids plus the
    /// tombstones kept).
    #[cfg(test)]
    pub(super) fn known(&self) -> usize {
        self.map.known()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;
    use std::vec;

    fn e(client: u64, clock: u32, state: Option<&str>) -> PresenceEntry {
        PresenceEntry {
            client,
            clock,
            state: state.map(|s| s.to_string()),
        }
    }

    #[test]
    fn an_owned_id_is_only_changed_by_its_owner() {
        let mut p = OwnedPresence::new(16);
        let (mut a, mut b) = (BTreeSet::new(), BTreeSet::new());
        let r = p
            .apply(1, 0, &mut a, 4, vec![e(10, 1, Some("{}"))])
            .unwrap();
        assert_eq!(r.changed.len(), 1);
        // Another connection with a higher clock: dropped and counted.
        let r = p
            .apply(2, 0, &mut b, 4, vec![e(10, 9, Some("{\"name\":\"evil\"}"))])
            .unwrap();
        assert!(r.changed.is_empty());
        assert_eq!(r.spoofed, 1);
        // An echo of the owner's own state is not an attempt.
        let r = p
            .apply(2, 0, &mut b, 4, vec![e(10, 1, Some("{}"))])
            .unwrap();
        assert_eq!(r.spoofed, 0);
        assert_eq!(p.present(), vec![e(10, 1, Some("{}"))]);
        // Once the owner leaves, the id is free; a first entry at or below
        // the removal's clock is stamped past it.
        assert_eq!(p.leave(a), vec![e(10, 2, None)]);
        // An echo from a connection that was here before the removal is
        // dropped; a connection that joined after it comes back at once.
        let r = p
            .apply(2, 0, &mut b, 4, vec![e(10, 1, Some("{}"))])
            .unwrap();
        assert!(r.changed.is_empty());
        let mut c = BTreeSet::new();
        let joined = p.removals();
        let r = p
            .apply(3, joined, &mut c, 4, vec![e(10, 1, Some("{}"))])
            .unwrap();
        assert_eq!(r.changed, vec![e(10, 3, Some("{}"))]);
    }

    #[test]
    fn a_connection_holds_a_few_ids_and_tombstones_are_pruned() {
        let mut p = OwnedPresence::new(4);
        let mut a = BTreeSet::new();
        for c in 0..3 {
            p.apply(1, 0, &mut a, 3, vec![e(c, 1, Some("{}"))]).unwrap();
        }
        assert!(
            p.apply(1, 0, &mut a, 3, vec![e(99, 1, Some("{}"))])
                .is_err()
        );
        for conn in 2..100u64 {
            let mut owned = BTreeSet::new();
            p.apply(conn, 0, &mut owned, 3, vec![e(1000 + conn, 1, Some("{}"))])
                .unwrap();
            p.leave(owned);
        }
        assert!(p.known() <= 3 + 4, "known {}", p.known());
    }
}
