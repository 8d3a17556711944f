//! Cancellation, settlement and refund. Each is idempotent on `requestId`: a final outcome is
//! stored as the edge rendered it and replayed. A terminal step that does not finish within a
//! few seconds comes to "pending" and finishes in the background, since VTEX retries.
//!
//! What excludes what is decided inside the one transaction that records the request: a
//! reversal on its way or done excludes settling and refunding; a settlement excludes a
//! reversal (refund instead); a payment is settled once, and only an exact repeat (same
//! value) replays that settlement.

use rusqlite::Connection;

use super::finish::{self, cancelled};
use super::lane::{LaneJob, record_operation};
use super::outcome::{
    CancelOutcome, OperationAnswer, RefundOutcome, RefundRefusal, Reply, SettleOutcome,
    SettleRefusal, ValueProblem,
};
use super::{Engine, EngineError, TERMINAL_STEP_WAIT, find_for_merchant, must_get};
use crate::money::{Amount, Currency};
use crate::payment::Payment;
use crate::payment::PaymentState;
use crate::secret::random_id;
use crate::store::StoreError;
use crate::store::operations::{self, OpKind, OpState, Operation};
use crate::store::payments;
use crate::terminal::OperationOutcome;

const CANCEL: &str = "cancel";
const SETTLE: &str = "settle";
const REFUND: &str = "refund";
/// The requestId of a cancel pressed in the Payment App.
pub const PAYMENT_APP_CANCEL_REQUEST: &str = "payment-app-cancel";

/// What a request found first: the stored answer of the same request, or the payment.
enum Loaded {
    Replay(OperationAnswer),
    Payment(Box<Payment>),
}

/// What a first look at a cancel decided.
enum CancelStep {
    Decided(CancelOutcome),
    /// Cancelled now, before anything reached the terminal: the callback is queued.
    CancelledNow(CancelOutcome),
    /// Wait for the terminal (an abort or a reversal) and answer from the result.
    Wait {
        reversal: Option<(Operation, bool)>,
        abort: bool,
    },
}

/// What a first look at a settlement decided.
enum SettleStep {
    Refuse(SettleRefusal, String),
    /// Settled now (with the part to return on the terminal, for a partial one), or before
    /// with the same value: answer once nothing is left to return.
    Settled(Option<Operation>),
}

/// What a first look at a refund decided.
enum RefundStep {
    Refuse(RefundRefusal, String),
    /// The refund of this request: started now (`is_new`), or already under way or done.
    Refund {
        op: Operation,
        is_new: bool,
    },
}

