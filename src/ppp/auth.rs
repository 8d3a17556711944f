//! Who is calling: the Gateway's key pair on every `/payments…` route, compared in constant
//! time against the configured pair and the pairs issued through the configuration flow — or,
//! on a request the relay tier routed to this store, the merchant the relay authenticated.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::PppError;
use crate::secret::{Secret, ct_eq, token_hash};

/// The merchant behind a request: the app key of its credentials.
#[derive(Debug, Clone)]
pub struct Merchant(pub String);

pub struct Credentials {
    /// `None` on a store behind the relay tier that was given no pair: the relay checks its
    /// requests, and its own listener refuses every `/payments…` call.
    configured: Option<(String, Secret)>,
    /// app key → hash of the app token, for merchants onboarded through the configuration flow.
    issued: RwLock<HashMap<String, String>>,
}

impl Credentials {
    pub fn new(app_key: &str, app_token: Secret, issued: Vec<(String, String)>) -> Arc<Self> {
        Arc::new(Self {
            configured: (!app_key.is_empty() && !app_token.expose().is_empty())
                .then(|| (app_key.to_string(), app_token)),
            issued: RwLock::new(issued.into_iter().collect()),
        })
    }

    pub fn add_issued(&self, app_key: &str, token_hash: &str) {
        if let Ok(mut issued) = self.issued.write() {
            issued.insert(app_key.to_string(), token_hash.to_string());
        }
    }

    /// Exactly `issued` from now (the relay tier's merchants, read whole).
    pub fn replace_issued(&self, issued: Vec<(String, String)>) {
        if let Ok(mut current) = self.issued.write() {
            *current = issued.into_iter().collect();
        }
    }

    /// Revoked: the relay tier's merchant entry was deleted.
    pub fn remove_issued(&self, app_key: &str) {
        if let Ok(mut issued) = self.issued.write() {
            issued.remove(app_key);
        }
    }

    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Merchant, PppError> {
        let header = |vtex: &str, provider: &str| {
            headers
                .get(vtex)
                .or_else(|| headers.get(provider))
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        let (Some(key), Some(token)) = (
            header("x-vtex-api-appkey", "x-provider-api-appkey"),
            header("x-vtex-api-apptoken", "x-provider-api-apptoken"),
        ) else {
            return Err(PppError::Unauthorized(
                "missing X-VTEX-API-AppKey / X-VTEX-API-AppToken",
            ));
        };
        if let Some((configured_key, configured_token)) = &self.configured {
            // Both comparisons always run, so timing does not tell which part was wrong.
            let key_ok = ct_eq(key.as_bytes(), configured_key.as_bytes());
            let token_ok = configured_token.matches(token);
            if key_ok & token_ok {
                return Ok(Merchant(configured_key.clone()));
            }
        }
        let hash = token_hash(token);
        let issued_ok = self
            .issued
            .read()
            .ok()
            .and_then(|issued| {
                issued
                    .get(key)
                    .map(|h| ct_eq(h.as_bytes(), hash.as_bytes()))
            })
            .unwrap_or(false);
        if issued_ok {
            return Ok(Merchant(key.to_string()));
        }
        tracing::warn!("rejected a request with wrong credentials");
        Err(PppError::Unauthorized(
            "wrong X-VTEX-API-AppKey / X-VTEX-API-AppToken",
        ))
    }
}

impl FromRequestParts<AppState> for Merchant {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        // A request the relay tier routed here: the relay checked the credentials (it holds
        // them all, and sends none) and names the merchant. Only the uplink can set this.
        if let Some(crate::ids::RelayMerchant(app_key)) = parts.extensions.get() {
            return Ok(Merchant(app_key.clone()));
        }
        state
            .credentials
            .authenticate(&parts.headers)
            .map_err(IntoResponse::into_response)
    }
}
