//! Attacks on the relay, one test per class (docs: DESIGN.md, "think like
//! an attacker"): nesting, amplification, claimed counts, presence that is
//! not one's own. Each runs against a real relay process while two honest
//! y-websocket clients of the same room keep converging, during the attack
//! and after it. After each attack: the relay is alive, the attacker got
//! the documented close code, the honest clients converge on a later edit,
//! and where the class is about memory the relay's peak resident memory
//! growth is printed and bounded (the debug binary: no release-only
//! bound).

mod support;

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use neuroplex_core::doc::{CloseCode, Frame, PROTOCOL_VERSION};
use support::{
    LONG, RelayProcess, RssWatch, Ws, YjsPeer, awareness_frame, converge, issue_token, metric,
    raw_ws, read_close_code, wait_for,
};
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// A relay, its data directory and two honest clients of one room.
struct Scene {
    relay: RelayProcess,
    a: YjsPeer,
    b: YjsPeer,
    room: String,
    _dir: tempfile::TempDir,
}

impl Scene {
    async fn start(room: &str, args: &[&str]) -> Scene {
        let dir = tempfile::tempdir().unwrap();
        let relay = RelayProcess::start(&dir.path().join("data"), args);
        let a = YjsPeer::connect(&relay, room, "alice", None).await;
        let b = YjsPeer::connect(&relay, room, "bob", None).await;
        converge(&a, &b, "before").await;
        Scene {
            relay,
            a,
            b,
            room: room.to_string(),
            _dir: dir,
        }
    }

    fn assert_alive(&mut self, attack: &str) {
        if let Some(status) = self.relay.exited() {
            panic!("attack {attack}: the relay process died ({status})");
        }
    }

