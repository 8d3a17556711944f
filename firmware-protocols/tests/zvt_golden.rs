//! Golden tests: every APDU from the shared captures decodes into a typed
//! message (or an opaque vendor message) and re-encodes byte-identically.
//!
//! Data sources (see `shared/terminal-data/README.md`): wirelane/ecrterm
//! test vectors (LGPL-3.0 test data), Portalum.Zvt simulator replies (MIT),
//! EVerest/zvt Feig captures (MIT OR Apache-2.0). Nothing is copied here;
//! the files are read at run time.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use common::{
    ecrterm_apdus, everest_blob, everest_blobs, misc_vector, misc_vectors, nibble_string,
};
use firmware_protocols::zvt::bmp::{Amount, Bmp, Date, ExpiryDate, Time};
use firmware_protocols::zvt::messages::{CompletionBody, is_vendor_specific};
use firmware_protocols::zvt::tlv::receipt_type;
use firmware_protocols::zvt::{Apdu, CurrencyCode, Message, ResultCode};

/// Decodes, checks the typed/opaque classification and byte-identical
/// re-encoding. Never prints the bytes (some captures hold card numbers).
fn round_trip(name: &str, bytes: &[u8]) -> Message {
    let apdu = Apdu::decode(bytes).unwrap_or_else(|e| panic!("{name}: APDU error {e}"));
    let message = Message::decode(&apdu).unwrap_or_else(|e| panic!("{name}: message error {e}"));
    if is_vendor_specific(apdu.control()) {
        assert!(
            matches!(message, Message::Vendor(_)),
            "{name}: vendor message must stay opaque"
        );
    } else {
        assert!(
            !message.is_opaque(),
            "{name}: standard message decoded as opaque"
        );
        if let Some(fields) = message.bmp_fields() {
            assert!(
                fields.is_fully_decoded(),
                "{name}: {} undecoded trailing bytes",
                fields.trailing.len()
            );
        }
    }
    let encoded = message
        .to_bytes()
        .unwrap_or_else(|e| panic!("{name}: encode error {e}"));
    assert!(
        encoded == bytes,
        "{name}: re-encoding differs from the capture"
    );
    message
}

fn all_apdus() -> Vec<(String, Vec<u8>)> {
    let mut all: Vec<(String, Vec<u8>)> = ecrterm_apdus()
        .into_iter()
        .enumerate()
        .map(|(i, bytes)| (format!("ecrterm line {}", i + 1), bytes))
        .collect();
    all.extend(misc_vectors());
    all.extend(everest_blobs());
    all
}

fn amount(units: u64) -> Option<Amount> {
    Amount::from_minor_units(units)
}

#[test]
fn every_capture_round_trips() {
    let all = all_apdus();
    assert_eq!(all.len(), 11 + 4 + 25);
    let vendor: Vec<String> = all
        .iter()
        .filter(|(name, bytes)| round_trip(name, bytes).is_opaque())
        .map(|(name, _)| name.clone())
        .collect();
    assert_eq!(
        vendor,
        [
            "1680761818.690979000_ecr_pt.blob",
            "1682080275.594788000_192.168.0.139_192.168.0.59.blob",
            "1682080275.777628000_192.168.0.59_192.168.0.139.blob",
            "change_host_config.blob",
        ]
    );
}

#[test]
fn debug_output_never_contains_card_numbers() {
    for (name, bytes) in all_apdus() {
        let message = round_trip(&name, &bytes);
        let debug = format!("{message:?}");
        let Some(fields) = message.bmp_fields() else {
            continue;
        };
        for field in &fields.fields {
            let secret = match field {
                Bmp::Pan(pan) => pan.as_bytes(),
                Bmp::Track2(track) | Bmp::Track3(track) | Bmp::Track1(track) => track.as_bytes(),
                _ => continue,
            };
            let digits = nibble_string(secret);
            // Anything longer than first-6 + last-4 must not appear.
            for window in digits.as_bytes().windows(7) {
                let window = std::str::from_utf8(window).unwrap();
                if window.chars().all(|c| c.is_ascii_digit()) {
                    assert!(!debug.contains(window), "{name}: Debug leaks card digits");
                }
            }
        }
    }
}

