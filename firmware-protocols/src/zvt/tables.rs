//! Reference tables compiled in from `data/*.tsv`: BMP definitions, result
//! code texts and intermediate status texts.
//!
//! The files are tab-separated (`hex code`, columns…), `#` starts a comment
//! line. They are parsed once on first use; a malformed line is skipped (and
//! caught by the unit tests below).

use std::sync::OnceLock;

const BMP_DEFINITIONS: &str = include_str!("../../data/zvt-bmp-definitions.tsv");
const RESULT_CODES: &str = include_str!("../../data/zvt-result-codes.tsv");
const INTERMEDIATE_STATUS: &str = include_str!("../../data/zvt-intermediate-status.tsv");

/// How the value of a BMP is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LengthKind {
    /// Exactly this many value bytes.
    Fixed(usize),
    /// Two `F0`–`F9` bytes give the value length (0–99).
    Ll,
    /// Three `F0`–`F9` bytes give the value length (0–999).
    Lll,
    /// BER length (BMP 06, the TLV container).
    Tlv,
}

/// One row of the BMP definitions table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BmpDefinition {
    pub tag: u8,
    pub length: LengthKind,
    pub name: &'static str,
}

/// The definition of BMP `tag`, or `None` for a tag this crate does not know
/// (its length, and so everything after it, cannot be parsed).
pub fn bmp_definition(tag: u8) -> Option<BmpDefinition> {
    static TABLE: OnceLock<Vec<Option<BmpDefinition>>> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut table = vec![None; 256];
        for (tag, rest) in rows(BMP_DEFINITIONS) {
            let mut columns = rest.splitn(2, '\t');
            let (Some(kind), Some(name)) = (columns.next(), columns.next()) else {
                continue;
            };
            let Some(length) = parse_length_kind(kind) else {
                continue;
            };
            if let Some(slot) = table.get_mut(usize::from(tag)) {
                *slot = Some(BmpDefinition { tag, length, name });
            }
        }
        table
    });
    table.get(usize::from(tag)).copied().flatten()
}

/// Text of a ZVT result code. Codes 0x01–0x63 come from the authorisation
/// host and have no fixed text.
pub fn result_code_text(code: u8) -> Option<&'static str> {
    static TABLE: OnceLock<Vec<Option<&'static str>>> = OnceLock::new();
    lookup_text(&TABLE, RESULT_CODES, code)
}

/// Display text of an intermediate status code (04 FF).
pub fn intermediate_status_text(code: u8) -> Option<&'static str> {
    static TABLE: OnceLock<Vec<Option<&'static str>>> = OnceLock::new();
    lookup_text(&TABLE, INTERMEDIATE_STATUS, code)
}

fn lookup_text(
    table: &'static OnceLock<Vec<Option<&'static str>>>,
    source: &'static str,
    code: u8,
) -> Option<&'static str> {
    let table = table.get_or_init(|| {
        let mut table = vec![None; 256];
        for (code, text) in rows(source) {
            if let Some(slot) = table.get_mut(usize::from(code)) {
                *slot = Some(text);
            }
        }
        table
    });
    table.get(usize::from(code)).copied().flatten()
}

/// Data rows of a table as (code, rest of line).
fn rows(source: &'static str) -> impl Iterator<Item = (u8, &'static str)> {
    source
        .lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
        .filter_map(|line| {
            let (code, rest) = line.split_once('\t')?;
            Some((u8::from_str_radix(code.trim(), 16).ok()?, rest.trim_end()))
        })
}

fn parse_length_kind(kind: &str) -> Option<LengthKind> {
    match kind {
        "ll" => Some(LengthKind::Ll),
        "lll" => Some(LengthKind::Lll),
        "tlv" => Some(LengthKind::Tlv),
        _ => kind
            .strip_prefix("fixed:")
            .and_then(|n| n.parse().ok())
            .map(LengthKind::Fixed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data_lines(source: &str) -> usize {
        source
            .lines()
            .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
            .count()
    }

    #[test]
    fn every_table_line_parses() {
        let bmps = (0..=255u8).filter_map(bmp_definition).count();
        assert_eq!(bmps, data_lines(BMP_DEFINITIONS));
        let results = (0..=255u8).filter_map(result_code_text).count();
        assert_eq!(results, data_lines(RESULT_CODES));
        let statuses = (0..=255u8).filter_map(intermediate_status_text).count();
        assert_eq!(statuses, data_lines(INTERMEDIATE_STATUS));
    }

    #[test]
    fn known_entries() {
        assert_eq!(
            bmp_definition(0x04).map(|d| d.length),
            Some(LengthKind::Fixed(6))
        );
        assert_eq!(
            bmp_definition(0x3C).map(|d| d.length),
            Some(LengthKind::Lll)
        );
        assert_eq!(
            bmp_definition(0x06).map(|d| d.length),
            Some(LengthKind::Tlv)
        );
        assert_eq!(bmp_definition(0x31), None);
        assert_eq!(
            result_code_text(0x6C),
            Some("abort via timeout or abort key")
        );
        assert_eq!(result_code_text(0x83), Some("function not possible"));
        assert_eq!(intermediate_status_text(0x0A), Some("Insert card"));
    }
}
