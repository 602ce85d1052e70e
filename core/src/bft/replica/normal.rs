//! The normal case: client requests, batching, pre-prepare / prepare /
//! commit, execution in sequence order, replies.

use alloc::sync::Arc;
use alloc::vec::Vec;

use super::{Awaiting, Executed, Pending, Replica, UsageError};
use crate::bft::auth::Authenticator;
use crate::bft::clients::Standing;
use crate::bft::log::Recorded;
use crate::bft::message::{
    AuthRequest, Batch, Message, MessageKind, PrePrepare, Reply, Vote, VoteKind, Voted,
};
use crate::bft::proof::{Evidence, Proof};
use crate::bft::step::{Event, Execute, Fault, Link, Outgoing, Step, Target, TimerId};
use crate::bft::{Digest, Seq, View};

impl<A: Authenticator> Replica<A> {
    /// True if the request carries its client's valid MAC for us.
    fn request_mac_ok(&self, r: &AuthRequest, digest: &Digest) -> bool {
        self.client_keys
            .get(&r.request.client)
            .and_then(|k| k.key(0))
            .zip(r.macs.get(self.me as usize))
            .is_some_and(|(k, tag)| k.check(&digest.0, tag))
    }

    /// Checks this replica's MAC on a request; reports a fault if bad.
    fn request_ok(&self, link: Link, r: &AuthRequest, digest: &Digest, out: &mut Step) -> bool {
        let ok = self.request_mac_ok(r, digest);
        if !ok {
            out.faults.push(Fault::BadAuth {
                link,
                kind: MessageKind::Request,
            });
        }
        ok
    }

    pub(crate) fn on_request(&mut self, link: Link, r: AuthRequest, out: &mut Step) {
        if r.request.op.len() > self.cfg.max_op_bytes {
            out.faults.push(Fault::Invalid {
                link,
                kind: MessageKind::Request,
                reason: "operation too large",
            });
            return;
        }
        let digest = r.request.digest();
        if !self.request_ok(link, &r, &digest, out) {
            return;
        }
        let key = (r.request.client, r.request.timestamp);
        match self.clients.standing(key.0, key.1) {
            Standing::Executed => {
                // A retry: the client lost our reply.
                if let Some(result) = self.clients.reply(key.0, key.1) {
                    self.reply(key.0, key.1, result, out);
                }
                return;
            }
            Standing::TooOld => return,
            Standing::Fresh => {}
        }
        if self.pending.contains_key(&key) || self.pending.len() >= self.cfg.max_pending {
            return;
        }
        if self.normal && !self.is_primary() {
            // The client may have skipped the primary (it broadcasts on
            // retry): make sure the primary has it, and watch it.
            let to = self.primary();
            self.send_to(to, codec_request(&r), out);
        }
        self.pending.insert(
            key,
            Pending {
                request: r,
                digest,
                proposed: false,
            },
        );
        self.queue.push_back(key);
        self.ensure_request_timer(out);
        self.propose(false, out);
    }

    /// True if something waits to execute here: a client request, or a
    /// batch accepted in this view (its requests were received too, inside
    /// the pre-prepare; a null batch has none).
    pub(crate) fn waiting(&self) -> bool {
        !self.pending.is_empty()
            || self
                .log
                .above(self.last_executed)
                .any(|(_, s)| s.pp_in(self.view).is_some())
    }

    /// Arms the request timer if something waits and it is not armed.
    pub(crate) fn ensure_request_timer(&mut self, out: &mut Step) {
        if self.normal && self.timers.request.is_none() && self.waiting() {
            let after = self.cfg.request_timeout;
            let g = self.arm(out, TimerId::Request, after);
            self.timers.request = Some(g);
            self.timers.request_mark = self.last_executed;
        }
    }

