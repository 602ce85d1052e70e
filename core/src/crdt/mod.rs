//! Delta-state CRDTs (Almeida, Shoker & Baquero, "Delta State Replicated Data
//! Types", 2018).
//!
//! Every type is a join-semilattice ([`Lattice`]): `join` is associative,
//! commutative and idempotent, and `Default` is bottom. Every mutator changes
//! the replica and returns the delta it applied, so `old ⊔ delta == new`;
//! shipping deltas instead of whole states is what keeps sync cheap.
//!
//! Two families:
//! - Plain lattices: [`GCounter`], [`PNCounter`], [`GSet`], [`LwwRegister`].
//!   Simple and small, but they cannot be reset: a remove has nothing to
//!   name, so a stale replica would bring removed state back. They are not
//!   allowed inside an [`ORMap`].
//! - Dot stores ([`DotStore`]), which tag every write with a [`Dot`] and
//!   live under a [`CausalContext`]: [`AWSet`], [`MvRegister`], [`EWFlag`],
//!   [`CausalCounter`] and [`ORMap`] (which nests any of them, itself
//!   included). Used on their own they are wrapped in [`Causal`], which pairs
//!   the store with its context. A remove deletes exactly the dots it has
//!   seen, so concurrent updates survive it and nothing needs a tombstone.
//!
//! [`Dot`]: crate::Dot
//! [`CausalContext`]: crate::CausalContext

mod awset;
mod causal_counter;
mod dot_fun;
mod dot_map;
mod dot_set;
mod dot_store;
mod ew_flag;
mod gcounter;
mod gset;
mod lww_register;
mod mv_register;
mod ormap;
mod pncounter;

pub use awset::AWSet;
pub use causal_counter::CausalCounter;
pub use dot_fun::DotFun;
pub use dot_map::DotMap;
pub use dot_set::DotSet;
pub use dot_store::{Causal, DotStore};
pub use ew_flag::EWFlag;
pub use gcounter::GCounter;
pub use gset::GSet;
pub use lww_register::LwwRegister;
pub use mv_register::MvRegister;
pub use ormap::ORMap;
pub use pncounter::PNCounter;

/// A join-semilattice: the state of a state-based CRDT.
///
/// Laws (checked by the property tests for every type): `join` is
/// commutative, associative and idempotent, and `Self::default()` (bottom) is
/// its identity.
pub trait Lattice: Clone + Default {
    /// Least upper bound: afterwards `self` holds everything either held.
    fn join(&mut self, other: Self);

    /// `join` by value, for chaining.
    fn joined(mut self, other: Self) -> Self {
        self.join(other);
        self
    }
}
