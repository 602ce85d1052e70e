//! Presence: who is in a room and their ephemeral state (cursor, name),
//! with the semantics of Yjs awareness so that both kinds of client share
//! one view.

use std::collections::BTreeMap;
use std::string::String;
use std::vec::Vec;

use serde::{Deserialize, Serialize};

/// One client's presence: a JSON state, or `None` once it left. `clock`
/// grows with every change the client makes; the highest wins.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceEntry {
    /// The client's id (the Yjs client id for Yjs clients).
    pub client: u64,
    /// The client's presence clock.
    pub clock: u32,
    /// Its state as JSON text; `None` means removed.
    pub state: Option<String>,
}

/// The presence of everyone in a room, merged by Yjs awareness rules: an
/// entry replaces the known one if its clock is higher, or equal with a
/// removal (so that a removal is never lost to a tie).
#[derive(Clone, Debug, Default)]
pub struct PresenceMap {
    entries: BTreeMap<u64, (u32, Option<String>)>,
}

impl PresenceMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether `e` would replace what is known of its client.
    pub fn would_change(&self, e: &PresenceEntry) -> bool {
        match self.entries.get(&e.client) {
            None => true,
            Some((clock, state)) => {
                e.clock > *clock || (e.clock == *clock && e.state.is_none() && state.is_some())
            }
        }
    }

    /// Applies entries from one client connection; returns those that
    /// changed the map (to be sent to everyone).
    pub fn apply(&mut self, entries: Vec<PresenceEntry>) -> Vec<PresenceEntry> {
        let mut changed = Vec::new();
        for e in entries {
            if self.would_change(&e) {
                self.entries.insert(e.client, (e.clock, e.state.clone()));
                changed.push(e);
            }
        }
        changed
    }

    /// Marks `clients` as gone (a connection closed): their removals, with
    /// clocks one past the last known, to be sent to everyone.
    pub fn remove(&mut self, clients: impl IntoIterator<Item = u64>) -> Vec<PresenceEntry> {
        let mut out = Vec::new();
        for client in clients {
            if let Some((clock, state)) = self.entries.get_mut(&client) {
                if state.is_some() {
                    *clock = clock.wrapping_add(1);
                    *state = None;
                    out.push(PresenceEntry {
                        client,
                        clock: *clock,
                        state: None,
                    });
                }
            }
        }
        out
    }

    /// Drops what is known of `client` if it is a removal (to bound the
    /// removals remembered).
    pub fn forget_removed(&mut self, client: u64) {
        if self.entries.get(&client).is_some_and(|(_, s)| s.is_none()) {
            self.entries.remove(&client);
        }
    }

    /// The clock known for `client`.
    pub fn clock(&self, client: u64) -> Option<u32> {
        self.entries.get(&client).map(|(c, _)| *c)
    }

    /// Clients known, present or removed.
    pub fn known(&self) -> usize {
        self.entries.len()
    }

    /// Everyone present now, for a client that just joined.
    pub fn present(&self) -> Vec<PresenceEntry> {
        self.entries
            .iter()
            .filter_map(|(client, (clock, state))| {
                state.as_ref().map(|s| PresenceEntry {
                    client: *client,
                    clock: *clock,
                    state: Some(s.clone()),
                })
            })
            .collect()
    }

    /// Number of clients present.
    pub fn len(&self) -> usize {
        self.entries.values().filter(|(_, s)| s.is_some()).count()
    }

    /// True if nobody is present.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
    fn higher_clock_wins_and_removal_wins_a_tie() {
        let mut m = PresenceMap::new();
        assert_eq!(m.apply(vec![e(1, 1, Some("{}"))]).len(), 1);
        assert!(m.apply(vec![e(1, 1, Some("{\"x\":1}"))]).is_empty());
        assert!(m.apply(vec![e(1, 0, None)]).is_empty());
        assert_eq!(m.apply(vec![e(1, 1, None)]), vec![e(1, 1, None)]);
        assert!(m.is_empty());
        assert_eq!(m.apply(vec![e(1, 2, Some("{}"))]).len(), 1);
        assert_eq!(m.present(), vec![e(1, 2, Some("{}"))]);
    }

    #[test]
    fn remove_bumps_the_clock() {
        let mut m = PresenceMap::new();
        m.apply(vec![e(7, 4, Some("{}")), e(8, 1, Some("{}"))]);
        assert_eq!(m.remove([7, 9]), vec![e(7, 5, None)]);
        assert!(m.remove([7]).is_empty());
        assert_eq!(m.len(), 1);
    }
}