    pub(crate) fn on_request_timeout(&mut self, out: &mut Step) {
        // Requests that can no longer execute stop counting.
        let clients = &self.clients;
        self.pending
            .retain(|&(c, t), _| clients.standing(c, t) == Standing::Fresh);
        if !self.normal || !self.waiting() {
            return;
        }
        // Backups suspect the primary, and a primary that executed nothing
        // for a whole period leaves too: a backup that timed out early may
        // have left the view with the votes the others still need, while
        // the only other correct one already executed the requests and has
        // nothing pending (it never times out). Then the primary's view
        // change is the f+1-th that moves everyone on.
        let stuck = self.last_executed == self.timers.request_mark && self.fetching.is_none();
        if stuck {
            let next = self.view + 1;
            self.start_view_change(next, out);
        } else {
            self.ensure_request_timer(out);
        }
    }

    /// Primary: proposes batches while the window and pipeline allow.
    /// Partial batches wait for the batch timer unless `flush`.
    pub(crate) fn propose(&mut self, flush: bool, out: &mut Step) {
        while self.normal && self.is_primary() {
            let high = self.low + self.cfg.window;
            let in_flight = self.next_seq.saturating_sub(self.last_executed + 1);
            if self.next_seq > high || in_flight >= self.cfg.pipeline {
                return;
            }
            // Not even enough queued entries (stale ones included) for a
            // full batch: wait, without scanning.
            if self.queue.is_empty() {
                return;
            }
            if self.queue.len() < self.cfg.batch_max && !flush {
                self.arm_batch_timer(out);
                return;
            }
            // Taken requests are marked proposed at once (a key queued
            // twice is taken once), and unmarked if the batch waits.
            let mut batch = Vec::with_capacity(self.cfg.batch_max.min(self.queue.len()));
            let mut hasher = Batch::hasher();
            let mut i = 0;
            while batch.len() < self.cfg.batch_max && i < self.queue.len() {
                let key = self.queue[i];
                i += 1;
                if let Some(p) = self.pending.get_mut(&key)
                    && !p.proposed
                {
                    p.proposed = true;
                    hasher.part(&p.digest.0);
                    batch.push(p.request.clone());
                }
            }
            if batch.is_empty() {
                self.queue.clear();
                return;
            }
            if batch.len() < self.cfg.batch_max && !flush {
                for r in &batch {
                    let key = (r.request.client, r.request.timestamp);
                    if let Some(p) = self.pending.get_mut(&key) {
                        p.proposed = false;
                    }
                }
                // Stale entries made the queue look full: drop them.
                let pending = &self.pending;
                self.queue
                    .retain(|k| pending.get(k).is_some_and(|p| !p.proposed));
                self.arm_batch_timer(out);
                return;
            }
            self.queue.drain(..i);
            let batch = Batch { requests: batch };
            let digest = hasher.finish();
            let seq = self.next_seq;
            self.next_seq += 1;
            self.send_pre_prepare(seq, digest, Arc::new(batch), out);
        }
    }

    fn arm_batch_timer(&mut self, out: &mut Step) {
        if self.timers.batch.is_none() {
            let after = self.cfg.batch_delay;
            let g = self.arm(out, TimerId::Batch, after);
            self.timers.batch = Some(g);
        }
    }

    fn send_pre_prepare(&mut self, seq: Seq, digest: Digest, batch: Arc<Batch>, out: &mut Step) {
        let vote = Vote {
            view: self.view,
            seq,
            digest,
            replica: self.me,
        };
        let auth = self.auth.seal(&vote.payload(VoteKind::PrePrepare));
        out.persist.push(crate::bft::persist::Record::Accepted {
            view: self.view,
            seq,
            digest,
            batch: batch.clone(),
            auth: Some(auth.clone()),
        });
        let bytes = Message::encode_pre_prepare(&vote, &auth, &batch);
        self.broadcast(bytes, out);
        let view = self.view;
        self.log.slot(seq).accept(view, digest, batch, Some(auth));
    }

    /// True if `seq` is inside the window.
    pub(crate) fn in_window(&self, seq: Seq) -> bool {
        seq > self.low && seq <= self.low + self.cfg.window
    }

    fn buffer_future(&mut self, link: Link, view: View, msg: Message) {
        if self.future.len() < super::MAX_FUTURE && view <= self.view.saturating_add(2) {
            self.future.push_back((link, view, msg));
        }
    }

