//! Durable room storage: SQLite in WAL mode under the data directory.
//!
//! Every room has an append-only log of updates (Yjs updates and CRDT
//! deltas, as received) and at most one snapshot that replaces the log's
//! prefix. One writer thread owns the write connection and commits
//! everything that is waiting in one transaction (group commit): under load
//! many updates share one fsync, and an update is only reported durable
//! once its transaction is committed. Loads read through their own
//! connections, which WAL lets run beside the writer.
//!
//! The writer reports to [`Health`]: while commits fail (or one stalls),
//! `/healthz` says so, and the writer probes with a one-row write every
//! [`PROBE_EVERY`] until one succeeds.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use neuroplex_core::doc::Snapshot;

use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::oneshot;

use crate::datadir::{self, DataDirLock};
use crate::health::Health;

pub use neuroplex_core::doc::room::{EntryKind, LogEntry as Entry, SetAside};

/// A room as stored: its snapshot (if compacted) and the log after it.
#[derive(Debug, Default)]
pub struct Stored {
    /// The snapshot and the last sequence number it covers.
    pub snapshot: Option<(u64, Snapshot)>,
    /// Log entries after the snapshot, in sequence order.
    pub entries: Vec<Entry>,
}

impl Stored {
    /// Total bytes of log entries after the snapshot.
    pub fn log_bytes(&self) -> usize {
        self.entries.iter().map(|e| e.data.len()).sum()
    }
}

/// A storage failure (the message says what and where).
#[derive(Debug, Clone)]
pub struct StorageError(pub String);

impl std::fmt::Display for StorageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "storage: {}", self.0)
    }
}

impl std::error::Error for StorageError {}

impl From<rusqlite::Error> for StorageError {
    fn from(e: rusqlite::Error) -> Self {
        StorageError(e.to_string())
    }
}

enum Job {
    Append {
        room: String,
        entries: Vec<Entry>,
        done: oneshot::Sender<Result<(), StorageError>>,
    },
    Compact {
        room: String,
        upto: u64,
        snapshot: Snapshot,
        done: oneshot::Sender<Result<(), StorageError>>,
    },
    SetAside {
        room: String,
        items: Vec<SetAside>,
        done: oneshot::Sender<Result<(), StorageError>>,
    },
}

/// Most jobs committed in one transaction; bounds the latency of the first.
const MAX_GROUP: usize = 1024;

/// The handle to a data directory's database. Cheap to clone.
#[derive(Clone)]
pub struct Storage {
    path: PathBuf,
    jobs: std_mpsc::Sender<Job>,
    /// Group commits so far, for the tests (the writer counts them).
    #[cfg(test)]
    transactions: std::sync::Arc<std::sync::atomic::AtomicU64>,
    health: Arc<Health>,
}

/// How often a writer whose last commit failed tries a probe write.
pub const PROBE_EVERY: Duration = Duration::from_secs(1);

/// How long the writer waits for SQLite's write lock. No other relay
/// writes (the data directory is locked), so only an outside process can
/// hold it; beyond this the commit fails (and its writers are told)
/// instead of holding every acknowledgement hostage.
const WRITE_LOCK_WAIT: Duration = Duration::from_secs(10);

/// Joins the writer thread when dropped last (see [`Storage::open`]).
pub struct WriterGuard(Option<JoinHandle<()>>);

impl WriterGuard {
    /// Waits for the writer to commit what it was given and stop. Call
    /// after every [`Storage`] handle is dropped.
    #[cfg(test)]
    pub fn join(mut self) {
        if let Some(h) = self.0.take() {
            let _ = h.join();
        }
    }

    /// Waits for the writer to commit what it was given and stop, giving
    /// up after `limit` (handles may still be alive in tasks that have not
    /// ended). Call after every [`Storage`] handle is dropped.
    pub fn join_timeout(mut self, limit: std::time::Duration) {
        if let Some(h) = self.0.take() {
            let deadline = std::time::Instant::now() + limit;
            while !h.is_finished() && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            if h.is_finished() {
                let _ = h.join();
            }
        }
    }
}

fn open_connection(path: &Path) -> Result<Connection, StorageError> {
    let conn = Connection::open(path)
        .map_err(|e| StorageError(format!("cannot open {}: {e}", path.display())))?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    // WAL: readers beside the writer, and one fsync per commit. FULL makes
    // each commit durable against power loss too, not only process death.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(conn)
}

