//! A TEF client (the "Gerenciador Padrão": PayGo, SiTef, Hiper…) on the TEF Dial file exchange,
//! for tests and demos: `posbridge simulate-terminal tef-dial`.
//!
//! It runs as a process of its own, as a real client does, and keeps going while posbridge is
//! down. It polls `request_dir/IntPos.001` (a file without its `999-999` trailer is left until
//! whole), removes it, acknowledges with `response_dir/IntPos.Sts`, and for CRT and CNC writes
//! the answer `response_dir/IntPos.001`. Every file it writes is written whole as `IntPos.tmp`
//! and renamed, so posbridge never sees half of one (unless the `garbage-answer` fault says so).
//!
//! Sale outcomes by the cents of the amount, as the other simulators (`terminal::simulator`):
//!
//! | cents | outcome |
//! |---|---|
//! | .01 | declined by the issuer: `009-000 = 5`, `030-000 = TRANSACAO NEGADA PELO EMISSOR` |
//! | .02 | the shopper cancels at the PIN pad: `009-000 = 9`, `030-000 = OPERACAO CANCELADA PELO CLIENTE` |
//! | .03 | acknowledged, never answered (the shopper walked away from the PIN pad); nothing charged |
//! | .04 | approved after 20 s |
//! | .06 | approved; its cancellation (CNC) is declined: it needs the card |
//! | other | approved after `--approve-after-ms` |
//!
//! Like real clients, an approval stays pending until CNF (confirmed) or NCN (undone); a CRT or
//! CNC arriving while one is pending undoes it first. A CNC of a confirmed sale cancels it,
//! pending in turn until its own CNF (or NCN, which restores the sale). A CNC naming no
//! confirmed sale, or another amount, is declined.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use firmware_protocols::tef_dial::message::field;
use firmware_protocols::tef_dial::{
    Answer, Cancellation, CardType, Confirmation, ConfirmationNeed, FieldId, Financing, Operation,
    ParseError, Record, Request, RequestId, Sale, Status,
};
use tokio::sync::oneshot;

/// The request file in the request folder and the answer file in the response folder.
const EXCHANGE_FILE: &str = "IntPos.001";
const STATUS_FILE: &str = "IntPos.Sts";
/// Where a file is written before it is renamed into place.
const TEMPORARY_FILE: &str = "IntPos.tmp";

const SLOW_SALE: Duration = Duration::from_secs(20);

/// Faults to inject, each once, into the next request it applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FaultKind {
    /// Never acknowledge the next request: leave its file alone, as a client that is not running.
    Offline,
    /// Acknowledge the next request only after `--slow-ack-ms`.
    SlowAck,
    /// Acknowledge the next CRT and never answer it; nothing is charged.
    NoAnswer,
    /// Before the next answer, write it cut before its `999-999` trailer (a torn file), then
    /// the whole answer a moment later.
    GarbageAnswer,
}

impl FaultKind {
    fn name(self) -> &'static str {
        match self {
            FaultKind::Offline => "offline",
            FaultKind::SlowAck => "slow-ack",
            FaultKind::NoAnswer => "no-answer",
            FaultKind::GarbageAnswer => "garbage-answer",
        }
    }
}

/// Command-line options of `posbridge simulate-terminal tef-dial`.
#[derive(Debug, Clone, clap::Args)]
pub struct SimulatorArgs {
    /// The folder posbridge writes its requests to (`IntPos.001`).
    #[arg(long, value_name = "DIR")]
    pub request_dir: PathBuf,
    /// The folder the client answers in (`IntPos.Sts`, then `IntPos.001`).
    #[arg(long, value_name = "DIR")]
    pub response_dir: PathBuf,
    /// How long a normal sale (and a cancellation) takes at the PIN pad.
    #[arg(long, default_value_t = 1500)]
    pub approve_after_ms: u64,
    /// A fault to inject (repeatable).
    #[arg(long = "fault", value_enum, value_name = "KIND")]
    pub faults: Vec<FaultKind>,
    /// How long the `slow-ack` fault waits before acknowledging.
    #[arg(long, default_value_t = 10_000)]
    pub slow_ack_ms: u64,
    /// Write the client's journal to PATH (JSON lines, rewritten whole after each change): each
    /// sale it took, approved or not, and its state.
    #[arg(long, value_name = "PATH")]
    pub record: Option<PathBuf>,
}

