//! `neuroplex-relay serve`: bind, print the address, serve until SIGTERM,
//! then shut down gracefully.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use axum_server::accept::NoDelayAcceptor;
use tokio::sync::watch;

use crate::cli::ServeArgs;
use crate::lifecycle::Liveness;
use crate::origin::OriginPolicy;
use crate::registry::RoomConfig;
use crate::server::{Relay, ServerConfig};
use crate::storage::Storage;
use crate::token::Secret;
use neuroplex_core::doc::RoomLimits;

/// Why `serve` could not start (printed, then the process exits non-zero).
#[derive(Debug)]
pub struct ServeError(pub String);

impl std::fmt::Display for ServeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ServeError {}

/// Where `/metrics` goes when a secret is set and `--metrics-listen` is
/// not: a loopback port, not the public listener (metrics name rooms'
/// counts and timings, nobody's business outside).
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9787";

/// Checks that this relay is a member of the group `file` lists. The group
/// protocol does not run yet (see `crate::group`), so a member refuses to
/// start after the checks rather than serve as a validator that orders
/// nothing.
fn join_group(
    file: &std::path::Path,
    node_key: Option<&std::path::Path>,
) -> Result<(), ServeError> {
    let validators = crate::group::Validators::load(file).map_err(ServeError)?;
    let key_file = node_key.ok_or_else(|| ServeError("--validators needs --node-key".into()))?;
    let key = crate::group::NodeKey::load(key_file).map_err(ServeError)?;
    let Some(index) = validators.index_of(&key.public()) else {
        return Err(ServeError(format!(
            "this relay's public key {} (from {}) is not in the validators file {}: \
             it is not a member of that group",
            key.public_hex(),
            key_file.display(),
            file.display()
        )));
    };
    Err(ServeError(format!(
        "this relay is validator {index} of {} (f = {}) in {}, but this build does not run \
         the validator group yet; start it without --validators",
        validators.members().len(),
        validators.f(),
        file.display()
    )))
}

