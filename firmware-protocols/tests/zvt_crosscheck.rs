//! Cross-check against an independent ZVT implementation: the `zvt` crate
//! 0.1 from crates.io (EVerest / Qwello, MIT OR Apache-2.0), a dev-dependency
//! only.
//!
//! For every message both libraries model:
//!
//! * (a) what OUR encoder produces from typed fields decodes in `zvt` to the
//!   same field values, consuming every byte;
//! * (b) what THEIR encoder produces decodes in ours to the same values and
//!   re-encodes byte-identically.
//!
//! All data is made up here (masked or synthetic); nothing is copied from the
//! captures. Differences between the two libraries that were found on the way
//! are pinned in `known_differences_*` tests, so a change on either side
//! shows up.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use firmware_protocols::zvt::bmp::{Amount, Bmp, BmpList, Date, ExpiryDate, Time};
use firmware_protocols::zvt::card::OpaqueBytes;
use firmware_protocols::zvt::messages::{
    Abort, Completion, CompletionBody, EndOfDay, IntermediateStatus, PrintLine, PrintTextBlock,
    ReadCard, Registration, StatusInformation,
};
use firmware_protocols::zvt::text::FixedText;
use firmware_protocols::zvt::tlv::receipt_type;
use firmware_protocols::zvt::{CurrencyCode, Message, Password, ResultCode, Text, Tlv, TlvList};

use zvt::ZvtSerializer;
use zvt::packets as theirs;

/// Encodes one of our messages to APDU bytes.
fn ours_bytes(message: impl Into<Message>) -> Vec<u8> {
    message.into().to_bytes().expect("our encoder")
}

/// Decodes with their crate and checks that every byte was consumed.
fn theirs_decode<T>(bytes: &[u8]) -> T
where
    T: ZvtSerializer,
    zvt::encoding::Default: zvt::encoding::Encoding<T>,
{
    let (value, rest) = T::zvt_deserialize(bytes).expect("their decoder");
    assert!(rest.is_empty(), "their decoder left {} bytes", rest.len());
    value
}

/// Decodes their bytes with ours, asserts the byte-identical re-encode.
fn ours_decode(bytes: &[u8]) -> Message {
    let message = Message::from_bytes(bytes).expect("our decoder");
    assert!(!message.is_opaque(), "decoded as opaque: {message:?}");
    if let Some(fields) = message.bmp_fields() {
        assert!(
            fields.is_fully_decoded(),
            "{} undecoded trailing bytes",
            fields.trailing.len()
        );
    }
    assert_eq!(message.to_bytes().expect("re-encode"), bytes);
    message
}

fn amount(units: u64) -> Amount {
    Amount::from_minor_units(units).unwrap()
}

fn text(s: &str) -> Text {
    Text::encode(s).unwrap()
}

// ---------------------------------------------------------------- 80 00 00

#[test]
fn positive_ack() {
    let ours = ours_bytes(Message::ack());
    assert_eq!(ours, [0x80, 0x00, 0x00]);
    let _: theirs::Ack = theirs_decode(&ours);

    let their_bytes = theirs::Ack {}.zvt_serialize();
    assert_eq!(their_bytes, ours);
    assert!(matches!(
        ours_decode(&their_bytes),
        Message::PositiveAck(ack) if ack.fields.is_empty()
    ));
}

// ---------------------------------------------------------------- 06 0F

#[test]
fn completion_with_fields() {
    // (a) ours -> theirs: result code, status byte, terminal ID, currency.
    let ours = Completion {
        body: CompletionBody::Fields(
            BmpList::new()
                .with(Bmp::ResultCode(ResultCode(0x00)))
                .with(Bmp::PaymentType(0x10))
                .with(Bmp::TerminalId(12_345_678))
                .with(Bmp::Currency(CurrencyCode::EUR)),
        ),
    };
    let bytes = ours_bytes(ours);
    let decoded: theirs::CompletionData = theirs_decode(&bytes);
    assert_eq!(
        decoded,
        theirs::CompletionData {
            result_code: Some(0),
            status_byte: Some(0x10),
            terminal_id: Some(12_345_678),
            currency: Some(978),
        }
    );

    // (b) theirs -> ours.
    let their_bytes = theirs::CompletionData {
        result_code: None,
        status_byte: Some(0x1E),
        terminal_id: Some(87_654_321),
        currency: Some(986),
    }
    .zvt_serialize();
    let Message::Completion(completion) = ours_decode(&their_bytes) else {
        panic!("expected completion");
    };
    let fields = completion.fields().expect("BMP completion");
    assert_eq!(fields.result_code(), None);
    assert_eq!(fields.payment_type(), Some(0x1E));
    assert_eq!(fields.terminal_id(), Some(87_654_321));
    assert_eq!(fields.currency(), Some(CurrencyCode::BRL));
    assert_eq!(fields.fields.len(), 3);
}

