//! What the simulated terminal remembers across connections: its counters, its journal of
//! transactions and the open batch. Pure data, no I/O.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use firmware_protocols::zvt::bmp::{Date, Time};
use firmware_protocols::zvt::messages::PrintTextBlock;
use firmware_protocols::zvt::text::FixedText;
use firmware_protocols::zvt::tlv::receipt_type;
use firmware_protocols::zvt::{Amount, Bmp, BmpList, CurrencyCode, Pan, ResultCode, Text};

use super::FaultKind;

/// The one card the simulator "reads": a Visa test card, only ever handled masked.
pub(super) const MASKED_PAN: &str = "444433******1111";
/// How the receipts print the card number.
pub(super) const RECEIPT_PAN: &str = "XXXXXXXXXXXX1111";
pub(super) const CARD_NAME: &str = "Visa";
/// ZVT card type (BMP 8A) of Visa.
pub(super) const CARD_TYPE_VISA: u8 = 0x0A;

/// Result codes the simulator uses (all from the codec's result code table, except the
/// issuer's 0x05, which is in the host range 0x01–0x63).
pub mod codes {
    use firmware_protocols::zvt::ResultCode;

    /// Issuer decline ("do not honour"; the host range 01–63 has no fixed text).
    pub const DECLINED_BY_ISSUER: ResultCode = ResultCode(0x05);
    /// 6C: abort via timeout or abort key (shopper cancel, ECR abort).
    pub const ABORTED: ResultCode = ResultCode::ABORTED_BY_TIMEOUT_OR_KEY;
    /// 65: card data not present (reversal of a `.06` sale, refund: they need the card).
    pub const NEEDS_CARD: ResultCode = ResultCode(0x65);
    /// 83: function not possible (unknown receipt, nothing to repeat, refused 06 B0,
    /// unsupported command).
    pub const FUNCTION_NOT_POSSIBLE: ResultCode = ResultCode::FUNCTION_NOT_POSSIBLE;
    /// 9A: ZVT protocol error (undecodable command).
    pub const PROTOCOL_ERROR: ResultCode = ResultCode(0x9A);
    /// B4: already reversed.
    pub const ALREADY_REVERSED: ResultCode = ResultCode(0xB4);
    /// B5: reversal not possible (the sale's batch was closed by an end-of-day).
    pub const REVERSAL_NOT_POSSIBLE: ResultCode = ResultCode(0xB5);
}

/// The amount of the earlier sale a terminal in use remembers (`--in-use`): 1,00.
const EARLIER_SALE_MINOR: u64 = 100;

/// How a sale turns out, by the cents of its amount (mirrors `terminal::simulator`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Plan {
    /// `.01`
    Decline,
    /// `.02`
    ShopperCancels,
    /// `.03`
    Silent,
    /// `.04`: approved after the slow-sale delay.
    ApproveSlowly,
    /// `.05`: approved; an abort from the ECR is refused.
    ApproveIgnoringAbort,
    /// `.06`: approved; its reversal needs the card (refused).
    ApproveNeedsCardToReverse,
    /// Anything else.
    Approve,
}

impl Plan {
    pub(super) fn for_amount(amount: Amount) -> Self {
        match amount.minor_units() % 100 {
            1 => Self::Decline,
            2 => Self::ShopperCancels,
            3 => Self::Silent,
            4 => Self::ApproveSlowly,
            5 => Self::ApproveIgnoringAbort,
            6 => Self::ApproveNeedsCardToReverse,
            _ => Self::Approve,
        }
    }

    pub(super) fn honours_abort(self) -> bool {
        !matches!(self, Self::ApproveIgnoringAbort | Self::Silent)
    }

    pub(super) fn approves(self) -> bool {
        matches!(
            self,
            Self::Approve
                | Self::ApproveSlowly
                | Self::ApproveIgnoringAbort
                | Self::ApproveNeedsCardToReverse
        )
    }
}

