//! Typed TEF Dial messages: the requests the POS writes, the client's status
//! file (`IntPos.Sts`) and its answer (`IntPos.001` in the response folder).
//!
//! Field numbers and codes follow the Multiplus TEF Dial pages ("Layout das
//! Mensagens", "Descrição dos Campos", "Exemplo de Comunicação") and, for the
//! PayGo extensions (7xx fields), ACBr's `ACBrTEFDPayGo.pas`. Where vendors
//! differ, the choice is noted at the field.

use crate::tef_dial::record::{FieldId, Record};

/// The field keys used here, with their meaning and format per the docs.
pub mod field {
    use super::FieldId;

    /// Operation: `ATV`, `CRT`, `CNC`, `CNF`, `NCN`, `ADM`…
    pub const HEADER: FieldId = FieldId::new(0, 0);
    /// Request id chosen by the POS, echoed in `.Sts` and the answer
    /// (numeric, at most 10 digits).
    pub const ID: FieldId = FieldId::new(1, 0);
    /// Fiscal document the payment belongs to (our reference).
    pub const DOCUMENT: FieldId = FieldId::new(2, 0);
    /// Amount in cents, digits only (at most 12).
    pub const AMOUNT: FieldId = FieldId::new(3, 0);
    /// Currency: `0` real (`1` dollar).
    pub const CURRENCY: FieldId = FieldId::new(4, 0);
    /// Status: `0` approved, anything else declined.
    pub const STATUS: FieldId = FieldId::new(9, 0);
    /// Network (acquirer) name: CIELO, REDE, GETNET, STONE…
    pub const NETWORK: FieldId = FieldId::new(10, 0);
    /// Transaction type: 10 credit, 11/12 credit installments (merchant /
    /// issuer), 20 debit…
    pub const TRANSACTION_TYPE: FieldId = FieldId::new(11, 0);
    /// NSU given by the host (alphanumeric; leading zeros matter).
    pub const NSU: FieldId = FieldId::new(12, 0);
    /// Authorization code (alphanumeric, up to 6).
    pub const AUTHORIZATION_CODE: FieldId = FieldId::new(13, 0);
    /// Installment financing: `0` by the merchant, `1` by the issuer
    /// (Multiplus "Tipo parcelamento").
    pub const FINANCING: FieldId = FieldId::new(17, 0);
    /// Number of installments.
    pub const INSTALLMENTS: FieldId = FieldId::new(18, 0);
    /// Receipt date, DDMMYYYY.
    pub const DATE: FieldId = FieldId::new(22, 0);
    /// Receipt time, HHMMSS.
    pub const TIME: FieldId = FieldId::new(23, 0);
    /// Finalization token, echoed unchanged in CNF / NCN (up to 32).
    pub const FINALIZATION: FieldId = FieldId::new(27, 0);
    /// Number of receipt lines in 029 (0 when there is none).
    pub const RECEIPT_LINE_COUNT: FieldId = FieldId::new(28, 0);
    /// Receipt lines `029-001`… (up to 40 characters each).
    pub const RECEIPT: u16 = 29;
    /// Text the POS must show the operator (e.g. why it was declined).
    pub const OPERATOR_MESSAGE: FieldId = FieldId::new(30, 0);
    /// Card brand (VISA, MASTERCARD, ELO…) per Multiplus and PayGo. SiTef's
    /// layout uses 040 for a pre-authorization's expiry instead; SiTef
    /// answers seen in its docs leave it out of sales.
    pub const BRAND: FieldId = FieldId::new(40, 0);
    /// PayGo: line count of the customer's receipt in 713.
    pub const CUSTOMER_RECEIPT_LINE_COUNT: FieldId = FieldId::new(712, 0);
    /// PayGo: customer's receipt lines `713-001`…
    pub const CUSTOMER_RECEIPT: u16 = 713;
    /// PayGo: line count of the merchant's receipt in 715.
    pub const MERCHANT_RECEIPT_LINE_COUNT: FieldId = FieldId::new(714, 0);
    /// PayGo: merchant's receipt lines `715-001`…
    pub const MERCHANT_RECEIPT: u16 = 715;
    /// PayGo: confirmation status, `1` none needed (or already confirmed),
    /// `2` needs CNF / NCN.
    pub const CONFIRMATION: FieldId = FieldId::new(729, 0);
    /// PayGo: card type, `0` any, `1` credit, `2` debit, `3` voucher.
    pub const CARD_TYPE: FieldId = FieldId::new(731, 0);
    /// PayGo: financing, `1` single payment, `2` installments by the issuer,
    /// `3` installments by the merchant (4, 5 post-dated).
    pub const PAYGO_FINANCING: FieldId = FieldId::new(732, 0);
    /// Card number as the client shows it (masked by PayGo; Multiplus
    /// documents digits with zeros in the middle).
    pub const MASKED_PAN: FieldId = FieldId::new(740, 0);
}

