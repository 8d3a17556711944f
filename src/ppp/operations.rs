//! Cancel, settle and refund as PPP answers: the status code and body of each outcome the
//! engine decides, and of a request refused before it reached the engine. The engine stores
//! the final ones as rendered here and replays them ([`PppAnswers`]).

use serde_json::{Value, json};

use super::error::PppError;
use crate::pos::OperationAnswer;
use crate::pos::outcome::{
    CancelOutcome, RefundOutcome, RefundRefusal, RenderOperations, SettleOutcome, SettleRefusal,
    ValueProblem,
};

/// The three operations, by the id field their bodies carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Operation {
    Cancel,
    Settle,
    Refund,
}

impl Operation {
    fn id_field(self) -> &'static str {
        match self {
            Self::Cancel => "cancellationId",
            Self::Settle => "settleId",
            Self::Refund => "refundId",
        }
    }

    /// A failure body: no id, and (settle, refund) a zero value.
    pub(super) fn failure_body(
        self,
        payment_id: Option<&str>,
        request_id: Option<&str>,
        code: &str,
        message: &str,
    ) -> Value {
        let mut body = json!({
            "paymentId": payment_id, self.id_field(): null, "code": code,
            "message": message, "requestId": request_id,
        });
        if self != Self::Cancel {
            body["value"] = json!(0);
        }
        body
    }

    /// The answer to a request the edge refused, or the engine failed on.
    pub(super) fn refused(
        self,
        payment_id: Option<&str>,
        request_id: Option<&str>,
        error: &PppError,
    ) -> OperationAnswer {
        OperationAnswer {
            http_status: error.status().as_u16(),
            body: self.failure_body(payment_id, request_id, error.code(), &error.to_string()),
            is_final: false,
        }
    }

    fn failed(
        self,
        payment_id: &str,
        request_id: &str,
        http_status: u16,
        code: &str,
        message: &str,
        is_final: bool,
    ) -> OperationAnswer {
        OperationAnswer {
            http_status,
            body: self.failure_body(Some(payment_id), Some(request_id), code, message),
            is_final,
        }
    }
}

fn value_message(problem: &ValueProblem) -> String {
    match problem {
        ValueProblem::NotPositive => "value must be positive".into(),
        ValueProblem::Unreadable(e) => format!("field `value`: {e}"),
    }
}

pub fn cancel(payment_id: &str, request_id: &str, outcome: &CancelOutcome) -> OperationAnswer {
    let failed = |status, code, message: &str| {
        Operation::Cancel.failed(
            payment_id,
            request_id,
            status,
            code,
            message,
            outcome.is_final(),
        )
    };
    match outcome {
        CancelOutcome::Cancelled { cancellation_id } => OperationAnswer {
            http_status: 200,
            body: json!({
                "paymentId": payment_id, "cancellationId": cancellation_id, "code": null,
                "message": "Successfully cancelled", "requestId": request_id,
            }),
            is_final: true,
        },
        CancelOutcome::AlreadySettled => failed(
            400,
            "already-settled",
            "the payment is settled: refund it instead",
        ),
        CancelOutcome::CancelManually { reason } => failed(501, "cancel-manually", reason),
        CancelOutcome::Failed { reason } => failed(500, "cancel-failed", reason),
        CancelOutcome::Pending => failed(
            500,
            "cancel-pending",
            "the terminal has not confirmed the cancellation yet; retry",
        ),
    }
}

pub fn settle(payment_id: &str, request_id: &str, outcome: &SettleOutcome) -> OperationAnswer {
    let failed = |status, code, message: &str| {
        Operation::Settle.failed(
            payment_id,
            request_id,
            status,
            code,
            message,
            outcome.is_final(),
        )
    };
    match outcome {
        SettleOutcome::Settled {
            settle_id,
            value_minor,
            currency,
        } => OperationAnswer {
            http_status: 200,
            body: json!({
                "paymentId": payment_id, "settleId": settle_id,
                "value": currency.to_decimal(*value_minor), "code": null,
                "message": "Successfully settled", "requestId": request_id,
            }),
            is_final: true,
        },
        SettleOutcome::InvalidValue(problem) => {
            failed(400, "invalid-value", &value_message(problem))
        }
        SettleOutcome::Refused { reason, message } => {
            let code = match reason {
                SettleRefusal::PaymentCancelled => "payment-cancelled",
                SettleRefusal::NotApproved => "not-approved",
                SettleRefusal::Conflict => "settle-conflict",
                SettleRefusal::ExceedsAuthorized => "settle-exceeds-authorized",
            };
            failed(400, code, message)
        }
        SettleOutcome::Pending => failed(
            500,
            "settle-pending",
            "the terminal is still returning the unsettled amount; retry",
        ),
    }
}

pub fn refund(payment_id: &str, request_id: &str, outcome: &RefundOutcome) -> OperationAnswer {
    let failed = |status, code, message: &str| {
        Operation::Refund.failed(
            payment_id,
            request_id,
            status,
            code,
            message,
            outcome.is_final(),
        )
    };
    match outcome {
        RefundOutcome::Refunded {
            refund_id,
            value_minor,
            currency,
        } => OperationAnswer {
            http_status: 200,
            body: json!({
                "paymentId": payment_id, "refundId": refund_id,
                "value": currency.to_decimal(*value_minor), "code": null,
                "message": "Successfully refunded", "requestId": request_id,
            }),
            is_final: true,
        },
        RefundOutcome::InvalidValue(problem) => {
            failed(400, "invalid-value", &value_message(problem))
        }
        RefundOutcome::Refused { reason, message } => {
            let code = match reason {
                RefundRefusal::PaymentCancelled => "payment-cancelled",
                RefundRefusal::NotSettled => "not-settled",
                RefundRefusal::ExceedsSettled => "refund-exceeds-settled",
            };
            failed(400, code, message)
        }
        RefundOutcome::RefundManually { reason } => failed(501, "refund-manually", reason),
        RefundOutcome::Failed { reason } => failed(500, "refund-failed", reason),
        RefundOutcome::Pending => failed(
            500,
            "refund-pending",
            "the terminal is still working on the refund; retry",
        ),
    }
}

/// The PPP rendering the engine stores final answers with.
pub struct PppAnswers;

impl RenderOperations for PppAnswers {
    fn cancel(
        &self,
        payment_id: &str,
        request_id: &str,
        outcome: &CancelOutcome,
    ) -> OperationAnswer {
        cancel(payment_id, request_id, outcome)
    }

    fn settle(
        &self,
        payment_id: &str,
        request_id: &str,
        outcome: &SettleOutcome,
    ) -> OperationAnswer {
        settle(payment_id, request_id, outcome)
    }

    fn refund(
        &self,
        payment_id: &str,
        request_id: &str,
        outcome: &RefundOutcome,
    ) -> OperationAnswer {
        refund(payment_id, request_id, outcome)
    }
}
