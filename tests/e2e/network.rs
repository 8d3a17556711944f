//! The network edge: per-address rate limits (with
//! `X-Forwarded-For` believed only from trusted proxies), load shedding and time limits.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::*;

const WRONG_TOKEN: &str = "wrong-token-SECRET-0d1e";

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// POST with the given credentials, as the client at `from` behind the (trusted) proxy.
async fn post_as(
    daemon: &Daemon,
    from: &str,
    path: &str,
    token: &str,
    body: &Value,
) -> (u16, Value, Option<String>) {
    let response = client()
        .post(format!("{}{path}", daemon.base))
        .header("X-Forwarded-For", from)
        .header("X-VTEX-API-AppKey", APP_KEY)
        .header("X-VTEX-API-AppToken", token)
        .body(body.to_string())
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (
        status,
        response.json().await.unwrap_or(Value::Null),
        retry_after,
    )
}

async fn submit_as(url: &str, from: &str) -> u16 {
    client()
        .post(url)
        .header("X-Forwarded-For", from)
        .body(json!({ "serialNumber": SERIAL }).to_string())
        .send()
        .await
        .expect("submit")
        .status()
        .as_u16()
}

async fn code_as(daemon: &Daemon, from: &str, token: &str, code: &str) -> u16 {
    client()
        .post(format!("{}/authorization/redirect", daemon.base))
        .header("X-Forwarded-For", from)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!("token={token}&code={code}"))
        .send()
        .await
        .expect("code")
        .status()
        .as_u16()
}

