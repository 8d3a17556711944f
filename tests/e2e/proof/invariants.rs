//! The money invariants, checked at the end of every scenario against the terminal's own record
//! (issue 11): what a scenario may never end with, whatever it killed or broke on the way.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::harness::*;
use crate::proof::rig::Rig;

/// What posbridge's database says of a payment and the operations done on the terminal for it.
struct Booked {
    state: String,
    amount_minor: i64,
    reversed_minor: i64,
    refunded_minor: i64,
}

fn booked(database: &Path, payment_id: &str) -> Option<Booked> {
    let conn =
        rusqlite::Connection::open_with_flags(database, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open the database");
    let (state, amount_minor) = conn
        .query_row(
            "SELECT state, amount_minor FROM payments WHERE payment_id = ?1",
            [payment_id],
            |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)),
        )
        .ok()?;
    let done = |kinds: &str| -> i64 {
        conn.query_row(
            &format!(
                "SELECT COALESCE(SUM(amount_minor), 0) FROM operations
                 WHERE payment_id = ?1 AND state = 'done' AND kind IN ({kinds})"
            ),
            [payment_id],
            |r| r.get(0),
        )
        .expect("operations")
    };
    Some(Booked {
        state,
        amount_minor,
        reversed_minor: done("'reversal', 'settle-reversal'"),
        refunded_minor: done("'refund'"),
    })
}