/// The POS's request id (`001-000`): digits only, at most 10.
pub type RequestId = u64;

/// The largest id that fits the 10 digits of `001-000`.
pub const MAX_REQUEST_ID: RequestId = 9_999_999_999;

/// The operation in `000-000`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Is the client alive?
    Atv,
    /// Card sale.
    Crt,
    /// Cancel an earlier sale.
    Cnc,
    /// Confirm the last transaction.
    Cnf,
    /// Do not confirm: undo the last transaction.
    Ncn,
    /// Administrative menu (reprint, reports, batch close) on the client.
    Adm,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Atv => "ATV",
            Operation::Crt => "CRT",
            Operation::Cnc => "CNC",
            Operation::Cnf => "CNF",
            Operation::Ncn => "NCN",
            Operation::Adm => "ADM",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "ATV" => Some(Operation::Atv),
            "CRT" => Some(Operation::Crt),
            "CNC" => Some(Operation::Cnc),
            "CNF" => Some(Operation::Cnf),
            "NCN" => Some(Operation::Ncn),
            "ADM" => Some(Operation::Adm),
            _ => None,
        }
    }
}

/// Card type, PayGo's `731-000`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardType {
    Credit,
    Debit,
}

impl CardType {
    fn code(self) -> &'static str {
        match self {
            CardType::Credit => "1",
            CardType::Debit => "2",
        }
    }

    fn from_code(code: &str) -> Option<Self> {
        match numeric_code(code)? {
            1 => Some(CardType::Credit),
            2 => Some(CardType::Debit),
            _ => None,
        }
    }
}

/// Who finances the installments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Financing {
    /// "Parcelado pelo estabelecimento": the merchant receives in
    /// installments, no interest for the shopper. `017-000 = 0`,
    /// `732-000 = 3`.
    Merchant,
    /// "Parcelado pela administradora": the issuer pays the merchant at
    /// once and charges the shopper interest. `017-000 = 1`, `732-000 = 2`.
    Issuer,
}

impl Financing {
    fn code(self) -> &'static str {
        match self {
            Financing::Merchant => "0",
            Financing::Issuer => "1",
        }
    }

    fn paygo_code(self) -> &'static str {
        match self {
            Financing::Merchant => "3",
            Financing::Issuer => "2",
        }
    }
}

/// More than one installment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Installments {
    pub count: u16,
    pub financing: Financing,
}

/// A card sale (`CRT`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sale {
    pub id: RequestId,
    /// `002-000`: the payment's reference.
    pub document: String,
    /// `003-000`.
    pub amount_cents: u64,
    /// `731-000`.
    pub card_type: CardType,
    /// `018-000` with `017-000` and `732-000`; `None` is a single payment.
    pub installments: Option<Installments>,
}

