//! The new-view decision: from a set S of signed view-change messages, what
//! the new view starts from — a checkpoint and, above it, one batch (or the
//! null batch) per sequence number.
//!
//! This is the decision procedure of Castro & Liskov (TOCS 2002, §4.5),
//! which needs no transferable prepared certificates (so it works with MAC
//! authenticators): a view-change message carries its sender's low
//! watermark h, C (checkpoints it computed), P (per sequence number, what
//! prepared there in the highest view) and Q (what pre-prepared there, the
//! latest view per digest). The checkpoint is the highest (n, d) that f+1
//! messages list in C (so a correct replica computed it) while 2f+1 have
//! h ≤ n. Above it, a batch d prepared at n in view v (a P entry of any
//! message) is chosen only if
//!  - A1: 2f+1 messages in S have h < n and, at n, no P entry or one
//!    from an earlier view or for d in view v, and
//!  - A2: f+1 messages in S have d pre-prepared at n in a view ≥ v, and
//!  - A3: some message in S supplies the batch for d;
//!
//! candidates are tried highest view first; failing all, the null batch is
//! chosen only if (B) 2f+1 messages have h < n and no P entry at n;
//! failing that, the decision waits for more messages (`None`).
//!
//! Why nothing committed is lost: a batch d committed at n had f+1 correct
//! replicas prepare it (the first commit certificate for n holds them);
//! each keeps a P entry for d at n (from that view or a later one) until
//! its own low watermark passes n. Only 2f replicas are outside those f+1,
//! so B (2f+1 messages with h < n and no entry) fails at n, and of the
//! 2f+1 messages A1 needs for another batch d', one comes from them, with
//! h < n and an entry (w, d): A1 then needs v' > w. A2 for (v', d') needs
//! a correct replica that pre-prepared d' at n in a view ≥ v' — which
//! by induction over views never happens, since a correct replica accepts
//! at n in a later view only what that view's decision chose there (or
//! nothing, once n is at or below its low watermark, which it persists);
//! a decision never leaves such an n free, as the same counting puts one
//! of those P entries in S or the checkpoint at or above n.
//! Messages with h ≥ n count in neither A1 nor B: their sender collected n,
//! so a missing P entry there says nothing.
//!
//! The paper decides every n up to h + L; this stops at the highest P entry
//! (OSDI's max-s) with the same outcome: above it B holds for every n,
//! since the 2f+1 messages with h' ≤ h < n have no entry there, so nothing
//! there can have committed and the new primary may use those numbers
//! afresh. The decision is a pure function of S, so every replica
//! recomputes it from the new-view message instead of trusting the
//! primary's.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use super::log::Q_CAP;
use super::message::{Batch, ViewChange};
use super::{Digest, Seq, View};

/// What a new view starts from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The checkpoint (sequence number, digest).
    pub checkpoint: (Seq, Digest),
    /// For each sequence number above the checkpoint up to the last that
    /// any P set names: the batch digest and the batch (null: empty).
    pub slots: Vec<(Seq, Digest, Batch)>,
}