#[test]
fn plain_completion() {
    let ours = ours_bytes(Completion::default());
    assert_eq!(ours, [0x06, 0x0F, 0x00]);
    let decoded: theirs::CompletionData = theirs_decode(&ours);
    assert_eq!(decoded, theirs::CompletionData::default());

    let their_bytes = theirs::CompletionData::default().zvt_serialize();
    let Message::Completion(completion) = ours_decode(&their_bytes) else {
        panic!("expected completion");
    };
    assert_eq!(completion.body, CompletionBody::default());
}

#[test]
fn completion_with_software_version() {
    // (a) only: their encoder for the LLL software version is a stub (their
    // `encoding::Utf8::encode` returns no bytes), see
    // `known_differences_their_encoder`.
    let tlv = TlvList::new(vec![Tlv::primitive(0x1F44, vec![0x12, 0x34, 0x56, 0x78])]);
    let ours = Completion {
        body: CompletionBody::SoftwareVersion {
            version: text("TEST-APP-v1.2.3"),
            terminal_status: 0x00,
            fields: BmpList::new().with(Bmp::Tlv(tlv)),
        },
    };
    let bytes = ours_bytes(ours);
    let decoded: theirs::ReceiptPrintoutCompletion = theirs_decode(&bytes);
    assert_eq!(decoded.sw_version, "TEST-APP-v1.2.3");
    assert_eq!(decoded.terminal_status_code, 0x00);
    let tlv = decoded.tlv.expect("their TLV");
    assert_eq!(tlv.terminal_id, Some(12_345_678));
    assert_eq!(tlv.device_information, None);
    assert_eq!(tlv.date_time, None);
}

// ---------------------------------------------------------------- 04 FF

#[test]
fn intermediate_status() {
    // (a) status and a timeout below 10, where binary and BCD agree.
    let ours = IntermediateStatus {
        status: 0x0A,
        timeout: Some(0x05),
        fields: BmpList::new(),
    };
    let bytes = ours_bytes(ours);
    assert_eq!(bytes, [0x04, 0xFF, 0x02, 0x0A, 0x05]);
    let decoded: theirs::IntermediateStatusInformation = theirs_decode(&bytes);
    assert_eq!(
        decoded,
        theirs::IntermediateStatusInformation {
            status: 0x0A,
            timeout: Some(5),
        }
    );

    // Status only: theirs reports the missing timeout as Some(0).
    let bytes = ours_bytes(IntermediateStatus::new(0x17));
    let decoded: theirs::IntermediateStatusInformation = theirs_decode(&bytes);
    assert_eq!(decoded.status, 0x17);
    assert_eq!(decoded.timeout, Some(0));

    // (b) theirs -> ours.
    let their_bytes = theirs::IntermediateStatusInformation {
        status: 0x0E,
        timeout: Some(7),
    }
    .zvt_serialize();
    let Message::IntermediateStatus(status) = ours_decode(&their_bytes) else {
        panic!("expected intermediate status");
    };
    assert_eq!(status.status, 0x0E);
    assert_eq!(status.timeout, Some(7));
    assert!(status.fields.is_empty());

    // Their "no timeout" is Some(0), which they encode as no byte at all.
    let their_bytes = theirs::IntermediateStatusInformation {
        status: 0x17,
        timeout: Some(0),
    }
    .zvt_serialize();
    let Message::IntermediateStatus(status) = ours_decode(&their_bytes) else {
        panic!("expected intermediate status");
    };
    assert_eq!((status.status, status.timeout), (0x17, None));
}

// ---------------------------------------------------------------- 04 0F

