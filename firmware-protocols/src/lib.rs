//! Sans-I/O codecs for the wire protocols spoken by card-payment terminals.
//!
//! Nothing in this crate performs I/O, spawns threads or reads clocks: callers
//! feed bytes in and get typed values (and bytes to send) out. The one exception
//! is `nexo::crypto::seal`, which asks the operating system for a random nonce
//! (`seal_with_nonce` takes one instead).

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
