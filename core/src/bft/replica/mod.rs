//! The PBFT replica: a sans-IO state machine. [`Replica::handle`] takes a
//! message (bytes, with the link they came on) or a timer and returns a
//! [`Step`]; [`Replica::executed`] takes the application's results.
//!
//! The protocol is split by concept: `normal` (requests, pre-prepare,
//! prepare, commit, execution), `checkpoint` (checkpoints, garbage
//! collection, state transfer), `view` (view change and new view),
//! `status` (retransmission driven by peers' progress reports).
//!
//! Not here: sockets, clocks, storage, the application. The shell writes
//! `Step::persist` durably before sending `Step::send`, arms the timers and
//! hands the events to the application in order, calling
//! [`Replica::executed`] for each `Event::Execute` before feeding the next
//! input.

mod checkpoint;
mod normal;
mod status;
mod view;

use alloc::collections::{BTreeMap, VecDeque};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;

use super::auth::{Authenticator, ClientMacs, Identity, ReplicaKeys};
use super::clients::ClientTable;
use super::log::Log;
use super::message::{AuthRequest, CheckpointData, Message, Signed, ViewChange};
use super::persist::Record;
use super::step::{Event, Fault, Link, Step, TimerCmd, TimerId};
use super::{ClientId, Config, ConfigError, Digest, ReplicaIndex, Seq, View};

/// Most buffered messages for views this replica has not entered yet.
pub const MAX_FUTURE: usize = 512;

/// The application's answer to an `Event::Execute`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Executed {
    /// The sequence number executed.
    pub seq: Seq,
    /// One result per executed request, in order.
    pub results: Results,
    /// The state after `seq`, required when the event asked for a
    /// checkpoint: (application digest, canonical snapshot).
    pub state: Option<(Digest, Vec<u8>)>,
}

/// The results of one execution, back to back in one buffer (a batch of a
/// thousand requests hands over two allocations, not a thousand).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Results {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl Results {
    /// No results.
    pub fn new() -> Self {
        Self::default()
    }

    /// Room for `count` results of `bytes` bytes in all.
    pub fn with_capacity(count: usize, bytes: usize) -> Self {
        Self {
            bytes: Vec::with_capacity(bytes),
            ends: Vec::with_capacity(count),
        }
    }

    /// Appends the next request's result.
    pub fn push(&mut self, result: &[u8]) {
        self.bytes.extend_from_slice(result);
        self.ends.push(self.bytes.len());
    }

    /// Number of results.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// True if there are none.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The results, in order.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        let starts = core::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(self.ends.iter())
            .map(|(a, &b)| &self.bytes[a..b])
    }
}

impl<T: AsRef<[u8]>> FromIterator<T> for Results {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let mut r = Results::new();
        for x in iter {
            r.push(x.as_ref());
        }
        r
    }
}

/// The application's answer did not match what the replica asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UsageError {
    /// No execution of this sequence number is outstanding.
    NotAwaited(Seq),
    /// Wrong number of results.
    ResultCount {
        /// Expected.
        expected: usize,
        /// Given.
        got: usize,
    },
    /// A checkpoint was due and no state given, or the reverse.
    State,
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UsageError::NotAwaited(s) => write!(f, "no execution of {s} is outstanding"),
            UsageError::ResultCount { expected, got } => {
                write!(f, "expected {expected} results, got {got}")
            }
            UsageError::State => write!(f, "checkpoint state missing or unexpected"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for UsageError {}

/// An input from the shell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// Bytes from the network.
    Message {
        /// The link they arrived on.
        link: Link,
        /// The bytes (untrusted).
        bytes: Vec<u8>,
    },
    /// A timer fired.
    Timer(TimerId),
}

/// A client request waiting to execute.
#[derive(Clone, Debug)]
pub(crate) struct Pending {
    pub(crate) request: AuthRequest,
    /// Its digest (computed once, when it was verified).
    pub(crate) digest: Digest,
    /// Proposed by this replica as primary in the current view.
    pub(crate) proposed: bool,
}

