//! Checks the safety invariants as the simulation runs: every commit and
//! every stable checkpoint of a correct replica is checked when it happens,
//! and the first violation is kept for the driver to panic with.

use std::collections::{BTreeMap, BTreeSet};

use neuroplex_core::bft::{Digest, Execute, Fault, ReplicaIndex};
use neuroplex_core::sim::NodeId;

use super::Setup;

#[derive(Default)]
pub struct Observer {
    pub violation: Option<String>,
    /// seq → batch digest committed by correct replicas.
    pub committed: BTreeMap<u64, Digest>,
    /// request → the seq it executed at.
    pub request_at: BTreeMap<(u64, u64), u64>,
    pub submitted: BTreeMap<(u64, u64), Vec<u8>>,
    pub completed: BTreeMap<(u64, u64), Vec<u8>>,
    pub stable: BTreeMap<u64, Digest>,
    pub executions: u64,
    pub faults: BTreeMap<&'static str, u64>,
    pub convicted: BTreeSet<ReplicaIndex>,
    pub installs: u64,
    pub max_view: u64,
}

impl Observer {
    fn fail(&mut self, why: String) {
        if self.violation.is_none() {
            self.violation = Some(why);
        }
    }

    pub fn on_submit(&mut self, c: u64, ts: u64, op: Vec<u8>) {
        self.submitted.insert((c, ts), op);
    }

    pub fn on_complete(&mut self, c: u64, ts: u64, result: &[u8]) {
        if !self.submitted.contains_key(&(c, ts)) {
            self.fail(format!("client {c} completed ts {ts} it never submitted"));
        }
        self.completed.insert((c, ts), result.to_vec());
    }

    /// A correct replica executes a committed batch.
    pub fn on_execute(&mut self, node: NodeId, ex: &Execute) {
        self.executions += 1;
        match self.committed.get(&ex.seq) {
            Some(d) if *d != ex.digest => self.fail(format!(
                "agreement: node {node} committed {:?} at seq {} where another correct replica committed {:?}",
                ex.digest, ex.seq, d
            )),
            Some(_) => {}
            None => {
                self.committed.insert(ex.seq, ex.digest);
            }
        }
        for r in ex.requests() {
            let key = (r.client, r.timestamp);
            match self.submitted.get(&key) {
                Some(op) if op[..] == r.op[..] => {}
                _ => self.fail(format!(
                    "validity: node {node} executed request {key:?} at seq {} that was never submitted",
                    ex.seq
                )),
            }
            match self.request_at.get(&key) {
                Some(&s) if s != ex.seq => self.fail(format!(
                    "exactly-once: request {key:?} executed at seq {s} and again at seq {} (node {node})",
                    ex.seq
                )),
                Some(_) => {}
                None => {
                    self.request_at.insert(key, ex.seq);
                }
            }
        }
    }

    pub fn on_stable(&mut self, node: NodeId, seq: u64, digest: Digest) {
        match self.stable.get(&seq) {
            Some(d) if *d != digest => self.fail(format!(
                "checkpoints disagree at seq {seq}: node {node} has {digest:?}, another {d:?}"
            )),
            Some(_) => {}
            None => {
                self.stable.insert(seq, digest);
            }
        }
    }

    /// A fault reported by `node`: it must blame a faulty link or replica.
    pub fn on_fault(&mut self, setup: &Setup, node: NodeId, f: &Fault) {
        if setup.is_faulty(node) {
            return;
        }
        let (name, link) = match f {
            Fault::Malformed { link, .. } => ("malformed", Some(*link)),
            Fault::BadAuth { link, .. } => ("bad_auth", Some(*link)),
            Fault::Invalid { link, .. } => ("invalid", Some(*link)),
            Fault::Misbehaviour(p) => {
                let public = setup.config.validate().expect("valid");
                match p.check(&public) {
                    Ok(r) if setup.faulty_identities().contains(&r) => {
                        self.convicted.insert(r);
                    }
                    Ok(r) => self.fail(format!("node {node} convicted correct replica {r}")),
                    Err(e) => self.fail(format!("node {node} reported a proof that fails: {e:?}")),
                }
                ("proof", None)
            }
            // Names no culprit (see its doc).
            Fault::UnverifiedRequest { .. } => ("unverified_request", None),
        };
        *self.faults.entry(name).or_default() += 1;
        if let Some(link) = link
            && !setup.is_faulty(link as usize)
        {
            self.fail(format!("node {node} blamed correct node {link}: {f:?}"));
        }
    }
}