/// Faults still to be applied (each once).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct SaleFaults {
    pub drop_mid_sale: bool,
    pub nak_next: bool,
    pub bad_crc: bool,
    pub slow: bool,
    pub no_completion: bool,
    pub late_approval: bool,
    pub nak_storm: bool,
    pub garbage: bool,
}

impl SaleFaults {
    pub(super) fn from_kinds(kinds: &[FaultKind]) -> Self {
        let has = |kind| kinds.contains(&kind);
        Self {
            drop_mid_sale: has(FaultKind::DropMidSale),
            nak_next: has(FaultKind::NakNext),
            bad_crc: has(FaultKind::BadCrc),
            slow: has(FaultKind::Slow),
            no_completion: has(FaultKind::NoCompletion),
            late_approval: has(FaultKind::LateApproval),
            nak_storm: has(FaultKind::NakStorm),
            garbage: has(FaultKind::Garbage),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum RecordKind {
    Sale {
        approved: bool,
        reversible: bool,
        reversed: bool,
    },
    Reversal {
        of_receipt: u16,
    },
    /// Cancelled on the terminal or aborted by the ECR: not a transaction.
    Aborted,
}

/// One journal entry.
#[derive(Debug, Clone)]
pub(super) struct Record {
    pub kind: RecordKind,
    pub amount: Amount,
    pub currency: CurrencyCode,
    pub trace: u32,
    pub receipt_number: Option<u16>,
    /// The Status-Information `04 0F` fields, replayed unchanged by Repeat Receipt.
    pub status: BmpList,
    /// Merchant and customer receipts.
    pub receipts: Vec<PrintTextBlock>,
}

/// Why a reversal is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ReversalRefusal {
    Unknown,
    BatchClosed,
    AlreadyReversed,
    NeedsCard,
}

impl ReversalRefusal {
    pub(super) fn code(self) -> ResultCode {
        match self {
            Self::Unknown => codes::FUNCTION_NOT_POSSIBLE,
            Self::BatchClosed => codes::REVERSAL_NOT_POSSIBLE,
            Self::AlreadyReversed => codes::ALREADY_REVERSED,
            Self::NeedsCard => codes::NEEDS_CARD,
        }
    }
}

/// Totals of a closed batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct BatchTotals {
    pub sales: usize,
    pub reversals: usize,
    pub net_minor: u64,
}

/// A sale whose ECR went away before its outcome was decided: like a real terminal, this one
/// goes on with it (the card is in) and completes it on time, unless an abort stops it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Orphan {
    pub plan: Plan,
    pub amount: Amount,
    pub currency: CurrencyCode,
    /// When it completes; `None`: a silent sale, never.
    pub completes_at: Option<Instant>,
    pub honours_abort: bool,
}

/// What an `06 B0` from a later connection does to an orphaned sale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OrphanAbort {
    /// No sale is running.
    NoSale,
    Aborted,
    Refused,
    /// A silent sale: no answer at all.
    Ignored,
}

#[derive(Debug)]
pub(super) struct Terminal {
    pub terminal_id: u32,
    pub faults: SaleFaults,
    /// A sale that goes on without its ECR.
    orphan: Option<Orphan>,
    next_trace: u32,
    next_receipt: u16,
    journal: Vec<Record>,
    /// Index into `journal` of the last completed transaction (Repeat Receipt).
    last_completed: Option<usize>,
    /// Journal entries from this index on are in the open batch.
    batch_start: usize,
    /// Journal entries before this index happened before the record was kept (`--in-use`).
    recorded_from: usize,
    /// Where the journal is exported after each change (`--record`).
    record: Option<PathBuf>,
}

impl Terminal {
    /// The fields every Status-Information of a transaction starts with.
    fn status_head(
        &self,
        code: ResultCode,
        amount: Amount,
        trace: u32,
        time: Time,
        date: Date,
    ) -> BmpList {
        let mut status = BmpList::new()
            .with(Bmp::ResultCode(code))
            .with(Bmp::Amount(amount))
            .with(Bmp::TraceNumber(trace))
            .with(Bmp::Time(time))
            .with(Bmp::Date(date));
        if let Some(pan) = Pan::from_digits(MASKED_PAN) {
            status.push(Bmp::Pan(pan));
        }
        status.push(Bmp::TerminalId(self.terminal_id));
        status
    }