/// Checks the shape of a view-change message: sorted, bounded, inside its
/// sender's window. Returns the rule it breaks.
pub fn validate(vc: &ViewChange, window: Seq, interval: Seq) -> Result<(), &'static str> {
    let high = vc.low.saturating_add(window);
    if vc.checkpoints.len() as u64 > window / interval + 1 {
        return Err("too many checkpoints");
    }
    if !vc.checkpoints.windows(2).all(|w| w[0].0 < w[1].0)
        || vc
            .checkpoints
            .iter()
            .any(|c| c.0 < vc.low || c.0 > high || c.0 % interval != 0)
    {
        return Err("checkpoints not sorted or outside the window");
    }
    if !vc.prepared.windows(2).all(|w| w[0].0 < w[1].0)
        || vc.prepared.iter().any(|p| p.0 <= vc.low || p.0 > high)
    {
        return Err("P not sorted or outside the window");
    }
    if !vc
        .preprepared
        .windows(2)
        .all(|w| (w[0].0, w[0].2) < (w[1].0, w[1].2))
        || vc.preprepared.iter().any(|q| q.0 <= vc.low || q.0 > high)
    {
        return Err("Q not sorted or outside the window");
    }
    // Everything the sender knows is from views before the one it moves
    // to; an entry from that view or later is a lie that could only block
    // rule A1 for a batch that really prepared.
    if vc.prepared.iter().any(|p| p.1 >= vc.view) || vc.preprepared.iter().any(|q| q.1 >= vc.view) {
        return Err("P or Q entry not from an earlier view");
    }
    let mut per_seq: BTreeMap<Seq, usize> = BTreeMap::new();
    for q in &vc.preprepared {
        let c = per_seq.entry(q.0).or_default();
        *c += 1;
        if *c > Q_CAP {
            return Err("too many Q entries at one sequence number");
        }
    }
    if vc.batches.len() > vc.preprepared.len() + vc.prepared.len() {
        return Err("more batches than entries");
    }
    Ok(())
}

fn p_entry(vc: &ViewChange, n: Seq) -> Option<(View, Digest)> {
    vc.prepared
        .binary_search_by_key(&n, |p| p.0)
        .ok()
        .map(|i| (vc.prepared[i].1, vc.prepared[i].2))
}

fn q_has(vc: &ViewChange, n: Seq, d: &Digest, v: View) -> bool {
    let start = vc.preprepared.partition_point(|q| q.0 < n);
    vc.preprepared[start..]
        .iter()
        .take_while(|q| q.0 == n)
        .any(|q| q.2 == *d && q.1 >= v)
}

