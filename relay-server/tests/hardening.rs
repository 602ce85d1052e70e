//! Resources and exposure an attacker could go for, against real relay
//! processes: dead and half-open connections, connection limits, cross-site
//! pages, expiring tokens, the data directory, and what is served.

mod support;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use neuroplex_core::doc::{CloseCode, Frame, PROTOCOL_VERSION, PresenceEntry};
use neuroplex_relay::client::{Client, ClientConfig};
use support::{LONG, RelayProcess, append_text, connected, http_get, run_to_exit, wait_for};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a WebSocket with extra headers: the socket, or the refusal's
/// status and body.
async fn open(url: &str, headers: &[(&str, &str)]) -> Result<Ws, (u16, String)> {
    let mut req = url.into_client_request().unwrap();
    for (k, v) in headers {
        let name: axum::http::HeaderName = k.parse().expect("header name");
        req.headers_mut()
            .insert(name, v.parse().expect("header value"));
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            let body = resp
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            Err((resp.status().as_u16(), body))
        }
        Err(e) => panic!("unexpected error opening {url}: {e}"),
    }
}

/// The status of an upgrade: 101 if it succeeded.
async fn status(url: &str, headers: &[(&str, &str)]) -> u16 {
    match open(url, headers).await {
        Ok(mut ws) => {
            let _ = ws.close(None).await;
            101
        }
        Err((code, _)) => code,
    }
}

/// Reads until the relay's close frame; its code, or `None` if the stream
/// ended without one. Gives up after `limit`.
async fn close_code(ws: &mut Ws, limit: Duration) -> Option<u16> {
    let read = async {
        while let Some(m) = ws.next().await {
            match m {
                Ok(Message::Close(Some(f))) => return Some(u16::from(f.code)),
                Ok(Message::Close(None)) | Err(_) => return None,
                Ok(_) => {}
            }
        }
        None
    };
    tokio::time::timeout(limit, read)
        .await
        .expect("the relay closes in time")
}

fn hello() -> Message {
    Message::binary(
        Frame::Hello {
            protocol: PROTOCOL_VERSION,
            replica: 9,
            writable: true,
        }
        .encode(),
    )
}

fn write_secret(dir: &std::path::Path) -> std::path::PathBuf {
    let file = dir.join("secret");
    std::fs::write(&file, "a secret of more than thirty-two bytes\n").unwrap();
    file
}

fn token(secret: &std::path::Path, room: &str, ttl: &str) -> String {
    let out = std::process::Command::new(support::relay_bin())
        .args(["token", "--secret-file"])
        .arg(secret)
        .args(["--room", room, "--rights", "write", "--ttl", ttl])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .to_string()
}

