//! Test support for the PBFT suites: a simulator node that runs a replica
//! (honest or Byzantine) or a client over `core::sim`, a toy deterministic
//! application, a persistent journal that honours persist-before-send, and
//! an observer that checks the safety invariants at every commit.
#![allow(dead_code)]

pub mod byzantine;
pub mod cluster;
pub mod journal;
pub mod observer;

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;

use neuroplex_core::bft::auth::{Ed25519Auth, MacAuth};
use neuroplex_core::bft::{
    Authenticator, Client, ClientEvent, ClientInput, ClientStep, Config, Dealer, Digest, Event,
    Executed, Input, Replica, ReplicaIndex, Step, Target, TimerCmd, TimerId,
};
use neuroplex_core::sim::{Context, Node, NodeId, Rng};

pub use byzantine::Behaviour;
pub use journal::Journal;
pub use observer::Observer;

/// Which authenticator the replicas use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// MAC vectors.
    Mac,
    /// ed25519 signatures.
    Ed25519,
}

/// A replica with either authenticator.
#[allow(clippy::large_enum_variant)]
pub enum AnyReplica {
    Mac(Replica<MacAuth>),
    Ed(Replica<Ed25519Auth>),
}

macro_rules! each {
    ($r:expr, $x:ident => $e:expr) => {
        match $r {
            AnyReplica::Mac($x) => $e,
            AnyReplica::Ed($x) => $e,
        }
    };
}

impl AnyReplica {
    pub fn handle(&mut self, i: Input) -> Step {
        each!(self, r => r.handle(i))
    }
    pub fn executed(&mut self, e: Executed) -> Step {
        each!(self, r => r.executed(e).expect("the test app answers what was asked"))
    }
    pub fn view(&self) -> u64 {
        each!(self, r => r.view())
    }
    pub fn last_executed(&self) -> u64 {
        each!(self, r => r.last_executed())
    }
    pub fn stable(&self) -> (u64, Digest) {
        each!(self, r => r.stable_checkpoint())
    }
    pub fn has_executed(&self, c: u64, ts: u64) -> bool {
        each!(self, r => r.has_executed(c, ts))
    }
    pub fn describe(&self) -> String {
        each!(self, r => r.describe())
    }
    pub fn log_len(&self) -> usize {
        each!(self, r => r.log_len())
    }
}

/// Either authenticator, for Byzantine nodes that forge or re-seal.
#[derive(Clone)]
#[allow(clippy::large_enum_variant)]
pub enum AnyAuth {
    Mac(MacAuth),
    Ed(Ed25519Auth),
}

impl AnyAuth {
    pub fn seal(&self, payload: &[u8]) -> neuroplex_core::bft::auth::Auth {
        match self {
            AnyAuth::Mac(a) => a.seal(payload),
            AnyAuth::Ed(a) => a.seal(payload),
        }
    }
}

/// Everything the factory needs to (re)build nodes.
pub struct Setup {
    pub seed: u64,
    pub n: usize,
    pub mode: Mode,
    pub config: Config,
    pub dealer: Dealer,
    pub clients: Vec<u64>,
    /// Node id → replica identity, for replica nodes (twins share one).
    pub identity: Vec<Option<ReplicaIndex>>,
    /// Node id → behaviour.
    pub behaviour: Vec<Behaviour>,
    /// Node id → client id, for client nodes.
    pub client_of: Vec<Option<u64>>,
    /// Ops each client submits: (time, op).
    pub schedule: Vec<Vec<(u64, Vec<u8>)>>,
    pub client_retry: u64,
    /// Nodes to restart without their disk (amnesia: counted faulty).
    pub amnesiac: RefCell<BTreeSet<NodeId>>,
    pub observer: Rc<RefCell<Observer>>,
}

