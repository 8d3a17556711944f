//! The POS side of TEF Dial: sales (`CRT`), their two-phase confirmation (`CNF` / `NCN`),
//! cancellations (`CNC`) and the liveness check (`ATV`), each journaled before its file is
//! written, so that a restart knows what the client may have.
//!
//! Crash rules: a request the client never took is withdrawn and the sale never happened; one
//! it took is waited for; an answer is journaled before its files are removed and confirmed
//! only once the database holds the result (`committed`), or undone if the database did not
//! keep it; no `CRT` is written while an approval still waits for its verdict.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use firmware_protocols::tef_dial::{
    Answer, Cancellation, CardType, Confirmation, ConfirmationNeed, Financing, Installments,
    Operation, Request, RequestId, Sale, Status,
};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::exchange::{ExchangeError, Folders, Found, POLL, request_id};
use crate::clock::SharedClock;
use crate::terminal::{
    Approval, CardFunction, DriverError, OperationOutcome, OperationQuery, OperationRequest,
    PromptSink, Receipt, ReceiptKind, SaleInquiry, SaleOutcome, SaleQuery, SaleRequest, SentRecord,
    TerminalDriver, Verdict, journal, mask_card_numbers,
};

/// What the driver remembers on disk, one line per step.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
enum Entry {
    /// A request about to be written (before its file exists).
    Request {
        id: RequestId,
        operation: String,
        /// The payment (CRT) or the operation (CNC) it is for.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        /// The sale a CNF, NCN or CNC is about.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sale: Option<RequestId>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        amount_minor: Option<i64>,
        at: i64,
    },
    /// The client never took the request: it was removed from its folder.
    Withdrawn { id: RequestId },
    /// The client has the request (it acknowledged it, or took it from its folder).
    Taken { id: RequestId },
    /// The client's answer, kept before its files are removed.
    Answer { id: RequestId, answer: Box<Kept> },
    /// What the database made of an approval, before the CNF or NCN is written.
    Verdict {
        sale: RequestId,
        keep: bool,
        /// The reversal this undo is (an approved sale cancelled before its confirmation).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        operation: Option<String>,
    },
    /// The client acknowledged the CNF (`confirmed`) or NCN (of a sale or cancellation).
    Settled { id: RequestId, confirmed: bool },
}

/// The part of an answer posbridge keeps (card data: brand, first 6 and last 4 digits).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Kept {
    approved: bool,
    status: String,
    network: String,
    nsu: String,
    authorization_code: String,
    brand: String,
    first_digits: String,
    last_digits: String,
    message: String,
    date: String,
    time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    finalization: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    amount_cents: Option<u64>,
    needs_confirmation: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    receipts: Vec<(String, Vec<String>)>,
}

impl Kept {
    fn of(answer: &Answer) -> Self {
        let (first_digits, last_digits) = answer
            .masked_pan
            .as_deref()
            .map(first_and_last_digits)
            .unwrap_or_default();
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        let masked = |lines: &[String]| lines.iter().map(|l| mask_card_numbers(l)).collect();
        let mut receipts = Vec::new();
        for (kind, lines) in [
            ("customer", &answer.customer_receipt),
            ("merchant", &answer.merchant_receipt),
            ("other", &answer.receipt),
        ] {
            if !lines.is_empty() {
                receipts.push((kind.to_string(), masked(lines)));
            }
        }
        Self {
            approved: answer.approved(),
            status: answer.status.clone(),
            network: text(&answer.network),
            nsu: text(&answer.nsu),
            authorization_code: text(&answer.authorization_code),
            brand: text(&answer.brand),
            first_digits,
            last_digits,
            message: answer
                .operator_message
                .as_deref()
                .map(mask_card_numbers)
                .unwrap_or_default(),
            date: text(&answer.date),
            time: text(&answer.time),
            finalization: answer.finalization.clone(),
            amount_cents: answer.amount_cents,
            needs_confirmation: answer.approved()
                && answer.confirmation == ConfirmationNeed::Required,
            receipts,
        }
    }