#[test]
fn ecrterm_print_line() {
    let apdus = ecrterm_apdus();
    let Message::PrintLine(line) = round_trip("print line", &apdus[0]) else {
        panic!("expected print line");
    };
    assert_eq!(line.attribute, 0);
    assert_eq!(line.text.to_unicode().trim(), "Kassenschnitt");

    let Message::PrintLine(line) = round_trip("print line umlauts", &apdus[10]) else {
        panic!("expected print line");
    };
    assert_eq!(line.text.to_unicode(), "Test ä ö ü ß");
}

#[test]
fn ecrterm_status_information_unmasked_pan_card() {
    let Message::StatusInformation(info) = round_trip("status", &ecrterm_apdus()[1]) else {
        panic!("expected status information");
    };
    let f = &info.fields;
    assert_eq!(f.result_code(), Some(ResultCode::SUCCESS));
    assert_eq!(f.amount(), amount(4000));
    assert_eq!(f.currency(), Some(CurrencyCode::EUR));
    assert_eq!(
        f.time(),
        Some(Time {
            hour: 9,
            minute: 38,
            second: 48
        })
    );
    assert_eq!(f.date(), Some(Date { month: 4, day: 25 }));
    assert_eq!(f.card_sequence_number(), Some(1));
    assert_eq!(f.receipt_number(), Some(175));
    assert_eq!(f.trace_number(), Some(613_995));
    assert_eq!(f.payment_type(), Some(0x40));
    assert_eq!(f.terminal_id(), Some(60_099_914));
    assert_eq!(f.expiry_date(), Some(ExpiryDate { year: 5, month: 12 }));
    assert_eq!(f.card_type(), Some(2));
    assert!(f.pan().is_some());
}

#[test]
fn ecrterm_status_information_masked_pan() {
    let apdus = ecrterm_apdus();
    for (index, expected_amount) in [(6, 1), (7, 1000)] {
        let Message::StatusInformation(info) = round_trip("status", &apdus[index]) else {
            panic!("expected status information");
        };
        let f = &info.fields;
        assert_eq!(f.result_code(), Some(ResultCode::SUCCESS));
        assert_eq!(f.amount(), amount(expected_amount));
        assert_eq!(f.currency().map(CurrencyCode::code), Some(978));
        let pan = f.pan().expect("masked PAN");
        assert!(pan.is_masked());
        assert_eq!(pan.first6().as_deref(), Some("474843"));
        assert_eq!(pan.last4().as_deref(), Some("7743"));
        assert_eq!(format!("{pan:?}"), "Pan(474843******7743)");
        assert_eq!(f.receipt_number(), Some(2));
        assert_eq!(f.terminal_id(), Some(42_003_036));
        assert_eq!(f.card_name().map(|n| n.trimmed()).as_deref(), Some("VISA"));
        assert_eq!(
            f.vu_number().map(|v| v.trimmed()).as_deref(),
            Some("455600000599")
        );
        assert_eq!(f.aid().map(|a| a.trimmed()).as_deref(), Some("889150"));
        assert_eq!(f.card_type(), Some(10));
        assert_eq!(f.card_type_id(), Some(3));
        let text = f.additional_text().expect("additional text").to_unicode();
        assert!(text.starts_with("AS-TID = 13F00013\r"));
    }
    let Message::StatusInformation(info) = round_trip("status tlv", &apdus[7]) else {
        panic!("expected status information");
    };
    let tlv = info.fields.tlv().expect("TLV container");
    assert_eq!(
        tlv.get(0x41).and_then(|t| t.as_primitive()),
        Some(&[0x00, 0x0A][..])
    );
    assert!(tlv.find(0x1F10).is_some());
}

