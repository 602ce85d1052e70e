//! The anti-entropy state machine of one replica.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use super::message::{Config, Message, Payload, SyncError};
use crate::clock::{CausalContext, ReplicaId};
use crate::crdt::{Causal, DotStore, Lattice};

/// How the IO shell names a connection to another replica.
pub type PeerId = u64;

/// What a call produced: write `persist` durably (join it into what is
/// stored), *then* send `messages`.
///
/// `persist` holds every change of the state since the last call that
/// returned one: local changes and received deltas alike, so that what is
/// stored is always a state the replica really had (a local change stored
/// without the received change it built on would show an effect without
/// its cause after a restart). The order matters: a replica that sent a
/// change it then lost in a crash would reissue its dots for different
/// changes after restarting, and diverge silently from everyone who saw the
/// first ones; and an acknowledgement leaves only once what it acknowledges
/// is durable.
///
/// Must be used for the same reason: an `Outgoing` dropped unhandled loses
/// its messages, and the change it asked to persist.
#[must_use = "persist `persist`, then send `messages`: a dropped Outgoing loses messages"]
#[derive(Debug)]
pub struct Outgoing<S> {
    /// Local changes to make durable before anything is sent (joined into
    /// one delta; apply with `join` to the stored state).
    pub persist: Option<Causal<S>>,
    /// Messages for peers.
    pub messages: Vec<(PeerId, Message)>,
}

impl<S> Default for Outgoing<S> {
    fn default() -> Self {
        Self {
            persist: None,
            messages: Vec::new(),
        }
    }
}

/// What a replica knows of one peer (for status pages and debugging).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerStatus {
    /// The peer has every buffered delta below this sequence number.
    pub acked: Option<u64>,
    /// The session of the peer's last request, if any (its context is kept
    /// to serve it what it is missing).
    pub known_session: Option<u64>,
    /// The peer's session and how far its deltas have been joined here.
    pub inbound: Option<(u64, u64)>,
}

struct Entry<S> {
    seq: u64,
    /// The peer it came from (it need not go back there).
    from: Option<PeerId>,
    delta: Causal<S>,
}

#[derive(Default)]
struct Peer {
    /// The peer has joined every buffered delta below this sequence number
    /// (of our current session).
    acked: Option<u64>,
    /// The session of the peer's last request: answers name it.
    request_session: Option<u64>,
    /// A lower bound of the peer's context, from its requests, its
    /// acknowledgements and the deltas it sent. What the peer is missing is
    /// computed against it. It stays valid across the peer's restarts: a
    /// replica persists what it has seen before it says so.
    known: CausalContext,
    /// The peer's session and how far we have joined its deltas.
    inbound: Option<(u64, u64)>,
}

/// One replica of a dot store, synchronised with its neighbours by
/// delta-interval anti-entropy (Almeida, Shoker & Baquero, "Delta State
/// Replicated Data Types", 2018, Algorithm 2), with two additions:
///
/// - a neighbour that is new, restarted or fell behind the delta buffer is
///   sent [`Causal::delta_since`] its context — what it is missing, removals
///   included — instead of the whole state;
/// - sessions: every start gets a fresh session number, and sequence
///   numbers and acknowledgements are only meaningful within one, so a
///   restarted replica is never sent an interval that assumes what it lost.
///
/// Local changes are batched: everything mutated between two sends travels
/// as one delta. Each received delta that changes the state is buffered for
/// the other neighbours (transitive propagation); a delta is never sent back
/// to the peer it came from. Every delta joined — received or local — is
/// joined whole, and an interval is joined only by a peer that has every
/// earlier delta of its sender, so a reader never sees an effect without its
/// causes.
///
/// ```
/// use neuroplex_core::sync::{Config, Message, Replica};
/// use neuroplex_core::{AWSet, ReplicaId};
/// type R = Replica<AWSet<u32>>;
/// let mut a = R::new(ReplicaId::new(1), 100, Config::default()); // peer 1
/// let mut b = R::new(ReplicaId::new(2), 200, Config::default()); // peer 2
/// a.mutate(|s, cx| s.add(cx, ReplicaId::new(1), 7));
///
/// // The shell's loop: persist `out.persist` (skipped here), then deliver.
/// let first = a.push(&[2]);
/// let mut queue: Vec<(u64, u64, Message)> =
///     first.messages.into_iter().map(|(to, m)| (1, to, m)).collect();
/// while let Some((from, to, msg)) = queue.pop() {
///     let r = if to == 1 { &mut a } else { &mut b };
///     for (next, m) in r.receive(from, msg).unwrap().messages {
///         queue.push((to, next, m));
///     }
/// }
/// assert_eq!(a.state(), b.state());
/// ```
pub struct Replica<S: DotStore> {
    id: ReplicaId,
    session: u64,
    config: Config,
    state: Causal<S>,
    seq: u64,
    buffer: VecDeque<Entry<S>>,
    /// Local changes not yet in the buffer. Kept apart and joined at flush
    /// time, pairwise: joining each small delta into a growing batch would
    /// walk the whole batch every time.
    batch: Vec<Causal<S>>,
    /// State changes (local or received) not yet handed out to persist.
    unpersisted: Vec<Causal<S>>,
    peers: BTreeMap<PeerId, Peer>,
}

