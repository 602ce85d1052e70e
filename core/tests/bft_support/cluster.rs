//! A hand-driven PBFT group for deterministic scenarios: every replica
//! (except the ones the test plays itself, as Byzantine) runs for real, and
//! every message passes through one FIFO queue and a rule the test sets —
//! deliver, drop or hold — so a scenario can build exactly the message
//! pattern it needs (a batch prepared at only f+1 replicas, commits
//! withheld, a view-change message arriving late). Timers fire only when
//! the test fires them. No clock, no randomness.

use std::collections::{BTreeMap, VecDeque};

use neuroplex_core::bft::auth::{Auth, Ed25519Auth, Identity, MacAuth};
use neuroplex_core::bft::message::{
    AuthRequest, CheckpointVote, Message, PrePrepare, Request, Signed, SignedKind, ViewChange,
    Vote, VoteKind, Voted,
};
use neuroplex_core::bft::{
    Authenticator, Batch, Config, Dealer, Digest, Event, Executed, Fault, Input, Record, Replica,
    ReplicaIndex, Seq, Step, Target, TimerCmd, TimerId, View,
};

use super::{AnyReplica, App, Mode};

/// The client every scenario uses.
pub const CLIENT: u64 = 9;
/// The link client messages arrive on.
pub const CLIENT_LINK: u64 = 1000;

/// A message in flight: `from` is the link (a replica index, or
/// [`CLIENT_LINK`]).
#[derive(Clone, Debug)]
pub struct Envelope {
    pub from: u64,
    pub to: ReplicaIndex,
    pub bytes: Vec<u8>,
}

impl Envelope {
    pub fn message(&self) -> Option<Message> {
        Message::decode(&self.bytes).ok()
    }
}

/// What the rule does with a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Deliver,
    Drop,
    /// Keep it aside until [`Cluster::release`].
    Hold,
}

/// The replica timers a scenario can fire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Timer {
    Request,
    ViewChange,
    Batch,
    Status,
}

type Rule = Box<dyn FnMut(&Envelope, &Message) -> Verdict>;
type Sealer = Box<dyn Fn(&[u8]) -> Auth>;

pub struct Cluster {
    pub mode: Mode,
    pub config: Config,
    pub dealer: Dealer,
    /// `None` for the replicas the test plays (Byzantine).
    pub replicas: Vec<Option<AnyReplica>>,
    pub apps: Vec<App>,
    /// Per replica: seq → the digest it executed there.
    pub executed: Vec<BTreeMap<Seq, Digest>>,
    /// Per replica: (client, timestamp) → the seq it executed at.
    pub requests_at: Vec<BTreeMap<(u64, u64), Seq>>,
    /// Per replica: checkpoints it made stable (Event::Stable).
    pub stable_events: Vec<Vec<Seq>>,
    /// Per replica: state installs (Event::Install).
    pub installs: Vec<Vec<Seq>>,
    pub faults: Vec<(ReplicaIndex, Fault)>,
    /// Per replica: its journal (every `Step::persist`, compacted), what
    /// [`Cluster::restart`] rebuilds it from.
    pub journals: Vec<Vec<Record>>,
    /// A replica that executed a sequence number twice (after a restart)
    /// with different batches: (replica, seq).
    pub reexecuted_differently: Vec<(ReplicaIndex, Seq)>,
    /// Everything a correct replica sent, in order (broadcasts once per
    /// receiver).
    pub sent: Vec<Envelope>,
    /// What was addressed to the replicas the test plays.
    pub inbox: Vec<Envelope>,
    pub queue: VecDeque<Envelope>,
    pub held: Vec<Envelope>,
    timers: Vec<BTreeMap<Timer, TimerId>>,
    rule: Rule,
}

