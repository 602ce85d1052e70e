//! View change and new view (see [`crate::bft::view_change`] for the
//! decision rule and why it is safe).
//!
//! A replica whose request timer expired with nothing executed (a backup
//! suspecting the primary, or a stuck primary) stops taking part in the
//! view and broadcasts a signed view-change message for the next view. A
//! replica also joins when f+1 others want a higher view (so a faulty
//! minority cannot start view changes, and a correct majority cannot be
//! left behind). Once 2f+1 want its view, a replica waits a
//! backed-off timeout for the new view and moves on to the next if none
//! comes. The new primary broadcasts the signed view-changes it decided from;
//! every replica checks them (2f+1, well formed, from distinct replicas,
//! for that view, signed by its primary), recomputes the decision and
//! installs it.
//!
//! Persisted first: the view before the view-change message leaves (its P,
//! Q and C are already in the journal); before the new view's prepares or
//! new-view message leave, the view, every decided batch (`Accepted`) and
//! the chosen checkpoint — `Stable` if the replica has its state, else
//! `Chosen`, after which it fetches the state. A replica restarted without
//! the chosen checkpoint would accept batches again below it.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::sync::Arc;
use alloc::vec::Vec;

use super::Replica;
use crate::bft::auth::Authenticator;
use crate::bft::message::{
    Batch, Message, MessageKind, NewView, OpenError, Signed, SignedKind, ViewChange, VoteKind,
};
use crate::bft::persist::Record;
use crate::bft::step::{Event, Fault, Link, Step, TimerId};
use crate::bft::view_change::{Decision, decide, validate};
use crate::bft::{Digest, View};

impl<A: Authenticator> Replica<A> {
    /// Leaves the current view for `to`.
    pub(crate) fn start_view_change(&mut self, to: View, out: &mut Step) {
        if to < self.view || (to == self.view && !self.normal) {
            return;
        }
        if self.normal {
            self.left_view = Some(self.view);
        }
        self.view = to;
        self.normal = false;
        self.timers.request = None;
        self.timers.batch = None;
        self.timers.view_change = None;
        self.new_view = None;
        out.persist.push(Record::View {
            view: to,
            normal: false,
        });
        self.send_view_change(to, out);
        self.after_view_change_recorded(out);
    }

    /// Builds, records and broadcasts our view-change message for `to`.
    pub(crate) fn send_view_change(&mut self, to: View, out: &mut Step) {
        let vc = self.build_view_change(to);
        let signed = Signed::sign(&self.id, SignedKind::ViewChange, &vc);
        self.broadcast(Message::ViewChange(signed.clone()).encode(), out);
        self.vcs.insert(self.me, (vc, signed));
    }

    fn build_view_change(&self, to: View) -> ViewChange {
        let checkpoints = self
            .own
            .range(self.low..)
            .map(|(&s, (d, _))| (s, *d))
            .collect();
        let mut prepared = Vec::new();
        let mut preprepared = Vec::new();
        let mut batches: BTreeMap<Digest, Batch> = BTreeMap::new();
        for (&seq, slot) in self.log.above(self.low) {
            if seq > self.low + self.cfg.window {
                break;
            }
            if let Some((v, d)) = slot.prepared {
                prepared.push((seq, v, d));
            }
            let mut qs: Vec<_> = slot.preprepared.iter().map(|q| (seq, q.0, q.1)).collect();
            qs.sort_unstable_by_key(|q| (q.0, q.2));
            preprepared.extend(qs);
            for q in &slot.preprepared {
                batches.entry(q.1).or_insert_with(|| (*q.2).clone());
            }
        }
        ViewChange {
            view: to,
            low: self.low,
            checkpoints,
            prepared,
            preprepared,
            batches: batches.into_values().collect(),
        }
    }

    /// After our view change changed: maybe we are the new primary, maybe
    /// 2f+1 already want this view.
    fn after_view_change_recorded(&mut self, out: &mut Step) {
        if self.normal {
            return;
        }
        let target = self.view;
        if self.cfg.primary(target) == self.me {
            self.try_new_view(out);
            if self.normal {
                return;
            }
        }
        // Replicas already past this view left it too: count them, or a
        // lost view-change message could leave us waiting for a new view
        // that a silent primary never sends, with no timer running.
        let count = self
            .vcs
            .values()
            .filter(|(vc, _)| vc.view >= target)
            .count();
        if count >= self.quorum() && self.timers.view_change.is_none() {
            let after = self.cfg.view_change_timeout << self.vc_attempts.min(3);
            let g = self.arm(out, TimerId::ViewChange, after);
            self.timers.view_change = Some(g);
        }
    }