    pub(crate) fn on_pre_prepare(&mut self, link: Link, pp: PrePrepare, out: &mut Step) {
        let vote = pp.vote;
        if vote.replica == self.me {
            // Our own proposal echoed back (forwarded or replayed).
            return;
        }
        let payload = vote.payload(VoteKind::PrePrepare);
        if vote.replica != self.cfg.primary(vote.view)
            || !self.auth.verify(vote.replica, &payload, &pp.auth)
        {
            out.faults.push(Fault::BadAuth {
                link,
                kind: MessageKind::PrePrepare,
            });
            return;
        }
        if vote.view > self.view || (vote.view == self.view && !self.normal) {
            self.buffer_future(link, vote.view, Message::PrePrepare(pp));
            return;
        }
        // While changing views, authentic proposals of earlier views still
        // supply batches, and their commits still decide (we never vote).
        let observing = !self.normal && vote.view < self.view;
        if (vote.view < self.view && !observing) || !self.in_window(vote.seq) {
            return;
        }
        if observing
            && self
                .log
                .get(vote.seq)
                .is_some_and(|s| s.batch(&vote.digest).is_some())
        {
            return;
        }
        if let Some(a) = self.log.get(vote.seq).and_then(|s| s.pp_in(vote.view)) {
            if a.digest != vote.digest {
                self.equivocation(
                    VoteKind::PrePrepare,
                    &vote,
                    &pp.auth,
                    a.auth.as_ref(),
                    a.digest,
                    out,
                );
            }
            return;
        }
        if pp.batch.requests.len() > self.cfg.batch_max {
            out.faults.push(Fault::Invalid {
                link,
                kind: MessageKind::PrePrepare,
                reason: "batch too large",
            });
            return;
        }
        // Every request must carry the client's MAC for us: the primary
        // cannot invent requests.
        let mut hasher = Batch::hasher();
        for r in &pp.batch.requests {
            let d = r.request.digest();
            if r.request.op.len() > self.cfg.max_op_bytes {
                out.faults.push(Fault::Invalid {
                    link,
                    kind: MessageKind::PrePrepare,
                    reason: "request too large",
                });
                return;
            }
            // Our tag, or a copy of the same request we verified ourselves
            // (a relay may have spoiled our tag on the primary's copy).
            let verified = self.request_mac_ok(r, &d)
                || self
                    .pending
                    .get(&(r.request.client, r.request.timestamp))
                    .is_some_and(|p| p.request.request == r.request);
            if !verified {
                out.faults.push(Fault::UnverifiedRequest {
                    link,
                    client: r.request.client,
                });
                return;
            }
            hasher.part(&d.0);
        }
        if hasher.finish() != vote.digest {
            out.faults.push(Fault::Invalid {
                link,
                kind: MessageKind::PrePrepare,
                reason: "batch does not match its digest",
            });
            return;
        }
        let batch = Arc::new(pp.batch);
        if observing {
            let slot = self.log.slot(vote.seq);
            slot.observed = Some(crate::bft::log::Accepted {
                view: vote.view,
                digest: vote.digest,
                batch,
                auth: Some(pp.auth),
            });
            self.check_committed(vote.seq, out);
            return;
        }
        out.persist.push(crate::bft::persist::Record::Accepted {
            view: vote.view,
            seq: vote.seq,
            digest: vote.digest,
            batch: batch.clone(),
            auth: Some(pp.auth.clone()),
        });
        self.log
            .slot(vote.seq)
            .accept(vote.view, vote.digest, batch, Some(pp.auth));
        self.send_vote(VoteKind::Prepare, vote.seq, vote.digest, out);
        self.check_prepared(vote.seq, out);
        // 2f+1 commits may have come before the batch: they decide it now
        // (their retransmissions would be ignored as duplicates).
        self.check_committed(vote.seq, out);
        self.ensure_request_timer(out);
    }

