//! The Terminal API's local-mode security envelope.
//!
//! A message travels as `{"SaleToPOIRequest"|"SaleToPOIResponse": {"MessageHeader": …,
//! "NexoBlob": …, "SecurityTrailer": …}}`: the header in clear (so either side can route it), the
//! whole clear message encrypted in the blob, and a trailer naming the shared key and carrying
//! the per-message nonce and the HMAC.
//!
//! Key material comes from the passphrase configured on the terminal: PBKDF2-HMAC-SHA1 with the
//! salt `AdyenNexoV1Salt`, 4000 rounds, 80 bytes split into an HMAC key (32), an AES-256 key (32)
//! and an IV (16). Each message is encrypted with AES-256-CBC (PKCS#7) under that IV XOR a fresh
//! random 16-byte nonce, and authenticated by HMAC-SHA256 over the plaintext.
//!
//! Every way an envelope can fail to open — bad base64, wrong lengths, bad padding, HMAC mismatch
//! — is the one [`OpenError::Crypto`]: telling them apart would hand a padding oracle to whoever
//! can send us answers.

use std::fmt;

use aes::Aes256;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockDecryptMut as _, BlockEncryptMut as _, KeyIvInit as _};
use hmac::{Hmac, Mac as _};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::Zeroize as _;

use super::messages::MessageHeader;

type Aes256CbcEnc = cbc::Encryptor<Aes256>;
type Aes256CbcDec = cbc::Decryptor<Aes256>;
type HmacSha256 = Hmac<Sha256>;

const KEY_DERIVATION_SALT: &[u8] = b"AdyenNexoV1Salt";
const KEY_DERIVATION_ROUNDS: u32 = 4000;
const HMAC_KEY_LEN: usize = 32;
const CIPHER_KEY_LEN: usize = 32;
const IV_LEN: usize = 16;
const HMAC_LEN: usize = 32;

/// The only envelope format Adyen defines (`AdyenCryptoVersion`).
pub const ADYEN_CRYPTO_VERSION: u32 = 1;

/// The keys derived from a terminal's shared passphrase. Wiped from memory when dropped; its
/// `Debug` shows nothing secret.
#[derive(Clone)]
pub struct KeyMaterial {
    hmac_key: [u8; HMAC_KEY_LEN],
    cipher_key: [u8; CIPHER_KEY_LEN],
    iv: [u8; IV_LEN],
}

impl KeyMaterial {
    /// Derives the key material from the passphrase (PBKDF2-HMAC-SHA1, 4000 rounds: a few
    /// milliseconds, so derive once per terminal, not per message).
    pub fn derive(passphrase: &[u8]) -> KeyMaterial {
        let mut derived = [0u8; HMAC_KEY_LEN + CIPHER_KEY_LEN + IV_LEN];
        pbkdf2::pbkdf2_hmac::<sha1::Sha1>(
            passphrase,
            KEY_DERIVATION_SALT,
            KEY_DERIVATION_ROUNDS,
            &mut derived,
        );
        let mut material = KeyMaterial {
            hmac_key: [0; HMAC_KEY_LEN],
            cipher_key: [0; CIPHER_KEY_LEN],
            iv: [0; IV_LEN],
        };
        let (hmac_key, rest) = derived.split_at(HMAC_KEY_LEN);
        let (cipher_key, iv) = rest.split_at(CIPHER_KEY_LEN);
        material.hmac_key.copy_from_slice(hmac_key);
        material.cipher_key.copy_from_slice(cipher_key);
        material.iv.copy_from_slice(iv);
        derived.zeroize();
        material
    }

    fn message_iv(&self, nonce: &Nonce) -> [u8; IV_LEN] {
        let mut iv = self.iv;
        for (byte, nonce_byte) in iv.iter_mut().zip(nonce.0) {
            *byte ^= nonce_byte;
        }
        iv
    }

