//! Errors outside the operation-specific shapes: the spec's `{status, code, message}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::error_body;

#[derive(Debug, thiserror::Error)]
pub enum PppError {
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("unknown payment")]
    NotFound,
    #[error("request body larger than {0} bytes")]
    TooLarge(usize),
    #[error("internal error")]
    Internal,
    /// The database refused the write (disk full, read-only, I/O error): nothing was
    /// changed, and the Gateway's retry of the same request is safe.
    #[error("the store's database could not record this request (nothing was changed); try again")]
    Storage,
}

impl PppError {
    pub fn bad(code: &'static str, message: impl Into<String>) -> Self {
        PppError::BadRequest {
            code,
            message: message.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            PppError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            PppError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            PppError::NotFound => StatusCode::NOT_FOUND,
            PppError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            PppError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            PppError::Storage => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            PppError::Unauthorized(_) => "unauthorized",
            PppError::BadRequest { code, .. } => code,
            PppError::NotFound => "unknown-payment",
            PppError::TooLarge(_) => "body-too-large",
            PppError::Internal => "internal-error",
            PppError::Storage => "storage-unavailable",
        }
    }
}

impl PppError {
    /// This error's body with a 404 status (for unknown routes).
    pub fn into_response_404(self) -> Response {
        error_body::response(StatusCode::NOT_FOUND, self.code(), &self.to_string())
    }
}

impl IntoResponse for PppError {
    fn into_response(self) -> Response {
        error_body::response(self.status(), self.code(), &self.to_string())
    }
}
