//! SQLite storage: one writer connection on its own thread (`writer`), which batches the
//! transactions of concurrent callers into one commit (one fsync for many). Every caller's work
//! runs inside its own savepoint, so one failing caller never undoes another's. Work that only
//! reads may run beside it instead (`Store::read`, on `readers`).

mod readers;
mod schema;
mod seal;
mod writer;
mod written;

pub use schema::LATEST_VERSION;
pub use written::WriteMark;

pub mod alarms;
pub mod events;
pub mod maintenance;
pub mod merchants;
pub mod operations;
pub mod orphans;
pub mod outbox;
pub mod payments;
pub mod receipts;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};

use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::oneshot;

use writer::{Job, Order, Reply, Request};

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The SQLite error itself, kept (not its text); shown in the message, so not repeated as
    /// a source in a printed chain.
    #[error("database error: {0}")]
    Sqlite(Arc<rusqlite::Error>),
    /// A WAL checkpoint on a clean stop found another reader holding the log.
    #[error("database error: the checkpoint could not complete: another reader holds the log")]
    CheckpointBusy,
    #[error("cannot open database {path}: {problem}")]
    Open { path: String, problem: String },
    #[error("the database writer has stopped")]
    Closed,
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// A value could not be encoded to be stored: the transaction writing it is undone.
    #[error("cannot encode {what} to store it: {source}")]
    Encode {
        what: &'static str,
        #[source]
        source: Arc<serde_json::Error>,
    },
    /// The database failed its integrity check at start (or is not a database at all). The
    /// daemon never serves from it: a lost or changed row could charge twice or lose a result.
    #[error(
        "the database {path} is damaged ({found}): posbridge will not run on it. Keep the damaged file aside for the vendor, restore the last backup and start again (see the operator guide, docs/operator-guide.md, \"A damaged database\")"
    )]
    Damaged { path: String, found: String },
    /// The database can only be read (file mode, owner or a read-only filesystem): every
    /// result must be stored before it is answered, so the daemon does not start.
    #[error(
        "the database {path} is read-only ({why}): posbridge must write every result before it answers. Make the file and its directory writable by the service user (see the operator guide, docs/operator-guide.md, \"A read-only database\")"
    )]
    ReadOnly { path: String, why: String },
    /// A downgrade: the database was migrated by a newer release. Left untouched.
    #[error(
        "the database {path} has schema version {found}, newer than this binary knows ({known}): it was written by a newer posbridge and is left untouched. Reinstall that newer release, or roll back with the pre-upgrade backup (see the operator guide, docs/operator-guide.md, \"Upgrade and rollback\")"
    )]
    NewerSchema {
        path: String,
        found: i64,
        known: i64,
    },
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Sqlite(Arc::new(e))
    }
}

#[derive(Clone)]
pub struct Store {
    mode: Arc<Mode>,
    path: PathBuf,
    /// The payment rows changed lately (see [`Store::payment_written_since`]).
    written: Arc<written::WrittenPayments>,
}

enum Mode {
    /// Production: a writer thread that batches commits, and connections that only read.
    Writer {
        sender: mpsc::Sender<Request>,
        readers: Arc<readers::Readers>,
    },
    /// Runs each call on the caller's thread; for tests on tokio's paused clock, where waiting
    /// on another thread would let paused time jump ahead.
    Inline(Mutex<Connection>),
}