    pub(super) fn new(terminal_id: u32, first_trace: u32, faults: SaleFaults) -> Self {
        Self {
            terminal_id,
            faults,
            orphan: None,
            next_trace: first_trace.clamp(1, 999_999),
            next_receipt: 1,
            journal: Vec::new(),
            last_completed: None,
            batch_start: 0,
            recorded_from: 0,
            record: None,
        }
    }

    /// A terminal in use, as one in a store is: its memory holds an earlier approved sale (from
    /// a batch closed before the record is kept), which Repeat Receipt shows until the next
    /// transaction. A fresh or reset terminal remembers nothing.
    pub(super) fn remember_an_earlier_sale(&mut self) {
        let Some(amount) = Amount::from_minor_units(EARLIER_SALE_MINOR) else {
            return;
        };
        self.complete_sale(Plan::Approve, amount, CurrencyCode::EUR);
        self.batch_start = self.journal.len();
        self.recorded_from = self.journal.len();
        self.export();
    }

    /// Exports the journal to `path` after every change from now on.
    pub(super) fn record_to(&mut self, path: Option<PathBuf>) {
        self.record = path;
        self.export();
    }

    /// Writes the journal whole (a temporary file renamed over the last one, so a reader never
    /// sees half of it). A failure is told, never fatal: the terminal goes on.
    fn export(&self) {
        let Some(path) = &self.record else { return };
        let mut text = String::new();
        for record in self.journal.iter().skip(self.recorded_from) {
            let line = match record.kind {
                RecordKind::Sale {
                    approved, reversed, ..
                } => serde_json::json!({
                    "kind": "sale", "approved": approved, "reversed": reversed,
                    "amount_minor": record.amount.minor_units(), "trace": record.trace,
                    "receipt": record.receipt_number,
                }),
                RecordKind::Reversal { of_receipt } => serde_json::json!({
                    "kind": "reversal", "of_receipt": of_receipt,
                    "amount_minor": record.amount.minor_units(), "trace": record.trace,
                }),
                RecordKind::Aborted => serde_json::json!({
                    "kind": "aborted", "amount_minor": record.amount.minor_units(),
                }),
            };
            text.push_str(&line.to_string());
            text.push('\n');
        }
        // A sale going on without its ECR completes at its time whoever looks: it is in the
        // record as what it will be.
        if let Some(orphan) = self.orphan.filter(|o| o.completes_at.is_some()) {
            let line = serde_json::json!({
                "kind": "sale", "approved": orphan.plan.approves(), "reversed": false,
                "amount_minor": orphan.amount.minor_units(), "running": true,
            });
            text.push_str(&line.to_string());
            text.push('\n');
        }
        let temporary = path.with_extension("tmp");
        if let Err(error) =
            std::fs::write(&temporary, text).and_then(|()| std::fs::rename(&temporary, path))
        {
            tracing::warn!(%error, path = %path.display(), "ZVT simulator: cannot write the record");
        }
    }

    /// Goes on with a sale its ECR left (see [`Orphan`]).
    pub(super) fn adopt_orphan(&mut self, orphan: Orphan) {
        tracing::info!(
            completes_in_ms = orphan
                .completes_at
                .map(|at| at.saturating_duration_since(Instant::now()).as_millis()),
            "ZVT simulator: the ECR went away mid-sale; the terminal goes on with the sale"
        );
        self.orphan = Some(orphan);
        self.export();
    }

