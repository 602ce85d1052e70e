//! The Neuroplex relay: rooms over WebSocket, durable storage, tokens and
//! metrics. An IO shell around `neuroplex-core`.

pub mod cli;
pub mod client;
pub mod fanout;
pub mod metrics;
pub mod outbox;
pub mod queue;
pub mod registry;
pub mod room_task;
pub mod serve;
pub mod server;
pub mod storage;
pub mod token;
