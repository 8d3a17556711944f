//! Messages sent by the payment terminal, and the acknowledgements both
//! sides send.

use super::fields_message;
use crate::zvt::apdu::ControlField;
use crate::zvt::bcd::{decode_var_length, encode_var_length};
use crate::zvt::bmp::{Bmp, BmpList, ResultCode};
use crate::zvt::card::OpaqueBytes;
use crate::zvt::error::{EncodeError, MessageError};
use crate::zvt::tables::intermediate_status_text;
use crate::zvt::text::Text;
use crate::zvt::tlv::{Tlv, TlvList, TlvValue, tags as tlv_tags};

fields_message!(
    /// Status-Information `04 0F`: the transaction result (27 result code,
    /// 04 amount, 0B trace, 0C/0D time/date, 22 masked PAN, 29 terminal ID,
    /// 87 receipt no., 06 TLV, …). Use the getters on `fields`.
    StatusInformation, 0x04, 0x0F
);

fields_message!(
    /// Positive acknowledgement `80 00`, normally without data. Some
    /// exchanges (Feig file transfer) attach BMPs.
    PositiveAck, 0x80, 0x00
);

fields_message!(
    /// Print text block `06 D3`: BMP 06 with TLV 1F07 receipt type and
    /// 25 { 07 line, 07 line, … }.
    PrintTextBlock, 0x06, 0xD3
);

impl PrintTextBlock {
    /// A receipt of `receipt_type` (see
    /// [`receipt_type`](crate::zvt::tlv::receipt_type)) with `lines`.
    pub fn receipt(receipt_type: u8, lines: Vec<Text>) -> Self {
        let lines = lines
            .into_iter()
            .map(|line| Tlv::primitive(tlv_tags::TEXT_LINE, line.into_bytes()))
            .collect();
        let tlv = TlvList::new(vec![
            Tlv::primitive(tlv_tags::RECEIPT_TYPE, vec![receipt_type]),
            Tlv::constructed(tlv_tags::PRINT_TEXTS, lines),
        ]);
        Self::default().with(Bmp::Tlv(tlv))
    }

    /// TLV 1F07: 1 merchant, 2 customer, 3 administration receipt.
    pub fn receipt_type(&self) -> Option<u8> {
        self.fields
            .tlv()?
            .find(tlv_tags::RECEIPT_TYPE)
            .and_then(Tlv::as_u8)
    }

    /// The text lines (TLV 07 inside 25), in order.
    pub fn lines(&self) -> Vec<Text> {
        let Some(print_texts) = self
            .fields
            .tlv()
            .and_then(|tlv| tlv.find(tlv_tags::PRINT_TEXTS))
            .and_then(Tlv::children)
        else {
            return Vec::new();
        };
        print_texts
            .iter()
            .filter(|object| object.tag == tlv_tags::TEXT_LINE)
            .filter_map(|object| match &object.value {
                TlvValue::Primitive(bytes) => Some(Text::from_bytes(bytes.clone())),
                TlvValue::Constructed(_) => None,
            })
            .collect()
    }
}

/// Intermediate status `04 FF`: status code, optional timeout, optional
/// BMPs (06 TLV with display texts).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IntermediateStatus {
    pub status: u8,
    pub timeout: Option<u8>,
    /// Only encodable together with a timeout.
    pub fields: BmpList,
}

impl IntermediateStatus {
    pub const CONTROL: ControlField = ControlField::new(0x04, 0xFF);

    pub fn new(status: u8) -> Self {
        Self {
            status,
            ..Self::default()
        }
    }

    /// Display text for the status code.
    pub fn text(&self) -> Option<&'static str> {
        intermediate_status_text(self.status)
    }

    pub(crate) fn decode_data(data: &[u8]) -> Result<Self, MessageError> {
        match data {
            [] => Err(MessageError::TooShort {
                control: Self::CONTROL,
                len: 0,
                min: 1,
            }),
            [status] => Ok(Self::new(*status)),
            [status, timeout, rest @ ..] => Ok(Self {
                status: *status,
                timeout: Some(*timeout),
                fields: BmpList::decode(rest),
            }),
        }
    }

    pub(crate) fn encode_data(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.push(self.status);
        match self.timeout {
            Some(timeout) => out.push(timeout),
            None if self.fields.is_empty() => return Ok(()),
            None => {
                return Err(EncodeError::Inconsistent(
                    "intermediate status fields require a timeout",
                ));
            }
        }
        self.fields.encode_into(out)
    }
}

/// Print line `06 D1`: attribute byte and one line of text.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PrintLine {
    pub attribute: u8,
    pub text: Text,
}

impl PrintLine {
    pub const CONTROL: ControlField = ControlField::new(0x06, 0xD1);

    pub(crate) fn decode_data(data: &[u8]) -> Result<Self, MessageError> {
        let [attribute, text @ ..] = data else {
            return Err(MessageError::TooShort {
                control: Self::CONTROL,
                len: 0,
                min: 1,
            });
        };
        Ok(Self {
            attribute: *attribute,
            text: Text::from_bytes(text),
        })
    }

