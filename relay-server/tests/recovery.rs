//! A room whose stored log holds an entry yrs refuses still loads: the
//! entry is set aside (kept in its own table, logged, counted).

mod support;

use neuroplex_relay::client::{Client, ClientConfig};
use support::{LONG, RelayProcess, append_text, connected, metric, text};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_yrs_refuses_is_set_aside_and_the_room_still_loads() {
    let dir = tempfile::tempdir().unwrap();
    let mut relay = RelayProcess::start(dir.path(), &[]);
    let a = Client::start(ClientConfig::new(relay.ws_url(), "notes"));
    connected(&a).await;
    append_text(&a, "before");
    // Wait until the relay reports the update durable.
    let mut status = a.status();
    tokio::time::timeout(
        LONG,
        status.wait_for(|s| s.yrs_saved >= 1 && s.yrs_saved >= s.yrs_sent),
    )
    .await
    .expect("the update became durable")
    .unwrap();
    a.close().await;
    assert!(relay.terminate().success());

    // A corrupt row after it, as a disk error or an old bug might leave.
    {
        let db = rusqlite::Connection::open(dir.path().join("neuroplex.sqlite3")).unwrap();
        db.execute(
            "INSERT INTO updates (room, seq, kind, data) VALUES ('notes', 1000, 1, x'090909')",
            [],
        )
        .unwrap();
    }

    let relay = relay.restart();
    let b = Client::start(ClientConfig::new(relay.ws_url(), "notes"));
    connected(&b).await;
    assert!(
        b.wait_until(LONG, |d| text(d) == "before").await,
        "the room loaded without the bad entry"
    );
    let (_, metrics) = relay.http("/metrics");
    assert_eq!(
        metric(&metrics, "neuroplex_rejected_total{reason=\"set_aside\"}"),
        1.0
    );
    // Kept aside, out of the log: the next load does not meet it again.
    let db = rusqlite::Connection::open(dir.path().join("neuroplex.sqlite3")).unwrap();
    let aside: i64 = db
        .query_row(
            "SELECT count(*) FROM set_aside WHERE room = 'notes' AND seq = 1000",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let in_log: i64 = db
        .query_row(
            "SELECT count(*) FROM updates WHERE room = 'notes' AND seq = 1000",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!((aside, in_log), (1, 0));
    b.close().await;
}
