//! Card data fields whose `Debug` output must not reveal card numbers.
//!
//! * [`Pan`] (BMP 22): `Debug` shows at most the first 6 and last 4 digits.
//! * [`TrackData`] (BMP 23/24/2D): `Debug` shows only the length.
//! * [`Password`] (ECR/PT password): `Debug` shows nothing.

use std::fmt;

/// Nibble value that ZVT uses to mask a PAN digit.
const MASK_NIBBLE: u8 = 0x0E;

/// A primary account number as sent in BMP 22: packed nibbles, digits 0–9,
/// `E` for masked digits, padded with `F` to whole bytes.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Pan(Vec<u8>);

impl Pan {
    /// Wraps the raw BMP 22 value bytes.
    pub fn from_bytes(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }

    /// Builds a PAN from digits, with `*` (or `E`) for masked digits; an odd
    /// count is padded with `F`. `None` for any other character.
    pub fn from_digits(digits: &str) -> Option<Self> {
        let nibbles = digits
            .chars()
            .map(|c| match c {
                '0'..='9' => c.to_digit(10).and_then(|d| u8::try_from(d).ok()),
                '*' | 'E' | 'e' => Some(MASK_NIBBLE),
                _ => None,
            })
            .collect::<Option<Vec<u8>>>()?;
        let bytes = nibbles
            .chunks(2)
            .map(|pair| match pair {
                [high, low] => (high << 4) | low,
                [high] => (high << 4) | 0x0F,
                _ => 0xFF,
            })
            .collect();
        Some(Self(bytes))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The PAN characters: digits, `*` for masked positions. Stops at the
    /// first nibble that is neither (padding `F` or a track separator).
    fn symbols(&self) -> Vec<char> {
        self.0
            .iter()
            .flat_map(|&byte| [byte >> 4, byte & 0x0F])
            .map_while(|nibble| match nibble {
                0..=9 => char::from_digit(u32::from(nibble), 10),
                MASK_NIBBLE => Some('*'),
                _ => None,
            })
            .collect()
    }

    /// Number of PAN positions (digits plus masked positions).
    pub fn len(&self) -> usize {
        self.symbols().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether any position is masked.
    pub fn is_masked(&self) -> bool {
        self.symbols().contains(&'*')
    }

    /// The first six digits (BIN), if present and not masked.
    pub fn first6(&self) -> Option<String> {
        let symbols = self.symbols();
        let head = symbols.get(..6)?;
        head.iter()
            .all(char::is_ascii_digit)
            .then(|| head.iter().collect())
    }

    /// The last four digits, if present and not masked.
    pub fn last4(&self) -> Option<String> {
        let symbols = self.symbols();
        let tail = symbols.get(symbols.len().checked_sub(4)?..)?;
        tail.iter()
            .all(char::is_ascii_digit)
            .then(|| tail.iter().collect())
    }

    /// Display form showing at most the first 6 and last 4 digits, e.g.
    /// `474843******7743`. Shorter numbers show only the last 4, and numbers
    /// of 4 or fewer positions nothing.
    pub fn redacted(&self) -> String {
        let symbols = self.symbols();
        let len = symbols.len();
        let visible_head = if len >= 13 { 6 } else { 0 };
        let visible_tail = if len > 4 { 4 } else { 0 };
        symbols
            .iter()
            .enumerate()
            .map(|(index, &c)| {
                if index < visible_head || index >= len - visible_tail {
                    c
                } else {
                    '*'
                }
            })
            .collect()
    }
}

impl fmt::Debug for Pan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pan({})", self.redacted())
    }
}

/// Magnetic-stripe track data (BMP 23 track 2, 24 track 3, 2D track 1).
/// Kept as raw bytes; never printed.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TrackData(Vec<u8>);

impl TrackData {
    pub fn from_bytes(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for TrackData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TrackData(<{} bytes redacted>)", self.0.len())
    }
}

/// The 3-byte password sent with administrative commands (6 BCD digits).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Password([u8; 3]);

impl Password {
    pub fn from_bytes(bytes: [u8; 3]) -> Self {
        Self(bytes)
    }

    /// A password from its decimal value (at most 999999).
    pub fn from_number(value: u32) -> Option<Self> {
        crate::zvt::bcd::encode_bcd_array::<3>(u64::from(value)).map(Self)
    }

    pub fn as_bytes(&self) -> &[u8; 3] {
        &self.0
    }

    /// The decimal value, if the bytes are valid BCD.
    pub fn number(&self) -> Option<u32> {
        crate::zvt::bcd::decode_bcd(&self.0).and_then(|value| u32::try_from(value).ok())
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

/// Byte strings that may hold sensitive data; `Debug` shows only the length.
#[derive(Clone, PartialEq, Eq, Default, Hash)]
pub struct OpaqueBytes(pub Vec<u8>);

impl OpaqueBytes {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }
}

impl fmt::Debug for OpaqueBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} bytes>", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_pan_pieces() {
        let pan = Pan::from_digits("474843******7743").unwrap();
        assert_eq!(
            pan.as_bytes(),
            &[0x47, 0x48, 0x43, 0xEE, 0xEE, 0xEE, 0x77, 0x43]
        );
        assert!(pan.is_masked());
        assert_eq!(pan.first6().as_deref(), Some("474843"));
        assert_eq!(pan.last4().as_deref(), Some("7743"));
        assert_eq!(format!("{pan:?}"), "Pan(474843******7743)");
    }

    #[test]
    fn unmasked_pan_debug_hides_the_middle() {
        // Synthetic test number (not a real card).
        let pan = Pan::from_digits("1234567890123").unwrap();
        assert_eq!(pan.as_bytes().last(), Some(&0x3F));
        assert_eq!(pan.len(), 13);
        let debug = format!("{pan:?}");
        assert_eq!(debug, "Pan(123456***0123)");
        assert!(!debug.contains("789"));
    }

    #[test]
    fn fully_masked_head() {
        let pan = Pan::from_digits("************4771").unwrap();
        assert_eq!(pan.first6(), None);
        assert_eq!(pan.last4().as_deref(), Some("4771"));
    }

    #[test]
    fn short_pan_is_fully_hidden() {
        assert_eq!(
            format!("{:?}", Pan::from_digits("1234").unwrap()),
            "Pan(****)"
        );
        assert_eq!(
            format!("{:?}", Pan::from_digits("1234567890").unwrap()),
            "Pan(******7890)"
        );
    }

    #[test]
    fn track_and_password_are_hidden() {
        let track = TrackData::from_bytes(vec![0x12, 0x34, 0xD2]);
        assert_eq!(format!("{track:?}"), "TrackData(<3 bytes redacted>)");
        let password = Password::from_number(123_456).unwrap();
        assert_eq!(password.number(), Some(123_456));
        assert_eq!(format!("{password:?}"), "Password(***)");
    }
}