    pub(crate) fn encode_data(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.push(self.attribute);
        out.extend_from_slice(self.text.as_bytes());
        Ok(())
    }
}

/// The data of a Completion `06 0F`, whose layout depends on the command it
/// completes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompletionBody {
    /// BMPs (19 status byte, 29 terminal ID, 49 currency, 06 TLV); empty for
    /// the plain `06 0F 00`.
    Fields(BmpList),
    /// After status enquiry / registration: LLL software version, terminal
    /// status byte, then BMPs.
    SoftwareVersion {
        version: Text,
        terminal_status: u8,
        fields: BmpList,
    },
    /// Data that is not BMPs at all (vendor replies such as Feig's enhanced
    /// system information).
    Opaque(OpaqueBytes),
}

impl Default for CompletionBody {
    fn default() -> Self {
        Self::Fields(BmpList::new())
    }
}

/// Completion `06 0F`: the PT hands control back to the ECR.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Completion {
    pub body: CompletionBody,
}

impl Completion {
    pub const CONTROL: ControlField = ControlField::new(0x06, 0x0F);

    /// The BMPs of the completion, if it has any.
    pub fn fields(&self) -> Option<&BmpList> {
        match &self.body {
            CompletionBody::Fields(fields) | CompletionBody::SoftwareVersion { fields, .. } => {
                Some(fields)
            }
            CompletionBody::Opaque(_) => None,
        }
    }

    pub(crate) fn decode_data(data: &[u8]) -> Result<Self, MessageError> {
        if let Some(body) = Self::decode_software_version(data) {
            return Ok(Self { body });
        }
        let fields = BmpList::decode(data);
        let body = if fields.fields.is_empty() && !fields.trailing.is_empty() {
            CompletionBody::Opaque(OpaqueBytes(data.to_vec()))
        } else {
            CompletionBody::Fields(fields)
        };
        Ok(Self { body })
    }

    fn decode_software_version(data: &[u8]) -> Option<CompletionBody> {
        let len = decode_var_length(data.get(..3)?)?;
        let version = data.get(3..3 + len)?;
        let terminal_status = *data.get(3 + len)?;
        let rest = data.get(4 + len..)?;
        Some(CompletionBody::SoftwareVersion {
            version: Text::from_bytes(version),
            terminal_status,
            fields: BmpList::decode(rest),
        })
    }

    pub(crate) fn encode_data(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        match &self.body {
            CompletionBody::Fields(fields) => fields.encode_into(out),
            CompletionBody::SoftwareVersion {
                version,
                terminal_status,
                fields,
            } => {
                encode_var_length(version.len(), 3, out).ok_or(EncodeError::TextTooLong {
                    field: "software version",
                    len: version.len(),
                    max: 999,
                })?;
                out.extend_from_slice(version.as_bytes());
                out.push(*terminal_status);
                fields.encode_into(out)
            }
            CompletionBody::Opaque(bytes) => {
                out.extend_from_slice(bytes.as_bytes());
                Ok(())
            }
        }
    }
}

/// Abort `06 1E` from the PT: result code, then optional BMPs (e.g. 87
/// receipt number `FFFF` after a failed partial reversal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Abort {
    pub result_code: ResultCode,
    pub fields: BmpList,
}

impl Abort {
    pub const CONTROL: ControlField = ControlField::new(0x06, 0x1E);

    pub fn new(result_code: ResultCode) -> Self {
        Self {
            result_code,
            fields: BmpList::new(),
        }
    }

    pub(crate) fn decode_data(data: &[u8]) -> Result<Self, MessageError> {
        let [code, rest @ ..] = data else {
            return Err(MessageError::TooShort {
                control: Self::CONTROL,
                len: 0,
                min: 1,
            });
        };
        Ok(Self {
            result_code: ResultCode(*code),
            fields: BmpList::decode(rest),
        })
    }

    pub(crate) fn encode_data(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.push(self.result_code.0);
        self.fields.encode_into(out)
    }
}

/// Negative acknowledgement `84 xx`: the instruction byte is the error code
/// (e.g. `84 83 00` function not possible, `84 9C 00` please wait).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NegativeAck {
    pub code: ResultCode,
    pub fields: BmpList,
}

impl NegativeAck {
    pub const CLASS: u8 = 0x84;

    pub fn new(code: ResultCode) -> Self {
        Self {
            code,
            fields: BmpList::new(),
        }
    }

    pub fn control(&self) -> ControlField {
        ControlField::new(Self::CLASS, self.code.0)
    }

    pub(crate) fn decode_data(code: u8, data: &[u8]) -> Self {
        Self {
            code: ResultCode(code),
            fields: BmpList::decode(data),
        }
    }

    pub(crate) fn encode_data(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        self.fields.encode_into(out)
    }
}
