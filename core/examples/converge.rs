//! Epidemic convergence at scale: 1,000 replicas, 30% message loss, each
//! replica pulling from 3 random peers per round.
//!
//! One update is made at each of 100 random replicas; then rounds run until
//! every replica holds the same state. A round: every replica sends a sync
//! request to 3 random peers, and every message the round causes (requests,
//! answers, acknowledgements) is delivered or lost before the next round.
//! Prints:
//!
//! `converge replicas=1000 loss=0.30 fanout=3 rounds=<r> bound=<b> bytes=<n>`
//!
//! where `rounds` counts rounds after the last update, `bound` is
//! 3·⌈log2 N⌉ and `bytes` is everything sent.
//!
//! Run: `cargo run --release -p neuroplex-core --features sim --example converge`

use neuroplex_core::AWSet;
use neuroplex_core::sim::{LinkConfig, Sim, Topology};
use neuroplex_core::sync::Config;
use neuroplex_core::sync::sim_node::{Gossip, SyncNode, replica_id, wire_size};

const REPLICAS: usize = 1000;
const UPDATES: usize = 100;
const FANOUT: usize = 3;
const LOSS: f64 = 0.30;

fn main() {
    let seed = std::env::var("NEUROPLEX_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let factory = SyncNode::<AWSet<u64>>::factory(Config::default(), Gossip::Pull, 0);
    let mut sim = Sim::new(seed, REPLICAS, factory);
    sim.set_topology(Topology::RandomFanout(FANOUT));
    sim.set_default_link(LinkConfig {
        drop: LOSS,
        ..LinkConfig::reliable(1)
    });
    sim.set_size_fn(wire_size);

    let mut writers: Vec<usize> = (0..REPLICAS).collect();
    sim.rng().shuffle(&mut writers);
    for (i, &w) in writers.iter().take(UPDATES).enumerate() {
        sim.act(w, |node, _| {
            node.mutate(|set, cx| set.add(cx, replica_id(w), i as u64))
        });
    }

    let bound = 3 * (REPLICAS as f64).log2().ceil() as u64;
    let mut rounds = 0u64;
    while !converged(&sim) {
        rounds += 1;
        for r in 0..REPLICAS {
            sim.act(r, |node, cx| node.tick(cx));
        }
        assert!(sim.drain(50_000_000), "a round did not settle");
        if rounds > 100 * bound {
            eprintln!("converge: gave up after {rounds} rounds");
            std::process::exit(1);
        }
    }
    println!(
        "converge replicas={REPLICAS} loss={LOSS:.2} fanout={FANOUT} rounds={rounds} bound={bound} bytes={}",
        sim.stats().bytes
    );
}

fn converged(sim: &Sim<SyncNode<AWSet<u64>>>) -> bool {
    let first = sim.node(0).map(|n| n.replica.state());
    (1..sim.len()).all(|i| sim.node(i).map(|n| n.replica.state()) == first)
}
