//! The Neuroplex relay: rooms over WebSocket, durable storage, tokens and
//! metrics. An IO shell around `neuroplex-core`.

pub mod cli;
pub mod client;
pub mod datadir;
pub mod fanout;
pub mod health;
pub mod lifecycle;
pub mod limits;
pub mod metrics;
pub mod origin;
pub mod outbox;
pub mod queue;
pub mod registry;
pub mod room_task;
pub mod serve;
pub mod server;
pub mod static_files;
pub mod storage;
pub mod token;
