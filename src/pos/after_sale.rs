//! Cancellation, settlement and refund. Each is idempotent on `requestId`: a final answer is
//! stored and replayed. A terminal step that does not finish within a few seconds answers
//! "still working" (500, null id) and finishes in the background, since VTEX retries.

use rusqlite::Connection;

use super::answer::OperationAnswer;
use super::lane::LaneJob;
use super::state::PaymentState;
use super::{Engine, EngineError, TERMINAL_STEP_WAIT, must_get};
use crate::money::{Amount, Currency};
use crate::secret::{ct_eq, random_id};
use crate::store::StoreError;
use crate::store::operations::{self, OpKind, OpState, Operation};
use crate::store::payments::{self, Payment};
use crate::terminal::OperationOutcome;

const CANCEL: &str = "cancel";
const SETTLE: &str = "settle";
const REFUND: &str = "refund";
/// The requestId of a cancel pressed in the Payment App.
pub const PAYMENT_APP_CANCEL_REQUEST: &str = "payment-app-cancel";

/// What a first look at the request decided.
enum Step {
    Answer(OperationAnswer),
    /// Wait for the terminal (an abort or an operation) and answer from the result.
    Wait {
        op: Option<(Operation, bool)>,
        abort: bool,
    },
}

impl Engine {
    /// The stored final answer for this request, if any; otherwise the payment, if it is the
    /// merchant's.
    async fn load_for_request(
        &self,
        merchant: &str,
        payment_id: &str,
        kind: &'static str,
        request_id: &str,
    ) -> Result<Result<Payment, OperationAnswer>, EngineError> {
        let (id, rid) = (payment_id.to_string(), request_id.to_string());
        let (payment, stored) = self
            .store
            .call(move |c| {
                Ok((
                    payments::get(c, &id)?,
                    operations::answer(c, &id, kind, &rid)?,
                ))
            })
            .await?;
        let Some(p) = payment.filter(|p| ct_eq(p.merchant.as_bytes(), merchant.as_bytes())) else {
            return Err(EngineError::UnknownPayment);
        };
        if let Some((status, body)) = stored {
            let body =
                serde_json::from_str(&body).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            return Ok(Err(OperationAnswer {
                http_status: status,
                body,
                is_final: true,
            }));
        }
        Ok(Ok(p))
    }

    async fn save_if_final(
        &self,
        payment_id: &str,
        kind: &'static str,
        request_id: &str,
        answer: &OperationAnswer,
    ) -> Result<(), EngineError> {
        if answer.is_final {
            let (id, rid, status, body) = (
                payment_id.to_string(),
                request_id.to_string(),
                answer.http_status,
                answer.body.to_string(),
            );
            self.store
                .call(move |c| operations::save_answer(c, &id, kind, &rid, status, &body))
                .await?;
        }
        Ok(())
    }

    /// Starts an operation: on the terminal's lane, or at once for a payment with no terminal.
    async fn dispatch(&self, p: &Payment, op: &Operation) -> Result<(), EngineError> {
        if self.terminal(p).is_some() {
            self.enqueue(p, LaneJob::Operation(op.op_id.clone()));
            Ok(())
        } else {
            self.finish_operation(op, OperationOutcome::Done).await
        }
    }

    /// A cancel pressed in the Payment App: the Gateway's cancellation path, on behalf of the
    /// payment's merchant, with one fixed requestId (a repeat is a repeat, not a second cancel).
    pub async fn cancel_from_payment_app(
        &self,
        payment_id: &str,
    ) -> Result<OperationAnswer, EngineError> {
        let id = payment_id.to_string();
        let p = self
            .store
            .call(move |c| payments::get(c, &id))
            .await?
            .ok_or(EngineError::UnknownPayment)?;
        tracing::info!(payment_id = %payment_id, "cancel requested from the Payment App");
        self.cancel(&p.merchant, payment_id, PAYMENT_APP_CANCEL_REQUEST)
            .await
    }

