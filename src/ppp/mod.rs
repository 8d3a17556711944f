//! The Payment Provider Protocol over HTTP: routes, request and response shapes as the spec
//! names them, credentials and error shapes. Business decisions are the engine's.

pub mod auth;
mod body;
pub mod create_answer;
pub mod error;
pub(crate) mod ids;
mod manifest;
pub mod onboarding;
pub mod operations;
mod payments;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

use crate::pos::Engine;
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
}

/// Body limit of the routes that only ever get a few short fields (onboarding).
const SMALL_BODY_BYTES: usize = 16 * 1024;

pub fn router(state: AppState) -> Router {
    let max_body = state.max_body_bytes;
    Router::new()
        .route("/manifest", get(manifest::manifest))
        .route("/payment-methods", get(manifest::payment_methods))
        .route("/payments", post(payments::create))
        .route(
            "/payments/{payment_id}/cancellations",
            post(payments::cancel),
        )
        .route("/payments/{payment_id}/settlements", post(payments::settle))
        .route("/payments/{payment_id}/refunds", post(payments::refund))
        .route(
            "/payments/{payment_id}/inbound/{action}",
            post(payments::inbound),
        )
        .route(
            "/payments/{payment_id}/inbound-request/{action}",
            post(payments::inbound),
        )
        .merge(
            Router::new()
                .route("/authorization/token", post(onboarding::create_token))
                .route(
                    "/authorization/redirect",
                    get(onboarding::redirect_page).post(onboarding::submit_code),
                )
                .route("/authorization/credentials", get(onboarding::credentials))
                // A token request and a code form are a few hundred bytes.
                .layer(DefaultBodyLimit::max(SMALL_BODY_BYTES)),
        )
        // Routes with their own (smaller) limit keep it: the inner layer runs last.
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
}
