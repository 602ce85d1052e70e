//! Test kit: a real relay process on a free loopback port, stopped when
//! the handle drops (also when a test fails), and polling helpers.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `neuroplex-relay serve`.
pub struct RelayProcess {
    child: Option<Child>,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// Its data directory.
    pub data: PathBuf,
    args: Vec<String>,
}

pub fn relay_bin() -> &'static str {
    env!("CARGO_BIN_EXE_neuroplex-relay")
}

impl RelayProcess {
    /// Starts a relay on `data` with extra `args`.
    pub fn start(data: &Path, args: &[&str]) -> RelayProcess {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        Self::start_owned(data.to_path_buf(), args, "127.0.0.1:0")
    }

    fn start_owned(data: PathBuf, args: Vec<String>, listen: &str) -> RelayProcess {
        let mut child = Command::new(relay_bin())
            .arg("serve")
            .arg("--listen")
            .arg(listen)
            .arg("--data")
            .arg(&data)
            .args(&args)
            .env(
                "NEUROPLEX_LOG",
                std::env::var("NEUROPLEX_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the relay");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        let mut reader = BufReader::new(stdout);
        reader
            .read_line(&mut line)
            .expect("read the relay's first line");
        let addr = line.trim().to_string();
        assert!(!addr.is_empty(), "the relay printed no address");
        // Keep draining stdout so the relay never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sink = String::new();
            while reader.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
                sink.clear();
            }
        });
        RelayProcess {
            child: Some(child),
            addr,
            data,
            args,
        }
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    pub fn http(&self, path: &str) -> (u16, String) {
        http_get(&self.addr, path)
    }

    /// SIGTERM, and the exit status once it has stopped.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        unsafe_free_kill(child.id(), "TERM");
        wait_exit(&mut child, Duration::from_secs(60))
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().expect("kill -9");
        let _ = child.wait();
    }

    /// A new relay process on the same data directory and arguments.
    pub fn restart(&self) -> RelayProcess {
        assert!(self.child.is_none(), "stop it first");
        Self::start_owned(self.data.clone(), self.args.clone(), "127.0.0.1:0")
    }

    /// Like [`RelayProcess::restart`], on the same port (so that clients
    /// reconnect to it).
    pub fn restart_same_port(&self) -> RelayProcess {
        assert!(self.child.is_none(), "stop it first");
        Self::start_owned(self.data.clone(), self.args.clone(), &self.addr)
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn unsafe_free_kill(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} {pid} failed");
}

fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the relay did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A minimal HTTP/1.1 GET (status, body) over loopback.
pub fn http_get(addr: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).expect("read response");
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// Polls `cond` until it holds; panics naming `what` after `limit`.
pub async fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The value of a metric line starting with `prefix` (labels included),
/// summed over matching lines.
pub fn metric(body: &str, prefix: &str) -> f64 {
    body.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

pub const LONG: Duration = Duration::from_secs(60);

// Document helpers shared by the suites: tags in the CRDT set at a key, and
// the Yjs text named "text".

use neuroplex_core::doc::SharedDoc;
use neuroplex_core::sync::{Atom, apply_in};
use neuroplex_relay::client::Client;
use yrs::{GetString, Text, Transact};

/// Adds `tag` to the set at `key`.
pub fn add_tag(client: &Client, key: &str, tag: &str) {
    let me = client.replica();
    let path = [key.to_string()];
    let tag = Atom::Str(tag.to_string());
    client.edit(|m, cx| apply_in(m, cx, &path, |v, cx| v.set_add(cx, me, tag)));
}

/// Whether the set at `key` holds `tag`.
pub fn has_tag(doc: &SharedDoc, key: &str, tag: &str) -> bool {
    doc.crdt()
        .state()
        .store()
        .get(&key.to_string())
        .is_some_and(|v| v.set.contains(&Atom::Str(tag.to_string())))
}

/// The Yjs text "text".
pub fn text(doc: &SharedDoc) -> String {
    let t = doc.yrs().get_or_insert_text("text");
    t.get_string(&doc.yrs().transact())
}

/// Appends `s` to the Yjs text "text".
pub fn append_text(client: &Client, s: &str) {
    let t = client.read(|d| d.yrs().get_or_insert_text("text"));
    client.edit_yrs(|txn| {
        let len = t.len(txn);
        t.insert(txn, len, s);
    });
}

/// Waits until the client is connected.
pub async fn connected(client: &Client) {
    let mut status = client.status();
    tokio::time::timeout(LONG, status.wait_for(|s| s.connected))
        .await
        .expect("client connects in time")
        .expect("client alive");
}

/// A port free on loopback now (for flags that need one chosen ahead).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Runs `neuroplex-relay ARGS` to its end (killed after `limit`), and
/// returns its exit status and stderr.
pub fn run_to_exit(args: &[&str], limit: Duration) -> (std::process::ExitStatus, String) {
    use std::io::Read;
    let mut child = Command::new(relay_bin())
        .args(args)
        .env("NEUROPLEX_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the relay");
    let mut stderr = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let status = wait_exit(&mut child, limit);
    (status, reader.join().unwrap_or_default())
}