impl Cluster {
    /// n replicas; the ones in `byzantine` are not run (the test speaks for
    /// them). `tweak` adjusts the configuration.
    pub fn new(
        mode: Mode,
        n: usize,
        byzantine: &[ReplicaIndex],
        tweak: impl FnOnce(&mut Config),
    ) -> Self {
        let dealer = Dealer::new([0x5C; 32], n);
        let mut config = dealer.config();
        config.batch_max = 1;
        config.checkpoint_interval = 4;
        config.window = 8;
        tweak(&mut config);
        let mut replicas = Vec::new();
        let mut boots = Vec::new();
        for i in 0..n as u32 {
            if byzantine.contains(&i) {
                replicas.push(None);
                boots.push(Step::default());
                continue;
            }
            let (r, step) = boot(mode, &config, &dealer, i, &[]);
            replicas.push(Some(r));
            boots.push(step);
        }
        let mut c = Cluster {
            mode,
            config,
            dealer,
            replicas,
            apps: vec![App::default(); n],
            executed: vec![BTreeMap::new(); n],
            requests_at: vec![BTreeMap::new(); n],
            stable_events: vec![Vec::new(); n],
            installs: vec![Vec::new(); n],
            faults: Vec::new(),
            journals: vec![Vec::new(); n],
            reexecuted_differently: Vec::new(),
            sent: Vec::new(),
            inbox: Vec::new(),
            queue: VecDeque::new(),
            held: Vec::new(),
            timers: vec![BTreeMap::new(); n],
            rule: Box::new(|_, _| Verdict::Deliver),
        };
        for (i, step) in boots.into_iter().enumerate() {
            c.apply(i as u32, step);
        }
        c
    }

    pub fn n(&self) -> usize {
        self.replicas.len()
    }

    pub fn f(&self) -> usize {
        self.config.f()
    }

    pub fn is_correct(&self, i: ReplicaIndex) -> bool {
        self.replicas[i as usize].is_some()
    }

    pub fn correct(&self) -> Vec<ReplicaIndex> {
        (0..self.n() as u32)
            .filter(|&i| self.is_correct(i))
            .collect()
    }

    pub fn replica(&self, i: ReplicaIndex) -> &AnyReplica {
        self.replicas[i as usize]
            .as_ref()
            .expect("a correct replica")
    }

    /// Sets the rule every message passes through from now on.
    pub fn set_rule(&mut self, rule: impl FnMut(&Envelope, &Message) -> Verdict + 'static) {
        self.rule = Box::new(rule);
    }

    /// Delivers everything from now on.
    pub fn deliver_all(&mut self) {
        self.rule = Box::new(|_, _| Verdict::Deliver);
    }

    // ---- Requests ------------------------------------------------------

    /// CLIENT's request `ts`, MAC'd for every replica.
    pub fn request(&self, ts: u64) -> AuthRequest {
        let request = Request {
            client: CLIENT,
            timestamp: ts,
            op: format!("op {ts}").into_bytes().into(),
        };
        let macs = self.dealer.client(CLIENT).macs().tags(&request.digest().0);
        AuthRequest { request, macs }
    }

    /// The digest of the batch holding exactly request `ts`.
    pub fn batch_digest(&self, ts: u64) -> Digest {
        self.batch(&[ts]).digest()
    }

    pub fn batch(&self, ts: &[u64]) -> Batch {
        Batch {
            requests: ts.iter().map(|&t| self.request(t)).collect(),
        }
    }

    /// The client sends request `ts` to these replicas.
    pub fn submit(&mut self, ts: u64, to: &[ReplicaIndex]) {
        let bytes = Message::Request(self.request(ts)).encode();
        for &i in to {
            self.queue.push_back(Envelope {
                from: CLIENT_LINK,
                to: i,
                bytes: bytes.clone(),
            });
        }
    }

    // ---- The network -----------------------------------------------------

    /// Delivers `bytes` from link `from` to each of `to` at once, past
    /// the rule (for messages the test makes up as a Byzantine replica),
    /// then runs.
    pub fn inject(&mut self, from: ReplicaIndex, to: &[ReplicaIndex], bytes: Vec<u8>) {
        for &i in to {
            self.handle(Envelope {
                from: u64::from(from),
                to: i,
                bytes: bytes.clone(),
            });
            self.run();
        }
    }

    /// Delivers queued messages (and what they cause) until the queue is
    /// empty.
    pub fn run(&mut self) {
        while let Some(env) = self.queue.pop_front() {
            let Some(msg) = env.message() else {
                self.handle(env);
                continue;
            };
            match (self.rule)(&env, &msg) {
                Verdict::Deliver => self.handle(env),
                Verdict::Drop => {}
                Verdict::Hold => self.held.push(env),
            }
        }
    }

