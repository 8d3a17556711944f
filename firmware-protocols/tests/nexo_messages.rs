//! The clear nexo messages against Adyen's fixtures (`tests/data/nexo/SOURCES.md`): every file
//! there reads as its kind, the `missing-*` ones are refused naming the field, Adyen's real
//! encrypted payment answer reads as documented, and the requests posbridge builds have the
//! exact JSON the Terminal API expects.

#![cfg(feature = "nexo")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use firmware_protocols::nexo::crypto::{Direction, KeyIdentity, KeyMaterial};
use firmware_protocols::nexo::messages::{
    AbortRequest, AuthenticatedData, DecimalAmount, DiagnosisRequest, DisplayRequest,
    ErrorCondition, EventNotification, Incoming, LoginRequest, MessageCategory, MessageClass,
    MessageError, MessageHeader, MessageReference, MessageType, OriginalPoiTransaction,
    PaymentInput, PaymentMethod, PaymentRequest, PaymentResponse, PaymentStatus, Request,
    RequestBody, Response, ResponseBody, ResultCode, ReversalRequest, SaleTerminalData,
    TransactionIdentification, TransactionStatusRequest, is_acknowledgement,
};
use firmware_protocols::nexo::{ReadError, crypto, open_incoming, seal_request};
use proptest::prelude::*;

const TEST_PASSPHRASE: &[u8] = b"p@ssw0rd123456";
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/nexo/");

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}{name}")).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Acknowledgement,
    AbortRequest,
    AuthenticatedData,
    DisplayRequest,
    EventNotification,
    LoginRequest,
    MessageHeader,
    MessageReference,
    SaleTerminalData,
    /// `{"SaleToPOIResponse": …}` or `{"SaleToPOIRequest": …}` in clear.
    Clear,
    /// `{"MessageHeader": …, "…Response": …}` without the outer object.
    ResponseBody,
    /// A sealed local-mode envelope under the public test key.
    Sealed,
}

/// Every fixture and what it is. A file missing from this table fails the test.
const KINDS: &[(&str, Kind)] = &[
    (
        "abort-request-missing-abort-reason.json",
        Kind::AbortRequest,
    ),
    (
        "abort-request-missing-message-reference.json",
        Kind::AbortRequest,
    ),
    ("abort-request.json", Kind::AbortRequest),
    ("abort-sync-success", Kind::Acknowledgement),
    ("authenticated-data-kek.json", Kind::AuthenticatedData),
    (
        "authenticated-data-key-transport.json",
        Kind::AuthenticatedData,
    ),
    (
        "authenticated-data-missing-encapsulated-content.json",
        Kind::AuthenticatedData,
    ),
    (
        "authenticated-data-missing-mac-algorithm.json",
        Kind::AuthenticatedData,
    ),
    (
        "authenticated-data-missing-mac.json",
        Kind::AuthenticatedData,
    ),
    (
        "authenticated-data-missing-version.json",
        Kind::AuthenticatedData,
    ),
    (
        "authenticated-data-wrong-case.json",
        Kind::AuthenticatedData,
    ),
    ("display-request.json", Kind::DisplayRequest),
    (
        "event-notification-missing-event-to-notify.json",
        Kind::EventNotification,
    ),
    (
        "event-notification-missing-timestamp.json",
        Kind::EventNotification,
    ),
    ("event-notification.json", Kind::EventNotification),
    ("input-request-success.json", Kind::Clear),
    ("login-request.json", Kind::LoginRequest),
    ("message-header.json", Kind::MessageHeader),
    ("message-reference.json", Kind::MessageReference),
    ("payment-async-success", Kind::Acknowledgement),
    ("payment-local-additional-attributes.json", Kind::Sealed),
    ("payment-local-success.json", Kind::Sealed),
    ("payment-sync-additional-attributes.json", Kind::Clear),
    ("payment-sync-error-empty.json", Kind::Clear),
    ("payment-sync-success-storedvalue.json", Kind::Clear),
    ("payment-sync-success.json", Kind::Clear),
    (
        "sale-terminal-data-empty-capabilities.json",
        Kind::SaleTerminalData,
    ),
    ("sale-terminal-data.json", Kind::SaleTerminalData),
    ("sale-to-poi-response-diagnosis.json", Kind::ResponseBody),
    ("sale-to-poi-response-display.json", Kind::ResponseBody),
    (
        "sale-to-poi-response-missing-message-header.json",
        Kind::ResponseBody,
    ),
    (
        "sale-to-poi-response-transaction-status.json",
        Kind::ResponseBody,
    ),
];