/// A settle or refund value in minor units, or why it is refused.
fn positive_value(currency: Currency, value: &Amount) -> Result<i64, ValueProblem> {
    match currency.parse_amount(value) {
        Ok(v) if v > 0 => Ok(v),
        Ok(_) => Err(ValueProblem::NotPositive),
        Err(e) => Err(ValueProblem::Unreadable(e)),
    }
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
    ) -> Result<Loaded, EngineError> {
        let (merchant, id, rid) = (
            merchant.to_string(),
            payment_id.to_string(),
            request_id.to_string(),
        );
        let (payment, stored) = self
            .store
            .call(move |c| {
                let Some(p) = find_for_merchant(c, &merchant, &id)? else {
                    return Ok((None, None));
                };
                let stored = operations::answer(c, &p.payment_id, kind, &rid)?;
                Ok((Some(p), stored))
            })
            .await?;
        let Some(p) = payment else {
            return Err(EngineError::UnknownPayment);
        };
        if let Some((status, body)) = stored {
            let body =
                serde_json::from_str(&body).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            return Ok(Loaded::Replay(OperationAnswer {
                http_status: status,
                body,
                is_final: true,
            }));
        }
        Ok(Loaded::Payment(Box::new(p)))
    }

    /// Stores a final outcome's answer, as the edge renders it, for the replays of this request.
    async fn save_if_final(
        &self,
        p: &Payment,
        kind: &'static str,
        request_id: &str,
        answer: Option<OperationAnswer>,
    ) -> Result<(), EngineError> {
        if let Some(answer) = answer {
            let (id, rid, status, body) = (
                p.payment_id.clone(),
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
        } else {
            let state = self
                .store
                .call(record_operation(
                    op.clone(),
                    OperationOutcome::Done,
                    self.store_time.clone(),
                    self.now(),
                ))
                .await?;
            self.publish(&op.payment_id, state);
        }
        Ok(())
    }

    /// A cancel pressed in the Payment App: the Gateway's cancellation path, on behalf of the
    /// payment's merchant, with one fixed requestId (a repeat is a repeat, not a second cancel),
    /// answered as the Gateway's would be.
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
        let vtex_id = p.vtex_payment_id();
        Ok(
            match self
                .cancel(&p.merchant, vtex_id, PAYMENT_APP_CANCEL_REQUEST)
                .await?
            {
                Reply::Decided(outcome) => {
                    self.answers
                        .cancel(vtex_id, PAYMENT_APP_CANCEL_REQUEST, &outcome)
                }
                Reply::Replayed(answer) => answer,
            },
        )
    }

    /// Cancels a payment: before the charge at once; while charging by aborting the sale
    /// (answered only once the terminal confirms); once approved by a reversal. A 200 is only
    /// ever answered for what is true: nothing was charged, or it was given back.
    pub async fn cancel(
        &self,
        merchant: &str,
        payment_id: &str,
        request_id: &str,
    ) -> Result<Reply<CancelOutcome>, EngineError> {
        let p = match self
            .load_for_request(merchant, payment_id, CANCEL, request_id)
            .await?
        {
            Loaded::Payment(p) => *p,
            Loaded::Replay(stored) => return Ok(Reply::Replayed(stored)),
        };
        let (key, rid) = (p.payment_id.clone(), request_id.to_string());
        let now = self.now();
        let new_id = random_id("cx")?;
        let step = self
            .store
            .call(move |c| {
                let p = must_get(c, &key)?;
                let cancelled_as = |cid: &str| CancelOutcome::Cancelled {
                    cancellation_id: cid.to_string(),
                };
                let cancel_now = |c: &Connection, why: &str| -> Result<CancelStep, StoreError> {
                    finish::finish(c, &key, PaymentState::Cancelled, &cancelled(why), now)?;
                    payments::record_cancellation(c, &key, &new_id, now)?;
                    Ok(CancelStep::CancelledNow(cancelled_as(&new_id)))
                };
                match p.state {
                    PaymentState::Received | PaymentState::Bound => {
                        cancel_now(c, "payment cancelled before the charge")
                    }
                    // Queued but never sent: nothing to abort.
                    PaymentState::Charging if p.sent_to_terminal_at.is_none() => cancel_now(
                        c,
                        "payment cancelled before the terminal was asked to charge",
                    ),
                    PaymentState::Charging | PaymentState::Unknown | PaymentState::Unresolved => {
                        payments::request_cancel(c, &key, now)?;
                        Ok(CancelStep::Wait {
                            reversal: None,
                            abort: true,
                        })
                    }
                    // Nothing was charged; its denied answer stays as it was.
                    PaymentState::Denied => {
                        payments::record_cancellation(c, &key, &new_id, now)?;
                        Ok(CancelStep::Decided(cancelled_as(&new_id)))
                    }
                    PaymentState::Cancelled => Ok(match &p.cancellation_id {
                        Some(cid) => CancelStep::Decided(cancelled_as(cid)),
                        None => CancelStep::Wait {
                            reversal: None,
                            abort: false,
                        },
                    }),
                    PaymentState::Approved if p.settle_id.is_some() => {
                        Ok(CancelStep::Decided(CancelOutcome::AlreadySettled))
                    }
                    PaymentState::Approved => {
                        let existing = operations::find(c, &key, OpKind::Reversal, None)?
                            .filter(|o| o.state != OpState::Failed);
                        if let Some(op) = existing {
                            return Ok(CancelStep::Wait {
                                reversal: Some((op, false)),
                                abort: false,
                            });
                        }
                        let op = Operation {
                            op_id: new_id.clone(),
                            payment_id: key.clone(),
                            kind: OpKind::Reversal,
                            request_id: Some(rid.clone()),
                            amount_minor: p.amount_minor,
                            state: OpState::Pending,
                            detail: None,
                            sale_ref: None,
                        };
                        operations::insert(c, &op, now)?;
                        Ok(CancelStep::Wait {
                            reversal: Some((op, true)),
                            abort: false,
                        })
                    }
                }
            })
            .await?;
        let outcome = match step {
            CancelStep::Decided(outcome) => outcome,
            CancelStep::CancelledNow(outcome) => {
                tracing::info!(payment_id = %p.payment_id, "cancelled before the charge; callback queued");
                self.outbox.wake();
                outcome
            }
            CancelStep::Wait { reversal, abort } => {
                if abort {
                    let aborted = self.terminal(&p).is_some_and(|t| t.abort(&p.payment_id));
                    tracing::info!(
                        payment_id = %p.payment_id,
                        aborted_running_sale = aborted,
                        "cancel requested while charging: answered once the terminal confirms"
                    );
                }
                if let Some((op, true)) = &reversal {
                    tracing::info!(
                        payment_id = %p.payment_id,
                        "cancel of an approved sale: reversing it on the terminal"
                    );
                    self.dispatch(&p, op).await?;
                }
                self.await_cancel(&p.payment_id).await?
            }
        };
        if matches!(outcome, CancelOutcome::Cancelled { .. }) {
            self.publish(&p.payment_id, PaymentState::Cancelled);
        }
        let answer = outcome
            .is_final()
            .then(|| self.answers.cancel(payment_id, request_id, &outcome));
        self.save_if_final(&p, CANCEL, request_id, answer).await?;
        Ok(Reply::Decided(outcome))
    }

    async fn await_cancel(&self, key: &str) -> Result<CancelOutcome, EngineError> {
        let id = key.to_string();
        let found = self
            .wait_for(key, TERMINAL_STEP_WAIT, move |c| {
                let p = must_get(c, &id)?;
                if let Some(cid) = &p.cancellation_id {
                    return Ok(Some(CancelOutcome::Cancelled {
                        cancellation_id: cid.clone(),
                    }));
                }
                let op = operations::find(c, &id, OpKind::Reversal, None)?;
                Ok(match op.map(|o| (o.state, o.detail)) {
                    Some((OpState::Unsupported, why)) => Some(CancelOutcome::CancelManually {
                        reason: why
                            .unwrap_or_else(|| "the terminal cannot reverse this sale".into()),
                    }),
                    Some((OpState::Failed, why)) if p.state == PaymentState::Approved => {
                        Some(CancelOutcome::Failed {
                            reason: why
                                .unwrap_or_else(|| "the terminal refused the reversal".into()),
                        })
                    }
                    _ => None,
                })
            })
            .await?;
        Ok(found.unwrap_or(CancelOutcome::Pending))
    }

    pub async fn settle(
        &self,
        merchant: &str,
        payment_id: &str,
        request_id: &str,
        value: &Amount,
    ) -> Result<Reply<SettleOutcome>, EngineError> {
        let p = match self
            .load_for_request(merchant, payment_id, SETTLE, request_id)
            .await?
        {
            Loaded::Payment(p) => *p,
            Loaded::Replay(stored) => return Ok(Reply::Replayed(stored)),
        };
        let currency =
            Currency::parse(&p.currency).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let value = match positive_value(currency, value) {
            Ok(v) => v,
            Err(problem) => return Ok(Reply::Decided(SettleOutcome::InvalidValue(problem))),
        };
        let (key, rid) = (p.payment_id.clone(), request_id.to_string());
        let now = self.now();
        let settle_id = random_id("st")?;
        let op_id = random_id("sr")?;
        let step = self
            .store
            .call(move |c| {
                let p = must_get(c, &key)?;
                if p.state == PaymentState::Cancelled
                    || operations::reversal_under_way(c, &key)?
                {
                    return Ok(SettleStep::Refuse(
                        SettleRefusal::PaymentCancelled,
                        "the payment is cancelled, or its cancellation is under way: it cannot be settled".into(),
                    ));
                }
                if p.state != PaymentState::Approved {
                    return Ok(SettleStep::Refuse(
                        SettleRefusal::NotApproved,
                        format!("the payment is {}, not approved", p.state),
                    ));
                }
                if p.settle_id.is_some() {
                    if value == p.settled_minor {
                        return Ok(SettleStep::Settled(None));
                    }
                    return Ok(SettleStep::Refuse(
                        SettleRefusal::Conflict,
                        format!(
                            "the payment was already settled for {}; a second settlement for {} is refused",
                            currency.to_decimal(p.settled_minor),
                            currency.to_decimal(value)
                        ),
                    ));
                }
                if value > p.amount_minor {
                    return Ok(SettleStep::Refuse(
                        SettleRefusal::ExceedsAuthorized,
                        format!(
                            "cannot settle {} above the authorized {}",
                            currency.to_decimal(value),
                            currency.to_decimal(p.amount_minor)
                        ),
                    ));
                }
                payments::settle(c, &key, &settle_id, value, now)?;
                if value == p.amount_minor {
                    return Ok(SettleStep::Settled(None));
                }
                let op = Operation {
                    op_id,
                    payment_id: key.clone(),
                    kind: OpKind::SettleReversal,
                    request_id: Some(rid),
                    amount_minor: p.amount_minor - value,
                    state: OpState::Pending,
                    detail: None,
                    sale_ref: None,
                };
                operations::insert(c, &op, now)?;
                Ok(SettleStep::Settled(Some(op)))
            })
            .await?;
        let new_op = match step {
            SettleStep::Refuse(reason, message) => {
                return Ok(Reply::Decided(SettleOutcome::Refused { reason, message }));
            }
            SettleStep::Settled(op) => op,
        };
        if let Some(op) = &new_op {
            tracing::info!(
                payment_id = %p.payment_id,
                returned_minor = op.amount_minor,
                "partial settlement: returning the difference on the terminal"
            );
            self.dispatch(&p, op).await?;
        }
        let key = p.payment_id.clone();
        let found = self
            .wait_for(&p.payment_id, TERMINAL_STEP_WAIT, move |c| {
                let p = must_get(c, &key)?;
                let Some(settle_id) = p.settle_id else {
                    return Ok(None);
                };
                let pending = operations::find(c, &key, OpKind::SettleReversal, None)?
                    .is_some_and(|o| !o.state.is_final());
                Ok((!pending).then_some(SettleOutcome::Settled {
                    settle_id,
                    value_minor: p.settled_minor,
                    currency,
                }))
            })
            .await?;
        let outcome = found.unwrap_or(SettleOutcome::Pending);
        let answer = outcome
            .is_final()
            .then(|| self.answers.settle(payment_id, request_id, &outcome));
        self.save_if_final(&p, SETTLE, request_id, answer).await?;
        Ok(Reply::Decided(outcome))
    }

    pub async fn refund(
        &self,
        merchant: &str,
        payment_id: &str,
        request_id: &str,
        value: &Amount,
    ) -> Result<Reply<RefundOutcome>, EngineError> {
        let p = match self
            .load_for_request(merchant, payment_id, REFUND, request_id)
            .await?
        {
            Loaded::Payment(p) => *p,
            Loaded::Replay(stored) => return Ok(Reply::Replayed(stored)),
        };
        let currency =
            Currency::parse(&p.currency).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let value = match positive_value(currency, value) {
            Ok(v) => v,
            Err(problem) => return Ok(Reply::Decided(RefundOutcome::InvalidValue(problem))),
        };
        let (key, rid) = (p.payment_id.clone(), request_id.to_string());
        let now = self.now();
        let op_id = random_id("rf")?;
        let step = self
            .store
            .call(move |c| {
                let p = must_get(c, &key)?;
                if let Some(op) = operations::find(c, &key, OpKind::Refund, Some(&rid))?
                    .filter(|o| o.state != OpState::Failed)
                {
                    return Ok(RefundStep::Refund { op, is_new: false });
                }
                if p.state == PaymentState::Cancelled || operations::reversal_under_way(c, &key)? {
                    return Ok(RefundStep::Refuse(
                        RefundRefusal::PaymentCancelled,
                        "the payment is cancelled, or its cancellation is under way: nothing to refund".to_string(),
                    ));
                }
                if p.settle_id.is_none() || p.state != PaymentState::Approved {
                    return Ok(RefundStep::Refuse(
                        RefundRefusal::NotSettled,
                        format!("the payment is {} and not settled", p.state),
                    ));
                }
                let available = p.settled_minor - p.refunded_minor;
                if value > available {
                    return Ok(RefundStep::Refuse(
                        RefundRefusal::ExceedsSettled,
                        format!(
                            "cannot refund {}: only {} is settled and not yet refunded",
                            currency.to_decimal(value),
                            currency.to_decimal(available)
                        ),
                    ));
                }
                payments::add_refunded(c, &key, value, now)?;
                let op = Operation {
                    op_id,
                    payment_id: key.clone(),
                    kind: OpKind::Refund,
                    request_id: Some(rid),
                    amount_minor: value,
                    state: OpState::Pending,
                    detail: None,
                    sale_ref: None,
                };
                operations::insert(c, &op, now)?;
                Ok(RefundStep::Refund { op, is_new: true })
            })
            .await?;
        let (op, is_new) = match step {
            RefundStep::Refund { op, is_new } => (op, is_new),
            RefundStep::Refuse(reason, message) => {
                return Ok(Reply::Decided(RefundOutcome::Refused { reason, message }));
            }
        };
        if is_new {
            tracing::info!(
                payment_id = %p.payment_id,
                refund_minor = op.amount_minor,
                "refund started on the terminal"
            );
            self.dispatch(&p, &op).await?;
        }
        let oid = op.op_id.clone();
        let found = self
            .wait_for(&p.payment_id, TERMINAL_STEP_WAIT, move |c| {
                let Some(op) = operations::get(c, &oid)? else {
                    return Ok(None);
                };
                let reason = op.detail.unwrap_or_default();
                Ok(match op.state {
                    OpState::Done => Some(RefundOutcome::Refunded {
                        refund_id: op.op_id,
                        value_minor: op.amount_minor,
                        currency,
                    }),
                    OpState::Unsupported => Some(RefundOutcome::RefundManually { reason }),
                    OpState::Failed => Some(RefundOutcome::Failed { reason }),
                    OpState::Pending | OpState::Sent => None,
                })
            })
            .await?;
        let outcome = found.unwrap_or(RefundOutcome::Pending);
        let answer = outcome
            .is_final()
            .then(|| self.answers.refund(payment_id, request_id, &outcome));
        self.save_if_final(&p, REFUND, request_id, answer).await?;
        Ok(Reply::Decided(outcome))
    }
}