impl Storage {
    /// Opens (creating if missing) `dir/neuroplex.sqlite3` and starts the
    /// writer thread, which holds the data directory's lock while it runs
    /// (see [`crate::datadir`]).
    pub fn open(dir: &Path) -> Result<(Storage, WriterGuard), StorageError> {
        let (lock, path) = datadir::prepare(dir)?;
        let conn = open_connection(&path)?;
        conn.busy_timeout(WRITE_LOCK_WAIT)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS updates (
                room TEXT NOT NULL,
                seq INTEGER NOT NULL,
                kind INTEGER NOT NULL,
                data BLOB NOT NULL,
                PRIMARY KEY (room, seq)
            ) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS snapshots (
                room TEXT PRIMARY KEY,
                seq INTEGER NOT NULL,
                crdt BLOB NOT NULL,
                yrs BLOB NOT NULL
            );
            -- What a room could not load: kept for an operator to look at,
            -- out of the way of every later load.
            CREATE TABLE IF NOT EXISTS set_aside (
                room TEXT NOT NULL,
                seq INTEGER NOT NULL,
                kind INTEGER NOT NULL,
                from_snapshot INTEGER NOT NULL,
                data BLOB NOT NULL,
                error TEXT NOT NULL
            );
            CREATE TABLE IF NOT EXISTS health_probe (
                id INTEGER PRIMARY KEY CHECK (id = 1),
                at INTEGER NOT NULL
            );",
        )?;
        let (tx, rx) = std_mpsc::channel();
        let transactions = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = transactions.clone();
        let checkpoint_conn = open_connection(&path)?;
        let health = Arc::new(Health::default());
        let reports = health.clone();
        let handle = std::thread::Builder::new()
            .name("neuroplex-storage".into())
            .spawn(move || writer(conn, rx, counter, checkpoint_conn, reports, lock))
            .map_err(|e| StorageError(format!("cannot start the writer thread: {e}")))?;
        Ok((
            Storage {
                path,
                jobs: tx,
                #[cfg(test)]
                transactions,
                health,
            },
            WriterGuard(Some(handle)),
        ))
    }

    /// What the writer last reported (for `/healthz`).
    pub fn health(&self) -> &Arc<Health> {
        &self.health
    }

    /// Appends entries to a room's log. The entries are queued at once
    /// (in call order); the future resolves once they are committed.
    pub fn append(
        &self,
        room: &str,
        entries: Vec<Entry>,
    ) -> impl std::future::Future<Output = Result<(), StorageError>> + use<> {
        let (done, wait) = oneshot::channel();
        let sent = self.jobs.send(Job::Append {
            room: room.to_owned(),
            entries,
            done,
        });
        async move {
            sent.map_err(|_| StorageError("the writer has stopped".into()))?;
            wait.await
                .map_err(|_| StorageError("the writer has stopped".into()))?
        }
    }

    /// Transactions committed so far (group commit puts many appends in
    /// one).
    #[cfg(test)]
    pub fn transactions(&self) -> u64 {
        self.transactions.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Replaces the log of `room` up to `upto` (inclusive) by `snapshot`.
    /// Returns once committed.
    pub async fn compact(
        &self,
        room: &str,
        upto: u64,
        snapshot: Snapshot,
    ) -> Result<(), StorageError> {
        let (done, wait) = oneshot::channel();
        self.jobs
            .send(Job::Compact {
                room: room.to_owned(),
                upto,
                snapshot,
                done,
            })
            .map_err(|_| StorageError("the writer has stopped".into()))?;
        wait.await
            .map_err(|_| StorageError("the writer has stopped".into()))?
    }

    /// Moves what a room could not load out of its log (or snapshot) into
    /// the `set_aside` table. Returns once committed.
    pub async fn set_aside(&self, room: &str, items: Vec<SetAside>) -> Result<(), StorageError> {
        let (done, wait) = oneshot::channel();
        self.jobs
            .send(Job::SetAside {
                room: room.to_owned(),
                items,
                done,
            })
            .map_err(|_| StorageError("the writer has stopped".into()))?;
        wait.await
            .map_err(|_| StorageError("the writer has stopped".into()))?
    }

    /// Reads a room (on a blocking thread, through its own connection).
    pub async fn load(&self, room: &str) -> Result<Stored, StorageError> {
        let path = self.path.clone();
        let room = room.to_owned();
        tokio::task::spawn_blocking(move || load_blocking(&path, &room))
            .await
            .map_err(|e| StorageError(format!("load task failed: {e}")))?
    }
}