/// Reads `bytes` as `kind`; the error text on refusal.
fn read_as(kind: Kind, bytes: &[u8]) -> Result<(), String> {
    fn plain<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<(), String> {
        serde_json::from_slice::<T>(bytes)
            .map(drop)
            .map_err(|e| e.to_string())
    }
    match kind {
        Kind::Acknowledgement => is_acknowledgement(bytes)
            .then_some(())
            .ok_or_else(|| "not an acknowledgement".to_owned()),
        Kind::AbortRequest => plain::<AbortRequest>(bytes),
        Kind::AuthenticatedData => plain::<AuthenticatedData>(bytes),
        Kind::DisplayRequest => plain::<DisplayRequest>(bytes),
        Kind::EventNotification => plain::<EventNotification>(bytes),
        Kind::LoginRequest => plain::<LoginRequest>(bytes),
        Kind::MessageHeader => plain::<MessageHeader>(bytes),
        Kind::MessageReference => plain::<MessageReference>(bytes),
        Kind::SaleTerminalData => plain::<SaleTerminalData>(bytes),
        Kind::Clear => Incoming::from_json(bytes)
            .map(drop)
            .map_err(|e| e.to_string()),
        Kind::ResponseBody => Response::from_body_json(bytes)
            .map(drop)
            .map_err(|e| e.to_string()),
        Kind::Sealed => open_incoming(bytes, &KeyMaterial::derive(TEST_PASSPHRASE))
            .map(drop)
            .map_err(|e| e.to_string()),
    }
}

/// `missing-foo-bar` → the field the fixture lacks, as nexo spells it.
fn missing_field(name: &str) -> Option<&'static str> {
    let missing = name.split("-missing-").nth(1)?.trim_end_matches(".json");
    Some(match missing {
        "abort-reason" => "AbortReason",
        "message-reference" => "MessageReference",
        "encapsulated-content" => "EncapsulatedContent",
        "mac-algorithm" => "MACAlgorithm",
        "mac" => "MAC",
        "version" => "Version",
        "event-to-notify" => "EventToNotify",
        "timestamp" => "TimeStamp",
        "message-header" => "MessageHeader",
        other => panic!("no field known for missing-{other}"),
    })
}

#[test]
fn every_fixture_reads_as_its_kind_and_missing_fields_are_named() {
    let mut on_disk: Vec<String> = std::fs::read_dir(FIXTURES)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name != "SOURCES.md")
        .collect();
    on_disk.sort();
    let listed: Vec<&str> = KINDS.iter().map(|(name, _)| *name).collect();
    assert_eq!(on_disk, listed, "every fixture must be listed in KINDS");

    for (name, kind) in KINDS {
        let result = read_as(*kind, &fixture(name));
        match (missing_field(name), name.contains("wrong-case")) {
            (Some(field), _) => {
                let error = result.expect_err(name);
                assert!(error.contains(&format!("`{field}`")), "{name}: {error}");
            }
            // Names are case-sensitive: the lowercase variant lacks every mandatory field.
            (None, true) => assert!(result.is_err(), "{name}"),
            (None, false) => result.unwrap_or_else(|error| panic!("{name}: {error}")),
        }
    }
}

fn local_success() -> PaymentResponse {
    let Incoming::Response(response) = open_incoming(
        &fixture("payment-local-success.json"),
        &KeyMaterial::derive(TEST_PASSPHRASE),
    )
    .unwrap() else {
        panic!("a response");
    };
    assert_eq!(response.header.message_category, MessageCategory::Payment);
    assert_eq!(response.header.message_type, MessageType::Response);
    assert_eq!(response.header.service_id.as_deref(), Some("325488592"));
    let ResponseBody::Payment(payment) = response.body else {
        panic!("a payment response");
    };
    payment
}

