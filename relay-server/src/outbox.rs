//! A connection's outbox: the bounded queue rooms push into, and the
//! writer task that drains it onto the socket.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::body::Bytes as WsBytes;
use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket};
use futures_util::SinkExt;
use futures_util::stream::SplitSink;
use neuroplex_core::doc::{CloseCode, Frame};
use neuroplex_core::sync::Bytes;
use tokio::sync::Notify;
use yrs::sync::{Message as YMessage, SyncMessage};
use yrs::updates::encoder::Encode;

use crate::metrics::{Endpoint, Metrics};
use crate::queue::{Outbound, OutboundQueue, SharedUpdate};

/// How the connection is to end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Close {
    /// WebSocket close code (see [`CloseCode`]).
    pub code: u16,
    /// Reason sent with it (at most 123 bytes on the wire).
    pub reason: String,
    /// Send what is queued first (graceful), or close at once.
    pub drain: bool,
}

struct State {
    queue: OutboundQueue,
    close: Option<Close>,
}

/// What a room holds of a connection: push messages, or ask it to close.
pub struct Outbox {
    endpoint: Endpoint,
    state: Mutex<State>,
    wake: Notify,
    /// Wakes the reader when a close is requested.
    closed: Notify,
    /// When the outbox was made: the origin of `heard_ms`.
    born: tokio::time::Instant,
    /// Milliseconds after `born` when the peer was last heard from (any
    /// frame, pongs included), for the liveness watchdog.
    heard_ms: AtomicU64,
    /// A ping is to be sent.
    ping: AtomicBool,
}

impl Outbox {
    /// An empty outbox bounded by `max_bytes` queued and `max_age` waiting.
    pub fn new(endpoint: Endpoint, max_bytes: usize, max_age: Duration) -> Self {
        Self {
            endpoint,
            state: Mutex::new(State {
                queue: OutboundQueue::new(max_bytes, max_age),
                close: None,
            }),
            wake: Notify::new(),
            closed: Notify::new(),
            born: tokio::time::Instant::now(),
            heard_ms: AtomicU64::new(0),
            ping: AtomicBool::new(false),
        }
    }

    /// The reader heard from the peer.
    pub fn heard(&self) {
        let ms = self.born.elapsed().as_millis() as u64;
        self.heard_ms.fetch_max(ms, Ordering::Relaxed);
    }

    /// When the peer was last heard from (when the outbox was made, if
    /// never).
    pub fn last_heard(&self) -> tokio::time::Instant {
        self.born + Duration::from_millis(self.heard_ms.load(Ordering::Relaxed))
    }

    /// Asks the writer to send a WebSocket ping.
    pub fn ping(&self) {
        self.ping.store(true, Ordering::Relaxed);
        self.wake.notify_one();
    }

    /// The endpoint the connection came in on.
    pub fn endpoint(&self) -> Endpoint {
        self.endpoint
    }

    /// Queues an item. A consumer that cannot keep up even after its queued
    /// updates are merged is closed with [`CloseCode::SLOW_CONSUMER`] (it
    /// reconnects and resyncs: nothing is dropped silently). Returns false
    /// if the connection is closing.
    pub fn push(&self, item: Outbound, metrics: &Metrics) -> bool {
        let mut st = self.state.lock().expect("outbox lock");
        if st.close.is_some() {
            return false;
        }
        if let Err(slow) = st.queue.push(item, Instant::now()) {
            metrics.rejected("slow_consumer");
            tracing::info!(%slow, "closing a slow consumer");
            st.close = Some(Close {
                code: CloseCode::SLOW_CONSUMER,
                reason: "slow consumer: reconnect and resync".into(),
                drain: false,
            });
        }
        let closing = st.close.is_some();
        drop(st);
        self.wake.notify_one();
        if closing {
            self.closed.notify_waiters();
        }
        true
    }

    /// Asks the writer to close the connection (the first request wins).
    pub fn close(&self, code: u16, reason: impl Into<String>, drain: bool) {
        let mut st = self.state.lock().expect("outbox lock");
        if st.close.is_none() {
            st.close = Some(Close {
                code,
                reason: reason.into(),
                drain,
            });
        }
        drop(st);
        self.wake.notify_one();
        self.closed.notify_waiters();
    }