    fn hmac(&self, plaintext: &[u8]) -> HmacSha256 {
        // RFC 2104 pads a key shorter than the hash's block with zeros; doing it here gives the
        // fixed-size key `KeyInit::new` takes, so there is no length error to handle.
        let mut block_key = hmac::digest::Key::<HmacSha256>::default();
        if let Some(head) = block_key.get_mut(..HMAC_KEY_LEN) {
            head.copy_from_slice(&self.hmac_key);
        }
        let mut mac = <HmacSha256 as hmac::digest::KeyInit>::new(&block_key);
        block_key.zeroize();
        mac.update(plaintext);
        mac
    }
}

impl Drop for KeyMaterial {
    fn drop(&mut self) {
        self.hmac_key.zeroize();
        self.cipher_key.zeroize();
        self.iv.zeroize();
    }
}

impl fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyMaterial(<redacted>)")
    }
}

/// Which shared key the terminal must use: as configured on the terminal and in posbridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyIdentity {
    pub key_identifier: String,
    pub key_version: u32,
}

/// The per-message random value XORed into the IV. Must never repeat under one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nonce([u8; IV_LEN]);

impl Nonce {
    /// A fresh nonce from the operating system's random source.
    pub fn random() -> Result<Nonce, SealError> {
        let mut bytes = [0u8; IV_LEN];
        getrandom::fill(&mut bytes).map_err(|error| SealError::NoRandomness(error.to_string()))?;
        Ok(Nonce(bytes))
    }

    /// A given nonce: for tests and for replaying recorded exchanges.
    pub fn from_bytes(bytes: [u8; IV_LEN]) -> Nonce {
        Nonce(bytes)
    }
}

/// Why a message could not be sealed.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The operating system gave no random bytes: nothing can be sealed safely.
    #[error("no random nonce from the operating system: {0}")]
    NoRandomness(String),
    #[error("the envelope does not serialize: {0}")]
    Serialize(String),
}

/// The `SecurityTrailer` of an envelope, as it travels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SecurityTrailer {
    pub key_identifier: String,
    pub key_version: u32,
    pub adyen_crypto_version: u32,
    /// Base64 of the 16-byte nonce.
    pub nonce: String,
    /// Base64 of the HMAC-SHA256 of the plaintext.
    pub hmac: String,
}

/// Which way a message goes: names the outer JSON object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// `SaleToPOIRequest`: from the sale system (posbridge) to the terminal, or a notification
    /// the terminal sends on its own.
    Request,
    /// `SaleToPOIResponse`: the terminal's answer.
    Response,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct EnvelopeOut<'a> {
    message_header: &'a MessageHeader,
    nexo_blob: String,
    security_trailer: SecurityTrailer,
}

