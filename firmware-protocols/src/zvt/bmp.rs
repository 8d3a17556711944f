//! Bitmap fields (BMPs): a one-byte tag followed by a value whose length is
//! fixed per tag or given by an `F0`–`F9` LL/LLL prefix; BMP 06 holds BER-TLV.
//!
//! [`BmpList`] keeps the fields in wire order so a decoded message encodes
//! back byte-identically. Known tags decode into typed [`Bmp`] variants.
//! A known tag whose value does not fit its type (e.g. receipt number `FFFF`,
//! which is not BCD) becomes [`Bmp::Other`]. A tag that is not in the BMP
//! table cannot be delimited, so it and everything after it is kept as
//! [`BmpList::trailing`] bytes.

use crate::zvt::bcd::{decode_bcd, decode_var_length, encode_bcd, encode_var_length};
use crate::zvt::card::{OpaqueBytes, Pan, TrackData};
use crate::zvt::cursor::Cursor;
use crate::zvt::error::EncodeError;
use crate::zvt::tables::{LengthKind, bmp_definition, result_code_text};
use crate::zvt::text::{FixedText, Text};
use crate::zvt::tlv::{TlvList, decode_ber_length, encode_ber_length};

/// BMP tags used by this crate.
pub mod tags {
    pub const TIMEOUT: u8 = 0x01;
    pub const MAX_STATUS_INFOS: u8 = 0x02;
    pub const SERVICE_BYTE: u8 = 0x03;
    pub const AMOUNT: u8 = 0x04;
    pub const PUMP_NUMBER: u8 = 0x05;
    pub const TLV: u8 = 0x06;
    pub const TRACE_NUMBER: u8 = 0x0B;
    pub const TIME: u8 = 0x0C;
    pub const DATE: u8 = 0x0D;
    pub const EXPIRY_DATE: u8 = 0x0E;
    pub const CARD_SEQUENCE_NUMBER: u8 = 0x17;
    pub const PAYMENT_TYPE: u8 = 0x19;
    pub const PAN: u8 = 0x22;
    pub const TRACK_2: u8 = 0x23;
    pub const TRACK_3: u8 = 0x24;
    pub const RESULT_CODE: u8 = 0x27;
    pub const TERMINAL_ID: u8 = 0x29;
    pub const VU_NUMBER: u8 = 0x2A;
    pub const TRACK_1: u8 = 0x2D;
    pub const ORIGINAL_TRACE_NUMBER: u8 = 0x37;
    pub const AID: u8 = 0x3B;
    pub const ADDITIONAL_TEXT: u8 = 0x3C;
    pub const CURRENCY: u8 = 0x49;
    pub const RECEIPT_NUMBER: u8 = 0x87;
    pub const TURNOVER_NUMBER: u8 = 0x88;
    pub const CARD_TYPE: u8 = 0x8A;
    pub const CARD_NAME: u8 = 0x8B;
    pub const CARD_TYPE_ID: u8 = 0x8C;
    pub const RESULT_CODE_AS: u8 = 0xA0;
}

/// An amount in minor currency units (cents), 12 BCD digits on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Amount(u64);

impl Amount {
    pub const MAX: u64 = 999_999_999_999;

    pub fn from_minor_units(units: u64) -> Option<Self> {
        (units <= Self::MAX).then_some(Self(units))
    }

    pub fn minor_units(self) -> u64 {
        self.0
    }
}

/// ISO 4217 numeric currency code, e.g. 978 (EUR), 986 (BRL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CurrencyCode(u16);

impl CurrencyCode {
    pub const EUR: Self = Self(978);
    pub const BRL: Self = Self(986);

    /// A currency code (at most 4 decimal digits on the wire).
    pub fn new(code: u16) -> Option<Self> {
        (code <= 9999).then_some(Self(code))
    }

    pub fn code(self) -> u16 {
        self.0
    }

    pub(crate) fn from_bcd(bytes: &[u8]) -> Option<Self> {
        decode_bcd(bytes)
            .and_then(|v| u16::try_from(v).ok())
            .map(Self)
    }

    pub(crate) fn to_bcd(self) -> Option<Vec<u8>> {
        encode_bcd(u64::from(self.0), 2)
    }
}

/// A ZVT result code (BMP 27, Abort 06 1E).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ResultCode(pub u8);

