//! One loaded room's task: the IO shell around [`neuroplex_core::doc::Room`].
//!
//! The task takes whatever inputs are waiting, feeds them to the room, and
//! takes the batch: its log entries are appended to storage in one write
//! (group commit), and only once that write is durable is the batch's output
//! sent — replies, forwarded updates, presence, closes. So no client ever
//! sees an update that a crash could take back. The protocol's rules live
//! in the core room; this task keeps the channel, the storage writer, the
//! timers and the sockets (outboxes). A panic while handling a batch is
//! caught: the room's connections are closed with a reconnect code and the
//! room reloads from storage on the next join. A panic anywhere else in the
//! task (sending, compacting) ends it the same way: unwinding drops
//! [`Conns`], which closes every connection with that code.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use axum::body::Bytes;
use neuroplex_core::doc::room::{Batch, Output};
use neuroplex_core::doc::{CloseCode, ConnId, Protocol, Room};
use tokio::sync::mpsc;

use crate::fanout::FanOut;
use crate::metrics::{Direction, Endpoint, Metrics};
use crate::outbox::Outbox;
use crate::queue::Outbound;
use crate::registry::{Input, Rooms};

struct RoomTask {
    name: String,
    rooms: Arc<Rooms>,
    room: Room,
    /// The sockets of the room's connections.
    conns: Conns,
    log_entries: usize,
    log_bytes: usize,
    compacting: Arc<AtomicBool>,
}

/// The sockets of a room's connections. Dropped while its task unwinds
/// from a panic, it closes every one with a reconnect code, so that their
/// clients come back to the room loaded again rather than stay attached
/// to a task that is gone.
struct Conns {
    map: BTreeMap<ConnId, Arc<Outbox>>,
    room: String,
    metrics: Arc<Metrics>,
}

impl Drop for Conns {
    fn drop(&mut self) {
        if !std::thread::panicking() || self.map.is_empty() {
            return;
        }
        self.metrics.rejected("room_panicked");
        tracing::error!(room = ?self.room, "the room's task panicked; its connections reconnect to it reloaded");
        for out in self.map.values() {
            out.close(CloseCode::INTERNAL, "the room is reloading", false);
        }
    }
}

impl std::ops::Deref for Conns {
    type Target = BTreeMap<ConnId, Arc<Outbox>>;
    fn deref(&self) -> &Self::Target {
        &self.map
    }
}

impl std::ops::DerefMut for Conns {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.map
    }
}

fn protocol(endpoint: Endpoint) -> Protocol {
    match endpoint {
        Endpoint::Yjs => Protocol::Yjs,
        Endpoint::Sync => Protocol::Native,
    }
}

async fn load(rooms: &Arc<Rooms>, name: &str) -> Result<RoomTask, String> {
    let stored = rooms
        .storage
        .load(name)
        .await
        .map_err(|e| format!("cannot load room: {e}"))?;
    let (room, set_aside) = Room::restore(
        rand::random(),
        rand::random(),
        rooms.config.limits(),
        stored.snapshot.as_ref().map(|(seq, s)| (*seq, s)),
        &stored.entries,
    );
    if !set_aside.is_empty() {
        for s in &set_aside {
            rooms.metrics.rejected("set_aside");
            tracing::error!(
                room = ?name, seq = ?s.seq, kind = ?s.kind, error = %s.error,
                "a stored entry does not load: set aside, the room loads without it"
            );
        }
        rooms
            .storage
            .set_aside(name, set_aside)
            .await
            .map_err(|e| format!("cannot set aside what does not load: {e}"))?;
    }
    Ok(RoomTask {
        name: name.to_owned(),
        rooms: rooms.clone(),
        room,
        conns: Conns {
            map: BTreeMap::new(),
            room: name.to_owned(),
            metrics: rooms.metrics.clone(),
        },
        log_entries: stored.entries.len(),
        log_bytes: stored.log_bytes(),
        compacting: Default::default(),
    })
}

