//! Request bodies: read whatever the Content-Type says (the Gateway and the Sales App are not
//! consistent), bounded by `max_body_bytes`, and parsed with errors that name the field.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

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

/// Parses JSON; the error says which field is missing or of the wrong type.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return format!("malformed JSON: {inner}");
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

/// A lenient integer: a number or a numeric string (`"installments": "0"` happens).
pub fn lenient_int(value: Option<&serde_json::Value>) -> Option<i64> {
    match value? {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}