/// A made-up Status-Information without card number (their PAN field is a
/// plain integer and cannot hold a masked PAN).
fn our_status_information() -> StatusInformation {
    let tlv = TlvList::new(vec![Tlv::primitive(0x1F4C, vec![0x01])]);
    StatusInformation::default()
        .with(Bmp::ResultCode(ResultCode::SUCCESS))
        .with(Bmp::Amount(amount(1234)))
        .with(Bmp::Currency(CurrencyCode::EUR))
        .with(Bmp::TraceNumber(42))
        .with(Bmp::Time(Time {
            hour: 12,
            minute: 34,
            second: 56,
        }))
        .with(Bmp::Date(Date { month: 4, day: 5 }))
        .with(Bmp::ExpiryDate(ExpiryDate {
            year: 27,
            month: 12,
        }))
        .with(Bmp::CardSequenceNumber(1))
        .with(Bmp::PaymentType(0x60))
        .with(Bmp::TerminalId(12_345_678))
        .with(Bmp::VuNumber(FixedText::padded("123456789", b' ').unwrap()))
        .with(Bmp::Aid(FixedText::padded("654321", 0).unwrap()))
        .with(Bmp::AdditionalText(text("AS-Proc-Code= 00\rGrüße")))
        .with(Bmp::ReceiptNumber(231))
        .with(Bmp::CardType(6))
        .with(Bmp::CardName(text("TESTCARD")))
        .with(Bmp::CardTypeId(1))
        .with(Bmp::Tlv(tlv))
}

#[test]
fn status_information_ours_to_theirs() {
    let bytes = ours_bytes(our_status_information());
    let decoded: theirs::StatusInformation = theirs_decode(&bytes);
    assert_eq!(decoded.result_code, Some(0));
    assert_eq!(decoded.amount, Some(1234));
    assert_eq!(decoded.currency, Some(978));
    assert_eq!(decoded.trace_number, Some(42));
    assert_eq!(decoded.time, Some(123_456));
    assert_eq!(decoded.date, Some(405));
    assert_eq!(decoded.expiry_date, Some(2712));
    assert_eq!(decoded.card_sequence_number, Some(1));
    assert_eq!(decoded.card_type, Some(0x60));
    assert_eq!(decoded.terminal_id, Some(12_345_678));
    assert_eq!(decoded.vu_number.as_deref(), Some("123456789      "));
    // Their string decoding strips trailing NULs.
    assert_eq!(
        decoded.aid_authorization_attribute.as_deref(),
        Some("654321")
    );
    assert_eq!(
        decoded.additional_text.as_deref(),
        Some("AS-Proc-Code= 00\rGrüße")
    );
    assert_eq!(decoded.receipt_no, Some(231));
    assert_eq!(decoded.zvt_card_type, Some(6));
    assert_eq!(decoded.card_name.as_deref(), Some("TESTCARD"));
    assert_eq!(decoded.zvt_card_type_id, Some(1));
    assert_eq!(decoded.card_number, None);
    assert_eq!(decoded.single_amounts, None);
    let tlv = decoded.tlv.expect("their TLV");
    assert_eq!(tlv.card_type, Some(1));
    assert_eq!(tlv.uuid, None);
    assert!(tlv.subs.is_empty());
}

#[test]
fn status_information_theirs_to_ours() {
    // Everything except LL/LLL fields (see known_differences_their_encoder).
    let their_bytes = theirs::StatusInformation {
        result_code: Some(0),
        amount: Some(98_765),
        currency: Some(978),
        trace_number: Some(977),
        time: Some(225_558),
        date: Some(1231),
        expiry_date: Some(2905),
        card_sequence_number: Some(2),
        card_type: Some(0x60),
        terminal_id: Some(52_000_001),
        vu_number: Some("VU-TEST-0001   ".to_string()),
        aid_authorization_attribute: Some("A1B2C3D4".to_string()),
        receipt_no: Some(9999),
        zvt_card_type: Some(5),
        zvt_card_type_id: Some(0),
        tlv: Some(theirs::tlv::StatusInformation {
            card_type: Some(2),
            sak: Some(0x20),
            ..Default::default()
        }),
        ..Default::default()
    }
    .zvt_serialize();
    let Message::StatusInformation(info) = ours_decode(&their_bytes) else {
        panic!("expected status information");
    };
    let f = &info.fields;
    assert_eq!(f.result_code(), Some(ResultCode::SUCCESS));
    assert_eq!(f.amount(), Some(amount(98_765)));
    assert_eq!(f.currency(), Some(CurrencyCode::EUR));
    assert_eq!(f.trace_number(), Some(977));
    assert_eq!(
        f.time(),
        Some(Time {
            hour: 22,
            minute: 55,
            second: 58
        })
    );
    assert_eq!(f.date(), Some(Date { month: 12, day: 31 }));
    assert_eq!(f.expiry_date(), Some(ExpiryDate { year: 29, month: 5 }));
    assert_eq!(f.card_sequence_number(), Some(2));
    assert_eq!(f.payment_type(), Some(0x60));
    assert_eq!(f.terminal_id(), Some(52_000_001));
    assert_eq!(
        f.vu_number().map(|v| v.trimmed()).as_deref(),
        Some("VU-TEST-0001")
    );
    assert_eq!(f.aid().map(|a| a.trimmed()).as_deref(), Some("A1B2C3D4"));
    assert_eq!(f.receipt_number(), Some(9999));
    assert_eq!(f.card_type(), Some(5));
    assert_eq!(f.card_type_id(), Some(0));
    assert_eq!(f.pan(), None);
    let tlv = f.tlv().expect("TLV");
    assert_eq!(tlv.get(0x1F4C).and_then(Tlv::as_u8), Some(2));
    assert_eq!(tlv.get(0x1F50).and_then(Tlv::as_u8), Some(0x20));
}

