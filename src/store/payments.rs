//! Typed queries on the `payments` table. Business rules live in `pos`; these only read and
//! write, and the compare-and-set that starts a charge is a single conditional UPDATE.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::StoreError;
use crate::payment::{
    Delays, NewPayment, Payment, PaymentState, Resolution, SaleFields, Transition,
};

/// `state IN ('a', 'b')`: a guard built from the payment model's table, never written by hand.
pub(crate) fn state_in(states: &[PaymentState]) -> String {
    let names: Vec<String> = states.iter().map(|s| format!("'{}'", s.as_str())).collect();
    format!("state IN ({})", names.join(", "))
}

fn from_row(row: &Row<'_>) -> rusqlite::Result<Payment> {
    let state: String = row.get("state")?;
    let state = state.parse::<PaymentState>().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            Box::new(StoreError::Corrupt(e)),
        )
    })?;
    Ok(Payment {
        payment_id: row.get("payment_id")?,
        merchant: row.get("merchant")?,
        transaction_id: row.get("transaction_id")?,
        method: row.get("method")?,
        amount_minor: row.get("amount_minor")?,
        currency: row.get("currency")?,
        installments: row.get("installments")?,
        // Still sealed when it cannot be opened: the outbox gives such a callback up.
        callback_url: match row.get::<_, Option<String>>("callback_url_clear")? {
            Some(clear) => clear,
            None => row.get("callback_url")?,
        },
        submit_token: row.get("submit_token")?,
        tid: row.get("tid")?,
        state,
        terminal_id: row.get("terminal_id")?,
        delays: Delays {
            seconds_waiting: row.get("seconds_waiting")?,
            delay_to_cancel: row.get("delay_to_cancel")?,
            delay_to_auto_settle: row.get("delay_to_auto_settle")?,
            delay_to_auto_settle_after_antifraud: row
                .get("delay_to_auto_settle_after_antifraud")?,
        },
        created_at: row.get("created_at")?,
        charge_started_at: row.get("charge_started_at")?,
        sent_to_terminal_at: row.get("sent_to_terminal_at")?,
        cancel_requested_at: row.get("cancel_requested_at")?,
        sale: SaleFields {
            authorization_id: row.get("authorization_id")?,
            nsu: row.get("nsu")?,
            acquirer: row.get("acquirer")?,
            code: row.get("code")?,
            message: row.get("message")?,
            card_brand: row.get("card_brand")?,
            first_digits: row.get("first_digits")?,
            last_digits: row.get("last_digits")?,
            terminal_ref: row.get("terminal_ref")?,
        },
        settle_id: row.get("settle_id")?,
        settled_minor: row.get("settled_minor")?,
        refunded_minor: row.get("refunded_minor")?,
        cancellation_id: row.get("cancellation_id")?,
        first_answer_undefined: row.get("first_answer_undefined")?,
        final_answer: row.get("final_answer")?,
        external_id: row.get("external_id")?,
        resolution: match (
            row.get::<_, Option<String>>("resolved_by")?,
            row.get::<_, Option<i64>>("resolved_at")?,
        ) {
            (Some(by), Some(at)) => Some(Resolution {
                by,
                at,
                reason: row
                    .get::<_, Option<String>>("resolution_reason")?
                    .unwrap_or_default(),
            }),
            _ => None,
        },
    })
}

// The statements every Create runs are kept prepared on their connection (`prepare_cached`):
// preparing one costs about as much as running it.

pub fn get(c: &Connection, payment_id: &str) -> Result<Option<Payment>, StoreError> {
    Ok(c.prepare_cached(
        "SELECT *, open_url(callback_url) AS callback_url_clear FROM payments WHERE payment_id = ?1",
    )?
    .query_row([payment_id], from_row)
    .optional()?)
}

