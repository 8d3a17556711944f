//! The Payment Provider Protocol over HTTP: routes, request and response shapes as the spec
//! names them, credentials and error shapes. Business decisions are the engine's.

pub mod auth;
mod body;
pub mod create_answer;
pub mod error;
pub(crate) mod ids;
mod manifest;
pub use manifest::{manifest_body, payment_methods_body};
pub mod onboarding;
pub mod operations;
mod payments;
pub use payments::read_create;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

use crate::pos::Engine;
use crate::route_limits::{Guarded, Limits, RouteLimits, Routes, TimeBudget};
use auth::Credentials;
use create_answer::CreateAnswers;
use onboarding::Onboarding;

#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<Engine>,
    pub credentials: Arc<Credentials>,
    pub onboarding: Arc<Onboarding>,
    pub max_body_bytes: usize,
    /// Create's answers while a payment is not final (Payment Apps, public URLs).
    pub create_answers: Arc<CreateAnswers>,
    /// The failure limiters and time budgets the routes are given.
    pub limits: RouteLimits,
}

impl axum::extract::FromRef<AppState> for Arc<Onboarding> {
    fn from_ref(state: &AppState) -> Self {
        state.onboarding.clone()
    }
}

/// Body limit of the routes that only ever get a few short fields (onboarding).
pub(crate) const SMALL_BODY_BYTES: usize = 16 * 1024;

/// Every PPP route has the Gateway's time budget.
const PAYMENTS: Limits = Limits {
    failures: Some(Guarded::Credentials),
    time: TimeBudget::Ppp,
};
const ONBOARDING: Limits = Limits {
    failures: Some(Guarded::Onboarding),
    time: TimeBudget::Ppp,
};
/// No credentials to get wrong: the manifest, the methods, and the token request (answered
/// by the configuration flow's own counter, `onboarding`).
const OPEN: Limits = Limits {
    failures: None,
    time: TimeBudget::Ppp,
};

pub fn router(state: AppState) -> Router {
    routes(&state.limits)
        .into_router()
        // Routes with their own (smaller) limit keep it: the inner layer runs last.
        .layer(DefaultBodyLimit::max(state.max_body_bytes))
        .with_state(state)
}

/// The PPP routes, each with its limits.
fn routes(limits: &RouteLimits) -> Routes<AppState> {
    let gateway_routes = Routes::new(limits)
        .route("/manifest", OPEN, get(manifest::manifest))
        .route("/payment-methods", OPEN, get(manifest::payment_methods))
        .route("/payments", PAYMENTS, post(payments::create))
        .route(
            "/payments/{payment_id}/cancellations",
            PAYMENTS,
            post(payments::cancel),
        )
        .route(
            "/payments/{payment_id}/settlements",
            PAYMENTS,
            post(payments::settle),
        )
        .route(
            "/payments/{payment_id}/refunds",
            PAYMENTS,
            post(payments::refund),
        )
        .route(
            "/payments/{payment_id}/inbound/{action}",
            PAYMENTS,
            post(payments::inbound),
        )
        .route(
            "/payments/{payment_id}/inbound-request/{action}",
            PAYMENTS,
            post(payments::inbound),
        );
    configuration_flow(gateway_routes)
}

/// The configuration flow's routes, each with its limits: a store daemon's and the relay
/// tier's (whose state hands them its `Onboarding`).
pub fn configuration_flow<S>(routes: Routes<S>) -> Routes<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Onboarding>: axum::extract::FromRef<S>,
{
    // A token request and a code form are a few hundred bytes.
    let small = || DefaultBodyLimit::max(SMALL_BODY_BYTES);
    routes
        .route(
            "/authorization/token",
            OPEN,
            post(onboarding::create_token).layer(small()),
        )
        .route(
            "/authorization/redirect",
            ONBOARDING,
            get(onboarding::redirect_page)
                .post(onboarding::submit_code)
                .layer(small()),
        )
        .route(
            "/authorization/credentials",
            ONBOARDING,
            get(onboarding::credentials).layer(small()),
        )
}

#[cfg(test)]
mod tests;