    /// Opens and checks a signed view-change message.
    fn open_view_change(&self, signed: &Signed) -> Result<ViewChange, (bool, &'static str)> {
        let vc: ViewChange = match signed.open(&self.id, SignedKind::ViewChange) {
            Ok(vc) => vc,
            Err(OpenError::BadSignature) => return Err((true, "bad signature")),
            Err(OpenError::Malformed(_)) => return Err((false, "signed body does not decode")),
        };
        validate(&vc, self.cfg.window, self.cfg.checkpoint_interval).map_err(|r| (false, r))?;
        Ok(vc)
    }

    pub(crate) fn on_view_change(&mut self, link: Link, signed: Signed, out: &mut Step) {
        let vc = match self.open_view_change(&signed) {
            Ok(vc) => vc,
            Err((bad_auth, reason)) => {
                out.faults.push(if bad_auth {
                    Fault::BadAuth {
                        link,
                        kind: MessageKind::ViewChange,
                    }
                } else {
                    Fault::Invalid {
                        link,
                        kind: MessageKind::ViewChange,
                        reason,
                    }
                });
                return;
            }
        };
        let from = signed.signer;
        if from == self.me {
            return;
        }
        if self.normal && vc.view <= self.view {
            // The sender is behind: show it the view we are in.
            if let Some(nv) = &self.new_view {
                self.send_to(from, Message::NewView(nv.clone()).encode(), out);
            }
            return;
        }
        if self
            .vcs
            .get(&from)
            .is_some_and(|(old, _)| old.view >= vc.view)
        {
            return;
        }
        let view = vc.view;
        self.vcs.insert(from, (vc, signed));
        // Join if f+1 others want a view above ours.
        let mine = self.view;
        let mut above: Vec<View> = self
            .vcs
            .iter()
            .filter(|(r, (vc, _))| **r != self.me && vc.view > mine)
            .map(|(_, (vc, _))| vc.view)
            .collect();
        if above.len() > self.f() {
            above.sort_unstable();
            // The smallest view that f+1 want (the (f+1)-th largest).
            let join = above[above.len() - 1 - self.f()];
            self.start_view_change(join, out);
            return;
        }
        if !self.normal && view >= self.view {
            self.after_view_change_recorded(out);
        }
    }

    /// New primary: decide from the view changes we hold and start.
    fn try_new_view(&mut self, out: &mut Step) {
        let target = self.view;
        let chosen: Vec<(&ViewChange, &Signed)> = self
            .vcs
            .values()
            .filter(|(vc, _)| vc.view == target)
            .map(|(vc, s)| (vc, s))
            .collect();
        if chosen.len() < self.quorum() {
            return;
        }
        let s: Vec<&ViewChange> = chosen.iter().map(|c| c.0).collect();
        let Some(decision) = decide(self.f(), self.cfg.window, &s) else {
            return;
        };
        let nv = NewView {
            view: target,
            view_changes: chosen.iter().map(|c| c.1.clone()).collect(),
        };
        let signed = Signed::sign(&self.id, SignedKind::NewView, &nv);
        self.install_new_view(target, decision, signed, true, out);
    }

    pub(crate) fn on_new_view(&mut self, link: Link, signed: Signed, out: &mut Step) {
        let invalid = |reason| Fault::Invalid {
            link,
            kind: MessageKind::NewView,
            reason,
        };
        let nv: NewView = match signed.open(&self.id, SignedKind::NewView) {
            Ok(nv) => nv,
            Err(OpenError::BadSignature) => {
                out.faults.push(Fault::BadAuth {
                    link,
                    kind: MessageKind::NewView,
                });
                return;
            }
            Err(OpenError::Malformed(_)) => {
                out.faults.push(invalid("signed body does not decode"));
                return;
            }
        };
        if signed.signer != self.cfg.primary(nv.view) {
            out.faults.push(invalid("not signed by the view's primary"));
            return;
        }
        if nv.view < self.view || (nv.view == self.view && self.normal) || signed.signer == self.me
        {
            return;
        }
        let mut seen = BTreeSet::new();
        let mut vcs = Vec::new();
        for s in &nv.view_changes {
            match self.open_view_change(s) {
                Ok(vc) if vc.view == nv.view && seen.insert(s.signer) => vcs.push(vc),
                _ => {
                    out.faults
                        .push(invalid("holds a bad or duplicate view change"));
                    return;
                }
            }
        }
        let refs: Vec<&ViewChange> = vcs.iter().collect();
        let Some(decision) = decide(self.f(), self.cfg.window, &refs) else {
            out.faults.push(invalid("its view changes decide nothing"));
            return;
        };
        self.install_new_view(nv.view, decision, signed, false, out);
    }

