//! What stands between the socket and the routes: who the client is (the TCP peer, or the
//! first untrusted `X-Forwarded-For` hop when the peer is a trusted proxy), per-address rate
//! limits on failed credentials and tokens, a global concurrency limit that sheds load with 503
//! instead of queueing, and per-route time limits.
//!
//! Order of the stack, outermost first: client address + rate limits → load shedding and the
//! concurrency limit → time limit → routes (body limits are per route, see `ppp::router`).

pub mod rate_limit;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use tower::ServiceBuilder;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::load_shed::LoadShedLayer;

use crate::config::{RateLimitConfig, ServerConfig};
use rate_limit::FailureLimiter;

/// The client's address as the limits see it; in the request's extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// `[server] trusted_proxies`: addresses and networks.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<(IpAddr, u8)>);

impl TrustedProxies {
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        let mut nets = Vec::new();
        for entry in entries {
            let entry = entry.trim();
            let (addr, prefix) = match entry.split_once('/') {
                Some((a, p)) => (a, Some(p)),
                None => (entry, None),
            };
            let addr: IpAddr = addr
                .parse()
                .map_err(|_| format!("`{entry}` is not an IP address or CIDR"))?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let prefix = match prefix {
                None => max,
                Some(p) => p
                    .parse::<u8>()
                    .ok()
                    .filter(|p| *p <= max)
                    .ok_or_else(|| format!("`{entry}`: bad prefix length"))?,
            };
            nets.push((addr, prefix));
        }
        Ok(Self(nets))
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0
            .iter()
            .any(|&(net, prefix)| match (canonical(net), ip) {
                (IpAddr::V4(n), IpAddr::V4(a)) => same_prefix(&n.octets(), &a.octets(), prefix),
                (IpAddr::V6(n), IpAddr::V6(a)) => same_prefix(&n.octets(), &a.octets(), prefix),
                _ => false,
            })
    }

    /// The client: the peer, unless the peer is trusted; then `X-Forwarded-For` read from the
    /// right (the hop nearest to us), skipping trusted proxies, up to the first untrusted hop.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.contains(peer) {
            return canonical(peer);
        }
        let mut client = canonical(peer);
        let hops = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .collect::<Vec<_>>();
        for hop in hops.into_iter().rev() {
            let Some(ip) = parse_hop(hop) else {
                // Garbage from beyond the last trusted hop: that hop is all we know.
                return client;
            };
            client = canonical(ip);
            if !self.contains(client) {
                return client;
            }
        }
        client
    }
}

/// `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`, `[2001:db8::1]:443`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

/// IPv4-mapped IPv6 (`::ffff:1.2.3.4`, from a dual-stack socket) as plain IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

fn same_prefix(net: &[u8], addr: &[u8], prefix: u8) -> bool {
    let full = usize::from(prefix / 8);
    let rest = prefix % 8;
    if net[..full] != addr[..full] {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    (net[full] & mask) == (addr[full] & mask)
}

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
    pub fn new(server: &ServerConfig, limits: &RateLimitConfig) -> Result<Self, String> {
        let window = Duration::from_secs(limits.window_s);
        let make = |max| FailureLimiter::new(max, window, limits.tracked_addresses);
        Ok(Self {
            proxies: TrustedProxies::parse(&server.trusted_proxies)?,
            credentials: make(limits.credential_failures),
            tokens: make(limits.token_failures),
            onboarding: make(limits.onboarding_failures),
        })
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

    fn proxies(list: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .expect("valid")
    }

    fn xff(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", value.parse().expect("header"));
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn cidrs_parse_and_match() {
        let p = proxies(&["10.0.0.0/8", "192.0.2.7", "2001:db8::/32"]);
        assert!(p.contains(ip("10.200.3.4")));
        assert!(p.contains(ip("192.0.2.7")));
        assert!(!p.contains(ip("192.0.2.8")));
        assert!(p.contains(ip("2001:db8:1::9")));
        assert!(p.contains(ip("::ffff:10.1.1.1")), "mapped IPv4");
        assert!(!p.contains(ip("11.0.0.1")));
        for bad in ["10.0.0.0/33", "nope", "::1/129", "1.2.3.4/x"] {
            assert!(TrustedProxies::parse(&[bad.to_string()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn forwarded_for_is_read_only_from_trusted_peers() {
        let p = proxies(&["10.0.0.0/8"]);
        let headers = xff("198.51.100.9");
        assert_eq!(p.client(ip("203.0.113.5"), &headers), ip("203.0.113.5"));
        assert_eq!(p.client(ip("10.0.0.2"), &headers), ip("198.51.100.9"));
        assert_eq!(p.client(ip("10.0.0.2"), &HeaderMap::new()), ip("10.0.0.2"));
    }

    #[test]
    fn the_first_untrusted_hop_from_the_right_is_the_client() {
        let p = proxies(&["10.0.0.0/8"]);
        // The client forged the first entry; the proxies appended the rest.
        let headers = xff("1.1.1.1, 198.51.100.9, 10.0.0.5");
        assert_eq!(p.client(ip("10.0.0.2"), &headers), ip("198.51.100.9"));
        assert_eq!(
            p.client(ip("10.0.0.2"), &xff("[2001:db8::5]:443")),
            ip("2001:db8::5")
        );
        assert_eq!(
            p.client(ip("10.0.0.2"), &xff("garbage, 10.0.0.9")),
            ip("10.0.0.9"),
            "garbage stops the walk at the last trusted hop"
        );
    }

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