// ---------------------------------------------------------------- 06 1E

#[test]
fn abort() {
    let bytes = ours_bytes(Abort::new(ResultCode::ABORTED_BY_TIMEOUT_OR_KEY));
    assert_eq!(bytes, [0x06, 0x1E, 0x01, 0x6C]);
    let decoded: theirs::Abort = theirs_decode(&bytes);
    assert_eq!(decoded, theirs::Abort { error: 0x6C });

    let their_bytes = theirs::Abort { error: 0x05 }.zvt_serialize();
    let Message::Abort(abort) = ours_decode(&their_bytes) else {
        panic!("expected abort");
    };
    assert_eq!(abort.result_code, ResultCode(0x05));
    assert!(abort.fields.is_empty());
}

#[test]
fn abort_with_receipt_number() {
    // Partial-reversal abort: BMP 87 with a BCD number, and the FFFF marker.
    for (ours_field, theirs_value) in [
        (Bmp::ReceiptNumber(491), 491),
        (
            Bmp::Other {
                tag: 0x87,
                value: OpaqueBytes(vec![0xFF, 0xFF]),
            },
            0xFFFF,
        ),
    ] {
        let mut ours = Abort::new(ResultCode(0xB8));
        ours.fields.push(ours_field.clone());
        let bytes = ours_bytes(ours);
        let decoded: theirs::PartialReversalAbort = theirs_decode(&bytes);
        assert_eq!(
            decoded,
            theirs::PartialReversalAbort {
                error: 0xB8,
                receipt_no: Some(theirs_value),
            }
        );

        let their_bytes = theirs::PartialReversalAbort {
            error: 0xB8,
            receipt_no: Some(theirs_value),
        }
        .zvt_serialize();
        let Message::Abort(abort) = ours_decode(&their_bytes) else {
            panic!("expected abort");
        };
        assert_eq!(abort.result_code, ResultCode(0xB8));
        assert_eq!(abort.fields.fields, vec![ours_field]);
    }
}

// ---------------------------------------------------------------- 06 D3

const RECEIPT_LINES: [&str; 4] = [
    "  KUNDENBELEG",
    "Betrag:      EUR 12,34",
    "Kartenzahlung kontaktlos",
    "Vielen Dank, schön!",
];

#[test]
fn print_text_block_ours_to_theirs() {
    let lines = RECEIPT_LINES.iter().map(|line| text(line)).collect();
    let bytes = ours_bytes(PrintTextBlock::receipt(receipt_type::CUSTOMER, lines));
    let decoded: theirs::PrintTextBlock = theirs_decode(&bytes);
    let tlv = decoded.tlv.expect("their TLV");
    assert_eq!(tlv.receipt_type, Some(2));
    let lines = tlv.lines.expect("their lines");
    assert_eq!(lines.lines, RECEIPT_LINES);
    assert_eq!(lines.eol, None);
}

