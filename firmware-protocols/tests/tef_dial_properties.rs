//! Property tests of the TEF Dial codec: round trips, no panics on any
//! bytes, and a file cut before its trailer is never a record.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use firmware_protocols::tef_dial::message::MAX_REQUEST_ID;
use firmware_protocols::tef_dial::{
    Answer, Cancellation, CardType, Confirmation, ConfirmationNeed, FieldId, Financing,
    Installments, Operation, ParseError, Record, Request, Sale,
};
use proptest::prelude::*;

/// Latin-1 text without control characters (what `encode` accepts).
fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(prop_oneof![0x20u32..0x7F, 0xA0u32..=0xFF], 0..24)
        .prop_map(|codes| codes.into_iter().filter_map(char::from_u32).collect())
}

/// Text that clients would not quote: no `"` anywhere.
fn bare_text() -> impl Strategy<Value = String> {
    text().prop_map(|text| text.replace('"', "'"))
}

fn field_id() -> impl Strategy<Value = FieldId> {
    (0u16..=999, 0u16..=999)
        .prop_filter("the trailer key", |(n, i)| !(*n == 999 && *i == 999))
        .prop_map(|(number, index)| FieldId::new(number, index))
}

fn record() -> impl Strategy<Value = Record> {
    prop::collection::vec((field_id(), text()), 0..20).prop_map(|fields| {
        fields
            .into_iter()
            .fold(Record::new(), |record, (id, value)| record.with(id, value))
    })
}

fn id() -> impl Strategy<Value = u64> {
    0..=MAX_REQUEST_ID
}

fn amount() -> impl Strategy<Value = u64> {
    0u64..=999_999_999_999
}

fn card_type() -> impl Strategy<Value = CardType> {
    prop_oneof![Just(CardType::Credit), Just(CardType::Debit)]
}

fn confirmation() -> impl Strategy<Value = Confirmation> {
    (id(), bare_text(), text(), prop::option::of(text())).prop_map(
        |(id, network, nsu, finalization)| Confirmation {
            id,
            network,
            nsu,
            finalization,
        },
    )
}

fn request() -> impl Strategy<Value = Request> {
    let installments = prop::option::of((
        2u16..=99,
        prop_oneof![Just(Financing::Merchant), Just(Financing::Issuer)],
    ))
    .prop_map(|installments| {
        installments.map(|(count, financing)| Installments { count, financing })
    });
    prop_oneof![
        id().prop_map(|id| Request::Atv { id }),
        (id(), text(), amount(), card_type(), installments).prop_map(
            |(id, document, amount_cents, card_type, installments)| Request::Crt(Sale {
                id,
                document,
                amount_cents,
                card_type,
                installments,
            })
        ),
        (id(), bare_text(), text(), text(), text(), amount()).prop_map(
            |(id, network, nsu, date, time, amount_cents)| Request::Cnc(Cancellation {
                id,
                network,
                nsu,
                date,
                time,
                amount_cents,
            })
        ),
        confirmation().prop_map(Request::Cnf),
        confirmation().prop_map(Request::Ncn),
    ]
}

fn answer() -> impl Strategy<Value = Answer> {
    let operation = prop_oneof![Just(Operation::Crt), Just(Operation::Cnc)];
    let lines = || prop::collection::vec(text(), 0..5);
    (
        (operation, id(), text(), prop::option::of(amount())),
        (
            prop::option::of(bare_text()),
            prop::option::of(text()),
            prop::option::of(text()),
            prop::option::of(text()),
        ),
        (
            prop::option::of(text()),
            prop::option::of(text()),
            prop::option::of(text()),
            prop::option::of(bare_text()),
            prop::option::of(bare_text()),
            prop::option::of(text()),
        ),
        (
            prop::option::of(card_type()),
            prop_oneof![
                Just(ConfirmationNeed::Required),
                Just(ConfirmationNeed::NotRequired)
            ],
            lines(),
            lines(),
            lines(),
        ),
    )
        .prop_map(
            |(
                (operation, id, status, amount_cents),
                (network, transaction_type, nsu, authorization_code),
                (date, time, finalization, operator_message, brand, masked_pan),
                (card_type, confirmation, receipt, customer_receipt, merchant_receipt),
            )| Answer {
                network,
                transaction_type,
                nsu,
                authorization_code,
                amount_cents,
                date,
                time,
                finalization,
                operator_message,
                brand,
                masked_pan,
                card_type,
                confirmation,
                receipt,
                customer_receipt,
                merchant_receipt,
                ..Answer::new(operation, id, status)
            },
        )
}

proptest! {
    #[test]
    fn records_round_trip(record in record()) {
        let bytes = record.encode().unwrap();
        prop_assert_eq!(Record::parse(&bytes).unwrap(), record);
    }

    #[test]
    fn parse_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = Record::parse(&bytes);
    }

    #[test]
    fn parse_never_panics_on_near_valid_lines(
        lines in prop::collection::vec("[0-9 =\\-\r\n]{0,16}", 0..12)
    ) {
        let _ = Record::parse(lines.concat().as_bytes());
    }

    #[test]
    fn a_file_cut_before_its_trailer_is_incomplete(record in record(), cut in any::<prop::sample::Index>()) {
        let bytes = record.encode().unwrap();
        let trailer_start = bytes.len() - b"999-999 = 0\r\n".len();
        // Every prefix that ends before the trailer line is whole.
        let prefix = &bytes[..cut.index(trailer_start + 1)];
        prop_assert_eq!(Record::parse(prefix), Err(ParseError::Incomplete));
    }

    #[test]
    fn a_file_cut_inside_its_trailer_is_incomplete(record in record(), cut in 0usize..11) {
        let bytes = record.encode().unwrap();
        let trailer_start = bytes.len() - b"999-999 = 0\r\n".len();
        prop_assert_eq!(
            Record::parse(&bytes[..trailer_start + cut]),
            Err(ParseError::Incomplete)
        );
    }

    #[test]
    fn requests_round_trip(request in request()) {
        let bytes = request.to_record().encode().unwrap();
        prop_assert_eq!(Request::from_record(&Record::parse(&bytes).unwrap()).unwrap(), request);
    }

    #[test]
    fn answers_round_trip(answer in answer()) {
        let bytes = answer.to_record().encode().unwrap();
        prop_assert_eq!(Answer::from_record(&Record::parse(&bytes).unwrap()).unwrap(), answer);
    }
}
