//! No full card number, CVV, app token or callback signature in the logs (at trace level) or
//! in the database files.

use std::time::Duration;

use serde_json::json;

use crate::harness::*;

const CARD: &str = "4444333322221111";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_or_card_data_in_logs_or_database() {
    let daemon = Daemon::start(Options {
        test_suite_cards: true,
        log_level: "trace",
        ..Options::default()
    })
    .await;
    let receiver = CallbackReceiver::start(1).await;
    let gateway = daemon.gateway();

    // A terminal payment through the whole flow, with a retried callback.
    let body = create_body(
        "pay-secret",
        json!(77.7),
        "Venda Direta Credito",
        &receiver.url_for("pay-secret"),
    );
    start_charge(&gateway, &body).await;
    gateway.poll_final(&body, Duration::from_secs(30)).await;
    assert_eq!(
        receiver
            .wait_for("pay-secret", Duration::from_secs(30))
            .await
            .len(),
        1
    );
    gateway
        .post(
            "/payments/pay-secret/settlements",
            &json!({ "requestId": "s", "value": 77.7 }),
        )
        .await;

    // A Test Suite request carrying a full card number and CVV.
    let mut card = create_body("pay-card", json!(20), "Visa", &receiver.url_for("pay-card"));
    card["card"] = json!({ "holder": "Ana Maria", "number": CARD, "csc": "9876", "expiration": { "month": "12", "year": "2031" } });
    let (status, answer) = gateway
        .post_raw(
            "/payments",
            card.to_string().into_bytes(),
            &[("X-VTEX-API-Is-TestSuite", "true")],
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["firstDigits"], "444433");
    // Wrong credentials are logged as such, never echoed.
    let intruder = Gateway::new(&daemon.base, APP_KEY, "guessed-SECRET-token");
    assert_eq!(intruder.post("/payments", &body).await.0, 401);

    let mut daemon = daemon;
    daemon.signal("TERM");
    daemon
        .wait_exit(Duration::from_secs(20))
        .await
        .expect("exit");
    let logs = daemon.logs();
    assert!(
        logs.contains("TRACE") || logs.contains("trace"),
        "the test must run at trace level"
    );
    let mut files = vec![("logs".to_string(), logs.into_bytes())];
    for name in [
        "posbridge.db",
        "posbridge.db-wal",
        "simulator-lane-1.journal",
    ] {
        if let Ok(bytes) = std::fs::read(daemon.dir().join(name)) {
            files.push((name.to_string(), bytes));
        }
    }
    // The CVV as a value in JSON (plain or escaped inside a string), Debug or a log field: the
    // bare four digits also turn up by chance in timestamps and random hex tokens.
    let never_anywhere = [
        CARD,
        "\"9876\"",
        "\"9876\\\"",
        "=9876",
        ":9876",
        "Ana Maria",
        APP_TOKEN,
        CALLBACK_TOKEN,
        "guessed-SECRET-token",
        ONBOARDING_CODE,
        "\"csc\"",
    ];
    for (name, bytes) in &files {
        for secret in never_anywhere {
            assert!(!contains(bytes, secret), "`{secret}` found in {name}");
        }
    }
    // The callback URL (with its signature) must stay in the database for delivery, but never
    // reach the logs.
    assert!(
        !contains(&files[0].1, "SIGtestSECRET"),
        "callback signature in the logs"
    );
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}
