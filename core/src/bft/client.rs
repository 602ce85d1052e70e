//! The client side: builds requests MAC'd for every replica, sends them to
//! the primary (to everyone on retry), and accepts a result once f+1
//! replicas return the same one — at least one of them is correct, and a
//! correct replica replies only after the request committed.
//!
//! Sans-IO like the replica: `submit` and `handle` return a [`ClientStep`].

use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec::Vec;

use super::auth::{ClientKeys, ClientMacs};
use super::clients::CLIENT_WINDOW;
use super::message::{
    AuthRequest, Message, MessageKind, Reply, ReplyView, Request, decode_reply_view,
};
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
    /// Replies with a bad MAC (replies to nothing outstanding are dropped
    /// unchecked).
    pub faults: Vec<Fault>,
}

struct Outstanding {
    /// The request, to resend (encoded again: retries are rare).
    request: AuthRequest,
    /// Each replica's answer, at most one each (results are compared as
    /// bytes; short ones are held inline).
    votes: smallvec::SmallVec<[(ReplicaIndex, smallvec::SmallVec<[u8; 16]>); 4]>,
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
    /// Requests by timestamp: slot i is timestamp `first + i` (`None`
    /// once completed); the front is always outstanding.
    outstanding: VecDeque<Option<Outstanding>>,
    /// The timestamp of `outstanding[0]`.
    first: u64,
    /// Number of `Some` slots.
    open: usize,
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
            outstanding: VecDeque::new(),
            first: 1,
            open: 0,
        }
    }

    /// This client.
    pub fn id(&self) -> ClientId {
        self.id
    }

    /// Number of requests not yet completed.
    pub fn outstanding(&self) -> usize {
        self.open
    }

    /// Submits `op`; returns its timestamp. Refused while the oldest
    /// outstanding request is [`CLIENT_WINDOW`] timestamps behind.
    pub fn submit(&mut self, op: impl Into<Arc<[u8]>>) -> Result<(u64, ClientStep), Busy> {
        let ts = self.next_ts;
        if self.open > 0 && ts >= self.first + CLIENT_WINDOW {
            return Err(Busy);
        }
        self.next_ts += 1;
        let request = Request {
            client: self.id,
            timestamp: ts,
            op: op.into(),
        };
        let macs = self.macs.tags(&request.digest().0);
        let request = AuthRequest { request, macs };
        let mut out = ClientStep::default();
        out.send.push(Outgoing {
            to: Target::Replica((self.view % self.n as u64) as ReplicaIndex),
            bytes: Message::encode_request(&request),
        });
        out.timers.push(TimerCmd::Set {
            id: TimerId::Client(ts),
            after: self.retry,
        });
        if self.open == 0 {
            self.outstanding.clear();
            self.first = ts;
        }
        self.outstanding.push_back(Some(Outstanding {
            request,
            votes: smallvec::SmallVec::new(),
        }));
        self.open += 1;
        Ok((ts, out))
    }

    /// Handles bytes from `link` (as [`ClientInput::Message`], without the
    /// copy).
    pub fn handle_message(&mut self, link: Link, bytes: &[u8]) -> ClientStep {
        let mut out = ClientStep::default();
        if let Some(r) = decode_reply_view(bytes) {
            self.on_reply(link, r, &mut out);
            return out;
        }
        // Not a well-formed reply: malformed, or another message (ignored).
        if let Err(error) = Message::decode(bytes) {
            out.faults.push(Fault::Malformed { link, error });
        }
        out
    }

    /// Handles one input.
    pub fn handle(&mut self, input: ClientInput) -> ClientStep {
        let mut out = ClientStep::default();
        match input {
            ClientInput::Timer(TimerId::Client(ts)) => {
                if let Some(o) = self.slot(ts).and_then(Option::as_ref) {
                    // No answer yet: maybe the primary is faulty or the
                    // message was lost. Tell everyone.
                    out.send.push(Outgoing {
                        to: Target::AllReplicas,
                        bytes: Message::encode_request(&o.request),
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

    fn slot(&self, ts: u64) -> Option<&Option<Outstanding>> {
        let i = usize::try_from(ts.checked_sub(self.first)?).ok()?;
        self.outstanding.get(i)
    }

    fn slot_mut(&mut self, ts: u64) -> Option<&mut Option<Outstanding>> {
        let i = usize::try_from(ts.checked_sub(self.first)?).ok()?;
        self.outstanding.get_mut(i)
    }

    fn on_reply(&mut self, link: Link, r: ReplyView<'_>, out: &mut ClientStep) {
        // A reply to nothing outstanding (most often one of the n - f - 1
        // that arrive after the request completed) is dropped unread: it
        // could change nothing, so it is not worth a MAC check.
        if r.client != self.id || !matches!(self.slot(r.timestamp), Some(Some(_))) {
            return;
        }
        let header = Reply::header(r.view, r.client, r.timestamp, r.replica);
        let ok = self
            .macs
            .key(r.replica as usize)
            .is_some_and(|k| k.check_parts(&[&header, r.result], &r.mac));
        if !ok {
            out.faults.push(Fault::BadAuth {
                link,
                kind: MessageKind::Reply,
            });
            return;
        }
        let (n, f) = (self.n, self.f);
        let Some(Some(o)) = self.slot_mut(r.timestamp) else {
            return;
        };
        // This reply, plus the matching ones from other replicas (a
        // duplicate from the same replica counts once).
        let agree = 1 + o
            .votes
            .iter()
            .filter(|(k, x)| *k != r.replica && x[..] == *r.result)
            .count();
        if agree > f {
            if let Some(slot) = self.slot_mut(r.timestamp) {
                *slot = None;
            }
            self.open -= 1;
            while let Some(None) = self.outstanding.front() {
                self.outstanding.pop_front();
                self.first += 1;
            }
            self.view = self.view.max(r.view);
            out.timers
                .push(TimerCmd::Cancel(TimerId::Client(r.timestamp)));
            out.events.push(ClientEvent::Completed(Completed {
                timestamp: r.timestamp,
                result: r.result.to_vec(),
            }));
        } else if let Some(v) = o.votes.iter_mut().find(|v| v.0 == r.replica) {
            v.1 = r.result.into();
        } else if o.votes.len() < n {
            o.votes.push((r.replica, r.result.into()));
        }
    }
}
