//! neuroplex-core against the `crdts` crate (7.3) on identical workloads.
//!
//! Four groups, each with a `neuroplex` and a `crdts` function; the mean of
//! each is read from `target/criterion/<group>/<function>/new/estimates.json`
//! (see `scripts/bench-ratios.sh` and `docs/BENCHMARKS.md`).
//!
//! - `awset_add`: 100,000 adds of distinct `u64`s by one replica.
//! - `awset_merge`: join of two replicas of 50,000 (disjoint, interleaved)
//!   elements each, after each removed 1,000 of its own elements; the two
//!   never synced before. Only the join is timed.
//! - `pncounter_inc`: 1,000,000 increments by one replica.
//! - `ormap_update`: 10,000 keys, each holding a counter incremented 10
//!   times (100,000 updates, round-robin over the keys).
//!
//! Every input is built in the untimed setup of `iter_batched`, and every
//! timed routine returns its final state so that dropping it is not timed
//! either. Before timing, each group runs its workload once on both sides and
//! checks that they end in the same observable state.

use std::hint::black_box;
use std::time::Duration;

use crdts::{CmRDT, CvRDT};
use criterion::{BatchSize, BenchmarkGroup, Criterion, criterion_group, criterion_main};
use criterion::{SamplingMode, measurement::WallTime};
use neuroplex_core::{AWSet, Causal, CausalCounter, Lattice, ORMap, PNCounter, ReplicaId};

const AWSET_ADDS: u64 = 100_000;
const MERGE_SIDE: u64 = 50_000;
const MERGE_REMOVES: u64 = 1_000;
const PN_INCS: u64 = 1_000_000;
const ORMAP_KEYS: u64 = 10_000;
const ORMAP_ROUNDS: u64 = 10;

/// Neuroplex replica ids and crdts actors for the two replicas.
const NP_A: ReplicaId = ReplicaId::new(1);
const NP_B: ReplicaId = ReplicaId::new(2);
const CR_A: u64 = 1;
const CR_B: u64 = 2;

type NpSet = Causal<AWSet<u64>>;
type CrSet = crdts::Orswot<u64, u64>;
type NpMap = Causal<ORMap<u64, CausalCounter>>;
type CrMap = crdts::Map<u64, crdts::GCounter<u64>, u64>;

fn configure(group: &mut BenchmarkGroup<'_, WallTime>) {
    // Every routine runs for milliseconds, so ten samples of a flat iteration
    // count are plenty and keep the whole run within a few minutes on two
    // shared cores.
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
}

// ---------------------------------------------------------------- awset_add

fn np_awset_add(mut set: NpSet) -> NpSet {
    for x in 0..AWSET_ADDS {
        black_box(set.add(NP_A, x));
    }
    set
}

fn cr_awset_add(mut set: CrSet) -> CrSet {
    for x in 0..AWSET_ADDS {
        let op = set.add(x, set.read_ctx().derive_add_ctx(CR_A));
        set.apply(op);
    }
    set
}

fn awset_add(c: &mut Criterion) {
    {
        let np = np_awset_add(NpSet::new());
        let cr = cr_awset_add(CrSet::new());
        assert_eq!(np.store().len(), AWSET_ADDS as usize);
        assert_eq!(cr.read().val.len(), AWSET_ADDS as usize);
    }
    let mut group = c.benchmark_group("awset_add");
    configure(&mut group);
    group.bench_function("neuroplex", |b| {
        b.iter_batched(NpSet::new, np_awset_add, BatchSize::LargeInput)
    });
    group.bench_function("crdts", |b| {
        b.iter_batched(CrSet::new, cr_awset_add, BatchSize::LargeInput)
    });
    group.finish();
}

// -------------------------------------------------------------- awset_merge

/// The elements of replica `side` (0 or 1): disjoint and interleaved.
fn merge_elements(side: u64) -> impl Iterator<Item = u64> {
    (0..MERGE_SIDE).map(move |i| 2 * i + side)
}

/// The elements replica `side` removes: every 50th of its own.
fn merge_removed(side: u64) -> impl Iterator<Item = u64> {
    let step = MERGE_SIDE / MERGE_REMOVES;
    merge_elements(side).step_by(step as usize)
}

fn np_merge_replica(side: u64, id: ReplicaId) -> NpSet {
    let mut set = NpSet::new();
    for x in merge_elements(side) {
        set.add(id, x);
    }
    for x in merge_removed(side) {
        set.remove(&x);
    }
    set
}

fn cr_merge_replica(side: u64, actor: u64) -> CrSet {
    let mut set = CrSet::new();
    for x in merge_elements(side) {
        let op = set.add(x, set.read_ctx().derive_add_ctx(actor));
        set.apply(op);
    }
    for x in merge_removed(side) {
        let op = set.rm(x, set.contains(&x).derive_rm_ctx());
        set.apply(op);
    }
    set
}