    /// Primary, idle: proposes the null batch. Sent when a replica that
    /// left this view lags behind us (see `on_status`): if 2f+1 replicas
    /// are still in the view it commits, and the laggard learns from its
    /// commits and the resends; if not, it does not execute, the timers of
    /// those still here expire and they join the view change the laggard
    /// started. Without it an idle group would leave the laggard stranded
    /// until the next request.
    pub(crate) fn propose_null(&mut self, out: &mut Step) {
        let idle = self.normal
            && self.is_primary()
            && self.pending.is_empty()
            && self.awaiting.is_none()
            && self.next_seq == self.last_executed + 1
            && self.in_window(self.next_seq);
        if !idle {
            return;
        }
        let batch = Batch::default();
        let digest = batch.digest();
        let seq = self.next_seq;
        self.next_seq += 1;
        self.send_pre_prepare(seq, digest, Arc::new(batch), out);
        self.ensure_request_timer(out);
    }

    /// Sends our prepare or commit and records it as ours.
    pub(crate) fn send_vote(&mut self, kind: VoteKind, seq: Seq, digest: Digest, out: &mut Step) {
        let vote = Vote {
            view: self.view,
            seq,
            digest,
            replica: self.me,
        };
        let auth = self.auth.seal(&vote.payload(kind));
        let sig = match &auth {
            crate::bft::auth::Auth::Signature(s) => Some(*s),
            crate::bft::auth::Auth::Macs(_) => None,
        };
        let voted = Voted { vote, auth };
        let msg = match kind {
            VoteKind::Commit => Message::Commit(voted),
            _ => Message::Prepare(voted),
        };
        self.broadcast(msg.encode(), out);
        let (me, view) = (self.me, self.view);
        let slot = self.log.slot(seq);
        slot.votes_for(view);
        let rec = Recorded { digest, sig };
        match kind {
            VoteKind::Commit => {
                slot.commits.insert(me, rec);
            }
            _ => {
                slot.prepares.insert(me, rec);
            }
        }
    }

    /// Reports two conflicting votes; a proof if both are signed.
    fn equivocation(
        &self,
        kind: VoteKind,
        vote: &Vote,
        auth: &crate::bft::auth::Auth,
        first: Option<&crate::bft::auth::Auth>,
        first_digest: Digest,
        out: &mut Step,
    ) {
        use crate::bft::auth::Auth;
        if let (Auth::Signature(b), Some(Auth::Signature(a))) = (auth, first) {
            out.faults
                .push(Fault::Misbehaviour(alloc::boxed::Box::new(Proof {
                    a: Evidence::Vote {
                        kind,
                        vote: Vote {
                            digest: first_digest,
                            ..*vote
                        },
                        sig: *a,
                    },
                    b: Evidence::Vote {
                        kind,
                        vote: *vote,
                        sig: *b,
                    },
                })));
        }
    }

    pub(crate) fn on_vote(&mut self, link: Link, kind: VoteKind, v: Voted, out: &mut Step) {
        let vote = v.vote;
        if vote.replica == self.me {
            return;
        }
        if !self.auth.verify(vote.replica, &vote.payload(kind), &v.auth) {
            out.faults.push(Fault::BadAuth {
                link,
                kind: if kind == VoteKind::Commit {
                    MessageKind::Commit
                } else {
                    MessageKind::Prepare
                },
            });
            return;
        }
        if vote.view > self.view || (vote.view == self.view && !self.normal) {
            let msg = if kind == VoteKind::Commit {
                Message::Commit(v)
            } else {
                Message::Prepare(v)
            };
            self.buffer_future(link, vote.view, msg);
            return;
        }
        let observing = !self.normal && kind == VoteKind::Commit && vote.view < self.view;
        if (vote.view < self.view && !observing) || !self.in_window(vote.seq) {
            return;
        }
        // The primary's pre-prepare stands for its prepare.
        if kind == VoteKind::Prepare && vote.replica == self.primary() {
            return;
        }
        let sig = match &v.auth {
            crate::bft::auth::Auth::Signature(s) => Some(*s),
            crate::bft::auth::Auth::Macs(_) => None,
        };
        let view = vote.view;
        let slot = self.log.slot(vote.seq);
        if observing && slot.votes_view > view {
            return;
        }
        slot.votes_for(view);
        let map = if kind == VoteKind::Commit {
            &mut slot.commits
        } else {
            &mut slot.prepares
        };
        if let Some(prev) = map.get(&vote.replica).copied() {
            if prev.digest != vote.digest
                && let (Some(a), Some(b)) = (prev.sig, sig)
            {
                out.faults
                    .push(Fault::Misbehaviour(alloc::boxed::Box::new(Proof {
                        a: Evidence::Vote {
                            kind,
                            vote: Vote {
                                digest: prev.digest,
                                ..vote
                            },
                            sig: a,
                        },
                        b: Evidence::Vote { kind, vote, sig: b },
                    })));
            }
            return;
        }
        map.insert(
            vote.replica,
            Recorded {
                digest: vote.digest,
                sig,
            },
        );
        match kind {
            VoteKind::Commit => self.check_committed(vote.seq, out),
            _ => self.check_prepared(vote.seq, out),
        }
    }

