//! The client side: builds requests MAC'd for every replica, sends them to
//! the primary (to everyone on retry), and accepts a result once f+1
//! replicas return the same one — at least one of them is correct, and a
//! correct replica replies only after the request committed.
//!
//! Sans-IO like the replica: `submit` and `handle` return a [`ClientStep`].

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use super::auth::{ClientKeys, ClientMacs};
use super::clients::CLIENT_WINDOW;
use super::message::{AuthRequest, Message, MessageKind, Reply, Request};
use super::step::{Fault, Link, Outgoing, Target, TimerCmd, TimerId};
use super::{ClientId, Config, ReplicaIndex, View};

/// An input to a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientInput {
    /// Bytes from the network.
    Message {
        /// The link they arrived on.
        link: Link,
        /// The bytes (untrusted).
        bytes: Vec<u8>,
    },
    /// A timer fired.
    Timer(TimerId),
}

/// A request's accepted result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completed {
    /// The request's timestamp.
    pub timestamp: u64,
    /// The result f+1 replicas agree on.
    pub result: Vec<u8>,
}

/// What the client reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientEvent {
    /// A request completed.
    Completed(Completed),
}

/// What a client input produced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientStep {
    /// Send these.
    pub send: Vec<Outgoing>,
    /// Arm these.
    pub timers: Vec<TimerCmd>,
    /// Completed requests.
    pub events: Vec<ClientEvent>,
    /// Replies with a bad MAC.
    pub faults: Vec<Fault>,
}

struct Outstanding {
    bytes: Vec<u8>,
    /// Each replica's answer (results are compared as bytes).
    votes: BTreeMap<ReplicaIndex, Vec<u8>>,
}

/// The client has [`CLIENT_WINDOW`] requests outstanding already.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Busy;

/// A PBFT client.
pub struct Client {
    id: ClientId,
    macs: ClientMacs,
    n: usize,
    f: usize,
    view: View,
    next_ts: u64,
    retry: u64,
    outstanding: BTreeMap<u64, Outstanding>,
}

impl Client {
    /// A client of the group `config`, retrying after `retry` ms.
    pub fn new(config: &Config, keys: &ClientKeys, retry: u64) -> Self {
        Self {
            id: keys.client,
            macs: keys.macs(),
            n: config.n(),
            f: config.f(),
            view: 0,
            next_ts: 1,
            retry: retry.max(1),
            outstanding: BTreeMap::new(),
        }
    }

    /// This client.
    pub fn id(&self) -> ClientId {
        self.id
    }

    /// Number of requests not yet completed.
    pub fn outstanding(&self) -> usize {
        self.outstanding.len()
    }

    /// Submits `op`; returns its timestamp. Refused while the oldest
    /// outstanding request is [`CLIENT_WINDOW`] timestamps behind.
    pub fn submit(&mut self, op: Vec<u8>) -> Result<(u64, ClientStep), Busy> {
        let ts = self.next_ts;
        if let Some((&oldest, _)) = self.outstanding.first_key_value()
            && ts >= oldest + CLIENT_WINDOW
        {
            return Err(Busy);
        }
        self.next_ts += 1;
        let request = Request {
            client: self.id,
            timestamp: ts,
            op,
        };
        let macs = self.macs.tags(&request.digest().0);
        let bytes = Message::Request(AuthRequest { request, macs }).encode();
        let mut out = ClientStep::default();
        out.send.push(Outgoing {
            to: Target::Replica((self.view % self.n as u64) as ReplicaIndex),
            bytes: bytes.clone(),
        });
        out.timers.push(TimerCmd::Set {
            id: TimerId::Client(ts),
            after: self.retry,
        });
        self.outstanding.insert(
            ts,
            Outstanding {
                bytes,
                votes: BTreeMap::new(),
            },
        );
        Ok((ts, out))
    }

    /// Handles bytes from `link` (as [`ClientInput::Message`], without the
    /// copy).
    pub fn handle_message(&mut self, link: Link, bytes: &[u8]) -> ClientStep {
        let mut out = ClientStep::default();
        match Message::decode(bytes) {
            Ok(Message::Reply(r)) => self.on_reply(link, r, &mut out),
            Ok(_) => {}
            Err(error) => out.faults.push(Fault::Malformed { link, error }),
        }
        out
    }

    /// Handles one input.
    pub fn handle(&mut self, input: ClientInput) -> ClientStep {
        let mut out = ClientStep::default();
        match input {
            ClientInput::Timer(TimerId::Client(ts)) => {
                if let Some(o) = self.outstanding.get(&ts) {
                    // No answer yet: maybe the primary is faulty or the
                    // message was lost. Tell everyone.
                    out.send.push(Outgoing {
                        to: Target::AllReplicas,
                        bytes: o.bytes.clone(),
                    });
                    out.timers.push(TimerCmd::Set {
                        id: TimerId::Client(ts),
                        after: self.retry,
                    });
                }
            }
            ClientInput::Timer(_) => {}
            ClientInput::Message { link, bytes } => return self.handle_message(link, &bytes),
        }
        out
    }

    fn on_reply(&mut self, link: Link, r: Reply, out: &mut ClientStep) {
        let payload = Reply::payload(r.view, r.client, r.timestamp, r.replica, &r.result);
        let ok = r.client == self.id
            && self
                .macs
                .key(r.replica as usize)
                .is_some_and(|k| k.check(&payload, &r.mac));
        if !ok {
            out.faults.push(Fault::BadAuth {
                link,
                kind: MessageKind::Reply,
            });
            return;
        }
        let Some(o) = self.outstanding.get_mut(&r.timestamp) else {
            return;
        };
        // This reply, plus the matching ones from other replicas (a
        // duplicate from the same replica counts once).
        let agree = 1 + o
            .votes
            .iter()
            .filter(|(k, x)| **k != r.replica && **x == r.result)
            .count();
        if agree > self.f {
            self.outstanding.remove(&r.timestamp);
            self.view = self.view.max(r.view);
            out.timers
                .push(TimerCmd::Cancel(TimerId::Client(r.timestamp)));
            out.events.push(ClientEvent::Completed(Completed {
                timestamp: r.timestamp,
                result: r.result,
            }));
        } else {
            o.votes.insert(r.replica, r.result);
        }
    }
}
