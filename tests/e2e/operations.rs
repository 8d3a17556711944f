//! Cancellation, settlement and refund after (or before) the charge.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::*;

const FINAL: Duration = Duration::from_secs(30);

async fn approved_payment(
    daemon: &Daemon,
    receiver: &CallbackReceiver,
    id: &str,
    value: f64,
) -> Value {
    let done = pay(daemon, receiver, id, json!(value)).await;
    assert_eq!(done["status"], "approved", "{done}");
    done
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_before_the_terminal_is_named_and_while_charging() {
    let daemon = Daemon::start(Options::default()).await;
    let receiver = CallbackReceiver::start(0).await;
    let gateway = daemon.gateway();

    let early = create_body(
        "pay-early",
        json!(10),
        "Venda Direta Credito",
        &receiver.url_for("pay-early"),
    );
    gateway.create(&early).await;
    let (status, cancelled) = gateway
        .post(
            "/payments/pay-early/cancellations",
            &json!({ "paymentId": "pay-early", "requestId": "c-early", "authorizationId": null }),
        )
        .await;
    assert_eq!(status, 200, "{cancelled}");
    assert!(cancelled["cancellationId"].is_string());
    assert_eq!(cancelled["requestId"], "c-early");
    assert_eq!(
        gateway.create(&early).await["status"],
        "denied",
        "a cancelled payment is never charged"
    );
    assert_eq!(daemon.charges_of("pay-early"), 0);

    // A slow (20 s) sale is aborted on the terminal.
    let slow = create_body(
        "pay-abort",
        json!(10.04),
        "Venda Direta Credito",
        &receiver.url_for("pay-abort"),
    );
    start_charge(&gateway, &slow).await;
    assert!(daemon.wait_log("sale sent to the terminal", FINAL).await);
    let (status, cancelled) = gateway
        .post(
            "/payments/pay-abort/cancellations",
            &json!({ "requestId": "c-abort" }),
        )
        .await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(daemon.journal_entries("pay-abort", "aborted"), 1);
    let answer = gateway.create(&slow).await;
    assert_eq!(answer["status"], "denied");
    // Same requestId: the identical body.
    assert_eq!(
        gateway
            .post(
                "/payments/pay-abort/cancellations",
                &json!({ "requestId": "c-abort" })
            )
            .await
            .1,
        cancelled
    );
    // Every final result reaches the callbackUrl, whoever ended the payment (issue 8 #9).
    for id in ["pay-early", "pay-abort"] {
        let callbacks = receiver.wait_for(id, FINAL).await;
        assert_eq!(callbacks.len(), 1, "{id}");
        assert_eq!(callbacks[0].2["status"], "denied", "{id}");
        assert_eq!(
            callbacks[0].2,
            gateway
                .create(if id == "pay-early" { &early } else { &slow })
                .await,
            "the callback carries the final Create answer"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_after_approval_reverses_the_sale() {
    let daemon = Daemon::start(Options::default()).await;
    let receiver = CallbackReceiver::start(0).await;
    let gateway = daemon.gateway();
    approved_payment(&daemon, &receiver, "pay-rev", 31.9).await;
    let request = json!({ "paymentId": "pay-rev", "requestId": "c1", "authorizationId": "x" });
    let (status, cancelled) = gateway
        .post("/payments/pay-rev/cancellations", &request)
        .await;
    assert_eq!(status, 200, "{cancelled}");
    assert!(cancelled["cancellationId"].is_string());
    assert_eq!(daemon.journal_entries("pay-rev", "reversal"), 1);
    assert_eq!(
        gateway
            .post("/payments/pay-rev/cancellations", &request)
            .await,
        (200, cancelled.clone())
    );
    let (status, again) = gateway
        .post(
            "/payments/pay-rev/cancellations",
            &json!({ "requestId": "c2" }),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        again["cancellationId"], cancelled["cancellationId"],
        "one cancellation, whatever the requestId"
    );
    assert_eq!(
        daemon.journal_entries("pay-rev", "reversal"),
        1,
        "reversed once"
    );
    let (status, settle) = gateway
        .post(
            "/payments/pay-rev/settlements",
            &json!({ "requestId": "s1", "value": 31.9 }),
        )
        .await;
    assert_eq!(
        (status, settle["code"].clone()),
        (400, json!("payment-cancelled"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settle_partial_settle_refund_and_over_refund() {
    let daemon = Daemon::start(Options::default()).await;
    let receiver = CallbackReceiver::start(0).await;
    let gateway = daemon.gateway();

    // Full settlement, then refunds up to what was settled.
    approved_payment(&daemon, &receiver, "pay-full", 100.0).await;
    let (status, over) = gateway
        .post(
            "/payments/pay-full/settlements",
            &json!({ "requestId": "s0", "value": 100.01 }),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(over["code"], "settle-exceeds-authorized");
    assert!(over["settleId"].is_null());
    assert_eq!(over["value"], 0);
    let (status, refund_early) = gateway
        .post(
            "/payments/pay-full/refunds",
            &json!({ "requestId": "r0", "value": 1 }),
        )
        .await;
    assert_eq!(
        (status, refund_early["code"].clone()),
        (400, json!("not-settled"))
    );

    let settle = json!({ "paymentId": "pay-full", "requestId": "s1", "value": 100, "authorizationId": "a", "transactionId": "t" });
    let (status, settled) = gateway
        .post("/payments/pay-full/settlements", &settle)
        .await;
    assert_eq!(status, 200, "{settled}");
    assert_eq!(settled["value"], 100.0);
    assert!(settled["settleId"].is_string());
    assert_eq!(
        gateway
            .post("/payments/pay-full/settlements", &settle)
            .await,
        (200, settled.clone()),
        "same requestId, same body"
    );

    let refund = |rid: &str, value: Value| json!({ "requestId": rid, "value": value, "settleId": settled["settleId"], "tid": "t", "transactionId": "t", "paymentId": "pay-full" });
    let (status, r1) = gateway
        .post("/payments/pay-full/refunds", &refund("r1", json!(60)))
        .await;
    assert_eq!(status, 200, "{r1}");
    assert_eq!(r1["value"], 60.0);
    assert_eq!(
        gateway
            .post("/payments/pay-full/refunds", &refund("r1", json!(60)))
            .await,
        (200, r1.clone())
    );
    let (status, r2) = gateway
        .post("/payments/pay-full/refunds", &refund("r2", json!(40.01)))
        .await;
    assert_eq!(status, 400, "{r2}");
    assert_eq!(r2["code"], "refund-exceeds-settled");
    assert!(r2["refundId"].is_null());
    let (status, r3) = gateway
        .post("/payments/pay-full/refunds", &refund("r3", json!("40,00")))
        .await;
    assert_eq!(status, 200, "{r3}");
    assert_ne!(r3["refundId"], r1["refundId"]);
    assert_eq!(
        daemon.journal_entries("pay-full", "refund"),
        2,
        "each refund once on the terminal"
    );
    let (status, _) = gateway
        .post("/payments/pay-full/refunds", &refund("r4", json!(0.01)))
        .await;
    assert_eq!(status, 400, "nothing left to refund");

    // Partial settlement returns the difference to the shopper on the terminal.
    approved_payment(&daemon, &receiver, "pay-part", 50.0).await;
    let (status, part) = gateway
        .post(
            "/payments/pay-part/settlements",
            &json!({ "requestId": "s1", "value": 30 }),
        )
        .await;
    assert_eq!(status, 200, "{part}");
    assert_eq!(part["value"], 30.0);
    let reversal: Vec<Value> = daemon
        .journal()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["kind"] == "reversal" && e["sale_ref"] == "pay-part")
        .collect();
    assert_eq!(reversal.len(), 1);
    assert_eq!(reversal[0]["amount_minor"], 2000);
    let (status, over) = gateway
        .post(
            "/payments/pay-part/refunds",
            &json!({ "requestId": "r1", "value": 30.01 }),
        )
        .await;
    assert_eq!(
        (status, over["code"].clone()),
        (400, json!("refund-exceeds-settled"))
    );
    let (status, cancel) = gateway
        .post(
            "/payments/pay-part/cancellations",
            &json!({ "requestId": "c1" }),
        )
        .await;
    assert_eq!(
        status, 400,
        "a settled payment is refunded, not cancelled: {cancel}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_after_a_cancel_is_reversed_and_never_reported() {
    // .05: the terminal has already read the card and ignores the abort.
    let daemon = Daemon::start(Options {
        approve_after_ms: 1500,
        ..Options::default()
    })
    .await;
    let receiver = CallbackReceiver::start(0).await;
    let gateway = daemon.gateway();
    let body = create_body(
        "pay-late",
        json!(10.05),
        "Venda Direta Credito",
        &receiver.url_for("pay-late"),
    );
    start_charge(&gateway, &body).await;
    assert!(daemon.wait_log("sale sent to the terminal", FINAL).await);
    let request = json!({ "requestId": "c-late" });
    let deadline = tokio::time::Instant::now() + FINAL;
    let cancelled = loop {
        let (status, answer) = gateway
            .post("/payments/pay-late/cancellations", &request)
            .await;
        if status == 200 {
            break answer;
        }
        assert_eq!(status, 500, "{answer}");
        assert!(answer["cancellationId"].is_null());
        assert!(tokio::time::Instant::now() < deadline);
    };
    assert!(cancelled["cancellationId"].is_string());
    assert_eq!(gateway.create(&body).await["status"], "denied");
    assert_eq!(daemon.charges_of("pay-late"), 1);
    assert_eq!(
        daemon.journal_entries("pay-late", "reversal"),
        1,
        "the late approval was reversed"
    );
    assert!(
        daemon
            .logs()
            .contains("ALARM: the terminal approved a payment that was already cancelled")
    );
    // The late approval was recorded before its reversal: any callback it queued is in the
    // outbox by now. None says approved, and once all are sent none reached the Gateway.
    let outbox = daemon.wait_outbox_settled("pay-late", FINAL).await;
    assert!(
        outbox.iter().all(|(_, _, b)| b["status"] != "approved"),
        "{outbox:?}"
    );
    assert!(
        receiver
            .for_payment("pay-late")
            .iter()
            .all(|(_, _, b)| b["status"] != "approved")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn card_present_operations_answer_501_and_are_listed_for_store_it() {
    let daemon = Daemon::start(Options::default()).await;
    let receiver = CallbackReceiver::start(0).await;
    let gateway = daemon.gateway();
    assert_eq!(
        daemon.alarms(),
        (Some(0), "nothing needs attention\n".to_string())
    );

    // .06: this terminal cannot reverse or refund without the card.
    approved_payment(&daemon, &receiver, "pay-manual", 20.06).await;
    let request = json!({ "requestId": "c1" });
    let (status, cancel) = gateway
        .post("/payments/pay-manual/cancellations", &request)
        .await;
    assert_eq!(status, 501, "{cancel}");
    assert_eq!(cancel["code"], "cancel-manually");
    assert!(cancel["cancellationId"].is_null());
    assert_eq!(
        gateway
            .post("/payments/pay-manual/cancellations", &request)
            .await,
        (501, cancel)
    );
    assert_eq!(
        gateway
            .create(&create_body(
                "pay-manual",
                json!(20.06),
                "Venda Direta Credito",
                &receiver.url_for("pay-manual")
            ))
            .await["status"],
        "approved"
    );

    // A partial settlement whose difference the terminal cannot return is booked and flagged.
    let (status, settled) = gateway
        .post(
            "/payments/pay-manual/settlements",
            &json!({ "requestId": "s1", "value": 15 }),
        )
        .await;
    assert_eq!(status, 200, "{settled}");
    let (code, report) = daemon.alarms();
    assert_eq!(code, Some(1));
    assert!(
        report.contains("pay-manual") && report.contains("could not give back the remaining"),
        "{report}"
    );

    let (status, refund) = gateway
        .post(
            "/payments/pay-manual/refunds",
            &json!({ "requestId": "r1", "value": 15 }),
        )
        .await;
    assert_eq!(status, 501, "{refund}");
    assert_eq!(refund["code"], "refund-manually");
    assert!(refund["refundId"].is_null());
    assert_eq!(refund["value"], 0);
    assert_eq!(daemon.journal_entries("pay-manual", "refund"), 0);
}