    /// Pre-prepare plus 2f matching prepares: prepared; send our commit.
    pub(crate) fn check_prepared(&mut self, seq: Seq, out: &mut Step) {
        let (view, need) = (self.view, 2 * self.f());
        let Some(slot) = self.log.get(seq) else {
            return;
        };
        let Some(pp) = slot.pp_in(view) else {
            return;
        };
        if slot.commit_sent == Some(view)
            || slot.votes_view != view
            || crate::bft::log::Slot::count(&slot.prepares, &pp.digest) < need
        {
            return;
        }
        let digest = pp.digest;
        out.persist
            .push(crate::bft::persist::Record::Prepared { view, seq, digest });
        let slot = self.log.slot(seq);
        slot.prepared = Some((view, digest));
        slot.commit_sent = Some(view);
        self.send_vote(VoteKind::Commit, seq, digest, out);
        self.check_committed(seq, out);
    }

    /// 2f+1 matching commits for a batch we hold: committed (f+1 correct
    /// replicas prepared it), whether or not it prepared here — a replica
    /// that missed messages, or is changing views, still learns it.
    pub(crate) fn check_committed(&mut self, seq: Seq, out: &mut Step) {
        let need = self.quorum();
        let Some(slot) = self.log.get(seq) else {
            return;
        };
        if slot.committed.is_some() {
            return;
        }
        let mut found = None;
        for r in slot.commits.values() {
            if found.is_none()
                && crate::bft::log::Slot::count(&slot.commits, &r.digest) >= need
                && slot.batch(&r.digest).is_some()
            {
                found = Some(r.digest);
            }
        }
        if let Some(d) = found {
            self.commit(seq, d, out);
        }
    }

    /// Records `digest` as committed at `seq` and executes what it can.
    fn commit(&mut self, seq: Seq, digest: Digest, out: &mut Step) {
        let slot = self.log.slot(seq);
        let Some(batch) = slot.batch(&digest).cloned() else {
            return;
        };
        slot.committed = Some(digest);
        // Committed without having sent our own commit in this view (we
        // learnt it from the certificate): vouch for it now. The batch is
        // decided — the first certificate had f+1 correct replicas that
        // prepared it — and replicas that saw fewer matching commits (a
        // faulty voter told them something else) may need ours.
        let vouch = self.normal
            && slot.votes_view == self.view
            && slot.commit_sent != Some(self.view)
            && slot.pp_in(self.view).is_some_and(|a| a.digest == digest);
        out.persist
            .push(crate::bft::persist::Record::Committed { seq, digest, batch });
        if vouch {
            self.log.slot(seq).commit_sent = Some(self.view);
            self.send_vote(VoteKind::Commit, seq, digest, out);
        }
        self.try_execute(out);
    }

