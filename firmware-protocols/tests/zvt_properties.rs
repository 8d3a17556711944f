//! Property tests: encode/decode round trips and no panics on arbitrary
//! input.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use firmware_protocols::zvt::bmp::{Amount, Bmp, BmpList, CurrencyCode, Date, ExpiryDate, Time};
use firmware_protocols::zvt::card::{Pan, TrackData};
use firmware_protocols::zvt::messages::{
    Abort, Authorization, Completion, CompletionBody, IntermediateStatus, PrintLine,
    PrintTextBlock, Registration, Reversal, StatusInformation,
};
use firmware_protocols::zvt::text::FixedText;
use firmware_protocols::zvt::tlv::{Tlv, TlvList, TlvValue};
use firmware_protocols::zvt::{
    Apdu, ControlField, FrameDecoder, FrameEvent, Message, Password, ResultCode, Text, encode_frame,
};
use proptest::prelude::*;

fn text(max: usize) -> impl Strategy<Value = Text> {
    prop::collection::vec(any::<u8>(), 0..max).prop_map(Text::from_bytes)
}

fn pan() -> impl Strategy<Value = Pan> {
    "[0-9*]{12,19}".prop_map(|digits| Pan::from_digits(&digits).unwrap())
}

fn bmp() -> impl Strategy<Value = Bmp> {
    prop_oneof![
        any::<u8>().prop_map(Bmp::Timeout),
        any::<u8>().prop_map(Bmp::ServiceByte),
        (0..=Amount::MAX).prop_map(|a| Bmp::Amount(Amount::from_minor_units(a).unwrap())),
        (0..1_000_000u32).prop_map(Bmp::TraceNumber),
        (0..100u8, 0..100u8, 0..100u8).prop_map(|(hour, minute, second)| Bmp::Time(Time {
            hour,
            minute,
            second
        })),
        (0..100u8, 0..100u8).prop_map(|(month, day)| Bmp::Date(Date { month, day })),
        (0..100u8, 0..100u8).prop_map(|(year, month)| Bmp::ExpiryDate(ExpiryDate { year, month })),
        (0..10_000u16).prop_map(Bmp::CardSequenceNumber),
        any::<u8>().prop_map(Bmp::PaymentType),
        pan().prop_map(Bmp::Pan),
        prop::collection::vec(any::<u8>(), 0..40)
            .prop_map(|b| Bmp::Track2(TrackData::from_bytes(b))),
        any::<u8>().prop_map(|c| Bmp::ResultCode(ResultCode(c))),
        (0..100_000_000u32).prop_map(Bmp::TerminalId),
        any::<[u8; 15]>().prop_map(|b| Bmp::VuNumber(FixedText::from_bytes(b))),
        any::<[u8; 8]>().prop_map(|b| Bmp::Aid(FixedText::from_bytes(b))),
        text(300).prop_map(Bmp::AdditionalText),
        (0..10_000u16).prop_map(|c| Bmp::Currency(CurrencyCode::new(c).unwrap())),
        (0..10_000u16).prop_map(Bmp::ReceiptNumber),
        (0..1_000_000u32).prop_map(Bmp::TurnoverNumber),
        any::<u8>().prop_map(Bmp::CardType),
        text(99).prop_map(Bmp::CardName),
        tlv_list().prop_map(Bmp::Tlv),
    ]
}

fn tlv_tag_primitive() -> impl Strategy<Value = u32> {
    prop_oneof![
        // One-byte primitive tags (constructed bit clear, not 0x1F-form).
        any::<u8>()
            .prop_filter("primitive one-byte", |b| b & 0x20 == 0 && b & 0x1F != 0x1F)
            .prop_map(u32::from),
        // Two-byte tags 1F xx.
        (0x00..0x80u32).prop_map(|b| 0x1F00 | b),
    ]
}

fn tlv_tag_constructed() -> impl Strategy<Value = u32> {
    any::<u8>()
        .prop_filter("constructed one-byte", |b| {
            b & 0x20 != 0 && b & 0x1F != 0x1F
        })
        .prop_map(u32::from)
}

fn tlv() -> impl Strategy<Value = Tlv> {
    let leaf = (
        tlv_tag_primitive(),
        prop::collection::vec(any::<u8>(), 0..300),
    )
        .prop_map(|(tag, value)| Tlv::primitive(tag, value));
    leaf.prop_recursive(3, 24, 5, |inner| {
        (tlv_tag_constructed(), prop::collection::vec(inner, 0..5))
            .prop_map(|(tag, children)| Tlv::constructed(tag, children))
    })
}

fn tlv_list() -> impl Strategy<Value = TlvList> {
    prop::collection::vec(tlv(), 0..4).prop_map(TlvList::new)
}

fn bmp_list() -> impl Strategy<Value = BmpList> {
    prop::collection::vec(bmp(), 0..8).prop_map(|fields| BmpList {
        fields,
        ..BmpList::default()
    })
}

