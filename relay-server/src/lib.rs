//! The Neuroplex relay: rooms over WebSocket, durable storage, tokens and
//! metrics. An IO shell around `neuroplex-core`.
//!
//! The library exposes what the binary, the native clients and the tests
//! use: [`cli`] (the command line), [`serve`] (run a relay, print a
//! token), [`token`] (issue and verify capability tokens) and [`client`]
//! (the native client). Everything else — the router, rooms, storage,
//! queues, metrics — is the relay's own and stays private: it is reached
//! over the network, not through Rust.

pub mod cli;
pub mod client;
mod datadir;
mod fanout;
pub mod group;
mod health;
mod lifecycle;
mod limits;
mod metrics;
mod origin;
mod outbox;
mod queue;
mod registry;
mod room_task;
pub mod serve;
mod server;
mod static_files;
mod storage;
pub mod token;
