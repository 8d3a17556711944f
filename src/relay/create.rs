//! `POST /payments` on the relay: kept until a store has the payment, then the store's answer.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use super::answers::{authenticated_body, own_answer, unavailable};
use super::forward::{self, Relayed};
use super::handover::{client_ip, mark_delivered};
use super::payments::RelayedPayment;
use super::state::RelayState;
use crate::ids::RelayMerchant;
use crate::ppp::error::PppError;
use crate::route_limits::ClientAddr;
use crate::seal::SealKey;

pub(super) async fn create(
    State(state): State<RelayState>,
    headers: HeaderMap,
    client: Option<Extension<ClientAddr>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (merchant, body) = match authenticated_body(&state, &headers, body) {
        Ok(authenticated) => authenticated,
        Err(refusal) => return refusal.into_response(),
    };
    let request = match crate::ppp::read_create(&headers, &body) {
        Ok(request) => request,
        Err(e) => return e.into_response(),
    };
    let payment_id = request.payment_id.clone();
    let span = tracing::info_span!("relay_create", payment_id = %payment_id);
    async move {
        let new = match new_record(&merchant, &body, &state.seal) {
            Ok(new) => new,
            Err(e) => return e.into_response(),
        };
        let found = match state.payments.get_or_insert(&payment_id, new).await {
            Ok(found) => found,
            Err(e) => return unavailable(&e),
        };
        // The same paymentId for another sale (or another merchant's: the Gateway's ids are
        // unique, so that is no real sale): refused, as a store refuses it.
        let kept = found
            .payment
            .create_for_store(&state.seal)
            .map(|create| crate::ppp::read_create(&headers, create.as_bytes()));
        let same_sale = match kept {
            Some(Ok(kept)) => {
                kept.transaction_id == request.transaction_id
                    && kept.method == request.method
                    && kept.amount_minor == request.amount_minor
                    && kept.currency.code() == request.currency.code()
                    && kept.installments == request.installments
            }
            // Unreadable (an alarm when handed over): the store compares it.
            _ => true,
        };
        if !(found.payment.belongs_to(&merchant) && same_sale) {
            return PppError::bad(
                "payment-mismatch",
                "this paymentId was already created with another transaction, method, value, currency or installments",
            )
            .into_response();
        }
        let Some(store) = found.payment.store.clone() else {
            return own_answer(&state, &payment_id, &found.payment);
        };
        if found.payment.cancellation_id.is_some() {
            return own_answer(&state, &payment_id, &found.payment);
        }
        let assigned = found.payment.assigned();
        let relayed = Relayed {
            method: &Method::POST,
            path_and_query: "/payments",
            headers: &headers,
            client: client_ip(client),
            body,
            assigned: assigned.as_ref(),
            merchant: Some(&merchant),
        };
        match forward::to_store(&state.nats, &store, relayed, state.store_timeout).await {
            Ok(answer) => {
                if answer.status() == StatusCode::OK && !found.payment.delivered {
                    mark_delivered(&state, &payment_id, &found).await;
                }
                answer
            }
            Err(why) => {
                tracing::info!(store_id = %store, why = why.describe(), "store away: Create answered undefined");
                own_answer(&state, &payment_id, &found.payment)
            }
        }
    }
    .instrument(span)
    .await
}

pub(super) fn new_record(
    merchant: &RelayMerchant,
    body: &Bytes,
    key: &SealKey,
) -> Result<RelayedPayment, PppError> {
    let random = |e: getrandom::Error| {
        tracing::error!(error = %e, "no randomness");
        PppError::Internal
    };
    Ok(RelayedPayment {
        merchant: merchant.0.clone(),
        tid: crate::secret::random_id("pb").map_err(random)?,
        submit_token: crate::secret::random_token().map_err(random)?,
        create: RelayedPayment::keep(body, key).map_err(|e| {
            tracing::error!(error = %e, "cannot seal the callback URL");
            PppError::Internal
        })?,
        store: None,
        delivered: false,
        cancellation_id: None,
    })
}
