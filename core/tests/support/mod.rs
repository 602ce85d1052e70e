//! Test models: how to drive each CRDT with random operations.
//!
//! States for the lattice laws are generated the way real replicas reach
//! them — by running random operations on a few replicas and syncing them at
//! random — because arbitrary structures that no execution can produce (two
//! replicas issuing the same dot for different writes) are outside every
//! CRDT's contract.
#![allow(dead_code)]

use std::fmt::Debug;

use neuroplex_core::{
    AWSet, Causal, CausalContext, CausalCounter, DotStore, EWFlag, GCounter, GSet, Hlc, Lattice,
    LwwRegister, MvRegister, ORMap, PNCounter, ReplicaId,
};
use proptest::prelude::*;
use proptest::test_runner::Config;
use serde::{Serialize, de::DeserializeOwned};

/// At least 256 cases per property (more if PROPTEST_CASES asks).
pub fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(256u32)
        .max(256);
    Config {
        cases,
        ..Config::default()
    }
}

/// What a replica brings to a mutation besides the state: its id and clock.
#[derive(Clone, Debug)]
pub struct Env {
    pub id: ReplicaId,
    pub hlc: Hlc,
    pub now: u64,
}

impl Env {
    pub fn new(i: usize) -> Self {
        let id = ReplicaId::new(0x1000 + i as u64);
        Self {
            id,
            hlc: Hlc::new(id),
            now: 0,
        }
    }
}

/// A CRDT under test.
pub trait Model: Lattice + PartialEq + Debug + Serialize + DeserializeOwned + 'static {
    type Op: Clone + Debug + 'static;
    fn op() -> BoxedStrategy<Self::Op>;
    /// Applies `op` as the replica described by `env`; returns the delta.
    fn act(&mut self, env: &mut Env, op: &Self::Op) -> Self;
}

/// A dot store under test; `Causal<S>` and `ORMap<K, S>` are then models too.
pub trait StoreModel: DotStore + Debug + Serialize + DeserializeOwned + 'static {
    type Op: Clone + Debug + 'static;
    fn op() -> BoxedStrategy<Self::Op>;
    fn mutate_in(&mut self, cx: &mut CausalContext, env: &mut Env, op: &Self::Op) -> Causal<Self>;
}

impl<S: StoreModel> Model for Causal<S> {
    type Op = S::Op;
    fn op() -> BoxedStrategy<Self::Op> {
        S::op()
    }
    fn act(&mut self, env: &mut Env, op: &Self::Op) -> Self {
        self.mutate(|s, cx| s.mutate_in(cx, env, op))
    }
}

// ---- plain lattices ----

impl Model for GCounter {
    type Op = u64;
    fn op() -> BoxedStrategy<u64> {
        (1u64..5).boxed()
    }
    fn act(&mut self, env: &mut Env, op: &u64) -> Self {
        self.increment(env.id, *op)
    }
}

#[derive(Clone, Debug)]
pub enum CounterOp {
    Inc(u64),
    Dec(u64),
}

impl Model for PNCounter {
    type Op = CounterOp;
    fn op() -> BoxedStrategy<CounterOp> {
        prop_oneof![
            (1u64..5).prop_map(CounterOp::Inc),
            (1u64..5).prop_map(CounterOp::Dec)
        ]
        .boxed()
    }
    fn act(&mut self, env: &mut Env, op: &CounterOp) -> Self {
        match op {
            CounterOp::Inc(n) => self.increment(env.id, *n),
            CounterOp::Dec(n) => self.decrement(env.id, *n),
        }
    }
}

impl Model for GSet<u8> {
    type Op = u8;
    fn op() -> BoxedStrategy<u8> {
        (0u8..16).boxed()
    }
    fn act(&mut self, _env: &mut Env, op: &u8) -> Self {
        self.insert(*op)
    }
}

impl Model for LwwRegister<u8> {
    /// (value, how far physical time moves first: 0 makes ties likely)
    type Op = (u8, u64);
    fn op() -> BoxedStrategy<(u8, u64)> {
        (0u8..8, 0u64..3).boxed()
    }
    fn act(&mut self, env: &mut Env, op: &(u8, u64)) -> Self {
        env.now += op.1;
        self.set(&mut env.hlc, env.now, op.0)
    }
}

// ---- dot stores ----

#[derive(Clone, Debug)]
pub enum SetOp {
    Add(u8),
    Remove(u8),
    Clear,
}

impl StoreModel for AWSet<u8> {
    type Op = SetOp;
    fn op() -> BoxedStrategy<SetOp> {
        prop_oneof![
            4 => (0u8..8).prop_map(SetOp::Add),
            3 => (0u8..8).prop_map(SetOp::Remove),
            1 => Just(SetOp::Clear),
        ]
        .boxed()
    }
    fn mutate_in(&mut self, cx: &mut CausalContext, env: &mut Env, op: &SetOp) -> Causal<Self> {
        match op {
            SetOp::Add(x) => self.add(cx, env.id, *x),
            SetOp::Remove(x) => self.remove(x),
            SetOp::Clear => self.clear(),
        }
    }
}

