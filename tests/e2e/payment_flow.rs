//! The POS flow as VTEX documents it, on the simulator terminal.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::*;

const FINAL: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credit_payment_approved_end_to_end() {
    let daemon = Daemon::start(Options::default()).await;
    let receiver = CallbackReceiver::start(0).await;
    let gateway = daemon.gateway();
    let body = create_body(
        "pay-credit",
        json!(29.9),
        "Venda Direta Credito",
        &receiver.url_for("pay-credit"),
    );

    let first = gateway.create(&body).await;
    assert_eq!(first["status"], "undefined");
    let delay_to_cancel = first["delayToCancel"].clone();
    let url = submit_url(&first);
    assert!(url.starts_with(&daemon.base), "{url}");
    // Until a terminal is bound, every repeat answers the terminal-connector-app again.
    let repeat = gateway.create(&body).await;
    assert_eq!(submit_url(&repeat), url);

    let (status, bound) = submit_serial(&url, &json!({ "serialNumber": SERIAL }).to_string()).await;
    assert_eq!(
        (status, bound),
        (200, json!({ "status": "bound", "terminal": "lane-1" }))
    );

    let second = gateway.create(&body).await;
    assert_eq!(
        second["paymentAppData"]["appName"],
        "vtex.challenge-wait-for-confirmation"
    );
    let payload: Value =
        serde_json::from_str(second["paymentAppData"]["payload"].as_str().expect("str"))
            .expect("json");
    assert_eq!(payload, json!({ "secondsWaiting": 600 }));
    assert!(second["delayToCancel"].as_u64() >= payload["secondsWaiting"].as_u64());

    let done = gateway.poll_final(&body, FINAL).await;
    assert_eq!(done["status"], "approved", "{done}");
    assert_eq!(done["cardBrand"], "Visa");
    assert_eq!(done["firstDigits"], "444433");
    assert_eq!(done["lastDigits"], "1111");
    assert!(
        done["authorizationId"]
            .as_str()
            .is_some_and(|a| !a.is_empty())
    );
    assert!(done["nsu"].as_str().is_some_and(|a| !a.is_empty()));
    for answer in [&first, &repeat, &second, &done] {
        assert_eq!(
            answer["delayToCancel"], delay_to_cancel,
            "delayToCancel must never change"
        );
        assert_eq!(answer["tid"], first["tid"]);
    }
    assert!(done.get("paymentAppData").is_none());
    // Once final, the same body every time.
    assert_eq!(gateway.create(&body).await, done);

    let callbacks = receiver.wait_for("pay-credit", FINAL).await;
    assert_eq!(callbacks.len(), 1);
    let (headers, uri, callback) = &callbacks[0];
    assert_eq!(callback, &done, "the callback carries the final answer");
    assert_eq!(headers["x-vtex-api-appkey"], CALLBACK_KEY);
    assert_eq!(headers["x-vtex-api-apptoken"], CALLBACK_TOKEN);
    assert!(
        uri.ends_with("X-VTEX-signature=SIGtestSECRETpay-credit"),
        "posted to the URL exactly as received: {uri}"
    );
    assert_eq!(daemon.charges_of("pay-credit"), 1);
    // Once the outbox holds it delivered, nothing more is sent: one row, one attempt.
    let outbox = daemon.wait_outbox_settled("pay-credit", FINAL).await;
    assert_eq!(outbox.len(), 1, "queued once: {outbox:?}");
    assert_eq!(
        (outbox[0].0.as_str(), outbox[0].1),
        ("delivered", 1),
        "{outbox:?}"
    );
    assert_eq!(
        receiver.for_payment("pay-credit").len(),
        1,
        "delivered once"
    );
    // Polls of a final payment are answered from memory; after a restart that memory is empty
    // and the database answers: byte for byte the same body.
    let polled = create_text(&daemon, &body).await;
    assert_eq!(serde_json::from_str::<Value>(&polled).expect("json"), done);
    let daemon = daemon.restart().await;
    assert_eq!(create_text(&daemon, &body).await, polled);
}

