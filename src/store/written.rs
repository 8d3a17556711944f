//! Which payment rows the writer has changed lately: what a memory of payment rows asks
//! before it serves what it kept (`pos::kept_replies`).
//!
//! Triggers on the writer's connection (temporary: they live and die with it, outside the
//! schema) note every payment row inserted, updated or deleted, whatever the statement; the
//! daemon is the only writer of its database (`WriterLock`), so no change is made elsewhere.
//! The ids noted by a transaction are logged once it has ended — after its commit, before its
//! callers are answered. So a reader that takes a [`WriteMark`] and then reads a row either
//! saw the row's latest commit, or that commit is logged after its mark: it shows in
//! [`WrittenPayments::since`]. Noted before the commit, a change could be logged while a
//! reader still sees the row as it was, and the stale row would pass.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rusqlite::Connection;
use rusqlite::functions::FunctionFlags;

/// Changes remembered: a mark older than the oldest of them finds every payment changed. A few
/// seconds of a busy store's writes; a memory asks again after that, it is never wrong.
const REMEMBERED: usize = 8192;

#[derive(Default)]
pub struct WrittenPayments {
    log: Mutex<Log>,
}

#[derive(Default)]
struct Log {
    /// Noted by the transaction running now.
    noted: Vec<String>,
    /// Bumped by every transaction logged.
    generation: u64,
    /// Each payment's last logged change.
    latest: HashMap<String, u64>,
    /// The same changes, oldest first, to forget them in turn.
    order: VecDeque<(u64, String)>,
    /// Every change up to this generation may have been forgotten.
    forgotten_up_to: u64,
}

/// A point in the log: taken before a read whose rows may be kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteMark(u64);

impl WrittenPayments {
    /// Installs the triggers that note changed payments on the writer's connection.
    pub(super) fn watch(self: &Arc<Self>, conn: &Connection) -> rusqlite::Result<()> {
        let log = self.clone();
        conn.create_scalar_function(
            "note_payment_written",
            1,
            FunctionFlags::SQLITE_UTF8,
            move |ctx| {
                let id: String = ctx.get(0)?;
                log.lock().noted.push(id);
                Ok(0)
            },
        )?;
        conn.execute_batch(
            "CREATE TEMP TRIGGER note_payment_inserted AFTER INSERT ON main.payments
             BEGIN SELECT note_payment_written(NEW.payment_id); END;
             CREATE TEMP TRIGGER note_payment_updated AFTER UPDATE ON main.payments
             BEGIN
                 SELECT note_payment_written(OLD.payment_id);
                 SELECT note_payment_written(NEW.payment_id) WHERE NEW.payment_id IS NOT OLD.payment_id;
             END;
             CREATE TEMP TRIGGER note_payment_deleted AFTER DELETE ON main.payments
             BEGIN SELECT note_payment_written(OLD.payment_id); END;",
        )
    }

    /// Logs what the transaction just ended noted, committed or not (a change rolled back
    /// only makes a memory ask again).
    pub(super) fn transaction_ended(&self) {
        let mut log = self.lock();
        if log.noted.is_empty() {
            return;
        }
        log.generation += 1;
        let generation = log.generation;
        // Once per payment: a batch changes a payment's row several times (bound, charging…),
        // and each copy would shorten how far back the log reaches.
        let mut noted = std::mem::take(&mut log.noted);
        noted.sort_unstable();
        noted.dedup();
        for id in noted {
            log.latest.insert(id.clone(), generation);
            log.order.push_back((generation, id));
        }
        while log.order.len() > REMEMBERED {
            let Some((forgotten, id)) = log.order.pop_front() else {
                break;
            };
            log.forgotten_up_to = forgotten;
            if log.latest.get(&id) == Some(&forgotten) {
                log.latest.remove(&id);
            }
        }
    }

    pub fn mark(&self) -> WriteMark {
        WriteMark(self.lock().generation)
    }

    /// Whether `payment_id` may have been changed since `mark`: true when a change was
    /// logged after it, or the log no longer reaches back that far.
    pub fn since(&self, mark: WriteMark, payment_id: &str) -> bool {
        let log = self.lock();
        log.forgotten_up_to > mark.0 || log.latest.get(payment_id).is_some_and(|&g| g > mark.0)
    }

    fn lock(&self) -> MutexGuard<'_, Log> {
        // Every change to the log is whole before the lock is let go; at worst a panic loses
        // noted ids of a transaction that did not end.
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connection(log: &Arc<WrittenPayments>) -> Connection {
        let conn = Connection::open_in_memory().expect("open");
        conn.execute_batch("CREATE TABLE payments (payment_id TEXT PRIMARY KEY, state TEXT)")
            .expect("table");
        log.watch(&conn).expect("watch");
        conn
    }

    #[test]
    fn every_kind_of_change_shows_once_its_transaction_has_ended() {
        let log = Arc::new(WrittenPayments::default());
        let conn = connection(&log);
        let mark = log.mark();
        conn.execute_batch(
            "INSERT INTO payments VALUES ('p1', 'received'), ('p2', 'received'), ('p3', 'received')",
        )
        .expect("insert");
        assert!(
            !log.since(mark, "p1"),
            "logged before the transaction ended"
        );
        log.transaction_ended();
        assert!(log.since(mark, "p1"), "an insert");
        let mark = log.mark();
        conn.execute_batch(
            "UPDATE payments SET state = 'bound' WHERE payment_id = 'p1';
             UPDATE payments SET payment_id = 'p2-moved' WHERE payment_id = 'p2';
             DELETE FROM payments WHERE payment_id = 'p3';",
        )
        .expect("change");
        log.transaction_ended();
        for id in ["p1", "p2", "p2-moved", "p3"] {
            assert!(log.since(mark, id), "{id}");
        }
        // Each payment once per transaction, however often its row changed.
        let before = log.lock().order.len();
        conn.execute_batch(
            "UPDATE payments SET state = 'charging' WHERE payment_id = 'p1';
             UPDATE payments SET state = 'approved' WHERE payment_id = 'p1';",
        )
        .expect("change");
        log.transaction_ended();
        assert_eq!(log.lock().order.len(), before + 1);
        assert!(!log.since(mark, "p4"), "never written");
        assert!(!log.since(log.mark(), "p1"), "a mark after the change");
    }

    #[test]
    fn a_mark_older_than_the_log_remembers_finds_every_payment_changed() {
        let log = Arc::new(WrittenPayments::default());
        let conn = connection(&log);
        let mark = log.mark();
        for i in 0..=REMEMBERED {
            conn.execute(
                "INSERT INTO payments VALUES (?1, 'received')",
                [format!("p{i}")],
            )
            .expect("insert");
            log.transaction_ended();
        }
        assert!(log.since(mark, "never written"));
        let recent = log.mark();
        assert!(!log.since(recent, "never written"));
        let kept = log.lock();
        assert!(kept.order.len() <= REMEMBERED && kept.latest.len() <= REMEMBERED);
    }
}
