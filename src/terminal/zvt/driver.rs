//! The ZVT driver (posbridge is the ECR): registration on connect, sales, reversals, recovery
//! through Repeat Receipt, status enquiry and end of day.
//!
//! ZVT cannot be asked about a sale by our reference: the terminal only repeats its *last*
//! transaction. So on every (re)connection the driver reads what the terminal is (its ID and
//! last transaction), and before each sale journals (on disk, beside the database) the amount
//! and that snapshot. Recovery then judges the terminal's last transaction against it (see
//! `recovery`): ours → its result; unchanged → the sale is proven never done only once the
//! terminal can no longer complete it (it accepted an abort, or `result_timeout_s` has passed
//! since the sale was sent); anything else → the terminal can no longer tell (a person
//! decides). A sale declared never done is watched until the next transaction: an approval
//! that shows up for it after all is reported (and reversed by the engine).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use firmware_protocols::zvt::{
    Amount, BmpList, CurrencyCode, Message, Password, ResultCode, messages,
};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::dialogue::{self, Dialogue, Ending, Prompts, Timeouts};
use super::link::{LinkError, ZvtLink};
use super::recovery::{Sent, Snapshot, Transaction, Verdict, judge, time_over_proves_nothing};
use super::transport::{BoxStream, Transport};
use crate::clock::SharedClock;
use crate::terminal::{
    Approval, DriverError, OperationOutcome, OperationQuery, OperationRequest, PromptSink,
    SaleInquiry, SaleOutcome, SaleQuery, SaleRequest, SentRecord, TerminalDriver,
};

/// Registration config byte: the ECR gets receipts (print commands) and intermediate
/// status, and controls payment and administration.
pub const DEFAULT_CONFIG_BYTE: u8 = messages::config_bits::ECR_PRINTS_PAYMENT_RECEIPTS
    | messages::config_bits::ECR_PRINTS_ADMIN_RECEIPTS
    | messages::config_bits::INTERMEDIATE_STATUS
    | messages::config_bits::ECR_CONTROLS_PAYMENT
    | messages::config_bits::ECR_CONTROLS_ADMIN
    | messages::config_bits::RECEIPTS_VIA_PRINT_COMMANDS;

/// Result codes a terminal answers Repeat Receipt with when it has nothing to repeat
/// ("function not possible"; some terminals answer "wrong currency").
const NOTHING_TO_REPEAT: [ResultCode; 2] = [ResultCode(0x83), ResultCode(0x6F)];
/// Refusals that only say "not now": please wait, receiver not ready.
const BUSY: [ResultCode; 2] = [ResultCode(0x9C), ResultCode(0xA0)];

#[derive(Debug, Clone)]
pub struct ZvtSettings {
    pub transport: Transport,
    pub password: String,
    pub config_byte: u8,
    pub timeouts: Timeouts,
    /// The longest a sale takes on this terminal (`result_timeout_s`): a sale it has not
    /// completed by then, and that it does not remember, is never done.
    pub sale_window: Duration,
}

/// What the driver remembers on disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
enum JournalEntry {
    /// What the terminal was at a (re)connection. (`trace`: journals before snapshots.)
    Baseline {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        trace: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        snapshot: Option<Snapshot>,
    },
    /// A sale or reversal about to be sent, with the terminal as it was at that moment.
    /// (`trace_before`: journals before snapshots.)
    Intent {
        reference: String,
        amount_minor: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        trace_before: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        before: Option<Snapshot>,
        at: i64,
    },
    /// A sale declared never done: watched for a late approval until the next transaction.
    NotDone { reference: String, at: i64 },
    /// The late outcome of a sale declared never done was reported.
    LateReported { reference: String },
    /// The terminal forgot its transactions (reset) or is another one: receipt numbers from
    /// before mean nothing to it now.
    Reset { at: i64, why: String },
}

/// The configured ZVT password is not six decimal digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the ZVT password must be 6 digits")]
pub struct PasswordError;

/// The terminal's 6-digit password, as the config writes it (`"000000"`).
pub fn parse_password(text: &str) -> Result<Password, PasswordError> {
    if text.len() != 6 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PasswordError);
    }
    text.parse()
        .ok()
        .and_then(Password::from_number)
        .ok_or(PasswordError)
}

