//! The native client: a [`SharedDoc`] kept in sync with one room of a relay
//! over `WS /sync/{room}`, reconnecting with exponential backoff and
//! jitter.
//!
//! The client keeps its replica in memory. Every start uses a fresh random
//! replica id unless told otherwise: a replica that restarted without its
//! state and reused its id would reissue dots it had already given away.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use neuroplex_core::ReplicaId;
use neuroplex_core::doc::{
    CloseCode, DocStore, Frame, PROTOCOL_VERSION, PresenceEntry, PresenceMap, SharedDoc,
};
use neuroplex_core::sync::{Bytes, Config as SyncConfig, Message as SyncMsg, Outgoing};
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
    presence: Mutex<PresenceMap>,
    /// Local Yjs updates not yet sent.
    pending_yrs: Mutex<Vec<Vec<u8>>>,
    /// Own presence: client, clock, state.
    me: Mutex<PresenceEntry>,
    presence_dirty: std::sync::atomic::AtomicBool,
    changed: Notify,
    status: watch::Sender<Status>,
}

/// A live connection to one room. Dropping it stops the background task.
pub struct Client {
    replica: ReplicaId,
    shared: Arc<Shared>,
    wake: mpsc::UnboundedSender<Cmd>,
    task: tokio::task::JoinHandle<()>,
}