/// Decides the new view from S (distinct senders, validated, all for the
/// same view). `None`: S does not allow a decision yet (wait for more).
pub fn decide(f: usize, window: Seq, s: &[&ViewChange]) -> Option<Decision> {
    let quorum = 2 * f + 1;
    if s.len() < quorum {
        return None;
    }
    // Checkpoint: highest (n, d) vouched for by f+1, with 2f+1 at or below.
    let mut best: Option<(Seq, Digest)> = None;
    for vc in s {
        for &(n, d) in &vc.checkpoints {
            if best.is_some_and(|b| (n, d) <= b) {
                continue;
            }
            let vouch = s.iter().filter(|m| m.checkpoints.contains(&(n, d))).count();
            let below = s.iter().filter(|m| m.low <= n).count();
            if vouch > f && below >= quorum {
                best = Some((n, d));
            }
        }
    }
    let (h, hd) = best?;

    // Batches offered, checked against their digests.
    let mut batches: BTreeMap<Digest, &Batch> = BTreeMap::new();
    for vc in s {
        for b in &vc.batches {
            batches.entry(b.digest()).or_insert(b);
        }
    }

    let top = h.saturating_add(window);
    let max_s = s
        .iter()
        .flat_map(|vc| vc.prepared.iter().map(|p| p.0))
        .filter(|&n| n > h && n <= top)
        .max()
        .unwrap_or(h);
    let null = Batch::default();
    let null_digest = null.digest();
    let mut slots = Vec::new();
    for n in h + 1..=max_s {
        // Candidates: P entries at n, highest view first.
        let mut cands: Vec<(View, Digest)> = s.iter().filter_map(|vc| p_entry(vc, n)).collect();
        cands.sort_unstable_by(|a, b| b.cmp(a));
        cands.dedup();
        let chosen = cands.iter().find(|&&(v, d)| {
            let a1 = s
                .iter()
                .filter(|m| {
                    m.low < n
                        && match p_entry(m, n) {
                            None => true,
                            Some((v2, d2)) => v2 < v || (v2 == v && d2 == d),
                        }
                })
                .count();
            let a2 = s.iter().filter(|m| q_has(m, n, &d, v)).count();
            a1 >= quorum && a2 > f && batches.contains_key(&d)
        });
        if let Some(&(_, d)) = chosen {
            slots.push((n, d, batches[&d].clone()));
            continue;
        }
        let b = s
            .iter()
            .filter(|m| m.low < n && p_entry(m, n).is_none())
            .count();
        if b >= quorum {
            slots.push((n, null_digest, null.clone()));
        } else {
            return None;
        }
    }
    Some(Decision {
        checkpoint: (h, hd),
        slots,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn batch(tag: u8) -> Batch {
        use crate::bft::message::{AuthRequest, Request};
        Batch {
            requests: vec![AuthRequest {
                request: Request {
                    client: 1,
                    timestamp: u64::from(tag),
                    op: alloc::sync::Arc::from(&[tag][..]),
                },
                macs: Default::default(),
            }],
        }
    }

    fn vc(prepared: &[(Seq, View, &Batch)], q: &[(Seq, View, &Batch)]) -> ViewChange {
        let g = Digest([9; 32]);
        let mut pre: Vec<_> = q.iter().map(|(s, v, b)| (*s, *v, b.digest())).collect();
        pre.sort_by_key(|x| (x.0, x.2));
        ViewChange {
            view: 10,
            low: 0,
            checkpoints: vec![(0, g)],
            prepared: prepared
                .iter()
                .map(|(s, v, b)| (*s, *v, b.digest()))
                .collect(),
            preprepared: pre,
            batches: q.iter().map(|(_, _, b)| (*b).clone()).collect(),
        }
    }

    #[test]
    fn a_committed_batch_survives_a_lying_replica() {
        let (d, forged) = (batch(1), batch(2));
        // d prepared at replicas 1, 2, 3 in view 0 (so it may have
        // committed); replica 0 lies with a later view.
        let liar = vc(&[(1, 5, &forged)], &[(1, 5, &forged)]);
        let honest = vc(&[(1, 0, &d)], &[(1, 0, &d)]);
        // With the liar and two of them, nothing is provable: wait.
        assert_eq!(decide(1, 64, &[&liar, &honest, &honest]), None);
        // With all three, d (never the forgery) is chosen.
        let s = [&liar, &honest, &honest, &honest];
        let dec = decide(1, 64, &s).expect("decidable");
        assert_eq!(dec.slots.len(), 1);
        assert_eq!(dec.slots[0].1, d.digest());
        for v in [&liar, &honest] {
            validate(v, 64, 16).unwrap();
        }
    }

    #[test]
    fn no_decision_without_enough_evidence() {
        let (d, forged) = (batch(1), batch(2));
        let liar = vc(&[(1, 0, &forged)], &[(1, 0, &forged)]);
        let honest = vc(&[(1, 0, &d)], &[(1, 0, &d)]);
        let empty = vc(&[], &[]);
        // Neither batch nor the null batch is safe to choose yet.
        assert_eq!(decide(1, 64, &[&liar, &empty, &honest]), None);
        // With one more replica that never saw anything at 1, d is not
        // provably committed either way; the only P entries conflict, so a
        // null batch is chosen only if 2f+1 have no entry.
        let dec = decide(1, 64, &[&empty, &empty, &empty, &liar]).unwrap();
        assert_eq!(dec.slots[0].2, Batch::default());
    }

    #[test]
    fn malformed_view_changes_are_refused() {
        let d = batch(1);
        let mut v = vc(&[(1, 0, &d), (1, 0, &d)], &[]);
        assert!(validate(&v, 64, 16).is_err());
        v.prepared = vec![(65, 0, d.digest())];
        assert!(validate(&v, 64, 16).is_err());
        // Entries from the view being moved to, or later, are lies.
        v.prepared = vec![(1, 10, d.digest())];
        assert!(validate(&v, 64, 16).is_err());
        v.prepared = vec![];
        v.preprepared = vec![(1, 11, d.digest())];
        assert!(validate(&v, 64, 16).is_err());
        v.preprepared = vec![(1, 9, d.digest())];
        v.batches = vec![];
        assert!(validate(&v, 64, 16).is_ok());
    }
}