pub struct ZvtDriver {
    terminal_id: String,
    settings: ZvtSettings,
    password: Password,
    link: Option<ZvtLink<BoxStream>>,
    /// An exchange was interrupted (its future dropped by a timeout): the line may hold
    /// half a dialogue, so it is reopened before the next command.
    interrupted: bool,
    journal: PathBuf,
    /// Set when the journal could not be read at start: recovery then cannot tell.
    journal_unreadable: Option<String>,
    /// The terminal as last seen on this connection; `None`: read it before the next sale.
    snapshot: Option<Snapshot>,
    /// The last snapshot journaled: how a reset or a replaced terminal is noticed.
    previous: Option<Snapshot>,
    /// When the terminal was last found reset or replaced (unix ms).
    reset_at: Option<i64>,
    /// What was sent, by reference.
    sent: HashMap<String, Sent>,
    /// Sales declared never done, watched for an approval that shows up after all.
    not_done: HashMap<String, Sent>,
    /// Outcomes found for watched sales, for the engine to take.
    late: Vec<(String, SaleOutcome)>,
    clock: SharedClock,
}

fn disconnected(e: LinkError) -> DriverError {
    DriverError::Disconnected(e.to_string())
}

fn result_text(code: ResultCode) -> String {
    code.text()
        .map_or_else(|| format!("result code {:#04x}", code.0), str::to_string)
}

/// What Repeat Receipt showed: the terminal's ID, its last transaction (none: nothing to
/// repeat), and the whole reply (for the outcome of a sale found in it).
struct Repeated {
    terminal_id: Option<u32>,
    last: Option<Transaction>,
    reply: Dialogue,
}

/// The terminal's reference of an approved sale, named by its reversal: the terminal ID (when
/// known) and the receipt number, `52500017/0042`.
fn terminal_ref(terminal_id: Option<u32>, receipt: Option<u16>) -> String {
    match (terminal_id, receipt) {
        (Some(tid), Some(r)) => format!("{tid:08}/{r}"),
        (None, Some(r)) => r.to_string(),
        (_, None) => String::new(),
    }
}

fn parse_terminal_ref(reference: &str) -> Option<(Option<u32>, u16)> {
    match reference.split_once('/') {
        Some((tid, receipt)) => Some((Some(tid.parse().ok()?), receipt.parse().ok()?)),
        None => Some((None, reference.parse().ok()?)),
    }
}

impl ZvtDriver {
    pub fn new(
        terminal_id: &str,
        settings: ZvtSettings,
        journal: PathBuf,
        clock: SharedClock,
    ) -> Result<Self, PasswordError> {
        let password = parse_password(&settings.password)?;
        let mut driver = Self {
            terminal_id: terminal_id.to_string(),
            settings,
            password,
            link: None,
            interrupted: false,
            journal,
            journal_unreadable: None,
            snapshot: None,
            previous: None,
            reset_at: None,
            sent: HashMap::new(),
            not_done: HashMap::new(),
            late: Vec::new(),
            clock,
        };
        driver.load_journal();
        Ok(driver)
    }

    /// Where the driver of `terminal_id` keeps its journal, beside the database.
    pub fn journal_path(database: &Path, terminal_id: &str) -> PathBuf {
        crate::terminal::journal::path_beside(database, "zvt", terminal_id)
    }

    fn load_journal(&mut self) {
        let entries = match crate::terminal::journal::read::<JournalEntry>(&self.journal) {
            Ok(entries) => entries,
            Err(e) => {
                // Without the journal, "no intent" proves nothing: recovery must not decide.
                tracing::error!(terminal = %self.terminal_id, error = %e, "ALARM: cannot read the ZVT journal");
                self.journal_unreadable = Some(e.to_string());
                Vec::new()
            }
        };
        for entry in entries {
            match entry {
                JournalEntry::Baseline { snapshot, .. } => {
                    if snapshot.is_some() {
                        self.previous = snapshot;
                    }
                }
                JournalEntry::Intent {
                    reference,
                    amount_minor,
                    trace_before,
                    before,
                    at,
                } => {
                    // A new transaction ends every watch (see `end_watches`).
                    self.not_done.clear();
                    let before = before.unwrap_or_else(|| Snapshot {
                        terminal_id: None,
                        last: trace_before.map(|trace| Transaction {
                            trace,
                            amount_minor: None,
                            date: None,
                            time: None,
                            terminal_id: None,
                        }),
                    });
                    self.sent.insert(
                        reference,
                        Sent {
                            amount_minor,
                            before,
                            at,
                        },
                    );
                }
                JournalEntry::NotDone { reference, .. } => {
                    if let Some(sent) = self.sent.get(&reference) {
                        self.not_done.insert(reference, sent.clone());
                    }
                }
                JournalEntry::LateReported { reference } => {
                    self.not_done.remove(&reference);
                }
                JournalEntry::Reset { at, .. } => self.reset_at = Some(at),
            }
        }
    }

