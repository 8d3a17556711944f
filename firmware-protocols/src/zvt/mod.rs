//! ZVT, the German ECR ↔ payment-terminal protocol (PA00P015 / PA00P016).
//!
//! Layers, bottom up:
//!
//! * [`frame`] — serial transport: `DLE STX … DLE ETX CRC`, ACK/NAK, with an
//!   incremental [`FrameDecoder`]. (On TCP, APDUs are
//!   sent raw; use [`Apdu::decode_prefix`] to split a stream.)
//! * [`apdu`] — `CLASS INSTR LEN data` with extended length.
//! * [`bmp`] and [`tlv`] — bitmap fields and the BER-TLV container.
//! * [`messages`] — typed messages ([`Message`]).
//! * [`exchange`] — the ECR-side dialogue state machine.
//!
//! Everything is sans-I/O: no sockets, threads or clocks.

pub mod apdu;
pub mod bcd;
pub mod bmp;
pub mod card;
pub mod crc;
pub mod error;
pub mod exchange;
pub mod frame;
pub mod messages;
pub mod tables;
pub mod text;
pub mod tlv;

mod cursor;

pub use apdu::{Apdu, ApduError, ControlField};
pub use bmp::{Amount, Bmp, BmpList, CurrencyCode, ResultCode};
pub use card::{OpaqueBytes, Pan, Password, TrackData};
pub use error::{EncodeError, MessageError, TlvError};
pub use exchange::{Action, EcrExchange, ExchangeEvent, Timer};
pub use frame::{FrameDecoder, FrameError, FrameEvent, encode_frame};
pub use messages::Message;
pub use text::Text;
pub use tlv::{Tlv, TlvList, TlvValue};