    /// Delivers the held messages matching `pick` (the rule does not apply
    /// to them again), then runs.
    pub fn release(&mut self, mut pick: impl FnMut(&Envelope, &Message) -> bool) {
        let held = std::mem::take(&mut self.held);
        let mut picked = Vec::new();
        for env in held {
            let m = env.message();
            if m.as_ref().is_some_and(|m| pick(&env, m)) {
                picked.push(env);
            } else {
                self.held.push(env);
            }
        }
        for env in picked {
            self.handle(env);
            self.run();
        }
        self.run();
    }

    fn handle(&mut self, env: Envelope) {
        let i = env.to;
        match self.replicas[i as usize].as_mut() {
            Some(r) => {
                let step = r.handle(Input::Message {
                    link: env.from,
                    bytes: env.bytes,
                });
                self.apply(i, step);
            }
            None => self.inbox.push(env),
        }
    }

    /// Fires replica `i`'s latest armed timer of this kind, if any; true
    /// if one fired.
    pub fn fire(&mut self, i: ReplicaIndex, t: Timer) -> bool {
        let Some(id) = self.timers[i as usize].remove(&t) else {
            return false;
        };
        let Some(r) = self.replicas[i as usize].as_mut() else {
            return false;
        };
        let step = r.handle(Input::Timer(id));
        self.apply(i, step);
        self.run();
        true
    }

    /// Crashes replica `i` and restarts it from its journal (a correct
    /// replica's restart: not a fault). Its application restarts empty and
    /// gets what the restore step installs and re-executes; messages in
    /// flight to it stay queued.
    pub fn restart(&mut self, i: ReplicaIndex) {
        assert!(
            self.is_correct(i),
            "only a replica the cluster runs restarts"
        );
        let (r, step) = boot(
            self.mode,
            &self.config,
            &self.dealer,
            i,
            &self.journals[i as usize],
        );
        self.replicas[i as usize] = Some(r);
        self.apps[i as usize] = App::default();
        self.timers[i as usize].clear();
        self.apply(i, step);
    }

    /// True if replica `i` has a timer of this kind armed.
    pub fn armed(&self, i: ReplicaIndex, t: Timer) -> bool {
        self.timers[i as usize].contains_key(&t)
    }

    /// Carries out a replica's step: sends, timers, events (executing
    /// through the toy app, whose answers are more steps).
    fn apply(&mut self, i: ReplicaIndex, step: Step) {
        let mut steps = VecDeque::from([step]);
        while let Some(step) = steps.pop_front() {
            // Persist before send.
            if !step.persist.is_empty() {
                let journal = &mut self.journals[i as usize];
                let compacting = step
                    .persist
                    .iter()
                    .any(|r| matches!(r, Record::Stable { .. }));
                journal.extend(step.persist);
                if compacting {
                    neuroplex_core::bft::persist::compact(journal);
                }
            }
            for o in step.send {
                let to: Vec<ReplicaIndex> = match o.to {
                    Target::Replica(j) => vec![j],
                    Target::AllReplicas => (0..self.n() as u32).filter(|&j| j != i).collect(),
                    Target::Client(_) => Vec::new(),
                };
                for j in to {
                    let env = Envelope {
                        from: u64::from(i),
                        to: j,
                        bytes: o.bytes.clone(),
                    };
                    self.sent.push(env.clone());
                    self.queue.push_back(env);
                }
            }
            for t in step.timers {
                if let TimerCmd::Set { id, .. } = t {
                    let kind = match id {
                        TimerId::Request(_) => Timer::Request,
                        TimerId::ViewChange(_) => Timer::ViewChange,
                        TimerId::Batch(_) => Timer::Batch,
                        TimerId::Status(_) => Timer::Status,
                        _ => continue,
                    };
                    self.timers[i as usize].insert(kind, id);
                }
            }
            for f in step.faults {
                self.faults.push((i, f));
            }
            for e in step.events {
                let k = i as usize;
                match e {
                    Event::Execute(ex) => {
                        if self.executed[k]
                            .insert(ex.seq, ex.digest)
                            .is_some_and(|d| d != ex.digest)
                        {
                            self.reexecuted_differently.push((i, ex.seq));
                        }
                        let app = &mut self.apps[k];
                        let mut results = neuroplex_core::bft::Results::new();
                        for r in ex.requests() {
                            self.requests_at[k].insert((r.client, r.timestamp), ex.seq);
                            results.push(&app.apply(&r.op));
                        }
                        let state = ex.checkpoint.then(|| {
                            let snap = app.snapshot();
                            (Digest::of(b"app-digest", &[&snap]), snap)
                        });
                        let r = self.replicas[k].as_mut().expect("correct");
                        steps.push_back(r.executed(Executed {
                            seq: ex.seq,
                            results,
                            state,
                        }));
                    }
                    Event::Install { seq, snapshot } => {
                        self.apps[k] = App::install(&snapshot);
                        self.installs[k].push(seq);
                    }
                    Event::Stable { seq } => self.stable_events[k].push(seq),
                    Event::NewView { .. } => {}
                }
            }
        }
    }

