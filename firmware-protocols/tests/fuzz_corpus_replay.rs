//! Replays the committed fuzz corpus and crash artifacts on stable.
//!
//! Every file under `fuzz/corpus/<target>/` and `fuzz/artifacts/<target>/`
//! goes through the very function the cargo-fuzz target of that name calls
//! (`fuzz/src/lib.rs`, compiled in here), so a plain `cargo test` keeps
//! checking the round-trip properties and every fixed crash.
//!
//! The seed corpus is generated from typed messages with made-up, masked
//! data by the ignored test `regenerate_seed_corpus` (see `fuzz/README.md`);
//! `corpus_holds_no_capture_card_data` checks that no file contains a card
//! number or track data from the shared captures.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

#[path = "../fuzz/src/lib.rs"]
mod fuzz_checks;

use std::path::{Path, PathBuf};

use firmware_protocols::zvt::bmp::{Amount, Bmp, BmpList, Date, Time};
use firmware_protocols::zvt::frame::{ACK, NAK};
use firmware_protocols::zvt::messages::{
    Abort, Authorization, Completion, CompletionBody, IntermediateStatus, NegativeAck, PositiveAck,
    PrintLine, PrintTextBlock, Registration, StatusInformation,
};
use firmware_protocols::zvt::text::FixedText;
use firmware_protocols::zvt::tlv::receipt_type;
use firmware_protocols::zvt::{
    Apdu, ControlField, CurrencyCode, Message, OpaqueBytes, Pan, Password, ResultCode, Text, Tlv,
    TlvList, encode_frame,
};

/// A fuzz target's check: panics if an invariant breaks.
type Check = fn(&[u8]);

