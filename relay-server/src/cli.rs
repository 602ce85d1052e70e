//! The command line: `serve` and `token`. Every flag can also be set by an
//! environment variable (`NEUROPLEX_LISTEN`, `NEUROPLEX_DATA`, ...).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::token::Rights;

/// The Neuroplex relay.
#[derive(Debug, Parser)]
#[command(name = "neuroplex-relay", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve rooms over WebSocket (prints the bound address first).
    Serve(Box<ServeArgs>),
    /// Print a capability token for a room (on the last line).
    Token(TokenArgs),
    /// Write a validator node key (DIR/node.key, DIR/node.pub) and print
    /// its public key.
    Keygen(KeygenArgs),
}

/// `neuroplex-relay keygen`.
#[derive(Debug, Args, Clone)]
pub struct KeygenArgs {
    /// Directory to write node.key (0600) and node.pub into; an existing
    /// node.key is never overwritten.
    #[arg(long)]
    pub out: PathBuf,
}

/// `neuroplex-relay serve`.
#[derive(Debug, Args, Clone)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "NEUROPLEX_LISTEN", default_value = "127.0.0.1:8787")]
    pub listen: SocketAddr,
    /// Data directory (created 0700 if missing). One relay at a time: it
    /// is locked through its `neuroplex.lock`.
    #[arg(long, env = "NEUROPLEX_DATA", default_value = "./neuroplex-data")]
    pub data: PathBuf,
    /// Directory of static files served at `/` (dotfiles never are; it may
    /// not hold --data).
    #[arg(long = "static", env = "NEUROPLEX_STATIC")]
    pub static_dir: Option<PathBuf>,
    /// File holding the token secret (at least 32 bytes); with it, every
    /// connection needs a token.
    #[arg(long, env = "NEUROPLEX_SECRET_FILE")]
    pub secret_file: Option<PathBuf>,
    /// TLS certificate chain (PEM); serves wss:// with --tls-key.
    #[arg(long, env = "NEUROPLEX_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, env = "NEUROPLEX_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Join the validator group this file lists (TOML, see PROTOCOL.md);
    /// needs --node-key.
    #[arg(long, env = "NEUROPLEX_VALIDATORS", requires = "node_key")]
    pub validators: Option<PathBuf>,
    /// This validator's key, as `keygen` wrote it (node.key).
    #[arg(long, env = "NEUROPLEX_NODE_KEY", requires = "validators")]
    pub node_key: Option<PathBuf>,
    /// Allow listening beyond loopback without a secret.
    #[arg(long, env = "NEUROPLEX_INSECURE")]
    pub insecure: bool,
    /// Largest message accepted, in bytes.
    #[arg(long, env = "NEUROPLEX_MAX_MESSAGE_BYTES", default_value_t = 16 << 20)]
    pub max_message_bytes: usize,
    /// Largest presence (awareness) state one client may set, in bytes of
    /// JSON; a larger one closes its connection with 4413.
    #[arg(long, env = "NEUROPLEX_MAX_PRESENCE_BYTES", default_value_t = 64 << 10)]
    pub max_presence_bytes: usize,
    /// Bytes queued for one connection before it is a slow consumer (the
    /// replies one batch owes a connection are held to it too).
    #[arg(long, env = "NEUROPLEX_QUEUE_MAX_BYTES", default_value_t = 64 << 20)]
    pub queue_max_bytes: usize,
    /// Seconds the oldest queued message may wait before its connection is
    /// a slow consumer.
    #[arg(long, env = "NEUROPLEX_QUEUE_MAX_AGE_SECS", default_value_t = 30)]
    pub queue_max_age_secs: u64,
    /// Seconds a room without connections stays loaded.
    #[arg(long, env = "NEUROPLEX_IDLE_SECS", default_value_t = 30)]
    pub idle_secs: u64,
    /// Log entries after which a room's log is compacted into a snapshot.
    #[arg(long, env = "NEUROPLEX_COMPACT_ENTRIES", default_value_t = 1000)]
    pub compact_entries: usize,
    /// Seconds of silence after which a WebSocket connection is pinged;
    /// 0 never pings.
    #[arg(long, env = "NEUROPLEX_PING_SECS", default_value_t = 30)]
    pub ping_secs: u64,
    /// Seconds a pinged connection has to answer (a pong or any frame)
    /// before it is closed with 4508 [default: --ping-secs].
    #[arg(long, env = "NEUROPLEX_PING_TIMEOUT_SECS")]
    pub ping_timeout_secs: Option<u64>,
    /// Seconds a new TCP connection has to complete its TLS handshake and
    /// its HTTP request (the WebSocket upgrade included); later requests
    /// on a kept-alive connection get as long for their headers.
    #[arg(long, env = "NEUROPLEX_HANDSHAKE_SECS", default_value_t = 10)]
    pub handshake_secs: u64,
    /// WebSocket connections held at once; beyond, upgrades get HTTP 503.
    #[arg(long, env = "NEUROPLEX_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,
    /// WebSocket connections held at once from one IP address; beyond,
    /// upgrades get HTTP 503. Behind a reverse proxy every client has the
    /// proxy's address: raise it there.
    #[arg(long, env = "NEUROPLEX_MAX_CONNECTIONS_PER_IP", default_value_t = 256)]
    pub max_connections_per_ip: usize,
    /// A web origin (scheme://host[:port]) whose pages may connect;
    /// repeatable. Without --secret-file only loopback pages (and clients
    /// sending no Origin) may connect besides these; with it, tokens decide
    /// and the Origin is checked only if this is given.
    #[arg(
        long = "allow-origin",
        env = "NEUROPLEX_ALLOW_ORIGIN",
        value_delimiter = ','
    )]
    pub allow_origin: Vec<String>,
    /// Serve /metrics (and /healthz) on this address only, over plain HTTP.
    /// Without it /metrics is on --listen, unless --secret-file is given:
    /// then it is on 127.0.0.1:9787 (skipped with a warning if that port
    /// is taken).
    #[arg(long, env = "NEUROPLEX_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
}

/// `neuroplex-relay token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// File holding the secret (at least 32 bytes; trailing whitespace is
    /// ignored).
    #[arg(long, env = "NEUROPLEX_SECRET_FILE")]
    pub secret_file: PathBuf,
    /// The room the token opens.
    #[arg(long, env = "NEUROPLEX_TOKEN_ROOM")]
    pub room: String,
    /// read or write.
    #[arg(long, env = "NEUROPLEX_TOKEN_RIGHTS")]
    pub rights: Rights,
    /// Lifetime: 90s, 15m, 1h, 7d, or seconds.
    #[arg(long, env = "NEUROPLEX_TOKEN_TTL", default_value = "1h")]
    pub ttl: String,
}
