//! The relay's HTTP side: the PPP routes and the submitUrl the Gateway and the Sales App call,
//! answered from the relay tier's records until a store has the payment, then by that store
//! (its exact answer). The relay decides nothing a store decides: it keeps a Create until the
//! Sales App names a terminal, routes by that terminal's serial, and says so when a store is
//! away (a Create poll stays `undefined`; anything else gets a retryable 503 `store-offline`).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use tower_http::cors::{Any, CorsLayer};
use tracing::Instrument;

use super::directory::Lookup;
use super::forward::{self, Offline, Relayed};
use super::payments::{Found, RecordError, RelayedPayment};
use super::state::RelayState;
use crate::config::PosConfig;
use crate::error_body;
use crate::ppp::create_answer::TERMINAL_CONNECTOR_APP;
use crate::ppp::error::PppError;
use crate::route_limits::{ClientAddr, Guarded, Limits, RouteLimits, Routes, TimeBudget};
use crate::seal::SealKey;
use crate::secret::ct_eq;

const PAYMENTS: Limits = Limits {
    failures: Some(Guarded::Credentials),
    time: TimeBudget::Ppp,
};
const OPEN: Limits = Limits {
    failures: None,
    time: TimeBudget::Ppp,
};
const TOKEN: Limits = Limits {
    failures: Some(Guarded::Token),
    time: TimeBudget::Request,
};
/// Nothing to get wrong (`/healthz`, the reference page): the request budget only.
const PLAIN: Limits = Limits {
    failures: None,
    time: TimeBudget::Request,
};
/// The submitUrl's body is one short field.
const SUBMIT_BODY_BYTES: usize = 4 * 1024;

pub fn router(state: RelayState, limits: &RouteLimits) -> Router {
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::POST, Method::OPTIONS])
        .allow_headers(Any);
    let body_limit = axum::extract::DefaultBodyLimit::max(state.max_body_bytes);
    Routes::new(limits)
        .route("/healthz", PLAIN, get(health))
        .route(
            "/manifest",
            OPEN,
            get(|| async { Json(crate::ppp::manifest_body(false)) }),
        )
        .route(
            "/payment-methods",
            OPEN,
            get(|| async { Json(crate::ppp::payment_methods_body(false)) }),
        )
        .route("/payments", PAYMENTS, post(create))
        .route(
            "/payments/{payment_id}/cancellations",
            PAYMENTS,
            post(by_payment),
        )
        .route(
            "/payments/{payment_id}/settlements",
            PAYMENTS,
            post(by_payment),
        )
        .route("/payments/{payment_id}/refunds", PAYMENTS, post(by_payment))
        .route(
            "/payments/{payment_id}/inbound/{action}",
            PAYMENTS,
            post(by_payment),
        )
        .route(
            "/payments/{payment_id}/inbound-request/{action}",
            PAYMENTS,
            post(by_payment),
        )
        .route(
            "/payment-app/ws/{payment_id}",
            TOKEN,
            get(super::feed::upgrade).layer(
                CorsLayer::new()
                    .allow_origin(Any)
                    .allow_methods([Method::GET]),
            ),
        )
        // The reference page is static; its socket is the relayed feed above.
        .route(
            "/payment-app",
            PLAIN,
            get(crate::payment_app::page::to_page),
        )
        .route("/payment-app/", PLAIN, get(crate::payment_app::page::page))
        .route(
            "/payment-app/app.js",
            PLAIN,
            get(crate::payment_app::page::script),
        )
        .route(
            "/pos/payments/{payment_id}/terminal",
            TOKEN,
            post(submit_serial).layer(
                tower::ServiceBuilder::new()
                    .layer(cors)
                    .layer(axum::extract::DefaultBodyLimit::max(SUBMIT_BODY_BYTES)),
            ),
        )
        .into_router()
        .layer(body_limit)
        .with_state(state)
        .fallback(|| async { PppError::bad("not-found", "no such route").into_response_404() })
}

/// Ready for a load balancer only while this replica reaches NATS (it knows nothing else).
async fn health(State(state): State<RelayState>) -> Response {
    match state.nats.connection_state() {
        async_nats::connection::State::Connected => "ok".into_response(),
        _ => error_body::response(
            StatusCode::SERVICE_UNAVAILABLE,
            "nats-unreachable",
            "this relay replica cannot reach the relay tier's NATS cluster",
        ),
    }
}

fn body_or_refusal(body: Result<Bytes, BytesRejection>, limit: usize) -> Result<Bytes, PppError> {
    body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            PppError::TooLarge(limit)
        } else {
            PppError::bad("bad-request", "cannot read the request body")
        }
    })
}

fn unavailable(e: &RecordError) -> Response {
    tracing::error!(error = %e, "relay records");
    let mut response = error_body::response(
        StatusCode::SERVICE_UNAVAILABLE,
        "relay-unavailable",
        "the relay cannot reach its records just now (nothing was changed); try again",
    );
    retry_after(&mut response);
    response
}

fn store_offline(why: Offline) -> Response {
    let mut response = error_body::response(
        StatusCode::SERVICE_UNAVAILABLE,
        "store-offline",
        &format!("{}: nothing is lost, try again", why.describe()),
    );
    retry_after(&mut response);
    response
}

fn retry_after(response: &mut Response) {
    response.headers_mut().insert(
        axum::http::header::RETRY_AFTER,
        axum::http::HeaderValue::from_static("5"),
    );
}

