//! Money: integer minor units inside, the Gateway's decimals converted once, here, at the edge,
//! exactly: a JSON number is read from its text, never through a float.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, Unexpected};
use serde_json::value::RawValue;

/// The largest amount, in minor units: 15 significant digits. Amounts go back to the Gateway
/// as JSON numbers through an f64 ([`Currency::to_decimal`]), and a decimal of at most 15
/// significant digits survives that trip exactly.
pub const MAX_MINOR: i64 = 999_999_999_999_999;
const MAX_MINOR_DIGITS: usize = 15;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("`{0}` is not an active ISO 4217 currency code")]
    BadCurrency(String),
    #[error("`{0}` is not a plain decimal amount (digits with at most one `.` or `,`)")]
    NotDecimal(String),
    #[error("`{amount}` has more decimals than {currency} allows ({digits})")]
    TooManyDecimals {
        amount: String,
        currency: &'static str,
        digits: u8,
    },
    #[error("`{amount}` is too large: at most {max} {currency}")]
    TooLarge {
        amount: String,
        max: String,
        currency: &'static str,
    },
}

/// Input quoted in an error message, cut short: errors name the problem, not a 64 KB value.
fn shown(text: &str) -> String {
    const LONGEST: usize = 40;
    match text.char_indices().nth(LONGEST) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

/// An active ISO 4217 currency: its code, numeric code and number of minor digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency {
    code: &'static str,
    numeric: u16,
    minor_digits: u8,
}

