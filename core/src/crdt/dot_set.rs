use core::cmp::Ordering;

use serde::{Deserialize, Deserializer, Serialize, de::Error as _};
use smallvec::SmallVec;

use super::DotStore;
use crate::clock::{CausalContext, Dot};

/// A set of dots: the store behind [`EWFlag`](super::EWFlag) and behind each
/// element of an [`AWSet`](super::AWSet).
///
/// Kept sorted; one dot (the usual case) lives inline without allocating.
#[derive(Clone, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct DotSet {
    dots: SmallVec<[Dot; 1]>,
}

impl DotSet {
    /// The empty set.
    pub const fn new() -> Self {
        Self {
            dots: SmallVec::new_const(),
        }
    }

    /// A set of one dot.
    pub fn one(dot: Dot) -> Self {
        let mut dots = SmallVec::new();
        dots.push(dot);
        Self { dots }
    }

    /// True if `dot` is held.
    pub fn contains(&self, dot: Dot) -> bool {
        self.dots.binary_search(&dot).is_ok()
    }

    /// Adds `dot`.
    pub fn insert(&mut self, dot: Dot) {
        if let Err(i) = self.dots.binary_search(&dot) {
            self.dots.insert(i, dot);
        }
    }

    /// Number of dots.
    pub fn len(&self) -> usize {
        self.dots.len()
    }

    /// True if empty.
    pub fn is_empty(&self) -> bool {
        self.dots.is_empty()
    }

    /// The dots, in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Dot> + '_ {
        self.dots.iter().copied()
    }
}

impl core::fmt::Debug for DotSet {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_set().entries(self.dots.iter()).finish()
    }
}

impl FromIterator<Dot> for DotSet {
    fn from_iter<I: IntoIterator<Item = Dot>>(iter: I) -> Self {
        let mut dots: SmallVec<[Dot; 1]> = iter.into_iter().collect();
        dots.sort_unstable();
        dots.dedup();
        Self { dots }
    }
}

impl DotStore for DotSet {
    fn is_bottom(&self) -> bool {
        self.dots.is_empty()
    }

    fn for_each_dot(&self, f: &mut dyn FnMut(Dot)) {
        self.dots.iter().for_each(|&d| f(d));
    }

    fn filtered(&self, keep: &dyn Fn(Dot) -> bool) -> Self {
        Self {
            dots: self.dots.iter().copied().filter(|d| keep(*d)).collect(),
        }
    }

    fn join_store(&mut self, cx: &CausalContext, other: Self, other_cx: &CausalContext) {
        // Fast paths: identical sets, or one side empty.
        if self.dots == other.dots {
            return;
        }
        if other.dots.is_empty() {
            self.dots.retain(|d| !other_cx.contains(*d));
            return;
        }
        if self.dots.is_empty() {
            self.dots = other.dots;
            self.dots.retain(|d| !cx.contains(*d));
            return;
        }
        let mine = core::mem::take(&mut self.dots);
        let (mut i, mut j) = (0, 0);
        while i < mine.len() || j < other.dots.len() {
            let ord = match (mine.get(i), other.dots.get(j)) {
                (Some(a), Some(b)) => a.cmp(b),
                (Some(_), None) => Ordering::Less,
                (None, _) => Ordering::Greater,
            };
            match ord {
                Ordering::Equal => {
                    self.dots.push(mine[i]);
                    i += 1;
                    j += 1;
                }
                Ordering::Less => {
                    if !other_cx.contains(mine[i]) {
                        self.dots.push(mine[i]);
                    }
                    i += 1;
                }
                Ordering::Greater => {
                    if !cx.contains(other.dots[j]) {
                        self.dots.push(other.dots[j]);
                    }
                    j += 1;
                }
            }
        }
    }
}

impl<'de> Deserialize<'de> for DotSet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let dots = SmallVec::<[Dot; 1]>::deserialize(d)?;
        if dots.windows(2).any(|w| w[0] >= w[1]) {
            return Err(D::Error::custom("dot set not sorted"));
        }
        Ok(Self { dots })
    }
}