// ---- 1. Dead connections go ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_answers_nothing_is_closed_and_leaves_its_room() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(dir.path(), &["--ping-secs", "1"]);
    let url = format!("{}/sync/dead-room", relay.ws_url());

    // It announces its presence, then never reads again (so never pongs).
    let mut dead = open(&url, &[]).await.unwrap();
    dead.send(hello()).await.unwrap();
    let presence = Frame::Presence {
        entries: vec![PresenceEntry {
            client: 77,
            clock: 1,
            state: Some("{\"name\":\"dead\"}".into()),
        }],
    };
    dead.send(Message::binary(presence.encode())).await.unwrap();

    // A live observer (tungstenite answers pings while it reads).
    let mut observer = open(&url, &[]).await.unwrap();
    observer.send(hello()).await.unwrap();
    let state_of_77 = |m: &Message| match m {
        Message::Binary(b) => match Frame::decode(b, 1 << 20) {
            Ok(Frame::Presence { entries }) => entries
                .into_iter()
                .find(|e| e.client == 77)
                .map(|e| e.state),
            _ => None,
        },
        _ => None,
    };
    let seen = tokio::time::timeout(LONG, async {
        loop {
            let m = observer.next().await.expect("open").expect("frame");
            if let Some(Some(_)) = state_of_77(&m) {
                return Instant::now();
            }
        }
    })
    .await
    .expect("the observer sees the presence");
    // Its leave reaches the room: the presence is removed, within a ping
    // interval and a timeout (and scheduling slack).
    tokio::time::timeout(LONG, async {
        loop {
            let m = observer.next().await.expect("open").expect("frame");
            if let Some(None) = state_of_77(&m) {
                return;
            }
        }
    })
    .await
    .expect("the dead client's presence is removed");
    assert!(
        seen.elapsed() < Duration::from_secs(20),
        "took {:?}",
        seen.elapsed()
    );
    // The dead client's socket holds the relay's ping, then its close.
    assert_eq!(
        close_code(&mut dead, LONG).await,
        Some(CloseCode::PING_TIMEOUT)
    );
    // The observer, which answers, is still there.
    observer.send(hello()).await.unwrap();
    let (_, m) = relay.http("/metrics");
    assert!(support::metric(&m, "neuroplex_rejected_total{reason=\"ping_timeout\"}") >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_requests_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(dir.path(), &["--handshake-secs", "1"]);
    // Half a request line, and nothing at all.
    for sent in [&b"GET /yjs/room HT"[..], b""] {
        let started = Instant::now();
        let mut s = std::net::TcpStream::connect(&relay.addr).unwrap();
        s.write_all(sent).unwrap();
        s.set_read_timeout(Some(LONG)).unwrap();
        let mut buf = Vec::new();
        match s.read_to_end(&mut buf) {
            Ok(_) => {}
            Err(e) => assert!(
                !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ),
                "still open after {:?}",
                started.elapsed()
            ),
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "dropped only after {:?}",
            started.elapsed()
        );
    }
    // A complete request is served as ever.
    assert_eq!(relay.http("/healthz"), (200, "ok\n".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_ip_limit_refuses_with_503_and_a_closed_connection_frees_its_slot() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(dir.path(), &["--max-connections-per-ip", "2"]);
    let url = format!("{}/yjs/limited", relay.ws_url());
    let mut first = open(&url, &[]).await.unwrap();
    let _second = open(&url, &[]).await.unwrap();
    let (code, body) = open(&url, &[]).await.map(|_| ()).unwrap_err();
    assert_eq!(code, 503);
    assert!(body.contains("--max-connections-per-ip"), "{body}");
    // Other endpoints are not connections: still served.
    assert_eq!(relay.http("/healthz").0, 200);

    first.close(None).await.unwrap();
    while first.next().await.is_some() {}
    let deadline = Instant::now() + LONG;
    loop {
        match open(&url, &[]).await {
            Ok(_) => break,
            Err((503, _)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("no slot freed: {e:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_global_limit_refuses_with_503() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(dir.path(), &["--max-connections", "1"]);
    let url = format!("{}/sync/limited", relay.ws_url());
    let _only = open(&url, &[]).await.unwrap();
    let (code, body) = open(&url, &[]).await.map(|_| ()).unwrap_err();
    assert_eq!(code, 503);
    assert!(body.contains("--max-connections)"), "{body}");
}

// ---- 2. Cross-site pages ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_secret_only_loopback_and_allowed_origins_connect() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(
        &dir.path().join("a"),
        &["--allow-origin", "https://app.example.com"],
    );
    let url = format!("{}/yjs/origins", relay.ws_url());
    let (code, body) = open(&url, &[("origin", "https://evil.example")])
        .await
        .map(|_| ())
        .unwrap_err();
    assert_eq!(code, 403);
    assert!(
        body.contains("evil.example") && body.contains("--allow-origin"),
        "{body}"
    );
    let port = relay.addr.rsplit(':').next().unwrap().to_string();
    for origin in [
        format!("http://localhost:{port}"),
        format!("http://127.0.0.1:{port}"),
        "http://[::1]:5173".into(),
        "https://localhost".into(),
        "https://app.example.com".into(),
    ] {
        assert_eq!(status(&url, &[("origin", &origin)]).await, 101, "{origin}");
    }
    assert_eq!(status(&url, &[]).await, 101, "no origin");
    // DNS rebinding: the page's own host name, pointing at loopback.
    assert_eq!(
        status(
            &url,
            &[("origin", &format!("http://rebound.example:{port}"))]
        )
        .await,
        403
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_secret_tokens_decide_unless_origins_are_listed() {
    let dir = tempfile::tempdir().unwrap();
    let secret = write_secret(dir.path());
    let secret_arg = secret.to_str().unwrap();
    let open_relay = RelayProcess::start(&dir.path().join("a"), &["--secret-file", secret_arg]);
    let t = token(&secret, "r", "1h");
    let evil = [("origin", "https://evil.example")];
    let url = format!("{}/yjs/r?token={t}", open_relay.ws_url());
    assert_eq!(status(&url, &evil).await, 101);
    let listed = RelayProcess::start(
        &dir.path().join("b"),
        &[
            "--secret-file",
            secret_arg,
            "--allow-origin",
            "https://app.example.com",
        ],
    );
    let url = format!("{}/yjs/r?token={t}", listed.ws_url());
    assert_eq!(status(&url, &evil).await, 403);
    assert_eq!(
        status(&url, &[("origin", "https://app.example.com")]).await,
        101
    );
    assert_eq!(status(&url, &[]).await, 101);
}

// ---- 3. Tokens end ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_is_closed_when_its_token_expires() {
    let dir = tempfile::tempdir().unwrap();
    let secret = write_secret(dir.path());
    let relay = RelayProcess::start(
        &dir.path().join("data"),
        &["--secret-file", secret.to_str().unwrap()],
    );
    let t = token(&secret, "r", "2s");
    let started = Instant::now();
    let mut ws = open(&format!("{}/yjs/r?token={t}", relay.ws_url()), &[])
        .await
        .unwrap();
    assert_eq!(close_code(&mut ws, LONG).await, Some(4401));
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bearer_scheme_is_case_insensitive() {
    let dir = tempfile::tempdir().unwrap();
    let secret = write_secret(dir.path());
    let relay = RelayProcess::start(
        &dir.path().join("data"),
        &["--secret-file", secret.to_str().unwrap()],
    );
    let t = token(&secret, "r", "1h");
    let url = format!("{}/sync/r", relay.ws_url());
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let value = format!("{scheme} {t}");
        assert_eq!(
            status(&url, &[("authorization", &value)]).await,
            101,
            "{scheme}"
        );
    }
    assert_eq!(
        status(&url, &[("authorization", &format!("Basic {t}"))]).await,
        401
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_shorter_than_32_bytes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let short = dir.path().join("short");
    // 31 bytes, and a newline that does not count.
    std::fs::write(&short, format!("{}\n", "x".repeat(31))).unwrap();
    let data = dir.path().join("data");
    let (status, err) = run_to_exit(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data",
            data.to_str().unwrap(),
            "--secret-file",
            short.to_str().unwrap(),
        ],
        LONG,
    );
    assert!(!status.success());
    assert!(err.contains("31 bytes") && err.contains("32"), "{err}");
    let (status, err) = run_to_exit(
        &[
            "token",
            "--secret-file",
            short.to_str().unwrap(),
            "--room",
            "r",
            "--rights",
            "read",
        ],
        LONG,
    );
    assert!(!status.success());
    assert!(err.contains("31 bytes"), "{err}");
}

// ---- 4. Storage ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_relay_on_the_same_data_exits_naming_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = RelayProcess::start(dir.path(), &[]);
    let data = dir.path().to_str().unwrap();
    let (status, err) = run_to_exit(&["serve", "--listen", "127.0.0.1:0", "--data", data], LONG);
    assert!(!status.success());
    assert!(err.contains("neuroplex.lock"), "{err}");
    // Once the first has stopped, the directory is free again.
    assert!(first.terminate().success());
    let _again = first.restart();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_is_503_while_commits_fail_and_200_once_one_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(dir.path(), &[]);
    let client = Client::start(ClientConfig::new(relay.ws_url(), "health"));
    connected(&client).await;
    assert_eq!(relay.http("/healthz"), (200, "ok\n".into()));

    // Another process takes SQLite's write lock, as a backup tool or a
    // stray sqlite3 shell would: the relay's commits wait, then fail.
    let blocker = rusqlite::Connection::open(dir.path().join("neuroplex.sqlite3")).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    append_text(&client, "x");
    let mut body = String::new();
    wait_for("healthz reports the stalled commit", LONG, || {
        let (code, b) = relay.http("/healthz");
        body = b;
        code == 503 && body.contains("storage")
    })
    .await;
    wait_for("healthz reports the failed commit", LONG, || {
        let (code, b) = relay.http("/healthz");
        body = b;
        code == 503 && body.contains("failed")
    })
    .await;
    assert!(body.contains("locked"), "{body}");

    blocker.execute_batch("COMMIT").unwrap();
    drop(blocker);
    wait_for("healthz recovers", LONG, || {
        relay.http("/healthz") == (200, "ok\n".into())
    })
    .await;
    // And writes are durable again.
    append_text(&client, "y");
    assert!(
        client
            .wait_until(LONG, |d| support::text(d).ends_with('y'))
            .await
    );
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_directory_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("nested").join("data");
    let relay = RelayProcess::start(&data, &[]);
    let client = Client::start(ClientConfig::new(relay.ws_url(), "private"));
    connected(&client).await;
    append_text(&client, "secret plans");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    wait_for("the WAL exists", LONG, || {
        data.join("neuroplex.sqlite3-wal").exists()
    })
    .await;
    assert_eq!(mode(&data), 0o700, "data directory");
    for f in [
        "neuroplex.sqlite3",
        "neuroplex.sqlite3-wal",
        "neuroplex.sqlite3-shm",
        "neuroplex.lock",
    ] {
        assert_eq!(mode(&data.join(f)), 0o600, "{f}");
    }
}

// ---- 5. What else is exposed ----

fn site(dir: &std::path::Path) -> std::path::PathBuf {
    let site = dir.join("site");
    std::fs::create_dir_all(site.join(".git")).unwrap();
    std::fs::create_dir_all(site.join("sub/.hidden")).unwrap();
    std::fs::write(site.join("index.html"), "<p>hi</p>").unwrap();
    std::fs::write(site.join(".env"), "TOKEN=1").unwrap();
    std::fs::write(site.join(".git/config"), "[core]").unwrap();
    std::fs::write(site.join("sub/.hidden/x"), "x").unwrap();
    site
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dotfiles_are_not_served_and_data_may_not_be_inside_static() {
    let dir = tempfile::tempdir().unwrap();
    let site = site(dir.path());
    let relay = RelayProcess::start(
        &dir.path().join("data"),
        &["--static", site.to_str().unwrap()],
    );
    assert_eq!(relay.http("/index.html"), (200, "<p>hi</p>".into()));
    for hidden in [
        "/.env",
        "/.git/config",
        "/%2egit/config",
        "/%2Eenv",
        "/sub/.hidden/x",
    ] {
        assert_eq!(relay.http(hidden).0, 404, "{hidden}");
    }

    // A data directory not created yet: the refusal leaves nothing behind.
    let inside = site.join("data");
    let (status, err) = run_to_exit(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data",
            inside.to_str().unwrap(),
            "--static",
            site.to_str().unwrap(),
        ],
        LONG,
    );
    assert!(!status.success());
    assert!(err.contains("inside --static"), "{err}");
    assert!(
        !inside.exists(),
        "a refused start created {}",
        inside.display()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_secret_metrics_are_only_on_the_metrics_listener() {
    let dir = tempfile::tempdir().unwrap();
    let secret = write_secret(dir.path());
    let metrics_addr = format!("127.0.0.1:{}", support::free_port());
    let relay = RelayProcess::start(
        &dir.path().join("data"),
        &[
            "--secret-file",
            secret.to_str().unwrap(),
            "--metrics-listen",
            &metrics_addr,
        ],
    );
    assert_eq!(relay.http("/metrics").0, 404);
    assert_eq!(relay.http("/healthz").0, 200);
    let (code, body) = http_get(&metrics_addr, "/metrics");
    assert_eq!(code, 200);
    assert!(body.contains("neuroplex_"), "{body}");
    assert_eq!(http_get(&metrics_addr, "/healthz").0, 200);

    // Without a secret, /metrics stays on the main listener.
    let open_relay = RelayProcess::start(&dir.path().join("open"), &[]);
    assert_eq!(open_relay.http("/metrics").0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_names_with_control_characters_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(dir.path(), &[]);
    for room in ["a%0Ab", "%1b%5B31mred", "tab%09"] {
        for endpoint in ["yjs", "sync"] {
            let url = format!("{}/{endpoint}/{room}", relay.ws_url());
            let (code, body) = open(&url, &[]).await.map(|_| ()).unwrap_err();
            assert_eq!(code, 400, "{url}");
            assert!(body.contains("control characters"), "{body}");
        }
    }
    assert_eq!(
        status(&format!("{}/yjs/plain-room", relay.ws_url()), &[]).await,
        101
    );
}

/// `keygen` and `serve --validators`: a relay whose key is not in the file
/// refuses to start, saying so; a member is named by its place in the file
/// (and, as the group protocol does not run yet, told so).
#[test]
fn a_relay_whose_key_is_not_in_the_validators_file_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut keys = Vec::new();
    for i in 0..5 {
        let out = dir.path().join(format!("node{i}"));
        let (status, err) = run_to_exit(&["keygen", "--out", out.to_str().unwrap()], LONG);
        assert!(status.success(), "{err}");
        keys.push(
            std::fs::read_to_string(out.join("node.pub"))
                .unwrap()
                .trim()
                .to_owned(),
        );
    }
    // keygen never overwrites a key.
    let node0 = dir.path().join("node0");
    let (status, err) = run_to_exit(&["keygen", "--out", node0.to_str().unwrap()], LONG);
    assert!(!status.success());
    assert!(err.contains("never overwritten"), "{err}");
    // A group of the first four.
    let file = dir.path().join("validators.toml");
    let text: String = keys[..4]
        .iter()
        .enumerate()
        .map(|(i, k)| {
            format!(
                "[[validator]]\npublic_key = \"{k}\"\nquic = \"127.0.0.1:{}\"\nurl = \"ws://127.0.0.1:{}\"\n\n",
                7100 + i,
                8100 + i
            )
        })
        .collect();
    std::fs::write(&file, text).unwrap();
    let serve = |node: usize| {
        let key = dir.path().join(format!("node{node}/node.key"));
        run_to_exit(
            &[
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--data",
                dir.path().join(format!("data{node}")).to_str().unwrap(),
                "--validators",
                file.to_str().unwrap(),
                "--node-key",
                key.to_str().unwrap(),
            ],
            LONG,
        )
    };
    let (status, err) = serve(4);
    assert!(!status.success());
    assert!(
        err.contains(&keys[4]) && err.contains("is not in the validators file"),
        "{err}"
    );
    let (status, err) = serve(2);
    assert!(!status.success());
    assert!(err.contains("validator 2 of 4 (f = 1)"), "{err}");
    // --validators needs --node-key.
    let (status, err) = run_to_exit(&["serve", "--validators", file.to_str().unwrap()], LONG);
    assert!(!status.success());
    assert!(err.contains("--node-key"), "{err}");
}
