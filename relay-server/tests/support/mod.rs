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

    /// The relay's process id (while it runs).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// How the process ended, if it did (`None` while it runs).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut()?.try_wait().expect("try_wait")
    }

    /// Whether the process is still running (not exited, not killed).
    pub fn alive(&mut self) -> bool {
        self.child.is_some() && self.exited().is_none()
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
use neuroplex_core::document::{Atom, apply_in};
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

// ---- Resident memory of a process (Linux /proc) ----

/// A field of `/proc/<pid>/status` in KiB (`VmRSS`, `VmHWM`).
/// `None` once the process is gone (a zombie has no memory fields).
fn proc_status_kb(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// The process's resident memory now, in KiB.
pub fn rss_kb(pid: u32) -> u64 {
    proc_status_kb(pid, "VmRSS").unwrap_or_else(|| panic!("no VmRSS for process {pid}"))
}

/// Measures a process's peak resident memory over an interval: `start`
/// resets the kernel's high-water mark (`clear_refs` 5) where it can, and
/// `peak_growth_mb` reads it back. Where the mark cannot be reset, the peak
/// since the process started is used (an overestimate, never an
/// underestimate).
pub struct RssWatch {
    pid: u32,
    before_kb: u64,
}

impl RssWatch {
    pub fn start(pid: u32) -> RssWatch {
        let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
        RssWatch {
            pid,
            before_kb: rss_kb(pid),
        }
    }

    /// Peak resident memory since `start`, minus the resident memory then
    /// (NaN if the process is gone).
    pub fn peak_growth_mb(&self) -> f64 {
        let (Some(hwm), Some(rss)) = (
            proc_status_kb(self.pid, "VmHWM"),
            proc_status_kb(self.pid, "VmRSS"),
        ) else {
            return f64::NAN;
        };
        hwm.max(rss).saturating_sub(self.before_kb) as f64 / 1024.0
    }

    /// Resident memory now, minus the resident memory at `start` (NaN if
    /// the process is gone).
    pub fn growth_mb(&self) -> f64 {
        proc_status_kb(self.pid, "VmRSS")
            .map_or(f64::NAN, |r| (r as f64 - self.before_kb as f64) / 1024.0)
    }
}

// ---- Raw WebSocket connections (attackers) ----

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A raw WebSocket to `/{endpoint}/{room}` (with `?token=` if given).
pub async fn raw_ws(relay: &RelayProcess, endpoint: &str, room: &str, token: Option<&str>) -> Ws {
    let mut url = format!("{}/{endpoint}/{room}", relay.ws_url());
    if let Some(t) = token {
        url.push_str(&format!("?token={t}"));
    }
    let mut config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default();
    config.max_message_size = None;
    config.max_frame_size = None;
    tokio_tungstenite::connect_async_with_config(url, Some(config), false)
        .await
        .expect("connect")
        .0
}

/// Reads (and drops) what the relay sends until it closes: the close code,
/// or `None` if the connection ended without a close frame.
pub async fn read_close_code(ws: &mut Ws) -> Option<u16> {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let deadline = tokio::time::Instant::now() + LONG;
    loop {
        match tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("the relay closes the connection in time")
        {
            Some(Ok(Message::Close(f))) => return f.map(|f| u16::from(f.code)),
            Some(Ok(_)) => continue,
            None | Some(Err(_)) => return None,
        }
    }
}

// ---- An honest y-websocket client ----

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use yrs::sync::awareness::{AwarenessUpdate, AwarenessUpdateEntry};
use yrs::sync::{Message as YMessage, MessageReader, SyncMessage};
use yrs::updates::decoder::{Decode, DecoderV1};
use yrs::updates::encoder::Encode;
use yrs::{ReadTxn, StateVector, Update};

#[derive(Default)]
struct PeerState {
    /// Everyone's awareness as this client heard it: clock and state
    /// (`None` once removed).
    awareness: HashMap<u64, (u32, Option<String>)>,
    /// The connection ended: with the close code the relay sent, if any.
    closed: Option<Option<u16>>,
    /// Messages carrying document updates this client sent (sync step 2
    /// and updates).
    update_messages_sent: usize,
    /// Frames received from the relay.
    frames_received: usize,
}

/// An unmodified y-websocket client, in Rust: a `yrs::Doc` over
/// tokio-tungstenite. It answers the relay's sync step 1 with step 2 of
/// what the relay lacks, sends its own step 1, applies step 2 and updates
/// it receives, sends each local edit as an update, announces awareness
/// `{"name": ...}` for its own client id and answers awareness queries.
/// One message per frame, as y-websocket sends.
pub struct YjsPeer {
    pub name: String,
    doc: yrs::Doc,
    state: Arc<Mutex<PeerState>>,
    tx: mpsc::UnboundedSender<Vec<u8>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for YjsPeer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn apply_awareness(map: &mut HashMap<u64, (u32, Option<String>)>, upd: AwarenessUpdate) {
    for (id, e) in upd.clients {
        let state = if &*e.json == "null" {
            None
        } else {
            Some(e.json.to_string())
        };
        let newer = match map.get(&id.get()) {
            None => true,
            Some((clock, old)) => {
                e.clock > *clock || (e.clock == *clock && state.is_none() && old.is_some())
            }
        };
        if newer {
            map.insert(id.get(), (e.clock, state));
        }
    }
}

impl YjsPeer {
    /// Connects to `/yjs/{room}` of `relay` (with a token if given).
    pub async fn connect(
        relay: &RelayProcess,
        room: &str,
        name: &str,
        token: Option<&str>,
    ) -> YjsPeer {
        use futures_util::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::Message;

        let ws = raw_ws(relay, "yjs", room, token).await;
        let doc = yrs::Doc::new();
        let state = Arc::new(Mutex::new(PeerState::default()));
        let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
        let me = doc.client_id().get();
        let presence = format!("{{\"name\":{}}}", serde_json::to_string(name).unwrap());
        // First its own step 1 and its presence, as y-websocket does on open.
        let step1 = YMessage::Sync(SyncMessage::SyncStep1(doc.transact().state_vector()));
        tx.send(step1.encode_v1()).unwrap();
        tx.send(awareness_frame(me, 1, &presence)).unwrap();
        state
            .lock()
            .unwrap()
            .awareness
            .insert(me, (1, Some(presence.clone())));

        let (task_doc, task_state, task_tx) = (doc.clone(), state.clone(), tx.clone());
        let task = tokio::spawn(async move {
            let (mut sink, mut stream) = ws.split();
            loop {
                tokio::select! {
                    out = rx.recv() => {
                        let Some(bytes) = out else { break };
                        if sink.send(Message::Binary(bytes.into())).await.is_err() {
                            break;
                        }
                    }
                    msg = stream.next() => {
                        let bytes = match msg {
                            Some(Ok(Message::Binary(b))) => b,
                            Some(Ok(Message::Close(f))) => {
                                task_state.lock().unwrap().closed = Some(f.map(|f| u16::from(f.code)));
                                let _ = sink.close().await;
                                return;
                            }
                            Some(Ok(_)) => continue,
                            None | Some(Err(_)) => break,
                        };
                        task_state.lock().unwrap().frames_received += 1;
                        let mut dec = DecoderV1::from(bytes.as_ref());
                        for m in MessageReader::new(&mut dec) {
                            let m = m.expect("the relay sends valid y-websocket messages");
                            match m {
                                YMessage::Sync(SyncMessage::SyncStep1(sv)) => {
                                    let diff = task_doc.transact().encode_state_as_update_v1(&sv);
                                    let reply = YMessage::Sync(SyncMessage::SyncStep2(diff));
                                    task_state.lock().unwrap().update_messages_sent += 1;
                                    let _ = task_tx.send(reply.encode_v1());
                                }
                                YMessage::Sync(SyncMessage::SyncStep2(u))
                                | YMessage::Sync(SyncMessage::Update(u)) => {
                                    let u = Update::decode_v1(&u).expect("the relay sends valid updates");
                                    task_doc.transact_mut().apply_update(u).expect("apply");
                                }
                                YMessage::Awareness(upd) => {
                                    apply_awareness(&mut task_state.lock().unwrap().awareness, upd);
                                }
                                YMessage::AwarenessQuery => {
                                    let own = task_state.lock().unwrap().awareness.get(&me).cloned();
                                    if let Some((clock, Some(s))) = own {
                                        let _ = task_tx.send(awareness_frame(me, clock, &s));
                                    }
                                }
                                YMessage::Auth(_) | YMessage::Custom(..) => {}
                            }
                        }
                    }
                }
            }
            let mut st = task_state.lock().unwrap();
            if st.closed.is_none() {
                st.closed = Some(None);
            }
        });
        YjsPeer {
            name: name.to_string(),
            doc,
            state,
            tx,
            task,
        }
    }

    /// This client's Yjs client id (its awareness id).
    pub fn client_id(&self) -> u64 {
        self.doc.client_id().get()
    }

    /// The Yjs text "text".
    pub fn text(&self) -> String {
        let t = self.doc.get_or_insert_text("text");
        t.get_string(&self.doc.transact())
    }

    /// Appends `s` to the text "text" and sends the edit as an update.
    pub fn append(&self, s: &str) {
        let t = self.doc.get_or_insert_text("text");
        let before: StateVector = self.doc.transact().state_vector();
        {
            let mut txn = self.doc.transact_mut();
            let len = t.len(&txn);
            t.insert(&mut txn, len, s);
        }
        let update = self.doc.transact().encode_state_as_update_v1(&before);
        self.state.lock().unwrap().update_messages_sent += 1;
        let _ = self
            .tx
            .send(YMessage::Sync(SyncMessage::Update(update)).encode_v1());
    }

    /// Sets this client's own awareness state (a JSON text), clock + 1.
    pub fn set_presence(&self, json: &str) {
        let me = self.client_id();
        let mut st = self.state.lock().unwrap();
        let clock = st.awareness.get(&me).map_or(0, |e| e.0) + 1;
        st.awareness.insert(me, (clock, Some(json.to_string())));
        let _ = self.tx.send(awareness_frame(me, clock, json));
    }

    /// The awareness state this client holds for `client` (`None` if it
    /// never heard of it or it was removed).
    pub fn presence_of(&self, client: u64) -> Option<String> {
        self.state
            .lock()
            .unwrap()
            .awareness
            .get(&client)
            .and_then(|e| e.1.clone())
    }

    /// How the connection ended, if it did: `Some(code)` with the relay's
    /// close code (`Some(None)` without a close frame).
    pub fn closed(&self) -> Option<Option<u16>> {
        self.state.lock().unwrap().closed
    }

    /// Messages with document updates this client has sent.
    pub fn update_messages_sent(&self) -> usize {
        self.state.lock().unwrap().update_messages_sent
    }

    /// Frames received from the relay so far.
    pub fn frames_received(&self) -> usize {
        self.state.lock().unwrap().frames_received
    }

    /// Waits until `cond` holds of this client, or panics naming `what`.
    pub async fn wait(&self, what: &str, mut cond: impl FnMut(&YjsPeer) -> bool) {
        let deadline = Instant::now() + LONG;
        while !cond(self) {
            assert!(
                self.closed().is_none(),
                "{}: connection ended ({:?}) while waiting for {what}",
                self.name,
                self.closed()
            );
            assert!(
                Instant::now() < deadline,
                "{}: timed out waiting for {what} (text {:?})",
                self.name,
                self.text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A y-websocket awareness frame with one entry.
pub fn awareness_frame(client: u64, clock: u32, json: &str) -> Vec<u8> {
    let mut clients = HashMap::new();
    clients.insert(
        yrs::block::ClientID::new(client),
        AwarenessUpdateEntry {
            clock,
            json: Arc::from(json),
        },
    );
    YMessage::Awareness(AwarenessUpdate { clients }).encode_v1()
}

/// Both honest clients edit (markers tagged with `tag`) and converge on the
/// same text holding both edits; neither connection may have ended.
pub async fn converge(a: &YjsPeer, b: &YjsPeer, tag: &str) {
    let (ma, mb) = (format!("<{tag}:{}>", a.name), format!("<{tag}:{}>", b.name));
    a.append(&ma);
    b.append(&mb);
    for p in [a, b] {
        p.wait(&format!("both edits of {tag}"), |p| {
            let t = p.text();
            t.contains(&ma) && t.contains(&mb)
        })
        .await;
    }
    let deadline = Instant::now() + LONG;
    while a.text() != b.text() {
        assert!(
            Instant::now() < deadline,
            "{tag}: the honest clients diverge: {:?} vs {:?}",
            a.text(),
            b.text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A capability token from the `neuroplex-relay token` command.
pub fn issue_token(secret_file: &Path, room: &str, rights: &str) -> String {
    let out = Command::new(relay_bin())
        .args(["token", "--secret-file"])
        .arg(secret_file)
        .args(["--room", room, "--rights", rights, "--ttl", "1h"])
        .output()
        .expect("run the token command");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    stdout.lines().last().unwrap().to_string()
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