    fn append(&self, entry: &JournalEntry) -> Result<(), DriverError> {
        crate::terminal::journal::append(&self.journal, entry)
    }

    /// The live link, connecting, registering and reading the terminal first if needed.
    async fn link(&mut self) -> Result<&mut ZvtLink<BoxStream>, DriverError> {
        if std::mem::take(&mut self.interrupted) {
            self.link = None;
        }
        if self.link.is_none() {
            // A new connection may reach another terminal, or a reset one: read it again.
            self.snapshot = None;
            let stream = self.settings.transport.open().await.map_err(disconnected)?;
            let mut link = ZvtLink::new(stream, self.settings.transport.framing());
            let registration = Message::Registration(messages::Registration::new(
                self.password,
                self.settings.config_byte,
                None,
            ));
            let reply = dialogue::run(&mut link, &registration, self.settings.timeouts, None, None)
                .await
                .map_err(disconnected)?;
            match reply.ending {
                Ending::Completed => {
                    tracing::info!(terminal = %self.terminal_id, transport = %self.settings.transport, "ZVT terminal registered")
                }
                other => {
                    return Err(DriverError::Disconnected(format!(
                        "the terminal did not register posbridge: it {other}"
                    )));
                }
            }
            let registered_as = reply.completion.as_ref().and_then(BmpList::terminal_id);
            let repeated = Self::repeat_on(
                &mut link,
                self.password,
                self.settings.timeouts,
                registered_as,
            )
            .await?
            .ok_or_else(|| {
                DriverError::Disconnected(
                    "the terminal is busy and cannot say what its last transaction was".into(),
                )
            })?;
            self.link = Some(link);
            self.take_snapshot(&repeated)?;
        }
        self.link
            .as_mut()
            .ok_or_else(|| DriverError::Disconnected("not connected".into()))
    }

    /// One exchange on the live link; a broken line drops the connection (the next call
    /// reconnects).
    async fn exchange(
        &mut self,
        command: &Message,
        prompts: Option<Prompts<'_>>,
        abort: Option<&CancellationToken>,
    ) -> Result<Dialogue, DriverError> {
        let timeouts = self.settings.timeouts;
        self.link().await?;
        self.interrupted = true;
        let Some(link) = self.link.as_mut() else {
            return Err(DriverError::Disconnected("not connected".into()));
        };
        let result = dialogue::run(link, command, timeouts, prompts, abort).await;
        self.interrupted = false;
        self.lost_line_on(result)
    }

    fn lost_line_on<T>(&mut self, result: Result<T, LinkError>) -> Result<T, DriverError> {
        result.map_err(|e| {
            tracing::warn!(terminal = %self.terminal_id, error = %e, "ZVT line lost");
            self.link = None;
            disconnected(e)
        })
    }

    /// Repeat Receipt on `link`: the terminal's last transaction, or none; `Ok(None)` when
    /// the terminal is busy (it refused with "please wait" / "receiver not ready").
    async fn repeat_on(
        link: &mut ZvtLink<BoxStream>,
        password: Password,
        timeouts: Timeouts,
        registered_as: Option<u32>,
    ) -> Result<Option<Repeated>, DriverError> {
        let command = Message::RepeatReceipt(messages::RepeatReceipt::new(Some(password)));
        let reply = dialogue::run(link, &command, timeouts, None, None)
            .await
            .map_err(disconnected)?;
        let last = match (&reply.ending, &reply.status) {
            (Ending::Completed, Some(status)) => {
                Some(Transaction::of(status).ok_or_else(|| {
                    DriverError::Protocol(
                        "Repeat Receipt showed a transaction without a trace number".into(),
                    )
                })?)
            }
            (Ending::Aborted(code) | Ending::Refused(code), _)
                if NOTHING_TO_REPEAT.contains(code) =>
            {
                None
            }
            (Ending::Refused(code), _) if BUSY.contains(code) => return Ok(None),
            (Ending::TimedOut, _) => return Err(DriverError::Timeout),
            (ending, _) => {
                return Err(DriverError::Protocol(format!(
                    "asked to repeat its last receipt, the terminal {ending}"
                )));
            }
        };
        let terminal_id = registered_as.or(last.and_then(|t| t.terminal_id));
        Ok(Some(Repeated {
            terminal_id,
            last,
            reply,
        }))
    }