/// The client requests waiting to execute, by (client, timestamp). The
/// requests live in a slab and the map holds their indices, so adding and
/// removing one (once per request at the primary) moves a few bytes, not
/// the request, and allocates nothing once the slab has grown.
#[derive(Clone, Debug, Default)]
pub(crate) struct PendingSet {
    index: BTreeMap<(ClientId, u64), u32>,
    slab: Vec<Option<Pending>>,
    free: Vec<u32>,
}

impl PendingSet {
    pub(crate) fn len(&self) -> usize {
        self.index.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    pub(crate) fn contains_key(&self, key: &(ClientId, u64)) -> bool {
        self.index.contains_key(key)
    }

    pub(crate) fn get(&self, key: &(ClientId, u64)) -> Option<&Pending> {
        let &i = self.index.get(key)?;
        self.slab[i as usize].as_ref()
    }

    pub(crate) fn get_mut(&mut self, key: &(ClientId, u64)) -> Option<&mut Pending> {
        let &i = self.index.get(key)?;
        self.slab[i as usize].as_mut()
    }

    /// Adds a request not present (the caller checks).
    pub(crate) fn insert(&mut self, key: (ClientId, u64), p: Pending) {
        let i = match self.free.pop() {
            Some(i) => {
                self.slab[i as usize] = Some(p);
                i
            }
            None => {
                self.slab.push(Some(p));
                (self.slab.len() - 1) as u32
            }
        };
        if let Some(old) = self.index.insert(key, i) {
            self.slab[old as usize] = None;
            self.free.push(old);
        }
    }

    pub(crate) fn remove(&mut self, key: &(ClientId, u64)) -> Option<Pending> {
        let i = self.index.remove(key)?;
        self.free.push(i);
        self.slab[i as usize].take()
    }

    /// Keeps the requests for which `keep` is true.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&(ClientId, u64), &Pending) -> bool) {
        let slab = &mut self.slab;
        let free = &mut self.free;
        self.index.retain(|k, i| {
            let kept = slab[*i as usize].as_ref().is_some_and(|p| keep(k, p));
            if !kept {
                slab[*i as usize] = None;
                free.push(*i);
            }
            kept
        });
    }

    /// Calls `f` on every request, in key order.
    pub(crate) fn for_each_mut(&mut self, mut f: impl FnMut(&(ClientId, u64), &mut Pending)) {
        for (k, &i) in &self.index {
            if let Some(p) = self.slab[i as usize].as_mut() {
                f(k, p);
            }
        }
    }
}

/// The execution handed to the application and not yet answered.
#[derive(Clone, Debug)]
pub(crate) struct Awaiting {
    pub(crate) seq: Seq,
    pub(crate) fresh: Vec<(ClientId, u64)>,
    pub(crate) checkpoint: bool,
}

/// State transfer in progress.
#[derive(Clone, Debug)]
pub(crate) struct Fetching {
    pub(crate) seq: Seq,
    pub(crate) digest: Digest,
    pub(crate) proof: Vec<Signed>,
}

/// Armed timers' generations.
#[derive(Clone, Debug, Default)]
pub(crate) struct Timers {
    pub(crate) next: u64,
    pub(crate) request: Option<u64>,
    /// `last_executed` when the request timer was armed.
    pub(crate) request_mark: Seq,
    pub(crate) view_change: Option<u64>,
    pub(crate) batch: Option<u64>,
    pub(crate) status: Option<u64>,
}

/// A PBFT replica. `A` authenticates normal-case messages.
pub struct Replica<A: Authenticator> {
    pub(crate) cfg: Config,
    pub(crate) me: ReplicaIndex,
    pub(crate) id: Identity,
    pub(crate) auth: A,
    pub(crate) client_keys: BTreeMap<ClientId, ClientMacs>,