#[derive(Serialize)]
enum OuterOut<'a> {
    #[serde(rename = "SaleToPOIRequest")]
    Request(EnvelopeOut<'a>),
    #[serde(rename = "SaleToPOIResponse")]
    Response(EnvelopeOut<'a>),
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct EnvelopeIn {
    message_header: Option<MessageHeader>,
    nexo_blob: Option<String>,
    security_trailer: Option<SecurityTrailer>,
}

#[derive(Deserialize)]
enum OuterIn {
    #[serde(rename = "SaleToPOIRequest")]
    Request(EnvelopeIn),
    #[serde(rename = "SaleToPOIResponse")]
    Response(EnvelopeIn),
}

/// Seals a clear message under a fresh random nonce: `plaintext` is the whole clear message
/// (`{"SaleToPOIRequest": {"MessageHeader": …, "PaymentRequest": …}}`) and `header` its
/// `MessageHeader`, repeated in clear outside the blob. Returns the envelope's JSON bytes.
pub fn seal(
    direction: Direction,
    header: &MessageHeader,
    plaintext: &[u8],
    key: &KeyMaterial,
    identity: &KeyIdentity,
) -> Result<Vec<u8>, SealError> {
    seal_with_nonce(
        direction,
        header,
        plaintext,
        key,
        identity,
        Nonce::random()?,
    )
}

/// [`seal`] with a given nonce. Outside tests, use [`seal`]: a nonce must never repeat.
pub fn seal_with_nonce(
    direction: Direction,
    header: &MessageHeader,
    plaintext: &[u8],
    key: &KeyMaterial,
    identity: &KeyIdentity,
    nonce: Nonce,
) -> Result<Vec<u8>, SealError> {
    let blob = Aes256CbcEnc::new(&key.cipher_key.into(), &key.message_iv(&nonce).into())
        .encrypt_padded_vec_mut::<Pkcs7>(plaintext);
    let hmac = key.hmac(plaintext).finalize().into_bytes();
    let body = EnvelopeOut {
        message_header: header,
        nexo_blob: BASE64.encode(blob),
        security_trailer: SecurityTrailer {
            key_identifier: identity.key_identifier.clone(),
            key_version: identity.key_version,
            adyen_crypto_version: ADYEN_CRYPTO_VERSION,
            nonce: BASE64.encode(nonce.0),
            hmac: BASE64.encode(hmac),
        },
    };
    let outer = match direction {
        Direction::Request => OuterOut::Request(body),
        Direction::Response => OuterOut::Response(body),
    };
    serde_json::to_vec(&outer).map_err(|error| SealError::Serialize(error.to_string()))
}

/// An envelope opened and authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    pub direction: Direction,
    /// The header sent in clear: routing only. The authenticated one is inside `plaintext`.
    pub clear_header: MessageHeader,
    pub trailer: SecurityTrailer,
    /// The clear message, its HMAC verified.
    pub plaintext: Vec<u8>,
}

/// Why bytes did not open as an envelope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// Not a Terminal API message at all (not JSON, or neither `SaleToPOIRequest` nor
    /// `SaleToPOIResponse`): e.g. a terminal's clear-text error page such as
    /// `Nexo Service: crypto error`.
    #[error("not a Terminal API envelope: {0}")]
    NotAnEnvelope(String),
    /// A Terminal API message sent in clear (no `NexoBlob`): never trusted as a result, but its
    /// content (e.g. an `EventNotification` rejecting our request) says what went wrong.
    #[error("the terminal answered in clear, not encrypted")]
    Clear,
    /// The envelope did not decrypt or authenticate under our key: wrong key, tampering or
    /// corruption. Deliberately one error, whatever the cause.
    #[error("the envelope does not decrypt or authenticate under the configured key")]
    Crypto,
}

/// What an envelope says in clear, read before anyone knows whose key opens it: for routing
/// (which terminal, which key, which ServiceID) and nothing else.
#[derive(Debug, Clone)]
pub struct ClearParts {
    pub direction: Direction,
    pub header: Option<MessageHeader>,
    /// A `NexoBlob` is present: the message claims to be sealed.
    pub sealed: bool,
    pub trailer: Option<SecurityTrailer>,
}

/// Reads an envelope's clear parts without opening it.
pub fn clear_parts(envelope: &[u8]) -> Result<ClearParts, OpenError> {
    let outer: OuterIn = serde_json::from_slice(envelope)
        .map_err(|error| OpenError::NotAnEnvelope(error.to_string()))?;
    let (direction, body) = match outer {
        OuterIn::Request(body) => (Direction::Request, body),
        OuterIn::Response(body) => (Direction::Response, body),
    };
    Ok(ClearParts {
        direction,
        header: body.message_header,
        sealed: body.nexo_blob.is_some(),
        trailer: body.security_trailer,
    })
}

/// Opens an envelope: checks its shape, decrypts the blob and verifies the HMAC (in constant
/// time). The key identifier and version in the trailer are returned, not checked: the caller
/// knows which key it expects.
pub fn open(envelope: &[u8], key: &KeyMaterial) -> Result<Opened, OpenError> {
    let outer: OuterIn = serde_json::from_slice(envelope)
        .map_err(|error| OpenError::NotAnEnvelope(error.to_string()))?;
    let (direction, body) = match outer {
        OuterIn::Request(body) => (Direction::Request, body),
        OuterIn::Response(body) => (Direction::Response, body),
    };
    let (nexo_blob, trailer) = match (body.nexo_blob, body.security_trailer) {
        (Some(nexo_blob), Some(trailer)) => (nexo_blob, trailer),
        (None, None) => return Err(OpenError::Clear),
        (Some(_), None) => {
            return Err(OpenError::NotAnEnvelope(
                "missing field `SecurityTrailer`".to_owned(),
            ));
        }
        (None, Some(_)) => {
            return Err(OpenError::NotAnEnvelope(
                "missing field `NexoBlob`".to_owned(),
            ));
        }
    };
    let clear_header = body
        .message_header
        .ok_or_else(|| OpenError::NotAnEnvelope("missing field `MessageHeader`".to_owned()))?;
    let plaintext = decrypt(&nexo_blob, &trailer, key).ok_or(OpenError::Crypto)?;
    Ok(Opened {
        direction,
        clear_header,
        trailer,
        plaintext,
    })
}

