//! The nexo security envelope against Adyen's own data and an independent implementation:
//! a real encrypted P400Plus answer opens under Adyen's public test key (fixtures and key in
//! `tests/data/nexo/SOURCES.md`), any tampering fails with the one generic error, and what we
//! seal is opened by Python's `cryptography` (`tests/nexo_open_envelope.py`).

#![cfg(feature = "nexo")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::LazyLock;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use firmware_protocols::nexo::crypto::{
    self, Direction, KeyIdentity, KeyMaterial, OpenError, SecurityTrailer,
};
use firmware_protocols::nexo::messages::{MessageCategory, MessageHeader};
use proptest::prelude::*;

const TEST_PASSPHRASE: &[u8] = b"p@ssw0rd123456";

/// Derived once: 4000 PBKDF2 rounds per proptest case make a debug build crawl.
static PROPERTY_KEY: LazyLock<KeyMaterial> = LazyLock::new(|| KeyMaterial::derive(b"properties"));

fn fixture(name: &str) -> Vec<u8> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/nexo/");
    std::fs::read(format!("{path}{name}")).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn identity() -> KeyIdentity {
    KeyIdentity {
        key_identifier: "posbridge".to_owned(),
        key_version: 3,
    }
}

fn payment_header() -> MessageHeader {
    MessageHeader::service_request(
        MessageCategory::Payment,
        "store-1-lane-4",
        "a1b2c3",
        "V400m-1",
    )
}

#[test]
fn adyens_encrypted_answer_opens_under_the_public_test_key() {
    let opened = crypto::open(
        &fixture("payment-local-success.json"),
        &KeyMaterial::derive(TEST_PASSPHRASE),
    )
    .unwrap();
    assert_eq!(opened.direction, Direction::Response);
    assert_eq!(
        opened.trailer,
        SecurityTrailer {
            key_identifier: "CryptoKeyIdentifier12345".to_owned(),
            key_version: 1,
            adyen_crypto_version: 1,
            nonce: "9iiJMpzKfYs3106ozIKNFQ==".to_owned(),
            hmac: "l+5/pYiAbC0V9Xx78ELNDcLMaqTlqx2OyGha37i/g5g=".to_owned(),
        }
    );
    assert_eq!(opened.clear_header.poi_id, "P400Plus-275039202");
    assert_eq!(opened.clear_header.service_id.as_deref(), Some("325488592"));
    let plaintext = String::from_utf8(opened.plaintext).unwrap();
    assert!(
        plaintext.contains(r#""ApprovalCode": "123456""#),
        "{plaintext}"
    );
}

#[test]
fn the_other_encrypted_fixture_opens_too() {
    let opened = crypto::open(
        &fixture("payment-local-additional-attributes.json"),
        &KeyMaterial::derive(TEST_PASSPHRASE),
    )
    .unwrap();
    assert!(opened.plaintext.starts_with(b"{"));
}

/// Rewrites one field of the fixture's trailer or blob with one bit flipped in its bytes.
fn tampered(field: &str, byte_index: usize) -> Vec<u8> {
    let mut envelope: serde_json::Value =
        serde_json::from_slice(&fixture("payment-local-success.json")).unwrap();
    let body = &mut envelope["SaleToPOIResponse"];
    let slot = if field == "NexoBlob" {
        &mut body["NexoBlob"]
    } else {
        &mut body["SecurityTrailer"][field]
    };
    let mut bytes = BASE64.decode(slot.as_str().unwrap()).unwrap();
    let index = byte_index % bytes.len();
    bytes[index] ^= 0x01;
    *slot = serde_json::Value::String(BASE64.encode(bytes));
    serde_json::to_vec(&envelope).unwrap()
}

#[test]
fn a_flipped_bit_in_blob_nonce_or_hmac_is_the_one_generic_error() {
    let key = KeyMaterial::derive(TEST_PASSPHRASE);
    let blob_len = BASE64
        .decode(
            serde_json::from_slice::<serde_json::Value>(&fixture("payment-local-success.json"))
                .unwrap()["SaleToPOIResponse"]["NexoBlob"]
                .as_str()
                .unwrap(),
        )
        .unwrap()
        .len();
    // Every byte of the nonce and the HMAC, and blob bytes at the start, the middle, the last
    // block (padding) and across every block boundary.
    let mut cases: Vec<(&str, usize)> = (0..16).map(|i| ("Nonce", i)).collect();
    cases.extend((0..32).map(|i| ("Hmac", i)));
    cases.extend((0..blob_len).step_by(15).map(|i| ("NexoBlob", i)));
    cases.extend((blob_len - 16..blob_len).map(|i| ("NexoBlob", i)));
    for (field, index) in cases {
        assert_eq!(
            crypto::open(&tampered(field, index), &key),
            Err(OpenError::Crypto),
            "{field} byte {index}"
        );
    }
}

#[test]
fn malformed_trailer_values_are_the_same_generic_error() {
    let key = KeyMaterial::derive(TEST_PASSPHRASE);
    for (field, value) in [
        ("Nonce", "not base64!"),
        ("Nonce", "AAAA"),
        ("Hmac", "AAAA"),
        ("NexoBlob", "AAAA"),
        ("NexoBlob", ""),
    ] {
        let mut envelope: serde_json::Value =
            serde_json::from_slice(&fixture("payment-local-success.json")).unwrap();
        let body = &mut envelope["SaleToPOIResponse"];
        if field == "NexoBlob" {
            body[field] = value.into();
        } else {
            body["SecurityTrailer"][field] = value.into();
        }
        assert_eq!(
            crypto::open(&serde_json::to_vec(&envelope).unwrap(), &key),
            Err(OpenError::Crypto),
            "{field} = {value:?}"
        );
    }
}

#[test]
fn the_wrong_passphrase_is_the_same_generic_error() {
    assert_eq!(
        crypto::open(
            &fixture("payment-local-success.json"),
            &KeyMaterial::derive(b"p@ssw0rd123457")
        ),
        Err(OpenError::Crypto)
    );
}

#[test]
fn a_clear_text_error_body_is_not_an_envelope() {
    let key = KeyMaterial::derive(TEST_PASSPHRASE);
    assert!(matches!(
        crypto::open(b"Nexo Service: crypto error", &key),
        Err(OpenError::NotAnEnvelope(_))
    ));
    assert!(matches!(
        crypto::open(&fixture("abort-sync-success"), &key),
        Err(OpenError::NotAnEnvelope(_))
    ));
    // Adyen's clear rejection of a request it could not read.
    assert_eq!(
        crypto::open(&fixture("payment-sync-error-empty.json"), &key),
        Err(OpenError::Clear)
    );
}

#[test]
fn sealed_envelope_carries_the_clear_header_and_the_key_identity() {
    let key = KeyMaterial::derive(b"lane 4 secret");
    let sealed = crypto::seal(
        Direction::Request,
        &payment_header(),
        br#"{"SaleToPOIRequest":{}}"#,
        &key,
        &identity(),
    )
    .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&sealed).unwrap();
    let body = &json["SaleToPOIRequest"];
    assert_eq!(body["MessageHeader"]["ServiceID"], "a1b2c3");
    assert_eq!(body["MessageHeader"]["POIID"], "V400m-1");
    assert_eq!(body["MessageHeader"]["ProtocolVersion"], "3.0");
    assert_eq!(body["SecurityTrailer"]["KeyIdentifier"], "posbridge");
    assert_eq!(body["SecurityTrailer"]["KeyVersion"], 3);
    assert_eq!(body["SecurityTrailer"]["AdyenCryptoVersion"], 1);
    assert!(body["NexoBlob"].is_string());
}

