//! One worker per terminal: takes charges first come, first served, journals the intent before
//! the terminal sees a sale, records each result before anything else, and resolves every
//! unclear sale through the terminal's recovery query — never by guessing, never by charging again.
//!
//! A lane that cannot go on (a sale the terminal cannot account for yet, a result the database
//! refuses to store) says so: [`LaneStatus`] is what store IT sees on the status page, in
//! `posbridge terminals list` and in the metrics.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::alarm_texts::About;
use super::finish::{self, cancelled};
use super::{Engine, EngineError, function_of, must_get};
use crate::locale::StoreTime;
use crate::money::Currency;
use crate::payment::{Payment, PaymentState, ResultEffect, SaleFields};
use crate::secret::random_id;
use crate::store::alarms::{self, AlarmKind};
use crate::store::operations::{self, OpKind, OpState, Operation};
use crate::store::payments;
use crate::store::{StoreError, receipts};
use crate::terminal::{
    DriverError, OperationOutcome, OperationQuery, OperationRequest, SaleInquiry, SaleOutcome,
    SaleQuery, SaleRequest, TerminalError, TerminalHandle, Verdict,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum LaneJob {
    /// Send the sale (if still wanted).
    Charge(String),
    /// The sale was sent but its result is unknown: ask the terminal.
    Recover(String),
    Operation(String),
    /// The terminal reported, on its own, the outcome of a sale it was asked about before
    /// (e.g. an approval that appeared after the sale was declared never done).
    LateResult(String, Box<SaleOutcome>),
    /// At start, before anything else: give the sales a two-phase terminal still holds
    /// provisional the verdict the database holds.
    ConfirmPending,
}

const RECOVERY_BACKOFF_MAX: Duration = Duration::from_secs(60);
/// How often a terminal still working on a sale is asked about it.
const IN_PROGRESS_POLL: Duration = Duration::from_secs(2);
const COMMIT_BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Why a lane is not taking new work, if it is not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LaneStatus {
    /// The payment the lane waits on.
    pub blocked_by: Option<String>,
    /// Why, in plain words.
    pub reason: Option<String>,
    /// Since when (unix ms).
    pub since_ms: Option<i64>,
}

/// The lane's status, shared with whoever shows it.
#[derive(Debug, Default)]
pub(super) struct LaneState(Mutex<LaneStatus>);

impl LaneState {
    pub(super) fn get(&self) -> LaneStatus {
        self.0.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn block(&self, payment_id: &str, reason: String, now_ms: i64) {
        if let Ok(mut s) = self.0.lock() {
            let since = match &s.blocked_by {
                Some(p) if p == payment_id => s.since_ms,
                _ => Some(now_ms),
            };
            *s = LaneStatus {
                blocked_by: Some(payment_id.to_string()),
                reason: Some(reason),
                since_ms: since,
            };
        }
    }

    fn clear(&self) {
        if let Ok(mut s) = self.0.lock() {
            *s = LaneStatus::default();
        }
    }
}

enum ChargeStep {
    Send(SaleRequest),
    Skip,
    /// Denied without reaching the terminal (never started within `secondsWaiting`, or a
    /// currency it cannot be charged in), and why.
    NotCharged(&'static str),
}

impl Engine {
    pub(super) async fn run_lane(
        self: Arc<Self>,
        terminal: TerminalHandle,
        status: Arc<LaneState>,
        mut jobs: mpsc::UnboundedReceiver<LaneJob>,
        shutdown: CancellationToken,
    ) {
        let lane = LaneCtx {
            terminal,
            status,
            shutdown,
        };
        loop {
            let job = tokio::select! {
                job = jobs.recv() => job,
                () = lane.shutdown.cancelled() => None,
            };
            let Some(job) = job else { break };
            let result = match &job {
                LaneJob::Charge(id) => self.charge(&lane, id).await,
                LaneJob::Recover(id) => self.recover(&lane, id).await,
                LaneJob::Operation(op_id) => self.run_operation(&lane, op_id).await,
                LaneJob::ConfirmPending => self.confirm_pending(&lane).await,
                LaneJob::LateResult(id, outcome) => {
                    tracing::warn!(payment_id = %id, terminal = lane.terminal.id(), "the terminal reports an outcome it did not have when asked");
                    self.record_sale(&lane, id, (**outcome).clone()).await
                }
            };
            lane.status.clear();
            if let Err(e) = result {
                tracing::error!(terminal = lane.terminal.id(), job = ?job, error = %e, "terminal job failed");
            }
        }
    }

    /// Runs `work` in a transaction until it is committed: a database that refuses (a full
    /// disk, an I/O error) is retried with backoff, alarmed once, and shown on the lane —
    /// what the terminal said is never dropped. Gives up only at shutdown (the terminal
    /// still knows, and recovery asks it again at the next start).
    async fn commit<R, F>(
        &self,
        lane: &LaneCtx,
        payment_id: &str,
        what: &'static str,
        work: F,
    ) -> Result<R, EngineError>
    where
        R: Send + 'static,
        F: Fn(&Connection) -> Result<R, StoreError> + Clone + Send + 'static,
    {
        let mut backoff = Duration::from_secs(1);
        let mut alarmed = false;
        loop {
            // Ahead of the queued Creates: the terminal has done it already, and the
            // Gateway's callback and the terminal's next step wait on this commit.
            match self.store.call_ahead(work.clone()).await {
                Ok(r) => {
                    if alarmed {
                        tracing::warn!(payment_id = %payment_id, "{what}: stored after all");
                    }
                    return Ok(r);
                }
                Err(StoreError::Closed) => return Err(StoreError::Closed.into()),
                Err(e) => {
                    if !alarmed {
                        alarmed = true;
                        tracing::error!(payment_id = %payment_id, error = %e, "ALARM: cannot store {what}; retrying until the database takes it (free disk space?)");
                        crate::observability::commit_retry(lane.terminal.id());
                    }
                    lane.status.block(
                        payment_id,
                        format!("cannot store {what} ({e}); retrying"),
                        self.now(),
                    );
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = lane.shutdown.cancelled() => return Err(e.into()),
                    }
                    backoff = (backoff * 2).min(COMMIT_BACKOFF_MAX);
                }
            }
        }
    }

    async fn charge(&self, lane: &LaneCtx, payment_id: &str) -> Result<(), EngineError> {
        let id = payment_id.to_string();
        let now = self.now();
        let step = self
            .commit(lane, payment_id, "the sale's start", move |c| {
                let p = must_get(c, &id)?;
                if p.state != PaymentState::Charging || p.sent_to_terminal_at.is_some() {
                    return Ok(ChargeStep::Skip);
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
                    finish::finish(c, &id, PaymentState::Denied, &sale, now)?;
                    return Ok(ChargeStep::NotCharged(
                        "the terminal stayed busy for longer than secondsWaiting",
                    ));
                }
                // Read before marking it sent: a currency the database cannot name is never
                // handed to the terminal (nor retried: it will not get better), it is denied.
                let Ok(currency) = Currency::parse(&p.currency) else {
                    let sale = SaleFields {
                        code: Some("currency-unsupported".into()),
                        message: Some(format!("currency `{}` cannot be charged", p.currency)),
                        ..SaleFields::default()
                    };
                    finish::finish(c, &id, PaymentState::Denied, &sale, now)?;
                    return Ok(ChargeStep::NotCharged("its currency cannot be charged"));
                };
                if !payments::mark_sent(c, &id, now)? {
                    return Ok(ChargeStep::Skip);
                }
                Ok(ChargeStep::Send(SaleRequest {
                    reference: p.payment_id.clone(),
                    amount_minor: p.amount_minor,
                    currency,
                    function: function_of(&p.method),
                    installments: p.installments,
                }))
            })
            .await?;
        let request = match step {
            ChargeStep::Send(r) => r,
            ChargeStep::NotCharged(why) => {
                tracing::warn!(payment_id = %payment_id, "denied: {why}");
                self.publish(payment_id, PaymentState::Denied);
                self.outbox.wake();
                return Ok(());
            }
            ChargeStep::Skip => return Ok(()),
        };
        crate::failpoint::hit("after-sale-marked-sent");
        tracing::info!(
            payment_id = %payment_id,
            terminal = lane.terminal.id(),
            "sale sent to the terminal"
        );
        match lane.terminal.sale(request).await {
            Ok(outcome) => {
                crate::failpoint::hit("after-terminal-result");
                self.record_sale(lane, payment_id, outcome).await
            }
            Err(TerminalError::Driver(DriverError::NotSent(why))) => {
                tracing::warn!(payment_id = %payment_id, error = %why, "the terminal is offline: sale not sent");
                let outcome = SaleOutcome::declined(
                    "terminal-offline",
                    &format!("the terminal could not be reached: {why}"),
                );
                self.record_sale(lane, payment_id, outcome).await
            }
            Err(TerminalError::Driver(DriverError::NotJournaled(why))) => {
                tracing::error!(payment_id = %payment_id, terminal = lane.terminal.id(), error = %why, "ALARM: the terminal's journal cannot be written (a full disk?): sale not sent");
                let outcome = SaleOutcome::declined(
                    "journal-unwritable",
                    &format!(
                        "the sale was not sent: posbridge cannot write terminal {}'s journal ({why}); free disk space",
                        lane.terminal.id()
                    ),
                );
                self.record_sale(lane, payment_id, outcome).await
            }
            Err(e) => {
                tracing::warn!(payment_id = %payment_id, error = %e, "no result from the terminal: asking it what happened");
                self.recover(lane, payment_id).await
            }
        }
    }

    /// The sales a two-phase terminal still holds provisional (the daemon stopped between
    /// storing a result and confirming it) get the verdict the database holds. One whose
    /// payment is still on the terminal is left to its recovery, which gives the verdict.
    async fn confirm_pending(&self, lane: &LaneCtx) -> Result<(), EngineError> {
        let pending = match lane.terminal.unconfirmed().await {
            Ok(pending) => pending,
            Err(e) => {
                tracing::warn!(terminal = lane.terminal.id(), error = %e, "cannot list the sales the terminal holds provisional");
                return Ok(());
            }
        };
        for (reference, terminal_ref) in pending {
            let id = reference.clone();
            let found = self.store.call(move |c| payments::get(c, &id)).await?;
            let Some(p) = found else {
                tracing::warn!(payment_id = %reference, terminal = lane.terminal.id(), "the terminal holds a provisional sale for a payment the database does not know; left as it is");
                continue;
            };
            if p.state.on_terminal() {
                continue;
            }
            let verdict = verdict_on(&p, Some(&terminal_ref));
            tracing::info!(payment_id = %reference, terminal = lane.terminal.id(), verdict = ?verdict, "giving a provisional sale on the terminal the verdict stored before the restart");
            if let Err(e) = lane.terminal.committed(&reference, verdict).await {
                tracing::warn!(payment_id = %reference, terminal = lane.terminal.id(), error = %e, "the terminal was not told the verdict; it is told again before its next sale");
            }
        }
        Ok(())
    }

    /// Asks the terminal until it says what happened to the sale. Proven not done → denied;
    /// proven done → its result; cannot tell yet → stays undefined, alarm, ask again (the lane
    /// waits: another sale would overwrite what the terminal can repeat); cannot tell ever →
    /// unresolved, alarm, a person decides, the lane goes on.
    async fn recover(&self, lane: &LaneCtx, payment_id: &str) -> Result<(), EngineError> {
        let mut backoff = Duration::from_secs(1);
        let mut alarmed = false;
        loop {
            // Read each time: a cancel that arrives meanwhile lets the terminal abort the sale.
            let id = payment_id.to_string();
            let p = self.store.call(move |c| must_get(c, &id)).await?;
            if !p.state.on_terminal() {
                return Ok(());
            }
            let inquiry = SaleInquiry {
                reference: p.payment_id.clone(),
                amount_minor: p.amount_minor,
                currency: p.currency.clone(),
                sent_at_ms: p.sent_to_terminal_at.unwrap_or(p.created_at),
                cancel_requested: p.cancel_requested_at.is_some(),
            };
            match lane.terminal.query_sale(inquiry).await {
                Ok(SaleQuery::Completed(outcome)) => {
                    tracing::info!(
                        payment_id = %payment_id,
                        "recovery: the terminal reports the sale completed"
                    );
                    return self.record_sale(lane, payment_id, outcome).await;
                }
                Ok(SaleQuery::NotFound) => {
                    tracing::info!(payment_id = %payment_id, "recovery: the terminal has no such transaction and can no longer complete it");
                    let outcome = SaleOutcome::declined(
                        "no-transaction",
                        "the terminal has no record of the sale",
                    );
                    return self.record_sale(lane, payment_id, outcome).await;
                }
                Ok(SaleQuery::Unresolvable(why)) => {
                    return self.mark_unresolved(lane, payment_id, &why).await;
                }
                Ok(SaleQuery::InProgress) => {
                    // Not too often: each question is a Repeat Receipt on the terminal's line.
                    backoff = IN_PROGRESS_POLL;
                    lane.status.block(
                        payment_id,
                        format!("waiting for the terminal to finish payment {payment_id}"),
                        self.now(),
                    );
                }
                Err(e) => {
                    if !alarmed {
                        alarmed = true;
                        self.mark_unknown(lane, payment_id, &e).await?;
                    }
                    lane.status.block(
                        payment_id,
                        format!(
                            "cannot tell yet whether payment {payment_id} was charged ({e}); asking the terminal again"
                        ),
                        self.now(),
                    );
                    backoff = (backoff * 2).min(RECOVERY_BACKOFF_MAX);
                }
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = lane.shutdown.cancelled() => return Ok(()),
            }
        }
    }

    async fn mark_unknown(
        &self,
        lane: &LaneCtx,
        payment_id: &str,
        error: &TerminalError,
    ) -> Result<(), EngineError> {
        tracing::error!(payment_id = %payment_id, error = %error, "ALARM: cannot tell whether the terminal charged this payment; it stays undefined and the terminal will be asked again");
        let reason = error.to_string();
        self.mark_unclear(lane, payment_id, PaymentState::Unknown, move |about| {
            (AlarmKind::Unknown, about.unknown(&reason))
        })
        .await
    }

    async fn mark_unresolved(
        &self,
        lane: &LaneCtx,
        payment_id: &str,
        why: &str,
    ) -> Result<(), EngineError> {
        tracing::error!(payment_id = %payment_id, reason = %why, "ALARM: the terminal can no longer tell whether this payment was charged; it stays undefined until a person decides");
        let why = why.to_string();
        self.mark_unclear(lane, payment_id, PaymentState::Unresolved, move |about| {
            (AlarmKind::Unresolved, about.unresolved(&why))
        })
        .await
    }

    /// Stores that the terminal cannot (yet) tell what happened to a sale, with its alarm.
    async fn mark_unclear<T>(
        &self,
        lane: &LaneCtx,
        payment_id: &str,
        state: PaymentState,
        alarm: T,
    ) -> Result<(), EngineError>
    where
        T: Fn(&About<'_>) -> (AlarmKind, String) + Clone + Send + 'static,
    {
        let id = payment_id.to_string();
        let now = self.now();
        let time = self.store_time.clone();
        self.commit(lane, payment_id, "an unclear sale's state", move |c| {
            payments::set_state(c, &id, state, now)?;
            let p = must_get(c, &id)?;
            let (kind, text) = alarm(&About {
                payment: &p,
                time: &time,
                now,
            });
            if kind == AlarmKind::Unresolved {
                alarms::clear(c, &id, &[AlarmKind::Unknown], now)?;
            }
            alarms::raise(c, kind, Some(&id), None, &text, now)?;
            Ok(())
        })
        .await?;
        self.publish(payment_id, state);
        Ok(())
    }

    /// Commits a terminal result (and its callback) before anything else happens.
    async fn record_sale(
        &self,
        lane: &LaneCtx,
        payment_id: &str,
        outcome: SaleOutcome,
    ) -> Result<(), EngineError> {
        let approved = matches!(outcome, SaleOutcome::Approved(_));
        let terminal_ref = match &outcome {
            SaleOutcome::Approved(a) => Some(a.terminal_ref.clone()),
            SaleOutcome::Declined { .. } => None,
        };
        let sale = sale_fields(&outcome);
        let receipts: Vec<_> = outcome
            .receipts()
            .iter()
            .map(|r| (r.kind.as_str(), r.lines.join("\n")))
            .collect();
        let id = payment_id.to_string();
        let now = self.now();
        let cancellation_id = random_id("cx")?;
        let op_id = random_id("rv")?;
        let late_op_id = op_id.clone();
        let time = self.store_time.clone();
        let (effect, payment, verdict, callback) = self
            .commit(lane, payment_id, "the terminal's result", move |c| {
                let p = must_get(c, &id)?;
                let mut effect = p.state.on_result(approved, p.cancel_requested_at.is_some());
                if approved && terminal_ref.is_some() && p.sale.terminal_ref == terminal_ref {
                    // The approval this payment already has, told again: nothing new.
                    effect = ResultEffect::Ignore;
                }
                if effect != ResultEffect::Ignore {
                    for (kind, text) in &receipts {
                        receipts::insert(c, &id, kind, text, now)?;
                    }
                }
                let mut callback = None;
                match effect {
                    ResultEffect::Finish(state) => {
                        callback = finish::finish(c, &id, state, &sale, now)?;
                        alarms::clear(c, &id, &RECOVERED, now)?;
                    }
                    ResultEffect::CompleteCancel => {
                        callback = finish::finish(c, &id, PaymentState::Cancelled, &sale, now)?;
                        payments::record_cancellation(c, &id, &cancellation_id, now)?;
                        alarms::clear(c, &id, &RECOVERED, now)?;
                    }
                    ResultEffect::ReverseLateApproval => {
                        // Reported (or about to be) as not approved: it stays so, and the
                        // terminal's approval is reversed at once.
                        callback = finish::finish(
                            c,
                            &id,
                            PaymentState::Cancelled,
                            &cancelled("the payment was cancelled before the terminal approved it; the approval is reversed"),
                            now,
                        )?;
                        alarms::clear(c, &id, &RECOVERED, now)?;
                        let p = must_get(c, &id)?;
                        let about = About {
                            payment: &p,
                            time: &time,
                            now,
                        };
                        alarms::raise(
                            c,
                            AlarmKind::LateApproval,
                            Some(&id),
                            None,
                            &about.late_approval_reversing(),
                            now,
                        )?;
                        operations::insert(
                            c,
                            &Operation {
                                op_id: late_op_id.clone(),
                                payment_id: id.clone(),
                                kind: OpKind::Reversal,
                                request_id: None,
                                amount_minor: p.amount_minor,
                                state: OpState::Pending,
                                detail: Some("late approval".into()),
                                sale_ref: terminal_ref.clone(),
                            },
                            now,
                        )?;
                    }
                    ResultEffect::Ignore => {}
                }
                let p = must_get(c, &id)?;
                let verdict = verdict_on(&p, terminal_ref.as_deref());
                Ok((effect, p, verdict, callback))
            })
            .await?;
        crate::failpoint::hit("after-result-committed");
        let state = payment.state;
        // Only now may a two-phase terminal confirm the sale (or undo it); the payment is
        // settled in the database either way, so a failure here is told, never acted on (the
        // driver asks again before its next sale, and at start through `unconfirmed`).
        if let Err(e) = lane.terminal.committed(payment_id, verdict).await {
            tracing::warn!(payment_id = %payment_id, terminal = lane.terminal.id(), error = %e, "the terminal was not told that the result is stored");
        }
        match effect {
            ResultEffect::Finish(finished) => {
                crate::observability::payment_result(finished.as_str());
                tracing::info!(payment_id = %payment_id, state = %state, "terminal result recorded; callback queued");
            }
            ResultEffect::CompleteCancel => tracing::info!(
                payment_id = %payment_id,
                "sale aborted on the terminal: payment cancelled; callback queued"
            ),
            ResultEffect::ReverseLateApproval => {
                tracing::error!(
                    payment_id = %payment_id,
                    "ALARM: the terminal approved a payment that was already cancelled or declared failed; reversing it now"
                );
            }
            ResultEffect::Ignore => {
                tracing::warn!(payment_id = %payment_id, state = %state, "ignoring a terminal result for a payment already final")
            }
        }
        // Committed: its first attempt starts without a look at the outbox.
        match callback {
            Some(callback) => self.outbox.hand_over(callback),
            None => self.outbox.wake(),
        }
        self.publish(payment_id, state);
        if effect == ResultEffect::ReverseLateApproval {
            return self.run_operation(lane, &op_id).await;
        }
        Ok(())
    }

    /// Runs a reversal or refund on the terminal, once: an operation already sent is first
    /// looked up on the terminal.
    pub(super) async fn run_operation(
        &self,
        lane: &LaneCtx,
        op_id: &str,
    ) -> Result<(), EngineError> {
        let id = op_id.to_string();
        let now = self.now();
        let claimed = self
            .commit(lane, op_id, "the operation's start", move |c| {
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
        crate::failpoint::hit("after-operation-sent");
        let request = OperationRequest {
            reference: op.op_id.clone(),
            sale_ref: op
                .sale_ref
                .clone()
                .or_else(|| p.sale.terminal_ref.clone())
                .unwrap_or_else(|| p.payment_id.clone()),
            sale_amount_minor: p.amount_minor,
            sale_at_ms: p.sent_to_terminal_at.unwrap_or(p.created_at),
            amount_minor: op.amount_minor,
            currency: p.currency.clone(),
        };
        let mut backoff = Duration::from_secs(1);
        let mut check_first = was_sent;
        loop {
            if check_first {
                match lane.terminal.query_operation(&op.op_id).await {
                    Ok(OperationQuery::Done) => {
                        return self
                            .finish_operation(lane, &op, OperationOutcome::Done)
                            .await;
                    }
                    Ok(OperationQuery::NotFound) => {}
                    Err(e) => {
                        tracing::error!(payment_id = %op.payment_id, op = %op.op_id, error = %e, "cannot tell whether the terminal did this {}; asking again", op.kind);
                        lane.status.block(
                            &op.payment_id,
                            format!("cannot tell yet whether the terminal did the {} of payment {} ({e}); asking again", op.kind, op.payment_id),
                            self.now(),
                        );
                        tokio::select! {
                            () = tokio::time::sleep(backoff) => {}
                            () = lane.shutdown.cancelled() => return Ok(()),
                        }
                        backoff = (backoff * 2).min(RECOVERY_BACKOFF_MAX);
                        continue;
                    }
                }
            }
            let result = match op.kind {
                OpKind::Reversal | OpKind::SettleReversal => {
                    lane.terminal.reverse(request.clone()).await
                }
                OpKind::Refund => lane.terminal.refund(request.clone()).await,
            };
            match result {
                Ok(outcome) => {
                    crate::failpoint::hit("after-operation-result");
                    return self.finish_operation(lane, &op, outcome).await;
                }
                Err(e) => {
                    tracing::warn!(payment_id = %op.payment_id, op = %op.op_id, error = %e, "no answer to the {}: asking the terminal", op.kind);
                    check_first = true;
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = lane.shutdown.cancelled() => return Ok(()),
                    }
                    backoff = (backoff * 2).min(RECOVERY_BACKOFF_MAX);
                }
            }
        }
    }

    pub(super) async fn finish_operation(
        &self,
        lane: &LaneCtx,
        op: &Operation,
        outcome: OperationOutcome,
    ) -> Result<(), EngineError> {
        let payment_state = self
            .commit(
                lane,
                &op.payment_id,
                "the operation's result",
                record_operation(
                    op.clone(),
                    outcome.clone(),
                    self.store_time.clone(),
                    self.now(),
                ),
            )
            .await?;
        match &outcome {
            OperationOutcome::Done => {
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

/// Where a lane job runs: its terminal, its status, and the daemon's shutdown.
pub(super) struct LaneCtx {
    pub(super) terminal: TerminalHandle,
    pub(super) status: Arc<LaneState>,
    pub(super) shutdown: CancellationToken,
}

/// The transaction that records what the terminal did with an operation.
pub(super) fn record_operation(
    op: Operation,
    outcome: OperationOutcome,
    time: StoreTime,
    now: i64,
) -> impl Fn(&Connection) -> Result<PaymentState, StoreError> + Clone + Send + 'static {
    move |c| {
        let (state, detail) = match &outcome {
            OperationOutcome::Done => (OpState::Done, None),
            OperationOutcome::Unsupported(why) => (OpState::Unsupported, Some(why.clone())),
            OperationOutcome::Failed(why) => (OpState::Failed, Some(why.clone())),
        };
        operations::set_state(c, &op.op_id, state, detail.as_deref(), now)?;
        let late_approval = op.kind == OpKind::Reversal && op.request_id.is_none();
        if op.kind == OpKind::Reversal && state == OpState::Done {
            payments::record_cancellation(c, &op.payment_id, &op.op_id, now)?;
        }
        if op.kind == OpKind::Refund && matches!(state, OpState::Failed | OpState::Unsupported) {
            payments::add_refunded(c, &op.payment_id, -op.amount_minor, now)?;
        }
        let p = must_get(c, &op.payment_id)?;
        let about = About {
            payment: &p,
            time: &time,
            now,
        };
        let why = detail.as_deref().unwrap_or("the terminal refused");
        let alarm = match (op.kind, state) {
            (OpKind::Reversal, OpState::Done) if late_approval => {
                Some((AlarmKind::LateApproval, about.late_approval_reversed()))
            }
            (OpKind::Reversal, _) if late_approval => {
                alarms::clear(c, &op.payment_id, &[AlarmKind::LateApproval], now)?;
                Some((
                    AlarmKind::LateApprovalNotReversed,
                    about.late_approval_not_reversed(why),
                ))
            }
            (OpKind::SettleReversal, OpState::Failed | OpState::Unsupported) => Some((
                AlarmKind::SettleReturn,
                about.settle_return(op.amount_minor, why),
            )),
            _ => None,
        };
        if let Some((kind, text)) = alarm {
            alarms::raise(c, kind, Some(&op.payment_id), None, &text, now)?;
        }
        Ok(p.state)
    }
}

/// Alarms that clear by themselves once the terminal's result is stored.
const RECOVERED: [AlarmKind; 3] = [
    AlarmKind::Unknown,
    AlarmKind::Unresolved,
    AlarmKind::CaughtUp,
];

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

/// What the database made of a sale's result: an approval is kept only when the payment is
/// approved with that very sale.
fn verdict_on(p: &Payment, terminal_ref: Option<&str>) -> Verdict {
    match terminal_ref {
        Some(sale)
            if p.state == PaymentState::Approved
                && p.sale.terminal_ref.as_deref() == Some(sale) =>
        {
            Verdict::Keep
        }
        _ => Verdict::Undo,
    }
}
