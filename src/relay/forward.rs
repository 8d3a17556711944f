//! One HTTP request handed to a store over NATS, and the store's exact answer back (the store
//! serves it with its own router: `uplink`). When the store does not answer, the caller learns
//! why, so that it answers the Gateway what is true: a store not connected has done nothing; a
//! store that did not answer in time may have done it (every PPP call is safe to repeat).

use std::net::IpAddr;
use std::time::Duration;

use async_nats::client::RequestErrorKind;
use axum::body::Body;
use bytes::Bytes;
use http::{HeaderMap, Method, Response};

use crate::ids::{RelayAssigned, RelayMerchant};
use crate::uplink::{requests_subject, wire};

/// Why a store gave no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offline {
    /// Nobody serves the store's subject: it is not connected to the relay tier.
    NotConnected,
    /// It did not answer within the time: whether it did the request is not known.
    NoAnswer,
}

impl Offline {
    pub fn describe(self) -> &'static str {
        match self {
            Offline::NotConnected => "the store is not connected to the relay tier",
            Offline::NoAnswer => "the store did not answer in time",
        }
    }
}

/// What to hand to a store.
pub struct Relayed<'a> {
    pub method: &'a Method,
    pub path_and_query: &'a str,
    pub headers: &'a HeaderMap,
    pub client: Option<IpAddr>,
    pub body: Bytes,
    /// On a Create: the identity the relay gave the payment, for the store to adopt.
    pub assigned: Option<&'a RelayAssigned>,
    /// On a PPP request: the merchant the relay authenticated it as (its credentials stay here).
    pub merchant: Option<&'a RelayMerchant>,
}

pub async fn to_store(
    nats: &async_nats::Client,
    store_id: &str,
    request: Relayed<'_>,
    timeout: Duration,
) -> Result<Response<Body>, Offline> {
    let mut headers = wire::request_to_nats(
        request.method,
        request.path_and_query,
        request.headers,
        request.client,
    );
    if let Some(assigned) = request.assigned {
        wire::assign(&mut headers, assigned);
    }
    if let Some(merchant) = request.merchant {
        wire::name_merchant(&mut headers, merchant);
    }
    let sent = nats
        .send_request(
            requests_subject(store_id),
            async_nats::Request::new()
                .headers(headers)
                .payload(request.body)
                .timeout(Some(timeout)),
        )
        .await;
    let reply = match sent {
        Ok(reply) => reply,
        Err(e) if e.kind() == RequestErrorKind::NoResponders => {
            return Err(Offline::NotConnected);
        }
        Err(e) => {
            tracing::warn!(store_id = %store_id, error = %e, "a store did not answer a relayed request");
            return Err(Offline::NoAnswer);
        }
    };
    wire::response_from_nats(reply.headers.as_ref(), reply.payload).map_err(|e| {
        tracing::error!(store_id = %store_id, error = %e, "a store's answer the relay cannot read");
        Offline::NoAnswer
    })
}
