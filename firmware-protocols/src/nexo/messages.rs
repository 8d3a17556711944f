//! The clear Terminal API messages (the JSON rendering of nexo), with Adyen's PascalCase names.
//!
//! Reading is lenient where the protocol grows (unknown fields are ignored, unknown enumeration
//! values read as `Unknown`) and strict where posbridge relies on a field: a missing mandatory
//! field is an error that names it.

use serde::{Deserialize, Serialize};

/// The nexo protocol version posbridge speaks.
pub const PROTOCOL_VERSION: &str = "3.0";

/// The header of every message, also sent in clear outside the encrypted blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MessageHeader {
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
