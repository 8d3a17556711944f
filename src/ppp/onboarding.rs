//! The PPP configuration flow: VTEX asks for a token, sends the merchant's browser to a page
//! where they type the onboarding code store IT set, and then exchanges the one-time
//! authorization code for a new app key and token (only a hash of the token is stored).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::body::{RawBody, parse};
use super::error::PppError;
use crate::config::OnboardingConfig;
use crate::error_body;
use crate::secret::{Secret, random_id, random_token, token_hash};

const TOKEN_LIFETIME: Duration = Duration::from_secs(600);
/// Wrong codes accepted from everyone together per minute before the page answers 429.
const GLOBAL_FAILURES_PER_MINUTE: usize = 20;

struct PendingToken {
    return_url: String,
    application_id: String,
    expires: Instant,
    failures: u32,
}

struct PendingCode {
    application_id: String,
    expires: Instant,
}

pub struct Onboarding {
    code: Option<Secret>,
    allowed_hosts: Vec<String>,
    max_attempts: u32,
    /// Keyed by the hash of the token / authorization code: the secrets are not kept.
    tokens: Mutex<HashMap<String, PendingToken>>,
    codes: Mutex<HashMap<String, PendingCode>>,
    recent_failures: Mutex<VecDeque<Instant>>,
}

impl Onboarding {
    pub fn new(config: &OnboardingConfig) -> Self {
        Self {
            code: config.code.clone(),
            allowed_hosts: config
                .allowed_return_hosts
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            max_attempts: config.max_attempts.max(1),
            tokens: Mutex::new(HashMap::new()),
            codes: Mutex::new(HashMap::new()),
            recent_failures: Mutex::new(VecDeque::new()),
        }
    }

