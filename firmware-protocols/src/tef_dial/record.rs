//! The TEF Dial file format: one field per line, `NNN-NNN = value`, CR LF,
//! Latin-1, closed by the trailer line `999-999 = 0`.
//!
//! Layout per the Multiplus "Layout das Mensagens" page (`AAA-BBB = D…D`, CR
//! LF, value left-aligned and never padded) and ACBr's `ACBrTEFDClass.pas`.
//! Parsing is lenient where clients differ (bare LF, any spaces around `=`,
//! blank lines); encoding writes exactly the documented form.

use std::fmt;

/// A field key: `number-index`, both 000–999. Repeated information (receipt
/// lines, several cards) shares the number and counts up the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FieldId {
    pub number: u16,
    pub index: u16,
}

impl FieldId {
    /// The trailer key that closes every file.
    pub const TRAILER: FieldId = FieldId::new(999, 999);

    pub const fn new(number: u16, index: u16) -> Self {
        Self { number, index }
    }

    /// Parses `NNN-NNN` (exactly three digits each side).
    fn parse(key: &str) -> Option<Self> {
        let (number, index) = key.split_once('-')?;
        Some(Self::new(three_digits(number)?, three_digits(index)?))
    }

    const fn is_encodable(self) -> bool {
        self.number <= 999 && self.index <= 999 && !(self.number == 999 && self.index == 999)
    }
}

fn three_digits(text: &str) -> Option<u16> {
    if text.len() == 3 && text.bytes().all(|b| b.is_ascii_digit()) {
        text.parse().ok()
    } else {
        None
    }
}

impl fmt::Display for FieldId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:03}-{:03}", self.number, self.index)
    }
}

/// Why bytes are not a whole record. Never carries a field's value: values
/// may hold card data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// No `999-999` trailer yet: the file is still being written, or was
    /// torn. Never a record.
    #[error("the file has no 999-999 trailer yet (still being written, or torn)")]
    Incomplete,
    /// A complete line (1-based) that is not `NNN-NNN = value`, or a trailer
    /// whose value is not `0`.
    #[error("line {line} is not a `NNN-NNN = value` field")]
    Malformed { line: usize },
}

/// Why a record cannot be written as a file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The file is Latin-1: a character above U+00FF has no byte.
    #[error("field {field}: value has a character outside Latin-1")]
    NotLatin1 { field: FieldId },
    /// A CR or LF would inject a line; other control characters have no
    /// place in a text field either.
    #[error("field {field}: value has a control character")]
    ControlCharacter { field: FieldId },
    /// A number or index above 999, or the trailer key itself (the encoder
    /// writes the trailer).
    #[error("field {field} cannot be written as a field key")]
    InvalidFieldId { field: FieldId },
}

/// The fields of one file, in file order; the trailer is not stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    fields: Vec<(FieldId, String)>,
}

impl Record {
    pub fn new() -> Self {
        Self::default()
    }

    /// Builder form of [`Record::push`].
    #[must_use]
    pub fn with(mut self, id: FieldId, value: impl Into<String>) -> Self {
        self.push(id, value);
        self
    }

    /// Appends a field (keys may repeat; [`Record::get`] sees the first).
    pub fn push(&mut self, id: FieldId, value: impl Into<String>) {
        self.fields.push((id, value.into()));
    }

    /// The value of the first occurrence of `id`.
    pub fn get(&self, id: FieldId) -> Option<&str> {
        self.fields
            .iter()
            .find(|(field, _)| *field == id)
            .map(|(_, value)| value.as_str())
    }

    /// The values of `number-001`, `number-002`… in index order (receipt
    /// lines); `number-000` (usually a count) is not one of them.
    pub fn lines_of(&self, number: u16) -> Vec<&str> {
        let mut lines: Vec<(u16, &str)> = self
            .fields
            .iter()
            .filter(|(field, _)| field.number == number && field.index != 0)
            .map(|(field, value)| (field.index, value.as_str()))
            .collect();
        lines.sort_by_key(|(index, _)| *index);
        lines.into_iter().map(|(_, value)| value).collect()
    }

