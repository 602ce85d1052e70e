//! `neuroplex-relay serve`: bind, print the address, serve until SIGTERM,
//! then shut down gracefully.

use std::io::Write;
use std::time::Duration;

use axum_server::accept::NoDelayAcceptor;
use tokio::sync::watch;

use crate::cli::ServeArgs;
use crate::registry::RoomConfig;
use crate::server::{Relay, ServerConfig};
use crate::storage::Storage;
use crate::token::Secret;

/// Why `serve` could not start (printed, then the process exits non-zero).
#[derive(Debug)]
pub struct ServeError(pub String);

impl std::fmt::Display for ServeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ServeError {}

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
    let (storage, writer) = Storage::open(&args.data).map_err(|e| ServeError(e.to_string()))?;
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
            ..RoomConfig::default()
        },
        queue_max_bytes: args.queue_max_bytes,
        queue_max_age: Duration::from_secs(args.queue_max_age_secs),
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let relay = Relay::new(config, secret, storage, stop_rx);
    let app = relay.router().into_make_service();
    let handle = axum_server::Handle::new();

    // The first line on stdout: tests and scripts read the port from it.
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{addr}");
        let _ = out.flush();
    }
    tracing::info!(%addr, tls = tls.is_some(), data = %args.data.display(), "listening");

    // TCP_NODELAY on every connection: a forwarded update is one small
    // frame, and Nagle's algorithm would hold it back until the previous
    // one is acknowledged (up to a delayed ACK, 40 ms on Linux).
    let server = {
        let handle = handle.clone();
        tokio::spawn(async move {
            match tls {
                Some(tls) => {
                    axum_server::from_tcp_rustls(listener, tls)?
                        .map(|tls| tls.acceptor(NoDelayAcceptor::new()))
                        .handle(handle)
                        .serve(app)
                        .await
                }
                None => {
                    axum_server::from_tcp(listener)?
                        .acceptor(NoDelayAcceptor::new())
                        .handle(handle)
                        .serve(app)
                        .await
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
    drop(relay);
    // Everything acknowledged was committed before it was acknowledged;
    // this only waits for the writer to finish its current group.
    tokio::task::spawn_blocking(move || writer.join_timeout(Duration::from_secs(10)))
        .await
        .ok();
    tracing::info!("stopped");
    Ok(())
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