    /// Resolves once a close is requested (for the reader, which must stop
    /// even if the peer never sends again).
    pub async fn wait_closing(&self) {
        let notified = self.closed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if self.closing().is_some() {
            return;
        }
        notified.await;
    }

    /// Whether a close was requested.
    pub fn closing(&self) -> Option<Close> {
        self.state.lock().expect("outbox lock").close.clone()
    }

    /// Moves up to `max` queued items into `items` (all at once, so that
    /// the writer sends them with one flush).
    fn next(&self, items: &mut Vec<Outbound>, max: usize) -> Next {
        let mut st = self.state.lock().expect("outbox lock");
        match &st.close {
            Some(c) if !c.drain => return Next::Close(c.clone()),
            None if self.ping.swap(false, Ordering::Relaxed) => return Next::Ping,
            _ => {}
        }
        while items.len() < max {
            match st.queue.pop() {
                Some(item) => items.push(item),
                None => break,
            }
        }
        if !items.is_empty() {
            return Next::Items;
        }
        match &st.close {
            Some(c) => Next::Close(c.clone()),
            None => Next::Wait,
        }
    }
}

enum Next {
    Items,
    Ping,
    Close(Close),
    Wait,
}

/// Most items a writer sends before one flush.
const WRITE_BATCH: usize = 64;

/// Frames a queued Yjs update for the endpoint (once per update and
/// endpoint, however many connections it goes to).
fn frame_update(endpoint: Endpoint, update: &SharedUpdate) -> WsBytes {
    match endpoint {
        Endpoint::Yjs => update.framed(0, |u| {
            YMessage::Sync(SyncMessage::Update(u.to_vec())).encode_v1()
        }),
        Endpoint::Sync => update.framed(1, |u| {
            Frame::YrsUpdate {
                update: Bytes(u.to_vec()),
            }
            .encode()
        }),
    }
}

/// Drains `outbox` onto `sink` until a close is requested or the socket
/// fails. Whatever is queued when the writer wakes goes out with one flush
/// (one write for many frames when the writer fell behind). A send that
/// takes longer than `max_age` marks a slow consumer.
pub async fn write_loop(
    mut sink: SplitSink<WebSocket, WsMessage>,
    outbox: std::sync::Arc<Outbox>,
    metrics: std::sync::Arc<Metrics>,
    max_age: Duration,
) {
    let endpoint = outbox.endpoint;
    let mut items = Vec::new();
    loop {
        match outbox.next(&mut items, WRITE_BATCH) {
            Next::Wait => {
                outbox.wake.notified().await;
                continue;
            }
            Next::Close(c) => {
                let mut reason = c.reason;
                truncate_utf8(&mut reason, 120);
                let frame = CloseFrame {
                    code: c.code,
                    reason: reason.into(),
                };
                let _ = tokio::time::timeout(
                    Duration::from_secs(5),
                    sink.send(WsMessage::Close(Some(frame))),
                )
                .await;
                return;
            }
            Next::Ping => {
                let ping = sink.send(WsMessage::Ping(WsBytes::new()));
                match tokio::time::timeout(max_age, ping).await {
                    Ok(Ok(())) => continue,
                    Ok(Err(_)) => return,
                    Err(_) => {
                        metrics.rejected("slow_consumer");
                        outbox.close(
                            CloseCode::SLOW_CONSUMER,
                            "slow consumer: reconnect and resync",
                            false,
                        );
                        continue;
                    }
                }
            }
            Next::Items => {}
        }
        let send = async {
            for item in items.drain(..) {
                let bytes = match item {
                    Outbound::Frame(b) => b,
                    Outbound::YrsUpdate(u) => frame_update(endpoint, &u),
                };
                sink.feed(WsMessage::Binary(bytes)).await?;
            }
            sink.flush().await
        };
        match tokio::time::timeout(max_age, send).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return,
            Err(_) => {
                items.clear();
                metrics.rejected("slow_consumer");
                outbox.close(
                    CloseCode::SLOW_CONSUMER,
                    "slow consumer: reconnect and resync",
                    false,
                );
            }
        }
    }
}

fn truncate_utf8(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}