/// The Create answer the relay gives itself: `undefined` (with the terminal connector app while
/// no terminal is named), or `denied` once cancelled before any store knew the payment.
fn own_answer(state: &RelayState, payment_id: &str, p: &RelayedPayment) -> Response {
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

fn client_ip(client: Option<Extension<ClientAddr>>) -> Option<std::net::IpAddr> {
    client.map(|Extension(ClientAddr(ip))| ip)
}

async fn create(
    State(state): State<RelayState>,
    headers: HeaderMap,
    client: Option<Extension<ClientAddr>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if let Err(e) = state.credentials.authenticate(&headers) {
        return e.into_response();
    }
    let body = match body_or_refusal(body, state.max_body_bytes) {
        Ok(body) => body,
        Err(refusal) => return refusal.into_response(),
    };
    let request = match crate::ppp::read_create(&headers, &body) {
        Ok(request) => request,
        Err(e) => return e.into_response(),
    };
    let payment_id = request.payment_id.clone();
    let span = tracing::info_span!("relay_create", payment_id = %payment_id);
    async move {
        let new = match new_record(&body, &state.seal) {
            Ok(new) => new,
            Err(e) => return e.into_response(),
        };
        let found = match state.payments.get_or_insert(&payment_id, new).await {
            Ok(found) => found,
            Err(e) => return unavailable(&e),
        };
        // The same paymentId for another sale: refused, as a store refuses it.
        let kept = found
            .payment
            .create_for_store(&state.seal)
            .map(|create| crate::ppp::read_create(&headers, create.as_bytes()));
        if let Some(Ok(kept)) = kept {
            let same = kept.transaction_id == request.transaction_id
                && kept.method == request.method
                && kept.amount_minor == request.amount_minor
                && kept.currency.code() == request.currency.code()
                && kept.installments == request.installments;
            if !same {
                return PppError::bad(
                    "payment-mismatch",
                    "this paymentId was already created with another transaction, method, value, currency or installments",
                )
                .into_response();
            }
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

/// A request as the caller sent it, for its store.
struct AsSent<'a> {
    method: &'a Method,
    uri: &'a Uri,
    headers: &'a HeaderMap,
    client: Option<Extension<ClientAddr>>,
    body: Bytes,
}

/// Hands `request` to `store` as it came, and answers with the store's answer (or
/// `store-offline`).
async fn as_sent_to(state: &RelayState, store: &str, request: AsSent<'_>) -> Response {
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
    };
    match forward::to_store(&state.nats, store, relayed, state.store_timeout).await {
        Ok(answer) => answer,
        Err(why) => store_offline(why),
    }
}

fn new_record(body: &Bytes, key: &SealKey) -> Result<RelayedPayment, PppError> {
    let random = |e: getrandom::Error| {
        tracing::error!(error = %e, "no randomness");
        PppError::Internal
    };
    Ok(RelayedPayment {
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

/// Best effort: a Create handed over twice is answered by the store as a repeat.
async fn mark_delivered(state: &RelayState, payment_id: &str, found: &Found) {
    if let Err(e) = state
        .payments
        .update(payment_id, found, |p| p.delivered = true)
        .await
    {
        tracing::debug!(error = %e, "cannot note that the store has the payment (harmless)");
    }
}

/// Makes sure the payment's store has it: the kept Create, handed over once (with the relay's
/// key pair and the identity the payment was given out under). `Err` is the answer to give.
async fn hand_over(
    state: &RelayState,
    payment_id: &str,
    found: &Found,
    store: &str,
) -> Result<(), Response> {
    if found.payment.delivered {
        return Ok(());
    }
    let mut headers = HeaderMap::new();
    let value =
        |v: &str| axum::http::HeaderValue::from_str(v).map_err(|_| Box::new(PppError::Internal));
    headers.insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    match (value(&state.app_key), value(state.app_token.expose())) {
        (Ok(key), Ok(token)) => {
            headers.insert("x-vtex-api-appkey", key);
            headers.insert("x-vtex-api-apptoken", token);
        }
        (Err(e), _) | (_, Err(e)) => return Err(e.into_response()),
    }
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

#[derive(Deserialize)]
struct TokenQuery {
    #[serde(default)]
    token: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SerialBody {
    serial_number: String,
}

fn submit_error(status: StatusCode, code: &str, message: &str) -> Response {
    error_body::response(status, code, message)
}

async fn submit_serial(
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
        };
        as_sent_to(&state, &store, request).await
    }
    .instrument(span)
    .await
}

#[derive(Deserialize)]
struct PaymentPath {
    payment_id: String,
}

/// Cancel, settle, refund and inbound requests: the payment's store answers them; before any
/// store knows the payment, nothing was charged, and the relay answers.
async fn by_payment(
    State(state): State<RelayState>,
    Path(PaymentPath { payment_id }): Path<PaymentPath>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    client: Option<Extension<ClientAddr>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if let Err(e) = state.credentials.authenticate(&headers) {
        return e.into_response();
    }
    let body = match body_or_refusal(body, state.max_body_bytes) {
        Ok(body) => body,
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
            Ok(Some(found)) => found,
            Ok(None) => return PppError::NotFound.into_response(),
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
        };
        as_sent_to(&state, &store, request).await
    }
    .instrument(span)
    .await
}

/// A cancel before the Sales App named a terminal: no store has the payment and nothing was
/// charged, so it is cancelled here (once: a repeat gets the same cancellation). `Err(Some)`:
/// it changed meanwhile (another replica routed it), decide again on what is there now.
async fn cancel_before_any_store(
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
