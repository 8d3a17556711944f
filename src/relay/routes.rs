//! The relay's HTTP side: the PPP routes and the submitUrl the Gateway and the Sales App call,
//! answered from the relay tier's records until a store has the payment, then by that store
//! (its exact answer). The relay decides nothing a store decides: it keeps a Create until the
//! Sales App names a terminal, routes by that terminal's serial, and says so when a store is
//! away (a Create poll stays `undefined`; anything else gets a retryable 503 `store-offline`).

use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tower_http::cors::{Any, CorsLayer};

use super::create::create;
use super::operations::by_payment;
use super::state::RelayState;
use super::submit::{SUBMIT_BODY_BYTES, submit_serial};
use crate::error_body;
use crate::ppp::error::PppError;
use crate::route_limits::{Guarded, Limits, RouteLimits, Routes, TimeBudget};

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

pub fn router(state: RelayState, limits: &RouteLimits) -> Router {
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::POST, Method::OPTIONS])
        .allow_headers(Any);
    let body_limit = axum::extract::DefaultBodyLimit::max(state.max_body_bytes);
    crate::ppp::configuration_flow(Routes::new(limits))
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