fn load_blocking(path: &Path, room: &str) -> Result<Stored, StorageError> {
    let conn = open_connection(path)?;
    let snapshot = conn
        .query_row(
            "SELECT seq, crdt, yrs FROM snapshots WHERE room = ?1",
            params![room],
            |r| {
                Ok((
                    r.get::<_, i64>(0)? as u64,
                    Snapshot {
                        crdt: r.get(1)?,
                        yrs: r.get(2)?,
                    },
                ))
            },
        )
        .optional()?;
    let after = snapshot.as_ref().map_or(0, |(s, _)| *s as i64);
    let mut stmt = conn
        .prepare("SELECT seq, kind, data FROM updates WHERE room = ?1 AND seq > ?2 ORDER BY seq")?;
    let rows = stmt.query_map(params![room, after], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, Vec<u8>>(2)?,
        ))
    })?;
    let mut entries = Vec::new();
    for row in rows {
        let (seq, kind, data) = row?;
        entries.push(Entry {
            seq: seq as u64,
            kind: EntryKind::from_code(kind)
                .ok_or_else(|| StorageError(format!("unknown log entry kind {kind}")))?,
            data,
        });
    }
    Ok(Stored { snapshot, entries })
}

/// Shortest pause between two WAL checkpoints.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// Copies the WAL into the database file on its own connection, so that
/// the writer's commits never wait for a checkpoint (SQLite would otherwise
/// run one inside whichever commit crossed 1,000 pages: a tail-latency
/// spike for every update in that group). Runs after a kick, at most every
/// [`CHECKPOINT_EVERY`]; ends, after a last checkpoint, when the writer
/// drops its side.
fn checkpointer(conn: Connection, kicks: std_mpsc::Receiver<()>) {
    while kicks.recv().is_ok() {
        // PASSIVE never blocks the writer; a WAL fully copied is reused
        // from its start by the next commit, so it stays small.
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error = %e, "WAL checkpoint failed; retrying later");
        }
        std::thread::sleep(CHECKPOINT_EVERY);
    }
    let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
}

fn writer(
    conn: Connection,
    jobs: std_mpsc::Receiver<Job>,
    transactions: std::sync::Arc<std::sync::atomic::AtomicU64>,
    checkpoint_conn: Connection,
    health: Arc<Health>,
    lock: DataDirLock,
) {
    let (kick, kicks) = std_mpsc::sync_channel(1);
    let checkpoints = std::thread::Builder::new()
        .name("neuroplex-checkpoint".into())
        .spawn(move || checkpointer(checkpoint_conn, kicks));
    if let Err(e) = &checkpoints {
        // Without the thread SQLite's own automatic checkpoints stay on.
        tracing::warn!(error = %e, "cannot start the checkpoint thread");
    } else if let Err(e) = conn.pragma_update(None, "wal_autocheckpoint", 0) {
        tracing::warn!(error = %e, "cannot turn off automatic checkpoints");
    }
    write_loop(conn, jobs, transactions, &kick, &health);
    drop(kick);
    if let Ok(h) = checkpoints {
        let _ = h.join();
    }
    // Only now may another relay open the directory.
    tracing::debug!(lock = %lock.path().display(), "releasing the data directory");
    drop(lock);
}