    /// Repeat Receipt on the live link (connecting first); `None`: the terminal is busy.
    async fn repeat(&mut self) -> Result<Option<Repeated>, DriverError> {
        self.link().await?;
        let registered_as = self.snapshot.as_ref().and_then(|s| s.terminal_id);
        self.interrupted = true;
        let Some(link) = self.link.take() else {
            return Err(DriverError::Disconnected("not connected".into()));
        };
        let mut link = link;
        let result = Self::repeat_on(
            &mut link,
            self.password,
            self.settings.timeouts,
            registered_as,
        )
        .await;
        self.interrupted = false;
        match result {
            Ok(Some(repeated)) => {
                self.link = Some(link);
                self.take_snapshot(&repeated)?;
                Ok(Some(repeated))
            }
            Ok(None) => {
                self.link = Some(link);
                Ok(None)
            }
            Err(e @ DriverError::Protocol(_)) => {
                self.link = Some(link);
                Err(e)
            }
            Err(e) => {
                tracing::warn!(terminal = %self.terminal_id, error = %e, "ZVT line lost");
                Err(e)
            }
        }
    }

    /// Keeps what Repeat Receipt showed as the terminal now: notices a reset or replaced
    /// terminal, and an approval that shows up for a sale declared never done.
    fn take_snapshot(&mut self, repeated: &Repeated) -> Result<(), DriverError> {
        let snapshot = Snapshot {
            terminal_id: repeated.terminal_id,
            last: repeated.last,
        };
        if let Some(why) = self
            .previous
            .as_ref()
            .and_then(|p| reset_between(p, &snapshot))
        {
            let at = self.clock.now_ms();
            tracing::error!(terminal = %self.terminal_id, reason = %why, "ALARM: the ZVT terminal was reset or replaced: sales made before cannot be reversed by receipt number on it");
            self.append(&JournalEntry::Reset { at, why })?;
            self.reset_at = Some(at);
        }
        if self.previous.as_ref() != Some(&snapshot) {
            self.append(&JournalEntry::Baseline {
                trace: None,
                snapshot: Some(snapshot.clone()),
            })?;
            self.previous = Some(snapshot.clone());
        }
        self.snapshot = Some(snapshot);
        self.find_late_outcomes(repeated)
    }

    /// A watched sale (declared never done) that the terminal's last transaction turns out to
    /// be after all: reported once.
    fn find_late_outcomes(&mut self, repeated: &Repeated) -> Result<(), DriverError> {
        let Some(status) = repeated.reply.status.as_ref() else {
            return Ok(());
        };
        let found: Vec<String> = self
            .not_done
            .iter()
            .filter(|(_, sent)| {
                judge(sent, repeated.terminal_id, repeated.last.as_ref()) == Verdict::Ours
            })
            .map(|(reference, _)| reference.clone())
            .collect();
        for reference in found {
            let outcome = self.outcome_of(&repeated.reply, status);
            tracing::error!(terminal = %self.terminal_id, payment_id = %reference, approved = matches!(outcome, SaleOutcome::Approved(_)), "ALARM: the terminal completed a sale after it was declared never done");
            self.append(&JournalEntry::LateReported {
                reference: reference.clone(),
            })?;
            self.not_done.remove(&reference);
            self.late.push((reference, outcome));
        }
        Ok(())
    }

    /// Before anything that makes a new transaction: a watched sale could still show up in
    /// the terminal's memory — look once more — and after it nothing can (the new
    /// transaction takes its place).
    async fn end_watches(&mut self) -> Result<(), DriverError> {
        if self.not_done.is_empty() {
            return Ok(());
        }
        self.repeat()
            .await?
            .ok_or_else(|| DriverError::Disconnected("the terminal is busy".into()))?;
        self.not_done.clear();
        Ok(())
    }

    /// What our own command left as the terminal's last transaction.
    fn note_own(&mut self, status: Option<&BmpList>) {
        let terminal_id = self.snapshot.as_ref().and_then(|s| s.terminal_id);
        // Unknown when the status has no trace: read again before the next sale.
        self.snapshot = status.and_then(Transaction::of).map(|last| Snapshot {
            terminal_id: terminal_id.or(last.terminal_id),
            last: Some(last),
        });
    }

    /// The terminal as it is now on a live link, read if not known.
    async fn current(&mut self) -> Result<Snapshot, DriverError> {
        self.link().await?;
        if self.snapshot.is_none() {
            self.repeat()
                .await?
                .ok_or_else(|| DriverError::Disconnected("the terminal is busy".into()))?;
        }
        self.snapshot.clone().ok_or_else(|| {
            DriverError::Protocol("the terminal's last transaction is unknown".into())
        })
    }

