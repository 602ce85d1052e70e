//! What one batch of accepted Yjs updates becomes on the way out: one
//! merged update for every connection that sent none of them, and for each
//! sender the same without its own updates (a sender does not get its own
//! updates back).
//!
//! Merging the batch once per sender costs O(senders × batch): with 200
//! clients typing, a batch holds about 200 updates from 200 senders, and
//! the merges alone (decode, sort, re-encode) took most of the relay's CPU.
//! Instead each sender's updates are merged (usually: re-encoded) once, and
//! the outgoing updates are assembled from those pieces by copying bytes.
//!
//! # Assembly
//!
//! A v1 update is `[n][n client sections][delete set]`, and a client
//! section (`[structs][client][clock][structs...]`) does not depend on
//! anything before or after it. So when no Yjs client id appears in the
//! updates of two senders (the normal case: a connection sends its own
//! client's changes), the update for "everyone but sender s" is the count
//! of the other senders' sections, their sections copied as they are, and
//! the union of their delete sets. yrs encodes every piece, so the bytes
//! are its own canonical encoding. When a client id does appear in the
//! updates of two senders (a client relaying content it got elsewhere, as
//! in sync step 2 after being offline), the batch falls back to merging
//! per sender.

use std::collections::{BTreeMap, HashMap};

use neuroplex_core::doc::SharedDoc;
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{ClientID, IdSet, Update};

use crate::queue::SharedUpdate;
use neuroplex_core::doc::ConnId;

/// The outgoing updates of one batch.
pub struct FanOut {
    /// For every connection that sent nothing in the batch.
    everyone: Vec<SharedUpdate>,
    /// For each sender: what the others sent (empty if nothing).
    senders: HashMap<ConnId, Vec<SharedUpdate>>,
}

impl FanOut {
    /// Plans the fan-out of `updates` (accepted, in order, with their
    /// senders). Merging and cutting run yrs over client bytes: should yrs
    /// panic on them, each update goes out on its own instead.
    pub fn plan(updates: &[(ConnId, Vec<u8>)]) -> FanOut {
        std::panic::catch_unwind(|| Self::plan_merged(updates)).unwrap_or_else(|_| {
            tracing::error!("yrs panicked merging a batch's updates; sending them one by one");
            Self::unmerged(updates)
        })
    }

    /// Every update as it came: everyone gets all of them, a sender all
    /// but its own.
    fn unmerged(updates: &[(ConnId, Vec<u8>)]) -> FanOut {
        let shared: Vec<(ConnId, SharedUpdate)> = updates
            .iter()
            .map(|(id, u)| (*id, SharedUpdate::new(u.clone())))
            .collect();
        let everyone = shared.iter().map(|(_, u)| u.clone()).collect();
        let mut senders = HashMap::new();
        for (id, _) in &shared {
            senders.entry(*id).or_insert_with(|| {
                shared
                    .iter()
                    .filter(|(s, _)| s != id)
                    .map(|(_, u)| u.clone())
                    .collect()
            });
        }
        FanOut { everyone, senders }
    }

    fn plan_merged(updates: &[(ConnId, Vec<u8>)]) -> FanOut {
        let mut by_sender: Vec<(ConnId, Vec<&[u8]>)> = Vec::new();
        for (id, u) in updates {
            match by_sender.iter_mut().find(|(s, _)| s == id) {
                Some((_, us)) => us.push(u),
                None => by_sender.push((*id, vec![u])),
            }
        }
        if by_sender.len() <= 1 {
            let everyone = by_sender
                .first()
                .map(|(_, us)| merge(us))
                .unwrap_or_default();
            let senders = by_sender.iter().map(|(id, _)| (*id, Vec::new())).collect();
            return FanOut { everyone, senders };
        }
        match Pieces::split(&by_sender) {
            Some(pieces) => pieces.assemble(),
            None => Self::merge_per_sender(&by_sender),
        }
    }

    /// What connection `id` is sent.
    pub fn for_conn(&self, id: ConnId) -> &[SharedUpdate] {
        self.senders.get(&id).unwrap_or(&self.everyone)
    }

