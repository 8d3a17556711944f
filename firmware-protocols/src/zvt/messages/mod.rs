//! Typed ZVT messages, encoded from and decoded into their fields.
//!
//! [`Message::decode`] maps an [`Apdu`] to a typed message by its control
//! field; [`Message::to_apdu`] encodes it again. Every message keeps its BMPs
//! in wire order, so decoding and re-encoding a received APDU reproduces it
//! byte for byte — with one exception: the APDU length is always written in
//! its minimal form. An APDU that announces fewer than 255 data bytes with the
//! `FF lo hi` extended length decodes fine, but its message re-encodes with
//! the one-byte length (same data). Keep the received [`Apdu`], which does
//! remember the form, to forward it byte-exactly. (Vendor and unknown
//! messages hold the raw [`Apdu`] and keep the form.)
//!
//! # Messages kept opaque
//!
//! These decode into [`Message::Vendor`] holding the raw [`Apdu`], and
//! re-encode byte-identically:
//!
//! * `0F xx` — Feig cVEND functions (any instruction),
//! * `08 13` — Feig change configuration (host configuration),
//! * `08 14` — Feig write file,
//! * `04 0C` — Feig request for data (file transfer).
//!
//! Any other control field this module does not model decodes into
//! [`Message::Unknown`], also raw. Inside standard messages, BMP tags that
//! are not in the BMP table end up in [`BmpList::trailing`], values that do
//! not fit their type in [`Bmp::Other`](crate::zvt::bmp::Bmp::Other), and
//! TLV objects are kept generically. A `06 0F` Completion whose data is not
//! BMPs (e.g. Feig's enhanced system information reply) decodes as
//! [`CompletionBody::Opaque`].

mod commands;
mod replies;

pub use commands::*;
pub use replies::*;

use crate::zvt::apdu::{Apdu, ControlField};
use crate::zvt::bmp::BmpList;
use crate::zvt::card::Password;
use crate::zvt::error::{EncodeError, MessageError};

/// Whether `control` is a vendor-specific message this crate keeps opaque.
pub fn is_vendor_specific(control: ControlField) -> bool {
    matches!(
        (control.class, control.instr),
        (0x0F, _) | (0x08, 0x13) | (0x08, 0x14) | (0x04, 0x0C)
    )
}

