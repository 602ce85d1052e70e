//! A connection: its number, and what the room knows of it.

use std::collections::BTreeSet;

use yrs::StateVector;

use super::Protocol;
use crate::sync::Message as SyncMsg;

/// A connection's number, unique in the shell. Its own small item here,
/// so that the shell's modules (fan-out, registry, room task) name
/// connections without depending on one another.
pub type ConnId = u64;

/// One connection's protocol state, and the queries it asked in the
/// current batch (answered once, at its end).
pub(super) struct Conn {
    pub protocol: Protocol,
    pub writable: bool,
    /// Presence ids this connection owns (removed when it leaves).
    pub presence: BTreeSet<u64>,
    /// The room's presence removal count when it joined.
    pub joined: u64,
    /// Native: the Hello arrived.
    pub hello: bool,
    /// Native: a delta was sent and its acknowledgement is awaited.
    pub awaiting_ack: bool,
    /// Native: Yjs updates received, for `YrsSaved`.
    pub yrs_received: u64,
    /// Native: a `YrsSaved` is owed at the end of the batch.
    pub saved_pending: bool,
    /// Native: a read-only refusal was sent in this batch.
    pub refused_write: bool,
    /// A Yjs diff is owed from this state vector (the lowest clock of every
    /// client over the batch's requests, so one answer serves them all).
    pub yrs_diff: Option<StateVector>,
    /// `/yjs`: an awareness query came in this batch.
    pub awareness_query: bool,
    /// Native: the batch's latest CRDT sync request (a later one knows at
    /// least as much as an earlier one).
    pub sync_request: Option<SyncMsg>,
    /// Bytes of replies built for this connection in this batch.
    pub reply_bytes: usize,
}

impl Conn {
    pub fn new(protocol: Protocol, writable: bool, joined: u64) -> Self {
        Self {
            protocol,
            writable,
            presence: BTreeSet::new(),
            joined,
            hello: false,
            awaiting_ack: false,
            yrs_received: 0,
            saved_pending: false,
            refused_write: false,
            yrs_diff: None,
            awareness_query: false,
            sync_request: None,
            reply_bytes: 0,
        }
    }

    /// Another request for what this connection lacks, from `sv`.
    pub fn want_yrs_diff(&mut self, sv: StateVector) {
        self.yrs_diff = Some(match self.yrs_diff.take() {
            None => sv,
            Some(known) => known
                .iter()
                .filter_map(|(client, clock)| {
                    let low = (*clock).min(sv.get(client));
                    (low > 0).then_some((*client, low))
                })
                .collect(),
        });
    }
}
