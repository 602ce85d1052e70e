//! A deterministic network simulator for sans-IO state machines (feature
//! `sim`).
//!
//! N nodes exchange messages of any type over a simulated network with
//! virtual time. Everything random — delays, losses, duplicates, gossip
//! targets — comes from one seeded PRNG, and events at the same instant are
//! ordered by a sequence number, so a seed replays the same run exactly.
//!
//! What the network can do to a message, per link: drop it, duplicate it,
//! delay it (uniformly between a minimum and a maximum, plus an occasional
//! extra delay that reorders it behind later messages). Partitions split the
//! nodes into groups that cannot talk until healed. Nodes crash and restart:
//! a node keeps only what it wrote to its disk with [`Context::persist`], and
//! the restart factory rebuilds it from exactly that. Timers and messages
//! addressed to a crashed incarnation are discarded.
//!
//! Byzantine behaviour is modelled by the nodes themselves (a node type can be
//! an enum of honest and faulty variants); the simulator is the adversary's
//! scheduler only through its seeded randomness.

mod rng;

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BinaryHeap};
use alloc::vec::Vec;
use core::cmp::{Ordering, Reverse};

pub use rng::Rng;

/// Index of a node in the simulation.
pub type NodeId = usize;

/// Virtual time, in milliseconds.
pub type Time = u64;

/// A state machine the simulator can run.
pub trait Node {
    /// What nodes send each other.
    type Message: Clone;
    /// What a node keeps across a crash (written with [`Context::persist`]).
    type Persisted: Clone;

    /// A message arrived from `from`.
    fn on_message(&mut self, cx: &mut Context<'_, Self>, from: NodeId, msg: Self::Message)
    where
        Self: Sized;

    /// A timer set with [`Context::set_timer`] fired.
    fn on_timer(&mut self, cx: &mut Context<'_, Self>, timer: u64)
    where
        Self: Sized;

    /// The node was just created or restarted (arm timers here).
    fn on_start(&mut self, _cx: &mut Context<'_, Self>)
    where
        Self: Sized,
    {
    }
}

/// How a link treats messages.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinkConfig {
    /// Probability a message is lost.
    pub drop: f64,
    /// Probability a message is delivered twice.
    pub duplicate: f64,
    /// Smallest delay.
    pub delay_min: Time,
    /// Largest (ordinary) delay.
    pub delay_max: Time,
    /// Probability a message gets an extra delay of up to
    /// `4 × delay_max`, overtaking nothing and overtaken by later messages.
    pub reorder: f64,
}

impl LinkConfig {
    /// A perfect link with a fixed delay.
    pub const fn reliable(delay: Time) -> Self {
        Self {
            drop: 0.0,
            duplicate: 0.0,
            delay_min: delay,
            delay_max: delay,
            reorder: 0.0,
        }
    }

    /// A bad link: `drop` loss, 5% duplicates, 10% reordering, 1–50 ms.
    pub const fn lossy(drop: f64) -> Self {
        Self {
            drop,
            duplicate: 0.05,
            delay_min: 1,
            delay_max: 50,
            reorder: 0.1,
        }
    }
}

/// Whom a node gossips to ([`Context::gossip_targets`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Topology {
    /// Every other node.
    FullMesh,
    /// `k` distinct other nodes, drawn afresh at every call.
    RandomFanout(usize),
    /// A fixed neighbour list per node.
    Fixed(Vec<Vec<NodeId>>),
}

/// Counters over a whole run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Messages handed to the network (duplicates not counted).
    pub sent: u64,
    /// Messages delivered to a live node (duplicates counted).
    pub delivered: u64,
    /// Messages lost to drop probability, partitions or a crashed receiver.
    pub dropped: u64,
    /// Extra copies made by duplication.
    pub duplicated: u64,
    /// Bytes handed to the network, as measured by the size function.
    pub bytes: u64,
}

/// What a node may do while handling an event.
pub struct Context<'a, N: Node> {
    now: Time,
    me: NodeId,
    n: usize,
    rng: &'a mut Rng,
    topology: &'a Topology,
    outbox: &'a mut Vec<(NodeId, N::Message)>,
    timers: &'a mut Vec<(Time, u64)>,
    disk: &'a mut Option<N::Persisted>,
}