    pub(crate) view: View,
    /// False while changing views (then `view` is the target).
    pub(crate) normal: bool,
    /// Consecutive failed view changes (backs the timeout off).
    pub(crate) vc_attempts: u32,
    /// While changing views: the view we left, whose commits we still
    /// learn from (without voting) so as not to fall behind.
    pub(crate) left_view: Option<View>,

    pub(crate) log: Log,
    /// Low watermark: the stable checkpoint.
    pub(crate) low: Seq,
    pub(crate) low_digest: Digest,
    /// 2f+1 signed votes for `low` (empty if a new view chose it).
    pub(crate) stable_proof: Vec<Signed>,
    /// Checkpoints this replica holds the state of, at or above `low`.
    pub(crate) own: BTreeMap<Seq, (Digest, Arc<CheckpointData>)>,
    /// Checkpoint votes above `low`: seq → signer → (digest, message).
    pub(crate) ckpt_votes: BTreeMap<Seq, BTreeMap<ReplicaIndex, (Digest, Signed)>>,
    pub(crate) fetching: Option<Fetching>,

    /// Last sequence number handed to the application.
    pub(crate) last_executed: Seq,
    pub(crate) awaiting: Option<Awaiting>,
    /// `last_executed` at the previous status tick (a replica that made no
    /// progress for a whole period looks for a checkpoint to fetch).
    pub(crate) progress_mark: Seq,
    /// An empty key list kept for the next execution (no allocation).
    pub(crate) spare_keys: Vec<(ClientId, u64)>,
    pub(crate) clients: ClientTable,

    /// Primary: next sequence number to assign.
    pub(crate) next_seq: Seq,
    pub(crate) pending: PendingSet,
    /// Unproposed pending requests in arrival order (may hold stale keys).
    pub(crate) queue: VecDeque<(ClientId, u64)>,

    /// Latest view-change message per replica: (decoded, signed).
    pub(crate) vcs: BTreeMap<ReplicaIndex, (ViewChange, Signed)>,
    /// The new-view message of the current view, to resend.
    pub(crate) new_view: Option<Signed>,
    /// Authenticated messages for views not entered yet.
    pub(crate) future: VecDeque<(Link, View, Message)>,

    pub(crate) timers: Timers,
}

impl<A: Authenticator> Replica<A> {
    /// A fresh replica (nothing persisted yet). The step arms its timers.
    pub fn new(config: Config, keys: &ReplicaKeys, auth: A) -> Result<(Self, Step), ConfigError> {
        Self::restore(config, keys, auth, &[])
    }

    /// Rebuilds a replica from its journal (see [`super::persist`]). The
    /// step re-installs the latest checkpoint (`Event::Install`) and
    /// re-executes what had committed above it; the application starts
    /// from its initial state if there is no install. If the low watermark
    /// is a checkpoint a new view chose whose state the replica never had
    /// (`Record::Chosen`), it fetches that state and executes nothing
    /// before it arrives.
    pub fn restore(
        config: Config,
        keys: &ReplicaKeys,
        auth: A,
        records: &[Record],
    ) -> Result<(Self, Step), ConfigError> {
        let id = keys.identity(&config)?;
        if keys.index as usize >= config.n() {
            return Err(ConfigError::BadConstant("replica index out of range"));
        }
        let genesis = Arc::new(CheckpointData {
            seq: 0,
            app_digest: Digest::GENESIS,
            snapshot: Vec::new(),
            clients: ClientTable::new(),
        });
        let gd = genesis.digest();
        let mut own = BTreeMap::new();
        own.insert(0, (gd, genesis));
        let mut r = Replica {
            me: keys.index,
            id,
            auth,
            client_keys: keys
                .clients
                .iter()
                .map(|(&c, k)| (c, ClientMacs::new(core::slice::from_ref(k))))
                .collect(),
            view: 0,
            normal: true,
            vc_attempts: 0,
            left_view: None,
            log: Log::default(),
            low: 0,
            low_digest: gd,
            stable_proof: Vec::new(),
            own,
            ckpt_votes: BTreeMap::new(),
            fetching: None,
            last_executed: 0,
            awaiting: None,
            spare_keys: Vec::new(),
            progress_mark: 0,
            clients: ClientTable::new(),
            next_seq: 1,
            pending: PendingSet::default(),
            queue: VecDeque::new(),
            vcs: BTreeMap::new(),
            new_view: None,
            future: VecDeque::new(),
            timers: Timers::default(),
            cfg: config,
        };
        let mut out = Step::default();
        r.replay(records, &mut out);
        r.arm_status(&mut out);
        Ok((r, out))
    }