/// Joins many deltas in O(total size × log count): pairwise, level by level.
fn join_all<S: DotStore>(mut parts: Vec<Causal<S>>) -> Option<Causal<S>> {
    while parts.len() > 1 {
        let mut next = Vec::with_capacity(parts.len().div_ceil(2));
        let mut it = parts.into_iter();
        while let Some(a) = it.next() {
            match it.next() {
                Some(b) => next.push(a.joined(b)),
                None => next.push(a),
            }
        }
        parts = next;
    }
    parts.pop()
}

impl<S> Replica<S>
where
    S: DotStore + Serialize + for<'de> Deserialize<'de>,
{
    /// A fresh replica. `session` must differ from every earlier session of
    /// this replica (draw it at random).
    pub fn new(id: ReplicaId, session: u64, config: Config) -> Self {
        Self::restore(id, session, Causal::default(), config)
    }

    /// A replica restarting from what it persisted.
    pub fn restore(id: ReplicaId, session: u64, state: Causal<S>, config: Config) -> Self {
        Self {
            id,
            session,
            config,
            state,
            seq: 0,
            buffer: VecDeque::new(),
            batch: Vec::new(),
            unpersisted: Vec::new(),
            peers: BTreeMap::new(),
        }
    }

    /// This replica's id.
    pub fn id(&self) -> ReplicaId {
        self.id
    }

    /// This run's session.
    pub fn session(&self) -> u64 {
        self.session
    }

    /// The replicated state, as the application reads it.
    pub fn state(&self) -> &Causal<S> {
        &self.state
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The sequence number the next buffered delta gets.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// What this replica knows of each peer.
    pub fn peers(&self) -> impl Iterator<Item = (PeerId, PeerStatus)> + '_ {
        self.peers.iter().map(|(&id, p)| {
            (
                id,
                PeerStatus {
                    acked: p.acked,
                    known_session: p.request_session,
                    inbound: p.inbound,
                },
            )
        })
    }

    /// Deltas buffered for neighbours that have not acknowledged them.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// Applies a local change (a store-level mutator, as for
    /// [`Causal::mutate`]) and returns its delta. It is sent at the next
    /// [`push`](Self::push) or reply, joined with the other changes made
    /// until then.
    pub fn mutate<F>(&mut self, f: F) -> Causal<S>
    where
        F: FnOnce(&mut S, &mut CausalContext) -> Causal<S>,
    {
        let delta = self.state.mutate(f);
        self.batch.push(delta.clone());
        self.remember(delta.clone());
        delta
    }

    /// Adds a change of the state to what must be persisted next.
    fn remember(&mut self, delta: Causal<S>) {
        self.unpersisted.push(delta);
    }

    /// Hands out the changes not yet persisted, for a shell that persists
    /// eagerly (after every local edit, say) rather than only before sends.
    pub fn take_persist(&mut self) -> Option<Causal<S>> {
        join_all(core::mem::take(&mut self.unpersisted))
    }

    /// Forgets a peer (it disconnected for good). Its acknowledgement no
    /// longer holds back the delta buffer.
    pub fn forget(&mut self, peer: PeerId) {
        self.peers.remove(&peer);
        self.collect();
    }

    fn flush(&mut self) {
        if let Some(delta) = join_all(core::mem::take(&mut self.batch)) {
            self.append(None, delta);
        }
    }

    fn append(&mut self, from: Option<PeerId>, delta: Causal<S>) {
        self.buffer.push_back(Entry {
            seq: self.seq,
            from,
            delta,
        });
        self.seq += 1;
        while self.buffer.len() > self.config.max_buffered_deltas {
            self.buffer.pop_front();
        }
    }

    fn outgoing(&mut self, messages: Vec<(PeerId, Message)>) -> Outgoing<S> {
        Outgoing {
            persist: join_all(core::mem::take(&mut self.unpersisted)),
            messages,
        }
    }

    /// Anti-entropy towards `targets`: each is sent the deltas it has not
    /// acknowledged, or, if it is new or too far behind, the state it is
    /// missing (or, if its context is unknown, a request for it).
    pub fn push(&mut self, targets: &[PeerId]) -> Outgoing<S> {
        self.flush();
        let mut messages = Vec::new();
        for &j in targets {
            if let Some(m) = self.message_for(j) {
                messages.push((j, m));
            }
        }
        self.collect();
        self.outgoing(messages)
    }

    /// Asks `targets` for what this replica is missing (and, in their
    /// answer, for their contexts so this replica can serve them too): the
    /// pull half of gossip.
    pub fn pull(&mut self, targets: &[PeerId]) -> Outgoing<S> {
        self.flush();
        let messages = targets.iter().map(|&j| (j, self.request(true))).collect();
        self.outgoing(messages)
    }

    fn request(&self, reply: bool) -> Message {
        Message::SyncRequest {
            session: self.session,
            context: self.state.context().clone(),
            reply,
        }
    }

    fn message_for(&mut self, j: PeerId) -> Option<Message> {
        let front = self.buffer.front().map_or(self.seq, |e| e.seq);
        let peer = self.peers.entry(j).or_default();
        match peer.acked {
            Some(a) if a >= self.seq => None,
            Some(a) if a >= front => {
                let start = (a - front) as usize;
                let parts: Vec<Causal<S>> = self
                    .buffer
                    .iter()
                    .skip(start)
                    .filter(|e| e.from != Some(j))
                    .map(|e| e.delta.clone())
                    .collect();
                // Leave out what the peer is known to have seen (it may have
                // had it from someone else): removals stay in.
                let interval = join_all(parts)
                    .map(|d| d.delta_since(&peer.known))
                    .filter(|d| !d.context().is_empty());
                match interval {
                    Some(delta) => Some(Message::Delta {
                        session: self.session,
                        from: a,
                        to: self.seq,
                        answer: None,
                        payload: Payload::seal(&delta, &self.config),
                    }),
                    // Nothing it has not seen: it is up to date.
                    None => {
                        peer.acked = Some(self.seq);
                        None
                    }
                }
            }
            _ => match peer.request_session {
                Some(answer) => {
                    let delta = self.state.delta_since(&peer.known);
                    if delta.context().is_empty() {
                        // It has seen everything we have.
                        return None;
                    }
                    Some(Message::Delta {
                        session: self.session,
                        from: 0,
                        to: self.seq,
                        answer: Some(answer),
                        payload: Payload::seal(&delta, &self.config),
                    })
                }
                None => Some(self.request(true)),
            },
        }
    }

    /// Drops buffered deltas every neighbour with a known position has.
    fn collect(&mut self) {
        let floor = self
            .peers
            .values()
            .filter_map(|p| p.acked)
            .min()
            .unwrap_or(self.seq);
        while self.buffer.front().is_some_and(|e| e.seq < floor) {
            self.buffer.pop_front();
        }
    }

    /// Decodes and handles bytes from `from`.
    pub fn receive_bytes(&mut self, from: PeerId, bytes: &[u8]) -> Result<Outgoing<S>, SyncError> {
        let msg = Message::decode(bytes, &self.config)?;
        self.receive(from, msg)
    }

    /// Handles a message from `from`. An error means the message was
    /// refused (close that connection); the state is untouched by it.
    pub fn receive(&mut self, from: PeerId, msg: Message) -> Result<Outgoing<S>, SyncError> {
        match msg {
            Message::SyncRequest {
                session,
                context,
                reply,
            } => {
                self.flush();
                let peer = self.peers.entry(from).or_default();
                // Whatever it acknowledged may be gone (it may have
                // restarted); serve it from its context until it acks again.
                peer.acked = None;
                peer.request_session = Some(session);
                peer.known.join(&context);
                let mut messages = Vec::new();
                if let Some(m) = self.message_for(from) {
                    messages.push((from, m));
                }
                if reply {
                    messages.push((from, self.request(false)));
                }
                Ok(self.outgoing(messages))
            }
            Message::Delta {
                session,
                from: start,
                to,
                answer,
                payload,
            } => {
                let delta: Causal<S> = payload.open(&self.config)?;
                let peer = self.peers.entry(from).or_default();
                let accept = match answer {
                    Some(mine) => mine == self.session,
                    None => {
                        matches!(peer.inbound, Some((s, joined)) if s == session && start <= joined)
                    }
                };
                if !accept {
                    // Joining it could show effects without their causes.
                    // A reply to an earlier session of ours is just stale.
                    // An interval we cannot place (a gap, or a sender
                    // session we have not joined from) means the sender's
                    // idea of what we have is wrong: tell it what we have,
                    // so it starts over from our context.
                    let messages = match answer {
                        Some(_) => Vec::new(),
                        None => alloc::vec![(from, self.request(false))],
                    };
                    return Ok(self.outgoing(messages));
                }
                peer.inbound = match peer.inbound {
                    Some((s, joined)) if s == session => Some((s, joined.max(to))),
                    _ => Some((session, to)),
                };
                peer.known.join(delta.context());
                if let Some(novelty) = self.state.join_novelty(delta) {
                    self.flush();
                    self.remember(novelty.clone());
                    self.append(Some(from), novelty);
                }
                // The acknowledgement leaves after the delta is durable. It
                // tells the sender what we have seen, so that it does not
                // forward us what we got from others.
                let ack = Message::Ack {
                    session,
                    to,
                    seen: self.state.context().vector_clock().clone(),
                };
                Ok(self.outgoing(alloc::vec![(from, ack)]))
            }
            Message::Ack { session, to, seen } => {
                let peer = self.peers.entry(from).or_default();
                peer.known.join(&CausalContext::from_vector_clock(seen));
                if session == self.session && to <= self.seq {
                    peer.acked = Some(peer.acked.map_or(to, |a| a.max(to)));
                    self.collect();
                }
                Ok(Outgoing::default())
            }
        }
    }
}
