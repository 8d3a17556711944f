//! The ZVT transport layer over any byte stream, the same for both ends (ECR and terminal).
//!
//! * Serial (RS-232, USB-serial, a pty): every APDU travels in a `DLE STX … DLE ETX CRC`
//!   frame that the receiver answers with `ACK` or `NAK`; a `NAK` or silence makes the sender
//!   repeat the frame (up to three sends in all).
//! * TCP: bare APDUs, no framing, no transport acknowledgements.

use std::collections::VecDeque;
use std::time::Duration;

use firmware_protocols::zvt::{Apdu, FrameDecoder, FrameEvent, encode_frame, frame};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// How long the sender waits for `ACK`/`NAK` after a frame (the spec's T2 is larger; a
/// terminal that has not answered a frame in this time will not).
pub const ACK_WAIT: Duration = Duration::from_secs(2);
/// Sends of one frame before the link gives up.
pub const MAX_SENDS: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Serial,
    Tcp,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("the line was closed")]
    Closed,
    #[error("I/O error: {0}")]
    Io(String),
    #[error("no acknowledgement after {MAX_SENDS} sends")]
    NotAcknowledged,
    #[error("undecodable data: {0}")]
    Garbage(String),
}

impl From<std::io::Error> for LinkError {
    fn from(e: std::io::Error) -> Self {
        match e.kind() {
            std::io::ErrorKind::UnexpectedEof
            | std::io::ErrorKind::BrokenPipe
            | std::io::ErrorKind::ConnectionReset => LinkError::Closed,
            _ => LinkError::Io(e.to_string()),
        }
    }
}

/// Test hooks for the terminal simulator: misbehave once, on purpose.
#[derive(Debug, Default, Clone, Copy)]
pub struct LinkFaults {
    /// Answer the next received frame with `NAK` (and drop it).
    pub nak_next: bool,
    /// Send the next frame with a wrong CRC first (the peer should `NAK` it).
    pub bad_crc_next: bool,
    /// Answer this many received frames in a row with `NAK` (a storm: more than the peer
    /// repeats a frame).
    pub nak_storm: usize,
    /// Put line noise on the wire before the next frame or APDU.
    pub garbage_next: bool,
}

/// The noise of `LinkFaults::garbage_next`: stray bytes, a lone `DLE`, a frame start without
/// an end.
const LINE_NOISE: &[u8] = &[
    0x00, 0xFF, 0x7E, 0x10, 0x41, 0x10, 0x02, 0x06, 0x1E, 0x13, 0x37,
];

pub struct ZvtLink<S> {
    stream: S,
    framing: Framing,
    decoder: FrameDecoder,
    tcp_buffer: Vec<u8>,
    /// APDUs that arrived while we were waiting for an `ACK`.
    received: VecDeque<Apdu>,
    /// `ACK`/`NAK` bytes that arrived while we were reading APDUs.
    acks: VecDeque<bool>,
    /// `ACK`/`NAK` bytes we owe the peer, not yet written.
    replies: Vec<u8>,
    pub faults: LinkFaults,
}

impl<S: AsyncRead + AsyncWrite + Unpin> ZvtLink<S> {
    pub fn new(stream: S, framing: Framing) -> Self {
        Self {
            stream,
            framing,
            decoder: FrameDecoder::new(),
            tcp_buffer: Vec::new(),
            received: VecDeque::new(),
            acks: VecDeque::new(),
            replies: Vec::new(),
            faults: LinkFaults::default(),
        }
    }

    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// Sends one APDU; on a serial line, until the peer acknowledges it.
    pub async fn send(&mut self, apdu: &Apdu) -> Result<(), LinkError> {
        let bytes = apdu.to_bytes();
        if std::mem::take(&mut self.faults.garbage_next) {
            tracing::warn!("ZVT link: fault garbage, line noise before the next message");
            self.stream.write_all(LINE_NOISE).await?;
        }
        if self.framing == Framing::Tcp {
            self.stream.write_all(&bytes).await?;
            return Ok(self.stream.flush().await?);
        }
        let frame = encode_frame(&bytes);
        self.send_replies().await?;
        for _ in 0..MAX_SENDS {
            let mut wire = frame.clone();
            if std::mem::take(&mut self.faults.bad_crc_next)
                && let Some(last) = wire.last_mut()
            {
                tracing::warn!("ZVT link: fault bad-crc, a frame sent with a wrong CRC");
                *last ^= 0xFF;
            }
            self.stream.write_all(&wire).await?;
            self.stream.flush().await?;
            match tokio::time::timeout(ACK_WAIT, self.next_ack()).await {
                Ok(Ok(true)) => return Ok(()),
                Ok(Ok(false)) => tracing::debug!("ZVT: NAK, sending the frame again"),
                Ok(Err(e)) => return Err(e),
                Err(_) => tracing::debug!("ZVT: no ACK, sending the frame again"),
            }
        }
        Err(LinkError::NotAcknowledged)
    }

    /// Receives the next APDU (acknowledging it on a serial line).
    pub async fn recv(&mut self) -> Result<Apdu, LinkError> {
        loop {
            if let Some(apdu) = self.received.pop_front() {
                return Ok(apdu);
            }
            self.read_more().await?;
        }
    }

    /// Waits for the next `ACK` (true) or `NAK` (false) on a serial line.
    async fn next_ack(&mut self) -> Result<bool, LinkError> {
        loop {
            if let Some(ack) = self.acks.pop_front() {
                return Ok(ack);
            }
            self.read_more().await?;
        }
    }

