//! The clear Terminal API messages (the JSON rendering of nexo), with Adyen's PascalCase names.
//!
//! Reading is lenient where the protocol grows (unknown fields are ignored, unknown enumeration
//! values read as `Unknown`) and strict where posbridge relies on a field: a missing mandatory
//! field is an error that names it.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// The nexo protocol version posbridge speaks.
pub const PROTOCOL_VERSION: &str = "3.0";

/// The longest `ServiceID` terminals take.
pub const SERVICE_ID_MAX_LEN: usize = 10;

/// The header of every message, also sent in clear outside the encrypted blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MessageHeader {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol_version: Option<String>,
    pub message_class: MessageClass,
    pub message_category: MessageCategory,
    pub message_type: MessageType,
    /// Chosen by the sale system, 1 to 10 characters, unique per `SaleID`: what a later
    /// `TransactionStatus` or `Abort` names. Absent on event notifications.
    #[serde(rename = "ServiceID", default, skip_serializing_if = "Option::is_none")]
    pub service_id: Option<String>,
    #[serde(rename = "DeviceID", default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    #[serde(rename = "SaleID")]
    pub sale_id: String,
    #[serde(rename = "POIID")]
    pub poi_id: String,
}

impl MessageHeader {
    /// The header of a service request (payment, abort, reversal, status, diagnosis…) from
    /// posbridge to a terminal.
    pub fn service_request(
        category: MessageCategory,
        sale_id: &str,
        service_id: &str,
        poi_id: &str,
    ) -> MessageHeader {
        MessageHeader {
            protocol_version: Some(PROTOCOL_VERSION.to_owned()),
            message_class: MessageClass::Service,
            message_category: category,
            message_type: MessageType::Request,
            service_id: Some(service_id.to_owned()),
            device_id: None,
            sale_id: sale_id.to_owned(),
            poi_id: poi_id.to_owned(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MessageClass {
    Service,
    Device,
    Event,
    #[serde(other)]
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MessageCategory {
    Abort,
    Admin,
    BalanceInquiry,
    Batch,
    CardAcquisition,
    Diagnosis,
    Display,
    EnableService,
    Event,
    GetTotals,
    Input,
    Login,
    Logout,
    Payment,
    Print,
    Reconciliation,
    Reversal,
    StoredValue,
    TransactionStatus,
    #[serde(other)]
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MessageType {
    Request,
    Response,
    Notification,
    #[serde(other)]
    Unknown,
}

/// Why a clear message was refused. Serde's text names the missing or malformed field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("malformed Terminal API message: {0}")]
    Malformed(String),
    #[error("the message carries no body posbridge knows (category {0:?})")]
    UnknownBody(MessageCategory),
    #[error("currency {0:?} is not one posbridge knows the minor digits of")]
    UnknownCurrency(String),
    #[error("ServiceID {0:?} must be 1 to {SERVICE_ID_MAX_LEN} characters")]
    ServiceId(String),
}

fn malformed(error: serde_json::Error) -> MessageError {
    MessageError::Malformed(error.to_string())
}

// ---------------------------------------------------------------------------------------------
// Amounts: decimals on the wire, integer minor units in posbridge. Never a float in between.

/// The number of minor digits of the currencies posbridge may charge in (ISO 4217).
pub fn currency_minor_digits(currency: &str) -> Option<u8> {
    match currency {
        "BRL" | "EUR" | "USD" | "GBP" | "ARS" | "MXN" | "COP" | "PEN" | "UYU" | "CHF" | "AUD"
        | "CAD" => Some(2),
        "CLP" | "JPY" | "PYG" | "KRW" => Some(0),
        "BHD" | "KWD" | "JOD" | "OMR" | "TND" => Some(3),
        _ => None,
    }
}

/// A decimal amount as the JSON number token it travels as (e.g. `10.99`), kept as text so
/// no float ever touches money.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecimalAmount(String);

impl DecimalAmount {
    /// `minor_units` with `minor_digits` decimals: 1099 and 2 → `10.99`; 5 and 0 → `5`.
    pub fn from_minor_units(minor_units: u64, minor_digits: u8) -> DecimalAmount {
        let digits = minor_units.to_string();
        let width = usize::from(minor_digits);
        if width == 0 {
            return DecimalAmount(digits);
        }
        let padded = format!("{digits:0>len$}", len = width.saturating_add(1));
        let (whole, fraction) = padded.split_at(padded.len().saturating_sub(width));
        DecimalAmount(format!("{whole}.{fraction}"))
    }

    /// Back to minor units; `None` when the text is not a plain non-negative decimal or has
    /// more decimals than the currency allows (never rounded).
    pub fn to_minor_units(&self, minor_digits: u8) -> Option<u64> {
        let (whole, fraction) = self.0.split_once('.').unwrap_or((&self.0, ""));
        let all_digits = |text: &str| text.bytes().all(|byte| byte.is_ascii_digit());
        if whole.is_empty() || !all_digits(whole) || !all_digits(fraction) {
            return None;
        }
        let fraction = fraction.trim_end_matches('0');
        let width = usize::from(minor_digits);
        if fraction.len() > width {
            return None;
        }
        let scaled = format!("{whole}{fraction:0<width$}");
        scaled.parse().ok()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Serialize for DecimalAmount {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let number = RawValue::from_string(self.0.clone()).map_err(serde::ser::Error::custom)?;
        number.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for DecimalAmount {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        let text = raw.get();
        // Numbers only: a quoted amount is not what the Terminal API sends.
        if text
            .bytes()
            .all(|byte| byte.is_ascii_digit() || byte == b'.')
        {
            Ok(DecimalAmount(text.to_owned()))
        } else {
            Err(serde::de::Error::custom(format!(
                "amount {text} is not a plain decimal number"
            )))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The outer messages.

/// A clear `SaleToPOIRequest`: what posbridge sends, or a notification from the terminal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RequestFields")]
pub struct Request {
    #[serde(rename = "MessageHeader")]
    pub header: MessageHeader,
    #[serde(flatten)]
    pub body: RequestBody,
}

/// The body object of a `SaleToPOIRequest` as read: every kind optional, exactly one expected.
/// (Not `flatten` on reading: serde buffers flattened content and would turn the exact decimal
/// amounts into floats.)
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RequestFields {
    message_header: MessageHeader,
    payment_request: Option<PaymentRequest>,
    abort_request: Option<AbortRequest>,
    reversal_request: Option<ReversalRequest>,
    transaction_status_request: Option<TransactionStatusRequest>,
    diagnosis_request: Option<DiagnosisRequest>,
    event_notification: Option<EventNotification>,
    display_request: Option<DisplayRequest>,
}

impl TryFrom<RequestFields> for Request {
    type Error = MessageError;

    fn try_from(fields: RequestFields) -> Result<Request, MessageError> {
        let bodies = [
            fields.payment_request.map(RequestBody::PaymentRequest),
            fields.abort_request.map(RequestBody::AbortRequest),
            fields.reversal_request.map(RequestBody::ReversalRequest),
            fields
                .transaction_status_request
                .map(RequestBody::TransactionStatusRequest),
            fields.diagnosis_request.map(RequestBody::DiagnosisRequest),
            fields
                .event_notification
                .map(RequestBody::EventNotification),
            fields.display_request.map(RequestBody::DisplayRequest),
        ];
        let mut present = bodies.into_iter().flatten();
        match (present.next(), present.next()) {
            (Some(body), None) => Ok(Request {
                header: fields.message_header,
                body,
            }),
            (None, _) => Err(MessageError::UnknownBody(
                fields.message_header.message_category,
            )),
            (Some(_), Some(_)) => Err(MessageError::Malformed(
                "more than one message body in one SaleToPOIRequest".to_owned(),
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum RequestBody {
    PaymentRequest(PaymentRequest),
    AbortRequest(AbortRequest),
    ReversalRequest(ReversalRequest),
    TransactionStatusRequest(TransactionStatusRequest),
    DiagnosisRequest(DiagnosisRequest),
    EventNotification(EventNotification),
    DisplayRequest(DisplayRequest),
}

impl RequestBody {
    fn category(&self) -> MessageCategory {
        match self {
            RequestBody::PaymentRequest(_) => MessageCategory::Payment,
            RequestBody::AbortRequest(_) => MessageCategory::Abort,
            RequestBody::ReversalRequest(_) => MessageCategory::Reversal,
            RequestBody::TransactionStatusRequest(_) => MessageCategory::TransactionStatus,
            RequestBody::DiagnosisRequest(_) => MessageCategory::Diagnosis,
            RequestBody::EventNotification(_) => MessageCategory::Event,
            RequestBody::DisplayRequest(_) => MessageCategory::Display,
        }
    }
}

#[derive(Deserialize)]
struct RequestOuter {
    #[serde(rename = "SaleToPOIRequest")]
    request: Request,
}

#[derive(Serialize)]
struct RequestOuterRef<'a> {
    #[serde(rename = "SaleToPOIRequest")]
    request: &'a Request,
}

impl Request {
    /// A service request from posbridge, its header filled from the body's category.
    pub fn service(sale_id: &str, service_id: &str, poi_id: &str, body: RequestBody) -> Request {
        Request {
            header: MessageHeader::service_request(body.category(), sale_id, service_id, poi_id),
            body,
        }
    }

    /// The clear message, `{"SaleToPOIRequest": {...}}`: the plaintext to seal. Refuses a
    /// `ServiceID` the terminal would reject (empty or over 10 characters).
    pub fn to_json(&self) -> Result<Vec<u8>, MessageError> {
        if let Some(service_id) = &self.header.service_id
            && (service_id.is_empty() || service_id.chars().count() > SERVICE_ID_MAX_LEN)
        {
            return Err(MessageError::ServiceId(service_id.clone()));
        }
        serde_json::to_vec(&RequestOuterRef { request: self }).map_err(malformed)
    }

    /// Reads a clear `{"SaleToPOIRequest": {...}}` (what the terminal sends as a notification,
    /// or what a simulator receives).
    pub fn from_json(bytes: &[u8]) -> Result<Request, MessageError> {
        serde_json::from_slice::<RequestOuter>(bytes)
            .map(|outer| outer.request)
            .map_err(malformed)
    }
}

/// A clear `SaleToPOIResponse`: the terminal's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub header: MessageHeader,
    pub body: ResponseBody,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum ResponseBody {
    #[serde(rename = "PaymentResponse")]
    Payment(PaymentResponse),
    #[serde(rename = "ReversalResponse")]
    Reversal(ReversalResponse),
    #[serde(rename = "TransactionStatusResponse")]
    TransactionStatus(TransactionStatusResponse),
    #[serde(rename = "DiagnosisResponse")]
    Diagnosis(DiagnosisResponse),
    #[serde(rename = "DisplayResponse")]
    Display(DisplayResponse),
    #[serde(rename = "InputResponse")]
    Input(InputResponse),
    /// A kind posbridge does not use (stored value…): its `Response` only. Read, never written.
    #[serde(skip)]
    Other(ResponseStatus),
}

#[derive(Serialize)]
struct ResponseOuterRef<'a> {
    #[serde(rename = "SaleToPOIResponse")]
    response: ResponseRef<'a>,
}

#[derive(Serialize)]
struct ResponseRef<'a> {
    #[serde(rename = "MessageHeader")]
    header: &'a MessageHeader,
    #[serde(flatten)]
    body: &'a ResponseBody,
}

/// The body object of a `SaleToPOIResponse`, each member kept as its exact JSON text. (Not a
/// struct with `flatten`: serde buffers flattened content and would turn the exact decimal
/// amounts into floats.)
type ResponseFields = BTreeMap<String, Box<RawValue>>;

#[derive(Deserialize)]
struct ResponseOuter {
    #[serde(rename = "SaleToPOIResponse")]
    response: ResponseFields,
}

impl Response {
    /// Reads a clear `{"SaleToPOIResponse": {...}}` (e.g. an opened envelope's plaintext).
    pub fn from_json(bytes: &[u8]) -> Result<Response, MessageError> {
        let outer: ResponseOuter = serde_json::from_slice(bytes).map_err(malformed)?;
        Response::from_fields(outer.response)
    }

    /// The clear message, `{"SaleToPOIResponse": {...}}`, as a terminal (or its simulator)
    /// answers.
    pub fn to_json(&self) -> Result<Vec<u8>, MessageError> {
        serde_json::to_vec(&ResponseOuterRef {
            response: ResponseRef {
                header: &self.header,
                body: &self.body,
            },
        })
        .map_err(malformed)
    }

    /// Reads the inner object alone (`{"MessageHeader": …, "DiagnosisResponse": …}`).
    pub fn from_body_json(bytes: &[u8]) -> Result<Response, MessageError> {
        Response::from_fields(serde_json::from_slice(bytes).map_err(malformed)?)
    }

    fn from_fields(fields: ResponseFields) -> Result<Response, MessageError> {
        fn member<T: serde::de::DeserializeOwned>(
            name: &str,
            raw: &RawValue,
        ) -> Result<T, MessageError> {
            serde_json::from_str(raw.get())
                .map_err(|error| MessageError::Malformed(format!("{name}: {error}")))
        }
        let header: MessageHeader = fields
            .get("MessageHeader")
            .ok_or_else(|| MessageError::Malformed("missing field `MessageHeader`".to_owned()))
            .and_then(|raw| member("MessageHeader", raw))?;
        let mut bodies = fields
            .iter()
            .filter(|(name, _)| name.ends_with("Response"))
            .map(|(name, raw)| {
                Ok(match name.as_str() {
                    "PaymentResponse" => ResponseBody::Payment(member(name, raw)?),
                    "ReversalResponse" => ResponseBody::Reversal(member(name, raw)?),
                    "TransactionStatusResponse" => {
                        ResponseBody::TransactionStatus(member(name, raw)?)
                    }
                    "DiagnosisResponse" => ResponseBody::Diagnosis(member(name, raw)?),
                    "DisplayResponse" => ResponseBody::Display(member(name, raw)?),
                    "InputResponse" => ResponseBody::Input(member(name, raw)?),
                    _ => ResponseBody::Other(member::<OtherResponse>(name, raw)?.response),
                })
            });
        match (bodies.next(), bodies.next()) {
            (Some(body), None) => Ok(Response {
                header,
                body: body?,
            }),
            (None, _) => Err(MessageError::UnknownBody(header.message_category)),
            (Some(_), Some(_)) => Err(MessageError::Malformed(
                "more than one message body in one SaleToPOIResponse".to_owned(),
            )),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct OtherResponse {
    #[serde(default)]
    response: ResponseStatus,
}

/// A clear message from the terminal: its answer, or a request of its own (an event such as the
/// `Reject` of a request it could not read, a display).
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    Response(Response),
    Request(Request),
}

impl Incoming {
    /// Reads `{"SaleToPOIResponse": …}` or `{"SaleToPOIRequest": …}`.
    pub fn from_json(bytes: &[u8]) -> Result<Incoming, MessageError> {
        #[derive(Deserialize)]
        enum Outer {
            #[serde(rename = "SaleToPOIResponse")]
            Response(Box<ResponseFields>),
            #[serde(rename = "SaleToPOIRequest")]
            Request(Box<Request>),
        }
        match serde_json::from_slice(bytes).map_err(malformed)? {
            Outer::Response(fields) => Response::from_fields(*fields).map(Incoming::Response),
            Outer::Request(request) => Ok(Incoming::Request(*request)),
        }
    }
}

/// In local mode the terminal acknowledges some requests (an abort, an asynchronous payment)
/// with a bare `ok` or an empty body instead of a message.
pub fn is_acknowledgement(body: &[u8]) -> bool {
    let trimmed = body.trim_ascii();
    trimmed.is_empty() || trimmed == b"ok"
}

// ---------------------------------------------------------------------------------------------
// Shared pieces.

/// `TransactionID` + `TimeStamp` (ISO 8601, passed through as text).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TransactionIdentification {
    #[serde(rename = "TransactionID")]
    pub transaction_id: String,
    pub time_stamp: String,
}

/// Names an earlier message: what an abort or a status request is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MessageReference {
    pub message_category: MessageCategory,
    #[serde(rename = "ServiceID", default, skip_serializing_if = "Option::is_none")]
    pub service_id: Option<String>,
    #[serde(rename = "DeviceID", default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    #[serde(rename = "SaleID", default, skip_serializing_if = "Option::is_none")]
    pub sale_id: Option<String>,
    #[serde(rename = "POIID", default, skip_serializing_if = "Option::is_none")]
    pub poi_id: Option<String>,
}

impl MessageReference {
    /// The payment posbridge sent as `service_id` from `sale_id`.
    pub fn payment(sale_id: &str, service_id: &str) -> MessageReference {
        MessageReference {
            message_category: MessageCategory::Payment,
            service_id: Some(service_id.to_owned()),
            device_id: None,
            sale_id: Some(sale_id.to_owned()),
            poi_id: None,
        }
    }
}

/// `Response`: the outcome of any request.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ResponseStatus {
    pub result: ResultCode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_condition: Option<ErrorCondition>,
    /// Adyen's extra data, URL-encoded `key=value&…`: see [`ResponseStatus::additional`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_response: Option<String>,
}

impl ResponseStatus {
    /// The decoded `key=value` pairs of `AdditionalResponse`, in order.
    pub fn additional(&self) -> Vec<(String, String)> {
        self.additional_response
            .as_deref()
            .map(form_pairs)
            .unwrap_or_default()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ResultCode {
    Success,
    Failure,
    Partial,
    #[default]
    #[serde(other)]
    Unknown,
}

/// Why a request failed (nexo `ErrorCondition`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCondition {
    Aborted,
    Busy,
    Cancel,
    DeviceOut,
    InProgress,
    InsertedCard,
    InvalidCard,
    LoggedOut,
    MessageFormat,
    NotAllowed,
    NotFound,
    PaymentRestriction,
    Refusal,
    UnavailableDevice,
    UnavailableService,
    UnreachableHost,
    #[serde(rename = "WrongPIN")]
    WrongPin,
    #[serde(other)]
    Unknown,
}

/// Decodes `application/x-www-form-urlencoded` pairs, as Adyen writes `AdditionalResponse`,
/// receipt lines and event details (`+` is a space, `%xx` a byte; bad escapes stay as they are).
pub fn form_pairs(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (form_decode(key), form_decode(value))
        })
        .collect()
}

fn form_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        let escaped = (byte == b'%')
            .then(|| bytes.get(index + 1..index + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match (byte, escaped) {
            (_, Some(value)) => {
                decoded.push(value);
                index += 3;
            }
            (b'+', None) => {
                decoded.push(b' ');
                index += 1;
            }
            (other, None) => {
                decoded.push(other);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// Text for a display or a receipt.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct OutputContent {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_format: Option<String>,
    /// A message the terminal names rather than spells: Adyen's display notifications carry
    /// their `event` here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predefined_content: Option<PredefinedContent>,
    #[serde(default)]
    pub output_text: Vec<OutputText>,
}

/// A predefined message: Adyen writes its `ReferenceID` form-encoded, e.g.
/// `TransactionID=oLkO001517998574000&TimeStamp=2018-02-07T10%3A16%3A14.000Z&event=WAIT_FOR_PIN`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PredefinedContent {
    #[serde(rename = "ReferenceID")]
    pub reference_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
}

impl PredefinedContent {
    /// The display event it names (`WAIT_FOR_PIN`): the `event` pair, or the whole reference
    /// when it is not form-encoded.
    pub fn event(&self) -> Option<String> {
        if !self.reference_id.contains('=') {
            let reference = self.reference_id.trim();
            return (!reference.is_empty()).then(|| reference.to_owned());
        }
        form_pairs(&self.reference_id)
            .into_iter()
            .find(|(key, value)| key == "event" && !value.is_empty())
            .map(|(_, value)| value)
    }
}

/// A display event's name in words: `WAIT_FOR_PIN` → `Wait for PIN`.
fn event_words(event: &str) -> String {
    let words: Vec<String> = event
        .split('_')
        .filter(|word| !word.is_empty())
        .enumerate()
        .map(|(index, word)| match word {
            "PIN" | "DCC" | "CVC" => word.to_owned(),
            _ if index == 0 => {
                let lower = word.to_lowercase();
                let mut chars = lower.chars();
                chars
                    .next()
                    .map(|first| first.to_uppercase().chain(chars).collect())
                    .unwrap_or_default()
            }
            _ => word.to_lowercase(),
        })
        .collect();
    words.join(" ")
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct OutputText {
    pub text: String,
}

impl OutputContent {
    /// The lines as shown: plain text as is; with no text, the predefined message's event in
    /// words.
    pub fn plain_lines(&self) -> Vec<String> {
        let lines: Vec<String> = self
            .output_text
            .iter()
            .map(|line| line.text.clone())
            .filter(|text| !text.trim().is_empty())
            .collect();
        if !lines.is_empty() {
            return lines;
        }
        self.predefined_content
            .as_ref()
            .and_then(PredefinedContent::event)
            .map(|event| vec![event_words(&event)])
            .unwrap_or_default()
    }
}

/// What the terminal shows on one of its displays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DisplayOutput {
    pub device: String,
    pub info_qualify: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_content: Option<OutputContent>,
}

impl DisplayOutput {
    /// The text of this output, as prompt lines for the Payment App feed.
    pub fn prompt_lines(&self) -> Vec<String> {
        self.output_content
            .as_ref()
            .map(OutputContent::plain_lines)
            .unwrap_or_default()
    }
}

// ---------------------------------------------------------------------------------------------
// Payment.

/// What posbridge asks the terminal to charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentInput {
    /// The sale's own id (`SaleTransactionID.TransactionID`).
    pub transaction_id: String,
    /// When the sale started, ISO 8601 (`SaleTransactionID.TimeStamp`).
    pub timestamp: String,
    /// ISO 4217 alphabetic code, e.g. `BRL`.
    pub currency: String,
    pub amount_minor_units: u64,
    pub method: PaymentMethod,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentMethod {
    /// `Venda Direta Debito`.
    Debit,
    /// `Venda Direta Credito`, in `installments` equal monthly payments (1 = paid at once).
    Credit { installments: u32 },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PaymentRequest {
    pub sale_data: SaleData,
    pub payment_transaction: PaymentTransaction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_data: Option<PaymentData>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SaleData {
    #[serde(rename = "SaleTransactionID")]
    pub sale_transaction_id: TransactionIdentification,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PaymentTransaction {
    pub amounts_req: AmountsReq,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_conditions: Option<TransactionConditions>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AmountsReq {
    pub currency: String,
    pub requested_amount: DecimalAmount,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TransactionConditions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debit_preferred_flag: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PaymentData {
    pub payment_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instalment: Option<Instalment>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Instalment {
    pub instalment_type: String,
    pub sequence_number: u32,
    pub period: u32,
    pub period_unit: String,
    #[serde(rename = "TotalNbOfPayments")]
    pub total_nb_of_payments: u32,
}

impl PaymentRequest {
    pub fn new(input: &PaymentInput) -> Result<PaymentRequest, MessageError> {
        let digits = currency_minor_digits(&input.currency)
            .ok_or_else(|| MessageError::UnknownCurrency(input.currency.clone()))?;
        let (transaction_conditions, payment_data) = match input.method {
            PaymentMethod::Debit => (
                Some(TransactionConditions {
                    debit_preferred_flag: Some(true),
                }),
                None,
            ),
            PaymentMethod::Credit { installments } if installments > 1 => (
                None,
                Some(PaymentData {
                    payment_type: "Instalment".to_owned(),
                    instalment: Some(Instalment {
                        instalment_type: "EqualInstalments".to_owned(),
                        sequence_number: 1,
                        period: 1,
                        period_unit: "Monthly".to_owned(),
                        total_nb_of_payments: installments,
                    }),
                }),
            ),
            PaymentMethod::Credit { .. } => (None, None),
        };
        Ok(PaymentRequest {
            sale_data: SaleData {
                sale_transaction_id: TransactionIdentification {
                    transaction_id: input.transaction_id.clone(),
                    time_stamp: input.timestamp.clone(),
                },
            },
            payment_transaction: PaymentTransaction {
                amounts_req: AmountsReq {
                    currency: input.currency.clone(),
                    requested_amount: DecimalAmount::from_minor_units(
                        input.amount_minor_units,
                        digits,
                    ),
                },
                transaction_conditions,
            },
            payment_data,
        })
    }
}

/// The terminal's answer to a payment (or the one repeated by a status request).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PaymentResponse {
    pub response: ResponseStatus,
    #[serde(rename = "POIData", default, skip_serializing_if = "Option::is_none")]
    pub poi_data: Option<PoiData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sale_data: Option<SaleData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_result: Option<PaymentResult>,
    #[serde(default)]
    pub payment_receipt: Vec<PaymentReceipt>,
}

impl PaymentResponse {
    pub fn approval_code(&self) -> Option<&str> {
        self.payment_result
            .as_ref()?
            .payment_acquirer_data
            .as_ref()?
            .approval_code
            .as_deref()
    }

    pub fn poi_transaction(&self) -> Option<&TransactionIdentification> {
        Some(&self.poi_data.as_ref()?.poi_transaction_id)
    }

    pub fn card(&self) -> Option<&CardData> {
        self.payment_result
            .as_ref()?
            .payment_instrument_data
            .as_ref()?
            .card_data
            .as_ref()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoiData {
    #[serde(rename = "POITransactionID")]
    pub poi_transaction_id: TransactionIdentification,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PaymentResult {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_acquirer_data: Option<PaymentAcquirerData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_instrument_data: Option<PaymentInstrumentData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amounts_resp: Option<AmountsResp>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PaymentAcquirerData {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_code: Option<String>,
    #[serde(
        rename = "AcquirerTransactionID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub acquirer_transaction_id: Option<TransactionIdentification>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AmountsResp {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    pub authorized_amount: DecimalAmount,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PaymentInstrumentData {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_data: Option<CardData>,
}

/// The card, as far as posbridge may keep it: the brand and the first 6 / last 4 digits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CardData {
    /// Adyen's brand code, e.g. `mc`, `visa`, `elo`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_brand: Option<String>,
    #[serde(
        default,
        deserialize_with = "masked_pan",
        serialize_with = "masked_pan_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub masked_pan: Option<MaskedPan>,
}

/// The first 6 and last 4 digits of a card number; nothing else of it is ever kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaskedPan {
    first6: String,
    last4: String,
}

impl MaskedPan {
    /// From Adyen's `541333 **** 0010` (or any text that starts with 6 digits and ends with
    /// 4, even a full number: only those 10 digits are kept).
    pub fn parse(text: &str) -> Option<MaskedPan> {
        let first6: String = text
            .chars()
            .take_while(char::is_ascii_digit)
            .take(6)
            .collect();
        let last4_reversed: String = text
            .chars()
            .rev()
            .take_while(char::is_ascii_digit)
            .take(4)
            .collect();
        (first6.len() == 6 && last4_reversed.len() == 4).then(|| MaskedPan {
            first6,
            last4: last4_reversed.chars().rev().collect(),
        })
    }

    pub fn first6(&self) -> &str {
        &self.first6
    }

    pub fn last4(&self) -> &str {
        &self.last4
    }
}

impl fmt::Display for MaskedPan {
    /// As Adyen writes it: `541333 **** 0010`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} **** {}", self.first6, self.last4)
    }
}

fn masked_pan_text<S: serde::Serializer>(
    pan: &Option<MaskedPan>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match pan {
        Some(pan) => serializer.collect_str(pan),
        None => serializer.serialize_none(),
    }
}

fn masked_pan<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<MaskedPan>, D::Error> {
    let text = Option::<String>::deserialize(deserializer)?;
    Ok(text.as_deref().and_then(MaskedPan::parse))
}

/// A receipt the terminal composed (`CashierReceipt`, `CustomerReceipt`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PaymentReceipt {
    pub document_qualifier: String,
    #[serde(default)]
    pub required_signature_flag: bool,
    #[serde(default)]
    pub output_content: OutputContent,
}

impl PaymentReceipt {
    /// The receipt as printable lines. Adyen writes each line URL-encoded as
    /// `name=Date&value=08%2f05%2f19&key=txdate`: shown as `Date: 08/05/19`, a line with only a
    /// name as that name, and one with neither (`key=filler`) as an empty line. Lines that are
    /// not in that form are kept as they are. Terminals print card numbers masked already;
    /// should one not, any run of 13 or more digits keeps only its first 6 and last 4.
    pub fn lines(&self) -> Vec<String> {
        self.output_content
            .output_text
            .iter()
            .map(|line| mask_card_numbers(&receipt_line(&line.text)))
            .collect()
    }
}

/// The shortest card number (ISO/IEC 7812): shorter digit runs are dates, amounts, codes.
const SHORTEST_CARD_NUMBER: usize = 13;

fn mask_card_numbers(line: &str) -> String {
    let mut masked = String::with_capacity(line.len());
    let mut digits = String::new();
    let flush = |digits: &mut String, masked: &mut String| {
        if digits.len() >= SHORTEST_CARD_NUMBER {
            let hidden = digits.len() - 10;
            masked.extend(digits.chars().take(6));
            masked.extend(std::iter::repeat_n('*', hidden));
            masked.extend(digits.chars().skip(6 + hidden));
        } else {
            masked.push_str(digits);
        }
        digits.clear();
    };
    for character in line.chars() {
        if character.is_ascii_digit() {
            digits.push(character);
        } else {
            flush(&mut digits, &mut masked);
            masked.push(character);
        }
    }
    flush(&mut digits, &mut masked);
    masked
}

fn receipt_line(text: &str) -> String {
    let pairs = form_pairs(text);
    if !text.contains('=') || !pairs.iter().any(|(key, _)| key == "key" || key == "name") {
        return text.to_owned();
    }
    let field = |wanted: &str| {
        pairs
            .iter()
            .find(|(key, _)| key == wanted)
            .map(|(_, value)| value.as_str())
    };
    match (field("name"), field("value")) {
        (Some(name), Some(value)) => format!("{name}: {value}"),
        (Some(name), None) => name.to_owned(),
        (None, Some(value)) => value.to_owned(),
        (None, None) => String::new(),
    }
}

// ---------------------------------------------------------------------------------------------
// Abort, reversal, transaction status, diagnosis.

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AbortRequest {
    pub message_reference: MessageReference,
    /// Free text; posbridge sends `MerchantAbort`.
    pub abort_reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReversalRequest {
    #[serde(rename = "OriginalPOITransaction")]
    pub original_poi_transaction: OriginalPoiTransaction,
    /// `MerchantCancel` when the store cancels an approved payment.
    pub reversal_reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OriginalPoiTransaction {
    #[serde(rename = "POITransactionID")]
    pub poi_transaction_id: TransactionIdentification,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReversalResponse {
    pub response: ResponseStatus,
    #[serde(rename = "POIData", default, skip_serializing_if = "Option::is_none")]
    pub poi_data: Option<PoiData>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TransactionStatusRequest {
    pub message_reference: MessageReference,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TransactionStatusResponse {
    pub response: ResponseStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_reference: Option<MessageReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeated_message_response: Option<Box<RepeatedMessageResponse>>,
}

/// What a status request learned about the payment it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentStatus<'a> {
    /// Still running: ask again later.
    InProgress,
    /// The terminal never saw that payment: it was not charged.
    NotFound,
    /// The payment's own answer.
    Found(&'a PaymentResponse),
    /// Any other answer: the outcome stays unknown.
    Unclear,
}

impl TransactionStatusResponse {
    pub fn payment_status(&self) -> PaymentStatus<'_> {
        match (self.response.result, self.response.error_condition) {
            (_, Some(ErrorCondition::InProgress)) => PaymentStatus::InProgress,
            (ResultCode::Failure, Some(ErrorCondition::NotFound)) => PaymentStatus::NotFound,
            (ResultCode::Success, _) => self
                .repeated_message_response
                .as_ref()
                .and_then(|repeated| {
                    repeated
                        .repeated_response_message_body
                        .payment_response
                        .as_ref()
                })
                .map_or(PaymentStatus::Unclear, PaymentStatus::Found),
            _ => PaymentStatus::Unclear,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RepeatedMessageResponse {
    pub message_header: MessageHeader,
    pub repeated_response_message_body: RepeatedResponseMessageBody,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RepeatedResponseMessageBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_response: Option<PaymentResponse>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reversal_response: Option<ReversalResponse>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DiagnosisRequest {
    /// Also check the terminal's link to Adyen's host.
    #[serde(default)]
    pub host_diagnosis_flag: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DiagnosisResponse {
    pub response: ResponseStatus,
    #[serde(rename = "POIStatus", default, skip_serializing_if = "Option::is_none")]
    pub poi_status: Option<PoiStatus>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PoiStatus {
    /// `OK`, `Busy`, `Maintenance` or `Unreachable`.
    pub global_status: String,
}

// ---------------------------------------------------------------------------------------------
// What the terminal shows: events and displays, prompts on the Payment App feed.

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EventNotification {
    pub time_stamp: String,
    /// E.g. `Reject` (a request it could not read), `BeginMaintenance`, `Shutdown`.
    pub event_to_notify: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_details: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected_message: Option<String>,
    /// An array in nexo's data dictionary, a single object in Adyen's own examples: either
    /// reads.
    #[serde(
        default,
        deserialize_with = "one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub display_output: Vec<DisplayOutput>,
}

/// A member that may be one object or an array of them.
fn one_or_many<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<DisplayOutput>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(DisplayOutput),
        Many(Vec<DisplayOutput>),
    }
    Ok(match OneOrMany::deserialize(deserializer)? {
        OneOrMany::One(output) => vec![output],
        OneOrMany::Many(outputs) => outputs,
    })
}

impl EventNotification {
    /// The event as prompt lines: its display text, else its decoded details.
    pub fn prompt_lines(&self) -> Vec<String> {
        let shown: Vec<String> = self
            .display_output
            .iter()
            .flat_map(DisplayOutput::prompt_lines)
            .collect();
        if !shown.is_empty() {
            return shown;
        }
        let details = self.event_details.as_deref().map(|details| {
            form_pairs(details)
                .into_iter()
                .map(|(key, value)| if value.is_empty() { key } else { value })
                .collect::<Vec<_>>()
                .join(" ")
        });
        vec![details.unwrap_or_else(|| self.event_to_notify.clone())]
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DisplayRequest {
    pub display_output: Vec<DisplayOutput>,
}

impl DisplayRequest {
    pub fn prompt_lines(&self) -> Vec<String> {
        self.display_output
            .iter()
            .flat_map(DisplayOutput::prompt_lines)
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DisplayResponse {
    #[serde(default)]
    pub output_result: Vec<OutputResult>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct OutputResult {
    pub device: String,
    pub info_qualify: String,
    pub response: ResponseStatus,
}

// ---------------------------------------------------------------------------------------------
// Session and nexo security structures posbridge does not send (Adyen's local mode needs no
// login and uses its own envelope), read so Adyen's fixtures are understood; only what is there
// to check is typed.

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LoginRequest {
    pub date_time: String,
    pub sale_software: SaleSoftware,
    pub sale_terminal_data: Option<SaleTerminalData>,
    #[serde(rename = "POISerialNumber")]
    pub poi_serial_number: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SaleSoftware {
    #[serde(rename = "ManufacturerID")]
    pub manufacturer_id: String,
    pub application_name: String,
    pub software_version: String,
    pub certification_code: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SaleTerminalData {
    #[serde(default)]
    pub sale_capabilities: Vec<String>,
    pub terminal_environment: Option<String>,
    #[serde(rename = "TotalsGroupID")]
    pub totals_group_id: Option<String>,
}

/// nexo's CMS-style `AuthenticatedData` (MAC over content under a transported key).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AuthenticatedData {
    // Declared in the order Adyen's libraries check them: serde names the first missing field
    // in declaration order, so a message missing several is refused for the same one.
    /// Spelled in camel case by Adyen's libraries, unlike every other name.
    #[serde(rename = "keyTransportOrKEK", default)]
    pub key_transport_or_kek: Vec<serde_json::Value>,
    #[serde(rename = "MACAlgorithm")]
    pub mac_algorithm: AlgorithmIdentifier,
    pub encapsulated_content: EncapsulatedContent,
    /// Base64.
    #[serde(rename = "MAC")]
    pub mac: String,
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AlgorithmIdentifier {
    pub algorithm: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EncapsulatedContent {
    pub content_type: String,
    /// Base64.
    pub content: String,
}

/// The terminal's answer to a customer input request (unused by posbridge; its outcome only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InputResponse {
    pub input_result: InputResult,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InputResult {
    pub device: String,
    pub info_qualify: String,
    pub response: ResponseStatus,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minor_units_become_exact_decimals_and_back() {
        for (minor, digits, text) in [
            (1099, 2, "10.99"),
            (5, 2, "0.05"),
            (100, 2, "1.00"),
            (0, 2, "0.00"),
            (1234, 0, "1234"),
            (1, 3, "0.001"),
            (u64::MAX, 2, "184467440737095516.15"),
        ] {
            let amount = DecimalAmount::from_minor_units(minor, digits);
            assert_eq!(amount.as_str(), text);
            assert_eq!(amount.to_minor_units(digits), Some(minor), "{text}");
        }
        assert_eq!(DecimalAmount("1".into()).to_minor_units(2), Some(100));
        assert_eq!(DecimalAmount("48.3".into()).to_minor_units(2), Some(4830));
        assert_eq!(DecimalAmount("0.001".into()).to_minor_units(2), None);
        assert_eq!(DecimalAmount("1e3".into()).to_minor_units(2), None);
        assert_eq!(DecimalAmount(".5".into()).to_minor_units(2), None);
    }

    #[test]
    fn masked_pan_keeps_first_six_and_last_four_only() {
        let pan = MaskedPan::parse("541333 **** 0010").unwrap();
        assert_eq!((pan.first6(), pan.last4()), ("541333", "0010"));
        let full = MaskedPan::parse("4111111111111111").unwrap();
        assert_eq!((full.first6(), full.last4()), ("411111", "1111"));
        assert_eq!(
            format!("{full:?}"),
            r#"MaskedPan { first6: "411111", last4: "1111" }"#
        );
        assert_eq!(MaskedPan::parse("**** 0010"), None);
    }

    #[test]
    fn form_decoding_follows_adyens_encoding() {
        assert_eq!(
            form_pairs("name=Card&value=%2a%2a0010&key=pan"),
            vec![
                ("name".to_owned(), "Card".to_owned()),
                ("value".to_owned(), "**0010".to_owned()),
                ("key".to_owned(), "pan".to_owned()),
            ]
        );
        assert_eq!(form_decode("a+b%20c%zz%4"), "a b c%zz%4");
        assert_eq!(receipt_line("key=filler"), "");
        assert_eq!(
            receipt_line("name=MERCHANT%20COPY&key=merchantTitle"),
            "MERCHANT COPY"
        );
        assert_eq!(receipt_line("Plain text"), "Plain text");
    }

    #[test]
    fn receipt_lines_never_show_a_whole_card_number() {
        assert_eq!(
            mask_card_numbers("Card 4111111111111111 ok"),
            "Card 411111******1111 ok"
        );
        assert_eq!(mask_card_numbers("5555555555554444"), "555555******4444");
        assert_eq!(mask_card_numbers("Tel 123456789012"), "Tel 123456789012");
        assert_eq!(mask_card_numbers("08/05/19 15:25"), "08/05/19 15:25");
    }
}
