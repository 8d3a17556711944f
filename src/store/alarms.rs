//! Alarms: what needs a person. Each is a row, open until its condition clears by itself
//! (`cleared_at`: a payment recovered, a callback delivered) or a person acknowledges it
//! (`acked_at`, `acked_by`: the admin token's name); both kinds stay as history.

use std::fmt;
use std::str::FromStr;

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::StoreError;

/// What an alarm is about. Each kind has an entry in the operator guide's alarm runbook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlarmKind {
    /// The terminal could not say yet whether a sale was charged; it is asked again.
    Unknown,
    /// The terminal can no longer tell whether a sale was charged; a person decides.
    Unresolved,
    /// The terminal approved a sale after it was cancelled or declared failed; reversed.
    LateApproval,
    /// …and the reversal failed: the card stays charged.
    LateApprovalNotReversed,
    /// A partial settlement whose difference the terminal could not give back.
    SettleReturn,
    /// The database was older than the terminal's journal; the sale is recovered.
    CaughtUp,
    /// A sale a terminal journal names and the database did not know (adopted).
    AdoptedSale,
    /// The Gateway never accepted a callback.
    CallbackGivenUp,
    /// An alarm of the one-text kind that came before these (moved here by migration).
    Earlier,
}

impl AlarmKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Unresolved => "unresolved",
            Self::LateApproval => "late-approval",
            Self::LateApprovalNotReversed => "late-approval-not-reversed",
            Self::SettleReturn => "settle-return",
            Self::CaughtUp => "caught-up",
            Self::AdoptedSale => "adopted-sale",
            Self::CallbackGivenUp => "callback-given-up",
            Self::Earlier => "earlier",
        }
    }

    pub const ALL: [AlarmKind; 9] = [
        Self::Unknown,
        Self::Unresolved,
        Self::LateApproval,
        Self::LateApprovalNotReversed,
        Self::SettleReturn,
        Self::CaughtUp,
        Self::AdoptedSale,
        Self::CallbackGivenUp,
        Self::Earlier,
    ];
}

impl fmt::Display for AlarmKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AlarmKind {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, StoreError> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown alarm kind `{s}`")))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alarm {
    pub id: i64,
    pub kind: AlarmKind,
    pub payment_id: Option<String>,
    pub subject: Option<String>,
    pub text: String,
    pub raised_at: i64,
    pub cleared_at: Option<i64>,
    pub acked_at: Option<i64>,
    pub acked_by: Option<String>,
    pub ack_note: Option<String>,
}

impl Alarm {
    /// Still needs a person: neither cleared nor acknowledged.
    pub fn is_open(&self) -> bool {
        self.cleared_at.is_none() && self.acked_at.is_none()
    }
}

fn from_row(row: &Row<'_>) -> rusqlite::Result<Alarm> {
    let kind: String = row.get("kind")?;
    Ok(Alarm {
        id: row.get("id")?,
        kind: kind.parse().map_err(|e: StoreError| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
        })?,
        payment_id: row.get("payment_id")?,
        subject: row.get("subject")?,
        text: row.get("text")?,
        raised_at: row.get("raised_at")?,
        cleared_at: row.get("cleared_at")?,
        acked_at: row.get("acked_at")?,
        acked_by: row.get("acked_by")?,
        ack_note: row.get("ack_note")?,
    })
}

/// Raises an alarm of `kind` about `payment_id` / `subject`, or, when one of that kind about
/// the same is still open, brings its text up to date.
pub fn raise(
    c: &Connection,
    kind: AlarmKind,
    payment_id: Option<&str>,
    subject: Option<&str>,
    text: &str,
    now: i64,
) -> Result<i64, StoreError> {
    let open: Option<i64> = c
        .query_row(
            "SELECT id FROM alarms WHERE kind = ?1 AND payment_id IS ?2 AND subject IS ?3
                AND cleared_at IS NULL AND acked_at IS NULL
             ORDER BY id DESC LIMIT 1",
            params![kind.as_str(), payment_id, subject],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(id) = open {
        c.execute(
            "UPDATE alarms SET text = ?2, updated_at = ?3 WHERE id = ?1",
            params![id, text, now],
        )?;
        return Ok(id);
    }
    c.execute(
        "INSERT INTO alarms (kind, payment_id, subject, text, raised_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
        params![kind.as_str(), payment_id, subject, text, now],
    )?;
    Ok(c.last_insert_rowid())
}

/// The condition behind open alarms of these kinds about `payment_id` went away by itself.
pub fn clear(
    c: &Connection,
    payment_id: &str,
    kinds: &[AlarmKind],
    now: i64,
) -> Result<(), StoreError> {
    for kind in kinds {
        c.execute(
            "UPDATE alarms SET cleared_at = ?3, updated_at = ?3
             WHERE payment_id = ?1 AND kind = ?2 AND cleared_at IS NULL AND acked_at IS NULL",
            params![payment_id, kind.as_str(), now],
        )?;
    }
    Ok(())
}

/// Clears the open alarm of `kind` about `subject` (a callback, a journal entry).
pub fn clear_subject(
    c: &Connection,
    kind: AlarmKind,
    subject: &str,
    now: i64,
) -> Result<(), StoreError> {
    c.execute(
        "UPDATE alarms SET cleared_at = ?3, updated_at = ?3
         WHERE kind = ?1 AND subject = ?2 AND cleared_at IS NULL AND acked_at IS NULL",
        params![kind.as_str(), subject, now],
    )?;
    Ok(())
}

/// What acknowledging alarm `id` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ack {
    Done(Alarm),
    NoSuchAlarm,
    /// Acknowledged before, or cleared by itself: nothing to do.
    AlreadySettled(Alarm),
}

