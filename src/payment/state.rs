//! The per-payment state machine. Pure: the engine decides each transition and persists it in
//! one transaction; the store's conditional UPDATEs are guarded by [`Transition::from`].
//!
//! ```text
//! received ──serial──▶ bound ──2nd Create (CAS)──▶ charging ──result──▶ approved ──cancel──▶ cancelled
//!    │                   │                          │    │                (settle / refund are amounts)
//!    └──── cancel ───────┴──── cancel (abort) ──────┘    ├──▶ denied
//!                                                        └──▶ unknown ──recovery──▶ approved | denied
//!                                                                 └──▶ unresolved (a person decides)
//! ```
//!
//! A payment's PPP answer is frozen when it first becomes final (see `pos::finish`): a payment
//! approved and later cancelled keeps answering `approved`; the cancellation is the
//! cancellation endpoint's answer.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentState {
    /// Stored; waiting for the Sales App to name the terminal.
    Received,
    /// A terminal is named; the next Create starts the charge.
    Bound,
    /// The one charge is queued on, or running on, the terminal.
    Charging,
    /// The terminal could not tell what happened; recovery keeps asking.
    Unknown,
    /// The terminal can no longer tell (its memory was lost, it was replaced, or a later
    /// transaction overwrote the one it could repeat): stays undefined, a person decides.
    Unresolved,
    Approved,
    Denied,
    Cancelled,
}

/// What the PPP `status` field says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PppStatus {
    Approved,
    Denied,
    Undefined,
}

impl PppStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PppStatus::Approved => "approved",
            PppStatus::Denied => "denied",
            PppStatus::Undefined => "undefined",
        }
    }
}

/// What a terminal result does to a payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultEffect {
    /// The payment becomes final with this state.
    Finish(PaymentState),
    /// Approved after a cancel, abort or timeout: reverse it on the terminal at once.
    ReverseLateApproval,
    /// A decline after a cancel request: the cancel is complete.
    CompleteCancel,
    /// A duplicate or stale result for a payment already final.
    Ignore,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BindError {
    #[error("the charge has already started on another terminal")]
    ChargeStarted,
    #[error("the payment is already final")]
    Final,
}

/// A change of state the store writes under a guard: the states each may start from, in one
/// table that the engine's checks and the store's `WHERE state IN (…)` both read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// A terminal is named (or named again) before the charge: → bound.
    Bind,
    /// The one charge starts (the store's compare-and-set): → charging.
    StartCharge,
    /// The sale is handed to the terminal (the durable intent; the state stays charging).
    Send,
    /// The payment becomes final: → approved | denied | cancelled. A final result is never
    /// written over.
    Finish,
}

impl Transition {
    /// The states this transition may start from.
    pub const fn from(self) -> &'static [PaymentState] {
        use PaymentState::{Bound, Charging, Received, Unknown, Unresolved};
        match self {
            Transition::Bind => &[Received, Bound],
            Transition::StartCharge => &[Bound],
            Transition::Send => &[Charging],
            Transition::Finish => &[Received, Bound, Charging, Unknown, Unresolved],
        }
    }

    pub fn allowed_from(self, state: PaymentState) -> bool {
        self.from().contains(&state)
    }
}

impl PaymentState {
    /// Final: the PPP answer is frozen and called back.
    pub const FINAL: [PaymentState; 3] = [
        PaymentState::Approved,
        PaymentState::Denied,
        PaymentState::Cancelled,
    ];

    /// The terminal may be working on it (or may have, and must be asked).
    pub const ON_TERMINAL: [PaymentState; 2] = [PaymentState::Charging, PaymentState::Unknown];

