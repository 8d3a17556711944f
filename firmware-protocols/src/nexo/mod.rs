//! The nexo Retailer Protocol as Adyen's Terminal API renders it in JSON, for terminals driven
//! over the store network in local mode.
//!
//! Two layers, both sans-I/O:
//! - [`crypto`]: the security envelope every local-mode message travels in (key derivation from
//!   the shared passphrase, AES-256-CBC, HMAC-SHA256).
//! - [`messages`]: the clear messages (PascalCase JSON): the requests posbridge builds and the
//!   answers and notifications it reads.
//!
//! Behind the `nexo` cargo feature, so a ZVT-only build pulls no JSON or crypto.

pub mod crypto;
pub mod messages;
