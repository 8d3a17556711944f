//! What the Sales App's Payment Apps call: the terminal-connector-app's submitUrl, which names
//! the terminal that will take the payment, and, for a custom Payment App, the live feed of
//! the payment over WebSocket (`hub`, `socket`) — or by long polling through the relay tier
//! (`polling`) — and the reference page that shows it.

mod admission;
pub mod hub;
pub mod page;
mod polling;
pub(crate) mod socket;

pub use hub::Hub;

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;
use tower::ServiceBuilder;
use tower_http::cors::{Any, CorsLayer};

use crate::error_body::response as error;
use crate::pos::{BindFailure, Engine};
use crate::route_limits::{Guarded, Limits, RouteLimits, Routes, TimeBudget};

/// What the Payment App routes share (the server builds it; PPP has a state of its own).
#[derive(Clone)]
pub struct PaymentAppState {
    pub engine: Arc<Engine>,
    /// The live feed.
    pub hub: Arc<Hub>,
    /// The failure limiters and time budgets the routes are given.
    pub limits: RouteLimits,
}

/// Body limit of the submitUrl: `{"serialNumber": "…"}` is a few bytes.
const SUBMIT_BODY_BYTES: usize = 16 * 1024;

/// The submitUrl and the feed: a wrong token counts against the address.
const TOKEN: Limits = Limits {
    failures: Some(Guarded::Token),
    time: TimeBudget::Request,
};
/// The reference page and its script: nothing to get wrong.
const OPEN: Limits = Limits {
    failures: None,
    time: TimeBudget::Request,
};

pub fn router(state: PaymentAppState) -> Router {
    routes(&state.limits).into_router().with_state(state)
}

/// The Payment App routes, each with its limits.
fn routes(limits: &RouteLimits) -> Routes<PaymentAppState> {
    // The app runs in the Sales App's web view: any origin may call, the token is the guard.
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::POST, Method::OPTIONS])
        .allow_headers(Any);
    Routes::new(limits)
        .route(
            "/pos/payments/{payment_id}/terminal",
            TOKEN,
            post(submit_serial).layer(
                ServiceBuilder::new()
                    .layer(cors)
                    .layer(DefaultBodyLimit::max(SUBMIT_BODY_BYTES)),
            ),
        )
        .route(
            "/payment-app/ws/{payment_id}",
            TOKEN,
            // The reference page reads a refused feed's status with a plain GET, from wherever
            // it is served; the token is the guard and the answer holds nothing else.
            get(socket::upgrade).layer(
                CorsLayer::new()
                    .allow_origin(Any)
                    .allow_methods([Method::GET]),
            ),
        )
        .route(
            "/payment-app/events/{payment_id}",
            TOKEN,
            get(polling::events).layer(
                CorsLayer::new()
                    .allow_origin(Any)
                    .allow_methods([Method::GET]),
            ),
        )
        .route(
            "/payment-app/cancel/{payment_id}",
            TOKEN,
            post(polling::cancel),
        )
        .route("/payment-app", OPEN, get(page::to_page))
        .route("/payment-app/", OPEN, get(page::page))
        .route("/payment-app/app.js", OPEN, get(page::script))
}

#[derive(Deserialize)]
pub struct TokenQuery {
    #[serde(default)]
    token: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SerialBody {
    serial_number: String,
}

async fn submit_serial(
    State(state): State<PaymentAppState>,
    Path(payment_id): Path<String>,
    Query(query): Query<TokenQuery>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    // The one error shape, also for a body past the limit (axum's own answer is plain text).
    let body = match body {
        Ok(body) => body,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body-too-large",
                &format!("request body larger than {SUBMIT_BODY_BYTES} bytes"),
            );
        }
        Err(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad-request",
                "cannot read the request body",
            );
        }
    };
    if let Some(problem) = crate::ids::problem(&payment_id, crate::ids::MAX_KEY_CHARS) {
        return error(
            StatusCode::BAD_REQUEST,
            "bad-request",
            &format!("field `paymentId` {problem}"),
        );
    }
    // JSON is UTF-8; serde would skip a field it does not read without looking at it.
    let text = std::str::from_utf8(&body).ok();
    let body: SerialBody = match text.map(serde_json::from_str).transpose() {
        Ok(Some(b)) => b,
        Ok(None) | Err(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad-request",
                "expected {\"serialNumber\": \"...\"}",
            );
        }
    };
    let serial = body.serial_number.trim();
    match state
        .engine
        .bind_terminal(&payment_id, &query.token, serial)
        .await
    {
        Ok(terminal) => {
            tracing::info!(payment_id = %payment_id, terminal = %terminal, "terminal bound");
            Json(json!({ "status": "bound", "terminal": terminal })).into_response()
        }
        Err(failure) => {
            tracing::warn!(payment_id = %payment_id, reason = %failure, "terminal binding refused");
            let (status, code) = match failure {
                BindFailure::UnknownPayment | BindFailure::BadToken => {
                    (StatusCode::FORBIDDEN, "bad-token")
                }
                BindFailure::UnknownSerial => (StatusCode::NOT_FOUND, "unknown-terminal"),
                BindFailure::ChargeStarted => (StatusCode::CONFLICT, "charge-started"),
                BindFailure::Final => (StatusCode::CONFLICT, "payment-final"),
                BindFailure::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal-error"),
            };
            // An unknown payment answers exactly as a wrong token does: probing for payment
            // ids learns nothing, and counts against the address's failure limit (403).
            let told = match failure {
                BindFailure::UnknownPayment => BindFailure::BadToken,
                other => other,
            };
            error(status, code, &told.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_submit_url_and_the_feed_count_wrong_tokens_and_every_route_has_the_request_budget() {
        assert_eq!(
            routes(&RouteLimits::for_tests(1)).attached(),
            [
                ("/pos/payments/{payment_id}/terminal", TOKEN),
                ("/payment-app/ws/{payment_id}", TOKEN),
                ("/payment-app/events/{payment_id}", TOKEN),
                ("/payment-app/cancel/{payment_id}", TOKEN),
                ("/payment-app", OPEN),
                ("/payment-app/", OPEN),
                ("/payment-app/app.js", OPEN),
            ]
        );
    }
}