    /// Journals what is about to be sent, with the terminal as it is: what recovery needs.
    fn journal_intent(
        &mut self,
        reference: &str,
        amount_minor: i64,
        before: Snapshot,
    ) -> Result<(), DriverError> {
        let at = self.clock.now_ms();
        self.append(&JournalEntry::Intent {
            reference: reference.to_string(),
            amount_minor,
            trace_before: None,
            before: Some(before.clone()),
            at,
        })
        .map_err(DriverError::not_journaled)?;
        self.sent.insert(
            reference.to_string(),
            Sent {
                amount_minor,
                before,
                at,
            },
        );
        Ok(())
    }

    /// Asks the terminal to abort whatever sale it is running (`06 B0`): true when it
    /// accepted, i.e. that sale can no longer complete.
    async fn abort_running_sale(&mut self) -> Result<bool, DriverError> {
        self.link().await?;
        let command = Message::AbortCommand(messages::AbortCommand::default());
        let timeouts = self.settings.timeouts;
        self.interrupted = true;
        let Some(link) = self.link.as_mut() else {
            return Err(DriverError::Disconnected("not connected".into()));
        };
        let result = dialogue::run_acknowledged(link, &command, timeouts).await;
        self.interrupted = false;
        let reply = self.lost_line_on(result)?;
        Ok(reply.ending == Ending::Accepted)
    }

    /// What Repeat Receipt proves about the sale `sent`: its outcome, or that the terminal can
    /// no longer tell; `None` when the terminal is as it was before the sale.
    fn verdict(
        &self,
        sent: &Sent,
        repeated: &Repeated,
        reference: &str,
    ) -> Result<Option<SaleQuery>, DriverError> {
        match judge(sent, repeated.terminal_id, repeated.last.as_ref()) {
            Verdict::Ours => {
                let status = repeated.reply.status.as_ref().ok_or_else(|| {
                    DriverError::Protocol("Repeat Receipt without a result".into())
                })?;
                Ok(Some(SaleQuery::Completed(
                    self.outcome_of(&repeated.reply, status),
                )))
            }
            Verdict::Unresolvable(why) => {
                tracing::warn!(terminal = %self.terminal_id, payment_id = %reference, reason = %why, "recovery: the terminal can no longer tell");
                Ok(Some(SaleQuery::Unresolvable(why)))
            }
            Verdict::Unchanged => Ok(None),
        }
    }

    fn declare_not_done(&mut self, reference: &str) -> Result<(), DriverError> {
        if let Some(sent) = self.sent.get(reference).cloned() {
            self.append(&JournalEntry::NotDone {
                reference: reference.to_string(),
                at: self.clock.now_ms(),
            })?;
            self.not_done.insert(reference.to_string(), sent);
        }
        Ok(())
    }

    fn outcome_of(&self, dialogue: &Dialogue, status: &BmpList) -> SaleOutcome {
        let code = status.result_code().unwrap_or(ResultCode::SUCCESS);
        if !code.is_success() {
            return SaleOutcome::Declined {
                code: format!("zvt-{:02x}", code.0),
                message: result_text(code),
                receipts: dialogue.receipts.clone(),
            };
        }
        let pan = status.pan();
        let trace = status
            .trace_number()
            .map(|t| t.to_string())
            .unwrap_or_default();
        let receipt = status
            .receipt_number()
            .map(|r| r.to_string())
            .unwrap_or_default();
        let tid = status
            .terminal_id()
            .map(|t| t.to_string())
            .unwrap_or_default();
        SaleOutcome::Approved(Approval {
            authorization_code: status
                .aid()
                .map(|a| a.trimmed())
                .filter(|a| !a.is_empty())
                .unwrap_or_else(|| trace.clone()),
            nsu: trace.clone(),
            acquirer: status.terminal_id().map_or_else(
                || format!("zvt:{}", self.terminal_id),
                |tid| format!("zvt:{tid}"),
            ),
            card_brand: status
                .card_name()
                .map(|n| n.trimmed())
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| "unknown".into()),
            first_digits: pan.and_then(|p| p.first6()).unwrap_or_default(),
            last_digits: pan.and_then(|p| p.last4()).unwrap_or_default(),
            message: format!("approved; terminal {tid}, receipt {receipt}, trace {trace}"),
            terminal_ref: terminal_ref(
                status
                    .terminal_id()
                    .or(self.snapshot.as_ref().and_then(|s| s.terminal_id)),
                status.receipt_number(),
            ),
            receipts: dialogue.receipts.clone(),
        })
    }
}