#[derive(Clone, Debug)]
pub enum RegOp {
    Write(u8),
    Clear,
}

impl StoreModel for MvRegister<u8> {
    type Op = RegOp;
    fn op() -> BoxedStrategy<RegOp> {
        prop_oneof![4 => (0u8..8).prop_map(RegOp::Write), 1 => Just(RegOp::Clear)].boxed()
    }
    fn mutate_in(&mut self, cx: &mut CausalContext, env: &mut Env, op: &RegOp) -> Causal<Self> {
        match op {
            RegOp::Write(v) => self.write(cx, env.id, *v),
            RegOp::Clear => self.clear(),
        }
    }
}

impl StoreModel for EWFlag {
    /// true = enable
    type Op = bool;
    fn op() -> BoxedStrategy<bool> {
        any::<bool>().boxed()
    }
    fn mutate_in(&mut self, cx: &mut CausalContext, env: &mut Env, op: &bool) -> Causal<Self> {
        if *op {
            self.enable(cx, env.id)
        } else {
            self.disable()
        }
    }
}

#[derive(Clone, Debug)]
pub enum CcOp {
    Inc(i64),
    Reset,
}

impl StoreModel for CausalCounter {
    type Op = CcOp;
    fn op() -> BoxedStrategy<CcOp> {
        prop_oneof![4 => (-3i64..5).prop_map(CcOp::Inc), 1 => Just(CcOp::Reset)].boxed()
    }
    fn mutate_in(&mut self, cx: &mut CausalContext, env: &mut Env, op: &CcOp) -> Causal<Self> {
        match op {
            CcOp::Inc(n) => self.increment(cx, env.id, *n),
            CcOp::Reset => self.reset(),
        }
    }
}

#[derive(Clone, Debug)]
pub enum MapOp<O> {
    Update(u8, O),
    Remove(u8),
    Clear,
}

impl<V: StoreModel> StoreModel for ORMap<u8, V> {
    type Op = MapOp<V::Op>;
    fn op() -> BoxedStrategy<Self::Op> {
        prop_oneof![
            6 => ((0u8..4), V::op()).prop_map(|(k, o)| MapOp::Update(k, o)),
            2 => (0u8..4).prop_map(MapOp::Remove),
            1 => Just(MapOp::Clear),
        ]
        .boxed()
    }
    fn mutate_in(&mut self, cx: &mut CausalContext, env: &mut Env, op: &Self::Op) -> Causal<Self> {
        match op {
            MapOp::Update(k, o) => self.apply(cx, *k, |v, cx| v.mutate_in(cx, env, o)),
            MapOp::Remove(k) => self.remove(k),
            MapOp::Clear => self.clear(),
        }
    }
}

// ---- histories ----

/// One step of a random execution on a few replicas.
#[derive(Clone, Debug)]
pub enum Step<O> {
    /// Replica `at` performs an operation.
    Op { at: usize, op: O },
    /// Replica `to` joins the full state of replica `from`.
    Sync { from: usize, to: usize },
}

pub const REPLICAS: usize = 3;

pub fn steps<M: Model>(max: usize) -> impl Strategy<Value = Vec<Step<M::Op>>> {
    let step = prop_oneof![
        3 => (0..REPLICAS, M::op()).prop_map(|(at, op)| Step::Op { at, op }),
        1 => (0..REPLICAS, 0..REPLICAS).prop_map(|(from, to)| Step::Sync { from, to }),
    ];
    prop::collection::vec(step, 0..max)
}

/// Replicas after a history, with their environments, plus every delta
/// produced.
pub struct World<M: Model> {
    pub states: Vec<M>,
    pub envs: Vec<Env>,
    pub deltas: Vec<M>,
}

pub fn run<M: Model>(steps: &[Step<M::Op>]) -> World<M> {
    let mut states: Vec<M> = (0..REPLICAS).map(|_| M::default()).collect();
    let mut envs: Vec<Env> = (0..REPLICAS).map(Env::new).collect();
    let mut deltas = Vec::new();
    for s in steps {
        match s {
            Step::Op { at, op } => deltas.push(states[*at].act(&mut envs[*at], op)),
            Step::Sync { from, to } => {
                let src = states[*from].clone();
                states[*to].join(src);
            }
        }
    }
    World {
        states,
        envs,
        deltas,
    }
}

pub fn join<M: Model>(a: &M, b: &M) -> M {
    a.clone().joined(b.clone())
}
