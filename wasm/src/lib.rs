//! Neuroplex for JavaScript: the WebAssembly side of the npm package
//! `neuroplex`.
//!
//! - [`Doc`]: one replica of a document — CRDT values (counters, sets,
//!   registers, flags, nested maps; `core::sync`) and, with feature `yrs`,
//!   texts (a `yrs::Doc`, UTF-16 indices as in Yjs) with undo/redo.
//! - [`Session`] (feature `yrs`): the native protocol's client side as a
//!   sans-IO object — frames in, frames out. The npm package's JavaScript
//!   layer owns the WebSocket, the timers and the reconnects.
//!
//! Edits are cheap to make one call at a time: a yrs transaction stays open
//! across calls and is committed at the latest in a microtask (or before an
//! undo, an encode, a sync frame or an event), so a keystroke costs one
//! insert, not one transaction.
//!
//! Nothing here panics on bad input: values that are not JSON-like throw a
//! `TypeError`, out-of-range indices a `RangeError`, bytes that are not a
//! document state or a frame an `Error`, and the document is left as it was.

#![deny(unsafe_code)]

mod doc;
mod handles;
mod inner;
mod random;
#[cfg(feature = "yrs")]
mod session;
mod state;
#[cfg(feature = "yrs")]
mod text;
mod value;
#[cfg(feature = "yrs")]
mod yrs_state;

pub use doc::Doc;
pub use handles::{Counter, DocMap, DocSet, Flag, Register};
#[cfg(feature = "yrs")]
pub use session::Session;
#[cfg(feature = "yrs")]
pub use text::{StickyIndex, Text};

use wasm_bindgen::prelude::*;

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &'static str = r#"
/** What a set, a register or a map value holds: JSON-like data, plus bytes. */
export type Value = null | boolean | number | bigint | string | Uint8Array | Value[] | { [key: string]: Value };

/** Options of `new Doc()`. */
export interface DocOptions {
  /**
   * This replica's id. Random when omitted (the right choice unless the
   * document's state is restored from storage made by the same replica).
   * Two live documents must never share one.
   */
  replica?: string;
}

/** What one committed change touched (`doc.on('change', cb)`). */
export interface ChangeEvent {
  /** Made through this document's methods (false: from a peer or `applyUpdate`). */
  local: boolean;
  /** Top-level names of CRDT values that changed. */
  names: string[];
  /** Names of texts that changed. */
  texts: string[];
}

/** One step of a text change, as in Yjs. */
export type TextDelta = { insert: string } | { delete: number } | { retain: number };

/** What `text.observe(cb)` reports. */
export interface TextEvent {
  delta: TextDelta[];
  local: boolean;
}
"#;

/// The package's version (the crate's).
#[wasm_bindgen]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

/// Whether this build has texts, undo and the relay connection (the full
/// build) or only the CRDT values (the core-only build).
#[wasm_bindgen(js_name = hasText)]
pub fn has_text() -> bool {
    cfg!(feature = "yrs")
}