    /// The attacker's close code must be `want`; if it is not, says
    /// whether the relay died (given a few seconds to be seen exiting).
    async fn expect_close(&mut self, attack: &str, got: Option<u16>, want: u16) {
        if got == Some(want) {
            self.assert_alive(attack);
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(status) = self.relay.exited() {
                panic!(
                    "attack {attack}: the relay process died ({status}); the attacker's \
                     connection ended with {got:?}, expected close {want}"
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("attack {attack}: closed with {got:?}, expected {want} (the relay is alive)");
    }

    async fn attacker(&self, endpoint: &str) -> Ws {
        raw_ws(&self.relay, endpoint, &self.room, None).await
    }

    /// What must hold after every attack.
    async fn after(&mut self, attack: &str) {
        self.assert_alive(attack);
        converge(&self.a, &self.b, &format!("after-{attack}")).await;
        for p in [&self.a, &self.b] {
            assert_eq!(p.closed(), None, "attack {attack}: {} was closed", p.name);
        }
    }
}

fn write_var(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn write_buf(out: &mut Vec<u8>, bytes: &[u8]) {
    write_var(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A y-websocket sync message (`sub` 1 = step 2, 2 = update) around `body`.
fn sync_frame(sub: u64, body: &[u8]) -> Vec<u8> {
    let mut f = vec![0];
    write_var(&mut f, sub);
    write_buf(&mut f, body);
    f
}

/// A Yjs update (v1), written by hand: one client, one struct — an item
/// of `ContentAny` (content ref 8) in the root map "m" at key "k" — whose
/// one value is an array nested `depth` deep around a null.
fn deep_any_update(depth: usize) -> Vec<u8> {
    let mut u = Vec::with_capacity(2 * depth + 32);
    u.push(1); // one client
    u.push(1); // one struct
    write_var(&mut u, 0xBAD); // client
    u.push(0); // clock
    u.push(8 | 0x20); // ContentAny, no origins, with a parent sub key
    u.push(1); // parent: a root type, by name
    write_buf(&mut u, b"m");
    write_buf(&mut u, b"k"); // parent sub: a Y.Map entry
    u.push(1); // one Any value
    for _ in 0..depth {
        u.push(117); // array
        u.push(1); // of one element
    }
    u.push(126); // null
    u.push(0); // empty delete set
    u
}

/// Sends `frames` (the relay may close before a large one is sent), then
/// reads the close code.
async fn send_and_close_code(ws: &mut Ws, frames: Vec<Vec<u8>>) -> Option<u16> {
    for f in frames {
        if ws.send(WsMessage::Binary(f.into())).await.is_err() {
            break;
        }
    }
    read_close_code(ws).await
}

const MIB8: &str = "8388608";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nesting_a_million_levels_deep_is_refused() {
    let mut s = Scene::start("nest", &["--max-message-bytes", MIB8]).await;
    // An awareness state nested a million deep (checked as the frame is
    // decoded).
    let deep_json = "[".repeat(1_000_000) + &"]".repeat(1_000_000);
    let watch = RssWatch::start(s.relay.pid());
    let mut ws = s.attacker("yjs").await;
    let code = send_and_close_code(&mut ws, vec![awareness_frame(0xBAD, 1, &deep_json)]).await;
    eprintln!(
        "attack nested-awareness: close {code:?}, rss +{:.1} MB",
        watch.peak_growth_mb()
    );
    s.expect_close("nested-awareness", code, CloseCode::TOO_NESTED)
        .await;
    s.after("nested-awareness").await;
    // An update whose Any value is nested as deep (checked before yrs
    // reads it), as sync step 2 and as a live update.
    let update = deep_any_update(1_000_000);
    // The same bytes, shallow, are a valid update: m.k = [[[null]]].
    {
        use yrs::updates::decoder::Decode;
        use yrs::{Map, Transact};
        let doc = yrs::Doc::new();
        let m = doc.get_or_insert_map("m");
        let shallow = yrs::Update::decode_v1(&deep_any_update(3)).expect("a valid update");
        doc.transact_mut().apply_update(shallow).unwrap();
        let v = m.get(&doc.transact(), "k").expect("m.k is set");
        assert_eq!(v.to_string(&doc.transact()), "[[[null]]]");
    }
    eprintln!("attack nesting: update of {} bytes", update.len());
    for (attack, sub) in [("nested-any-step2", 1), ("nested-any-update", 2)] {
        let watch = RssWatch::start(s.relay.pid());
        let mut ws = s.attacker("yjs").await;
        let code = send_and_close_code(&mut ws, vec![sync_frame(sub, &update)]).await;
        eprintln!(
            "attack {attack}: close {code:?}, rss +{:.1} MB",
            watch.peak_growth_mb()
        );
        s.expect_close(attack, code, CloseCode::TOO_NESTED).await;
        s.after(attack).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_presence_bound_is_a_flag() {
    let mut s = Scene::start("presence-flag", &["--max-presence-bytes", "1024"]).await;
    // Under the bound: the state is shown and the connection stays.
    let mut ws = s.attacker("yjs").await;
    ws.send(WsMessage::Binary(
        awareness_frame(0xA11, 1, &big_state(512)).into(),
    ))
    .await
    .unwrap();
    s.b.wait("bob sees the 512-byte state", |b| {
        b.presence_of(0xA11).is_some_and(|p| p.contains("attacker"))
    })
    .await;
    s.after("presence-512").await;
    // Over it (2 KiB, far below the default of 64 KiB): closed with 4413.
    let code =
        send_and_close_code(&mut ws, vec![awareness_frame(0xA11, 2, &big_state(2048))]).await;
    eprintln!("attack presence-over-flag: close {code:?}");
    s.expect_close("presence-over-flag", code, CloseCode::TOO_LARGE)
        .await;
    s.after("presence-over-flag").await;
}

/// A JSON state of about `bytes` bytes.
fn big_state(bytes: usize) -> String {
    format!(
        "{{\"name\":\"attacker\",\"pad\":\"{}\"}}",
        "x".repeat(bytes)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amplification_is_bounded() {
    let mut s = Scene::start("amp", &[]).await;
    let state = big_state(4096);

    // (a) A 4 KiB state, then one 1 MB frame of one-byte awareness queries.
    let watch = RssWatch::start(s.relay.pid());
    let mut ws = s.attacker("yjs").await;
    ws.send(WsMessage::Binary(awareness_frame(0xA1, 1, &state).into()))
        .await
        .unwrap();
    let code = send_and_close_code(&mut ws, vec![vec![3u8; 1_000_000]]).await;
    let growth = watch.peak_growth_mb();
    eprintln!("attack awareness-queries-1mb: close {code:?}, rss +{growth:.1} MB");
    s.expect_close("awareness-queries-1mb", code, CloseCode::TOO_MANY)
        .await;
    assert!(growth < 50.0, "rss grew {growth:.1} MB");
    s.after("awareness-queries-1mb").await;

    // (b) 100,000 empty sync step 1 messages in one frame.
    let watch = RssWatch::start(s.relay.pid());
    let mut ws = s.attacker("yjs").await;
    let frame: Vec<u8> = [0u8, 0, 1, 0].repeat(100_000);
    let code = send_and_close_code(&mut ws, vec![frame]).await;
    let growth = watch.peak_growth_mb();
    eprintln!("attack sync-step1-x100000: close {code:?}, rss +{growth:.1} MB");
    s.expect_close("sync-step1-x100000", code, CloseCode::TOO_MANY)
        .await;
    assert!(growth < 50.0, "rss grew {growth:.1} MB");
    s.after("sync-step1-x100000").await;

    // (c) Frames at the bound (32 queries each) as fast as possible for a
    // few seconds, reading the answers, while the honest clients edit.
    let watch = RssWatch::start(s.relay.pid());
    let ws = s.attacker("yjs").await;
    let (mut sink, mut stream) = ws.split();
    let attacker_id = 0xA2;
    sink.send(WsMessage::Binary(
        awareness_frame(attacker_id, 1, &state).into(),
    ))
    .await
    .unwrap();
    // Count awareness answers (type 1) until the answer to the marker (a
    // sync step 1, answered with a sync step 2 after every earlier batch's
    // answers; this connection sends no other step 1).
    let reader = tokio::spawn(async move {
        let (mut answers, mut bytes) = (0usize, 0usize);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            let msg = tokio::time::timeout_at(deadline, stream.next())
                .await
                .expect("the marker is answered in time")
                .expect("the attacker's connection stays open");
            match msg {
                Ok(WsMessage::Binary(b)) => match (b.first(), b.get(1)) {
                    (Some(1), _) => {
                        answers += 1;
                        bytes += b.len();
                    }
                    (Some(0), Some(1)) => break,
                    _ => {}
                },
                Ok(WsMessage::Close(f)) => panic!("the attacker in (c) was closed: {f:?}"),
                Ok(_) => {}
                Err(e) => panic!("attacker read failed: {e}"),
            }
        }
        (answers, bytes, stream)
    });
    // The flood, on its own task, while the honest clients edit.
    let sender = tokio::spawn(async move {
        let batch: Vec<u8> = vec![3u8; 32];
        let mut frames = 0usize;
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(4) {
            for _ in 0..64 {
                sink.feed(WsMessage::Binary(batch.clone().into()))
                    .await
                    .unwrap();
                frames += 1;
            }
            sink.flush().await.unwrap();
        }
        // The marker: one sync step 1 with an empty state vector.
        sink.send(WsMessage::Binary(vec![0u8, 0, 1, 0].into()))
            .await
            .unwrap();
        (frames, sink)
    });
    let mut round = 0usize;
    while !sender.is_finished() {
        round += 1;
        converge(&s.a, &s.b, &format!("during-{round}")).await;
    }
    let (frames, sink) = sender.await.unwrap();
    let (answers, answer_bytes, stream) = reader.await.unwrap();
    let queries = frames * 32;
    let growth = watch.peak_growth_mb();
    eprintln!(
        "attack awareness-query-flood: {frames} frames, {queries} queries, {answers} answers \
         ({answer_bytes} bytes), {round} convergence rounds during, rss +{growth:.1} MB"
    );
    assert!(answers >= 1, "the attacker got no answer at all");
    assert!(
        answers <= frames,
        "more than one awareness answer per frame: {answers} answers to {frames} frames"
    );
    assert!(growth < 50.0, "rss grew {growth:.1} MB");
    assert!(round >= 1, "the honest clients converged during the flood");
    let mut ws = sink.reunite(stream).unwrap();
    ws.close(None).await.ok();
    s.after("awareness-query-flood").await;
}

/// A postcard varint.
fn postcard_var(out: &mut Vec<u8>, v: u64) {
    write_var(out, v);
}

fn hello() -> Vec<u8> {
    Frame::Hello {
        protocol: PROTOCOL_VERSION,
        replica: 66,
        writable: true,
    }
    .encode()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claimed_counts_are_not_trusted() {
    let mut s = Scene::start("claims", &[]).await;
    // y-websocket: a state vector claiming 2^32-1 clients in 5 bytes.
    let mut sv = Vec::new();
    write_var(&mut sv, u64::from(u32::MAX));
    assert_eq!(sv.len(), 5);
    let mut step1 = vec![0, 0];
    write_buf(&mut step1, &sv);
    // y-websocket: an awareness update claiming 2^40 entries.
    let mut body = Vec::new();
    write_var(&mut body, 1 << 40);
    body.extend_from_slice(&[1, 1, 4]);
    body.extend_from_slice(b"null");
    let mut awareness = vec![1];
    write_buf(&mut awareness, &body);
    // Native (codec version 1, then postcard): Presence (variant 5) with
    // 2^32-1 entries; YrsUpdate (3) with 2^40 bytes; Sync (1) Ack (2) whose
    // vector clock claims 2^32-1 entries.
    let mut presence = vec![1, 5];
    postcard_var(&mut presence, u64::from(u32::MAX));
    presence.extend_from_slice(&[1, 1, 0]);
    let mut update = vec![1, 3];
    postcard_var(&mut update, 1 << 40);
    update.extend_from_slice(&[0; 8]);
    let mut ack = vec![1, 1, 2, 7, 1];
    postcard_var(&mut ack, u64::from(u32::MAX));
    ack.extend_from_slice(&[1, 1]);

    let cases: Vec<(&str, &str, Vec<Vec<u8>>)> = vec![
        ("state-vector-2^32-clients", "yjs", vec![step1]),
        ("awareness-2^40-entries", "yjs", vec![awareness]),
        (
            "native-presence-2^32-entries",
            "sync",
            vec![hello(), presence],
        ),
        ("native-update-2^40-bytes", "sync", vec![hello(), update]),
        ("native-ack-clock-2^32-entries", "sync", vec![hello(), ack]),
    ];
    for (attack, endpoint, frames) in cases {
        let watch = RssWatch::start(s.relay.pid());
        let mut ws = s.attacker(endpoint).await;
        let code = send_and_close_code(&mut ws, frames).await;
        let growth = watch.peak_growth_mb();
        eprintln!("attack {attack}: close {code:?}, rss +{growth:.1} MB");
        s.expect_close(attack, code, CloseCode::MALFORMED).await;
        assert!(growth < 20.0, "attack {attack}: rss grew {growth:.1} MB");
        s.after(attack).await;
    }
}

/// `neuroplex_rejected_total{reason}` from the metrics listener at `addr`.
fn rejected(addr: &str, reason: &str) -> f64 {
    let (_, m) = support::http_get(addr, "/metrics");
    metric(
        &m,
        &format!("neuroplex_rejected_total{{reason=\"{reason}\"}}"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_is_owned() {
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("secret");
    let secret: String = (0..32)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect();
    std::fs::write(&secret_file, secret).unwrap();
    let room = "presence";
    let write = issue_token(&secret_file, room, "write");
    let read = issue_token(&secret_file, room, "read");
    // With a secret, /metrics is on its own listener.
    let metrics = format!("127.0.0.1:{}", support::free_port());
    let mut relay = RelayProcess::start(
        &dir.path().join("data"),
        &[
            "--secret-file",
            secret_file.to_str().unwrap(),
            "--metrics-listen",
            &metrics,
        ],
    );
    let a = YjsPeer::connect(&relay, room, "alice", Some(&write)).await;
    let b = YjsPeer::connect(&relay, room, "bob", Some(&write)).await;
    converge(&a, &b, "before").await;
    let alice = "{\"name\":\"alice\"}";
    let a_id = a.client_id();
    b.wait("bob sees alice", |b| {
        b.presence_of(a_id).as_deref() == Some(alice)
    })
    .await;

    // 1. Renaming alice with a higher clock.
    let spoofs_before = rejected(&metrics, "presence_not_owned");
    let mut attacker = raw_ws(&relay, "yjs", room, Some(&write)).await;
    let mallory = "{\"name\":\"mallory\"}";
    attacker
        .send(WsMessage::Binary(
            awareness_frame(a_id, 1000, mallory).into(),
        ))
        .await
        .unwrap();
    // Its own presence, after the spoof on the same connection: once bob
    // sees it, the relay has handled the spoof.
    let own = 0xA77AC;
    attacker
        .send(WsMessage::Binary(
            awareness_frame(own, 1, "{\"name\":\"attacker\"}").into(),
        ))
        .await
        .unwrap();
    b.wait("bob sees the attacker's own presence", |b| {
        b.presence_of(own).is_some()
    })
    .await;
    // A marker edit after the spoof; bob's view of alice is polled all along.
    let marker = "<after-spoof>";
    a.append(marker);
    b.wait("the marker, with alice still alice", |b| {
        assert_eq!(
            b.presence_of(a_id).as_deref(),
            Some(alice),
            "bob's view of alice changed"
        );
        b.text().contains(marker)
    })
    .await;
    assert_eq!(a.presence_of(a_id).as_deref(), Some(alice));
    wait_for("presence_not_owned counted", LONG, || {
        rejected(&metrics, "presence_not_owned") > spoofs_before
    })
    .await;
    eprintln!(
        "attack presence-spoof: presence_not_owned {} -> {}, bob sees alice as {:?}",
        spoofs_before,
        rejected(&metrics, "presence_not_owned"),
        b.presence_of(a_id)
    );
    attacker.close(None).await.ok();
    converge(&a, &b, "after-spoof").await;

    // 2. Holding five ids (at most four per /yjs connection).
    let mut ws = raw_ws(&relay, "yjs", room, Some(&write)).await;
    let mut clients = std::collections::HashMap::new();
    for id in 0..5u64 {
        clients.insert(
            yrs::block::ClientID::new(0xF00 + id),
            yrs::sync::awareness::AwarenessUpdateEntry {
                clock: 1,
                json: "{\"name\":\"many\"}".into(),
            },
        );
    }
    let five = {
        use yrs::updates::encoder::Encode;
        yrs::sync::Message::Awareness(yrs::sync::AwarenessUpdate { clients }).encode_v1()
    };
    let code = send_and_close_code(&mut ws, vec![five]).await;
    eprintln!("attack presence-five-ids: close {code:?}");
    assert_eq!(code, Some(CloseCode::TOO_MANY));
    assert!(relay.alive());
    converge(&a, &b, "after-five-ids").await;

    // 3. A state over 64 KiB.
    let mut ws = raw_ws(&relay, "yjs", room, Some(&write)).await;
    let code = send_and_close_code(
        &mut ws,
        vec![awareness_frame(0xB16, 1, &big_state(65 << 10))],
    )
    .await;
    eprintln!("attack presence-65kib: close {code:?}");
    assert_eq!(code, Some(CloseCode::TOO_LARGE));
    assert!(relay.alive());
    converge(&a, &b, "after-65kib").await;

    // 4. A read-only connection: its presence goes through, its document
    // updates do not.
    let ro = YjsPeer::connect(&relay, room, "reader", Some(&read)).await;
    let reader = "{\"name\":\"reader\"}";
    let ro_id = ro.client_id();
    b.wait("bob sees the reader's presence", |b| {
        b.presence_of(ro_id).as_deref() == Some(reader)
    })
    .await;
    ro.wait("the reader syncs down", |r| r.text() == a.text())
        .await;
    let forbidden = "<from-the-reader>";
    ro.append(forbidden);
    // Every update message the reader sent (its sync step 2 and its edit)
    // was dropped and counted.
    wait_for("the reader's updates dropped", LONG, || {
        rejected(&metrics, "read_only") >= ro.update_messages_sent() as f64
    })
    .await;
    converge(&a, &b, "after-read-only").await;
    eprintln!(
        "attack read-only-write: {} update messages sent, read_only rejected {}",
        ro.update_messages_sent(),
        rejected(&metrics, "read_only")
    );
    for p in [&a, &b] {
        assert!(
            !p.text().contains(forbidden),
            "{} sees the read-only edit",
            p.name
        );
    }
    let fresh = YjsPeer::connect(&relay, room, "fresh", Some(&write)).await;
    fresh
        .wait("a fresh client syncs", |f| {
            f.text().contains("after-read-only")
        })
        .await;
    assert!(!fresh.text().contains(forbidden));
    assert_eq!(ro.closed(), None, "the read-only connection stays open");
    assert!(relay.alive());
    for p in [&a, &b] {
        assert_eq!(p.closed(), None, "{} was closed", p.name);
    }
}

/// Class 5: yrs panicking on a client's update (a well-formed update that
/// makes yrs 0.28 subtract with overflow while integrating it, found by the
/// `yjs_update` fuzz target; a debug build panics on the overflow) is
/// contained. Every connection of the room is closed with the reconnect
/// code, the relay lives, the room reloads from storage with everything
/// stored before, and clients that come back converge again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_yrs_reloads_the_room() {
    if !cfg!(debug_assertions) {
        // Without overflow checks yrs may wrap and carry on: nothing to see.
        eprintln!("a_panic_in_yrs_reloads_the_room: needs a debug build of the relay");
        return;
    }
    let attack = "yrs-panic";
    let metrics = format!("127.0.0.1:{}", support::free_port());
    let mut s = Scene::start("panic", &["--metrics-listen", &metrics]).await;
    let before = s.a.text();
    assert!(!before.is_empty());
    // Well-formed, gap-free, and yrs 0.28 subtracts with overflow while
    // integrating it (core/tests/guard.rs: a_yrs_integration_panic_is_caught).
    let bytes = include_bytes!("../../core/tests/inputs/yrs-integration-panic.bin");
    let mut ws = s.attacker("yjs").await;
    let code = send_and_close_code(&mut ws, vec![sync_frame(2, bytes)]).await;
    s.expect_close(attack, code, CloseCode::INTERNAL).await;
    for p in [&s.a, &s.b] {
        p.wait("closed with the reconnect code", |p| p.closed().is_some())
            .await;
        assert_eq!(
            p.closed(),
            Some(Some(CloseCode::INTERNAL)),
            "attack {attack}: {} was not told to reconnect",
            p.name
        );
    }
    s.assert_alive(attack);
    assert_eq!(rejected(&metrics, "yrs_panicked"), 1.0);
    // Back: the reloaded room holds what was stored, and works.
    s.a = YjsPeer::connect(&s.relay, &s.room, "alice2", None).await;
    s.b = YjsPeer::connect(&s.relay, &s.room, "bob2", None).await;
    for p in [&s.a, &s.b] {
        p.wait("the stored text after the reload", |p| p.text() == before)
            .await;
    }
    s.after(attack).await;
}

/// An update beyond a gap in what the room has of its client waits in the
/// room (`doc::Hold`) and reaches the others only once what it lacks has
/// come: Yjs peers whose yrs integrates after a gap are hurt by it (yrs
/// 0.28 panics on the crafted one here, a GC block at clock ~2^31), and an
/// honest one is of no use to them before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_beyond_a_gap_waits_until_it_can_be_used() {
    use yrs::{Text, Transact};
    let attack = "gap";
    let mut s = Scene::start("gap", &[]).await;
    // Crafted: can never be integrated. The sender stays connected.
    let crafted = [1, 1, 0, 136, 136, 136, 136, 9, 0, 97, 1, 0, 1, 8, 25];
    let mut ws = s.attacker("yjs").await;
    ws.send(WsMessage::Binary(sync_frame(2, &crafted).into()))
        .await
        .unwrap();
    // Honest: a client's second edit arrives before its first.
    let writer = yrs::Doc::with_client_id(4242);
    let text = writer.get_or_insert_text("text");
    let mut edits = Vec::new();
    for (at, piece) in [(0, "[first]"), (7, "[second]")] {
        let mut txn = writer.transact_mut();
        text.insert(&mut txn, at, piece);
        edits.push(txn.encode_update_v1());
    }
    ws.send(WsMessage::Binary(sync_frame(2, &edits[1]).into()))
        .await
        .unwrap();
    s.after(attack).await;
    for p in [&s.a, &s.b] {
        assert!(
            !p.text().contains("[second]"),
            "{} got a waiting update",
            p.name
        );
    }
    ws.send(WsMessage::Binary(sync_frame(2, &edits[0]).into()))
        .await
        .unwrap();
    for p in [&s.a, &s.b] {
        p.wait("both edits once the first came", |p| {
            p.text().contains("[first][second]")
        })
        .await;
    }
    s.after(attack).await;
    drop(ws);
}

/// An update whose item has its left origin in a type's list and its right
/// origin in one of that type's map entries, and which deletes the type
/// (found by the `doc` fuzz target): yrs 0.28 links the item into both
/// chains and, once the type is garbage-collected, an item points at freed
/// memory (AddressSanitizer: heap use-after-free in a later squash; without
/// it a later encode may crash the process). The room refuses it before
/// yrs sees it (`doc::Sequences`): the sender gets 4422, the relay lives,
/// the room keeps encoding for new clients, and nothing of it reaches the
/// others, as a live update or as sync step 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_item_with_origins_in_two_sequences_is_refused() {
    let metrics = format!("127.0.0.1:{}", support::free_port());
    let mut s = Scene::start("crossing", &["--metrics-listen", &metrics]).await;
    let bytes = include_bytes!("../../core/tests/inputs/yrs-crossed-origins.bin");
    for (n, (attack, sub)) in [("crossing-step2", 1), ("crossing-update", 2)]
        .into_iter()
        .enumerate()
    {
        let mut ws = s.attacker("yjs").await;
        let code = send_and_close_code(&mut ws, vec![sync_frame(sub, bytes)]).await;
        eprintln!("attack {attack}: close {code:?}");
        s.expect_close(attack, code, CloseCode::BAD_UPDATE).await;
        assert_eq!(rejected(&metrics, "bad_update"), (n + 1) as f64);
        s.after(attack).await;
        // The room still encodes its whole document: a newcomer gets it.
        let fresh = YjsPeer::connect(&s.relay, &s.room, "fresh", None).await;
        let want = s.a.text();
        fresh.wait("the room's text", |p| p.text() == want).await;
        assert_eq!(fresh.closed(), None);
    }
}