    pub fn fields(&self) -> &[(FieldId, String)] {
        &self.fields
    }

    /// The file's bytes: `NNN-NNN = value` CR LF per field, then the trailer.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let mut bytes = Vec::with_capacity(16 * (self.fields.len() + 1));
        for (field, value) in &self.fields {
            if !field.is_encodable() {
                return Err(EncodeError::InvalidFieldId { field: *field });
            }
            bytes.extend_from_slice(format!("{field} = ").as_bytes());
            for c in value.chars() {
                if c.is_control() {
                    return Err(EncodeError::ControlCharacter { field: *field });
                }
                let byte = u8::try_from(u32::from(c))
                    .map_err(|_| EncodeError::NotLatin1 { field: *field })?;
                bytes.push(byte);
            }
            bytes.extend_from_slice(b"\r\n");
        }
        bytes.extend_from_slice(b"999-999 = 0\r\n");
        Ok(bytes)
    }

    /// Reads a whole file. Lines after the trailer are ignored; an
    /// unterminated last line is a line still being written, unless it is
    /// the complete trailer.
    pub fn parse(bytes: &[u8]) -> Result<Record, ParseError> {
        let mut record = Record::new();
        let mut rest = bytes;
        let mut line_number = 0;
        while !rest.is_empty() {
            line_number += 1;
            let (raw, terminated) = match rest.iter().position(|&b| b == b'\n') {
                Some(end) => {
                    let (line, after) = rest.split_at(end);
                    rest = after.get(1..).unwrap_or_default();
                    (line, true)
                }
                None => {
                    let line = rest;
                    rest = &[];
                    (line, false)
                }
            };
            let line = latin1(raw.strip_suffix(b"\r").unwrap_or(raw));
            if terminated && line.trim().is_empty() {
                continue;
            }
            match parse_line(&line) {
                Some((FieldId::TRAILER, value)) if value.trim() == "0" => return Ok(record),
                Some((FieldId::TRAILER, _)) if terminated => {
                    return Err(ParseError::Malformed { line: line_number });
                }
                Some((field, value)) if terminated => record.push(field, value),
                None if terminated => return Err(ParseError::Malformed { line: line_number }),
                // The unterminated tail of a file still being written.
                _ => return Err(ParseError::Incomplete),
            }
        }
        Err(ParseError::Incomplete)
    }
}

/// Latin-1 maps every byte to the code point of the same value.
fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