#[test]
fn print_text_block_theirs_to_ours() {
    let their_bytes = theirs::PrintTextBlock {
        tlv: Some(theirs::tlv::PrintTextBlock {
            receipt_type: Some(3),
            lines: Some(theirs::tlv::TextLines {
                lines: RECEIPT_LINES.iter().map(|line| line.to_string()).collect(),
                eol: Some(0xFF),
            }),
        }),
    }
    .zvt_serialize();
    let Message::PrintTextBlock(block) = ours_decode(&their_bytes) else {
        panic!("expected print text block");
    };
    assert_eq!(block.receipt_type(), Some(receipt_type::ADMINISTRATION));
    let lines: Vec<String> = block.lines().iter().map(Text::to_unicode).collect();
    assert_eq!(lines, RECEIPT_LINES);
    let eol = block.fields.tlv().and_then(|tlv| tlv.find(0x09));
    assert_eq!(eol.and_then(Tlv::as_u8), Some(0xFF));
}

#[test]
fn long_print_text_block_uses_extended_length() {
    // > 255 bytes of data: both sides use FF + little-endian u16 length.
    let lines: Vec<String> = (0..20)
        .map(|i| format!("Zeile {i:02} ......... ok"))
        .collect();
    let ours = PrintTextBlock::receipt(
        receipt_type::MERCHANT,
        lines.iter().map(|line| text(line)).collect(),
    );
    let bytes = ours_bytes(ours);
    assert_eq!(bytes[2], 0xFF);
    let decoded: theirs::PrintTextBlock = theirs_decode(&bytes);
    let tlv = decoded.tlv.expect("their TLV");
    assert_eq!(tlv.receipt_type, Some(1));
    assert_eq!(tlv.lines.expect("lines").lines, lines);

    let their_bytes = theirs::PrintTextBlock {
        tlv: Some(theirs::tlv::PrintTextBlock {
            receipt_type: Some(1),
            lines: Some(theirs::tlv::TextLines { lines, eol: None }),
        }),
    }
    .zvt_serialize();
    assert_eq!(their_bytes, bytes);
    ours_decode(&their_bytes);
}

// ---------------------------------------------------------------- 06 D1

#[test]
fn print_line() {
    let ours = PrintLine {
        attribute: 0x00,
        text: text("Summe        EUR 1,00 äöü"),
    };
    let bytes = ours_bytes(ours);
    let decoded: theirs::PrintLine = theirs_decode(&bytes);
    assert_eq!(decoded.attribute, 0);
    assert_eq!(decoded.text, "Summe        EUR 1,00 äöü");

    let their_bytes = theirs::PrintLine {
        attribute: 0xFF,
        text: "Ende ß".to_string(),
    }
    .zvt_serialize();
    let Message::PrintLine(line) = ours_decode(&their_bytes) else {
        panic!("expected print line");
    };
    assert_eq!(line.attribute, 0xFF);
    assert_eq!(line.text.to_unicode(), "Ende ß");
}

// ---------------------------------------------------------------- ECR -> PT

#[test]
fn registration() {
    let password = Password::from_number(123_456).unwrap();
    // (a) with and without TLV (1A: max APDU length, big-endian).
    let ours = Registration::new(password, 0xDE, Some(CurrencyCode::EUR));
    let bytes = ours_bytes(ours.clone());
    let decoded: theirs::Registration = theirs_decode(&bytes);
    assert_eq!(
        decoded,
        theirs::Registration {
            password: 123_456,
            config_byte: 0xDE,
            currency: Some(978),
            tlv: None,
        }
    );
    let with_tlv = ours.with(Bmp::Tlv(TlvList::new(vec![Tlv::primitive(
        0x1A,
        vec![0x04, 0x00],
    )])));
    let decoded: theirs::Registration = theirs_decode(&ours_bytes(with_tlv));
    assert_eq!(decoded.currency, Some(978));
    assert_eq!(
        decoded.tlv,
        Some(theirs::tlv::Registration {
            max_len_adpu: Some(1024)
        })
    );

    // (b) theirs -> ours.
    let their_bytes = theirs::Registration {
        password: 654_321,
        config_byte: 0xBA,
        currency: Some(986),
        tlv: Some(theirs::tlv::Registration {
            max_len_adpu: Some(0x0100),
        }),
    }
    .zvt_serialize();
    let Message::Registration(registration) = ours_decode(&their_bytes) else {
        panic!("expected registration");
    };
    assert_eq!(registration.password.number(), Some(654_321));
    assert_eq!(registration.config, 0xBA);
    assert_eq!(registration.currency, Some(CurrencyCode::BRL));
    let tlv = registration.fields.tlv().expect("TLV");
    assert_eq!(
        tlv.get(0x1A).and_then(Tlv::as_primitive),
        Some(&[0x01, 0x00][..])
    );
}

