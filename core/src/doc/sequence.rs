//! Which sequence each struct of a document belongs to — its parent type
//! and, for a map entry, its key — so that an item whose two origins lie in
//! different sequences is refused before yrs integrates it.
//!
//! Every encoder takes an item's left and right origins from its neighbours
//! in one sequence. yrs 0.28 trusts that: an item whose left origin is in a
//! type's list and whose right origin is in one of that type's map entries
//! is linked into both chains, and once the type is deleted, garbage
//! collection frees the type while an item reached through the crossed
//! chains still points at it — a use-after-free (fuzz target `doc`, input
//! `core/fuzz/known-crashes/doc-yrs-gc-use-after-free`; without a sanitizer,
//! a later encode segfaults). One such item in one update would take the
//! relay down. The two origins may be in the update itself or anywhere in
//! the document, so the check needs what the document holds: this index
//! keeps, per client, the runs of clocks that share a sequence, for every
//! clock yrs has integrated through [`super::Hold`].
//!
//! It records a struct only once yrs has integrated it (the document's
//! clock has passed it), so updates that wait or are refused cannot claim
//! ids for a sequence of their choosing ahead of their real owner. Clocks
//! integrated some other way (local edits on [`super::SharedDoc::yrs`]) are
//! recorded as unknown, and an origin there is not checked.

use std::boxed::Box;
use std::collections::HashMap;
use std::vec::Vec;

use yrs::{ClientID, StateVector};

use super::guard::{RawId, RawParent, RawStruct};

/// A sequence's identity: its parent type and map key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Parent {
    Root(Box<str>),
    Item(RawId),
}

type Key = (Parent, Option<Box<str>>);

/// A sequence as seen while planning one update: one the index already
/// knows, or one new to it (numbered within the plan).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seq {
    Known(u32),
    New(usize),
}

/// Recorded for clocks whose sequence is unknown (GC and skip blocks,
/// items whose parent could not be found, clocks not integrated here).
const UNKNOWN: u32 = u32::MAX;

/// One client's clocks: runs sorted by start, each lasting until the next;
/// the last until `end`, the first clock not recorded.
#[derive(Debug, Default)]
struct Client {
    runs: Vec<(u32, u32)>,
    end: u32,
}

impl Client {
    fn lookup(&self, clock: u32) -> Option<u32> {
        if clock >= self.end {
            return None;
        }
        let i = self.runs.partition_point(|&(start, _)| start <= clock);
        let seq = self.runs[i.checked_sub(1)?].1;
        (seq != UNKNOWN).then_some(seq)
    }

    fn push(&mut self, start: u32, end: u32, seq: u32) {
        if start > self.end {
            self.push(self.end, start, UNKNOWN);
        }
        if self.runs.last().map(|&(_, s)| s) != Some(seq) {
            self.runs.push((start, seq));
        }
        self.end = self.end.max(end);
    }
}

/// An item whose origins lie in two different sequences.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crossing {
    /// The item's id.
    pub item: RawId,
}

/// The index (see the module doc).
#[derive(Debug, Default)]
pub struct Sequences {
    keys: HashMap<Key, u32>,
    clients: HashMap<u64, Client>,
}

/// What [`Sequences::plan`] found for one update: each struct's sequence,
/// recorded by [`Sequences::record`] for the clocks yrs then integrated.
#[derive(Debug, Default)]
pub struct Plan {
    structs: Vec<(u64, u32, u32, Option<Seq>)>,
    new_keys: Vec<Key>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Todo,
    Busy,
    Done(Option<Seq>),
}

/// Where an id points, seen from the update being planned.
enum Target {
    /// In the document already, with this sequence if known.
    Doc(Option<Seq>),
    /// In the update, at this index.
    Struct(usize),
    /// Nowhere yet: yrs keeps the item waiting, and it is checked again
    /// when offered again.
    Missing,
}

struct Planner<'s, 'a> {
    index: &'s Sequences,
    at: &'s StateVector,
    structs: &'s [RawStruct<'a>],
    /// Each client's structs in `structs` (a contiguous range).
    by_client: HashMap<u64, core::ops::Range<usize>>,
    state: Vec<State>,
    new_keys: HashMap<Key, usize>,
}

