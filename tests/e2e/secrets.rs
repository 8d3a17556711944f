//! No full card number, CVV, app token or callback signature in the logs (at trace level) or
//! in the database files (the callback URL is there only sealed).

use std::time::Duration;

use serde_json::json;

use crate::harness::*;

const CARD: &str = "4444333322221111";
// Long and unique: a short CVV such as `9876` turns up by chance in timestamps and tokens.
// The daemon never reads these fields, so their shape does not matter.
const CVV: &str = "csc-needle-5f2c81d0e4";
const HOLDER: &str = "Holder-Needle Zebulon Quaxley";

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
    card["card"] = json!({ "holder": HOLDER, "number": CARD, "csc": CVV, "expiration": { "month": "12", "year": "2031" } });
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

    let never_anywhere = [
        CARD,
        CVV,
        HOLDER,
        APP_TOKEN,
        CALLBACK_TOKEN,
        "guessed-SECRET-token",
        ONBOARDING_CODE,
        "\"csc\"",
        // Stored for delivery, but only sealed: a copy of the database cannot post a callback.
        CALLBACK_SIGNATURE,
    ];
    // While it runs, the latest rows are in the `-wal`.
    assert!(
        daemon.dir().join("simulator-lane-1.journal").exists(),
        "the terminal journal is scanned too"
    );
    for secret in never_anywhere {
        daemon.assert_never_stored(secret, secret);
    }

    let mut daemon = daemon;
    daemon.signal("TERM");
    daemon
        .wait_exit(Duration::from_secs(20))
        .await
        .expect("exit");
    // After the stop, everything is checkpointed into the database file.
    for secret in never_anywhere {
        daemon.assert_never_stored(secret, secret);
    }
    let logs = daemon.logs();
    // The values that carry secrets were logged with their `Debug` at trace level: a `Debug`
    // that printed the raw value would put it in the scan below.
    for line in ["configuration as read", "Test Suite card"] {
        assert!(
            logs.lines()
                .any(|l| l.contains("TRACE") && l.contains(line)),
            "no trace-level `{line}` line: the scan proves nothing\n{logs}"
        );
    }
    for secret in never_anywhere {
        assert!(!logs.contains(secret), "`{secret}` found in the logs");
    }
    // The scan above proves something: the callback URLs are in the database, sealed.
    let db = rusqlite::Connection::open(daemon.db_path()).expect("open the database");
    let stored: Vec<String> = db
        .prepare("SELECT callback_url FROM payments UNION ALL SELECT url FROM outbox")
        .expect("prepare")
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert!(stored.len() >= 3, "{stored:?}");
    for url in &stored {
        assert!(
            url.starts_with("sealed1:"),
            "a callback URL stored in clear: {url}"
        );
    }
}