fn write_loop(
    mut conn: Connection,
    jobs: std_mpsc::Receiver<Job>,
    transactions: std::sync::Arc<std::sync::atomic::AtomicU64>,
    kick: &std_mpsc::SyncSender<()>,
    health: &Health,
) {
    let mut failing = false;
    loop {
        let first = if failing {
            match jobs.recv_timeout(PROBE_EVERY) {
                Ok(job) => job,
                Err(std_mpsc::RecvTimeoutError::Timeout) => {
                    health.commit_started();
                    let r = probe(&mut conn);
                    failing = r.is_err();
                    health.commit_ended(r.map_err(|e| e.to_string()));
                    continue;
                }
                Err(std_mpsc::RecvTimeoutError::Disconnected) => return,
            }
        } else {
            match jobs.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        };
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(j) => group.push(j),
                Err(_) => break,
            }
        }
        let started = Instant::now();
        health.commit_started();
        let result = commit(&mut conn, &group);
        transactions.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::trace!(jobs = group.len(), elapsed = ?started.elapsed(), "group commit");
        // Full means a checkpoint is already due: nothing to add.
        let _ = kick.try_send(());
        // Healthy if anything could be committed: one bad job (a logic
        // error) does not make the storage unhealthy.
        let outcome = match result {
            Ok(()) => {
                group.into_iter().for_each(|job| finish(job, Ok(())));
                Ok(())
            }
            // One bad job must not fail its neighbours: retry each alone, so
            // only the culprit is told (the transaction was rolled back).
            Err(e) if group.len() > 1 => {
                tracing::warn!(error = %e, "group commit failed; retrying jobs one by one");
                let mut last = Err(e.to_string());
                for job in group {
                    let r = commit(&mut conn, std::slice::from_ref(&job));
                    if last.is_err() {
                        last = r.as_ref().map(|_| ()).map_err(|e| e.to_string());
                    }
                    finish(job, r.map_err(StorageError::from));
                }
                last
            }
            Err(e) => {
                tracing::error!(error = %e, "commit failed");
                for job in group {
                    finish(job, Err(StorageError(e.to_string())));
                }
                Err(e.to_string())
            }
        };
        failing = outcome.is_err();
        health.commit_ended(outcome);
    }
}

/// A one-row write, to learn whether commits work again.
fn probe(conn: &mut Connection) -> Result<(), rusqlite::Error> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let tx = conn.transaction()?;
    tx.execute(
        "INSERT INTO health_probe (id, at) VALUES (1, ?1)
         ON CONFLICT (id) DO UPDATE SET at = excluded.at",
        params![now],
    )?;
    tx.commit()
}

fn finish(job: Job, result: Result<(), StorageError>) {
    let done = match job {
        Job::Append { done, .. } | Job::Compact { done, .. } | Job::SetAside { done, .. } => done,
    };
    let _ = done.send(result);
}

fn commit(conn: &mut Connection, group: &[Job]) -> Result<(), rusqlite::Error> {
    let tx = conn.transaction()?;
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO updates (room, seq, kind, data) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for job in group {
            match job {
                Job::Append { room, entries, .. } => {
                    for e in entries {
                        insert.execute(params![
                            room,
                            e.seq as i64,
                            i64::from(e.kind.code()),
                            e.data
                        ])?;
                    }
                }
                Job::Compact {
                    room,
                    upto,
                    snapshot,
                    ..
                } => {
                    // Two compactions of a room may be queued in either
                    // order: an older snapshot never replaces a newer one
                    // (the log it would need is already gone).
                    tx.execute(
                        "INSERT INTO snapshots (room, seq, crdt, yrs) VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT (room) DO UPDATE SET seq = excluded.seq,
                             crdt = excluded.crdt, yrs = excluded.yrs
                         WHERE excluded.seq > snapshots.seq",
                        params![room, *upto as i64, snapshot.crdt, snapshot.yrs],
                    )?;
                    tx.execute(
                        "DELETE FROM updates WHERE room = ?1 AND seq <= ?2",
                        params![room, *upto as i64],
                    )?;
                }
                Job::SetAside { room, items, .. } => {
                    for item in items {
                        set_aside(&tx, room, item)?;
                    }
                }
            }
        }
    }
    tx.commit()
}