/// Confirmation (`CNF`) or undo (`NCN`) of the last transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirmation {
    pub id: RequestId,
    /// `010-000` as the answer gave it.
    pub network: String,
    /// `012-000` as the answer gave it.
    pub nsu: String,
    /// `027-000` as the answer gave it, when it gave one.
    pub finalization: Option<String>,
}

/// Cancellation of an earlier sale (`CNC`), naming it the way the
/// Multiplus layout requires: network, NSU, receipt date and time, amount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cancellation {
    pub id: RequestId,
    pub network: String,
    pub nsu: String,
    /// `022-000`, DDMMYYYY.
    pub date: String,
    /// `023-000`, HHMMSS.
    pub time: String,
    pub amount_cents: u64,
}

/// A request file the POS writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Atv { id: RequestId },
    Crt(Sale),
    Cnc(Cancellation),
    Cnf(Confirmation),
    Ncn(Confirmation),
}

/// Why a record is not the expected message. Never carries a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    #[error("field {0} is missing")]
    Missing(FieldId),
    #[error("field {field} has an invalid value")]
    Invalid { field: FieldId },
    #[error("000-000 names an unknown operation")]
    UnknownOperation,
    /// A known operation that this message type does not carry (e.g. an
    /// `ADM` request).
    #[error("operation {} is not supported here", .0.as_str())]
    Unsupported(Operation),
}

impl Request {
    pub fn id(&self) -> RequestId {
        match self {
            Request::Atv { id } => *id,
            Request::Crt(sale) => sale.id,
            Request::Cnc(cancellation) => cancellation.id,
            Request::Cnf(confirmation) | Request::Ncn(confirmation) => confirmation.id,
        }
    }

    pub fn operation(&self) -> Operation {
        match self {
            Request::Atv { .. } => Operation::Atv,
            Request::Crt(_) => Operation::Crt,
            Request::Cnc(_) => Operation::Cnc,
            Request::Cnf(_) => Operation::Cnf,
            Request::Ncn(_) => Operation::Ncn,
        }
    }

    /// Whether an answer file follows the `IntPos.Sts`: only for CRT and CNC.
    pub fn expects_answer(&self) -> bool {
        matches!(self, Request::Crt(_) | Request::Cnc(_))
    }

    pub fn to_record(&self) -> Record {
        let record = Record::new()
            .with(field::HEADER, self.operation().as_str())
            .with(field::ID, self.id().to_string());
        match self {
            Request::Atv { .. } => record,
            Request::Crt(sale) => {
                let record = record
                    .with(field::DOCUMENT, sale.document.as_str())
                    .with(field::AMOUNT, sale.amount_cents.to_string())
                    .with(field::CURRENCY, "0")
                    .with(field::CARD_TYPE, sale.card_type.code());
                // Both the generic 017/018 pair and PayGo's 732 are written:
                // each client ignores the fields it does not know, and
                // without them it asks the operator instead.
                match sale.installments {
                    None => record.with(field::PAYGO_FINANCING, "1"),
                    Some(installments) => record
                        .with(field::FINANCING, installments.financing.code())
                        .with(field::INSTALLMENTS, installments.count.to_string())
                        .with(field::PAYGO_FINANCING, installments.financing.paygo_code()),
                }
            }
            Request::Cnc(cancellation) => record
                .with(field::AMOUNT, cancellation.amount_cents.to_string())
                .with(field::NETWORK, cancellation.network.as_str())
                .with(field::NSU, cancellation.nsu.as_str())
                .with(field::DATE, cancellation.date.as_str())
                .with(field::TIME, cancellation.time.as_str()),
            Request::Cnf(confirmation) | Request::Ncn(confirmation) => {
                let record = record
                    .with(field::NETWORK, confirmation.network.as_str())
                    .with(field::NSU, confirmation.nsu.as_str());
                match &confirmation.finalization {
                    Some(token) => record.with(field::FINALIZATION, token.as_str()),
                    None => record,
                }
            }
        }
    }

