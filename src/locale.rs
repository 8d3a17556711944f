//! Times and money as people in the store read them: the store's time zone (`[store]
//! timezone`, an IANA name; default: the system's), 24-hour local times with the zone, and
//! amounts written the way their currency is written (`R$ 1.234,56`). For people only:
//! JSON stays UTC milliseconds and minor units.

use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::money::Currency;

/// The store's time zone.
#[derive(Debug, Clone)]
pub struct StoreTime {
    zone: TimeZone,
    name: String,
}

/// A `[store] timezone` that names no time zone this system knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a time zone name (IANA, e.g. America/Sao_Paulo)")]
pub struct UnknownTimeZone(pub String);

impl StoreTime {
    /// `name`: an IANA time zone (`America/Sao_Paulo`); `None`: the system's.
    pub fn new(name: Option<&str>) -> Result<Self, UnknownTimeZone> {
        match name {
            Some(name) => {
                let zone = TimeZone::get(name).map_err(|_| UnknownTimeZone(name.to_string()))?;
                Ok(Self {
                    zone,
                    name: name.to_string(),
                })
            }
            None => {
                let zone = TimeZone::system();
                let name = zone.iana_name().unwrap_or("UTC").to_string();
                Ok(Self { zone, name })
            }
        }
    }

    /// UTC, for tests and tools that have no store.
    pub fn utc() -> Self {
        Self {
            zone: TimeZone::UTC,
            name: "UTC".into(),
        }
    }

    /// The zone's IANA name (`America/Sao_Paulo`).
    pub fn name(&self) -> &str {
        &self.name
    }

    fn zoned(&self, unix_ms: i64) -> Option<jiff::Zoned> {
        Timestamp::from_millisecond(unix_ms)
            .ok()
            .map(|t| t.to_zoned(self.zone.clone()))
    }

    /// `14:03` in the store's zone.
    pub fn time(&self, unix_ms: i64) -> String {
        self.zoned(unix_ms)
            .map_or_else(String::new, |z| z.strftime("%H:%M").to_string())
    }

    /// `2026-11-30 14:03:05 -03` in the store's zone.
    pub fn date_time(&self, unix_ms: i64) -> String {
        self.zoned(unix_ms).map_or_else(String::new, |z| {
            z.strftime("%Y-%m-%d %H:%M:%S %:::z").to_string()
        })
    }

    /// `14:03` when `unix_ms` is on the same store day as `now_ms`, else `2026-11-28 14:03`:
    /// a time as a person looking for a receipt wants it.
    pub fn when(&self, unix_ms: i64, now_ms: i64) -> String {
        if self.start_of_day_ms(unix_ms) == self.start_of_day_ms(now_ms) {
            self.time(unix_ms)
        } else {
            self.zoned(unix_ms)
                .map_or_else(String::new, |z| z.strftime("%Y-%m-%d %H:%M").to_string())
        }
    }

    /// The store's midnight that starts the day of `unix_ms` (unix ms).
    pub fn start_of_day_ms(&self, unix_ms: i64) -> i64 {
        self.zoned(unix_ms)
            .and_then(|z| z.start_of_day().ok())
            .map_or(unix_ms, |z| z.timestamp().as_millisecond())
    }

    /// `2026-11-30`: the store's date at `unix_ms`.
    pub fn date(&self, unix_ms: i64) -> String {
        self.zoned(unix_ms)
            .map_or_else(String::new, |z| z.strftime("%Y-%m-%d").to_string())
    }

    /// The store's midnight that starts `date` (`2026-11-30`), in unix ms.
    pub fn start_of_date_ms(&self, date: &str) -> Result<i64, String> {
        let not_a_date = || format!("`{date}` is not a date (YYYY-MM-DD, e.g. 2026-11-30)");
        let date = jiff::civil::Date::strptime("%Y-%m-%d", date).map_err(|_| not_a_date())?;
        // A midnight skipped by a DST change starts the day at the first hour that exists.
        date.to_zoned(self.zone.clone())
            .and_then(|z| z.start_of_day())
            .map(|z| z.timestamp().as_millisecond())
            .map_err(|_| not_a_date())
    }
}

/// How a currency is written: symbol, whether it comes first, and the separators.
struct Style {
    symbol: &'static str,
    before: bool,
    decimal: char,
    group: char,
}

