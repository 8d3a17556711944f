//! Codec throughput on the golden vectors (measured, never asserted).
//!
//! `CARGO_TARGET_DIR=/tmp/fp-target cargo bench -p firmware-protocols --bench codec`
//!
//! Plain `std::time::Instant` + `black_box`, no framework. Each metric is
//! measured in `RUNS` timed batches, each batch calibrated to roughly
//! `BATCH_TARGET`; the table gives the median and p99 over the batches (p99
//! of throughput is the slow tail, i.e. the 1st percentile of the rate).
//!
//! The last table relates our processing time per frame (FrameDecoder feed
//! of the whole frame + APDU and message decode) to the frame's wire time at
//! 9600 baud 8N2: 11 bits per byte, so `wire = len * 11 / 9600 s`.
//!
//! Some captures hold card numbers: nothing here prints frame or APDU bytes.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use firmware_protocols::zvt::{FrameDecoder, FrameEvent, Message};

const RUNS: usize = 200;
const BATCH_TARGET: Duration = Duration::from_millis(2);
const BAUD: f64 = 9600.0;
const BITS_PER_BYTE: f64 = 11.0; // start + 8 data + 2 stop (8N2)

/// Nanoseconds per call of `f`, one value per timed batch.
fn sample(mut f: impl FnMut()) -> Vec<f64> {
    // Warm up and calibrate the batch size.
    let mut iterations = 1u64;
    loop {
        let start = Instant::now();
        for _ in 0..iterations {
            f();
        }
        if start.elapsed() >= BATCH_TARGET / 4 || iterations >= 1 << 30 {
            let per_call = start.elapsed().as_secs_f64() / iterations as f64;
            iterations = ((BATCH_TARGET.as_secs_f64() / per_call) as u64).max(1);
            break;
        }
        iterations *= 2;
    }
    (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..iterations {
                f();
            }
            start.elapsed().as_secs_f64() * 1e9 / iterations as f64
        })
        .collect()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index]
}

/// (median, p99) of per-call nanoseconds.
fn stats(mut ns: Vec<f64>) -> (f64, f64) {
    ns.sort_by(f64::total_cmp);
    (percentile(&ns, 0.5), percentile(&ns, 0.99))
}

fn rate_row(what: &str, items: usize, ns_per_batch: Vec<f64>) {
    let (median, p99) = stats(ns_per_batch);
    let rate = |ns: f64| items as f64 / (ns * 1e-9);
    println!(
        "{what:<34} {items:>5} {:>14.0} {:>14.0} {:>12.1} {:>12.1}",
        rate(median),
        rate(p99),
        median / items as f64,
        p99 / items as f64,
    );
}

fn main() {
    let frames = common::serial_frames();
    let mut apdus: Vec<Vec<u8>> = common::ecrterm_apdus();
    apdus.extend(common::misc_vectors().into_iter().map(|(_, bytes)| bytes));
    let everest: Vec<Vec<u8>> = common::everest_blobs()
        .into_iter()
        .map(|(_, bytes)| bytes)
        .collect();
    let messages: Vec<Message> = apdus
        .iter()
        .chain(&everest)
        .map(|bytes| Message::from_bytes(bytes).unwrap())
        .collect();
    let frame_bytes: usize = frames.iter().map(|f| f.frame.len()).sum();
    let apdu_bytes: usize = apdus.iter().chain(&everest).map(Vec::len).sum();

    println!(
        "firmware-protocols codec benchmark: {} frames ({frame_bytes} B), {} APDUs ({apdu_bytes} B); \
         {RUNS} batches of ~{} ms per row",
        frames.len(),
        messages.len(),
        BATCH_TARGET.as_millis()
    );
    println!();
    println!(
        "{:<34} {:>5} {:>14} {:>14} {:>12} {:>12}",
        "throughput", "items", "median /s", "p99 /s", "median ns", "p99 ns"
    );

    let mut decoder = FrameDecoder::new();
    rate_row(
        "frames decoded (feed whole frame)",
        frames.len(),
        sample(|| {
            for frame in &frames {
                let events = decoder.feed(black_box(&frame.frame));
                black_box(events);
            }
        }),
    );
    let decode_set = |set: &[Vec<u8>]| {
        sample(|| {
            for bytes in set {
                black_box(Message::from_bytes(black_box(bytes)).ok());
            }
        })
    };
    rate_row(
        "APDU+message decode (ecrterm+misc)",
        apdus.len(),
        decode_set(&apdus),
    );
    rate_row(
        "APDU+message decode (EVerest)",
        everest.len(),
        decode_set(&everest),
    );
    let all: Vec<Vec<u8>> = apdus.iter().chain(&everest).cloned().collect();
    rate_row("APDU+message decode (all)", all.len(), decode_set(&all));
    rate_row(
        "message encode (all)",
        messages.len(),
        sample(|| {
            for message in &messages {
                black_box(black_box(message).to_bytes().ok());
            }
        }),
    );
    rate_row(
        "frame encode (all ecrterm frames)",
        frames.len(),
        sample(|| {
            for frame in &frames {
                black_box(firmware_protocols::zvt::encode_frame(black_box(
                    &frame.apdu,
                )));
            }
        }),
    );

    println!();
    println!(
        "{:<44} {:>5} {:>10} {:>10} {:>10} {:>12} {:>12}",
        "per frame: decode+message vs wire @9600 8N2",
        "bytes",
        "wire ms",
        "median ns",
        "p99 ns",
        "median frac",
        "p99 frac"
    );
    let mut worst: f64 = 0.0;
    for frame in &frames {
        let mut decoder = FrameDecoder::new();
        let (median, p99) = stats(sample(|| {
            for event in decoder.feed(black_box(&frame.frame)) {
                if let FrameEvent::Frame(payload) = event {
                    black_box(Message::from_bytes(&payload).ok());
                }
            }
        }));
        let wire_s = frame.frame.len() as f64 * BITS_PER_BYTE / BAUD;
        let frac = |ns: f64| ns * 1e-9 / wire_s;
        worst = worst.max(frac(p99));
        println!(
            "{:<44} {:>5} {:>10.2} {:>10.0} {:>10.0} {:>12.2e} {:>12.2e}",
            frame.name,
            frame.frame.len(),
            wire_s * 1e3,
            median,
            p99,
            frac(median),
            frac(p99)
        );
    }
    println!();
    println!("worst p99 processing/wire ratio: {worst:.2e}");
}