    fn receipts(&self) -> Vec<Receipt> {
        self.receipts
            .iter()
            .map(|(kind, lines)| {
                let kind = match kind.as_str() {
                    "customer" => ReceiptKind::Customer,
                    "merchant" => ReceiptKind::Merchant,
                    _ => ReceiptKind::Other,
                };
                Receipt::masked(kind, lines.iter().cloned())
            })
            .collect()
    }
}

/// The first six and last four digits of a card number as the client wrote it (masked or
/// not): nothing more is ever kept.
fn first_and_last_digits(pan: &str) -> (String, String) {
    let chars: Vec<char> = pan.chars().collect();
    let first: String = chars.iter().take(6).collect();
    let last: String = chars.iter().skip(chars.len().saturating_sub(4)).collect();
    let digits = |s: &str| s.len() == s.chars().filter(char::is_ascii_digit).count();
    if chars.len() >= 10 && digits(&first) && digits(&last) && first.len() == 6 {
        (first, last)
    } else {
        (String::new(), String::new())
    }
}

/// One request and what became of it, rebuilt from the journal.
#[derive(Debug, Clone)]
struct Exchange {
    operation: String,
    reference: Option<String>,
    sale: Option<RequestId>,
    amount_minor: Option<i64>,
    at: i64,
    withdrawn: bool,
    taken: bool,
    answer: Option<Kept>,
    verdict: Option<(bool, Option<String>)>,
    settled: Option<bool>,
}

impl Exchange {
    fn is(&self, operation: Operation) -> bool {
        self.operation == operation.as_str()
    }

    /// An approval the client holds provisional.
    fn unconfirmed(&self) -> bool {
        self.settled.is_none()
            && self
                .answer
                .as_ref()
                .is_some_and(|a| a.approved && a.needs_confirmation)
    }
}

pub struct TefDialDriver {
    terminal_id: String,
    folders: Folders,
    ack_timeout: Duration,
    journal: PathBuf,
    clock: SharedClock,
    exchanges: BTreeMap<RequestId, Exchange>,
    last_id: RequestId,
}

/// What a driver could not do with the client's files.
fn offline(e: ExchangeError) -> DriverError {
    DriverError::Disconnected(e.to_string())
}

/// The most a request id may be (`001-000`: ten digits).
const MAX_ID: RequestId = 9_999_999_999;

impl TefDialDriver {
    pub fn new(
        terminal_id: &str,
        folders: Folders,
        ack_timeout: Duration,
        journal: PathBuf,
        clock: SharedClock,
    ) -> Result<Self, DriverError> {
        let mut driver = Self {
            terminal_id: terminal_id.to_string(),
            folders,
            ack_timeout,
            journal,
            clock,
            exchanges: BTreeMap::new(),
            last_id: 0,
        };
        for entry in journal::read::<Entry>(&driver.journal)? {
            driver.apply(entry);
        }
        Ok(driver)
    }

    /// Where the driver of `terminal_id` keeps its journal, beside the database.
    pub fn journal_path(database: &Path, terminal_id: &str) -> PathBuf {
        journal::path_beside(database, "tef-dial", terminal_id)
    }