    pub async fn cancel(
        &self,
        merchant: &str,
        payment_id: &str,
        request_id: &str,
    ) -> Result<OperationAnswer, EngineError> {
        let p = match self
            .load_for_request(merchant, payment_id, CANCEL, request_id)
            .await?
        {
            Ok(p) => p,
            Err(stored) => return Ok(stored),
        };
        let (id, rid) = (p.payment_id.clone(), request_id.to_string());
        let now = self.now();
        let new_id = random_id("cx")?;
        let step = self
            .store
            .call(move |c| {
                let p = must_get(c, &id)?;
                let done = |c: &Connection| -> Result<Step, StoreError> {
                    payments::cancel(c, &id, &new_id, now)?;
                    Ok(Step::Answer(OperationAnswer::cancelled(&id, &new_id, &rid)))
                };
                match p.state {
                    PaymentState::Received | PaymentState::Bound | PaymentState::Denied => done(c),
                    // Queued but never sent: nothing to abort.
                    PaymentState::Charging if p.sent_to_terminal_at.is_none() => done(c),
                    PaymentState::Charging | PaymentState::Unknown => {
                        payments::request_cancel(c, &id, now)?;
                        Ok(Step::Wait {
                            op: None,
                            abort: true,
                        })
                    }
                    PaymentState::Cancelled => Ok(match &p.cancellation_id {
                        Some(cid) => Step::Answer(OperationAnswer::cancelled(&id, cid, &rid)),
                        None => Step::Wait {
                            op: None,
                            abort: false,
                        },
                    }),
                    PaymentState::Approved if p.settle_id.is_some() => {
                        Ok(Step::Answer(OperationAnswer::cancel_failed(
                            &id,
                            &rid,
                            400,
                            "already-settled",
                            "the payment is settled: refund it instead",
                            true,
                        )))
                    }
                    PaymentState::Approved => {
                        let existing = operations::find(c, &id, OpKind::Reversal, None)?
                            .filter(|o| o.state != OpState::Failed);
                        if let Some(op) = existing {
                            return Ok(Step::Wait {
                                op: Some((op, false)),
                                abort: false,
                            });
                        }
                        let op = Operation {
                            op_id: new_id.clone(),
                            payment_id: id.clone(),
                            kind: OpKind::Reversal,
                            request_id: Some(rid.clone()),
                            amount_minor: p.amount_minor,
                            state: OpState::Pending,
                            detail: None,
                        };
                        operations::insert(c, &op, now)?;
                        Ok(Step::Wait {
                            op: Some((op, true)),
                            abort: false,
                        })
                    }
                }
            })
            .await?;
        let answer = match step {
            Step::Answer(a) => a,
            Step::Wait { op, abort } => {
                if abort {
                    let aborted = self.terminal(&p).is_some_and(|t| t.abort(&p.payment_id));
                    tracing::info!(
                        payment_id = %payment_id,
                        aborted_running_sale = aborted,
                        "cancel requested while charging"
                    );
                }
                if let Some((op, true)) = &op {
                    tracing::info!(
                        payment_id = %payment_id,
                        "cancel of an approved sale: reversing it on the terminal"
                    );
                    self.dispatch(&p, op).await?;
                }
                self.await_cancel(&p.payment_id, request_id).await?
            }
        };
        if answer.http_status == 200 {
            self.publish(payment_id, PaymentState::Cancelled);
        }
        self.save_if_final(payment_id, CANCEL, request_id, &answer)
            .await?;
        Ok(answer)
    }