/// A Create's answer as the bytes the daemon sent.
async fn create_text(daemon: &Daemon, body: &Value) -> String {
    let response = daemon
        .gateway()
        .client
        .post(format!("{}/payments", daemon.base))
        .header("X-VTEX-API-AppKey", APP_KEY)
        .header("X-VTEX-API-AppToken", APP_TOKEN)
        .body(body.to_string())
        .send()
        .await
        .expect("create");
    assert_eq!(response.status(), 200);
    response.text().await.expect("body")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debit_payment_approved_with_a_string_amount() {
    let daemon = Daemon::start(Options::default()).await;
    let receiver = CallbackReceiver::start(0).await;
    let gateway = daemon.gateway();
    let body = create_body(
        "pay-debit",
        json!("10,50"),
        "Venda Direta Debito",
        &receiver.url_for("pay-debit"),
    );
    start_charge(&gateway, &body).await;
    let done = gateway.poll_final(&body, FINAL).await;
    assert_eq!(done["status"], "approved");
    assert_eq!(done["cardBrand"], "Mastercard");
    let callbacks = receiver.wait_for("pay-debit", FINAL).await;
    assert_eq!(callbacks[0].2["status"], "approved");
    let journal: Vec<Value> = daemon
        .journal()
        .lines()
        .map(|l| serde_json::from_str(l).expect("entry"))
        .collect();
    assert_eq!(
        journal[0]["amount_minor"], 1050,
        "the terminal charged exactly 10.50"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declined_by_the_issuer_and_by_the_shopper() {
    let daemon = Daemon::start(Options::default()).await;
    let receiver = CallbackReceiver::start(0).await;
    let gateway = daemon.gateway();
    for (id, value, code) in [
        ("pay-decl", 10.01, "51"),
        ("pay-shopper", 10.02, "shopper-cancelled"),
    ] {
        let body = create_body(
            id,
            json!(value),
            "Venda Direta Credito",
            &receiver.url_for(id),
        );
        start_charge(&gateway, &body).await;
        let done = gateway.poll_final(&body, FINAL).await;
        assert_eq!(done["status"], "denied", "{done}");
        assert_eq!(done["code"], code);
        assert!(done["authorizationId"].is_null());
        let callbacks = receiver.wait_for(id, FINAL).await;
        assert_eq!(callbacks[0].2["status"], "denied");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_terminal_is_asked_and_the_payment_denied() {
    let daemon = Daemon::start(Options {
        result_timeout_s: 1,
        ..Options::default()
    })
    .await;
    let receiver = CallbackReceiver::start(0).await;
    let gateway = daemon.gateway();
    let body = create_body(
        "pay-silent",
        json!(10.03),
        "Venda Direta Credito",
        &receiver.url_for("pay-silent"),
    );
    start_charge(&gateway, &body).await;
    let done = gateway.poll_final(&body, FINAL).await;
    assert_eq!(done["status"], "denied");
    assert_eq!(done["code"], "no-transaction");
    assert!(daemon.logs().contains("asking it what happened"));
    assert_eq!(receiver.wait_for("pay-silent", FINAL).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_creates_start_one_charge() {
    let daemon = Daemon::start(Options::default()).await;
    let receiver = CallbackReceiver::start(0).await;
    let gateway = daemon.gateway();
    let body = create_body(
        "pay-race",
        json!(12.0),
        "Venda Direta Credito",
        &receiver.url_for("pay-race"),
    );
    let first = gateway.create(&body).await;
    submit_serial(
        &submit_url(&first),
        &json!({ "serialNumber": SERIAL }).to_string(),
    )
    .await;
    let mut creates = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let gateway = gateway.clone();
        let body = body.clone();
        creates.spawn(async move { gateway.post("/payments", &body).await });
    }
    while let Some(result) = creates.join_next().await {
        let (status, answer) = result.expect("join");
        assert_eq!(status, 200, "{answer}");
        assert_ne!(answer["status"], "denied");
    }
    let done = gateway.poll_final(&body, FINAL).await;
    assert_eq!(done["status"], "approved");
    assert_eq!(
        daemon.charges_of("pay-race"),
        1,
        "journal: {}",
        daemon.journal()
    );
    assert_eq!(receiver.wait_for("pay-race", FINAL).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_terminal_queues_and_denies_what_waits_too_long() {
    let daemon = Daemon::start(Options {
        seconds_waiting: 2,
        ..Options::default()
    })
    .await;
    let receiver = CallbackReceiver::start(0).await;
    let gateway = daemon.gateway();
    // A 20 s sale keeps the terminal busy...
    let slow = create_body(
        "pay-slow",
        json!(10.04),
        "Venda Direta Credito",
        &receiver.url_for("pay-slow"),
    );
    start_charge(&gateway, &slow).await;
    // ...so the next sale queues behind it and is never started within secondsWaiting.
    let queued = create_body(
        "pay-queued",
        json!(10.0),
        "Venda Direta Credito",
        &receiver.url_for("pay-queued"),
    );
    start_charge(&gateway, &queued).await;
    let done = gateway.poll_final(&queued, Duration::from_secs(40)).await;
    assert_eq!(done["status"], "denied");
    assert_eq!(done["code"], "terminal-busy");
    assert_eq!(
        daemon.charges_of("pay-queued"),
        0,
        "never sent to the terminal"
    );
    assert_eq!(
        gateway.poll_final(&slow, Duration::from_secs(40)).await["status"],
        "approved"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_identification_the_first_create_starts_the_charge() {
    let daemon = Daemon::start(Options {
        identify_terminal: false,
        ..Options::default()
    })
    .await;
    let receiver = CallbackReceiver::start(0).await;
    let gateway = daemon.gateway();
    let body = create_body(
        "pay-noid",
        json!(5),
        "Venda Direta Credito",
        &receiver.url_for("pay-noid"),
    );
    let first = gateway.create(&body).await;
    assert_eq!(
        first["paymentAppData"]["appName"],
        "vtex.challenge-wait-for-confirmation"
    );
    assert_eq!(gateway.poll_final(&body, FINAL).await["status"], "approved");
    assert_eq!(daemon.charges_of("pay-noid"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_url_binding_rules() {
    let daemon = Daemon::start(Options {
        two_terminals: true,
        approve_after_ms: 3000,
        ..Options::default()
    })
    .await;
    let receiver = CallbackReceiver::start(0).await;
    let gateway = daemon.gateway();
    let body = create_body(
        "pay-bind",
        json!(8),
        "Venda Direta Credito",
        &receiver.url_for("pay-bind"),
    );
    let url = submit_url(&gateway.create(&body).await);
    let serial = |s: &str| json!({ "serialNumber": s }).to_string();

    assert_eq!(
        submit_serial(&url, &serial("NOPE-9")).await.0,
        404,
        "unknown serial"
    );
    let bad_token = format!("{}x", url);
    assert_eq!(
        submit_serial(&bad_token, &serial(SERIAL)).await.0,
        403,
        "bad token"
    );
    assert_eq!(submit_serial(&url, "not json at all").await.0, 400);
    let other_payment = url.replace("/pay-bind/", "/pay-other/");
    // An unknown payment answers as a wrong token does (no probing for payment ids).
    assert_eq!(submit_serial(&other_payment, &serial(SERIAL)).await.0, 403);
    // None of that changed anything: still waiting for a terminal.
    assert_eq!(
        gateway.create(&body).await["paymentAppData"]["appName"],
        "vtex.terminal-connector-app"
    );

    // CORS: the app runs in a web view.
    let preflight = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, &url)
        .header("Origin", "https://store.myvtex.com")
        .header("Access-Control-Request-Method", "POST")
        .send()
        .await
        .expect("preflight");
    assert_eq!(preflight.headers()["access-control-allow-origin"], "*");

    assert_eq!(
        submit_serial(&url, &serial(SERIAL_2)).await,
        (200, json!({ "status": "bound", "terminal": "lane-2" }))
    );
    // A different serial may replace the binding until the charge starts...
    assert_eq!(
        submit_serial(&url, &serial(SERIAL)).await.1["terminal"],
        "lane-1"
    );
    gateway.create(&body).await;
    // ...and not after.
    assert_eq!(submit_serial(&url, &serial(SERIAL_2)).await.0, 409);
    assert_eq!(
        submit_serial(&url, &serial(SERIAL)).await.0,
        200,
        "the same scan again is harmless"
    );
    assert_eq!(gateway.poll_final(&body, FINAL).await["status"], "approved");
    assert_eq!(daemon.charges_of("pay-bind"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_suite_cards_follow_the_vtex_documentation() {
    let daemon = Daemon::start(Options {
        test_suite_cards: true,
        ..Options::default()
    })
    .await;
    let receiver = CallbackReceiver::start(0).await;
    let gateway = daemon.gateway();
    let manifest: Value = reqwest::get(format!("{}/manifest", daemon.base))
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert!(
        manifest["paymentMethods"]
            .as_array()
            .expect("list")
            .iter()
            .any(|m| m["name"] == "Visa")
    );

    let suite = [("X-VTEX-API-Is-TestSuite", "true")];
    let card_body = |id: &str, number: &str| {
        let mut b = create_body(id, json!(20), "Visa", &receiver.url_for(id));
        b["card"] = json!({ "holder": "A", "number": number, "csc": "123", "expiration": { "month": "12", "year": "2030" } });
        b
    };
    let create = |id: &'static str, number: &'static str| {
        let gateway = gateway.clone();
        let body = card_body(id, number);
        async move {
            gateway
                .post_raw("/payments", body.to_string().into_bytes(), &suite)
                .await
                .1
        }
    };
    let approved = create("ts-ok", "4444333322221111").await;
    assert_eq!(approved["status"], "approved", "{approved}");
    assert_eq!(approved["lastDigits"], "1111");
    assert_eq!(
        create("ts-no", "4444333322221112").await["status"],
        "denied"
    );
    let async_ok = create("ts-async-ok", "4222222222222224").await;
    assert_eq!(async_ok["status"], "undefined");
    assert_eq!(
        create("ts-async-no", "4222222222222225").await["status"],
        "undefined"
    );
    assert_eq!(
        receiver.wait_for("ts-async-ok", FINAL).await[0].2["status"],
        "approved"
    );
    assert_eq!(
        receiver.wait_for("ts-async-no", FINAL).await[0].2["status"],
        "denied"
    );

    // The Approved case then settles and refunds; Cancellation cancels an approved one.
    let (s, settled) = gateway
        .post(
            "/payments/ts-ok/settlements",
            &json!({ "requestId": "s1", "value": 20 }),
        )
        .await;
    assert_eq!(s, 200, "{settled}");
    let (s, refunded) = gateway
        .post(
            "/payments/ts-ok/refunds",
            &json!({ "requestId": "r1", "value": 20, "settleId": settled["settleId"] }),
        )
        .await;
    assert_eq!(s, 200, "{refunded}");
    let ok2 = create("ts-cancel", "4444333322221111").await;
    assert_eq!(ok2["status"], "approved");
    let (s, cancelled) = gateway
        .post(
            "/payments/ts-cancel/cancellations",
            &json!({ "requestId": "c1" }),
        )
        .await;
    assert_eq!(s, 200, "{cancelled}");
    assert!(cancelled["cancellationId"].is_string());

    // Without the header, a card method is not accepted.
    let (status, refused) = gateway
        .post("/payments", &card_body("ts-plain", "4444333322221111"))
        .await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["code"], "unsupported-payment-method");
}