    /// Enters `view` as decided.
    fn install_new_view(
        &mut self,
        view: View,
        decision: Decision,
        nv: Signed,
        mine: bool,
        out: &mut Step,
    ) {
        self.view = view;
        self.normal = true;
        self.left_view = None;
        self.vc_attempts = 0;
        self.timers.view_change = None;
        self.timers.request = None;
        self.timers.batch = None;
        out.persist.push(Record::View { view, normal: true });
        if mine {
            self.broadcast(Message::NewView(nv.clone()).encode(), out);
        }
        self.new_view = Some(nv);
        self.vcs.retain(|_, (vc, _)| vc.view > view);

        // The checkpoint the view starts from.
        let (h, hd) = decision.checkpoint;
        if h > self.low {
            match self.own.get(&h) {
                Some((d, data)) if *d == hd => {
                    let data = data.clone();
                    out.persist.push(Record::Stable {
                        data,
                        digest: hd,
                        proof: Vec::new(),
                    });
                    self.set_low(h, hd, Vec::new());
                    out.events.push(Event::Stable { seq: h });
                }
                _ => {
                    // Persisted with the prepares below: a replica that
                    // restarted with its old low watermark would accept
                    // batches again at sequence numbers h already covers.
                    out.persist.push(Record::Chosen { seq: h, digest: hd });
                    self.set_low(h, hd, Vec::new());
                    if self.last_executed < h || self.own.contains_key(&h) {
                        self.start_fetch(h, hd, Vec::new(), out);
                    }
                }
            }
        }

        // The decided batches become this view's pre-prepares.
        let is_primary = self.is_primary();
        let mut max_s = self.low;
        let mut in_view = BTreeSet::new();
        for (seq, digest, batch) in decision.slots {
            if seq <= self.low {
                continue;
            }
            max_s = max_s.max(seq);
            for r in &batch.requests {
                in_view.insert((r.request.client, r.request.timestamp));
            }
            let batch = Arc::new(batch);
            out.persist.push(Record::Accepted {
                view,
                seq,
                digest,
                batch: batch.clone(),
                auth: None,
            });
            self.log.slot(seq).accept(view, digest, batch, None);
            if !is_primary {
                self.send_vote(VoteKind::Prepare, seq, digest, out);
            }
            // Already committed here in an earlier view: the batch is
            // decided, so vouch for it at once — a replica that missed the
            // earlier commits may need ours to finish it in this view.
            if self
                .log
                .get(seq)
                .is_some_and(|s| s.committed == Some(digest))
            {
                self.log.slot(seq).commit_sent = Some(view);
                self.send_vote(VoteKind::Commit, seq, digest, out);
            }
        }
        self.next_seq = max_s.max(self.low) + 1;
        // Requests not carried into the view are proposable again.
        self.queue.clear();
        let queue = &mut self.queue;
        self.pending.for_each_mut(|k, p| {
            p.proposed = in_view.contains(k);
            if !p.proposed {
                queue.push_back(*k);
            }
        });
        out.events.push(Event::NewView {
            view,
            primary: self.primary(),
        });

        // Messages that arrived early for this view.
        let future = core::mem::take(&mut self.future);
        for (link, v, msg) in future {
            if v == view {
                self.on_message(link, msg, out);
            } else if v > view {
                self.future.push_back((link, v, msg));
            }
        }
        let seqs: Vec<_> = self.log.above(self.low).map(|(s, _)| *s).collect();
        for seq in seqs {
            self.check_prepared(seq, out);
            self.check_committed(seq, out);
        }
        self.ensure_request_timer(out);
        self.try_execute(out);
        self.propose(false, out);
    }
}
