//! The callback outbox: rows written in the same transaction as the result they carry.

use rusqlite::{Connection, Row, params};

use super::StoreError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Callback {
    pub id: i64,
    pub payment_id: String,
    /// The clear address; `None` when its sealed form cannot be opened (restored without the
    /// key file): it cannot be sent.
    pub url: Option<String>,
    pub body: String,
    pub attempts: u32,
    pub created_at: i64,
    pub next_attempt_at: i64,
}

fn from_row(row: &Row<'_>) -> rusqlite::Result<Callback> {
    Ok(Callback {
        id: row.get("id")?,
        payment_id: row.get("payment_id")?,
        url: row.get("url_clear")?,
        body: row.get("body")?,
        attempts: row.get("attempts")?,
        created_at: row.get("created_at")?,
        next_attempt_at: row.get("next_attempt_at")?,
    })
}

/// Queues a callback due now; its number.
pub fn enqueue(
    c: &Connection,
    payment_id: &str,
    url: &str,
    body: &str,
    now: i64,
) -> Result<i64, StoreError> {
    super::run(
        c,
        "INSERT INTO outbox (payment_id, url, body, state, created_at, next_attempt_at)
         VALUES (?1, seal_url(?2), ?3, 'pending', ?4, ?4)",
        params![payment_id, url, body, now],
    )?;
    Ok(c.last_insert_rowid())
}

/// Where a page of [`due`] callbacks starts: after this `(next_attempt_at, id)`.
pub type DueCursor = (i64, i64);

/// Before every callback: the first page of [`due`].
pub const FIRST_DUE: DueCursor = (i64::MIN, i64::MIN);

/// Pending callbacks due at `now`, oldest first, from `after` on (one page of at most `limit`).
pub fn due(
    c: &Connection,
    now: i64,
    after: DueCursor,
    limit: u32,
) -> Result<Vec<Callback>, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT *, open_url(url) AS url_clear FROM outbox WHERE state = 'pending' AND next_attempt_at <= ?1
            AND (next_attempt_at, id) > (?2, ?3)
         ORDER BY next_attempt_at, id LIMIT ?4",
    )?;
    let rows = stmt
        .query_map(params![now, after.0, after.1, limit], from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// When the next pending callback not yet due at `now` falls due, if any.
pub fn next_due_after(c: &Connection, now: i64) -> Result<Option<i64>, StoreError> {
    Ok(super::row(
        c,
        "SELECT MIN(next_attempt_at) FROM outbox WHERE state = 'pending' AND next_attempt_at > ?1",
        [now],
        |r| r.get(0),
    )?)
}

pub fn delivered(c: &Connection, id: i64, now: i64) -> Result<(), StoreError> {
    super::run(
        c,
        "UPDATE outbox SET state = 'delivered', attempts = attempts + 1, delivered_at = ?2,
            last_error = NULL WHERE id = ?1",
        params![id, now],
    )?;
    Ok(())
}

pub fn failed(
    c: &Connection,
    id: i64,
    next_attempt_at: Option<i64>,
    error: &str,
) -> Result<(), StoreError> {
    match next_attempt_at {
        Some(at) => super::run(
            c,
            "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?2, last_error = ?3
             WHERE id = ?1",
            params![id, at, error],
        )?,
        None => super::run(
            c,
            "UPDATE outbox SET attempts = attempts + 1, state = 'given_up', last_error = ?2
             WHERE id = ?1",
            params![id, error],
        )?,
    };
    Ok(())
}

/// (state, attempts) of every callback of a payment, oldest first.
pub fn states_of(c: &Connection, payment_id: &str) -> Result<Vec<(String, u32)>, StoreError> {
    let mut stmt =
        c.prepare_cached("SELECT state, attempts FROM outbox WHERE payment_id = ?1 ORDER BY id")?;
    let rows = stmt
        .query_map([payment_id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Callbacks the outbox gave up on: (payment id, attempts, last error).
pub fn given_up(c: &Connection) -> Result<Vec<(String, u32, Option<String>)>, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT payment_id, attempts, last_error FROM outbox WHERE state = 'given_up' ORDER BY id",
    )?;
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// A callback not delivered yet, for store IT's status page (no URL: it carries a signature).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undelivered {
    pub id: i64,
    pub payment_id: String,
    /// `pending` (no failed attempt yet), `failing` (retrying) or `given_up`.
    pub state: &'static str,
    pub attempts: u32,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
}

/// Every callback not delivered, oldest first (at most `limit`).
pub fn undelivered(c: &Connection, limit: u32) -> Result<Vec<Undelivered>, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT id, payment_id, state, attempts, next_attempt_at, last_error FROM outbox
         WHERE state != 'delivered' ORDER BY id LIMIT ?1",
    )?;
    let rows = stmt
        .query_map([limit], |r| {
            let state: String = r.get(2)?;
            let attempts: u32 = r.get(3)?;
            Ok(Undelivered {
                id: r.get(0)?,
                payment_id: r.get(1)?,
                state: match (state.as_str(), attempts) {
                    ("given_up", _) => "given_up",
                    (_, 0) => "pending",
                    _ => "failing",
                },
                attempts,
                next_attempt_at: r.get(4)?,
                last_error: r.get(5)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Makes an undelivered callback due now (a given-up one too: one more attempt). False when
/// there is no such undelivered callback.
pub fn redeliver_now(c: &Connection, id: i64, now: i64) -> Result<bool, StoreError> {
    let changed = super::run(
        c,
        "UPDATE outbox SET state = 'pending', next_attempt_at = ?2
         WHERE id = ?1 AND state != 'delivered'",
        params![id, now],
    )?;
    Ok(changed == 1)
}

/// Makes every undelivered callback of one payment due now (given-up ones too): their ids,
/// oldest first; empty when it has none.
pub fn redeliver_payment_now(
    c: &Connection,
    payment_id: &str,
    now: i64,
) -> Result<Vec<i64>, StoreError> {
    let mut stmt = c.prepare_cached(
        "UPDATE outbox SET state = 'pending', next_attempt_at = ?2
         WHERE payment_id = ?1 AND state != 'delivered' RETURNING id",
    )?;
    let mut ids = stmt
        .query_map(params![payment_id, now], |r| r.get(0))?
        .collect::<Result<Vec<i64>, _>>()?;
    ids.sort_unstable();
    Ok(ids)
}

/// Undelivered callbacks: how many, and when the oldest was written.
pub fn backlog(c: &Connection) -> Result<(i64, Option<i64>), StoreError> {
    Ok(super::row(
        c,
        "SELECT COUNT(*), MIN(created_at) FROM outbox WHERE state = 'pending'",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?)
}