impl Planner<'_, '_> {
    fn target(&self, (client, clock): RawId) -> Target {
        if clock < clock_of(self.at, client) {
            let seq = self
                .index
                .clients
                .get(&client)
                .and_then(|c| c.lookup(clock));
            return Target::Doc(seq.map(Seq::Known));
        }
        let Some(range) = self.by_client.get(&client) else {
            return Target::Missing;
        };
        let within = &self.structs[range.clone()];
        let i = within.partition_point(|s| s.clock <= clock);
        match i.checked_sub(1) {
            Some(j) if clock < within[j].clock.saturating_add(within[j].len) => {
                Target::Struct(range.start + j)
            }
            _ => Target::Missing,
        }
    }

    fn key_seq(&mut self, parent: RawParent<'_>, sub: Option<&str>) -> Seq {
        let key: Key = (
            match parent {
                RawParent::Root(name) => Parent::Root(name.into()),
                RawParent::Item(id) => Parent::Item(id),
            },
            sub.map(Into::into),
        );
        if let Some(&k) = self.index.keys.get(&key) {
            return Seq::Known(k);
        }
        let next = self.new_keys.len();
        Seq::New(*self.new_keys.entry(key).or_insert(next))
    }

    /// The sequence of `structs[start]`, as yrs decides it: the parent it
    /// names, or else its left origin's, or else its right origin's. An
    /// explicit stack, not recursion: one update can chain a hundred
    /// thousand items, each the left origin of the next.
    fn resolve(&mut self, start: usize) {
        let mut stack = std::vec![start];
        while let Some(&i) = stack.last() {
            if matches!(self.state[i], State::Done(_)) {
                stack.pop();
                continue;
            }
            self.state[i] = State::Busy;
            let s = self.structs[i];
            let Some(item) = s.item else {
                self.state[i] = State::Done(None);
                stack.pop();
                continue;
            };
            if let Some(parent) = item.parent {
                self.state[i] = State::Done(Some(self.key_seq(parent, item.parent_sub)));
                stack.pop();
                continue;
            }
            let mut found = None;
            let mut first = None;
            for id in [item.origin, item.right_origin].into_iter().flatten() {
                match self.target(id) {
                    Target::Doc(Some(seq)) => found = Some(seq),
                    Target::Doc(None) | Target::Missing => continue,
                    Target::Struct(j) => match self.state[j] {
                        State::Done(Some(seq)) => found = Some(seq),
                        // Unknown, or a cycle of origins (yrs keeps such
                        // items waiting forever).
                        State::Done(None) | State::Busy => continue,
                        State::Todo => first = Some(j),
                    },
                }
                break;
            }
            match first {
                Some(j) => stack.push(j),
                None => {
                    self.state[i] = State::Done(found);
                    stack.pop();
                }
            }
        }
    }

    fn seq_of(&mut self, id: RawId) -> Option<Seq> {
        match self.target(id) {
            Target::Doc(seq) => seq,
            Target::Struct(j) => {
                self.resolve(j);
                match self.state[j] {
                    State::Done(seq) => seq,
                    _ => None,
                }
            }
            Target::Missing => None,
        }
    }
}

/// What `sv` holds of `client` (a raw id: the guard keeps it below 2^53).
fn clock_of(sv: &StateVector, client: u64) -> u32 {
    sv.get(&ClientID::new(client))
}