/// ISO 4217 list one as of 2026, sorted by code: the currencies in use, with the funds
/// (`BOV`, `CLF`, `UYI`…). Not the X-codes that are no currency (precious metals `XAU` `XAG`
/// `XPT` `XPD`, units of account `XDR` `XBA`–`XBD` `XSU` `XUA` `XAD`, `XTS` for testing, `XXX`),
/// nor withdrawn ones (`HRK`, `BGN` → EUR; `ANG` → `XCG`; `ZWL` → `ZWG`; `SLL` → `SLE`; `CUC`).
const ACTIVE: &[Currency] = &[
    Currency::iso("AED", 784, 2),
    Currency::iso("AFN", 971, 2),
    Currency::iso("ALL", 8, 2),
    Currency::iso("AMD", 51, 2),
    Currency::iso("AOA", 973, 2),
    Currency::iso("ARS", 32, 2),
    Currency::iso("AUD", 36, 2),
    Currency::iso("AWG", 533, 2),
    Currency::iso("AZN", 944, 2),
    Currency::iso("BAM", 977, 2),
    Currency::iso("BBD", 52, 2),
    Currency::iso("BDT", 50, 2),
    Currency::iso("BHD", 48, 3),
    Currency::iso("BIF", 108, 0),
    Currency::iso("BMD", 60, 2),
    Currency::iso("BND", 96, 2),
    Currency::iso("BOB", 68, 2),
    Currency::iso("BOV", 984, 2),
    Currency::iso("BRL", 986, 2),
    Currency::iso("BSD", 44, 2),
    Currency::iso("BTN", 64, 2),
    Currency::iso("BWP", 72, 2),
    Currency::iso("BYN", 933, 2),
    Currency::iso("BZD", 84, 2),
    Currency::iso("CAD", 124, 2),
    Currency::iso("CDF", 976, 2),
    Currency::iso("CHE", 947, 2),
    Currency::iso("CHF", 756, 2),
    Currency::iso("CHW", 948, 2),
    Currency::iso("CLF", 990, 4),
    Currency::iso("CLP", 152, 0),
    Currency::iso("CNY", 156, 2),
    Currency::iso("COP", 170, 2),
    Currency::iso("COU", 970, 2),
    Currency::iso("CRC", 188, 2),
    Currency::iso("CUP", 192, 2),
    Currency::iso("CVE", 132, 2),
    Currency::iso("CZK", 203, 2),
    Currency::iso("DJF", 262, 0),
    Currency::iso("DKK", 208, 2),
    Currency::iso("DOP", 214, 2),
    Currency::iso("DZD", 12, 2),
    Currency::iso("EGP", 818, 2),
    Currency::iso("ERN", 232, 2),
    Currency::iso("ETB", 230, 2),
    Currency::iso("EUR", 978, 2),
    Currency::iso("FJD", 242, 2),
    Currency::iso("FKP", 238, 2),
    Currency::iso("GBP", 826, 2),
    Currency::iso("GEL", 981, 2),
    Currency::iso("GHS", 936, 2),
    Currency::iso("GIP", 292, 2),
    Currency::iso("GMD", 270, 2),
    Currency::iso("GNF", 324, 0),
    Currency::iso("GTQ", 320, 2),
    Currency::iso("GYD", 328, 2),
    Currency::iso("HKD", 344, 2),
    Currency::iso("HNL", 340, 2),
    Currency::iso("HTG", 332, 2),
    Currency::iso("HUF", 348, 2),
    Currency::iso("IDR", 360, 2),
    Currency::iso("ILS", 376, 2),
    Currency::iso("INR", 356, 2),
    Currency::iso("IQD", 368, 3),
    Currency::iso("IRR", 364, 2),
    Currency::iso("ISK", 352, 0),
    Currency::iso("JMD", 388, 2),
    Currency::iso("JOD", 400, 3),
    Currency::iso("JPY", 392, 0),
    Currency::iso("KES", 404, 2),
    Currency::iso("KGS", 417, 2),
    Currency::iso("KHR", 116, 2),
    Currency::iso("KMF", 174, 0),
    Currency::iso("KPW", 408, 2),
    Currency::iso("KRW", 410, 0),
    Currency::iso("KWD", 414, 3),
    Currency::iso("KYD", 136, 2),
    Currency::iso("KZT", 398, 2),
    Currency::iso("LAK", 418, 2),
    Currency::iso("LBP", 422, 2),
    Currency::iso("LKR", 144, 2),
    Currency::iso("LRD", 430, 2),
    Currency::iso("LSL", 426, 2),
    Currency::iso("LYD", 434, 3),
    Currency::iso("MAD", 504, 2),
    Currency::iso("MDL", 498, 2),
    Currency::iso("MGA", 969, 2),
    Currency::iso("MKD", 807, 2),
    Currency::iso("MMK", 104, 2),
    Currency::iso("MNT", 496, 2),
    Currency::iso("MOP", 446, 2),
    Currency::iso("MRU", 929, 2),
    Currency::iso("MUR", 480, 2),
    Currency::iso("MVR", 462, 2),
    Currency::iso("MWK", 454, 2),
    Currency::iso("MXN", 484, 2),
    Currency::iso("MXV", 979, 2),
    Currency::iso("MYR", 458, 2),
    Currency::iso("MZN", 943, 2),
    Currency::iso("NAD", 516, 2),
    Currency::iso("NGN", 566, 2),
    Currency::iso("NIO", 558, 2),
    Currency::iso("NOK", 578, 2),
    Currency::iso("NPR", 524, 2),
    Currency::iso("NZD", 554, 2),
    Currency::iso("OMR", 512, 3),
    Currency::iso("PAB", 590, 2),
    Currency::iso("PEN", 604, 2),
    Currency::iso("PGK", 598, 2),
    Currency::iso("PHP", 608, 2),
    Currency::iso("PKR", 586, 2),
    Currency::iso("PLN", 985, 2),
    Currency::iso("PYG", 600, 0),
    Currency::iso("QAR", 634, 2),
    Currency::iso("RON", 946, 2),
    Currency::iso("RSD", 941, 2),
    Currency::iso("RUB", 643, 2),
    Currency::iso("RWF", 646, 0),
    Currency::iso("SAR", 682, 2),
    Currency::iso("SBD", 90, 2),
    Currency::iso("SCR", 690, 2),
    Currency::iso("SDG", 938, 2),
    Currency::iso("SEK", 752, 2),
    Currency::iso("SGD", 702, 2),
    Currency::iso("SHP", 654, 2),
    Currency::iso("SLE", 925, 2),
    Currency::iso("SOS", 706, 2),
    Currency::iso("SRD", 968, 2),
    Currency::iso("SSP", 728, 2),
    Currency::iso("STN", 930, 2),
    Currency::iso("SVC", 222, 2),
    Currency::iso("SYP", 760, 2),
    Currency::iso("SZL", 748, 2),
    Currency::iso("THB", 764, 2),
    Currency::iso("TJS", 972, 2),
    Currency::iso("TMT", 934, 2),
    Currency::iso("TND", 788, 3),
    Currency::iso("TOP", 776, 2),
    Currency::iso("TRY", 949, 2),
    Currency::iso("TTD", 780, 2),
    Currency::iso("TWD", 901, 2),
    Currency::iso("TZS", 834, 2),
    Currency::iso("UAH", 980, 2),
    Currency::iso("UGX", 800, 0),
    Currency::iso("USD", 840, 2),
    Currency::iso("USN", 997, 2),
    Currency::iso("UYI", 940, 0),
    Currency::iso("UYU", 858, 2),
    Currency::iso("UYW", 927, 4),
    Currency::iso("UZS", 860, 2),
    Currency::iso("VED", 926, 2),
    Currency::iso("VES", 928, 2),
    Currency::iso("VND", 704, 0),
    Currency::iso("VUV", 548, 0),
    Currency::iso("WST", 882, 2),
    Currency::iso("XAF", 950, 0),
    Currency::iso("XCD", 951, 2),
    Currency::iso("XCG", 532, 2),
    Currency::iso("XOF", 952, 0),
    Currency::iso("XPF", 953, 0),
    Currency::iso("YER", 886, 2),
    Currency::iso("ZAR", 710, 2),
    Currency::iso("ZMW", 967, 2),
    Currency::iso("ZWG", 924, 2),
];

