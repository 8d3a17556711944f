//! The nexo Retailer Protocol as Adyen's Terminal API renders it in JSON, for terminals driven
//! over the store network in local mode.
//!
//! Two layers, both sans-I/O:
//! - [`crypto`]: the security envelope every local-mode message travels in (key derivation from
//!   the shared passphrase, AES-256-CBC, HMAC-SHA256).
//! - [`messages`]: the clear messages (PascalCase JSON): the requests posbridge builds and the
//!   answers and notifications it reads.
//! - [`notification`]: the display and event notifications a terminal POSTs on its own, read
//!   and authenticated under the key of the terminal they name.
//!
//! Behind the `nexo` cargo feature, so a ZVT-only build pulls no JSON or crypto.

pub mod crypto;
pub mod messages;
pub mod notification;

use crypto::{Direction, KeyIdentity, KeyMaterial, OpenError, SealError};
use messages::{Incoming, MessageError, Request};

/// Seals a request for the terminal: its clear JSON in the blob, its header in clear.
pub fn seal_request(
    request: &Request,
    key: &KeyMaterial,
    identity: &KeyIdentity,
) -> Result<Vec<u8>, SealError> {
    let plaintext = request
        .to_json()
        .map_err(|error| SealError::Serialize(error.to_string()))?;
    crypto::seal(
        Direction::Request,
        &request.header,
        &plaintext,
        key,
        identity,
    )
}

/// Why an answer from the terminal could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Open(#[from] OpenError),
    /// Decrypted and authenticated, yet not a message posbridge can read.
    #[error(transparent)]
    Message(#[from] MessageError),
}

/// Opens a sealed message from the terminal and reads the clear message inside. The header
/// returned is the authenticated one from inside the blob.
pub fn open_incoming(body: &[u8], key: &KeyMaterial) -> Result<Incoming, ReadError> {
    let opened = crypto::open(body, key)?;
    Ok(Incoming::from_json(&opened.plaintext)?)
}
