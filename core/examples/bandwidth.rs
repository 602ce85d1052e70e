//! Bytes on the wire: delta sync against full-state sync.
//!
//! Prints two lines:
//!
//! `bandwidth case=small-update delta_bytes=<n> full_bytes=<m> ratio=<n/m>`
//! — one small update (an add) to a 100,000-element AWSet replicated at two
//! replicas: what delta sync sends (the interval and its acknowledgement)
//! against sending the whole state (the same message framing and
//! compression).
//!
//! `bandwidth case=steady delta_bytes=<n> full_bytes=<m> ratio=<n/m>` — ten
//! replicas in a full mesh make 10,000 random updates in total (adds and
//! removes on one AWSet of up to 10,000 elements, and counter increments).
//! Each replica sends to every other after every 10 of its own updates:
//! delta sync ships its unacknowledged interval, full-state gossip ships its
//! whole state; then both run until all replicas are equal. Both runs see the
//! same updates in the same order.
//!
//! Run: `cargo run --release -p neuroplex-core --features sim --example bandwidth`

use neuroplex_core::document::{Atom, DocStore, Document, apply_in};
use neuroplex_core::sim::{LinkConfig, Rng, Sim, Topology};
use neuroplex_core::sync::sim_node::{Gossip, SyncNode, replica_id, wire_size};
use neuroplex_core::sync::{Config, Message, Payload};
use neuroplex_core::{AWSet, Causal, Lattice};

fn main() {
    small_update();
    steady();
}

fn full_state_bytes<S: serde::Serialize>(state: &Causal<S>, config: &Config) -> usize {
    let msg = Message::Delta {
        session: u64::MAX,
        from: 0,
        to: u64::MAX,
        answer: None,
        payload: Payload::seal(state, config),
    };
    let ack = Message::Ack {
        session: u64::MAX,
        to: u64::MAX,
        seen: state.context().vector_clock().clone(),
    };
    msg.encode().len() + ack.encode().len()
}

fn small_update() {
    let config = Config::default();
    let mut sim = Sim::new(
        7,
        2,
        SyncNode::<AWSet<u64>>::factory(config, Gossip::Push, 0),
    );
    sim.set_topology(Topology::FullMesh);
    sim.set_size_fn(wire_size);
    sim.act(0, |n, _| {
        for x in 0..100_000u64 {
            n.mutate(|s, cx| s.add(cx, replica_id(0), x));
        }
    });
    // Replicate, then let B push once too so both sides know each other.
    for _ in 0..3 {
        for r in 0..2 {
            sim.act(r, |n, cx| n.tick(cx));
            sim.drain(1_000_000);
        }
    }
    assert!(same(&sim), "initial replication failed");

    let before = sim.stats().bytes;
    sim.act(0, |n, _| {
        n.mutate(|s, cx| s.add(cx, replica_id(0), 1_000_000));
    });
    sim.act(0, |n, cx| n.tick(cx));
    sim.drain(1_000);
    assert!(same(&sim), "the update did not arrive");
    let delta_bytes = sim.stats().bytes - before;
    let full_bytes = full_state_bytes(sim.node(0).unwrap().replica.state(), &config);
    print_line("small-update", delta_bytes, full_bytes as u64);
}

fn same<S>(sim: &Sim<SyncNode<S>>) -> bool
where
    S: neuroplex_core::DotStore + serde::Serialize + for<'de> serde::Deserialize<'de> + 'static,
{
    let first = sim.node(0).map(|n| n.replica.state());
    (1..sim.len()).all(|i| sim.node(i).map(|n| n.replica.state()) == first)
}

const REPLICAS: usize = 10;
const UPDATES: usize = 10_000;
const ELEMENTS: u64 = 10_000;

#[derive(Clone, Copy)]
enum Update {
    Add(u64),
    Remove(u64),
    Count,
}

fn apply(
    doc_map: &mut DocStore,
    cx: &mut neuroplex_core::CausalContext,
    r: usize,
    u: Update,
) -> Document {
    let id = replica_id(r);
    match u {
        Update::Add(x) => apply_in(doc_map, cx, &["set".into()], |v, cx| {
            v.set_add(cx, id, Atom::Int(x as i64))
        }),
        Update::Remove(x) => apply_in(doc_map, cx, &["set".into()], |v, _| {
            v.set_remove(&Atom::Int(x as i64))
        }),
        Update::Count => apply_in(doc_map, cx, &["count".into()], |v, cx| {
            v.counter_add(cx, id, 1)
        }),
    }
}

fn workload() -> Vec<(usize, Update)> {
    let mut rng = Rng::new(42);
    (0..UPDATES)
        .map(|_| {
            let r = rng.below(REPLICAS as u64) as usize;
            let u = match rng.below(10) {
                0..=5 => Update::Add(rng.below(ELEMENTS)),
                6..=8 => Update::Remove(rng.below(ELEMENTS)),
                _ => Update::Count,
            };
            (r, u)
        })
        .collect()
}

fn steady() {
    let updates = workload();
    let config = Config::default();

    // Delta sync, through the simulator on reliable links.
    let mut sim = Sim::new(
        11,
        REPLICAS,
        SyncNode::<DocStore>::factory(config, Gossip::Push, 0),
    );
    sim.set_topology(Topology::FullMesh);
    sim.set_default_link(LinkConfig::reliable(1));
    sim.set_size_fn(wire_size);
    let mut own = [0usize; REPLICAS];
    for &(r, u) in &updates {
        sim.act(r, |n, _| {
            n.mutate(|m, cx| apply(m, cx, r, u));
        });
        own[r] += 1;
        if own[r] % 10 == 0 {
            sim.act(r, |n, cx| n.tick(cx));
            sim.drain(10_000_000);
        }
    }
    let mut rounds = 0;
    while !same(&sim) {
        for r in 0..REPLICAS {
            sim.act(r, |n, cx| n.tick(cx));
            sim.drain(10_000_000);
        }
        rounds += 1;
        assert!(rounds < 100, "delta sync did not converge");
    }
    let delta_bytes = sim.stats().bytes;
    let delta_final = sim.node(0).unwrap().replica.state().clone();

    // Full-state gossip, same updates, same sending schedule.
    let mut states: Vec<Document> = vec![Causal::new(); REPLICAS];
    let mut full_bytes = 0u64;
    let send_all = |states: &mut Vec<Document>, r: usize, bytes: &mut u64| {
        let snapshot = states[r].clone();
        let size = full_state_bytes(&snapshot, &config) as u64;
        for (j, s) in states.iter_mut().enumerate() {
            if j != r {
                *bytes += size;
                s.join(snapshot.clone());
            }
        }
    };
    let mut own = [0usize; REPLICAS];
    for &(r, u) in &updates {
        states[r].mutate(|m, cx| apply(m, cx, r, u));
        own[r] += 1;
        if own[r] % 10 == 0 {
            send_all(&mut states, r, &mut full_bytes);
        }
    }
    let mut rounds = 0;
    while states.iter().any(|s| *s != states[0]) {
        for r in 0..REPLICAS {
            send_all(&mut states, r, &mut full_bytes);
        }
        rounds += 1;
        assert!(rounds < 100, "full-state gossip did not converge");
    }
    assert_eq!(states[0], delta_final, "the two methods disagree");
    print_line("steady", delta_bytes, full_bytes);
}

fn print_line(case: &str, delta: u64, full: u64) {
    println!(
        "bandwidth case={case} delta_bytes={delta} full_bytes={full} ratio={:.4}",
        delta as f64 / full as f64
    );
}