    /// Reads what is there and handles it. Cancel-safe: nothing read is lost and no reply byte
    /// is written twice if the future is dropped (decoded APDUs are queued before any write,
    /// and ACK/NAK bytes wait in `replies` until written).
    async fn read_more(&mut self) -> Result<(), LinkError> {
        self.send_replies().await?;
        let mut chunk = [0u8; 1024];
        let n = AsyncReadExt::read(&mut self.stream, &mut chunk).await?;
        if n == 0 {
            return Err(LinkError::Closed);
        }
        let chunk = chunk.get(..n).unwrap_or_default();
        match self.framing {
            Framing::Tcp => {
                self.tcp_buffer.extend_from_slice(chunk);
                loop {
                    match Apdu::decode_prefix(&self.tcp_buffer) {
                        Ok(Some((apdu, used))) => {
                            self.tcp_buffer.drain(..used);
                            self.received.push_back(apdu);
                        }
                        Ok(None) => break,
                        Err(e) => {
                            self.tcp_buffer.clear();
                            return Err(LinkError::Garbage(e.to_string()));
                        }
                    }
                }
            }
            Framing::Serial => {
                for event in self.decoder.feed(chunk) {
                    match event {
                        FrameEvent::Frame(bytes) => {
                            if self.faults.nak_storm > 0 {
                                self.faults.nak_storm -= 1;
                                tracing::warn!(
                                    still = self.faults.nak_storm,
                                    "ZVT link: fault nak-storm, a good frame refused with NAK"
                                );
                                self.replies.push(frame::NAK);
                                continue;
                            }
                            if std::mem::take(&mut self.faults.nak_next) {
                                tracing::warn!(
                                    "ZVT link: fault nak-next, a good frame refused with NAK"
                                );
                                self.replies.push(frame::NAK);
                                continue;
                            }
                            self.replies.push(frame::ACK);
                            match Apdu::decode(&bytes) {
                                Ok(apdu) => self.received.push_back(apdu),
                                Err(e) => {
                                    tracing::warn!(error = %e, "ZVT: a well-framed but undecodable APDU was dropped")
                                }
                            }
                        }
                        FrameEvent::Rejected(e) => {
                            tracing::debug!(error = %e, "ZVT: bad frame, sending NAK");
                            self.replies.push(frame::NAK);
                        }
                        FrameEvent::Ack => self.acks.push_back(true),
                        FrameEvent::Nak => self.acks.push_back(false),
                        _ => {}
                    }
                }
            }
        }
        self.send_replies().await
    }

    /// Writes the queued ACK/NAK bytes. A single `write` either writes some bytes or none,
    /// so draining after each keeps a cancelled call from losing or repeating one.
    async fn send_replies(&mut self) -> Result<(), LinkError> {
        if self.replies.is_empty() {
            return Ok(());
        }
        while !self.replies.is_empty() {
            let n = AsyncWriteExt::write(&mut self.stream, &self.replies).await?;
            if n == 0 {
                return Err(LinkError::Closed);
            }
            self.replies.drain(..n.min(self.replies.len()));
        }
        Ok(self.stream.flush().await?)
    }
}

#[cfg(test)]
mod tests {
    use firmware_protocols::zvt::ControlField;

    use super::*;

    fn apdu(instr: u8, data: &[u8]) -> Apdu {
        Apdu::new(ControlField::new(0x06, instr), data.to_vec()).expect("apdu")
    }

    #[tokio::test]
    async fn serial_frames_with_dle_bytes_round_trip_and_are_acknowledged() {
        let (a, b) = tokio::io::duplex(4096);
        let mut ecr = ZvtLink::new(a, Framing::Serial);
        let mut pt = ZvtLink::new(b, Framing::Serial);
        let sent = apdu(0x01, &[0x04, 0x00, 0x00, 0x10, 0x10, 0x03, 0x02]);
        let (sent_ok, got) = tokio::join!(ecr.send(&sent), pt.recv());
        sent_ok.expect("acknowledged");
        assert_eq!(got.expect("received"), sent);
    }

    #[tokio::test]
    async fn a_nak_makes_the_sender_repeat_and_a_bad_crc_is_nakked() {
        let (a, b) = tokio::io::duplex(4096);
        let mut ecr = ZvtLink::new(a, Framing::Serial);
        let mut pt = ZvtLink::new(b, Framing::Serial);
        pt.faults.nak_next = true;
        let first = apdu(0x01, &[1, 2, 3]);
        let (ok, got) = tokio::join!(ecr.send(&first), pt.recv());
        ok.expect("sent after a NAK");
        assert_eq!(got.expect("received once"), first);
        ecr.faults.bad_crc_next = true;
        let second = apdu(0x0F, &[]);
        let (ok, got) = tokio::join!(ecr.send(&second), pt.recv());
        ok.expect("sent again after the corrupted copy");
        assert_eq!(got.expect("received"), second);
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_peer_is_given_up_on() {
        let (a, _b) = tokio::io::duplex(4096);
        let mut ecr = ZvtLink::new(a, Framing::Serial);
        assert_eq!(
            ecr.send(&apdu(0x01, &[])).await,
            Err(LinkError::NotAcknowledged)
        );
    }

    #[tokio::test]
    async fn tcp_carries_bare_apdus_split_anywhere() {
        let (a, mut b) = tokio::io::duplex(4096);
        let mut ecr = ZvtLink::new(a, Framing::Tcp);
        let one = apdu(0x0F, &[]);
        let two = apdu(0xD3, &vec![0x41; 300]);
        let mut wire = one.to_bytes();
        wire.extend(two.to_bytes());
        for chunk in wire.chunks(7) {
            b.write_all(chunk).await.expect("write");
        }
        assert_eq!(ecr.recv().await.expect("one"), one);
        assert_eq!(ecr.recv().await.expect("two"), two);
        drop(b);
        assert_eq!(ecr.recv().await, Err(LinkError::Closed));
    }
}
