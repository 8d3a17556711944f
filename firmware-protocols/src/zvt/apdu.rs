//! ZVT APDUs: `CLASS INSTR LEN data`.
//!
//! `LEN` is one byte; the value `0xFF` announces a two-byte little-endian
//! length that follows. The same framing is used on TCP (raw APDUs back to
//! back) and inside serial frames.

use std::fmt;

use crate::zvt::cursor::Cursor;

/// Largest data length the two-byte extended length can express.
pub const MAX_DATA_LEN: usize = 0xFFFF;

/// Marker in the one-byte length field announcing an extended length.
const EXTENDED_LENGTH_MARKER: u8 = 0xFF;

/// The two-byte control field (class, instruction) identifying a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ControlField {
    pub class: u8,
    pub instr: u8,
}

impl ControlField {
    pub const fn new(class: u8, instr: u8) -> Self {
        Self { class, instr }
    }
}

impl fmt::Display for ControlField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02X} {:02X}", self.class, self.instr)
    }
}

/// Why bytes could not be read as an APDU.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApduError {
    #[error("an APDU needs at least 3 bytes, got {len}")]
    TooShort { len: usize },
    #[error("extended length marker 0xFF is not followed by two length bytes")]
    TruncatedExtendedLength,
    #[error("length field announces {declared} data bytes but {available} are present")]
    LengthMismatch { declared: usize, available: usize },
    #[error("APDU data of {len} bytes exceeds the maximum of 65535")]
    DataTooLong { len: usize },
}

/// One application protocol data unit.
///
/// `Debug` prints only the control field and data length: APDU data may
/// carry card numbers.
#[derive(Clone, PartialEq, Eq)]
pub struct Apdu {
    control: ControlField,
    data: Vec<u8>,
    /// Set when the received APDU used the `0xFF` extended length for data
    /// shorter than 255 bytes, so it re-encodes byte-identically.
    extended_length: bool,
}

impl fmt::Debug for Apdu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Apdu")
            .field("control", &format_args!("{}", self.control))
            .field("data_len", &self.data.len())
            .finish()
    }
}

impl Apdu {
    /// Builds an APDU; fails if `data` is longer than 65535 bytes.
    pub fn new(control: ControlField, data: Vec<u8>) -> Result<Self, ApduError> {
        if data.len() > MAX_DATA_LEN {
            return Err(ApduError::DataTooLong { len: data.len() });
        }
        Ok(Self {
            control,
            data,
            extended_length: false,
        })
    }

    pub fn control(&self) -> ControlField {
        self.control
    }

    pub fn data(&self) -> &[u8] {
        &self.data
    }

    pub fn into_data(self) -> Vec<u8> {
        self.data
    }

    /// Whether the length is written in the 3-byte extended form.
    pub fn uses_extended_length(&self) -> bool {
        self.extended_length || self.data.len() >= usize::from(EXTENDED_LENGTH_MARKER)
    }

    /// Encoded size in bytes.
    pub fn encoded_len(&self) -> usize {
        let header = if self.uses_extended_length() { 5 } else { 3 };
        header + self.data.len()
    }