    /// The general case: one merge for everyone and one per sender.
    fn merge_per_sender(by_sender: &[(ConnId, Vec<&[u8]>)]) -> FanOut {
        let all: Vec<&[u8]> = by_sender.iter().flat_map(|(_, us)| us.clone()).collect();
        let everyone = merge(&all);
        let senders = by_sender
            .iter()
            .map(|(id, _)| {
                let others: Vec<&[u8]> = by_sender
                    .iter()
                    .filter(|(s, _)| s != id)
                    .flat_map(|(_, us)| us.clone())
                    .collect();
                (
                    *id,
                    if others.is_empty() {
                        Vec::new()
                    } else {
                        merge(&others)
                    },
                )
            })
            .collect();
        FanOut { everyone, senders }
    }
}

/// The updates merged into one, or (if yrs refuses to merge them, which it
/// should not for updates it integrated) each on its own: never fewer.
fn merge(updates: &[&[u8]]) -> Vec<SharedUpdate> {
    if updates.len() == 1 {
        return vec![SharedUpdate::new(updates[0].to_vec())];
    }
    match SharedDoc::merge_yrs_updates(updates) {
        Ok(m) => vec![SharedUpdate::new(m)],
        Err(e) => {
            tracing::error!(error = %e, "merging validated updates failed; sending them one by one");
            updates
                .iter()
                .map(|u| SharedUpdate::new(u.to_vec()))
                .collect()
        }
    }
}

/// Each sender's updates, merged and cut into client sections and delete set.
struct Pieces {
    senders: Vec<Piece>,
}

struct Piece {
    id: ConnId,
    /// Number of client sections in `sections`.
    count: u64,
    /// The client sections, as yrs encoded them.
    sections: Vec<u8>,
    /// What the sender's updates delete.
    deletes: IdSet,
}

impl Pieces {
    /// Cuts each sender's updates into pieces; `None` if a client id
    /// appears in two senders' updates or yrs does not decode an update.
    fn split(by_sender: &[(ConnId, Vec<&[u8]>)]) -> Option<Pieces> {
        let mut owner: HashMap<ClientID, ConnId> = HashMap::new();
        let mut senders = Vec::with_capacity(by_sender.len());
        for (id, updates) in by_sender {
            let mut decoded = Vec::with_capacity(updates.len());
            for u in updates {
                decoded.push(Update::decode_v1(u).ok()?);
            }
            let update = if decoded.len() == 1 {
                decoded.pop().expect("one update")
            } else {
                Update::merge_updates(decoded)
            };
            // Clients with at least one block that is not a skip: exactly
            // those yrs writes a section for.
            let clients = update.state_vector_lower();
            for (client, _) in clients.iter() {
                if let Some(other) = owner.insert(*client, *id) {
                    if other != *id {
                        return None;
                    }
                }
            }
            let deletes = update.delete_set().clone();
            let encoded = update.encode_v1();
            let deletes_len = deletes.encode_v1().len();
            let (count, header_len) = read_var_u64(&encoded)?;
            if count != clients.len() as u64 || header_len + deletes_len > encoded.len() {
                return None;
            }
            senders.push(Piece {
                id: *id,
                count,
                sections: encoded[header_len..encoded.len() - deletes_len].to_vec(),
                deletes,
            });
        }
        Some(Pieces { senders })
    }