fn limits(n: u32) -> String {
    format!(
        "[rate_limits]\ncredential_failures = {n}\ntoken_failures = {n}\nonboarding_failures = {n}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_limited_per_client_address_behind_a_trusted_proxy() {
    let daemon = Daemon::start(Options {
        server_extra: "trusted_proxies = [\"127.0.0.1\", \"::1\"]".into(),
        extra_config: limits(3),
        ..Options::default()
    })
    .await;
    let body = create_body(
        "pay-rl",
        json!(10),
        "Venda Direta Credito",
        "http://127.0.0.1:9/cb",
    );

    // Credentials: three wrong tries from one client, then it is refused, even with the right
    // ones; another client behind the same proxy is not.
    for _ in 0..3 {
        let (status, _, _) =
            post_as(&daemon, "198.51.100.7", "/payments", WRONG_TOKEN, &body).await;
        assert_eq!(status, 401);
    }
    let (status, answer, retry) =
        post_as(&daemon, "198.51.100.7", "/payments", WRONG_TOKEN, &body).await;
    assert_eq!(status, 429, "{answer}");
    assert_eq!(answer["status"], "error");
    assert!(retry.is_some_and(|s| s.parse::<u64>().is_ok_and(|s| s > 0)));
    assert_eq!(
        post_as(&daemon, "198.51.100.7", "/payments", APP_TOKEN, &body)
            .await
            .0,
        429,
        "the address is refused, whatever it sends"
    );
    // The proxy appended the real client; a forged leftmost entry changes nothing.
    assert_eq!(
        post_as(
            &daemon,
            "203.0.113.1, 198.51.100.7",
            "/payments",
            APP_TOKEN,
            &body
        )
        .await
        .0,
        429
    );
    let (status, first, _) = post_as(&daemon, "198.51.100.8", "/payments", APP_TOKEN, &body).await;
    assert_eq!(status, 200, "another client is served: {first}");

    // submitUrl tokens.
    let url = submit_url(&first);
    let (prefix, _) = url.split_once("token=").expect("token in the submitUrl");
    let forged = format!("{prefix}token={WRONG_TOKEN}");
    for _ in 0..3 {
        assert_eq!(submit_as(&forged, "198.51.100.9").await, 403);
    }
    assert_eq!(submit_as(&forged, "198.51.100.9").await, 429);
    assert_eq!(submit_as(&url, "198.51.100.9").await, 429);
    assert_eq!(submit_as(&url, "198.51.100.10").await, 200);

    // The onboarding page.
    let token: Value = client()
        .post(format!("{}/authorization/token", daemon.base))
        .body(
            json!({ "applicationId": "vtex", "returnUrl": "https://a.myvtex.com/r?c=" })
                .to_string(),
        )
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    let token = token["token"].as_str().expect("token");
    for _ in 0..3 {
        assert_eq!(
            code_as(&daemon, "198.51.100.11", token, "guess-guess").await,
            401
        );
    }
    assert_eq!(
        code_as(&daemon, "198.51.100.11", token, ONBOARDING_CODE).await,
        429
    );
    assert_eq!(
        code_as(&daemon, "198.51.100.12", token, ONBOARDING_CODE).await,
        303
    );

    let logs = daemon.logs();
    assert!(
        logs.contains("too many failures from one address"),
        "{logs}"
    );
    assert!(logs.contains("198.51.100.7"));
    for secret in [WRONG_TOKEN, APP_TOKEN, token] {
        assert!(!logs.contains(secret), "a token in the logs");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_for_from_an_untrusted_peer_is_ignored() {
    let daemon = Daemon::start(Options {
        extra_config: limits(3),
        ..Options::default()
    })
    .await;
    let body = create_body(
        "pay-xff",
        json!(10),
        "Venda Direta Credito",
        "http://127.0.0.1:9/cb",
    );
    for n in 1..=3 {
        let from = format!("198.51.100.{n}");
        assert_eq!(
            post_as(&daemon, &from, "/payments", WRONG_TOKEN, &body)
                .await
                .0,
            401
        );
    }
    // Every "client" was the peer 127.0.0.1 all along.
    assert_eq!(
        post_as(&daemon, "198.51.100.50", "/payments", APP_TOKEN, &body)
            .await
            .0,
        429
    );
    // Routes without credentials are not affected.
    let manifest = client()
        .get(format!("{}/manifest", daemon.base))
        .send()
        .await
        .expect("manifest");
    assert_eq!(manifest.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_is_shed_with_503_and_slow_ppp_requests_time_out() {
    // .05 ignores the abort: the cancel waits 3 s for the terminal, past the 2 s limit.
    let daemon = Daemon::start(Options {
        approve_after_ms: 8_000,
        server_extra: "max_concurrent_requests = 1\nppp_timeout_ms = 2000".into(),
        ..Options::default()
    })
    .await;
    let gateway = daemon.gateway();
    let body = create_body(
        "pay-slow",
        json!(10.05),
        "Venda Direta Credito",
        "http://127.0.0.1:9/cb",
    );
    start_charge(&gateway, &body).await;
    assert!(
        daemon
            .wait_log("sale sent to the terminal", Duration::from_secs(10))
            .await
    );
    let started = Instant::now();
    let slow = {
        let gateway = gateway.clone();
        tokio::spawn(async move {
            let answer = gateway
                .post(
                    "/payments/pay-slow/cancellations",
                    &json!({ "requestId": "c-slow" }),
                )
                .await;
            (answer, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The one slot is taken: answered at once, not queued.
    let asked = Instant::now();
    let shed = client()
        .get(format!("{}/manifest", daemon.base))
        .send()
        .await
        .expect("manifest");
    assert_eq!(shed.status(), 503);
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "{:?}",
        asked.elapsed()
    );
    let shed: Value = shed.json().await.expect("json");
    assert_eq!(shed["code"], "overloaded", "{shed}");
    assert_eq!(shed["status"], "error");

    let ((status, answer), took) = slow.await.expect("join");
    assert_eq!(status, 503, "{answer}");
    assert_eq!(answer["code"], "timeout", "{answer}");
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_millis(2900),
        "{took:?}"
    );
    // The slot is free again while the cancel still finishes behind the answer.
    let manifest = client()
        .get(format!("{}/manifest", daemon.base))
        .send()
        .await
        .expect("manifest");
    assert_eq!(manifest.status(), 200);
    assert!(daemon.logs().contains("request over its time limit"));
}