impl Setup {
    /// The sim nodes that answer to replica identity `i`.
    pub fn nodes_of(&self, i: ReplicaIndex) -> impl Iterator<Item = NodeId> + '_ {
        self.identity
            .iter()
            .enumerate()
            .filter(move |(_, x)| **x == Some(i))
            .map(|(k, _)| k)
    }

    pub fn client_node(&self, c: u64) -> Option<NodeId> {
        self.client_of.iter().position(|x| *x == Some(c))
    }

    pub fn replica_nodes(&self) -> impl Iterator<Item = NodeId> + '_ {
        (0..self.identity.len()).filter(|&k| self.identity[k].is_some())
    }

    pub fn is_faulty(&self, node: NodeId) -> bool {
        self.behaviour[node] != Behaviour::Honest || self.amnesiac.borrow().contains(&node)
    }

    /// Identities that are faulty (for checking who proofs convict).
    pub fn faulty_identities(&self) -> BTreeSet<ReplicaIndex> {
        self.replica_nodes()
            .filter(|&k| self.is_faulty(k))
            .filter_map(|k| self.identity[k])
            .collect()
    }
}

/// The toy application: a hash chain of executed operations.
#[derive(Clone, Debug, Default)]
pub struct App {
    pub state: [u8; 32],
    pub count: u64,
}

impl App {
    pub fn apply(&mut self, op: &[u8]) -> Vec<u8> {
        self.state = Digest::of(b"app", &[&self.state, op]).0;
        self.count += 1;
        self.state[..8].to_vec()
    }
    pub fn snapshot(&self) -> Vec<u8> {
        let mut s = self.state.to_vec();
        s.extend_from_slice(&self.count.to_le_bytes());
        s
    }
    pub fn install(bytes: &[u8]) -> App {
        let mut state = [0; 32];
        state.copy_from_slice(&bytes[..32]);
        let mut c = [0; 8];
        c.copy_from_slice(&bytes[32..40]);
        App {
            state,
            count: u64::from_le_bytes(c),
        }
    }
}

const SUBMIT: u64 = 0xFF << 56;

pub struct ReplicaNode {
    pub id: ReplicaIndex,
    pub replica: AnyReplica,
    pub app: App,
    pub disk: Journal,
    pub byz: byzantine::State,
}

pub struct ClientNode {
    pub client: Client,
    pub done: BTreeSet<u64>,
}

pub enum Kind {
    Replica(Box<ReplicaNode>),
    Client(ClientNode),
}

/// A simulator node.
pub struct BftNode {
    pub node: NodeId,
    pub setup: Rc<Setup>,
    pub kind: Kind,
}

impl BftNode {
    pub fn build(setup: Rc<Setup>, node: NodeId, disk: Option<Journal>, rng: &mut Rng) -> Self {
        if let Some(c) = setup.client_of[node] {
            let client = Client::new(&setup.config, &setup.dealer.client(c), setup.client_retry);
            return BftNode {
                node,
                setup,
                kind: Kind::Client(ClientNode {
                    client,
                    done: BTreeSet::new(),
                }),
            };
        }
        let id = setup.identity[node].expect("a replica node");
        let keys = setup.dealer.replica(id, &setup.clients);
        let disk = if setup.amnesiac.borrow().contains(&node) {
            Journal::default()
        } else {
            disk.unwrap_or_default()
        };
        let records = disk.records();
        let (replica, auth, step) = match setup.mode {
            Mode::Mac => {
                let (r, s) = Replica::restore(setup.config.clone(), &keys, keys.mac(), &records)
                    .expect("valid config");
                (AnyReplica::Mac(r), AnyAuth::Mac(keys.mac()), s)
            }
            Mode::Ed25519 => {
                let a = keys.ed25519(&setup.config).expect("valid config");
                let (r, s) = Replica::restore(setup.config.clone(), &keys, a.clone(), &records)
                    .expect("valid config");
                (AnyReplica::Ed(r), AnyAuth::Ed(a), s)
            }
        };
        let byz = byzantine::State::new(setup.behaviour[node], auth, id, setup.n, rng.next_u64());
        let mut me = BftNode {
            node,
            setup,
            kind: Kind::Replica(Box::new(ReplicaNode {
                id,
                replica,
                app: App::default(),
                disk,
                byz,
            })),
        };
        // The restore step (installs, re-executions, timers) runs at the
        // first event: stash it.
        if let Kind::Replica(r) = &mut me.kind {
            r.byz.boot = Some(step);
        }
        me
    }

    pub fn replica(&self) -> Option<&ReplicaNode> {
        match &self.kind {
            Kind::Replica(r) => Some(r),
            Kind::Client(_) => None,
        }
    }

    pub fn client(&self) -> Option<&ClientNode> {
        match &self.kind {
            Kind::Client(c) => Some(c),
            Kind::Replica(_) => None,
        }
    }

