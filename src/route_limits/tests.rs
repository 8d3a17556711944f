use std::sync::atomic::{AtomicBool, Ordering};

use axum::body::{Body, to_bytes};
use axum::http::Request;
use axum::routing::{get, post};
use serde_json::Value;
use tower::ServiceExt;

use super::*;

// The paths below are real ones: tests/e2e/reference.rs looks for every route path written in
// src/ in docs/reference.md.

/// The address `net` would have put in front of the request.
const CLIENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 7));

fn from(method: Method, path: &str) -> Request<Body> {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .body(Body::empty())
        .expect("request");
    req.extensions_mut().insert(ClientAddr(CLIENT));
    req
}

async fn call(router: &Router, req: Request<Body>) -> (StatusCode, Option<String>, Value) {
    let response = router.clone().oneshot(req).await.expect("infallible");
    let status = response.status();
    let retry_after = response
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let bytes = to_bytes(response.into_body(), 64 * 1024)
        .await
        .expect("body");
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, retry_after, body)
}

#[tokio::test]
async fn failures_block_the_address_on_its_routes_only_and_preflights_never_count() {
    let guarded = Limits {
        failures: Some(Guarded::Credentials),
        time: TimeBudget::Ppp,
    };
    let open = Limits {
        failures: None,
        time: TimeBudget::Ppp,
    };
    let router = Routes::new(&RouteLimits::for_tests(2))
        .route(
            "/payments",
            guarded,
            post(|| async { StatusCode::UNAUTHORIZED }),
        )
        .route("/manifest", open, get(|| async { "manifest" }))
        .into_router();

    // A preflight is neither counted nor refused (the 405 of an OPTIONS would otherwise be one).
    for _ in 0..3 {
        let (status, _, _) = call(&router, from(Method::OPTIONS, "/payments")).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    }
    for _ in 0..2 {
        let (status, _, _) = call(&router, from(Method::POST, "/payments")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, retry_after, body) = call(&router, from(Method::POST, "/payments")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    // Seconds left of the 60 s block (a real clock: 59 if a second boundary just passed).
    let seconds: u64 = retry_after
        .and_then(|s| s.parse().ok())
        .expect("Retry-After");
    assert!((59..=60).contains(&seconds), "{seconds}");
    assert_eq!(body["status"], "error");
    assert_eq!(body["code"], "too-many-failures", "{body}");
    // A wrong method on the route is refused as well: the limits wrap its 405.
    let (status, _, _) = call(&router, from(Method::GET, "/payments")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let (status, _, _) = call(&router, from(Method::OPTIONS, "/payments")).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "preflights pass");
    let (status, _, _) = call(&router, from(Method::GET, "/manifest")).await;
    assert_eq!(status, StatusCode::OK, "a route without a failure limit");
}

#[tokio::test(start_paused = true)]
async fn past_its_budget_a_route_answers_503_timeout_and_the_work_goes_on() {
    static FINISHED: AtomicBool = AtomicBool::new(false);
    let slow = || async {
        tokio::time::sleep(Duration::from_secs(10)).await;
        FINISHED.store(true, Ordering::SeqCst);
        "late"
    };
    let router = Routes::new(&RouteLimits::for_tests(2))
        .route(
            "/manifest",
            Limits {
                failures: None,
                time: TimeBudget::Ppp,
            },
            get(slow),
        )
        .route(
            "/healthz",
            Limits {
                failures: None,
                time: TimeBudget::Request,
            },
            get(slow),
        )
        .into_router();

    let (status, retry_after, body) = call(&router, from(Method::GET, "/manifest")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(retry_after.as_deref(), Some("1"));
    assert_eq!(body["status"], "error");
    assert_eq!(body["code"], "timeout", "{body}");
    assert!(!FINISHED.load(Ordering::SeqCst));
    tokio::time::sleep(Duration::from_secs(9)).await;
    assert!(
        FINISHED.load(Ordering::SeqCst),
        "the handler ran to its end"
    );

    // The request budget (30 s) leaves the same handler time to answer.
    let (status, _, _) = call(&router, from(Method::GET, "/healthz")).await;
    assert_eq!(status, StatusCode::OK);
}

#[test]
fn every_route_is_listed_with_what_it_was_given() {
    let limits_of = |failures, time| Limits { failures, time };
    let routes: Routes<()> = Routes::new(&RouteLimits::for_tests(1))
        .route(
            "/payment-app/ws/{payment_id}",
            limits_of(Some(Guarded::Token), TimeBudget::Request),
            get(|| async { "feed" }),
        )
        .route(
            "/manifest",
            limits_of(None, TimeBudget::Ppp),
            get(|| async { "manifest" }),
        );
    assert_eq!(
        routes.attached(),
        [
            (
                "/payment-app/ws/{payment_id}",
                limits_of(Some(Guarded::Token), TimeBudget::Request)
            ),
            ("/manifest", limits_of(None, TimeBudget::Ppp)),
        ]
    );
}
