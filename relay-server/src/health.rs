//! Whether the relay can make writes durable, for `/healthz`.
//!
//! A relay that cannot commit acknowledges nothing: every writer waits or
//! is closed with 4500. A load balancer or an operator should see that, so
//! the storage writer reports here and `/healthz` answers 503 with the
//! reason while the last commit failed or the current one has been waiting
//! longer than [`STALL`], and 200 again once a commit succeeds.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A commit taking longer than this makes the relay unhealthy (a healthy
/// one takes milliseconds; something holds the database or the disk).
pub const STALL: Duration = Duration::from_secs(5);

/// The storage writer's latest news.
#[derive(Debug, Default)]
pub struct Health {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Why the last commit failed, if it did.
    failure: Option<String>,
    /// When the commit under way started.
    committing: Option<Instant>,
}

impl Health {
    /// A commit starts.
    pub fn commit_started(&self) {
        self.state.lock().expect("health lock").committing = Some(Instant::now());
    }

    /// The commit under way ended: `Err` says why it failed.
    pub fn commit_ended(&self, result: Result<(), String>) {
        let mut st = self.state.lock().expect("health lock");
        st.committing = None;
        st.failure = result.err();
    }

    /// `None` if healthy, else why not.
    pub fn problem(&self) -> Option<String> {
        let st = self.state.lock().expect("health lock");
        if let Some(why) = &st.failure {
            return Some(format!("storage: the last commit failed: {why}"));
        }
        let waited = st.committing.map(|t| t.elapsed())?;
        (waited > STALL).then(|| {
            format!(
                "storage: a commit has been waiting for {} s",
                waited.as_secs()
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_then_recovery() {
        let h = Health::default();
        assert_eq!(h.problem(), None);
        h.commit_started();
        assert_eq!(h.problem(), None);
        h.commit_ended(Err("disk I/O error".into()));
        assert!(h.problem().unwrap().contains("disk I/O error"));
        h.commit_started();
        h.commit_ended(Ok(()));
        assert_eq!(h.problem(), None);
    }
}