/// Waits until no reversal or refund is pending or sent (up to `limit`).
async fn operations_settled(database: &Path, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let unfinished: i64 = rusqlite::Connection::open_with_flags(
            database,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .and_then(|c| {
            c.query_row(
                "SELECT COUNT(*) FROM operations WHERE state IN ('pending', 'sent')",
                [],
                |r| r.get(0),
            )
        })
        .expect("operations");
        if unfinished == 0 {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Secrets that must never be written anywhere: logs, database, WAL, journals. The callback
/// signature is stored only sealed (the database alone cannot post a callback).
pub const NEVER_STORED: &[&str] = &[
    APP_TOKEN,
    CALLBACK_TOKEN,
    ADMIN_TOKEN,
    ONBOARDING_CODE,
    CALLBACK_SIGNATURE,
];

/// Checks every invariant for the scenario's payments (each must be final by now).
pub async fn check(rig: &mut Rig, payments: &[Value]) {
    check_with_unresolved(rig, payments, &[]).await;
}

/// [`check`], where the terminal could not tell what became of the `unresolved` payments (it
/// was swapped or reset): each must have stayed undefined (never a guess), with an alarm that
/// names it and no callback, and a charge the terminal's record holds for it is its own.
pub async fn check_with_unresolved(rig: &mut Rig, payments: &[Value], unresolved: &[Value]) {
    // A cancel answered 500 `cancel-pending` goes on on the terminal: the terminal's record and
    // the database are compared once nothing is on its way between them.
    if !operations_settled(&rig.daemon().db_path(), Duration::from_secs(60)).await {
        rig.fail("operations still on their way to the terminal after 60 s");
    }
    let record = rig.terminal.record(rig.daemon());
    let mut ours = 0;
    for body in payments {
        let (id, amount_minor) = id_and_amount(rig, body);
        // The final answer never changes once given, across every kill.
        let seen = rig.answers_of(&id).to_vec();
        let Some(first_final) = seen.iter().position(|a| a["status"] != "undefined") else {
            rig.fail(&format!("{id} was never final: {seen:?}"))
        };
        let final_answer = seen[first_final].clone();
        if let Some(changed) = seen[first_final..].iter().find(|a| **a != final_answer) {
            rig.fail(&format!(
                "{id}'s final answer changed:\n{final_answer}\nthen\n{changed}"
            ));
        }
        let Some(now) = rig.create(body).await else {
            rig.fail(&format!("{id}: no answer to a last Create"))
        };
        if now != final_answer {
            rig.fail(&format!(
                "{id}'s final answer changed at the end:\n{final_answer}\nnow\n{now}"
            ));
        }
        // The terminal agrees: at most one charge; approved ⇔ charged; nothing undone beyond it.
        let Some(booked) = booked(&rig.daemon().db_path(), &id) else {
            rig.fail(&format!("{id} is not in the database"))
        };
        let charges = record.charges_of(&id, amount_minor);
        ours += charges.len();
        if charges.len() > 1 {
            rig.fail(&format!(
                "{id} charged {} times: {charges:?}",
                charges.len()
            ));
        }
        let charge = charges.first();
        let status = final_answer["status"].as_str().unwrap_or_default();
        match status {
            "approved" if charge.is_none() => rig.fail(&format!(
                "{id} reported approved, the terminal has no charge: {record:?}"
            )),
            "denied" if charge.is_some_and(|c| c.net_minor() != 0) => rig.fail(&format!(
                "{id} reported denied, the terminal kept a charge: {charge:?}"
            )),
            "approved" | "denied" => {}
            other => rig.fail(&format!("{id}: unexpected final status {other}")),
        }
        if let Some(charge) = charge {
            if charge.amount_minor != booked.amount_minor {
                rig.fail(&format!(
                    "{id}: charged {charge:?}, booked {}",
                    booked.amount_minor
                ));
            }
            if charge.net_minor() < 0 {
                rig.fail(&format!("{id}: more undone than charged: {charge:?}"));
            }
            // Every reversal and refund on the terminal is booked, and only those.
            if charge.reversed_minor != booked.reversed_minor {
                rig.fail(&format!(
                    "{id}: the terminal reversed {}, posbridge booked {} (its charges: {charges:?})",
                    charge.reversed_minor, booked.reversed_minor
                ));
            }
            if charge.refunded_minor != booked.refunded_minor {
                rig.fail(&format!(
                    "{id}: the terminal refunded {}, posbridge booked {}",
                    charge.refunded_minor, booked.refunded_minor
                ));
            }
            if booked.state == "cancelled" && charge.net_minor() != 0 {
                rig.fail(&format!("{id} is cancelled, its charge stands: {charge:?}"));
            }
        } else if booked.reversed_minor + booked.refunded_minor > 0 {
            rig.fail(&format!(
                "{id}: operations booked on a sale the terminal never charged"
            ));
        }
        // Every final result called back, with the body Create gives.
        let callbacks = rig.receiver.wait_for(&id, Duration::from_secs(30)).await;
        if callbacks.is_empty() {
            rig.fail(&format!("{id}: no callback"));
        }
        if let Some((_, _, body)) = callbacks.iter().find(|(_, _, b)| *b != final_answer) {
            rig.fail(&format!(
                "{id}: a callback disagrees with Create:\n{body}\n{final_answer}"
            ));
        }
    }
    for body in unresolved {
        let (id, amount_minor) = id_and_amount(rig, body);
        if let Some(guess) = rig
            .answers_of(&id)
            .iter()
            .find(|a| a["status"] != "undefined")
        {
            rig.fail(&format!(
                "{id} cannot be told, yet it was answered: {guess}"
            ));
        }
        let Some(now) = rig.create(body).await else {
            rig.fail(&format!("{id}: no answer to a last Create"))
        };
        if now["status"] != "undefined" {
            rig.fail(&format!("{id} cannot be told, yet it is now: {now}"));
        }
        let charges = record.charges_of(&id, amount_minor);
        ours += charges.len();
        if charges.len() > 1 {
            rig.fail(&format!(
                "{id} charged {} times: {charges:?}",
                charges.len()
            ));
        }
        let (code, report) = rig.daemon().alarms();
        if code != Some(1) || !report.contains(&id) {
            rig.fail(&format!(
                "{id} is unresolved without an alarm naming it: `posbridge alarms` exit {code:?}\n{report}"
            ));
        }
        // Its alarm came before the final payments' callbacks, awaited above: a callback for
        // it would have been queued first.
        let callbacks = rig.receiver.for_payment(&id);
        if !callbacks.is_empty() {
            rig.fail(&format!(
                "{id} is unresolved, yet called back: {callbacks:?}"
            ));
        }
    }
    // Charges on the terminal == charges of the scenario's payments: nothing else was charged.
    if ours != record.charges.len() {
        rig.fail(&format!(
            "the terminal holds charges no payment accounts for: {:?}",
            record.charges
        ));
    }
    no_secret_stored(rig);
}

/// A scenario payment's id and amount in minor units.
fn id_and_amount(rig: &Rig, body: &Value) -> (String, i64) {
    let id = body["paymentId"].as_str().expect("paymentId").to_string();
    let amount = body["value"].as_f64().map(|v| (v * 100.0).round() as i64);
    let Some(amount_minor) = amount else {
        rig.fail("a scenario's amount must be a JSON number")
    };
    (id, amount_minor)
}

/// No token or code in the logs or in any file the daemon and its terminal wrote (database,
/// WAL, journals), read while the daemon runs so that nothing is hidden by a checkpoint.
pub fn no_secret_stored(rig: &Rig) {
    let daemon = rig.daemon();
    let logs = daemon.logs();
    for secret in NEVER_STORED {
        if logs.contains(secret) {
            rig.fail(&format!("`{secret}` found in the daemon's log"));
        }
        let holding = daemon.files_holding(secret);
        if !holding.is_empty() {
            rig.fail(&format!("`{secret}` stored in {holding:?}"));
        }
    }
}

/// No settlement beyond the authorization, no refund beyond the settlement, and nothing settled
/// or refunded on a payment that is not approved — in posbridge's own books.
pub fn nothing_beyond_what_was_charged(rig: &Rig, payments: &[Value]) {
    let conn = rusqlite::Connection::open_with_flags(
        rig.daemon().db_path(),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open the database");
    for body in payments {
        let id = body["paymentId"].as_str().expect("paymentId");
        let (state, amount, settled, refunded): (String, i64, i64, i64) = conn
            .query_row(
                "SELECT state, amount_minor, settled_minor, refunded_minor FROM payments
                 WHERE payment_id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .expect("the payment's row");
        if settled > amount || refunded > settled || refunded < 0 {
            rig.fail(&format!(
                "{id}: amount {amount}, settled {settled}, refunded {refunded}"
            ));
        }
        if state != "approved" && settled > 0 {
            rig.fail(&format!("{id} is {state} and settled {settled}"));
        }
    }
}
