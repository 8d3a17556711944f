//! Commands sent by the ECR to the payment terminal.

use super::{fields_message, password_message};
use crate::zvt::apdu::ControlField;
use crate::zvt::bmp::{Amount, Bmp, BmpList, CurrencyCode, tags};
use crate::zvt::card::Password;
use crate::zvt::error::{EncodeError, MessageError};

/// Registration config-byte bits (06 00).
pub mod config_bits {
    /// The ECR prints payment receipts.
    pub const ECR_PRINTS_PAYMENT_RECEIPTS: u8 = 0x02;
    /// The ECR prints administration receipts.
    pub const ECR_PRINTS_ADMIN_RECEIPTS: u8 = 0x04;
    /// The PT sends intermediate status (04 FF).
    pub const INTERMEDIATE_STATUS: u8 = 0x08;
    /// The ECR controls the payment function.
    pub const ECR_CONTROLS_PAYMENT: u8 = 0x10;
    /// The ECR controls the administration function.
    pub const ECR_CONTROLS_ADMIN: u8 = 0x20;
    /// Receipts are sent via print line / print text block.
    pub const RECEIPTS_VIA_PRINT_COMMANDS: u8 = 0x80;
}

/// Registration `06 00`: password, config byte, optional currency (untagged)
/// and BMPs (03 service byte, 06 TLV).
///
/// The currency has no tag: it is taken to be present unless the byte after
/// the config byte is BMP tag 03 or 06. (Currency codes 03xx/06xx followed by
/// BMPs are therefore ambiguous on the wire.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub password: Password,
    pub config: u8,
    pub currency: Option<CurrencyCode>,
    pub fields: BmpList,
}

impl Registration {
    pub const CONTROL: ControlField = ControlField::new(0x06, 0x00);

    pub fn new(password: Password, config: u8, currency: Option<CurrencyCode>) -> Self {
        Self {
            password,
            config,
            currency,
            fields: BmpList::new(),
        }
    }

    pub fn with(mut self, field: Bmp) -> Self {
        self.fields.push(field);
        self
    }

    pub(crate) fn decode_data(data: &[u8]) -> Result<Self, MessageError> {
        let [a, b, c, config, rest @ ..] = data else {
            return Err(MessageError::TooShort {
                control: Self::CONTROL,
                len: data.len(),
                min: 4,
            });
        };
        let password = Password::from_bytes([*a, *b, *c]);
        let (currency, fields) = match rest {
            [first, second, after @ ..] if !matches!(*first, tags::SERVICE_BYTE | tags::TLV) => {
                match CurrencyCode::from_bcd(&[*first, *second]) {
                    Some(currency) => (Some(currency), BmpList::decode(after)),
                    None => (None, BmpList::decode(rest)),
                }
            }
            _ => (None, BmpList::decode(rest)),
        };
        Ok(Self {
            password,
            config: *config,
            currency,
            fields,
        })
    }

    pub(crate) fn encode_data(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.extend_from_slice(self.password.as_bytes());
        out.push(self.config);
        if let Some(currency) = self.currency {
            let bcd = currency.to_bcd().ok_or(EncodeError::ValueOutOfRange {
                tag: tags::CURRENCY,
            })?;
            out.extend_from_slice(&bcd);
        }
        self.fields.encode_into(out)
    }
}

fields_message!(
    /// Authorization (payment) `06 01`: BMP 04 amount, 49 currency,
    /// 19 payment type, …
    Authorization, 0x06, 0x01
);

impl Authorization {
    /// A payment of `amount` in `currency`.
    pub fn payment(amount: Amount, currency: CurrencyCode) -> Self {
        Self::default()
            .with(Bmp::Amount(amount))
            .with(Bmp::Currency(currency))
    }
}

fields_message!(
    /// Log-off `06 02`.
    LogOff, 0x06, 0x02
);

fields_message!(
    /// Reset terminal `06 18`.
    ResetTerminal, 0x06, 0x18
);

password_message!(
    /// Repeat receipt `06 20`: the PT resends the last transaction's result
    /// and receipt (crash recovery).
    RepeatReceipt, 0x06, 0x20
);

fields_message!(
    /// Pre-authorisation / reservation `06 22`.
    PreAuthorization, 0x06, 0x22
);

password_message!(
    /// Partial reversal of a pre-authorisation `06 23` (BMP 87 receipt,
    /// 04 amount, …). Feig terminals send it without password.
    PartialReversal, 0x06, 0x23
);

password_message!(
    /// Pre-authorisation reversal / book total `06 25`.
    PreAuthReversal, 0x06, 0x25
);

password_message!(
    /// Reversal `06 30` of the receipt in BMP 87.
    Reversal, 0x06, 0x30
);

impl Reversal {
    /// Reversal of `receipt_number`.
    pub fn of_receipt(password: Password, receipt_number: u16) -> Self {
        Self::new(Some(password)).with(Bmp::ReceiptNumber(receipt_number))
    }
}

password_message!(
    /// Refund `06 31`.
    Refund, 0x06, 0x31
);

password_message!(
    /// End-of-day `06 50`.
    EndOfDay, 0x06, 0x50
);

fields_message!(
    /// Diagnosis `06 70`.
    Diagnosis, 0x06, 0x70
);

password_message!(
    /// Initialisation `06 93`.
    Initialisation, 0x06, 0x93
);

fields_message!(
    /// Abort `06 B0` sent by the ECR to cancel the running transaction.
    AbortCommand, 0x06, 0xB0
);

fields_message!(
    /// Display text `06 E0`: BMP F0 duration, F1–F8 text lines, …
    ShowText, 0x06, 0xE0
);

password_message!(
    /// Status enquiry `05 01`.
    StatusEnquiry, 0x05, 0x01
);

/// Read card `06 C0`: untagged timeout in seconds, then BMPs (19 card type,
/// FC dialog control, 06 TLV).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReadCard {
    pub timeout_seconds: u8,
    pub fields: BmpList,
}

impl ReadCard {
    pub const CONTROL: ControlField = ControlField::new(0x06, 0xC0);

    pub(crate) fn decode_data(data: &[u8]) -> Result<Self, MessageError> {
        let [timeout_seconds, rest @ ..] = data else {
            return Err(MessageError::TooShort {
                control: Self::CONTROL,
                len: 0,
                min: 1,
            });
        };
        Ok(Self {
            timeout_seconds: *timeout_seconds,
            fields: BmpList::decode(rest),
        })
    }

    pub(crate) fn encode_data(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.push(self.timeout_seconds);
        self.fields.encode_into(out)
    }
}