#[test]
fn ecrterm_registration_completion_authorization() {
    let apdus = ecrterm_apdus();
    let Message::Registration(registration) = round_trip("registration", &apdus[2]) else {
        panic!("expected registration");
    };
    assert_eq!(registration.password.number(), Some(0));
    assert_eq!(registration.config, 0xFE);
    assert_eq!(registration.currency, Some(CurrencyCode::EUR));
    assert_eq!(registration.fields.service_byte(), Some(0));
    assert!(registration.fields.tlv().is_some());

    let Message::Completion(completion) = round_trip("completion", &apdus[3]) else {
        panic!("expected completion");
    };
    let fields = completion.fields().expect("BMPs");
    assert_eq!(fields.payment_type(), Some(0x00));
    assert_eq!(fields.terminal_id(), Some(52_001_233));
    assert_eq!(fields.currency(), Some(CurrencyCode::EUR));

    let Message::Authorization(authorization) = round_trip("authorization", &apdus[4]) else {
        panic!("expected authorization");
    };
    assert_eq!(authorization.fields.amount(), amount(1000));
    assert_eq!(authorization.fields.payment_type(), Some(0x44));
    assert_eq!(authorization.fields.currency(), Some(CurrencyCode::EUR));
    assert_eq!(
        authorization.fields.get(0x02),
        Some(&Bmp::MaxStatusInfos(1))
    );
}

#[test]
fn ecrterm_intermediate_status_with_display_text() {
    let apdus = ecrterm_apdus();
    for (index, expected) in [(5, "Bitte Karte einstecken"), (9, "Test ä ö ü ß")] {
        let Message::IntermediateStatus(status) = round_trip("intermediate", &apdus[index]) else {
            panic!("expected intermediate status");
        };
        assert_eq!(status.status, 0x0A);
        assert_eq!(status.text(), Some("Insert card"));
        assert_eq!(status.timeout, Some(1));
        let line = status
            .fields
            .tlv()
            .and_then(|tlv| tlv.find(0x07))
            .and_then(|t| t.as_primitive())
            .expect("display line");
        assert_eq!(
            firmware_protocols::zvt::Text::from_bytes(line).to_unicode(),
            expected
        );
    }
}

#[test]
fn ecrterm_extended_length_print_text_block() {
    let bytes = &ecrterm_apdus()[8];
    let apdu = Apdu::decode(bytes).unwrap();
    assert_eq!(apdu.data().len(), 995);
    assert!(apdu.uses_extended_length());
    let Message::PrintTextBlock(block) = round_trip("print text block", bytes) else {
        panic!("expected print text block");
    };
    assert_eq!(block.receipt_type(), Some(receipt_type::CUSTOMER));
    let lines = block.lines();
    assert_eq!(lines.len(), 30);
    assert_eq!(lines[1].to_unicode().trim(), "** Kundenbeleg **");
}

#[test]
fn portalum_replies() {
    assert_eq!(
        round_trip("ack", &misc_vector("command_completion")),
        Message::ack()
    );
    assert!(matches!(
        round_trip("completion", &misc_vector("completion")),
        Message::Completion(c) if c.body == CompletionBody::default()
    ));
    let Message::IntermediateStatus(status) = round_trip(
        "insert card",
        &misc_vector("intermediate_status_insert_card"),
    ) else {
        panic!("expected intermediate status");
    };
    assert_eq!((status.status, status.timeout), (0x0A, None));

    let Message::StatusInformation(info) = round_trip("status", &misc_vector("status_information"))
    else {
        panic!("expected status information");
    };
    let f = &info.fields;
    assert_eq!(f.result_code(), Some(ResultCode::SUCCESS));
    assert_eq!(f.amount(), amount(2040));
    assert_eq!(f.trace_number(), Some(470));
    assert_eq!(f.receipt_number(), Some(470));
    assert_eq!(f.turnover_number(), Some(470));
    assert_eq!(f.terminal_id(), Some(28_004_869));
    assert_eq!(f.currency(), Some(CurrencyCode::EUR));
    assert_eq!(
        f.expiry_date(),
        Some(ExpiryDate {
            year: 25,
            month: 12
        })
    );
    assert_eq!(f.payment_type(), Some(0x70));
    let pan = f.pan().expect("masked PAN");
    assert_eq!(pan.first6(), None);
    assert_eq!(pan.last4().as_deref(), Some("4771"));
    assert_eq!(
        f.card_name().map(|n| n.trimmed()).as_deref(),
        Some("Debit Mastercard")
    );
    assert_eq!(
        f.additional_text().map(|t| t.to_unicode()).as_deref(),
        Some("GEN.NR.:611804")
    );
}

