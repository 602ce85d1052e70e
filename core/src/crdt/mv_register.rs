use serde::{Deserialize, Serialize};

use super::{Causal, DotFun, DotStore};
use crate::clock::{CausalContext, Dot, ReplicaId};

/// A multi-value register: a write replaces every value it has seen; values
/// written concurrently are all kept, for the application to resolve.
///
/// ```
/// use neuroplex_core::{Causal, Lattice, MvRegister, ReplicaId};
/// let mut a: Causal<MvRegister<&str>> = Causal::new();
/// let mut b = a.clone();
/// let da = a.write(ReplicaId::new(1), "tea");
/// let db = b.write(ReplicaId::new(2), "coffee");
/// a.join(db);
/// b.join(da);
/// assert_eq!(a.store().values().count(), 2); // concurrent: both visible
/// let d = a.write(ReplicaId::new(1), "water"); // a write that saw both...
/// b.join(d);
/// assert_eq!(b.store().values().collect::<Vec<_>>(), [&"water"]); // ...replaces both
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MvRegister<T> {
    values: DotFun<T>,
}

impl<T> Default for MvRegister<T> {
    fn default() -> Self {
        Self {
            values: DotFun::default(),
        }
    }
}

impl<T: Ord + Clone> MvRegister<T> {
    /// The unwritten register.
    pub const fn new() -> Self {
        Self {
            values: DotFun::new(),
        }
    }

    /// The current values: one, or several if written concurrently.
    pub fn values(&self) -> impl Iterator<Item = &T> + '_ {
        self.values.iter().map(|(_, v)| v)
    }

    /// The values with the dots that wrote them.
    pub fn entries(&self) -> impl Iterator<Item = (Dot, &T)> + '_ {
        self.values.iter()
    }

    /// Writes `value` as replica `id`, replacing every value seen.
    pub fn write(&mut self, cx: &mut CausalContext, id: ReplicaId, value: T) -> Causal<Self> {
        let dot = cx.issue(id);
        let mut delta_cx = CausalContext::from_dots(self.values.dots());
        delta_cx.insert(dot);
        self.values = DotFun::one(dot, value.clone());
        Causal {
            store: MvRegister {
                values: DotFun::one(dot, value),
            },
            context: delta_cx,
        }
    }

    /// Clears the register (removes every value seen).
    pub fn clear(&mut self) -> Causal<Self> {
        let context = CausalContext::from_dots(self.values.dots());
        self.values.clear();
        Causal {
            store: MvRegister::new(),
            context,
        }
    }
}

impl<T: core::fmt::Debug> core::fmt::Debug for MvRegister<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.values.fmt(f)
    }
}

impl<T: Ord + Clone> DotStore for MvRegister<T> {
    fn is_bottom(&self) -> bool {
        self.values.is_bottom()
    }

    fn for_each_dot(&self, f: &mut dyn FnMut(Dot)) {
        self.values.for_each_dot(f);
    }

    fn filtered(&self, keep: &dyn Fn(Dot) -> bool) -> Self {
        Self {
            values: self.values.filtered(keep),
        }
    }

    fn join_store(&mut self, cx: &CausalContext, other: Self, other_cx: &CausalContext) {
        self.values.join_store(cx, other.values, other_cx);
    }
}

impl<T: Ord + Clone> Causal<MvRegister<T>> {
    /// Writes `value` as replica `id`; returns the delta.
    pub fn write(&mut self, id: ReplicaId, value: T) -> Self {
        self.store.write(&mut self.context, id, value)
    }

    /// Clears the register; returns the delta.
    pub fn clear(&mut self) -> Self {
        self.store.clear()
    }
}