impl<N: Node> Context<'_, N> {
    /// Virtual time now.
    pub fn now(&self) -> Time {
        self.now
    }

    /// This node.
    pub fn me(&self) -> NodeId {
        self.me
    }

    /// Number of nodes in the simulation.
    pub fn nodes(&self) -> usize {
        self.n
    }

    /// The simulation's randomness (seeded; use it for anything a real
    /// shell would draw from the OS).
    pub fn rng(&mut self) -> &mut Rng {
        self.rng
    }

    /// Sends `msg` to `to` (through the simulated network).
    pub fn send(&mut self, to: NodeId, msg: N::Message) {
        self.outbox.push((to, msg));
    }

    /// Fires [`Node::on_timer`] with `timer` after `delay`.
    pub fn set_timer(&mut self, delay: Time, timer: u64) {
        self.timers.push((delay, timer));
    }

    /// Writes `state` to this node's disk; it replaces what was there and
    /// is all the node gets back after a crash.
    pub fn persist(&mut self, state: N::Persisted) {
        *self.disk = Some(state);
    }

    /// What is on this node's disk.
    pub fn disk(&self) -> Option<&N::Persisted> {
        self.disk.as_ref()
    }

    /// The nodes to gossip to now, per the simulation's topology.
    pub fn gossip_targets(&mut self) -> Vec<NodeId> {
        match self.topology {
            Topology::FullMesh => (0..self.n).filter(|&i| i != self.me).collect(),
            Topology::Fixed(lists) => lists.get(self.me).cloned().unwrap_or_default(),
            Topology::RandomFanout(k) => {
                let k = (*k).min(self.n.saturating_sub(1));
                let mut out = Vec::with_capacity(k);
                while out.len() < k {
                    let pick = self.rng.below(self.n as u64) as NodeId;
                    if pick != self.me && !out.contains(&pick) {
                        out.push(pick);
                    }
                }
                out
            }
        }
    }
}

enum EventKind<M> {
    Deliver {
        from: NodeId,
        to: NodeId,
        msg: M,
    },
    Timer {
        node: NodeId,
        incarnation: u32,
        timer: u64,
    },
}

struct Event<M> {
    at: Time,
    seq: u64,
    kind: EventKind<M>,
}

impl<M> PartialEq for Event<M> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl<M> Eq for Event<M> {}
impl<M> PartialOrd for Event<M> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<M> Ord for Event<M> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// Builds a node from what its disk holds (`None` on first start).
pub type Factory<N> = Box<dyn FnMut(NodeId, Option<<N as Node>::Persisted>, &mut Rng) -> N>;

/// Measures a message for [`Stats::bytes`].
pub type SizeFn<M> = fn(&M) -> usize;

/// The simulation.
pub struct Sim<N: Node> {
    seed: u64,
    rng: Rng,
    now: Time,
    seq: u64,
    nodes: Vec<Option<N>>,
    disks: Vec<Option<N::Persisted>>,
    incarnations: Vec<u32>,
    queue: BinaryHeap<Reverse<Event<N::Message>>>,
    default_link: LinkConfig,
    links: BTreeMap<(NodeId, NodeId), LinkConfig>,
    groups: Option<Vec<u32>>,
    topology: Topology,
    factory: Factory<N>,
    size_of: Option<SizeFn<N::Message>>,
    stats: Stats,
    last: Option<NodeId>,
}

impl<N: Node> Sim<N> {
    /// `n` nodes built by `factory`, reliable 1 ms links, full mesh.
    pub fn new(seed: u64, n: usize, mut factory: Factory<N>) -> Self {
        let mut rng = Rng::new(seed);
        let nodes = (0..n).map(|i| Some(factory(i, None, &mut rng))).collect();
        let mut sim = Self {
            seed,
            rng,
            now: 0,
            seq: 0,
            nodes,
            disks: (0..n).map(|_| None).collect(),
            incarnations: alloc::vec![0; n],
            queue: BinaryHeap::new(),
            default_link: LinkConfig::reliable(1),
            links: BTreeMap::new(),
            groups: None,
            topology: Topology::FullMesh,
            factory,
            size_of: None,
            stats: Stats::default(),
            last: None,
        };
        for i in 0..n {
            sim.act(i, |node, cx| node.on_start(cx));
        }
        sim
    }

