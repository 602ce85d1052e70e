//! Tokens, TLS and Yjs↔native interop, against real relay processes.

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use neuroplex_core::doc::Frame;
use neuroplex_relay::client::{Client, ClientConfig};
use neuroplex_relay::token::{self, Rights, Secret};
use support::{LONG, RelayProcess, add_tag, append_text, connected, has_tag, text};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// The HTTP status a WebSocket upgrade gets (101 if it succeeds).
async fn upgrade_status(url: &str, bearer: Option<&str>) -> u16 {
    let mut req = url.into_client_request().unwrap();
    if let Some(t) = bearer {
        req.headers_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((_, resp)) => resp.status().as_u16(),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => resp.status().as_u16(),
        Err(e) => panic!("unexpected error: {e}"),
    }
}

fn token_cli(secret_file: &std::path::Path, room: &str, rights: &str, ttl: &str) -> String {
    let out = std::process::Command::new(support::relay_bin())
        .args(["token", "--secret-file"])
        .arg(secret_file)
        .args(["--room", room, "--rights", rights, "--ttl", ttl])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    stdout.lines().last().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_checked_before_the_upgrade_and_read_tokens_cannot_write() {
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("secret");
    // Trailing whitespace is not part of the secret.
    std::fs::write(&secret_file, "correct horse battery staple, stapled\n\n").unwrap();
    // With a secret, /metrics is on its own listener only.
    let metrics = format!("127.0.0.1:{}", support::free_port());
    let relay = RelayProcess::start(
        &dir.path().join("data"),
        &[
            "--secret-file",
            secret_file.to_str().unwrap(),
            "--metrics-listen",
            &metrics,
        ],
    );
    let base = relay.ws_url();
    let write = token_cli(&secret_file, "r1", "write", "1h");
    let read = token_cli(&secret_file, "r1", "read", "1h");
    let other = token_cli(&secret_file, "r2", "write", "1h");
    let secret = Secret::from_file_bytes(b"correct horse battery staple, stapled").unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expired = token::issue(&secret, "r1", Rights::Write, now - 10);
    let wrong_key = token::issue(
        &Secret::from_file_bytes(b"another secret, just as long as one").unwrap(),
        "r1",
        Rights::Write,
        now + 3600,
    );
    let mut forged = write.clone();
    let flip = forged.len() / 2;
    let c = forged.as_bytes()[flip];
    forged.replace_range(flip..flip + 1, if c == b'A' { "B" } else { "A" });

    for endpoint in ["sync", "yjs"] {
        let url = |t: Option<&str>| match t {
            Some(t) => format!("{base}/{endpoint}/r1?token={t}"),
            None => format!("{base}/{endpoint}/r1"),
        };
        assert_eq!(
            upgrade_status(&url(None), None).await,
            401,
            "{endpoint}: missing"
        );
        assert_eq!(
            upgrade_status(&url(Some(&forged)), None).await,
            401,
            "{endpoint}: forged"
        );
        assert_eq!(
            upgrade_status(&url(Some(&wrong_key)), None).await,
            401,
            "{endpoint}: other key"
        );
        assert_eq!(
            upgrade_status(&url(Some(&expired)), None).await,
            401,
            "{endpoint}: expired"
        );
        assert_eq!(
            upgrade_status(&url(Some(&other)), None).await,
            403,
            "{endpoint}: other room"
        );
        assert_eq!(
            upgrade_status(&url(Some(&write)), None).await,
            101,
            "{endpoint}: query token"
        );
        assert_eq!(
            upgrade_status(&url(None), Some(&read)).await,
            101,
            "{endpoint}: bearer token"
        );
    }

    let mut wc = ClientConfig::new(&base, "r1");
    wc.token = Some(write.clone());
    let writer = Client::start(wc);
    let mut rc = ClientConfig::new(&base, "r1");
    rc.token = Some(read.clone());
    let reader = Client::start(rc);
    connected(&writer).await;
    connected(&reader).await;
    assert!(writer.status().borrow().writable);
    assert!(!reader.status().borrow().writable);

    // The read-only client syncs down...
    add_tag(&writer, "k", "from-writer");
    append_text(&writer, "W");
    assert!(
        reader
            .wait_until(LONG, |d| has_tag(d, "k", "from-writer") && text(d) == "W")
            .await
    );
    // ...but its writes are refused with an error frame, and go nowhere.
    add_tag(&reader, "k", "from-reader");
    let mut st = reader.status();
    tokio::time::timeout(
        LONG,
        st.wait_for(|s| s.last_error.as_ref().map(|e| e.0) == Some(Frame::ERROR_READ_ONLY)),
    )
    .await
    .expect("read-only error in time")
    .unwrap();
    append_text(&reader, "R");
    support::wait_for("two read-only refusals", LONG, || {
        let (_, m) = support::http_get(&metrics, "/metrics");
        support::metric(&m, "neuroplex_rejected_total{reason=\"read_only\"}") >= 2.0
    })
    .await;
    // A later write arrives; the refused ones never do.
    add_tag(&writer, "k", "later");
    assert!(writer.wait_until(LONG, |d| has_tag(d, "k", "later")).await);
    assert!(reader.wait_until(LONG, |d| has_tag(d, "k", "later")).await);
    let fresh = {
        let mut c = ClientConfig::new(&base, "r1");
        c.token = Some(write.clone());
        Client::start(c)
    };
    assert!(fresh.wait_until(LONG, |d| has_tag(d, "k", "later")).await);
    for c in [&writer, &fresh] {
        assert!(c.read(|d| !has_tag(d, "k", "from-reader") && text(d) == "W"));
    }
    // The read-only connection stays open.
    assert!(reader.status().borrow().connected);
    let (_, m) = support::http_get(&metrics, "/metrics");
    for reason in [
        "token_missing",
        "token_invalid",
        "token_expired",
        "token_room",
    ] {
        let line = format!("neuroplex_rejected_total{{reason=\"{reason}\"}}");
        assert!(support::metric(&m, &line) >= 1.0, "{line}:\n{m}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_command_rejects_bad_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::write(&empty, " \n").unwrap();
    for args in [
        vec![
            "--secret-file",
            empty.to_str().unwrap(),
            "--room",
            "r",
            "--rights",
            "write",
        ],
        vec![
            "--secret-file",
            "/nonexistent/secret",
            "--room",
            "r",
            "--rights",
            "write",
        ],
    ] {
        let out = std::process::Command::new(support::relay_bin())
            .arg("token")
            .args(&args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
        assert!(!out.stderr.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_wss_with_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert_file = dir.path().join("cert.pem");
    let key_file = dir.path().join("key.pem");
    std::fs::write(&cert_file, cert.cert.pem()).unwrap();
    std::fs::write(&key_file, cert.signing_key.serialize_pem()).unwrap();
    let relay = RelayProcess::start(
        &dir.path().join("data"),
        &[
            "--tls-cert",
            cert_file.to_str().unwrap(),
            "--tls-key",
            key_file.to_str().unwrap(),
        ],
    );
    let port = relay.addr.rsplit(':').next().unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let url = format!("wss://localhost:{port}");
    let mk = || {
        let mut c = ClientConfig::new(&url, "secure");
        c.tls = Some(std::sync::Arc::new(tls.clone()));
        Client::start(c)
    };
    let a = mk();
    let b = mk();
    connected(&a).await;
    add_tag(&a, "k", "over-tls");
    assert!(b.wait_until(LONG, |d| has_tag(d, "k", "over-tls")).await);
    // Plain ws:// is not served on a TLS port.
    let plain =
        tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/sync/secure")).await;
    assert!(plain.is_err());
}

fn node_modules_ready() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/yjs");
    assert!(
        dir.join("node_modules/y-websocket").exists(),
        "tests/yjs/node_modules is missing: run `make test` (or `npm ci` in tests/yjs) first"
    );
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_yjs_client_and_a_native_client_converge_on_the_same_text() {
    let yjs_dir = node_modules_ready();
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(dir.path(), &[]);
    let native = Client::start(ClientConfig::new(relay.ws_url(), "interop"));
    connected(&native).await;
    append_text(&native, "from-native;");

    let mut peer = tokio::process::Command::new("node")
        .arg(yjs_dir.join("peer.mjs"))
        .arg(format!("{}/yjs", relay.ws_url()))
        .arg("interop")
        .arg("from-yjs;")
        .arg("from-native;")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run node");
    assert!(
        native
            .wait_until(LONG, |d| text(d).contains("from-yjs;"))
            .await,
        "the native client sees the Yjs client's edit"
    );
    let out = tokio::time::timeout(Duration::from_secs(90), async {
        let mut stdout = peer.stdout.take().unwrap();
        let mut s = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut stdout, &mut s)
            .await
            .unwrap();
        (peer.wait().await.unwrap(), s)
    })
    .await
    .expect("the node peer finishes");
    assert!(out.0.success(), "node peer failed: {}", out.1);
    let final_line = out
        .1
        .lines()
        .find(|l| l.starts_with("FINAL "))
        .expect("FINAL line");
    let yjs_text: String = serde_json::from_str(&final_line["FINAL ".len()..]).unwrap();
    assert!(yjs_text.contains("from-native;") && yjs_text.contains("from-yjs;"));
    assert!(
        native.wait_until(LONG, |d| text(d) == yjs_text).await,
        "both sides hold the same text: {yjs_text:?} vs {:?}",
        native.read(text)
    );
}