    /// Starts the node: boot step for replicas, submission timers for
    /// clients.
    pub fn start(&mut self, cx: &mut Context<'_, Self>) {
        let setup = self.setup.clone();
        match &mut self.kind {
            Kind::Client(_) => {
                let c = setup.client_of[self.node].expect("client");
                let idx = setup.clients.iter().position(|x| *x == c).expect("client");
                for (k, (at, _)) in setup.schedule[idx].iter().enumerate() {
                    cx.set_timer(*at, SUBMIT | k as u64);
                }
            }
            Kind::Replica(_) => self.boot(cx),
        }
    }

    fn boot(&mut self, cx: &mut Context<'_, Self>) {
        if let Kind::Replica(r) = &mut self.kind
            && let Some(step) = r.byz.boot.take()
        {
            self.run(cx, step);
        }
    }

    fn client_step(&mut self, cx: &mut Context<'_, Self>, step: ClientStep) {
        let setup = self.setup.clone();
        for o in step.send {
            route(&setup, self.node, None, o.to, o.bytes, cx);
        }
        for t in step.timers {
            if let TimerCmd::Set { id, after } = t {
                cx.set_timer(after, id.to_u64());
            }
        }
        if let Kind::Client(c) = &mut self.kind {
            for e in step.events {
                let ClientEvent::Completed(done) = e;
                c.done.insert(done.timestamp);
                setup.observer.borrow_mut().on_complete(
                    c.client.id(),
                    done.timestamp,
                    &done.result,
                );
            }
        }
        for f in step.faults {
            setup.observer.borrow_mut().on_fault(&setup, self.node, &f);
        }
    }

    /// Carries out a replica step: persist, then send, then timers and
    /// events (executing through the app, which yields more steps).
    fn run(&mut self, cx: &mut Context<'_, Self>, step: Step) {
        let setup = self.setup.clone();
        let node = self.node;
        let Kind::Replica(r) = &mut self.kind else {
            return;
        };
        let mut queue = std::collections::VecDeque::from([step]);
        while let Some(step) = queue.pop_front() {
            if !step.persist.is_empty() {
                r.disk = r.disk.append(step.persist);
                cx.persist(r.disk.clone());
            }
            let sends = r.byz.filter(step.send, cx.rng());
            for (to, bytes) in sends {
                route(&setup, node, Some(r.id), to, bytes, cx);
            }
            for t in step.timers {
                if let TimerCmd::Set { id, after } = t {
                    cx.set_timer(after, id.to_u64());
                }
            }
            let faulty = setup.is_faulty(node);
            for f in &step.faults {
                setup.observer.borrow_mut().on_fault(&setup, node, f);
            }
            for e in step.events {
                match e {
                    Event::Execute(ex) => {
                        if !faulty {
                            setup.observer.borrow_mut().on_execute(node, &ex);
                        }
                        let results = ex.requests().map(|q| r.app.apply(&q.op)).collect();
                        let state = ex.checkpoint.then(|| {
                            let snap = r.app.snapshot();
                            (Digest::of(b"app-digest", &[&snap]), snap)
                        });
                        queue.push_back(r.replica.executed(Executed {
                            seq: ex.seq,
                            results,
                            state,
                        }));
                    }
                    Event::Install { snapshot, .. } => {
                        r.app = App::install(&snapshot);
                        if !faulty {
                            setup.observer.borrow_mut().installs += 1;
                        }
                    }
                    Event::Stable { seq } => {
                        if !faulty {
                            let (s, d) = r.replica.stable();
                            if s == seq {
                                setup.observer.borrow_mut().on_stable(node, seq, d);
                            }
                        }
                    }
                    Event::NewView { view, .. } => {
                        let mut o = setup.observer.borrow_mut();
                        o.max_view = o.max_view.max(view);
                    }
                }
            }
        }
    }
}

/// Sends bytes from `from` to the nodes behind `to`.
pub fn route(
    setup: &Setup,
    from: NodeId,
    from_identity: Option<ReplicaIndex>,
    to: Target,
    bytes: Vec<u8>,
    cx: &mut Context<'_, BftNode>,
) {
    match to {
        Target::Replica(i) => {
            for k in setup.nodes_of(i) {
                if k != from {
                    cx.send(k, bytes.clone());
                }
            }
        }
        Target::AllReplicas => {
            for k in setup.replica_nodes() {
                if k != from && setup.identity[k] != from_identity {
                    cx.send(k, bytes.clone());
                }
            }
        }
        Target::Client(c) => {
            if let Some(k) = setup.client_node(c) {
                cx.send(k, bytes);
            }
        }
    }
}