#[test]
fn two_seals_of_one_message_use_different_nonces() {
    let key = KeyMaterial::derive(b"k");
    let seal = || {
        let sealed = crypto::seal(
            Direction::Request,
            &payment_header(),
            b"{}",
            &key,
            &identity(),
        )
        .unwrap();
        crypto::open(&sealed, &key).unwrap().trailer.nonce
    };
    assert_ne!(seal(), seal());
}

/// Python with `cryptography`, or `None` (locally) when it is missing. Under `CI=true` a
/// missing interpreter or module fails the test instead.
fn python_with_cryptography() -> Option<&'static str> {
    // The `python3` on PATH (pyenv's, say) or Debian's, which sees python3-cryptography.
    for python in ["python3", "/usr/bin/python3"] {
        let found = Command::new(python)
            .args(["-c", "import cryptography"])
            .status()
            .is_ok_and(|status| status.success());
        if found {
            return Some(python);
        }
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "python3 with the `cryptography` module is required under CI=true (`pip install cryptography`, \
         or Debian's python3-cryptography)"
    );
    eprintln!(
        "SKIPPED: python3 with `cryptography` not found (apt install python3-cryptography); \
         the independent check of sealed envelopes did not run"
    );
    None
}

#[test]
fn what_we_seal_is_opened_by_python_cryptography() {
    let Some(python) = python_with_cryptography() else {
        return;
    };
    let passphrase = "lane-4 passphrase ç";
    let key = KeyMaterial::derive(passphrase.as_bytes());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/nexo_open_envelope.py");
    // Lengths around the AES block size exercise every padding length.
    for len in [0usize, 1, 15, 16, 17, 31, 32, 33, 1000] {
        let plaintext: String = "é{\"x\":1}".chars().cycle().take(len).collect();
        let sealed = crypto::seal(
            Direction::Request,
            &payment_header(),
            plaintext.as_bytes(),
            &key,
            &identity(),
        )
        .unwrap();
        let mut child = Command::new(python)
            .arg(script)
            .arg(passphrase)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&sealed).unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "length {len}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(output.stdout, plaintext.as_bytes(), "length {len}");
    }
}

proptest! {
    #[test]
    fn seal_then_open_gives_back_the_plaintext(
        plaintext in proptest::collection::vec(any::<u8>(), 0..600),
        response in any::<bool>(),
    ) {
        let key = &*PROPERTY_KEY;
        let direction = if response { Direction::Response } else { Direction::Request };
        let sealed =
            crypto::seal(direction, &payment_header(), &plaintext, key, &identity()).unwrap();
        let opened = crypto::open(&sealed, key).unwrap();
        prop_assert_eq!(opened.plaintext, plaintext);
        prop_assert_eq!(opened.direction, direction);
        prop_assert_eq!(opened.clear_header, payment_header());
    }

    #[test]
    fn open_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = crypto::open(&bytes, &PROPERTY_KEY);
    }

    #[test]
    fn open_never_panics_on_envelope_shaped_garbage(
        blob in "[A-Za-z0-9+/=]{0,80}",
        nonce in "[A-Za-z0-9+/=]{0,30}",
        hmac in "[A-Za-z0-9+/=]{0,50}",
    ) {
        let envelope = serde_json::json!({"SaleToPOIResponse": {
            "MessageHeader": serde_json::to_value(payment_header()).unwrap(),
            "NexoBlob": blob,
            "SecurityTrailer": {"KeyIdentifier": "k", "KeyVersion": 1, "AdyenCryptoVersion": 1,
                "Nonce": nonce, "Hmac": hmac},
        }});
        let result = crypto::open(&serde_json::to_vec(&envelope).unwrap(), &PROPERTY_KEY);
        prop_assert_eq!(result, Err(OpenError::Crypto));
    }
}