    async fn await_cancel(
        &self,
        payment_id: &str,
        request_id: &str,
    ) -> Result<OperationAnswer, EngineError> {
        let (id, rid) = (payment_id.to_string(), request_id.to_string());
        let found = self
            .wait_for(payment_id, TERMINAL_STEP_WAIT, move |c| {
                let p = must_get(c, &id)?;
                if let Some(cid) = &p.cancellation_id {
                    return Ok(Some(OperationAnswer::cancelled(&id, cid, &rid)));
                }
                let op = operations::find(c, &id, OpKind::Reversal, None)?;
                Ok(match op.map(|o| (o.state, o.detail)) {
                    Some((OpState::Unsupported, why)) => Some(OperationAnswer::cancel_failed(
                        &id,
                        &rid,
                        501,
                        "cancel-manually",
                        &why.unwrap_or_else(|| "the terminal cannot reverse this sale".into()),
                        true,
                    )),
                    Some((OpState::Failed, why)) if p.state == PaymentState::Approved => {
                        Some(OperationAnswer::cancel_failed(
                            &id,
                            &rid,
                            500,
                            "cancel-failed",
                            &why.unwrap_or_else(|| "the terminal refused the reversal".into()),
                            false,
                        ))
                    }
                    _ => None,
                })
            })
            .await?;
        Ok(found.unwrap_or_else(|| {
            OperationAnswer::cancel_failed(
                payment_id,
                request_id,
                500,
                "cancel-pending",
                "the terminal is still working on it; retry",
                false,
            )
        }))
    }

    pub async fn settle(
        &self,
        merchant: &str,
        payment_id: &str,
        request_id: &str,
        value: &Amount,
    ) -> Result<OperationAnswer, EngineError> {
        let p = match self
            .load_for_request(merchant, payment_id, SETTLE, request_id)
            .await?
        {
            Ok(p) => p,
            Err(stored) => return Ok(stored),
        };
        let currency =
            Currency::parse(&p.currency).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let fail = |status, code: &str, message: &str| {
            OperationAnswer::settle_failed(payment_id, request_id, status, code, message, false)
        };
        let value = match currency.parse_amount(value) {
            Ok(v) if v > 0 => v,
            Ok(_) => return Ok(fail(400, "invalid-value", "value must be positive")),
            Err(e) => return Ok(fail(400, "invalid-value", &format!("value: {e}"))),
        };
        if p.state != PaymentState::Approved {
            return Ok(fail(
                400,
                "not-approved",
                &format!("the payment is {}, not approved", p.state),
            ));
        }
        if value > p.amount_minor {
            return Ok(fail(
                400,
                "settle-exceeds-authorized",
                &format!(
                    "cannot settle {} above the authorized {}",
                    currency.to_decimal(value),
                    currency.to_decimal(p.amount_minor)
                ),
            ));
        }
        let (id, rid) = (p.payment_id.clone(), request_id.to_string());
        let now = self.now();
        let settle_id = random_id("st")?;
        let op_id = random_id("sr")?;
        let new_op = self
            .store
            .call(move |c| {
                let p = must_get(c, &id)?;
                if p.settle_id.is_some() {
                    return Ok(None);
                }
                payments::settle(c, &id, &settle_id, value, now)?;
                if value == p.amount_minor {
                    return Ok(None);
                }
                let op = Operation {
                    op_id,
                    payment_id: id.clone(),
                    kind: OpKind::SettleReversal,
                    request_id: Some(rid),
                    amount_minor: p.amount_minor - value,
                    state: OpState::Pending,
                    detail: None,
                };
                operations::insert(c, &op, now)?;
                Ok(Some(op))
            })
            .await?;
        if let Some(op) = &new_op {
            tracing::info!(
                payment_id = %payment_id,
                returned_minor = op.amount_minor,
                "partial settlement: returning the difference on the terminal"
            );
            self.dispatch(&p, op).await?;
        }
        let id = p.payment_id.clone();
        let rid = request_id.to_string();
        let found = self
            .wait_for(payment_id, TERMINAL_STEP_WAIT, move |c| {
                let p = must_get(c, &id)?;
                let Some(settle_id) = &p.settle_id else {
                    return Ok(None);
                };
                let pending = operations::find(c, &id, OpKind::SettleReversal, None)?
                    .is_some_and(|o| !o.state.is_final());
                Ok((!pending).then(|| {
                    OperationAnswer::settled(&id, settle_id, p.settled_minor, currency, &rid)
                }))
            })
            .await?;
        let answer = found.unwrap_or_else(|| {
            fail(
                500,
                "settle-pending",
                "the terminal is still returning the unsettled amount; retry",
            )
        });
        self.save_if_final(payment_id, SETTLE, request_id, &answer)
            .await?;
        Ok(answer)
    }