impl ResultCode {
    pub const SUCCESS: Self = Self(0x00);
    pub const ABORTED_BY_TIMEOUT_OR_KEY: Self = Self(0x6C);
    pub const FUNCTION_NOT_POSSIBLE: Self = Self(0x83);
    pub const SYSTEM_ERROR: Self = Self(0xFF);

    pub fn is_success(self) -> bool {
        self.0 == 0
    }

    /// Text from the result code table; codes 0x01–0x63 come from the host.
    pub fn text(self) -> Option<&'static str> {
        result_code_text(self.0)
    }
}

/// Time of day `hhmmss` (BMP 0C); two BCD digits per field, not range-checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Time {
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
}

/// Date `MMDD` (BMP 0D).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Date {
    pub month: u8,
    pub day: u8,
}

/// Card expiry `YYMM` (BMP 0E).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExpiryDate {
    pub year: u8,
    pub month: u8,
}

/// One bitmap field.
///
/// `Debug` never prints card numbers: [`Pan`] shows first 6 / last 4 at
/// most, track data and [`Bmp::Other`] values only their length.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Bmp {
    /// 01: timeout in seconds.
    Timeout(u8),
    /// 02: maximum number of status informations.
    MaxStatusInfos(u8),
    /// 03: service byte.
    ServiceByte(u8),
    /// 04: amount.
    Amount(Amount),
    /// 05: pump number.
    PumpNumber(u8),
    /// 06: TLV container.
    Tlv(TlvList),
    /// 0B: trace number (6 digits).
    TraceNumber(u32),
    /// 0C: time.
    Time(Time),
    /// 0D: date.
    Date(Date),
    /// 0E: expiry date.
    ExpiryDate(ExpiryDate),
    /// 17: card sequence number (4 digits).
    CardSequenceNumber(u16),
    /// 19: payment type (ECR→PT) / status byte (PT→ECR).
    PaymentType(u8),
    /// 22: PAN, usually masked with `E` nibbles.
    Pan(Pan),
    /// 23: track 2 data.
    Track2(TrackData),
    /// 24: track 3 data.
    Track3(TrackData),
    /// 27: result code.
    ResultCode(ResultCode),
    /// 29: terminal ID (8 digits).
    TerminalId(u32),
    /// 2A: VU (contract) number, 15 characters.
    VuNumber(FixedText<15>),
    /// 2D: track 1 data.
    Track1(TrackData),
    /// 37: trace number of the original transaction.
    OriginalTraceNumber(u32),
    /// 3B: AID / authorisation attribute, 8 bytes.
    Aid(FixedText<8>),
    /// 3C: additional text.
    AdditionalText(Text),
    /// 49: currency code.
    Currency(CurrencyCode),
    /// 87: receipt number (4 digits).
    ReceiptNumber(u16),
    /// 88: turnover record number (6 digits).
    TurnoverNumber(u32),
    /// 8A: ZVT card type.
    CardType(u8),
    /// 8B: card name.
    CardName(Text),
    /// 8C: card type ID of the network operator.
    CardTypeId(u8),
    /// A0: result code of the authorisation system.
    ResultCodeAs(u8),
    /// A tag from the BMP table without a typed variant here, or whose value
    /// does not fit the typed variant. Encoded with the table's length kind.
    Other { tag: u8, value: OpaqueBytes },
}

impl Bmp {
    pub fn tag(&self) -> u8 {
        match self {
            Self::Timeout(_) => tags::TIMEOUT,
            Self::MaxStatusInfos(_) => tags::MAX_STATUS_INFOS,
            Self::ServiceByte(_) => tags::SERVICE_BYTE,
            Self::Amount(_) => tags::AMOUNT,
            Self::PumpNumber(_) => tags::PUMP_NUMBER,
            Self::Tlv(_) => tags::TLV,
            Self::TraceNumber(_) => tags::TRACE_NUMBER,
            Self::Time(_) => tags::TIME,
            Self::Date(_) => tags::DATE,
            Self::ExpiryDate(_) => tags::EXPIRY_DATE,
            Self::CardSequenceNumber(_) => tags::CARD_SEQUENCE_NUMBER,
            Self::PaymentType(_) => tags::PAYMENT_TYPE,
            Self::Pan(_) => tags::PAN,
            Self::Track2(_) => tags::TRACK_2,
            Self::Track3(_) => tags::TRACK_3,
            Self::ResultCode(_) => tags::RESULT_CODE,
            Self::TerminalId(_) => tags::TERMINAL_ID,
            Self::VuNumber(_) => tags::VU_NUMBER,
            Self::Track1(_) => tags::TRACK_1,
            Self::OriginalTraceNumber(_) => tags::ORIGINAL_TRACE_NUMBER,
            Self::Aid(_) => tags::AID,
            Self::AdditionalText(_) => tags::ADDITIONAL_TEXT,
            Self::Currency(_) => tags::CURRENCY,
            Self::ReceiptNumber(_) => tags::RECEIPT_NUMBER,
            Self::TurnoverNumber(_) => tags::TURNOVER_NUMBER,
            Self::CardType(_) => tags::CARD_TYPE,
            Self::CardName(_) => tags::CARD_NAME,
            Self::CardTypeId(_) => tags::CARD_TYPE_ID,
            Self::ResultCodeAs(_) => tags::RESULT_CODE_AS,
            Self::Other { tag, .. } => *tag,
        }
    }

