//! The simulator over real TLS on 127.0.0.1, driven by a small client built on the codec that
//! trusts the CA file the simulator wrote and checks the terminal's certificate name.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use firmware_protocols::nexo::crypto::OpenError;
use firmware_protocols::nexo::messages::{
    AbortRequest, DiagnosisRequest, DisplayRequest, ErrorCondition, Incoming, MessageCategory,
    MessageReference, OriginalPoiTransaction, PaymentInput, PaymentMethod, PaymentResponse,
    PaymentStatus, ResultCode, ReversalRequest, ReversalResponse, TransactionStatusRequest,
    TransactionStatusResponse,
};
use firmware_protocols::nexo::{ReadError, open_incoming, seal_request};
use tokio::task::JoinHandle;

use super::*;

const POI_ID: &str = "V400m-324688179";
const SALE_ID: &str = "store-1-lane-4";
const PASSPHRASE: &[u8] = b"simulated shared passphrase";

/// A simulator serving in this test's runtime, stopped when dropped.
struct Running {
    address: SocketAddr,
    ca_file: PathBuf,
    record: PathBuf,
    task: JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn start(configure: impl FnOnce(&mut SimulatorOptions)) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let mut options = SimulatorOptions::new(POI_ID, PASSPHRASE);
    options.approve_after = Duration::from_millis(50);
    options.ca_out = Some(dir.path().join("ca.pem"));
    options.record = Some(dir.path().join("record.jsonl"));
    configure(&mut options);
    let (ready, announced) = oneshot::channel();
    let task = tokio::spawn(serve(options.clone(), ready));
    let line = announced
        .await
        .expect("the simulator announces where it listens");
    let address = line
        .strip_prefix("listening on https://")
        .and_then(|rest| rest.strip_suffix("/nexo"))
        .and_then(|address| address.parse().ok())
        .unwrap_or_else(|| panic!("unexpected announce line {line:?}"));
    Running {
        address,
        ca_file: options.ca_out.clone().unwrap(),
        record: options.record.clone().unwrap(),
        task,
        _dir: dir,
    }
}

impl Running {
    fn client(&self) -> Client {
        self.client_with(PASSPHRASE, "posbridge", "test")
    }

    /// A client with its own key and the certificate name it expects.
    fn client_with(&self, passphrase: &[u8], key_identifier: &str, environment: &str) -> Client {
        let ca = std::fs::read(&self.ca_file).unwrap();
        let name = format!("{POI_ID}.{environment}.terminal.adyen.com");
        let http = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&ca).unwrap()])
            .resolve(&name, self.address)
            .http1_only()
            .build()
            .unwrap();
        Client {
            http,
            url: format!("https://{name}:{}/nexo", self.address.port()),
            key: KeyMaterial::derive(passphrase),
            identity: KeyIdentity {
                key_identifier: key_identifier.to_owned(),
                key_version: 1,
            },
        }
    }

    /// The record's lines, as JSON.
    fn record(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.record)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }
}

/// posbridge's side, as far as these tests need it: the codec over HTTPS.
struct Client {
    http: reqwest::Client,
    url: String,
    key: KeyMaterial,
    identity: KeyIdentity,
}

impl Client {
    /// Sends a sealed request; the HTTP status and body that came back.
    async fn post(
        &self,
        service_id: &str,
        body: RequestBody,
    ) -> reqwest::Result<(reqwest::StatusCode, Vec<u8>)> {
        let request = Request::service(SALE_ID, service_id, POI_ID, body);
        let sealed = seal_request(&request, &self.key, &self.identity).unwrap();
        let response = self.http.post(&self.url).body(sealed).send().await?;
        let status = response.status();
        Ok((status, response.bytes().await?.to_vec()))
    }

    /// Sends a sealed request and opens the sealed answer.
    async fn exchange(&self, service_id: &str, body: RequestBody) -> Response {
        let (status, answer) = self.post(service_id, body).await.unwrap();
        assert_eq!(
            status,
            reqwest::StatusCode::OK,
            "{}",
            String::from_utf8_lossy(&answer)
        );
        match open_incoming(&answer, &self.key).unwrap() {
            Incoming::Response(response) => response,
            Incoming::Request(request) => panic!("not an answer: {request:?}"),
        }
    }

