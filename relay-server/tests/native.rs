//! The native protocol end to end: real relay processes on loopback ports,
//! real native clients, real SQLite files.

mod support;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use neuroplex_core::doc::{CloseCode, Frame, PROTOCOL_VERSION};
use neuroplex_core::sync::Bytes;
use neuroplex_relay::client::{Client, ClientConfig};
use support::{LONG, RelayProcess, add_tag, append_text, connected, has_tag, text, wait_for};
use tokio_tungstenite::tungstenite::Message as WsMessage;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_native_clients_converge_on_crdt_and_text() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(dir.path(), &[]);
    let a = Client::start(ClientConfig::new(relay.ws_url(), "room-a"));
    let b = Client::start(ClientConfig::new(relay.ws_url(), "room-a"));
    connected(&a).await;
    connected(&b).await;

    add_tag(&a, "todo", "from-a");
    add_tag(&b, "todo", "from-b");
    append_text(&a, "hello ");
    append_text(&b, "world");

    for c in [&a, &b] {
        assert!(
            c.wait_until(LONG, |d| has_tag(d, "todo", "from-a")
                && has_tag(d, "todo", "from-b")
                && text(d).contains("hello")
                && text(d).contains("world"))
                .await,
            "both clients see both edits"
        );
    }
    assert_eq!(a.read(text), b.read(text));
    assert_eq!(
        a.read(|d| d.crdt().state().clone()),
        b.read(|d| d.crdt().state().clone())
    );
    // The relay reports what it made durable.
    let mut st = a.status();
    tokio::time::timeout(
        LONG,
        st.wait_for(|s| s.yrs_saved >= s.yrs_sent && s.yrs_sent > 0),
    )
    .await
    .expect("yrs updates acknowledged as saved")
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_state_and_sigterm_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut relay = RelayProcess::start(dir.path(), &["--compact-entries", "5"]);
    let a = Client::start(ClientConfig::new(relay.ws_url(), "persist"));
    connected(&a).await;
    for i in 0..12 {
        add_tag(&a, "k", &format!("v{i}"));
        append_text(&a, &format!("<{i}>"));
    }
    // Wait for everything to be acknowledged durable.
    let mut st = a.status();
    tokio::time::timeout(
        LONG,
        st.wait_for(|s| s.yrs_sent >= 12 && s.yrs_saved >= s.yrs_sent),
    )
    .await
    .expect("saved in time")
    .unwrap();
    let observer = Client::start(ClientConfig::new(relay.ws_url(), "persist"));
    assert!(observer.wait_until(LONG, |d| has_tag(d, "k", "v11")).await);

    let mut closed = a.status();
    let status = relay.terminate();
    assert!(status.success(), "SIGTERM exits 0, got {status:?}");
    // The client was told "going away" (1001) and reconnects later.
    tokio::time::timeout(LONG, closed.wait_for(|s| !s.connected))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        closed.borrow().last_close.as_ref().map(|e| e.0),
        Some(CloseCode::GOING_AWAY)
    );
    drop(a);
    drop(observer);

    let relay = relay.restart();
    let c = Client::start(ClientConfig::new(relay.ws_url(), "persist"));
    assert!(
        c.wait_until(LONG, |d| (0..12).all(
            |i| has_tag(d, "k", &format!("v{i}")) && text(d).contains(&format!("<{i}>"))
        ))
        .await,
        "everything is there after a restart"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_nothing_a_client_has_seen() {
    let dir = tempfile::tempdir().unwrap();
    let mut relay = RelayProcess::start(dir.path(), &["--compact-entries", "50"]);
    let writer = Client::start(ClientConfig::new(relay.ws_url(), "crash"));
    let observer = Client::start(ClientConfig::new(relay.ws_url(), "crash"));
    connected(&writer).await;
    connected(&observer).await;

    // Write steadily; kill the relay once the observer has seen a good part.
    let mut i = 0;
    loop {
        add_tag(&writer, "k", &format!("v{i}"));
        append_text(&writer, &format!("<{i}>"));
        i += 1;
        if i % 20 == 0 {
            tokio::task::yield_now().await;
            if observer.read(|d| (0..100).all(|j| has_tag(d, "k", &format!("v{j}")))) {
                break;
            }
            assert!(i < 100_000, "the observer never caught up");
        }
    }
    relay.kill9();
    // What the observer saw before the crash (it keeps no storage, so it
    // stays as it was once the relay is gone).
    let mut status = observer.status();
    tokio::time::timeout(LONG, status.wait_for(|s| !s.connected))
        .await
        .unwrap()
        .unwrap();
    let (seen_tags, seen_text) = observer.read(|d| {
        let tags: Vec<String> = (0..i)
            .map(|j| format!("v{j}"))
            .filter(|t| has_tag(d, "k", t))
            .collect();
        (tags, text(d))
    });
    assert!(seen_tags.len() >= 100);
    drop(writer);
    drop(observer);

    let relay = relay.restart();
    let fresh = Client::start(ClientConfig::new(relay.ws_url(), "crash"));
    connected(&fresh).await;
    assert!(
        fresh
            .wait_until(LONG, |d| seen_tags.iter().all(|t| has_tag(d, "k", t))
                && seen_text
                    .split('>')
                    .filter(|s| !s.is_empty())
                    .all(|s| text(d).contains(&format!("{s}>"))))
            .await,
        "every update the observer saw ({} tags, {} bytes of text) survives kill -9",
        seen_tags.len(),
        seen_text.len()
    );
}

async fn raw(
    relay: &RelayProcess,
    room: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let url = format!("{}/sync/{room}", relay.ws_url());
    tokio_tungstenite::connect_async(url)
        .await
        .expect("connect")
        .0
}

/// Reads until the relay closes; returns the close code.
async fn close_code(
    ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> Option<u16> {
    let deadline = tokio::time::Instant::now() + LONG;
    loop {
        match tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("closed in time")
        {
            Some(Ok(WsMessage::Close(f))) => return f.map(|f| u16::from(f.code)),
            Some(Ok(_)) => continue,
            None | Some(Err(_)) => return None,
        }
    }
}

fn hello() -> Vec<u8> {
    Frame::Hello {
        protocol: PROTOCOL_VERSION,
        replica: 77,
        writable: true,
    }
    .encode()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_closes_only_its_connection() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(dir.path(), &["--max-message-bytes", "1048576"]);
    let a = Client::start(ClientConfig::new(relay.ws_url(), "bad"));
    let b = Client::start(ClientConfig::new(relay.ws_url(), "bad"));
    connected(&a).await;
    connected(&b).await;

    let cases: Vec<(&str, Vec<WsMessage>, u16)> = vec![
        (
            "text frame",
            vec![WsMessage::Text("hi".into())],
            CloseCode::TEXT_FRAME,
        ),
        (
            "garbage",
            vec![WsMessage::Binary(vec![1, 255, 255, 255].into())],
            CloseCode::MALFORMED,
        ),
        (
            "unknown codec version",
            vec![WsMessage::Binary(vec![9, 0].into())],
            CloseCode::MALFORMED,
        ),
        (
            "no hello first",
            vec![WsMessage::Binary(
                Frame::YrsSyncRequest {
                    state_vector: Bytes(vec![0]),
                }
                .encode()
                .into(),
            )],
            CloseCode::MALFORMED,
        ),
        (
            "other protocol version",
            vec![WsMessage::Binary(
                Frame::Hello {
                    protocol: 99,
                    replica: 1,
                    writable: true,
                }
                .encode()
                .into(),
            )],
            CloseCode::UNSUPPORTED_PROTOCOL,
        ),
        (
            "undecodable Yjs update",
            vec![
                WsMessage::Binary(hello().into()),
                WsMessage::Binary(
                    Frame::YrsUpdate {
                        update: Bytes(vec![3, 200, 1, 7, 7]),
                    }
                    .encode()
                    .into(),
                ),
            ],
            CloseCode::BAD_UPDATE,
        ),
        (
            "too large",
            vec![WsMessage::Binary(vec![1u8; 2 << 20].into())],
            CloseCode::TOO_LARGE,
        ),
    ];
    for (round, (what, frames, want)) in cases.into_iter().enumerate() {
        let mut ws = raw(&relay, "bad").await;
        for f in frames {
            // The relay may close before a large frame is fully sent.
            let _ = ws.send(f).await;
        }
        assert_eq!(close_code(&mut ws).await, Some(want), "{what}");
        // The room's other clients are unaffected.
        let tag = format!("after-{round}");
        add_tag(&a, "k", &tag);
        append_text(&a, &format!("[{round}]"));
        assert!(
            b.wait_until(LONG, |d| has_tag(d, "k", &tag)
                && text(d).contains(&format!("[{round}]")))
                .await,
            "clients still sync after {what}"
        );
    }
    let (_, metrics) = relay.http("/metrics");
    for reason in ["text_frame", "malformed", "bad_update", "too_large"] {
        let line = format!("neuroplex_rejected_total{{reason=\"{reason}\"}}");
        assert!(
            support::metric(&metrics, &line) >= 1.0,
            "{line} counted:\n{metrics}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_metrics_and_static_files() {
    let dir = tempfile::tempdir().unwrap();
    let site = tempfile::tempdir().unwrap();
    std::fs::write(site.path().join("index.html"), "<h1>neuroplex</h1>").unwrap();
    let relay = RelayProcess::start(dir.path(), &["--static", site.path().to_str().unwrap()]);
    assert_eq!(relay.http("/healthz").0, 200);
    let (status, body) = relay.http("/");
    assert_eq!(status, 200);
    assert!(body.contains("<h1>neuroplex</h1>"));

    let a = Client::start(ClientConfig::new(relay.ws_url(), "m"));
    connected(&a).await;
    add_tag(&a, "k", "x");
    append_text(&a, "y");
    let mut st = a.status();
    // The first update is the answer to the relay's sync request; the
    // second is the edit.
    tokio::time::timeout(LONG, st.wait_for(|s| s.yrs_saved >= 2))
        .await
        .unwrap()
        .unwrap();
    let names = [
        "neuroplex_connections{endpoint=\"sync\"} 1",
        "neuroplex_rooms_loaded 1",
        "neuroplex_messages_total{direction=\"in\",kind=\"yrs_update\"}",
        "neuroplex_bytes_total{direction=\"out\"",
        "neuroplex_crdt_operations_total{op=\"yrs_update\"}",
        "neuroplex_crdt_operations_total{op=\"delta_join\"}",
        "neuroplex_persist_seconds_count",
        "neuroplex_fanout_seconds_count",
        "neuroplex_rejected_total",
    ];
    // A room records some metrics after it has sent a batch's replies:
    // poll until they are all there.
    let complete = |body: &str| {
        names.iter().all(|n| body.contains(n))
            && support::metric(body, "neuroplex_persist_seconds_count") >= 1.0
    };
    let deadline = std::time::Instant::now() + LONG;
    loop {
        let (status, body) = relay.http("/metrics");
        assert_eq!(status, 200);
        if complete(&body) {
            break;
        }
        if std::time::Instant::now() > deadline {
            let missing: Vec<_> = names.iter().filter(|n| !body.contains(*n)).collect();
            panic!("/metrics still lacks {missing:?}:\n{body}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_non_loopback_without_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(support::relay_bin())
        .args(["serve", "--listen", "0.0.0.0:0", "--data"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--secret-file") && err.contains("--insecure"),
        "{err}"
    );
    // With --insecure it starts (and prints its address).
    let relay = RelayProcess::start(dir.path(), &["--insecure"]);
    assert!(relay.addr.starts_with("127.0.0.1:"));
    let mut relay2 = std::process::Command::new(support::relay_bin())
        .args(["serve", "--listen", "0.0.0.0:0", "--insecure", "--data"])
        .arg(dir.path().join("other"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(relay2.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let _ = relay2.kill();
    let _ = relay2.wait();
    assert!(line.starts_with("0.0.0.0:"), "{line}");
    drop(relay);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_consumer_is_disconnected_not_buffered() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(
        dir.path(),
        &["--queue-max-bytes", "1048576", "--queue-max-age-secs", "2"],
    );
    let writer = Client::start(ClientConfig::new(relay.ws_url(), "slow"));
    let reader = Client::start(ClientConfig::new(relay.ws_url(), "slow"));
    connected(&writer).await;
    connected(&reader).await;
    // A consumer that says hello and then never reads.
    let mut stuck = raw(&relay, "slow").await;
    stuck.send(WsMessage::Binary(hello().into())).await.unwrap();

    let chunk = "x".repeat(256 << 10);
    let mut n = 0;
    let deadline = tokio::time::Instant::now() + LONG;
    loop {
        append_text(&writer, &chunk);
        n += 1;
        let want = n * chunk.len();
        assert!(
            reader.wait_until(LONG, |d| text(d).len() >= want).await,
            "a reading client keeps up"
        );
        let (_, m) = relay.http("/metrics");
        if support::metric(&m, "neuroplex_rejected_total{reason=\"slow_consumer\"}") >= 1.0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stuck consumer was never cut off"
        );
    }
    // The stuck connection ends (its close frame may or may not get through
    // a full socket), and the healthy reader has everything.
    let (_, m) = relay.http("/metrics");
    wait_for("the slow consumer's connection to be gone", LONG, || {
        let (_, m) = relay.http("/metrics");
        support::metric(&m, "neuroplex_connections{endpoint=\"sync\"}") <= 2.0
    })
    .await;
    assert!(support::metric(&m, "neuroplex_rejected_total{reason=\"slow_consumer\"}") >= 1.0);
    assert_eq!(reader.read(text).len(), n * chunk.len());
    drop(stuck);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_unload_when_idle_compact_and_reload_from_storage() {
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(dir.path(), &["--idle-secs", "1", "--compact-entries", "10"]);
    let a = Client::start(ClientConfig::new(relay.ws_url(), "idle"));
    connected(&a).await;
    for i in 0..30 {
        add_tag(&a, "k", &format!("v{i}"));
        append_text(&a, &format!("<{i}>"));
    }
    let mut st = a.status();
    tokio::time::timeout(
        LONG,
        st.wait_for(|s| s.yrs_sent >= 30 && s.yrs_saved >= s.yrs_sent),
    )
    .await
    .unwrap()
    .unwrap();
    a.close().await;
    wait_for("the idle room to unload", LONG, || {
        let (_, m) = relay.http("/metrics");
        support::metric(&m, "neuroplex_rooms_loaded ") == 0.0
            && support::metric(&m, "neuroplex_connections{endpoint=\"sync\"}") == 0.0
    })
    .await;
    // An idle room is compacted into a snapshot before it unloads (also when
    // its log never reached --compact-entries: a busy machine batches more).
    let db = rusqlite::Connection::open(dir.path().join("neuroplex.sqlite3")).unwrap();
    let count = |sql: &str| -> i64 { db.query_row(sql, [], |r| r.get(0)).unwrap() };
    wait_for("a snapshot of the room", LONG, || {
        count("SELECT count(*) FROM snapshots WHERE room = 'idle'") == 1
    })
    .await;
    let left = count("SELECT count(*) FROM updates WHERE room = 'idle'");
    assert_eq!(left, 0, "log entries left after the unload's compaction");

    let b = Client::start(ClientConfig::new(relay.ws_url(), "idle"));
    assert!(
        b.wait_until(LONG, |d| (0..30).all(
            |i| has_tag(d, "k", &format!("v{i}")) && text(d).contains(&format!("<{i}>"))
        ))
        .await,
        "a reloaded room has everything"
    );
    let (_, m) = relay.http("/metrics");
    assert_eq!(support::metric(&m, "neuroplex_rooms_loaded "), 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_reconnect_and_upload_offline_edits() {
    let dir = tempfile::tempdir().unwrap();
    let mut relay = RelayProcess::start(dir.path(), &[]);
    let mut cfg = ClientConfig::new(relay.ws_url(), "offline");
    cfg.backoff_min = Duration::from_millis(50);
    cfg.backoff_max = Duration::from_millis(500);
    let a = Client::start(cfg.clone());
    let b = Client::start(cfg);
    connected(&a).await;
    connected(&b).await;
    add_tag(&a, "k", "online");
    assert!(b.wait_until(LONG, |d| has_tag(d, "k", "online")).await);

    let mut st = a.status();
    assert!(relay.terminate().success());
    tokio::time::timeout(LONG, st.wait_for(|s| !s.connected))
        .await
        .unwrap()
        .unwrap();
    // Edits while the relay is down stay local...
    add_tag(&a, "k", "offline-a");
    append_text(&a, "[offline-a]");
    add_tag(&b, "k", "offline-b");

    // ...and go out once the clients are back (same port, backoff retries).
    let relay = relay.restart_same_port();
    tokio::time::timeout(LONG, st.wait_for(|s| s.connected && s.connects >= 2))
        .await
        .expect("the client reconnects")
        .unwrap();
    for c in [&a, &b] {
        assert!(
            c.wait_until(Duration::from_secs(15), |d| has_tag(d, "k", "offline-a")
                && has_tag(d, "k", "offline-b")
                && text(d) == "[offline-a]")
                .await,
            "offline edits of both sides arrive after reconnecting: a={}, b={}, text a={:?} b={:?}",
            a.read(|d| format!(
                "{:?}",
                ["online", "offline-a", "offline-b"].map(|t| has_tag(d, "k", t))
            )),
            b.read(|d| format!(
                "{:?}",
                ["online", "offline-a", "offline-b"].map(|t| has_tag(d, "k", t))
            )),
            a.read(text),
            b.read(text),
        );
    }
    drop(relay);
}
