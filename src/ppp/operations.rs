//! Cancel, settle and refund as PPP answers: the status code and body of each outcome the
//! engine decides, and of a request refused before it reached the engine. The engine stores
//! the final ones as rendered here and replays them ([`PppAnswers`]).

use serde_json::{Value, json};

use super::error::PppError;
use crate::money::Currency;
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

    /// A settlement or refund booked: its id and value, as its currency writes decimals.
    fn booked(
        self,
        payment_id: &str,
        request_id: &str,
        id: &str,
        value_minor: i64,
        currency: &Currency,
        message: &str,
    ) -> OperationAnswer {
        OperationAnswer {
            http_status: 200,
            body: json!({
                "paymentId": payment_id, self.id_field(): id,
                "value": currency.to_decimal(value_minor), "code": null,
                "message": message, "requestId": request_id,
            }),
            is_final: true,
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
        } => Operation::Settle.booked(
            payment_id,
            request_id,
            settle_id,
            *value_minor,
            currency,
            "Successfully settled",
        ),
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
        } => Operation::Refund.booked(
            payment_id,
            request_id,
            refund_id,
            *value_minor,
            currency,
            "Successfully refunded",
        ),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Currency;

    fn brl() -> Currency {
        Currency::parse("BRL").expect("BRL")
    }

    #[test]
    fn a_cancellation_answers_200_with_its_id_and_is_stored() {
        let outcome = CancelOutcome::Cancelled {
            cancellation_id: "cx1".into(),
        };
        let answer = cancel("p1", "r1", &outcome);
        assert_eq!(answer.http_status, 200);
        assert!(answer.is_final);
        assert_eq!(
            answer.body,
            json!({
                "paymentId": "p1", "cancellationId": "cx1", "code": null,
                "message": "Successfully cancelled", "requestId": "r1",
            })
        );
    }

    #[test]
    fn failures_carry_a_null_id_and_settle_and_refund_a_zero_value() {
        let answer = cancel("p1", "r1", &CancelOutcome::Pending);
        assert_eq!((answer.http_status, answer.is_final), (500, false));
        assert_eq!(answer.body["cancellationId"], Value::Null);
        assert_eq!(answer.body["code"], "cancel-pending");
        assert!(answer.body.get("value").is_none());

        let refused = SettleOutcome::Refused {
            reason: SettleRefusal::Conflict,
            message: "no".into(),
        };
        let answer = settle("p1", "r1", &refused);
        assert_eq!((answer.http_status, answer.is_final), (400, false));
        assert_eq!(
            answer.body,
            json!({
                "paymentId": "p1", "settleId": null, "value": 0, "code": "settle-conflict",
                "message": "no", "requestId": "r1",
            })
        );

        let manual = RefundOutcome::RefundManually {
            reason: "card present".into(),
        };
        let answer = refund("p1", "r1", &manual);
        assert_eq!((answer.http_status, answer.is_final), (501, true));
        assert_eq!(answer.body["refundId"], Value::Null);
        assert_eq!(answer.body["value"], 0);
        assert_eq!(answer.body["code"], "refund-manually");
    }

    #[test]
    fn amounts_are_answered_as_decimals_of_their_currency() {
        let settled = SettleOutcome::Settled {
            settle_id: "st1".into(),
            value_minor: 1050,
            currency: brl(),
        };
        assert_eq!(settle("p1", "r1", &settled).body["value"], json!(10.5));
        let refunded = RefundOutcome::Refunded {
            refund_id: "rf1".into(),
            value_minor: 1,
            currency: brl(),
        };
        let answer = refund("p1", "r1", &refunded);
        assert_eq!(answer.body["value"], json!(0.01));
        assert_eq!(answer.body["message"], "Successfully refunded");
    }

    #[test]
    fn only_final_outcomes_are_final_answers() {
        for (outcome, is_final) in [
            (CancelOutcome::AlreadySettled, true),
            (CancelOutcome::CancelManually { reason: "r".into() }, true),
            (CancelOutcome::Failed { reason: "r".into() }, false),
        ] {
            assert_eq!(cancel("p", "r", &outcome).is_final, is_final, "{outcome:?}");
        }
        let invalid = RefundOutcome::InvalidValue(ValueProblem::NotPositive);
        let answer = refund("p", "r", &invalid);
        assert_eq!((answer.http_status, answer.is_final), (400, false));
        assert_eq!(answer.body["message"], "value must be positive");
    }
}
