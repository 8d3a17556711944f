//! The driver against a scripted Adyen terminal inside the test: real TLS on 127.0.0.1 (a CA
//! and a terminal certificate made here), messages sealed and opened with the codec. Each
//! request the terminal gets is recorded and answered as the test scripted it.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use firmware_protocols::nexo::crypto::Direction;
use firmware_protocols::nexo::messages::{
    ErrorCondition, MessageHeader, MessageType, PoiStatus, RepeatedMessageResponse,
    RepeatedResponseMessageBody, Response, ResponseStatus, ReversalResponse,
};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use reqwest::Url;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::{broadcast, watch};

use super::*;
use crate::clock::SystemClock;
use crate::money::Currency;

const POI: &str = "V400m-324688179";
const SALE_ID: &str = "store-1-lane-4";
const PASSPHRASE: &str = "a test passphrase";

fn key_identity() -> KeyIdentity {
    KeyIdentity {
        key_identifier: "posbridge".into(),
        key_version: 1,
    }
}

fn test_name(poi: &str) -> String {
    format!("{poi}.test.terminal.adyen.com")
}

/// A certificate authority made for one test.
fn authority(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("ca")
}

fn leaf_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::new(vec![name.to_string()]).expect("params");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params
}

/// What the scripted terminal does with a request.
enum Act {
    /// Answers with the body made from the request, sealed under the shared key.
    Answer(Box<dyn Fn(&Request) -> ResponseBody + Send>),
    /// The same, with a broken HMAC.
    TamperedAnswer(Box<dyn Fn(&Request) -> ResponseBody + Send>),
    /// The same, sealed under another key identity.
    OtherKeyAnswer(Box<dyn Fn(&Request) -> ResponseBody + Send>),
    /// Reads the request, closes the connection without answering.
    Close,
    /// Keeps the connection open and never answers.
    Stall,
    /// 200 with an empty body (local mode's answer to an abort).
    Acknowledge,
    /// An error status with a clear text, as for a request it cannot decrypt.
    Refuse(u16, &'static str),
}

fn answer(f: impl Fn(&Request) -> ResponseBody + Send + 'static) -> Act {
    Act::Answer(Box::new(f))
}

struct ScriptedTerminal {
    addr: SocketAddr,
    ca_pem: String,
    received: Arc<Mutex<Vec<Request>>>,
    count: watch::Receiver<usize>,
}

impl ScriptedTerminal {
    /// A terminal whose certificate carries `name`, signed by a CA of its own.
    async fn start(name: &str, acts: Vec<Act>) -> Self {
        let ca = authority("scripted terminal root");
        let leaf_key = KeyPair::generate().expect("key");
        let leaf = leaf_params(name).signed_by(&leaf_key, &ca).expect("leaf");
        Self::serve(leaf.der().clone(), &leaf_key, ca.pem(), acts).await
    }

    /// A terminal whose certificate for `name` is signed by itself (what a simulator writes
    /// for the tests): that certificate is the trust anchor.
    async fn start_self_signed(name: &str, acts: Vec<Act>) -> Self {
        let key = KeyPair::generate().expect("key");
        let certificate = leaf_params(name).self_signed(&key).expect("certificate");
        Self::serve(certificate.der().clone(), &key, certificate.pem(), acts).await
    }

    async fn serve(
        certificate: CertificateDer<'static>,
        key: &KeyPair,
        ca_pem: String,
        acts: Vec<Act>,
    ) -> Self {
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS12])
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![certificate],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let received = Arc::new(Mutex::new(Vec::new()));
        let (count_tx, count) = watch::channel(0);
        let script = Arc::new(Mutex::new(VecDeque::from(acts)));
        let log = received.clone();
        tokio::spawn(async move {
            let key = KeyMaterial::derive(PASSPHRASE.as_bytes());
            let count_tx = Arc::new(count_tx);
            while let Ok((tcp, _)) = listener.accept().await {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    continue;
                };
                let Some(body) = read_http_body(&mut tls).await else {
                    continue;
                };
                let opened = crypto::open(&body, &key).expect("posbridge seals its requests");
                let request = Request::from_json(&opened.plaintext).expect("a request");
                let act = script.lock().expect("script").pop_front();
                log.lock().expect("log").push(request.clone());
                count_tx.send_modify(|n| *n += 1);
                let (status, reply) = match act {
                    Some(Act::Answer(f)) => (200, seal(&request, f(&request), &key, None)),
                    Some(Act::TamperedAnswer(f)) => {
                        let sealed = seal(&request, f(&request), &key, None);
                        let mut value: serde_json::Value =
                            serde_json::from_slice(&sealed).expect("json");
                        value["SaleToPOIResponse"]["SecurityTrailer"]["Hmac"] =
                            json!(format!("{}=", "A".repeat(43)));
                        (200, serde_json::to_vec(&value).expect("json"))
                    }
                    Some(Act::OtherKeyAnswer(f)) => {
                        let other = KeyIdentity {
                            key_identifier: "someone-else".into(),
                            key_version: 7,
                        };
                        (200, seal(&request, f(&request), &key, Some(other)))
                    }
                    Some(Act::Acknowledge) => (200, Vec::new()),
                    Some(Act::Refuse(status, text)) => (status, text.as_bytes().to_vec()),
                    Some(Act::Stall) => {
                        tokio::spawn(async move {
                            let _held = tls;
                            std::future::pending::<()>().await;
                        });
                        continue;
                    }
                    Some(Act::Close) | None => continue,
                };
                let head = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    reply.len()
                );
                let _ = tls.write_all(head.as_bytes()).await;
                let _ = tls.write_all(&reply).await;
                let _ = tls.shutdown().await;
            }
        });
        Self {
            addr,
            ca_pem,
            received,
            count,
        }
    }

    fn received(&self) -> Vec<Request> {
        self.received.lock().expect("log").clone()
    }

    fn categories(&self) -> Vec<MessageCategory> {
        self.received()
            .iter()
            .map(|r| r.header.message_category)
            .collect()
    }

    /// Waits until the terminal has got `n` requests.
    async fn wait_for(&self, n: usize) {
        let mut count = self.count.clone();
        count.wait_for(|got| *got >= n).await.expect("terminal");
    }

    fn url(&self) -> Url {
        Url::parse(&format!("https://{}/nexo", self.addr)).expect("url")
    }
}