    /// Handles one input.
    pub fn handle(&mut self, input: Input) -> Step {
        let mut out = Step::default();
        match input {
            Input::Message { link, bytes } => self.on_bytes(link, &bytes, &mut out),
            Input::Timer(t) => self.on_timer(t, &mut out),
        }
        out
    }

    /// Handles bytes from `link` (as [`Input::Message`], without the copy).
    pub fn handle_message(&mut self, link: Link, bytes: &[u8]) -> Step {
        let mut out = Step::default();
        self.on_bytes(link, bytes, &mut out);
        out
    }

    /// The application executed `Event::Execute` for `done.seq`: sends the
    /// replies, takes the checkpoint if one was due, and continues.
    pub fn executed(&mut self, done: Executed) -> Result<Step, UsageError> {
        let mut out = Step::default();
        self.on_executed(done, &mut out)?;
        Ok(out)
    }

    /// This replica's index.
    pub fn index(&self) -> ReplicaIndex {
        self.me
    }

    /// The current view (the target view while changing).
    pub fn view(&self) -> View {
        self.view
    }

    /// False while changing views.
    pub fn is_normal(&self) -> bool {
        self.normal
    }

    /// Last sequence number handed to the application.
    pub fn last_executed(&self) -> Seq {
        self.last_executed
    }

    /// The low watermark (last stable checkpoint) and its digest.
    pub fn stable_checkpoint(&self) -> (Seq, Digest) {
        (self.low, self.low_digest)
    }

    /// True if request (`client`, `timestamp`) has executed here (or is
    /// too old to ever execute).
    pub fn has_executed(&self, client: ClientId, timestamp: u64) -> bool {
        self.clients.standing(client, timestamp) != super::clients::Standing::Fresh
    }

    /// A one-line description of the replica's progress, for diagnostics.
    pub fn describe(&self) -> alloc::string::String {
        let slots: Vec<_> = self
            .log
            .above(self.last_executed)
            .take(4)
            .map(|(s, sl)| {
                alloc::format!(
                    "{s}:pp{:?}/vv{}/p{}/c{}/prep{:?}/cs{:?}/com{}/obs{}",
                    sl.pp.as_ref().map(|a| a.view),
                    sl.votes_view,
                    sl.prepares.len(),
                    sl.commits.len(),
                    sl.prepared.map(|p| p.0),
                    sl.commit_sent,
                    sl.committed.is_some(),
                    sl.observed.is_some()
                )
            })
            .collect();
        alloc::format!(
            "view {} normal {} left {:?} executed {} low {} fetching {:?} awaiting {:?} pending {} next_seq {} slots {:?}",
            self.view,
            self.normal,
            self.left_view,
            self.last_executed,
            self.low,
            self.fetching.as_ref().map(|f| f.seq),
            self.awaiting.as_ref().map(|a| a.seq),
            self.pending.len(),
            self.next_seq,
            slots
        )
    }

    /// Number of slots in the log (bounded by the window).
    pub fn log_len(&self) -> usize {
        self.log.len()
    }

    /// Number of messages buffered for views not entered yet (at most
    /// [`MAX_FUTURE`]).
    pub fn buffered_len(&self) -> usize {
        self.future.len()
    }

