//! Delta-interval anti-entropy (being built).