/// Everything [`serve`] needs; tests build it directly.
#[derive(Debug, Clone)]
pub struct SimulatorOptions {
    pub request_dir: PathBuf,
    pub response_dir: PathBuf,
    pub approve_after: Duration,
    pub faults: Vec<FaultKind>,
    pub slow_ack: Duration,
    pub record: Option<PathBuf>,
    /// How often the request folder is looked at.
    pub poll_interval: Duration,
    /// How long the torn answer of `garbage-answer` stays before the whole one replaces it.
    pub garbage_pause: Duration,
}

impl SimulatorOptions {
    pub fn new(request_dir: PathBuf, response_dir: PathBuf) -> Self {
        Self {
            request_dir,
            response_dir,
            approve_after: Duration::from_millis(1500),
            faults: Vec::new(),
            slow_ack: Duration::from_secs(10),
            record: None,
            poll_interval: Duration::from_millis(50),
            garbage_pause: Duration::from_millis(500),
        }
    }

    pub fn from_args(args: &SimulatorArgs) -> Self {
        Self {
            approve_after: Duration::from_millis(args.approve_after_ms),
            faults: args.faults.clone(),
            slow_ack: Duration::from_millis(args.slow_ack_ms),
            record: args.record.clone(),
            ..Self::new(args.request_dir.clone(), args.response_dir.clone())
        }
    }
}

pub async fn run(args: SimulatorArgs) -> anyhow::Result<()> {
    let (ready, announced) = oneshot::channel();
    let client = serve(SimulatorOptions::from_args(&args), ready);
    crate::terminal::simulator_process::run_announced("TEF simulator", client, announced).await
}

/// Plays the TEF client until a file operation fails. `ready` receives the line `run` prints
/// first: `watching REQUEST_DIR -> RESPONSE_DIR`.
pub async fn serve(
    options: SimulatorOptions,
    ready: oneshot::Sender<String>,
) -> anyhow::Result<()> {
    for dir in [&options.request_dir, &options.response_dir] {
        anyhow::ensure!(dir.is_dir(), "{} is not a folder", dir.display());
    }
    let mut client = Client::new(&options);
    client.export();
    tracing::info!(
        request_dir = %options.request_dir.display(),
        response_dir = %options.response_dir.display(),
        "TEF simulator: watching for requests"
    );
    let _ = ready.send(format!(
        "watching {} -> {}",
        options.request_dir.display(),
        options.response_dir.display()
    ));
    loop {
        tokio::time::sleep(options.poll_interval).await;
        client.poll().await?;
    }
}

/// How a sale turns out, by the cents of its amount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    Approve,
    ApproveSlowly,
    ApproveNotCancellable,
    Decline,
    ShopperCancels,
    Silent,
}

impl Plan {
    fn for_amount(amount_cents: u64) -> Self {
        match amount_cents % 100 {
            1 => Plan::Decline,
            2 => Plan::ShopperCancels,
            3 => Plan::Silent,
            4 => Plan::ApproveSlowly,
            6 => Plan::ApproveNotCancellable,
            _ => Plan::Approve,
        }
    }

    fn approves(self) -> bool {
        matches!(
            self,
            Plan::Approve | Plan::ApproveSlowly | Plan::ApproveNotCancellable
        )
    }
}

/// Where a sale the client took stands, as its journal says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SaleState {
    /// Taken; the answer is not written yet.
    Running,
    /// Approved, waiting for CNF or NCN.
    Pending,
    Confirmed,
    /// Undone: by NCN, by the next request while pending, or never answered.
    Undone,
    /// Cancelled by a CNC (pending or confirmed; an NCN of the CNC restores it).
    Cancelled,
    /// Answered with a decline.
    Declined,
}