const TARGETS: [(&str, Check); 4] = [
    ("zvt_frame_decoder", fuzz_checks::zvt_frame_decoder),
    ("zvt_apdu", fuzz_checks::zvt_apdu),
    ("zvt_message", fuzz_checks::zvt_message),
    ("zvt_exchange", fuzz_checks::zvt_exchange),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// `(target, file)` for every corpus and artifact file.
fn replay_files() -> Vec<(String, PathBuf)> {
    let mut files = Vec::new();
    for kind in ["corpus", "artifacts"] {
        let Ok(targets) = std::fs::read_dir(fuzz_dir().join(kind)) else {
            continue;
        };
        for target in targets {
            let target = target.unwrap().path();
            if !target.is_dir() {
                continue;
            }
            let name = target.file_name().unwrap().to_string_lossy().into_owned();
            for file in std::fs::read_dir(&target).unwrap() {
                let file = file.unwrap().path();
                let hidden = file
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'));
                if file.is_file() && !hidden {
                    files.push((name.clone(), file));
                }
            }
        }
    }
    files.sort();
    files
}

#[test]
fn replay_corpus_and_artifacts() {
    let files = replay_files();
    for (target, _) in TARGETS {
        let count = files
            .iter()
            .filter(|(name, path)| name == target && path.to_string_lossy().contains("/corpus/"))
            .count();
        assert!(count >= 3, "fuzz/corpus/{target}/ has only {count} files");
    }
    for (target, path) in &files {
        let check = TARGETS
            .iter()
            .find(|(name, _)| name == target)
            .map(|(_, check)| check)
            .unwrap_or_else(|| panic!("{}: no fuzz target {target}", path.display()));
        let data = std::fs::read(path).unwrap();
        // Name the file on failure, never its bytes.
        let outcome = std::panic::catch_unwind(|| check(&data));
        assert!(outcome.is_ok(), "{target}: {} fails", path.display());
    }
}

/// Card numbers and track data of the shared captures (see
/// `shared/terminal-data/README.md`), as raw BMP values.
fn capture_card_data() -> Vec<Vec<u8>> {
    let mut secrets = Vec::new();
    for name in [
        "1680728165.675509000_pt_ecr.blob",
        "1680728215.659492000_pt_ecr.blob",
        "1682066249.409078000_pt_ecr.blob",
        "status_information_read_card.blob",
    ] {
        let message = Message::from_bytes(&common::everest_blob(name)).unwrap();
        for field in &message.bmp_fields().unwrap().fields {
            match field {
                Bmp::Pan(pan) => secrets.push(pan.as_bytes().to_vec()),
                Bmp::Track1(track) | Bmp::Track2(track) | Bmp::Track3(track) => {
                    secrets.push(track.as_bytes().to_vec());
                }
                _ => {}
            }
        }
    }
    secrets
}

#[test]
fn corpus_holds_no_capture_card_data() {
    let secrets = capture_card_data();
    assert!(secrets.len() >= 4, "expected the captures' card data");
    for (_, path) in replay_files() {
        let data = std::fs::read(&path).unwrap();
        for secret in &secrets {
            // Any 5-byte run (10 digits) of a capture's card data.
            for window in secret.windows(5) {
                assert!(
                    !data.windows(5).any(|w| w == window),
                    "{} contains capture card data",
                    path.display()
                );
            }
        }
    }
}

// ------------------------------------------------------------ seed corpus

fn text(s: &str) -> Text {
    Text::encode(s).unwrap()
}

fn bytes(message: impl Into<Message>) -> Vec<u8> {
    message.into().to_bytes().unwrap()
}

/// A made-up approved payment result with a masked PAN.
fn status_information() -> Vec<u8> {
    bytes(
        StatusInformation::default()
            .with(Bmp::ResultCode(ResultCode::SUCCESS))
            .with(Bmp::Amount(Amount::from_minor_units(1234).unwrap()))
            .with(Bmp::Currency(CurrencyCode::EUR))
            .with(Bmp::TraceNumber(42))
            .with(Bmp::Time(Time {
                hour: 12,
                minute: 0,
                second: 1,
            }))
            .with(Bmp::Date(Date { month: 1, day: 2 }))
            .with(Bmp::PaymentType(0x60))
            .with(Bmp::Pan(Pan::from_digits("999999******0000").unwrap()))
            .with(Bmp::TerminalId(12_345_678))
            .with(Bmp::VuNumber(FixedText::padded("TESTVU", b' ').unwrap()))
            .with(Bmp::AdditionalText(text("AS-TID = TEST\rGrüße")))
            .with(Bmp::ReceiptNumber(7))
            .with(Bmp::CardType(6))
            .with(Bmp::CardName(text("TESTCARD")))
            .with(Bmp::Tlv(TlvList::new(vec![
                Tlv::primitive(0x1F4C, vec![1]),
                Tlv::constructed(0x60, vec![Tlv::primitive(0x43, vec![0xA0, 0, 0, 0, 0])]),
            ]))),
    )
}

fn intermediate_status() -> Vec<u8> {
    let display = Tlv::constructed(0x24, vec![Tlv::primitive(0x07, b"Karte bitte".to_vec())]);
    bytes(IntermediateStatus {
        status: 0x0A,
        timeout: Some(30),
        fields: BmpList::new().with(Bmp::Tlv(TlvList::new(vec![display]))),
    })
}

fn receipt(lines: usize) -> Vec<u8> {
    let lines = (0..lines)
        .map(|i| text(&format!("Zeile {i:02}: Betrag EUR 1,00 ä")))
        .collect();
    bytes(PrintTextBlock::receipt(receipt_type::CUSTOMER, lines))
}

fn apdu_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let password = Password::from_number(123_456).unwrap();
    vec![
        ("ack", bytes(PositiveAck::default())),
        ("nack", bytes(NegativeAck::new(ResultCode(0x83)))),
        ("completion", bytes(Completion::default())),
        (
            "completion-fields",
            bytes(Completion {
                body: CompletionBody::Fields(
                    BmpList::new()
                        .with(Bmp::PaymentType(0x10))
                        .with(Bmp::TerminalId(12_345_678))
                        .with(Bmp::Currency(CurrencyCode::EUR)),
                ),
            }),
        ),
        (
            "completion-version",
            bytes(Completion {
                body: CompletionBody::SoftwareVersion {
                    version: text("TEST-1.0"),
                    terminal_status: 0,
                    fields: BmpList::new(),
                },
            }),
        ),
        ("intermediate-status", intermediate_status()),
        ("status-information-masked", status_information()),
        (
            "print-line",
            bytes(PrintLine {
                attribute: 0,
                text: text("Summe EUR 1,00"),
            }),
        ),
        ("print-text-block", receipt(3)),
        ("print-text-block-extended", receipt(12)),
        (
            "abort-receipt-ffff",
            bytes(Abort::new(ResultCode(0xB8)).with_field(Bmp::Other {
                tag: 0x87,
                value: OpaqueBytes(vec![0xFF, 0xFF]),
            })),
        ),
        (
            "registration",
            bytes(
                Registration::new(password, 0xBA, Some(CurrencyCode::EUR)).with(Bmp::Tlv(
                    TlvList::new(vec![Tlv::primitive(0x1A, vec![0x04, 0x00])]),
                )),
            ),
        ),
        (
            "authorization",
            bytes(Authorization::payment(
                Amount::from_minor_units(1000).unwrap(),
                CurrencyCode::EUR,
            )),
        ),
        (
            "vendor",
            Apdu::new(ControlField::new(0x0F, 0xA1), vec![0x01, 0x02])
                .unwrap()
                .to_bytes(),
        ),
    ]
}

/// Extension used only to build the abort seed.
trait WithField {
    fn with_field(self, field: Bmp) -> Self;
}