impl Currency {
    const fn iso(code: &'static str, numeric: u16, minor_digits: u8) -> Self {
        Self {
            code,
            numeric,
            minor_digits,
        }
    }

    /// An active ISO 4217 code (`BRL`); anything else, test and metal codes included, is refused.
    pub fn parse(code: &str) -> Result<Self, MoneyError> {
        ACTIVE
            .binary_search_by(|c| c.code.cmp(code))
            .ok()
            .and_then(|i| ACTIVE.get(i))
            .copied()
            .ok_or_else(|| MoneyError::BadCurrency(shown(code)))
    }

    /// The ISO 4217 numeric code (what terminals speak). Every active currency has one; the
    /// `Option` remains from when only a few were listed.
    pub fn numeric(&self) -> Option<u16> {
        Some(self.numeric)
    }

    pub fn code(&self) -> &'static str {
        self.code
    }

    pub fn minor_digits(&self) -> u8 {
        self.minor_digits
    }

    fn scale(&self) -> i64 {
        10i64.pow(u32::from(self.minor_digits))
    }

    /// Minor units to the decimal number the Gateway expects (`2990` BRL → `29.9`). Exact for
    /// amounts up to [`MAX_MINOR`]: the f64 division is correctly rounded, so it gives the
    /// double nearest to the decimal, and a decimal of at most 15 significant digits is the
    /// shortest text that reads back as that double.
    pub fn to_decimal(&self, minor: i64) -> serde_json::Value {
        if self.minor_digits == 0 {
            return serde_json::Value::from(minor);
        }
        #[allow(clippy::cast_precision_loss)]
        let value = minor as f64 / self.scale() as f64;
        serde_json::Value::from(value)
    }

    /// Minor units as a decimal text, by integer arithmetic (`2990` BRL → `29.90`).
    fn decimal_text(&self, minor: i64) -> String {
        let scale = self.scale().unsigned_abs();
        let (int, frac) = (minor.unsigned_abs() / scale, minor.unsigned_abs() % scale);
        let sign = if minor < 0 { "-" } else { "" };
        match usize::from(self.minor_digits) {
            0 => format!("{sign}{int}"),
            digits => format!("{sign}{int}.{frac:0digits$}"),
        }
    }

    /// A decimal amount from the Gateway to minor units, exactly, up to [`MAX_MINOR`]. JSON
    /// numbers may carry trailing zeros (`100.0` JPY) and exponents (`1e3`); strings must not
    /// carry more decimals than the currency has, since `"1,234"` could mean a thousands
    /// separator.
    pub fn parse_amount(&self, amount: &Amount) -> Result<i64, MoneyError> {
        match amount {
            Amount::Number(text) => self.parse_json_number(text),
            Amount::Text(text) => self.parse_decimal_text(text.trim()),
        }
    }

    /// A JSON number's text: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
    fn parse_json_number(&self, text: &str) -> Result<i64, MoneyError> {
        let not_decimal = || MoneyError::NotDecimal(shown(text));
        let (negative, unsigned) = strip_minus(text);
        let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
            Some((mantissa, exponent)) => (mantissa, Some(exponent)),
            None => (unsigned, None),
        };
        let (int, frac) = match mantissa.split_once('.') {
            Some((int, frac)) if is_digits(frac) => (int, frac),
            Some(_) => return Err(not_decimal()),
            None => (mantissa, ""),
        };
        if !is_digits(int) || (int.len() > 1 && int.starts_with('0')) {
            return Err(not_decimal());
        }
        let exponent = match exponent {
            None => 0,
            Some(e) => {
                let (exponent_negative, magnitude) = match e.strip_prefix('-') {
                    Some(magnitude) => (true, magnitude),
                    None => (false, e.strip_prefix('+').unwrap_or(e)),
                };
                if !is_digits(magnitude) {
                    return Err(not_decimal());
                }
                // Digits only, so parsing fails on size alone; 10^(2^32) makes a non-zero
                // amount too large or too fine just as well.
                let magnitude = i64::from(magnitude.parse::<u32>().unwrap_or(u32::MAX));
                if exponent_negative {
                    -magnitude
                } else {
                    magnitude
                }
            }
        };
        self.minor_units(text, negative, int, frac, exponent)
    }

    /// A string amount: digits with at most one `.` or `,` and no more decimals than the
    /// currency has (`"29,90"`, `"29.9"`, `"-1"`).
    fn parse_decimal_text(&self, text: &str) -> Result<i64, MoneyError> {
        let not_decimal = || MoneyError::NotDecimal(shown(text));
        let (negative, unsigned) = strip_minus(text);
        let (int, frac) = match unsigned.split_once(['.', ',']) {
            Some((int, frac)) if is_digits(frac) => (int, frac),
            Some(_) => return Err(not_decimal()),
            None => (unsigned, ""),
        };
        if !is_digits(int) {
            return Err(not_decimal());
        }
        if frac.len() > usize::from(self.minor_digits) {
            return Err(self.too_many_decimals(text));
        }
        self.minor_units(text, negative, int, frac, 0)
    }

    /// `int.frac × 10^exponent` in minor units, exactly: digits below the minor unit must be
    /// zeros, and the result must stay within [`MAX_MINOR`].
    fn minor_units(
        &self,
        text: &str,
        negative: bool,
        int: &str,
        frac: &str,
        exponent: i64,
    ) -> Result<i64, MoneyError> {
        let digits = [int, frac].concat();
        let significant = digits.trim_start_matches('0');
        if significant.is_empty() {
            return Ok(0);
        }
        // The power of ten that turns the integer `significant` into minor units.
        let frac_len = i64::try_from(frac.len()).unwrap_or(i64::MAX);
        let shift = exponent.saturating_sub(frac_len) + i64::from(self.minor_digits);
        let (kept, zeros) = if shift < 0 {
            let cut = usize::try_from(shift.unsigned_abs()).unwrap_or(usize::MAX);
            // `significant` starts with a non-zero digit: cutting all of it drops that digit.
            let Some(split) = significant.len().checked_sub(cut).filter(|s| *s > 0) else {
                return Err(self.too_many_decimals(text));
            };
            let (kept, below_minor_unit) = significant.split_at(split);
            if below_minor_unit.bytes().any(|b| b != b'0') {
                return Err(self.too_many_decimals(text));
            }
            (kept, 0)
        } else {
            (significant, usize::try_from(shift).unwrap_or(usize::MAX))
        };
        if kept.len().saturating_add(zeros) > MAX_MINOR_DIGITS {
            return Err(MoneyError::TooLarge {
                amount: shown(text),
                max: self.decimal_text(MAX_MINOR),
                currency: self.code,
            });
        }
        // At most 15 digits: no overflow on the way.
        let minor = kept
            .bytes()
            .chain(std::iter::repeat_n(b'0', zeros))
            .fold(0i64, |n, b| n * 10 + i64::from(b - b'0'));
        Ok(if negative { -minor } else { minor })
    }

    fn too_many_decimals(&self, text: &str) -> MoneyError {
        MoneyError::TooManyDecimals {
            amount: shown(text),
            currency: self.code,
            digits: self.minor_digits,
        }
    }
}

