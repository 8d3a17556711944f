//! The ZVT driver (posbridge is the ECR): registration on connect, sales, reversals, recovery
//! through Repeat Receipt, status enquiry and end of day.
//!
//! ZVT cannot be asked about a sale by our reference: the terminal only repeats its *last*
//! transaction. So before each sale the driver journals (on disk, beside the database) the
//! amount and the terminal's trace number at that moment. After a crash, a timeout or a pulled
//! cable, Repeat Receipt tells: the last transaction is still the one before → the sale never
//! happened; a newer one for our amount → that is our sale; anything else → cannot tell (the
//! payment stays undefined and store IT is alarmed).

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
use super::transport::{BoxStream, Transport};
use crate::clock::SharedClock;
use crate::money::Currency;
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

#[derive(Debug, Clone)]
pub struct ZvtSettings {
    pub transport: Transport,
    pub password: String,
    pub config_byte: u8,
    pub timeouts: Timeouts,
}

/// What the driver remembers on disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
enum JournalEntry {
    /// The terminal's last trace number (`null`: it has no transaction at all).
    Baseline { trace: Option<u32> },
    /// A sale or reversal about to be sent, with the baseline at that moment.
    Intent {
        reference: String,
        amount_minor: i64,
        trace_before: Option<u32>,
        at: i64,
    },
}

/// The terminal's last trace number: unknown, none (no transaction yet), or a number.
type Baseline = Option<Option<u32>>;

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
    baseline: Baseline,
    intents: HashMap<String, (i64, Option<u32>)>,
    clock: SharedClock,
}

fn disconnected(e: LinkError) -> DriverError {
    DriverError::Disconnected(e.to_string())
}

fn result_text(code: ResultCode) -> String {
    code.text()
        .map_or_else(|| format!("result code {:#04x}", code.0), str::to_string)
}

impl ZvtDriver {
    pub fn new(
        terminal_id: &str,
        settings: ZvtSettings,
        journal: PathBuf,
        clock: SharedClock,
    ) -> Result<Self, String> {
        let digits: u32 = settings
            .password
            .parse()
            .ok()
            .filter(|_| settings.password.len() == 6)
            .ok_or("the ZVT password must be 6 digits")?;
        let password = Password::from_number(digits).ok_or("the ZVT password must be 6 digits")?;
        let mut driver = Self {
            terminal_id: terminal_id.to_string(),
            settings,
            password,
            link: None,
            interrupted: false,
            journal,
            journal_unreadable: None,
            baseline: None,
            intents: HashMap::new(),
            clock,
        };
        driver.load_journal();
        Ok(driver)
    }

    /// Where the driver of `terminal_id` keeps its journal, beside the database.
    pub fn journal_path(database: &Path, terminal_id: &str) -> PathBuf {
        database
            .parent()
            .unwrap_or(Path::new("."))
            .join(format!("zvt-{terminal_id}.journal"))
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
                JournalEntry::Baseline { trace } => self.baseline = Some(trace),
                JournalEntry::Intent {
                    reference,
                    amount_minor,
                    trace_before,
                    ..
                } => {
                    self.intents.insert(reference, (amount_minor, trace_before));
                }
            }
        }
    }

    fn append(&self, entry: &JournalEntry) -> Result<(), DriverError> {
        crate::terminal::journal::append(&self.journal, entry)
    }

    fn note_trace(&mut self, status: Option<&BmpList>) -> Result<(), DriverError> {
        if let Some(trace) = status.and_then(BmpList::trace_number)
            && self.baseline != Some(Some(trace))
        {
            self.baseline = Some(Some(trace));
            self.append(&JournalEntry::Baseline { trace: Some(trace) })?;
        }
        Ok(())
    }

    /// The live link, connecting and registering first if needed.
    async fn link(&mut self) -> Result<&mut ZvtLink<BoxStream>, DriverError> {
        if std::mem::take(&mut self.interrupted) {
            self.link = None;
        }
        if self.link.is_none() {
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
                        "registration failed: {other:?}"
                    )));
                }
            }
            if self.baseline.is_none() {
                self.learn_baseline(&mut link).await?;
            }
            self.link = Some(link);
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
        match result {
            Ok(d) => Ok(d),
            Err(e) => {
                tracing::warn!(terminal = %self.terminal_id, error = %e, "ZVT line lost");
                self.link = None;
                Err(disconnected(e))
            }
        }
    }

    /// Asks for the last transaction once, to know what "before our sale" looks like.
    async fn learn_baseline(&mut self, link: &mut ZvtLink<BoxStream>) -> Result<(), DriverError> {
        let repeat = Message::RepeatReceipt(messages::RepeatReceipt::new(Some(self.password)));
        let reply = dialogue::run(link, &repeat, self.settings.timeouts, None, None)
            .await
            .map_err(disconnected)?;
        let trace = match (
            &reply.ending,
            reply.status.as_ref().and_then(BmpList::trace_number),
        ) {
            (Ending::Completed, Some(trace)) => Some(trace),
            (Ending::Aborted(_), _) => None,
            _ => return Ok(()),
        };
        self.baseline = Some(trace);
        self.append(&JournalEntry::Baseline { trace })
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
            terminal_ref: receipt,
            receipts: dialogue.receipts.clone(),
        })
    }
}

