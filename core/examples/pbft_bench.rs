//! PBFT throughput: n = 4 replicas and their clients in one process on one
//! thread, real cryptography, 64-byte operations. One line per
//! authenticator × batch size:
//!
//! `pbft auth=<ed25519|mac> batch=<b> ops_per_s=<x> msgs_per_op=<y> efficiency=<e>`
//!
//! `efficiency` divides the measured throughput by the bound the
//! cryptography alone allows, with each primitive timed in this same run:
//! per batch, 8 signatures and 24 verifications with ed25519 (1 pre-prepare,
//! 3 prepares, 4 commits, each checked by the 3 others) or the equivalent 24
//! MAC tags made and 24 checked with MAC vectors; plus, per request, the
//! client's 4 request tags, the 4 checks of them, the 4 reply tags and the
//! client's 4 reply checks.
//!
//! The network is an in-memory FIFO queue (messages are encoded and decoded
//! for real; a broadcast's bytes are shared, not copied). Persistence
//! records are built but not written anywhere. Timers never fire except
//! the primary's batch timer, when nothing else is left to do.
//!
//! Knobs: `PBFT_BENCH_ONLY=mac:100` runs one configuration;
//! `PBFT_BENCH_PRIMITIVES=1` prints the primitive timings; for profiling,
//! `PBFT_BENCH_OPS=<n>` submits exactly n requests and ignores the clock,
//! and `PBFT_BENCH_NO_PRIMITIVES=1` skips timing the primitives.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use neuroplex_core::bft::auth::{MacKey, ReplicaKeys};
use neuroplex_core::bft::{
    Authenticator, Client, ClientEvent, Config, Dealer, Digest, Event, Executed, Input, Replica,
    Results, Step, Target, TimerCmd, TimerId,
};

const N: usize = 4;
const OP_BYTES: usize = 64;
/// How long each configuration keeps submitting.
const RUN_FOR: Duration = Duration::from_millis(1500);

/// With a fixed amount of work (`PBFT_BENCH_OPS`), the clock does not stop
/// the run: instruction counts (callgrind) are then reproducible.
fn time_up(b_limit: u64, start: Instant) -> bool {
    b_limit == u64::MAX && start.elapsed() >= RUN_FOR
}

#[derive(Clone, Copy)]
enum Dest {
    Replica(usize),
    Client(usize),
}

/// A message's bytes: a broadcast's copies share one buffer.
enum Payload {
    One(Vec<u8>),
    Shared(Arc<Vec<u8>>),
}

impl Payload {
    fn bytes(&self) -> &[u8] {
        match self {
            Payload::One(b) => b,
            Payload::Shared(b) => b,
        }
    }
}

struct Net {
    queue: VecDeque<(u64, Dest, Payload)>,
    messages: u64,
}

impl Net {
    fn push(
        &mut self,
        from: u64,
        from_replica: Option<usize>,
        to: Target,
        bytes: Vec<u8>,
        clients: &[u64],
    ) {
        match to {
            Target::Replica(i) => {
                self.queue
                    .push_back((from, Dest::Replica(i as usize), Payload::One(bytes)))
            }
            Target::AllReplicas => {
                let bytes = Arc::new(bytes);
                for i in 0..N {
                    if Some(i) != from_replica {
                        self.queue.push_back((
                            from,
                            Dest::Replica(i),
                            Payload::Shared(bytes.clone()),
                        ));
                    }
                }
            }
            Target::Client(c) => {
                // Client ids are 1..=clients (see `run`).
                let k = (c as usize).wrapping_sub(1);
                if clients.get(k) == Some(&c) {
                    self.queue
                        .push_back((from, Dest::Client(k), Payload::One(bytes)));
                }
            }
        }
    }
}

/// A counter application: the result of an operation is the count so far.
#[derive(Default)]
struct App {
    count: u64,
    hash: u64,
}

struct Bench<A: Authenticator> {
    replicas: Vec<Replica<A>>,
    apps: Vec<App>,
    batch_timer: Vec<Option<TimerId>>,
    clients: Vec<Client>,
    client_ids: Vec<u64>,
    net: Net,
    completed: u64,
    submitting: bool,
    /// Requests submitted so far, and the most to submit (for profiling
    /// with a fixed amount of work: `PBFT_BENCH_OPS`).
    submitted: u64,
    limit: u64,
    op: Arc<[u8]>,
}