    pub fn as_str(self) -> &'static str {
        match self {
            PaymentState::Received => "received",
            PaymentState::Bound => "bound",
            PaymentState::Charging => "charging",
            PaymentState::Unknown => "unknown",
            PaymentState::Unresolved => "unresolved",
            PaymentState::Approved => "approved",
            PaymentState::Denied => "denied",
            PaymentState::Cancelled => "cancelled",
        }
    }

    pub fn is_final(self) -> bool {
        Self::FINAL.contains(&self)
    }

    /// Whether the terminal may be working on it right now.
    pub fn on_terminal(self) -> bool {
        Self::ON_TERMINAL.contains(&self)
    }

    pub fn ppp_status(self) -> PppStatus {
        match self {
            PaymentState::Approved => PppStatus::Approved,
            PaymentState::Denied | PaymentState::Cancelled => PppStatus::Denied,
            _ => PppStatus::Undefined,
        }
    }

    /// Binding (or re-binding) a terminal is allowed until the charge starts.
    pub fn bind(self) -> Result<PaymentState, BindError> {
        if Transition::Bind.allowed_from(self) {
            Ok(PaymentState::Bound)
        } else if self.is_final() {
            Err(BindError::Final)
        } else {
            Err(BindError::ChargeStarted)
        }
    }

    /// The effect of a terminal result (`approved` true/false) given whether a cancel arrived.
    pub fn on_result(self, approved: bool, cancel_requested: bool) -> ResultEffect {
        use PaymentState::{Cancelled, Charging, Denied, Unknown, Unresolved};
        match (self, approved, cancel_requested) {
            (Charging | Unknown | Unresolved, true, false) => {
                ResultEffect::Finish(PaymentState::Approved)
            }
            (Charging | Unknown | Unresolved, false, false) => {
                ResultEffect::Finish(PaymentState::Denied)
            }
            (Charging | Unknown | Unresolved, false, true) => ResultEffect::CompleteCancel,
            // An approval for a payment no longer waiting for one.
            (Charging | Unknown | Unresolved, true, true) | (Cancelled | Denied, true, _) => {
                ResultEffect::ReverseLateApproval
            }
            _ => ResultEffect::Ignore,
        }
    }
}

impl fmt::Display for PaymentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PaymentState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "received" => PaymentState::Received,
            "bound" => PaymentState::Bound,
            "charging" => PaymentState::Charging,
            "unknown" => PaymentState::Unknown,
            "unresolved" => PaymentState::Unresolved,
            "approved" => PaymentState::Approved,
            "denied" => PaymentState::Denied,
            "cancelled" => PaymentState::Cancelled,
            other => return Err(format!("unknown payment state `{other}`")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::PaymentState::*;
    use super::*;

    const ALL: [PaymentState; 8] = [
        Received, Bound, Charging, Unknown, Unresolved, Approved, Denied, Cancelled,
    ];

    #[test]
    fn names_round_trip() {
        for s in ALL {
            assert_eq!(s.as_str().parse::<PaymentState>(), Ok(s));
        }
        assert!("charged".parse::<PaymentState>().is_err());
    }

    #[test]
    fn only_a_payment_not_final_yet_may_finish() {
        for s in ALL {
            assert_eq!(Transition::Finish.allowed_from(s), !s.is_final(), "{s}");
        }
        assert_eq!(Transition::StartCharge.from(), &[Bound]);
        assert!(Transition::Send.from().iter().all(|s| s.on_terminal()));
    }

    #[test]
    fn binding_only_before_the_charge() {
        assert_eq!(Received.bind(), Ok(Bound));
        assert_eq!(Bound.bind(), Ok(Bound));
        assert_eq!(Charging.bind(), Err(BindError::ChargeStarted));
        assert_eq!(Unknown.bind(), Err(BindError::ChargeStarted));
        assert_eq!(Unresolved.bind(), Err(BindError::ChargeStarted));
        for s in [Approved, Denied, Cancelled] {
            assert_eq!(s.bind(), Err(BindError::Final));
        }
    }

    #[test]
    fn results_finish_only_charging_payments() {
        assert_eq!(
            Charging.on_result(true, false),
            ResultEffect::Finish(Approved)
        );
        assert_eq!(
            Charging.on_result(false, false),
            ResultEffect::Finish(Denied)
        );
        assert_eq!(
            Unknown.on_result(true, false),
            ResultEffect::Finish(Approved)
        );
        assert_eq!(Approved.on_result(true, false), ResultEffect::Ignore);
        assert_eq!(Denied.on_result(false, false), ResultEffect::Ignore);
        assert_eq!(Received.on_result(true, false), ResultEffect::Ignore);
    }

    #[test]
    fn an_approval_after_a_cancel_is_reversed_never_reported() {
        assert_eq!(
            Charging.on_result(true, true),
            ResultEffect::ReverseLateApproval
        );
        assert_eq!(
            Cancelled.on_result(true, true),
            ResultEffect::ReverseLateApproval
        );
        assert_eq!(
            Denied.on_result(true, false),
            ResultEffect::ReverseLateApproval
        );
        assert_eq!(
            Charging.on_result(false, true),
            ResultEffect::CompleteCancel
        );
    }

    #[test]
    fn ppp_status_of_each_state() {
        assert_eq!(Approved.ppp_status(), PppStatus::Approved);
        assert_eq!(Cancelled.ppp_status(), PppStatus::Denied);
        assert_eq!(Denied.ppp_status(), PppStatus::Denied);
        assert_eq!(
            Unresolved.on_result(true, false),
            ResultEffect::Finish(Approved),
            "a result found later still counts"
        );
        for s in [Received, Bound, Charging, Unknown, Unresolved] {
            assert_eq!(s.ppp_status(), PppStatus::Undefined);
            assert!(!s.is_final());
        }
    }
}