impl SaleState {
    fn as_str(self) -> &'static str {
        match self {
            SaleState::Running => "running",
            SaleState::Pending => "pending",
            SaleState::Confirmed => "confirmed",
            SaleState::Undone => "undone",
            SaleState::Cancelled => "cancelled",
            SaleState::Declined => "declined",
        }
    }
}

/// One CRT the client took.
#[derive(Debug, Clone)]
struct SaleEntry {
    id: RequestId,
    reference: String,
    amount_cents: u64,
    /// What it answered (or, while running, will answer).
    approved: bool,
    state: SaleState,
    nsu: String,
    card_type: CardType,
    cancellable: bool,
}

/// The last transaction, waiting for CNF or NCN.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pending {
    Sale { sale: usize },
    Cancellation { sale: usize, nsu: String },
}

/// Faults not applied yet.
#[derive(Debug, Default)]
struct Faults(Vec<FaultKind>);

impl Faults {
    /// Whether `kind` is still to be applied; it is applied now (once).
    fn take(&mut self, kind: FaultKind) -> bool {
        match self.0.iter().position(|k| *k == kind) {
            Some(position) => {
                self.0.remove(position);
                true
            }
            None => false,
        }
    }
}

struct Client {
    options: SimulatorOptions,
    faults: Faults,
    journal: Vec<SaleEntry>,
    pending: Option<Pending>,
    /// The NSU of the next transaction (sales and cancellations share the sequence).
    next_nsu: u64,
    /// The request the `offline` fault left alone: not looked at again.
    ignored: Option<Status>,
}

/// What the client answers: status, operator text, and for approvals the transaction's data.
struct Outcome {
    status: &'static str,
    message: &'static str,
    approval: Option<Approval>,
}

struct Approval {
    nsu: String,
    authorization_code: String,
    network: &'static str,
    brand: &'static str,
    masked_pan: &'static str,
    card_type: CardType,
    finalization: String,
    date: String,
    time: String,
    /// Date and time as the receipt prints them.
    printed_at: String,
}

impl Outcome {
    fn declined(status: &'static str, message: &'static str) -> Self {
        Self {
            status,
            message,
            approval: None,
        }
    }
}

impl Client {
    fn new(options: &SimulatorOptions) -> Self {
        Self {
            options: options.clone(),
            faults: Faults(options.faults.clone()),
            journal: Vec::new(),
            pending: None,
            next_nsu: 1,
            ignored: None,
        }
    }

    /// Looks at the request folder once and serves what it finds.
    async fn poll(&mut self) -> anyhow::Result<()> {
        let path = self.options.request_dir.join(EXCHANGE_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(error) => return Err(error).with_context(|| format!("reading {}", path.display())),
        };
        let record = match Record::parse(&bytes) {
            Ok(record) => record,
            // Still being written (or torn): looked at again on the next poll.
            Err(ParseError::Incomplete) => return Ok(()),
            Err(error) => {
                tracing::warn!(%error, "TEF simulator: unreadable request file, removed");
                return remove(&path);
            }
        };
        let status = match Status::from_record(&record) {
            Ok(status) => status,
            Err(error) => {
                tracing::warn!(%error, "TEF simulator: request without operation or id, removed");
                return remove(&path);
            }
        };
        if self.ignored == Some(status) {
            return Ok(());
        }
        if self.faults.take(FaultKind::Offline) {
            tracing::warn!(
                fault = FaultKind::Offline.name(),
                operation = status.operation.as_str(),
                id = status.id,
                "TEF simulator: fault offline: the request is never acknowledged"
            );
            self.ignored = Some(status);
            return Ok(());
        }
        remove(&path)?;
        if self.faults.take(FaultKind::SlowAck) {
            tracing::warn!(
                fault = FaultKind::SlowAck.name(),
                id = status.id,
                delay_ms = u64::try_from(self.options.slow_ack.as_millis()).unwrap_or(u64::MAX),
                "TEF simulator: fault slow-ack: acknowledging late"
            );
            tokio::time::sleep(self.options.slow_ack).await;
        }
        self.write_whole(STATUS_FILE, &status.to_record())?;
        match Request::from_record(&record) {
            Ok(request) => self.serve(request).await,
            Err(error) => {
                tracing::warn!(%error, operation = status.operation.as_str(), id = status.id, "TEF simulator: invalid request");
                if matches!(status.operation, Operation::Crt | Operation::Cnc) {
                    let outcome = Outcome::declined("5", "REQUISICAO INVALIDA");
                    let answer = answer_record(status.operation, status.id, &outcome, None);
                    self.write_answer(&answer).await?;
                }
                Ok(())
            }
        }
    }

