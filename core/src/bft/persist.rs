//! What a replica writes to stable storage, as an append-only journal of
//! [`Record`]s, and how it comes back.
//!
//! A replica persists what it has promised — its view, the pre-prepares it
//! accepted (a prepare promises not to accept another batch at that view and
//! sequence number), what prepared (a commit promises it), its checkpoints,
//! the low watermark a new view chose (its prepares in that view promise
//! nothing below it is reopened) — before the messages carrying those
//! promises leave. Restarting from the
//! journal is therefore not a fault; restarting without it is, and counts
//! toward f.
//!
//! Compaction: once a [`Record::Stable`] at sequence s is durable, every
//! record whose [`Record::seq`] is at or below s, and every [`Record::View`]
//! but the last, can be dropped ([`compact`]).

use alloc::sync::Arc;
use alloc::vec::Vec;

use super::message::{Batch, CheckpointData, Signed};
use super::{Digest, Seq, View};
use crate::bft::auth::Auth;

/// One journal entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// Entered `view` (changing views toward it if not `normal`).
    View {
        /// The view.
        view: View,
        /// False while changing views.
        normal: bool,
    },
    /// Accepted (backup) or proposed (primary) this batch at (view, seq).
    Accepted {
        /// The view.
        view: View,
        /// The sequence number.
        seq: Seq,
        /// The batch digest.
        digest: Digest,
        /// The batch.
        batch: Arc<Batch>,
        /// The primary's authenticator (to forward the pre-prepare later);
        /// none for batches decided by a new view.
        auth: Option<Auth>,
    },
    /// The batch prepared at (view, seq): this replica sends commits for it.
    Prepared {
        /// The view.
        view: View,
        /// The sequence number.
        seq: Seq,
        /// The batch digest.
        digest: Digest,
    },
    /// The batch at seq committed (2f+1 commits seen).
    Committed {
        /// The sequence number.
        seq: Seq,
        /// The batch digest.
        digest: Digest,
        /// The batch.
        batch: Arc<Batch>,
    },
    /// This replica computed a checkpoint.
    Checkpoint(Arc<CheckpointData>),
    /// A new view chose the checkpoint (`seq`, `digest`), whose state this
    /// replica does not hold, as its low watermark: nothing at or below
    /// `seq` may be accepted again, and the state is fetched (a later
    /// [`Record::Stable`] at `seq` supersedes this one).
    Chosen {
        /// The checkpoint's sequence number.
        seq: Seq,
        /// Its digest.
        digest: Digest,
    },
    /// The checkpoint at `data.seq` is this replica's low watermark
    /// (certified by `proof`, or chosen by a new view if `proof` is short).
    Stable {
        /// The state.
        data: Arc<CheckpointData>,
        /// Its digest.
        digest: Digest,
        /// 2f+1 signed matching checkpoint votes (may be empty when the
        /// checkpoint was chosen by a new view).
        proof: Vec<Signed>,
    },
}

impl Record {
    /// The sequence number the record is about (`None` for views).
    pub fn seq(&self) -> Option<Seq> {
        match self {
            Record::View { .. } => None,
            Record::Accepted { seq, .. }
            | Record::Prepared { seq, .. }
            | Record::Committed { seq, .. }
            | Record::Chosen { seq, .. } => Some(*seq),
            Record::Checkpoint(d) => Some(d.seq),
            Record::Stable { data, .. } => Some(data.seq),
        }
    }
}

/// Drops the records a later `Stable` record made obsolete, keeping the
/// order of the rest.
pub fn compact(records: &mut Vec<Record>) {
    let stable = records
        .iter()
        .rposition(|r| matches!(r, Record::Stable { .. }));
    let last_view = records
        .iter()
        .rposition(|r| matches!(r, Record::View { .. }));
    let Some(s) = stable else { return };
    let low = records[s].seq().unwrap_or(0);
    let mut i = 0;
    records.retain(|r| {
        let keep = match r {
            Record::View { .. } => Some(i) == last_view,
            Record::Stable { .. } => i == s,
            _ => r.seq().is_some_and(|q| q > low),
        };
        i += 1;
        keep
    });
}