    // ---- Observations ----------------------------------------------------

    pub fn view(&self, i: ReplicaIndex) -> View {
        self.replica(i).view()
    }

    pub fn is_normal(&self, i: ReplicaIndex) -> bool {
        match self.replica(i) {
            AnyReplica::Mac(r) => r.is_normal(),
            AnyReplica::Ed(r) => r.is_normal(),
        }
    }

    /// The digest replica `i` executed at `seq`.
    pub fn executed_at(&self, i: ReplicaIndex, seq: Seq) -> Option<Digest> {
        self.executed[i as usize].get(&seq).copied()
    }

    /// Agreement: no two correct replicas executed different batches at one
    /// sequence number, and no request executed at two.
    pub fn check_agreement(&self) -> Result<(), String> {
        if let Some((i, s)) = self.reexecuted_differently.first() {
            return Err(format!(
                "replica {i} executed seq {s} again with another batch"
            ));
        }
        let mut by_seq: BTreeMap<Seq, (ReplicaIndex, Digest)> = BTreeMap::new();
        let mut by_req: BTreeMap<(u64, u64), (ReplicaIndex, Seq)> = BTreeMap::new();
        for i in self.correct() {
            for (&s, &d) in &self.executed[i as usize] {
                match by_seq.get(&s) {
                    Some(&(j, e)) if e != d => {
                        return Err(format!(
                            "replicas {j} and {i} executed different batches at seq {s}: {e:?} vs {d:?}"
                        ));
                    }
                    _ => {
                        by_seq.insert(s, (i, d));
                    }
                }
            }
            for (&k, &s) in &self.requests_at[i as usize] {
                match by_req.get(&k) {
                    Some(&(j, t)) if t != s => {
                        return Err(format!(
                            "request {k:?} executed at seq {t} by replica {j} and at seq {s} by replica {i}"
                        ));
                    }
                    _ => {
                        by_req.insert(k, (i, s));
                    }
                }
            }
        }
        Ok(())
    }

    /// Commits correct replicas sent, as (sender, view, seq, digest).
    pub fn commits_sent(&self) -> Vec<(u64, View, Seq, Digest)> {
        let mut out: Vec<_> = self
            .sent
            .iter()
            .filter_map(|e| match e.message() {
                Some(Message::Commit(v)) => Some((e.from, v.vote.view, v.vote.seq, v.vote.digest)),
                _ => None,
            })
            .collect();
        out.sort();
        out.dedup();
        out
    }

    // ---- Speaking for a Byzantine replica ---------------------------------

    fn auth_of(&self, i: ReplicaIndex) -> Sealer {
        let keys = self.dealer.replica(i, &[CLIENT]);
        match self.mode {
            Mode::Mac => {
                let a: MacAuth = keys.mac();
                Box::new(move |p| a.seal(p))
            }
            Mode::Ed25519 => {
                let a: Ed25519Auth = keys.ed25519(&self.config).expect("config");
                Box::new(move |p| a.seal(p))
            }
        }
    }

    pub fn identity(&self, i: ReplicaIndex) -> Identity {
        self.dealer
            .replica(i, &[])
            .identity(&self.config)
            .expect("config")
    }

    /// A prepare or commit by replica `i`, validly authenticated.
    pub fn vote_as(
        &self,
        i: ReplicaIndex,
        kind: VoteKind,
        view: View,
        seq: Seq,
        digest: Digest,
    ) -> Vec<u8> {
        let vote = Vote {
            view,
            seq,
            digest,
            replica: i,
        };
        let voted = Voted {
            vote,
            auth: self.auth_of(i)(&vote.payload(kind)),
        };
        match kind {
            VoteKind::Commit => Message::Commit(voted),
            _ => Message::Prepare(voted),
        }
        .encode()
    }

