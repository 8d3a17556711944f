//! ZVT text fields.
//!
//! ZVT transmits text in code page 437 (the German umlauts are 0x84 ä,
//! 0x94 ö, 0x81 ü, 0xE1 ß). [`Text`] keeps the exact bytes so messages
//! re-encode byte-identically, and converts to and from Unicode on demand.

use std::fmt;

/// Bytes of a ZVT text field (code page 437).
#[derive(Clone, PartialEq, Eq, Default, Hash)]
pub struct Text(Vec<u8>);

impl Text {
    pub fn from_bytes(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }

    /// Encodes `text` in code page 437, or `None` if a character has no
    /// code page 437 form.
    pub fn encode(text: &str) -> Option<Self> {
        text.chars()
            .map(cp437_byte)
            .collect::<Option<Vec<u8>>>()
            .map(Self)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The text as Unicode. Every byte has a mapping, so this is lossless.
    pub fn to_unicode(&self) -> String {
        self.0.iter().map(|&byte| cp437_char(byte)).collect()
    }

    /// The text with trailing NUL and space padding removed.
    pub fn trimmed(&self) -> String {
        self.to_unicode().trim_end_matches(['\0', ' ']).to_owned()
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Text({:?})", self.to_unicode())
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_unicode())
    }
}

/// A fixed-width text field (e.g. the 15-byte VU number).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FixedText<const N: usize>([u8; N]);

impl<const N: usize> FixedText<N> {
    pub fn from_bytes(bytes: [u8; N]) -> Self {
        Self(bytes)
    }

    /// Encodes `text` in code page 437, right-padded with `pad`; `None`
    /// if it is longer than `N` bytes or not representable.
    pub fn padded(text: &str, pad: u8) -> Option<Self> {
        let encoded = Text::encode(text)?;
        let mut bytes = [pad; N];
        let target = bytes.get_mut(..encoded.len())?;
        target.copy_from_slice(encoded.as_bytes());
        Some(Self(bytes))
    }

    pub fn as_bytes(&self) -> &[u8; N] {
        &self.0
    }

    pub fn to_text(&self) -> Text {
        Text(self.0.to_vec())
    }

    /// The text with trailing NUL and space padding removed.
    pub fn trimmed(&self) -> String {
        self.to_text().trimmed()
    }
}

impl<const N: usize> fmt::Debug for FixedText<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FixedText({:?})", self.to_text().to_unicode())
    }
}

/// Unicode for one code page 437 byte. The low half is taken as ASCII
/// (control bytes such as CR stay control characters).
pub fn cp437_char(byte: u8) -> char {
    match CP437_HIGH.get(usize::from(byte).wrapping_sub(0x80)) {
        Some(&c) if byte >= 0x80 => c,
        _ => char::from(byte),
    }
}

/// Code page 437 byte for a Unicode character, if there is one.
pub fn cp437_byte(c: char) -> Option<u8> {
    if c.is_ascii() {
        return u8::try_from(c).ok();
    }
    let index = CP437_HIGH.iter().position(|&candidate| candidate == c)?;
    u8::try_from(index + 0x80).ok()
}

const CP437_HIGH: [char; 128] = [
    '\u{00C7}', '\u{00FC}', '\u{00E9}', '\u{00E2}', '\u{00E4}', '\u{00E0}', '\u{00E5}', '\u{00E7}',
    '\u{00EA}', '\u{00EB}', '\u{00E8}', '\u{00EF}', '\u{00EE}', '\u{00EC}', '\u{00C4}', '\u{00C5}',
    '\u{00C9}', '\u{00E6}', '\u{00C6}', '\u{00F4}', '\u{00F6}', '\u{00F2}', '\u{00FB}', '\u{00F9}',
    '\u{00FF}', '\u{00D6}', '\u{00DC}', '\u{00A2}', '\u{00A3}', '\u{00A5}', '\u{20A7}', '\u{0192}',
    '\u{00E1}', '\u{00ED}', '\u{00F3}', '\u{00FA}', '\u{00F1}', '\u{00D1}', '\u{00AA}', '\u{00BA}',
    '\u{00BF}', '\u{2310}', '\u{00AC}', '\u{00BD}', '\u{00BC}', '\u{00A1}', '\u{00AB}', '\u{00BB}',
    '\u{2591}', '\u{2592}', '\u{2593}', '\u{2502}', '\u{2524}', '\u{2561}', '\u{2562}', '\u{2556}',
    '\u{2555}', '\u{2563}', '\u{2551}', '\u{2557}', '\u{255D}', '\u{255C}', '\u{255B}', '\u{2510}',
    '\u{2514}', '\u{2534}', '\u{252C}', '\u{251C}', '\u{2500}', '\u{253C}', '\u{255E}', '\u{255F}',
    '\u{255A}', '\u{2554}', '\u{2569}', '\u{2566}', '\u{2560}', '\u{2550}', '\u{256C}', '\u{2567}',
    '\u{2568}', '\u{2564}', '\u{2565}', '\u{2559}', '\u{2558}', '\u{2552}', '\u{2553}', '\u{256B}',
    '\u{256A}', '\u{2518}', '\u{250C}', '\u{2588}', '\u{2584}', '\u{258C}', '\u{2590}', '\u{2580}',
    '\u{03B1}', '\u{00DF}', '\u{0393}', '\u{03C0}', '\u{03A3}', '\u{03C3}', '\u{00B5}', '\u{03C4}',
    '\u{03A6}', '\u{0398}', '\u{03A9}', '\u{03B4}', '\u{221E}', '\u{03C6}', '\u{03B5}', '\u{2229}',
    '\u{2261}', '\u{00B1}', '\u{2265}', '\u{2264}', '\u{2320}', '\u{2321}', '\u{00F7}', '\u{2248}',
    '\u{00B0}', '\u{2219}', '\u{00B7}', '\u{221A}', '\u{207F}', '\u{00B2}', '\u{25A0}', '\u{00A0}',
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn german_umlauts() {
        let text = Text::from_bytes(vec![0x54, 0x65, 0x73, 0x74, 0x20, 0x84, 0x94, 0x81, 0xE1]);
        assert_eq!(text.to_unicode(), "Test äöüß");
        assert_eq!(Text::encode("Test äöüß"), Some(text));
    }

    #[test]
    fn every_byte_round_trips() {
        for byte in 0..=255u8 {
            assert_eq!(cp437_byte(cp437_char(byte)), Some(byte));
        }
        assert_eq!(Text::encode("€"), None);
    }

    #[test]
    fn fixed_text_padding() {
        let vu = FixedText::<15>::padded("804011926", b' ').unwrap();
        assert_eq!(&vu.as_bytes()[9..], b"      ");
        assert_eq!(vu.trimmed(), "804011926");
        assert_eq!(FixedText::<2>::padded("abc", b' '), None);
    }
}
