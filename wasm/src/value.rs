//! JavaScript values ↔ [`Atom`]s, and the errors the bindings throw.

use std::collections::BTreeMap;

use js_sys::{Array, BigInt, Object, Reflect, Uint8Array};
use neuroplex_core::document::{Atom, Float, MAX_ATOM_NESTING};
use wasm_bindgen::{JsCast, JsValue};

/// Largest integer a JS number holds exactly (2^53 - 1).
const MAX_SAFE: f64 = 9_007_199_254_740_991.0;

pub(crate) fn type_error(msg: &str) -> JsValue {
    js_sys::TypeError::new(msg).into()
}

pub(crate) fn range_error(msg: &str) -> JsValue {
    js_sys::RangeError::new(msg).into()
}

pub(crate) fn error(msg: &str) -> JsValue {
    js_sys::Error::new(msg).into()
}

/// Converts a JSON-like value (null, boolean, number, bigint in the i64
/// range, string, Uint8Array, arrays and plain objects of those).
/// Integral numbers become [`Atom::Int`], others [`Atom::Float`].
pub(crate) fn to_atom(v: &JsValue) -> Result<Atom, JsValue> {
    convert(v, 0)
}

fn describe(v: &JsValue) -> String {
    if v.is_undefined() {
        return "undefined".into();
    }
    if v.is_function() {
        return "a function".into();
    }
    if v.is_symbol() {
        return "a symbol".into();
    }
    if let Some(o) = v.dyn_ref::<Object>() {
        let name = String::from(o.constructor().name());
        if !name.is_empty() {
            return format!("an object of class {name}");
        }
    }
    format!(
        "a value of type {}",
        v.js_typeof().as_string().unwrap_or_default()
    )
}

fn convert(v: &JsValue, depth: usize) -> Result<Atom, JsValue> {
    if v.is_null() {
        return Ok(Atom::Null);
    }
    if let Some(b) = v.as_bool() {
        return Ok(Atom::Bool(b));
    }
    if let Some(x) = v.as_f64() {
        return number(x);
    }
    if let Some(s) = v.as_string() {
        return Ok(Atom::Str(s));
    }
    if v.is_bigint() {
        let b: &BigInt = v.unchecked_ref();
        return i64::try_from(b.clone())
            .map(Atom::Int)
            .map_err(|_| type_error("a bigint value must fit in 64 signed bits"));
    }
    if let Some(bytes) = v.dyn_ref::<Uint8Array>() {
        return Ok(Atom::Bytes(bytes.to_vec()));
    }
    let nested = |depth: usize| {
        if depth >= MAX_ATOM_NESTING {
            Err(type_error(&format!(
                "value nested too deeply: at most {MAX_ATOM_NESTING} levels of arrays and objects"
            )))
        } else {
            Ok(depth + 1)
        }
    };
    if Array::is_array(v) {
        let depth = nested(depth)?;
        let arr: &Array = v.unchecked_ref();
        let mut out = Vec::with_capacity(arr.length() as usize);
        for i in 0..arr.length() {
            let x = arr.get(i);
            if x.is_undefined() {
                return Err(type_error(&format!(
                    "array element {i} is undefined: values are null, boolean, number, string, Uint8Array, arrays and plain objects"
                )));
            }
            out.push(convert(&x, depth)?);
        }
        return Ok(Atom::List(out));
    }
    if let Some(obj) = v.dyn_ref::<Object>() {
        if is_plain(obj) {
            let depth = nested(depth)?;
            let mut out = BTreeMap::new();
            let keys = Object::keys(obj);
            for k in keys.iter() {
                let key = k.as_string().unwrap_or_default();
                let x = Reflect::get(obj, &k)?;
                if x.is_undefined() {
                    return Err(type_error(&format!(
                        "property \"{key}\" is undefined: values are null, boolean, number, string, Uint8Array, arrays and plain objects"
                    )));
                }
                out.insert(key, convert(&x, depth)?);
            }
            return Ok(Atom::Object(out));
        }
    }
    Err(type_error(&format!(
        "unsupported value ({}): values are null, boolean, number, string, Uint8Array, arrays and plain objects",
        describe(v)
    )))
}

fn number(x: f64) -> Result<Atom, JsValue> {
    if x.is_nan() {
        return Err(type_error("NaN is not a valid value"));
    }
    if x.is_infinite() {
        return Err(type_error("Infinity is not a valid value"));
    }
    if x.fract() == 0.0 && x.abs() <= MAX_SAFE {
        // Integral: one representation per number (and -0 is 0).
        return Ok(Atom::Int(x as i64));
    }
    Ok(Atom::Float(Float::new(x).expect("not NaN")))
}

/// An object whose prototype is `Object.prototype` or `null`.
fn is_plain(obj: &Object) -> bool {
    let proto = Object::get_prototype_of(obj);
    if proto.is_null() {
        return true;
    }
    let object_proto = Object::get_prototype_of(&Object::new());
    proto == object_proto
}

/// An atom as a JavaScript value. Integers beyond 2^53 come back as
/// bigints, so that no value changes on the way.
pub(crate) fn from_atom(a: &Atom) -> JsValue {
    match a {
        Atom::Null => JsValue::NULL,
        Atom::Bool(b) => JsValue::from_bool(*b),
        Atom::Int(i) => {
            if (*i as f64).abs() <= MAX_SAFE {
                JsValue::from_f64(*i as f64)
            } else {
                BigInt::from(*i).into()
            }
        }
        Atom::Float(f) => JsValue::from_f64(f.get()),
        Atom::Str(s) => JsValue::from_str(s),
        Atom::Bytes(b) => Uint8Array::from(b.as_slice()).into(),
        Atom::List(xs) => xs.iter().map(from_atom).collect::<Array>().into(),
        Atom::Object(m) => {
            let o = Object::new();
            for (k, v) in m {
                let _ = Reflect::set(&o, &JsValue::from_str(k), &from_atom(v));
            }
            o.into()
        }
    }
}

/// A counter step: a safe integer (1 when omitted).
pub(crate) fn step(n: Option<&JsValue>) -> Result<i64, JsValue> {
    let Some(n) = n.filter(|n| !n.is_undefined()) else {
        return Ok(1);
    };
    match n.as_f64() {
        Some(x) if x.fract() == 0.0 && x.abs() <= MAX_SAFE => Ok(x as i64),
        _ => Err(type_error(&format!(
            "a counter changes by a safe integer, not {}",
            describe_short(n)
        ))),
    }
}

#[cfg(feature = "yrs")]
/// An index or a length: an integer in 0..=u32::MAX.
pub(crate) fn index(x: f64, what: &str) -> Result<u32, JsValue> {
    if x.is_nan() || x.fract() != 0.0 {
        return Err(type_error(&format!(
            "{what} must be an integer, not {}",
            num(x)
        )));
    }
    if !(0.0..=f64::from(u32::MAX)).contains(&x) {
        return Err(range_error(&format!("{what} {} is out of range", num(x))));
    }
    Ok(x as u32)
}

/// A number as JavaScript prints it (Rust's float formatting would add
/// kilobytes to the .wasm).
pub(crate) fn num(x: f64) -> String {
    js_sys::Number::from(x)
        .to_string_with_radix(10)
        .map(String::from)
        .unwrap_or_default()
}

fn describe_short(v: &JsValue) -> String {
    match v.as_f64() {
        Some(x) => num(x),
        None => describe(v),
    }
}

/// An array of strings.
pub(crate) fn strings<'a>(xs: impl IntoIterator<Item = &'a String>) -> Array {
    xs.into_iter().map(|s| JsValue::from_str(s)).collect()
}
