//! Retransmission. PBFT assumes messages eventually arrive; over a lossy
//! network something must resend them. Every replica broadcasts a short
//! authenticated status (view, last executed, low watermark) periodically;
//! a peer that sees it is behind resends what it lacks: the new-view
//! message, its own view change, the stable checkpoint's certificate, the
//! pre-prepares and its own votes for the sequence numbers not yet
//! executed there. Nothing is resent to a replica that reports no lag.
//! An idle primary that hears from a lagging replica which left its view
//! proposes the null batch, to find out whether the view can still make
//! progress without it (see `propose_null`).

use super::Replica;
use crate::bft::auth::{Auth, Authenticator};
use crate::bft::message::{Message, MessageKind, Status, Vote, VoteKind, Voted};
use crate::bft::step::{Fault, Link, Step};

impl<A: Authenticator> Replica<A> {
    pub(crate) fn status(&self) -> Status {
        Status {
            replica: self.me,
            view: self.view,
            normal: self.normal,
            executed: self.last_executed,
            low: self.low,
        }
    }

    pub(crate) fn on_status_tick(&mut self, out: &mut Step) {
        let st = self.status();
        let auth = self.auth.seal(&st.payload());
        self.broadcast(Message::Status(st, auth).encode(), out);
        if !self.normal
            && let Some((_, signed)) = self.vcs.get(&self.me)
        {
            self.broadcast(Message::ViewChange(signed.clone()).encode(), out);
        }
        // No progress for a whole period: maybe the commits we miss can no
        // longer be gathered; a weakly certified checkpoint still can be.
        if self.last_executed == self.progress_mark {
            self.fetch_if_stuck(out);
        }
        self.progress_mark = self.last_executed;
        self.send_fetch(out);
    }

    pub(crate) fn on_status(&mut self, link: Link, st: Status, auth: Auth, out: &mut Step) {
        if st.replica == self.me {
            return;
        }
        if !self.auth.verify(st.replica, &st.payload(), &auth) {
            out.faults.push(Fault::BadAuth {
                link,
                kind: MessageKind::Status,
            });
            return;
        }
        let j = st.replica;
        if j == self.me {
            return;
        }
        // A replica that left our view and lags: find out whether the view
        // can still make progress without it.
        if self.normal && !st.normal && st.view > self.view && st.executed < self.last_executed {
            self.propose_null(out);
        }
        // Views.
        if self.normal && (st.view < self.view || (st.view == self.view && !st.normal)) {
            if let Some(nv) = &self.new_view {
                self.send_to(j, Message::NewView(nv.clone()).encode(), out);
            }
        }
        if !self.normal
            && st.view <= self.view
            && let Some((_, signed)) = self.vcs.get(&self.me)
        {
            self.send_to(j, Message::ViewChange(signed.clone()).encode(), out);
        }
        // Checkpoints: a certificate for our stable one if it is behind it,
        // our own votes for the ones above.
        if st.low < self.low && self.stable_proof.len() >= self.quorum() {
            for s in &self.stable_proof {
                self.send_to(j, Message::Checkpoint(s.clone()).encode(), out);
            }
        }
        for (&seq, votes) in self.ckpt_votes.range(st.low.max(self.low) + 1..) {
            if let Some((_, s)) = votes.get(&self.me) {
                let _ = seq;
                self.send_to(j, Message::Checkpoint(s.clone()).encode(), out);
            }
        }
        // The normal case, for the sequence numbers it has not executed.
        // The votes we already cast: in our view if the peer is in it or
        // leaving it; in the view we left if we are changing (resending a
        // promise already made changes nothing, and a peer still in that
        // view, or learning from it, may need it).
        let view = if self.normal {
            let same = st.normal && st.view == self.view;
            let leaving = !st.normal && st.view > self.view;
            if !(same || leaving) {
                return;
            }
            self.view
        } else {
            match self.left_view {
                Some(lv) if st.view >= lv => lv,
                _ => return,
            }
        };
        let from = st.executed.max(self.low);
        let mut resend = alloc::vec::Vec::new();
        for (&seq, slot) in self.log.above(from) {
            let Some(pp) = slot.pp_in(view) else {
                continue;
            };
            // Only the primary resends its pre-prepare: a forwarded MAC
            // vector may be bad for the receiver though good for us, and the
            // receiver would blame us. Others send the bare batch, which
            // the receiver checks against the commits' digest.
            match &pp.auth {
                Some(auth) if self.cfg.primary(view) == self.me => {
                    let vote = Vote {
                        view,
                        seq,
                        digest: pp.digest,
                        replica: self.me,
                    };
                    resend.push(Message::encode_pre_prepare(&vote, auth, &pp.batch));
                }
                _ => resend.push(Message::Batch(seq, (*pp.batch).clone()).encode()),
            }
            let voted_prepare = self.cfg.primary(view) != self.me
                && slot.votes_view == view
                && slot
                    .prepares
                    .get(&self.me)
                    .is_some_and(|r| r.digest == pp.digest);
            let kinds = [
                voted_prepare.then_some(VoteKind::Prepare),
                (slot.commit_sent == Some(view)).then_some(VoteKind::Commit),
            ];
            for k in kinds.into_iter().flatten() {
                let vote = Vote {
                    view,
                    seq,
                    digest: pp.digest,
                    replica: self.me,
                };
                let voted = Voted {
                    vote,
                    auth: self.auth.seal(&vote.payload(k)),
                };
                resend.push(
                    match k {
                        VoteKind::Commit => Message::Commit(voted),
                        _ => Message::Prepare(voted),
                    }
                    .encode(),
                );
            }
        }
        for bytes in resend {
            self.send_to(j, bytes, out);
        }
    }
}