    /// Reads a request file (the client's side: the simulator).
    pub fn from_record(record: &Record) -> Result<Request, MessageError> {
        let operation = operation(record)?;
        let id = request_id(record)?;
        match operation {
            Operation::Atv => Ok(Request::Atv { id }),
            Operation::Crt => {
                match record.get(field::CURRENCY).map(numeric_code) {
                    None | Some(Some(0)) => {}
                    Some(_) => {
                        return Err(MessageError::Invalid {
                            field: field::CURRENCY,
                        });
                    }
                }
                let card_type = CardType::from_code(required(record, field::CARD_TYPE)?).ok_or(
                    MessageError::Invalid {
                        field: field::CARD_TYPE,
                    },
                )?;
                Ok(Request::Crt(Sale {
                    id,
                    document: record.get(field::DOCUMENT).unwrap_or_default().to_owned(),
                    amount_cents: cents(record, field::AMOUNT)?,
                    card_type,
                    installments: installments(record)?,
                }))
            }
            Operation::Cnc => Ok(Request::Cnc(Cancellation {
                id,
                network: unquote(required(record, field::NETWORK)?).to_owned(),
                nsu: required(record, field::NSU)?.to_owned(),
                date: required(record, field::DATE)?.to_owned(),
                time: required(record, field::TIME)?.to_owned(),
                amount_cents: cents(record, field::AMOUNT)?,
            })),
            Operation::Cnf | Operation::Ncn => {
                let confirmation = Confirmation {
                    id,
                    network: unquote(required(record, field::NETWORK)?).to_owned(),
                    nsu: required(record, field::NSU)?.to_owned(),
                    finalization: record.get(field::FINALIZATION).map(str::to_owned),
                };
                Ok(if operation == Operation::Cnf {
                    Request::Cnf(confirmation)
                } else {
                    Request::Ncn(confirmation)
                })
            }
            Operation::Adm => Err(MessageError::Unsupported(Operation::Adm)),
        }
    }
}

/// `IntPos.Sts`: the client took the request (same operation and id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    pub operation: Operation,
    pub id: RequestId,
}

impl Status {
    pub fn to_record(&self) -> Record {
        Record::new()
            .with(field::HEADER, self.operation.as_str())
            .with(field::ID, self.id.to_string())
    }

    pub fn from_record(record: &Record) -> Result<Status, MessageError> {
        Ok(Status {
            operation: operation(record)?,
            id: request_id(record)?,
        })
    }
}

/// Whether the answer's transaction waits for CNF / NCN (PayGo `729-000`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConfirmationNeed {
    /// `2`, or absent: clients without the field (the generic TEF Dial
    /// layout) always hold an approval until CNF / NCN. Any value other
    /// than `1` counts as this: assuming no confirmation is needed when one
    /// is would leave the transaction to be undone by the client.
    #[default]
    Required,
    /// `1`: no confirmation needed, or confirmed (captured) already.
    NotRequired,
}

/// The client's answer to CRT or CNC. Fields the driver does not use are
/// ignored when reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub operation: Operation,
    pub id: RequestId,
    /// `009-000` as written; `0` is approved.
    pub status: String,
    /// `010-000`, without the quotes some clients put around it.
    pub network: Option<String>,
    /// `011-000`.
    pub transaction_type: Option<String>,
    /// `012-000` exactly as written (leading zeros kept).
    pub nsu: Option<String>,
    /// `013-000` exactly as written.
    pub authorization_code: Option<String>,
    /// `003-000`.
    pub amount_cents: Option<u64>,
    /// `022-000`, DDMMYYYY.
    pub date: Option<String>,
    /// `023-000`, HHMMSS.
    pub time: Option<String>,
    /// `027-000` exactly as written: echoed in CNF / NCN.
    pub finalization: Option<String>,
    /// `030-000`, unquoted.
    pub operator_message: Option<String>,
    /// `040-000`, unquoted.
    pub brand: Option<String>,
    /// `740-000` as written: the driver masks it again before keeping it.
    pub masked_pan: Option<String>,
    /// `731-000` when it says credit or debit.
    pub card_type: Option<CardType>,
    /// `729-000`.
    pub confirmation: ConfirmationNeed,
    /// `029-001`…, unquoted.
    pub receipt: Vec<String>,
    /// PayGo `713-001`…, unquoted.
    pub customer_receipt: Vec<String>,
    /// PayGo `715-001`…, unquoted.
    pub merchant_receipt: Vec<String>,
}