    /// Builds the typed field for a value of a known tag, falling back to
    /// [`Bmp::Other`] when the value does not fit the type.
    pub fn from_value(tag: u8, value: &[u8]) -> Self {
        typed_from_value(tag, value).unwrap_or_else(|| Self::Other {
            tag,
            value: OpaqueBytes(value.to_vec()),
        })
    }

    /// The value bytes, without tag or length prefix.
    pub fn value_bytes(&self) -> Result<Vec<u8>, EncodeError> {
        let tag = self.tag();
        let out_of_range = || EncodeError::ValueOutOfRange { tag };
        let bcd = |value: u64, width: usize| encode_bcd(value, width).ok_or_else(out_of_range);
        let digit_pairs = |pairs: &[u8]| {
            let mut value = 0u64;
            for &pair in pairs {
                if pair > 99 {
                    return Err(out_of_range());
                }
                value = value * 100 + u64::from(pair);
            }
            bcd(value, pairs.len())
        };
        Ok(match self {
            Self::Timeout(byte)
            | Self::MaxStatusInfos(byte)
            | Self::ServiceByte(byte)
            | Self::PumpNumber(byte)
            | Self::PaymentType(byte)
            | Self::CardType(byte)
            | Self::CardTypeId(byte)
            | Self::ResultCodeAs(byte)
            | Self::ResultCode(ResultCode(byte)) => vec![*byte],
            Self::Amount(amount) => bcd(amount.0, 6)?,
            Self::Tlv(list) => list.to_bytes()?,
            Self::TraceNumber(n) | Self::OriginalTraceNumber(n) | Self::TurnoverNumber(n) => {
                bcd(u64::from(*n), 3)?
            }
            Self::Time(time) => digit_pairs(&[time.hour, time.minute, time.second])?,
            Self::Date(date) => digit_pairs(&[date.month, date.day])?,
            Self::ExpiryDate(expiry) => digit_pairs(&[expiry.year, expiry.month])?,
            Self::CardSequenceNumber(n) | Self::ReceiptNumber(n) => bcd(u64::from(*n), 2)?,
            Self::Pan(pan) => pan.as_bytes().to_vec(),
            Self::Track1(track) | Self::Track2(track) | Self::Track3(track) => {
                track.as_bytes().to_vec()
            }
            Self::TerminalId(id) => bcd(u64::from(*id), 4)?,
            Self::VuNumber(text) => text.as_bytes().to_vec(),
            Self::Aid(text) => text.as_bytes().to_vec(),
            Self::AdditionalText(text) | Self::CardName(text) => text.as_bytes().to_vec(),
            Self::Currency(code) => code.to_bcd().ok_or_else(out_of_range)?,
            Self::Other { value, .. } => value.0.clone(),
        })
    }

