//! Randomness from the platform (`crypto.getRandomValues` through
//! getrandom's JS backend): replica ids, Yjs client ids and sync sessions
//! must differ between documents, so nothing here has a seed.

use wasm_bindgen::JsValue;

/// 64 random bits.
pub(crate) fn u64() -> Result<u64, JsValue> {
    let mut b = [0u8; 8];
    getrandom::getrandom(&mut b)
        .map_err(|e| js_sys::Error::new(&format!("no random source available: {e}")))?;
    Ok(u64::from_le_bytes(b))
}

#[cfg(feature = "yrs")]
/// A random value below 2^53 (a Yjs client id, safe as a JS number).
pub(crate) fn u53() -> Result<u64, JsValue> {
    Ok(u64()? & ((1 << 53) - 1))
}

/// A stable 64-bit hash of a replica name (FNV-1a, then the SplitMix64
/// finaliser so that similar names land far apart). Never zero.
pub(crate) fn hash_name(name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    h.max(1)
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_hash_apart_and_never_to_zero() {
        assert_ne!(super::hash_name("a"), super::hash_name("b"));
        assert_eq!(super::hash_name("alice"), super::hash_name("alice"));
        assert_ne!(super::hash_name(""), 0);
    }
}
