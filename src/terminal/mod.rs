//! Payment terminals: the driver trait every protocol implements, and one actor per terminal
//! that runs one transaction at a time. Knows nothing of PPP or the database.

mod actor;
pub mod simulator;

use std::future::Future;

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

pub use actor::{TerminalError, TerminalHandle, spawn};

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
    pub currency: String,
    pub function: CardFunction,
    pub installments: Option<i64>,
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
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaleOutcome {
    Approved(Approval),
    Declined { code: String, message: String },
}

/// The answer to "what happened to sale X?" after a crash, timeout or lost line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaleQuery {
    Completed(SaleOutcome),
    /// The terminal has no such transaction: proven not done.
    NotFound,
    /// Still running on the terminal.
    InProgress,
}

#[derive(Debug, Clone)]
pub struct OperationRequest {
    /// Our reference for this operation (recovery asks about it).
    pub reference: String,
    /// The terminal's reference of the sale it applies to.
    pub sale_ref: String,
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
}

/// A prompt or status the terminal shows while it works ("insert card", "enter PIN").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TerminalEvent {
    pub terminal_id: String,
    pub reference: String,
    pub text: String,
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
        tracing::debug!(payment_id = %reference, prompt = %text, "terminal prompt");
        // No subscriber is fine: prompts are informational.
        let _ = self.events.send(TerminalEvent {
            terminal_id: self.terminal_id.clone(),
            reference: reference.to_string(),
            text: text.to_string(),
        });
    }
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
        reference: &str,
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
}
