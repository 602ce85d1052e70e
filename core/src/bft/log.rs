//! The message log: one [`Slot`] per sequence number between the low and
//! high watermarks, holding the accepted pre-prepare, the votes of the
//! current view, and what the view-change protocol needs to know (P: the
//! highest-view batch that prepared here; Q: batches that pre-prepared).
//!
//! Bounded: slots exist only inside the window; each holds at most one vote
//! per replica per kind, and at most [`Q_CAP`] pre-prepared batches.

use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;

use super::auth::{Auth, Sig};
use super::message::Batch;
use super::{Digest, ReplicaIndex, Seq, View};

/// Most distinct batches remembered as pre-prepared at one sequence number
/// (one per view at most; older ones are forgotten first, never the one
/// that prepared). Safety never depends on Q — fewer entries only make A2
/// harder — but forgetting can cost liveness in contrived schedules (see
/// the PBFT part of docs/ARCHITECTURE.md).
pub const Q_CAP: usize = 4;

/// The pre-prepare accepted for the slot's latest view.
#[derive(Clone, Debug)]
pub struct Accepted {
    /// Its view.
    pub view: View,
    /// The batch digest.
    pub digest: Digest,
    /// The batch.
    pub batch: Arc<Batch>,
    /// The primary's authenticator (none if a new view decided it).
    pub auth: Option<Auth>,
}

/// A vote as recorded: the digest, and the signature if votes are signed.
#[derive(Clone, Copy, Debug)]
pub struct Recorded {
    /// What it votes for.
    pub digest: Digest,
    /// The signature (signature mode only), for proofs.
    pub sig: Option<Sig>,
}

/// One sequence number's state.
#[derive(Clone, Debug, Default)]
pub struct Slot {
    /// The pre-prepare accepted in the latest view.
    pub pp: Option<Accepted>,
    /// The view the votes below belong to.
    pub votes_view: View,
    /// Prepares in `votes_view`, by sender.
    pub prepares: BTreeMap<ReplicaIndex, Recorded>,
    /// Commits in `votes_view`, by sender.
    pub commits: BTreeMap<ReplicaIndex, Recorded>,
    /// P: the highest view in which a batch prepared here, and its digest.
    pub prepared: Option<(View, Digest)>,
    /// Q: (view, digest, batch), latest view per digest.
    pub preprepared: Vec<(View, Digest, Arc<Batch>)>,
    /// The view in which this replica sent its commit.
    pub commit_sent: Option<View>,
    /// The committed digest.
    pub committed: Option<Digest>,
    /// A pre-prepare seen while changing views (not accepted: it is not
    /// in Q and no vote is sent for it), to execute what others commit.
    pub observed: Option<Accepted>,
}

impl Slot {
    /// Moves the vote sets to `view`, forgetting older views' votes.
    pub fn votes_for(&mut self, view: View) {
        if self.votes_view != view {
            self.votes_view = view;
            self.prepares.clear();
            self.commits.clear();
        }
    }

    /// Accepts a pre-prepare (records it in Q too).
    pub fn accept(&mut self, view: View, digest: Digest, batch: Arc<Batch>, auth: Option<Auth>) {
        if let Some(q) = self.preprepared.iter_mut().find(|q| q.1 == digest) {
            q.0 = q.0.max(view);
        } else {
            if self.preprepared.len() >= Q_CAP {
                let keep = self.prepared.map(|p| p.1);
                if let Some(i) = self
                    .preprepared
                    .iter()
                    .enumerate()
                    .filter(|(_, q)| Some(q.1) != keep)
                    .min_by_key(|(_, q)| q.0)
                    .map(|(i, _)| i)
                {
                    self.preprepared.remove(i);
                }
            }
            self.preprepared.push((view, digest, batch.clone()));
        }
        self.pp = Some(Accepted {
            view,
            digest,
            batch,
            auth,
        });
        self.votes_for(view);
    }

    /// The accepted pre-prepare if it is for `view`.
    pub fn pp_in(&self, view: View) -> Option<&Accepted> {
        self.pp.as_ref().filter(|a| a.view == view)
    }

    /// A batch with this digest, from the pre-prepare or Q.
    pub fn batch(&self, digest: &Digest) -> Option<&Arc<Batch>> {
        if let Some(a) = &self.pp
            && a.digest == *digest
        {
            return Some(&a.batch);
        }
        if let Some(a) = &self.observed
            && a.digest == *digest
        {
            return Some(&a.batch);
        }
        self.preprepared
            .iter()
            .find(|q| q.1 == *digest)
            .map(|q| &q.2)
    }

    /// Number of recorded votes for `digest` in `map`.
    pub fn count(map: &BTreeMap<ReplicaIndex, Recorded>, digest: &Digest) -> usize {
        map.values().filter(|r| r.digest == *digest).count()
    }
}

/// Slots by sequence number.
#[derive(Clone, Debug, Default)]
pub struct Log {
    slots: BTreeMap<Seq, Slot>,
}

impl Log {
    /// The slot at `seq`, created if absent.
    pub fn slot(&mut self, seq: Seq) -> &mut Slot {
        self.slots.entry(seq).or_default()
    }

    /// The slot at `seq`, if any.
    pub fn get(&self, seq: Seq) -> Option<&Slot> {
        self.slots.get(&seq)
    }

    /// Drops every slot at or below `low`.
    pub fn collect(&mut self, low: Seq) {
        self.slots = self.slots.split_off(&(low + 1));
    }

    /// All slots in order.
    pub fn iter(&self) -> impl Iterator<Item = (&Seq, &Slot)> {
        self.slots.iter()
    }

    /// Slots above `seq`, in order.
    pub fn above(&self, seq: Seq) -> impl Iterator<Item = (&Seq, &Slot)> {
        self.slots.range(seq + 1..)
    }

    /// The highest slot's sequence number.
    pub fn last(&self) -> Option<Seq> {
        self.slots.keys().next_back().copied()
    }

    /// Number of slots.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True if there are no slots.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}
