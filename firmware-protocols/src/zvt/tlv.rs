//! BER-TLV as carried in BMP 06.
//!
//! Tags are 1–4 bytes (a first byte with low five bits `0x1F` continues while
//! bit 8 of the following byte is set); lengths are `0x00`–`0x7F`,
//! `0x81 xx` or `0x82 xx xx`. A tag with the constructed bit (0x20) whose
//! content parses as TLV is decoded as nested objects.
//!
//! Decoding is strict (minimal length forms only) so that whatever decodes
//! re-encodes byte-identically; callers keep undecodable content as bytes.

use std::fmt;

use crate::zvt::cursor::Cursor;
use crate::zvt::error::{EncodeError, TlvError};

/// Nesting beyond this is rejected to bound recursion on hostile input.
pub const MAX_DEPTH: usize = 16;

/// Well-known ZVT TLV tags.
pub mod tags {
    /// Text line (print and display texts).
    pub const TEXT_LINE: u32 = 0x07;
    /// Attribute / end-of-receipt marker.
    pub const ATTRIBUTE: u32 = 0x09;
    /// Permitted ZVT command.
    pub const PERMITTED_COMMAND: u32 = 0x0A;
    /// Display texts container.
    pub const DISPLAY_TEXTS: u32 = 0x24;
    /// Print texts container (receipt lines).
    pub const PRINT_TEXTS: u32 = 0x25;
    /// List of permitted ZVT commands.
    pub const PERMITTED_COMMANDS: u32 = 0x26;
    /// Receipt type: 1 merchant, 2 customer, 3 administration.
    pub const RECEIPT_TYPE: u32 = 0x1F07;
}

/// Receipt type values of TLV tag 1F07.
pub mod receipt_type {
    pub const MERCHANT: u8 = 1;
    pub const CUSTOMER: u8 = 2;
    pub const ADMINISTRATION: u8 = 3;
}

/// The content of a TLV object.
#[derive(Clone, PartialEq, Eq)]
pub enum TlvValue {
    Primitive(Vec<u8>),
    Constructed(Vec<Tlv>),
}

/// One TLV object.
#[derive(Clone, PartialEq, Eq)]
pub struct Tlv {
    /// The tag bytes read as a big-endian number (e.g. `0x1F07`).
    pub tag: u32,
    pub value: TlvValue,
}

impl fmt::Debug for Tlv {
    // Primitive values may carry card data (EMV tags): print only lengths.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            TlvValue::Primitive(bytes) => {
                write!(f, "Tlv({:#X}, <{} bytes>)", self.tag, bytes.len())
            }
            TlvValue::Constructed(children) => f
                .debug_tuple("Tlv")
                .field(&format_args!("{:#X}", self.tag))
                .field(children)
                .finish(),
        }
    }
}

impl Tlv {
    pub fn primitive(tag: u32, value: impl Into<Vec<u8>>) -> Self {
        Self {
            tag,
            value: TlvValue::Primitive(value.into()),
        }
    }

    pub fn constructed(tag: u32, children: Vec<Tlv>) -> Self {
        Self {
            tag,
            value: TlvValue::Constructed(children),
        }
    }

    pub fn as_primitive(&self) -> Option<&[u8]> {
        match &self.value {
            TlvValue::Primitive(bytes) => Some(bytes),
            TlvValue::Constructed(_) => None,
        }
    }

    pub fn children(&self) -> Option<&[Tlv]> {
        match &self.value {
            TlvValue::Constructed(children) => Some(children),
            TlvValue::Primitive(_) => None,
        }
    }

    /// The single-byte value of a primitive object.
    pub fn as_u8(&self) -> Option<u8> {
        match self.as_primitive()? {
            [byte] => Some(*byte),
            _ => None,
        }
    }

    fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let tag_bytes = tag_bytes(self.tag)?;
        let mut content = Vec::new();
        match &self.value {
            TlvValue::Primitive(bytes) => content.extend_from_slice(bytes),
            TlvValue::Constructed(children) => {
                for child in children {
                    child.encode_into(&mut content)?;
                }
            }
        }
        out.extend_from_slice(&tag_bytes);
        encode_ber_length(content.len(), out)?;
        out.extend_from_slice(&content);
        Ok(())
    }
}

/// A sequence of TLV objects (the content of BMP 06).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct TlvList(pub Vec<Tlv>);

impl fmt::Debug for TlvList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.0).finish()
    }
}

impl TlvList {
    pub fn new(objects: Vec<Tlv>) -> Self {
        Self(objects)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, TlvError> {
        decode_sequence(bytes, 0).map(Self)
    }

    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        for object in &self.0 {
            object.encode_into(out)?;
        }
        Ok(())
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::new();
        self.encode_into(&mut out)?;
        Ok(out)
    }

    /// The first top-level object with `tag`.
    pub fn get(&self, tag: u32) -> Option<&Tlv> {
        self.0.iter().find(|object| object.tag == tag)
    }

    /// The first object with `tag` at any depth (depth-first).
    pub fn find(&self, tag: u32) -> Option<&Tlv> {
        fn search(objects: &[Tlv], tag: u32) -> Option<&Tlv> {
            objects.iter().find_map(|object| {
                if object.tag == tag {
                    Some(object)
                } else {
                    object.children().and_then(|children| search(children, tag))
                }
            })
        }
        search(&self.0, tag)
    }
}