/// Defines a message whose data is only a BMP list.
macro_rules! fields_message {
    ($(#[$doc:meta])* $name:ident, $class:literal, $instr:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Default)]
        pub struct $name {
            pub fields: $crate::zvt::bmp::BmpList,
        }

        impl $name {
            pub const CONTROL: $crate::zvt::apdu::ControlField =
                $crate::zvt::apdu::ControlField::new($class, $instr);

            pub fn new(fields: $crate::zvt::bmp::BmpList) -> Self {
                Self { fields }
            }

            /// Appends a field (builder style).
            pub fn with(mut self, field: $crate::zvt::bmp::Bmp) -> Self {
                self.fields.push(field);
                self
            }

            pub(crate) fn decode_data(
                data: &[u8],
            ) -> Result<Self, $crate::zvt::error::MessageError> {
                Ok(Self {
                    fields: $crate::zvt::bmp::BmpList::decode(data),
                })
            }

            pub(crate) fn encode_data(
                &self,
                out: &mut Vec<u8>,
            ) -> Result<(), $crate::zvt::error::EncodeError> {
                self.fields.encode_into(out)
            }
        }
    };
}

/// Defines a message whose data is an optional 3-byte password followed by
/// a BMP list.
macro_rules! password_message {
    ($(#[$doc:meta])* $name:ident, $class:literal, $instr:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Default)]
        pub struct $name {
            pub password: Option<$crate::zvt::card::Password>,
            pub fields: $crate::zvt::bmp::BmpList,
        }

        impl $name {
            pub const CONTROL: $crate::zvt::apdu::ControlField =
                $crate::zvt::apdu::ControlField::new($class, $instr);

            pub fn new(password: Option<$crate::zvt::card::Password>) -> Self {
                Self {
                    password,
                    fields: $crate::zvt::bmp::BmpList::new(),
                }
            }

            /// Appends a field (builder style).
            pub fn with(mut self, field: $crate::zvt::bmp::Bmp) -> Self {
                self.fields.push(field);
                self
            }

            pub(crate) fn decode_data(
                data: &[u8],
            ) -> Result<Self, $crate::zvt::error::MessageError> {
                let (password, fields) = $crate::zvt::messages::split_password(data);
                Ok(Self { password, fields })
            }

            pub(crate) fn encode_data(
                &self,
                out: &mut Vec<u8>,
            ) -> Result<(), $crate::zvt::error::EncodeError> {
                if let Some(password) = &self.password {
                    out.extend_from_slice(password.as_bytes());
                }
                self.fields.encode_into(out)
            }
        }
    };
}

pub(crate) use fields_message;
pub(crate) use password_message;

/// Splits an optional leading password from the BMPs.
///
/// The password is not tagged, so it is recognised by elimination: if all
/// data parses as BMPs there is none; otherwise three leading BCD bytes are
/// taken as the password.
pub(crate) fn split_password(data: &[u8]) -> (Option<Password>, BmpList) {
    let whole = BmpList::decode(data);
    if whole.is_fully_decoded() {
        return (None, whole);
    }
    if let [a, b, c, rest @ ..] = data {
        let password = Password::from_bytes([*a, *b, *c]);
        if password.number().is_some() {
            return (Some(password), BmpList::decode(rest));
        }
    }
    (None, whole)
}

/// Declares the message enum and its dispatch from one list.
macro_rules! messages {
    ($($variant:ident($ty:ty)),* $(,)?) => {
        /// A decoded ZVT message.
        #[derive(Debug, Clone, PartialEq, Eq)]
        #[non_exhaustive]
        pub enum Message {
            $($variant($ty),)*
            /// Negative acknowledgement `84 xx`.
            NegativeAck(NegativeAck),
            /// A vendor-specific message, kept raw (see the module docs).
            Vendor(Apdu),
            /// A message this crate does not model, kept raw.
            Unknown(Apdu),
        }

        impl Message {
            /// Decodes a typed message from an APDU.
            pub fn decode(apdu: &Apdu) -> Result<Self, MessageError> {
                let control = apdu.control();
                let data = apdu.data();
                if is_vendor_specific(control) {
                    return Ok(Self::Vendor(apdu.clone()));
                }
                if control.class == NegativeAck::CLASS {
                    return Ok(Self::NegativeAck(NegativeAck::decode_data(control.instr, data)));
                }
                $(
                    if control == <$ty>::CONTROL {
                        return Ok(Self::$variant(<$ty>::decode_data(data)?));
                    }
                )*
                Ok(Self::Unknown(apdu.clone()))
            }

            /// The control field this message is sent with.
            pub fn control(&self) -> ControlField {
                match self {
                    $(Self::$variant(_) => <$ty>::CONTROL,)*
                    Self::NegativeAck(nack) => nack.control(),
                    Self::Vendor(apdu) | Self::Unknown(apdu) => apdu.control(),
                }
            }

            /// Encodes the message as an APDU (minimal length form).
            pub fn to_apdu(&self) -> Result<Apdu, EncodeError> {
                let mut data = Vec::new();
                match self {
                    $(Self::$variant(message) => message.encode_data(&mut data)?,)*
                    Self::NegativeAck(nack) => nack.encode_data(&mut data)?,
                    Self::Vendor(apdu) | Self::Unknown(apdu) => return Ok(apdu.clone()),
                }
                let len = data.len();
                Apdu::new(self.control(), data).map_err(|_| EncodeError::ApduTooLong { len })
            }
        }

        $(
            impl From<$ty> for Message {
                fn from(message: $ty) -> Self {
                    Self::$variant(message)
                }
            }
        )*
    };
}

messages! {
    Registration(Registration),
    Authorization(Authorization),
    LogOff(LogOff),
    ResetTerminal(ResetTerminal),
    RepeatReceipt(RepeatReceipt),
    PreAuthorization(PreAuthorization),
    PartialReversal(PartialReversal),
    PreAuthReversal(PreAuthReversal),
    Reversal(Reversal),
    Refund(Refund),
    EndOfDay(EndOfDay),
    Diagnosis(Diagnosis),
    Initialisation(Initialisation),
    AbortCommand(AbortCommand),
    ReadCard(ReadCard),
    ShowText(ShowText),
    StatusEnquiry(StatusEnquiry),
    IntermediateStatus(IntermediateStatus),
    StatusInformation(StatusInformation),
    PrintLine(PrintLine),
    PrintTextBlock(PrintTextBlock),
    Completion(Completion),
    Abort(Abort),
    PositiveAck(PositiveAck),
}

impl From<NegativeAck> for Message {
    fn from(message: NegativeAck) -> Self {
        Self::NegativeAck(message)
    }
}

impl Message {
    /// Decodes a message from encoded APDU bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, MessageError> {
        Self::decode(&Apdu::decode(bytes)?)
    }

    /// Encodes the message to APDU bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, EncodeError> {
        self.to_apdu().map(|apdu| apdu.to_bytes())
    }

    /// Whether the message is kept as raw bytes (vendor or unknown).
    pub fn is_opaque(&self) -> bool {
        matches!(self, Self::Vendor(_) | Self::Unknown(_))
    }

    /// The BMP fields of the message, if its layout has them.
    pub fn bmp_fields(&self) -> Option<&BmpList> {
        match self {
            Self::Registration(m) => Some(&m.fields),
            Self::Authorization(m) => Some(&m.fields),
            Self::LogOff(m) => Some(&m.fields),
            Self::ResetTerminal(m) => Some(&m.fields),
            Self::RepeatReceipt(m) => Some(&m.fields),
            Self::PreAuthorization(m) => Some(&m.fields),
            Self::PartialReversal(m) => Some(&m.fields),
            Self::PreAuthReversal(m) => Some(&m.fields),
            Self::Reversal(m) => Some(&m.fields),
            Self::Refund(m) => Some(&m.fields),
            Self::EndOfDay(m) => Some(&m.fields),
            Self::Diagnosis(m) => Some(&m.fields),
            Self::Initialisation(m) => Some(&m.fields),
            Self::AbortCommand(m) => Some(&m.fields),
            Self::ReadCard(m) => Some(&m.fields),
            Self::ShowText(m) => Some(&m.fields),
            Self::StatusEnquiry(m) => Some(&m.fields),
            Self::IntermediateStatus(m) => Some(&m.fields),
            Self::StatusInformation(m) => Some(&m.fields),
            Self::PrintTextBlock(m) => Some(&m.fields),
            Self::Completion(m) => m.fields(),
            Self::Abort(m) => Some(&m.fields),
            Self::PositiveAck(m) => Some(&m.fields),
            Self::NegativeAck(m) => Some(&m.fields),
            Self::PrintLine(_) | Self::Vendor(_) | Self::Unknown(_) => None,
        }
    }

    /// The positive acknowledgement `80 00 00`.
    pub fn ack() -> Self {
        Self::PositiveAck(PositiveAck::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zvt::bmp::ResultCode;

    /// Regression (fuzz artifact `zvt_message/crash-2d35eb20…`): an Abort
    /// whose single data byte is announced with the extended length form.
    /// The message decodes; re-encoding writes the minimal length, which
    /// decodes to the same message.
    #[test]
    fn non_minimal_extended_length_is_normalised() {
        let bytes = [0x06, 0x1E, 0xFF, 0x01, 0x00, 0xE8];
        let apdu = Apdu::decode(&bytes).unwrap();
        assert_eq!(apdu.to_bytes(), bytes, "the APDU keeps the form");
        let message = Message::decode(&apdu).unwrap();
        assert_eq!(message, Message::Abort(Abort::new(ResultCode(0xE8))));
        let encoded = message.to_bytes().unwrap();
        assert_eq!(encoded, [0x06, 0x1E, 0x01, 0xE8]);
        assert_eq!(Message::from_bytes(&encoded).unwrap(), message);
    }
}