pub fn insert(c: &Connection, p: &NewPayment, now: i64) -> Result<(), StoreError> {
    c.prepare_cached(
        "INSERT INTO payments (payment_id, merchant, transaction_id, method, amount_minor, currency,
            installments, callback_url, submit_token, tid, state, terminal_id, seconds_waiting,
            delay_to_cancel, delay_to_auto_settle, delay_to_auto_settle_after_antifraud,
            created_at, updated_at, authorization_id, nsu, acquirer, code, message, card_brand,
            first_digits, last_digits, first_answer_undefined, external_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, seal_url(?8), ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?17,
            ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27)",
    )?
    .execute(params![
            p.payment_id,
            p.merchant,
            p.transaction_id,
            p.method,
            p.amount_minor,
            p.currency,
            p.installments,
            p.callback_url,
            p.submit_token,
            p.tid,
            p.state.as_str(),
            p.terminal_id,
            p.delays.seconds_waiting,
            p.delays.delay_to_cancel,
            p.delays.delay_to_auto_settle,
            p.delays.delay_to_auto_settle_after_antifraud,
            now,
            p.sale.authorization_id,
            p.sale.nsu,
            p.sale.acquirer,
            p.sale.code,
            p.sale.message,
            p.sale.card_brand,
            p.sale.first_digits,
            p.sale.last_digits,
            p.first_answer_undefined,
            p.external_id,
    ])?;
    Ok(())
}

pub fn bind_terminal(
    c: &Connection,
    payment_id: &str,
    terminal_id: &str,
    now: i64,
) -> Result<(), StoreError> {
    let sql = format!(
        "UPDATE payments SET state = 'bound', terminal_id = ?2, updated_at = ?3
         WHERE payment_id = ?1 AND {}",
        state_in(Transition::Bind.from())
    );
    c.prepare_cached(&sql)?
        .execute(params![payment_id, terminal_id, now])?;
    Ok(())
}

/// The compare-and-set that starts the one charge: only one caller, in any process, can move a
/// payment from `bound` to `charging`.
pub fn start_charge(c: &Connection, payment_id: &str, now: i64) -> Result<bool, StoreError> {
    let sql = format!(
        "UPDATE payments SET state = 'charging', charge_started_at = ?2, updated_at = ?2
         WHERE payment_id = ?1 AND {}",
        state_in(Transition::StartCharge.from())
    );
    let changed = c.prepare_cached(&sql)?.execute(params![payment_id, now])?;
    Ok(changed == 1)
}

/// Records that the sale is about to be sent to the terminal; after this only the terminal's
/// recovery query may decide the outcome. False if it may no longer be sent.
pub fn mark_sent(c: &Connection, payment_id: &str, now: i64) -> Result<bool, StoreError> {
    let sql = format!(
        "UPDATE payments SET sent_to_terminal_at = ?2, updated_at = ?2
         WHERE payment_id = ?1 AND {}
           AND sent_to_terminal_at IS NULL AND cancel_requested_at IS NULL",
        state_in(Transition::Send.from())
    );
    let changed = super::run(c, &sql, params![payment_id, now])?;
    Ok(changed == 1)
}

/// Records that a terminal's journal shows the sale sent to `terminal_id` at `sent_at` (the
/// database was behind it): from here only the terminal's recovery query may decide.
pub fn mark_sent_from_journal(
    c: &Connection,
    payment_id: &str,
    terminal_id: &str,
    sent_at: i64,
) -> Result<(), StoreError> {
    super::run(
        c,
        "UPDATE payments SET state = 'charging', terminal_id = ?2,
            charge_started_at = COALESCE(charge_started_at, ?3), sent_to_terminal_at = ?3,
            updated_at = ?3
         WHERE payment_id = ?1",
        params![payment_id, terminal_id, sent_at],
    )?;
    Ok(())
}

/// Records who resolved a payment by hand, when and why.
pub fn record_resolution(
    c: &Connection,
    payment_id: &str,
    by: &str,
    reason: &str,
    now: i64,
) -> Result<(), StoreError> {
    super::run(
        c,
        "UPDATE payments SET resolved_by = ?2, resolved_at = ?3, resolution_reason = ?4
         WHERE payment_id = ?1",
        params![payment_id, by, now, reason],
    )?;
    Ok(())
}