/// Currencies of the stores posbridge serves, written as their own users write them; any other
/// is written `1234.56 XYZ`.
fn style(code: &str) -> Option<Style> {
    let s = |symbol, before, decimal, group| Style {
        symbol,
        before,
        decimal,
        group,
    };
    Some(match code {
        "BRL" => s("R$", true, ',', '.'),
        "ARS" => s("$", true, ',', '.'),
        "CLP" => s("$", true, ',', '.'),
        "COP" => s("$", true, ',', '.'),
        "UYU" => s("$U", true, ',', '.'),
        "PYG" => s("₲", true, ',', '.'),
        "PEN" => s("S/", true, '.', ','),
        "MXN" => s("$", true, '.', ','),
        "USD" => s("US$", true, '.', ','),
        "EUR" => s("€", false, ',', '.'),
        "GBP" => s("£", true, '.', ','),
        "JPY" => s("¥", true, '.', ','),
        "CHF" => s("CHF", true, '.', '\''),
        _ => return None,
    })
}

/// `minor` units of `currency` as people write them: `R$ 29,90`, `1.234,56 €`.
pub fn money(currency: &str, minor: i64) -> String {
    let digits = Currency::parse(currency).map_or(2, |c| c.minor_digits());
    let scale = 10i64.pow(u32::from(digits));
    let (int, frac) = (
        minor.unsigned_abs() / scale.unsigned_abs(),
        minor.unsigned_abs() % scale.unsigned_abs(),
    );
    let sign = if minor < 0 { "-" } else { "" };
    let Some(style) = style(currency) else {
        let frac = if digits == 0 {
            String::new()
        } else {
            format!(".{frac:0width$}", width = usize::from(digits))
        };
        return format!("{sign}{int}{frac} {currency}");
    };
    let mut grouped = String::new();
    let int = int.to_string();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(style.group);
        }
        grouped.push(c);
    }
    let number = if digits == 0 {
        grouped
    } else {
        format!(
            "{grouped}{}{frac:0width$}",
            style.decimal,
            width = usize::from(digits)
        )
    };
    if style.before {
        format!("{sign}{} {number}", style.symbol)
    } else {
        format!("{sign}{number} {}", style.symbol)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_as_its_currency_writes_it() {
        assert_eq!(money("BRL", 2990), "R$ 29,90");
        assert_eq!(money("BRL", 123_456_789), "R$ 1.234.567,89");
        assert_eq!(money("BRL", 5), "R$ 0,05");
        assert_eq!(money("BRL", -4200), "-R$ 42,00");
        assert_eq!(money("EUR", 123_456), "1.234,56 €");
        assert_eq!(money("USD", 100_000), "US$ 1,000.00");
        assert_eq!(money("CLP", 15_000), "$ 15.000");
        assert_eq!(money("JPY", 1_500), "¥ 1,500");
        assert_eq!(money("KWD", 1_234), "1.234 KWD");
        assert_eq!(money("XOF", 1_500), "1500 XOF");
    }

    #[test]
    fn times_in_the_store_zone() {
        let sao_paulo = StoreTime::new(Some("America/Sao_Paulo")).expect("zone");
        // 2026-11-30 17:03:05 UTC is 14:03:05 in São Paulo (UTC-3, no DST since 2019).
        let at = 1_796_058_185_000;
        assert_eq!(sao_paulo.time(at), "14:03");
        assert_eq!(sao_paulo.date_time(at), "2026-11-30 14:03:05 -03");
        let midnight = sao_paulo.start_of_day_ms(at);
        assert_eq!(sao_paulo.date_time(midnight), "2026-11-30 00:00:00 -03");
        assert_eq!(StoreTime::utc().time(at), "17:03");
        assert_eq!(sao_paulo.when(at, at + 3_600_000), "14:03");
        assert_eq!(sao_paulo.when(at, at + 86_400_000), "2026-11-30 14:03");
        assert_eq!(sao_paulo.date(at), "2026-11-30");
        // 00:30 UTC on Dec 1st is still Nov 30th in São Paulo.
        assert_eq!(sao_paulo.date(1_796_085_000_000), "2026-11-30");
        assert_eq!(sao_paulo.start_of_date_ms("2026-11-30"), Ok(midnight));
        assert!(sao_paulo.start_of_date_ms("2026-11-31").is_err());
        assert!(sao_paulo.start_of_date_ms("30/11/2026").is_err());
        assert!(sao_paulo.start_of_date_ms("2026-11-30T00:00").is_err());
        // 2018-11-04: Brazil's last DST start skipped 00:00–01:00; the day began at 01:00 -02.
        let skipped = sao_paulo.start_of_date_ms("2018-11-04").expect("date");
        assert_eq!(sao_paulo.date_time(skipped), "2018-11-04 01:00:00 -02");
        assert!(StoreTime::new(Some("Mars/Olympus")).is_err());
        assert!(StoreTime::new(None).is_ok());
    }
}
