//! The limits each route is given where its router defines it: which failures count against
//! the client's address (and refuse it with 429 once too many), and how long the route may take
//! before the client gets 503 `timeout`. Routes are added through [`Routes::route`], which takes
//! both limits and nothing else, so a route cannot be added, or renamed, without them; the list
//! it keeps lets each router's tests check what was attached.
//!
//! A leaf: `ppp` and `payment_app` both import it, and `net` puts the client's address
//! ([`ClientAddr`]) in front of every request before any of this runs.

pub mod failure_limiter;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::MethodRouter;

use crate::error_body::response as error;
pub use failure_limiter::FailureLimiter;

/// The client's address as the limits see it; in the request's extensions (put there by `net`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// Which failures count against an address on a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guarded {
    /// `/payments…`: wrong or missing app key / token (401).
    Credentials,
    /// The submitUrl and the Payment App feed: wrong token (403); `/nexo/notifications`: an
    /// unknown terminal or a seal that does not open (403).
    Token,
    /// The configuration flow's pages: wrong code or authorization token (401, 403).
    Onboarding,
}

impl Guarded {
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

/// Which time budget a route has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeBudget {
    /// The PPP routes: the Gateway's budget (`ppp_timeout_ms`).
    Ppp,
    /// Everything else (`request_timeout_ms`).
    Request,
}

/// What a route is given: a failure limit (or none) and a time budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub failures: Option<Guarded>,
    pub time: TimeBudget,
}

/// One failure limiter per kind of failure; shared by every route that counts that kind.
pub struct FailureLimits {
    pub credentials: FailureLimiter,
    pub tokens: FailureLimiter,
    pub onboarding: FailureLimiter,
}

impl FailureLimits {
    fn limiter(&self, guarded: Guarded) -> &FailureLimiter {
        match guarded {
            Guarded::Credentials => &self.credentials,
            Guarded::Token => &self.tokens,
            Guarded::Onboarding => &self.onboarding,
        }
    }
}

/// The limiters and time budgets the routers attach (built once, from the configuration).
#[derive(Clone)]
pub struct RouteLimits {
    failures: Arc<FailureLimits>,
    ppp_time: Duration,
    request_time: Duration,
}

impl RouteLimits {
    pub fn new(failures: FailureLimits, ppp_time: Duration, request_time: Duration) -> Self {
        Self {
            failures: Arc::new(failures),
            ppp_time,
            request_time,
        }
    }

    /// Each failure limit `max_failures` a minute; PPP 2 s, the rest 30 s.
    #[cfg(test)]
    pub(crate) fn for_tests(max_failures: u32) -> Self {
        let make = || FailureLimiter::new(max_failures, Duration::from_secs(60), 16);
        Self::new(
            FailureLimits {
                credentials: make(),
                tokens: make(),
                onboarding: make(),
            },
            Duration::from_secs(2),
            Duration::from_secs(30),
        )
    }

    fn time(&self, budget: TimeBudget) -> Duration {
        match budget {
            TimeBudget::Ppp => self.ppp_time,
            TimeBudget::Request => self.request_time,
        }
    }
}

/// A router being defined: every route comes with its limits, and the list of what each
/// route was given is kept for tests.
pub struct Routes<S> {
    router: Router<S>,
    limits: RouteLimits,
    attached: Vec<(&'static str, Limits)>,
}

impl<S: Clone + Send + Sync + 'static> Routes<S> {
    pub fn new(limits: &RouteLimits) -> Self {
        Self {
            router: Router::new(),
            limits: limits.clone(),
            attached: Vec::new(),
        }
    }

    /// Adds `path` with its limits around `route` (and around what `route`'s own layers —
    /// body limit, CORS — answer, its 405 included). From the outside in: failure limit, time
    /// limit, request metrics (inside the time limit, so they record what the handler answered
    /// and how long it really took), then the route.
    pub fn route(mut self, path: &'static str, limits: Limits, route: MethodRouter<S>) -> Self {
        let time = self.limits.time(limits.time);
        let route = route
            .layer(middleware::from_fn(crate::observability::track_http))
            .layer(middleware::from_fn_with_state(time, time_limit));
        let route = match limits.failures {
            Some(guarded) => route.layer(middleware::from_fn_with_state(
                (self.limits.failures.clone(), guarded),
                failure_limit,
            )),
            None => route,
        };
        self.router = self.router.route(path, route);
        self.attached.push((path, limits));
        self
    }

    /// Each route's path and what it was given, in the order they were added.
    pub fn attached(&self) -> &[(&'static str, Limits)] {
        &self.attached
    }

    pub fn into_router(self) -> Router<S> {
        self.router
    }
}

/// Refused (429) while the client's address is blocked for this kind of failure; a failure
/// counted when the answer is one.
async fn failure_limit(
    State((limits, guarded)): State<(Arc<FailureLimits>, Guarded)>,
    req: Request,
    next: Next,
) -> Response {
    // No address (in-process tests), or a CORS preflight (no credentials, never fails).
    let client = req.extensions().get::<ClientAddr>().map(|c| c.0);
    let Some(client) = client.filter(|_| req.method() != Method::OPTIONS) else {
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
async fn time_limit(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
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
mod tests;
