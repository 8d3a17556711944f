//! Read-only work beside the writer: a few connections of their own, each used by one blocking
//! task at a time. In WAL mode a reader never waits for the writer and sees the last commit
//! made before its read began — what the writer's own read would have seen a moment earlier —
//! so a request that can change nothing (a Create poll of a payment that is not bound) is
//! answered without queueing behind every Create's commit.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use tokio::sync::Semaphore;

use super::StoreError;

/// Connections kept: reads beyond this many at once wait for one.
const READERS: usize = 4;

pub(super) struct Readers {
    path: PathBuf,
    key: Arc<crate::seal::SealKey>,
    /// Opened on first need (an idle daemon keeps none), kept after.
    idle: Mutex<Vec<Connection>>,
    /// At most this many reads at once: each holds a permit while it uses a connection.
    permits: Semaphore,
}

impl Readers {
    /// Readers of the database the writer has opened (and migrated).
    pub(super) fn new(path: &Path, key: Arc<crate::seal::SealKey>) -> Self {
        Self {
            path: path.to_path_buf(),
            key,
            idle: Mutex::new(Vec::with_capacity(READERS)),
            permits: Semaphore::new(READERS),
        }
    }

    /// A connection that refuses any write (`query_only`), and opens the sealed callback URLs
    /// as the writer's does.
    fn open(&self) -> Result<Connection, StoreError> {
        let open_error = |e: rusqlite::Error| StoreError::Open {
            path: self.path.display().to_string(),
            problem: e.to_string(),
        };
        let conn = Connection::open(&self.path).map_err(open_error)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(open_error)?;
        conn.set_prepared_statement_cache_capacity(super::STATEMENTS_KEPT);
        conn.execute_batch("PRAGMA query_only = ON; PRAGMA foreign_keys = ON;")
            .map_err(open_error)?;
        super::seal::register(&conn, self.key.clone()).map_err(open_error)?;
        Ok(conn)
    }

    /// Runs `work` in a read transaction (one snapshot for all it reads) on a blocking thread.
    /// `Err` hands `work` back, unrun, when no reader connection could be had (the caller
    /// gives it to the writer: a read never fails where the writer would have answered).
    pub(super) async fn read<R, F>(self: &Arc<Self>, work: F) -> Result<Result<R, StoreError>, F>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
    {
        let Ok(_permit) = self.permits.acquire().await else {
            return Err(work);
        };
        let readers = self.clone();
        let ran = tokio::task::spawn_blocking(move || {
            let kept = readers.idle.lock().ok().and_then(|mut idle| idle.pop());
            let conn = match kept.map_or_else(|| readers.open(), Ok) {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(error = %e, "no database reader: the writer reads instead");
                    return Err(work);
                }
            };
            let result = conn
                .unchecked_transaction()
                .map_err(StoreError::from)
                .and_then(|snapshot| {
                    let result = work(&snapshot);
                    // Read only: ending it is a rollback that has nothing to undo.
                    drop(snapshot);
                    result
                });
            if let Ok(mut idle) = readers.idle.lock() {
                idle.push(conn);
            }
            Ok(result)
        })
        .await;
        // A panic in `work` is the caller's, as on the writer.
        match ran {
            Ok(ran) => ran,
            Err(_) => Ok(Err(StoreError::Closed)),
        }
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::super::{Store, StoreError};

    /// A database in `folder` with one committed merchant row.
    async fn store_with_one_row(folder: &std::path::Path) -> Store {
        let store = Store::open(&folder.join("posbridge.db")).expect("store");
        store
            .call(|c| {
                c.execute(
                    "INSERT INTO merchants (app_key, token_hash, created_at) VALUES ('k', 'h', 1)",
                    [],
                )?;
                Ok(())
            })
            .await
            .expect("committed");
        store
    }

    fn rows(c: &Connection) -> Result<i64, StoreError> {
        Ok(c.query_row("SELECT count(*) FROM merchants", [], |r| r.get(0))?)
    }

    #[tokio::test]
    async fn a_read_sees_every_commit_before_it_and_cannot_write() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store_with_one_row(dir.path()).await;
        assert_eq!(store.read(rows).await.expect("read"), 1);
        let write = store
            .read(|c| Ok(c.execute("DELETE FROM merchants", [])?))
            .await;
        assert!(write.is_err(), "a reader wrote: {write:?}");
        assert_eq!(store.call(rows).await.expect("read"), 1);
    }

    #[tokio::test]
    async fn without_a_reader_the_writer_reads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let folder = dir.path().join("db");
        std::fs::create_dir(&folder).expect("folder");
        let store = store_with_one_row(&folder).await;
        // The writer keeps its open file; no reader can open one at that path any more.
        std::fs::rename(&folder, dir.path().join("moved")).expect("moved");
        assert_eq!(store.read(rows).await.expect("the writer read it"), 1);
    }
}