fn awset_merge(c: &mut Criterion) {
    let np = (np_merge_replica(0, NP_A), np_merge_replica(1, NP_B));
    let cr = (cr_merge_replica(0, CR_A), cr_merge_replica(1, CR_B));
    {
        let side = (MERGE_SIDE - MERGE_REMOVES) as usize;
        assert_eq!((np.0.store().len(), np.1.store().len()), (side, side));
        assert_eq!((cr.0.read().val.len(), cr.1.read().val.len()), (side, side));
        let np_joined = np.0.clone().joined(np.1.clone());
        let mut cr_joined = cr.0.clone();
        cr_joined.merge(cr.1.clone());
        let mut cr_elems: Vec<u64> = cr_joined.read().val.into_iter().collect();
        cr_elems.sort_unstable();
        assert_eq!(
            np_joined.store().iter().copied().collect::<Vec<_>>(),
            cr_elems
        );
        assert_eq!(cr_elems.len(), 2 * side);
    }
    let mut group = c.benchmark_group("awset_merge");
    configure(&mut group);
    group.bench_function("neuroplex", |b| {
        b.iter_batched(
            || np.clone(),
            |(mut a, b)| {
                Lattice::join(&mut a, b);
                a
            },
            BatchSize::PerIteration,
        )
    });
    group.bench_function("crdts", |b| {
        b.iter_batched(
            || cr.clone(),
            |(mut a, b)| {
                CvRDT::merge(&mut a, b);
                a
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

// ------------------------------------------------------------ pncounter_inc

fn np_pncounter_inc(mut c: PNCounter) -> PNCounter {
    for _ in 0..PN_INCS {
        black_box(c.increment(NP_A, 1));
    }
    c
}

fn cr_pncounter_inc(mut c: crdts::PNCounter<u64>) -> crdts::PNCounter<u64> {
    for _ in 0..PN_INCS {
        let op = c.inc(CR_A);
        c.apply(op);
    }
    c
}

fn pncounter_inc(c: &mut Criterion) {
    assert_eq!(np_pncounter_inc(PNCounter::new()).value(), PN_INCS as i64);
    assert_eq!(
        cr_pncounter_inc(crdts::PNCounter::new()).read(),
        PN_INCS.into()
    );
    let mut group = c.benchmark_group("pncounter_inc");
    configure(&mut group);
    group.bench_function("neuroplex", |b| {
        b.iter_batched(PNCounter::new, np_pncounter_inc, BatchSize::LargeInput)
    });
    group.bench_function("crdts", |b| {
        b.iter_batched(
            crdts::PNCounter::new,
            cr_pncounter_inc,
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

// ------------------------------------------------------------- ormap_update

fn np_ormap_update(mut map: NpMap) -> NpMap {
    for _ in 0..ORMAP_ROUNDS {
        for key in 0..ORMAP_KEYS {
            black_box(map.apply(key, |c, cx| c.increment(cx, NP_A, 1)));
        }
    }
    map
}

fn cr_ormap_update(mut map: CrMap) -> CrMap {
    for _ in 0..ORMAP_ROUNDS {
        for key in 0..ORMAP_KEYS {
            let op = map.update(key, map.read_ctx().derive_add_ctx(CR_A), |v, _| v.inc(CR_A));
            map.apply(op);
        }
    }
    map
}

fn ormap_update(c: &mut Criterion) {
    {
        let np = np_ormap_update(NpMap::new());
        let cr = cr_ormap_update(CrMap::new());
        assert_eq!(np.store().len(), ORMAP_KEYS as usize);
        assert_eq!(cr.len().val, ORMAP_KEYS as usize);
        for key in [0, ORMAP_KEYS / 2, ORMAP_KEYS - 1] {
            assert_eq!(
                np.store().get(&key).map(CausalCounter::value),
                Some(ORMAP_ROUNDS as i64)
            );
            let cr_value = cr.get(&key).val.map(|v| v.read());
            assert_eq!(cr_value, Some(ORMAP_ROUNDS.into()));
        }
    }
    let mut group = c.benchmark_group("ormap_update");
    configure(&mut group);
    group.bench_function("neuroplex", |b| {
        b.iter_batched(NpMap::new, np_ormap_update, BatchSize::LargeInput)
    });
    group.bench_function("crdts", |b| {
        b.iter_batched(CrMap::new, cr_ormap_update, BatchSize::LargeInput)
    });
    group.finish();
}

criterion_group!(benches, awset_add, awset_merge, pncounter_inc, ormap_update);
criterion_main!(benches);
