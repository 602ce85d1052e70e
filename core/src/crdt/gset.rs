use alloc::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::Lattice;

/// A grow-only set.
///
/// ```
/// use neuroplex_core::{GSet, Lattice};
/// let mut a = GSet::new();
/// let d = a.insert("x");
/// let mut b = GSet::new();
/// b.join(d);
/// assert!(b.contains(&"x"));
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct GSet<T: Ord> {
    elements: BTreeSet<T>,
}

impl<T: Ord> Default for GSet<T> {
    fn default() -> Self {
        Self {
            elements: BTreeSet::new(),
        }
    }
}

impl<T: Ord + Clone> GSet<T> {
    /// The empty set.
    pub const fn new() -> Self {
        Self {
            elements: BTreeSet::new(),
        }
    }

    /// Adds `x`; returns the delta (`{x}`, or empty if it was there).
    pub fn insert(&mut self, x: T) -> Self {
        let mut delta = GSet::new();
        if self.elements.insert(x.clone()) {
            delta.elements.insert(x);
        }
        delta
    }

    /// True if `x` is in the set.
    pub fn contains(&self, x: &T) -> bool {
        self.elements.contains(x)
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
        self.elements.iter()
    }
}

impl<T: Ord + core::fmt::Debug> core::fmt::Debug for GSet<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_set().entries(self.elements.iter()).finish()
    }
}

impl<T: Ord + Clone> Lattice for GSet<T> {
    fn join(&mut self, other: Self) {
        if self.elements.len() < other.elements.len() {
            let mine = core::mem::replace(&mut self.elements, other.elements);
            self.elements.extend(mine);
        } else {
            self.elements.extend(other.elements);
        }
    }
}