fn registration_fields() -> impl Strategy<Value = BmpList> {
    let field = prop_oneof![
        any::<u8>().prop_map(Bmp::ServiceByte),
        tlv_list().prop_map(Bmp::Tlv)
    ];
    prop::collection::vec(field, 0..3).prop_map(|fields| BmpList {
        fields,
        ..BmpList::default()
    })
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        bmp_list().prop_map(|fields| Message::from(Authorization::new(fields))),
        bmp_list().prop_map(|fields| Message::from(StatusInformation::new(fields))),
        bmp_list().prop_map(|fields| Message::from(PrintTextBlock::new(fields))),
        (any::<u8>(), bmp_list()).prop_map(|(code, fields)| Message::from(Abort {
            result_code: ResultCode(code),
            fields
        })),
        (any::<u8>(), text(500))
            .prop_map(|(attribute, text)| Message::from(PrintLine { attribute, text })),
        (any::<u8>(), any::<u8>(), bmp_list()).prop_map(|(status, timeout, fields)| {
            Message::from(IntermediateStatus {
                status,
                timeout: Some(timeout),
                fields,
            })
        }),
        any::<u8>().prop_map(|status| Message::from(IntermediateStatus::new(status))),
        // Registration carries only BMPs 03 and 06 (the untagged currency is
        // recognised by not starting with either).
        (
            0..1_000_000u32,
            any::<u8>(),
            prop::option::of(0x0900..0x1000u16),
            registration_fields()
        )
            .prop_map(|(password, config, currency, fields)| {
                Message::from(Registration {
                    password: Password::from_number(password).unwrap(),
                    config,
                    currency: currency.and_then(CurrencyCode::new),
                    fields,
                })
            }),
        // Passwords starting 00 can never be read as a BMP tag.
        (0..10_000u32, 0..10_000u16).prop_map(|(password, receipt)| {
            Message::from(Reversal::of_receipt(
                Password::from_number(password).unwrap(),
                receipt,
            ))
        }),
        (text(200), any::<u8>(), bmp_list()).prop_map(|(version, terminal_status, fields)| {
            Message::from(Completion {
                body: CompletionBody::SoftwareVersion {
                    version,
                    terminal_status,
                    fields,
                },
            })
        }),
    ]
}

proptest! {
    #[test]
    fn frame_round_trip(apdu in prop::collection::vec(any::<u8>(), 0..600)) {
        let events = FrameDecoder::new().feed(&encode_frame(&apdu));
        prop_assert_eq!(events, vec![FrameEvent::Frame(apdu)]);
    }

    #[test]
    fn frame_round_trip_chunked(
        apdus in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..100), 1..5),
        chunk in 1usize..17,
    ) {
        let stream: Vec<u8> = apdus.iter().flat_map(|a| encode_frame(a)).collect();
        let mut decoder = FrameDecoder::new();
        let events: Vec<FrameEvent> = stream.chunks(chunk).flat_map(|c| decoder.feed(c)).collect();
        let expected: Vec<FrameEvent> = apdus.into_iter().map(FrameEvent::Frame).collect();
        prop_assert_eq!(events, expected);
    }

    #[test]
    fn apdu_round_trip(class: u8, instr: u8, data in prop::collection::vec(any::<u8>(), 0..700)) {
        let apdu = Apdu::new(ControlField::new(class, instr), data).unwrap();
        let bytes = apdu.to_bytes();
        prop_assert_eq!(Apdu::decode(&bytes).unwrap(), apdu);
    }

    #[test]
    fn tlv_round_trip(list in tlv_list()) {
        let bytes = list.to_bytes().unwrap();
        prop_assert_eq!(TlvList::decode(&bytes).unwrap(), list);
    }

    #[test]
    fn bmp_list_round_trip(list in bmp_list()) {
        let bytes = list.to_bytes().unwrap();
        prop_assert_eq!(BmpList::decode(&bytes), list);
    }

    #[test]
    fn message_round_trip(message in message()) {
        let apdu = message.to_apdu().unwrap();
        prop_assert_eq!(Message::decode(&apdu).unwrap(), message);
    }

    #[test]
    fn frame_decoder_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..2000)) {
        let mut decoder = FrameDecoder::new();
        let _ = decoder.feed(&bytes);
    }

    #[test]
    fn frame_decoder_survives_frame_like_noise(
        bytes in prop::collection::vec(prop_oneof![Just(0x10u8), Just(0x02), Just(0x03), any::<u8>()], 0..500)
    ) {
        let mut decoder = FrameDecoder::new();
        let _ = decoder.feed(&bytes);
        // Whatever came before, a reset decoder reads a clean frame.
        decoder.reset();
        prop_assert_eq!(decoder.feed(&encode_frame(&[0x80, 0x00, 0x00])), vec![FrameEvent::Frame(vec![0x80, 0x00, 0x00])]);
    }

    #[test]
    fn apdu_decoder_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = Apdu::decode(&bytes);
        let _ = Apdu::decode_prefix(&bytes);
    }

    #[test]
    fn decoded_bytes_always_re_encode_identically(
        control in prop_oneof![
            Just((0x04u8, 0x0Fu8)), Just((0x04, 0xFF)), Just((0x06, 0x00)), Just((0x06, 0x01)),
            Just((0x06, 0x0F)), Just((0x06, 0x1E)), Just((0x06, 0x30)), Just((0x06, 0xC0)),
            Just((0x06, 0xD1)), Just((0x06, 0xD3)), Just((0x05, 0x01)), Just((0x80, 0x00)),
            Just((0x84, 0x83)), Just((0x0F, 0xA1)), any::<(u8, u8)>(),
        ],
        data in prop::collection::vec(any::<u8>(), 0..400),
    ) {
        let apdu = Apdu::new(ControlField::new(control.0, control.1), data).unwrap();
        if let Ok(message) = Message::decode(&apdu) {
            let _ = format!("{message:?}");
            let encoded = message.to_apdu().unwrap();
            prop_assert!(encoded == apdu, "re-encoding differs");
        }
    }

    #[test]
    fn message_decoder_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(message) = Message::from_bytes(&bytes) {
            let _ = message.to_bytes();
        }
    }
}

#[test]
fn tlv_values_are_compared_structurally() {
    // A constructed TLV holds children, not bytes.
    let tlv = Tlv::constructed(0x25, vec![Tlv::primitive(0x07, b"x".to_vec())]);
    assert!(matches!(tlv.value, TlvValue::Constructed(ref c) if c.len() == 1));
}
