//! The native client: a [`SharedDoc`] kept in sync with one room of a relay
//! over `WS /sync/{room}`, reconnecting with exponential backoff and
//! jitter.
//!
//! This is the IO shell only: the socket, the reconnects, the doc behind a
//! lock and the status watch. Every rule of the conversation (hello, the
//! Yjs and CRDT exchanges, the delta in flight, presence clocks, errors)
//! is [`ClientSession`]'s, shared with the WASM package.
//!
//! The client keeps its replica in memory. Every start uses a fresh random
//! replica id unless told otherwise: a replica that restarted without its
//! state and reused its id would reissue dots it had already given away.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use neuroplex_core::ReplicaId;
use neuroplex_core::doc::{
    ClientSession, PresenceClock, PresenceEntry, SessionEvent, SessionOutput, SharedDoc,
};
use neuroplex_core::document::DocStore;
use neuroplex_core::sync::Config as SyncConfig;
use neuroplex_core::{Causal, CausalContext};
use tokio::sync::{Notify, mpsc, watch};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use yrs::Transact;

/// The relay, as the client's sync replica names it.
const RELAY: u64 = 0;

/// How to reach a room.
#[derive(Clone)]
pub struct ClientConfig {
    /// The relay's base URL, `ws://host:port` or `wss://host:port`.
    pub url: String,
    /// The room.
    pub room: String,
    /// A capability token, if the relay requires one.
    pub token: Option<String>,
    /// This replica's id. `None` (the default) draws a fresh random id at
    /// every [`Client::start`], so that a cloned config never makes two
    /// clients share one (see the module doc).
    pub replica: Option<ReplicaId>,
    /// First reconnect delay.
    pub backoff_min: Duration,
    /// Longest reconnect delay.
    pub backoff_max: Duration,
    /// Largest message accepted or sent.
    pub max_message_bytes: usize,
    /// TLS settings for `wss://` (default: the webpki roots).
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl ClientConfig {
    /// Defaults for `url` and `room`.
    pub fn new(url: impl Into<String>, room: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            room: room.into(),
            token: None,
            replica: None,
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(10),
            max_message_bytes: 16 << 20,
            tls: None,
        }
    }
}

/// What the client knows of its connection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Status {
    /// A connection is open and the relay said hello.
    pub connected: bool,
    /// Connections made so far.
    pub connects: u64,
    /// The relay lets this client write.
    pub writable: bool,
    /// Yjs updates sent on the current connection.
    pub yrs_sent: u64,
    /// Of those, how many the relay reported durable.
    pub yrs_saved: u64,
    /// The last error: an error frame or close from the relay, or a failed
    /// connection attempt (code 0, or the HTTP status that refused it).
    pub last_error: Option<(u16, String)>,
    /// How the relay closed the last connection it closed (code, reason);
    /// unlike `last_error`, later failed attempts to reconnect keep it.
    pub last_close: Option<(u16, String)>,
    /// The client stopped for good (a 44xx close, or [`Client::close`]).
    pub stopped: bool,
}

struct Shared {
    doc: Mutex<SharedDoc>,
    /// The protocol state; locked after `doc` when both are needed.
    proto: Mutex<Proto>,
    changed: Notify,
    status: watch::Sender<Status>,
}

/// The session and the presence clock it announces with (one session per
/// client, so the clock is its own).
struct Proto {
    session: ClientSession,
    clock: PresenceClock,
}

impl Shared {
    /// Runs `f` on the document and the session, locked in that order.
    fn with<R>(
        &self,
        f: impl FnOnce(&mut SharedDoc, &mut ClientSession, &mut PresenceClock) -> R,
    ) -> R {
        let mut doc = self.doc.lock().expect("doc lock");
        let mut proto = self.proto.lock().expect("session lock");
        let Proto { session, clock } = &mut *proto;
        f(&mut doc, session, clock)
    }
}

/// A live connection to one room. Dropping it stops the background task.
pub struct Client {
    replica: ReplicaId,
    shared: Arc<Shared>,
    wake: mpsc::UnboundedSender<Cmd>,
    task: tokio::task::JoinHandle<()>,
}

enum Cmd {
    /// Local changes wait to be sent.
    Flush,
    /// A local Yjs update to send, alone in its frame (one frame per edit:
    /// `Status::yrs_sent` counts edits, as callers expect).
    Yrs(Vec<u8>),
    Close,
}

impl Client {
    /// Starts connecting in the background (on the current tokio runtime).
    pub fn start(mut config: ClientConfig) -> Client {
        let replica = *config
            .replica
            .get_or_insert_with(|| ReplicaId::new(rand::random::<u64>() | 1));
        let yrs_client = rand::random::<u64>() & ((1 << 53) - 1);
        let sync_config = SyncConfig {
            max_message_bytes: config.max_message_bytes,
            ..SyncConfig::default()
        };
        let doc = SharedDoc::new(replica, rand::random(), yrs_client, sync_config);
        let clock = PresenceClock::new();
        let session = ClientSession::new(&doc, RELAY, &clock);
        let shared = Arc::new(Shared {
            doc: Mutex::new(doc),
            proto: Mutex::new(Proto { session, clock }),
            changed: Notify::new(),
            status: watch::channel(Status::default()).0,
        });
        let (wake, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(config, shared.clone(), rx));
        Client {
            replica,
            shared,
            wake,
            task,
        }
    }