    async fn serve(&mut self, request: Request) -> anyhow::Result<()> {
        match request {
            Request::Atv { id } => {
                tracing::info!(id, "TEF simulator: ATV, alive");
                Ok(())
            }
            Request::Crt(sale) => self.sale(sale).await,
            Request::Cnc(cancellation) => self.cancel(cancellation).await,
            Request::Cnf(confirmation) => {
                self.confirm(&confirmation);
                Ok(())
            }
            Request::Ncn(confirmation) => {
                self.undo(&confirmation);
                Ok(())
            }
        }
    }

    async fn sale(&mut self, sale: Sale) -> anyhow::Result<()> {
        tracing::info!(
            id = sale.id,
            payment_id = %sale.document,
            amount_cents = sale.amount_cents,
            card = %match sale.card_type {
                CardType::Credit => "credit",
                CardType::Debit => "debit",
            },
            installments = sale.installments.map_or(1, |i| i.count),
            "TEF simulator: sale taken"
        );
        self.undo_pending("a new CRT arrived");
        let plan = Plan::for_amount(sale.amount_cents);
        let never_answered = if self.faults.take(FaultKind::NoAnswer) {
            tracing::warn!(
                fault = FaultKind::NoAnswer.name(),
                id = sale.id,
                payment_id = %sale.document,
                "TEF simulator: fault no-answer: the sale is never answered"
            );
            true
        } else {
            plan == Plan::Silent
        };
        let index = self.journal.len();
        self.journal.push(SaleEntry {
            id: sale.id,
            reference: sale.document.clone(),
            amount_cents: sale.amount_cents,
            approved: plan.approves() && !never_answered,
            state: if never_answered {
                SaleState::Undone
            } else {
                SaleState::Running
            },
            nsu: String::new(),
            card_type: sale.card_type,
            cancellable: plan != Plan::ApproveNotCancellable,
        });
        self.export();
        if never_answered {
            tracing::info!(id = sale.id, payment_id = %sale.document, "TEF simulator: sale taken, never answered");
            return Ok(());
        }
        let delay = if plan == Plan::ApproveSlowly {
            SLOW_SALE
        } else {
            self.options.approve_after
        };
        tokio::time::sleep(delay).await;
        let outcome = match plan {
            Plan::Decline => Outcome::declined("5", "TRANSACAO NEGADA PELO EMISSOR"),
            Plan::ShopperCancels => Outcome::declined("9", "OPERACAO CANCELADA PELO CLIENTE"),
            _ => self.approve(sale.card_type),
        };
        let nsu = outcome.approval.as_ref().map(|a| a.nsu.clone());
        let answer = answer_record(Operation::Crt, sale.id, &outcome, Some(&sale));
        self.write_answer(&answer).await?;
        tracing::info!(
            id = sale.id,
            payment_id = %sale.document,
            status = outcome.status,
            nsu = nsu.as_deref().unwrap_or_default(),
            "TEF simulator: sale answered"
        );
        if let Some(entry) = self.journal.get_mut(index) {
            entry.nsu = nsu.unwrap_or_default();
            entry.state = if entry.approved {
                SaleState::Pending
            } else {
                SaleState::Declined
            };
            if entry.approved {
                self.pending = Some(Pending::Sale { sale: index });
            }
        }
        self.export();
        Ok(())
    }

