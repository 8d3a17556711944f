//! Money: integer minor units inside, the Gateway's decimals converted once, here, at the edge.

use std::fmt;

use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("`{0}` is not an ISO 4217 currency code")]
    BadCurrency(String),
    #[error("`{0}` is not a plain decimal amount (digits with at most one `.` or `,`)")]
    NotDecimal(String),
    #[error("`{amount}` has more decimals than {currency} allows ({digits})")]
    TooManyDecimals {
        amount: String,
        currency: String,
        digits: u8,
    },
    #[error("`{0}` is too large")]
    Overflow(String),
}

/// An ISO 4217 currency with its number of minor digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency {
    code: [u8; 3],
    minor_digits: u8,
}

/// Codes whose minor unit is not 2 digits (ISO 4217 list); every other code has 2.
const MINOR_DIGITS_EXCEPTIONS: &[(&str, u8)] = &[
    ("BIF", 0),
    ("CLP", 0),
    ("DJF", 0),
    ("GNF", 0),
    ("ISK", 0),
    ("JPY", 0),
    ("KMF", 0),
    ("KRW", 0),
    ("PYG", 0),
    ("RWF", 0),
    ("UGX", 0),
    ("UYI", 0),
    ("VND", 0),
    ("VUV", 0),
    ("XAF", 0),
    ("XOF", 0),
    ("XPF", 0),
    ("BHD", 3),
    ("IQD", 3),
    ("JOD", 3),
    ("KWD", 3),
    ("LYD", 3),
    ("OMR", 3),
    ("TND", 3),
    ("CLF", 4),
    ("UYW", 4),
];

/// ISO 4217 numeric codes (what terminals speak), for the currencies stores here use.
const NUMERIC_CODES: &[(&str, u16)] = &[
    ("ARS", 32),
    ("AUD", 36),
    ("BRL", 986),
    ("CAD", 124),
    ("CHF", 756),
    ("CLP", 152),
    ("COP", 170),
    ("CZK", 203),
    ("DKK", 208),
    ("EUR", 978),
    ("GBP", 826),
    ("HUF", 348),
    ("JPY", 392),
    ("MXN", 484),
    ("NOK", 578),
    ("PEN", 604),
    ("PLN", 985),
    ("PYG", 600),
    ("SEK", 752),
    ("USD", 840),
    ("UYU", 858),
];

impl Currency {
    /// The ISO 4217 numeric code, if this is a currency we know it for.
    pub fn numeric(&self) -> Option<u16> {
        NUMERIC_CODES
            .iter()
            .find(|(c, _)| *c == self.code())
            .map(|(_, n)| *n)
    }

    pub fn parse(code: &str) -> Result<Self, MoneyError> {
        let bytes = code.as_bytes();
        let [a, b, c] = bytes else {
            return Err(MoneyError::BadCurrency(code.to_string()));
        };
        if !bytes.iter().all(u8::is_ascii_uppercase) {
            return Err(MoneyError::BadCurrency(code.to_string()));
        }
        let minor_digits = MINOR_DIGITS_EXCEPTIONS
            .iter()
            .find(|(c, _)| *c == code)
            .map_or(2, |(_, d)| *d);
        Ok(Self {
            code: [*a, *b, *c],
            minor_digits,
        })
    }

    pub fn code(&self) -> &str {
        std::str::from_utf8(&self.code).unwrap_or("XXX")
    }

    pub fn minor_digits(&self) -> u8 {
        self.minor_digits
    }

    fn scale(&self) -> i64 {
        10i64.pow(u32::from(self.minor_digits))
    }

    /// Minor units to the decimal number the Gateway expects (`2990` BRL → `29.9`).
    pub fn to_decimal(&self, minor: i64) -> serde_json::Value {
        if self.minor_digits == 0 {
            return serde_json::Value::from(minor);
        }
        // Amounts are far below 2^53, so the f64 is the exact shortest decimal.
        #[allow(clippy::cast_precision_loss)]
        let value = minor as f64 / self.scale() as f64;
        serde_json::Value::from(value)
    }

    /// A decimal amount from the Gateway to minor units. JSON numbers may carry trailing zeros
    /// (`100.0` JPY); strings must not carry more decimals than the currency has, since
    /// `"1,234"` could mean a thousands separator.
    pub fn parse_amount(&self, amount: &Amount) -> Result<i64, MoneyError> {
        match amount {
            Amount::Number(n) => {
                let text = n.to_string();
                let trimmed = match text.split_once('.') {
                    Some((int, frac)) => {
                        let frac = frac.trim_end_matches('0');
                        if frac.is_empty() {
                            int.to_string()
                        } else {
                            format!("{int}.{frac}")
                        }
                    }
                    None => text.clone(),
                };
                self.parse_decimal(&trimmed).map_err(|e| match e {
                    MoneyError::NotDecimal(_) => MoneyError::NotDecimal(text),
                    other => other,
                })
            }
            Amount::Text(s) => self.parse_decimal(s.trim()),
        }
    }

