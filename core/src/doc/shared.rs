//! [`SharedDoc`]: one replica of a room's document.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::string::{String, ToString};
use std::vec::Vec;

use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{ReadTxn, StateVector, Transact, Update};

use super::guard::{self, GuardError};
use super::hold::Hold;
use crate::ReplicaId;
use crate::codec;
use crate::crdt::{Causal, Lattice};
use crate::document::DocStore;
use crate::sync::{Config, Replica, SyncError};

/// Why an update or a snapshot was refused. The document is unchanged,
/// except after [`DocError::Panicked`], when it must be discarded and
/// reloaded from storage (yrs panicked half-way through an update).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocError {
    /// The bytes are not a Yjs update (v1) or state vector.
    BadYrsEncoding(String),
    /// A value in the update nests deeper than [`guard::MAX_DEPTH`]
    /// (close with [`super::CloseCode::TOO_NESTED`]).
    TooDeep(String),
    /// yrs decoded the update but refused to integrate it.
    YrsRejected(String),
    /// yrs panicked while integrating the update: discard this document.
    Panicked,
    /// A core::sync message or stored delta was refused.
    Sync(SyncError),
}

impl core::fmt::Display for DocError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            DocError::BadYrsEncoding(e) => write!(f, "not a valid Yjs update: {e}"),
            DocError::TooDeep(e) => write!(f, "Yjs update nested too deep: {e}"),
            DocError::YrsRejected(e) => write!(f, "Yjs update refused: {e}"),
            DocError::Panicked => write!(f, "Yjs update made the decoder fail"),
            DocError::Sync(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for DocError {}

impl From<GuardError> for DocError {
    fn from(e: GuardError) -> Self {
        match e {
            GuardError::TooDeep { .. } => DocError::TooDeep(e.to_string()),
            _ => DocError::BadYrsEncoding(e.to_string()),
        }
    }
}

impl From<SyncError> for DocError {
    fn from(e: SyncError) -> Self {
        DocError::Sync(e)
    }
}

/// A document's whole durable state, as stored: the CRDT state (codec
/// encoding of a [`crate::document::Document`]) and the yrs state as one
/// update (v1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// `codec::encode(&Document)`.
    pub crdt: Vec<u8>,
    /// `encode_state_as_update_v1` from the empty state vector.
    pub yrs: Vec<u8>,
}

/// One replica of a room's document: a [`Replica`] of the CRDT store
/// (delta-interval anti-entropy, see [`crate::sync`]) and a [`yrs::Doc`]
/// (Yjs sync: state vectors and updates).
///
/// Every Yjs update that enters is decoded and integrated by yrs before it
/// is reported as accepted, so a caller that stores or forwards only
/// accepted updates never spreads bytes yrs cannot read.
pub struct SharedDoc {
    crdt: Replica<DocStore>,
    yrs: yrs::Doc,
    /// Updates waiting for missing dependencies (see [`SharedDoc::held`]).
    held: Hold,
}

/// What [`SharedDoc::apply_yrs_update_releasing`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// The update changed the document (or waits for dependencies).
    pub changed: bool,
    /// Held updates (v1) that this one let in, wholly or in part.
    pub released: Vec<Vec<u8>>,
    /// Held updates dropped beyond the hold's bounds ([`super::MAX_HELD`]):
    /// peers are to be asked again for what the document lacks.
    pub dropped: usize,
    /// The update waits whole for what it lacks (see [`SharedDoc::held`]):
    /// it is to be stored, and forwarded only once released.
    pub waits: bool,
}

impl SharedDoc {
    /// An empty document. `yrs_client` is this replica's Yjs client id
    /// (random, below 2^53 for JavaScript peers); `session` as in
    /// [`Replica::new`].
    pub fn new(id: ReplicaId, session: u64, yrs_client: u64, config: Config) -> Self {
        Self {
            crdt: Replica::new(id, session, config),
            yrs: new_ydoc(yrs_client),
            held: Hold::default(),
        }
    }

    /// Like [`SharedDoc::new`], with the yrs document's options chosen by
    /// the caller: its client id (a `yrs::ClientID`, 53 bits), its guid, and
    /// `offset_kind` — [`yrs::OffsetKind::Utf16`] makes text indices and
    /// lengths count UTF-16 code units, as Yjs does (the JavaScript
    /// bindings use it). Offsets only affect local edits and events: the
    /// update encoding, and so every peer, is the same either way.
    pub fn with_yrs_options(
        id: ReplicaId,
        session: u64,
        config: Config,
        options: yrs::Options,
    ) -> Self {
        Self {
            crdt: Replica::new(id, session, config),
            yrs: yrs::Doc::with_options(options),
            held: Hold::default(),
        }
    }

    /// A document restored from its stored state: a snapshot (if any), then
    /// the CRDT deltas and Yjs updates stored after it, in any order.
    pub fn restore<'a>(
        id: ReplicaId,
        session: u64,
        yrs_client: u64,
        config: Config,
        snapshot: Option<&Snapshot>,
        crdt_deltas: impl IntoIterator<Item = &'a [u8]>,
        yrs_updates: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<Self, DocError> {
        let mut state: Causal<DocStore> = match snapshot {
            Some(s) if !s.crdt.is_empty() => {
                codec::decode(&s.crdt).map_err(|e| DocError::Sync(e.into()))?
            }
            _ => Causal::default(),
        };
        for d in crdt_deltas {
            let delta: Causal<DocStore> = codec::decode(d).map_err(|e| DocError::Sync(e.into()))?;
            state.join(delta);
        }
        let mut doc = Self {
            crdt: Replica::restore(id, session, state, config),
            yrs: new_ydoc(yrs_client),
            held: Hold::default(),
        };
        if let Some(s) = snapshot {
            if !s.yrs.is_empty() {
                doc.apply_yrs_update(&s.yrs)?;
            }
        }
        for u in yrs_updates {
            doc.apply_yrs_update(u)?;
        }
        Ok(doc)
    }