    /// Number of client requests waiting to execute.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub(crate) fn f(&self) -> usize {
        self.cfg.f()
    }

    pub(crate) fn quorum(&self) -> usize {
        self.cfg.quorum()
    }

    pub(crate) fn primary(&self) -> ReplicaIndex {
        self.cfg.primary(self.view)
    }

    pub(crate) fn is_primary(&self) -> bool {
        self.primary() == self.me
    }

    fn on_bytes(&mut self, link: Link, bytes: &[u8], out: &mut Step) {
        match Message::decode(bytes) {
            Ok(msg) => self.on_message(link, msg, out),
            Err(error) => out.faults.push(Fault::Malformed { link, error }),
        }
    }

    pub(crate) fn on_message(&mut self, link: Link, msg: Message, out: &mut Step) {
        match msg {
            Message::Request(r) => self.on_request(link, r, out),
            Message::PrePrepare(pp) => self.on_pre_prepare(link, pp, out),
            Message::Prepare(v) => self.on_vote(link, super::message::VoteKind::Prepare, v, out),
            Message::Commit(v) => self.on_vote(link, super::message::VoteKind::Commit, v, out),
            Message::Checkpoint(s) => self.on_checkpoint(link, s, out),
            Message::ViewChange(s) => self.on_view_change(link, s, out),
            Message::NewView(s) => self.on_new_view(link, s, out),
            Message::Status(s, a) => self.on_status(link, s, a, out),
            Message::Fetch(f, a) => self.on_fetch(link, f, a, out),
            Message::State(d) => self.on_state(link, d, out),
            // Replies are for clients; a replica has nothing to do with one.
            Message::Reply(_) => {}
            Message::Batch(seq, b) => self.on_batch(link, seq, b, out),
        }
    }

    fn on_timer(&mut self, t: TimerId, out: &mut Step) {
        match t {
            TimerId::Request(g) if self.timers.request == Some(g) => {
                self.timers.request = None;
                self.on_request_timeout(out);
            }
            TimerId::ViewChange(g) if self.timers.view_change == Some(g) => {
                self.timers.view_change = None;
                if !self.normal {
                    self.vc_attempts = self.vc_attempts.saturating_add(1);
                    let next = self.view + 1;
                    self.start_view_change(next, out);
                }
            }
            TimerId::Batch(g) if self.timers.batch == Some(g) => {
                self.timers.batch = None;
                self.propose(true, out);
            }
            TimerId::Status(g) if self.timers.status == Some(g) => {
                self.timers.status = None;
                self.on_status_tick(out);
                self.arm_status(out);
            }
            // Stale generations, and client timers, mean nothing here.
            _ => {}
        }
    }

    pub(crate) fn arm(&mut self, out: &mut Step, make: fn(u64) -> TimerId, after: u64) -> u64 {
        self.timers.next += 1;
        let g = self.timers.next;
        out.timers.push(TimerCmd::Set { id: make(g), after });
        g
    }

    fn arm_status(&mut self, out: &mut Step) {
        let after = self.cfg.status_interval;
        let g = self.arm(out, TimerId::Status, after);
        self.timers.status = Some(g);
    }

    /// Broadcasts `msg` to the other replicas.
    pub(crate) fn broadcast(&self, bytes: Vec<u8>, out: &mut Step) {
        out.send.push(super::step::Outgoing {
            to: super::step::Target::AllReplicas,
            bytes,
        });
    }

    /// Sends `msg` to replica `to`.
    pub(crate) fn send_to(&self, to: ReplicaIndex, bytes: Vec<u8>, out: &mut Step) {
        out.send.push(super::step::Outgoing {
            to: super::step::Target::Replica(to),
            bytes,
        });
    }

    /// Replays a journal into a replica built with nothing.
    fn replay(&mut self, records: &[Record], out: &mut Step) {
        for rec in records {
            match rec {
                Record::View { view, normal } => {
                    // As live: leaving a normal view remembers it.
                    if self.normal && !*normal {
                        self.left_view = Some(self.view);
                    } else if *normal {
                        self.left_view = None;
                    }
                    self.view = *view;
                    self.normal = *normal;
                }
                Record::Accepted {
                    view,
                    seq,
                    digest,
                    batch,
                    auth,
                } => {
                    if *seq > self.low {
                        let slot = self.log.slot(*seq);
                        if slot.pp.as_ref().is_none_or(|a| a.view <= *view) {
                            slot.accept(*view, *digest, batch.clone(), auth.clone());
                        }
                    }
                }
                Record::Prepared { view, seq, digest } => {
                    if *seq > self.low {
                        let slot = self.log.slot(*seq);
                        if slot.prepared.is_none_or(|p| p.0 <= *view) {
                            slot.prepared = Some((*view, *digest));
                            slot.commit_sent = Some(*view);
                        }
                    }
                }
                Record::Committed { seq, digest, batch } => {
                    if *seq > self.low {
                        let slot = self.log.slot(*seq);
                        slot.committed = Some(*digest);
                        if slot.batch(digest).is_none() {
                            slot.observed = Some(super::log::Accepted {
                                view: 0,
                                digest: *digest,
                                batch: batch.clone(),
                                auth: None,
                            });
                        }
                    }
                }
                Record::Chosen { seq, digest } => {
                    if *seq > self.low {
                        self.set_low(*seq, *digest, Vec::new());
                    }
                }
                Record::Checkpoint(data) => {
                    if data.seq >= self.low {
                        self.own.insert(data.seq, (data.digest(), data.clone()));
                    }
                }
                Record::Stable {
                    data,
                    digest,
                    proof,
                } => {
                    if data.seq >= self.low {
                        self.own.insert(data.seq, (*digest, data.clone()));
                        self.set_low(data.seq, *digest, proof.clone());
                    }
                }
            }
        }
        // Execution restarts from the low watermark's state.
        self.last_executed = self.low;
        match self.own.get(&self.low).cloned() {
            Some((d, data)) if d == self.low_digest => {
                self.clients = data.clients.clone();
                if self.low > 0 {
                    out.events.push(Event::Install {
                        seq: self.low,
                        snapshot: Arc::new(data.snapshot.clone()),
                    });
                }
            }
            _ => {
                // A low chosen by a new view whose state we never had:
                // fetch it (nothing executes until it arrives).
                let (low, digest) = (self.low, self.low_digest);
                let proof = self.stable_proof.clone();
                self.start_fetch(low, digest, proof, out);
            }
        }
        // Our own votes in the current view count again.
        let (view, me, primary) = (self.view, self.me, self.primary());
        let mut max_accepted = self.low;
        for (&seq, slot) in self.log.iter() {
            if slot.pp_in(view).is_some() {
                max_accepted = max_accepted.max(seq);
            }
        }
        let seqs: Vec<Seq> = self.log.iter().map(|(s, _)| *s).collect();
        for seq in seqs {
            let slot = self.log.slot(seq);
            if let Some(pp) = slot.pp_in(view).cloned() {
                if me != primary {
                    slot.prepares.insert(
                        me,
                        super::log::Recorded {
                            digest: pp.digest,
                            sig: None,
                        },
                    );
                }
                if slot.commit_sent == Some(view) {
                    slot.commits.insert(
                        me,
                        super::log::Recorded {
                            digest: pp.digest,
                            sig: None,
                        },
                    );
                }
            }
        }
        self.next_seq = max_accepted + 1;
        if !self.normal {
            // Resend our view change (same content: nothing was accepted
            // since it was made, so it rebuilds identically).
            let target = self.view;
            self.send_view_change(target, out);
        }
        self.try_execute(out);
    }
}