/// Runs the relay until SIGTERM or Ctrl-C.
pub async fn serve(args: ServeArgs) -> Result<(), ServeError> {
    let secret = match &args.secret_file {
        Some(path) => Some(Secret::load(path).map_err(|e| ServeError(e.to_string()))?),
        None => None,
    };
    if secret.is_none() && !args.listen.ip().is_loopback() && !args.insecure {
        return Err(ServeError(format!(
            "refusing to listen on {} without --secret-file: anyone could read and write every room. \
             Give --secret-file, listen on a loopback address, or pass --insecure.",
            args.listen
        )));
    }
    if let Some(file) = &args.validators {
        join_group(file, args.node_key.as_deref())?;
    }
    let origins = OriginPolicy::new(secret.is_some(), &args.allow_origin).map_err(ServeError)?;
    // Before the data directory is created: a refused start leaves nothing
    // inside the served site.
    if let Some(site) = &args.static_dir {
        crate::static_files::check_data_outside(&args.data, site).map_err(ServeError)?;
    }
    let (storage, writer) = Storage::open(&args.data).map_err(|e| ServeError(e.to_string()))?;
    let metrics_listener = metrics_listener(&args, secret.is_some())?;
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            let _ = rustls::crypto::ring::default_provider().install_default();
            Some(
                axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
                    .await
                    .map_err(|e| {
                        ServeError(format!("cannot load the TLS certificate or key: {e}"))
                    })?,
            )
        }
        _ => None,
    };
    let listener = std::net::TcpListener::bind(args.listen)
        .map_err(|e| ServeError(format!("cannot listen on {}: {e}", args.listen)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| ServeError(e.to_string()))?;

    let config = ServerConfig {
        static_dir: args.static_dir.clone(),
        room: RoomConfig {
            idle_timeout: Duration::from_secs(args.idle_secs),
            max_message_bytes: args.max_message_bytes,
            compact_entries: args.compact_entries,
            limits: RoomLimits {
                max_presence_bytes: args.max_presence_bytes,
                // Replies are charged against the same bound as the
                // connection's queue, while the batch builds them.
                max_reply_bytes: args.queue_max_bytes,
                ..RoomLimits::default()
            },
            ..RoomConfig::default()
        },
        queue_max_bytes: args.queue_max_bytes,
        queue_max_age: Duration::from_secs(args.queue_max_age_secs),
        liveness: (args.ping_secs > 0).then(|| Liveness {
            interval: Duration::from_secs(args.ping_secs),
            timeout: Duration::from_secs(args.ping_timeout_secs.unwrap_or(args.ping_secs)),
        }),
        max_connections: args.max_connections,
        max_connections_per_ip: args.max_connections_per_ip,
        origins,
        metrics_public: args.metrics_listen.is_none() && secret.is_none(),
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let relay = Relay::new(config, secret, storage, stop_rx);
    let app = relay
        .router()
        .into_make_service_with_connect_info::<SocketAddr>();
    let handle = axum_server::Handle::new();
    // Slowloris: a connection that never completes its request would
    // otherwise hold its socket forever.
    let handshake = Duration::from_secs(args.handshake_secs.max(1));

    // The first line on stdout: tests and scripts read the port from it.
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{addr}");
        let _ = out.flush();
    }
    tracing::info!(%addr, tls = tls.is_some(), data = %args.data.display(), "listening");
    let metrics_server = metrics_listener.map(|listener| {
        let app = relay.metrics_router().into_make_service();
        if let Ok(a) = listener.local_addr() {
            tracing::info!(addr = %a, "serving /metrics");
        }
        tokio::spawn(async move {
            let mut server = axum_server::from_tcp(listener)?.first_request_timeout(handshake);
            server.http_builder().http1().header_read_timeout(handshake);
            server.serve(app).await
        })
    });

    // TCP_NODELAY on every connection: a forwarded update is one small
    // frame, and Nagle's algorithm would hold it back until the previous
    // one is acknowledged (up to a delayed ACK, 40 ms on Linux).
    let server = {
        let handle = handle.clone();
        tokio::spawn(async move {
            match tls {
                Some(tls) => {
                    let mut server = axum_server::from_tcp_rustls(listener, tls)?
                        .map(|tls| {
                            tls.handshake_timeout(handshake)
                                .acceptor(NoDelayAcceptor::new())
                        })
                        .handle(handle)
                        .first_request_timeout(handshake);
                    server.http_builder().http1().header_read_timeout(handshake);
                    server.serve(app).await
                }
                None => {
                    let mut server = axum_server::from_tcp(listener)?
                        .acceptor(NoDelayAcceptor::new())
                        .handle(handle)
                        .first_request_timeout(handshake);
                    server.http_builder().http1().header_read_timeout(handshake);
                    server.serve(app).await
                }
            }
        })
    };

    wait_for_signal().await;
    tracing::info!("shutting down: closing connections with going-away");
    // Stop accepting; readers stop; rooms commit what they were given and
    // close every connection with 1001 once its queue is sent.
    handle.graceful_shutdown(Some(Duration::from_secs(10)));
    let _ = stop_tx.send(true);
    relay.rooms().shutdown(Duration::from_secs(10)).await;
    relay.wait_for_connections(Duration::from_secs(10)).await;
    let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
    if let Some(m) = metrics_server {
        m.abort();
    }
    drop(relay);
    // Everything acknowledged was committed before it was acknowledged;
    // this only waits for the writer to finish its current group.
    tokio::task::spawn_blocking(move || writer.join_timeout(Duration::from_secs(10)))
        .await
        .ok();
    tracing::info!("stopped");
    Ok(())
}

/// The listener for `/metrics`, if it is not on the main one.
fn metrics_listener(
    args: &ServeArgs,
    secret: bool,
) -> Result<Option<std::net::TcpListener>, ServeError> {
    if let Some(addr) = args.metrics_listen {
        let l = std::net::TcpListener::bind(addr)
            .map_err(|e| ServeError(format!("cannot listen on --metrics-listen {addr}: {e}")))?;
        return Ok(Some(l));
    }
    if !secret {
        return Ok(None);
    }
    match std::net::TcpListener::bind(DEFAULT_METRICS_LISTEN) {
        Ok(l) => Ok(Some(l)),
        Err(e) => {
            tracing::warn!(
                addr = DEFAULT_METRICS_LISTEN,
                error = %e,
                "cannot serve /metrics (give --metrics-listen); serving without"
            );
            Ok(None)
        }
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Shared with `main` for the token subcommand.
pub fn print_token(args: &crate::cli::TokenArgs) -> Result<String, ServeError> {
    let secret = Secret::load(&args.secret_file).map_err(|e| ServeError(e.to_string()))?;
    let ttl = crate::token::parse_ttl(&args.ttl).map_err(ServeError)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Ok(crate::token::issue(
        &secret,
        &args.room,
        args.rights,
        now.saturating_add(ttl.as_secs()),
    ))
}