    fn apply(&mut self, entry: Entry) {
        match entry {
            Entry::Request {
                id,
                operation,
                reference,
                sale,
                amount_minor,
                at,
            } => {
                self.last_id = self.last_id.max(id);
                self.exchanges.insert(
                    id,
                    Exchange {
                        operation,
                        reference,
                        sale,
                        amount_minor,
                        at,
                        withdrawn: false,
                        taken: false,
                        answer: None,
                        verdict: None,
                        settled: None,
                    },
                );
            }
            Entry::Taken { id } => {
                if let Some(x) = self.exchanges.get_mut(&id) {
                    x.taken = true;
                }
            }
            Entry::Withdrawn { id } => {
                if let Some(x) = self.exchanges.get_mut(&id) {
                    x.withdrawn = true;
                }
            }
            Entry::Answer { id, answer } => {
                if let Some(x) = self.exchanges.get_mut(&id) {
                    x.answer = Some(*answer);
                }
            }
            Entry::Verdict {
                sale,
                keep,
                operation,
            } => {
                if let Some(x) = self.exchanges.get_mut(&sale) {
                    x.verdict = Some((keep, operation));
                }
            }
            Entry::Settled { id, confirmed } => {
                if let Some(x) = self.exchanges.get_mut(&id) {
                    x.settled = Some(confirmed);
                }
            }
        }
    }

    /// Journals a step (on disk before the call returns), then remembers it.
    fn record(&mut self, entry: Entry) -> Result<(), DriverError> {
        journal::append(&self.journal, &entry)?;
        self.apply(entry);
        Ok(())
    }

    /// A fresh request id, never used before: above every journaled one and above the clock's
    /// seconds (so a lost journal cannot make one come back). Ten digits last until 2286.
    fn next_id(&self) -> RequestId {
        let seconds = u64::try_from(self.clock.now_ms() / 1000).unwrap_or(0);
        let next = self.last_id.saturating_add(1).max(seconds);
        if next > MAX_ID { 1 } else { next }
    }

    /// Journals and writes a request; `NotSent` when it could not be written (journaled as
    /// withdrawn: the client never had it).
    async fn send(
        &mut self,
        request: &Request,
        reference: Option<&str>,
        sale: Option<RequestId>,
        amount_minor: Option<i64>,
    ) -> Result<(), DriverError> {
        let id = request.id();
        self.record(Entry::Request {
            id,
            operation: request.operation().as_str().to_string(),
            reference: reference.map(str::to_string),
            sale,
            amount_minor,
            at: self.clock.now_ms(),
        })
        .map_err(DriverError::not_journaled)?;
        if request.operation() == Operation::Crt {
            crate::failpoint::hit("after-charge-intent");
        }
        if let Err(e) = self.folders.write_request(&request.to_record()).await {
            self.record(Entry::Withdrawn { id })?;
            return Err(DriverError::NotSent(e.to_string()));
        }
        Ok(())
    }

    /// Waits for the client's `IntPos.Sts` for `id`. When it does not come in time, the
    /// request is taken back: `NotSent` if that worked (the client never had it).
    async fn await_status(&mut self, id: RequestId) -> Result<(), DriverError> {
        let deadline = tokio::time::Instant::now() + self.ack_timeout;
        loop {
            if let Found::Record(status) = self.folders.status().await.map_err(offline)? {
                match Status::from_record(&status) {
                    Ok(status) if status.id == id => {
                        self.record(Entry::Taken { id })?;
                        self.folders.remove_status().await.map_err(offline)?;
                        return Ok(());
                    }
                    // An older acknowledgement: the client overwrites it with ours.
                    _ => {}
                }
            }
            if tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(POLL).await;
        }
        if self.folders.withdraw(id).await.map_err(offline)? {
            self.record(Entry::Withdrawn { id })?;
            return Err(DriverError::NotSent(format!(
                "the TEF client did not acknowledge within {} s (is it running? are the folders right?)",
                self.ack_timeout.as_secs()
            )));
        }
        // Taken meanwhile: the client has it; its answer will come.
        self.record(Entry::Taken { id })?;
        tracing::warn!(
            terminal = %self.terminal_id,
            request = id,
            "the TEF client took the request without acknowledging it in time"
        );
        Ok(())
    }

