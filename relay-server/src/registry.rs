//! The loaded rooms, by name: loading a room on first use, joining
//! connections to it, unloading it when idle, and shutting them all down.
//! Each loaded room runs as one task ([`crate::room_task`]).

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use neuroplex_core::doc::yws::YwsMessage;
use neuroplex_core::doc::{ConnId, Frame, RoomLimits};
use tokio::sync::{mpsc, oneshot};

use crate::metrics::Metrics;
use crate::outbox::Outbox;
use crate::room_task::room_task;
use crate::storage::Storage;

/// Limits and timings of rooms.
#[derive(Clone, Debug)]
pub struct RoomConfig {
    /// A room without connections for this long is unloaded.
    pub idle_timeout: Duration,
    /// Largest message accepted from a client.
    pub max_message_bytes: usize,
    /// Compact a room's log into a snapshot after this many entries...
    pub compact_entries: usize,
    /// ...or this many bytes.
    pub compact_bytes: usize,
    /// Most inputs handled (and committed) together.
    pub max_batch: usize,
    /// The protocol's bounds (`max_message_bytes` above overrides theirs).
    pub limits: RoomLimits,
}

impl Default for RoomConfig {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(30),
            max_message_bytes: 16 << 20,
            compact_entries: 1000,
            compact_bytes: 8 << 20,
            max_batch: 512,
            limits: RoomLimits::default(),
        }
    }
}

impl RoomConfig {
    /// The bounds a room applies.
    pub fn limits(&self) -> RoomLimits {
        RoomLimits {
            max_message_bytes: self.max_message_bytes,
            ..self.limits.clone()
        }
    }
}

/// What a connection tells its room.
pub enum Input {
    /// A new connection.
    Join {
        /// Its number.
        id: ConnId,
        /// Whether it may change the document.
        writable: bool,
        /// Where the room sends to it.
        out: Arc<Outbox>,
        /// Answered once the room is loaded (or failed to load).
        joined: oneshot::Sender<Result<(), String>>,
    },
    /// The connection closed.
    Leave {
        /// Its number.
        id: ConnId,
    },
    /// Decoded y-websocket messages (one client frame may hold several).
    Yjs {
        /// From this connection.
        id: ConnId,
        /// The messages, in order.
        messages: Vec<YwsMessage>,
    },
    /// A decoded native frame.
    Native {
        /// From this connection.
        id: ConnId,
        /// The frame.
        frame: Frame,
    },
    /// The relay is stopping: finish what is queued, then close everyone
    /// with "going away".
    Shutdown,
}

/// The loaded rooms, by name.
pub struct Rooms {
    rooms: Mutex<HashMap<String, mpsc::Sender<Input>>>,
    pub(crate) storage: Storage,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) config: RoomConfig,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Rooms {
    /// No rooms loaded yet.
    pub fn new(storage: Storage, metrics: Arc<Metrics>, config: RoomConfig) -> Arc<Self> {
        Arc::new(Self {
            rooms: Mutex::new(HashMap::new()),
            storage,
            metrics,
            config,
            tasks: Mutex::new(Vec::new()),
        })
    }

    /// Joins a connection to `room`, loading the room if needed. Returns
    /// the channel to send the connection's inputs to.
    pub async fn join(
        self: &Arc<Self>,
        room: &str,
        id: ConnId,
        writable: bool,
        out: Arc<Outbox>,
    ) -> Result<mpsc::Sender<Input>, String> {
        loop {
            let tx = self.get_or_load(room);
            let (joined, wait) = oneshot::channel();
            let sent = tx
                .send(Input::Join {
                    id,
                    writable,
                    out: out.clone(),
                    joined,
                })
                .await;
            if sent.is_ok() {
                match wait.await {
                    Ok(Ok(())) => return Ok(tx),
                    Ok(Err(e)) => return Err(e),
                    // The room unloaded as we joined: load it again.
                    Err(_) => {}
                }
            }
            tokio::task::yield_now().await;
        }
    }

    fn get_or_load(self: &Arc<Self>, room: &str) -> mpsc::Sender<Input> {
        let mut rooms = self.rooms.lock().expect("rooms lock");
        if let Some(tx) = rooms.get(room) {
            if !tx.is_closed() {
                return tx.clone();
            }
        }
        let (tx, rx) = mpsc::channel(1024);
        rooms.insert(room.to_owned(), tx.clone());
        self.metrics.room_loaded();
        let me = self.clone();
        let name = room.to_owned();
        let task = tokio::spawn(async move {
            let ended = AssertUnwindSafe(room_task(me.clone(), name.clone(), rx))
                .catch_unwind()
                .await;
            if ended.is_err() {
                // Its connections were closed as it unwound (see
                // room_task::Conns); the next join loads the room again.
                let mut rooms = me.rooms.lock().expect("rooms lock");
                if rooms.get(&name).is_some_and(|tx| tx.is_closed()) {
                    rooms.remove(&name);
                }
            }
            me.metrics.room_unloaded();
        });
        let mut tasks = self.tasks.lock().expect("tasks lock");
        tasks.retain(|t| !t.is_finished());
        tasks.push(task);
        tx
    }

    /// Removes `room` if nothing is waiting in its channel `rx`; the room
    /// task then ends. Called by an idle room.
    pub(crate) fn unload_if_idle(&self, room: &str, rx: &mpsc::Receiver<Input>) -> bool {
        let mut rooms = self.rooms.lock().expect("rooms lock");
        if !rx.is_empty() {
            return false;
        }
        rooms.remove(room);
        true
    }

    /// Takes a room out of the map and answers what is still queued for it.
    pub(crate) fn drop_room(&self, name: &str, mut rx: mpsc::Receiver<Input>) {
        self.rooms.lock().expect("rooms lock").remove(name);
        rx.close();
        // Joins waiting in the channel see their answer dropped and retry;
        // everything else was for connections already closed.
        while rx.try_recv().is_ok() {}
    }

    /// Tells every room to finish and close its connections with "going
    /// away", and waits for them (up to `deadline`).
    pub async fn shutdown(&self, deadline: Duration) {
        let senders: Vec<_> = self
            .rooms
            .lock()
            .expect("rooms lock")
            .values()
            .cloned()
            .collect();
        for tx in senders {
            let _ = tx.send(Input::Shutdown).await;
        }
        let tasks: Vec<_> = std::mem::take(&mut *self.tasks.lock().expect("tasks lock"));
        let _ = tokio::time::timeout(deadline, futures_util::future::join_all(tasks)).await;
    }
}
