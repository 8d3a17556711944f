//! Payment terminals: the driver trait every protocol implements, and one actor per terminal
//! that runs one transaction at a time. Knows nothing of PPP or the database.

mod actor;
pub mod journal;
pub mod nexo;
pub mod protocol;
#[cfg(test)]
pub(crate) mod scripted;
pub mod setup;
pub mod simulator;
pub mod simulator_process;
pub mod tef_dial;
pub mod zvt;

use std::future::Future;

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::money::Currency;

pub use actor::{Reachability, TerminalError, TerminalHandle, spawn};
pub use setup::{OpenError, OpenedTerminal, ProtocolSettings, Terminals};

/// Credit or debit, as the payment method says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardFunction {
    Credit,
    Debit,
}

#[derive(Debug, Clone)]
pub struct SaleRequest {
    /// Our reference for the sale (the payment id); recovery asks about it.
    pub reference: String,
    pub amount_minor: i64,
    pub currency: Currency,
    pub function: CardFunction,
    pub installments: Option<i64>,
}

/// A receipt the terminal produced (card numbers in it are masked to first 6 / last 4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub kind: ReceiptKind,
    pub lines: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiptKind {
    Merchant,
    Customer,
    Other,
}

impl ReceiptKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ReceiptKind::Merchant => "merchant",
            ReceiptKind::Customer => "customer",
            ReceiptKind::Other => "other",
        }
    }
}

impl Receipt {
    /// A receipt with every long digit run masked, whatever the terminal printed.
    pub fn masked(kind: ReceiptKind, lines: impl IntoIterator<Item = String>) -> Self {
        Self {
            kind,
            lines: lines.into_iter().map(|l| mask_card_numbers(&l)).collect(),
        }
    }
}

/// Replaces every run of 13 or more digits (spaces and dashes allowed inside) by its first 6
/// and last 4 digits with `*` between: the only parts of a card number we may keep.
pub fn mask_card_numbers(line: &str) -> String {
    let chars: Vec<char> = line.chars().collect();
    let mut out = String::with_capacity(line.len());
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        // Extend over digits and single separators between digits.
        let start = i;
        let mut end = i;
        let mut digits = 0;
        while end < chars.len() {
            if chars[end].is_ascii_digit() {
                digits += 1;
                end += 1;
            } else if (chars[end] == ' ' || chars[end] == '-')
                && chars.get(end + 1).is_some_and(char::is_ascii_digit)
            {
                end += 1;
            } else {
                break;
            }
        }
        let run: String = chars[start..end].iter().collect();
        if digits >= 13 {
            let only: Vec<char> = run.chars().filter(char::is_ascii_digit).collect();
            let first: String = only[..6].iter().collect();
            let last: String = only[only.len() - 4..].iter().collect();
            out.push_str(&first);
            out.push_str(&"*".repeat(only.len() - 10));
            out.push_str(&last);
        } else {
            out.push_str(&run);
        }
        i = end;
    }
    out
}

/// What an approved sale reports. Card data: brand, first 6 and last 4 digits only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    pub authorization_code: String,
    pub nsu: String,
    pub acquirer: String,
    pub card_brand: String,
    pub first_digits: String,
    pub last_digits: String,
    /// The terminal's reference for the sale, named by reversals.
    pub terminal_ref: String,
    /// What to tell the Gateway in `message` (e.g. the terminal's receipt and trace numbers).
    pub message: String,
    pub receipts: Vec<Receipt>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaleOutcome {
    Approved(Approval),
    Declined {
        code: String,
        message: String,
        receipts: Vec<Receipt>,
    },
}

impl SaleOutcome {
    pub fn declined(code: &str, message: &str) -> Self {
        SaleOutcome::Declined {
            code: code.to_string(),
            message: message.to_string(),
            receipts: Vec::new(),
        }
    }

    pub fn receipts(&self) -> &[Receipt] {
        match self {
            SaleOutcome::Approved(a) => &a.receipts,
            SaleOutcome::Declined { receipts, .. } => receipts,
        }
    }
}

/// What recovery knows about the sale it asks after (ZVT cannot be asked by reference: it
/// matches the terminal's last transaction on amount and time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaleInquiry {
    pub reference: String,
    pub amount_minor: i64,
    pub currency: String,
    /// When the sale was handed to the terminal (unix ms).
    pub sent_at_ms: i64,
    /// The payment is to be cancelled: a sale still running may be aborted.
    pub cancel_requested: bool,
}

/// The answer to "what happened to sale X?" after a crash, timeout or lost line.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // one per recovery question: boxing would buy nothing
pub enum SaleQuery {
    Completed(SaleOutcome),
    /// The terminal has no such transaction and can no longer complete it: proven not done.
    NotFound,
    /// Still running on the terminal, or it may still be: ask again later.
    InProgress,
    /// The terminal can no longer tell: what it remembers does not match what was sent to it
    /// (it lost its memory, was replaced, or a later transaction took the sale's place).
    /// Asking again cannot help; a person must decide. Carries why, in plain words.
    Unresolvable(String),
}