    /// Whether the client has the request `id`, whose answer has not come (after a restart).
    /// One still waiting in its folder is taken back: no. One acknowledged: yes. Neither (the
    /// daemon stopped around writing it): the client gets `ack_timeout` to acknowledge it, as
    /// any request does; without that it does not have it (never written, or void).
    async fn client_has(&mut self, id: RequestId) -> Result<bool, DriverError> {
        if self.exchanges.get(&id).is_some_and(|x| x.taken) {
            return Ok(true);
        }
        if self.folders.withdraw(id).await.map_err(offline)?
            || self.folders.withdrawn(id).await.map_err(offline)?
        {
            self.record(Entry::Withdrawn { id })?;
            return Ok(false);
        }
        let deadline = tokio::time::Instant::now() + self.ack_timeout;
        loop {
            if let Found::Record(status) = self.folders.status().await.map_err(offline)?
                && Status::from_record(&status).is_ok_and(|s| s.id == id)
            {
                self.record(Entry::Taken { id })?;
                self.folders.remove_status().await.map_err(offline)?;
                return Ok(true);
            }
            if tokio::time::Instant::now() >= deadline {
                self.record(Entry::Withdrawn { id })?;
                return Ok(false);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Looks once for the answer to `id`: journals it, then removes the client's files.
    async fn take_answer(&mut self, id: RequestId) -> Result<Option<Kept>, DriverError> {
        let record = match self.folders.answer().await.map_err(offline)? {
            Found::Record(record) => record,
            Found::Nothing | Found::Incomplete => return Ok(None),
            Found::Unreadable(why) => {
                tracing::warn!(terminal = %self.terminal_id, request = id, "the TEF client's answer file is not a TEF Dial record ({why}); waiting for it to be rewritten");
                return Ok(None);
            }
        };
        match request_id(&record) {
            Some(found) if found == id => {}
            other => {
                // Not the answer to this request: an older one nobody took (its request was
                // settled or withdrawn); it would stand in the way of ours.
                tracing::warn!(terminal = %self.terminal_id, request = id, found = ?other, "removing a TEF answer file for another request");
                self.folders.remove_answer().await.map_err(offline)?;
                return Ok(None);
            }
        }
        let answer = Answer::from_record(&record)
            .map_err(|e| DriverError::Protocol(format!("the TEF client's answer: {e}")))?;
        let kept = Kept::of(&answer);
        self.record(Entry::Answer {
            id,
            answer: Box::new(kept.clone()),
        })?;
        self.folders.remove_answer().await.map_err(offline)?;
        self.folders.remove_status().await.map_err(offline)?;
        Ok(Some(kept))
    }

    /// Waits for the answer to `id` (no limit of its own: the shopper is at the PIN pad; the
    /// terminal's `result_timeout_s` ends the wait). A folder that cannot be read for a while
    /// (a share that dropped) is waited out: the client keeps its answer.
    async fn await_answer(&mut self, id: RequestId) -> Result<Kept, DriverError> {
        let mut told = false;
        loop {
            match self.take_answer(id).await {
                Ok(Some(kept)) => return Ok(kept),
                Ok(None) => {}
                Err(DriverError::Disconnected(why)) if !told => {
                    told = true;
                    tracing::warn!(terminal = %self.terminal_id, request = id, error = %why, "cannot read the TEF client's folder; still waiting for its answer");
                }
                Err(DriverError::Disconnected(_)) => {}
                Err(e) => return Err(e),
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// A request the client only acknowledges (ATV, CNF, NCN).
    async fn acknowledged(
        &mut self,
        request: Request,
        sale: Option<RequestId>,
    ) -> Result<(), DriverError> {
        let id = request.id();
        self.send(&request, None, sale, None).await?;
        self.await_status(id).await
    }

    /// Confirms (CNF) or undoes (NCN) the provisional approval of `sale`, as journaled.
    async fn settle(&mut self, sale: RequestId, confirm: bool) -> Result<(), DriverError> {
        let Some(answer) = self.exchanges.get(&sale).and_then(|x| x.answer.clone()) else {
            return Ok(());
        };
        let confirmation = Confirmation {
            id: self.next_id(),
            network: answer.network.clone(),
            nsu: answer.nsu.clone(),
            finalization: answer.finalization.clone(),
        };
        let request = if confirm {
            Request::Cnf(confirmation)
        } else {
            Request::Ncn(confirmation)
        };
        self.acknowledged(request, Some(sale)).await?;
        self.record(Entry::Settled {
            id: sale,
            confirmed: confirm,
        })?;
        tracing::info!(
            terminal = %self.terminal_id,
            sale,
            "the TEF client {} the sale",
            if confirm { "confirmed" } else { "undid" }
        );
        Ok(())
    }

    /// Sends the CNF/NCN of every provisional approval whose verdict is journaled; refuses to
    /// go on while one still waits for its verdict (a new CRT would make the client decide).
    async fn settle_pending(&mut self) -> Result<(), DriverError> {
        let pending: Vec<(RequestId, Option<bool>)> = self
            .exchanges
            .iter()
            .filter(|(_, x)| x.unconfirmed())
            .map(|(id, x)| (*id, x.verdict.as_ref().map(|(keep, _)| *keep)))
            .collect();
        for (sale, verdict) in pending {
            let Some(keep) = verdict else {
                return Err(DriverError::NotSent(format!(
                    "the TEF client still holds sale {sale} provisional and posbridge has not yet stored its result"
                )));
            };
            self.settle(sale, keep).await.map_err(|e| match e {
                DriverError::NotSent(why) => DriverError::NotSent(format!(
                    "the confirmation of an earlier sale could not be handed over: {why}"
                )),
                other => other,
            })?;
        }
        Ok(())
    }

    /// The latest sale sent for `reference`.
    fn sale_of(&self, reference: &str) -> Option<(RequestId, &Exchange)> {
        self.exchanges
            .iter()
            .rev()
            .find(|(_, x)| x.is(Operation::Crt) && x.reference.as_deref() == Some(reference))
            .map(|(id, x)| (*id, x))
    }

    /// What an answer means for the sale `id` of `amount_minor`.
    async fn outcome(
        &mut self,
        id: RequestId,
        amount_minor: i64,
        kept: Kept,
    ) -> Result<SaleOutcome, DriverError> {
        if !kept.approved {
            return Ok(SaleOutcome::Declined {
                code: kept.status.clone(),
                message: if kept.message.is_empty() {
                    "declined by the TEF client".to_string()
                } else {
                    kept.message.clone()
                },
                receipts: kept.receipts(),
            });
        }
        let approved_cents = kept.amount_cents.and_then(|c| i64::try_from(c).ok());
        if approved_cents.is_some_and(|c| c != amount_minor) {
            // Never report an approval of another amount: it is still provisional, undo it.
            let pending = self.exchanges.get(&id).is_some_and(Exchange::unconfirmed);
            if pending {
                tracing::error!(terminal = %self.terminal_id, request = id, "the TEF client approved another amount than asked; undoing it");
                self.record(Entry::Verdict {
                    sale: id,
                    keep: false,
                    operation: None,
                })?;
                self.settle(id, false).await?;
            }
            return Ok(SaleOutcome::declined(
                "amount-mismatch",
                "the TEF client approved another amount than asked; the approval was undone",
            ));
        }
        Ok(SaleOutcome::Approved(Approval {
            authorization_code: kept.authorization_code.clone(),
            nsu: kept.nsu.clone(),
            acquirer: kept.network.clone(),
            card_brand: kept.brand.clone(),
            first_digits: kept.first_digits.clone(),
            last_digits: kept.last_digits.clone(),
            terminal_ref: id.to_string(),
            message: format!("{} NSU {}", kept.network, kept.nsu),
            receipts: kept.receipts(),
        }))
    }

    /// Cancels a confirmed sale (CNC with its network, NSU, date, time and amount), then
    /// confirms the cancellation. `operation`: the reversal or refund it is (none when the
    /// driver undoes an approval the database did not keep: no operation to book).
    async fn cancel_sale(
        &mut self,
        sale: RequestId,
        operation: Option<&str>,
    ) -> Result<OperationOutcome, DriverError> {
        let Some(x) = self.exchanges.get(&sale).cloned() else {
            return Ok(OperationOutcome::Unsupported(
                "the TEF sale is not in posbridge's journal: cancel it on the TEF client".into(),
            ));
        };
        let Some(answer) = x.answer.clone() else {
            return Ok(OperationOutcome::Failed(
                "the TEF sale has no answer to cancel".into(),
            ));
        };
        let amount_cents = answer
            .amount_cents
            .or_else(|| x.amount_minor.and_then(|a| u64::try_from(a).ok()))
            .unwrap_or(0);
        let id = self.next_id();
        let request = Request::Cnc(Cancellation {
            id,
            network: answer.network.clone(),
            nsu: answer.nsu.clone(),
            date: answer.date.clone(),
            time: answer.time.clone(),
            amount_cents,
        });
        self.send(&request, operation, Some(sale), x.amount_minor)
            .await?;
        self.await_status(id).await?;
        let kept = self.await_answer(id).await?;
        self.finish_cancel(id, kept).await
    }

    /// A cancellation's answer: confirmed at once when approved (the sale is given back
    /// either way; its record follows).
    async fn finish_cancel(
        &mut self,
        id: RequestId,
        kept: Kept,
    ) -> Result<OperationOutcome, DriverError> {
        if !kept.approved {
            return Ok(OperationOutcome::Failed(if kept.message.is_empty() {
                format!("the TEF client refused the cancellation ({})", kept.status)
            } else {
                kept.message
            }));
        }
        if kept.needs_confirmation {
            self.record(Entry::Verdict {
                sale: id,
                keep: true,
                operation: None,
            })?;
            self.settle(id, true).await?;
        }
        Ok(OperationOutcome::Done)
    }

    /// Whether the sale `sale` was given back: undone before its confirmation, or cancelled
    /// by an approved CNC.
    fn given_back(&self, sale: RequestId) -> bool {
        let undone = self
            .exchanges
            .get(&sale)
            .is_some_and(|x| x.settled == Some(false));
        undone
            || self.exchanges.values().any(|x| {
                x.is(Operation::Cnc)
                    && x.sale == Some(sale)
                    && x.answer.as_ref().is_some_and(|a| a.approved)
                    && x.settled != Some(false)
            })
    }

    async fn give_back(
        &mut self,
        request: &OperationRequest,
    ) -> Result<OperationOutcome, DriverError> {
        let Ok(sale) = request.sale_ref.parse::<RequestId>() else {
            return Ok(OperationOutcome::Unsupported(
                "the sale was not made through this TEF client: cancel it where it was made".into(),
            ));
        };
        if self.given_back(sale) {
            return Ok(OperationOutcome::Done);
        }
        if request.amount_minor != request.sale_amount_minor {
            return Ok(OperationOutcome::Unsupported(
                "a TEF cancellation gives back the whole sale: return part of it on the TEF client's own menu".into(),
            ));
        }
        // Never asked to confirm: undoing it (NCN) is the whole reversal. Once a CNF may have
        // gone out (a keep verdict journaled), the client may hold it confirmed whatever the
        // journal says: the CNF is finished first and the sale cancelled (an NCN the client
        // ignores would report a reversal that never happened).
        let provisional = self
            .exchanges
            .get(&sale)
            .is_some_and(|x| x.unconfirmed() && !matches!(x.verdict, Some((true, _))));
        if provisional {
            self.record(Entry::Verdict {
                sale,
                keep: false,
                operation: Some(request.reference.clone()),
            })?;
            self.settle(sale, false).await?;
            return Ok(OperationOutcome::Done);
        }
        self.settle_pending().await?;
        self.cancel_sale(sale, Some(request.reference.as_str()))
            .await
    }
}

/// The sale as the TEF codec writes it.
fn sale_request(id: RequestId, request: &SaleRequest) -> Sale {
    let installments = request
        .installments
        .filter(|n| *n > 1)
        .and_then(|n| u16::try_from(n).ok())
        .map(|count| Installments {
            count,
            // Merchant-financed ("sem juros"): what a store's Sales App offers.
            financing: Financing::Merchant,
        });
    Sale {
        id,
        document: request.reference.clone(),
        amount_cents: u64::try_from(request.amount_minor).unwrap_or(0),
        card_type: match request.function {
            CardFunction::Credit => CardType::Credit,
            CardFunction::Debit => CardType::Debit,
        },
        installments,
    }
}

impl TerminalDriver for TefDialDriver {
    async fn sale(
        &mut self,
        request: &SaleRequest,
        prompts: &PromptSink,
        abort: &CancellationToken,
    ) -> Result<SaleOutcome, DriverError> {
        if request.currency.code() != "BRL" {
            return Ok(SaleOutcome::declined(
                "currency-unsupported",
                &format!(
                    "a TEF client charges in reais only, not {}",
                    request.currency.code()
                ),
            ));
        }
        if request.amount_minor <= 0 {
            return Ok(SaleOutcome::declined("invalid-amount", "nothing to charge"));
        }
        self.settle_pending().await?;
        self.folders
            .remove_unfinished_request()
            .await
            .map_err(|e| DriverError::NotSent(e.to_string()))?;
        if let Found::Record(waiting) = self
            .folders
            .waiting_request()
            .await
            .map_err(|e| DriverError::NotSent(e.to_string()))?
        {
            return Err(DriverError::NotSent(format!(
                "another request ({}) still waits in {} for the TEF client",
                request_id(&waiting).map_or("?".to_string(), |id| id.to_string()),
                self.folders.request_dir().display()
            )));
        }
        let id = self.next_id();
        self.send(
            &Request::Crt(sale_request(id, request)),
            Some(&request.reference),
            None,
            Some(request.amount_minor),
        )
        .await?;
        self.await_status(id).await?;
        prompts.show(&request.reference, "Follow the TEF client at the PIN pad");
        tracing::info!(payment_id = %request.reference, terminal = %self.terminal_id, request = id, "the TEF client took the sale");
        let answer = {
            let wait = self.await_answer(id);
            tokio::pin!(wait);
            tokio::select! {
                answer = &mut wait => answer?,
                () = abort.cancelled() => {
                    // TEF Dial has no abort: the answer is waited for, and undone if not kept.
                    tracing::info!(payment_id = %request.reference, "TEF Dial cannot abort a sale at the PIN pad: waiting for its result");
                    wait.await?
                }
            }
        };
        self.outcome(id, request.amount_minor, answer).await
    }

    async fn query_sale(&mut self, inquiry: &SaleInquiry) -> Result<SaleQuery, DriverError> {
        let Some((id, x)) = self.sale_of(&inquiry.reference) else {
            // Marked sent, never journaled: the request was never written.
            return Ok(SaleQuery::NotFound);
        };
        if x.withdrawn {
            return Ok(SaleQuery::NotFound);
        }
        if let Some(kept) = x.answer.clone() {
            return self
                .outcome(id, inquiry.amount_minor, kept)
                .await
                .map(SaleQuery::Completed);
        }
        if let Some(kept) = self.take_answer(id).await? {
            return self
                .outcome(id, inquiry.amount_minor, kept)
                .await
                .map(SaleQuery::Completed);
        }
        if self.client_has(id).await? {
            Ok(SaleQuery::InProgress)
        } else {
            Ok(SaleQuery::NotFound)
        }
    }

    async fn reverse(
        &mut self,
        request: &OperationRequest,
    ) -> Result<OperationOutcome, DriverError> {
        self.give_back(request).await
    }

    async fn refund(
        &mut self,
        request: &OperationRequest,
    ) -> Result<OperationOutcome, DriverError> {
        self.give_back(request).await
    }

    async fn query_operation(&mut self, reference: &str) -> Result<OperationQuery, DriverError> {
        let undone = self.exchanges.values().any(|x| {
            x.settled == Some(false)
                && x.verdict.as_ref().and_then(|(_, op)| op.as_deref()) == Some(reference)
        });
        if undone {
            return Ok(OperationQuery::Done);
        }
        let cancel = self
            .exchanges
            .iter()
            .rev()
            .find(|(_, x)| x.is(Operation::Cnc) && x.reference.as_deref() == Some(reference))
            .map(|(id, x)| (*id, x.clone()));
        let Some((id, x)) = cancel else {
            return Ok(OperationQuery::NotFound);
        };
        if x.withdrawn {
            return Ok(OperationQuery::NotFound);
        }
        let kept = match x.answer {
            Some(kept) => Some(kept),
            None => self.take_answer(id).await?,
        };
        match kept {
            Some(kept) if kept.approved => {
                if x.settled.is_none() {
                    self.finish_cancel(id, kept).await?;
                }
                Ok(OperationQuery::Done)
            }
            Some(_) => Ok(OperationQuery::NotFound),
            None => {
                if !self.client_has(id).await? {
                    return Ok(OperationQuery::NotFound);
                }
                Err(DriverError::Disconnected(
                    "the TEF client has the cancellation and has not answered yet".into(),
                ))
            }
        }
    }

    async fn probe(&mut self) -> Result<String, DriverError> {
        self.settle_pending().await?;
        let id = self.next_id();
        self.acknowledged(Request::Atv { id }, None).await?;
        Ok("the TEF client answered ATV".to_string())
    }

    async fn end_of_day(&mut self) -> Result<String, DriverError> {
        Ok("a TEF client closes its batch itself (its own administrative menu)".to_string())
    }

    fn sent(&self) -> Result<Vec<SentRecord>, DriverError> {
        Ok(self
            .exchanges
            .values()
            .filter(|x| (x.is(Operation::Crt) || x.is(Operation::Cnc)) && !x.withdrawn)
            .filter_map(|x| {
                Some(SentRecord {
                    reference: x.reference.clone()?,
                    amount_minor: x.amount_minor,
                    at_ms: x.at,
                })
            })
            .collect())
    }

    async fn committed(&mut self, reference: &str, verdict: Verdict) -> Result<(), DriverError> {
        let Some((sale, x)) = self.sale_of(reference) else {
            return Ok(());
        };
        if !x.unconfirmed() {
            let keep = verdict == Verdict::Keep;
            let captured = x.answer.as_ref().is_some_and(|a| a.approved) && x.settled.is_none();
            if !keep && captured && !self.given_back(sale) {
                // Captured already (no confirmation step): only a cancellation undoes it.
                let outcome = self.cancel_sale(sale, None).await?;
                if outcome != OperationOutcome::Done {
                    tracing::error!(payment_id = %reference, ?outcome, "the TEF client would not cancel an approval posbridge did not keep");
                }
            }
            return Ok(());
        }
        self.record(Entry::Verdict {
            sale,
            keep: verdict == Verdict::Keep,
            operation: None,
        })?;
        self.settle(sale, verdict == Verdict::Keep).await
    }

    fn unconfirmed(&self) -> Vec<(String, String)> {
        self.exchanges
            .iter()
            .filter(|(_, x)| x.is(Operation::Crt) && x.unconfirmed())
            .filter_map(|(id, x)| Some((x.reference.clone()?, id.to_string())))
            .collect()
    }
}

#[cfg(test)]
#[path = "driver_tests.rs"]
mod tests;