impl Node for BftNode {
    type Message = Vec<u8>;
    type Persisted = Journal;

    fn on_message(&mut self, cx: &mut Context<'_, Self>, from: NodeId, msg: Vec<u8>) {
        self.boot(cx);
        if std::env::var("BFT_TRACE")
            .ok()
            .and_then(|s| s.parse::<usize>().ok())
            == Some(self.node)
        {
            let d = neuroplex_core::bft::Message::decode(&msg);
            let what = match &d {
                Ok(neuroplex_core::bft::Message::Commit(v)) => {
                    format!("commit {:?}", (v.vote.view, v.vote.seq))
                }
                Ok(neuroplex_core::bft::Message::Prepare(v)) => {
                    format!("prepare {:?}", (v.vote.view, v.vote.seq))
                }
                Ok(neuroplex_core::bft::Message::Status(s, _)) => format!("status {s:?}"),
                Ok(m) => format!("{:?}", m.kind()),
                Err(e) => format!("{e:?}"),
            };
            let desc = match &self.kind {
                Kind::Replica(r) => r.replica.describe(),
                _ => String::new(),
            };
            eprintln!("t={} {from}->{}: {what} | {desc}", cx.now(), self.node);
        }
        match &mut self.kind {
            Kind::Client(c) => {
                let step = c.client.handle(ClientInput::Message {
                    link: from as u64,
                    bytes: msg,
                });
                self.client_step(cx, step);
            }
            Kind::Replica(r) => {
                let extra = r.byz.on_receive(&msg, cx.rng());
                for (to, bytes) in extra {
                    let setup = self.setup.clone();
                    route(&setup, self.node, Some(r.id), to, bytes, cx);
                }
                let Kind::Replica(r) = &mut self.kind else {
                    return;
                };
                let step = r.replica.handle(Input::Message {
                    link: from as u64,
                    bytes: msg,
                });
                self.run(cx, step);
            }
        }
    }

    fn on_timer(&mut self, cx: &mut Context<'_, Self>, timer: u64) {
        self.boot(cx);
        let setup = self.setup.clone();
        match &mut self.kind {
            Kind::Client(c) => {
                if timer & SUBMIT == SUBMIT {
                    let k = (timer & !SUBMIT) as usize;
                    let idx = setup
                        .clients
                        .iter()
                        .position(|x| *x == c.client.id())
                        .expect("client");
                    let op = setup.schedule[idx][k].1.clone();
                    let (ts, step) = c.client.submit(op.clone()).expect("window not full");
                    setup.observer.borrow_mut().on_submit(c.client.id(), ts, op);
                    self.client_step(cx, step);
                } else if let Some(t) = TimerId::from_u64(timer) {
                    let step = c.client.handle(ClientInput::Timer(t));
                    self.client_step(cx, step);
                }
            }
            Kind::Replica(r) => {
                let Some(t) = TimerId::from_u64(timer) else {
                    return;
                };
                if let TimerId::Status(_) = t {
                    let extra = r.byz.on_tick(cx.rng());
                    for (to, bytes) in extra {
                        route(&setup, self.node, Some(r.id), to, bytes, cx);
                    }
                }
                let Kind::Replica(r) = &mut self.kind else {
                    return;
                };
                let step = r.replica.handle(Input::Timer(t));
                self.run(cx, step);
            }
        }
    }
}

/// Reads a seed-count override, a single-seed replay, and the default.
/// `NEUROPLEX_SEEDS_FROM=<s>` starts the range at s (another soak's seeds).
pub fn seeds(default: u64) -> Vec<u64> {
    if let Ok(s) = std::env::var("NEUROPLEX_SEED") {
        return vec![s.trim().parse().expect("NEUROPLEX_SEED is a number")];
    }
    let count = std::env::var("NEUROPLEX_SEEDS")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(default);
    let from: u64 = std::env::var("NEUROPLEX_SEEDS_FROM")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    (from..from.saturating_add(count)).collect()
}
