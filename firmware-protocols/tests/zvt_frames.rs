//! Serial framing against ecrterm's 11 RS-232 frames (read at run time from
//! `shared/terminal-data/zvt-serial-frames-ecrterm.tsv`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use common::serial_frames;
use firmware_protocols::zvt::frame::{ACK, DLE, ETX, FrameError, NAK, STX, frame_crc};
use firmware_protocols::zvt::{Apdu, FrameDecoder, FrameEvent, Message, encode_frame};

#[test]
fn all_frames_verify_decode_and_re_encode() {
    let frames = serial_frames();
    assert_eq!(frames.len(), 11);
    for frame in &frames {
        assert!(frame.crc_ok, "{}: data file marks CRC bad", frame.name);
        let crc_bytes = &frame.frame[frame.frame.len() - 2..];
        assert_eq!(
            frame_crc(&frame.apdu).to_le_bytes(),
            crc_bytes,
            "{}: CRC",
            frame.name
        );

        let events = FrameDecoder::new().feed(&frame.frame);
        assert_eq!(
            events,
            vec![FrameEvent::Frame(frame.apdu.clone())],
            "{}",
            frame.name
        );
        assert_eq!(encode_frame(&frame.apdu), frame.frame, "{}", frame.name);

        // The APDU inside is a well-formed message that re-encodes.
        let message = Message::from_bytes(&frame.apdu).unwrap();
        assert_eq!(message.to_bytes().unwrap(), frame.apdu, "{}", frame.name);
        assert_eq!(Apdu::decode(&frame.apdu).unwrap().to_bytes(), frame.apdu);
    }
}

#[test]
fn frame_with_dle_in_payload_is_unstuffed() {
    let frame = serial_frames()
        .into_iter()
        .find(|f| f.name == "test_Zahlung_eccash")
        .expect("payment frame");
    // The amount 0000 0001 1010 contains a DLE byte (0x10) that is doubled.
    assert!(frame.frame.windows(2).any(|w| w == [DLE, DLE]));
    assert!(frame.apdu.contains(&DLE));
    assert_eq!(
        FrameDecoder::new().feed(&frame.frame),
        vec![FrameEvent::Frame(frame.apdu)]
    );
}

#[test]
fn byte_at_a_time_equals_all_at_once() {
    let mut stream = vec![0x00, 0xFF, ACK];
    for frame in serial_frames() {
        stream.extend_from_slice(&frame.frame);
        stream.push(ACK);
    }
    stream.push(NAK);

    let at_once = FrameDecoder::new().feed(&stream);
    let mut decoder = FrameDecoder::new();
    let one_by_one: Vec<FrameEvent> = stream.iter().flat_map(|&b| decoder.feed(&[b])).collect();
    assert_eq!(at_once, one_by_one);
    let frames = at_once
        .iter()
        .filter(|e| matches!(e, FrameEvent::Frame(_)))
        .count();
    assert_eq!(frames, 11);
    assert_eq!(at_once.first(), Some(&FrameEvent::Discarded { len: 2 }));
    assert_eq!(at_once.last(), Some(&FrameEvent::Nak));

    // Odd chunk sizes give the same result too.
    let mut decoder = FrameDecoder::new();
    let chunked: Vec<FrameEvent> = stream.chunks(7).flat_map(|c| decoder.feed(c)).collect();
    assert_eq!(at_once, chunked);
}

#[test]
fn bad_crc_gives_nak_then_next_frame_decodes() {
    let frames = serial_frames();
    let mut corrupted = frames[0].frame.clone();
    let crc_low = corrupted.len() - 2;
    corrupted[crc_low] ^= 0x01;
    corrupted.extend_from_slice(&frames[1].frame);

    let events = FrameDecoder::new().feed(&corrupted);
    assert_eq!(events.len(), 2);
    assert!(matches!(
        events[0],
        FrameEvent::Rejected(FrameError::CrcMismatch { .. })
    ));
    assert_eq!(events[0].reply(), Some(NAK));
    assert_eq!(events[1], FrameEvent::Frame(frames[1].apdu.clone()));
    assert_eq!(events[1].reply(), Some(ACK));
}

#[test]
fn corrupted_payload_is_detected() {
    let frames = serial_frames();
    let mut corrupted = frames[4].frame.clone();
    corrupted[6] ^= 0x20;
    let events = FrameDecoder::new().feed(&corrupted);
    assert!(matches!(
        events.as_slice(),
        [FrameEvent::Rejected(FrameError::CrcMismatch { .. })]
    ));
}

#[test]
fn garbage_before_a_frame_is_skipped() {
    let frame = &serial_frames()[2];
    let mut stream = b"noise".to_vec();
    stream.extend_from_slice(&[DLE, 0x41, DLE, DLE]);
    stream.extend_from_slice(&frame.frame);
    let events = FrameDecoder::new().feed(&stream);
    assert_eq!(
        events,
        vec![
            FrameEvent::Discarded { len: 9 },
            FrameEvent::Frame(frame.apdu.clone())
        ]
    );
}

#[test]
fn truncated_frame_then_reset() {
    let frame = &serial_frames()[0];
    let mut decoder = FrameDecoder::new();
    assert!(decoder.feed(&frame.frame[..6]).is_empty());
    assert!(decoder.in_frame());
    // The caller's T1 inter-byte timeout fired.
    decoder.reset();
    assert!(!decoder.in_frame());
    assert_eq!(
        decoder.feed(&frame.frame),
        vec![FrameEvent::Frame(frame.apdu.clone())]
    );
}

#[test]
fn frame_markers_are_the_standard_bytes() {
    assert_eq!((DLE, STX, ETX, ACK, NAK), (0x10, 0x02, 0x03, 0x06, 0x15));
}
