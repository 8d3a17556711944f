//! Sans-I/O codecs for the wire protocols spoken by card-payment terminals.
//!
//! Nothing in this crate performs I/O, spawns threads or reads clocks: callers
//! feed bytes in and get typed values (and bytes to send) out.

// Library code must not panic on any input; tests may.
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

#[cfg(feature = "nexo")]
pub mod nexo;
pub mod tef_dial;
pub mod zvt;
