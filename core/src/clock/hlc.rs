use core::fmt;

use serde::{Deserialize, Serialize};

use super::ReplicaId;

/// A hybrid-logical-clock timestamp: physical milliseconds, a logical counter
/// for events within one millisecond, and the replica as the final tie-break.
///
/// Ordered lexicographically in that order, so two timestamps from different
/// replicas are never equal.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timestamp {
    /// Physical time in milliseconds, as supplied by the IO shell.
    pub time: u64,
    /// Events at the same `time`.
    pub logical: u32,
    /// The replica that issued the timestamp.
    pub replica: ReplicaId,
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}@{:?}", self.time, self.logical, self.replica)
    }
}

/// A remote timestamp was further ahead of local time than allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockDrift {
    /// The remote timestamp's physical time.
    pub remote: u64,
    /// Local physical time when it arrived.
    pub now: u64,
}

impl fmt::Display for ClockDrift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "remote clock is {} ms ahead of local time",
            self.remote.saturating_sub(self.now)
        )
    }
}

#[cfg(feature = "std")]
impl std::error::Error for ClockDrift {}

/// A hybrid logical clock (Kulkarni et al., 2014).
///
/// Timestamps it issues are strictly increasing, follow physical time when
/// the physical clock moves forward, and stay ahead of every timestamp the
/// clock has [observed](Hlc::observe). The physical time is an argument: the
/// core never reads a clock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hlc {
    last: Timestamp,
    max_drift: u64,
}

impl Hlc {
    /// Default bound on how far ahead a remote clock may be: one minute.
    pub const DEFAULT_MAX_DRIFT_MS: u64 = 60_000;

    /// A clock for `replica` that has issued nothing yet.
    pub fn new(replica: ReplicaId) -> Self {
        Self {
            last: Timestamp {
                time: 0,
                logical: 0,
                replica,
            },
            max_drift: Self::DEFAULT_MAX_DRIFT_MS,
        }
    }

    /// Sets how far (ms) a remote timestamp may run ahead of local time
    /// before [`observe`](Hlc::observe) refuses it.
    pub fn with_max_drift(mut self, ms: u64) -> Self {
        self.max_drift = ms;
        self
    }

    /// The replica this clock stamps for.
    pub fn replica(&self) -> ReplicaId {
        self.last.replica
    }

    /// The last timestamp issued or observed.
    pub fn last(&self) -> Timestamp {
        self.last
    }

    /// Issues a timestamp for a local event at physical time `now` (ms).
    pub fn tick(&mut self, now: u64) -> Timestamp {
        if now > self.last.time {
            self.last.time = now;
            self.last.logical = 0;
        } else if self.last.logical == u32::MAX {
            // Out of logical room within this millisecond: borrow the next
            // one rather than wrap (wrapping would go backwards).
            self.last.time = self.last.time.saturating_add(1);
            self.last.logical = 0;
        } else {
            self.last.logical += 1;
        }
        self.last
    }

    /// Takes note of a timestamp seen from elsewhere, so that every later
    /// [`tick`](Hlc::tick) is greater than it.
    ///
    /// Refuses (and ignores) a timestamp more than the allowed drift ahead of
    /// `now`: a single bad clock must not drag every replica into the future.
    pub fn observe(&mut self, remote: Timestamp, now: u64) -> Result<(), ClockDrift> {
        if remote.time > now.saturating_add(self.max_drift) {
            return Err(ClockDrift {
                remote: remote.time,
                now,
            });
        }
        self.catch_up(remote);
        Ok(())
    }

    /// Like [`observe`](Hlc::observe) without the drift check, for a
    /// timestamp that was already accepted (one held in local state).
    pub fn catch_up(&mut self, seen: Timestamp) {
        if (seen.time, seen.logical) > (self.last.time, self.last.logical) {
            self.last.time = seen.time;
            self.last.logical = seen.logical;
        }
    }
}