impl WithField for Abort {
    fn with_field(mut self, field: Bmp) -> Self {
        self.fields.push(field);
        self
    }
}

fn seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    let apdus = apdu_seeds();
    let find = |name: &str| {
        apdus
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, b)| b.clone())
            .unwrap()
    };
    let mut seeds = Vec::new();

    for name in [
        "ack",
        "completion-fields",
        "completion-version",
        "intermediate-status",
        "status-information-masked",
        "print-text-block",
        "print-line",
        "abort-receipt-ffff",
        "registration",
        "vendor",
    ] {
        seeds.push(("zvt_message", format!("seed-{name}"), find(name)));
    }

    for name in ["ack", "print-text-block-extended", "completion"] {
        seeds.push(("zvt_apdu", format!("seed-{name}"), find(name)));
    }
    let mut stream = find("ack");
    stream.extend(find("intermediate-status"));
    stream.extend(find("completion"));
    stream.extend(&find("print-line")[..4]);
    seeds.push(("zvt_apdu", "seed-stream-truncated".into(), stream));

    // Frame decoder: chunking seed byte, then serial traffic.
    let mut traffic = vec![0x07, ACK];
    traffic.extend(encode_frame(&find("status-information-masked")));
    traffic.push(NAK);
    traffic.extend(encode_frame(&find("completion")));
    seeds.push(("zvt_frame_decoder", "seed-ack-frames-nak".into(), traffic));
    // A payload with DLE bytes (0x10) that must be doubled.
    let mut dle = vec![0x31];
    dle.extend(encode_frame(&find("completion-fields")));
    seeds.push(("zvt_frame_decoder", "seed-dle-stuffing".into(), dle));
    let mut broken = vec![0xA5, 0x41, 0x42, 0x10, 0x02, 0x06, 0x10, 0x41];
    let mut bad_crc = encode_frame(&find("ack"));
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 0xFF;
    broken.extend(bad_crc);
    broken.extend(encode_frame(&find("print-text-block-extended")));
    seeds.push(("zvt_frame_decoder", "seed-garbage-bad-crc".into(), broken));

    // Exchange scripts: setup byte, then (op, APDU) steps; op 0 delivers.
    let deliver = |script: &mut Vec<u8>, name: &str| {
        script.push(0x00);
        script.extend(find(name));
    };
    let mut payment = vec![0x00];
    for name in [
        "ack",
        "intermediate-status",
        "status-information-masked",
        "print-text-block",
        "completion",
    ] {
        deliver(&mut payment, name);
    }
    seeds.push(("zvt_exchange", "seed-payment".into(), payment));
    let mut manual = vec![0x20];
    deliver(&mut manual, "ack");
    deliver(&mut manual, "status-information-masked");
    manual.push(0x87); // reject with 0x07
    deliver(&mut manual, "status-information-masked");
    manual.push(0x07); // accept
    deliver(&mut manual, "completion-fields");
    seeds.push(("zvt_exchange", "seed-manual-confirmation".into(), manual));
    let mut abort = vec![0x01];
    deliver(&mut abort, "ack");
    abort.push(0x06); // request abort
    deliver(&mut abort, "ack");
    deliver(&mut abort, "vendor");
    deliver(&mut abort, "abort-receipt-ffff");
    seeds.push(("zvt_exchange", "seed-abort".into(), abort));
    let mut rejected = vec![0x12];
    deliver(&mut rejected, "nack");
    rejected.push(0x05); // stale timer
    seeds.push(("zvt_exchange", "seed-rejected".into(), rejected));
    let mut timeout = vec![0x03];
    deliver(&mut timeout, "ack");
    timeout.push(0x04); // stale
    timeout.push(0x05); // completion timer fires
    seeds.push(("zvt_exchange", "seed-timeout".into(), timeout));

    seeds
}

#[test]
fn seeds_pass_their_targets_and_mask_pans() {
    for (target, name, data) in seeds() {
        let (_, check) = TARGETS.iter().find(|(t, _)| *t == target).unwrap();
        check(&data);
        if target == "zvt_message" {
            let message = Message::from_bytes(&data).unwrap();
            if let Some(pan) = message.bmp_fields().and_then(|f| f.pan()) {
                assert!(pan.is_masked(), "{name}: seed PAN must be masked");
            }
        }
    }
}

/// Writes the seed corpus. Run after changing `seeds()`:
/// `cargo test -p firmware-protocols --test fuzz_corpus_replay -- --ignored`
#[test]
#[ignore = "writes fuzz/corpus/; run by hand"]
fn regenerate_seed_corpus() {
    for (target, name, data) in seeds() {
        let dir = fuzz_dir().join("corpus").join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), data).unwrap();
    }
}
