//! A serde `Deserializer` adapter that bounds what hostile input can cost.
//!
//! postcard has no nesting limit, and deep input overflows the stack, which
//! aborts the process instead of returning an error. It also passes a
//! sequence's claimed length on as a size hint, and some collections (smallvec
//! among them) reserve that much up front. The adapter wraps every level of
//! the deserializer, its visitors and their accessors so that it can:
//! - count nesting and refuse to go deeper than the limit;
//! - hide size hints, so no claimed length reserves memory;
//! - charge every collection element to a budget of one per input byte, so a
//!   short input cannot make a long loop of zero-sized elements.

use core::cell::Cell;
use core::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, Visitor};

/// Which limit stopped decoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Exceeded {
    Depth,
    Elements,
}

/// Limits shared by every level of one decode.
pub(crate) struct Budget {
    max_depth: usize,
    elements_left: Cell<usize>,
    exceeded: Cell<Option<Exceeded>>,
}

impl Budget {
    pub(crate) fn new(max_depth: usize, max_elements: usize) -> Self {
        Self {
            max_depth,
            elements_left: Cell::new(max_elements),
            exceeded: Cell::new(None),
        }
    }

    pub(crate) fn exceeded(&self) -> Option<Exceeded> {
        self.exceeded.get()
    }

    fn descend<E: de::Error>(&self, depth: usize) -> Result<usize, E> {
        let next = depth + 1;
        if next > self.max_depth {
            self.exceeded.set(Some(Exceeded::Depth));
            return Err(E::custom("nesting too deep"));
        }
        Ok(next)
    }

    fn charge_element<E: de::Error>(&self) -> Result<(), E> {
        match self.elements_left.get().checked_sub(1) {
            Some(left) => {
                self.elements_left.set(left);
                Ok(())
            }
            None => {
                self.exceeded.set(Some(Exceeded::Elements));
                Err(E::custom("too many elements"))
            }
        }
    }
}

/// The deserializer adapter.
pub(crate) struct Limited<'b, D> {
    inner: D,
    depth: usize,
    budget: &'b Budget,
}

impl<'b, D> Limited<'b, D> {
    pub(crate) fn new(inner: D, budget: &'b Budget) -> Self {
        Self {
            inner,
            depth: 0,
            budget,
        }
    }
}

/// Wraps a visitor at the current depth. `fixed` marks a visitor of a
/// struct, tuple or enum, whose fields are not collection elements: they are
/// bounded by the type, not by the input.
struct Vis<'b, V> {
    inner: V,
    depth: usize,
    budget: &'b Budget,
    fixed: bool,
}

/// Wraps a seed for a value one level down. `element` charges the budget.
struct Seed<'b, S> {
    inner: S,
    depth: usize,
    budget: &'b Budget,
    element: bool,
}

struct Access<'b, A> {
    inner: A,
    depth: usize,
    budget: &'b Budget,
    fixed: bool,
}