    /// Completes an orphaned sale whose time has come (what happened while nobody looked).
    pub(super) fn catch_up(&mut self, now: Instant) {
        let Some(orphan) = self.orphan else { return };
        if orphan.completes_at.is_none_or(|at| at > now) {
            return;
        }
        self.orphan = None;
        if orphan.plan == Plan::ShopperCancels {
            self.record_aborted(orphan.amount, orphan.currency);
            tracing::info!("ZVT simulator: the orphaned sale was cancelled by the shopper");
            return;
        }
        let record = self.complete_sale(orphan.plan, orphan.amount, orphan.currency);
        tracing::info!(
            approved = orphan.plan.approves(),
            trace = record.trace,
            receipt = ?record.receipt_number,
            "ZVT simulator: the orphaned sale completes while nobody listens"
        );
    }

    /// Whether a sale is still running without its ECR (a silent one counts until the next
    /// command that is not an abort ends it).
    pub(super) fn orphan_running(&self) -> bool {
        self.orphan.is_some()
    }

    /// A silent orphaned sale ends when another command comes.
    pub(super) fn end_silent_orphan(&mut self) {
        if self.orphan.is_some_and(|o| o.completes_at.is_none()) {
            self.orphan = None;
        }
    }

    /// An `06 B0` from the ECR while a sale goes on without it.
    pub(super) fn abort_orphan(&mut self) -> OrphanAbort {
        let Some(orphan) = self.orphan else {
            return OrphanAbort::NoSale;
        };
        if orphan.completes_at.is_none() {
            return OrphanAbort::Ignored;
        }
        if !orphan.honours_abort {
            return OrphanAbort::Refused;
        }
        self.orphan = None;
        self.record_aborted(orphan.amount, orphan.currency);
        tracing::info!("ZVT simulator: 06 B0 aborts the orphaned sale");
        OrphanAbort::Aborted
    }

    /// The faults for the sale that starts now; later sales get none.
    pub(super) fn take_sale_faults(&mut self) -> SaleFaults {
        std::mem::take(&mut self.faults)
    }

    fn trace(&mut self) -> u32 {
        let trace = self.next_trace;
        self.next_trace = if trace >= 999_999 { 1 } else { trace + 1 };
        trace
    }

    fn receipt(&mut self) -> u16 {
        let receipt = self.next_receipt;
        self.next_receipt = if receipt >= 9_999 { 1 } else { receipt + 1 };
        receipt
    }

    /// Journals a finished sale (approved or declined) and returns it.
    pub(super) fn complete_sale(
        &mut self,
        plan: Plan,
        amount: Amount,
        currency: CurrencyCode,
    ) -> Record {
        let approved = plan.approves();
        let trace = self.trace();
        let receipt_number = approved.then(|| self.receipt());
        let (time, date) = now();
        let code = if approved {
            ResultCode::SUCCESS
        } else {
            codes::DECLINED_BY_ISSUER
        };
        let mut status = self.status_head(code, amount, trace, time, date);
        if approved && let Some(aid) = FixedText::<8>::padded(&authorisation_code(trace), b' ') {
            status.push(Bmp::Aid(aid));
        }
        status.push(Bmp::Currency(currency));
        if let Some(receipt) = receipt_number {
            status.push(Bmp::ReceiptNumber(receipt));
        }
        status.push(Bmp::CardType(CARD_TYPE_VISA));
        status.push(Bmp::CardName(Text::from_bytes(CARD_NAME.as_bytes())));
        let title = if approved {
            "PAYMENT"
        } else {
            "PAYMENT DECLINED"
        };
        let outcome = if approved {
            "APPROVED".to_string()
        } else {
            format!("DECLINED (code {:02X})", code.0)
        };
        let receipts = self.receipts(
            title,
            &outcome,
            amount,
            currency,
            trace,
            receipt_number,
            time,
            date,
        );
        let record = Record {
            kind: RecordKind::Sale {
                approved,
                reversible: plan != Plan::ApproveNeedsCardToReverse,
                reversed: false,
            },
            amount,
            currency,
            trace,
            receipt_number,
            status,
            receipts,
        };
        self.journal.push(record.clone());
        self.last_completed = Some(self.journal.len() - 1);
        self.export();
        record
    }

