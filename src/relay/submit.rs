//! The submitUrl on the relay: the serial number finds the store; the route is recorded once.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use serde::Deserialize;
use tracing::Instrument;

use super::answers::unavailable;
use super::directory::Lookup;
use super::handover::{AsSent, as_sent_to, hand_over};
use super::state::RelayState;
use crate::error_body;
use crate::route_limits::ClientAddr;
use crate::secret::ct_eq;

/// The submitUrl's body is one short field.
pub(super) const SUBMIT_BODY_BYTES: usize = 4 * 1024;

#[derive(Deserialize)]
pub(super) struct TokenQuery {
    #[serde(default)]
    token: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct SerialBody {
    serial_number: String,
}

pub(super) fn submit_error(status: StatusCode, code: &str, message: &str) -> Response {
    error_body::response(status, code, message)
}

pub(super) async fn submit_serial(
    State(state): State<RelayState>,
    Path(payment_id): Path<String>,
    Query(query): Query<TokenQuery>,
    uri: Uri,
    headers: HeaderMap,
    client: Option<Extension<ClientAddr>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return submit_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body-too-large",
                &format!("request body larger than {SUBMIT_BODY_BYTES} bytes"),
            );
        }
        Err(_) => {
            return submit_error(
                StatusCode::BAD_REQUEST,
                "bad-request",
                "cannot read the request body",
            );
        }
    };
    if let Some(problem) = crate::ids::problem(&payment_id, crate::ids::MAX_KEY_CHARS) {
        return submit_error(
            StatusCode::BAD_REQUEST,
            "bad-request",
            &format!("field `paymentId` {problem}"),
        );
    }
    let serial = match std::str::from_utf8(&body)
        .ok()
        .and_then(|text| serde_json::from_str::<SerialBody>(text).ok())
    {
        Some(body) => body.serial_number.trim().to_string(),
        None => {
            return submit_error(
                StatusCode::BAD_REQUEST,
                "bad-request",
                "expected {\"serialNumber\": \"...\"}",
            );
        }
    };
    let span = tracing::info_span!("relay_submit", payment_id = %payment_id);
    async move {
        let wrong_token = || {
            submit_error(
                StatusCode::FORBIDDEN,
                "bad-token",
                "wrong token",
            )
        };
        let mut found = match state.payments.get(&payment_id).await {
            Ok(Some(found)) => found,
            // As a store answers: probing for payment ids learns nothing.
            Ok(None) => return wrong_token(),
            Err(e) => return unavailable(&e),
        };
        if !ct_eq(query.token.as_bytes(), found.payment.submit_token.as_bytes()) {
            return wrong_token();
        }
        let store = loop {
            if found.payment.cancellation_id.is_some() {
                return submit_error(
                    StatusCode::CONFLICT,
                    "payment-final",
                    "the payment is already final",
                );
            }
            if let Some(store) = &found.payment.store {
                break store.clone();
            }
            let lookup = match state.directory.read() {
                Ok(directory) => match directory.lookup(&serial) {
                    Lookup::Store(store) => Ok(store.to_string()),
                    Lookup::Unknown => Err(None),
                    Lookup::Disputed(stores) => Err(Some(stores.join(", "))),
                },
                Err(_) => Err(None),
            };
            let store = match lookup {
                Ok(store) => store,
                Err(None) => {
                    return submit_error(
                        StatusCode::NOT_FOUND,
                        "unknown-terminal",
                        "no terminal has this serial number",
                    );
                }
                Err(Some(stores)) => {
                    tracing::error!(serial = %serial, stores = %stores, "ALARM: a payment names a terminal serial number two stores claim: refused");
                    return submit_error(
                        StatusCode::CONFLICT,
                        "disputed-terminal",
                        "two stores claim this serial number: ask the partner to remove it from all but one",
                    );
                }
            };
            let routed = state
                .payments
                .update(&payment_id, &found, |p| p.store = Some(store.clone()))
                .await;
            match routed {
                Ok(Some(routed)) => {
                    tracing::info!(store_id = %store, "payment routed to its store");
                    found = routed;
                    break store;
                }
                // Another replica changed it meanwhile: decide again on what is there now.
                Ok(None) => match state.payments.get(&payment_id).await {
                    Ok(Some(now)) => found = now,
                    Ok(None) => return wrong_token(),
                    Err(e) => return unavailable(&e),
                },
                Err(e) => return unavailable(&e),
            }
        };
        if let Err(answer) = hand_over(&state, &payment_id, &found, &store).await {
            return answer;
        }
        let request = AsSent {
            method: &Method::POST,
            uri: &uri,
            headers: &headers,
            client,
            body,
            merchant: None,
        };
        as_sent_to(&state, &store, request).await
    }
    .instrument(span)
    .await
}
