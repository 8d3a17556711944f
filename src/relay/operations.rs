//! Cancel, settle, refund and inbound requests on the relay.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{Value, json};
use tracing::Instrument;

use super::answers::{authenticated_body, unavailable};
use super::handover::{AsSent, as_sent_to, hand_over};
use super::payments::Found;
use super::state::RelayState;
use crate::ppp::error::PppError;
use crate::route_limits::ClientAddr;

#[derive(Deserialize)]
pub(super) struct PaymentPath {
    payment_id: String,
}

/// Cancel, settle, refund and inbound requests: the payment's store answers them; before any
/// store knows the payment, nothing was charged, and the relay answers.
pub(super) async fn by_payment(
    State(state): State<RelayState>,
    Path(PaymentPath { payment_id }): Path<PaymentPath>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    client: Option<Extension<ClientAddr>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (merchant, body) = match authenticated_body(&state, &headers, body) {
        Ok(authenticated) => authenticated,
        Err(refusal) => return refusal.into_response(),
    };
    if let Some(problem) = crate::ids::problem(&payment_id, crate::ids::MAX_ID_CHARS) {
        return PppError::bad("bad-request", format!("field `paymentId` {problem}"))
            .into_response();
    }
    let span = tracing::info_span!("relay_request", payment_id = %payment_id, path = %uri.path());
    async move {
        let is_cancel = uri.path().ends_with("/cancellations");
        let mut found = match state.payments.get(&payment_id).await {
            // Another merchant's payment is as unknown to this one as no payment at all.
            Ok(Some(found)) if found.payment.belongs_to(&merchant) => found,
            Ok(_) => return PppError::NotFound.into_response(),
            Err(e) => return unavailable(&e),
        };
        let store = loop {
            if let Some(store) = &found.payment.store {
                break store.clone();
            }
            if !is_cancel {
                return PppError::bad(
                    "not-charged",
                    "no terminal was named for this payment: nothing was charged",
                )
                .into_response();
            }
            match cancel_before_any_store(&state, &payment_id, &found, &body).await {
                Ok(answer) => return answer,
                Err(Some(now)) => found = now,
                Err(None) => return PppError::NotFound.into_response(),
            }
        };
        if let Err(answer) = hand_over(&state, &payment_id, &found, &store).await {
            return answer;
        }
        let request = AsSent {
            method: &method,
            uri: &uri,
            headers: &headers,
            client,
            body,
            merchant: Some(&merchant),
        };
        as_sent_to(&state, &store, request).await
    }
    .instrument(span)
    .await
}

/// A cancel before the Sales App named a terminal: no store has the payment and nothing was
/// charged, so it is cancelled here (once: a repeat gets the same cancellation). `Err(Some)`:
/// it changed meanwhile (another replica routed it), decide again on what is there now.
pub(super) async fn cancel_before_any_store(
    state: &RelayState,
    payment_id: &str,
    found: &Found,
    body: &Bytes,
) -> Result<Response, Option<Found>> {
    let request_id = serde_json::from_slice::<Value>(body).ok().and_then(|v| {
        v.get("requestId")
            .and_then(Value::as_str)
            .map(str::to_string)
    });
    let answer = |cancellation_id: &str| {
        Json(json!({
            "paymentId": payment_id,
            "cancellationId": cancellation_id,
            "code": null,
            "message": "cancelled before a terminal was named: nothing was charged",
            "requestId": request_id,
        }))
        .into_response()
    };
    if let Some(cancellation_id) = &found.payment.cancellation_id {
        return Ok(answer(cancellation_id));
    }
    let Ok(cancellation_id) = crate::secret::random_id("cx") else {
        return Ok(PppError::Internal.into_response());
    };
    match state
        .payments
        .update(payment_id, found, |p| {
            p.cancellation_id = Some(cancellation_id.clone());
        })
        .await
    {
        Ok(Some(_)) => {
            tracing::info!("cancelled before any store knew the payment");
            Ok(answer(&cancellation_id))
        }
        Ok(None) => match state.payments.get(payment_id).await {
            Ok(now) => Err(now),
            Err(e) => Ok(unavailable(&e)),
        },
        Err(e) => Ok(unavailable(&e)),
    }
}