enum Cmd {
    Flush,
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
        let client_id = doc.yrs().client_id().get();
        let shared = Arc::new(Shared {
            doc: Mutex::new(doc),
            presence: Mutex::new(PresenceMap::new()),
            pending_yrs: Mutex::new(Vec::new()),
            me: Mutex::new(PresenceEntry {
                client: client_id,
                clock: 0,
                state: None,
            }),
            presence_dirty: Default::default(),
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
        self.shared
            .doc
            .lock()
            .expect("doc lock")
            .crdt_mut()
            .mutate(f);
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
        self.shared
            .pending_yrs
            .lock()
            .expect("pending lock")
            .push(update);
        let _ = self.wake.send(Cmd::Flush);
        r
    }

    /// Sets this client's presence (JSON text), or clears it with `None`.
    pub fn set_presence(&self, state: Option<String>) {
        {
            let mut me = self.shared.me.lock().expect("presence lock");
            me.clock += 1;
            me.state = state;
        }
        self.shared
            .presence_dirty
            .store(true, std::sync::atomic::Ordering::Release);
        let _ = self.wake.send(Cmd::Flush);
    }

    /// Everyone present in the room, as last heard.
    pub fn presence(&self) -> Vec<PresenceEntry> {
        self.shared
            .presence
            .lock()
            .expect("presence lock")
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
    let mut awaiting_ack = false;
    {
        // Forget the relay's old position: this connection starts with a
        // request, answered with what we lack (and what it lacks).
        let mut doc = shared.doc.lock().expect("doc lock");
        doc.crdt_mut().forget(RELAY);
    }
    let hello = Frame::Hello {
        protocol: PROTOCOL_VERSION,
        replica: config.replica.map_or(0, ReplicaId::get),
        writable: true,
    };
    let first = {
        let mut doc = shared.doc.lock().expect("doc lock");
        let mut frames = vec![hello.encode()];
        frames.push(
            Frame::YrsSyncRequest {
                state_vector: Bytes(doc.yrs_state_vector()),
            }
            .encode(),
        );
        let out = doc.crdt_mut().pull(&[RELAY]);
        frames.extend(sync_frames(out, &mut awaiting_ack));
        frames
    };
    shared.pending_yrs.lock().expect("pending lock").clear();
    shared
        .presence_dirty
        .store(true, std::sync::atomic::Ordering::Release);
    for f in first {
        if sink.send(WsMessage::Binary(f.into())).await.is_err() {
            return End::Retry;
        }
    }
    let mut yrs_sent = 0u64;
    loop {
        let mut outgoing = Vec::new();
        tokio::select! {
            msg = stream.next() => {
                let bytes = match msg {
                    Some(Ok(WsMessage::Binary(b))) => b,
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
                    Some(Ok(_)) => continue,
                    None | Some(Err(_)) => return End::Retry,
                };
                let frame = match Frame::decode(&bytes, config.max_message_bytes) {
                    Ok(f) => f,
                    Err(e) => {
                        shared.status.send_modify(|s| {
                            s.last_error = Some((CloseCode::MALFORMED, format!("undecodable frame from the relay: {e}")))
                        });
                        return End::Retry;
                    }
                };
                match frame {
                    Frame::Hello { writable, .. } => {
                        *attempt = 0;
                        shared.status.send_modify(|s| {
                            s.connected = true;
                            s.connects += 1;
                            s.writable = writable;
                            s.yrs_sent = 0;
                            s.yrs_saved = 0;
                        });
                    }
                    Frame::Sync(m) => {
                        if matches!(m, SyncMsg::Ack { .. }) {
                            awaiting_ack = false;
                        }
                        let mut doc = shared.doc.lock().expect("doc lock");
                        match doc.crdt_mut().receive(RELAY, m) {
                            Ok(out) => outgoing.extend(sync_frames(out, &mut awaiting_ack)),
                            Err(e) => {
                                shared.status.send_modify(|s| s.last_error = Some((CloseCode::MALFORMED, e.to_string())));
                                return End::Retry;
                            }
                        }
                        if !awaiting_ack {
                            let out = doc.crdt_mut().push(&[RELAY]);
                            outgoing.extend(sync_frames(out, &mut awaiting_ack));
                        }
                    }
                    Frame::YrsSyncRequest { state_vector } => {
                        let doc = shared.doc.lock().expect("doc lock");
                        match doc.yrs_diff(&state_vector.0) {
                            Ok(diff) => {
                                yrs_sent += 1;
                                outgoing.push(Frame::YrsUpdate { update: Bytes(diff) }.encode());
                            }
                            Err(e) => {
                                shared.status.send_modify(|s| s.last_error = Some((CloseCode::MALFORMED, e.to_string())));
                                return End::Retry;
                            }
                        }
                    }
                    Frame::YrsUpdate { update } => {
                        let mut doc = shared.doc.lock().expect("doc lock");
                        if let Err(e) = doc.apply_yrs_update(&update.0) {
                            shared.status.send_modify(|s| s.last_error = Some((CloseCode::BAD_UPDATE, e.to_string())));
                            return End::Retry;
                        }
                    }
                    Frame::YrsSaved { count } => {
                        shared.status.send_modify(|s| s.yrs_saved = count);
                    }
                    Frame::Presence { entries } => {
                        shared.presence.lock().expect("presence lock").apply(entries);
                    }
                    Frame::Error { code, reason } => {
                        shared.status.send_modify(|s| s.last_error = Some((code, reason)));
                    }
                }
                shared.changed.notify_waiters();
            }
            cmd = cmds.recv() => {
                match cmd {
                    None | Some(Cmd::Close) => {
                        let _ = sink.send(WsMessage::Close(None)).await;
                        return End::Stop;
                    }
                    Some(Cmd::Flush) => {}
                }
                let pending = std::mem::take(&mut *shared.pending_yrs.lock().expect("pending lock"));
                for u in pending {
                    yrs_sent += 1;
                    outgoing.push(Frame::YrsUpdate { update: Bytes(u) }.encode());
                }
                if !awaiting_ack {
                    let mut doc = shared.doc.lock().expect("doc lock");
                    let out = doc.crdt_mut().push(&[RELAY]);
                    outgoing.extend(sync_frames(out, &mut awaiting_ack));
                }
                shared.changed.notify_waiters();
            }
        }
        if shared
            .presence_dirty
            .swap(false, std::sync::atomic::Ordering::AcqRel)
        {
            let me = shared.me.lock().expect("presence lock").clone();
            if me.clock > 0 {
                outgoing.push(Frame::Presence { entries: vec![me] }.encode());
            }
        }
        let sent = yrs_sent;
        shared.status.send_if_modified(|s| {
            let changed = s.yrs_sent != sent;
            s.yrs_sent = sent;
            changed
        });
        for f in outgoing {
            if sink.send(WsMessage::Binary(f.into())).await.is_err() {
                return End::Retry;
            }
        }
    }
}

fn sync_frames(out: Outgoing<DocStore>, awaiting_ack: &mut bool) -> Vec<Vec<u8>> {
    // The client has no storage of its own: `out.persist` is dropped (see
    // the module doc).
    out.messages
        .into_iter()
        .map(|(_, m)| {
            if matches!(m, SyncMsg::Delta { .. }) {
                *awaiting_ack = true;
            }
            Frame::Sync(m).encode()
        })
        .collect()
}