/// The body of one HTTP/1.1 request (by its Content-Length).
async fn read_http_body(
    tls: &mut tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
) -> Option<Vec<u8>> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..end]).to_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())?;
            let start = end + 4;
            while buffer.len() < start + length {
                let n = tls.read(&mut chunk).await.ok()?;
                if n == 0 {
                    return None;
                }
                buffer.extend_from_slice(&chunk[..n]);
            }
            return Some(buffer[start..start + length].to_vec());
        }
        let n = tls.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
}

fn seal(
    request: &Request,
    body: ResponseBody,
    key: &KeyMaterial,
    identity: Option<KeyIdentity>,
) -> Vec<u8> {
    let header = MessageHeader {
        message_type: MessageType::Response,
        ..request.header.clone()
    };
    let plaintext = Response {
        header: header.clone(),
        body,
    }
    .to_json()
    .expect("json");
    crypto::seal(
        Direction::Response,
        &header,
        &plaintext,
        key,
        &identity.unwrap_or_else(key_identity),
    )
    .expect("seal")
}

const POI_TRANSACTION: &str = "BV0q001234567890";
const POI_TIME: &str = "2026-11-30T12:00:00.000Z";

fn approved_payment() -> PaymentResponse {
    serde_json::from_value(json!({
        "Response": {"Result": "Success", "AdditionalResponse": "message=APPROVED"},
        "POIData": {"POITransactionID": {"TransactionID": POI_TRANSACTION, "TimeStamp": POI_TIME}},
        "PaymentResult": {
            "PaymentAcquirerData": {"ApprovalCode": "123456"},
            "PaymentInstrumentData": {"CardData": {"PaymentBrand": "mc", "MaskedPan": "555555 **** 4444"}}
        },
        "PaymentReceipt": [{
            "DocumentQualifier": "CashierReceipt",
            "OutputContent": {"OutputText": [{"Text": "name=Card&value=5555555555554444&key=pan"}]}
        }]
    }))
    .expect("payment response")
}

fn failed_payment(condition: &str, reason: &str) -> PaymentResponse {
    serde_json::from_value(json!({
        "Response": {
            "Result": "Failure",
            "ErrorCondition": condition,
            "AdditionalResponse": format!("refusalReason={reason}")
        }
    }))
    .expect("payment response")
}

fn approve() -> Act {
    answer(|_| ResponseBody::Payment(approved_payment()))
}

fn status(result: ResultCode, condition: Option<ErrorCondition>) -> ResponseStatus {
    ResponseStatus {
        result,
        error_condition: condition,
        additional_response: None,
    }
}

/// The ServiceID a status or abort request names.
fn referenced(request: &Request) -> String {
    let reference = match &request.body {
        RequestBody::TransactionStatusRequest(r) => &r.message_reference,
        RequestBody::AbortRequest(r) => &r.message_reference,
        other => panic!("not a request about another: {other:?}"),
    };
    reference.service_id.clone().expect("ServiceID")
}

/// `TransactionStatus`: found, with the payment's own answer.
fn status_found(payment: PaymentResponse) -> Act {
    answer(move |request| {
        ResponseBody::TransactionStatus(TransactionStatusResponse {
            response: status(ResultCode::Success, None),
            message_reference: None,
            repeated_message_response: Some(Box::new(RepeatedMessageResponse {
                message_header: MessageHeader {
                    message_category: MessageCategory::Payment,
                    message_type: MessageType::Response,
                    service_id: Some(referenced(request)),
                    ..request.header.clone()
                },
                repeated_response_message_body: RepeatedResponseMessageBody {
                    payment_response: Some(payment.clone()),
                    reversal_response: None,
                },
            })),
        })
    })
}

