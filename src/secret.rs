//! Secrets and card data: types that never print their content, constant-time comparison,
//! random tokens and one-way hashes.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A secret string (token, key, onboarding code). Debug and Display print `***`.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself; every call site is a place where it leaves its wrapper.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Constant-time comparison with a candidate from the outside world.
    pub fn matches(&self, candidate: &str) -> bool {
        ct_eq(self.0.as_bytes(), candidate.as_bytes())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Constant-time equality (the length is not hidden, the content is).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// An unguessable token: 32 random bytes, hex-encoded.
pub fn random_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(hex(&bytes))
}

/// A short random identifier (for ids handed to the Gateway, not for secrets).
pub fn random_id(prefix: &str) -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 10];
    getrandom::fill(&mut bytes)?;
    Ok(format!("{prefix}{}", hex(&bytes)))
}

/// SHA-256 of a high-entropy token, hex-encoded: what the database keeps instead of the token.
pub fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// A token derived from a secret one for one purpose: unguessable while `secret` is, and
/// reveals nothing of it (one-way), so it can be handed to a less trusted party.
pub fn derived_token(purpose: &str, secret: &str) -> String {
    let mut h = Sha256::new();
    h.update(purpose.as_bytes());
    h.update([0u8]);
    h.update(secret.as_bytes());
    hex(&h.finalize())
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// A full card number as it may arrive in a Test Suite request. It can only be turned into
/// its brand-independent fragments; Debug prints the allowed fragments only.
#[derive(Clone)]
pub struct CardNumber(String);

impl CardNumber {
    /// For `#[serde(deserialize_with)]`: a card number sent as a JSON string or number. Any
    /// other value counts as no card number and is never an error, since a deserializer's
    /// error would quote it.
    pub fn deserialize_lenient<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Self>, D::Error> {
        deserializer.deserialize_any(LenientCardNumber)
    }

    pub fn digits(&self) -> String {
        self.0.chars().filter(char::is_ascii_digit).collect()
    }

    /// The first six and last four digits, the only parts PCI lets us keep.
    pub fn fragments(&self) -> Option<(String, String)> {
        let digits = self.digits();
        if digits.len() < 12 {
            return None;
        }
        Some((
            digits[..6].to_string(),
            digits[digits.len() - 4..].to_string(),
        ))
    }

    /// Compares with a documented test card number without exposing the number.
    pub fn is(&self, test_card: &str) -> bool {
        ct_eq(self.digits().as_bytes(), test_card.as_bytes())
    }
}

/// Reads a card number or nothing; never fails on a value, so never quotes one.
struct LenientCardNumber;

impl<'de> Visitor<'de> for LenientCardNumber {
    type Value = Option<CardNumber>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a card number")
    }

    fn visit_str<E: de::Error>(self, number: &str) -> Result<Self::Value, E> {
        Ok(Some(CardNumber(number.to_string())))
    }

    fn visit_u64<E: de::Error>(self, number: u64) -> Result<Self::Value, E> {
        Ok(Some(CardNumber(number.to_string())))
    }

    // Negative or fractional numbers, booleans, null: no card number.
    fn visit_i64<E: de::Error>(self, number: i64) -> Result<Self::Value, E> {
        Ok(u64::try_from(number)
            .ok()
            .map(|n| CardNumber(n.to_string())))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

impl fmt::Debug for CardNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.fragments() {
            Some((first, last)) => write!(f, "CardNumber({first}******{last})"),
            None => f.write_str("CardNumber(***)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "Secret(***) ***");
        assert!(s.matches("hunter2"));
        assert!(!s.matches("hunter3"));
    }

    fn card_number(json: &str) -> Option<CardNumber> {
        let mut de = serde_json::Deserializer::from_str(json);
        CardNumber::deserialize_lenient(&mut de).expect("never an error")
    }

    #[test]
    fn card_numbers_print_only_fragments() {
        let c = card_number("\"4444333322221111\"").expect("a card number");
        assert_eq!(format!("{c:?}"), "CardNumber(444433******1111)");
        assert!(c.is("4444333322221111"));
    }

    #[test]
    fn card_numbers_are_read_leniently() {
        let c = card_number("4444333322221111").expect("a number");
        assert!(c.is("4444333322221111"));
        for other in [
            "null",
            "true",
            "-4444333322221111",
            "4444333322221111.5",
            "1e300",
            "[\"4444333322221111\"]",
            "{\"n\": \"4444333322221111\"}",
        ] {
            assert!(card_number(other).is_none(), "{other}");
        }
    }

    #[test]
    fn tokens_are_long_and_distinct() {
        let a = random_token().expect("rng");
        let b = random_token().expect("rng");
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert_eq!(token_hash("x").len(), 64);
    }
}
