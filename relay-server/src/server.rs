//! The HTTP surface: routes, authorisation, and the per-connection tasks
//! that decode client frames and hand them to rooms.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::StreamExt;
use neuroplex_core::doc::room::decode_yjs;
use neuroplex_core::doc::{CloseCode, Frame};
use tokio::sync::{mpsc, watch};

use crate::health::Health;
use crate::lifecycle::{self, Liveness, Membership};
use crate::limits::{ConnectionLimits, Slot};
use crate::metrics::{Direction, Endpoint, Metrics};
use crate::origin::OriginPolicy;
use crate::outbox::{Outbox, write_loop};
use crate::registry::{Input, RoomConfig, Rooms};
use crate::storage::Storage;

/// How long a closing connection waits for the client's close frame.
const CLOSE_HANDSHAKE: Duration = Duration::from_secs(5);
use crate::token::{self, Rights, Secret, TokenError};

/// Bytes a connection reads from its socket at a time (and keeps allocated).
const READ_BUFFER_BYTES: usize = 1024;

/// Everything the relay needs to serve, besides the listener.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Directory of static files served at `/` (the demo page).
    pub static_dir: Option<PathBuf>,
    /// Rooms' limits and timings.
    pub room: RoomConfig,
    /// Bytes queued for one connection before it counts as slow.
    pub queue_max_bytes: usize,
    /// Age of the oldest queued message before a connection counts as slow.
    pub queue_max_age: Duration,
    /// Pinging silent connections and closing dead ones (`None`: never).
    pub liveness: Option<Liveness>,
    /// WebSocket connections held at once.
    pub max_connections: usize,
    /// WebSocket connections held at once from one address.
    pub max_connections_per_ip: usize,
    /// Which pages may connect.
    pub origins: OriginPolicy,
    /// Whether `/metrics` is on this router (else on its own listener).
    pub metrics_public: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            static_dir: None,
            room: RoomConfig::default(),
            queue_max_bytes: 64 << 20,
            queue_max_age: Duration::from_secs(30),
            liveness: Some(Liveness::default()),
            max_connections: 10_000,
            max_connections_per_ip: 256,
            origins: OriginPolicy::default(),
            metrics_public: true,
        }
    }
}

/// What an authorised upgrade may do.
#[derive(Clone, Copy, Debug)]
struct Access {
    rights: Rights,
    /// The token's expiry (unix seconds), if a token was needed.
    expires_at: Option<u64>,
}

/// Shared state of the running relay.
pub struct Relay {
    config: ServerConfig,
    secret: Option<Secret>,
    rooms: Arc<Rooms>,
    metrics: Arc<Metrics>,
    limits: Arc<ConnectionLimits>,
    health: Arc<Health>,
    next_conn: AtomicU64,
    active: AtomicU64,
    idle: tokio::sync::Notify,
    shutdown: watch::Receiver<bool>,
}

impl Relay {
    /// A relay over `storage`. Connections end when `shutdown` turns true.
    pub fn new(
        config: ServerConfig,
        secret: Option<Secret>,
        storage: Storage,
        shutdown: watch::Receiver<bool>,
    ) -> Arc<Self> {
        let metrics = Arc::new(Metrics::new());
        let health = storage.health().clone();
        let rooms = Rooms::new(storage, metrics.clone(), config.room.clone());
        let limits = ConnectionLimits::new(config.max_connections, config.max_connections_per_ip);
        Arc::new(Self {
            config,
            secret,
            rooms,
            metrics,
            limits,
            health,
            next_conn: AtomicU64::new(1),
            active: AtomicU64::new(0),
            idle: tokio::sync::Notify::new(),
            shutdown,
        })
    }

    /// The rooms (to shut them down).
    pub fn rooms(&self) -> &Arc<Rooms> {
        &self.rooms
    }