    async fn cancel(&mut self, cancellation: Cancellation) -> anyhow::Result<()> {
        self.undo_pending("a CNC arrived");
        tokio::time::sleep(self.options.approve_after).await;
        let found = self.journal.iter().position(|entry| {
            entry.approved && entry.state == SaleState::Confirmed && entry.nsu == cancellation.nsu
        });
        let outcome = match found.and_then(|index| self.journal.get(index).map(|e| (index, e))) {
            None => Outcome::declined("5", "TRANSACAO NAO ENCONTRADA"),
            Some((_, entry)) if entry.amount_cents != cancellation.amount_cents => {
                Outcome::declined("5", "VALOR NAO CONFERE")
            }
            Some((_, entry)) if !entry.cancellable => {
                Outcome::declined("5", "CANCELAMENTO NEGADO: CARTAO NECESSARIO")
            }
            Some((index, entry)) => {
                let outcome = self.approve(entry.card_type);
                if let Some(approval) = &outcome.approval {
                    self.pending = Some(Pending::Cancellation {
                        sale: index,
                        nsu: approval.nsu.clone(),
                    });
                }
                if let Some(entry) = self.journal.get_mut(index) {
                    entry.state = SaleState::Cancelled;
                }
                outcome
            }
        };
        let mut answer = answer_record(Operation::Cnc, cancellation.id, &outcome, None);
        if outcome.approval.is_some() {
            // 025-000: the NSU of the sale it cancelled.
            answer.push(FieldId::new(25, 0), printable(&cancellation.nsu));
        }
        self.write_answer(&answer).await?;
        tracing::info!(
            id = cancellation.id,
            cancelled_nsu = %cancellation.nsu,
            status = outcome.status,
            "TEF simulator: cancellation answered"
        );
        self.export();
        Ok(())
    }

    fn confirm(&mut self, confirmation: &Confirmation) {
        match self.pending.take() {
            Some(Pending::Sale { sale }) if self.nsu_of(sale) == Some(&confirmation.nsu) => {
                self.set_state(sale, SaleState::Confirmed);
                tracing::info!(id = confirmation.id, nsu = %confirmation.nsu, "TEF simulator: sale confirmed");
            }
            Some(Pending::Cancellation { nsu, .. }) if nsu == confirmation.nsu => {
                tracing::info!(id = confirmation.id, nsu = %confirmation.nsu, "TEF simulator: cancellation confirmed");
            }
            other => {
                tracing::warn!(id = confirmation.id, nsu = %confirmation.nsu, "TEF simulator: CNF names no pending transaction, ignored");
                self.pending = other;
            }
        }
        self.export();
    }

    fn undo(&mut self, confirmation: &Confirmation) {
        match self.pending.take() {
            Some(Pending::Sale { sale }) if self.nsu_of(sale) == Some(&confirmation.nsu) => {
                self.set_state(sale, SaleState::Undone);
                tracing::info!(id = confirmation.id, nsu = %confirmation.nsu, "TEF simulator: sale undone (NCN)");
            }
            Some(Pending::Cancellation { sale, nsu }) if nsu == confirmation.nsu => {
                self.set_state(sale, SaleState::Confirmed);
                tracing::info!(id = confirmation.id, nsu = %confirmation.nsu, "TEF simulator: cancellation undone (NCN), the sale stands");
            }
            other => {
                tracing::warn!(id = confirmation.id, nsu = %confirmation.nsu, "TEF simulator: NCN names no pending transaction, ignored");
                self.pending = other;
            }
        }
        self.export();
    }

    /// The rule of real clients: a transaction left pending is undone by the next one.
    fn undo_pending(&mut self, why: &str) {
        match self.pending.take() {
            None => return,
            Some(Pending::Sale { sale }) => {
                self.set_state(sale, SaleState::Undone);
                tracing::warn!(
                    nsu = self.nsu_of(sale).map(String::as_str).unwrap_or_default(),
                    why,
                    "TEF simulator: the pending sale was never confirmed: undone"
                );
            }
            Some(Pending::Cancellation { sale, nsu }) => {
                self.set_state(sale, SaleState::Confirmed);
                tracing::warn!(%nsu, why, "TEF simulator: the pending cancellation was never confirmed: undone, the sale stands");
            }
        }
        self.export();
    }

