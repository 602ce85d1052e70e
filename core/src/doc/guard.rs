//! Placeholder until the guard lands (replaced by the full module).

use std::string::String;

/// Deepest nesting accepted.
pub const MAX_DEPTH: usize = 128;

/// Why bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuardError {
    /// Nested too deep.
    TooDeep {
        /// Depth reached.
        depth: usize,
        /// The bound.
        max: usize,
    },
    /// Anything else.
    Malformed(String),
}

impl core::fmt::Display for GuardError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{self:?}")
    }
}

/// JSON depth.
pub fn check_json_depth(text: &str, max_depth: usize) -> Result<(), GuardError> {
    let (mut depth, mut in_str, mut esc) = (0usize, false, false);
    for b in text.bytes() {
        if in_str {
            match (esc, b) {
                (true, _) => esc = false,
                (false, b'\\') => esc = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max_depth {
                    return Err(GuardError::TooDeep {
                        depth,
                        max: max_depth,
                    });
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// State vector.
pub fn check_state_vector_v1(bytes: &[u8]) -> Result<(), GuardError> {
    let mut r = super::yws::Reader::new(bytes);
    let n = r.var_u64().map_err(|e| GuardError::Malformed(e.into()))?;
    if n > (r.remaining() / 2) as u64 {
        return Err(GuardError::Malformed("count".into()));
    }
    Ok(())
}
