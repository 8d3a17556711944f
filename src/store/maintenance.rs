//! Housekeeping: online backups and the retention purge.

use std::path::Path;

use rusqlite::{Connection, params};

use super::StoreError;
use crate::payment::PaymentState;

/// Copies the live database to `destination` with SQLite's backup API: a consistent snapshot
/// even while the daemon writes (WAL lets the copy read a stable view). The copy is a plain
/// database file; restoring is copying it back while the daemon is stopped.
pub fn backup(source: &Path, destination: &Path) -> Result<(), StoreError> {
    if destination.exists() {
        return Err(StoreError::Open {
            path: destination.display().to_string(),
            problem: "already exists; choose a new file".into(),
        });
    }
    let conn = super::open_read_only(source)?;
    conn.backup(rusqlite::MAIN_DB, destination, None)?;
    let copy = Connection::open(destination)?;
    let check: String = copy.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    if check != "ok" {
        return Err(StoreError::Corrupt(format!(
            "the backup failed its integrity check: {check}"
        )));
    }
    Ok(())
}

/// How many rows a purge removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Purged {
    pub payments: usize,
    pub callbacks: usize,
}

/// Deletes payments finished before `cutoff_ms` (final, nothing pending on the terminal or in
/// the outbox) with their receipts, answers, operations, Payment App events and settled alarms,
/// and delivered callbacks older than the cutoff. Unresolved payments and payments with an open
/// alarm are kept whatever their age.
pub fn purge(c: &Connection, cutoff_ms: i64) -> Result<Purged, StoreError> {
    let doomed = format!(
        "SELECT payment_id FROM payments p
        WHERE p.updated_at < ?1
          AND p.{}
          AND NOT EXISTS (SELECT 1 FROM alarms a WHERE a.payment_id = p.payment_id
                          AND a.cleared_at IS NULL AND a.acked_at IS NULL)
          AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.payment_id = p.payment_id AND o.state != 'delivered')
          AND NOT EXISTS (SELECT 1 FROM operations op WHERE op.payment_id = p.payment_id AND op.state IN ('pending', 'sent'))",
        super::payments::state_in(&PaymentState::FINAL)
    );
    for table in [
        "alarms",
        "receipts",
        "answers",
        "operations",
        "outbox",
        "payment_events",
    ] {
        c.execute(
            &format!("DELETE FROM {table} WHERE payment_id IN ({doomed})"),
            params![cutoff_ms],
        )?;
    }
    let payments = c.execute(
        &format!("DELETE FROM payments WHERE payment_id IN ({doomed})"),
        params![cutoff_ms],
    )?;
    let callbacks = c.execute(
        "DELETE FROM outbox WHERE state = 'delivered' AND delivered_at < ?1",
        params![cutoff_ms],
    )?;
    Ok(Purged {
        payments,
        callbacks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payment::PaymentState;
    use crate::store::payments::{self, test_payment};
    use crate::store::{Store, outbox, receipts};

    #[tokio::test]
    async fn purge_keeps_recent_unfinished_alarmed_and_undelivered_payments() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("p.db")).expect("open");
        let day = 86_400_000;
        let purged = store
            .call(move |c| {
                let old = 1_000 * day;
                payments::insert(c, &test_payment("old-done", PaymentState::Approved), old)?;
                receipts::insert(c, "old-done", "customer", "text", old)?;
                c.execute(
                    "INSERT INTO payment_events (payment_id, seq, kind, body, created_at) VALUES ('old-done', 1, 'state', '{}', ?1)",
                    [old],
                )?;
                outbox::enqueue(c, "old-done", "http://x", "{}", old)?;
                let id: i64 = c.query_row(
                    "SELECT id FROM outbox WHERE payment_id = 'old-done'",
                    [],
                    |r| r.get(0),
                )?;
                outbox::delivered(c, id, old)?;
                payments::insert(
                    c,
                    &test_payment("old-charging", PaymentState::Charging),
                    old,
                )?;
                payments::insert(c, &test_payment("old-alarm", PaymentState::Approved), old)?;
                crate::store::alarms::raise(
                    c,
                    crate::store::alarms::AlarmKind::LateApproval,
                    Some("old-alarm"),
                    None,
                    "late approval",
                    old,
                )?;
                payments::insert(
                    c,
                    &test_payment("old-undelivered", PaymentState::Denied),
                    old,
                )?;
                outbox::enqueue(c, "old-undelivered", "http://x", "{}", old)?;
                payments::insert(
                    c,
                    &test_payment("recent", PaymentState::Approved),
                    1_095 * day,
                )?;
                purge(c, 1_010 * day)
            })
            .await
            .expect("purge");
        assert_eq!(
            purged,
            Purged {
                payments: 1,
                callbacks: 0
            }
        );
        let left: Vec<String> = store
            .call(|c| {
                let mut stmt = c.prepare("SELECT payment_id FROM payments ORDER BY payment_id")?;
                let rows = stmt
                    .query_map([], |r| r.get(0))?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(rows)
            })
            .await
            .expect("left");
        assert_eq!(
            left,
            ["old-alarm", "old-charging", "old-undelivered", "recent"]
        );
        let receipts_left: i64 = store
            .call(|c| Ok(c.query_row("SELECT COUNT(*) FROM receipts", [], |r| r.get(0))?))
            .await
            .expect("count");
        assert_eq!(receipts_left, 0);
    }

    #[tokio::test]
    async fn backup_is_a_consistent_copy_and_never_overwrites() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("live.db");
        let store = Store::open(&db).expect("open");
        store
            .call(|c| payments::insert(c, &test_payment("kept", PaymentState::Approved), 1))
            .await
            .expect("insert");
        let copy = dir.path().join("copy.db");
        backup(&db, &copy).expect("backup");
        let restored = Store::open(&copy).expect("open copy");
        let p = restored
            .call(|c| payments::get(c, "kept"))
            .await
            .expect("get");
        assert!(p.is_some_and(|p| p.state == PaymentState::Approved));
        assert!(
            backup(&db, &copy).is_err(),
            "an existing file is never overwritten"
        );
    }
}