    fn nsu_of(&self, sale: usize) -> Option<&String> {
        self.journal.get(sale).map(|entry| &entry.nsu)
    }

    fn set_state(&mut self, sale: usize, state: SaleState) {
        if let Some(entry) = self.journal.get_mut(sale) {
            entry.state = state;
        }
    }

    /// A new approval: the next NSU (leading zeros, as hosts send them), an authorization
    /// code with a leading zero, the receipt date and time, and the finalization token.
    fn approve(&mut self, card_type: CardType) -> Outcome {
        let nsu = self.next_nsu;
        self.next_nsu += 1;
        let now = jiff::Zoned::now();
        let date = now.strftime("%d%m%Y").to_string();
        let time = now.strftime("%H%M%S").to_string();
        let printed_at = now.strftime("%d/%m/%y %H:%M").to_string();
        let nsu = format!("{nsu:09}");
        let (network, brand, masked_pan) = match card_type {
            CardType::Credit => ("REDECARD", "VISA", "476173******0010"),
            CardType::Debit => ("CIELO", "MAESTRO", "502121******0016"),
        };
        Outcome {
            status: "0",
            message: "TRANSACAO AUTORIZADA",
            approval: Some(Approval {
                authorization_code: format!("0{:05}", (self.next_nsu * 7919) % 100_000),
                finalization: format!("{date}{time}{nsu}"),
                nsu,
                network,
                brand,
                masked_pan,
                card_type,
                date,
                time,
                printed_at,
            }),
        }
    }

    /// Writes the answer whole; the `garbage-answer` fault writes it torn first.
    async fn write_answer(&mut self, answer: &Record) -> anyhow::Result<()> {
        let bytes = answer.encode().context("encoding the answer")?;
        if self.faults.take(FaultKind::GarbageAnswer) {
            let torn = bytes
                .windows(b"999-999".len())
                .position(|window| window == b"999-999")
                .and_then(|trailer| bytes.get(..trailer))
                .unwrap_or_default();
            tracing::warn!(
                fault = FaultKind::GarbageAnswer.name(),
                "TEF simulator: fault garbage-answer: writing the answer without its trailer first"
            );
            self.write_bytes(EXCHANGE_FILE, torn)?;
            tokio::time::sleep(self.options.garbage_pause).await;
        }
        self.write_bytes(EXCHANGE_FILE, &bytes)
    }

    fn write_whole(&self, name: &str, record: &Record) -> anyhow::Result<()> {
        let bytes = record.encode().context("encoding a response")?;
        self.write_bytes(name, &bytes)
    }

    /// `IntPos.tmp`, then renamed: a reader never sees half a file.
    fn write_bytes(&self, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
        let temporary = self.options.response_dir.join(TEMPORARY_FILE);
        let path = self.options.response_dir.join(name);
        std::fs::write(&temporary, bytes)
            .and_then(|()| std::fs::rename(&temporary, &path))
            .with_context(|| format!("writing {}", path.display()))
    }

    /// Writes the journal whole (`--record`), one JSON line per sale. A failure is told, never
    /// fatal: the client goes on.
    fn export(&self) {
        let Some(path) = &self.options.record else {
            return;
        };
        let mut text = String::new();
        for entry in &self.journal {
            let line = serde_json::json!({
                "kind": "sale",
                "id": entry.id,
                "reference": entry.reference,
                "amount_minor": entry.amount_cents,
                "approved": entry.approved,
                "state": entry.state.as_str(),
            });
            text.push_str(&line.to_string());
            text.push('\n');
        }
        let temporary = path.with_extension("tmp");
        if let Err(error) =
            std::fs::write(&temporary, text).and_then(|()| std::fs::rename(&temporary, path))
        {
            tracing::warn!(%error, path = %path.display(), "TEF simulator: cannot write the record");
        }
    }
}