impl<A: Authenticator> Bench<A> {
    fn run_step(&mut self, i: usize, step: Step) {
        let mut steps = VecDeque::from([step]);
        while let Some(step) = steps.pop_front() {
            // persist would be written here, before the sends.
            drop(step.persist);
            for o in step.send {
                self.net
                    .push(i as u64, Some(i), o.to, o.bytes, &self.client_ids);
            }
            for t in step.timers {
                if let TimerCmd::Set {
                    id: id @ TimerId::Batch(_),
                    ..
                } = t
                {
                    self.batch_timer[i] = Some(id);
                }
            }
            for e in step.events {
                if let Event::Execute(ex) = e {
                    let app = &mut self.apps[i];
                    let mut results = Results::with_capacity(ex.fresh.len(), 8 * ex.fresh.len());
                    for r in ex.requests() {
                        app.count += 1;
                        app.hash = app.hash.rotate_left(5) ^ r.op.len() as u64 ^ app.count;
                        results.push(&app.count.to_le_bytes());
                    }
                    let state = ex.checkpoint.then(|| {
                        let snap = [app.count.to_le_bytes(), app.hash.to_le_bytes()].concat();
                        (Digest::of(b"bench-app", &[&snap]), snap)
                    });
                    let next = self.replicas[i]
                        .executed(Executed {
                            seq: ex.seq,
                            results,
                            state,
                        })
                        .expect("the bench app answers what was asked");
                    steps.push_back(next);
                }
            }
        }
    }

    fn submit(&mut self, k: usize) {
        while self.submitting {
            if self.submitted >= self.limit {
                self.submitting = false;
                break;
            }
            self.submitted += 1;
            // A fresh operation buffer per request, as an application
            // would hand over.
            match self.clients[k].submit(Arc::<[u8]>::from(&self.op[..])) {
                Ok((_, step)) => {
                    for o in step.send {
                        self.net
                            .push(100 + k as u64, None, o.to, o.bytes, &self.client_ids);
                    }
                }
                Err(_) => {
                    self.submitted -= 1;
                    break;
                }
            }
        }
    }

    fn deliver(&mut self, from: u64, to: Dest, bytes: &[u8]) {
        self.net.messages += 1;
        match to {
            Dest::Replica(i) => {
                let step = self.replicas[i].handle_message(from, bytes);
                self.run_step(i, step);
            }
            Dest::Client(k) => {
                let step = self.clients[k].handle_message(from, bytes);
                for e in step.events {
                    let ClientEvent::Completed(_) = e;
                    self.completed += 1;
                }
                if self.clients[k].outstanding() == 0 || self.submitting {
                    self.submit(k);
                }
            }
        }
    }
}