    /// Appends tag, length prefix (if any) and value to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let tag = self.tag();
        let definition = bmp_definition(tag).ok_or(EncodeError::UnknownBmp { tag })?;
        let value = self.value_bytes()?;
        let len = value.len();
        out.push(tag);
        let too_long = |max| EncodeError::ValueTooLong { tag, len, max };
        match definition.length {
            LengthKind::Fixed(expected) if expected != len => {
                return Err(EncodeError::FixedLengthMismatch {
                    tag,
                    expected,
                    actual: len,
                });
            }
            LengthKind::Fixed(_) => {}
            LengthKind::Ll => encode_var_length(len, 2, out).ok_or_else(|| too_long(99))?,
            LengthKind::Lll => encode_var_length(len, 3, out).ok_or_else(|| too_long(999))?,
            LengthKind::Tlv => encode_ber_length(len, out)?,
        }
        out.extend_from_slice(&value);
        Ok(())
    }

    /// Reads one BMP; `None` if the tag is unknown or the field is truncated
    /// or malformed (the cursor position is then unspecified).
    fn decode(cursor: &mut Cursor<'_>) -> Option<Self> {
        let tag = cursor.u8()?;
        let definition = bmp_definition(tag)?;
        let len = match definition.length {
            LengthKind::Fixed(len) => len,
            LengthKind::Ll => decode_var_length(cursor.take(2)?)?,
            LengthKind::Lll => decode_var_length(cursor.take(3)?)?,
            LengthKind::Tlv => decode_ber_length(cursor)?,
        };
        let value = cursor.take(len)?;
        Some(Self::from_value(tag, value))
    }
}

fn typed_from_value(tag: u8, value: &[u8]) -> Option<Bmp> {
    let single = || match value {
        [byte] => Some(*byte),
        _ => None,
    };
    let bcd_u32 = || decode_bcd(value).and_then(|v| u32::try_from(v).ok());
    let bcd_u16 = || decode_bcd(value).and_then(|v| u16::try_from(v).ok());
    let pairs = || -> Option<Vec<u8>> {
        value
            .iter()
            .map(|&byte| decode_bcd(&[byte]).and_then(|v| u8::try_from(v).ok()))
            .collect()
    };
    Some(match tag {
        tags::TIMEOUT => Bmp::Timeout(single()?),
        tags::MAX_STATUS_INFOS => Bmp::MaxStatusInfos(single()?),
        tags::SERVICE_BYTE => Bmp::ServiceByte(single()?),
        tags::AMOUNT if value.len() == 6 => Bmp::Amount(Amount(decode_bcd(value)?)),
        tags::PUMP_NUMBER => Bmp::PumpNumber(single()?),
        tags::TLV => Bmp::Tlv(TlvList::decode(value).ok()?),
        tags::TRACE_NUMBER => Bmp::TraceNumber(bcd_u32()?),
        tags::TIME => match pairs()?.as_slice() {
            &[hour, minute, second] => Bmp::Time(Time {
                hour,
                minute,
                second,
            }),
            _ => return None,
        },
        tags::DATE => match pairs()?.as_slice() {
            &[month, day] => Bmp::Date(Date { month, day }),
            _ => return None,
        },
        tags::EXPIRY_DATE => match pairs()?.as_slice() {
            &[year, month] => Bmp::ExpiryDate(ExpiryDate { year, month }),
            _ => return None,
        },
        tags::CARD_SEQUENCE_NUMBER => Bmp::CardSequenceNumber(bcd_u16()?),
        tags::PAYMENT_TYPE => Bmp::PaymentType(single()?),
        tags::PAN => Bmp::Pan(Pan::from_bytes(value)),
        tags::TRACK_2 => Bmp::Track2(TrackData::from_bytes(value)),
        tags::TRACK_3 => Bmp::Track3(TrackData::from_bytes(value)),
        tags::RESULT_CODE => Bmp::ResultCode(ResultCode(single()?)),
        tags::TERMINAL_ID => Bmp::TerminalId(bcd_u32()?),
        tags::VU_NUMBER => Bmp::VuNumber(FixedText::from_bytes(value.try_into().ok()?)),
        tags::TRACK_1 => Bmp::Track1(TrackData::from_bytes(value)),
        tags::ORIGINAL_TRACE_NUMBER => Bmp::OriginalTraceNumber(bcd_u32()?),
        tags::AID => Bmp::Aid(FixedText::from_bytes(value.try_into().ok()?)),
        tags::ADDITIONAL_TEXT => Bmp::AdditionalText(Text::from_bytes(value)),
        tags::CURRENCY => Bmp::Currency(CurrencyCode::from_bcd(value)?),
        tags::RECEIPT_NUMBER => Bmp::ReceiptNumber(bcd_u16()?),
        tags::TURNOVER_NUMBER => Bmp::TurnoverNumber(bcd_u32()?),
        tags::CARD_TYPE => Bmp::CardType(single()?),
        tags::CARD_NAME => Bmp::CardName(Text::from_bytes(value)),
        tags::CARD_TYPE_ID => Bmp::CardTypeId(single()?),
        tags::RESULT_CODE_AS => Bmp::ResultCodeAs(single()?),
        _ => return None,
    })
}