    async fn pay(
        &self,
        service_id: &str,
        amount_minor: u64,
        method: PaymentMethod,
    ) -> PaymentResponse {
        let answer = self
            .exchange(service_id, payment(service_id, amount_minor, method))
            .await;
        assert_eq!(answer.header.message_category, MessageCategory::Payment);
        assert_eq!(answer.header.service_id.as_deref(), Some(service_id));
        match answer.body {
            ResponseBody::Payment(payment) => payment,
            other => panic!("not a payment answer: {other:?}"),
        }
    }

    async fn status(&self, of: &str) -> TransactionStatusResponse {
        let body = RequestBody::TransactionStatusRequest(TransactionStatusRequest {
            message_reference: MessageReference::payment(SALE_ID, of),
        });
        match self.exchange(&format!("st{of}"), body).await.body {
            ResponseBody::TransactionStatus(status) => status,
            other => panic!("not a status answer: {other:?}"),
        }
    }

    /// `TransactionStatus` of the reversal sent as `of`.
    async fn reversal_status(&self, of: &str) -> TransactionStatusResponse {
        let body = RequestBody::TransactionStatusRequest(TransactionStatusRequest {
            message_reference: MessageReference {
                message_category: MessageCategory::Reversal,
                ..MessageReference::payment(SALE_ID, of)
            },
        });
        match self.exchange(&format!("st{of}"), body).await.body {
            ResponseBody::TransactionStatus(status) => status,
            other => panic!("not a status answer: {other:?}"),
        }
    }

