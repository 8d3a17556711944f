//! The soak.