#[derive(Debug, Clone)]
pub struct OperationRequest {
    /// Our reference for this operation (recovery asks about it).
    pub reference: String,
    /// The terminal's reference of the sale it applies to.
    pub sale_ref: String,
    /// What the sale itself was for (a reversal of less is a partial one).
    pub sale_amount_minor: i64,
    /// When the sale was handed to the terminal (unix ms).
    pub sale_at_ms: i64,
    pub amount_minor: i64,
    pub currency: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperationOutcome {
    Done,
    /// The terminal cannot do it without the card present: a person must.
    Unsupported(String),
    Failed(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperationQuery {
    Done,
    NotFound,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DriverError {
    #[error("the terminal did not answer in time")]
    Timeout,
    #[error("the terminal is not connected: {0}")]
    Disconnected(String),
    #[error("the terminal spoke garbage: {0}")]
    Protocol(String),
    /// The sale could not even be handed to the terminal: it is certainly not charged.
    #[error("the sale was not sent: {0}")]
    NotSent(String),
}

/// A prompt or status the terminal shows while it works ("insert card", "enter PIN").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TerminalEvent {
    pub terminal_id: String,
    pub reference: String,
    pub text: String,
    /// When the terminal showed it (unix microseconds).
    pub at_us: i64,
}

/// Where drivers publish what the terminal shows.
#[derive(Debug, Clone)]
pub struct PromptSink {
    terminal_id: String,
    events: broadcast::Sender<TerminalEvent>,
}

impl PromptSink {
    pub fn new(terminal_id: &str, events: broadcast::Sender<TerminalEvent>) -> Self {
        Self {
            terminal_id: terminal_id.to_string(),
            events,
        }
    }

    pub fn show(&self, reference: &str, text: &str) {
        crate::observability::terminal_event(&self.terminal_id);
        tracing::debug!(payment_id = %reference, prompt = %text, "terminal prompt");
        // No subscriber is fine: prompts are informational.
        let _ = self.events.send(TerminalEvent {
            terminal_id: self.terminal_id.clone(),
            reference: reference.to_string(),
            text: text.to_string(),
            at_us: unix_micros(),
        });
    }
}

fn unix_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Something the driver's journal says was handed to the terminal: a sale (by the payment's
/// reference) or an operation (by the operation's reference).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentRecord {
    pub reference: String,
    pub amount_minor: Option<i64>,
    /// When it was handed over (unix ms).
    pub at_ms: i64,
}

/// What the database made of a sale's result, for a protocol that confirms in two phases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The payment is approved with this sale: confirm it.
    Keep,
    /// Anything else (declined, cancelled meanwhile, another approval kept): an approval is
    /// undone, never confirmed.
    Undo,
}

/// A terminal protocol. The actor calls one method at a time; `abort` may fire during `sale`.
pub trait TerminalDriver: Send + 'static {
    fn sale(
        &mut self,
        request: &SaleRequest,
        prompts: &PromptSink,
        abort: &CancellationToken,
    ) -> impl Future<Output = Result<SaleOutcome, DriverError>> + Send;

    fn query_sale(
        &mut self,
        inquiry: &SaleInquiry,
    ) -> impl Future<Output = Result<SaleQuery, DriverError>> + Send;

    /// Reverses `amount_minor` of an approved sale (all of it, or the unsettled rest).
    fn reverse(
        &mut self,
        request: &OperationRequest,
    ) -> impl Future<Output = Result<OperationOutcome, DriverError>> + Send;

    fn refund(
        &mut self,
        request: &OperationRequest,
    ) -> impl Future<Output = Result<OperationOutcome, DriverError>> + Send;

    fn query_operation(
        &mut self,
        reference: &str,
    ) -> impl Future<Output = Result<OperationQuery, DriverError>> + Send;

    /// Asks the terminal how it is (status enquiry, registration): a line for store IT.
    fn probe(&mut self) -> impl Future<Output = Result<String, DriverError>> + Send;

    /// Closes the terminal's batch (end of day): a line for store IT.
    fn end_of_day(&mut self) -> impl Future<Output = Result<String, DriverError>> + Send;

    /// Everything the driver's journal says it handed to the terminal, oldest first: at start
    /// the database is checked against it (a restored backup must never charge again).
    fn sent(&self) -> Result<Vec<SentRecord>, DriverError>;

    /// The result of the sale `reference` is committed to the database: a two-phase protocol
    /// confirms the sale to its terminal only now (before, a crash would lose a charge), or
    /// undoes it when the database did not keep the approval (`verdict`). Called once per
    /// committed result, and again at start for what [`TerminalDriver::unconfirmed`] lists;
    /// most protocols have nothing to do.
    fn committed(
        &mut self,
        reference: &str,
        verdict: Verdict,
    ) -> impl Future<Output = Result<(), DriverError>> + Send {
        let _ = (reference, verdict);
        std::future::ready(Ok(()))
    }

    /// Sales whose result the terminal still holds provisional, waiting for a verdict (the
    /// daemon stopped between storing the result and confirming it), as
    /// `(reference, terminal_ref)`. Asked once at start.
    fn unconfirmed(&self) -> Vec<(String, String)> {
        Vec::new()
    }

    /// Outcomes the terminal reported on its own for sales it was asked about earlier (an
    /// approval found after the sale was declared never done): taken once each.
    fn late_outcomes(&mut self) -> Vec<(String, SaleOutcome)> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipts_never_carry_a_full_card_number() {
        assert_eq!(
            mask_card_numbers("Karte 4444333322221111 ok"),
            "Karte 444433******1111 ok"
        );
        assert_eq!(
            mask_card_numbers("PAN 4444 3333 2222 1111"),
            "PAN 444433******1111"
        );
        assert_eq!(
            mask_card_numbers("6789-0123-4567-8901-234"),
            "678901*********1234"
        );
        assert_eq!(
            mask_card_numbers("Beleg-Nr. 0006  Trace 000741"),
            "Beleg-Nr. 0006  Trace 000741"
        );
        assert_eq!(mask_card_numbers("xxxxxxxxxxxx7743"), "xxxxxxxxxxxx7743");
        let r = Receipt::masked(ReceiptKind::Customer, ["4444333322221111".to_string()]);
        assert_eq!(r.lines, ["444433******1111"]);
    }
}
