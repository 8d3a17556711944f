//! The answers the relay gives of its own: its refusals, `store-offline`, and a Create's
//! answer while no store can give it.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::forward::Offline;
use super::payments::{RecordError, RelayedPayment};
use super::state::RelayState;
use crate::config::PosConfig;
use crate::error_body;
use crate::ids::RelayMerchant;
use crate::ppp::auth::Merchant;
use crate::ppp::create_answer::TERMINAL_CONNECTOR_APP;
use crate::ppp::error::PppError;

/// A `/payments…` request's merchant and body, once its credentials are a merchant's (the
/// partner's configured pair, or a pair the configuration flow issued); else the refusal.
pub(super) fn authenticated_body(
    state: &RelayState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(RelayMerchant, Bytes), Box<PppError>> {
    let Merchant(app_key) = state.credentials.authenticate(headers).map_err(Box::new)?;
    let body = body.map_err(|e| {
        Box::new(if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            PppError::TooLarge(state.max_body_bytes)
        } else {
            PppError::bad("bad-request", "cannot read the request body")
        })
    })?;
    Ok((RelayMerchant(app_key), body))
}

pub(super) fn unavailable(e: &RecordError) -> Response {
    tracing::error!(error = %e, "relay records");
    let mut response = error_body::response(
        StatusCode::SERVICE_UNAVAILABLE,
        "relay-unavailable",
        "the relay cannot reach its records just now (nothing was changed); try again",
    );
    retry_after(&mut response);
    response
}

pub(super) fn store_offline(why: Offline) -> Response {
    let mut response = error_body::response(
        StatusCode::SERVICE_UNAVAILABLE,
        "store-offline",
        &format!("{}: nothing is lost, try again", why.describe()),
    );
    retry_after(&mut response);
    response
}

pub(super) fn retry_after(response: &mut Response) {
    response.headers_mut().insert(
        axum::http::header::RETRY_AFTER,
        axum::http::HeaderValue::from_static("5"),
    );
}

/// The Create answer the relay gives itself: `undefined` (with the terminal connector app while
/// no terminal is named), or `denied` once cancelled before any store knew the payment.
pub(super) fn own_answer(state: &RelayState, payment_id: &str, p: &RelayedPayment) -> Response {
    let delays = PosConfig::default();
    let (status, code, message, app) = match (&p.cancellation_id, &p.store) {
        (Some(_), _) => (
            "denied",
            Some("cancelled"),
            Some("cancelled before a terminal was named: nothing was charged"),
            None,
        ),
        (None, None) => (
            "undefined",
            None,
            None,
            Some(json!({
                "appName": TERMINAL_CONNECTOR_APP,
                "payload": json!({ "submitUrl": state.urls.submit_url(payment_id, &p.submit_token) }).to_string(),
            })),
        ),
        // Its store is away: the Gateway asks again later.
        (None, Some(_)) => ("undefined", None, None, None),
    };
    let mut answer = json!({
        "paymentId": payment_id,
        "status": status,
        "authorizationId": null,
        "tid": p.tid,
        "nsu": null,
        "acquirer": null,
        "code": code,
        "message": message,
        "delayToAutoSettle": delays.delay_to_auto_settle,
        "delayToAutoSettleAfterAntifraud": delays.delay_to_auto_settle_after_antifraud,
        "delayToCancel": delays.delay_to_cancel,
    });
    if let (Some(app), Some(object)) = (app, answer.as_object_mut()) {
        object.insert("paymentAppData".into(), app);
    }
    Json(answer).into_response()
}
