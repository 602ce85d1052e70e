use serde::{Deserialize, Serialize};

use super::{Causal, DotSet, DotStore};
use crate::clock::{CausalContext, Dot, ReplicaId};

/// An enable-wins flag: concurrent enable and disable leave it enabled.
///
/// ```
/// use neuroplex_core::{Causal, EWFlag, Lattice, ReplicaId};
/// let mut a: Causal<EWFlag> = Causal::new();
/// a.enable(ReplicaId::new(1));
/// let mut b = a.clone();
/// let off = a.disable();
/// let on = b.enable(ReplicaId::new(2));
/// a.join(on);
/// b.join(off);
/// assert!(a.store().is_enabled() && b.store().is_enabled());
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EWFlag {
    dots: DotSet,
}

impl EWFlag {
    /// A disabled flag.
    pub const fn new() -> Self {
        Self {
            dots: DotSet::new(),
        }
    }

    /// True if enabled.
    pub fn is_enabled(&self) -> bool {
        !self.dots.is_empty()
    }

    /// Enables the flag as replica `id`.
    pub fn enable(&mut self, cx: &mut CausalContext, id: ReplicaId) -> Causal<Self> {
        let dot = cx.issue(id);
        let mut delta_cx = CausalContext::from_dots(self.dots.iter());
        delta_cx.insert(dot);
        self.dots = DotSet::one(dot);
        Causal {
            store: EWFlag {
                dots: DotSet::one(dot),
            },
            context: delta_cx,
        }
    }

    /// Disables the flag (removes every enable seen).
    pub fn disable(&mut self) -> Causal<Self> {
        let context = CausalContext::from_dots(self.dots.iter());
        self.dots = DotSet::new();
        Causal {
            store: EWFlag::new(),
            context,
        }
    }
}

impl core::fmt::Debug for EWFlag {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "EWFlag({}, {:?})", self.is_enabled(), self.dots)
    }
}

impl DotStore for EWFlag {
    fn is_bottom(&self) -> bool {
        self.dots.is_bottom()
    }

    fn for_each_dot(&self, f: &mut dyn FnMut(Dot)) {
        self.dots.for_each_dot(f);
    }

    fn filtered(&self, keep: &dyn Fn(Dot) -> bool) -> Self {
        Self {
            dots: self.dots.filtered(keep),
        }
    }

    fn join_store(&mut self, cx: &CausalContext, other: Self, other_cx: &CausalContext) {
        self.dots.join_store(cx, other.dots, other_cx);
    }
}

impl Causal<EWFlag> {
    /// Enables the flag as replica `id`; returns the delta.
    pub fn enable(&mut self, id: ReplicaId) -> Self {
        self.store.enable(&mut self.context, id)
    }

    /// Disables the flag; returns the delta.
    pub fn disable(&mut self) -> Self {
        self.store.disable()
    }
}