fn strip_minus(text: &str) -> (bool, &str) {
    match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    }
}

/// One or more ASCII digits.
fn is_digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code)
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code)
    }
}

/// An amount as the Gateway sends it: a JSON number or a string (`"29,90"`), kept as text
/// until [`Currency::parse_amount`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Amount {
    /// A JSON number's text as it was sent (`29.90`, `1e3`).
    Number(String),
    /// A JSON string's content (`29,90`).
    Text(String),
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // The raw JSON text: serde_json hands a decimal number over as an f64 otherwise.
        let raw = <Box<RawValue>>::deserialize(deserializer)?;
        let text = raw.get();
        let unexpected = match text.as_bytes().first() {
            Some(b'"') => {
                return serde_json::from_str(text)
                    .map(Amount::Text)
                    .map_err(de::Error::custom);
            }
            Some(b'-' | b'0'..=b'9') => return Ok(Amount::Number(text.to_string())),
            Some(b'{') => Unexpected::Map,
            Some(b'[') => Unexpected::Seq,
            Some(b't') => Unexpected::Bool(true),
            Some(b'f') => Unexpected::Bool(false),
            _ => Unexpected::Unit,
        };
        Err(de::Error::invalid_type(
            unexpected,
            &"a decimal number or a string",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brl() -> Currency {
        Currency::parse("BRL").expect("BRL")
    }

    fn currency(code: &str) -> Currency {
        Currency::parse(code).expect(code)
    }

    /// An amount as it arrives in a request body.
    fn json(text: &str) -> Amount {
        serde_json::from_str(text).expect("amount")
    }

    fn num(text: &str) -> Amount {
        Amount::Number(text.to_string())
    }

    fn text(text: &str) -> Amount {
        Amount::Text(text.to_string())
    }

    #[test]
    fn parses_numbers_and_strings() {
        assert_eq!(brl().parse_amount(&json("31.9")), Ok(3190));
        assert_eq!(brl().parse_amount(&json("30")), Ok(3000));
        assert_eq!(brl().parse_amount(&json("\"29,90\"")), Ok(2990));
        assert_eq!(brl().parse_amount(&text("29.9")), Ok(2990));
        assert_eq!(brl().parse_amount(&text(" 29.9 ")), Ok(2990));
        assert_eq!(brl().parse_amount(&text("-1")), Ok(-100));
        assert_eq!(brl().parse_amount(&num("-0.5")), Ok(-50));
        let jpy = currency("JPY");
        assert_eq!(jpy.parse_amount(&num("100.0")), Ok(100));
        assert!(jpy.parse_amount(&text("100.5")).is_err());
        let kwd = currency("KWD");
        assert_eq!(kwd.parse_amount(&text("1.234")), Ok(1234));
    }

    #[test]
    fn reads_json_numbers_exactly() {
        // Through an f64 this was 12345678901234569: past the bound now, and refused.
        assert!(matches!(
            brl().parse_amount(&json("123456789012345.67")),
            Err(MoneyError::TooLarge { .. })
        ));
        assert_eq!(brl().parse_amount(&json("9999999999999.99")), Ok(MAX_MINOR));
        assert_eq!(
            brl().parse_amount(&json("1234567890123.45")),
            Ok(123_456_789_012_345)
        );
        // A float rounds this to 10.0; it has a non-zero digit far below the centavo.
        assert!(matches!(
            brl().parse_amount(&json("10.0000000000000001")),
            Err(MoneyError::TooManyDecimals { .. })
        ));
        assert_eq!(brl().parse_amount(&json("10.000000000000000000")), Ok(1000));
        assert_eq!(brl().parse_amount(&json("1e3")), Ok(100_000));
        assert_eq!(brl().parse_amount(&json("1E+2")), Ok(10_000));
        assert_eq!(brl().parse_amount(&json("2990e-2")), Ok(2990));
        assert_eq!(brl().parse_amount(&json("0.0e99999999999999999999")), Ok(0));
        assert!(brl().parse_amount(&json("1e-3")).is_err());
        assert!(brl().parse_amount(&json("1e30")).is_err());
        assert!(brl().parse_amount(&json("1e99999999999999999999")).is_err());
        assert!(
            brl()
                .parse_amount(&json("1e-99999999999999999999"))
                .is_err()
        );
        let huge = format!("1{}", "0".repeat(400));
        assert!(matches!(
            brl().parse_amount(&json(&huge)),
            Err(MoneyError::TooLarge { .. })
        ));
    }

    #[test]
    fn the_bound_holds_for_every_currency() {
        for (code, max) in [
            ("JPY", "999999999999999"),
            ("BRL", "9999999999999.99"),
            ("KWD", "999999999999.999"),
            ("CLF", "99999999999.9999"),
        ] {
            let c = currency(code);
            assert_eq!(c.parse_amount(&num(max)), Ok(MAX_MINOR), "{code}");
            assert_eq!(c.parse_amount(&text(max)), Ok(MAX_MINOR), "{code}");
            let above = format!("1{max}");
            let error = c.parse_amount(&num(&above)).expect_err("above the bound");
            assert_eq!(
                error.to_string(),
                format!("`{above}` is too large: at most {max} {code}")
            );
            assert!(c.parse_amount(&text(&above)).is_err());
        }
    }

    #[test]
    fn rejects_ambiguous_amounts() {
        for bad in [
            "1.234,56", "1,234", "29.901", "", "abc", "1e3", "1.", ".5", "1 000", "+1", "--1",
            "0x10", "١٢",
        ] {
            assert!(
                brl().parse_amount(&text(bad)).is_err(),
                "{bad} must be rejected"
            );
        }
        for bad in [
            "29.901", "1.", ".5", "01", "1e", "1e+", "-", "+1", "1,5", " 1",
        ] {
            assert!(
                brl().parse_amount(&num(bad)).is_err(),
                "{bad} must be rejected"
            );
        }
        assert!(brl().parse_amount(&text("99999999999999999999")).is_err());
    }

    #[test]
    fn amounts_are_numbers_or_strings() {
        for bad in ["{\"a\": 1}", "[1]", "true", "null"] {
            let error = serde_json::from_str::<Amount>(bad).expect_err(bad);
            assert!(
                error
                    .to_string()
                    .contains("expected a decimal number or a string"),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn errors_quote_long_input_cut_short() {
        let long = "9".repeat(10_000);
        let error = brl().parse_amount(&text(&long)).expect_err("too large");
        assert!(error.to_string().len() < 120, "{error}");
        let error = Currency::parse(&"Z".repeat(10_000)).expect_err("no currency");
        assert!(error.to_string().len() < 120, "{error}");
    }

    #[test]
    fn converts_back_to_decimals() {
        assert_eq!(brl().to_decimal(2990).to_string(), "29.9");
        assert_eq!(brl().to_decimal(3000).to_string(), "30.0");
        assert_eq!(currency("JPY").to_decimal(5).to_string(), "5");
    }

    fn without_trailing_zeros(decimal: &str) -> &str {
        if decimal.contains('.') {
            decimal.trim_end_matches('0').trim_end_matches('.')
        } else {
            decimal
        }
    }

    /// `to_decimal` goes through an f64; up to the bound, the number the Gateway reads is the
    /// exact amount, for every number of minor digits.
    #[test]
    fn decimals_round_trip_exactly_up_to_the_bound() {
        let mut samples = vec![
            MAX_MINOR,
            MAX_MINOR - 1,
            MAX_MINOR - 9,
            900_719_925_474_099,
            123_456_789_012_345,
            100_000_000_000_001,
            1,
            7,
            10,
        ];
        // A fixed pseudo-random spread: over the whole range, and just below the bound.
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..5_000 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let r = i64::try_from(x >> 1).expect("63 bits");
            samples.push(r % (MAX_MINOR + 1));
            samples.push(MAX_MINOR - r % 1_000_000);
        }
        for code in ["JPY", "BRL", "KWD", "CLF"] {
            let c = currency(code);
            for &minor in &samples {
                let decimal = c.to_decimal(minor).to_string();
                assert_eq!(
                    c.parse_amount(&num(&decimal)),
                    Ok(minor),
                    "{code}: {minor} went out as {decimal}"
                );
                assert_eq!(
                    without_trailing_zeros(&decimal),
                    without_trailing_zeros(&c.decimal_text(minor)),
                    "{code}: {minor}"
                );
            }
        }
        // Past 15 digits the trip is no longer exact: what the bound is for.
        let past = 9_007_199_254_740_993;
        assert_ne!(
            brl().parse_amount(&num(&brl().to_decimal(past).to_string())),
            Ok(past)
        );
    }

    #[test]
    fn only_active_iso_currencies() {
        for code in [
            "BRL", "EUR", "USD", "JPY", "XAF", "XOF", "XPF", "XCD", "XCG", "ZWG", "CLF", "VED",
        ] {
            assert!(Currency::parse(code).is_ok(), "{code}");
        }
        for code in [
            "ZZZ", "XTS", "XXX", "XAU", "XAG", "XPT", "XPD", "XDR", "XBA", "XBB", "XBC", "XBD",
            "XSU", "XUA", "XAD", "HRK", "ANG", "ZWL", "brl", "BR", "BRLL", "", "BRL ",
        ] {
            assert!(Currency::parse(code).is_err(), "{code}");
        }
        assert_eq!(brl().minor_digits(), 2);
        assert_eq!(currency("JPY").minor_digits(), 0);
        assert_eq!(currency("BHD").minor_digits(), 3);
        assert_eq!(currency("UYW").minor_digits(), 4);
    }

    #[test]
    fn numeric_codes() {
        assert_eq!(brl().numeric(), Some(986));
        assert_eq!(currency("EUR").numeric(), Some(978));
        assert_eq!(currency("ALL").numeric(), Some(8));
        assert_eq!(currency("XCG").numeric(), Some(532));
    }

    #[test]
    fn the_table_is_sorted_and_unique() {
        // `parse` searches it by bisection.
        assert!(ACTIVE.windows(2).all(|w| w[0].code < w[1].code));
        let mut numerics: Vec<u16> = ACTIVE.iter().map(|c| c.numeric).collect();
        numerics.sort_unstable();
        numerics.dedup();
        assert_eq!(numerics.len(), ACTIVE.len(), "numeric codes are unique");
        for c in ACTIVE {
            assert!(c.code.len() == 3 && c.code.bytes().all(|b| b.is_ascii_uppercase()));
            assert!(c.minor_digits <= 4 && (1..=999).contains(&c.numeric), "{c}");
        }
    }
}