fn remove(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        // Gone already (posbridge took its request back): nothing to remove.
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error).with_context(|| format!("removing {}", path.display())),
    }
}

/// The answer file of a CRT or CNC: `sale` (for a CRT) adds what the client echoes of the
/// request: fiscal document, installments.
fn answer_record(
    operation: Operation,
    id: RequestId,
    outcome: &Outcome,
    sale: Option<&Sale>,
) -> Record {
    let mut answer = Answer::new(operation, id, outcome.status);
    answer.operator_message = Some(outcome.message.to_owned());
    answer.amount_cents = sale.map(|sale| sale.amount_cents);
    if let Some(approval) = &outcome.approval {
        let amount = sale.map(|sale| sale.amount_cents);
        answer.network = Some(approval.network.to_owned());
        answer.transaction_type = Some(transaction_type(approval.card_type, sale).to_owned());
        answer.nsu = Some(approval.nsu.clone());
        answer.authorization_code = Some(approval.authorization_code.clone());
        answer.date = Some(approval.date.clone());
        answer.time = Some(approval.time.clone());
        answer.finalization = Some(approval.finalization.clone());
        answer.brand = Some(approval.brand.to_owned());
        answer.masked_pan = Some(approval.masked_pan.to_owned());
        answer.card_type = Some(approval.card_type);
        answer.confirmation = ConfirmationNeed::Required;
        answer.receipt = receipt("VIA UNICA", operation, approval, amount);
        answer.customer_receipt = receipt("VIA CLIENTE", operation, approval, amount);
        answer.merchant_receipt = receipt("VIA ESTABELECIMENTO", operation, approval, amount);
    }
    let mut record = answer.to_record();
    if let Some(sale) = sale {
        record.push(field::DOCUMENT, printable(&sale.document));
        record.push(field::CURRENCY, "0");
        if let Some(installments) = sale.installments {
            let (generic, paygo) = match installments.financing {
                Financing::Merchant => ("0", "3"),
                Financing::Issuer => ("1", "2"),
            };
            record.push(field::FINANCING, generic);
            record.push(field::INSTALLMENTS, installments.count.to_string());
            record.push(field::PAYGO_FINANCING, paygo);
        }
    }
    record
}

/// `011-000`: 10 credit, 11 / 12 credit in installments by the merchant / the issuer, 20 debit.
fn transaction_type(card_type: CardType, sale: Option<&Sale>) -> &'static str {
    match (card_type, sale.and_then(|sale| sale.installments)) {
        (CardType::Debit, _) => "20",
        (CardType::Credit, None) => "10",
        (CardType::Credit, Some(installments)) => match installments.financing {
            Financing::Merchant => "11",
            Financing::Issuer => "12",
        },
    }
}

fn receipt(
    copy: &str,
    operation: Operation,
    approval: &Approval,
    amount_cents: Option<u64>,
) -> Vec<String> {
    let what = match (operation, approval.card_type) {
        (Operation::Cnc, _) => "CANCELAMENTO",
        (_, CardType::Credit) => "VENDA CREDITO",
        (_, CardType::Debit) => "VENDA DEBITO",
    };
    let mut lines = vec![
        "*** POSBRIDGE TEF SIMULATOR ***".to_owned(),
        format!("{copy} {}", approval.printed_at),
        format!("{} {}", approval.brand, approval.masked_pan),
        what.to_owned(),
    ];
    if let Some(cents) = amount_cents {
        lines.push(format!("VALOR: R$ {},{:02}", cents / 100, cents % 100));
    }
    lines.push(format!(
        "NSU:{} AUT:{}",
        approval.nsu, approval.authorization_code
    ));
    lines
}

/// An echoed value made safe for the file: control characters (which the encoder refuses)
/// become `?`.
fn printable(value: &str) -> String {
    value
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests;