    /// Asks the status of `of` until it is no longer in progress (or, with `until_running`,
    /// until it is).
    async fn wait_status(&self, of: &str, until_running: bool) -> TransactionStatusResponse {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let status = self.status(of).await;
            let running = status.payment_status() == PaymentStatus::InProgress;
            if running == until_running {
                return status;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "status of {of} stuck: {status:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn reverse(&self, service_id: &str, transaction_id: &str) -> ReversalResponse {
        let body = RequestBody::ReversalRequest(ReversalRequest {
            original_poi_transaction: OriginalPoiTransaction {
                poi_transaction_id: firmware_protocols::nexo::messages::TransactionIdentification {
                    transaction_id: transaction_id.to_owned(),
                    time_stamp: "2026-01-01T00:00:00.000Z".to_owned(),
                },
            },
            reversal_reason: "MerchantCancel".to_owned(),
        });
        match self.exchange(service_id, body).await.body {
            ResponseBody::Reversal(reversal) => reversal,
            other => panic!("not a reversal answer: {other:?}"),
        }
    }
}

fn payment(reference: &str, amount_minor: u64, method: PaymentMethod) -> RequestBody {
    RequestBody::PaymentRequest(
        PaymentRequest::new(&PaymentInput {
            transaction_id: format!("P-{reference}"),
            timestamp: "2026-01-01T12:00:00.000Z".to_owned(),
            currency: "BRL".to_owned(),
            amount_minor_units: amount_minor,
            method,
        })
        .unwrap(),
    )
}

const CREDIT: PaymentMethod = PaymentMethod::Credit { installments: 1 };

fn poi_transaction(payment: &PaymentResponse) -> String {
    payment.poi_transaction().unwrap().transaction_id.clone()
}

#[tokio::test]
async fn approved_sales_carry_a_test_card_receipts_and_are_recorded() {
    let simulator = start(|_| {}).await;
    let client = simulator.client();

    let credit = client.pay("s1", 1000, CREDIT).await;
    assert_eq!(credit.response.result, ResultCode::Success);
    assert_eq!(credit.approval_code().map(str::len), Some(6));
    let transaction = credit.poi_transaction().unwrap();
    assert!(!transaction.transaction_id.is_empty() && !transaction.time_stamp.is_empty());
    let card = credit.card().unwrap();
    assert_eq!(card.payment_brand.as_deref(), Some("visa"));
    let pan = card.masked_pan.as_ref().unwrap();
    assert_eq!((pan.first6(), pan.last4()), ("411111", "1111"));
    let qualifiers: Vec<&str> = credit
        .payment_receipt
        .iter()
        .map(|receipt| receipt.document_qualifier.as_str())
        .collect();
    assert_eq!(qualifiers, ["CashierReceipt", "CustomerReceipt"]);
    assert!(
        credit.payment_receipt[0]
            .lines()
            .contains(&"APPROVED".to_owned())
    );

    let debit = client.pay("s2", 2590, PaymentMethod::Debit).await;
    let card = debit.card().unwrap();
    assert_eq!(card.payment_brand.as_deref(), Some("mc"));
    assert_eq!(card.masked_pan.as_ref().unwrap().last4(), "4444");
    let instalments = client
        .pay("s3", 30000, PaymentMethod::Credit { installments: 3 })
        .await;
    assert_eq!(instalments.response.result, ResultCode::Success);
    assert!(
        instalments
            .response
            .additional()
            .contains(&("installments".to_owned(), "3".to_owned()))
    );
    assert!(
        instalments.payment_receipt[1]
            .lines()
            .contains(&"Instalments: 3".to_owned())
    );
    assert_ne!(poi_transaction(&credit), poi_transaction(&debit));

    let record = simulator.record();
    assert_eq!(record.len(), 3);
    assert_eq!(
        record[0],
        serde_json::json!({"kind": "sale", "reference": "P-s1", "service_id": "s1",
            "amount_minor": 1000, "approved": true, "state": "approved"})
    );
    assert_eq!(record[1]["amount_minor"], 2590);
}

#[tokio::test]
async fn a_sale_ending_in_01_is_declined_by_the_issuer_and_02_cancelled_by_the_shopper() {
    let simulator = start(|_| {}).await;
    let client = simulator.client();

    let declined = client.pay("d1", 1001, CREDIT).await;
    assert_eq!(declined.response.result, ResultCode::Failure);
    assert_eq!(
        declined.response.error_condition,
        Some(ErrorCondition::Refusal)
    );
    assert!(
        declined
            .response
            .additional()
            .contains(&("refusalReason".to_owned(), "Refused".to_owned()))
    );
    assert_eq!(declined.card(), None);

    let cancelled = client.pay("d2", 1002, CREDIT).await;
    assert_eq!(
        cancelled.response.error_condition,
        Some(ErrorCondition::Cancel)
    );

    let states: Vec<(bool, String)> = simulator
        .record()
        .iter()
        .map(|line| {
            (
                line["approved"] == true,
                line["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            (false, "declined".to_owned()),
            (false, "declined".to_owned())
        ]
    );
}

#[tokio::test]
async fn a_sale_completes_when_the_connection_is_lost_and_its_status_repeats_it() {
    let simulator = start(|options| options.approve_after = Duration::from_secs(2)).await;
    let client = Arc::new(simulator.client());

    let paying = tokio::spawn({
        let client = Arc::clone(&client);
        async move { client.pay("lost1", 1500, CREDIT).await }
    });
    client.wait_status("lost1", true).await;
    // posbridge goes away mid-sale: its request (and connection) dropped before any answer.
    paying.abort();
    assert!(paying.await.unwrap_err().is_cancelled());

    let status = client.wait_status("lost1", false).await;
    let PaymentStatus::Found(payment) = status.payment_status() else {
        panic!("the sale was not kept: {status:?}");
    };
    assert_eq!(payment.response.result, ResultCode::Success);
    assert!(payment.approval_code().is_some());
    let repeated = status.repeated_message_response.as_ref().unwrap();
    assert_eq!(repeated.message_header.service_id.as_deref(), Some("lost1"));
    assert_eq!(
        repeated.message_header.message_category,
        MessageCategory::Payment
    );
    assert_eq!(simulator.record()[0]["state"], "approved");
}

#[tokio::test]
async fn status_of_a_service_id_never_taken_is_not_found() {
    let simulator = start(|_| {}).await;
    let status = simulator.client().status("nope").await;
    assert_eq!(status.payment_status(), PaymentStatus::NotFound);
}

#[tokio::test]
async fn abort_stops_a_sale_that_never_completes_and_a_second_sale_meanwhile_is_busy() {
    let simulator = start(|_| {}).await;
    let client = Arc::new(simulator.client());

    let paying = tokio::spawn({
        let client = Arc::clone(&client);
        async move { client.pay("never", 1003, CREDIT).await }
    });
    client.wait_status("never", true).await;
    assert_eq!(simulator.record()[0]["state"], "running");

    let busy = client.pay("second", 1000, CREDIT).await;
    assert_eq!(busy.response.error_condition, Some(ErrorCondition::Busy));

    let abort = RequestBody::AbortRequest(AbortRequest {
        message_reference: MessageReference::payment(SALE_ID, "never"),
        abort_reason: "MerchantAbort".to_owned(),
    });
    let (status, body) = client.post("ab1", abort).await.unwrap();
    assert_eq!((status, body.len()), (reqwest::StatusCode::OK, 0));

    let aborted = paying.await.unwrap();
    assert_eq!(aborted.response.result, ResultCode::Failure);
    assert_eq!(
        aborted.response.error_condition,
        Some(ErrorCondition::Aborted)
    );
    let status = client.status("never").await;
    assert!(
        matches!(status.payment_status(), PaymentStatus::Found(p) if p.response.error_condition == Some(ErrorCondition::Aborted))
    );
    let record = simulator.record();
    assert_eq!(record.len(), 1, "the busy payment is no sale: {record:?}");
    assert_eq!(
        (&record[0]["state"], &record[0]["approved"]),
        (&serde_json::json!("aborted"), &serde_json::json!(false))
    );
}

#[tokio::test]
async fn reversal_reverses_an_approved_sale_once_and_is_refused_for_06_and_unknown_ones() {
    let simulator = start(|_| {}).await;
    let client = simulator.client();

    let sale = client.pay("r1", 1000, CREDIT).await;
    let reversed = client.reverse("rv1", &poi_transaction(&sale)).await;
    assert_eq!(reversed.response.result, ResultCode::Success);
    assert!(reversed.poi_data.is_some());
    let again = client.reverse("rv2", &poi_transaction(&sale)).await;
    assert_eq!(again.response.result, ResultCode::Failure);

    let not_reversible = client.pay("r2", 1006, CREDIT).await;
    assert_eq!(not_reversible.response.result, ResultCode::Success);
    let refused = client
        .reverse("rv3", &poi_transaction(&not_reversible))
        .await;
    assert_eq!(
        refused.response.error_condition,
        Some(ErrorCondition::Refusal)
    );

    let unknown = client.reverse("rv4", "nosuch.0000000000000001").await;
    assert_eq!(
        unknown.response.error_condition,
        Some(ErrorCondition::NotFound)
    );

    let states: Vec<_> = simulator
        .record()
        .iter()
        .map(|line| line["state"].clone())
        .collect();
    assert_eq!(
        states,
        [serde_json::json!("reversed"), serde_json::json!("approved")]
    );
    assert_eq!(simulator.record()[0]["approved"], true);
}

/// A reversal whose answer was lost is found by `TransactionStatus` under its own
/// `ServiceID`, with the answer it had (posbridge never sends it twice blindly).
#[tokio::test]
async fn status_of_a_reversal_repeats_its_answer_by_its_service_id() {
    let simulator = start(|_| {}).await;
    let client = simulator.client();
    let sale = client.pay("r5", 1000, CREDIT).await;
    let reversed = client.reverse("rv5", &poi_transaction(&sale)).await;
    let status = client.reversal_status("rv5").await;
    assert_eq!(status.response.result, ResultCode::Success, "{status:?}");
    let repeated = status.repeated_message_response.as_ref().unwrap();
    assert_eq!(repeated.message_header.service_id.as_deref(), Some("rv5"));
    assert_eq!(
        repeated.repeated_response_message_body.reversal_response,
        Some(reversed)
    );
    assert_eq!(
        client.reversal_status("rv6").await.payment_status(),
        PaymentStatus::NotFound,
        "never sent"
    );
    assert_eq!(
        client.status("rv5").await.payment_status(),
        PaymentStatus::NotFound,
        "a reversal is no payment"
    );
}

#[tokio::test]
async fn diagnosis_answers_ok_and_the_bad_hmac_fault_breaks_one_answer() {
    let simulator = start(|options| options.faults = vec![FaultKind::BadHmac]).await;
    let client = simulator.client();
    let diagnosis = || RequestBody::DiagnosisRequest(DiagnosisRequest::default());

    let (status, broken) = client.post("dg1", diagnosis()).await.unwrap();
    assert_eq!(status, reqwest::StatusCode::OK);
    assert_eq!(
        open_incoming(&broken, &client.key),
        Err(ReadError::Open(OpenError::Crypto))
    );

    let answer = client.exchange("dg2", diagnosis()).await;
    let ResponseBody::Diagnosis(diagnosis) = answer.body else {
        panic!("not a diagnosis: {answer:?}");
    };
    assert_eq!(diagnosis.response.result, ResultCode::Success);
    assert_eq!(diagnosis.poi_status.unwrap().global_status, "OK");
}

#[tokio::test]
async fn drop_answer_charges_then_closes_the_connection_without_an_answer() {
    let simulator = start(|options| options.faults = vec![FaultKind::DropAnswer]).await;
    let client = simulator.client();

    let lost = client.post("da1", payment("da1", 1000, CREDIT)).await;
    assert!(lost.is_err(), "an answer came: {lost:?}");
    let status = client.status("da1").await;
    assert!(
        matches!(status.payment_status(), PaymentStatus::Found(p) if p.response.result == ResultCode::Success)
    );
    assert_eq!(simulator.record()[0]["state"], "approved");

    // Applied once: the next sale is answered.
    let next = client.pay("da2", 1000, CREDIT).await;
    assert_eq!(next.response.result, ResultCode::Success);
}

#[tokio::test]
async fn offline_closes_the_next_connection_at_once_and_nothing_is_charged() {
    let simulator = start(|options| options.faults = vec![FaultKind::Offline]).await;
    let client = simulator.client();

    let refused = client.post("of1", payment("of1", 1000, CREDIT)).await;
    assert!(refused.is_err(), "an answer came: {refused:?}");
    assert_eq!(
        client.status("of1").await.payment_status(),
        PaymentStatus::NotFound
    );
    assert_eq!(
        client.pay("of2", 1000, CREDIT).await.response.result,
        ResultCode::Success
    );
    assert_eq!(simulator.record().len(), 1);
}

#[tokio::test]
async fn a_request_under_another_key_gets_the_crypto_error_a_terminal_gives() {
    let simulator = start(|_| {}).await;

    let (status, body) = simulator
        .client_with(PASSPHRASE, "another-key", "test")
        .post("k1", payment("k1", 1000, CREDIT))
        .await
        .unwrap();
    assert_eq!(status, reqwest::StatusCode::UNAUTHORIZED);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
        serde_json::json!({"errors": ["Nexo Service: crypto error (2)"], "ServiceID": "k1"})
    );

    let (status, body) = simulator
        .client_with(b"wrong passphrase", "posbridge", "test")
        .post("k2", payment("k2", 1000, CREDIT))
        .await
        .unwrap();
    assert_eq!(status, reqwest::StatusCode::UNAUTHORIZED);
    assert!(String::from_utf8_lossy(&body).contains("Nexo Service: crypto error (9)"));

    let client = simulator.client();
    let clear = client
        .http
        .post(&client.url)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(clear.status(), reqwest::StatusCode::UNAUTHORIZED);
    assert!(clear.text().await.unwrap().contains("crypto error (1)"));

    assert!(simulator.record().is_empty(), "nothing may be charged");
}

#[tokio::test]
async fn the_certificate_carries_the_terminal_name_for_its_environment_only() {
    let simulator = start(|_| {}).await;
    let live = simulator.client_with(PASSPHRASE, "posbridge", "live");
    let error = live
        .post(
            "n1",
            RequestBody::DiagnosisRequest(DiagnosisRequest::default()),
        )
        .await
        .unwrap_err();
    assert!(error.is_connect(), "{error:?}");
    let pem = std::fs::read_to_string(&simulator.ca_file).unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
}

#[tokio::test]
async fn a_request_it_does_not_serve_is_rejected_with_a_sealed_event() {
    let simulator = start(|_| {}).await;
    let client = simulator.client();
    let display = RequestBody::DisplayRequest(DisplayRequest {
        display_output: Vec::new(),
    });
    let (status, body) = client.post("ds1", display).await.unwrap();
    assert_eq!(status, reqwest::StatusCode::OK);
    let Incoming::Request(notification) = open_incoming(&body, &client.key).unwrap() else {
        panic!("not an event");
    };
    let RequestBody::EventNotification(event) = notification.body else {
        panic!("not an event: {notification:?}");
    };
    assert_eq!(event.event_to_notify, "Reject");
}

#[test]
fn notifications_go_over_plain_http_to_loopback_only() {
    for accepted in [
        "http://127.0.0.1:8080/nexo/notifications",
        "http://[::1]:8080/nexo/notifications",
    ] {
        assert!(notify_url(accepted).is_ok(), "{accepted}");
    }
    for refused in [
        "https://127.0.0.1:8443/nexo/notifications",
        "http://192.0.2.7:8080/nexo/notifications",
        "http://localhost:8080/nexo/notifications",
        "not a url",
    ] {
        assert!(notify_url(refused).is_err(), "{refused}");
    }
}