    /// Waits until every WebSocket connection has ended (up to `limit`).
    pub async fn wait_for_connections(&self, limit: Duration) {
        let _ = tokio::time::timeout(limit, async {
            loop {
                let notified = self.idle.notified();
                if self.active.load(Ordering::Acquire) == 0 {
                    return;
                }
                notified.await;
            }
        })
        .await;
    }

    /// The axum router for every endpoint (`/metrics` only if
    /// `metrics_public`; see [`Relay::metrics_router`]).
    pub fn router(self: &Arc<Self>) -> Router {
        let mut router = Router::new()
            .route("/healthz", get(health_handler))
            .route("/yjs/{*room}", get(yjs_handler))
            .route("/sync/{*room}", get(sync_handler));
        if self.config.metrics_public {
            router = router.route("/metrics", get(metrics_handler));
        }
        if let Some(dir) = &self.config.static_dir {
            let dir = dir.clone();
            router = router.fallback(move |req| crate::static_files::serve(dir.clone(), req));
        }
        router.with_state(self.clone())
    }

    /// `/metrics` and `/healthz` alone, for `--metrics-listen`.
    pub fn metrics_router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/healthz", get(health_handler))
            .route("/metrics", get(metrics_handler))
            .with_state(self.clone())
    }

    fn authorize(
        &self,
        room: &str,
        query: &HashMap<String, String>,
        headers: &HeaderMap,
    ) -> Result<Access, Box<Response>> {
        if room.is_empty() || room.len() > 512 {
            self.metrics.rejected("bad_room");
            return Err(Box::new(
                (StatusCode::BAD_REQUEST, "room names are 1 to 512 bytes\n").into_response(),
            ));
        }
        // Control characters have no business in a name, and would forge
        // lines in logs and terminals.
        if room.chars().any(char::is_control) {
            self.metrics.rejected("bad_room");
            return Err(Box::new(
                (
                    StatusCode::BAD_REQUEST,
                    "room names may not hold control characters\n",
                )
                    .into_response(),
            ));
        }
        if let Err(refusal) = self.config.origins.check(headers) {
            self.metrics.rejected("origin");
            return Err(refusal);
        }
        let Some(secret) = &self.secret else {
            return Ok(Access {
                rights: Rights::Write,
                expires_at: None,
            });
        };
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(token::bearer);
        let token = query.get("token").map(String::as_str).or(bearer);
        let result = match token {
            None => Err(TokenError::Missing),
            Some(t) => token::verify(secret, t, room, unix_now()),
        };
        result
            .map(|g| Access {
                rights: g.rights,
                expires_at: Some(g.expires_at),
            })
            .map_err(|e| {
                self.metrics.rejected(e.metric_reason());
                let status =
                    StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::UNAUTHORIZED);
                Box::new((status, format!("{e}\n")).into_response())
            })
    }

    /// Everything checked before an upgrade (room, origin, token, limits),
    /// in that order: a refused request gets a plain HTTP status.
    fn admit(self: &Arc<Self>, request: Upgrade, endpoint: Endpoint, peer: SocketAddr) -> Response {
        let Upgrade {
            ws,
            room,
            query,
            headers,
        } = request;
        let access = match self.authorize(&room, &query, &headers) {
            Ok(a) => a,
            Err(r) => return *r,
        };
        let ws = match ws {
            Ok(ws) => ws,
            Err(rejection) => return rejection.into_response(),
        };
        match self.limits.acquire(peer.ip()) {
            Ok(slot) => self.upgrade(ws, room, endpoint, access, slot),
            Err(e) => {
                self.metrics.rejected(e.metric_reason());
                tracing::info!(%peer, reason = %e, "connection refused");
                e.into_response()
            }
        }
    }

    fn upgrade(
        self: &Arc<Self>,
        ws: WebSocketUpgrade,
        room: String,
        endpoint: Endpoint,
        access: Access,
        slot: Slot,
    ) -> Response {
        let max = self.config.room.max_message_bytes;
        let me = self.clone();
        // tungstenite zero-fills its whole read buffer (128 KiB by default)
        // for every read, so each connection kept that much resident even
        // when idle. Yjs messages are small; a large one is read in pieces
        // of this size.
        ws.read_buffer_size(READ_BUFFER_BYTES)
            .max_message_size(max)
            .max_frame_size(max)
            .on_upgrade(move |socket| async move {
                // The slot is held until the connection has ended.
                let _slot = slot;
                me.run(socket, room, endpoint, access).await
            })
    }

    async fn run(
        self: Arc<Self>,
        socket: WebSocket,
        room: String,
        endpoint: Endpoint,
        access: Access,
    ) {
        let id = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let _counted = Counted::new(&self, endpoint);
        // The token's expiry on the runtime's clock.
        let expires = access.expires_at.map(|exp| {
            let left = Duration::from_secs(exp.saturating_sub(unix_now()));
            tokio::time::Instant::now() + left
        });
        let (sink, mut stream) = socket.split();
        let out = Arc::new(Outbox::new(
            endpoint,
            self.config.queue_max_bytes,
            self.config.queue_max_age,
        ));
        let writer = tokio::spawn(write_loop(
            sink,
            out.clone(),
            self.metrics.clone(),
            self.config.queue_max_age,
        ));
        // Boxed, as is the drain below: a future is as large as its largest
        // state, and these two states are brief, while the connection's
        // task lives as long as the connection.
        let joining = Box::pin(
            self.rooms
                .join(&room, id, access.rights.can_write(), out.clone()),
        );
        match joining.await {
            Ok(tx) => {
                let member = Membership::new(id, tx.clone(), out.clone());
                let watchdog = lifecycle::watch(&out, &self.metrics, self.config.liveness, expires);
                tokio::select! {
                    () = self.read_loop(&mut stream, id, endpoint, &out, &tx) => {}
                    () = watchdog => {}
                }
                member.leave().await;
            }
            Err(e) => {
                tracing::error!(room = ?room, error = %e, "join failed");
                out.close(CloseCode::INTERNAL, "the room could not be loaded", false);
            }
        }
        // The writer sends the close frame (if any was asked for) and ends.
        if out.closing().is_none() {
            out.close(1000, "", false);
        }
        // Meanwhile, read and drop whatever the client still sends until it
        // answers the close: closing a socket with unread bytes makes the
        // kernel reset the connection, and a reset destroys the close frame
        // (code and reason) before the client reads it.
        // After an oversized frame the stream has ended with its payload
        // unread (it cannot skip it): then the socket is kept open, unread,
        // until the deadline, so that the client reads our close frame
        // before the reset.
        let oversized = out
            .closing()
            .is_some_and(|c| c.code == CloseCode::TOO_LARGE);
        let drain = async {
            if oversized {
                std::future::pending::<()>().await;
            }
            while let Some(Ok(m)) = stream.next().await {
                if matches!(m, WsMessage::Close(_)) {
                    break;
                }
            }
        };
        let _ = Box::pin(tokio::time::timeout(CLOSE_HANDSHAKE, drain)).await;
        let _ = writer.await;
    }

    async fn read_loop(
        &self,
        stream: &mut futures_util::stream::SplitStream<WebSocket>,
        id: u64,
        endpoint: Endpoint,
        out: &Outbox,
        tx: &mpsc::Sender<Input>,
    ) {
        let mut shutdown = self.shutdown.clone();
        let max = self.config.room.max_message_bytes;
        let limits = self.config.room.limits();
        loop {
            let msg = tokio::select! {
                m = stream.next() => m,
                _ = shutdown.wait_for(|s| *s) => {
                    // Whatever this connection sent before is handled by
                    // its room; then it is told to come back later.
                    out.close(CloseCode::GOING_AWAY, "the relay is shutting down", true);
                    return;
                }
                _ = out.wait_closing() => return,
            };
            out.heard();
            if out.closing().is_some() {
                return;
            }
            let bytes = match msg {
                None | Some(Ok(WsMessage::Close(_))) => return,
                Some(Ok(WsMessage::Binary(b))) => b,
                Some(Ok(WsMessage::Text(_))) => {
                    self.refuse(
                        out,
                        "text_frame",
                        CloseCode::TEXT_FRAME,
                        "text frames are not accepted: both protocols are binary".into(),
                    );
                    return;
                }
                Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => continue,
                Some(Err(e)) => {
                    if is_too_large(&e) {
                        self.refuse(
                            out,
                            "too_large",
                            CloseCode::TOO_LARGE,
                            format!("message exceeds the limit of {max} bytes"),
                        );
                    }
                    return;
                }
            };
            let input = match endpoint {
                Endpoint::Yjs => match decode_yjs(&limits, &bytes) {
                    Ok(messages) => {
                        for m in &messages {
                            self.metrics.message(Direction::In, m.kind(), 0);
                        }
                        self.metrics.message(Direction::In, "frame", bytes.len());
                        Input::Yjs { id, messages }
                    }
                    Err(e) => {
                        self.refuse(out, e.metric(), e.close_code(), e.to_string());
                        return;
                    }
                },
                Endpoint::Sync => match Frame::decode(&bytes, max) {
                    Ok(frame) => {
                        self.metrics
                            .message(Direction::In, frame.kind(), bytes.len());
                        Input::Native { id, frame }
                    }
                    Err(e) => {
                        self.refuse(
                            out,
                            "malformed",
                            CloseCode::MALFORMED,
                            format!("undecodable frame: {e}"),
                        );
                        return;
                    }
                },
            };
            if tx.send(input).await.is_err() {
                return;
            }
        }
    }

    fn refuse(&self, out: &Outbox, reason: &'static str, code: u16, text: String) {
        self.metrics.rejected(reason);
        tracing::info!(code, reason = %text, "closing a connection");
        out.close(code, text, false);
    }
}

