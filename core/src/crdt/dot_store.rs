use alloc::vec::Vec;

use serde::{Deserialize, Deserializer, Serialize, de::Error as _};

use super::Lattice;
use crate::clock::{CausalContext, Dot};

/// A store of values tagged by dots, joined under causal contexts.
///
/// The join rule (Almeida et al., §6): a dot survives if both sides hold it,
/// or if one side holds it and the other side's context has never seen it.
/// A dot that one side has seen but no longer holds was removed there, and
/// that removal wins over the stale copy.
pub trait DotStore: Clone + Default + PartialEq {
    /// True if the store holds no dot.
    fn is_bottom(&self) -> bool;

    /// Calls `f` for every dot held.
    fn for_each_dot(&self, f: &mut dyn FnMut(Dot));

    /// Joins `other` (which lives under `other_cx`) into `self` (which lives
    /// under `cx`). The contexts themselves are joined by the caller.
    fn join_store(&mut self, cx: &CausalContext, other: Self, other_cx: &CausalContext);

    /// The part of the store whose dots satisfy `keep` (bottom values
    /// dropped).
    fn filtered(&self, keep: &dyn Fn(Dot) -> bool) -> Self;

    /// Number of dots held.
    fn dot_count(&self) -> usize {
        let mut n = 0;
        self.for_each_dot(&mut |_| n += 1);
        n
    }

    /// Every dot held, in the order `for_each_dot` gives them.
    fn dots(&self) -> Vec<Dot> {
        let mut v = Vec::new();
        self.for_each_dot(&mut |d| v.push(d));
        v
    }
}

/// A dot store paired with its causal context: a complete replica (or delta)
/// of a dot-based CRDT.
///
/// Invariant: every dot in `store` is in `context`. Decoding refuses input
/// that breaks it.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Causal<S> {
    pub(crate) store: S,
    pub(crate) context: CausalContext,
}

impl<S> Causal<S> {
    /// The values.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Every event this replica has seen (including removed ones).
    pub fn context(&self) -> &CausalContext {
        &self.context
    }

    /// Splits into store and context.
    pub fn into_parts(self) -> (S, CausalContext) {
        (self.store, self.context)
    }
}

impl<S: DotStore> Causal<S> {
    /// An empty replica (bottom).
    pub fn new() -> Self {
        Self::default()
    }

    /// Pairs a store with a context, checking that the context covers every
    /// dot of the store. Returns `None` otherwise.
    pub fn from_parts(store: S, context: CausalContext) -> Option<Self> {
        let mut ok = true;
        store.for_each_dot(&mut |d| ok &= context.contains(d));
        ok.then_some(Self { store, context })
    }

    /// What a peer whose context is `theirs` is missing, as a delta: the
    /// entries it has not seen, and the removals of entries it may still
    /// hold.
    ///
    /// Joining the result at the peer gives exactly what joining the whole
    /// state would, at a cost proportional to what is new to the peer plus
    /// the removals it knows the adds of — not to the size of the state.
    /// The context of the result leaves out the live dots the peer already
    /// has: were they in it, the peer would read them as removed.
    ///
    /// ```
    /// use neuroplex_core::{AWSet, Causal, Lattice, ReplicaId};
    /// let a = ReplicaId::new(1);
    /// let mut x: Causal<AWSet<u32>> = Causal::new();
    /// x.add(a, 1);
    /// x.add(a, 2);
    /// let mut y = x.clone();       // y has 1 and 2
    /// x.remove(&1);
    /// x.add(a, 3);
    /// let missing = x.delta_since(y.context());
    /// assert_eq!(missing.store().len(), 1); // only 3 travels ...
    /// y.join(missing);
    /// assert_eq!(y, x);                     // ... and the removal of 1 too
    /// ```
    pub fn delta_since(&self, theirs: &CausalContext) -> Causal<S> {
        if theirs.is_empty() {
            return self.clone();
        }
        let store = self.store.filtered(&|d| !theirs.contains(d));
        let mut shared_live = Vec::new();
        self.store.for_each_dot(&mut |d| {
            if theirs.contains(d) {
                shared_live.push(d);
            }
        });
        shared_live.sort_unstable();
        let mut context = CausalContext::new();
        self.context.for_each_dot(|d| {
            if !theirs.contains(d) || shared_live.binary_search(&d).is_err() {
                context.insert(d);
            }
        });
        Causal { store, context }
    }

    /// Joins `other` and tells whether anything changed.
    pub fn join_changed(&mut self, other: Causal<S>) -> bool {
        self.join_novelty(other).is_some()
    }

    /// Joins `other` and returns the part of it that was new here: a delta
    /// `n` with `old ⊔ n == old ⊔ other`, holding only entries this replica
    /// had not seen and removals of entries it held. `None` if nothing
    /// changed.
    ///
    /// This is what a replica passes on to its other neighbours: forwarding
    /// all of `other` would send what they were already sent, again and
    /// again, whenever it arrives mixed with something new.
    pub fn join_novelty(&mut self, other: Causal<S>) -> Option<Causal<S>> {
        let seen_before = &self.context;
        let store = other.store.filtered(&|d| !seen_before.contains(d));
        let mut context = CausalContext::new();
        other
            .context
            .for_each_missing(seen_before, |d| context.insert(d));
        // Entries held here that `other` may remove: their dots are in its
        // context. Whichever are gone after the join were removed by it.
        let mut exposed = Vec::new();
        self.store.for_each_dot(&mut |d| {
            if other.context.contains(d) {
                exposed.push(d);
            }
        });
        self.join(other);
        if !exposed.is_empty() {
            let mut still = Vec::new();
            self.store.for_each_dot(&mut |d| still.push(d));
            still.sort_unstable();
            for d in exposed {
                if still.binary_search(&d).is_err() {
                    context.insert(d);
                }
            }
        }
        (!context.is_empty()).then_some(Causal { store, context })
    }

    /// Applies a store-level mutator to this replica and returns its delta.
    ///
    /// ```
    /// use neuroplex_core::{Causal, AWSet, ReplicaId};
    /// let mut s: Causal<AWSet<u32>> = Causal::new();
    /// let delta = s.mutate(|set, cx| set.add(cx, ReplicaId::new(7), 1));
    /// assert!(delta.store().contains(&1));
    /// ```
    pub fn mutate<F>(&mut self, f: F) -> Causal<S>
    where
        F: FnOnce(&mut S, &mut CausalContext) -> Causal<S>,
    {
        f(&mut self.store, &mut self.context)
    }
}

impl<S: DotStore> Lattice for Causal<S> {
    fn join(&mut self, other: Self) {
        self.store
            .join_store(&self.context, other.store, &other.context);
        self.context.join(&other.context);
    }
}

impl<'de, S: DotStore + Deserialize<'de>> Deserialize<'de> for Causal<S> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw<S> {
            store: S,
            context: CausalContext,
        }
        let raw = Raw::<S>::deserialize(d)?;
        Causal::from_parts(raw.store, raw.context)
            .ok_or_else(|| D::Error::custom("store holds a dot its context does not cover"))
    }
}