/// A person (`by`, the admin token's name) has seen alarm `id` and dealt with it.
pub fn ack(
    c: &Connection,
    id: i64,
    by: &str,
    note: Option<&str>,
    now: i64,
) -> Result<Ack, StoreError> {
    let Some(alarm) = get(c, id)? else {
        return Ok(Ack::NoSuchAlarm);
    };
    if !alarm.is_open() {
        return Ok(Ack::AlreadySettled(alarm));
    }
    c.execute(
        "UPDATE alarms SET acked_at = ?2, acked_by = ?3, ack_note = ?4, updated_at = ?2
         WHERE id = ?1",
        params![id, now, by, note],
    )?;
    Ok(Ack::Done(get(c, id)?.ok_or_else(|| {
        StoreError::Corrupt(format!("alarm {id} vanished"))
    })?))
}

pub fn get(c: &Connection, id: i64) -> Result<Option<Alarm>, StoreError> {
    Ok(
        c.query_row("SELECT * FROM alarms WHERE id = ?1", [id], from_row)
            .optional()?,
    )
}

/// Alarms that still need a person, oldest first.
pub fn open(c: &Connection) -> Result<Vec<Alarm>, StoreError> {
    let mut stmt = c.prepare(
        "SELECT * FROM alarms WHERE cleared_at IS NULL AND acked_at IS NULL ORDER BY id",
    )?;
    let rows = stmt
        .query_map([], from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Every alarm, newest first, at most `limit`: the history.
pub fn history(c: &Connection, limit: u32) -> Result<Vec<Alarm>, StoreError> {
    let mut stmt = c.prepare("SELECT * FROM alarms ORDER BY id DESC LIMIT ?1")?;
    let rows = stmt
        .query_map([limit], from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// A payment's alarms, oldest first.
pub fn of_payment(c: &Connection, payment_id: &str) -> Result<Vec<Alarm>, StoreError> {
    let mut stmt = c.prepare("SELECT * FROM alarms WHERE payment_id = ?1 ORDER BY id")?;
    let rows = stmt
        .query_map([payment_id], from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[tokio::test]
    async fn raised_updated_cleared_acknowledged_and_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("a.db")).expect("open");
        let (first, again, other) = store
            .call(|c| {
                let first = raise(c, AlarmKind::Unknown, Some("p1"), None, "asking", 1)?;
                let again = raise(c, AlarmKind::Unknown, Some("p1"), None, "still asking", 2)?;
                let other = raise(c, AlarmKind::CallbackGivenUp, None, Some("7"), "cb", 3)?;
                Ok((first, again, other))
            })
            .await
            .expect("raise");
        assert_eq!(
            first, again,
            "an open alarm is brought up to date, not doubled"
        );
        let open_now = store.call(open).await.expect("open");
        assert_eq!(open_now.len(), 2);
        assert_eq!(open_now[0].text, "still asking");
        store
            .call(move |c| clear(c, "p1", &[AlarmKind::Unknown], 4))
            .await
            .expect("clear");
        let acked = store
            .call(move |c| ack(c, other, "ana", Some("called VTEX"), 5))
            .await
            .expect("ack");
        assert!(matches!(acked, Ack::Done(ref a) if a.acked_by.as_deref() == Some("ana")));
        let twice = store
            .call(move |c| ack(c, other, "joao", None, 6))
            .await
            .expect("ack");
        assert!(matches!(twice, Ack::AlreadySettled(_)));
        assert_eq!(
            store
                .call(move |c| ack(c, 999, "ana", None, 6))
                .await
                .expect("ack"),
            Ack::NoSuchAlarm
        );
        assert!(store.call(open).await.expect("open").is_empty());
        let history = store.call(|c| history(c, 10)).await.expect("history");
        assert_eq!(history.len(), 2, "settled alarms stay as history");
        // A new occurrence after the first was settled is a new alarm.
        let third = store
            .call(|c| raise(c, AlarmKind::Unknown, Some("p1"), None, "again", 7))
            .await
            .expect("raise");
        assert_ne!(third, first);
    }
}