impl Answer {
    /// An answer with only the mandatory fields; the rest empty.
    pub fn new(operation: Operation, id: RequestId, status: impl Into<String>) -> Self {
        Self {
            operation,
            id,
            status: status.into(),
            network: None,
            transaction_type: None,
            nsu: None,
            authorization_code: None,
            amount_cents: None,
            date: None,
            time: None,
            finalization: None,
            operator_message: None,
            brand: None,
            masked_pan: None,
            card_type: None,
            confirmation: ConfirmationNeed::Required,
            receipt: Vec::new(),
            customer_receipt: Vec::new(),
            merchant_receipt: Vec::new(),
        }
    }

    /// Status `0`, nothing else: the docs name no other approval code.
    pub fn approved(&self) -> bool {
        self.status.trim() == "0"
    }

    pub fn from_record(record: &Record) -> Result<Answer, MessageError> {
        let text = |id| record.get(id).map(|value| unquote(value).to_owned());
        let exact = |id| record.get(id).map(str::to_owned);
        let lines = |number| {
            record
                .lines_of(number)
                .into_iter()
                .map(|line| unquote(line).to_owned())
                .collect()
        };
        Ok(Answer {
            operation: operation(record)?,
            id: request_id(record)?,
            status: required(record, field::STATUS)?.to_owned(),
            network: text(field::NETWORK),
            transaction_type: exact(field::TRANSACTION_TYPE),
            nsu: exact(field::NSU),
            authorization_code: exact(field::AUTHORIZATION_CODE),
            amount_cents: match record.get(field::AMOUNT) {
                Some(_) => Some(cents(record, field::AMOUNT)?),
                None => None,
            },
            date: exact(field::DATE),
            time: exact(field::TIME),
            finalization: exact(field::FINALIZATION),
            operator_message: text(field::OPERATOR_MESSAGE),
            brand: text(field::BRAND),
            masked_pan: exact(field::MASKED_PAN),
            card_type: record.get(field::CARD_TYPE).and_then(CardType::from_code),
            confirmation: match record.get(field::CONFIRMATION).and_then(numeric_code) {
                Some(1) => ConfirmationNeed::NotRequired,
                _ => ConfirmationNeed::Required,
            },
            receipt: lines(field::RECEIPT),
            customer_receipt: lines(field::CUSTOMER_RECEIPT),
            merchant_receipt: lines(field::MERCHANT_RECEIPT),
        })
    }

