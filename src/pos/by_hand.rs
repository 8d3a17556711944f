//! A payment resolved by a person: when the terminal can no longer tell whether a sale was
//! charged (`unresolved`), store IT looks at the terminal's receipts or the acquirer's report
//! and says so. The result and its callback then go out as if the terminal had said it; who
//! (the admin token's name), when and why are recorded, and the payment's alarms are settled
//! by them. A payment the terminal may still tell about (`unknown`) is not resolved by hand:
//! a person's guess must never overrule the terminal's record.

use super::finish;
use super::{Engine, EngineError, must_get};
use crate::payment::PaymentState;
use crate::payment::{Payment, SaleFields};
use crate::store::alarms::{self, AlarmKind};
use crate::store::payments;

/// What the person decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Approved,
    Denied,
}

impl Decision {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "approved" => Some(Self::Approved),
            "denied" => Some(Self::Denied),
            _ => None,
        }
    }

    fn state(self) -> PaymentState {
        match self {
            Self::Approved => PaymentState::Approved,
            Self::Denied => PaymentState::Denied,
        }
    }
}

/// A resolution as typed by store IT; the card fields come from the terminal's receipt (brand,
/// first 6 and last 4 digits only) and are optional.
#[derive(Debug, Clone)]
pub struct ByHand {
    pub decision: Decision,
    /// The admin token's name.
    pub by: String,
    pub reason: String,
    pub card_brand: Option<String>,
    pub first_digits: Option<String>,
    pub last_digits: Option<String>,
    pub nsu: Option<String>,
    pub authorization_id: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("no such payment")]
    UnknownPayment,
    #[error(
        "payment is {0}: only a payment its terminal can no longer account for (unresolved) is resolved by hand"
    )]
    NotUnresolved(PaymentState),
    /// Still on the terminal: posbridge keeps asking it, and its answer is what counts.
    #[error(
        "payment is {0}: its terminal may still tell what happened and posbridge keeps asking it, so it is not resolved by hand. Bring the terminal back (on, connected), or connect its replacement under the same id or remove it from the configuration: the payment then becomes unresolved"
    )]
    TerminalMayStillTell(PaymentState),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// Alarms a resolution by hand settles (acknowledged in the person's name).
const SETTLED_BY_HAND: [AlarmKind; 2] = [AlarmKind::Unresolved, AlarmKind::CaughtUp];

const MAX_TEXT: usize = 500;

fn text_field(name: &str, value: &str, max: usize) -> Result<(), ResolveError> {
    match crate::ids::problem(value, max) {
        None => Ok(()),
        Some(problem) => Err(ResolveError::Invalid(format!("{name} {problem}"))),
    }
}

fn digits(name: &str, value: Option<&str>, count: usize) -> Result<(), ResolveError> {
    match value {
        Some(v) if v.len() != count || !v.bytes().all(|b| b.is_ascii_digit()) => Err(
            ResolveError::Invalid(format!("{name} must be {count} digits")),
        ),
        _ => Ok(()),
    }
}

impl ByHand {
    fn check(&self) -> Result<(), ResolveError> {
        text_field("the reason", &self.reason, MAX_TEXT)?;
        digits("firstDigits", self.first_digits.as_deref(), 6)?;
        digits("lastDigits", self.last_digits.as_deref(), 4)?;
        for (name, value) in [
            ("cardBrand", &self.card_brand),
            ("nsu", &self.nsu),
            ("authorizationId", &self.authorization_id),
        ] {
            if let Some(value) = value {
                text_field(name, value, 64)?;
            }
        }
        Ok(())
    }

    /// What the Gateway hears. The person's name and reason stay in the store.
    fn sale(&self) -> SaleFields {
        let approved = self.decision == Decision::Approved;
        SaleFields {
            authorization_id: approved.then(|| {
                self.authorization_id
                    .clone()
                    .unwrap_or_else(|| "by-hand".into())
            }),
            nsu: self.nsu.clone(),
            acquirer: None,
            code: Some("resolved-by-hand".into()),
            message: Some(
                if approved {
                    "approved: resolved by hand at the store from the terminal's receipt"
                } else {
                    "denied: resolved by hand at the store (the terminal did not charge it)"
                }
                .into(),
            ),
            card_brand: self.card_brand.clone(),
            first_digits: self.first_digits.clone(),
            last_digits: self.last_digits.clone(),
            terminal_ref: None,
        }
    }
}

impl Engine {
    /// Resolves the payment `payment_id` (its key) by hand; see the module docs.
    pub async fn resolve(
        &self,
        payment_id: &str,
        resolution: ByHand,
    ) -> Result<Payment, ResolveError> {
        resolution.check()?;
        let id = payment_id.to_string();
        let now = self.now();
        let decided = resolution.clone();
        let resolved = self
            .store
            .call(move |c| {
                let Some(p) = payments::get(c, &id)? else {
                    return Ok(Err(ResolveError::UnknownPayment));
                };
                if p.state.on_terminal() {
                    return Ok(Err(ResolveError::TerminalMayStillTell(p.state)));
                }
                if p.state != PaymentState::Unresolved {
                    return Ok(Err(ResolveError::NotUnresolved(p.state)));
                }
                finish::finish(c, &id, decided.decision.state(), &decided.sale(), now)?;
                payments::record_resolution(c, &id, &decided.by, &decided.reason, now)?;
                let note = format!("resolved by hand: {}", decided.reason);
                for alarm in alarms::of_payment(c, &id)? {
                    if alarm.is_open() && SETTLED_BY_HAND.contains(&alarm.kind) {
                        alarms::ack(c, alarm.id, &decided.by, Some(&note), now)?;
                    }
                }
                Ok(Ok(must_get(c, &id)?))
            })
            .await
            .map_err(EngineError::from)??;
        tracing::warn!(payment_id = %payment_id, state = %resolved.state, by = %resolution.by, "payment resolved by hand; callback queued");
        self.publish(payment_id, resolved.state);
        self.outbox.wake();
        Ok(resolved)
    }
}
