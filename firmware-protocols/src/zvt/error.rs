//! Errors shared by the ZVT encoders and decoders.

use crate::zvt::apdu::{ApduError, ControlField};

/// Why a typed value could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    #[error("BMP {tag:#04x}: value of {len} bytes exceeds its limit of {max} bytes")]
    ValueTooLong { tag: u8, len: usize, max: usize },
    #[error("BMP {tag:#04x}: needs exactly {expected} bytes, value has {actual}")]
    FixedLengthMismatch {
        tag: u8,
        expected: usize,
        actual: usize,
    },
    #[error("BMP {tag:#04x}: value out of range for its BCD width")]
    ValueOutOfRange { tag: u8 },
    #[error("BMP {tag:#04x} is not in the BMP table, so its length cannot be written")]
    UnknownBmp { tag: u8 },
    #[error("TLV tag {tag:#x} is not a valid BER tag")]
    InvalidTlvTag { tag: u32 },
    #[error("TLV value of {len} bytes exceeds 65535")]
    TlvTooLong { len: usize },
    #[error("APDU data of {len} bytes exceeds 65535")]
    ApduTooLong { len: usize },
    #[error("{field}: text of {len} bytes exceeds its limit of {max} bytes")]
    TextTooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
    #[error("message fields are inconsistent: {0}")]
    Inconsistent(&'static str),
}

/// Why a BER-TLV sequence could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlvError {
    #[error("TLV tag at offset {offset} is truncated or longer than 4 bytes")]
    InvalidTag { offset: usize },
    #[error("TLV length at offset {offset} is truncated, unsupported or not minimal")]
    InvalidLength { offset: usize },
    #[error("TLV value at offset {offset} needs {needed} bytes, {available} present")]
    Truncated {
        offset: usize,
        needed: usize,
        available: usize,
    },
    #[error("TLV nesting deeper than {max}")]
    TooDeep { max: usize },
}

/// Why a standard message could not be decoded from its APDU.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    #[error(transparent)]
    Apdu(#[from] ApduError),
    #[error("{control}: data of {len} bytes is shorter than the required {min}")]
    TooShort {
        control: ControlField,
        len: usize,
        min: usize,
    },
}