/// Payments of a terminal in charge order: (payment id, already sent to the terminal).
pub fn charging_on_terminal(
    c: &Connection,
    terminal_id: &str,
) -> Result<Vec<(String, bool)>, StoreError> {
    let sql = format!(
        "SELECT payment_id, sent_to_terminal_at IS NOT NULL FROM payments
         WHERE terminal_id = ?1 AND {}
         ORDER BY sent_to_terminal_at IS NULL, charge_started_at, payment_id",
        state_in(&PaymentState::ON_TERMINAL)
    );
    let mut stmt = c.prepare_cached(&sql)?;
    let rows = stmt
        .query_map([terminal_id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Every payment on any terminal (charging or unknown): (payment key, terminal, sent).
pub fn on_any_terminal(c: &Connection) -> Result<Vec<(String, String, bool)>, StoreError> {
    let sql = format!(
        "SELECT payment_id, terminal_id, sent_to_terminal_at IS NOT NULL FROM payments
         WHERE {} AND terminal_id IS NOT NULL
         ORDER BY payment_id",
        state_in(&PaymentState::ON_TERMINAL)
    );
    let mut stmt = c.prepare_cached(&sql)?;
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

pub fn set_state(
    c: &Connection,
    payment_id: &str,
    state: PaymentState,
    now: i64,
) -> Result<(), StoreError> {
    super::run(
        c,
        "UPDATE payments SET state = ?2, updated_at = ?3 WHERE payment_id = ?1",
        params![payment_id, state.as_str(), now],
    )?;
    Ok(())
}

/// Makes a payment final with what the terminal reported (or why it ended). Only a payment not
/// final yet changes: a final result is never written over.
pub fn finish(
    c: &Connection,
    payment_id: &str,
    state: PaymentState,
    sale: &SaleFields,
    now: i64,
) -> Result<(), StoreError> {
    let sql = format!(
        "UPDATE payments SET state = ?2, updated_at = ?3, authorization_id = ?4, nsu = ?5,
            acquirer = ?6, code = ?7, message = ?8, card_brand = ?9, first_digits = ?10,
            last_digits = ?11, terminal_ref = ?12
         WHERE payment_id = ?1 AND {}",
        state_in(Transition::Finish.from())
    );
    super::run(
        c,
        &sql,
        params![
            payment_id,
            state.as_str(),
            now,
            sale.authorization_id,
            sale.nsu,
            sale.acquirer,
            sale.code,
            sale.message,
            sale.card_brand,
            sale.first_digits,
            sale.last_digits,
            sale.terminal_ref,
        ],
    )?;
    Ok(())
}

/// Freezes the answer of a payment that has just become final (see `pos::answer`).
pub fn freeze_answer(c: &Connection, payment_id: &str, answer: &str) -> Result<(), StoreError> {
    super::run(
        c,
        "UPDATE payments SET final_answer = ?2 WHERE payment_id = ?1 AND final_answer IS NULL",
        params![payment_id, answer],
    )?;
    Ok(())
}

/// Records the cancellation of a payment that is already final (its answer stays frozen).
pub fn record_cancellation(
    c: &Connection,
    payment_id: &str,
    cancellation_id: &str,
    now: i64,
) -> Result<(), StoreError> {
    super::run(
        c,
        "UPDATE payments SET state = 'cancelled', cancellation_id = ?2,
            cancel_requested_at = COALESCE(cancel_requested_at, ?3), updated_at = ?3
         WHERE payment_id = ?1",
        params![payment_id, cancellation_id, now],
    )?;
    Ok(())
}

pub fn request_cancel(c: &Connection, payment_id: &str, now: i64) -> Result<(), StoreError> {
    super::run(c,
        "UPDATE payments SET cancel_requested_at = COALESCE(cancel_requested_at, ?2), updated_at = ?2
         WHERE payment_id = ?1",
        params![payment_id, now],
    )?;
    Ok(())
}

pub fn settle(
    c: &Connection,
    payment_id: &str,
    settle_id: &str,
    value: i64,
    now: i64,
) -> Result<(), StoreError> {
    super::run(
        c,
        "UPDATE payments SET settle_id = ?2, settled_minor = ?3, updated_at = ?4
         WHERE payment_id = ?1 AND settle_id IS NULL",
        params![payment_id, settle_id, value, now],
    )?;
    Ok(())
}

/// Adds (or, negative, releases) a refund reservation.
pub fn add_refunded(
    c: &Connection,
    payment_id: &str,
    delta: i64,
    now: i64,
) -> Result<(), StoreError> {
    super::run(
        c,
        "UPDATE payments SET refunded_minor = refunded_minor + ?2, updated_at = ?3
         WHERE payment_id = ?1",
        params![payment_id, delta, now],
    )?;
    Ok(())
}

/// Payments created at or after `since` (unix ms), newest first, at most `limit`.
pub fn created_since(c: &Connection, since: i64, limit: u32) -> Result<Vec<Payment>, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT *, open_url(callback_url) AS callback_url_clear FROM payments WHERE created_at >= ?1 ORDER BY created_at DESC LIMIT ?2",
    )?;
    let rows = stmt
        .query_map(params![since, limit], from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// How many payments are in each state.
pub fn count_by_state(c: &Connection) -> Result<Vec<(String, i64)>, StoreError> {
    let mut stmt =
        c.prepare_cached("SELECT state, COUNT(*) FROM payments GROUP BY state ORDER BY state")?;
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// A payment for tests: 10.00 BRL, on `lane-1` when bound or later.
#[cfg(test)]
pub(crate) fn test_payment(id: &str, state: PaymentState) -> NewPayment {
    NewPayment {
        payment_id: id.into(),
        merchant: "m".into(),
        transaction_id: "t".into(),
        method: "Venda Direta Credito".into(),
        amount_minor: 1000,
        currency: "BRL".into(),
        installments: None,
        callback_url: "http://127.0.0.1:9/cb".into(),
        submit_token: "tok".into(),
        tid: "tid".into(),
        state,
        terminal_id: (state != PaymentState::Received).then(|| "lane-1".into()),
        delays: Delays {
            seconds_waiting: 600,
            delay_to_cancel: 900,
            delay_to_auto_settle: 1,
            delay_to_auto_settle_after_antifraud: 1,
        },
        sale: SaleFields::default(),
        first_answer_undefined: false,
        external_id: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    /// Two separate connections (two writer threads, as two processes would have) race to
    /// start the same charge many times; exactly one wins each race.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn start_charge_is_a_compare_and_set_across_connections() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("race.db");
        let a = Store::open(&path).expect("open a");
        let b = Store::open(&path).expect("open b");
        for round in 0..25 {
            let id = format!("p{round}");
            let p = test_payment(&id, PaymentState::Bound);
            a.call(move |c| insert(c, &p, 1)).await.expect("insert");
            let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(8));
            let mut racers = Vec::new();
            for i in 0..8 {
                let store = if i % 2 == 0 { a.clone() } else { b.clone() };
                let id = id.clone();
                let barrier = barrier.clone();
                racers.push(tokio::spawn(async move {
                    barrier.wait().await;
                    store.call(move |c| start_charge(c, &id, 2)).await
                }));
            }
            let mut winners = 0;
            for r in racers {
                if r.await.expect("join").expect("cas") {
                    winners += 1;
                }
            }
            assert_eq!(winners, 1, "round {round}");
            let id2 = id.clone();
            let p = a
                .call(move |c| get(c, &id2))
                .await
                .expect("get")
                .expect("row");
            assert_eq!(p.state, PaymentState::Charging);
        }
    }
}