fn status_failure(condition: ErrorCondition) -> Act {
    answer(move |_| {
        ResponseBody::TransactionStatus(TransactionStatusResponse {
            response: status(ResultCode::Failure, Some(condition)),
            message_reference: None,
            repeated_message_response: None,
        })
    })
}

struct Rig {
    dir: tempfile::TempDir,
    terminal: ScriptedTerminal,
}

impl Rig {
    async fn new(acts: Vec<Act>) -> Rig {
        Rig {
            dir: tempfile::tempdir().expect("tempdir"),
            terminal: ScriptedTerminal::start(&test_name(POI), acts).await,
        }
    }

    fn journal(&self) -> PathBuf {
        self.dir.path().join("nexo-lane-4.journal")
    }

    /// A driver that expects the certificate name `name`, trusting `ca_pem`.
    fn driver_for(&self, name: &str, ca_pem: &str) -> NexoDriver {
        let roots = CertificateDer::pem_slice_iter(ca_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .expect("ca");
        let connection = Connection::new(self.terminal.url(), roots, name).expect("connection");
        let mut driver = NexoDriver::new(
            "lane-4",
            TerminalIdentity {
                sale_id: SALE_ID.into(),
                poi_id: POI.into(),
                key: KeyMaterial::derive(PASSPHRASE.as_bytes()),
                key_identity: key_identity(),
            },
            connection,
            Duration::from_secs(30),
            self.journal(),
            Arc::new(SystemClock),
        )
        .expect("driver");
        // The in-progress backoff is a poll interval: short, so the test is not slow.
        driver.in_progress_poll = (Duration::from_millis(5), Duration::from_millis(20));
        driver
    }

    fn driver(&self) -> NexoDriver {
        self.driver_for(&test_name(POI), &self.terminal.ca_pem)
    }

    fn journal_text(&self) -> String {
        std::fs::read_to_string(self.journal()).unwrap_or_default()
    }
}

fn prompts() -> PromptSink {
    PromptSink::new("lane-4", broadcast::channel(16).0)
}

fn sale(reference: &str, function: CardFunction, installments: Option<i64>) -> SaleRequest {
    SaleRequest {
        reference: reference.to_string(),
        amount_minor: 1000,
        currency: Currency::parse("BRL").expect("BRL"),
        function,
        installments,
    }
}

async fn charge(
    driver: &mut NexoDriver,
    request: &SaleRequest,
) -> Result<SaleOutcome, DriverError> {
    driver
        .sale(request, &prompts(), &CancellationToken::new())
        .await
}

fn payment_of(request: &Request) -> &PaymentRequest {
    match &request.body {
        RequestBody::PaymentRequest(p) => p,
        other => panic!("not a payment: {other:?}"),
    }
}

#[tokio::test]
async fn an_approved_payment_maps_its_fields_and_journals_before_and_after() {
    let rig = Rig::new(vec![approve()]).await;
    let mut driver = rig.driver();
    let outcome = charge(&mut driver, &sale("pay-1", CardFunction::Credit, None))
        .await
        .expect("outcome");
    let SaleOutcome::Approved(approval) = outcome else {
        panic!("not approved: {outcome:?}");
    };
    assert_eq!(approval.authorization_code, "123456");
    assert_eq!(approval.nsu, POI_TRANSACTION);
    assert_eq!(approval.terminal_ref, POI_TRANSACTION);
    assert_eq!(approval.card_brand, "mc");
    assert_eq!(
        (
            approval.first_digits.as_str(),
            approval.last_digits.as_str()
        ),
        ("555555", "4444")
    );
    assert_eq!(approval.receipts.len(), 1);
    assert_eq!(approval.receipts[0].kind, ReceiptKind::Merchant);
    assert_eq!(approval.receipts[0].lines, ["Card: 555555******4444"]);

    let received = rig.terminal.received();
    assert_eq!(received.len(), 1);
    let header = &received[0].header;
    assert_eq!(
        (header.sale_id.as_str(), header.poi_id.as_str()),
        (SALE_ID, POI)
    );
    let service_id = header.service_id.clone().expect("ServiceID");
    assert!((1..=10).contains(&service_id.len()), "{service_id}");
    let payment = payment_of(&received[0]);
    assert_eq!(
        payment.sale_data.sale_transaction_id.transaction_id,
        "pay-1"
    );
    assert_eq!(
        payment
            .payment_transaction
            .amounts_req
            .requested_amount
            .as_str(),
        "10.00"
    );
    assert!(payment.payment_transaction.transaction_conditions.is_none());
    assert!(payment.payment_data.is_none());

    let journal = rig.journal_text();
    let lines: Vec<&str> = journal.lines().collect();
    assert_eq!(lines.len(), 2, "{journal}");
    assert!(
        lines[0].contains("\"kind\":\"sale\"") && lines[0].contains(&service_id),
        "{journal}"
    );
    assert!(lines[1].contains("\"kind\":\"result\""), "{journal}");
    assert!(!journal.contains("5555555555554444"), "{journal}");
    assert_eq!(
        driver.sent().expect("sent"),
        vec![SentRecord {
            reference: "pay-1".into(),
            amount_minor: Some(1000),
            at_ms: driver.exchanges[0].at,
        }]
    );
}

#[tokio::test]
async fn a_declined_payment_carries_the_error_condition_and_the_reason() {
    let rig = Rig::new(vec![answer(|_| {
        ResponseBody::Payment(failed_payment("Refusal", "NOT ENOUGH BALANCE"))
    })])
    .await;
    let mut driver = rig.driver();
    let outcome = charge(&mut driver, &sale("pay-1", CardFunction::Credit, None))
        .await
        .expect("outcome");
    assert_eq!(
        outcome,
        SaleOutcome::Declined {
            code: "Refusal".into(),
            message: "NOT ENOUGH BALANCE".into(),
            receipts: Vec::new(),
        }
    );
}

#[tokio::test]
async fn debit_sets_the_debit_flag_and_installments_ask_for_equal_monthly_payments() {
    let rig = Rig::new(vec![approve(), approve()]).await;
    let mut driver = rig.driver();
    charge(&mut driver, &sale("pay-debit", CardFunction::Debit, None))
        .await
        .expect("debit");
    charge(&mut driver, &sale("pay-3x", CardFunction::Credit, Some(3)))
        .await
        .expect("installments");
    let received = rig.terminal.received();
    let debit = payment_of(&received[0]);
    assert_eq!(
        debit
            .payment_transaction
            .transaction_conditions
            .as_ref()
            .and_then(|c| c.debit_preferred_flag),
        Some(true)
    );
    assert!(debit.payment_data.is_none());
    let instalments = payment_of(&received[1]);
    let data = instalments.payment_data.as_ref().expect("PaymentData");
    assert_eq!(data.payment_type, "Instalment");
    let plan = data.instalment.as_ref().expect("Instalment");
    assert_eq!(plan.total_nb_of_payments, 3);
    assert_eq!(plan.instalment_type, "EqualInstalments");
    assert_eq!(plan.period_unit, "Monthly");
}

/// The answer is lost (the connection closes after the request): the payment is never sent
/// again, only asked about by its ServiceID.
async fn lost_answer_then(acts: Vec<Act>) -> (Rig, Result<SaleOutcome, DriverError>) {
    let mut script = vec![Act::Close];
    script.extend(acts);
    let rig = Rig::new(script).await;
    let mut driver = rig.driver();
    let outcome = charge(&mut driver, &sale("pay-1", CardFunction::Credit, None)).await;
    let received = rig.terminal.received();
    let payment_service = received[0].header.service_id.clone();
    for asked in &received[1..] {
        assert_eq!(
            asked.header.message_category,
            MessageCategory::TransactionStatus
        );
        assert_eq!(Some(referenced(asked)), payment_service);
    }
    (rig, outcome)
}

#[tokio::test]
async fn a_lost_answer_found_by_transaction_status_is_its_result() {
    let (rig, outcome) = lost_answer_then(vec![status_found(approved_payment())]).await;
    assert!(
        matches!(&outcome, Ok(SaleOutcome::Approved(a)) if a.terminal_ref == POI_TRANSACTION),
        "{outcome:?}"
    );
    assert_eq!(
        rig.terminal.categories(),
        [MessageCategory::Payment, MessageCategory::TransactionStatus]
    );
}

#[tokio::test]
async fn a_lost_answer_the_terminal_never_had_is_denied() {
    let (rig, outcome) = lost_answer_then(vec![status_failure(ErrorCondition::NotFound)]).await;
    assert_eq!(
        outcome,
        Ok(SaleOutcome::declined(
            "no-transaction",
            "the terminal has no record of the sale"
        ))
    );
    let mut driver = rig.driver();
    let inquiry = SaleInquiry {
        reference: "pay-1".into(),
        amount_minor: 1000,
        currency: "BRL".into(),
        sent_at_ms: 0,
        cancel_requested: false,
    };
    assert_eq!(
        driver.query_sale(&inquiry).await,
        Ok(SaleQuery::NotFound),
        "from the journal, after a restart"
    );
    assert_eq!(rig.terminal.received().len(), 2);
}

#[tokio::test]
async fn a_lost_answer_in_progress_is_asked_again_until_found() {
    let (rig, outcome) = lost_answer_then(vec![
        status_failure(ErrorCondition::InProgress),
        status_failure(ErrorCondition::InProgress),
        status_found(failed_payment("Refusal", "DECLINED")),
    ])
    .await;
    assert!(
        matches!(&outcome, Ok(SaleOutcome::Declined { code, .. }) if code == "Refusal"),
        "{outcome:?}"
    );
    assert_eq!(rig.terminal.received().len(), 4);
}

#[tokio::test]
async fn an_answer_failing_its_hmac_or_under_another_key_is_checked_by_transaction_status() {
    let bad_hmac = Act::TamperedAnswer(Box::new(|_| ResponseBody::Payment(approved_payment())));
    let (_, outcome) =
        lost_answer_then_with(bad_hmac, status_failure(ErrorCondition::NotFound)).await;
    assert!(
        matches!(&outcome, Ok(SaleOutcome::Declined { code, .. }) if code == "no-transaction"),
        "a tampered approval is not believed: {outcome:?}"
    );
    let other_key = Act::OtherKeyAnswer(Box::new(|_| ResponseBody::Payment(approved_payment())));
    let (_, outcome) = lost_answer_then_with(other_key, status_found(approved_payment())).await;
    assert!(
        matches!(&outcome, Ok(SaleOutcome::Approved(_))),
        "{outcome:?}"
    );
}

async fn lost_answer_then_with(first: Act, then: Act) -> (Rig, Result<SaleOutcome, DriverError>) {
    let rig = Rig::new(vec![first, then]).await;
    let mut driver = rig.driver();
    let outcome = charge(&mut driver, &sale("pay-1", CardFunction::Credit, None)).await;
    assert_eq!(
        rig.terminal.categories(),
        [MessageCategory::Payment, MessageCategory::TransactionStatus]
    );
    (rig, outcome)
}

#[tokio::test]
async fn a_request_the_terminal_cannot_decrypt_is_not_sent_and_says_so() {
    let rig = Rig::new(vec![Act::Refuse(
        500,
        r#"{"errors":["Nexo Service: crypto error (9)"],"ServiceID":"-NULL-"}"#,
    )])
    .await;
    let mut driver = rig.driver();
    let error = charge(&mut driver, &sale("pay-1", CardFunction::Credit, None))
        .await
        .expect_err("refused");
    let DriverError::NotSent(why) = &error else {
        panic!("{error:?}");
    };
    assert!(
        why.contains("crypto error") && why.contains("passphrase"),
        "{why}"
    );
    assert!(rig.journal_text().contains("\"kind\":\"not-sent\""));
    assert!(driver.sent().expect("sent").is_empty());
}

#[tokio::test]
async fn a_client_error_status_is_a_refusal_not_a_key_problem() {
    let rig = Rig::new(vec![Act::Refuse(404, "no such endpoint")]).await;
    let mut driver = rig.driver();
    let error = charge(&mut driver, &sale("pay-1", CardFunction::Credit, None))
        .await
        .expect_err("refused");
    let DriverError::NotSent(why) = &error else {
        panic!("{error:?}");
    };
    assert!(
        why.contains("HTTP 404") && !why.contains("passphrase"),
        "{why}"
    );
    assert!(driver.sent().expect("sent").is_empty());
}

/// A server error that is not the terminal's own refusal may come after the sale started: the
/// terminal is asked, never the sale called not sent.
#[tokio::test]
async fn a_server_error_without_the_terminals_error_document_is_asked_about() {
    let rig = Rig::new(vec![
        Act::Refuse(502, "<html>bad gateway</html>"),
        status_found(approved_payment()),
    ])
    .await;
    let mut driver = rig.driver();
    let outcome = charge(&mut driver, &sale("pay-1", CardFunction::Credit, None)).await;
    assert!(
        matches!(outcome, Ok(SaleOutcome::Approved(_))),
        "{outcome:?}"
    );
    assert_eq!(
        rig.terminal.categories(),
        [MessageCategory::Payment, MessageCategory::TransactionStatus]
    );
}

#[tokio::test]
async fn a_cancel_while_charging_aborts_then_asks_transaction_status() {
    let rig = Rig::new(vec![
        Act::Stall,
        Act::Acknowledge,
        status_found(failed_payment("Aborted", "Merchant abort")),
    ])
    .await;
    let mut driver = rig.driver();
    let abort = CancellationToken::new();
    let request = sale("pay-1", CardFunction::Credit, None);
    let cancel = async {
        rig.terminal.wait_for(1).await;
        abort.cancel();
    };
    let prompts = prompts();
    let (outcome, ()) = tokio::join!(driver.sale(&request, &prompts, &abort), cancel);
    assert!(
        matches!(&outcome, Ok(SaleOutcome::Declined { code, .. }) if code == "Aborted"),
        "{outcome:?}"
    );
    let received = rig.terminal.received();
    assert_eq!(
        rig.terminal.categories(),
        [
            MessageCategory::Payment,
            MessageCategory::Abort,
            MessageCategory::TransactionStatus
        ]
    );
    assert_eq!(
        Some(referenced(&received[1])),
        received[0].header.service_id
    );
}

#[tokio::test]
async fn a_reversal_names_the_poi_transaction_and_is_journaled() {
    let rig = Rig::new(vec![
        approve(),
        answer(|_| {
            ResponseBody::Reversal(ReversalResponse {
                response: status(ResultCode::Success, None),
                poi_data: None,
            })
        }),
    ])
    .await;
    let mut driver = rig.driver();
    charge(&mut driver, &sale("pay-1", CardFunction::Credit, None))
        .await
        .expect("approved");
    let reversal = OperationRequest {
        reference: "op-1".into(),
        sale_ref: POI_TRANSACTION.into(),
        sale_amount_minor: 1000,
        sale_at_ms: 0,
        amount_minor: 1000,
        currency: "BRL".into(),
    };
    let partial = OperationRequest {
        amount_minor: 400,
        ..reversal.clone()
    };
    assert!(matches!(
        driver.reverse(&partial).await,
        Ok(OperationOutcome::Unsupported(_))
    ));
    assert_eq!(driver.reverse(&reversal).await, Ok(OperationOutcome::Done));
    let received = rig.terminal.received();
    let RequestBody::ReversalRequest(sent) = &received[1].body else {
        panic!("not a reversal: {:?}", received[1]);
    };
    assert_eq!(
        sent.original_poi_transaction.poi_transaction_id,
        TransactionIdentification {
            transaction_id: POI_TRANSACTION.into(),
            time_stamp: POI_TIME.into(),
        }
    );
    // Known from the journal: neither asked nor sent again, also after a restart.
    let mut restarted = rig.driver();
    assert_eq!(
        restarted.query_operation("op-1").await,
        Ok(OperationQuery::Done)
    );
    assert_eq!(
        restarted.reverse(&reversal).await,
        Ok(OperationOutcome::Done)
    );
    assert_eq!(rig.terminal.received().len(), 2);
    assert!(rig.journal_text().contains("\"kind\":\"reversal\""));
    let references: Vec<String> = restarted
        .sent()
        .expect("sent")
        .into_iter()
        .map(|s| s.reference)
        .collect();
    assert_eq!(references, ["pay-1", "op-1"]);
}

#[tokio::test]
async fn after_a_crash_mid_sale_the_unsettled_payment_is_asked_about_before_anything_else() {
    let rig = Rig::new(vec![status_found(approved_payment()), approve()]).await;
    {
        // The daemon journaled the payment and was killed before its answer.
        let mut crashed = rig.driver();
        crashed
            .record(Entry::Sale {
                service_id: "OLD0000001".into(),
                reference: "pay-old".into(),
                amount_minor: 1000,
                currency: "BRL".into(),
                at: 1,
            })
            .expect("journal");
    }
    let mut driver = rig.driver();
    charge(&mut driver, &sale("pay-new", CardFunction::Credit, None))
        .await
        .expect("new sale");
    let received = rig.terminal.received();
    assert_eq!(
        rig.terminal.categories(),
        [MessageCategory::TransactionStatus, MessageCategory::Payment]
    );
    assert_eq!(referenced(&received[0]), "OLD0000001");
    let inquiry = SaleInquiry {
        reference: "pay-old".into(),
        amount_minor: 1000,
        currency: "BRL".into(),
        sent_at_ms: 1,
        cancel_requested: false,
    };
    assert!(matches!(
        driver.query_sale(&inquiry).await,
        Ok(SaleQuery::Completed(SaleOutcome::Approved(_)))
    ));
    assert_eq!(
        rig.terminal.received().len(),
        2,
        "answered from the journal"
    );
}

#[tokio::test]
async fn an_unsettled_payment_still_in_progress_holds_back_a_new_one() {
    let rig = Rig::new(vec![status_failure(ErrorCondition::InProgress)]).await;
    rig.driver()
        .record(Entry::Sale {
            service_id: "OLD0000001".into(),
            reference: "pay-old".into(),
            amount_minor: 1000,
            currency: "BRL".into(),
            at: 1,
        })
        .expect("journal");
    let mut driver = rig.driver();
    let error = charge(&mut driver, &sale("pay-new", CardFunction::Credit, None))
        .await
        .expect_err("held back");
    assert!(
        matches!(&error, DriverError::NotSent(why) if why.contains("pay-old")),
        "{error:?}"
    );
    assert_eq!(
        rig.terminal.categories(),
        [MessageCategory::TransactionStatus]
    );
}

#[tokio::test]
async fn diagnosis_is_the_probe() {
    let rig = Rig::new(vec![answer(|_| {
        ResponseBody::Diagnosis(firmware_protocols::nexo::messages::DiagnosisResponse {
            response: status(ResultCode::Success, None),
            poi_status: Some(PoiStatus {
                global_status: "OK".into(),
            }),
        })
    })])
    .await;
    assert_eq!(
        rig.driver().probe().await,
        Ok("the terminal answered Diagnosis: OK".to_string())
    );
}

async fn probe_refused(rig: &Rig, name: &str, ca_pem: &str) -> String {
    let error = rig
        .driver_for(name, ca_pem)
        .probe()
        .await
        .expect_err("refused");
    assert!(rig.terminal.received().is_empty(), "nothing was sent");
    error.to_string()
}

#[tokio::test]
async fn a_certificate_for_another_name_is_refused() {
    let rig = Rig::new(Vec::new()).await;
    let ca = rig.terminal.ca_pem.clone();
    let live = format!("{POI}.live.terminal.adyen.com");
    let error = probe_refused(&rig, &live, &ca).await;
    assert!(
        error.contains("not connected") && error.contains(&live),
        "a test certificate on a live setting: {error}"
    );
    let other = test_name("P400Plus-275000001");
    let error = probe_refused(&rig, &other, &ca).await;
    assert!(error.contains(&other), "another POIID: {error}");
}

#[tokio::test]
async fn a_certificate_the_trust_anchor_did_not_sign_is_refused() {
    let rig = Rig::new(Vec::new()).await;
    let stranger = authority("another root").pem();
    let error = probe_refused(&rig, &test_name(POI), &stranger).await;
    assert!(error.contains("certificate"), "{error}");
    let mut driver = rig.driver_for(&test_name(POI), &stranger);
    let error = charge(&mut driver, &sale("pay-1", CardFunction::Credit, None))
        .await
        .expect_err("not sent");
    assert!(matches!(error, DriverError::NotSent(_)), "{error:?}");
    assert!(rig.terminal.received().is_empty());
}

#[tokio::test]
async fn a_cancel_while_the_lost_answer_is_in_progress_aborts_it_once() {
    let rig = Rig::new(vec![
        Act::Close,
        status_failure(ErrorCondition::InProgress),
        Act::Acknowledge,
        status_found(failed_payment("Aborted", "Merchant abort")),
    ])
    .await;
    let mut driver = rig.driver();
    // A poll long enough that the abort, not the next question, comes first.
    driver.in_progress_poll = (Duration::from_secs(30), Duration::from_secs(30));
    let abort = CancellationToken::new();
    let request = sale("pay-1", CardFunction::Credit, None);
    let cancel = async {
        rig.terminal.wait_for(2).await;
        abort.cancel();
    };
    let prompts = prompts();
    let (outcome, ()) = tokio::join!(driver.sale(&request, &prompts, &abort), cancel);
    assert!(
        matches!(&outcome, Ok(SaleOutcome::Declined { code, .. }) if code == "Aborted"),
        "{outcome:?}"
    );
    assert_eq!(
        rig.terminal.categories(),
        [
            MessageCategory::Payment,
            MessageCategory::TransactionStatus,
            MessageCategory::Abort,
            MessageCategory::TransactionStatus
        ]
    );
}

#[tokio::test]
async fn recovery_of_a_cancelled_payment_aborts_it_before_asking() {
    let rig = Rig::new(vec![
        Act::Acknowledge,
        status_found(failed_payment("Aborted", "Merchant abort")),
    ])
    .await;
    rig.driver()
        .record(Entry::Sale {
            service_id: "OLD0000001".into(),
            reference: "pay-old".into(),
            amount_minor: 1000,
            currency: "BRL".into(),
            at: 1,
        })
        .expect("journal");
    let inquiry = SaleInquiry {
        reference: "pay-old".into(),
        amount_minor: 1000,
        currency: "BRL".into(),
        sent_at_ms: 1,
        cancel_requested: true,
    };
    let answer = rig.driver().query_sale(&inquiry).await;
    assert!(
        matches!(&answer, Ok(SaleQuery::Completed(SaleOutcome::Declined { code, .. })) if code == "Aborted"),
        "{answer:?}"
    );
    let received = rig.terminal.received();
    assert_eq!(
        rig.terminal.categories(),
        [MessageCategory::Abort, MessageCategory::TransactionStatus]
    );
    assert_eq!(referenced(&received[0]), "OLD0000001");
    assert_eq!(referenced(&received[1]), "OLD0000001");
}

#[tokio::test]
async fn a_reversal_without_an_answer_is_looked_up_not_sent_again() {
    let rig = Rig::new(vec![
        approve(),
        Act::Close,
        answer(|request| {
            ResponseBody::TransactionStatus(TransactionStatusResponse {
                response: status(ResultCode::Success, None),
                message_reference: None,
                repeated_message_response: Some(Box::new(RepeatedMessageResponse {
                    message_header: MessageHeader {
                        message_category: MessageCategory::Reversal,
                        message_type: MessageType::Response,
                        service_id: Some(referenced(request)),
                        ..request.header.clone()
                    },
                    repeated_response_message_body: RepeatedResponseMessageBody {
                        payment_response: None,
                        reversal_response: Some(ReversalResponse {
                            response: status(ResultCode::Success, None),
                            poi_data: None,
                        }),
                    },
                })),
            })
        }),
    ])
    .await;
    let mut driver = rig.driver();
    charge(&mut driver, &sale("pay-1", CardFunction::Credit, None))
        .await
        .expect("approved");
    let reversal = OperationRequest {
        reference: "op-1".into(),
        sale_ref: POI_TRANSACTION.into(),
        sale_amount_minor: 1000,
        sale_at_ms: 0,
        amount_minor: 1000,
        currency: "BRL".into(),
    };
    assert!(driver.reverse(&reversal).await.is_err(), "unclear");
    assert_eq!(
        driver.query_operation("op-1").await,
        Ok(OperationQuery::Done)
    );
    let received = rig.terminal.received();
    assert_eq!(
        rig.terminal.categories(),
        [
            MessageCategory::Payment,
            MessageCategory::Reversal,
            MessageCategory::TransactionStatus
        ]
    );
    let RequestBody::TransactionStatusRequest(asked) = &received[2].body else {
        panic!("{:?}", received[2]);
    };
    assert_eq!(
        asked.message_reference.message_category,
        MessageCategory::Reversal
    );
    assert_eq!(
        asked.message_reference.service_id,
        received[1].header.service_id
    );
}

/// An approval whose `AmountsResp` says `authorized` (as written in the JSON).
fn approved_for(authorized: &str) -> PaymentResponse {
    let mut value = serde_json::to_value(approved_payment()).expect("json");
    value["PaymentResult"]["AmountsResp"] = json!({"Currency": "BRL", "AuthorizedAmount": 0});
    let text = value.to_string().replace(
        "\"AuthorizedAmount\":0",
        &format!("\"AuthorizedAmount\":{authorized}"),
    );
    serde_json::from_str(&text).expect("payment response")
}

#[tokio::test]
async fn an_approval_for_another_amount_is_declined_and_given_back_once_stored() {
    let rig = Rig::new(vec![
        answer(|_| ResponseBody::Payment(approved_for("5.00"))),
        answer(|_| {
            ResponseBody::Reversal(ReversalResponse {
                response: status(ResultCode::Success, None),
                poi_data: None,
            })
        }),
    ])
    .await;
    let mut driver = rig.driver();
    let outcome = charge(&mut driver, &sale("pay-1", CardFunction::Credit, None))
        .await
        .expect("outcome");
    assert!(
        matches!(&outcome, SaleOutcome::Declined { code, .. } if code == "amount-mismatch"),
        "{outcome:?}"
    );
    assert_eq!(
        driver.unconfirmed(),
        [("pay-1".to_string(), POI_TRANSACTION.to_string())]
    );
    driver
        .committed("pay-1", Verdict::Undo)
        .await
        .expect("given back");
    let received = rig.terminal.received();
    assert_eq!(
        rig.terminal.categories(),
        [MessageCategory::Payment, MessageCategory::Reversal]
    );
    let RequestBody::ReversalRequest(sent) = &received[1].body else {
        panic!("{:?}", received[1]);
    };
    assert_eq!(
        sent.original_poi_transaction
            .poi_transaction_id
            .transaction_id,
        POI_TRANSACTION
    );
    let restarted = rig.driver();
    assert!(restarted.unconfirmed().is_empty());
    let references: Vec<String> = restarted
        .sent()
        .expect("sent")
        .into_iter()
        .map(|s| s.reference)
        .collect();
    assert_eq!(
        references,
        ["pay-1"],
        "the driver's own reversal is no operation"
    );
}

#[tokio::test]
async fn a_kept_approval_is_journaled_and_nothing_more_is_sent() {
    let rig = Rig::new(vec![answer(|_| {
        ResponseBody::Payment(approved_for("10.00"))
    })])
    .await;
    let mut driver = rig.driver();
    let outcome = charge(&mut driver, &sale("pay-1", CardFunction::Credit, None))
        .await
        .expect("outcome");
    assert!(matches!(outcome, SaleOutcome::Approved(_)), "{outcome:?}");
    assert_eq!(driver.unconfirmed().len(), 1, "not judged yet");
    driver
        .committed("pay-1", Verdict::Keep)
        .await
        .expect("kept");
    assert!(rig.driver().unconfirmed().is_empty());
    assert_eq!(rig.terminal.received().len(), 1);
    assert!(rig.journal_text().contains("\"kind\":\"verdict\""));
}

#[tokio::test]
async fn a_self_signed_terminal_certificate_can_be_its_own_trust_anchor() {
    let diagnosis = || {
        answer(|_| {
            ResponseBody::Diagnosis(firmware_protocols::nexo::messages::DiagnosisResponse {
                response: status(ResultCode::Success, None),
                poi_status: None,
            })
        })
    };
    let terminal = ScriptedTerminal::start_self_signed(&test_name(POI), vec![diagnosis()]).await;
    let rig = Rig {
        dir: tempfile::tempdir().expect("tempdir"),
        terminal,
    };
    assert_eq!(
        rig.driver().probe().await,
        Ok("the terminal answered Diagnosis: Success".to_string())
    );
    let live = format!("{POI}.live.terminal.adyen.com");
    let error = rig
        .driver_for(&live, &rig.terminal.ca_pem)
        .probe()
        .await
        .expect_err("a test certificate on a live setting");
    assert!(error.to_string().contains(&live), "{error}");
    assert_eq!(rig.terminal.received().len(), 1);
}
