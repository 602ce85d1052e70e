//! How a WebSocket connection ends when its client does not end it: the
//! liveness and token watchdog, and the guard that tells the room.
//!
//! A client that vanished without a FIN (a laptop lid closed, a network
//! gone) would otherwise hold its connection, its outbox and its presence
//! forever: the relay pings a connection it has not heard from for a ping
//! interval and closes it with [`CloseCode::PING_TIMEOUT`] if nothing (no
//! pong, no frame) arrives within the timeout. A connection opened with a
//! token is closed with [`TOKEN_EXPIRED`] when the token expires, so that a
//! revoked reader stops receiving within one token lifetime.
//!
//! Whatever ends a connection (its client, the watchdog, an error, a panic
//! in its reader), its room must hear `Leave`, or its presence stays and
//! its outbox leaks: [`Membership`] sends it when dropped.

use std::sync::Arc;
use std::time::Duration;

use neuroplex_core::doc::CloseCode;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::metrics::Metrics;
use crate::outbox::Outbox;
use crate::registry::Input;
use neuroplex_core::doc::ConnId;

/// Close code: the connection's token expired. Like the other 44xx codes,
/// the client should not retry as it is: it needs a new token.
pub const TOKEN_EXPIRED: u16 = 4401;

/// When to ping and when to give up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Liveness {
    /// Silence after which the relay pings.
    pub interval: Duration,
    /// Silence after the ping after which the relay closes.
    pub timeout: Duration,
}

impl Default for Liveness {
    fn default() -> Self {
        // The y-websocket server pings every 30 s and drops a connection
        // that has not answered by the next ping.
        Self {
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(30),
        }
    }
}

/// Watches one connection until it is closed: pings it when silent, closes
/// it when it stays silent or its token expires. Never returns: run it
/// beside the reader, which ends once a close is requested.
///
/// One timer serves both deadlines: every connection's task holds this
/// future for its whole life, and a timer is the bulk of its size.
pub async fn watch(
    out: &Outbox,
    metrics: &Metrics,
    liveness: Option<Liveness>,
    expires: Option<Instant>,
) {
    // When the ping went out, while its answer is awaited.
    let mut pinged: Option<Instant> = None;
    loop {
        let check = liveness.map(|l| match pinged {
            None => out.last_heard() + l.interval,
            Some(at) => at + l.timeout,
        });
        let wake = match (check, expires) {
            (Some(c), Some(e)) => Some(c.min(e)),
            (c, e) => c.or(e),
        };
        match wake {
            Some(at) => tokio::time::sleep_until(at).await,
            None => break,
        }
        let now = Instant::now();
        if expires.is_some_and(|e| now >= e) {
            metrics.rejected("token_expired_open");
            tracing::info!("closing a connection: its token expired");
            out.close(TOKEN_EXPIRED, "the token expired: get a new one", true);
            break;
        }
        let Some(l) = liveness else { continue };
        match pinged {
            // Heard from since the timer was set: wait a new interval.
            None if out.last_heard() + l.interval > now => {}
            None => {
                pinged = Some(now);
                out.ping();
            }
            Some(at) if now < at + l.timeout => {}
            // The clock of `last_heard` counts whole milliseconds: an
            // answer in the ping's millisecond counts.
            Some(at) if out.last_heard() + Duration::from_millis(1) <= at => {
                metrics.rejected("ping_timeout");
                tracing::info!("closing a connection that answers nothing");
                out.close(
                    CloseCode::PING_TIMEOUT,
                    "no answer to ping: reconnect",
                    false,
                );
                break;
            }
            Some(_) => pinged = None,
        }
    }
    std::future::pending::<()>().await;
}

/// A connection's membership of its room: tells the room `Leave` when
/// dropped, on every path (a panic in the reader included).
pub struct Membership {
    id: ConnId,
    tx: Option<mpsc::Sender<Input>>,
    out: Arc<Outbox>,
}

