//! The Payment App feed's event log: per-payment sequence numbers, assigned by the one writer.

use rusqlite::{Connection, OptionalExtension, params};

use super::StoreError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub seq: i64,
    pub kind: String,
    /// The JSON frame as sent to clients.
    pub body: String,
    pub created_at: i64,
}

/// The next sequence number of a payment's feed.
pub fn next_seq(c: &Connection, payment_id: &str) -> Result<i64, StoreError> {
    let last: Option<i64> = super::row(
        c,
        "SELECT MAX(seq) FROM payment_events WHERE payment_id = ?1",
        [payment_id],
        |r| r.get(0),
    )?;
    Ok(last.unwrap_or(0) + 1)
}

/// Appends an event whose frame already carries `seq` (from [`next_seq`], same transaction).
pub fn append(
    c: &Connection,
    payment_id: &str,
    seq: i64,
    kind: &str,
    body: &str,
    now: i64,
) -> Result<(), StoreError> {
    super::run(
        c,
        "INSERT INTO payment_events (payment_id, seq, kind, body, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![payment_id, seq, kind, body, now],
    )?;
    Ok(())
}

/// Events with a sequence number above `after`, in order.
pub fn after(c: &Connection, payment_id: &str, after: i64) -> Result<Vec<StoredEvent>, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT seq, kind, body, created_at FROM payment_events
         WHERE payment_id = ?1 AND seq > ?2 ORDER BY seq",
    )?;
    let rows = stmt
        .query_map(params![payment_id, after], |r| {
            Ok(StoredEvent {
                seq: r.get(0)?,
                kind: r.get(1)?,
                body: r.get(2)?,
                created_at: r.get(3)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// The latest event of `kind`, if any.
pub fn last_of_kind(
    c: &Connection,
    payment_id: &str,
    kind: &str,
) -> Result<Option<StoredEvent>, StoreError> {
    Ok(super::row(
        c,
        "SELECT seq, kind, body, created_at FROM payment_events
         WHERE payment_id = ?1 AND kind = ?2 ORDER BY seq DESC LIMIT 1",
        params![payment_id, kind],
        |r| {
            Ok(StoredEvent {
                seq: r.get(0)?,
                kind: r.get(1)?,
                body: r.get(2)?,
                created_at: r.get(3)?,
            })
        },
    )
    .optional()?)
}

/// Forgets the feeds of payments whose result is older than `before` (their tokens expired).
pub fn prune(c: &Connection, before: i64) -> Result<usize, StoreError> {
    Ok(super::run(
        c,
        "DELETE FROM payment_events WHERE payment_id IN
            (SELECT payment_id FROM payment_events WHERE kind = 'result' AND created_at < ?1)",
        [before],
    )?)
}