    /// `returnUrl` must be https on an allowed host: never an open redirect.
    fn return_url_allowed(&self, url: &str) -> Result<(), String> {
        let parsed =
            reqwest::Url::parse(url).map_err(|e| format!("returnUrl is not a URL: {e}"))?;
        if parsed.scheme() != "https" {
            return Err("returnUrl must use https".into());
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err("returnUrl must not carry credentials".into());
        }
        let host = parsed.host_str().unwrap_or_default().to_ascii_lowercase();
        let allowed = self
            .allowed_hosts
            .iter()
            .any(|pattern| match pattern.strip_prefix("*.") {
                Some(suffix) => {
                    host.len() > suffix.len() + 1 && host.ends_with(&format!(".{suffix}"))
                }
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

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TokenRequest {
    application_id: String,
    return_url: String,
}

pub async fn create_token(State(state): State<AppState>, RawBody(bytes): RawBody) -> Response {
    let onboarding = &state.onboarding;
    if onboarding.code.is_none() {
        return error_body::response(
            StatusCode::NOT_FOUND,
            "onboarding-disabled",
            "the configuration flow is off: set [onboarding] code",
        );
    }
    let request: TokenRequest = match parse(&bytes) {
        Ok(r) => r,
        Err(m) => return PppError::bad("bad-request", m).into_response(),
    };
    if request.application_id.trim().is_empty() {
        return PppError::bad("bad-request", "field `applicationId` must not be empty")
            .into_response();
    }
    if let Err(m) = onboarding.return_url_allowed(&request.return_url) {
        tracing::warn!("configuration flow: rejected a returnUrl");
        return PppError::bad("bad-return-url", m).into_response();
    }
    let Ok(token) = random_token() else {
        return PppError::Internal.into_response();
    };
    if let Ok(mut tokens) = onboarding.tokens.lock() {
        let now = Instant::now();
        tokens.retain(|_, t| t.expires > now);
        tokens.insert(
            token_hash(&token),
            PendingToken {
                return_url: request.return_url,
                application_id: request.application_id.clone(),
                expires: now + TOKEN_LIFETIME,
                failures: 0,
            },
        );
    }
    Json(json!({ "applicationId": request.application_id, "token": token })).into_response()
}

#[derive(Deserialize)]
pub struct RedirectQuery {
    #[serde(default)]
    token: String,
}

fn page(status: StatusCode, token: &str, error: Option<&str>) -> Response {
    let error = error
        .map(|e| format!("<p class=\"error\">{}</p>", escape(e)))
        .unwrap_or_default();
    let form = if token.is_empty() {
        String::new()
    } else {
        format!(
            "<form method=\"post\" action=\"/authorization/redirect\">\
             <input type=\"hidden\" name=\"token\" value=\"{}\">\
             <label>Onboarding code <input name=\"code\" type=\"password\" autocomplete=\"off\" autofocus></label>\
             <button type=\"submit\">Connect this store</button></form>",
            escape(token)
        )
    };
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>posbridge — connect your VTEX account</title>\
         <meta name=\"viewport\" content=\"width=device-width\"></head><body>\
         <h1>Connect posbridge to your VTEX account</h1>\
         <p>Type the onboarding code your store IT gave you.</p>{error}{form}</body></html>"
    );
    let mut response = (status, Html(html)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub async fn redirect_page(
    State(state): State<AppState>,
    Query(query): Query<RedirectQuery>,
) -> Response {
    let valid = state
        .onboarding
        .tokens
        .lock()
        .map(|t| {
            t.get(&token_hash(&query.token))
                .is_some_and(|t| t.expires > Instant::now())
        })
        .unwrap_or(false);
    if valid {
        page(StatusCode::OK, &query.token, None)
    } else {
        page(
            StatusCode::FORBIDDEN,
            "",
            Some("This link is invalid or has expired. Start again from the VTEX admin."),
        )
    }
}

#[derive(Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    code: String,
}

pub async fn submit_code(State(state): State<AppState>, Form(form): Form<CodeForm>) -> Response {
    let onboarding = &state.onboarding;
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
    let Ok(mut tokens) = onboarding.tokens.lock() else {
        return PppError::Internal.into_response();
    };
    let Some(pending) = tokens.get_mut(&key).filter(|t| t.expires > Instant::now()) else {
        return page(
            StatusCode::FORBIDDEN,
            "",
            Some("This link is invalid or has expired. Start again from the VTEX admin."),
        );
    };
    if !expected.matches(&form.code) {
        pending.failures += 1;
        onboarding.note_failure();
        let left = onboarding.max_attempts.saturating_sub(pending.failures);
        tracing::warn!(
            attempts_left = left,
            "configuration flow: wrong onboarding code"
        );
        if left == 0 {
            tokens.remove(&key);
            return page(
                StatusCode::FORBIDDEN,
                "",
                Some("Wrong code too many times. Start again from the VTEX admin."),
            );
        }
        let message = format!("Wrong code. {left} attempts left.");
        return page(StatusCode::UNAUTHORIZED, &form.token, Some(&message));
    }
    let Some(pending) = tokens.remove(&key) else {
        return PppError::Internal.into_response();
    };
    drop(tokens);
    let Ok(code) = random_token() else {
        return PppError::Internal.into_response();
    };
    if let Ok(mut codes) = onboarding.codes.lock() {
        let now = Instant::now();
        codes.retain(|_, c| c.expires > now);
        codes.insert(
            token_hash(&code),
            PendingCode {
                application_id: pending.application_id,
                expires: now + TOKEN_LIFETIME,
            },
        );
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
    State(state): State<AppState>,
    Query(query): Query<CredentialsQuery>,
) -> Response {
    let pending = state
        .onboarding
        .codes
        .lock()
        .ok()
        .and_then(|mut codes| codes.remove(&token_hash(&query.authorization_code)))
        .filter(|c| c.expires > Instant::now());
    let Some(pending) = pending else {
        return error_body::response(
            StatusCode::UNAUTHORIZED,
            "invalid-authorization-code",
            "unknown, used or expired authorizationCode",
        );
    };
    let (Ok(app_key), Ok(app_token)) = (random_id("posbridge-"), random_token()) else {
        return PppError::Internal.into_response();
    };
    let hash = token_hash(&app_token);
    if let Err(e) = state.engine.record_merchant(&app_key, &hash).await {
        tracing::error!(error = %e, "cannot store new merchant credentials");
        return PppError::Internal.into_response();
    }
    state.credentials.add_issued(&app_key, &hash);
    tracing::info!(app_key = %app_key, "configuration flow: issued credentials for a merchant");
    Json(json!({ "applicationId": pending.application_id, "appKey": app_key, "appToken": app_token })).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_urls_must_be_https_on_allowed_hosts() {
        let o = Onboarding::new(&OnboardingConfig::default());
        assert!(
            o.return_url_allowed("https://store.myvtex.com/admin/x?authorizationCode=")
                .is_ok()
        );
        assert!(
            o.return_url_allowed("https://a.b.vtexpayments.com.br/x")
                .is_ok()
        );
        for bad in [
            "http://store.myvtex.com/x",
            "https://myvtex.com/x",
            "https://evilmyvtex.com/x",
            "https://store.myvtex.com.evil.example/x",
            "https://user:pw@store.myvtex.com/x",
            "javascript:alert(1)",
            "//store.myvtex.com/x",
        ] {
            assert!(o.return_url_allowed(bad).is_err(), "{bad} must be refused");
        }
    }
}
