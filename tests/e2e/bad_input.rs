//! Bad input gets a clear, specific error, changes nothing and never takes the daemon down.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_rejects_bad_requests_with_specific_errors() {
    let daemon = Daemon::start(Options::default()).await;
    let gateway = daemon.gateway();
    let good = create_body(
        "pay-in",
        json!(10),
        "Venda Direta Credito",
        "http://127.0.0.1:9/cb",
    );
    let with = |field: &str, value: Value| {
        let mut b = good.clone();
        b[field] = value;
        b.to_string().into_bytes()
    };
    let without = |field: &str| {
        let mut b = good.clone();
        b.as_object_mut().expect("object").remove(field);
        b.to_string().into_bytes()
    };
    let cases: Vec<(&str, Vec<u8>, &str, &str)> = vec![
        (
            "malformed JSON",
            b"{\"paymentId\": ".to_vec(),
            "bad-request",
            "malformed JSON",
        ),
        (
            "not an object",
            b"[1,2]".to_vec(),
            "bad-request",
            "expected",
        ),
        (
            "missing paymentId",
            without("paymentId"),
            "bad-request",
            "paymentId",
        ),
        (
            "missing callbackUrl",
            without("callbackUrl"),
            "bad-request",
            "callbackUrl",
        ),
        (
            "paymentId of the wrong type",
            with("paymentId", json!(42)),
            "bad-request",
            "paymentId",
        ),
        (
            "value of the wrong type",
            with("value", json!({"a": 1})),
            "bad-request",
            "value",
        ),
        (
            "negative value",
            with("value", json!(-1)),
            "invalid-value",
            "positive",
        ),
        (
            "zero value",
            with("value", json!("0,00")),
            "invalid-value",
            "positive",
        ),
        (
            "ambiguous separators",
            with("value", json!("1.234,56")),
            "invalid-value",
            "value",
        ),
        (
            "too many decimals",
            with("value", json!("10,999")),
            "invalid-value",
            "decimals",
        ),
        (
            "unsupported method",
            with("paymentMethod", json!("Pix")),
            "unsupported-payment-method",
            "Pix",
        ),
        (
            "bad currency",
            with("currency", json!("reais")),
            "bad-request",
            "currency",
        ),
        (
            "bad callbackUrl",
            with("callbackUrl", json!("ftp://x")),
            "bad-request",
            "callbackUrl",
        ),
    ];
    for (name, body, code, mention) in cases {
        let (status, error) = gateway
            .post_raw("/payments", body, &[("Content-Type", "text/plain")])
            .await;
        assert_eq!(status, 400, "{name}: {error}");
        assert_eq!(error["status"], "error", "{name}");
        assert_eq!(error["code"], code, "{name}: {error}");
        assert!(
            error["message"]
                .as_str()
                .expect("message")
                .contains(mention),
            "{name}: {error}"
        );
    }
    let huge = vec![b' '; 70_000];
    let (status, error) = gateway.post_raw("/payments", huge, &[]).await;
    assert_eq!(status, 413, "{error}");
    // Nothing was stored by any of that, and the daemon still serves.
    let (status, _) = gateway
        .post("/payments/pay-in/inbound/status", &json!({}))
        .await;
    assert_eq!(status, 404);
    assert_eq!(gateway.create(&good).await["status"], "undefined");
    // Unknown fields are ignored; "installments" may come as a string.
    let mut lenient = create_body(
        "pay-lenient",
        json!("29,90"),
        "Venda Direta Debito",
        "http://127.0.0.1:9/cb",
    );
    lenient["installments"] = json!("0");
    lenient["sellerId"] = json!("s1");
    assert_eq!(gateway.create(&lenient).await["status"], "undefined");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_reject_unknown_payments_and_bad_bodies_in_their_own_shapes() {
    let daemon = Daemon::start(Options::default()).await;
    let gateway = daemon.gateway();
    for (path, id_field) in [
        ("cancellations", "cancellationId"),
        ("settlements", "settleId"),
        ("refunds", "refundId"),
    ] {
        let (status, answer) = gateway
            .post(
                &format!("/payments/nope/{path}"),
                &json!({ "requestId": "r", "value": 1 }),
            )
            .await;
        assert_eq!(status, 404, "{answer}");
        assert!(answer[id_field].is_null(), "{answer}");
        assert_eq!(answer["paymentId"], "nope");
        assert_eq!(answer["requestId"], "r");
        let (status, answer) = gateway
            .post_raw(&format!("/payments/nope/{path}"), b"{oops".to_vec(), &[])
            .await;
        assert_eq!(status, 400, "{answer}");
        assert!(answer[id_field].is_null());
        assert!(
            answer["message"]
                .as_str()
                .expect("message")
                .contains("malformed")
        );
    }
    gateway
        .create(&create_body(
            "pay-ops",
            json!(10),
            "Venda Direta Credito",
            "http://127.0.0.1:9/cb",
        ))
        .await;
    let (status, answer) = gateway
        .post(
            "/payments/pay-ops/settlements",
            &json!({ "requestId": "s", "value": "abc" }),
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    let (status, answer) = gateway
        .post(
            "/payments/pay-ops/settlements",
            &json!({ "requestId": "s", "value": 1, "paymentId": "other" }),
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer["message"].as_str().expect("m").contains("paymentId"));
    let (status, answer) = gateway
        .post("/payments/pay-ops/refunds", &json!({ "value": 1 }))
        .await;
    assert_eq!(status, 400);
    assert!(answer["message"].as_str().expect("m").contains("requestId"));
    // Inbound: status works at both paths; an unknown action is a 404 inside responseData.
    for path in ["inbound", "inbound-request"] {
        let (status, answer) = gateway
            .post(
                &format!("/payments/pay-ops/{path}/status"),
                &json!({ "requestId": "i1" }),
            )
            .await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["responseData"]["statusCode"], 200);
        assert_eq!(answer["responseData"]["contentType"], "application/json");
        let content: Value =
            serde_json::from_str(answer["responseData"]["content"].as_str().expect("string"))
                .expect("json");
        assert_eq!(content["status"], "undefined");
        assert_eq!(content["paymentId"], "pay-ops");
    }
    let (status, answer) = gateway
        .post(
            "/payments/pay-ops/inbound/frobnicate",
            &json!({ "requestId": "i2" }),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(answer["responseData"]["statusCode"], 404);
    let (status, _) = gateway
        .post("/payments/nope/inbound/status", &json!({}))
        .await;
    assert_eq!(status, 404);
    let (status, answer) = gateway.post("/no/such/route", &json!({})).await;
    assert_eq!(status, 404, "{answer}");
}

/// A Create body whose `value` is the JSON number `raw`, byte for byte (a `Value` would hold
/// it as an f64).
fn with_raw_value(body: &Value, raw: &str) -> Vec<u8> {
    let mut body = body.clone();
    body["value"] = json!("@RAW@");
    body["totalCartValue"] = json!("@RAW@");
    body.to_string().replace("\"@RAW@\"", raw).into_bytes()
}

fn message(answer: &Value) -> &str {
    answer["message"].as_str().expect("message")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amounts_are_read_exactly_and_bounded() {
    let daemon = Daemon::start(Options {
        admin: true,
        ..Options::default()
    })
    .await;
    let receiver = CallbackReceiver::start(0).await;
    let gateway = daemon.gateway();
    let body = |id: &str| create_body(id, json!(1), "Venda Direta Credito", &receiver.url_for(id));

    // Through an f64 this was stored as 12345678901234569 centavos; 10.0000000000000001 as 10.
    for (raw, mention) in [
        ("123456789012345.67", "too large"),
        ("1e30", "too large"),
        ("10.0000000000000001", "decimals"),
    ] {
        let (status, answer) = gateway
            .post_raw("/payments", with_raw_value(&body("pay-exact"), raw), &[])
            .await;
        assert_eq!(status, 400, "{raw}: {answer}");
        assert_eq!(answer["code"], "invalid-value", "{raw}: {answer}");
        assert!(message(&answer).contains("`value`"), "{raw}: {answer}");
        assert!(message(&answer).contains(mention), "{raw}: {answer}");
    }
    let (status, _) = gateway
        .post("/payments/pay-exact/inbound/status", &json!({}))
        .await;
    assert_eq!(status, 404, "nothing was stored");

    // The largest amount goes in and comes back out exactly.
    let (status, answer) = gateway
        .post_raw(
            "/payments",
            with_raw_value(&body("pay-max"), "9999999999999.99"),
            &[],
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let admin = daemon.admin.as_ref().expect("admin");
    let shown = reqwest::Client::new()
        .get(format!("http://{admin}/payments/pay-max"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("admin")
        .text()
        .await
        .expect("text");
    assert!(shown.contains("\"amount\":9999999999999.99"), "{shown}");

    // Settle and refund read their `value` the same way.
    let paid = pay(&daemon, &receiver, "pay-ops-exact", json!(10)).await;
    assert_eq!(paid["status"], "approved", "{paid}");
    let operation = |request_id: &str, raw: &str| {
        format!(r#"{{"requestId": "{request_id}", "value": {raw}}}"#).into_bytes()
    };
    let (status, answer) = gateway
        .post_raw(
            "/payments/pay-ops-exact/settlements",
            operation("s-fine", "1.0000000000000001"),
            &[],
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["code"], "invalid-value", "{answer}");
    let (status, answer) = gateway
        .post_raw(
            "/payments/pay-ops-exact/settlements",
            operation("s-1", "10.00"),
            &[],
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = gateway
        .post_raw(
            "/payments/pay-ops-exact/refunds",
            operation("r-fine", "0.5000000000000001"),
            &[],
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["code"], "invalid-value", "{answer}");
    let (status, answer) = gateway
        .post_raw(
            "/payments/pay-ops-exact/refunds",
            operation("r-huge", "123456789012345.67"),
            &[],
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["code"], "invalid-value", "{answer}");
    // Nothing was refunded by those.
    let (status, answer) = gateway
        .post_raw(
            "/payments/pay-ops-exact/refunds",
            operation("r-1", "10"),
            &[],
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["value"], 10.0, "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identifiers_must_be_present_short_and_free_of_control_characters() {
    let daemon = Daemon::start(Options {
        max_body_bytes: 262_144,
        ..Options::default()
    })
    .await;
    let gateway = daemon.gateway();
    let good = create_body(
        "pay-ids",
        json!(10),
        "Venda Direta Credito",
        "http://127.0.0.1:9/cb",
    );
    let long = "x".repeat(129);
    for (field, bad) in [
        ("paymentId", "pay\nids"),
        ("paymentId", "pay\u{1b}[2J"),
        ("paymentId", long.as_str()),
        ("paymentId", ""),
        ("transactionId", "T-\u{202E}sdi"),
        ("transactionId", "T-\u{2028}"),
    ] {
        let mut body = good.clone();
        body[field] = json!(bad);
        let (status, answer) = gateway.post("/payments", &body).await;
        assert_eq!(status, 400, "{field} {bad:?}: {answer}");
        assert_eq!(answer["code"], "bad-request", "{answer}");
        assert!(
            message(&answer).contains(&format!("`{field}`")),
            "{field} {bad:?}: {answer}"
        );
    }
    assert_eq!(gateway.create(&good).await["status"], "undefined");

    // Cancel, settle and refund: the requestId and the path's paymentId.
    let huge = "r".repeat(100_000);
    for (path, id_field) in [
        ("cancellations", "cancellationId"),
        ("settlements", "settleId"),
        ("refunds", "refundId"),
    ] {
        for request_id in ["", huge.as_str(), "r\n1"] {
            let (status, answer) = gateway
                .post(
                    &format!("/payments/pay-ids/{path}"),
                    &json!({ "requestId": request_id, "value": 1 }),
                )
                .await;
            let shown = format!("{path}, a requestId of {} bytes", request_id.len());
            assert_eq!(status, 400, "{shown}: {}", message(&answer));
            assert!(answer[id_field].is_null(), "{shown}");
            assert!(answer["requestId"].is_null(), "{shown}: requestId repeated");
            assert!(
                message(&answer).contains("`requestId`"),
                "{shown}: {}",
                message(&answer)
            );
        }
        let (status, answer) = gateway
            .post(
                &format!("/payments/pay-ids%0Aforged/{path}"),
                &json!({ "requestId": "r", "value": 1 }),
            )
            .await;
        assert_eq!(status, 400, "{path}: {answer}");
        assert!(answer["paymentId"].is_null(), "never repeated: {answer}");
        assert!(message(&answer).contains("`paymentId`"), "{answer}");
    }
    // Inbound: the path's paymentId and, when there is one, the requestId.
    let (status, answer) = gateway
        .post("/payments/pay-ids%0D/inbound/status", &json!({}))
        .await;
    assert_eq!(status, 400, "{answer}");
    assert!(message(&answer).contains("`paymentId`"), "{answer}");
    let (status, answer) = gateway
        .post(
            "/payments/pay-ids/inbound/status",
            &json!({ "requestId": "" }),
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    assert!(message(&answer).contains("`requestId`"), "{answer}");
    // The Payment App feed.
    let feed = reqwest::Client::new()
        .get(format!("{}/payment-app/ws/pay-ids%1B?token=x", daemon.base))
        .send()
        .await
        .expect("feed");
    assert_eq!(feed.status(), 400);

    // None of that cancelled or changed the payment.
    let again = gateway.create(&good).await;
    assert_eq!(again["status"], "undefined");
    assert_eq!(
        again["paymentAppData"]["appName"],
        "vtex.terminal-connector-app"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_lines_cannot_be_forged_through_identifiers() {
    const FORGED: &str = "2026-01-01T00:00:00.000000Z ERROR ALARM: forged";
    let daemon = Daemon::start(Options::default()).await;
    let gateway = daemon.gateway();
    let first = gateway
        .create(&create_body(
            "pay-log",
            json!(10),
            "Venda Direta Credito",
            "http://127.0.0.1:9/cb",
        ))
        .await;
    let url = submit_url(&first);
    let encoded = FORGED.replace(' ', "%20");
    let forged_url = url.replace("/pay-log/", &format!("/pay-x%0A{encoded}/"));
    let (submit_status, submit_answer) =
        submit_serial(&forged_url, &json!({ "serialNumber": SERIAL }).to_string()).await;
    let (create_status, create_answer) = gateway
        .post(
            "/payments",
            &create_body(
                &format!("pay-y\r\n{FORGED}"),
                json!(10),
                "Venda Direta Credito",
                "http://127.0.0.1:9/cb",
            ),
        )
        .await;
    // A request that is logged, so the log is read after whatever the others wrote.
    let (status, _) = submit_serial(&url, &json!({ "serialNumber": SERIAL }).to_string()).await;
    assert_eq!(status, 200);
    assert!(
        daemon
            .wait_log("terminal bound", Duration::from_secs(10))
            .await
    );
    let logs = daemon.logs();
    assert!(
        !logs.lines().any(|line| line.starts_with(FORGED)),
        "a forged log line:\n{logs}"
    );
    assert_eq!(submit_status, 400, "{submit_answer}");
    assert!(
        message(&submit_answer).contains("`paymentId`"),
        "{submit_answer}"
    );
    assert_eq!(create_status, 400, "{create_answer}");
    assert!(
        message(&create_answer).contains("`paymentId`"),
        "{create_answer}"
    );
}

/// The text log escapes control characters in every value, whatever the source: here a fatal
/// error that quotes a configured path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_log_lines_escape_control_characters() {
    const FORGED: &str = "2026-01-01T00:00:00.000000Z ERROR ALARM: forged";
    let dir = tempfile::tempdir().expect("tempdir");
    let database = dir.path().join("posbridge.db").display().to_string();
    let config = Daemon::config_text(dir.path(), &Options::default()).replace(
        &database,
        &format!("{}/missing\\n{FORGED}/posbridge.db", dir.path().display()),
    );
    let config_path = dir.path().join("posbridge.toml");
    std::fs::write(&config_path, config).expect("config");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_posbridge"))
        .args(["run", "--config"])
        .arg(&config_path)
        .args(["--log-level", "info"])
        .env_remove("RUST_LOG")
        .output()
        .expect("run");
    assert!(!out.status.success(), "the database cannot be opened");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("missing\\n{FORGED}")),
        "the path, escaped, on the fatal line:\n{stdout}"
    );
    assert!(
        !stdout.lines().any(|line| line.starts_with(FORGED)),
        "a forged log line:\n{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn card_numbers_are_never_echoed() {
    const CARD: &str = "4444333322221111";
    let daemon = Daemon::start(Options {
        test_suite_cards: true,
        ..Options::default()
    })
    .await;
    let gateway = daemon.gateway();
    let test_suite = [("X-VTEX-API-Is-TestSuite", "true")];
    let with_card = |id: &str, card: Value| {
        let mut body = create_body(id, json!(20), "Visa", "http://127.0.0.1:9/cb");
        body["card"] = card;
        body.to_string().into_bytes()
    };
    // A number as a JSON number is a card number.
    let (status, answer) = gateway
        .post_raw(
            "/payments",
            with_card(
                "pay-card-n",
                json!({ "number": 4444333322221111u64, "csc": 987 }),
            ),
            &test_suite,
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], "approved", "{answer}");
    assert_eq!(answer["firstDigits"], "444433");
    assert!(!answer.to_string().contains(CARD), "{answer}");
    // Anything else under `card` is no card: never an error that quotes it.
    for (i, card) in [
        json!(CARD),
        json!(4444333322221111u64),
        json!([CARD]),
        json!({ "number": [CARD] }),
        json!({ "number": { "pan": CARD } }),
        json!({ "number": true }),
    ]
    .into_iter()
    .enumerate()
    {
        let (status, answer) = gateway
            .post_raw(
                "/payments",
                with_card(&format!("pay-card-{i}"), card.clone()),
                &test_suite,
            )
            .await;
        assert_eq!(status, 400, "{card}: {answer}");
        assert_eq!(
            answer["code"], "unsupported-payment-method",
            "{card}: {answer}"
        );
        assert!(!answer.to_string().contains(CARD), "{card}: {answer}");
    }
    assert!(!daemon.logs().contains(CARD), "a card number in the logs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_url_answers_an_unknown_payment_like_a_wrong_token() {
    let daemon = Daemon::start(Options {
        extra_config: "[rate_limits]\ntoken_failures = 3\n".into(),
        ..Options::default()
    })
    .await;
    let gateway = daemon.gateway();
    let url = submit_url(
        &gateway
            .create(&create_body(
                "pay-probe",
                json!(10),
                "Venda Direta Credito",
                "http://127.0.0.1:9/cb",
            ))
            .await,
    );
    let serial = |s: &str| json!({ "serialNumber": s }).to_string();
    // With the right token an unknown serial number is still named as such.
    let (status, answer) = submit_serial(&url, &serial("NOPE-1")).await;
    assert_eq!(status, 404, "{answer}");
    assert_eq!(answer["code"], "unknown-terminal");

    let (status, wrong_token) = submit_serial(&format!("{url}x"), &serial(SERIAL)).await;
    assert_eq!(status, 403, "{wrong_token}");
    assert_eq!(wrong_token["code"], "bad-token");
    for unknown in ["pay-none-1", "pay-none-2"] {
        let probe = url.replace("/pay-probe/", &format!("/{unknown}/"));
        let (status, answer) = submit_serial(&probe, &serial(SERIAL)).await;
        assert_eq!(status, 403, "{answer}");
        assert_eq!(answer, wrong_token, "the same answer as a wrong token");
    }
    // Three failures from this address: the next probe is refused before it is looked at.
    let probe = url.replace("/pay-probe/", "/pay-none-3/");
    assert_eq!(submit_serial(&probe, &serial(SERIAL)).await.0, 429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debit_installments_and_currencies_are_checked() {
    let daemon = Daemon::start(Options::default()).await;
    let gateway = daemon.gateway();
    let body = |id: &str, method: &str| create_body(id, json!(10), method, "http://127.0.0.1:9/cb");
    for (i, installments) in [json!(2), json!(12), json!("3")].into_iter().enumerate() {
        let mut debit = body(&format!("pay-debit-bad-{i}"), "Venda Direta Debito");
        debit["installments"] = installments.clone();
        let (status, answer) = gateway.post("/payments", &debit).await;
        assert_eq!(status, 400, "{installments}: {answer}");
        assert!(message(&answer).contains("`installments`"), "{answer}");
    }
    for (i, installments) in [json!(0), json!(1), json!("1"), Value::Null]
        .into_iter()
        .enumerate()
    {
        let mut debit = body(&format!("pay-debit-{i}"), "Venda Direta Debito");
        debit["installments"] = installments;
        assert_eq!(gateway.create(&debit).await["status"], "undefined");
    }
    let mut debit = body("pay-debit-none", "Venda Direta Debito");
    debit
        .as_object_mut()
        .expect("object")
        .remove("installments");
    assert_eq!(gateway.create(&debit).await["status"], "undefined");
    let mut credit = body("pay-credit-6", "Venda Direta Credito");
    credit["installments"] = json!(6);
    assert_eq!(gateway.create(&credit).await["status"], "undefined");

    for (i, currency) in ["ZZZ", "XTS", "XXX", "XAU", "HRK"].into_iter().enumerate() {
        let mut odd = body(&format!("pay-currency-{i}"), "Venda Direta Credito");
        odd["currency"] = json!(currency);
        let (status, answer) = gateway.post("/payments", &odd).await;
        assert_eq!(status, 400, "{currency}: {answer}");
        assert!(message(&answer).contains("`currency`"), "{answer}");
    }
    for currency in ["EUR", "XOF", "JPY"] {
        let mut fine = body(&format!("pay-currency-{currency}"), "Venda Direta Credito");
        fine["currency"] = json!(currency);
        assert_eq!(gateway.create(&fine).await["status"], "undefined");
    }
}
