//! What every request of one relay replica is served with.

use std::sync::Arc;
use std::time::Duration;

use super::directory::SharedDirectory;
use super::payments::Payments;
use crate::ppp::auth::Credentials;
use crate::ppp::create_answer::PublicUrls;
use crate::secret::Secret;

#[derive(Clone)]
pub struct RelayState {
    pub nats: async_nats::Client,
    pub payments: Payments,
    pub directory: SharedDirectory,
    pub credentials: Arc<Credentials>,
    pub urls: PublicUrls,
    /// The relay's own Gateway key pair (the stores have the same `[vtex]`): a kept Create is
    /// handed to its store with it.
    pub app_key: String,
    pub app_token: Secret,
    /// How long a store may take to answer (within the route's own time budget).
    pub store_timeout: Duration,
    pub max_body_bytes: usize,
    /// What the callback URLs kept in NATS are sealed under.
    pub seal: Arc<crate::seal::SealKey>,
    /// Cancelled when the relay stops: its Payment App sockets close with 1001.
    pub stop: tokio_util::sync::CancellationToken,
}
