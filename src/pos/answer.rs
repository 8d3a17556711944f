//! A payment's answer, in the shape and field names of the PPP spec: the Create answer, and
//! once final, frozen and sent as the callback body, so both are one value. What a Create
//! answers while the payment is not final ([`NextStep`]) is the engine's; which Payment App
//! to open and its addresses are the edge's (`ppp`).
//!
//! The answer of a final payment is frozen the moment it becomes final (stored with it, in the
//! transaction that queues its callback): every later Create replays it and the callback
//! carries it, so the two can never disagree and a final answer never changes. A payment
//! approved and later cancelled keeps answering `approved` (the authorization happened; the
//! cancellation is answered by the cancellation endpoint, with its `cancellationId`).

use serde::{Deserialize, Serialize};

use crate::payment::{Payment, PaymentState, PppStatus};
use crate::store::StoreError;

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

    /// The JSON stored as the frozen answer and sent as the callback body. A failure is an
    /// error of the transaction: a payment never becomes final with an empty answer.
    pub fn to_json(&self) -> Result<String, StoreError> {
        serde_json::to_string(self).map_err(|e| StoreError::Encode {
            what: "a payment's answer",
            source: std::sync::Arc::new(e),
        })
    }
}

/// A payment as a Create (or a status request) finds it, and what its caller must do next.
#[derive(Debug, Clone)]
pub struct PaymentReply {
    /// The row the reply was made from (for one answered from memory, `kept_replies`, as read
    /// when kept: unchanged since). A final payment's answer is its frozen one (`next`).
    pub payment: Payment,
    pub next: NextStep,
}

/// What the caller of a Create must do next.
#[derive(Debug, Clone, PartialEq)]
pub enum NextStep {
    /// The payment is final: its frozen answer, always the same.
    Final(Box<PaymentAnswer>),
    /// Undefined until a terminal is named (the terminal connector app's submitUrl).
    NameTerminal,
    /// Undefined while the terminal works: the app that waits for the result.
    AwaitResult,
    /// Undefined, with no app to open: the result comes by callback (the Test Suite's
    /// asynchronous cards).
    AwaitCallback,
}

impl PaymentReply {
    /// `first_call`: the Create that stored the payment (answered undefined when the payment
    /// says so, even if final).
    pub fn of(payment: Payment, first_call: bool) -> Self {
        let undefined_first = first_call && payment.first_answer_undefined;
        let next = match PaymentAnswer::final_of(&payment) {
            Some(frozen) if !undefined_first => NextStep::Final(Box::new(frozen)),
            _ if payment.terminal_id.is_none() && payment.state != PaymentState::Received => {
                NextStep::AwaitCallback
            }
            _ if payment.state == PaymentState::Received => NextStep::NameTerminal,
            _ => NextStep::AwaitResult,
        };
        Self { payment, next }
    }
}
