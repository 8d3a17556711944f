//! Values sealed at rest (AES-256-GCM under a 32-byte key): `sealed1:<hex of nonce,
//! ciphertext and tag>`. The store seals the Gateway's callback addresses in its database under
//! a key file beside it (`store::seal`); the relay tier seals the ones it keeps in NATS under a
//! key all its replicas derive alike. Debug and Display never show a key.

use std::fmt;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

/// What marks a sealed value (and its format, should it ever change).
pub(crate) const PREFIX: &str = "sealed1:";
pub const KEY_LEN: usize = 32;

/// The installation's key. Debug and Display never show it.
pub struct SealKey(LessSafeKey);

impl fmt::Debug for SealKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealKey(***)")
    }
}

impl fmt::Display for SealKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("no random bytes for a nonce: {0}")]
    Random(getrandom::Error),
    #[error("the encryption failed")]
    Encrypt,
}

/// Why a sealed value cannot be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("not a sealed value")]
    Malformed,
    /// Sealed under another key (restored without its key file) or changed since.
    #[error("sealed under another key, or changed")]
    Rejected,
}

impl SealKey {
    /// A key derived (one way) from a secret several processes already share, for one
    /// purpose: the relay replicas seal under it without a key file to hand around.
    pub fn derived(purpose: &str, secret: &str) -> Result<Self, aws_lc_rs::error::Unspecified> {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(purpose.as_bytes());
        h.update([0u8]);
        h.update(secret.as_bytes());
        Self::from_bytes(&h.finalize().into())
    }

    pub fn from_bytes(bytes: &[u8; KEY_LEN]) -> Result<Self, aws_lc_rs::error::Unspecified> {
        Ok(Self(LessSafeKey::new(UnboundKey::new(
            &AES_256_GCM,
            bytes,
        )?)))
    }

    /// Seals `clear` under a fresh random nonce. A value already sealed is kept as it is.
    pub fn seal(&self, clear: &str) -> Result<String, SealError> {
        if clear.starts_with(PREFIX) {
            return Ok(clear.to_string());
        }
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(SealError::Random)?;
        let mut sealed = clear.as_bytes().to_vec();
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::empty(),
                &mut sealed,
            )
            .map_err(|_| SealError::Encrypt)?;
        let mut out = nonce.to_vec();
        out.append(&mut sealed);
        Ok(format!("{PREFIX}{}", crate::secret::hex(&out)))
    }

    /// The clear value of `stored`; a value written before sealing (not `sealed1:`) is already
    /// clear and comes back as it is.
    pub fn open(&self, stored: &str) -> Result<String, OpenError> {
        let Some(hex) = stored.strip_prefix(PREFIX) else {
            return Ok(stored.to_string());
        };
        let bytes = from_hex(hex).ok_or(OpenError::Malformed)?;
        if bytes.len() < NONCE_LEN {
            return Err(OpenError::Malformed);
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| OpenError::Malformed)?;
        let mut sealed = sealed.to_vec();
        let clear = self
            .0
            .open_in_place(nonce, Aad::empty(), &mut sealed)
            .map_err(|_| OpenError::Rejected)?;
        String::from_utf8(clear.to_vec()).map_err(|_| OpenError::Malformed)
    }
}

fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}