impl TerminalDriver for ZvtDriver {
    async fn sale(
        &mut self,
        request: &SaleRequest,
        prompts: &PromptSink,
        abort: &CancellationToken,
    ) -> Result<SaleOutcome, DriverError> {
        let Some(currency) = Currency::parse(&request.currency)
            .ok()
            .and_then(|c| c.numeric())
            .and_then(CurrencyCode::new)
        else {
            return Ok(SaleOutcome::declined(
                "currency-unsupported",
                &format!("the terminal cannot charge in {}", request.currency),
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
        // Connect (and learn the baseline) before journaling, so the intent carries it. If
        // that fails, nothing reached the terminal.
        if let Err(e) = self.link().await {
            return Err(DriverError::NotSent(e.to_string()));
        }
        let trace_before = self.baseline.flatten();
        let intent = JournalEntry::Intent {
            reference: request.reference.clone(),
            amount_minor: request.amount_minor,
            trace_before,
            at: self.clock.now_ms(),
        };
        self.append(&intent)?;
        self.intents.insert(
            request.reference.clone(),
            (request.amount_minor, trace_before),
        );
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
        self.note_trace(reply.status.as_ref())?;
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
            (Ending::Completed, None) => {
                Err(DriverError::Protocol("completion without a result".into()))
            }
            (Ending::TimedOut, _) => Err(DriverError::Timeout),
        }
    }

    async fn query_sale(&mut self, inquiry: &SaleInquiry) -> Result<SaleQuery, DriverError> {
        if let Some(why) = &self.journal_unreadable {
            return Err(DriverError::Protocol(format!(
                "the journal is unreadable ({why}): cannot tell"
            )));
        }
        let (amount_minor, trace_before) = match self.intents.get(&inquiry.reference) {
            Some(intent) => *intent,
            // No intent journaled: the sale never reached the terminal.
            None => return Ok(SaleQuery::NotFound),
        };
        let repeat = Message::RepeatReceipt(messages::RepeatReceipt::new(Some(self.password)));
        let reply = self.exchange(&repeat, None, None).await?;
        match (&reply.ending, &reply.status) {
            (Ending::Completed, Some(status)) => {
                let trace = status.trace_number();
                if trace.is_some() && trace == trace_before {
                    return Ok(SaleQuery::NotFound);
                }
                let amount = status.amount().map(Amount::minor_units);
                if amount == u64::try_from(amount_minor).ok() {
                    self.note_trace(Some(status))?;
                    return Ok(SaleQuery::Completed(self.outcome_of(&reply, status)));
                }
                Err(DriverError::Protocol(format!(
                    "the terminal's last transaction (trace {trace:?}) is neither the one before the sale nor the sale"
                )))
            }
            // No transaction at all on the terminal, and none before the sale: never done.
            (Ending::Aborted(_), _) if trace_before.is_none() => Ok(SaleQuery::NotFound),
            (Ending::TimedOut, _) => Err(DriverError::Timeout),
            (ending, _) => Err(DriverError::Protocol(format!(
                "Repeat Receipt answered {ending:?}"
            ))),
        }
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
        let Ok(receipt) = request.sale_ref.parse::<u16>() else {
            return Ok(OperationOutcome::Failed(format!(
                "`{}` is not a ZVT receipt number",
                request.sale_ref
            )));
        };
        self.link().await?;
        let trace_before = self.baseline.flatten();
        self.append(&JournalEntry::Intent {
            reference: request.reference.clone(),
            amount_minor: request.amount_minor,
            trace_before,
            at: self.clock.now_ms(),
        })?;
        self.intents.insert(
            request.reference.clone(),
            (request.amount_minor, trace_before),
        );
        let command = Message::Reversal(messages::Reversal::of_receipt(self.password, receipt));
        let reply = self.exchange(&command, None, None).await?;
        self.note_trace(reply.status.as_ref())?;
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
            (Ending::TimedOut, _) => Err(DriverError::Timeout),
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
        let Some((_, trace_before)) = self.intents.get(reference).copied() else {
            return Ok(OperationQuery::NotFound);
        };
        let repeat = Message::RepeatReceipt(messages::RepeatReceipt::new(Some(self.password)));
        let reply = self.exchange(&repeat, None, None).await?;
        let trace = reply.status.as_ref().and_then(BmpList::trace_number);
        Ok(if trace.is_some() && trace != trace_before {
            self.note_trace(reply.status.as_ref())?;
            OperationQuery::Done
        } else {
            OperationQuery::NotFound
        })
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
                JournalEntry::Baseline { .. } => None,
            })
            .collect())
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
        let command = Message::EndOfDay(messages::EndOfDay::new(Some(self.password)));
        let reply = self.exchange(&command, None, None).await?;
        self.note_trace(reply.status.as_ref())?;
        match reply.ending {
            Ending::Completed => Ok(format!(
                "end of day done on {}; the batch is closed",
                self.settings.transport
            )),
            Ending::Aborted(code) | Ending::Refused(code) => Err(DriverError::Protocol(format!(
                "end of day refused: {}",
                result_text(code)
            ))),
            Ending::TimedOut => Err(DriverError::Timeout),
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