    /// Journals a sale that was cancelled or aborted (not a transaction).
    pub(super) fn record_aborted(&mut self, amount: Amount, currency: CurrencyCode) {
        self.journal.push(Record {
            kind: RecordKind::Aborted,
            amount,
            currency,
            trace: 0,
            receipt_number: None,
            status: BmpList::new(),
            receipts: Vec::new(),
        });
        self.export();
    }

    /// The sale an ECR refused the Status-Information of is reversed by the terminal.
    pub(super) fn auto_reverse(&mut self, trace: u32) {
        for record in self.journal.iter_mut().rev() {
            if record.trace == trace
                && let RecordKind::Sale { reversed, .. } = &mut record.kind
            {
                *reversed = true;
                self.export();
                return;
            }
        }
    }

    pub(super) fn last_completed(&self) -> Option<&Record> {
        self.journal.get(self.last_completed?)
    }

    /// Reverses the approved sale with `receipt` in the open batch.
    pub(super) fn reverse(&mut self, receipt: u16) -> Result<Record, ReversalRefusal> {
        let position = self.journal.iter().rposition(|record| {
            record.receipt_number == Some(receipt)
                && matches!(record.kind, RecordKind::Sale { approved: true, .. })
        });
        let Some(position) = position else {
            return Err(ReversalRefusal::Unknown);
        };
        if position < self.batch_start {
            return Err(ReversalRefusal::BatchClosed);
        }
        let Some(sale) = self.journal.get_mut(position) else {
            return Err(ReversalRefusal::Unknown);
        };
        match &mut sale.kind {
            RecordKind::Sale { reversed: true, .. } => {
                return Err(ReversalRefusal::AlreadyReversed);
            }
            RecordKind::Sale {
                reversible: false, ..
            } => return Err(ReversalRefusal::NeedsCard),
            RecordKind::Sale { reversed, .. } => *reversed = true,
            _ => return Err(ReversalRefusal::Unknown),
        }
        let (amount, currency, original_trace) = (sale.amount, sale.currency, sale.trace);
        let trace = self.trace();
        let receipt_number = self.receipt();
        let (time, date) = now();
        let mut status = self.status_head(ResultCode::SUCCESS, amount, trace, time, date);
        status.push(Bmp::OriginalTraceNumber(original_trace));
        status.push(Bmp::Currency(currency));
        status.push(Bmp::ReceiptNumber(receipt_number));
        status.push(Bmp::CardType(CARD_TYPE_VISA));
        status.push(Bmp::CardName(Text::from_bytes(CARD_NAME.as_bytes())));
        let outcome = format!("REVERSAL OF RECEIPT {receipt:04}");
        let receipts = self.receipts(
            "REVERSAL",
            &outcome,
            amount,
            currency,
            trace,
            Some(receipt_number),
            time,
            date,
        );
        let record = Record {
            kind: RecordKind::Reversal {
                of_receipt: receipt,
            },
            amount,
            currency,
            trace,
            receipt_number: Some(receipt_number),
            status,
            receipts,
        };
        self.journal.push(record.clone());
        self.last_completed = Some(self.journal.len() - 1);
        self.export();
        Ok(record)
    }

