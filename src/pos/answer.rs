//! What the engine answers, in the shapes and field names of the PPP spec. The Create answer is
//! also the callback body, so both are built here, once.
//!
//! The answer of a final payment is frozen the moment it becomes final (stored with it, in the
//! transaction that queues its callback): every later Create replays it and the callback
//! carries it, so the two can never disagree and a final answer never changes. A payment
//! approved and later cancelled keeps answering `approved` (the authorization happened; the
//! cancellation is answered by the cancellation endpoint, with its `cancellationId`).

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::state::PppStatus;
use crate::store::payments::Payment;

pub const TERMINAL_CONNECTOR_APP: &str = "vtex.terminal-connector-app";
pub const WAIT_FOR_CONFIRMATION_APP: &str = "vtex.challenge-wait-for-confirmation";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PaymentAppData {
    pub app_name: String,
    /// A JSON document serialized into a string, as the Payment App expects.
    pub payload: String,
}

/// The Create Payment answer (`Success-Approved`), and the callback body once final.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PaymentAnswer {
    pub payment_id: String,
    pub status: PppStatus,
    pub authorization_id: Option<String>,
    pub tid: String,
    pub nsu: Option<String>,
    pub acquirer: Option<String>,
    pub code: Option<String>,
    pub message: Option<String>,
    pub delay_to_auto_settle: u32,
    pub delay_to_auto_settle_after_antifraud: u32,
    pub delay_to_cancel: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_app_data: Option<PaymentAppData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_brand: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_digits: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_digits: Option<String>,
}

impl PaymentAnswer {
    /// The answer for a payment in `status`, with the Payment App to open while undefined.
    pub fn of(p: &Payment, status: PppStatus, app: Option<PaymentAppData>) -> Self {
        let final_ = status != PppStatus::Undefined;
        let sale = &p.sale;
        let keep = |v: &Option<String>| if final_ { v.clone() } else { None };
        Self {
            payment_id: p.vtex_payment_id().to_string(),
            status,
            authorization_id: if status == PppStatus::Approved {
                sale.authorization_id.clone()
            } else {
                None
            },
            tid: p.tid.clone(),
            nsu: keep(&sale.nsu),
            acquirer: keep(&sale.acquirer),
            code: keep(&sale.code),
            message: keep(&sale.message),
            delay_to_auto_settle: p.delays.delay_to_auto_settle,
            delay_to_auto_settle_after_antifraud: p.delays.delay_to_auto_settle_after_antifraud,
            delay_to_cancel: p.delays.delay_to_cancel,
            payment_app_data: if final_ { None } else { app },
            card_brand: keep(&sale.card_brand),
            first_digits: keep(&sale.first_digits),
            last_digits: keep(&sale.last_digits),
        }
    }

    /// The final answer of a payment that is final: the frozen one, or (for a row written
    /// before answers were frozen) the one its state gives.
    pub fn final_of(p: &Payment) -> Option<Self> {
        if !p.state.is_final() {
            return None;
        }
        let frozen = p
            .final_answer
            .as_deref()
            .and_then(|json| serde_json::from_str(json).ok());
        Some(frozen.unwrap_or_else(|| Self::of(p, p.state.ppp_status(), None)))
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

pub fn terminal_connector_app(submit_url: &str) -> PaymentAppData {
    PaymentAppData {
        app_name: TERMINAL_CONNECTOR_APP.into(),
        payload: json!({ "submitUrl": submit_url }).to_string(),
    }
}

pub fn wait_for_confirmation_app(seconds_waiting: u32) -> PaymentAppData {
    PaymentAppData {
        app_name: WAIT_FOR_CONFIRMATION_APP.into(),
        payload: json!({ "secondsWaiting": seconds_waiting }).to_string(),
    }
}

/// A partner's Payment App: what the wait app gets, plus the live terminal feed.
pub fn custom_app(
    app_name: &str,
    payment_id: &str,
    seconds_waiting: u32,
    ws_url: &str,
) -> PaymentAppData {
    PaymentAppData {
        app_name: app_name.into(),
        payload: json!({
            "paymentId": payment_id, "secondsWaiting": seconds_waiting, "wsUrl": ws_url,
        })
        .to_string(),
    }
}