/// Writes a BER length (minimal form, at most two length bytes).
pub fn encode_ber_length(len: usize, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    match len {
        0..=0x7F => out.push(len as u8),
        0x80..=0xFF => out.extend_from_slice(&[0x81, len as u8]),
        0x100..=0xFFFF => {
            out.push(0x82);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => return Err(EncodeError::TlvTooLong { len }),
    }
    Ok(())
}

/// Reads a minimal-form BER length. `None` if truncated, unsupported or not
/// minimal.
pub(crate) fn decode_ber_length(cursor: &mut Cursor<'_>) -> Option<usize> {
    match cursor.u8()? {
        short @ 0..=0x7F => Some(usize::from(short)),
        0x81 => cursor.u8().filter(|&len| len >= 0x80).map(usize::from),
        0x82 => cursor
            .take_array::<2>()
            .map(|bytes| usize::from(u16::from_be_bytes(bytes)))
            .filter(|&len| len >= 0x100),
        _ => None,
    }
}

fn tag_bytes(tag: u32) -> Result<Vec<u8>, EncodeError> {
    let all = tag.to_be_bytes();
    let first_significant = all.iter().position(|&byte| byte != 0).unwrap_or(3);
    let bytes = all
        .get(first_significant..)
        .map(<[u8]>::to_vec)
        .unwrap_or_default();
    // Only tags whose bytes parse back to exactly themselves are valid.
    let mut cursor = Cursor::new(&bytes);
    match decode_tag(&mut cursor) {
        Some(parsed) if parsed == tag && cursor.is_empty() => Ok(bytes),
        _ => Err(EncodeError::InvalidTlvTag { tag }),
    }
}

fn decode_tag(cursor: &mut Cursor<'_>) -> Option<u32> {
    let first = cursor.u8()?;
    let mut tag = u32::from(first);
    if first & 0x1F != 0x1F {
        return Some(tag);
    }
    for _ in 0..3 {
        let next = cursor.u8()?;
        tag = (tag << 8) | u32::from(next);
        if next & 0x80 == 0 {
            return Some(tag);
        }
    }
    None
}

fn is_constructed(tag: u32) -> bool {
    let first_byte = tag
        .to_be_bytes()
        .into_iter()
        .find(|&byte| byte != 0)
        .unwrap_or(0);
    first_byte & 0x20 != 0
}

fn decode_sequence(bytes: &[u8], depth: usize) -> Result<Vec<Tlv>, TlvError> {
    if depth > MAX_DEPTH {
        return Err(TlvError::TooDeep { max: MAX_DEPTH });
    }
    let mut cursor = Cursor::new(bytes);
    let mut objects = Vec::new();
    while !cursor.is_empty() {
        let offset = cursor.position();
        let tag = decode_tag(&mut cursor).ok_or(TlvError::InvalidTag { offset })?;
        let len_offset = cursor.position();
        let len =
            decode_ber_length(&mut cursor).ok_or(TlvError::InvalidLength { offset: len_offset })?;
        let available = cursor.remaining();
        let content = cursor.take(len).ok_or(TlvError::Truncated {
            offset: cursor.position(),
            needed: len,
            available,
        })?;
        let value = if is_constructed(tag) {
            match decode_sequence(content, depth + 1) {
                Ok(children) => TlvValue::Constructed(children),
                Err(TlvError::TooDeep { max }) => return Err(TlvError::TooDeep { max }),
                Err(_) => TlvValue::Primitive(content.to_vec()),
            }
        } else {
            TlvValue::Primitive(content.to_vec())
        };
        objects.push(Tlv { tag, value });
    }
    Ok(objects)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_receipt_structure() {
        let bytes = [
            0x1F, 0x07, 0x01, 0x02, 0x25, 0x06, 0x07, 0x00, 0x07, 0x02, 0x41, 0x42,
        ];
        let list = TlvList::decode(&bytes).unwrap();
        assert_eq!(list.get(tags::RECEIPT_TYPE).and_then(Tlv::as_u8), Some(2));
        let lines = list.get(tags::PRINT_TEXTS).and_then(Tlv::children).unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1].as_primitive(), Some(&b"AB"[..]));
        assert_eq!(list.to_bytes().unwrap(), bytes);
    }

    #[test]
    fn long_lengths() {
        let value = vec![0x20; 300];
        let list = TlvList::new(vec![Tlv::primitive(0x07, value.clone())]);
        let bytes = list.to_bytes().unwrap();
        assert_eq!(&bytes[..4], &[0x07, 0x82, 0x01, 0x2C]);
        assert_eq!(TlvList::decode(&bytes).unwrap(), list);
        let list = TlvList::new(vec![Tlv::primitive(0x07, vec![0; 0x80])]);
        assert_eq!(&list.to_bytes().unwrap()[..3], &[0x07, 0x81, 0x80]);
    }

    #[test]
    fn non_minimal_length_is_rejected() {
        assert!(matches!(
            TlvList::decode(&[0x07, 0x81, 0x01, 0x41]),
            Err(TlvError::InvalidLength { .. })
        ));
    }

    #[test]
    fn constructed_tag_with_non_tlv_content_stays_primitive() {
        let bytes = [0xFF, 0x40, 0x03, 0x12, 0x34, 0x56];
        let list = TlvList::decode(&bytes).unwrap();
        assert_eq!(list.0[0].as_primitive(), Some(&[0x12, 0x34, 0x56][..]));
        assert_eq!(list.to_bytes().unwrap(), bytes);
    }

    #[test]
    fn invalid_tags_are_not_encoded() {
        let list = TlvList::new(vec![Tlv::primitive(0x1F, vec![])]);
        assert_eq!(
            list.to_bytes(),
            Err(EncodeError::InvalidTlvTag { tag: 0x1F })
        );
    }

    #[test]
    fn deep_nesting_is_bounded() {
        let mut bytes = vec![0x07, 0x00];
        for _ in 0..40 {
            let mut outer = vec![0x25];
            encode_ber_length(bytes.len(), &mut outer).unwrap();
            outer.extend_from_slice(&bytes);
            bytes = outer;
        }
        assert_eq!(
            TlvList::decode(&bytes),
            Err(TlvError::TooDeep { max: MAX_DEPTH })
        );
    }
}
