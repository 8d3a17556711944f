//! The one error answer outside the operation shapes: the PPP spec's
//! `{"status": "error", "code", "message"}`, used alike by the PPP routes, the submitUrl, the
//! configuration flow and the edge's own refusals (429, 503, 504), so a caller parses one shape.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

pub fn body(code: &str, message: &str) -> Value {
    json!({ "status": "error", "code": code, "message": message })
}

pub fn response(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(body(code, message))).into_response()
}
