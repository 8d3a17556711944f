//! Handing a payment to its store (the kept Create, once) and a request as it came.

use axum::Extension;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use super::answers::store_offline;
use super::forward::{self, Relayed};
use super::payments::Found;
use super::state::RelayState;
use crate::ids::RelayMerchant;
use crate::ppp::error::PppError;
use crate::route_limits::ClientAddr;

pub(super) fn client_ip(client: Option<Extension<ClientAddr>>) -> Option<std::net::IpAddr> {
    client.map(|Extension(ClientAddr(ip))| ip)
}

/// A request as the caller sent it, for its store.
pub(super) struct AsSent<'a> {
    pub method: &'a Method,
    pub uri: &'a Uri,
    pub headers: &'a HeaderMap,
    pub client: Option<Extension<ClientAddr>>,
    pub body: Bytes,
    /// The merchant the relay authenticated a PPP request as; `None` on the Payment App's
    /// routes (their token is the payment's own).
    pub merchant: Option<&'a RelayMerchant>,
}

/// Hands `request` to `store` as it came, and answers with the store's answer (or
/// `store-offline`).
pub(super) async fn as_sent_to(state: &RelayState, store: &str, request: AsSent<'_>) -> Response {
    let uri = request.uri;
    let path = uri
        .path_and_query()
        .map_or_else(|| uri.path().to_string(), |p| p.as_str().to_string());
    let relayed = Relayed {
        method: request.method,
        path_and_query: &path,
        headers: request.headers,
        client: client_ip(request.client),
        body: request.body,
        assigned: None,
        merchant: request.merchant,
    };
    match forward::to_store(&state.nats, store, relayed, state.store_timeout).await {
        Ok(answer) => answer,
        Err(why) => store_offline(why),
    }
}

/// Best effort: a Create handed over twice is answered by the store as a repeat.
pub(super) async fn mark_delivered(state: &RelayState, payment_id: &str, found: &Found) {
    if let Err(e) = state
        .payments
        .update(payment_id, found, |p| p.delivered = true)
        .await
    {
        tracing::debug!(error = %e, "cannot note that the store has the payment (harmless)");
    }
}

/// Makes sure the payment's store has it: the kept Create, handed over once (as its merchant's,
/// with the identity the payment was given out under). `Err` is the answer to give.
pub(super) async fn hand_over(
    state: &RelayState,
    payment_id: &str,
    found: &Found,
    store: &str,
) -> Result<(), Response> {
    if found.payment.delivered {
        return Ok(());
    }
    let mut headers = HeaderMap::new();
    headers.insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    let Some(create) = found.payment.create_for_store(&state.seal) else {
        tracing::error!(
            "ALARM: the kept Create cannot be opened (the partner's callback token changed since it was kept?): it cannot be handed to its store"
        );
        return Err(PppError::Internal.into_response());
    };
    let assigned = found.payment.assigned();
    let relayed = Relayed {
        method: &Method::POST,
        path_and_query: "/payments",
        headers: &headers,
        client: None,
        body: Bytes::from(create),
        assigned: assigned.as_ref(),
        merchant: Some(&found.payment.merchant()),
    };
    match forward::to_store(&state.nats, store, relayed, state.store_timeout).await {
        Ok(answer) if answer.status() == StatusCode::OK => {
            mark_delivered(state, payment_id, found).await;
            Ok(())
        }
        Ok(refused) => {
            tracing::warn!(store_id = %store, status = %refused.status(), "the store refused the handed-over Create");
            Err(refused)
        }
        Err(why) => Err(store_offline(why)),
    }
}