#[test]
fn everest_commands() {
    let Message::ReadCard(read) = round_trip(
        "read card",
        &everest_blob("1680722649.972316000_ecr_pt.blob"),
    ) else {
        panic!("expected read card");
    };
    assert_eq!(read.timeout_seconds, 15);
    assert_eq!(read.fields.payment_type(), Some(0x10));
    assert_eq!(
        read.fields.get(0xFC).and_then(|b| b.value_bytes().ok()),
        Some(vec![2])
    );

    let Message::PreAuthorization(pre) = round_trip(
        "pre-auth",
        &everest_blob("1680728162.033575000_ecr_pt.blob"),
    ) else {
        panic!("expected pre-authorisation");
    };
    assert_eq!(pre.fields.amount(), amount(2500));
    assert_eq!(pre.fields.currency(), Some(CurrencyCode::EUR));

    let Message::PreAuthReversal(reversal) = round_trip(
        "pre-auth reversal",
        &everest_blob("1680728213.562478000_ecr_pt.blob"),
    ) else {
        panic!("expected pre-auth reversal");
    };
    assert_eq!(reversal.password, None);
    assert_eq!(reversal.fields.receipt_number(), Some(231));

    let Message::PartialReversal(partial) = round_trip(
        "partial reversal",
        &everest_blob("1681455683.221609000_ecr_pt.blob"),
    ) else {
        panic!("expected partial reversal");
    };
    assert_eq!(partial.password, None);
    assert_eq!(partial.fields.receipt_number(), Some(491));
    assert_eq!(partial.fields.amount(), amount(1295));

    let Message::Registration(registration) = round_trip(
        "registration",
        &everest_blob("1681273860.511128000_ecr_pt.blob"),
    ) else {
        panic!("expected registration");
    };
    assert_eq!(registration.password.number(), Some(123_456));
    assert_eq!(registration.config, 0xDE);
    assert_eq!(registration.currency, Some(CurrencyCode::EUR));

    let Message::EndOfDay(end_of_day) = round_trip(
        "end of day",
        &everest_blob("1681282621.302434000_ecr_pt.blob"),
    ) else {
        panic!("expected end of day");
    };
    assert_eq!(end_of_day.password.and_then(|p| p.number()), Some(123_456));
    assert!(end_of_day.fields.is_empty());
}

#[test]
fn everest_status_information() {
    let Message::StatusInformation(info) =
        round_trip("status", &everest_blob("1680728165.675509000_pt_ecr.blob"))
    else {
        panic!("expected status information");
    };
    let f = &info.fields;
    assert_eq!(f.result_code(), Some(ResultCode::SUCCESS));
    assert_eq!(f.amount(), amount(2500));
    assert_eq!(f.currency(), Some(CurrencyCode::EUR));
    assert_eq!(f.receipt_number(), Some(231));
    assert_eq!(f.trace_number(), Some(975));
    assert_eq!(f.terminal_id(), Some(52_523_535));
    assert_eq!(
        f.card_name().map(|n| n.trimmed()).as_deref(),
        Some("MasterCard")
    );
    assert_eq!(
        f.vu_number().map(|v| v.trimmed()).as_deref(),
        Some("804011926")
    );
    assert_eq!(f.card_type(), Some(6));
    let pan = f.pan().expect("PAN");
    assert_eq!(pan.len(), 16);
    assert!(pan.first6().is_some() && pan.last4().is_some());

    let Message::StatusInformation(info) =
        round_trip("status", &everest_blob("1682066249.409078000_pt_ecr.blob"))
    else {
        panic!("expected status information");
    };
    assert_eq!(info.fields.receipt_number(), Some(249));
    assert_eq!(info.fields.trace_number(), Some(1012));
    assert_eq!(info.fields.card_sequence_number(), Some(2));
    assert_eq!(
        info.fields.card_name().map(|n| n.trimmed()).as_deref(),
        Some("girocard")
    );

    let Message::StatusInformation(info) = round_trip(
        "end-of-day status",
        &everest_blob("1680761828.489701000_pt_ecr.blob"),
    ) else {
        panic!("expected status information");
    };
    assert_eq!(info.fields.amount(), amount(958));
    assert_eq!(info.fields.trace_number(), Some(982));

    let Message::StatusInformation(info) = round_trip(
        "read card",
        &everest_blob("status_information_read_card.blob"),
    ) else {
        panic!("expected status information");
    };
    let track = info.fields.track2().expect("track 2");
    assert_eq!(format!("{track:?}"), "TrackData(<19 bytes redacted>)");
}