    /// Appends the encoded APDU to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.reserve(self.encoded_len());
        out.push(self.control.class);
        out.push(self.control.instr);
        // `new` and `decode` guarantee the length fits in 16 bits.
        let len = u16::try_from(self.data.len()).unwrap_or(u16::MAX);
        if self.uses_extended_length() {
            out.push(EXTENDED_LENGTH_MARKER);
            out.extend_from_slice(&len.to_le_bytes());
        } else {
            out.push(len.to_le_bytes()[0]);
        }
        out.extend_from_slice(&self.data);
    }

    /// The encoded APDU.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    /// Decodes exactly one APDU spanning all of `bytes`.
    pub fn decode(bytes: &[u8]) -> Result<Self, ApduError> {
        let (header, declared) = Self::parse_header(bytes)?;
        let available = bytes.len() - header.len;
        if declared != available {
            return Err(ApduError::LengthMismatch {
                declared,
                available,
            });
        }
        Ok(Self {
            control: header.control,
            data: bytes.get(header.len..).unwrap_or(&[]).to_vec(),
            extended_length: header.extended,
        })
    }

    /// Splits one APDU off the front of a byte stream (the TCP transport).
    ///
    /// Returns `Ok(None)` while more bytes are needed, otherwise the APDU and
    /// the number of bytes it occupied.
    pub fn decode_prefix(bytes: &[u8]) -> Result<Option<(Self, usize)>, ApduError> {
        let (header, declared) = match Self::parse_header(bytes) {
            Ok(parsed) => parsed,
            Err(ApduError::TooShort { .. } | ApduError::TruncatedExtendedLength) => {
                return Ok(None);
            }
            Err(other) => return Err(other),
        };
        let total = header.len + declared;
        let Some(data) = bytes.get(header.len..total) else {
            return Ok(None);
        };
        let apdu = Self {
            control: header.control,
            data: data.to_vec(),
            extended_length: header.extended,
        };
        Ok(Some((apdu, total)))
    }

    fn parse_header(bytes: &[u8]) -> Result<(Header, usize), ApduError> {
        let mut cursor = Cursor::new(bytes);
        let (Some(class), Some(instr), Some(len)) = (cursor.u8(), cursor.u8(), cursor.u8()) else {
            return Err(ApduError::TooShort { len: bytes.len() });
        };
        let control = ControlField::new(class, instr);
        if len != EXTENDED_LENGTH_MARKER {
            let header = Header {
                control,
                len: 3,
                extended: false,
            };
            return Ok((header, usize::from(len)));
        }
        let extended = cursor
            .take_array::<2>()
            .ok_or(ApduError::TruncatedExtendedLength)?;
        let declared = usize::from(u16::from_le_bytes(extended));
        let header = Header {
            control,
            len: 5,
            extended: declared < usize::from(EXTENDED_LENGTH_MARKER),
        };
        Ok((header, declared))
    }
}

struct Header {
    control: ControlField,
    len: usize,
    extended: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_length_round_trip() {
        let bytes = [0x06, 0x0F, 0x00];
        let apdu = Apdu::decode(&bytes).unwrap();
        assert_eq!(apdu.control(), ControlField::new(0x06, 0x0F));
        assert!(apdu.data().is_empty());
        assert_eq!(apdu.to_bytes(), bytes);
    }

    #[test]
    fn extended_length_is_little_endian() {
        let mut bytes = vec![0x06, 0xD3, 0xFF, 0x2C, 0x01];
        bytes.extend(std::iter::repeat_n(0xAA, 300));
        let apdu = Apdu::decode(&bytes).unwrap();
        assert_eq!(apdu.data().len(), 300);
        assert_eq!(apdu.to_bytes(), bytes);
    }

    #[test]
    fn exactly_255_bytes_need_the_extended_form() {
        let apdu = Apdu::new(ControlField::new(0x06, 0xD3), vec![0; 255]).unwrap();
        let bytes = apdu.to_bytes();
        assert_eq!(&bytes[..5], &[0x06, 0xD3, 0xFF, 0xFF, 0x00]);
        assert_eq!(Apdu::decode(&bytes).unwrap(), apdu);
    }

    #[test]
    fn non_minimal_extended_length_is_preserved() {
        let bytes = [0x80, 0x00, 0xFF, 0x01, 0x00, 0x42];
        let apdu = Apdu::decode(&bytes).unwrap();
        assert_eq!(apdu.data(), &[0x42]);
        assert_eq!(apdu.to_bytes(), bytes);
    }

    #[test]
    fn length_mismatch_is_an_error() {
        assert_eq!(
            Apdu::decode(&[0x06, 0x01, 0x02, 0x00]),
            Err(ApduError::LengthMismatch {
                declared: 2,
                available: 1
            })
        );
        assert_eq!(
            Apdu::decode(&[0x06, 0x01]),
            Err(ApduError::TooShort { len: 2 })
        );
        assert_eq!(
            Apdu::decode(&[0x06, 0x01, 0xFF, 0x01]),
            Err(ApduError::TruncatedExtendedLength)
        );
    }

    #[test]
    fn prefix_decoding_of_a_stream() {
        let stream = [0x80, 0x00, 0x00, 0x06, 0x0F, 0x00, 0x04];
        let (first, used) = Apdu::decode_prefix(&stream).unwrap().unwrap();
        assert_eq!(first.control(), ControlField::new(0x80, 0x00));
        assert_eq!(used, 3);
        let (second, used2) = Apdu::decode_prefix(&stream[used..]).unwrap().unwrap();
        assert_eq!(second.control(), ControlField::new(0x06, 0x0F));
        assert_eq!(Apdu::decode_prefix(&stream[used + used2..]).unwrap(), None);
    }

    #[test]
    fn too_long_data_is_rejected() {
        assert_eq!(
            Apdu::new(ControlField::new(0x06, 0xD3), vec![0; 65536]),
            Err(ApduError::DataTooLong { len: 65536 })
        );
    }
}