    /// This client's CRDT replica id (to draw dots as).
    pub fn replica(&self) -> ReplicaId {
        self.replica
    }

    /// Reads the document.
    pub fn read<R>(&self, f: impl FnOnce(&SharedDoc) -> R) -> R {
        f(&self.shared.doc.lock().expect("doc lock"))
    }

    /// Changes the CRDT store (`f` gets the store and the context to draw
    /// dots from, as [`neuroplex_core::sync::Replica::mutate`]).
    pub fn edit<F>(&self, f: F)
    where
        F: FnOnce(&mut DocStore, &mut CausalContext) -> Causal<DocStore>,
    {
        self.shared.with(|doc, session, _| {
            doc.crdt_mut().mutate(f);
            session.note_change();
        });
        let _ = self.wake.send(Cmd::Flush);
    }

    /// Edits the Yjs document in one transaction; the update is sent.
    pub fn edit_yrs<R>(&self, f: impl FnOnce(&mut yrs::TransactionMut<'_>) -> R) -> R {
        let (r, update) = {
            let doc = self.shared.doc.lock().expect("doc lock");
            let mut txn = doc.yrs().transact_mut();
            let r = f(&mut txn);
            let update = txn.encode_update_v1();
            (r, update)
        };
        let _ = self.wake.send(Cmd::Yrs(update));
        r
    }

    /// Sets this client's presence (JSON text), or clears it with `None`.
    pub fn set_presence(&self, state: Option<String>) {
        self.shared
            .with(|_, session, clock| session.set_presence(clock, state));
        let _ = self.wake.send(Cmd::Flush);
    }

    /// Everyone present in the room, as last heard.
    pub fn presence(&self) -> Vec<PresenceEntry> {
        self.shared
            .proto
            .lock()
            .expect("session lock")
            .session
            .presence()
            .present()
    }

    /// The connection status (watch it for changes).
    pub fn status(&self) -> watch::Receiver<Status> {
        self.shared.status.subscribe()
    }

    /// Waits until `cond` holds for the document, or `limit` passes.
    /// Returns whether it held.
    pub async fn wait_until(
        &self,
        limit: Duration,
        mut cond: impl FnMut(&SharedDoc) -> bool,
    ) -> bool {
        tokio::time::timeout(limit, async {
            loop {
                let notified = self.shared.changed.notified();
                if self.read(&mut cond) {
                    return;
                }
                notified.await;
            }
        })
        .await
        .is_ok()
    }

    /// Closes the connection and stops reconnecting.
    pub async fn close(mut self) {
        let _ = self.wake.send(Cmd::Close);
        let _ = tokio::time::timeout(Duration::from_secs(10), &mut self.task).await;
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn backoff(config: &ClientConfig, attempt: u32) -> Duration {
    let base = config.backoff_min.as_secs_f64() * 2f64.powi(attempt.min(20) as i32);
    let capped = base.min(config.backoff_max.as_secs_f64());
    // Full jitter in [capped/2, capped]: clients that lost the same relay do
    // not come back in step.
    Duration::from_secs_f64(capped * (0.5 + rand::random::<f64>() * 0.5))
}

async fn run(config: ClientConfig, shared: Arc<Shared>, mut cmds: mpsc::UnboundedReceiver<Cmd>) {
    let mut attempt = 0u32;
    loop {
        match session(&config, &shared, &mut cmds, &mut attempt).await {
            End::Stop => break,
            End::Retry => {}
        }
        shared.status.send_modify(|s| s.connected = false);
        shared.changed.notify_waiters();
        let delay = backoff(&config, attempt);
        attempt = attempt.saturating_add(1);
        // Local edits made meanwhile wait for the connection (the sync
        // handshake carries them); only a close ends the wait early.
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        let closed = loop {
            tokio::select! {
                _ = &mut sleep => break false,
                cmd = cmds.recv() => if matches!(cmd, None | Some(Cmd::Close)) { break true },
            }
        };
        if closed {
            break;
        }
    }
    shared.status.send_modify(|s| {
        s.connected = false;
        s.stopped = true;
    });
    shared.changed.notify_waiters();
}

enum End {
    Stop,
    Retry,
}

fn url(config: &ClientConfig) -> String {
    let base = config.url.trim_end_matches('/');
    match &config.token {
        Some(t) => format!("{base}/sync/{}?token={t}", config.room),
        None => format!("{base}/sync/{}", config.room),
    }
}

async fn session(
    config: &ClientConfig,
    shared: &Arc<Shared>,
    cmds: &mut mpsc::UnboundedReceiver<Cmd>,
    attempt: &mut u32,
) -> End {
    let request = match url(config).into_client_request() {
        Ok(r) => r,
        Err(e) => {
            shared
                .status
                .send_modify(|s| s.last_error = Some((0, format!("bad relay URL: {e}"))));
            return End::Stop;
        }
    };
    let ws_config = WebSocketConfig::default()
        .max_message_size(Some(config.max_message_bytes))
        .max_frame_size(Some(config.max_message_bytes));
    let connector = config.tls.clone().map(tokio_tungstenite::Connector::Rustls);
    let (ws, _) = match tokio_tungstenite::connect_async_tls_with_config(
        request,
        Some(ws_config),
        true,
        connector,
    )
    .await
    {
        Ok(c) => c,
        Err(e) => {
            let refused = match &e {
                tokio_tungstenite::tungstenite::Error::Http(resp) => Some(resp.status().as_u16()),
                _ => None,
            };
            shared
                .status
                .send_modify(|s| s.last_error = Some((refused.unwrap_or(0), e.to_string())));
            // A refused token will not become valid by retrying.
            return if matches!(refused, Some(401 | 403)) {
                End::Stop
            } else {
                End::Retry
            };
        }
    };
    let (mut sink, mut stream) = ws.split();
    let first = shared.with(|doc, session, clock| session.start(doc, clock));
    let end = converse(shared, cmds, attempt, &mut sink, &mut stream, first).await;
    // Whatever ended the connection, the relay's position and the room's
    // presence are unknown until the next one.
    let _ = shared.with(|doc, session, _| session.stop(doc));
    end
}

type Sink = futures_util::stream::SplitSink<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    WsMessage,
>;
type Stream = futures_util::stream::SplitStream<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
>;

/// One open connection: frames from the socket and commands from the
/// [`Client`] into the session, its frames out, its events into the status.
async fn converse(
    shared: &Arc<Shared>,
    cmds: &mut mpsc::UnboundedReceiver<Cmd>,
    attempt: &mut u32,
    sink: &mut Sink,
    stream: &mut Stream,
    first: SessionOutput,
) -> End {
    let mut out = first;
    loop {
        update_status(shared, &out.events, attempt);
        shared.changed.notify_waiters();
        for f in std::mem::take(&mut out.frames) {
            if sink.send(WsMessage::Binary(f.into())).await.is_err() {
                return End::Retry;
            }
        }
        out = tokio::select! {
            msg = stream.next() => match msg {
                Some(Ok(WsMessage::Binary(bytes))) => {
                    match shared.with(|doc, session, clock| session.receive(doc, clock, &bytes)) {
                        Ok(out) => out,
                        Err(e) => {
                            // Which codes to retry after is the shell's
                            // policy: this client retries after a bad frame.
                            shared.status.send_modify(|s| s.last_error = Some((e.code, e.reason)));
                            return End::Retry;
                        }
                    }
                }
                Some(Ok(WsMessage::Close(frame))) => {
                    let (code, reason) = frame
                        .map(|f| (u16::from(f.code), f.reason.to_string()))
                        .unwrap_or((1005, String::new()));
                    shared.status.send_modify(|s| {
                        s.last_error = Some((code, reason.clone()));
                        s.last_close = Some((code, reason));
                    });
                    return if (4400..4500).contains(&code) { End::Stop } else { End::Retry };
                }
                Some(Ok(_)) => SessionOutput::default(),
                None | Some(Err(_)) => return End::Retry,
            },
            cmd = cmds.recv() => match cmd {
                None | Some(Cmd::Close) => {
                    let _ = sink.send(WsMessage::Close(None)).await;
                    return End::Stop;
                }
                Some(Cmd::Flush) => shared.with(|doc, session, _| session.flush(doc)),
                Some(Cmd::Yrs(update)) => shared.with(|doc, session, _| {
                    session.queue_yrs(update);
                    session.flush(doc)
                }),
            },
        };
    }
}

/// Reflects the session's events and counters in the status.
fn update_status(shared: &Shared, events: &[SessionEvent], attempt: &mut u32) {
    let (sent, saved) = {
        let proto = shared.proto.lock().expect("session lock");
        (proto.session.yrs_sent(), proto.session.yrs_saved())
    };
    shared.status.send_if_modified(|s| {
        let mut changed = s.yrs_sent != sent || s.yrs_saved != saved;
        s.yrs_sent = sent;
        s.yrs_saved = saved;
        for e in events {
            match e {
                SessionEvent::Online { writable } => {
                    *attempt = 0;
                    s.connected = true;
                    s.connects += 1;
                    s.writable = *writable;
                    changed = true;
                }
                SessionEvent::Error { code, reason } => {
                    s.last_error = Some((*code, reason.clone()));
                    changed = true;
                }
                _ => {}
            }
        }
        changed
    });
}
