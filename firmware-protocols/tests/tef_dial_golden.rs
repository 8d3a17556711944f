//! Golden tests: TEF Dial files from the public docs' examples (sources and
//! changes in `tests/data/tef-dial/SOURCES.md`) parse into the typed
//! messages, and our own requests encode to exact bytes.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use firmware_protocols::tef_dial::message::field;
use firmware_protocols::tef_dial::{
    Answer, Cancellation, CardType, Confirmation, ConfirmationNeed, FieldId, Financing,
    Installments, MessageError, Operation, Record, Request, Sale, Status,
};

fn fixture(name: &str) -> Vec<u8> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/tef-dial/");
    std::fs::read(format!("{path}{name}")).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn record(name: &str) -> Record {
    Record::parse(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn multiplus_sale_request_parses_field_by_field() {
    let record = record("multiplus-crt-request.txt");
    let fields: Vec<(String, &str)> = record
        .fields()
        .iter()
        .map(|(id, value)| (id.to_string(), value.as_str()))
        .collect();
    assert_eq!(
        fields,
        [
            ("000-000".to_owned(), "CRT"),
            ("001-000".to_owned(), "1"),
            ("002-000".to_owned(), "123456"),
            ("003-000".to_owned(), "150000"),
        ]
    );
    // The generic layout has no card type: our typed sale needs one.
    assert_eq!(
        Request::from_record(&record),
        Err(MessageError::Missing(field::CARD_TYPE))
    );
}

#[test]
fn status_files_of_multiplus_and_paygo_parse() {
    assert_eq!(
        Status::from_record(&record("multiplus-crt-status.txt")).unwrap(),
        Status {
            operation: Operation::Crt,
            id: 1
        }
    );
    let paygo = Status {
        operation: Operation::Crt,
        id: 34_430_576,
    };
    assert_eq!(
        Status::from_record(&record("paygo-crt-status.txt")).unwrap(),
        paygo
    );
    assert_eq!(
        paygo.to_record().encode().unwrap(),
        fixture("paygo-crt-status.txt")
    );
}

#[test]
fn multiplus_answer_parses_unquoted_with_receipt_lines_in_order() {
    let answer = Answer::from_record(&record("multiplus-crt-answer.txt")).unwrap();
    assert!(answer.approved());
    assert_eq!((answer.operation, answer.id), (Operation::Crt, 1));
    assert_eq!(answer.amount_cents, Some(150_000));
    assert_eq!(answer.network.as_deref(), Some("Rede X"));
    assert_eq!(answer.transaction_type.as_deref(), Some("10"));
    assert_eq!(answer.nsu.as_deref(), Some("123456789000"));
    assert_eq!(answer.authorization_code.as_deref(), Some("123456"));
    assert_eq!(answer.finalization.as_deref(), Some("123XXYTZAAABC"));
    assert_eq!(answer.brand.as_deref(), Some("ADM. X"));
    assert_eq!(answer.confirmation, ConfirmationNeed::Required);
    assert_eq!(answer.card_type, None);
    assert_eq!(answer.receipt.len(), 9);
    assert_eq!(answer.receipt[0], "Rede X");
    assert_eq!(answer.receipt[5], "");
    assert_eq!(answer.receipt[8], "CLIENTE X");
}

#[test]
fn confirmation_of_the_multiplus_answer_is_the_documented_cnf() {
    let answer = Answer::from_record(&record("multiplus-crt-answer.txt")).unwrap();
    let cnf = Request::Cnf(Confirmation {
        id: 1,
        network: answer.network.unwrap(),
        nsu: answer.nsu.unwrap(),
        finalization: answer.finalization,
    });
    // The documented CNF also names the fiscal document (optional per the
    // layout table); ours leaves it out and is otherwise the same bytes.
    let documented = String::from_utf8(fixture("multiplus-cnf-request.txt")).unwrap();
    let without_document: String = documented
        .split_inclusive("\r\n")
        .filter(|line| !line.starts_with("002-000"))
        .collect();
    assert_eq!(
        String::from_utf8(cnf.to_record().encode().unwrap()).unwrap(),
        without_document
    );
    assert_eq!(
        Request::from_record(&record("multiplus-cnf-request.txt")).unwrap(),
        cnf
    );
}

#[test]
fn paygo_sale_request_reads_codes_with_leading_zeros() {
    let record = record("paygo-crt-request.txt");
    assert_eq!(record.get(FieldId::new(731, 0)), Some("01"));
    assert_eq!(record.get(FieldId::new(736, 0)), Some("v1, 14, 0, 0"));
    assert_eq!(
        record.lines_of(752),
        ["00000000001,2000", "00000000002,600", "00000000003,1400"]
    );
    // Three installments with financing "00" (any): nothing says who pays.
    assert_eq!(
        Request::from_record(&record),
        Err(MessageError::Missing(field::FINANCING))
    );
    let mut with_financing = record.clone();
    with_financing.push(field::FINANCING, "1");
    let Request::Crt(sale) = Request::from_record(&with_financing).unwrap() else {
        panic!("not a sale");
    };
    assert_eq!(sale.card_type, CardType::Credit);
    assert_eq!(sale.amount_cents, 10_000);
    assert_eq!(sale.document, "223546");
    assert_eq!(
        sale.installments,
        Some(Installments {
            count: 3,
            financing: Financing::Issuer
        })
    );
}

#[test]
fn safrapay_answer_keeps_leading_zeros_and_separate_receipts() {
    let answer = Answer::from_record(&record("safrapay-crt-answer.txt")).unwrap();
    assert!(answer.approved());
    assert_eq!(answer.id, 123_456);
    assert_eq!(answer.nsu.as_deref(), Some("000000001"));
    assert_eq!(answer.authorization_code.as_deref(), Some("ABCDEF"));
    assert_eq!(answer.network.as_deref(), Some("EXEMPACQ"));
    assert_eq!(answer.date.as_deref(), Some("01012020"));
    assert_eq!(answer.time.as_deref(), Some("120000"));
    assert_eq!(answer.finalization.as_deref(), Some("CODIGO_DE_CONTROLE"));
    assert_eq!(
        answer.operator_message.as_deref(),
        Some("TRANSACAO APROVADA")
    );
    assert_eq!(answer.card_type, Some(CardType::Debit));
    assert_eq!(answer.confirmation, ConfirmationNeed::Required);
    assert_eq!(answer.receipt.len(), 45);
    assert_eq!(answer.customer_receipt.len(), 19);
    assert_eq!(answer.merchant_receipt.len(), 21);
    // Inner leading spaces of a quoted line are the receipt's layout.
    assert_eq!(answer.customer_receipt[0], " LOGISTA");
    assert_eq!(answer.merchant_receipt[20], " V1.0.0");
}

#[test]
fn sitef_answer_with_comma_amount_and_bare_empty_lines() {
    let answer = Answer::from_record(&record("sitef-crt-answer.txt")).unwrap();
    assert!(answer.approved());
    assert_eq!(answer.amount_cents, Some(26_070));
    assert_eq!(answer.network.as_deref(), Some("AMERICAN EXPRESS"));
    assert_eq!(answer.nsu.as_deref(), Some("000000006"));
    assert_eq!(answer.authorization_code.as_deref(), Some("160006"));
    assert_eq!(answer.finalization.as_deref(), Some("061616000606"));
    assert_eq!(answer.receipt.len(), 29);
    assert_eq!(answer.receipt[0], "");
    assert_eq!(answer.receipt[28], "(SiTef)");
    assert_eq!(answer.operator_message.as_deref(), Some("TRANSACTION OK"));
    assert_eq!(answer.brand, None);
}

#[test]
fn our_sale_encodes_to_exact_bytes() {
    let credit = Request::Crt(Sale {
        id: 42,
        document: "pay-0001".to_owned(),
        amount_cents: 1250,
        card_type: CardType::Credit,
        installments: None,
    });
    assert_eq!(
        credit.to_record().encode().unwrap(),
        b"000-000 = CRT\r\n001-000 = 42\r\n002-000 = pay-0001\r\n003-000 = 1250\r\n\
004-000 = 0\r\n731-000 = 1\r\n732-000 = 1\r\n999-999 = 0\r\n"
    );
    let installments = Request::Crt(Sale {
        id: 43,
        document: "pay-0002".to_owned(),
        amount_cents: 30_000,
        card_type: CardType::Credit,
        installments: Some(Installments {
            count: 3,
            financing: Financing::Merchant,
        }),
    });
    assert_eq!(
        installments.to_record().encode().unwrap(),
        b"000-000 = CRT\r\n001-000 = 43\r\n002-000 = pay-0002\r\n003-000 = 30000\r\n\
004-000 = 0\r\n731-000 = 1\r\n017-000 = 0\r\n018-000 = 3\r\n732-000 = 3\r\n999-999 = 0\r\n"
    );
}

#[test]
fn our_other_requests_encode_to_exact_bytes() {
    assert_eq!(
        Request::Atv { id: 7 }.to_record().encode().unwrap(),
        b"000-000 = ATV\r\n001-000 = 7\r\n999-999 = 0\r\n"
    );
    let cancel = Request::Cnc(Cancellation {
        id: 44,
        network: "REDECARD".to_owned(),
        nsu: "000123".to_owned(),
        date: "17072024".to_owned(),
        time: "142036".to_owned(),
        amount_cents: 1250,
    });
    assert_eq!(
        cancel.to_record().encode().unwrap(),
        b"000-000 = CNC\r\n001-000 = 44\r\n003-000 = 1250\r\n010-000 = REDECARD\r\n\
012-000 = 000123\r\n022-000 = 17072024\r\n023-000 = 142036\r\n999-999 = 0\r\n"
    );
    let undo = Request::Ncn(Confirmation {
        id: 45,
        network: "REDECARD".to_owned(),
        nsu: "000123".to_owned(),
        finalization: None,
    });
    assert_eq!(
        undo.to_record().encode().unwrap(),
        b"000-000 = NCN\r\n001-000 = 45\r\n010-000 = REDECARD\r\n012-000 = 000123\r\n999-999 = 0\r\n"
    );
}