/// `None` for every failure, on purpose (see the module's documentation).
fn decrypt(nexo_blob: &str, trailer: &SecurityTrailer, key: &KeyMaterial) -> Option<Vec<u8>> {
    let blob = BASE64.decode(nexo_blob).ok()?;
    let nonce: [u8; IV_LEN] = BASE64.decode(&trailer.nonce).ok()?.try_into().ok()?;
    let hmac = BASE64.decode(&trailer.hmac).ok()?;
    if hmac.len() != HMAC_LEN {
        return None;
    }
    let plaintext = Aes256CbcDec::new(
        &key.cipher_key.into(),
        &key.message_iv(&Nonce(nonce)).into(),
    )
    .decrypt_padded_vec_mut::<Pkcs7>(&blob)
    .ok()?;
    // `verify_slice` compares in constant time.
    key.hmac(&plaintext).verify_slice(&hmac).ok()?;
    Some(plaintext)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> MessageHeader {
        MessageHeader::service_request(
            super::super::messages::MessageCategory::Payment,
            "sale-1",
            "svc1",
            "V400m-324688179",
        )
    }

    fn identity() -> KeyIdentity {
        KeyIdentity {
            key_identifier: "posbridge".to_owned(),
            key_version: 1,
        }
    }

    #[test]
    fn key_material_debug_shows_no_key() {
        let key = KeyMaterial::derive(b"p@ssw0rd123456");
        assert_eq!(format!("{key:?}"), "KeyMaterial(<redacted>)");
    }

    #[test]
    fn the_nonce_changes_the_ciphertext_not_the_hmac() {
        let key = KeyMaterial::derive(b"secret");
        let plaintext = br#"{"SaleToPOIRequest":{}}"#;
        let first = seal_with_nonce(
            Direction::Request,
            &header(),
            plaintext,
            &key,
            &identity(),
            Nonce([1; 16]),
        )
        .unwrap();
        let second = seal_with_nonce(
            Direction::Request,
            &header(),
            plaintext,
            &key,
            &identity(),
            Nonce([2; 16]),
        )
        .unwrap();
        let first = open(&first, &key).unwrap();
        let second = open(&second, &key).unwrap();
        assert_ne!(first.trailer.nonce, second.trailer.nonce);
        assert_eq!(first.trailer.hmac, second.trailer.hmac);
        assert_eq!(first.plaintext, plaintext);
        assert_eq!(second.plaintext, plaintext);
    }

    #[test]
    fn another_passphrase_is_the_generic_crypto_error() {
        let sealed = seal(
            Direction::Request,
            &header(),
            b"{}",
            &KeyMaterial::derive(b"right"),
            &identity(),
        )
        .unwrap();
        assert_eq!(
            open(&sealed, &KeyMaterial::derive(b"wrong")),
            Err(OpenError::Crypto)
        );
    }

    #[test]
    fn clear_text_and_clear_messages_are_told_apart_from_crypto_failures() {
        let key = KeyMaterial::derive(b"k");
        assert!(matches!(
            open(b"Nexo Service: crypto error", &key),
            Err(OpenError::NotAnEnvelope(_))
        ));
        assert!(matches!(
            open(b"{}", &key),
            Err(OpenError::NotAnEnvelope(_))
        ));
        assert_eq!(
            open(
                br#"{"SaleToPOIRequest":{"MessageHeader":{"MessageClass":"Event","MessageCategory":"Event","MessageType":"Notification","SaleID":"N/A","POIID":"N/A"},"EventNotification":{}}}"#,
                &key
            ),
            Err(OpenError::Clear)
        );
    }
}