/// Why `now` cannot be the terminal of `before` as it went on (same ID, its memory kept):
/// another terminal ID, no memory where it had one, or a trace number that went backwards.
fn reset_between(before: &Snapshot, now: &Snapshot) -> Option<String> {
    if let (Some(then), Some(id)) = (before.terminal_id, now.terminal_id)
        && then != id
    {
        return Some(format!(
            "terminal {then:08} was replaced by terminal {id:08}"
        ));
    }
    match (&before.last, &now.last) {
        (Some(_), None) => Some("the terminal no longer remembers any transaction".into()),
        // Trace numbers wrap after 999999.
        (Some(b), Some(n)) if n.trace < b.trace && b.trace < 990_000 => Some(format!(
            "the terminal's trace number went back from {} to {}",
            b.trace, n.trace
        )),
        _ => None,
    }
}

impl TerminalDriver for ZvtDriver {
    async fn sale(
        &mut self,
        request: &SaleRequest,
        prompts: &PromptSink,
        abort: &CancellationToken,
    ) -> Result<SaleOutcome, DriverError> {
        let Some(currency) = request.currency.numeric().and_then(CurrencyCode::new) else {
            return Ok(SaleOutcome::declined(
                "currency-unsupported",
                &format!("the terminal cannot charge in {}", request.currency.code()),
            ));
        };
        let Some(amount) = u64::try_from(request.amount_minor)
            .ok()
            .and_then(Amount::from_minor_units)
        else {
            return Ok(SaleOutcome::declined(
                "amount-unsupported",
                "the amount does not fit the terminal",
            ));
        };
        // Connect and read the terminal before journaling, so the intent carries what it was.
        // If that fails, nothing reached the terminal: a sale that could not be recovered is
        // never sent.
        let before = async {
            self.end_watches().await?;
            self.current().await
        }
        .await
        .map_err(|e| DriverError::NotSent(e.to_string()))?;
        self.journal_intent(&request.reference, request.amount_minor, before)?;
        crate::failpoint::hit("after-charge-intent");
        let command = Message::Authorization(messages::Authorization::payment(amount, currency));
        let reply = self
            .exchange(
                &command,
                Some(Prompts {
                    sink: prompts,
                    reference: &request.reference,
                }),
                Some(abort),
            )
            .await?;
        self.note_own(reply.status.as_ref());
        match (&reply.ending, &reply.status) {
            (Ending::Completed, Some(status)) => Ok(self.outcome_of(&reply, status)),
            (Ending::Aborted(code), status) => {
                let code = status
                    .as_ref()
                    .and_then(BmpList::result_code)
                    .unwrap_or(*code);
                Ok(SaleOutcome::Declined {
                    code: format!("zvt-{:02x}", code.0),
                    message: result_text(code),
                    receipts: reply.receipts.clone(),
                })
            }
            (Ending::Refused(code), _) => Ok(SaleOutcome::declined(
                "terminal-refused",
                &format!("the terminal did not take the sale: {}", result_text(*code)),
            )),
            (Ending::Completed | Ending::Accepted, None) => {
                Err(DriverError::Protocol("completion without a result".into()))
            }
            (Ending::Accepted, Some(_)) => Err(DriverError::Protocol(
                "the sale ended on an acknowledgement".into(),
            )),
            (Ending::TimedOut, _) => Err(DriverError::Timeout),
        }
    }

