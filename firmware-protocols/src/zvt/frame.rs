//! ZVT serial (RS-232) transport framing.
//!
//! A frame is `DLE STX <APDU with every DLE doubled> DLE ETX CRC-lo CRC-hi`,
//! where the CRC is CRC-16/KERMIT over the unstuffed APDU plus the ETX byte.
//! The receiver answers each frame with a single `ACK` (0x06) or `NAK` (0x15)
//! byte. The CRC bytes themselves are not DLE-stuffed.
//!
//! [`encode_frame`] builds frames; [`FrameDecoder`] is fed arbitrary chunks
//! of received bytes and yields [`FrameEvent`]s.

use std::fmt;

use crate::zvt::crc::{crc16_kermit, crc16_kermit_update};

pub const DLE: u8 = 0x10;
pub const STX: u8 = 0x02;
pub const ETX: u8 = 0x03;
pub const ACK: u8 = 0x06;
pub const NAK: u8 = 0x15;

/// Largest unstuffed payload accepted: an APDU with extended length.
pub const MAX_FRAME_PAYLOAD: usize = 5 + crate::zvt::apdu::MAX_DATA_LEN;

/// Wraps an encoded APDU in a serial frame.
pub fn encode_frame(apdu_bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(apdu_bytes.len() + 8);
    out.extend_from_slice(&[DLE, STX]);
    for &byte in apdu_bytes {
        out.push(byte);
        if byte == DLE {
            out.push(DLE);
        }
    }
    out.extend_from_slice(&[DLE, ETX]);
    let crc = frame_crc(apdu_bytes);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// The CRC a frame carrying `apdu_bytes` must have.
pub fn frame_crc(apdu_bytes: &[u8]) -> u16 {
    crc16_kermit_update(crc16_kermit(apdu_bytes), &[ETX])
}

/// Why a received frame was rejected. The receiver should answer `NAK`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    #[error("CRC mismatch: frame carries {received:#06x}, computed {computed:#06x}")]
    CrcMismatch { received: u16, computed: u16 },
    #[error("DLE followed by {byte:#04x} inside a frame")]
    InvalidEscape { byte: u8 },
    #[error("a new frame started before the previous one ended")]
    Interrupted,
    #[error("frame payload exceeds {MAX_FRAME_PAYLOAD} bytes")]
    TooLong,
}

/// Something the decoder recognised in the byte stream.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameEvent {
    /// A complete frame with a valid CRC; holds the unstuffed APDU bytes.
    /// The receiver should answer `ACK`.
    Frame(Vec<u8>),
    /// A single `ACK` byte outside a frame.
    Ack,
    /// A single `NAK` byte outside a frame.
    Nak,
    /// A frame was started but is unusable. The receiver should answer `NAK`.
    Rejected(FrameError),
    /// Bytes outside any frame that are neither `ACK`, `NAK` nor a frame
    /// start were skipped. Reported when the next token begins.
    Discarded { len: usize },
}

impl fmt::Debug for FrameEvent {
    // Frame payloads may hold card data: print only their length.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Frame(apdu) => write!(f, "Frame({} bytes)", apdu.len()),
            Self::Ack => f.write_str("Ack"),
            Self::Nak => f.write_str("Nak"),
            Self::Rejected(error) => f.debug_tuple("Rejected").field(error).finish(),
            Self::Discarded { len } => f.debug_struct("Discarded").field("len", len).finish(),
        }
    }
}

