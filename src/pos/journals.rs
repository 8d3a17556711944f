//! At start, the terminals' journals are the truth about what was handed to a terminal; the
//! database is checked against them before anything is charged. A database that is *behind*
//! (restored from a backup taken before a sale was sent) has those payments moved to "sent",
//! so they are recovered from the terminal and never charged again. Journal entries the
//! database does not know at all stop the start, unless store IT adopted them
//! (`posbridge adopt-journals`): an adopted sale is taken over by the Create the Gateway
//! repeats for it, and recovered from the terminal.

use std::fmt;

use rusqlite::Connection;

use super::alarm_texts::{About, adopted_sale};
use super::{Engine, EngineError, must_get};
use crate::locale::StoreTime;
use crate::payment::PaymentState;
use crate::store::alarms::{self, AlarmKind};
use crate::store::operations::{self, OpState};
use crate::store::{StoreError, orphans, payments};
use crate::terminal::SentRecord;

/// Journal entries the database does not know, per terminal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnknownEntries(pub Vec<(String, SentRecord)>);

impl fmt::Display for UnknownEntries {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: Vec<String> = self
            .0
            .iter()
            .take(10)
            .map(|(terminal, r)| format!("{} (terminal {terminal})", r.reference))
            .collect();
        write!(f, "{}", shown.join(", "))?;
        if self.0.len() > shown.len() {
            write!(f, " and {} more", self.0.len() - shown.len())?;
        }
        Ok(())
    }
}

/// What the check found and did.
#[derive(Debug, Default)]
pub struct Reconciled {
    /// Payments the database had not seen sent: now sent, to be recovered.
    pub caught_up: Vec<String>,
    /// Entries adopted now (with `adopt`).
    pub adopted: usize,
}

impl Engine {
    /// Checks the database against every terminal's journal (see the module docs). Entries
    /// older than `ignore_before_ms` are expected to be gone (the retention purge).
    pub async fn reconcile_journals(
        &self,
        adopt: bool,
        ignore_before_ms: i64,
    ) -> Result<Reconciled, EngineError> {
        let mut sent = Vec::new();
        for (terminal_id, _, handle) in self.terminals() {
            let records = handle.sent().await.map_err(|error| EngineError::Journal {
                terminal: terminal_id.clone(),
                error,
            })?;
            sent.extend(records.into_iter().map(|r| (terminal_id.clone(), r)));
        }
        let now = self.now();
        let time = self.store_time.clone();
        let (reconciled, unknown) = self
            .store
            .call(move |c| {
                let mut reconciled = Reconciled::default();
                let mut unknown = UnknownEntries::default();
                for (terminal_id, record) in sent {
                    match check(c, &terminal_id, &record, &time, now)? {
                        Check::Known => {}
                        Check::CaughtUp => reconciled.caught_up.push(record.reference.clone()),
                        Check::Unknown if record.at_ms < ignore_before_ms => {}
                        Check::Unknown if adopt => {
                            orphans::adopt(
                                c,
                                &terminal_id,
                                &record.reference,
                                record.amount_minor,
                                record.at_ms,
                                now,
                            )?;
                            alarms::raise(
                                c,
                                AlarmKind::AdoptedSale,
                                None,
                                Some(&adopted_subject(&terminal_id, &record.reference)),
                                &adopted_sale(
                                    &terminal_id,
                                    &record.reference,
                                    record.amount_minor,
                                    record.at_ms,
                                    &time,
                                    now,
                                ),
                                now,
                            )?;
                            reconciled.adopted += 1;
                        }
                        Check::Unknown => unknown.0.push((terminal_id, record)),
                    }
                }
                Ok((reconciled, unknown))
            })
            .await?;
        for payment_id in &reconciled.caught_up {
            tracing::error!(payment_id = %payment_id, "ALARM: the database is older than the terminal's journal (restored from a backup?): this payment was already sent to the terminal; recovering it from the terminal, never charging it again");
        }
        if !unknown.0.is_empty() {
            return Err(EngineError::JournalsAhead(unknown));
        }
        Ok(reconciled)
    }
}

enum Check {
    Known,
    CaughtUp,
    Unknown,
}

/// The subject of an adopted journal entry's alarm.
pub(super) fn adopted_subject(terminal_id: &str, reference: &str) -> String {
    format!("{terminal_id}/{reference}")
}

/// One journal entry against the database: a payment the database had not seen sent is moved
/// to sent (on that terminal), an operation to sent (it is looked up before it is redone).
fn check(
    c: &Connection,
    terminal_id: &str,
    record: &SentRecord,
    time: &StoreTime,
    now: i64,
) -> Result<Check, StoreError> {
    if let Some(p) = payments::get(c, &record.reference)? {
        let behind = matches!(p.state, PaymentState::Received | PaymentState::Bound)
            || (p.state == PaymentState::Charging && p.sent_to_terminal_at.is_none());
        if !behind {
            return Ok(Check::Known);
        }
        mark_sent_from_journal(c, &p.payment_id, terminal_id, record.at_ms, time, now)?;
        return Ok(Check::CaughtUp);
    }
    if let Some(op) = operations::get(c, &record.reference)? {
        if op.state == OpState::Pending {
            operations::set_state(c, &op.op_id, OpState::Sent, None, record.at_ms)?;
        }
        return Ok(Check::Known);
    }
    Ok(if orphans::is_adopted(c, terminal_id, &record.reference)? {
        Check::Known
    } else {
        Check::Unknown
    })
}

/// A payment the database had not seen sent, though the terminal's journal shows it was: it is
/// moved to "sent" (to be recovered from the terminal, never charged again) and a person is told.
pub(super) fn mark_sent_from_journal(
    c: &Connection,
    payment_id: &str,
    terminal_id: &str,
    sent_at_ms: i64,
    time: &StoreTime,
    now: i64,
) -> Result<(), StoreError> {
    payments::mark_sent_from_journal(c, payment_id, terminal_id, sent_at_ms)?;
    let p = must_get(c, payment_id)?;
    let text = About {
        payment: &p,
        time,
        now,
    }
    .caught_up();
    alarms::raise(
        c,
        AlarmKind::CaughtUp,
        Some(&p.payment_id),
        None,
        &text,
        now,
    )?;
    Ok(())
}
