//! A persistent (structurally shared) journal of replica records: cloning
//! is O(1), so the simulated disk can hold a snapshot of it after every
//! step. Compacted whenever a stable checkpoint is appended.

use std::rc::Rc;

use neuroplex_core::bft::Record;
use neuroplex_core::bft::persist::compact;

struct Link {
    rec: Record,
    prev: Option<Rc<Link>>,
}

#[derive(Clone, Default)]
pub struct Journal {
    head: Option<Rc<Link>>,
    len: usize,
}

impl Journal {
    /// The journal with `recs` appended (self is unchanged).
    pub fn append(&self, recs: Vec<Record>) -> Journal {
        let compacting = recs.iter().any(|r| matches!(r, Record::Stable { .. }));
        let mut j = self.clone();
        for rec in recs {
            j.head = Some(Rc::new(Link { rec, prev: j.head }));
            j.len += 1;
        }
        if compacting {
            let mut all = j.records();
            compact(&mut all);
            let mut c = Journal::default();
            for rec in all {
                c.head = Some(Rc::new(Link { rec, prev: c.head }));
                c.len += 1;
            }
            return c;
        }
        j
    }

    /// The records, oldest first.
    pub fn records(&self) -> Vec<Record> {
        let mut out = Vec::with_capacity(self.len);
        let mut cur = self.head.as_ref();
        while let Some(l) = cur {
            out.push(l.rec.clone());
            cur = l.prev.as_ref();
        }
        out.reverse();
        out
    }

    pub fn len(&self) -> usize {
        self.len
    }
}