macro_rules! forward_deserialize {
    ($($method:ident($($arg:ident: $ty:ty),*) $fixed:literal;)*) => {$(
        fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, Self::Error> {
            self.inner.$method($($arg,)* Vis {
                inner: visitor,
                depth: self.depth,
                budget: self.budget,
                fixed: $fixed,
            })
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Limited<'_, D> {
    type Error = D::Error;

    forward_deserialize! {
        deserialize_any() false;
        deserialize_bool() false;
        deserialize_i8() false;
        deserialize_i16() false;
        deserialize_i32() false;
        deserialize_i64() false;
        deserialize_i128() false;
        deserialize_u8() false;
        deserialize_u16() false;
        deserialize_u32() false;
        deserialize_u64() false;
        deserialize_u128() false;
        deserialize_f32() false;
        deserialize_f64() false;
        deserialize_char() false;
        deserialize_str() false;
        deserialize_string() false;
        deserialize_bytes() false;
        deserialize_byte_buf() false;
        deserialize_option() false;
        deserialize_unit() false;
        deserialize_unit_struct(name: &'static str) false;
        deserialize_newtype_struct(name: &'static str) false;
        deserialize_seq() false;
        deserialize_tuple(len: usize) true;
        deserialize_tuple_struct(name: &'static str, len: usize) true;
        deserialize_map() false;
        deserialize_struct(name: &'static str, fields: &'static [&'static str]) true;
        deserialize_enum(name: &'static str, variants: &'static [&'static str]) true;
        deserialize_identifier() false;
        deserialize_ignored_any() false;
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Seed<'_, S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        if self.element {
            self.budget.charge_element()?;
        }
        self.inner.deserialize(Limited {
            inner: d,
            depth: self.depth,
            budget: self.budget,
        })
    }
}

macro_rules! forward_visit {
    ($($method:ident($ty:ty);)*) => {$(
        fn $method<E: de::Error>(self, v: $ty) -> Result<Self::Value, E> {
            self.inner.$method(v)
        }
    )*};
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Vis<'_, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.expecting(f)
    }

    forward_visit! {
        visit_bool(bool);
        visit_i8(i8);
        visit_i16(i16);
        visit_i32(i32);
        visit_i64(i64);
        visit_i128(i128);
        visit_u8(u8);
        visit_u16(u16);
        visit_u32(u32);
        visit_u64(u64);
        visit_u128(u128);
        visit_f32(f32);
        visit_f64(f64);
        visit_char(char);
        visit_str(&str);
        visit_borrowed_str(&'de str);
        visit_bytes(&[u8]);
        visit_borrowed_bytes(&'de [u8]);
    }

    fn visit_string<E: de::Error>(self, v: alloc::string::String) -> Result<Self::Value, E> {
        self.inner.visit_string(v)
    }

    fn visit_byte_buf<E: de::Error>(self, v: alloc::vec::Vec<u8>) -> Result<Self::Value, E> {
        self.inner.visit_byte_buf(v)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.inner.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.inner.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        let depth = self.budget.descend(self.depth)?;
        self.inner.visit_some(Limited {
            inner: d,
            depth,
            budget: self.budget,
        })
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        let depth = self.budget.descend(self.depth)?;
        self.inner.visit_newtype_struct(Limited {
            inner: d,
            depth,
            budget: self.budget,
        })
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        let depth = self.budget.descend(self.depth)?;
        self.inner.visit_seq(Access {
            inner: seq,
            depth,
            budget: self.budget,
            fixed: self.fixed,
        })
    }

    fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let depth = self.budget.descend(self.depth)?;
        self.inner.visit_map(Access {
            inner: map,
            depth,
            budget: self.budget,
            fixed: self.fixed,
        })
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
        let depth = self.budget.descend(self.depth)?;
        self.inner.visit_enum(Access {
            inner: data,
            depth,
            budget: self.budget,
            fixed: true,
        })
    }
}

impl<'b, A> Access<'b, A> {
    fn seed<S>(&self, inner: S, element: bool) -> Seed<'b, S> {
        Seed {
            inner,
            depth: self.depth,
            budget: self.budget,
            element,
        }
    }
}

impl<'de, A: de::SeqAccess<'de>> de::SeqAccess<'de> for Access<'_, A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Self::Error> {
        let seed = self.seed(seed, !self.fixed);
        self.inner.next_element_seed(seed)
    }

    // No size hint: a claimed length must not reserve memory.
    fn size_hint(&self) -> Option<usize> {
        None
    }
}

impl<'de, A: de::MapAccess<'de>> de::MapAccess<'de> for Access<'_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        let seed = self.seed(seed, !self.fixed);
        self.inner.next_key_seed(seed)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        let seed = self.seed(seed, false);
        self.inner.next_value_seed(seed)
    }

    fn size_hint(&self) -> Option<usize> {
        None
    }
}

impl<'de, 'b, A: de::EnumAccess<'de>> de::EnumAccess<'de> for Access<'b, A> {
    type Error = A::Error;
    type Variant = Access<'b, A::Variant>;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self::Variant), Self::Error> {
        let (depth, budget) = (self.depth, self.budget);
        let (value, variant) = self.inner.variant_seed(Seed {
            inner: seed,
            depth,
            budget,
            element: false,
        })?;
        Ok((
            value,
            Access {
                inner: variant,
                depth,
                budget,
                fixed: true,
            },
        ))
    }
}

impl<'de, A: de::VariantAccess<'de>> de::VariantAccess<'de> for Access<'_, A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), Self::Error> {
        self.inner.unit_variant()
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, Self::Error> {
        let seed = self.seed(seed, false);
        self.inner.newtype_variant_seed(seed)
    }

    fn tuple_variant<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.inner.tuple_variant(
            len,
            Vis {
                inner: visitor,
                depth: self.depth,
                budget: self.budget,
                fixed: true,
            },
        )
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.inner.struct_variant(
            fields,
            Vis {
                inner: visitor,
                depth: self.depth,
                budget: self.budget,
                fixed: true,
            },
        )
    }
}