impl Sequences {
    /// Each struct's sequence in `structs` (one update, as
    /// [`super::guard::structs_v1`] reads it) against a document whose
    /// state vector is `at`; refuses the update if one of its items has
    /// origins in two different sequences. Changes nothing.
    pub fn plan(&self, structs: &[RawStruct<'_>], at: &StateVector) -> Result<Plan, Crossing> {
        let mut by_client: HashMap<u64, core::ops::Range<usize>> = HashMap::new();
        for (i, s) in structs.iter().enumerate() {
            by_client
                .entry(s.client)
                .and_modify(|r| r.end = i + 1)
                .or_insert(i..i + 1);
        }
        let mut p = Planner {
            index: self,
            at,
            structs,
            by_client,
            state: std::vec![State::Todo; structs.len()],
            new_keys: HashMap::new(),
        };
        for i in 0..structs.len() {
            p.resolve(i);
        }
        for s in structs {
            let Some(item) = s.item else { continue };
            let (Some(left), Some(right)) = (item.origin, item.right_origin) else {
                continue;
            };
            if let (Some(l), Some(r)) = (p.seq_of(left), p.seq_of(right)) {
                if l != r {
                    return Err(Crossing {
                        item: (s.client, s.clock),
                    });
                }
            }
        }
        let mut new_keys: Vec<Option<Key>> = std::vec![None; p.new_keys.len()];
        for (key, k) in p.new_keys {
            new_keys[k] = Some(key);
        }
        Ok(Plan {
            structs: structs
                .iter()
                .zip(&p.state)
                .map(|(s, st)| {
                    let seq = match st {
                        State::Done(seq) => *seq,
                        _ => None,
                    };
                    (s.client, s.clock, s.len, seq)
                })
                .collect(),
            new_keys: new_keys.into_iter().flatten().collect(),
        })
    }

    /// Records the structs of `plan` that yrs integrated: the clocks
    /// between `at` (before) and `after` (the document's state vector now).
    pub fn record(&mut self, plan: Plan, at: &StateVector, after: &StateVector) {
        let mut interned: Vec<Option<u32>> = std::vec![None; plan.new_keys.len()];
        for (client, clock, len, seq) in plan.structs {
            let from = clock_of(at, client).max(clock);
            let to = clock_of(after, client).min(clock.saturating_add(len));
            if from >= to {
                continue;
            }
            let seq = match seq {
                None => UNKNOWN,
                Some(Seq::Known(k)) => k,
                Some(Seq::New(k)) => *interned[k].get_or_insert_with(|| {
                    let next = self.keys.len() as u32;
                    *self.keys.entry(plan.new_keys[k].clone()).or_insert(next)
                }),
            };
            self.clients.entry(client).or_default().push(from, to, seq);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::guard::{MAX_DEPTH, structs_v1};
    use yrs::encoding::write::Write;
    use yrs::updates::decoder::Decode;
    use yrs::updates::encoder::{Encoder, EncoderV1};
    use yrs::{Array, Map, ReadTxn, Text, Transact, Update, WriteTxn};

    /// Plans `update`, applies it to `doc` and records it, as the hold does.
    fn integrate(index: &mut Sequences, doc: &yrs::Doc, update: &[u8]) -> Result<(), Crossing> {
        let mut txn = doc.transact_mut();
        let at = txn.state_vector();
        let plan = index.plan(&structs_v1(update, MAX_DEPTH).unwrap(), &at)?;
        txn.apply_update(Update::decode_v1(update).unwrap())
            .unwrap();
        let after = txn.state_vector();
        index.record(plan, &at, &after);
        Ok(())
    }

    #[test]
    fn honest_edits_of_lists_maps_and_text_pass_and_are_recorded() {
        let doc = yrs::Doc::with_client_id(1);
        let mut updates = Vec::new();
        {
            let mut txn = doc.transact_mut();
            let text = txn.get_or_insert_text("t");
            text.insert(&mut txn, 0, "hello");
            let map = txn.get_or_insert_map("m");
            map.insert(&mut txn, "k", "a");
            map.insert(&mut txn, "k", "b");
            let array = txn.get_or_insert_array("a");
            array.insert(&mut txn, 0, 1);
            array.insert(&mut txn, 1, 2);
            updates.push(txn.encode_update_v1());
        }
        {
            let mut txn = doc.transact_mut();
            let text = txn.get_or_insert_text("t");
            text.insert(&mut txn, 2, "XY");
            text.remove_range(&mut txn, 0, 1);
            updates.push(txn.encode_update_v1());
        }
        let replica = yrs::Doc::with_client_id(2);
        let mut index = Sequences::default();
        for u in &updates {
            integrate(&mut index, &replica, u).expect("honest");
        }
        let client = &index.clients[&1];
        assert_eq!(
            client.end,
            doc.transact().state_vector().get(&ClientID::new(1))
        );
        // "hello" and "XY" share a sequence; the map entry and the array
        // have their own.
        assert_eq!(client.lookup(0), client.lookup(client.end - 1));
        assert_eq!(index.keys.len(), 3);
    }

    fn section(e: &mut EncoderV1, structs: u32, client: u64, clock: u32) {
        e.write_var(structs);
        e.write_var(client);
        e.write_var(clock);
    }

    /// 5#0..2: "ab" in root "r"'s list; 5#2: "c" in root "r"'s entry "k".
    fn two_sequences(e: &mut EncoderV1) {
        e.write_info(4); // string content, no origins, no key
        e.write_parent_info(true);
        e.write_string("r");
        e.write_string("ab");
        e.write_info(4 | 0x20);
        e.write_parent_info(true);
        e.write_string("r");
        e.write_string("k");
        e.write_string("c");
    }

    /// 5#3: left origin 5#1 (the list), right origin 5#2 (the map entry).
    /// No encoder makes one.
    fn crossing_item(e: &mut EncoderV1) {
        e.write_info(4 | 0x80 | 0x40);
        e.write_left_id(&yrs::ID::new(ClientID::new(5), 1));
        e.write_right_id(&yrs::ID::new(ClientID::new(5), 2));
        e.write_string("x");
    }

    #[test]
    fn origins_in_a_list_and_a_map_entry_are_refused() {
        let mut e = EncoderV1::new();
        e.write_var(1u32);
        section(&mut e, 3, 5, 0);
        two_sequences(&mut e);
        crossing_item(&mut e);
        e.write_var(0u32); // no deletions
        let update = e.to_vec();
        let mut index = Sequences::default();
        let doc = yrs::Doc::with_client_id(1);
        assert_eq!(
            integrate(&mut index, &doc, &update).unwrap_err(),
            Crossing { item: (5, 3) }
        );
        assert!(index.clients.is_empty(), "nothing recorded");
    }

    #[test]
    fn origins_already_in_the_document_are_checked_too() {
        let mut first = EncoderV1::new();
        first.write_var(1u32);
        section(&mut first, 2, 5, 0);
        two_sequences(&mut first);
        first.write_var(0u32);
        let mut later = EncoderV1::new();
        later.write_var(1u32);
        section(&mut later, 1, 5, 3);
        crossing_item(&mut later);
        later.write_var(0u32);
        let doc = yrs::Doc::with_client_id(1);
        let mut index = Sequences::default();
        integrate(&mut index, &doc, &first.to_vec()).expect("two honest sequences");
        assert_eq!(
            integrate(&mut index, &doc, &later.to_vec()).unwrap_err(),
            Crossing { item: (5, 3) }
        );
    }

    #[test]
    fn a_long_chain_of_origins_resolves_without_recursion() {
        let doc = yrs::Doc::with_client_id(1);
        let update = {
            let mut txn = doc.transact_mut();
            let text = txn.get_or_insert_text("t");
            // Typing backwards: each item's right origin is the one typed
            // before, and none merges with another.
            for _ in 0..50_000u32 {
                text.insert(&mut txn, 0, "a");
            }
            txn.encode_update_v1()
        };
        let structs = structs_v1(&update, MAX_DEPTH).unwrap();
        assert!(structs.len() > 40_000, "{} structs", structs.len());
        let replica = yrs::Doc::with_client_id(2);
        let mut index = Sequences::default();
        integrate(&mut index, &replica, &update).expect("honest");
        assert_eq!(index.clients[&1].runs.len(), 1, "one sequence");
    }

    #[test]
    fn nothing_is_recorded_for_clocks_yrs_did_not_integrate() {
        let source = yrs::Doc::with_client_id(1);
        let update = {
            let mut txn = source.transact_mut();
            txn.get_or_insert_array("a").insert(&mut txn, 0, 1);
            txn.encode_update_v1()
        };
        let mut index = Sequences::default();
        let plan = index
            .plan(
                &structs_v1(&update, MAX_DEPTH).unwrap(),
                &StateVector::default(),
            )
            .unwrap();
        index.record(plan, &StateVector::default(), &StateVector::default());
        assert!(index.clients.is_empty());
        assert!(index.keys.is_empty());
    }
}
