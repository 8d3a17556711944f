//! The PPP configuration flow: VTEX asks for a token, sends the merchant's browser to a page
//! where they type the onboarding code store IT set, and then exchanges the one-time
//! authorization code for a new app key and token (only a hash of the token is stored). The
//! flow is the same on a store daemon and on the relay tier; where it keeps its state is
//! theirs ([`records`]).

mod page;
pub mod records;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::body::parse;
use super::error::PppError;
use crate::config::OnboardingConfig;
use crate::error_body;
use crate::secret::{Secret, random_id, random_token, token_hash};
use page::{EXPIRED, page};
use records::{OnboardingRecords, PendingCode, PendingToken, RecordsDown, expiry};

/// Wrong codes accepted from everyone together per minute before the page answers 429 (per
/// daemon, or per relay replica).
const GLOBAL_FAILURES_PER_MINUTE: usize = 20;

pub struct Onboarding {
    code: Option<Secret>,
    allowed_hosts: Vec<String>,
    max_attempts: u32,
    records: Arc<dyn OnboardingRecords>,
    recent_failures: Mutex<VecDeque<Instant>>,
}

impl Onboarding {
    pub fn new(config: &OnboardingConfig, records: Arc<dyn OnboardingRecords>) -> Self {
        Self {
            code: config.code.clone(),
            allowed_hosts: config
                .allowed_return_hosts
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            max_attempts: config.max_attempts.max(1),
            records,
            recent_failures: Mutex::new(VecDeque::new()),
        }
    }

    fn too_many_failures(&self) -> bool {
        let Ok(mut recent) = self.recent_failures.lock() else {
            return true;
        };
        let minute_ago = Instant::now().checked_sub(Duration::from_secs(60));
        while recent.front().is_some_and(|t| Some(*t) < minute_ago) {
            recent.pop_front();
        }
        recent.len() >= GLOBAL_FAILURES_PER_MINUTE
    }

    fn note_failure(&self) {
        if let Ok(mut recent) = self.recent_failures.lock() {
            recent.push_back(Instant::now());
        }
    }
}

/// `returnUrl` must be https on an allowed host (`allowed_hosts` in lower case): never an open
/// redirect.
fn return_url_allowed(allowed_hosts: &[String], url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("returnUrl is not a URL: {e}"))?;
    if parsed.scheme() != "https" {
        return Err("returnUrl must use https".into());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("returnUrl must not carry credentials".into());
    }
    let host = parsed.host_str().unwrap_or_default().to_ascii_lowercase();
    let allowed = allowed_hosts
        .iter()
        .any(|pattern| match pattern.strip_prefix("*.") {
            Some(suffix) => host.len() > suffix.len() + 1 && host.ends_with(&format!(".{suffix}")),
            None => host == *pattern,
        });
    if allowed {
        Ok(())
    } else {
        Err(format!(
            "returnUrl host `{host}` is not in allowed_return_hosts"
        ))
    }
}

/// The records are away (the relay tier's NATS): nothing changed, VTEX or the merchant may
/// try again.
fn records_down(e: &RecordsDown) -> Response {
    tracing::error!(error = %e, "configuration flow");
    let mut response = error_body::response(
        StatusCode::SERVICE_UNAVAILABLE,
        "onboarding-unavailable",
        "the configuration flow cannot reach its records just now (nothing was changed); try again",
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    response
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TokenRequest {
    application_id: String,
    return_url: String,
}

pub async fn create_token(
    State(onboarding): State<Arc<Onboarding>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if onboarding.code.is_none() {
        return error_body::response(
            StatusCode::NOT_FOUND,
            "onboarding-disabled",
            "the configuration flow is off: set [onboarding] code",
        );
    }
    let bytes = match body {
        Ok(bytes) => bytes,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return PppError::TooLarge(super::SMALL_BODY_BYTES).into_response();
        }
        Err(_) => {
            return PppError::bad("bad-request", "cannot read the request body").into_response();
        }
    };
    let request: TokenRequest = match parse(&bytes) {
        Ok(r) => r,
        Err(m) => return PppError::bad("bad-request", m).into_response(),
    };
    if request.application_id.trim().is_empty() {
        return PppError::bad("bad-request", "field `applicationId` must not be empty")
            .into_response();
    }
    if let Err(m) = return_url_allowed(&onboarding.allowed_hosts, &request.return_url) {
        tracing::warn!("configuration flow: rejected a returnUrl");
        return PppError::bad("bad-return-url", m).into_response();
    }
    let Ok(token) = random_token() else {
        return PppError::Internal.into_response();
    };
    let pending = PendingToken {
        return_url: request.return_url,
        application_id: request.application_id.clone(),
        expires_ms: expiry(),
        failures: 0,
    };
    if let Err(e) = onboarding
        .records
        .keep_token(token_hash(&token), pending)
        .await
    {
        return records_down(&e);
    }
    Json(json!({ "applicationId": request.application_id, "token": token })).into_response()
}

#[derive(Deserialize)]
pub struct RedirectQuery {
    #[serde(default)]
    token: String,
}

pub async fn redirect_page(
    State(onboarding): State<Arc<Onboarding>>,
    Query(query): Query<RedirectQuery>,
) -> Response {
    match onboarding.records.token(&token_hash(&query.token)).await {
        Ok(Some(_)) => page(StatusCode::OK, &query.token, None),
        Ok(None) => page(StatusCode::FORBIDDEN, "", Some(EXPIRED)),
        Err(e) => records_down(&e),
    }
}

#[derive(Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    code: String,
}

