//! Receipts kept with their payment.

use rusqlite::{Connection, params};

use super::StoreError;

pub fn insert(
    c: &Connection,
    payment_id: &str,
    kind: &str,
    text: &str,
    now: i64,
) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO receipts (payment_id, kind, text, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![payment_id, kind, text, now],
    )?;
    Ok(())
}

/// (kind, text) of a payment's receipts, oldest first.
pub fn of_payment(c: &Connection, payment_id: &str) -> Result<Vec<(String, String)>, StoreError> {
    let mut stmt =
        c.prepare("SELECT kind, text FROM receipts WHERE payment_id = ?1 ORDER BY id")?;
    let rows = stmt
        .query_map([payment_id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}