#[test]
fn end_of_day_and_read_card() {
    let password = Password::from_number(123_456).unwrap();
    let bytes = ours_bytes(EndOfDay::new(Some(password)));
    let decoded: theirs::EndOfDay = theirs_decode(&bytes);
    assert_eq!(decoded, theirs::EndOfDay { password: 123_456 });
    let their_bytes = theirs::EndOfDay { password: 4711 }.zvt_serialize();
    let Message::EndOfDay(end_of_day) = ours_decode(&their_bytes) else {
        panic!("expected end of day");
    };
    assert_eq!(end_of_day.password.and_then(|p| p.number()), Some(4711));

    let ours = ReadCard {
        timeout_seconds: 15,
        fields: BmpList::new()
            .with(Bmp::PaymentType(0x10))
            .with(Bmp::Other {
                tag: 0xFC,
                value: OpaqueBytes(vec![0x02]),
            }),
    };
    let decoded: theirs::ReadCard = theirs_decode(&ours_bytes(ours));
    assert_eq!(
        decoded,
        theirs::ReadCard {
            timeout_sec: 15,
            card_type: Some(0x10),
            dialog_control: Some(0x02),
            tlv: None,
        }
    );
    let their_bytes = theirs::ReadCard {
        timeout_sec: 30,
        card_type: Some(0x10),
        dialog_control: None,
        tlv: Some(theirs::tlv::ReadCard {
            card_reading_control: Some(0xD0),
            card_type: Some(0x07),
        }),
    }
    .zvt_serialize();
    let Message::ReadCard(read) = ours_decode(&their_bytes) else {
        panic!("expected read card");
    };
    assert_eq!(read.timeout_seconds, 30);
    assert_eq!(read.fields.payment_type(), Some(0x10));
    let tlv = read.fields.tlv().expect("TLV");
    assert_eq!(tlv.get(0x1F15).and_then(Tlv::as_u8), Some(0xD0));
    assert_eq!(tlv.get(0x1F60).and_then(Tlv::as_u8), Some(0x07));
}

// ---------------------------------------------------------------- differences

/// Where their encoder deviates from the ZVT spec, ours notices instead of
/// silently misreading.
#[test]
fn known_differences_their_encoder() {
    // 1. LL/LLL length prefixes: the spec writes each length digit as
    //    `F0`–`F9`; theirs writes plain `00`–`09` (their decoder accepts
    //    both). Ours cannot delimit such a field, so it stops there and
    //    keeps the rest as trailing bytes.
    let their_bytes = theirs::StatusInformation {
        result_code: Some(0),
        card_name: Some("TESTCARD".to_string()),
        ..Default::default()
    }
    .zvt_serialize();
    let name_at = their_bytes.iter().position(|&b| b == 0x8B).unwrap();
    assert_eq!(&their_bytes[name_at + 1..name_at + 3], &[0x00, 0x08]);
    let Message::StatusInformation(info) = Message::from_bytes(&their_bytes).unwrap() else {
        panic!("expected status information");
    };
    assert_eq!(info.fields.result_code(), Some(ResultCode::SUCCESS));
    assert_eq!(info.fields.card_name(), None);
    assert_eq!(info.fields.trailing.len(), 1 + 2 + 8);
    // ...and still re-encodes byte-identically.
    assert_eq!(Message::from(info).to_bytes().unwrap(), their_bytes);

    // 2. The LLL software version of a 06 0F completion is dropped by their
    //    (stub) UTF-8 encoder: only the length prefix is written.
    let their_bytes = theirs::ReceiptPrintoutCompletion {
        sw_version: "TEST-APP-v1.2.3".to_string(),
        terminal_status_code: 0,
        tlv: None,
    }
    .zvt_serialize();
    assert_eq!(their_bytes, [0x06, 0x0F, 0x04, 0x00, 0x00, 0x00, 0x00]);

    // 3. 04 FF timeout: theirs reads it as BCD, ours as a binary byte
    //    (agreeing for 0-9 only).
    let bytes = ours_bytes(IntermediateStatus {
        status: 0x0A,
        timeout: Some(0x10),
        fields: BmpList::new(),
    });
    let decoded: theirs::IntermediateStatusInformation = theirs_decode(&bytes);
    assert_eq!(decoded.timeout, Some(10));
}