    fn parse_decimal(&self, text: &str) -> Result<i64, MoneyError> {
        let not_decimal = || MoneyError::NotDecimal(text.to_string());
        let (negative, unsigned) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let mut parts = unsigned.split(['.', ',']);
        let int = parts.next().unwrap_or_default();
        let frac = parts.next().unwrap_or_default();
        let separated = unsigned.contains(['.', ',']);
        if parts.next().is_some()
            || int.is_empty()
            || (separated && frac.is_empty())
            || !int.bytes().all(|b| b.is_ascii_digit())
            || !frac.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(not_decimal());
        }
        if frac.len() > usize::from(self.minor_digits) {
            return Err(MoneyError::TooManyDecimals {
                amount: text.to_string(),
                currency: self.code().to_string(),
                digits: self.minor_digits,
            });
        }
        let overflow = || MoneyError::Overflow(text.to_string());
        let int: i64 = int.parse().map_err(|_| overflow())?;
        let mut frac_minor: i64 = if frac.is_empty() {
            0
        } else {
            frac.parse().map_err(|_| overflow())?
        };
        for _ in frac.len()..usize::from(self.minor_digits) {
            frac_minor *= 10;
        }
        let minor = int
            .checked_mul(self.scale())
            .and_then(|m| m.checked_add(frac_minor))
            .ok_or_else(overflow)?;
        Ok(if negative { -minor } else { minor })
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// An amount as the Gateway sends it: a JSON number or a string (`"29,90"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Amount {
    Number(serde_json::Number),
    Text(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brl() -> Currency {
        Currency::parse("BRL").expect("BRL")
    }

    fn num(s: &str) -> Amount {
        Amount::Number(serde_json::from_str(s).expect("number"))
    }

    #[test]
    fn parses_numbers_and_strings() {
        assert_eq!(brl().parse_amount(&num("31.9")), Ok(3190));
        assert_eq!(brl().parse_amount(&num("30")), Ok(3000));
        assert_eq!(brl().parse_amount(&Amount::Text("29,90".into())), Ok(2990));
        assert_eq!(brl().parse_amount(&Amount::Text("29.9".into())), Ok(2990));
        assert_eq!(brl().parse_amount(&Amount::Text("-1".into())), Ok(-100));
        let jpy = Currency::parse("JPY").expect("JPY");
        assert_eq!(jpy.parse_amount(&num("100.0")), Ok(100));
        assert!(jpy.parse_amount(&Amount::Text("100.5".into())).is_err());
        let kwd = Currency::parse("KWD").expect("KWD");
        assert_eq!(kwd.parse_amount(&Amount::Text("1.234".into())), Ok(1234));
    }

    #[test]
    fn rejects_ambiguous_amounts() {
        for bad in [
            "1.234,56", "1,234", "29.901", "", "abc", "1e3", "1.", ".5", "1 000",
        ] {
            assert!(
                brl().parse_amount(&Amount::Text(bad.into())).is_err(),
                "{bad} must be rejected"
            );
        }
        assert!(brl().parse_amount(&num("29.901")).is_err());
        assert!(brl().parse_amount(&num("1e30")).is_err());
        assert!(
            brl()
                .parse_amount(&Amount::Text("99999999999999999999".into()))
                .is_err()
        );
    }

    #[test]
    fn converts_back_to_decimals() {
        assert_eq!(brl().to_decimal(2990).to_string(), "29.9");
        assert_eq!(brl().to_decimal(3000).to_string(), "30.0");
        assert_eq!(
            Currency::parse("JPY")
                .expect("JPY")
                .to_decimal(5)
                .to_string(),
            "5"
        );
    }

    #[test]
    fn numeric_codes() {
        assert_eq!(brl().numeric(), Some(986));
        assert_eq!(Currency::parse("EUR").expect("EUR").numeric(), Some(978));
        assert_eq!(Currency::parse("XTS").expect("XTS").numeric(), None);
    }

    #[test]
    fn currency_codes() {
        assert!(Currency::parse("brl").is_err());
        assert!(Currency::parse("BR").is_err());
        assert_eq!(brl().minor_digits(), 2);
    }
}