    /// Writes the answer the way clients do (the simulator's side): text
    /// fields bare, receipt lines in quotes with their counts.
    pub fn to_record(&self) -> Record {
        let mut record = Record::new()
            .with(field::HEADER, self.operation.as_str())
            .with(field::ID, self.id.to_string());
        if let Some(amount) = self.amount_cents {
            record.push(field::AMOUNT, amount.to_string());
        }
        record.push(field::STATUS, self.status.as_str());
        for (id, value) in [
            (field::NETWORK, &self.network),
            (field::TRANSACTION_TYPE, &self.transaction_type),
            (field::NSU, &self.nsu),
            (field::AUTHORIZATION_CODE, &self.authorization_code),
            (field::DATE, &self.date),
            (field::TIME, &self.time),
            (field::FINALIZATION, &self.finalization),
            (field::OPERATOR_MESSAGE, &self.operator_message),
            (field::BRAND, &self.brand),
        ] {
            if let Some(value) = value {
                record.push(id, value.as_str());
            }
        }
        write_receipt(
            &mut record,
            field::RECEIPT_LINE_COUNT,
            field::RECEIPT,
            &self.receipt,
        );
        if !self.customer_receipt.is_empty() {
            write_receipt(
                &mut record,
                field::CUSTOMER_RECEIPT_LINE_COUNT,
                field::CUSTOMER_RECEIPT,
                &self.customer_receipt,
            );
        }
        if !self.merchant_receipt.is_empty() {
            write_receipt(
                &mut record,
                field::MERCHANT_RECEIPT_LINE_COUNT,
                field::MERCHANT_RECEIPT,
                &self.merchant_receipt,
            );
        }
        record.push(
            field::CONFIRMATION,
            match self.confirmation {
                ConfirmationNeed::Required => "2",
                ConfirmationNeed::NotRequired => "1",
            },
        );
        if let Some(card_type) = self.card_type {
            record.push(field::CARD_TYPE, card_type.code());
        }
        if let Some(pan) = &self.masked_pan {
            record.push(field::MASKED_PAN, pan.as_str());
        }
        record
    }
}

/// `count` then `number-001`… in quotes, as clients write them. The index
/// has three digits: lines past the 999th cannot be written.
fn write_receipt(record: &mut Record, count: FieldId, number: u16, lines: &[String]) {
    let lines = lines.get(..lines.len().min(999)).unwrap_or_default();
    record.push(count, lines.len().to_string());
    for (index, line) in (1u16..).zip(lines) {
        record.push(FieldId::new(number, index), format!("\"{line}\""));
    }
}

/// Strips one pair of enclosing double quotes: clients quote receipt lines
/// and some text fields (`029-001 = "REDE"`), and the Multiplus example
/// echoes the network unquoted in the CNF.
fn unquote(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|inner| inner.strip_suffix('"'))
        .unwrap_or(value)
}

fn required(record: &Record, id: FieldId) -> Result<&str, MessageError> {
    record.get(id).ok_or(MessageError::Missing(id))
}

fn operation(record: &Record) -> Result<Operation, MessageError> {
    Operation::parse(required(record, field::HEADER)?.trim()).ok_or(MessageError::UnknownOperation)
}

fn request_id(record: &Record) -> Result<RequestId, MessageError> {
    let id = required(record, field::ID)?.trim();
    digits(id, 10).ok_or(MessageError::Invalid { field: field::ID })
}

/// An amount in cents. Besides the documented digits-only form, SiTef's
/// examples write reais with a decimal comma (`260,70`): both are read.
fn cents(record: &Record, id: FieldId) -> Result<u64, MessageError> {
    let text = required(record, id)?.trim();
    let amount = match text.split_once(',') {
        None => digits(text, 12),
        Some((reais, centavos)) if centavos.len() == 2 => digits(reais, 10)
            .zip(digits(centavos, 2))
            .map(|(reais, centavos)| reais * 100 + centavos),
        Some(_) => None,
    };
    amount.ok_or(MessageError::Invalid { field: id })
}

/// A numeric code: PayGo writes some with a leading zero (`731-000 = 01`).
fn numeric_code(text: &str) -> Option<u64> {
    digits(text.trim(), 3)
}

