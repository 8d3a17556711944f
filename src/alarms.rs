//! `posbridge alarms`: what needs a person — payments the terminal could not resolve, late
//! approvals that were reversed, amounts to return by hand, callbacks given up. Reads the
//! database read-only, so it is safe while the daemon runs.

use std::fmt::Write;
use std::path::Path;

use crate::money::Currency;
use crate::store::{self, StoreError, orphans, outbox, payments};

/// The report as text; `None` when nothing needs attention.
pub fn report(database: &Path) -> Result<Option<String>, StoreError> {
    let conn = store::open_read_only(database)?;
    let flagged = payments::with_alarms(&conn)?;
    let given_up = outbox::given_up(&conn)?;
    let adopted = orphans::all_waiting(&conn)?;
    if flagged.is_empty() && given_up.is_empty() && adopted.is_empty() {
        return Ok(None);
    }
    let mut out = String::new();
    for p in &flagged {
        let amount = Currency::parse(&p.currency)
            .map(|c| c.to_decimal(p.amount_minor).to_string())
            .unwrap_or_else(|_| p.amount_minor.to_string());
        let _ = writeln!(
            out,
            "payment {}\t{}\t{} {}\tterminal {}\t{}",
            p.payment_id,
            p.state,
            amount,
            p.currency,
            p.terminal_id.as_deref().unwrap_or("-"),
            p.alarm.as_deref().unwrap_or_default()
        );
    }
    for orphan in &adopted {
        let _ = writeln!(
            out,
            "journal {}\tterminal {}\tamount {} (minor units)\tsent at {} (unix ms)\tadopted from the terminal's journal; no payment has taken it over yet: check the terminal's receipts",
            orphan.reference,
            orphan.terminal_id,
            orphan
                .amount_minor
                .map_or_else(|| "?".to_string(), |a| a.to_string()),
            orphan.sent_at
        );
    }
    for (payment_id, attempts, error) in &given_up {
        let _ = writeln!(
            out,
            "callback {payment_id}\tgiven up after {attempts} attempts\t{}",
            error.as_deref().unwrap_or_default()
        );
    }
    Ok(Some(out))
}