pub(crate) async fn room_task(rooms: Arc<Rooms>, name: String, mut rx: mpsc::Receiver<Input>) {
    let mut task = match load(&rooms, &name).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(room = ?name, error = %e, "room failed to load");
            rx.close();
            let mut queued = Vec::new();
            while let Ok(input) = rx.try_recv() {
                queued.push(input);
            }
            rooms.drop_room(&name, rx);
            for input in queued {
                if let Input::Join { joined, .. } = input {
                    let _ = joined.send(Err(e.clone()));
                }
            }
            return;
        }
    };
    tracing::debug!(room = ?name, seq = task.room.last_seq(), "room loaded");
    let max_batch = rooms.config.max_batch;
    let mut inputs = Vec::with_capacity(max_batch);
    loop {
        let got = if task.conns.is_empty() {
            match tokio::time::timeout(
                rooms.config.idle_timeout,
                rx.recv_many(&mut inputs, max_batch),
            )
            .await
            {
                Ok(n) => n,
                Err(_) => {
                    // An idle room leaves a snapshot behind, so that its next
                    // load reads one row instead of the whole log.
                    task.compact_now().await;
                    if rooms.unload_if_idle(&name, &rx) {
                        tracing::debug!(room = ?name, "room unloaded (idle)");
                        return;
                    }
                    continue;
                }
            }
        } else {
            rx.recv_many(&mut inputs, max_batch).await
        };
        if got == 0 {
            return; // every sender is gone
        }
        let mut shutdown = false;
        let handled = catch_unwind(AssertUnwindSafe(|| {
            for input in inputs.drain(..) {
                match input {
                    Input::Shutdown => shutdown = true,
                    other => task.handle(other),
                }
            }
            task.room.take_batch()
        }));
        let mut batch = match handled {
            Ok(b) => b,
            Err(_) => {
                inputs.clear();
                rooms.metrics.rejected("room_panicked");
                tracing::error!(room = ?name, "the room failed while handling a batch; its connections reconnect to it reloaded");
                task.close_all(CloseCode::INTERNAL, "the room is reloading", false);
                rooms.drop_room(&name, rx);
                return;
            }
        };
        for r in &batch.stats().rejected {
            rooms.metrics.rejected(r);
        }
        for op in &batch.stats().ops {
            rooms.metrics.crdt_op(op);
        }
        if !task.commit(&mut batch).await {
            for c in batch.failed() {
                if let Some(out) = task.conns.remove(&c.conn) {
                    out.close(c.code, c.reason, false);
                }
            }
            task.close_all(
                CloseCode::INTERNAL,
                "the relay could not store an update",
                false,
            );
            rooms.drop_room(&name, rx);
            return;
        }
        let output = batch.committed();
        let poisoned = output.poisoned;
        task.flush(output);
        if poisoned {
            // yrs failed inside an update: the in-memory document may be
            // inconsistent. Everyone reconnects to a freshly loaded room.
            tracing::error!(room = ?name, "yrs panicked on an update (refused); the room reloads and its connections reconnect");
            task.close_all(CloseCode::INTERNAL, "the room is reloading", true);
            rooms.drop_room(&name, rx);
            return;
        }
        // After the flush: encoding a snapshot must not delay the batch's
        // replies and forwards.
        task.maybe_compact();
        if shutdown {
            task.close_all(CloseCode::GOING_AWAY, "the relay is shutting down", true);
            rooms.drop_room(&name, rx);
            return;
        }
    }
}

impl RoomTask {
    fn metrics(&self) -> &Metrics {
        &self.rooms.metrics
    }

    fn handle(&mut self, input: Input) {
        match input {
            Input::Join {
                id,
                writable,
                out,
                joined,
            } => {
                self.room.join(id, protocol(out.endpoint()), writable);
                self.conns.insert(id, out);
                let _ = joined.send(Ok(()));
            }
            Input::Leave { id } => {
                self.conns.remove(&id);
                self.room.leave(id);
            }
            Input::Yjs { id, messages } => self.room.receive_yjs(id, messages),
            Input::Native { id, frame } => self.room.receive_native(id, frame),
            Input::Shutdown => {}
        }
    }

    /// Makes the batch's entries durable. False if storage failed.
    async fn commit(&mut self, batch: &mut Batch) -> bool {
        let entries = batch.take_entries();
        if entries.is_empty() {
            return true;
        }
        let n = entries.len();
        let bytes: usize = entries.iter().map(|e| e.data.len()).sum();
        let started = Instant::now();
        let result = self.rooms.storage.append(&self.name, entries).await;
        self.metrics().observe_persist(started.elapsed());
        if let Err(e) = result {
            tracing::error!(room = ?self.name, error = %e, "append failed");
            return false;
        }
        self.log_entries += n;
        self.log_bytes += bytes;
        true
    }

