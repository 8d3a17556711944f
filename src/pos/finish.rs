//! Making a payment final: the one place that writes a final state, freezes the payment's PPP
//! answer and queues the callback that carries it — all in the caller's transaction, so a
//! final result is never stored without its callback, whoever ended the payment (terminal,
//! Gateway, Payment App, a busy lane).

use rusqlite::Connection;

use super::answer::PaymentAnswer;
use super::must_get;
use crate::outbox::Outbox;
use crate::payment::{PaymentState, SaleFields};
use crate::store::StoreError;
use crate::store::outbox::Callback;
use crate::store::payments;

/// Makes `payment_id` final in `state` with `sale` (what the terminal reported, or why it
/// ended): the callback it queued, for [`Outbox::hand_over`] once committed. `None` when it
/// was final already: a final result is never written over.
pub(super) fn finish(
    c: &Connection,
    payment_id: &str,
    state: PaymentState,
    sale: &SaleFields,
    now: i64,
) -> Result<Option<Callback>, StoreError> {
    debug_assert!(state.is_final());
    if must_get(c, payment_id)?.state.is_final() {
        return Ok(None);
    }
    payments::finish(c, payment_id, state, sale, now)?;
    let p = must_get(c, payment_id)?;
    let answer = PaymentAnswer::of(&p, p.state.ppp_status(), None).to_json()?;
    payments::freeze_answer(c, payment_id, &answer)?;
    Outbox::enqueue(c, payment_id, &p.callback_url, &answer, now).map(Some)
}

/// Why a payment ended without a terminal result: cancelled before (or instead of) a charge.
pub(super) fn cancelled(message: &str) -> SaleFields {
    SaleFields {
        code: Some("cancelled".into()),
        message: Some(message.into()),
        ..SaleFields::default()
    }
}
