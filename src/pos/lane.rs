//! One worker per terminal: takes charges first come, first served, journals the intent before
//! the terminal sees a sale, records each result before anything else, and resolves every
//! unclear sale through the terminal's recovery query — never by guessing, never by charging again.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::state::{PaymentState, ResultEffect};
use super::{Engine, EngineError, PaymentAnswer, function_of, must_get};
use crate::secret::random_id;
use crate::store::operations::{self, OpKind, OpState, Operation};
use crate::store::payments::{self, SaleFields};
use crate::store::{outbox, receipts};
use crate::terminal::{
    DriverError, OperationOutcome, OperationQuery, OperationRequest, SaleInquiry, SaleOutcome,
    SaleQuery, SaleRequest, TerminalError, TerminalHandle,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum LaneJob {
    /// Send the sale (if still wanted).
    Charge(String),
    /// The sale was sent but its result is unknown: ask the terminal.
    Recover(String),
    Operation(String),
}

const RECOVERY_BACKOFF_MAX: Duration = Duration::from_secs(60);

enum ChargeStep {
    Send(SaleRequest),
    Skip,
}

impl Engine {
    pub(super) async fn run_lane(
        self: Arc<Self>,
        terminal: TerminalHandle,
        mut jobs: mpsc::UnboundedReceiver<LaneJob>,
        shutdown: CancellationToken,
    ) {
        loop {
            let job = tokio::select! {
                job = jobs.recv() => job,
                () = shutdown.cancelled() => None,
            };
            let Some(job) = job else { break };
            let result = match &job {
                LaneJob::Charge(id) => self.charge(&terminal, id, &shutdown).await,
                LaneJob::Recover(id) => self.recover(&terminal, id, &shutdown).await,
                LaneJob::Operation(op_id) => self.run_operation(&terminal, op_id, &shutdown).await,
            };
            if let Err(e) = result {
                tracing::error!(terminal = terminal.id(), job = ?job, error = %e, "terminal job failed");
            }
        }
    }

    async fn charge(
        &self,
        terminal: &TerminalHandle,
        payment_id: &str,
        shutdown: &CancellationToken,
    ) -> Result<(), EngineError> {
        let id = payment_id.to_string();
        let now = self.now();
        let step = self
            .store
            .call(move |c| {
                let p = must_get(c, &id)?;
                if p.state != PaymentState::Charging || p.sent_to_terminal_at.is_some() {
                    return Ok((ChargeStep::Skip, None));
                }
                let waited = now - p.charge_started_at.unwrap_or(now);
                if waited > i64::from(p.delays.seconds_waiting) * 1000 {
                    // Never started within the wait: the Sales App has given up on it.
                    let sale = SaleFields {
                        code: Some("terminal-busy".into()),
                        message: Some(
                            "the terminal was busy for longer than secondsWaiting".into(),
                        ),
                        ..SaleFields::default()
                    };
                    payments::finish(c, &id, PaymentState::Denied, &sale, now)?;
                    let p = must_get(c, &id)?;
                    enqueue_callback(c, &p, now)?;
                    return Ok((ChargeStep::Skip, Some(PaymentState::Denied)));
                }
                if !payments::mark_sent(c, &id, now)? {
                    return Ok((ChargeStep::Skip, None));
                }
                Ok((
                    ChargeStep::Send(SaleRequest {
                        reference: p.payment_id.clone(),
                        amount_minor: p.amount_minor,
                        currency: p.currency.clone(),
                        function: function_of(&p.method),
                        installments: p.installments,
                    }),
                    None,
                ))
            })
            .await?;
        let request = match step {
            (ChargeStep::Send(r), _) => r,
            (ChargeStep::Skip, Some(state)) => {
                tracing::warn!(
                    payment_id = %payment_id,
                    "denied: the terminal stayed busy for longer than secondsWaiting"
                );
                self.publish(payment_id, state);
                self.outbox_wake.notify_one();
                return Ok(());
            }
            (ChargeStep::Skip, None) => return Ok(()),
        };
        tracing::info!(
            payment_id = %payment_id,
            terminal = terminal.id(),
            "sale sent to the terminal"
        );
        match terminal.sale(request).await {
            Ok(outcome) => {
                crate::failpoint::hit("after-terminal-result");
                self.record_sale(terminal, payment_id, outcome, shutdown)
                    .await
            }
            Err(TerminalError::Driver(DriverError::NotSent(why))) => {
                tracing::warn!(payment_id = %payment_id, error = %why, "the terminal is offline: sale not sent");
                let outcome = SaleOutcome::declined(
                    "terminal-offline",
                    &format!("the terminal could not be reached: {why}"),
                );
                self.record_sale(terminal, payment_id, outcome, shutdown)
                    .await
            }
            Err(e) => {
                tracing::warn!(payment_id = %payment_id, error = %e, "no result from the terminal: asking it what happened");
                self.recover(terminal, payment_id, shutdown).await
            }
        }
    }

    /// Asks the terminal until it says what happened to the sale. Proven not done → denied;
    /// proven done → its result; cannot tell → stays undefined, alarm, ask again.
    async fn recover(
        &self,
        terminal: &TerminalHandle,
        payment_id: &str,
        shutdown: &CancellationToken,
    ) -> Result<(), EngineError> {
        let id = payment_id.to_string();
        let p = self.store.call(move |c| must_get(c, &id)).await?;
        let inquiry = SaleInquiry {
            reference: p.payment_id.clone(),
            amount_minor: p.amount_minor,
            currency: p.currency.clone(),
            sent_at_ms: p.sent_to_terminal_at.unwrap_or(p.created_at),
        };
        let mut backoff = Duration::from_secs(1);
        let mut alarmed = false;
        loop {
            match terminal.query_sale(inquiry.clone()).await {
                Ok(SaleQuery::Completed(outcome)) => {
                    tracing::info!(
                        payment_id = %payment_id,
                        "recovery: the terminal reports the sale completed"
                    );
                    return self
                        .record_sale(terminal, payment_id, outcome, shutdown)
                        .await;
                }
                Ok(SaleQuery::NotFound) => {
                    tracing::info!(payment_id = %payment_id, "recovery: the terminal has no such transaction");
                    let outcome = SaleOutcome::declined(
                        "no-transaction",
                        "the terminal has no record of the sale",
                    );
                    return self
                        .record_sale(terminal, payment_id, outcome, shutdown)
                        .await;
                }
                Ok(SaleQuery::InProgress) => backoff = Duration::from_secs(1),
                Err(e) => {
                    if !alarmed {
                        alarmed = true;
                        self.mark_unknown(payment_id, &e).await?;
                    }
                    backoff = (backoff * 2).min(RECOVERY_BACKOFF_MAX);
                }
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = shutdown.cancelled() => return Ok(()),
            }
        }
    }

    async fn mark_unknown(
        &self,
        payment_id: &str,
        error: &TerminalError,
    ) -> Result<(), EngineError> {
        tracing::error!(payment_id = %payment_id, error = %error, "ALARM: cannot tell whether the terminal charged this payment; it stays undefined and the terminal will be asked again");
        let id = payment_id.to_string();
        let now = self.now();
        let alarm = format!("unresolved: {error}");
        self.store
            .call(move |c| {
                payments::set_state(c, &id, PaymentState::Unknown, now)?;
                payments::set_alarm(c, &id, Some(&alarm), now)
            })
            .await?;
        self.publish(payment_id, PaymentState::Unknown);
        Ok(())
    }

    /// Commits a terminal result (and its callback) before anything else happens.
    async fn record_sale(
        &self,
        terminal: &TerminalHandle,
        payment_id: &str,
        outcome: SaleOutcome,
        shutdown: &CancellationToken,
    ) -> Result<(), EngineError> {
        let approved = matches!(outcome, SaleOutcome::Approved(_));
        let sale = sale_fields(&outcome);
        let receipts: Vec<_> = outcome
            .receipts()
            .iter()
            .map(|r| (r.kind.as_str(), r.lines.join("\n")))
            .collect();
        let id = payment_id.to_string();
        let now = self.now();
        let op_id = random_id("rv")?;
        let (effect, state) = self
            .store
            .call(move |c| {
                let p = must_get(c, &id)?;
                let effect = p.state.on_result(approved, p.cancel_requested_at.is_some());
                if effect != ResultEffect::Ignore {
                    for (kind, text) in &receipts {
                        receipts::insert(c, &id, kind, text, now)?;
                    }
                }
                match effect {
                    ResultEffect::Finish(state) => {
                        payments::finish(c, &id, state, &sale, now)?;
                        payments::set_alarm(c, &id, None, now)?;
                        enqueue_callback(c, &must_get(c, &id)?, now)?;
                    }
                    ResultEffect::CompleteCancel => {
                        payments::finish(c, &id, PaymentState::Cancelled, &sale, now)?;
                        payments::cancel(c, &id, &op_id, now)?;
                    }
                    ResultEffect::ReverseLateApproval => {
                        payments::finish(c, &id, PaymentState::Cancelled, &sale, now)?;
                        payments::set_alarm(
                            c,
                            &id,
                            Some("late approval after a cancel: reversed on the terminal"),
                            now,
                        )?;
                        operations::insert(
                            c,
                            &Operation {
                                op_id: op_id.clone(),
                                payment_id: id.clone(),
                                kind: OpKind::Reversal,
                                request_id: None,
                                amount_minor: p.amount_minor,
                                state: OpState::Pending,
                                detail: Some("late approval".into()),
                            },
                            now,
                        )?;
                    }
                    ResultEffect::Ignore => {}
                }
                Ok((effect, must_get(c, &id)?.state))
            })
            .await?;
        match effect {
            ResultEffect::Finish(finished) => {
                crate::observability::payment_result(finished.as_str());
                tracing::info!(payment_id = %payment_id, state = %state, "terminal result recorded; callback queued");
                self.outbox_wake.notify_one();
            }
            ResultEffect::CompleteCancel => tracing::info!(
                payment_id = %payment_id,
                "sale aborted on the terminal: payment cancelled"
            ),
            ResultEffect::ReverseLateApproval => {
                tracing::error!(
                    payment_id = %payment_id,
                    "ALARM: the terminal approved a payment that was already cancelled; reversing it now"
                );
            }
            ResultEffect::Ignore => {
                tracing::warn!(payment_id = %payment_id, state = %state, "ignoring a terminal result for a payment already final")
            }
        }
        self.publish(payment_id, state);
        if effect == ResultEffect::ReverseLateApproval {
            let op_id = self
                .store
                .call({
                    let id = payment_id.to_string();
                    move |c| Ok(operations::find(c, &id, OpKind::Reversal, None)?.map(|o| o.op_id))
                })
                .await?;
            if let Some(op_id) = op_id {
                return self.run_operation(terminal, &op_id, shutdown).await;
            }
        }
        Ok(())
    }

    /// Runs a reversal or refund on the terminal, once: an operation already sent is first
    /// looked up on the terminal.
    pub(super) async fn run_operation(
        &self,
        terminal: &TerminalHandle,
        op_id: &str,
        shutdown: &CancellationToken,
    ) -> Result<(), EngineError> {
        let id = op_id.to_string();
        let now = self.now();
        let claimed = self
            .store
            .call(move |c| {
                let Some(op) = operations::get(c, &id)? else {
                    return Ok(None);
                };
                if op.state.is_final() {
                    return Ok(None);
                }
                let p = must_get(c, &op.payment_id)?;
                let was_sent = op.state == OpState::Sent;
                operations::set_state(c, &id, OpState::Sent, None, now)?;
                Ok(Some((op, p, was_sent)))
            })
            .await?;
        let Some((op, p, was_sent)) = claimed else {
            return Ok(());
        };
        let request = OperationRequest {
            reference: op.op_id.clone(),
            sale_ref: p
                .sale
                .terminal_ref
                .clone()
                .unwrap_or_else(|| p.payment_id.clone()),
            sale_amount_minor: p.amount_minor,
            amount_minor: op.amount_minor,
            currency: p.currency.clone(),
        };
        let mut backoff = Duration::from_secs(1);
        let mut check_first = was_sent;
        loop {
            if check_first {
                match terminal.query_operation(&op.op_id).await {
                    Ok(OperationQuery::Done) => {
                        return self.finish_operation(&op, OperationOutcome::Done).await;
                    }
                    Ok(OperationQuery::NotFound) => {}
                    Err(e) => {
                        tracing::error!(payment_id = %op.payment_id, op = %op.op_id, error = %e, "cannot tell whether the terminal did this {}; asking again", op.kind);
                        tokio::select! {
                            () = tokio::time::sleep(backoff) => {}
                            () = shutdown.cancelled() => return Ok(()),
                        }
                        backoff = (backoff * 2).min(RECOVERY_BACKOFF_MAX);
                        continue;
                    }
                }
            }
            let result = match op.kind {
                OpKind::Reversal | OpKind::SettleReversal => {
                    terminal.reverse(request.clone()).await
                }
                OpKind::Refund => terminal.refund(request.clone()).await,
            };
            match result {
                Ok(outcome) => return self.finish_operation(&op, outcome).await,
                Err(e) => {
                    tracing::warn!(payment_id = %op.payment_id, op = %op.op_id, error = %e, "no answer to the {}: asking the terminal", op.kind);
                    check_first = true;
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = shutdown.cancelled() => return Ok(()),
                    }
                    backoff = (backoff * 2).min(RECOVERY_BACKOFF_MAX);
                }
            }
        }
    }

    pub(super) async fn finish_operation(
        &self,
        op: &Operation,
        outcome: OperationOutcome,
    ) -> Result<(), EngineError> {
        let (state, detail) = match &outcome {
            OperationOutcome::Done => (OpState::Done, None),
            OperationOutcome::Unsupported(why) => (OpState::Unsupported, Some(why.clone())),
            OperationOutcome::Failed(why) => (OpState::Failed, Some(why.clone())),
        };
        let op2 = op.clone();
        let now = self.now();
        let payment_state = self
            .store
            .call(move |c| {
                let op = op2;
                operations::set_state(c, &op.op_id, state, detail.as_deref(), now)?;
                match (op.kind, state) {
                    (OpKind::Reversal, OpState::Done) => payments::cancel(c, &op.payment_id, &op.op_id, now)?,
                    (OpKind::Reversal, _) if op.request_id.is_none() => {
                        payments::set_alarm(c, &op.payment_id, Some("late approval could NOT be reversed: reverse it by hand"), now)?;
                    }
                    (OpKind::SettleReversal, OpState::Failed | OpState::Unsupported) => {
                        payments::set_alarm(c, &op.payment_id, Some("partial settlement: return the unsettled amount to the shopper by hand"), now)?;
                    }
                    (OpKind::Refund, OpState::Failed | OpState::Unsupported) => {
                        payments::add_refunded(c, &op.payment_id, -op.amount_minor, now)?;
                    }
                    _ => {}
                }
                Ok(must_get(c, &op.payment_id)?.state)
            })
            .await?;
        match state {
            OpState::Done => {
                tracing::info!(payment_id = %op.payment_id, op = %op.op_id, "{} done on the terminal", op.kind)
            }
            _ => {
                tracing::error!(payment_id = %op.payment_id, op = %op.op_id, outcome = ?outcome, "{} not done by the terminal: needs a person", op.kind)
            }
        }
        self.publish(&op.payment_id, payment_state);
        Ok(())
    }
}

fn sale_fields(outcome: &SaleOutcome) -> SaleFields {
    match outcome {
        SaleOutcome::Approved(a) => SaleFields {
            authorization_id: Some(a.authorization_code.clone()),
            nsu: Some(a.nsu.clone()),
            acquirer: Some(a.acquirer.clone()),
            code: Some("00".into()),
            message: Some(a.message.clone()),
            card_brand: Some(a.card_brand.clone()),
            first_digits: Some(a.first_digits.clone()),
            last_digits: Some(a.last_digits.clone()),
            terminal_ref: Some(a.terminal_ref.clone()),
        },
        SaleOutcome::Declined { code, message, .. } => SaleFields {
            code: Some(code.clone()),
            message: Some(message.clone()),
            ..SaleFields::default()
        },
    }
}

/// The callback carries the final Create answer, written in the same transaction as the result.
pub(super) fn enqueue_callback(
    c: &rusqlite::Connection,
    p: &crate::store::payments::Payment,
    now: i64,
) -> Result<(), crate::store::StoreError> {
    let body = PaymentAnswer::of(p, p.state.ppp_status(), None).to_json();
    outbox::enqueue(c, &p.payment_id, &p.callback_url, &body, now)
}
