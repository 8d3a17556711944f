//! The properties the fuzz targets check, one function per target.
//!
//! Each function takes the raw fuzzer input, drives one layer of the ZVT
//! codec with it and panics (through `assert!`) if an invariant breaks. The
//! same file is compiled into `firmware-protocols/tests/fuzz_corpus_replay.rs`
//! (via `#[path]`), so the committed corpus and crash artifacts are replayed
//! by a plain `cargo test` on stable.
//!
//! Assertion messages never print input bytes: fuzz inputs may resemble card
//! data.

#![allow(clippy::panic, clippy::indexing_slicing, clippy::expect_used)]

use firmware_protocols::zvt::exchange::ExchangeOptions;
use firmware_protocols::zvt::frame::{ACK, NAK};
use firmware_protocols::zvt::messages::{Authorization, EndOfDay, Registration, StatusEnquiry};
use firmware_protocols::zvt::{
    Action, Amount, Apdu, ApduError, CurrencyCode, EcrExchange, ExchangeEvent, FrameDecoder,
    FrameEvent, Message, Password, ResultCode, Timer, encode_frame,
};

/// Upper bound on input sizes worth looking at; larger inputs are cut so a
/// run stays fast (frames and APDUs are at most ~64 KiB anyway).
const MAX_INPUT: usize = 1 << 17;

fn bounded(data: &[u8]) -> &[u8] {
    data.get(..MAX_INPUT).unwrap_or(data)
}

/// Chunk lengths derived from a seed byte (a small xorshift generator), so
/// one input exercises one arbitrary split of the byte stream.
struct Chunker {
    state: u32,
}

impl Chunker {
    fn new(seed: u8) -> Self {
        Self {
            state: 0x9E37_79B9 ^ u32::from(seed).wrapping_mul(0x0101_0101),
        }
    }

    fn next_len(&mut self) -> usize {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 17;
        self.state ^= self.state << 5;
        // Mostly tiny chunks (the interesting boundaries), sometimes big.
        match self.state % 8 {
            0..=3 => 1 + (self.state >> 8) as usize % 3,
            4..=6 => 1 + (self.state >> 8) as usize % 16,
            _ => 1 + (self.state >> 8) as usize % 512,
        }
    }
}

/// Serial transport: arbitrary bytes in an arbitrary chunking.
///
/// * the events do not depend on the chunking (first byte picks it);
/// * every accepted frame payload, re-framed with `encode_frame`, decodes to
///   exactly that frame again, whatever decoder state came before it ends;
/// * `reply()` is ACK for frames, NAK for rejections, nothing otherwise.
pub fn zvt_frame_decoder(data: &[u8]) {
    let data = bounded(data);
    let Some((&seed, stream)) = data.split_first() else {
        return;
    };

    let whole = FrameDecoder::new().feed(stream);

    let mut decoder = FrameDecoder::new();
    let mut chunked = Vec::new();
    let mut chunker = Chunker::new(seed);
    let mut rest = stream;
    while !rest.is_empty() {
        let len = chunker.next_len().min(rest.len());
        let (chunk, tail) = rest.split_at(len);
        chunked.extend(decoder.feed(chunk));
        rest = tail;
    }
    assert!(whole == chunked, "events depend on the chunking");

    for event in &whole {
        match event {
            FrameEvent::Frame(payload) => {
                assert_eq!(event.reply(), Some(ACK));
                let frame = encode_frame(payload);
                let again = FrameDecoder::new().feed(&frame);
                assert!(
                    again == vec![FrameEvent::Frame(payload.clone())],
                    "a received frame does not survive re-framing"
                );
            }
            FrameEvent::Rejected(_) => assert_eq!(event.reply(), Some(NAK)),
            _ => assert_eq!(event.reply(), None),
        }
    }

    // After a reset the decoder is fresh: a clean frame decodes alone.
    decoder.reset();
    assert!(!decoder.in_frame());
    let probe = [0x80, 0x00, 0x00];
    assert!(decoder.feed(&encode_frame(&probe)) == vec![FrameEvent::Frame(probe.to_vec())]);
}