    /// Closes the batch: its totals, the End-of-Day Status-Information and report.
    pub(super) fn end_of_day(&mut self) -> (BatchTotals, BmpList, PrintTextBlock) {
        let batch = self.journal.get(self.batch_start..).unwrap_or_default();
        let mut totals = BatchTotals {
            sales: 0,
            reversals: 0,
            net_minor: 0,
        };
        for record in batch {
            match record.kind {
                RecordKind::Sale { approved: true, .. } => {
                    totals.sales += 1;
                    totals.net_minor += record.amount.minor_units();
                }
                RecordKind::Reversal { .. } => {
                    totals.reversals += 1;
                    totals.net_minor = totals.net_minor.saturating_sub(record.amount.minor_units());
                }
                _ => {}
            }
        }
        self.batch_start = self.journal.len();
        let trace = self.trace();
        let (time, date) = now();
        let mut status = BmpList::new().with(Bmp::ResultCode(ResultCode::SUCCESS));
        if let Some(total) = Amount::from_minor_units(totals.net_minor.min(Amount::MAX)) {
            status.push(Bmp::Amount(total));
        }
        let status = status
            .with(Bmp::TraceNumber(trace))
            .with(Bmp::Time(time))
            .with(Bmp::Date(date))
            .with(Bmp::TerminalId(self.terminal_id));
        let lines = [
            "posbridge ZVT simulator".to_string(),
            format!("Terminal-ID {:08}", self.terminal_id),
            format!("{}  {}", date_text(date), time_text(time)),
            "END OF DAY".to_string(),
            format!("Sales      {:>4}", totals.sales),
            format!("Reversals  {:>4}", totals.reversals),
            format!("Total      {}", money(totals.net_minor)),
            "BATCH CLOSED".to_string(),
        ];
        let block = PrintTextBlock::receipt(receipt_type::ADMINISTRATION, texts(&lines));
        (totals, status, block)
    }

    #[allow(clippy::too_many_arguments)]
    fn receipts(
        &self,
        title: &str,
        outcome: &str,
        amount: Amount,
        currency: CurrencyCode,
        trace: u32,
        receipt_number: Option<u16>,
        time: Time,
        date: Date,
    ) -> Vec<PrintTextBlock> {
        [
            (receipt_type::MERCHANT, "MERCHANT COPY"),
            (receipt_type::CUSTOMER, "CUSTOMER COPY"),
        ]
        .into_iter()
        .map(|(kind, copy)| {
            let mut lines = vec![
                "posbridge ZVT simulator".to_string(),
                format!("Terminal-ID {:08}", self.terminal_id),
                format!("{}  {}", date_text(date), time_text(time)),
                title.to_string(),
                CARD_NAME.to_string(),
                format!("Card {RECEIPT_PAN}"),
                format!("Trace {trace:06}"),
            ];
            if let Some(receipt) = receipt_number {
                lines.push(format!("Receipt {receipt:04}"));
            }
            lines.push(format!(
                "Amount {} {}",
                currency_name(currency),
                money(amount.minor_units())
            ));
            lines.push(outcome.to_string());
            lines.push(copy.to_string());
            PrintTextBlock::receipt(kind, texts(&lines))
        })
        .collect()
    }
}

/// The authorisation code of a transaction (BMP 3B, 8 characters).
fn authorisation_code(trace: u32) -> String {
    format!("A{:07}", (u64::from(trace) * 7919 + 1234) % 10_000_000)
}

fn texts(lines: &[String]) -> Vec<Text> {
    lines
        .iter()
        .map(|line| Text::encode(line).unwrap_or_else(|| Text::from_bytes(line.as_bytes())))
        .collect()
}

fn money(minor: u64) -> String {
    format!("{}.{:02}", minor / 100, minor % 100)
}

fn currency_name(currency: CurrencyCode) -> String {
    match currency.code() {
        978 => "EUR".into(),
        986 => "BRL".into(),
        other => format!("{other:03}"),
    }
}

fn date_text(date: Date) -> String {
    format!("{:02}.{:02}.", date.day, date.month)
}

fn time_text(time: Time) -> String {
    format!("{:02}:{:02}:{:02}", time.hour, time.minute, time.second)
}

/// Time of day and date now, in UTC (the simulator has no time zone database).
pub(super) fn now() -> (Time, Date) {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    time_and_date(since_epoch)
}

