//! A room's durable log as the room sees it: the entries it asks to store,
//! and how it comes back from them, setting aside what no longer loads.

use std::string::{String, ToString};
use std::vec::Vec;

use crate::ReplicaId;
use crate::codec;
use crate::crdt::Causal;
use crate::doc::shared::{DocError, SharedDoc, Snapshot};
use crate::document::DocStore;
use crate::sync::Config as SyncConfig;

/// What a log entry holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// A Yjs update (v1).
    Yrs = 1,
    /// A CRDT delta (codec encoding of a `Causal<DocStore>`).
    Crdt = 2,
}

impl EntryKind {
    /// The stored code.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The kind a stored code names.
    pub fn from_code(code: i64) -> Option<Self> {
        match code {
            1 => Some(EntryKind::Yrs),
            2 => Some(EntryKind::Crdt),
            _ => None,
        }
    }
}

/// One update for a room's log, with the sequence number the room gave it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    /// Room-local sequence number, increasing.
    pub seq: u64,
    /// What the bytes are.
    pub kind: EntryKind,
    /// The update, as accepted.
    pub data: Vec<u8>,
}

/// Something stored that the room could not load: kept by the shell (not
/// deleted), logged and counted, while the room loads without it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetAside {
    /// The log entry's sequence number; `None` for the snapshot.
    pub seq: Option<u64>,
    /// What could not be read (for the snapshot: which half).
    pub kind: EntryKind,
    /// Why.
    pub error: String,
}

/// Rebuilds a document from a snapshot and the log after it, setting aside
/// every part that does not load instead of failing the whole room.
pub(super) fn restore(
    session: u64,
    yrs_client: u64,
    config: SyncConfig,
    snapshot: Option<&Snapshot>,
    entries: &[LogEntry],
) -> (SharedDoc, Vec<SetAside>) {
    let mut set_aside = Vec::new();
    let mut crdt: Vec<&[u8]> = Vec::new();
    if let Some(s) = snapshot.filter(|s| !s.crdt.is_empty()) {
        match codec::decode::<Causal<DocStore>>(&s.crdt) {
            Ok(_) => crdt.push(&s.crdt),
            Err(e) => set_aside.push(SetAside {
                seq: None,
                kind: EntryKind::Crdt,
                error: e.to_string(),
            }),
        }
    }
    for e in entries.iter().filter(|e| e.kind == EntryKind::Crdt) {
        match codec::decode::<Causal<DocStore>>(&e.data) {
            Ok(_) => crdt.push(&e.data),
            Err(err) => set_aside.push(SetAside {
                seq: Some(e.seq),
                kind: EntryKind::Crdt,
                error: err.to_string(),
            }),
        }
    }
    // The snapshot's CRDT state is a delta like the others: join them all.
    let empty = Snapshot::default();
    let build = |crdt: &[&[u8]]| {
        SharedDoc::restore(
            ReplicaId::new(0),
            session,
            yrs_client,
            config,
            Some(&empty),
            crdt.iter().copied(),
            core::iter::empty(),
        )
        .expect("every CRDT part was decoded above")
    };
    let mut yrs: Vec<(Option<u64>, &[u8])> = Vec::new();
    if let Some(s) = snapshot.filter(|s| !s.yrs.is_empty()) {
        yrs.push((None, &s.yrs));
    }
    for e in entries.iter().filter(|e| e.kind == EntryKind::Yrs) {
        yrs.push((Some(e.seq), &e.data));
    }
    // A panic inside yrs can leave its document half-changed: start again
    // without the part that caused it. A refused update leaves the document
    // as it was, so the load just goes on past it.
    let mut panicked: Vec<(usize, SetAside)> = Vec::new();
    'again: loop {
        let mut doc = build(&crdt);
        let mut refused = Vec::new();
        for (i, (seq, bytes)) in yrs.iter().enumerate() {
            if panicked.iter().any(|(j, _)| *j == i) {
                continue;
            }
            if let Err(e) = doc.apply_yrs_update(bytes) {
                let aside = SetAside {
                    seq: *seq,
                    kind: EntryKind::Yrs,
                    error: e.to_string(),
                };
                if e == DocError::Panicked {
                    panicked.push((i, aside));
                    continue 'again;
                }
                refused.push(aside);
            }
        }
        set_aside.extend(panicked.into_iter().map(|(_, a)| a));
        set_aside.extend(refused);
        return (doc, set_aside);
    }
}