#[test]
fn everest_receipts_completion_abort() {
    let Message::PrintTextBlock(block) = round_trip(
        "customer receipt",
        &everest_blob("1680728215.585561000_pt_ecr.blob"),
    ) else {
        panic!("expected print text block");
    };
    assert_eq!(block.receipt_type(), Some(receipt_type::CUSTOMER));
    assert_eq!(block.lines().len(), 33);

    let Message::PrintTextBlock(block) = round_trip(
        "system report",
        &everest_blob("print_system_configuration_reply.blob"),
    ) else {
        panic!("expected print text block");
    };
    assert_eq!(block.receipt_type(), Some(receipt_type::ADMINISTRATION));
    assert_eq!(block.lines().len(), 118);

    let Message::Completion(completion) = round_trip(
        "completion",
        &everest_blob("1680728219.054216000_pt_ecr.blob"),
    ) else {
        panic!("expected completion");
    };
    let CompletionBody::SoftwareVersion {
        version,
        terminal_status,
        fields,
    } = &completion.body
    else {
        panic!("expected software version completion");
    };
    assert_eq!(
        version.to_unicode(),
        "GER-APP-v2.0.9;cS02.01.01-10.10-2-2;CC26"
    );
    assert_eq!(*terminal_status, 0);
    assert!(fields.tlv().is_some());

    let Message::Completion(completion) = round_trip(
        "completion",
        &everest_blob("1680761818.641601000_pt_ecr.blob"),
    ) else {
        panic!("expected completion");
    };
    let fields = completion.fields().expect("BMPs");
    assert_eq!(fields.payment_type(), Some(0x10));
    assert_eq!(fields.terminal_id(), Some(52_523_535));

    let Message::Completion(completion) = round_trip(
        "feig completion",
        &everest_blob("1680761818.768770000_pt_ecr.blob"),
    ) else {
        panic!("expected completion");
    };
    assert!(matches!(completion.body, CompletionBody::Opaque(_)));

    let Message::IntermediateStatus(status) = round_trip(
        "please wait",
        &everest_blob("1680728162.647465000_pt_ecr.blob"),
    ) else {
        panic!("expected intermediate status");
    };
    assert_eq!(status.status, 0x17);

    let Message::Abort(abort) = round_trip("abort", &everest_blob("partial_reversal.blob")) else {
        panic!("expected abort");
    };
    assert_eq!(abort.result_code, ResultCode(0xB8));
    assert_eq!(abort.result_code.text(), Some("error pre-authorisation"));
    assert_eq!(abort.fields.receipt_number(), None);
    assert_eq!(
        abort.fields.get(0x87).and_then(|b| b.value_bytes().ok()),
        Some(vec![0xFF, 0xFF])
    );

    let Message::PositiveAck(ack) = round_trip(
        "ack with file data",
        &everest_blob("1682080310.907262000_192.168.0.139_192.168.0.59.blob"),
    ) else {
        panic!("expected positive ack");
    };
    assert!(ack.fields.tlv().is_some());
}
