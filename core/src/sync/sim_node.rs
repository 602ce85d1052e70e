//! A sync replica as a node of the simulator (feature `sim`).

use alloc::boxed::Box;

use serde::{Deserialize, Serialize};

use super::{Config, Message, Outgoing, PeerId, Replica};
use crate::clock::ReplicaId;
use crate::crdt::{Causal, DotStore, Lattice};
use crate::sim::{Context, Factory, Node, NodeId, Time};

/// How a node gossips on its timer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gossip {
    /// Send unacknowledged deltas ([`Replica::push`]).
    Push,
    /// Ask for what is missing ([`Replica::pull`]).
    Pull,
    /// Both, alternating.
    PushPull,
}

/// A [`Replica`] driven by the simulator: it gossips to its topology's
/// targets every `period` ms, persists before it sends, and restarts from
/// its disk with a fresh session.
///
/// The disk holds the join of every `persist` the replica produced: its own
/// changes, which is all a restart needs (what it had received is fetched
/// again from its neighbours).
pub struct SyncNode<S: DotStore> {
    /// The replica.
    pub replica: Replica<S>,
    /// What the timer does.
    pub gossip: Gossip,
    /// Gossip period (0: no timer; the test drives [`SyncNode::tick`]).
    pub period: Time,
    /// Messages refused with an error (should stay 0 between honest nodes).
    pub refused: u64,
    /// Local changes made in this incarnation.
    pub local_changes: u64,
    /// How many of them were on disk at the last persist.
    pub persisted_changes: u64,
    ticks: u64,
}

/// The replica id of simulation node `node`.
pub fn replica_id(node: NodeId) -> ReplicaId {
    ReplicaId::new(0x1000 + node as u64)
}

impl<S> SyncNode<S>
where
    S: DotStore + Serialize + for<'de> Deserialize<'de> + 'static,
{
    /// A factory for the simulator: fresh replicas, or restored from disk.
    pub fn factory(config: Config, gossip: Gossip, period: Time) -> Factory<Self> {
        Box::new(move |node, disk, rng| {
            let session = rng.next_u64();
            let id = replica_id(node);
            let replica = match disk {
                Some(state) => Replica::restore(id, session, state, config),
                None => Replica::new(id, session, config),
            };
            SyncNode {
                replica,
                gossip,
                period,
                refused: 0,
                local_changes: 0,
                persisted_changes: 0,
                ticks: 0,
            }
        })
    }

    /// A local change (counted, so a test can tell which were persisted).
    pub fn mutate<F>(&mut self, f: F) -> Causal<S>
    where
        F: FnOnce(&mut S, &mut crate::clock::CausalContext) -> Causal<S>,
    {
        self.local_changes += 1;
        self.replica.mutate(f)
    }

    /// One gossip step towards the topology's targets.
    pub fn tick(&mut self, cx: &mut Context<'_, Self>) {
        let targets: alloc::vec::Vec<PeerId> = cx
            .gossip_targets()
            .into_iter()
            .map(|n| n as PeerId)
            .collect();
        self.ticks += 1;
        let pull = match self.gossip {
            Gossip::Push => false,
            Gossip::Pull => true,
            Gossip::PushPull => self.ticks % 2 == 0,
        };
        let out = if pull {
            self.replica.pull(&targets)
        } else {
            self.replica.push(&targets)
        };
        self.emit(cx, out);
    }

    /// Persists, then sends.
    fn emit(&mut self, cx: &mut Context<'_, Self>, out: Outgoing<S>) {
        if let Some(change) = out.persist {
            self.persisted_changes = self.local_changes;
            let mut disk: Causal<S> = cx.disk().cloned().unwrap_or_default();
            disk.join(change);
            cx.persist(disk);
        }
        for (to, msg) in out.messages {
            cx.send(to as NodeId, msg);
        }
    }
}

impl<S> Node for SyncNode<S>
where
    S: DotStore + Serialize + for<'de> Deserialize<'de> + 'static,
{
    type Message = Message;
    type Persisted = Causal<S>;

    fn on_message(&mut self, cx: &mut Context<'_, Self>, from: NodeId, msg: Message) {
        match self.replica.receive(from as PeerId, msg) {
            Ok(out) => self.emit(cx, out),
            Err(_) => self.refused += 1,
        }
    }

    fn on_timer(&mut self, cx: &mut Context<'_, Self>, _timer: u64) {
        self.tick(cx);
        cx.set_timer(self.period, 0);
    }

    fn on_start(&mut self, cx: &mut Context<'_, Self>) {
        if self.period > 0 {
            // Spread the first ticks so nodes do not gossip in lockstep.
            let first = cx.rng().range(1, self.period);
            cx.set_timer(first, 0);
        }
    }
}

/// Bytes a message takes on the wire (for the simulator's counters).
pub fn wire_size(msg: &Message) -> usize {
    msg.encode().len()
}
