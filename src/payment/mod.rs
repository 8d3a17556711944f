//! The payment model: what a payment is, its states and the legal changes between them. A leaf
//! that both the engine (`pos`, which decides) and the store (`store`, which persists) import, so
//! storage never holds a business rule of its own: its SQL guards come from [`Transition`].

mod state;

pub use state::{BindError, PaymentState, PppStatus, ResultEffect, Transition};

/// What the terminal reported about a finished sale (no card data beyond brand, first 6, last 4).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SaleFields {
    pub authorization_id: Option<String>,
    pub nsu: Option<String>,
    pub acquirer: Option<String>,
    pub code: Option<String>,
    pub message: Option<String>,
    pub card_brand: Option<String>,
    pub first_digits: Option<String>,
    pub last_digits: Option<String>,
    /// The terminal's own reference for the sale (what a reversal names).
    pub terminal_ref: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delays {
    pub seconds_waiting: u32,
    pub delay_to_cancel: u32,
    pub delay_to_auto_settle: u32,
    pub delay_to_auto_settle_after_antifraud: u32,
}

#[derive(Debug, Clone)]
pub struct Payment {
    pub payment_id: String,
    pub merchant: String,
    pub transaction_id: String,
    pub method: String,
    pub amount_minor: i64,
    pub currency: String,
    pub installments: Option<i64>,
    pub callback_url: String,
    pub submit_token: String,
    pub tid: String,
    pub state: PaymentState,
    pub terminal_id: Option<String>,
    pub delays: Delays,
    pub created_at: i64,
    pub charge_started_at: Option<i64>,
    pub sent_to_terminal_at: Option<i64>,
    pub cancel_requested_at: Option<i64>,
    pub sale: SaleFields,
    pub settle_id: Option<String>,
    pub settled_minor: i64,
    pub refunded_minor: i64,
    pub cancellation_id: Option<String>,
    pub first_answer_undefined: bool,
    /// The Create answer frozen when the payment became final (JSON).
    pub final_answer: Option<String>,
    /// The Gateway's paymentId when the row's key differs from it (a second merchant's payment
    /// with the same paymentId); `None`: the key is the paymentId.
    pub external_id: Option<String>,
    /// Resolved by hand: by whom (the admin token's name), when, why.
    pub resolution: Option<Resolution>,
}

/// A payment a person resolved because the terminal could not tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    pub by: String,
    pub at: i64,
    pub reason: String,
}

impl Payment {
    /// The paymentId the Gateway knows this payment by.
    pub fn vtex_payment_id(&self) -> &str {
        self.external_id.as_deref().unwrap_or(&self.payment_id)
    }
}

/// A payment as first stored by Create.
#[derive(Debug, Clone)]
pub struct NewPayment {
    pub payment_id: String,
    pub merchant: String,
    pub transaction_id: String,
    pub method: String,
    pub amount_minor: i64,
    pub currency: String,
    pub installments: Option<i64>,
    pub callback_url: String,
    pub submit_token: String,
    pub tid: String,
    pub state: PaymentState,
    pub terminal_id: Option<String>,
    pub delays: Delays,
    pub sale: SaleFields,
    pub first_answer_undefined: bool,
    /// See [`Payment::external_id`].
    pub external_id: Option<String>,
}