pub async fn submit_code(
    State(onboarding): State<Arc<Onboarding>>,
    Form(form): Form<CodeForm>,
) -> Response {
    let Some(expected) = &onboarding.code else {
        return page(
            StatusCode::NOT_FOUND,
            "",
            Some("The configuration flow is off."),
        );
    };
    if onboarding.too_many_failures() {
        tracing::warn!("configuration flow: too many wrong codes, refusing for a minute");
        return page(
            StatusCode::TOO_MANY_REQUESTS,
            "",
            Some("Too many attempts. Wait a minute and start again."),
        );
    }
    let key = token_hash(&form.token);
    let records = &onboarding.records;
    if !expected.matches(&form.code) {
        let failures = match records.count_failure(&key).await {
            Ok(Some(failures)) => failures,
            Ok(None) => return page(StatusCode::FORBIDDEN, "", Some(EXPIRED)),
            Err(e) => return records_down(&e),
        };
        onboarding.note_failure();
        let left = onboarding.max_attempts.saturating_sub(failures);
        tracing::warn!(
            attempts_left = left,
            "configuration flow: wrong onboarding code"
        );
        if left == 0 {
            if let Err(e) = records.take_token(&key).await {
                return records_down(&e);
            }
            return page(
                StatusCode::FORBIDDEN,
                "",
                Some("Wrong code too many times. Start again from the VTEX admin."),
            );
        }
        let message = format!("Wrong code. {left} attempts left.");
        return page(StatusCode::UNAUTHORIZED, &form.token, Some(&message));
    }
    let pending = match records.take_token(&key).await {
        Ok(Some(pending)) => pending,
        Ok(None) => return page(StatusCode::FORBIDDEN, "", Some(EXPIRED)),
        Err(e) => return records_down(&e),
    };
    let Ok(code) = random_token() else {
        return PppError::Internal.into_response();
    };
    let kept = PendingCode {
        application_id: pending.application_id,
        expires_ms: expiry(),
    };
    if let Err(e) = records.keep_code(token_hash(&code), kept).await {
        return records_down(&e);
    }
    tracing::info!("configuration flow: onboarding code accepted; redirecting to VTEX");
    let location = format!("{}{}", pending.return_url, code);
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsQuery {
    #[serde(default)]
    authorization_code: String,
}

pub async fn credentials(
    State(onboarding): State<Arc<Onboarding>>,
    Query(query): Query<CredentialsQuery>,
) -> Response {
    let records = &onboarding.records;
    let pending = match records
        .take_code(&token_hash(&query.authorization_code))
        .await
    {
        Ok(Some(pending)) => pending,
        Ok(None) => {
            return error_body::response(
                StatusCode::UNAUTHORIZED,
                "invalid-authorization-code",
                "unknown, used or expired authorizationCode",
            );
        }
        Err(e) => return records_down(&e),
    };
    let (Ok(app_key), Ok(app_token)) = (random_id("posbridge-"), random_token()) else {
        return PppError::Internal.into_response();
    };
    if let Err(e) = records.issue(&app_key, &token_hash(&app_token)).await {
        tracing::error!(error = %e, "cannot store new merchant credentials");
        return PppError::Internal.into_response();
    }
    tracing::info!(app_key = %app_key, "configuration flow: issued credentials for a merchant");
    Json(json!({ "applicationId": pending.application_id, "appKey": app_key, "appToken": app_token })).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_urls_must_be_https_on_allowed_hosts() {
        let hosts = OnboardingConfig::default().allowed_return_hosts;
        assert!(
            return_url_allowed(
                &hosts,
                "https://store.myvtex.com/admin/x?authorizationCode="
            )
            .is_ok()
        );
        assert!(return_url_allowed(&hosts, "https://a.b.vtexpayments.com.br/x").is_ok());
        for bad in [
            "http://store.myvtex.com/x",
            "https://myvtex.com/x",
            "https://evilmyvtex.com/x",
            "https://store.myvtex.com.evil.example/x",
            "https://user:pw@store.myvtex.com/x",
            "javascript:alert(1)",
            "//store.myvtex.com/x",
        ] {
            assert!(
                return_url_allowed(&hosts, bad).is_err(),
                "{bad} must be refused"
            );
        }
    }
}
