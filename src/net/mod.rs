//! What stands between the socket and the routers: who the client is (the TCP peer, or the
//! first untrusted `X-Forwarded-For` hop when the peer is a trusted proxy) and a global
//! concurrency limit that sheds load with 503 instead of queueing. The per-route limits (failures
//! per address, time) are attached by each router where it defines its routes (`route_limits`);
//! [`route_limits`] builds them from the configuration.
//!
//! Order of the stack, outermost first: client address → load shedding and the concurrency
//! limit → each route's failure limit → its time limit → the route (body limits are per route,
//! see `ppp::router`).

mod serve;
pub mod trusted_proxies;

pub use serve::{Bound, serve};

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use tower::ServiceBuilder;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::load_shed::LoadShedLayer;

use crate::config::{RateLimitConfig, ServerConfig};
use crate::route_limits::{ClientAddr, FailureLimiter, FailureLimits, RouteLimits};
pub use trusted_proxies::TrustedProxies;

/// The failure limiters and time budgets the routers attach to their routes.
pub fn route_limits(server: &ServerConfig, limits: &RateLimitConfig) -> RouteLimits {
    let window = Duration::from_secs(limits.window_s);
    let make = |max| FailureLimiter::new(max, window, limits.tracked_addresses);
    RouteLimits::new(
        FailureLimits {
            credentials: make(limits.credential_failures),
            tokens: make(limits.token_failures),
            onboarding: make(limits.onboarding_failures),
        },
        Duration::from_millis(server.ppp_timeout_ms),
        Duration::from_millis(server.request_timeout_ms),
    )
}

/// Wraps every route of `app` (and its fallback) in the stack described above.
pub fn layer(app: Router, server: &ServerConfig) -> Router {
    app.layer(
        ServiceBuilder::new()
            .layer(HandleErrorLayer::new(overloaded))
            .layer(LoadShedLayer::new())
            // Global: one semaphore shared by every route.
            .layer(GlobalConcurrencyLimitLayer::new(
                server.max_concurrent_requests,
            )),
    )
    .layer(middleware::from_fn_with_state(
        server.trusted_proxies.clone(),
        client_address,
    ))
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

/// The client's address ([`ClientAddr`]), before anything else: the failure limits inside
/// count by it.
async fn client_address(
    State(proxies): State<TrustedProxies>,
    mut req: Request,
    next: Next,
) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    // No socket (in-process tests): nothing to limit by.
    if let Some(peer) = peer {
        let client = proxies.client(peer, req.headers());
        req.extensions_mut().insert(ClientAddr(client));
    }
    next.run(req).await
}