    /// Sends what the (now durable) batch produced.
    fn flush(&mut self, output: Output) {
        let started = Instant::now();
        let metrics = self.rooms.metrics.clone();
        // Refused connections leave first, so that nothing more goes to them
        // but their close (sent after everyone else's frames).
        let mut closing = Vec::new();
        for c in output.closes {
            if let Some(out) = self.conns.remove(&c.conn) {
                closing.push((out, c.code, c.reason));
            }
        }
        for s in output.sends {
            if let Some(out) = self.conns.get(&s.to) {
                metrics.message(Direction::Out, s.kind, s.frame.len());
                out.push(Outbound::Frame(s.frame.into()), &metrics);
            }
        }
        if !output.updates.is_empty() {
            self.fan_out_updates(&output.updates, &metrics);
        }
        if let Some(p) = output.presence {
            // One allocation per protocol, shared by every receiver.
            let yjs = Bytes::from(p.yjs);
            let native = Bytes::from(p.native);
            for out in self.conns.values() {
                let bytes = match out.endpoint() {
                    Endpoint::Yjs => yjs.clone(),
                    Endpoint::Sync => native.clone(),
                };
                metrics.message(Direction::Out, "awareness", bytes.len());
                out.push(Outbound::Frame(bytes), &metrics);
            }
        }
        for (out, code, reason) in closing {
            out.close(code, reason, true);
        }
        metrics.observe_fanout(started.elapsed());
    }

    fn fan_out_updates(&self, updates: &[(ConnId, Vec<u8>)], metrics: &Metrics) {
        let plan = FanOut::plan(updates);
        let (mut count, mut bytes) = (0, 0);
        for (id, out) in self.conns.iter() {
            for u in plan.for_conn(*id) {
                count += 1;
                bytes += u.len() as u64;
                out.push(Outbound::YrsUpdate(u.clone()), metrics);
            }
        }
        metrics.messages(Direction::Out, "update", count, bytes);
    }

    fn close_all(&mut self, code: u16, reason: &str, drain: bool) {
        self.room.close_all();
        for (_, out) in std::mem::take(&mut self.conns.map) {
            out.close(code, reason, drain);
        }
    }

    /// The document as a snapshot of the log up to its last entry; the log
    /// counts start again from it. (Updates waiting for missing
    /// dependencies are dropped and asked for again: see `Room::snapshot`.)
    fn take_snapshot(&mut self) -> (u64, neuroplex_core::doc::Snapshot) {
        self.log_entries = 0;
        self.log_bytes = 0;
        self.room.snapshot()
    }

    /// Replaces whatever log there is by a snapshot, and waits for it.
    async fn compact_now(&mut self) {
        if self.log_entries == 0 {
            return;
        }
        let (upto, snapshot) = self.take_snapshot();
        if let Err(e) = self.rooms.storage.compact(&self.name, upto, snapshot).await {
            tracing::warn!(room = ?self.name, error = %e, "compaction failed; the log stays");
        }
    }

    /// Replaces the log by a snapshot in the background once it is long.
    fn maybe_compact(&mut self) {
        let cfg = &self.rooms.config;
        if self.log_entries < cfg.compact_entries && self.log_bytes < cfg.compact_bytes {
            return;
        }
        if self.compacting.load(Ordering::Acquire) {
            return;
        }
        let (upto, snapshot) = self.take_snapshot();
        self.compacting.store(true, Ordering::Release);
        let storage = self.rooms.storage.clone();
        let flag = self.compacting.clone();
        let name = self.name.clone();
        tokio::spawn(async move {
            if let Err(e) = storage.compact(&name, upto, snapshot).await {
                tracing::warn!(room = ?name, error = %e, "compaction failed; the log stays");
            }
            flag.store(false, Ordering::Release);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_panic_in_the_task_closes_every_connection_to_reconnect() {
        let metrics = Arc::new(Metrics::new());
        let outs: Vec<Arc<Outbox>> = (0..2)
            .map(|_| Arc::new(Outbox::new(Endpoint::Yjs, 1 << 20, Duration::from_secs(30))))
            .collect();
        let conns = Conns {
            map: outs
                .iter()
                .cloned()
                .enumerate()
                .map(|(i, o)| (i as ConnId, o))
                .collect(),
            room: "r".into(),
            metrics: metrics.clone(),
        };
        let unwound = catch_unwind(AssertUnwindSafe(move || {
            let _conns = conns;
            panic!("a bug while sending");
        }));
        assert!(unwound.is_err());
        for out in &outs {
            assert_eq!(out.closing().unwrap().code, CloseCode::INTERNAL);
        }
        assert!(metrics.render().contains(r#"reason="room_panicked"} 1"#));
    }

    #[test]
    fn an_ordinary_end_closes_nothing() {
        let out = Arc::new(Outbox::new(Endpoint::Yjs, 1 << 20, Duration::from_secs(30)));
        drop(Conns {
            map: [(1, out.clone())].into(),
            room: "r".into(),
            metrics: Arc::new(Metrics::new()),
        });
        assert!(out.closing().is_none());
    }
}