    async fn query_sale(&mut self, inquiry: &SaleInquiry) -> Result<SaleQuery, DriverError> {
        if let Some(why) = &self.journal_unreadable {
            return Err(DriverError::Protocol(format!(
                "the journal is unreadable ({why}): cannot tell"
            )));
        }
        let Some(sent) = self.sent.get(&inquiry.reference).cloned() else {
            // No intent journaled (it is written before the sale goes out): never sent.
            return Ok(SaleQuery::NotFound);
        };
        let Some(repeated) = self.repeat().await? else {
            // Busy: most likely with this very sale.
            return Ok(SaleQuery::InProgress);
        };
        if let Some(found) = self.verdict(&sent, &repeated, &inquiry.reference)? {
            return Ok(found);
        }
        // The terminal is as it was before the sale: not completed, or not yet. Never done
        // only once it can no longer complete it: it accepted an abort (asked for when the
        // payment is being cancelled), or the sale's time is over.
        if inquiry.cancel_requested && self.abort_running_sale().await? {
            tracing::info!(terminal = %self.terminal_id, payment_id = %inquiry.reference, "recovery: the terminal aborted the sale; asking once more");
            let Some(repeated) = self.repeat().await? else {
                return Ok(SaleQuery::InProgress);
            };
            if let Some(found) = self.verdict(&sent, &repeated, &inquiry.reference)? {
                return Ok(found);
            }
            self.declare_not_done(&inquiry.reference)?;
            return Ok(SaleQuery::NotFound);
        }
        let window_ms = i64::try_from(self.settings.sale_window.as_millis()).unwrap_or(i64::MAX);
        if self.clock.now_ms() >= sent.at.saturating_add(window_ms) {
            if let Some(why) = time_over_proves_nothing(&sent) {
                tracing::warn!(terminal = %self.terminal_id, payment_id = %inquiry.reference, reason = %why, "recovery: the terminal can no longer tell");
                return Ok(SaleQuery::Unresolvable(why));
            }
            tracing::info!(terminal = %self.terminal_id, payment_id = %inquiry.reference, "recovery: the sale's time is over and the terminal does not have it");
            self.declare_not_done(&inquiry.reference)?;
            return Ok(SaleQuery::NotFound);
        }
        Ok(SaleQuery::InProgress)
    }

    async fn reverse(
        &mut self,
        request: &OperationRequest,
    ) -> Result<OperationOutcome, DriverError> {
        if request.amount_minor != request.sale_amount_minor {
            return Ok(OperationOutcome::Unsupported(
                "ZVT reverses whole sales only: return the difference on the terminal by hand"
                    .into(),
            ));
        }
        let Some((sale_terminal, receipt)) = parse_terminal_ref(&request.sale_ref) else {
            return Ok(OperationOutcome::Failed(format!(
                "`{}` is not a ZVT receipt number",
                request.sale_ref
            )));
        };
        self.end_watches().await?;
        let before = self.current().await?;
        if let (Some(sale_terminal), Some(now)) = (sale_terminal, before.terminal_id)
            && sale_terminal != now
        {
            return Ok(OperationOutcome::Unsupported(format!(
                "the sale was made on terminal {sale_terminal:08}, this is terminal {now:08}: reverse it on that terminal or refund it by hand"
            )));
        }
        if self
            .reset_at
            .is_some_and(|reset| reset > request.sale_at_ms)
        {
            return Ok(OperationOutcome::Unsupported(format!(
                "the terminal was reset or replaced since the sale: its receipt {receipt} may now be another sale; refund it by hand"
            )));
        }
        self.journal_intent(&request.reference, request.amount_minor, before)?;
        let command = Message::Reversal(messages::Reversal::of_receipt(self.password, receipt));
        let reply = self.exchange(&command, None, None).await?;
        self.note_own(reply.status.as_ref());
        match (
            reply.ending.clone(),
            reply.status.as_ref().and_then(BmpList::result_code),
        ) {
            (Ending::Completed, None | Some(ResultCode::SUCCESS)) => Ok(OperationOutcome::Done),
            (Ending::Completed, Some(code))
            | (Ending::Aborted(code), _)
            | (Ending::Refused(code), _) => {
                // Typically after end of day (the batch is closed): only a card-present refund remains.
                Ok(OperationOutcome::Unsupported(format!(
                    "the terminal cannot reverse receipt {receipt} ({}): refund it with the card present",
                    result_text(code)
                )))
            }
            (Ending::TimedOut | Ending::Accepted, _) => Err(DriverError::Timeout),
        }
    }

    async fn refund(
        &mut self,
        request: &OperationRequest,
    ) -> Result<OperationOutcome, DriverError> {
        // A full refund while the batch is open is a reversal; anything else needs the card.
        if request.amount_minor == request.sale_amount_minor {
            return self.reverse(request).await;
        }
        Ok(OperationOutcome::Unsupported(
            "a partial refund needs the card present: do it on the terminal".into(),
        ))
    }

