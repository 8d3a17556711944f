//! Journal entries the database did not know, adopted by store IT (`posbridge adopt-journals`)
//! after a restore from an old backup: a sale handed to a terminal that no payment row names.

use rusqlite::{Connection, OptionalExtension, params};

use super::StoreError;

/// An adopted entry not taken over by a payment yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Orphan {
    pub reference: String,
    pub terminal_id: String,
    pub amount_minor: Option<i64>,
    pub sent_at: i64,
}

pub fn adopt(
    c: &Connection,
    terminal_id: &str,
    reference: &str,
    amount_minor: Option<i64>,
    sent_at: i64,
    now: i64,
) -> Result<(), StoreError> {
    c.execute(
        "INSERT OR IGNORE INTO journal_orphans
            (reference, terminal_id, amount_minor, sent_at, adopted_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![reference, terminal_id, amount_minor, sent_at, now],
    )?;
    Ok(())
}

pub fn is_adopted(c: &Connection, terminal_id: &str, reference: &str) -> Result<bool, StoreError> {
    Ok(c.query_row(
        "SELECT EXISTS (SELECT 1 FROM journal_orphans WHERE terminal_id = ?1 AND reference = ?2)",
        params![terminal_id, reference],
        |r| r.get(0),
    )?)
}

/// The adopted, not yet taken over entry for `reference` (the newest, if several terminals
/// name it).
pub fn waiting(c: &Connection, reference: &str) -> Result<Option<Orphan>, StoreError> {
    Ok(c.prepare_cached(
        "SELECT reference, terminal_id, amount_minor, sent_at FROM journal_orphans
         WHERE reference = ?1 AND payment_id IS NULL ORDER BY sent_at DESC LIMIT 1",
    )?
    .query_row([reference], |r| {
        Ok(Orphan {
            reference: r.get(0)?,
            terminal_id: r.get(1)?,
            amount_minor: r.get(2)?,
            sent_at: r.get(3)?,
        })
    })
    .optional()?)
}

/// Every adopted entry no payment has taken over (what needs a person), oldest first.
pub fn all_waiting(c: &Connection) -> Result<Vec<Orphan>, StoreError> {
    let mut stmt = c.prepare(
        "SELECT reference, terminal_id, amount_minor, sent_at FROM journal_orphans
         WHERE payment_id IS NULL ORDER BY sent_at",
    )?;
    let rows = stmt
        .query_map([], |r| {
            Ok(Orphan {
                reference: r.get(0)?,
                terminal_id: r.get(1)?,
                amount_minor: r.get(2)?,
                sent_at: r.get(3)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Marks an adopted entry as taken over by the payment stored for it.
pub fn take_over(c: &Connection, terminal_id: &str, reference: &str) -> Result<(), StoreError> {
    c.execute(
        "UPDATE journal_orphans SET payment_id = ?2 WHERE terminal_id = ?1 AND reference = ?2",
        params![terminal_id, reference],
    )?;
    Ok(())
}
