//! Running a seeded check over many seeds, printing the seed of a failure.
//!
//! `NEUROPLEX_SEED=<n>` runs just seed n (to replay a failure);
//! `NEUROPLEX_SEEDS=<count>` runs that many seeds instead of the default
//! (the soak).
#![allow(dead_code)]

use std::panic::{AssertUnwindSafe, catch_unwind};

/// Runs `check` for each seed; panics naming the first failing seed.
pub fn run_seeds(suite: &str, default_count: u64, check: impl Fn(u64) -> Result<(), String>) {
    let seeds: Vec<u64> = match std::env::var("NEUROPLEX_SEED") {
        Ok(s) => vec![s.parse().expect("NEUROPLEX_SEED must be a number")],
        Err(_) => {
            let count = std::env::var("NEUROPLEX_SEEDS")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(default_count);
            (0..count).collect()
        }
    };
    for &seed in &seeds {
        let outcome = catch_unwind(AssertUnwindSafe(|| check(seed)));
        let failure = match outcome {
            Ok(Ok(())) => continue,
            Ok(Err(msg)) => msg,
            Err(panic) => panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".into()),
        };
        panic!(
            "{suite}: seed={seed} failed: {failure}\n  replay: NEUROPLEX_SEED={seed} cargo test -p neuroplex-core --all-features --test {suite}"
        );
    }
    // Written straight to stderr: the test harness captures eprintln!.
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr().lock(),
        "{suite}: {} seeds passed",
        seeds.len()
    );
}