    /// The seed this run was built from.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Virtual time now.
    pub fn now(&self) -> Time {
        self.now
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True if there are no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Counters so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The simulation's randomness, for the test driving it.
    pub fn rng(&mut self) -> &mut Rng {
        &mut self.rng
    }

    /// Sets how messages are measured for [`Stats::bytes`].
    pub fn set_size_fn(&mut self, f: SizeFn<N::Message>) {
        self.size_of = Some(f);
    }

    /// Sets the configuration of every link without its own.
    pub fn set_default_link(&mut self, link: LinkConfig) {
        self.default_link = link;
    }

    /// Sets the configuration of the directed link `from → to`.
    pub fn set_link(&mut self, from: NodeId, to: NodeId, link: LinkConfig) {
        self.links.insert((from, to), link);
    }

    /// Sets the gossip topology.
    pub fn set_topology(&mut self, topology: Topology) {
        self.topology = topology;
    }

    /// Splits the nodes: a message crosses only between nodes of the same
    /// group. Nodes not listed form one more group together.
    pub fn partition(&mut self, groups: &[&[NodeId]]) {
        let mut g = alloc::vec![u32::MAX; self.nodes.len()];
        for (i, group) in groups.iter().enumerate() {
            for &n in *group {
                if n < g.len() {
                    g[n] = i as u32;
                }
            }
        }
        self.groups = Some(g);
    }

    /// Removes the partition.
    pub fn heal(&mut self) {
        self.groups = None;
    }

    /// True if `node` is running.
    pub fn is_up(&self, node: NodeId) -> bool {
        self.nodes.get(node).is_some_and(Option::is_some)
    }

    /// Crashes `node`: its memory is lost, its disk kept, and everything in
    /// flight to it or timed for it is discarded.
    pub fn crash(&mut self, node: NodeId) {
        if let Some(slot) = self.nodes.get_mut(node) {
            *slot = None;
            self.incarnations[node] += 1;
        }
    }

    /// Restarts a crashed `node` from its disk.
    pub fn restart(&mut self, node: NodeId) {
        if node < self.nodes.len() && self.nodes[node].is_none() {
            let disk = self.disks[node].clone();
            self.nodes[node] = Some((self.factory)(node, disk, &mut self.rng));
            self.act(node, |n, cx| n.on_start(cx));
        }
    }

    /// The running node `id`, to read its state.
    pub fn node(&self, id: NodeId) -> Option<&N> {
        self.nodes.get(id).and_then(Option::as_ref)
    }

    /// What `id` has on disk.
    pub fn disk(&self, id: NodeId) -> Option<&N::Persisted> {
        self.disks.get(id).and_then(Option::as_ref)
    }

    /// Runs `f` on node `id` (if up) with a context, as an application
    /// action at the current time (a local edit, a tick). Returns its result.
    pub fn act<R>(
        &mut self,
        id: NodeId,
        f: impl FnOnce(&mut N, &mut Context<'_, N>) -> R,
    ) -> Option<R> {
        let mut node = self.nodes.get_mut(id)?.take()?;
        let r = self.with_context(id, |cx| f(&mut node, cx));
        self.nodes[id] = Some(node);
        Some(r)
    }

    fn with_context<R>(&mut self, id: NodeId, f: impl FnOnce(&mut Context<'_, N>) -> R) -> R {
        let mut outbox = Vec::new();
        let mut timers = Vec::new();
        let n = self.nodes.len();
        let r = {
            let mut cx = Context {
                now: self.now,
                me: id,
                n,
                rng: &mut self.rng,
                topology: &self.topology,
                outbox: &mut outbox,
                timers: &mut timers,
                disk: &mut self.disks[id],
            };
            f(&mut cx)
        };
        for (to, msg) in outbox {
            self.transmit(id, to, msg);
        }
        for (delay, timer) in timers {
            let at = self.now + delay;
            let incarnation = self.incarnations[id];
            self.push(
                at,
                EventKind::Timer {
                    node: id,
                    incarnation,
                    timer,
                },
            );
        }
        r
    }

    fn push(&mut self, at: Time, kind: EventKind<N::Message>) {
        self.seq += 1;
        self.queue.push(Reverse(Event {
            at,
            seq: self.seq,
            kind,
        }));
    }

    fn transmit(&mut self, from: NodeId, to: NodeId, msg: N::Message) {
        self.stats.sent += 1;
        if let Some(size) = self.size_of {
            self.stats.bytes += size(&msg) as u64;
        }
        if to >= self.nodes.len() {
            self.stats.dropped += 1;
            return;
        }
        let link = *self.links.get(&(from, to)).unwrap_or(&self.default_link);
        if self.rng.chance(link.drop) {
            self.stats.dropped += 1;
            return;
        }
        let copies = if self.rng.chance(link.duplicate) {
            self.stats.duplicated += 1;
            2
        } else {
            1
        };
        if copies == 2 {
            let delay = self.delay(&link);
            let copy = msg.clone();
            self.push(
                self.now + delay,
                EventKind::Deliver {
                    from,
                    to,
                    msg: copy,
                },
            );
        }
        let delay = self.delay(&link);
        self.push(self.now + delay, EventKind::Deliver { from, to, msg });
    }

    fn delay(&mut self, link: &LinkConfig) -> Time {
        let mut delay = self
            .rng
            .range(link.delay_min, link.delay_max.max(link.delay_min));
        if self.rng.chance(link.reorder) {
            delay += self.rng.range(0, 4 * link.delay_max.max(1));
        }
        delay
    }

    /// Processes the next event. Returns false if none is queued.
    pub fn step(&mut self) -> bool {
        let Some(Reverse(ev)) = self.queue.pop() else {
            return false;
        };
        self.now = self.now.max(ev.at);
        self.last = None;
        match ev.kind {
            EventKind::Deliver { from, to, msg } => {
                let cut = self
                    .groups
                    .as_ref()
                    .is_some_and(|g| g.get(from) != g.get(to));
                if cut || !self.is_up(to) {
                    self.stats.dropped += 1;
                    return true;
                }
                self.stats.delivered += 1;
                self.last = Some(to);
                self.act(to, |node, cx| node.on_message(cx, from, msg));
            }
            EventKind::Timer {
                node,
                incarnation,
                timer,
            } => {
                if self.incarnations[node] == incarnation {
                    self.last = Some(node);
                    self.act(node, |n, cx| n.on_timer(cx, timer));
                }
            }
        }
        true
    }

    /// Processes events up to and including time `t`, then sets the clock
    /// to `t`.
    pub fn run_until(&mut self, t: Time) {
        while let Some(Reverse(ev)) = self.queue.peek() {
            if ev.at > t {
                break;
            }
            self.step();
        }
        self.now = self.now.max(t);
    }

    /// Processes every queued event, whatever its time, including the ones
    /// they cause, up to `limit` events. Returns false if the limit was hit.
    pub fn drain(&mut self, limit: u64) -> bool {
        for _ in 0..limit {
            if !self.step() {
                return true;
            }
        }
        self.queue.is_empty()
    }

    /// The node the last [`step`](Self::step) ran (None if the event was
    /// discarded).
    pub fn last_node(&self) -> Option<NodeId> {
        self.last
    }

    /// Mutable access to running node `id` (for test instrumentation; use
    /// [`act`](Self::act) for anything that may send).
    pub fn node_mut(&mut self, id: NodeId) -> Option<&mut N> {
        self.nodes.get_mut(id).and_then(Option::as_mut)
    }

    /// Time of the next queued event.
    pub fn next_event_at(&self) -> Option<Time> {
        self.queue.peek().map(|Reverse(e)| e.at)
    }

    /// When the next queued event happens, if any (lets a driver interleave
    /// its own actions between events without skipping over them).
    pub fn peek_time(&self) -> Option<Time> {
        self.queue.peek().map(|Reverse(ev)| ev.at)
    }

    /// Number of queued events.
    pub fn pending(&self) -> usize {
        self.queue.len()
    }
}