    fn assemble(self) -> FanOut {
        let total: u64 = self.senders.iter().map(|p| p.count).sum();
        let bytes: usize = self.senders.iter().map(|p| p.sections.len()).sum();
        // Delete sets: the union of all, and for each sender that deletes
        // something, the union of the others' (prefix and suffix unions, so
        // linear in the number of deleting senders).
        let deleting: Vec<usize> = (0..self.senders.len())
            .filter(|&i| !self.senders[i].deletes.is_empty())
            .collect();
        let mut prefix = vec![IdSet::default()];
        for &i in &deleting {
            let next = prefix
                .last()
                .expect("starts with one")
                .merge(&self.senders[i].deletes);
            prefix.push(next);
        }
        let mut suffix = vec![IdSet::default(); deleting.len() + 1];
        for k in (0..deleting.len()).rev() {
            suffix[k] = suffix[k + 1].merge(&self.senders[deleting[k]].deletes);
        }
        let all_deletes = prefix.last().expect("starts with one").encode_v1();
        let others_deletes: BTreeMap<usize, Vec<u8>> = deleting
            .iter()
            .enumerate()
            .map(|(k, &i)| (i, prefix[k].merge(&suffix[k + 1]).encode_v1()))
            .collect();

        let build = |skip: Option<usize>| -> Option<SharedUpdate> {
            let (count, len, deletes) = match skip {
                None => (total, bytes, &all_deletes),
                Some(i) => (
                    total - self.senders[i].count,
                    bytes - self.senders[i].sections.len(),
                    others_deletes.get(&i).unwrap_or(&all_deletes),
                ),
            };
            if count == 0 && deletes.as_slice() == [0] {
                return None;
            }
            let mut out = Vec::with_capacity(10 + len + deletes.len());
            write_var_u64(&mut out, count);
            for (j, p) in self.senders.iter().enumerate() {
                if Some(j) != skip {
                    out.extend_from_slice(&p.sections);
                }
            }
            out.extend_from_slice(deletes);
            Some(SharedUpdate::new(out))
        };
        let everyone = build(None).into_iter().collect();
        let senders = (0..self.senders.len())
            .map(|i| (self.senders[i].id, build(Some(i)).into_iter().collect()))
            .collect();
        FanOut { everyone, senders }
    }
}

/// A lib0 variable-length unsigned integer at the start of `bytes`, and its
/// length.
fn read_var_u64(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, &b) in bytes.iter().enumerate().take(10) {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            return Some((value, i + 1));
        }
    }
    None
}