    /// A forwarded batch: keep it if it is the one commits name (or the
    /// first we hear of), then see whether it completes a commit.
    pub(crate) fn on_batch(&mut self, link: Link, seq: Seq, batch: Batch, out: &mut Step) {
        if !self.in_window(seq) || batch.requests.len() > self.cfg.batch_max {
            return;
        }
        if self.log.get(seq).is_some_and(|s| s.committed.is_some()) {
            return;
        }
        let digest = batch.digest();
        let slot = self.log.slot(seq);
        if slot.batch(&digest).is_some() {
            return;
        }
        let votes = |d: &Digest| crate::bft::log::Slot::count(&slot.commits, d);
        let better = match &slot.observed {
            None => true,
            Some(o) => votes(&digest) > votes(&o.digest),
        };
        if !better {
            return;
        }
        let _ = link;
        slot.observed = Some(crate::bft::log::Accepted {
            view: slot.votes_view,
            digest,
            batch: Arc::new(batch),
            auth: None,
        });
        self.check_committed(seq, out);
    }

    /// Hands the next committed batch to the application, if the previous
    /// one was answered.
    pub(crate) fn try_execute(&mut self, out: &mut Step) {
        if self.awaiting.is_some() || self.fetching.is_some() {
            return;
        }
        let seq = self.last_executed + 1;
        let Some(slot) = self.log.get(seq) else {
            return;
        };
        let Some(digest) = slot.committed else {
            return;
        };
        let Some(batch) = slot.batch(&digest).cloned() else {
            return;
        };
        let view = slot.prepared.map_or(self.view, |p| p.0);
        let mut fresh = Vec::with_capacity(batch.requests.len());
        // The key list of the previous execution, reused.
        let mut keys = core::mem::take(&mut self.spare_keys);
        keys.clear();
        keys.reserve(batch.requests.len());
        for (i, r) in batch.requests.iter().enumerate() {
            let (c, t) = (r.request.client, r.request.timestamp);
            if self.clients.mark(c, t) {
                fresh.push(i as u32);
                keys.push((c, t));
            }
            self.pending.remove(&(c, t));
        }
        let checkpoint = seq % self.cfg.checkpoint_interval == 0;
        self.last_executed = seq;
        self.awaiting = Some(Awaiting {
            seq,
            fresh: keys,
            checkpoint,
        });
        out.events.push(Event::Execute(Execute {
            seq,
            view,
            digest,
            batch,
            fresh,
            checkpoint,
        }));
    }

    pub(crate) fn on_executed(&mut self, done: Executed, out: &mut Step) -> Result<(), UsageError> {
        let Some(aw) = self.awaiting.as_ref() else {
            return Err(UsageError::NotAwaited(done.seq));
        };
        if aw.seq != done.seq {
            return Err(UsageError::NotAwaited(done.seq));
        }
        if aw.fresh.len() != done.results.len() {
            return Err(UsageError::ResultCount {
                expected: aw.fresh.len(),
                got: done.results.len(),
            });
        }
        if aw.checkpoint != done.state.is_some() {
            return Err(UsageError::State);
        }
        let Some(aw) = self.awaiting.take() else {
            return Err(UsageError::NotAwaited(done.seq));
        };
        out.send.reserve(aw.fresh.len());
        for (&(c, t), result) in aw.fresh.iter().zip(done.results.iter()) {
            self.reply(c, t, result, out);
            self.clients.set_reply(c, t, result);
        }
        self.spare_keys = aw.fresh;
        if let Some((app_digest, snapshot)) = done.state {
            self.take_checkpoint(done.seq, app_digest, snapshot, out);
        }
        // Progress restarts the suspicion clock.
        if self.timers.request.is_some() {
            self.timers.request = None;
        }
        self.ensure_request_timer(out);
        self.try_execute(out);
        self.propose(false, out);
        Ok(())
    }

    /// Sends the reply to (client, ts).
    pub(crate) fn reply(&self, client: u64, ts: u64, result: &[u8], out: &mut Step) {
        let Some(key) = self.client_keys.get(&client).and_then(|k| k.key(0)) else {
            return;
        };
        let header = Reply::header(self.view, client, ts, self.me);
        let mac = key.tag_parts(&[&header, result]);
        out.send.push(Outgoing {
            to: Target::Client(client),
            bytes: Message::encode_reply(self.view, client, ts, self.me, result, &mac),
        });
    }
}

/// Encodes a request message without copying it.
fn codec_request(r: &AuthRequest) -> Vec<u8> {
    Message::encode_request(r)
}