#[test]
fn adyens_encrypted_payment_answer_reads_as_documented() {
    let payment = local_success();
    assert_eq!(payment.response.result, ResultCode::Success);
    assert_eq!(payment.response.error_condition, None);
    assert_eq!(payment.approval_code(), Some("123456"));
    assert_eq!(
        payment.poi_transaction(),
        Some(&TransactionIdentification {
            transaction_id: "4r7i001557325515012.8815573255107661".to_owned(),
            time_stamp: "2019-05-08T14:25:15.000Z".to_owned(),
        })
    );
    let card = payment.card().unwrap();
    assert_eq!(card.payment_brand.as_deref(), Some("mc"));
    let pan = card.masked_pan.as_ref().unwrap();
    assert_eq!((pan.first6(), pan.last4()), ("541333", "0010"));
    let amounts = payment
        .payment_result
        .as_ref()
        .unwrap()
        .amounts_resp
        .as_ref()
        .unwrap();
    assert_eq!(amounts.currency.as_deref(), Some("EUR"));
    assert_eq!(amounts.authorized_amount.to_minor_units(2), Some(100));

    let additional = payment.response.additional();
    assert!(additional.contains(&("cardHolderName".to_owned(), "N/A".to_owned())));
    assert!(additional.contains(&("authCode".to_owned(), "123456".to_owned())));

    assert_eq!(payment.payment_receipt.len(), 2);
    let qualifiers: Vec<&str> = payment
        .payment_receipt
        .iter()
        .map(|receipt| receipt.document_qualifier.as_str())
        .collect();
    assert_eq!(qualifiers, ["CashierReceipt", "CustomerReceipt"]);
    let cashier = payment.payment_receipt[0].lines();
    for line in [
        "MERCHANT COPY",
        "Date: 08/05/19",
        "Time: 15:25:15",
        "Card: ************0010",
    ] {
        assert!(
            cashier.iter().any(|shown| shown == line),
            "{line:?} in {cashier:#?}"
        );
    }
    assert!(
        cashier.iter().all(|line| !line.contains("key=")),
        "{cashier:#?}"
    );
}

#[test]
fn a_clear_payment_answer_reads_the_same_way() {
    let Incoming::Response(response) =
        Incoming::from_json(&fixture("payment-sync-success.json")).unwrap()
    else {
        panic!("a response");
    };
    let ResponseBody::Payment(payment) = response.body else {
        panic!("a payment response");
    };
    assert_eq!(payment.approval_code(), Some("123456"));
    let pan = payment.card().unwrap().masked_pan.clone().unwrap();
    assert_eq!((pan.first6(), pan.last4()), ("411111", "1111"));
}

#[test]
fn the_terminals_clear_rejection_is_an_event_with_a_readable_reason() {
    let Incoming::Request(request) =
        Incoming::from_json(&fixture("payment-sync-error-empty.json")).unwrap()
    else {
        panic!("a request from the terminal");
    };
    assert_eq!(request.header.message_class, MessageClass::Event);
    let RequestBody::EventNotification(event) = request.body else {
        panic!("an event");
    };
    assert_eq!(event.event_to_notify, "Reject");
    assert_eq!(
        event.prompt_lines(),
        ["Empty input which would have resulted in a null result."]
    );
}

#[test]
fn display_and_event_texts_become_prompts() {
    let display: DisplayRequest = serde_json::from_slice(&fixture("display-request.json")).unwrap();
    assert_eq!(display.prompt_lines(), ["Please present card"]);
    let event: EventNotification =
        serde_json::from_slice(&fixture("event-notification.json")).unwrap();
    assert_eq!(event.prompt_lines(), ["System maintenance in progress"]);
}

#[test]
fn diagnosis_and_status_bodies_read() {
    let diagnosis =
        Response::from_body_json(&fixture("sale-to-poi-response-diagnosis.json")).unwrap();
    let ResponseBody::Diagnosis(diagnosis) = diagnosis.body else {
        panic!("a diagnosis");
    };
    assert_eq!(diagnosis.poi_status.unwrap().global_status, "OK");

    let status =
        Response::from_body_json(&fixture("sale-to-poi-response-transaction-status.json")).unwrap();
    let ResponseBody::TransactionStatus(status) = status.body else {
        panic!("a transaction status");
    };
    // Success without the repeated answer: nothing to conclude from.
    assert_eq!(status.payment_status(), PaymentStatus::Unclear);
}

