//! Request bodies: read whatever the Content-Type says (the Gateway and the Sales App are not
//! consistent), bounded by `max_body_bytes`, and parsed with errors that name the field.

use std::fmt;
use std::marker::PhantomData;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::de::value::MapAccessDeserializer;
use serde::de::{DeserializeOwned, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, de};

use super::AppState;
use super::error::PppError;

/// The raw body; too large → 413.
pub struct RawBody(pub Bytes);

impl FromRequest<AppState> for RawBody {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        match Bytes::from_request(req, state).await {
            Ok(bytes) => Ok(RawBody(bytes)),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(PppError::TooLarge(state.max_body_bytes).into_response())
            }
            Err(_) => {
                Err(PppError::bad("bad-request", "cannot read the request body").into_response())
            }
        }
    }
}

/// Parses JSON; the error says which field is missing or of the wrong type. Under card data or
/// a field named like a secret it names the field only: serde's text may quote the value.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    // JSON is UTF-8, and serde skips the fields it does not read without looking at them.
    if let Err(e) = std::str::from_utf8(bytes) {
        return Err(format!(
            "malformed JSON: not UTF-8 at byte {}",
            e.valid_up_to()
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let secret = e.path().iter().any(|segment| match segment {
            serde_path_to_error::Segment::Map { key } => is_secret_name(key),
            _ => false,
        });
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return format!("malformed JSON: {inner}");
        }
        if secret {
            return format!("field `{path}` is not valid (its value is not repeated)");
        }
        let text = inner.to_string();
        // serde's text ends with " at line L column C": noise for the caller.
        let text = text.split(" at line ").next().unwrap_or(&text).to_string();
        if path == "." {
            text
        } else {
            format!("field `{path}`: {text}")
        }
    })?;
    de.end().map_err(|e| format!("malformed JSON: {e}"))?;
    Ok(value)
}

/// Names whose values are never quoted back: card data and anything like a credential.
fn is_secret_name(name: &str) -> bool {
    const SECRET_PARTS: [&str; 13] = [
        "card",
        "token",
        "secret",
        "password",
        "passwd",
        "csc",
        "cvv",
        "cvc",
        "pin",
        "appkey",
        "app_key",
        "apikey",
        "signature",
    ];
    let name = name.to_ascii_lowercase();
    SECRET_PARTS.iter().any(|part| name.contains(part))
}

/// For `#[serde(deserialize_with)]`: a JSON object read as `T`, anything else (a string, a
/// number…) as no object, since a type error would quote the misplaced value. Errors inside
/// the object still count.
pub fn object_or_none<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct ObjectOrNone<T>(PhantomData<T>);

    impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectOrNone<T> {
        type Value = Option<T>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object")
        }

        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            T::deserialize(MapAccessDeserializer::new(map)).map(Some)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(None)
        }

        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }

    deserializer.deserialize_any(ObjectOrNone(PhantomData))
}

/// A lenient integer: a number or a numeric string (`"installments": "0"` happens).
pub fn lenient_int(value: Option<&serde_json::Value>) -> Option<i64> {
    match value? {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    #[allow(dead_code)] // read by Debug in the assertions only
    struct Sample {
        request_id: String,
        #[serde(default)]
        app_token: Option<String>,
        #[serde(default, deserialize_with = "object_or_none")]
        card: Option<Card>,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Card {
        holder: Option<String>,
        #[serde(default)]
        digits: Option<u8>,
    }

    #[test]
    fn errors_name_the_field() {
        let error = parse::<Sample>(br#"{"requestId": 42}"#).expect_err("wrong type");
        assert!(
            error.starts_with("field `requestId`: invalid type"),
            "{error}"
        );
        let error = parse::<Sample>(br#"{}"#).expect_err("missing");
        assert_eq!(error, "missing field `requestId`");
        let error = parse::<Sample>(br#"{"requestId": "r""#).expect_err("cut short");
        assert!(error.starts_with("malformed JSON"), "{error}");
    }

    #[test]
    fn a_body_that_is_no_utf8_is_refused_even_in_a_field_never_read() {
        let error = parse::<Sample>(b"{\"requestId\": \"r\", \"other\": \"a\xffb\"}")
            .expect_err("not UTF-8");
        assert_eq!(error, "malformed JSON: not UTF-8 at byte 30");
    }

    #[test]
    fn errors_never_quote_secrets_or_card_data() {
        for body in [
            r#"{"requestId": "r", "appToken": 4444333322221111}"#,
            r#"{"requestId": "r", "appToken": ["4444333322221111"]}"#,
            r#"{"requestId": "r", "card": {"holder": 4444333322221111}}"#,
            r#"{"requestId": "r", "card": {"holder": "x", "digits": "4444333322221111"}}"#,
        ] {
            let error = parse::<Sample>(body.as_bytes()).expect_err(body);
            assert!(!error.contains("4444"), "{body}: {error}");
            assert!(error.contains("is not valid"), "{body}: {error}");
        }
    }

    #[test]
    fn a_card_that_is_no_object_counts_as_none() {
        for card in [
            r#""4444333322221111""#,
            "4444333322221111",
            r#"["4444333322221111"]"#,
            "true",
            "null",
        ] {
            let body = format!(r#"{{"requestId": "r", "card": {card}}}"#);
            let sample = parse::<Sample>(body.as_bytes()).expect("lenient");
            assert!(sample.card.is_none(), "{card}");
        }
        let sample =
            parse::<Sample>(br#"{"requestId": "r", "card": {"holder": "Ana"}}"#).expect("object");
        assert_eq!(sample.card.and_then(|c| c.holder).as_deref(), Some("Ana"));
    }

    #[test]
    fn amounts_keep_their_text_inside_parsed_bodies() {
        #[derive(Debug, Deserialize)]
        struct WithAmount {
            value: crate::money::Amount,
        }
        let parsed = parse::<WithAmount>(br#"{"value": 123456789012345.67}"#).expect("amount");
        assert_eq!(
            parsed.value,
            crate::money::Amount::Number("123456789012345.67".into())
        );
        let error = parse::<WithAmount>(br#"{"value": {"a": 1}}"#).expect_err("object");
        assert!(
            error.starts_with("field `value`: invalid type: map"),
            "{error}"
        );
    }
}