/// Splits `NNN-NNN = value`. Spaces around the key and `=` are tolerated;
/// only the one space after `=` is dropped, so a value keeps its own
/// leading and trailing spaces (receipt lines are aligned with them).
fn parse_line(line: &str) -> Option<(FieldId, &str)> {
    let (key, value) = line.split_once('=')?;
    let field = FieldId::parse(key.trim_matches(' '))?;
    Some((field, value.strip_prefix(' ').unwrap_or(value)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const AMOUNT: FieldId = FieldId::new(3, 0);

    #[test]
    fn field_id_displays_as_three_digit_pairs() {
        assert_eq!(FieldId::new(3, 0).to_string(), "003-000");
        assert_eq!(FieldId::new(29, 12).to_string(), "029-012");
    }

    #[test]
    fn encodes_the_documented_layout_with_the_trailer() {
        let record = Record::new()
            .with(FieldId::new(0, 0), "ATV")
            .with(FieldId::new(1, 0), "7");
        assert_eq!(
            record.encode().unwrap(),
            b"000-000 = ATV\r\n001-000 = 7\r\n999-999 = 0\r\n"
        );
    }

    #[test]
    fn parses_bare_lf_and_loose_spacing_around_the_equals_sign() {
        let record =
            Record::parse(b"000-000=CRT\n 001-000  = 12\n\n003-000 =150\n999-999 = 0\n").unwrap();
        assert_eq!(record.get(FieldId::new(0, 0)), Some("CRT"));
        assert_eq!(record.get(FieldId::new(1, 0)), Some("12"));
        assert_eq!(record.get(AMOUNT), Some("150"));
    }

    #[test]
    fn values_keep_leading_zeros_and_inner_and_trailing_spaces() {
        let record =
            Record::parse(b"012-000 = 000123\r\n029-001 =   TOTAL  R$ 1,00  \r\n999-999 = 0\r\n")
                .unwrap();
        assert_eq!(record.get(FieldId::new(12, 0)), Some("000123"));
        assert_eq!(record.get(FieldId::new(29, 1)), Some("  TOTAL  R$ 1,00  "));
    }

    #[test]
    fn lines_after_the_trailer_are_ignored() {
        let record = Record::parse(b"000-000 = ATV\r\n999-999 = 0\r\ngarbage\r\n").unwrap();
        assert_eq!(record.fields().len(), 1);
    }

    #[test]
    fn a_file_without_its_trailer_is_incomplete() {
        assert_eq!(Record::parse(b""), Err(ParseError::Incomplete));
        assert_eq!(
            Record::parse(b"000-000 = CRT\r\n00"),
            Err(ParseError::Incomplete)
        );
        assert_eq!(
            Record::parse(b"000-000 = CRT\r\n999-999 = "),
            Err(ParseError::Incomplete)
        );
        assert_eq!(
            Record::parse(b"000-000 = CRT\r\n"),
            Err(ParseError::Incomplete)
        );
    }

    #[test]
    fn an_unterminated_but_complete_trailer_closes_the_file() {
        assert!(Record::parse(b"000-000 = ATV\r\n999-999 = 0").is_ok());
    }

    #[test]
    fn a_broken_complete_line_is_malformed_with_its_line_number() {
        assert_eq!(
            Record::parse(b"000-000 = CRT\r\n03-000 = 1\r\n999-999 = 0\r\n"),
            Err(ParseError::Malformed { line: 2 })
        );
        assert_eq!(
            Record::parse(b"000-000 = CRT\r\nno equals sign\r\n"),
            Err(ParseError::Malformed { line: 2 })
        );
        assert_eq!(
            Record::parse(b"999-999 = 1\r\n"),
            Err(ParseError::Malformed { line: 1 })
        );
    }

    #[test]
    fn the_error_never_echoes_a_value() {
        let error = Record::parse(b"740-000 4444333322221111\r\n999-999 = 0\r\n").unwrap_err();
        assert!(!error.to_string().contains("4444"));
    }

    #[test]
    fn latin1_round_trips_byte_for_byte() {
        let record = Record::new().with(FieldId::new(29, 1), "CARTÃO DÉBITO");
        let bytes = record.encode().unwrap();
        assert!(bytes.contains(&0xC3)); // Ã as one byte, not UTF-8
        assert_eq!(Record::parse(&bytes).unwrap(), record);
    }

    #[test]
    fn encode_refuses_line_injection_and_non_latin1() {
        let injected = Record::new().with(FieldId::new(2, 0), "A\r\n003-000 = 1");
        assert_eq!(
            injected.encode(),
            Err(EncodeError::ControlCharacter {
                field: FieldId::new(2, 0)
            })
        );
        let euro = Record::new().with(FieldId::new(30, 0), "€");
        assert_eq!(
            euro.encode(),
            Err(EncodeError::NotLatin1 {
                field: FieldId::new(30, 0)
            })
        );
    }

    #[test]
    fn encode_refuses_keys_it_cannot_write() {
        for field in [
            FieldId::TRAILER,
            FieldId::new(1000, 0),
            FieldId::new(1, 1000),
        ] {
            let record = Record::new().with(field, "0");
            assert_eq!(record.encode(), Err(EncodeError::InvalidFieldId { field }));
        }
    }

    #[test]
    fn get_sees_the_first_occurrence_and_lines_of_sorts_by_index() {
        let record = Record::new()
            .with(FieldId::new(28, 0), "2")
            .with(FieldId::new(29, 2), "second")
            .with(FieldId::new(29, 1), "first")
            .with(AMOUNT, "1")
            .with(AMOUNT, "2");
        assert_eq!(record.get(AMOUNT), Some("1"));
        assert_eq!(record.lines_of(29), vec!["first", "second"]);
        assert!(record.lines_of(28).is_empty());
    }
}