/// APDU layer: `Apdu::decode` and the stream splitter `decode_prefix`.
///
/// * whatever decodes re-encodes byte-identically;
/// * `decode_prefix` agrees with `decode` and splits a stream into APDUs
///   that each re-encode to exactly the bytes they occupied.
pub fn zvt_apdu(data: &[u8]) {
    let data = bounded(data);
    match Apdu::decode(data) {
        Ok(apdu) => {
            assert!(
                apdu.to_bytes() == data,
                "APDU does not re-encode identically"
            );
            assert_eq!(apdu.encoded_len(), data.len());
            let prefix = Apdu::decode_prefix(data).expect("decode_prefix after decode");
            assert!(
                prefix == Some((apdu, data.len())),
                "decode_prefix disagrees with decode"
            );
        }
        Err(ApduError::DataTooLong { .. }) => panic!("decode reported DataTooLong"),
        Err(_) => {}
    }

    let mut rest = data;
    loop {
        match Apdu::decode_prefix(rest) {
            Ok(Some((apdu, used))) => {
                assert!(used >= 3 && used <= rest.len(), "bad consumed length");
                assert!(
                    apdu.to_bytes() == rest[..used],
                    "split APDU does not re-encode identically"
                );
                assert_eq!(apdu.encoded_len(), used);
                rest = &rest[used..];
            }
            // Needs more bytes: a decode of the remainder must fail too.
            Ok(None) => {
                assert!(Apdu::decode(rest).is_err(), "incomplete yet decodable");
                break;
            }
            Err(_) => break,
        }
    }
}

/// Message layer: whatever decodes re-encodes byte-identically (up to the
/// APDU length form, which messages write minimally) and decodes to the same
/// message again. Also touches the accessors that interpret field contents
/// (text, receipts, PAN helpers, Debug).
pub fn zvt_message(data: &[u8]) {
    let data = bounded(data);
    let Ok(message) = Message::from_bytes(data) else {
        return;
    };
    let encoded = message
        .to_bytes()
        .unwrap_or_else(|error| panic!("decoded message does not encode: {error}"));
    if message.is_opaque() {
        // Vendor / unknown messages keep the raw APDU, length form included.
        assert!(
            encoded == data,
            "opaque message does not re-encode identically"
        );
    } else {
        // The input with its length rewritten in minimal form; equal to the
        // input unless it used `FF lo hi` for fewer than 255 data bytes.
        let apdu = Apdu::decode(data).expect("decoded message has an APDU");
        let minimal = Apdu::new(apdu.control(), apdu.data().to_vec())
            .expect("decoded data fits")
            .to_bytes();
        assert!(encoded == minimal, "message does not re-encode identically");
    }
    let again = Message::from_bytes(&encoded).expect("re-encoded message decodes");
    assert!(again == message, "message changes across a round trip");
    exercise_accessors(&message);
}

fn exercise_accessors(message: &Message) {
    let _ = format!("{message:?}");
    let _ = message.control().to_string();
    if let Some(fields) = message.bmp_fields() {
        let _ = (fields.amount(), fields.result_code(), fields.terminal_id());
        if let Some(pan) = fields.pan() {
            let _ = (pan.redacted(), pan.first6(), pan.last4(), pan.is_masked());
        }
        if let Some(text) = fields.additional_text() {
            let _ = text.trimmed();
        }
        if let Some(tlv) = fields.tlv() {
            let _ = tlv.find(0x07);
        }
        if let Some(code) = fields.result_code() {
            let _ = code.text();
        }
    }
    match message {
        Message::PrintTextBlock(block) => {
            let _ = (block.receipt_type(), block.lines());
        }
        Message::IntermediateStatus(status) => {
            let _ = status.text();
        }
        Message::PrintLine(line) => {
            let _ = line.text.to_unicode();
        }
        _ => {}
    }
}

