//! What every request of one relay replica is served with.

use std::sync::Arc;
use std::time::Duration;

use super::directory::SharedDirectory;
use super::payments::Payments;
use crate::ppp::auth::Credentials;
use crate::ppp::create_answer::PublicUrls;
use crate::ppp::onboarding::Onboarding;

#[derive(Clone)]
pub struct RelayState {
    pub nats: async_nats::Client,
    pub payments: Payments,
    pub directory: SharedDirectory,
    pub credentials: Arc<Credentials>,
    /// The configuration flow, its records in NATS.
    pub onboarding: Arc<Onboarding>,
    pub urls: PublicUrls,
    /// How long a store may take to answer (within the route's own time budget).
    pub store_timeout: Duration,
    pub max_body_bytes: usize,
    /// What the callback URLs kept in NATS are sealed under.
    pub seal: Arc<crate::seal::SealKey>,
    /// Cancelled when the relay stops: its Payment App sockets close with 1001.
    pub stop: tokio_util::sync::CancellationToken,
}

impl axum::extract::FromRef<RelayState> for Arc<Onboarding> {
    fn from_ref(state: &RelayState) -> Self {
        state.onboarding.clone()
    }
}