/// Digits only, at most `max` of them.
fn digits(text: &str, max: usize) -> Option<u64> {
    if text.is_empty() || text.len() > max || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// `018-000` with its financing type, from `017-000` (generic) or else
/// `732-000` (PayGo).
fn installments(record: &Record) -> Result<Option<Installments>, MessageError> {
    let Some(count) = record.get(field::INSTALLMENTS) else {
        return Ok(None);
    };
    let count = digits(count.trim(), 2)
        .and_then(|count| u16::try_from(count).ok())
        .ok_or(MessageError::Invalid {
            field: field::INSTALLMENTS,
        })?;
    let generic = record.get(field::FINANCING).map(numeric_code);
    let paygo = record.get(field::PAYGO_FINANCING).and_then(numeric_code);
    let financing = match (generic, paygo) {
        (Some(Some(0)), _) | (None, Some(3)) => Financing::Merchant,
        (Some(Some(1)), _) | (None, Some(2)) => Financing::Issuer,
        (Some(_), _) => {
            return Err(MessageError::Invalid {
                field: field::FINANCING,
            });
        }
        // PayGo's `0` ("any"), or no financing at all: nothing says who pays.
        (None, _) => return Err(MessageError::Missing(field::FINANCING)),
    };
    Ok(Some(Installments { count, financing }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer_record(status: &str) -> Record {
        Record::new()
            .with(field::HEADER, "CRT")
            .with(field::ID, "9")
            .with(field::STATUS, status)
    }

    #[test]
    fn only_status_zero_is_approved() {
        let approved = |status| {
            Answer::from_record(&answer_record(status))
                .unwrap()
                .approved()
        };
        assert!(approved("0"));
        assert!(!approved("5"));
        assert!(!approved("00"));
        assert!(!approved(""));
    }

    #[test]
    fn the_request_id_is_at_most_ten_digits() {
        let status = |id: &str| {
            Status::from_record(&Record::new().with(field::HEADER, "ATV").with(field::ID, id))
        };
        assert_eq!(status("9999999999").map(|s| s.id), Ok(MAX_REQUEST_ID));
        for bad in ["10000000000", "-1", "1a", ""] {
            assert_eq!(status(bad), Err(MessageError::Invalid { field: field::ID }));
        }
    }

    #[test]
    fn an_unknown_or_missing_operation_is_an_error() {
        let unknown = Record::new()
            .with(field::HEADER, "XYZ")
            .with(field::ID, "1");
        assert_eq!(
            Status::from_record(&unknown),
            Err(MessageError::UnknownOperation)
        );
        assert_eq!(
            Status::from_record(&Record::new().with(field::ID, "1")),
            Err(MessageError::Missing(field::HEADER))
        );
        let adm = Record::new()
            .with(field::HEADER, "ADM")
            .with(field::ID, "1");
        assert_eq!(
            Request::from_record(&adm),
            Err(MessageError::Unsupported(Operation::Adm))
        );
    }

    #[test]
    fn confirmation_need_follows_729_and_defaults_to_required() {
        let need = |record: Record| Answer::from_record(&record).unwrap().confirmation;
        assert_eq!(need(answer_record("0")), ConfirmationNeed::Required);
        let with = |value| answer_record("0").with(field::CONFIRMATION, value);
        assert_eq!(need(with("1")), ConfirmationNeed::NotRequired);
        assert_eq!(need(with("2")), ConfirmationNeed::Required);
        assert_eq!(need(with("9")), ConfirmationNeed::Required);
    }

    #[test]
    fn only_operations_with_an_answer_expect_one() {
        let confirmation = Confirmation {
            id: 1,
            network: "REDE".to_owned(),
            nsu: "1".to_owned(),
            finalization: None,
        };
        assert!(!Request::Atv { id: 1 }.expects_answer());
        assert!(!Request::Cnf(confirmation.clone()).expects_answer());
        assert!(!Request::Ncn(confirmation).expects_answer());
        let sale = Sale {
            id: 1,
            document: String::new(),
            amount_cents: 1,
            card_type: CardType::Debit,
            installments: None,
        };
        assert!(Request::Crt(sale).expects_answer());
    }

    #[test]
    fn an_invalid_amount_names_its_field_and_not_its_value() {
        let record = answer_record("0").with(field::AMOUNT, "12,3");
        let error = Answer::from_record(&record).unwrap_err();
        assert_eq!(
            error,
            MessageError::Invalid {
                field: field::AMOUNT
            }
        );
        assert!(!error.to_string().contains("12,3"));
    }
}
