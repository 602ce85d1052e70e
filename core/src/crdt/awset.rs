use serde::{Deserialize, Serialize};

use super::{Causal, DotMap, DotSet, DotStore};
use crate::clock::{CausalContext, Dot, ReplicaId};

/// An add-wins observed-remove set.
///
/// Each element is held by the dots of the adds that put it there; a remove
/// deletes the dots it has seen, so an add concurrent with a remove survives
/// it (add wins). Removed elements leave nothing behind: the causal context
/// alone remembers that their dots were seen. No tombstone per element, no
/// clock per element.
///
/// ```
/// use neuroplex_core::{AWSet, Causal, Lattice, ReplicaId};
/// let (a, b) = (ReplicaId::new(1), ReplicaId::new(2));
/// let mut x: Causal<AWSet<char>> = Causal::new();
/// x.add(a, 'k');
/// let mut y = x.clone();
/// let rm = x.remove(&'k');      // x removes 'k' ...
/// let add = y.add(b, 'k');      // ... while y adds it again
/// x.join(add);
/// y.join(rm);
/// assert_eq!(x, y);
/// assert!(x.store().contains(&'k')); // add wins
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(bound(deserialize = "T: Ord + Clone + Deserialize<'de>"))]
#[serde(transparent)]
pub struct AWSet<T> {
    elements: DotMap<T, DotSet>,
}

impl<T> Default for AWSet<T> {
    fn default() -> Self {
        Self {
            elements: DotMap::default(),
        }
    }
}

impl<T: Ord + Clone> AWSet<T> {
    /// The empty set.
    pub const fn new() -> Self {
        Self {
            elements: DotMap::new(),
        }
    }

    /// True if `x` is in the set.
    pub fn contains(&self, x: &T) -> bool {
        self.elements.contains_key(x)
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.elements.len()
    }

    /// True if empty.
    pub fn is_empty(&self) -> bool {
        self.elements.is_empty()
    }

    /// Elements in order.
    pub fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        self.elements.keys()
    }

    /// The dots currently supporting `x`.
    pub fn dots_of(&self, x: &T) -> Option<&DotSet> {
        self.elements.get(x)
    }

    /// Adds `x` as replica `id`, under the context `cx` the set lives in.
    ///
    /// The delta carries the new dot and the dots `x` had before, so `x` ends
    /// up held by one dot however often it is re-added.
    pub fn add(&mut self, cx: &mut CausalContext, id: ReplicaId, x: T) -> Causal<Self> {
        let dot = cx.issue(id);
        let old = self.elements.insert(x.clone(), DotSet::one(dot));
        let delta_cx = match old {
            None => CausalContext::of_dot(dot),
            Some(old) => {
                let mut cx = CausalContext::from_dots(old.iter());
                cx.insert(dot);
                cx
            }
        };
        let mut delta = AWSet::new();
        delta.elements.insert(x, DotSet::one(dot));
        Causal {
            store: delta,
            context: delta_cx,
        }
    }

    /// Removes `x` (the adds this replica has seen of it).
    pub fn remove(&mut self, x: &T) -> Causal<Self> {
        let context = match self.elements.remove(x) {
            Some(dots) => CausalContext::from_dots(dots.iter()),
            None => CausalContext::new(),
        };
        Causal {
            store: AWSet::new(),
            context,
        }
    }

    /// Removes every element.
    pub fn clear(&mut self) -> Causal<Self> {
        let context = CausalContext::from_dots(self.elements.dots());
        *self = AWSet::new();
        Causal {
            store: AWSet::new(),
            context,
        }
    }
}

impl<T: core::fmt::Debug> core::fmt::Debug for AWSet<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.elements.fmt(f)
    }
}

impl<T: Ord + Clone> DotStore for AWSet<T> {
    fn is_bottom(&self) -> bool {
        self.elements.is_bottom()
    }

    fn for_each_dot(&self, f: &mut dyn FnMut(Dot)) {
        self.elements.for_each_dot(f);
    }

    fn filtered(&self, keep: &dyn Fn(Dot) -> bool) -> Self {
        Self {
            elements: self.elements.filtered(keep),
        }
    }

    fn join_store(&mut self, cx: &CausalContext, other: Self, other_cx: &CausalContext) {
        self.elements.join_store(cx, other.elements, other_cx);
    }
}

impl<T: Ord + Clone> Causal<AWSet<T>> {
    /// Adds `x` as replica `id`; returns the delta.
    pub fn add(&mut self, id: ReplicaId, x: T) -> Self {
        self.store.add(&mut self.context, id, x)
    }

    /// Removes `x`; returns the delta.
    pub fn remove(&mut self, x: &T) -> Self {
        self.store.remove(x)
    }

    /// Removes every element; returns the delta.
    pub fn clear(&mut self) -> Self {
        self.store.clear()
    }
}