fn time_and_date(seconds_since_epoch: u64) -> (Time, Date) {
    let days = seconds_since_epoch / 86_400;
    let of_day = seconds_since_epoch % 86_400;
    let time = Time {
        hour: u8::try_from(of_day / 3600).unwrap_or(0),
        minute: u8::try_from(of_day % 3600 / 60).unwrap_or(0),
        second: u8::try_from(of_day % 60).unwrap_or(0),
    };
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let date = Date {
        month: u8::try_from(month).unwrap_or(1),
        day: u8::try_from(day).unwrap_or(1),
    };
    (time, date)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        let (time, date) = time_and_date(0);
        assert_eq!((date.month, date.day, time.hour), (1, 1, 0));
        // 2024-02-29 23:59:58 UTC
        let (time, date) = time_and_date(1_709_251_198);
        assert_eq!((date.month, date.day), (2, 29));
        assert_eq!((time.hour, time.minute, time.second), (23, 59, 58));
    }

    #[test]
    fn plans_by_cents() {
        let plan = |minor| Plan::for_amount(Amount::from_minor_units(minor).expect("amount"));
        assert_eq!(plan(1001), Plan::Decline);
        assert_eq!(plan(102), Plan::ShopperCancels);
        assert_eq!(plan(3), Plan::Silent);
        assert_eq!(plan(1004), Plan::ApproveSlowly);
        assert_eq!(plan(1005), Plan::ApproveIgnoringAbort);
        assert_eq!(plan(1006), Plan::ApproveNeedsCardToReverse);
        assert_eq!(plan(1000), Plan::Approve);
        assert_eq!(plan(1099), Plan::Approve);
    }

    #[test]
    fn a_terminal_in_use_repeats_an_earlier_sale_kept_out_of_the_record() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("record.jsonl");
        let mut terminal = Terminal::new(1, 1, SaleFaults::default());
        terminal.record_to(Some(path.clone()));
        assert!(terminal.last_completed().is_none(), "fresh: no memory");
        terminal.remember_an_earlier_sale();
        let earlier = terminal.last_completed().expect("an earlier sale");
        assert_eq!(earlier.amount.minor_units(), EARLIER_SALE_MINOR);
        assert_eq!(std::fs::read_to_string(&path).expect("record"), "");
        let amount = Amount::from_minor_units(2500).expect("amount");
        let sale = terminal.complete_sale(Plan::Approve, amount, CurrencyCode::EUR);
        assert_eq!(sale.trace, 2);
        let record = std::fs::read_to_string(&path).expect("record");
        assert_eq!(record.lines().count(), 1, "{record}");
        assert!(record.contains("\"amount_minor\":2500"), "{record}");
    }

    #[tokio::test(start_paused = true)]
    async fn an_orphaned_sale_completes_on_time_unless_aborted() {
        let amount = Amount::from_minor_units(1000).expect("amount");
        let orphan = |plan, honours_abort| Orphan {
            plan,
            amount,
            currency: CurrencyCode::EUR,
            completes_at: Some(Instant::now() + Duration::from_secs(5)),
            honours_abort,
        };
        let mut terminal = Terminal::new(1, 1, SaleFaults::default());
        terminal.adopt_orphan(orphan(Plan::Approve, true));
        terminal.catch_up(Instant::now());
        assert!(terminal.last_completed().is_none(), "not yet");
        tokio::time::advance(Duration::from_secs(5)).await;
        terminal.catch_up(Instant::now());
        assert_eq!(terminal.last_completed().map(|r| r.trace), Some(1));
        assert!(!terminal.orphan_running());

        terminal.adopt_orphan(orphan(Plan::Approve, true));
        assert_eq!(terminal.abort_orphan(), OrphanAbort::Aborted);
        tokio::time::advance(Duration::from_secs(10)).await;
        terminal.catch_up(Instant::now());
        assert_eq!(
            terminal.last_completed().map(|r| r.trace),
            Some(1),
            "aborted: no transaction"
        );

        terminal.adopt_orphan(orphan(Plan::ApproveIgnoringAbort, false));
        assert_eq!(terminal.abort_orphan(), OrphanAbort::Refused);
        assert_eq!(Terminal::new(1, 41, SaleFaults::default()).next_trace, 41);
    }
}