fn write_var_u64(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[cfg(test)]
mod tests {
    use super::*;
    use yrs::{Doc, GetString, Options, ReadTxn, StateVector, Text, Transact, WriteTxn};

    fn doc(client: u64) -> Doc {
        Doc::with_options(Options {
            client_id: ClientID::new(client),
            ..Options::default()
        })
    }

    fn apply(doc: &Doc, update: &[u8]) {
        let mut txn = doc.transact_mut();
        txn.apply_update(Update::decode_v1(update).unwrap())
            .unwrap();
    }

    fn text(doc: &Doc) -> String {
        let t = doc.transact_mut().get_or_insert_text("t");
        t.get_string(&doc.transact())
    }

    fn state(updates: &[&[u8]]) -> (String, StateVector) {
        let d = Doc::new();
        for u in updates {
            apply(&d, u);
        }
        let sv = d.transact().state_vector();
        (text(&d), sv)
    }

    /// Three clients editing one text: typing, and one deleting what
    /// another typed; every update as a relay would receive it.
    fn batch() -> Vec<(ConnId, Vec<u8>)> {
        let docs: Vec<Doc> = (1..=3).map(doc).collect();
        let mut out = Vec::new();
        let sync = |from: usize, u: &[u8], out: &mut Vec<(ConnId, Vec<u8>)>| {
            for (j, d) in docs.iter().enumerate() {
                if j != from {
                    apply(d, u);
                }
            }
            out.push((from as ConnId + 10, u.to_vec()));
        };
        for round in 0..3 {
            for (i, d) in docs.iter().enumerate() {
                let t = d.transact_mut().get_or_insert_text("t");
                let u = {
                    let mut txn = d.transact_mut();
                    t.insert(&mut txn, 0, &format!("{i}:{round} "));
                    txn.encode_update_v1()
                };
                sync(i, &u, &mut out);
            }
        }
        let d = &docs[2];
        let t = d.transact_mut().get_or_insert_text("t");
        let u = {
            let mut txn = d.transact_mut();
            t.remove_range(&mut txn, 0, 8);
            txn.encode_update_v1()
        };
        sync(2, &u, &mut out);
        out
    }

    fn check(updates: &[(ConnId, Vec<u8>)], plan: &FanOut) {
        let all: Vec<&[u8]> = updates.iter().map(|(_, u)| u.as_slice()).collect();
        let expected = state(&all);
        let everyone: Vec<&[u8]> = plan.for_conn(999).iter().map(|u| u.as_slice()).collect();
        assert_eq!(state(&everyone), expected, "a bystander sees everything");
        let senders: std::collections::BTreeSet<ConnId> =
            updates.iter().map(|(id, _)| *id).collect();
        for s in senders {
            let own: Vec<&[u8]> = updates
                .iter()
                .filter(|(id, _)| *id == s)
                .map(|(_, u)| u.as_slice())
                .collect();
            let got: Vec<&[u8]> = plan.for_conn(s).iter().map(|u| u.as_slice()).collect();
            // Nothing of its own: its client's blocks are not in what it gets.
            for u in &got {
                let decoded = Update::decode_v1(u).unwrap();
                let own_client = ClientID::new(s - 10 + 1);
                assert!(!decoded.state_vector_lower().contains_client(&own_client));
            }
            let with_own: Vec<&[u8]> = own.iter().chain(got.iter()).copied().collect();
            assert_eq!(state(&with_own), expected, "sender {s} converges");
        }
    }

    #[test]
    fn senders_get_the_others_updates_and_bystanders_everything() {
        let updates = batch();
        let plan = FanOut::plan(&updates);
        assert!(
            Pieces::split(&group(&updates)).is_some(),
            "the fast path applies"
        );
        check(&updates, &plan);
        // One update each for a bystander and for every sender.
        assert_eq!(plan.for_conn(999).len(), 1);
        assert!(plan.senders.values().all(|v| v.len() == 1));
        // The same as merging per sender.
        let slow = FanOut::merge_per_sender(&group(&updates));
        check(&updates, &slow);
    }

    fn group(updates: &[(ConnId, Vec<u8>)]) -> Vec<(ConnId, Vec<&[u8]>)> {
        let mut by: Vec<(ConnId, Vec<&[u8]>)> = Vec::new();
        for (id, u) in updates {
            match by.iter_mut().find(|(s, _)| s == id) {
                Some((_, us)) => us.push(u),
                None => by.push((*id, vec![u])),
            }
        }
        by
    }

    #[test]
    fn a_client_relayed_by_two_senders_falls_back_to_merging() {
        let mut updates = batch();
        // Sender 10 also relays sender 11's first update (as a client
        // syncing content it got elsewhere would).
        let relayed = updates.iter().find(|(id, _)| *id == 11).unwrap().1.clone();
        updates.push((10, relayed));
        assert!(Pieces::split(&group(&updates)).is_none());
        let plan = FanOut::plan(&updates);
        let all: Vec<&[u8]> = updates.iter().map(|(_, u)| u.as_slice()).collect();
        let everyone: Vec<&[u8]> = plan.for_conn(999).iter().map(|u| u.as_slice()).collect();
        assert_eq!(state(&everyone), state(&all));
        // Sender 12 gets everything from 10 and 11.
        let own: Vec<&[u8]> = updates
            .iter()
            .filter(|(id, _)| *id == 12)
            .map(|(_, u)| u.as_slice())
            .collect();
        let got: Vec<&[u8]> = plan.for_conn(12).iter().map(|u| u.as_slice()).collect();
        let with_own: Vec<&[u8]> = own.iter().chain(got.iter()).copied().collect();
        assert_eq!(state(&with_own), state(&all));
    }

    #[test]
    fn unmerged_updates_converge_too() {
        // What the relay sends when yrs panics merging a batch.
        let updates = batch();
        let plan = FanOut::unmerged(&updates);
        check(&updates, &plan);
        assert_eq!(plan.for_conn(999).len(), updates.len());
    }

    #[test]
    fn a_single_sender_gets_nothing_back() {
        let updates: Vec<_> = batch().into_iter().filter(|(id, _)| *id == 10).collect();
        let plan = FanOut::plan(&updates);
        assert!(plan.for_conn(10).is_empty());
        assert_eq!(plan.for_conn(999).len(), 1);
        check(&updates, &plan);
    }

    #[test]
    fn varints_round_trip() {
        for v in [0u64, 1, 127, 128, 300, 1 << 35, u64::MAX] {
            let mut b = Vec::new();
            write_var_u64(&mut b, v);
            assert_eq!(read_var_u64(&b), Some((v, b.len())));
        }
        assert_eq!(read_var_u64(&[0x80]), None);
    }
}