    /// The CRDT replica (read-only).
    pub fn crdt(&self) -> &Replica<DocStore> {
        &self.crdt
    }

    /// The CRDT replica, to mutate or to feed sync messages.
    pub fn crdt_mut(&mut self) -> &mut Replica<DocStore> {
        &mut self.crdt
    }

    /// The yrs document (to read it, observe it, or edit it locally:
    /// a local transaction's `encode_update_v1` is what peers need).
    pub fn yrs(&self) -> &yrs::Doc {
        &self.yrs
    }

    /// Decodes and integrates one Yjs update (v1). `Ok(true)` if it changed
    /// the document (or left parts waiting for missing dependencies),
    /// `Ok(false)` if everything in it was known already.
    pub fn apply_yrs_update(&mut self, update: &[u8]) -> Result<bool, DocError> {
        self.apply_yrs_update_releasing(update).map(|a| a.changed)
    }

    /// Like [`SharedDoc::apply_yrs_update`], and also says which held
    /// updates (see [`SharedDoc::held`]) this one let in: peers that joined
    /// after those arrived have not seen them yet.
    pub fn apply_yrs_update_releasing(&mut self, update: &[u8]) -> Result<Applied, DocError> {
        // yrs recurses into nested values: the guard first, or one update
        // overflows the stack (an abort, not a panic).
        guard::check_update_v1(update, guard::MAX_DEPTH)?;
        let decoded =
            Update::decode_v1(update).map_err(|e| DocError::BadYrsEncoding(e.to_string()))?;
        let doc = &self.yrs;
        let held = &mut self.held;
        // yrs has panicked on crafted input in the past; a panic here must not
        // take the relay down with it. The caller discards the document.
        let result = catch_unwind(AssertUnwindSafe(|| {
            let mut txn = doc.transact_mut();
            // "Changed" is decided from the update itself, before it is
            // applied: only an update whose every struct the document already
            // has, and that deletes nothing, is a no-op. Judging by what the
            // transaction reports afterwards missed real changes (room_sim
            // seed 113: a change the relay applied but did not store, lost at
            // the next restart), and a missed change is lost data, while a
            // stored no-op only costs a row.
            let before = txn.state_vector();
            // (`Update::state_vector` is no upper bound here: it counts
            // only blocks that start at clock 0.)
            let known = decoded.delete_set().is_empty()
                && decoded.insertions(true).iter().all(|(client, ranges)| {
                    let have = before.get(client);
                    ranges.iter().all(|r| r.end <= have)
                });
            let outcome = held.apply(&mut txn, update, decoded)?;
            Ok(Applied {
                changed: !known,
                released: outcome.released,
                dropped: outcome.dropped,
                waits: outcome.waits,
            })
        }));
        result.unwrap_or(Err(DocError::Panicked))
    }

    /// How many updates wait for dependencies the document lacks (see
    /// [`Hold`]).
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Drops the updates that wait (see [`SharedDoc::held`]); returns how
    /// many. Whoever sent them still has them, with what they wait for,
    /// and sends both when asked for what the document lacks.
    pub fn drop_held(&mut self) -> usize {
        self.held.clear()
    }

    /// Checks that `update` is a Yjs update (v1) without integrating it.
    pub fn check_yrs_update(update: &[u8]) -> Result<(), DocError> {
        guard::check_update_v1(update, guard::MAX_DEPTH)?;
        Update::decode_v1(update)
            .map(|_| ())
            .map_err(|e| DocError::BadYrsEncoding(e.to_string()))
    }

    /// Merges several Yjs updates (v1) into one, as yrs does for y-websocket
    /// batching.
    pub fn merge_yrs_updates(updates: &[&[u8]]) -> Result<Vec<u8>, DocError> {
        for u in updates {
            guard::check_update_v1(u, guard::MAX_DEPTH)?;
        }
        yrs::merge_updates_v1(updates).map_err(|e| DocError::BadYrsEncoding(e.to_string()))
    }

    /// This document's Yjs state vector (v1), for sync step 1.
    pub fn yrs_state_vector(&self) -> Vec<u8> {
        self.yrs.transact().state_vector().encode_v1()
    }

    /// What a peer with `state_vector` (v1) lacks, as one update (v1), for
    /// sync step 2. Held updates (see [`SharedDoc::held`]) are not in it.
    pub fn yrs_diff(&self, state_vector: &[u8]) -> Result<Vec<u8>, DocError> {
        guard::check_state_vector_v1(state_vector)?;
        let sv = StateVector::decode_v1(state_vector)
            .map_err(|e| DocError::BadYrsEncoding(e.to_string()))?;
        Ok(self.yrs_diff_from(&sv))
    }

    /// Like [`SharedDoc::yrs_diff`], from a decoded state vector.
    pub fn yrs_diff_from(&self, sv: &StateVector) -> Vec<u8> {
        self.yrs.transact().encode_state_as_update_v1(sv)
    }

    /// The whole state, for storage (see [`SharedDoc::restore`]), held
    /// updates not included: whoever stores it keeps those apart.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            crdt: codec::encode(self.crdt.state()).expect("documents always serialize"),
            yrs: self.yrs_diff_from(&StateVector::default()),
        }
    }
}

fn new_ydoc(client: u64) -> yrs::Doc {
    yrs::Doc::with_client_id(client & ((1 << 53) - 1))
}
