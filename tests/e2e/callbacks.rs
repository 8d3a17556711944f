//! Callback delivery under load: an endpoint that never answers holds back no other callback,
//! every callback log line names the payment it is about, and each is delivered once.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::{Value, json};

use crate::harness::*;

/// A callback endpoint that accepts connections and never answers (the daemon's attempts there
/// end by the harness's 2 s `request_timeout_s`).
struct SilentEndpoint {
    base: String,
    connections: Arc<AtomicUsize>,
}

impl SilentEndpoint {
    async fn start() -> SilentEndpoint {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let connections = Arc::new(AtomicUsize::new(0));
        let accepted = connections.clone();
        tokio::spawn(async move {
            // Held open, never read, never answered.
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                accepted.fetch_add(1, Ordering::SeqCst);
                held.push(stream);
            }
        });
        SilentEndpoint { base, connections }
    }

    async fn wait_for_a_connection(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        while tokio::time::Instant::now() < deadline {
            if self.connections.load(Ordering::SeqCst) > 0 {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }
}

/// A Test Suite card payment that answers `undefined` and then calls back `approved` at once.
fn async_test_card_body(payment_id: &str, callback_url: &str) -> Vec<u8> {
    let mut body = create_body(payment_id, json!(20), "Visa", callback_url);
    body["card"] = json!({ "holder": "A", "number": "4222222222222224", "csc": "123",
        "expiration": { "month": "12", "year": "2030" } });
    body.to_string().into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_that_never_answers_does_not_delay_other_callbacks() {
    // More callbacks to the silent endpoint than the daemon attempts at once in all: one at a
    // time, they would hold the other callback back for 2 s each, about 48 s.
    const SILENT: usize = 24;
    let daemon = Daemon::start(Options {
        test_suite_cards: true,
        ..Options::default()
    })
    .await;
    let silent = SilentEndpoint::start().await;
    let receiver = CallbackReceiver::start(0).await;
    let gateway = daemon.gateway();
    for n in 0..SILENT {
        let id = format!("silent-{n:02}");
        let body = async_test_card_body(&id, &format!("{}/callback/{id}", silent.base));
        let (status, answer) = gateway
            .post_raw("/payments", body, &[("X-VTEX-API-Is-TestSuite", "true")])
            .await;
        assert_eq!((status, &answer["status"]), (200, &json!("undefined")));
    }
    assert!(
        silent.wait_for_a_connection(Duration::from_secs(10)).await,
        "no callback reached the silent endpoint"
    );

    let done = pay(&daemon, &receiver, "pay-prompt", json!(12.5)).await;
    assert_eq!(done["status"], "approved", "{done}");
    let callbacks = receiver
        .wait_for("pay-prompt", Duration::from_secs(4))
        .await;
    assert_eq!(
        callbacks.len(),
        1,
        "the callback waited behind the endpoint that never answers"
    );
    assert_eq!(callbacks[0].2, done);
}

/// A callback endpoint that answers 200 after `delay`; notes which payments it heard of.
struct SlowReceiver {
    base: String,
    received: Arc<Mutex<BTreeSet<String>>>,
}

impl SlowReceiver {
    async fn start(delay: Duration) -> SlowReceiver {
        let received = Arc::new(Mutex::new(BTreeSet::new()));
        let noted = received.clone();
        let app = Router::new().route(
            "/{*path}",
            post(move |body: String| {
                let noted = noted.clone();
                async move {
                    tokio::time::sleep(delay).await;
                    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                    let id = body["paymentId"].as_str().unwrap_or("").to_string();
                    noted.lock().expect("lock").insert(id);
                    StatusCode::OK
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        SlowReceiver { base, received }
    }

    fn received(&self) -> BTreeSet<String> {
        self.received.lock().expect("lock").clone()
    }
}

/// Every `payment_id=` value on a log line (span fields and event fields alike).
fn payment_ids(line: &str) -> Vec<&str> {
    line.split("payment_id=")
        .skip(1)
        .map(|rest| {
            let end = rest
                .find(|c: char| c.is_whitespace() || "}:,".contains(c))
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_callback_line_names_its_own_payment() {
    const PAYMENTS: usize = 24;
    let daemon = Daemon::start(Options {
        approve_after_ms: 20,
        ..Options::default()
    })
    .await;
    // Slow enough that each attempt waits on the network, where the task may move threads.
    let receiver = SlowReceiver::start(Duration::from_millis(150)).await;
    let ids: Vec<String> = (0..PAYMENTS).map(|n| format!("log-{n:02}")).collect();
    let flows: Vec<_> = ids
        .iter()
        .map(|id| {
            let gateway = daemon.gateway();
            let body = create_body(
                id,
                json!(7),
                "Venda Direta Credito",
                &format!("{}/callback/{id}", receiver.base),
            );
            tokio::spawn(async move {
                start_charge(&gateway, &body).await;
                gateway.poll_final(&body, Duration::from_secs(60)).await
            })
        })
        .collect();
    for flow in flows {
        let done = flow.await.expect("join");
        assert_eq!(done["status"], "approved", "{done}");
    }
    // At least once each: on a loaded machine an attempt may time out after it was answered.
    let everyone: BTreeSet<String> = ids.iter().cloned().collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while receiver.received() != everyone && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(receiver.received(), everyone, "every payment called back");
    // The line is written once the delivery is recorded, just after the answer.
    let delivered_lines = || {
        daemon
            .logs()
            .lines()
            .filter(|l| l.contains("callback delivered"))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while delivered_lines().len() < PAYMENTS && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let logs = daemon.logs();
    let mut named = BTreeMap::new();
    for line in delivered_lines() {
        let ids = payment_ids(&line);
        assert_eq!(
            ids.len(),
            1,
            "a delivery line must name one payment: {line}"
        );
        *named.entry(ids[0].to_string()).or_insert(0) += 1;
    }
    let everyone_once: BTreeMap<String, usize> = ids.iter().map(|id| (id.clone(), 1)).collect();
    assert_eq!(
        named, everyone_once,
        "each delivery line must name the payment delivered, and each payment is delivered once"
    );
    // No other payment's line lands inside a callback's span.
    for line in logs.lines().filter(|l| l.contains("callback{")) {
        assert_eq!(
            payment_ids(line).len(),
            1,
            "a line in a callback span names another payment too: {line}"
        );
    }
}
