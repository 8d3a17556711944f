//! What stands between the socket and the routes: who the client is (the TCP peer, or the
//! first untrusted `X-Forwarded-For` hop when the peer is a trusted proxy), per-address rate
//! limits on failed credentials and tokens, a global concurrency limit that sheds load with 503
//! instead of queueing, and per-route time limits.
//!
//! Order of the stack, outermost first: client address + rate limits → load shedding and the
//! concurrency limit → time limit → routes (body limits are per route, see `ppp::router`).

pub mod rate_limit;
pub mod trusted_proxies;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use tower::ServiceBuilder;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::load_shed::LoadShedLayer;

use crate::config::{RateLimitConfig, ServerConfig};
use rate_limit::FailureLimiter;
pub use trusted_proxies::TrustedProxies;

/// The client's address as the limits see it; in the request's extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// Which failures count against an address on a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guarded {
    /// `/payments…`: wrong or missing app key / token (401).
    Credentials,
    /// The submitUrl and the Payment App feed: wrong token (403).
    Token,
    /// The configuration flow's pages: wrong code or authorization token (401, 403).
    Onboarding,
}

impl Guarded {
    pub fn of(path: &str) -> Option<Self> {
        if path.starts_with("/payments") {
            Some(Self::Credentials)
        } else if path.starts_with("/pos/payments/") || path.starts_with("/payment-app/ws/") {
            Some(Self::Token)
        } else if path == "/authorization/redirect" || path == "/authorization/credentials" {
            Some(Self::Onboarding)
        } else {
            None
        }
    }

    fn is_failure(self, status: StatusCode) -> bool {
        match self {
            Self::Credentials => status == StatusCode::UNAUTHORIZED,
            Self::Token => status == StatusCode::FORBIDDEN,
            Self::Onboarding => {
                status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN
            }
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Credentials => "credentials",
            Self::Token => "token",
            Self::Onboarding => "onboarding",
        }
    }
}

/// Is this a PPP route (the Gateway's time budget)?
pub fn is_ppp(path: &str) -> bool {
    path.starts_with("/payments")
        || path == "/manifest"
        || path == "/payment-methods"
        || path.starts_with("/authorization/")
}

pub struct Limits {
    proxies: TrustedProxies,
    credentials: FailureLimiter,
    tokens: FailureLimiter,
    onboarding: FailureLimiter,
}

impl Limits {
    pub fn new(server: &ServerConfig, limits: &RateLimitConfig) -> Self {
        let window = Duration::from_secs(limits.window_s);
        let make = |max| FailureLimiter::new(max, window, limits.tracked_addresses);
        Self {
            proxies: server.trusted_proxies.clone(),
            credentials: make(limits.credential_failures),
            tokens: make(limits.token_failures),
            onboarding: make(limits.onboarding_failures),
        }
    }

    fn limiter(&self, guarded: Guarded) -> &FailureLimiter {
        match guarded {
            Guarded::Credentials => &self.credentials,
            Guarded::Token => &self.tokens,
            Guarded::Onboarding => &self.onboarding,
        }
    }
}

#[derive(Clone, Copy)]
struct Timeouts {
    ppp: Duration,
    other: Duration,
}

/// Wraps every route of `app` (and its fallback) in the stack described above.
pub fn layer(app: Router, server: &ServerConfig, limits: Arc<Limits>) -> Router {
    let timeouts = Timeouts {
        ppp: Duration::from_millis(server.ppp_timeout_ms),
        other: Duration::from_millis(server.request_timeout_ms),
    };
    app.layer(middleware::from_fn_with_state(timeouts, time_limit))
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(overloaded))
                .layer(LoadShedLayer::new())
                // Global: one semaphore shared by every route.
                .layer(GlobalConcurrencyLimitLayer::new(
                    server.max_concurrent_requests,
                )),
        )
        .layer(middleware::from_fn_with_state(limits, guard))
}

use crate::error_body::response as error;

async fn overloaded(err: tower::BoxError) -> Response {
    if err.is::<tower::load_shed::error::Overloaded>() {
        let mut response = error(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "too many requests in progress; retry shortly",
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        response
    } else {
        tracing::error!(error = %err, "request failed in the middleware");
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal-error",
            "internal error",
        )
    }
}

/// Client address, then: refused (429) while that address is blocked on this route; a failure
/// counted when the answer is one.
async fn guard(State(limits): State<Arc<Limits>>, mut req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let Some(peer) = peer else {
        // No socket (in-process tests): nothing to limit by.
        return next.run(req).await;
    };
    let client = limits.proxies.client(peer, req.headers());
    req.extensions_mut().insert(ClientAddr(client));
    // CORS preflights carry no credentials and never fail.
    let guarded = Guarded::of(req.uri().path()).filter(|_| req.method() != Method::OPTIONS);
    let Some(guarded) = guarded else {
        return next.run(req).await;
    };
    let limiter = limits.limiter(guarded);
    if let Some(left) = limiter.blocked(client, Instant::now()) {
        let mut response = error(
            StatusCode::TOO_MANY_REQUESTS,
            "too-many-failures",
            "too many failed attempts from this address; wait and retry",
        );
        let secs = left.as_secs().max(1).to_string();
        if let Ok(value) = HeaderValue::from_str(&secs) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return response;
    }
    let response = next.run(req).await;
    if guarded.is_failure(response.status()) && limiter.note_failure(client, Instant::now()) {
        tracing::warn!(
            client = %client,
            limit = guarded.name(),
            "too many failures from one address: refusing it for a while (429)"
        );
    }
    response
}

/// The request runs in its own task: past its time limit the client gets 503 `timeout` and
/// the work still finishes (the engine is never interrupted between two steps; a retry with
/// the same requestId gets the stored answer).
async fn time_limit(State(timeouts): State<Timeouts>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let limit = if is_ppp(&path) {
        timeouts.ppp
    } else {
        timeouts.other
    };
    let work = tokio::spawn(next.run(req));
    match tokio::time::timeout(limit, work).await {
        Ok(Ok(response)) => response,
        Ok(Err(e)) => {
            tracing::error!(path = %path, error = %e, "request handler failed");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal-error",
                "internal error",
            )
        }
        Err(_) => {
            tracing::warn!(
                path = %path,
                limit_ms = limit.as_millis(),
                "request over its time limit: answered 503, the work goes on"
            );
            let mut response = error(
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                "the request took too long; retry (with the same requestId)",
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_classified() {
        assert_eq!(Guarded::of("/payments"), Some(Guarded::Credentials));
        assert_eq!(
            Guarded::of("/payments/x/refunds"),
            Some(Guarded::Credentials)
        );
        assert_eq!(
            Guarded::of("/pos/payments/x/terminal"),
            Some(Guarded::Token)
        );
        assert_eq!(Guarded::of("/payment-app/ws/x"), Some(Guarded::Token));
        assert_eq!(
            Guarded::of("/authorization/redirect"),
            Some(Guarded::Onboarding)
        );
        assert_eq!(Guarded::of("/manifest"), None);
        assert!(is_ppp("/payments/x/cancellations") && is_ppp("/manifest"));
        assert!(!is_ppp("/pos/payments/x/terminal") && !is_ppp("/healthz"));
    }
}