impl FrameEvent {
    /// The transport byte the receiver should send back, if any.
    pub fn reply(&self) -> Option<u8> {
        match self {
            Self::Frame(_) => Some(ACK),
            Self::Rejected(_) => Some(NAK),
            Self::Ack | Self::Nak | Self::Discarded { .. } => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between frames.
    Idle,
    /// Between frames, after a DLE.
    IdleDle,
    /// Inside a frame's payload.
    Payload,
    /// Inside a frame's payload, after a DLE.
    PayloadDle,
    /// After `DLE ETX`, waiting for the low CRC byte.
    CrcLow,
    /// Waiting for the high CRC byte.
    CrcHigh { low: u8 },
}

/// Incremental decoder for the serial transport.
///
/// Feed it any chunking of the received bytes; the events are the same as if
/// all bytes had arrived at once. After garbage or a broken frame it
/// resynchronises on the next `DLE STX`, `ACK` or `NAK`.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    state: State,
    payload: Vec<u8>,
    discarded: usize,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameDecoder {
    pub fn new() -> Self {
        Self {
            state: State::Idle,
            payload: Vec::new(),
            discarded: 0,
        }
    }

    /// Whether the decoder is in the middle of a frame (useful for the T1
    /// inter-byte timeout).
    pub fn in_frame(&self) -> bool {
        !matches!(self.state, State::Idle | State::IdleDle)
    }

    /// Drops any partial frame, e.g. after an inter-byte timeout.
    pub fn reset(&mut self) {
        self.state = State::Idle;
        self.payload.clear();
        self.discarded = 0;
    }

    /// Consumes `bytes`, returning the events completed by them.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<FrameEvent> {
        let mut events = Vec::new();
        for &byte in bytes {
            self.step(byte, &mut events);
        }
        events
    }

    fn flush_discarded(&mut self, events: &mut Vec<FrameEvent>) {
        if self.discarded > 0 {
            events.push(FrameEvent::Discarded {
                len: self.discarded,
            });
            self.discarded = 0;
        }
    }

    fn start_frame(&mut self, events: &mut Vec<FrameEvent>) {
        self.flush_discarded(events);
        self.payload.clear();
        self.state = State::Payload;
    }

    fn push_payload(&mut self, byte: u8, events: &mut Vec<FrameEvent>) {
        if self.payload.len() >= MAX_FRAME_PAYLOAD {
            self.payload.clear();
            self.state = State::Idle;
            events.push(FrameEvent::Rejected(FrameError::TooLong));
        } else {
            self.payload.push(byte);
            self.state = State::Payload;
        }
    }

    fn step(&mut self, byte: u8, events: &mut Vec<FrameEvent>) {
        match self.state {
            State::Idle => match byte {
                DLE => self.state = State::IdleDle,
                ACK => {
                    self.flush_discarded(events);
                    events.push(FrameEvent::Ack);
                }
                NAK => {
                    self.flush_discarded(events);
                    events.push(FrameEvent::Nak);
                }
                _ => self.discarded += 1,
            },
            State::IdleDle => match byte {
                STX => self.start_frame(events),
                // The first DLE was garbage; this one may start a frame.
                DLE => self.discarded += 1,
                _ => {
                    self.discarded += 1;
                    self.state = State::Idle;
                    // Re-examine the byte: it may be ACK or NAK.
                    self.step(byte, events);
                }
            },
            State::Payload => {
                if byte == DLE {
                    self.state = State::PayloadDle;
                } else {
                    self.push_payload(byte, events);
                }
            }
            State::PayloadDle => match byte {
                DLE => self.push_payload(DLE, events),
                ETX => self.state = State::CrcLow,
                STX => {
                    events.push(FrameEvent::Rejected(FrameError::Interrupted));
                    self.start_frame(events);
                }
                other => {
                    events.push(FrameEvent::Rejected(FrameError::InvalidEscape {
                        byte: other,
                    }));
                    self.payload.clear();
                    self.state = State::Idle;
                }
            },
            State::CrcLow => self.state = State::CrcHigh { low: byte },
            State::CrcHigh { low } => {
                let received = u16::from_le_bytes([low, byte]);
                let computed = frame_crc(&self.payload);
                let payload = std::mem::take(&mut self.payload);
                self.state = State::Idle;
                if received == computed {
                    events.push(FrameEvent::Frame(payload));
                } else {
                    events.push(FrameEvent::Rejected(FrameError::CrcMismatch {
                        received,
                        computed,
                    }));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REGISTRATION: [u8; 9] = [0x06, 0x00, 0x06, 0x12, 0x34, 0x56, 0xBA, 0x09, 0x78];

    #[test]
    fn encode_matches_known_frame() {
        assert_eq!(
            encode_frame(&REGISTRATION),
            [
                0x10, 0x02, 0x06, 0x00, 0x06, 0x12, 0x34, 0x56, 0xBA, 0x09, 0x78, 0x10, 0x03, 0x24,
                0xC3
            ]
        );
    }

    #[test]
    fn dle_is_doubled_and_undoubled() {
        let apdu = [0x06, 0x01, 0x02, 0x10, 0x10];
        let frame = encode_frame(&apdu);
        assert_eq!(&frame[2..9], &[0x06, 0x01, 0x02, 0x10, 0x10, 0x10, 0x10]);
        let events = FrameDecoder::new().feed(&frame);
        assert_eq!(events, vec![FrameEvent::Frame(apdu.to_vec())]);
    }

    #[test]
    fn ack_nak_and_garbage() {
        let mut decoder = FrameDecoder::new();
        let mut input = vec![0x41, 0x42, ACK, 0x00, NAK];
        input.extend(encode_frame(&REGISTRATION));
        let events = decoder.feed(&input);
        assert_eq!(
            events,
            vec![
                FrameEvent::Discarded { len: 2 },
                FrameEvent::Ack,
                FrameEvent::Discarded { len: 1 },
                FrameEvent::Nak,
                FrameEvent::Frame(REGISTRATION.to_vec()),
            ]
        );
    }

    #[test]
    fn bad_crc_is_rejected_with_nak_reply() {
        let mut frame = encode_frame(&REGISTRATION);
        let last = frame.len() - 1;
        frame[last] ^= 0xFF;
        let events = FrameDecoder::new().feed(&frame);
        assert_eq!(events.len(), 1);
        assert!(matches!(
            events[0],
            FrameEvent::Rejected(FrameError::CrcMismatch { .. })
        ));
        assert_eq!(events[0].reply(), Some(NAK));
    }

    #[test]
    fn restart_inside_frame_resynchronises() {
        let mut input = vec![DLE, STX, 0x06, 0x01];
        input.extend(encode_frame(&REGISTRATION));
        let events = FrameDecoder::new().feed(&input);
        assert_eq!(
            events,
            vec![
                FrameEvent::Rejected(FrameError::Interrupted),
                FrameEvent::Frame(REGISTRATION.to_vec()),
            ]
        );
    }

    #[test]
    fn invalid_escape_then_recovery() {
        let mut input = vec![DLE, STX, 0x06, DLE, 0x41];
        input.extend(encode_frame(&REGISTRATION));
        let events = FrameDecoder::new().feed(&input);
        assert_eq!(
            events,
            vec![
                FrameEvent::Rejected(FrameError::InvalidEscape { byte: 0x41 }),
                FrameEvent::Frame(REGISTRATION.to_vec()),
            ]
        );
    }
}
