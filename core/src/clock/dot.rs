use core::fmt;
use serde::{Deserialize, Deserializer, Serialize, de::Error as _};

use super::ReplicaId;

/// One event: the `counter`-th event issued by `replica`. Counters start at 1.
///
/// A dot names an event uniquely as long as its replica never reuses a counter
/// (see [`ReplicaId`]).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Dot {
    /// Who issued the event.
    pub replica: ReplicaId,
    /// The issuer's sequence number for it, from 1.
    pub counter: u64,
}

impl Dot {
    /// Builds a dot.
    ///
    /// # Panics
    /// If `counter` is 0: counters start at 1, and 0 means "nothing seen".
    pub const fn new(replica: ReplicaId, counter: u64) -> Self {
        assert!(counter > 0, "dot counters start at 1");
        Self { replica, counter }
    }
}

impl fmt::Debug for Dot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}.{}", self.replica, self.counter)
    }
}

impl<'de> Deserialize<'de> for Dot {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            replica: ReplicaId,
            counter: u64,
        }
        let raw = Raw::deserialize(d)?;
        if raw.counter == 0 {
            return Err(D::Error::custom("dot counter 0"));
        }
        Ok(Dot {
            replica: raw.replica,
            counter: raw.counter,
        })
    }
}