fn set_aside(tx: &rusqlite::Transaction<'_>, room: &str, item: &SetAside) -> rusqlite::Result<()> {
    let kind = i64::from(item.kind.code());
    match item.seq {
        Some(seq) => {
            tx.execute(
                "INSERT INTO set_aside (room, seq, kind, from_snapshot, data, error)
                 SELECT room, seq, kind, 0, data, ?3 FROM updates WHERE room = ?1 AND seq = ?2",
                params![room, seq as i64, item.error],
            )?;
            tx.execute(
                "DELETE FROM updates WHERE room = ?1 AND seq = ?2",
                params![room, seq as i64],
            )?;
        }
        None => {
            // One half of the snapshot: keep it aside, empty it in place.
            let column = match item.kind {
                EntryKind::Yrs => "yrs",
                EntryKind::Crdt => "crdt",
            };
            tx.execute(
                &format!(
                    "INSERT INTO set_aside (room, seq, kind, from_snapshot, data, error)
                     SELECT room, seq, ?2, 1, {column}, ?3 FROM snapshots WHERE room = ?1"
                ),
                params![room, kind, item.error],
            )?;
            tx.execute(
                &format!("UPDATE snapshots SET {column} = x'' WHERE room = ?1"),
                params![room],
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64, data: &[u8]) -> Entry {
        Entry {
            seq,
            kind: EntryKind::Yrs,
            data: data.to_vec(),
        }
    }

    #[tokio::test]
    async fn append_load_compact_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (s, guard) = Storage::open(dir.path()).unwrap();
        s.append("a", vec![entry(1, b"x"), entry(2, b"y")])
            .await
            .unwrap();
        s.append("b", vec![entry(1, b"z")]).await.unwrap();
        let a = s.load("a").await.unwrap();
        assert_eq!(a.entries.len(), 2);
        assert_eq!(a.entries.last().map(|e| e.seq), Some(2));
        let snap = Snapshot {
            crdt: vec![1],
            yrs: vec![2],
        };
        s.compact("a", 1, snap.clone()).await.unwrap();
        s.append("a", vec![entry(3, b"w")]).await.unwrap();
        drop(s);
        guard.join();

        let (s, guard) = Storage::open(dir.path()).unwrap();
        let a = s.load("a").await.unwrap();
        assert_eq!(a.snapshot, Some((1, snap)));
        let seqs: Vec<u64> = a.entries.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [2, 3]);
        assert_eq!(s.load("b").await.unwrap().entries[0].data, b"z");
        let c = s.load("c").await.unwrap();
        assert!(c.snapshot.is_none() && c.entries.is_empty());
        drop(s);
        guard.join();
    }

    #[tokio::test]
    async fn an_older_snapshot_never_replaces_a_newer_one() {
        let dir = tempfile::tempdir().unwrap();
        let (s, guard) = Storage::open(dir.path()).unwrap();
        let entries = (1..=4).map(|i| entry(i, &[i as u8])).collect();
        s.append("a", entries).await.unwrap();
        let newer = Snapshot {
            crdt: vec![3],
            yrs: vec![3],
        };
        let older = Snapshot {
            crdt: vec![2],
            yrs: vec![2],
        };
        s.compact("a", 3, newer.clone()).await.unwrap();
        s.compact("a", 2, older).await.unwrap();
        let a = s.load("a").await.unwrap();
        assert_eq!(a.snapshot, Some((3, newer)));
        let seqs: Vec<u64> = a.entries.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [4]);
        drop(s);
        guard.join();
    }

    #[tokio::test]
    async fn appends_waiting_together_share_one_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let (s, guard) = Storage::open(dir.path()).unwrap();
        // Hold the database's write lock from another connection so that
        // every append below is queued before the writer can commit any.
        let blocker = open_connection(&dir.path().join(datadir::DATABASE_FILE)).unwrap();
        blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
        let waits: Vec<_> = (0..50)
            .map(|i| s.append(&format!("room{}", i % 5), vec![entry(i / 5 + 1, b"u")]))
            .collect();
        blocker.execute_batch("COMMIT").unwrap();
        for w in futures_util::future::join_all(waits).await {
            w.unwrap();
        }
        // The writer may have taken the first append alone before it found
        // the lock held; everything else went in one group.
        assert!(s.transactions() <= 2, "{} transactions", s.transactions());
        let total: usize = {
            let mut n = 0;
            for r in 0..5 {
                n += s.load(&format!("room{r}")).await.unwrap().entries.len();
            }
            n
        };
        assert_eq!(total, 50);
        drop(s);
        guard.join();
    }

    #[tokio::test]
    async fn a_failed_group_reports_to_every_waiter() {
        let dir = tempfile::tempdir().unwrap();
        let (s, guard) = Storage::open(dir.path()).unwrap();
        s.append("a", vec![entry(1, b"x")]).await.unwrap();
        // A duplicate sequence number violates the primary key; sent
        // together with a good job, only the bad one fails.
        let (bad, good) = tokio::join!(
            s.append("a", vec![entry(1, b"again")]),
            s.append("b", vec![entry(1, b"fine")])
        );
        assert!(bad.unwrap_err().to_string().contains("UNIQUE"));
        good.unwrap();
        assert_eq!(s.load("a").await.unwrap().entries.len(), 1);
        assert_eq!(s.load("b").await.unwrap().entries.len(), 1);
        drop(s);
        guard.join();
    }
}