impl Membership {
    /// Connection `id` joined the room behind `tx`.
    pub fn new(id: ConnId, tx: mpsc::Sender<Input>, out: Arc<Outbox>) -> Self {
        Self {
            id,
            tx: Some(tx),
            out,
        }
    }

    /// Leaves in order: `Leave` queued behind what the reader sent.
    pub async fn leave(mut self) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Input::Leave { id: self.id }).await;
        }
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        let Some(tx) = self.tx.take() else {
            return;
        };
        // Not left in order: the reader failed. Close the socket (the
        // writer would otherwise wait for items forever) and leave.
        self.out
            .close(CloseCode::INTERNAL, "the relay failed: reconnect", false);
        let leave = Input::Leave { id: self.id };
        match tx.try_send(leave) {
            Err(mpsc::error::TrySendError::Full(leave)) => {
                if let Ok(rt) = tokio::runtime::Handle::try_current() {
                    rt.spawn(async move {
                        let _ = tx.send(leave).await;
                    });
                }
            }
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Endpoint;

    fn outbox() -> Arc<Outbox> {
        Arc::new(Outbox::new(Endpoint::Yjs, 1 << 20, Duration::from_secs(30)))
    }

    #[tokio::test]
    async fn a_panicking_reader_still_leaves() {
        let (tx, mut rx) = mpsc::channel(1);
        // The channel is full: the leave waits in a task.
        tx.send(Input::Leave { id: 0 }).await.unwrap();
        let out = outbox();
        let member = Membership::new(7, tx, out.clone());
        let reader = tokio::spawn(async move {
            let _member = member;
            panic!("a bug in the reader");
        });
        assert!(reader.await.unwrap_err().is_panic());
        assert!(matches!(rx.recv().await, Some(Input::Leave { id: 0 })));
        assert!(matches!(rx.recv().await, Some(Input::Leave { id: 7 })));
        assert_eq!(out.closing().unwrap().code, CloseCode::INTERNAL);
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn silence_is_pinged_then_closed_and_answers_keep_it() {
        let out = outbox();
        let metrics = Metrics::new();
        let l = Liveness {
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(5),
        };
        let watcher = watch(&out, &metrics, Some(l), None);
        tokio::pin!(watcher);
        // Answering within the timeout keeps the connection.
        for _ in 0..3 {
            tokio::select! {
                _ = &mut watcher => unreachable!(),
                _ = tokio::time::sleep(Duration::from_secs(12)) => {}
            }
            out.heard();
        }
        assert!(out.closing().is_none());
        tokio::select! {
            _ = &mut watcher => unreachable!(),
            _ = out.wait_closing() => {}
        }
        assert_eq!(out.closing().unwrap().code, CloseCode::PING_TIMEOUT);
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn an_expired_token_closes() {
        let out = outbox();
        let metrics = Metrics::new();
        let at = Instant::now() + Duration::from_secs(3);
        let watcher = watch(&out, &metrics, None, Some(at));
        tokio::select! {
            _ = watcher => unreachable!(),
            _ = out.wait_closing() => {}
        }
        assert_eq!(out.closing().unwrap().code, TOKEN_EXPIRED);
        assert!(Instant::now() >= at);
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn pings_go_on_until_the_token_expires() {
        let out = outbox();
        let metrics = Metrics::new();
        let l = Liveness {
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(5),
        };
        let at = Instant::now() + Duration::from_secs(31);
        let watcher = watch(&out, &metrics, Some(l), Some(at));
        tokio::pin!(watcher);
        for _ in 0..2 {
            tokio::select! {
                _ = &mut watcher => unreachable!(),
                _ = tokio::time::sleep(Duration::from_secs(12)) => {}
            }
            out.heard();
        }
        tokio::select! {
            _ = &mut watcher => unreachable!(),
            _ = out.wait_closing() => {}
        }
        assert_eq!(out.closing().unwrap().code, TOKEN_EXPIRED);
        assert!(Instant::now() >= at);
    }
}
