//! `encodeState` / `applyUpdate`: a document's whole state as bytes.
//!
//! The format: the codec's version byte, then the postcard encoding of
//! [`State`] — the CRDT state (`codec::encode` of a
//! `core::document::Document`) and the yrs state as one Yjs update (v1), each
//! as length-prefixed bytes. Either part may be empty.

use std::collections::BTreeSet;

use neuroplex_core::codec;
use neuroplex_core::crdt::Causal;
use neuroplex_core::document::DocStore;
use neuroplex_core::sync::Bytes;
use serde::{Deserialize, Serialize};
use wasm_bindgen::JsValue;

use crate::inner::{Dispatch, DocInner};
use crate::value::error;

#[derive(Serialize, Deserialize)]
struct State {
    crdt: Bytes,
    yrs: Bytes,
}

pub(crate) fn encode(d: &mut DocInner) -> Result<Vec<u8>, JsValue> {
    let crdt = codec::encode(d.crdt().state()).map_err(|e| error(&format!("{e:?}")))?;
    #[cfg(feature = "yrs")]
    let yrs = d.shared.yrs_diff_from(&yrs::StateVector::default());
    #[cfg(not(feature = "yrs"))]
    let yrs = Vec::new();
    codec::encode(&State {
        crdt: Bytes(crdt),
        yrs: Bytes(yrs),
    })
    .map_err(|e| error(&format!("{e:?}")))
}

/// Decodes everything first, so that bad bytes change nothing.
pub(crate) fn apply(d: &mut DocInner, bytes: &[u8]) -> Result<Dispatch, JsValue> {
    let state: State =
        codec::decode(bytes).map_err(|e| error(&format!("not a neuroplex document state: {e}")))?;
    let crdt: Option<Causal<DocStore>> = if state.crdt.0.is_empty() {
        None
    } else {
        Some(
            codec::decode(&state.crdt.0)
                .map_err(|e| error(&format!("not a valid document state (values): {e}")))?,
        )
    };
    #[allow(unused_mut)]
    let mut yrs_changed = false;
    #[cfg(feature = "yrs")]
    if !state.yrs.0.is_empty() {
        neuroplex_core::doc::SharedDoc::check_yrs_update(&state.yrs.0)
            .map_err(|e| error(&format!("not a valid document state (texts): {e}")))?;
        d.y.close_txn();
        let changed = d
            .shared
            .apply_yrs_update(&state.yrs.0)
            .map_err(|e| error(&format!("not a valid document state (texts): {e}")))?;
        yrs_changed = changed;
        if changed {
            // Not a local edit, so not captured: send it on as it came.
            for outbox in d.sessions.values_mut() {
                outbox.core.queue_yrs(state.yrs.0.clone());
            }
        }
    }
    let names = match crdt {
        Some(c) => d.join_state(c)?,
        None => BTreeSet::new(),
    };
    let wake = yrs_changed || !names.is_empty();
    Ok(d.events(false, names, wake))
}