/// Commands an exchange can be started with (picked by the first byte).
fn command(selector: u8) -> Message {
    let password = Password::from_number(123_456).expect("valid password");
    match selector % 4 {
        0 => Authorization::payment(
            Amount::from_minor_units(1234).expect("valid amount"),
            CurrencyCode::EUR,
        )
        .into(),
        1 => Registration::new(password, 0xBA, Some(CurrencyCode::EUR)).into(),
        2 => EndOfDay::new(Some(password)).into(),
        _ => StatusEnquiry::new(Some(password)).into(),
    }
}

/// ECR dialogue: drives an [`EcrExchange`] with a script taken from the
/// input. Byte 0 picks the command and options; then each op byte either
/// delivers the next APDU of the rest of the input (split like a TCP
/// stream), fires a timer, asks for an abort or confirms a held-back
/// Status-Information.
///
/// * every APDU the machine sends decodes as a message;
/// * a finished exchange does nothing more and runs no timer;
/// * the timer it reports matches the last start/stop action;
/// * completion, abort and timeout events end the exchange.
pub fn zvt_exchange(data: &[u8]) {
    let data = bounded(data);
    let Some((&setup, mut script)) = data.split_first() else {
        return;
    };
    let options = ExchangeOptions {
        ends_on_ack: setup & 0x10 != 0,
        manual_status_confirmation: setup & 0x20 != 0,
    };
    let (mut exchange, actions) =
        EcrExchange::start_with(&command(setup), options).expect("commands encode");
    check_actions(&exchange, &actions);

    // At most this many steps, so a long input cannot loop for long.
    for _ in 0..256 {
        let Some((&op, rest)) = script.split_first() else {
            break;
        };
        script = rest;
        let was_finished = exchange.is_finished();
        let actions = match op % 8 {
            0..=3 => match Apdu::decode_prefix(script) {
                Ok(Some((apdu, used))) => {
                    script = script.get(used..).unwrap_or_default();
                    exchange.on_apdu(&apdu)
                }
                // Not an APDU here: drop a byte and go on.
                _ => {
                    script = script.get(1..).unwrap_or_default();
                    continue;
                }
            },
            4 => exchange.on_timeout(Timer::Ack),
            5 => exchange.on_timeout(Timer::Completion),
            6 => exchange.request_abort(),
            _ if op & 0x80 != 0 => exchange.reject_status_information(ResultCode(op & 0x7F)),
            _ => exchange.accept_status_information(),
        };
        if was_finished {
            assert!(actions.is_empty(), "a finished exchange acted");
        }
        check_actions(&exchange, &actions);
    }
}

fn check_actions(exchange: &EcrExchange, actions: &[Action]) {
    let mut last_timer_action = None;
    let mut ended = false;
    for action in actions {
        match action {
            Action::Send(apdu) => {
                let bytes = apdu.to_bytes();
                let message = Message::from_bytes(&bytes).expect("sent APDU decodes");
                assert!(!message.is_opaque(), "sent an opaque message");
            }
            Action::StartTimer(timer) => last_timer_action = Some(Some(*timer)),
            Action::StopTimer => last_timer_action = Some(None),
            Action::Event(
                ExchangeEvent::Completed(_)
                | ExchangeEvent::Aborted(_)
                | ExchangeEvent::TimedOut(_),
            ) => ended = true,
            Action::Event(_) => {}
        }
    }
    if ended {
        assert!(exchange.is_finished(), "final event but exchange goes on");
    }
    if exchange.is_finished() {
        assert_eq!(exchange.active_timer(), None, "finished but a timer runs");
        assert!(!exchange.status_confirmation_pending());
    } else if let Some(expected) = last_timer_action {
        assert_eq!(exchange.active_timer(), expected, "timer bookkeeping");
    }
}