impl Store {
    /// Opens (creating and migrating) the database and starts its writer thread.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let (conn, key) = open_connection(path)?;
        let readers = Arc::new(readers::Readers::new(path, key));
        let written = watch_written_payments(&conn, path)?;
        let (tx, rx) = mpsc::channel::<Request>();
        let log = written.clone();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer::writer_loop(conn, rx, &log))
            .map_err(|e| StoreError::Open {
                path: path.display().to_string(),
                problem: e.to_string(),
            })?;
        Ok(Self {
            mode: Arc::new(Mode::Writer {
                sender: tx,
                readers,
            }),
            path: path.to_path_buf(),
            written,
        })
    }

    /// Opens the database for inline use (see [`Mode::Inline`]).
    pub fn open_inline(path: &Path) -> Result<Self, StoreError> {
        let (conn, _) = open_connection(path)?;
        let written = watch_written_payments(&conn, path)?;
        Ok(Self {
            mode: Arc::new(Mode::Inline(Mutex::new(conn))),
            path: path.to_path_buf(),
            written,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A point in the log of changed payment rows, taken before a read whose rows a memory
    /// may keep.
    pub fn write_mark(&self) -> WriteMark {
        self.written.mark()
    }

    /// Whether the row of `payment_id` may have been inserted, changed or deleted since `mark`
    /// (true also when the log no longer reaches back that far). A change shows from before
    /// its callers are answered, and never while a reader could still see the row as it was.
    pub fn payment_written_since(&self, mark: WriteMark, payment_id: &str) -> bool {
        self.written.since(mark, payment_id)
    }

    /// Runs `work` in a transaction and answers once it is committed (durably: WAL with
    /// `synchronous=FULL`). An `Err` from `work` rolls back only `work`'s own changes.
    pub async fn call<R, F>(&self, work: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
    {
        self.queue(work, Order::InTurn).await
    }

    /// [`Store::call`] for what a terminal has already done (its result, a sale it started):
    /// run before the work queued in turn and committed at once, so it never waits behind a
    /// queue of Creates. Only for the few callers a terminal waits on: many would be a queue
    /// of their own.
    pub async fn call_ahead<R, F>(&self, work: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
    {
        self.queue(work, Order::Ahead).await
    }

    async fn queue<R, F>(&self, work: F, order: Order) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
    {
        match &*self.mode {
            Mode::Writer { sender, .. } => {
                let (tx, rx) = oneshot::channel();
                let job: Job = Box::new(move |conn| {
                    let result = work(conn);
                    let ok = result.is_ok();
                    let reply: Reply = Box::new(move |commit_error| {
                        let _ = tx.send(match commit_error {
                            Some(e) => Err(e),
                            None => result,
                        });
                    });
                    (ok, reply)
                });
                sender
                    .send(Request::Job(job, order))
                    .map_err(|_| StoreError::Closed)?;
                rx.await.map_err(|_| StoreError::Closed)?
            }
            Mode::Inline(conn) => {
                let mut conn = conn.lock().map_err(|_| StoreError::Closed)?;
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let result = work(&tx);
                let committed = if result.is_ok() {
                    tx.commit()
                } else {
                    tx.rollback()
                };
                self.written.transaction_ended();
                committed?;
                result
            }
        }
    }

    /// Runs `work`, which only reads, on a connection beside the writer: it never waits for
    /// the writer's queue, and sees every commit made before it began. Inline, on the one
    /// connection.
    pub async fn read<R, F>(&self, work: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
    {
        match &*self.mode {
            Mode::Writer { readers, .. } => match readers.read(work).await {
                Ok(read) => read,
                Err(work) => self.call(work).await,
            },
            Mode::Inline(conn) => {
                let conn = conn.lock().map_err(|_| StoreError::Closed)?;
                work(&conn)
            }
        }
    }
}

impl Store {
    /// Moves everything from the write-ahead log into the database file and truncates the
    /// log, so that the database file alone is complete (called on a clean stop).
    pub async fn checkpoint(&self) -> Result<(), StoreError> {
        match &*self.mode {
            Mode::Writer { sender, .. } => {
                let (tx, rx) = oneshot::channel();
                sender
                    .send(Request::Checkpoint(tx))
                    .map_err(|_| StoreError::Closed)?;
                rx.await.map_err(|_| StoreError::Closed)?
            }
            Mode::Inline(conn) => {
                let conn = conn.lock().map_err(|_| StoreError::Closed)?;
                checkpoint(&conn)
            }
        }
    }
}

fn checkpoint(conn: &Connection) -> Result<(), StoreError> {
    // (busy, log frames, frames copied): busy = 1 means a reader kept part of the log.
    let (busy, _, _): (i64, i64, i64) =
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
    if busy != 0 {
        return Err(StoreError::CheckpointBusy);
    }
    Ok(())
}

/// Statements kept prepared per connection: every one the payment flow runs (preparing a
/// statement costs about as much as running it).
const STATEMENTS_KEPT: usize = 64;

/// Runs one statement, kept prepared on its connection.
fn run(c: &Connection, sql: &str, params: impl rusqlite::Params) -> rusqlite::Result<usize> {
    c.prepare_cached(sql)?.execute(params)
}

/// Reads one row with a statement kept prepared on its connection.
fn row<T>(
    c: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    f: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    c.prepare_cached(sql)?.query_row(params, f)
}

/// The daemon's claim on its database: one process at a time writes it (a second daemon, or
/// a maintenance command while the daemon runs, is refused). Released when dropped.
#[derive(Debug)]
pub struct WriterLock {
    _file: std::fs::File,
}

/// Takes the exclusive claim on the database at `path` (a `.lock` file beside it).
pub fn lock_writer(path: &Path) -> Result<WriterLock, StoreError> {
    let lock_path = lock_path(path);
    let created = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path);
    // A lock file another user made (root running a maintenance command) still locks: a
    // shared read-only open is enough for the lock.
    let file = match created {
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            std::fs::File::open(&lock_path)
        }
        other => other,
    }
    .map_err(|e| match e.kind() {
        std::io::ErrorKind::ReadOnlyFilesystem => StoreError::ReadOnly {
            path: path.display().to_string(),
            why: format!("its filesystem is read-only: {e}"),
        },
        _ => StoreError::Open {
            path: lock_path.display().to_string(),
            problem: e.to_string(),
        },
    })?;
    match file.try_lock() {
        Ok(()) => Ok(WriterLock { _file: file }),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Open {
            path: path.display().to_string(),
            problem: "another posbridge process has it open (is the daemon running?)".into(),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(StoreError::Open {
            path: lock_path.display().to_string(),
            problem: e.to_string(),
        }),
    }
}

fn lock_path(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Opens the database read-only, for commands that only look (the daemon stays the one writer).
pub fn open_read_only(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| StoreError::Open {
        path: path.display().to_string(),
        problem: e.to_string(),
    })?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(conn)
}

/// The writer's connection, opened, checked and migrated, and the key its sealed values open
/// with.
fn open_connection(path: &Path) -> Result<(Connection, Arc<crate::seal::SealKey>), StoreError> {
    let open_error = |problem: String| StoreError::Open {
        path: path.display().to_string(),
        problem,
    };
    let mut conn = Connection::open(path).map_err(|e| open_error(e.to_string()))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(|e| open_error(e.to_string()))?;
    conn.set_prepared_statement_cache_capacity(STATEMENTS_KEPT);
    // SQLite falls back to a read-only open when it may not write the file: refused here
    // rather than at the first result it cannot store.
    if conn.is_readonly(rusqlite::MAIN_DB).unwrap_or(false) {
        return Err(StoreError::ReadOnly {
            path: path.display().to_string(),
            why: "the file cannot be written".into(),
        });
    }
    // WAL + FULL: a commit is on disk when it returns. secure_delete: freed pages are zeroed.
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA secure_delete = ON;
         PRAGMA foreign_keys = ON;",
    )
    .map_err(|e| opening_failed(path, e))?;
    check_integrity(&conn, path)?;
    // Before the migrations: one of them seals the addresses older releases wrote in clear.
    let key = Arc::new(crate::seal::SealKey::load_or_create(path)?);
    seal::register(&conn, key.clone()).map_err(|e| open_error(e.to_string()))?;
    schema::migrate(&mut conn).map_err(|e| match e {
        schema::MigrateError::Newer(found) => StoreError::NewerSchema {
            path: path.display().to_string(),
            found,
            known: schema::LATEST_VERSION,
        },
        schema::MigrateError::Failed(problem) => open_error(problem),
    })?;
    Ok((conn, key))
}

/// Starts the log of changed payment rows on the writer's connection.
fn watch_written_payments(
    conn: &Connection,
    path: &Path,
) -> Result<Arc<written::WrittenPayments>, StoreError> {
    let written = Arc::new(written::WrittenPayments::default());
    written.watch(conn).map_err(|e| opening_failed(path, e))?;
    Ok(written)
}

/// How many problems the start check names at most (the doctor shows them all).
const PROBLEMS_SHOWN: usize = 3;

/// The full `PRAGMA integrity_check` at every open, before any migration writes, then
/// `PRAGMA foreign_key_check`. Unlike `quick_check`, the full check compares every index with
/// its table: that is how a changed payment id in a payment's row shows; the foreign-key check
/// finds one changed in a row that names its payment (callback, receipt, event…). SQLite keeps
/// no checksum of row contents, so a changed byte inside an unindexed value (a URL, an amount)
/// cannot be found by any check. Measured at about 1.1 s (integrity) and 0.3 s (foreign keys)
/// for 100k payments with their callbacks in a debug build, once per start.
fn check_integrity(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let failed = |e| opening_failed(path, e);
    let problems = pragma_rows(
        conn,
        &format!("PRAGMA integrity_check({PROBLEMS_SHOWN})"),
        |r| r.get::<_, String>(0),
    )
    .map_err(failed)?;
    if !(problems.len() == 1 && problems[0] == "ok") {
        return Err(StoreError::Damaged {
            path: path.display().to_string(),
            found: problems.join("; "),
        });
    }
    // (table, rowid, parent table, constraint): a row naming a payment that does not exist.
    let orphans = pragma_rows(conn, "PRAGMA foreign_key_check", |r| {
        Ok(format!(
            "row {} of {} names a missing row of {}",
            r.get::<_, Option<i64>>(1)?.unwrap_or_default(),
            r.get::<_, String>(0)?,
            r.get::<_, String>(2)?
        ))
    })
    .map_err(failed)?;
    if !orphans.is_empty() {
        return Err(StoreError::Damaged {
            path: path.display().to_string(),
            found: orphans
                .into_iter()
                .take(PROBLEMS_SHOWN)
                .collect::<Vec<_>>()
                .join("; "),
        });
    }
    Ok(())
}

fn pragma_rows<T>(
    conn: &Connection,
    pragma: &str,
    row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<Vec<T>> {
    conn.prepare(pragma)?
        .query_map([], row)?
        .collect::<Result<Vec<_>, _>>()
}

/// An error while opening: a damaged or read-only file says so, anything else is an
/// [`StoreError::Open`] with SQLite's words.
fn opening_failed(path: &Path, error: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode;
    let path = path.display().to_string();
    match error.sqlite_error_code() {
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => StoreError::Damaged {
            path,
            found: error.to_string(),
        },
        Some(ErrorCode::ReadOnly) => StoreError::ReadOnly {
            path,
            why: error.to_string(),
        },
        _ => StoreError::Open {
            path,
            problem: error.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_writer_at_a_time_even_with_a_read_only_lock_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("w.db");
        let first = lock_writer(&db).expect("first");
        let second = lock_writer(&db).expect_err("second");
        assert!(second.to_string().contains("daemon running"), "{second}");
        drop(first);
        // A lock file someone else made (and this process may not write) still locks.
        let lock = lock_path(&db);
        let mut perms = std::fs::metadata(&lock).expect("lock").permissions();
        perms.set_readonly(true);
        std::fs::set_permissions(&lock, perms).expect("chmod");
        let held = lock_writer(&db).expect("read-only lock file");
        assert!(lock_writer(&db).is_err());
        drop(held);
    }

    /// A database file with one payment whose id is `id` and its callback, checkpointed: the
    /// file alone holds them.
    fn database_with(dir: &Path, id: &str) -> PathBuf {
        let db = dir.join("d.db");
        let store = Store::open_inline(&db).expect("open");
        let payment = payments::test_payment(id, crate::payment::PaymentState::Approved);
        let id = id.to_string();
        block_on(store.call(move |c| {
            payments::insert(c, &payment, 1)?;
            outbox::enqueue(c, &id, "http://127.0.0.1:9/cb", "{}", 1)
        }))
        .expect("insert");
        block_on(store.checkpoint()).expect("checkpoint");
        db
    }

    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(future)
    }

    fn assert_damaged(db: &Path, what: &str) {
        match Store::open_inline(db) {
            Err(StoreError::Damaged { path, .. }) => assert_eq!(path, db.display().to_string()),
            Err(other) => panic!("{what}: not reported as damaged: {other}"),
            Ok(_) => panic!("{what}: opened a damaged database"),
        }
    }

    #[test]
    fn a_damaged_header_is_refused_as_damaged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = database_with(dir.path(), "pay-header");
        let mut bytes = std::fs::read(&db).expect("read");
        bytes[..16].copy_from_slice(b"not a database!\0");
        std::fs::write(&db, bytes).expect("write");
        assert_damaged(&db, "header");
    }

    /// Every copy of a payment id in the file (its row, its index entry, its callback's row),
    /// changed by one bit, is found at open: the full integrity check compares the index with
    /// the table, the foreign-key check finds the callback naming a payment that is not there.
    #[test]
    fn a_flipped_byte_in_any_copy_of_a_payment_id_is_found_at_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let id = "pay-FLIP-7c3e91";
        let db = database_with(dir.path(), id);
        let pristine = std::fs::read(&db).expect("read");
        let places: Vec<usize> = pristine
            .windows(id.len())
            .enumerate()
            .filter(|(_, w)| *w == id.as_bytes())
            .map(|(at, _)| at)
            .collect();
        assert!(
            places.len() >= 3,
            "the row, its index entry, the callback: {places:?}"
        );
        for at in places {
            let mut bytes = pristine.clone();
            bytes[at + id.len() - 1] ^= 0x01;
            std::fs::write(&db, bytes).expect("write");
            assert_damaged(&db, &format!("flipped byte at {at}"));
        }
        std::fs::write(&db, pristine).expect("write");
        Store::open_inline(&db).expect("the unchanged file opens");
    }

    /// Not a test: the figure behind the choice of the full check at start (run by hand with
    /// `cargo test --release --lib integrity_check_time -- --ignored --nocapture`).
    #[test]
    #[ignore = "a measurement, run by hand"]
    fn integrity_check_time_on_100k_payments() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("big.db");
        let store = Store::open_inline(&db).expect("open");
        block_on(store.call(|c| {
            for i in 0..100_000 {
                let state = crate::payment::PaymentState::Approved;
                payments::insert(c, &payments::test_payment(&format!("pay-{i:08}"), state), i)?;
                outbox::enqueue(c, &format!("pay-{i:08}"), "http://127.0.0.1:9/cb", "{}", i)?;
            }
            Ok(())
        }))
        .expect("fill");
        block_on(store.checkpoint()).expect("checkpoint");
        drop(store);
        let conn = Connection::open(&db).expect("open");
        for pragma in ["integrity_check", "quick_check", "foreign_key_check"] {
            let started = std::time::Instant::now();
            let verdict: String = conn
                .query_row(&format!("PRAGMA {pragma}"), [], |r| r.get(0))
                .or_else(|e| match e {
                    rusqlite::Error::QueryReturnedNoRows => Ok("ok".into()),
                    e => Err(e),
                })
                .expect("check");
            let size = std::fs::metadata(&db).expect("size").len();
            println!(
                "{pragma}: {verdict} in {:?} on {size} bytes",
                started.elapsed()
            );
        }
    }

    #[tokio::test]
    async fn a_failing_call_does_not_undo_its_batch_neighbours() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("t.db")).expect("open");
        let mut calls = Vec::new();
        for i in 0..20i64 {
            let store = store.clone();
            calls.push(tokio::spawn(async move {
                store
                    .call(move |c| {
                        c.execute(
                            "INSERT INTO merchants (app_key, token_hash, created_at) VALUES (?1, 'h', 0)",
                            [format!("k{i}")],
                        )?;
                        if i % 2 == 0 {
                            return Err(StoreError::Corrupt("deliberate".into()));
                        }
                        Ok(())
                    })
                    .await
            }));
        }
        for c in calls {
            let _ = c.await.expect("join");
        }
        let count: i64 = store
            .call(|c| Ok(c.query_row("SELECT COUNT(*) FROM merchants", [], |r| r.get(0))?))
            .await
            .expect("count");
        assert_eq!(count, 10);
    }
}