    /// A pre-prepare by replica `i` (the primary of `view`, if valid).
    pub fn pre_prepare_as(&self, i: ReplicaIndex, view: View, seq: Seq, batch: Batch) -> Vec<u8> {
        let vote = Vote {
            view,
            seq,
            digest: batch.digest(),
            replica: i,
        };
        let auth = self.auth_of(i)(&vote.payload(VoteKind::PrePrepare));
        Message::PrePrepare(PrePrepare { vote, auth, batch }).encode()
    }

    /// A signed view-change message by replica `i`.
    pub fn view_change_as(&self, i: ReplicaIndex, vc: &ViewChange) -> Vec<u8> {
        Message::ViewChange(Signed::sign(&self.identity(i), SignedKind::ViewChange, vc)).encode()
    }

    /// A signed checkpoint vote by replica `i`.
    pub fn checkpoint_as(&self, i: ReplicaIndex, seq: Seq, digest: Digest) -> Vec<u8> {
        Message::Checkpoint(Signed::sign(
            &self.identity(i),
            SignedKind::Checkpoint,
            &CheckpointVote { seq, digest },
        ))
        .encode()
    }

    /// The digest of the genesis checkpoint (what every C starts with).
    pub fn genesis_checkpoint(&self) -> Digest {
        use neuroplex_core::bft::clients::ClientTable;
        use neuroplex_core::bft::message::CheckpointData;
        CheckpointData {
            seq: 0,
            app_digest: Digest::GENESIS,
            snapshot: Vec::new(),
            clients: ClientTable::new(),
        }
        .digest()
    }

    /// A view-change message that knows nothing beyond the genesis
    /// checkpoint (what a replica that saw nothing would send).
    pub fn empty_view_change(&self, view: View) -> ViewChange {
        ViewChange {
            view,
            low: 0,
            checkpoints: vec![(0, self.genesis_checkpoint())],
            prepared: Vec::new(),
            preprepared: Vec::new(),
            batches: Vec::new(),
        }
    }

    /// The digest in the checkpoint vote replica `i` sent for `seq`.
    pub fn checkpoint_digest_sent(&self, i: ReplicaIndex, seq: Seq) -> Option<Digest> {
        self.sent
            .iter()
            .filter(|e| e.from == u64::from(i))
            .find_map(|e| {
                let Some(Message::Checkpoint(s)) = e.message() else {
                    return None;
                };
                let v: CheckpointVote = neuroplex_core::codec::decode(&s.body).ok()?;
                (v.seq == seq).then_some(v.digest)
            })
    }
}

/// Builds correct replica `i` from `records` (nothing: a fresh one).
fn boot(
    mode: Mode,
    config: &Config,
    dealer: &Dealer,
    i: ReplicaIndex,
    records: &[Record],
) -> (AnyReplica, Step) {
    let keys = dealer.replica(i, &[CLIENT]);
    match mode {
        Mode::Mac => {
            let (r, s) =
                Replica::restore(config.clone(), &keys, keys.mac(), records).expect("config");
            (AnyReplica::Mac(r), s)
        }
        Mode::Ed25519 => {
            let auth = keys.ed25519(config).expect("config");
            let (r, s) = Replica::restore(config.clone(), &keys, auth, records).expect("config");
            (AnyReplica::Ed(r), s)
        }
    }
}

/// The message's kind and (view, seq) if it is a normal-case vote.
pub fn vote_of(m: &Message) -> Option<(VoteKind, View, Seq, Digest, ReplicaIndex)> {
    match m {
        Message::PrePrepare(pp) => Some((
            VoteKind::PrePrepare,
            pp.vote.view,
            pp.vote.seq,
            pp.vote.digest,
            pp.vote.replica,
        )),
        Message::Prepare(v) => Some((
            VoteKind::Prepare,
            v.vote.view,
            v.vote.seq,
            v.vote.digest,
            v.vote.replica,
        )),
        Message::Commit(v) => Some((
            VoteKind::Commit,
            v.vote.view,
            v.vote.seq,
            v.vote.digest,
            v.vote.replica,
        )),
        _ => None,
    }
}