/// An ordered sequence of BMPs plus any bytes that could not be delimited.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BmpList {
    pub fields: Vec<Bmp>,
    /// Bytes from the first unknown or malformed BMP to the end; re-emitted
    /// verbatim when encoding.
    pub trailing: OpaqueBytes,
}

macro_rules! copy_getter {
    ($(#[$doc:meta])* $name:ident, $variant:ident, $ty:ty) => {
        $(#[$doc])*
        pub fn $name(&self) -> Option<$ty> {
            self.fields.iter().find_map(|field| match field {
                Bmp::$variant(value) => Some(*value),
                _ => None,
            })
        }
    };
}

macro_rules! ref_getter {
    ($(#[$doc:meta])* $name:ident, $variant:ident, $ty:ty) => {
        $(#[$doc])*
        pub fn $name(&self) -> Option<&$ty> {
            self.fields.iter().find_map(|field| match field {
                Bmp::$variant(value) => Some(value),
                _ => None,
            })
        }
    };
}

impl BmpList {
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes as many BMPs as possible; never fails.
    pub fn decode(bytes: &[u8]) -> Self {
        let mut cursor = Cursor::new(bytes);
        let mut fields = Vec::new();
        while !cursor.is_empty() {
            let start = cursor.position();
            let mut attempt = cursor.clone();
            match Bmp::decode(&mut attempt) {
                Some(field) => {
                    fields.push(field);
                    cursor = attempt;
                }
                None => {
                    let trailing = bytes.get(start..).unwrap_or_default().to_vec();
                    return Self {
                        fields,
                        trailing: OpaqueBytes(trailing),
                    };
                }
            }
        }
        Self {
            fields,
            trailing: OpaqueBytes::default(),
        }
    }

    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        for field in &self.fields {
            field.encode_into(out)?;
        }
        out.extend_from_slice(self.trailing.as_bytes());
        Ok(())
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::new();
        self.encode_into(&mut out)?;
        Ok(out)
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty() && self.trailing.is_empty()
    }

    /// Whether every byte decoded into a field.
    pub fn is_fully_decoded(&self) -> bool {
        self.trailing.is_empty()
    }

    pub fn push(&mut self, field: Bmp) {
        self.fields.push(field);
    }

    /// Builder form of [`BmpList::push`].
    pub fn with(mut self, field: Bmp) -> Self {
        self.fields.push(field);
        self
    }

    /// The first field with `tag`.
    pub fn get(&self, tag: u8) -> Option<&Bmp> {
        self.fields.iter().find(|field| field.tag() == tag)
    }

    copy_getter!(
        /// BMP 04.
        amount, Amount, Amount);
    copy_getter!(
        /// BMP 27.
        result_code, ResultCode, ResultCode);
    copy_getter!(
        /// BMP 0B.
        trace_number, TraceNumber, u32);
    copy_getter!(
        /// BMP 37.
        original_trace_number, OriginalTraceNumber, u32);
    copy_getter!(
        /// BMP 0C.
        time, Time, Time);
    copy_getter!(
        /// BMP 0D.
        date, Date, Date);
    copy_getter!(
        /// BMP 0E.
        expiry_date, ExpiryDate, ExpiryDate);
    copy_getter!(
        /// BMP 17.
        card_sequence_number, CardSequenceNumber, u16);
    copy_getter!(
        /// BMP 19.
        payment_type, PaymentType, u8);
    copy_getter!(
        /// BMP 29.
        terminal_id, TerminalId, u32);
    copy_getter!(
        /// BMP 49.
        currency, Currency, CurrencyCode);
    copy_getter!(
        /// BMP 87.
        receipt_number, ReceiptNumber, u16);
    copy_getter!(
        /// BMP 88.
        turnover_number, TurnoverNumber, u32);
    copy_getter!(
        /// BMP 8A.
        card_type, CardType, u8);
    copy_getter!(
        /// BMP 8C.
        card_type_id, CardTypeId, u8);
    copy_getter!(
        /// BMP 01.
        timeout, Timeout, u8);
    copy_getter!(
        /// BMP 03.
        service_byte, ServiceByte, u8);
    copy_getter!(
        /// BMP 2A.
        vu_number, VuNumber, FixedText<15>);
    copy_getter!(
        /// BMP 3B.
        aid, Aid, FixedText<8>);
    ref_getter!(
        /// BMP 22.
        pan, Pan, Pan);
    ref_getter!(
        /// BMP 23.
        track2, Track2, TrackData);
    ref_getter!(
        /// BMP 3C.
        additional_text, AdditionalText, Text);
    ref_getter!(
        /// BMP 8B.
        card_name, CardName, Text);
    ref_getter!(
        /// BMP 06.
        tlv, Tlv, TlvList);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_fields() {
        let bytes = [
            0x04, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x19, 0x44, 0x49, 0x09, 0x78,
        ];
        let list = BmpList::decode(&bytes);
        assert!(list.is_fully_decoded());
        assert_eq!(list.amount().map(Amount::minor_units), Some(1000));
        assert_eq!(list.payment_type(), Some(0x44));
        assert_eq!(list.currency(), Some(CurrencyCode::EUR));
        assert_eq!(list.to_bytes().unwrap(), bytes);
    }

    #[test]
    fn ll_and_lll_fields() {
        let list = BmpList::new()
            .with(Bmp::CardName(Text::from_bytes(b"VISA".to_vec())))
            .with(Bmp::AdditionalText(Text::from_bytes(b"hello".to_vec())));
        let bytes = list.to_bytes().unwrap();
        assert_eq!(
            bytes,
            [
                0x8B, 0xF0, 0xF4, b'V', b'I', b'S', b'A', 0x3C, 0xF0, 0xF0, 0xF5, b'h', b'e', b'l',
                b'l', b'o'
            ]
        );
        assert_eq!(BmpList::decode(&bytes), list);
    }

    #[test]
    fn non_bcd_receipt_number_is_kept_as_other() {
        let list = BmpList::decode(&[0x87, 0xFF, 0xFF]);
        assert_eq!(
            list.fields,
            vec![Bmp::Other {
                tag: 0x87,
                value: OpaqueBytes(vec![0xFF, 0xFF])
            }]
        );
        assert_eq!(list.receipt_number(), None);
        assert_eq!(list.to_bytes().unwrap(), [0x87, 0xFF, 0xFF]);
    }

    #[test]
    fn unknown_tag_keeps_the_rest() {
        let bytes = [0x19, 0x40, 0x31, 0x32, 0x33];
        let list = BmpList::decode(&bytes);
        assert_eq!(list.fields, vec![Bmp::PaymentType(0x40)]);
        assert_eq!(list.trailing.as_bytes(), &[0x31, 0x32, 0x33]);
        assert_eq!(list.to_bytes().unwrap(), bytes);
    }

    #[test]
    fn truncated_field_keeps_the_rest() {
        let bytes = [0x27, 0x00, 0x04, 0x00, 0x01];
        let list = BmpList::decode(&bytes);
        assert_eq!(list.fields, vec![Bmp::ResultCode(ResultCode::SUCCESS)]);
        assert_eq!(list.trailing.as_bytes(), &[0x04, 0x00, 0x01]);
    }

    #[test]
    fn encode_checks_ranges() {
        assert_eq!(
            Bmp::TraceNumber(1_000_000).value_bytes(),
            Err(EncodeError::ValueOutOfRange { tag: 0x0B })
        );
        let too_long = Bmp::CardName(Text::from_bytes(vec![b'x'; 100]));
        assert!(matches!(
            too_long.encode_into(&mut Vec::new()),
            Err(EncodeError::ValueTooLong { max: 99, .. })
        ));
        let wrong_width = Bmp::Other {
            tag: 0x04,
            value: OpaqueBytes(vec![0; 5]),
        };
        assert!(matches!(
            wrong_width.encode_into(&mut Vec::new()),
            Err(EncodeError::FixedLengthMismatch { .. })
        ));
    }

    #[test]
    fn time_and_dates() {
        let list = BmpList::decode(&[0x0C, 0x22, 0x55, 0x58, 0x0D, 0x04, 0x05, 0x0E, 0x24, 0x05]);
        assert_eq!(
            list.time(),
            Some(Time {
                hour: 22,
                minute: 55,
                second: 58
            })
        );
        assert_eq!(list.date(), Some(Date { month: 4, day: 5 }));
        assert_eq!(list.expiry_date(), Some(ExpiryDate { year: 24, month: 5 }));
    }
}
