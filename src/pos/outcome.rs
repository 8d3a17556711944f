//! What cancel, settle and refund came to, as the engine decides it. The edge renders an
//! outcome as an answer (status code and body, [`RenderOperations`]); a final one is stored
//! as rendered and replayed for the same `requestId`, so a replay is byte for byte the first
//! answer, even one stored by an earlier release.

use serde_json::Value;

use crate::money::{Currency, MoneyError};

/// An operation's answer as the edge rendered it: what is stored and replayed.
#[derive(Debug, Clone, PartialEq)]
pub struct OperationAnswer {
    pub http_status: u16,
    pub body: Value,
    /// Final answers are stored and replayed for the same `requestId`.
    pub is_final: bool,
}

/// How the edge answers each outcome. The engine holds one to store final answers (including
/// the Payment App's cancel, which no PPP handler sees).
pub trait RenderOperations: Send + Sync {
    fn cancel(
        &self,
        payment_id: &str,
        request_id: &str,
        outcome: &CancelOutcome,
    ) -> OperationAnswer;
    fn settle(
        &self,
        payment_id: &str,
        request_id: &str,
        outcome: &SettleOutcome,
    ) -> OperationAnswer;
    fn refund(
        &self,
        payment_id: &str,
        request_id: &str,
        outcome: &RefundOutcome,
    ) -> OperationAnswer;
}

/// An operation's reply: decided now, or the stored answer of the same request.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply<O> {
    Decided(O),
    Replayed(OperationAnswer),
}

/// Why a settle or refund `value` is refused before anything is looked at.
#[derive(Debug, Clone, PartialEq)]
pub enum ValueProblem {
    NotPositive,
    Unreadable(MoneyError),
}

#[derive(Debug, Clone, PartialEq)]
pub enum CancelOutcome {
    /// Nothing was charged, or it was given back.
    Cancelled { cancellation_id: String },
    /// A settled payment is refunded, not cancelled.
    AlreadySettled,
    /// The terminal cannot reverse this sale: a person must.
    CancelManually { reason: String },
    /// The terminal refused the reversal; a retry asks again.
    Failed { reason: String },
    /// The terminal has not confirmed the cancellation yet; a retry looks again.
    Pending,
}

impl CancelOutcome {
    /// A final outcome never changes: it is stored and replayed.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            Self::Cancelled { .. } | Self::AlreadySettled | Self::CancelManually { .. }
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettleRefusal {
    /// Cancelled, or its cancellation is under way.
    PaymentCancelled,
    NotApproved,
    /// Settled before for another value.
    Conflict,
    ExceedsAuthorized,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SettleOutcome {
    Settled {
        settle_id: String,
        value_minor: i64,
        currency: Currency,
    },
    InvalidValue(ValueProblem),
    Refused {
        reason: SettleRefusal,
        message: String,
    },
    /// The terminal is still returning the unsettled part; a retry looks again.
    Pending,
}

impl SettleOutcome {
    pub fn is_final(&self) -> bool {
        matches!(self, Self::Settled { .. })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundRefusal {
    /// Cancelled, or its cancellation is under way.
    PaymentCancelled,
    NotSettled,
    ExceedsSettled,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RefundOutcome {
    Refunded {
        refund_id: String,
        value_minor: i64,
        currency: Currency,
    },
    InvalidValue(ValueProblem),
    Refused {
        reason: RefundRefusal,
        message: String,
    },
    /// The terminal cannot refund this sale: a person must.
    RefundManually {
        reason: String,
    },
    /// The terminal refused the refund; a retry asks again.
    Failed {
        reason: String,
    },
    /// The terminal is still working on the refund; a retry looks again.
    Pending,
}

impl RefundOutcome {
    pub fn is_final(&self) -> bool {
        matches!(self, Self::Refunded { .. } | Self::RefundManually { .. })
    }
}

/// A rendering for the engine's own tests: each outcome's `Debug` as the body, so a replay can be
/// compared with the outcome it replays without the PPP shapes (which `ppp` owns and tests).
#[cfg(test)]
pub(crate) struct DebugAnswers;

#[cfg(test)]
impl DebugAnswers {
    fn answer(outcome: &impl std::fmt::Debug, is_final: bool) -> OperationAnswer {
        OperationAnswer {
            http_status: 200,
            body: serde_json::json!({ "outcome": format!("{outcome:?}") }),
            is_final,
        }
    }
}

#[cfg(test)]
impl RenderOperations for DebugAnswers {
    fn cancel(&self, _: &str, _: &str, outcome: &CancelOutcome) -> OperationAnswer {
        Self::answer(outcome, outcome.is_final())
    }

    fn settle(&self, _: &str, _: &str, outcome: &SettleOutcome) -> OperationAnswer {
        Self::answer(outcome, outcome.is_final())
    }

    fn refund(&self, _: &str, _: &str, outcome: &RefundOutcome) -> OperationAnswer {
        Self::answer(outcome, outcome.is_final())
    }
}