fn run<A: Authenticator>(batch: usize, make: impl Fn(&ReplicaKeys, &Config) -> A) -> (f64, f64) {
    let dealer = Dealer::new([7; 32], N);
    let mut config = dealer.config();
    config.batch_max = batch;
    config.pipeline = 4;
    config.checkpoint_interval = 64;
    config.window = 256;
    config.max_pending = batch * 16 + 1024;
    // Enough clients to keep the pipeline's batches full (each may have
    // 64 requests outstanding).
    let nclients = (batch * 6).div_ceil(64).max(4);
    let client_ids: Vec<u64> = (1..=nclients as u64).collect();
    let mut replicas = Vec::new();
    for i in 0..N as u32 {
        let keys = dealer.replica(i, &client_ids);
        let auth = make(&keys, &config);
        let (r, _) = Replica::new(config.clone(), &keys, auth).expect("valid config");
        replicas.push(r);
    }
    let clients = client_ids
        .iter()
        .map(|&c| Client::new(&config, &dealer.client(c), 1_000))
        .collect();
    let mut b = Bench {
        replicas,
        apps: (0..N).map(|_| App::default()).collect(),
        batch_timer: vec![None; N],
        clients,
        client_ids,
        net: Net {
            queue: VecDeque::new(),
            messages: 0,
        },
        completed: 0,
        submitting: true,
        submitted: 0,
        limit: std::env::var("PBFT_BENCH_OPS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(u64::MAX),
        op: Arc::from(&[0xAB; OP_BYTES][..]),
    };
    let start = Instant::now();
    for k in 0..nclients {
        b.submit(k);
    }
    let mut checks = 0u32;
    loop {
        while let Some((from, to, bytes)) = b.net.queue.pop_front() {
            b.deliver(from, to, bytes.bytes());
            checks += 1;
            if checks % 256 == 0 && b.submitting && time_up(b.limit, start) {
                b.submitting = false;
            }
        }
        // Idle: flush partial batches, or stop once everything completed.
        let mut fired = false;
        for i in 0..N {
            if let Some(t) = b.batch_timer[i].take() {
                let step = b.replicas[i].handle(Input::Timer(t));
                b.run_step(i, step);
                fired = true;
            }
        }
        if !fired {
            if b.submitting {
                b.submitting = !time_up(b.limit, start);
                for k in 0..nclients {
                    b.submit(k);
                }
                if b.net.queue.is_empty() {
                    break;
                }
            } else {
                break;
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let outstanding: usize = b.clients.iter().map(Client::outstanding).sum();
    assert_eq!(outstanding, 0, "every request completes");
    let ops = b.completed as f64;
    (ops / elapsed, b.net.messages as f64 / ops)
}

/// Seconds per call of `f`: the fastest of five rounds of at least 100 ms
/// (the least disturbed by whatever else runs on the machine).
fn time_per(mut f: impl FnMut(u64)) -> f64 {
    let mut iters = 64u64;
    loop {
        let t = Instant::now();
        for i in 0..iters {
            f(i);
        }
        if t.elapsed() >= Duration::from_millis(100) {
            break;
        }
        iters *= 2;
    }
    (0..5)
        .map(|_| {
            let t = Instant::now();
            for i in 0..iters {
                f(i);
            }
            t.elapsed().as_secs_f64() / iters as f64
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    // The primitives, timed on payloads of the sizes the protocol uses.
    let dealer = Dealer::new([7; 32], N);
    let config = dealer.config();
    let keys = dealer.replica(0, &[]);
    let ed = keys.ed25519(&config).expect("valid config");
    let payload = [0x5Au8; 53];
    let sig = ed.seal(&payload);
    let ed1 = dealer
        .replica(1, &[])
        .ed25519(&config)
        .expect("valid config");
    // PBFT_BENCH_NO_PRIMITIVES skips timing them (for profiling the
    // protocol alone; efficiency then prints as NaN).
    let skip = std::env::var_os("PBFT_BENCH_NO_PRIMITIVES").is_some();
    let mut sink = 0u64;
    let (t_sign, t_verify, t_mac) = if skip {
        (f64::NAN, f64::NAN, f64::NAN)
    } else {
        let t_sign = time_per(|i| {
            let mut p = payload;
            p[0] = i as u8;
            sink ^= matches!(ed.seal(&p), neuroplex_core::bft::auth::Auth::Signature(_)) as u64;
        });
        let t_verify = time_per(|_| sink ^= ed1.verify(0, &payload, &sig) as u64);
        let key = MacKey::new(&[3; 32]);
        let t_mac = time_per(|i| {
            let mut p = payload;
            p[0] = i as u8;
            sink ^= key.tag(&p)[0] as u64;
        });
        (t_sign, t_verify, t_mac)
    };
    std::hint::black_box(sink);
    if std::env::var_os("PBFT_BENCH_PRIMITIVES").is_some() {
        eprintln!(
            "sign {:.1} us, verify {:.1} us, mac {:.3} us",
            t_sign * 1e6,
            t_verify * 1e6,
            t_mac * 1e6
        );
    }

    let per_request = 16.0 * t_mac;
    for (name, per_batch) in [
        ("ed25519", 8.0 * t_sign + 24.0 * t_verify),
        ("mac", 48.0 * t_mac),
    ] {
        for batch in [1usize, 10, 100, 1000] {
            // For profiling one configuration: PBFT_BENCH_ONLY=mac:100.
            if let Ok(only) = std::env::var("PBFT_BENCH_ONLY")
                && only != format!("{name}:{batch}")
            {
                continue;
            }
            let (ops, msgs) = if name == "mac" {
                run(batch, |k, _| k.mac())
            } else {
                run(batch, |k, c| k.ed25519(c).expect("valid config"))
            };
            let bound = batch as f64 / (per_batch + batch as f64 * per_request);
            println!(
                "pbft auth={name} batch={batch} ops_per_s={ops:.0} msgs_per_op={msgs:.2} efficiency={:.2}",
                ops / bound
            );
        }
    }
}