    pub async fn refund(
        &self,
        merchant: &str,
        payment_id: &str,
        request_id: &str,
        value: &Amount,
    ) -> Result<OperationAnswer, EngineError> {
        let p = match self
            .load_for_request(merchant, payment_id, REFUND, request_id)
            .await?
        {
            Ok(p) => p,
            Err(stored) => return Ok(stored),
        };
        let currency =
            Currency::parse(&p.currency).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let fail = |status, code: &str, message: &str| {
            OperationAnswer::refund_failed(payment_id, request_id, status, code, message, false)
        };
        let value = match currency.parse_amount(value) {
            Ok(v) if v > 0 => v,
            Ok(_) => return Ok(fail(400, "invalid-value", "value must be positive")),
            Err(e) => return Ok(fail(400, "invalid-value", &format!("value: {e}"))),
        };
        let (id, rid) = (p.payment_id.clone(), request_id.to_string());
        let now = self.now();
        let op_id = random_id("rf")?;
        let decided = self
            .store
            .call(move |c| {
                let p = must_get(c, &id)?;
                if let Some(op) = operations::find(c, &id, OpKind::Refund, Some(&rid))?
                    .filter(|o| o.state != OpState::Failed)
                {
                    return Ok(Ok((op, false)));
                }
                if p.settle_id.is_none() || p.state != PaymentState::Approved {
                    return Ok(Err((
                        "not-settled",
                        format!("the payment is {} and not settled", p.state),
                    )));
                }
                let available = p.settled_minor - p.refunded_minor;
                if value > available {
                    return Ok(Err((
                        "refund-exceeds-settled",
                        format!(
                            "cannot refund {}: only {} is settled and not yet refunded",
                            currency.to_decimal(value),
                            currency.to_decimal(available)
                        ),
                    )));
                }
                payments::add_refunded(c, &id, value, now)?;
                let op = Operation {
                    op_id,
                    payment_id: id.clone(),
                    kind: OpKind::Refund,
                    request_id: Some(rid),
                    amount_minor: value,
                    state: OpState::Pending,
                    detail: None,
                };
                operations::insert(c, &op, now)?;
                Ok(Ok((op, true)))
            })
            .await?;
        let (op, is_new) = match decided {
            Ok(op) => op,
            Err((code, message)) => return Ok(fail(400, code, &message)),
        };
        if is_new {
            tracing::info!(
                payment_id = %payment_id,
                refund_minor = op.amount_minor,
                "refund started on the terminal"
            );
            self.dispatch(&p, &op).await?;
        }
        let (id, rid, oid) = (
            p.payment_id.clone(),
            request_id.to_string(),
            op.op_id.clone(),
        );
        let found = self
            .wait_for(payment_id, TERMINAL_STEP_WAIT, move |c| {
                let Some(op) = operations::get(c, &oid)? else {
                    return Ok(None);
                };
                let why = op.detail.clone().unwrap_or_default();
                Ok(match op.state {
                    OpState::Done => Some(OperationAnswer::refunded(
                        &id,
                        &op.op_id,
                        op.amount_minor,
                        currency,
                        &rid,
                    )),
                    OpState::Unsupported => Some(OperationAnswer::refund_failed(
                        &id,
                        &rid,
                        501,
                        "refund-manually",
                        &why,
                        true,
                    )),
                    OpState::Failed => Some(OperationAnswer::refund_failed(
                        &id,
                        &rid,
                        500,
                        "refund-failed",
                        &why,
                        false,
                    )),
                    OpState::Pending | OpState::Sent => None,
                })
            })
            .await?;
        let answer = found.unwrap_or_else(|| {
            fail(
                500,
                "refund-pending",
                "the terminal is still working on the refund; retry",
            )
        });
        self.save_if_final(payment_id, REFUND, request_id, &answer)
            .await?;
        Ok(answer)
    }
}
