//! What a replica hands back to its shell after each input: records to
//! persist, messages to send, timers to arm, events for the application and
//! fault reports.
//!
//! The order of duties is the contract: the shell makes `persist` durable
//! **before** it sends anything in `send` (a replica's messages are promises
//! about its log; a promise must survive a crash). Events and timers may be
//! handled in any order after that, events in the order given.

use alloc::sync::Arc;
use alloc::vec::Vec;

use super::ClientId;
use super::message::{Batch, MessageKind, Request};
use super::persist::Record;
use super::proof::Proof;
use super::{ReplicaIndex, Seq, View};
use crate::codec::DecodeError;

/// The link a message arrived on, as the shell names it (a connection, a
/// peer address). Faults name links, not replicas: anyone can write any
/// sender into a message.
pub type Link = u64;

/// Where a message goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// One replica.
    Replica(ReplicaIndex),
    /// Every replica but the sender.
    AllReplicas,
    /// A client.
    Client(ClientId),
}

/// A message to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    /// To whom.
    pub to: Target,
    /// The encoded [`super::Message`].
    pub bytes: Vec<u8>,
}

/// The replica's timers. Each arm carries a generation; a timer that fires
/// after being re-armed or cancelled is ignored, so the shell may skip
/// cancellation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TimerId {
    /// A request is waiting: suspect the primary if it does not execute.
    Request(u64),
    /// Waiting for a new view.
    ViewChange(u64),
    /// Flush a partial batch (primary).
    Batch(u64),
    /// Broadcast status (periodic).
    Status(u64),
    /// Retry state transfer.
    Fetch(u64),
    /// A client's retransmission of request `timestamp`.
    Client(u64),
}

impl TimerId {
    /// Packs the timer into a u64 (kind in the top byte).
    pub fn to_u64(self) -> u64 {
        let (k, g) = match self {
            TimerId::Request(g) => (1, g),
            TimerId::ViewChange(g) => (2, g),
            TimerId::Batch(g) => (3, g),
            TimerId::Status(g) => (4, g),
            TimerId::Fetch(g) => (5, g),
            TimerId::Client(g) => (6, g),
        };
        (k << 56) | (g & ((1 << 56) - 1))
    }

    /// Unpacks [`TimerId::to_u64`].
    pub fn from_u64(x: u64) -> Option<TimerId> {
        let g = x & ((1 << 56) - 1);
        Some(match x >> 56 {
            1 => TimerId::Request(g),
            2 => TimerId::ViewChange(g),
            3 => TimerId::Batch(g),
            4 => TimerId::Status(g),
            5 => TimerId::Fetch(g),
            6 => TimerId::Client(g),
            _ => return None,
        })
    }
}

/// Arm or cancel a timer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerCmd {
    /// Fire `id` after `after` milliseconds (replacing an armed one of the
    /// same kind).
    Set {
        /// Which.
        id: TimerId,
        /// Delay in milliseconds.
        after: u64,
    },
    /// The timer is no longer needed (optional to honour).
    Cancel(TimerId),
}

/// A committed batch to execute, in sequence order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Execute {
    /// The sequence number.
    pub seq: Seq,
    /// The view it committed in.
    pub view: View,
    /// The batch digest.
    pub digest: crate::bft::Digest,
    /// The batch as ordered (duplicates included).
    pub batch: Arc<Batch>,
    /// Indices into the batch of the requests to execute (the others
    /// already executed: exactly once).
    pub fresh: Vec<u32>,
    /// True if the application must return its state with the result
    /// (a checkpoint is taken after this sequence number).
    pub checkpoint: bool,
}

impl Execute {
    /// The requests to execute, in order.
    pub fn requests(&self) -> impl Iterator<Item = &Request> {
        self.fresh
            .iter()
            .filter_map(|&i| self.batch.requests.get(i as usize))
            .map(|r| &r.request)
    }
}

/// Something the application must act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Execute a batch, then call `Replica::executed`.
    Execute(Execute),
    /// Replace the application state with this snapshot (state transfer
    /// or restart); execution resumes after `seq`.
    Install {
        /// The checkpoint's sequence number.
        seq: Seq,
        /// The application's snapshot.
        snapshot: Arc<Vec<u8>>,
    },
    /// A new view started.
    NewView {
        /// The view.
        view: View,
        /// Its primary.
        primary: ReplicaIndex,
    },
    /// A checkpoint became stable (the log below it was collected).
    Stable {
        /// Its sequence number.
        seq: Seq,
    },
}

/// A detected fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The bytes are not a message.
    Malformed {
        /// Arrival link.
        link: Link,
        /// Why.
        error: DecodeError,
    },
    /// The authenticator does not match the claimed sender.
    BadAuth {
        /// Arrival link.
        link: Link,
        /// What the message claimed to be.
        kind: MessageKind,
    },
    /// Authentic (or unauthenticated) but breaks a protocol rule: a batch
    /// that does not match its digest, a request with a bad MAC, a
    /// view-change that is not well formed, state that does not match
    /// its certified digest.
    Invalid {
        /// Arrival link.
        link: Link,
        /// What it was.
        kind: MessageKind,
        /// Which rule.
        reason: &'static str,
    },
    /// Signed evidence that a replica equivocated: checkable by anyone.
    Misbehaviour(alloc::boxed::Box<Proof>),
    /// A pre-prepare carries a request whose MAC for this replica fails
    /// (and no verified copy is known here). The client, or whoever
    /// relayed the request to the primary, is faulty — not necessarily the
    /// primary, who can check only its own tag — so this names no culprit.
    UnverifiedRequest {
        /// Arrival link of the pre-prepare.
        link: Link,
        /// The request's claimed client.
        client: crate::bft::ClientId,
    },
}

/// Everything one input produced. See the module doc for the order.
///
/// Must be used: persist-before-send is its contract, so a step dropped
/// unhandled loses the records to store, the messages to send, the timers
/// and the events it carried.
#[must_use = "persist `persist`, then send `send`: a dropped step loses messages"]
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Step {
    /// Make these durable before sending.
    pub persist: Vec<Record>,
    /// Then send these.
    pub send: Vec<Outgoing>,
    /// Arm or cancel these.
    pub timers: Vec<TimerCmd>,
    /// Hand these to the application, in order.
    pub events: Vec<Event>,
    /// Report these.
    pub faults: Vec<Fault>,
}

impl Step {
    /// Appends `other`'s duties after this step's.
    pub fn extend(&mut self, other: Step) {
        self.persist.extend(other.persist);
        self.send.extend(other.send);
        self.timers.extend(other.timers);
        self.events.extend(other.events);
        self.faults.extend(other.faults);
    }

    /// True if there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.persist.is_empty()
            && self.send.is_empty()
            && self.timers.is_empty()
            && self.events.is_empty()
            && self.faults.is_empty()
    }
}
