//! [`Doc`]: one replica of a document, as JavaScript sees it. The state
//! it shares with its handles is [`crate::inner`].

use std::cell::RefCell;
#[cfg(feature = "yrs")]
use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::rc::Rc;

use js_sys::{Array, Function, Object, Reflect};
use neuroplex_core::sync::Config;
use neuroplex_core::{Hlc, ReplicaId};
use wasm_bindgen::prelude::*;

#[cfg(feature = "yrs")]
use neuroplex_core::doc::{PresenceClock, SharedDoc};
#[cfg(not(feature = "yrs"))]
use neuroplex_core::sync::Replica as CrdtReplica;

use crate::handles::{Counter, DocMap, DocSet, Flag, Register};
use crate::inner::{DocInner, Shared, borrow, commit, unsubscribe};
use crate::random;
use crate::value::{strings, type_error};

/// One replica of a document: CRDT values by name (counters, sets,
/// registers, flags, nested maps) and, in the full build, texts.
#[wasm_bindgen]
pub struct Doc {
    pub(crate) inner: Shared,
}

#[wasm_bindgen]
impl Doc {
    /// A new, empty document. `options.replica` names this replica (random
    /// when omitted); two live documents must never share one.
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(unchecked_param_type = "DocOptions")] options: Option<Object>,
    ) -> Result<Doc, JsValue> {
        let mut replica_name = None;
        if let Some(o) = &options {
            let r = Reflect::get(o, &"replica".into())?;
            if !r.is_undefined() {
                match r.as_string() {
                    Some(s) if !s.is_empty() => replica_name = Some(s),
                    _ => return Err(type_error("options.replica must be a non-empty string")),
                }
            }
        }
        let (replica, replica_name) = match replica_name {
            Some(name) => {
                let id = match name.parse::<u64>() {
                    Ok(n) if n > 0 => n,
                    _ => random::hash_name(&name),
                };
                (ReplicaId::new(id), name)
            }
            None => {
                let id = random::u64()?.max(1);
                (ReplicaId::new(id), id.to_string())
            }
        };
        let session = random::u64()?;
        let config = Config::default();
        #[cfg(feature = "yrs")]
        let shared = {
            let mut opts = yrs::Options::with_client_id(yrs::ClientID::new(random::u53()?));
            opts.offset_kind = yrs::OffsetKind::Utf16;
            SharedDoc::with_yrs_options(replica, session, config, opts)
        };
        let inner = Rc::new_cyclic(|weak| {
            RefCell::new(DocInner {
                #[cfg(feature = "yrs")]
                y: crate::yrs_state::YrsState::new(shared.yrs().clone()),
                #[cfg(feature = "yrs")]
                shared,
                #[cfg(not(feature = "yrs"))]
                crdt: CrdtReplica::new(replica, session, config),
                replica,
                replica_name,
                clock: Hlc::new(replica),
                pending: BTreeSet::new(),
                scheduled: false,
                transact_depth: 0,
                listeners: Vec::new(),
                #[cfg(feature = "yrs")]
                text_observers: BTreeMap::new(),
                next_id: 0,
                #[cfg(feature = "yrs")]
                sessions: BTreeMap::new(),
                #[cfg(feature = "yrs")]
                presence_clock: PresenceClock::new(),
                weak: weak.clone(),
            })
        });
        Ok(Doc { inner })
    }

    /// This replica's name (`options.replica`, or the random id).
    #[wasm_bindgen(getter)]
    pub fn replica(&self) -> Result<String, JsValue> {
        Ok(borrow(&self.inner)?.replica_name.clone())
    }

    /// The counter `name`.
    pub fn counter(&self, name: String) -> Counter {
        Counter::new(self.inner.clone(), vec![name])
    }

    /// The add-wins set `name`.
    #[wasm_bindgen(js_name = set)]
    pub fn set_(&self, name: String) -> DocSet {
        DocSet::new(self.inner.clone(), vec![name])
    }

    /// The register `name`: last writer wins (by hybrid logical clock),
    /// concurrent values stay visible through `conflicts()`.
    pub fn register(&self, name: String) -> Register {
        Register::new(self.inner.clone(), vec![name])
    }

    /// The enable-wins flag `name`.
    pub fn flag(&self, name: String) -> Flag {
        Flag::new(self.inner.clone(), vec![name])
    }

    /// The map `name`: named values one level down.
    pub fn map(&self, name: String) -> DocMap {
        DocMap::new(self.inner.clone(), vec![name])
    }

    /// Removes the value `name` (every kind it holds, nested values too).
    pub fn remove(&self, name: String) -> Result<(), JsValue> {
        borrow(&self.inner)?.remove(&[name]);
        Ok(())
    }

    /// Names of the CRDT values present, in order.
    #[wasm_bindgen(unchecked_return_type = "string[]")]
    pub fn keys(&self) -> Result<Array, JsValue> {
        let d = borrow(&self.inner)?;
        Ok(strings(d.crdt().state().store().keys()))
    }

    /// Runs `fn` and commits its changes as one (one change event; nested
    /// calls commit with the outermost). If `fn` throws, what it changed
    /// stays and is committed, and the exception is rethrown.
    pub fn transact(
        &self,
        #[wasm_bindgen(unchecked_param_type = "() => any")] f: &Function,
    ) -> Result<JsValue, JsValue> {
        borrow(&self.inner)?.transact_depth += 1;
        let r = f.call0(&JsValue::UNDEFINED);
        let outermost = {
            let mut d = borrow(&self.inner)?;
            d.transact_depth -= 1;
            d.transact_depth == 0
        };
        if outermost {
            commit(&self.inner)?;
        }
        r
    }

    /// Commits pending changes now (they are committed at the latest in
    /// the next microtask anyway).
    pub fn commit(&self) -> Result<(), JsValue> {
        commit(&self.inner)
    }

    /// Subscribes to `'change'`: `cb(event)` after every commit that
    /// changed something. Returns the function that unsubscribes.
    #[wasm_bindgen(unchecked_return_type = "() => void")]
    pub fn on(
        &self,
        #[wasm_bindgen(unchecked_param_type = "'change'")] event: &str,
        #[wasm_bindgen(unchecked_param_type = "(event: ChangeEvent) => void")] cb: Function,
    ) -> Result<Function, JsValue> {
        if event != "change" {
            return Err(type_error(&format!(
                "unknown event \"{event}\": a document emits \"change\""
            )));
        }
        let mut d = borrow(&self.inner)?;
        let id = d.next_id();
        d.listeners.push((id, cb));
        let weak = Rc::downgrade(&self.inner);
        Ok(unsubscribe(move || {
            if let Some(doc) = weak.upgrade() {
                if let Ok(mut d) = doc.try_borrow_mut() {
                    d.listeners.retain(|(i, _)| *i != id);
                }
            }
        }))
    }

    /// The whole state (CRDT values and texts), for `applyUpdate` on
    /// another document or for storage.
    #[wasm_bindgen(js_name = encodeState)]
    pub fn encode_state(&self) -> Result<Vec<u8>, JsValue> {
        commit(&self.inner)?;
        let mut d = borrow(&self.inner)?;
        crate::state::encode(&mut d)
    }

    /// Merges a state made by `encodeState` (of any replica). Bytes that
    /// are not one throw an `Error` and leave the document as it was.
    #[wasm_bindgen(js_name = applyUpdate)]
    pub fn apply_update(&self, bytes: &[u8]) -> Result<(), JsValue> {
        commit(&self.inner)?;
        let dispatch = {
            let mut d = borrow(&self.inner)?;
            crate::state::apply(&mut d, bytes)?
        };
        dispatch.run()
    }
}