fn is_too_large(e: &axum::Error) -> bool {
    use std::error::Error as _;
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(t) = s.downcast_ref::<tokio_tungstenite::tungstenite::Error>() {
            return matches!(t, tokio_tungstenite::tungstenite::Error::Capacity(_));
        }
        source = s.source();
    }
    let text = e.to_string();
    text.contains("Space limit exceeded") || text.contains("too long") || text.contains("Capacity")
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Counts a connection as open (metrics, and the shutdown's wait) for as
/// long as it lives, whichever way it ends.
struct Counted<'a> {
    relay: &'a Relay,
    endpoint: Endpoint,
}

impl<'a> Counted<'a> {
    fn new(relay: &'a Relay, endpoint: Endpoint) -> Self {
        relay.active.fetch_add(1, Ordering::AcqRel);
        relay.metrics.connection_opened(endpoint);
        Self { relay, endpoint }
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.relay.metrics.connection_closed(self.endpoint);
        if self.relay.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.relay.idle.notify_waiters();
        }
    }
}

/// `200 ok`, or `503` and why while storage cannot commit.
async fn health_handler(State(relay): State<Arc<Relay>>) -> Response {
    match relay.health.problem() {
        None => "ok\n".into_response(),
        Some(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response(),
    }
}

async fn metrics_handler(State(relay): State<Arc<Relay>>) -> Response {
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        relay.metrics.render(),
    )
        .into_response()
}

/// What an upgrade request brings, for [`Relay::admit`].
struct Upgrade {
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
    room: String,
    query: HashMap<String, String>,
    headers: HeaderMap,
}

async fn yjs_handler(
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
    Path(room): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    State(relay): State<Arc<Relay>>,
) -> Response {
    let request = Upgrade {
        ws,
        room,
        query,
        headers,
    };
    relay.admit(request, Endpoint::Yjs, peer)
}

async fn sync_handler(
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
    Path(room): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    State(relay): State<Arc<Relay>>,
) -> Response {
    let request = Upgrade {
        ws,
        room,
        query,
        headers,
    };
    relay.admit(request, Endpoint::Sync, peer)
}