fn status_response(response: &str, repeated: Option<&str>) -> Response {
    let repeated = repeated.map_or(String::new(), |payment| {
        format!(
            r#","RepeatedMessageResponse":{{"MessageHeader":{{"MessageClass":"Service",
            "MessageCategory":"Payment","MessageType":"Response","SaleID":"s","POIID":"p",
            "ServiceID":"a1"}},"RepeatedResponseMessageBody":{{"PaymentResponse":{payment}}}}}"#
        )
    });
    let json = format!(
        r#"{{"SaleToPOIResponse":{{"MessageHeader":{{"ProtocolVersion":"3.0",
        "MessageClass":"Service","MessageCategory":"TransactionStatus","MessageType":"Response",
        "ServiceID":"b2","SaleID":"s","POIID":"p"}},"TransactionStatusResponse":{{
        "Response":{response}{repeated}}}}}}}"#
    );
    Response::from_json(json.as_bytes()).unwrap()
}

#[test]
fn transaction_status_answers_say_in_progress_not_found_or_the_payment() {
    let status = |response: &Response| match &response.body {
        ResponseBody::TransactionStatus(status) => status.clone(),
        other => panic!("{other:?}"),
    };
    let exact = status_response(
        r#"{"Result":"Success"}"#,
        Some(
            r#"{"Response":{"Result":"Success"},"PaymentResult":{"AmountsResp":{"Currency":"BRL","AuthorizedAmount":48.32}}}"#,
        ),
    );
    let exact = status(&exact);
    let PaymentStatus::Found(repeated) = exact.payment_status() else {
        panic!("found");
    };
    let amounts = repeated
        .payment_result
        .as_ref()
        .unwrap()
        .amounts_resp
        .as_ref()
        .unwrap();
    assert_eq!(amounts.authorized_amount.to_minor_units(2), Some(4832));

    let in_progress = status_response(
        r#"{"Result":"Failure","ErrorCondition":"InProgress"}"#,
        None,
    );
    assert_eq!(
        status(&in_progress).payment_status(),
        PaymentStatus::InProgress
    );
    let not_found = status_response(r#"{"Result":"Failure","ErrorCondition":"NotFound"}"#, None);
    assert_eq!(status(&not_found).payment_status(), PaymentStatus::NotFound);

    let plaintext = crypto::open(
        &fixture("payment-local-success.json"),
        &KeyMaterial::derive(TEST_PASSPHRASE),
    )
    .unwrap()
    .plaintext;
    let original: serde_json::Value = serde_json::from_slice(&plaintext).unwrap();
    let payment = original["SaleToPOIResponse"]["PaymentResponse"].to_string();
    let found = status_response(r#"{"Result":"Success"}"#, Some(&payment));
    let found = status(&found);
    let PaymentStatus::Found(repeated) = found.payment_status() else {
        panic!("found");
    };
    assert_eq!(repeated, &local_success());

    let refused = status_response(r#"{"Result":"Failure","ErrorCondition":"Refusal"}"#, None);
    assert_eq!(status(&refused).payment_status(), PaymentStatus::Unclear);
    let ResponseBody::TransactionStatus(refused) = refused.body else {
        unreachable!()
    };
    assert_eq!(
        refused.response.error_condition,
        Some(ErrorCondition::Refusal)
    );
}

fn input(method: PaymentMethod, minor: u64) -> PaymentInput {
    PaymentInput {
        transaction_id: "pay-7f3a".to_owned(),
        timestamp: "2026-11-30T12:00:00Z".to_owned(),
        currency: "BRL".to_owned(),
        amount_minor_units: minor,
        method,
    }
}

fn request_json(body: RequestBody) -> String {
    let request = Request::service("store-1-lane-4", "a1b2c3d4e5", "V400m-324688179", body);
    String::from_utf8(request.to_json().unwrap()).unwrap()
}

const HEADER: &str = r#""MessageHeader":{"ProtocolVersion":"3.0","MessageClass":"Service","#;
const IDS: &str = r#""MessageType":"Request","ServiceID":"a1b2c3d4e5","SaleID":"store-1-lane-4","POIID":"V400m-324688179"}"#;

#[test]
fn credit_in_installments_is_an_instalment_payment_with_an_exact_amount() {
    let body = RequestBody::PaymentRequest(
        PaymentRequest::new(&input(PaymentMethod::Credit { installments: 3 }, 123_456)).unwrap(),
    );
    assert_eq!(
        request_json(body),
        format!(
            r#"{{"SaleToPOIRequest":{{{HEADER}"MessageCategory":"Payment",{IDS},"PaymentRequest":{{"SaleData":{{"SaleTransactionID":{{"TransactionID":"pay-7f3a","TimeStamp":"2026-11-30T12:00:00Z"}}}},"PaymentTransaction":{{"AmountsReq":{{"Currency":"BRL","RequestedAmount":1234.56}}}},"PaymentData":{{"PaymentType":"Instalment","Instalment":{{"InstalmentType":"EqualInstalments","SequenceNumber":1,"Period":1,"PeriodUnit":"Monthly","TotalNbOfPayments":3}}}}}}}}}}"#
        )
    );
}

#[test]
fn debit_prefers_the_debit_account_and_credit_at_once_has_no_payment_data() {
    let debit = request_json(RequestBody::PaymentRequest(
        PaymentRequest::new(&input(PaymentMethod::Debit, 5)).unwrap(),
    ));
    assert!(
        debit.contains(r#""PaymentTransaction":{"AmountsReq":{"Currency":"BRL","RequestedAmount":0.05},"TransactionConditions":{"DebitPreferredFlag":true}}"#),
        "{debit}"
    );
    assert!(!debit.contains("PaymentData"), "{debit}");

    let credit = request_json(RequestBody::PaymentRequest(
        PaymentRequest::new(&input(PaymentMethod::Credit { installments: 1 }, 1000)).unwrap(),
    ));
    assert!(credit.contains(r#""RequestedAmount":10.00}"#), "{credit}");
    assert!(!credit.contains("PaymentData"), "{credit}");
    assert!(!credit.contains("TransactionConditions"), "{credit}");
}

#[test]
fn a_service_id_the_terminal_would_refuse_is_refused_before_sending() {
    for service_id in ["", "12345678901"] {
        let request = Request::service(
            "store-1-lane-4",
            service_id,
            "V400m-1",
            RequestBody::DiagnosisRequest(DiagnosisRequest::default()),
        );
        assert_eq!(
            request.to_json(),
            Err(MessageError::ServiceId(service_id.to_owned()))
        );
    }
}

#[test]
fn an_unknown_currency_is_refused_rather_than_guessed() {
    let mut unknown = input(PaymentMethod::Debit, 100);
    unknown.currency = "XYZ".to_owned();
    assert_eq!(
        PaymentRequest::new(&unknown),
        Err(MessageError::UnknownCurrency("XYZ".to_owned()))
    );
}

#[test]
fn abort_reversal_status_and_diagnosis_requests_have_the_terminal_api_shape() {
    let abort = request_json(RequestBody::AbortRequest(AbortRequest {
        message_reference: MessageReference::payment("store-1-lane-4", "9z8y7x"),
        abort_reason: "MerchantAbort".to_owned(),
    }));
    assert!(
        abort.ends_with(r#""MessageCategory":"Abort","MessageType":"Request","ServiceID":"a1b2c3d4e5","SaleID":"store-1-lane-4","POIID":"V400m-324688179"},"AbortRequest":{"MessageReference":{"MessageCategory":"Payment","ServiceID":"9z8y7x","SaleID":"store-1-lane-4"},"AbortReason":"MerchantAbort"}}}"#),
        "{abort}"
    );

    let reversal = request_json(RequestBody::ReversalRequest(ReversalRequest {
        original_poi_transaction: OriginalPoiTransaction {
            poi_transaction_id: TransactionIdentification {
                transaction_id: "4r7i001557325515012.8815573255107661".to_owned(),
                time_stamp: "2019-05-08T14:25:15.000Z".to_owned(),
            },
        },
        reversal_reason: "MerchantCancel".to_owned(),
    }));
    assert!(
        reversal.contains(r#""MessageCategory":"Reversal""#)
            && reversal.contains(r#""ReversalRequest":{"OriginalPOITransaction":{"POITransactionID":{"TransactionID":"4r7i001557325515012.8815573255107661","TimeStamp":"2019-05-08T14:25:15.000Z"}},"ReversalReason":"MerchantCancel"}"#),
        "{reversal}"
    );

    let status = request_json(RequestBody::TransactionStatusRequest(
        TransactionStatusRequest {
            message_reference: MessageReference::payment("store-1-lane-4", "9z8y7x"),
        },
    ));
    assert!(
        status.contains(r#""MessageCategory":"TransactionStatus""#)
            && status.contains(r#""TransactionStatusRequest":{"MessageReference":{"MessageCategory":"Payment","ServiceID":"9z8y7x","SaleID":"store-1-lane-4"}}"#),
        "{status}"
    );

    let diagnosis = request_json(RequestBody::DiagnosisRequest(DiagnosisRequest {
        host_diagnosis_flag: true,
    }));
    assert!(
        diagnosis.contains(r#""MessageCategory":"Diagnosis""#)
            && diagnosis.contains(r#""DiagnosisRequest":{"HostDiagnosisFlag":true}"#),
        "{diagnosis}"
    );
}

#[test]
fn a_sealed_request_reads_back_as_the_same_request() {
    let key = KeyMaterial::derive(b"lane-4");
    let identity = KeyIdentity {
        key_identifier: "posbridge".to_owned(),
        key_version: 1,
    };
    let request = Request::service(
        "store-1-lane-4",
        "a1b2c3d4e5",
        "V400m-324688179",
        RequestBody::PaymentRequest(
            PaymentRequest::new(&input(PaymentMethod::Credit { installments: 12 }, 99_999))
                .unwrap(),
        ),
    );
    let sealed = seal_request(&request, &key, &identity).unwrap();
    let opened = crypto::open(&sealed, &key).unwrap();
    assert_eq!(opened.direction, Direction::Request);
    assert_eq!(opened.clear_header, request.header);
    assert_eq!(open_incoming(&sealed, &key), Ok(Incoming::Request(request)));
    assert!(matches!(
        open_incoming(&sealed, &KeyMaterial::derive(b"other")),
        Err(ReadError::Open(crypto::OpenError::Crypto))
    ));
}

#[test]
fn amounts_on_the_wire_are_decimal_numbers_never_floats() {
    // 0.1 + 0.2 style drift is impossible: the token is written from integer minor units.
    for (minor, wire) in [(30, "0.30"), (1_000_000_001, "10000000.01"), (7, "0.07")] {
        let amount = DecimalAmount::from_minor_units(minor, 2);
        assert_eq!(serde_json::to_string(&amount).unwrap(), wire);
        let back: DecimalAmount = serde_json::from_str(wire).unwrap();
        assert_eq!(back.to_minor_units(2), Some(minor));
    }
    assert!(serde_json::from_str::<DecimalAmount>(r#""1.00""#).is_err());
    assert!(serde_json::from_str::<DecimalAmount>("-1.00").is_err());
}

#[test]
fn a_payment_answer_written_back_reads_the_same_and_keeps_only_the_masked_card() {
    let Incoming::Response(response) = open_incoming(
        &fixture("payment-local-success.json"),
        &KeyMaterial::derive(TEST_PASSPHRASE),
    )
    .unwrap() else {
        panic!("a response");
    };
    let written = response.to_json().unwrap();
    let text = String::from_utf8(written.clone()).unwrap();
    assert!(text.contains(r#""MaskedPan":"541333 **** 0010""#), "{text}");
    assert!(text.contains(r#""AuthorizedAmount":1"#), "{text}");
    assert!(
        !text.contains("ExpiryDate"),
        "nothing beyond what posbridge reads: {text}"
    );
    assert_eq!(Response::from_json(&written).unwrap(), response);
}

proptest! {
    #[test]
    fn minor_units_survive_the_wire_exactly(minor in any::<u64>(), digits in 0u8..=3) {
        let wire = serde_json::to_string(&DecimalAmount::from_minor_units(minor, digits)).unwrap();
        let back: DecimalAmount = serde_json::from_str(&wire).unwrap();
        prop_assert_eq!(back.to_minor_units(digits), Some(minor));
    }

    #[test]
    fn reading_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = Incoming::from_json(&bytes);
        let _ = Response::from_body_json(&bytes);
        let _ = is_acknowledgement(&bytes);
    }

    #[test]
    fn reading_arbitrary_json_shapes_never_panics(
        key in prop_oneof![Just("SaleToPOIResponse"), Just("SaleToPOIRequest")],
        body in prop_oneof![
            Just("PaymentResponse"), Just("TransactionStatusResponse"), Just("PaymentRequest"),
            Just("EventNotification"), Just("XResponse"),
        ],
        value in "[-0-9.a-z\"{}:,\\[\\]]{0,40}",
    ) {
        let json = format!(
            r#"{{"{key}":{{"MessageHeader":{{"MessageClass":"Service","MessageCategory":"Payment","MessageType":"Response","SaleID":"s","POIID":"p"}},"{body}":{value}}}}}"#
        );
        let _ = Incoming::from_json(json.as_bytes());
    }
}