    async fn query_operation(&mut self, reference: &str) -> Result<OperationQuery, DriverError> {
        if let Some(why) = &self.journal_unreadable {
            return Err(DriverError::Protocol(format!(
                "the journal is unreadable ({why}): cannot tell"
            )));
        }
        let Some(sent) = self.sent.get(reference).cloned() else {
            return Ok(OperationQuery::NotFound);
        };
        let repeated = self
            .repeat()
            .await?
            .ok_or_else(|| DriverError::Disconnected("the terminal is busy".into()))?;
        // A reversal's Status-Information carries the amount of the sale it reversed; a
        // terminal that can no longer tell refuses a reversal of what it does not have.
        Ok(
            match judge(&sent, repeated.terminal_id, repeated.last.as_ref()) {
                Verdict::Ours => OperationQuery::Done,
                Verdict::Unchanged | Verdict::Unresolvable(_) => OperationQuery::NotFound,
            },
        )
    }

    fn sent(&self) -> Result<Vec<SentRecord>, DriverError> {
        if let Some(why) = &self.journal_unreadable {
            return Err(DriverError::Protocol(format!(
                "the journal is unreadable ({why})"
            )));
        }
        let entries = crate::terminal::journal::read::<JournalEntry>(&self.journal)?;
        Ok(entries
            .into_iter()
            .filter_map(|entry| match entry {
                JournalEntry::Intent {
                    reference,
                    amount_minor,
                    at,
                    ..
                } => Some(SentRecord {
                    reference,
                    amount_minor: Some(amount_minor),
                    at_ms: at,
                }),
                _ => None,
            })
            .collect())
    }

    fn late_outcomes(&mut self) -> Vec<(String, SaleOutcome)> {
        std::mem::take(&mut self.late)
    }

    async fn probe(&mut self) -> Result<String, DriverError> {
        let command = Message::StatusEnquiry(messages::StatusEnquiry::new(Some(self.password)));
        let reply = self.exchange(&command, None, None).await?;
        let status = reply
            .status
            .as_ref()
            .and_then(BmpList::result_code)
            .map(result_text);
        let tid = reply.status.as_ref().and_then(BmpList::terminal_id);
        Ok(format!(
            "ZVT terminal on {}: registered; status {}; terminal id {}",
            self.settings.transport,
            status.as_deref().unwrap_or("unknown"),
            tid.map_or_else(|| "unknown".into(), |t| t.to_string())
        ))
    }

    async fn end_of_day(&mut self) -> Result<String, DriverError> {
        self.end_watches().await?;
        let command = Message::EndOfDay(messages::EndOfDay::new(Some(self.password)));
        let reply = self.exchange(&command, None, None).await?;
        // What Repeat Receipt shows after an end of day differs between terminals: read it
        // again before the next sale.
        self.snapshot = None;
        match reply.ending {
            Ending::Completed => Ok(format!(
                "end of day done on {}; the batch is closed",
                self.settings.transport
            )),
            Ending::Aborted(code) | Ending::Refused(code) => Err(DriverError::Protocol(format!(
                "end of day refused: {}",
                result_text(code)
            ))),
            Ending::TimedOut | Ending::Accepted => Err(DriverError::Timeout),
        }
    }
}

/// Builds timeouts from the config's milliseconds and seconds.
pub fn timeouts(ack_timeout_ms: u64, completion_timeout_s: u64) -> Timeouts {
    Timeouts {
        ack: Duration::from_millis(ack_timeout_ms),
        completion: Duration::from_secs(completion_timeout_s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_refs_carry_the_terminal_id() {
        assert_eq!(terminal_ref(Some(52_500_017), Some(42)), "52500017/42");
        assert_eq!(
            parse_terminal_ref("52500017/42"),
            Some((Some(52_500_017), 42))
        );
        assert_eq!(parse_terminal_ref("42"), Some((None, 42)), "older refs");
        assert_eq!(parse_terminal_ref("x/42"), None);
    }

    #[test]
    fn a_reset_or_replaced_terminal_is_noticed() {
        let tx = |trace| Transaction {
            trace,
            amount_minor: Some(100),
            date: None,
            time: None,
            terminal_id: None,
        };
        let before = Snapshot {
            terminal_id: Some(1),
            last: Some(tx(40)),
        };
        let went_on = Snapshot {
            terminal_id: Some(1),
            last: Some(tx(41)),
        };
        assert_eq!(reset_between(&before, &went_on), None);
        let other = Snapshot {
            terminal_id: Some(2),
            ..went_on.clone()
        };
        assert!(reset_between(&before, &other).is_some_and(|w| w.contains("replaced")));
        let blank = Snapshot {
            terminal_id: Some(1),
            last: None,
        };
        assert!(reset_between(&before, &blank).is_some());
        let back = Snapshot {
            terminal_id: Some(1),
            last: Some(tx(3)),
        };
        assert!(reset_between(&before, &back).is_some());
    }
}
