//! The Gateway's callback address sealed at rest. Its query carries `X-VTEX-signature`, a
//! credential to post a callback for that payment: the database, its WAL and its backups keep
//! it only as `sealed1:<hex of nonce, ciphertext and tag>` (AES-256-GCM), under a key kept in a
//! file beside the database (`<database>.key`, mode 0600) and never in a backup.
//!
//! SQL seals and opens in place: every store connection has `seal_url(text)` and
//! `open_url(text)`, so the rest of the code only ever sees the clear address, in memory.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::Connection;
use rusqlite::functions::FunctionFlags;

use super::StoreError;
use crate::seal::{KEY_LEN, SealKey};

/// Where the key of the database at `database` is kept.
pub fn key_path(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(".key");
    PathBuf::from(name)
}

impl SealKey {
    /// Reads the key of the database at `database`, creating it (32 random bytes, mode 0600)
    /// if there is none yet.
    pub fn load_or_create(database: &Path) -> Result<Self, StoreError> {
        let path = key_path(database);
        let failed = |problem: String| StoreError::Open {
            path: path.display().to_string(),
            problem,
        };
        match std::fs::read(&path) {
            Ok(bytes) => {
                let bytes: [u8; KEY_LEN] = bytes.try_into().map_err(|b: Vec<u8>| {
                    failed(format!(
                        "the key file holds {} bytes, not {KEY_LEN}: it is damaged; restore it from where it was copied with the database",
                        b.len()
                    ))
                })?;
                Self::from_bytes(&bytes).map_err(|_| failed("the key is refused".into()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut bytes = [0u8; KEY_LEN];
                getrandom::fill(&mut bytes).map_err(|e| failed(e.to_string()))?;
                match create_key_file(&path, &bytes) {
                    Ok(()) => {
                        Self::from_bytes(&bytes).map_err(|_| failed("the key is refused".into()))
                    }
                    // Another process created it first: its key is the one.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        Self::load_or_create(database)
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::ReadOnlyFilesystem => {
                        Err(StoreError::ReadOnly {
                            path: database.display().to_string(),
                            why: format!("its filesystem is read-only: {e}"),
                        })
                    }
                    Err(e) => Err(failed(e.to_string())),
                }
            }
            Err(e) => Err(failed(e.to_string())),
        }
    }
}

/// Writes the new key under a temporary name, then links it in place: the key file is never
/// seen half written, and a key another process linked first is never replaced. The file and
/// its directory are synced before any value is sealed under it: a power cut must not lose
/// the key of rows already committed.
fn create_key_file(path: &Path, bytes: &[u8; KEY_LEN]) -> std::io::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(format!(".new-{}", std::process::id()));
    let temporary = PathBuf::from(temporary);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    let linked = std::fs::hard_link(&temporary, path);
    let _ = std::fs::remove_file(&temporary);
    linked?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Gives the connection `seal_url(text)` (seals a clear value) and `open_url(text)` (the clear
/// value, or NULL when it cannot be opened: the caller decides, the query never fails on it).
pub(super) fn register(conn: &Connection, key: Arc<SealKey>) -> rusqlite::Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DIRECTONLY;
    let sealing = key.clone();
    conn.create_scalar_function("seal_url", 1, flags, move |ctx| {
        let clear: String = ctx.get(0)?;
        sealing
            .seal(&clear)
            .map_err(|e| rusqlite::Error::UserFunctionError(Box::new(e)))
    })?;
    conn.create_scalar_function(
        "open_url",
        1,
        flags | FunctionFlags::SQLITE_DETERMINISTIC,
        move |ctx| {
            let stored: String = ctx.get(0)?;
            Ok(key.open(&stored).ok())
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seal::{OpenError, PREFIX};

    fn key(byte: u8) -> SealKey {
        SealKey::from_bytes(&[byte; KEY_LEN]).expect("a 32-byte key")
    }

    const URL: &str = "http://127.0.0.1:9/cb?X-VTEX-signature=SIGtestSECRET";

    #[test]
    fn a_sealed_value_opens_to_what_was_sealed_and_shows_nothing_of_it() {
        let k = key(1);
        let sealed = k.seal(URL).expect("seal");
        assert!(sealed.starts_with(PREFIX));
        assert!(!sealed.contains("SIGtestSECRET") && !sealed.contains("127.0.0.1"));
        assert_eq!(k.open(&sealed), Ok(URL.to_string()));
        assert_ne!(
            k.seal(URL).expect("seal"),
            sealed,
            "a fresh nonce per value"
        );
        assert_eq!(
            k.seal(&sealed).expect("seal"),
            sealed,
            "sealed once, not twice"
        );
    }

    #[test]
    fn a_value_written_before_sealing_reads_as_it_is() {
        assert_eq!(key(1).open(URL), Ok(URL.to_string()));
    }

    #[test]
    fn a_changed_value_or_another_key_fails_cleanly() {
        let sealed = key(1).seal(URL).expect("seal");
        assert_eq!(key(2).open(&sealed), Err(OpenError::Rejected));
        let last = sealed.chars().last().expect("not empty");
        let flipped = format!(
            "{}{}",
            &sealed[..sealed.len() - 1],
            if last == '0' { '1' } else { '0' }
        );
        assert_eq!(key(1).open(&flipped), Err(OpenError::Rejected));
        for broken in ["sealed1:", "sealed1:zz", "sealed1:abc", "sealed1:00ff"] {
            assert_eq!(key(1).open(broken), Err(OpenError::Malformed), "{broken}");
        }
    }

    #[test]
    fn the_key_never_prints() {
        let k = key(7);
        assert_eq!(format!("{k:?}"), "SealKey(***)");
        assert_eq!(format!("{k}"), "***");
    }

    #[test]
    fn the_key_file_is_created_private_once_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("posbridge.db");
        let first = SealKey::load_or_create(&db).expect("create");
        let path = dir.path().join("posbridge.db.key");
        let meta = std::fs::metadata(&path).expect("the key file exists");
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(meta.len(), KEY_LEN as u64);
        let sealed = first.seal(URL).expect("seal");
        let again = SealKey::load_or_create(&db).expect("read");
        assert_eq!(again.open(&sealed), Ok(URL.to_string()));
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name())
            .filter(|n| n != "posbridge.db.key")
            .collect();
        assert!(leftovers.is_empty(), "no temporary left: {leftovers:?}");
    }

    #[test]
    fn a_damaged_key_file_is_refused_not_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("posbridge.db");
        std::fs::write(key_path(&db), b"short").expect("write");
        assert!(SealKey::load_or_create(&db).is_err());
        assert_eq!(std::fs::read(key_path(&db)).expect("read"), b"short");
    }

    #[tokio::test]
    async fn the_database_holds_the_address_sealed_and_a_restore_without_the_key_cannot_open_it() {
        use crate::payment::PaymentState;
        use crate::store::{Store, outbox, payments};
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("p.db");
        let store = Store::open_inline(&db).expect("open");
        let mut p = payments::test_payment("p1", PaymentState::Approved);
        p.callback_url = URL.into();
        store
            .call(move |c| {
                payments::insert(c, &p, 1)?;
                outbox::enqueue(c, "p1", URL, "{}", 1)
            })
            .await
            .expect("write");
        let read = store.call(|c| payments::get(c, "p1")).await.expect("get");
        assert_eq!(read.map(|p| p.callback_url), Some(URL.to_string()));
        let due = store
            .call(|c| outbox::due(c, 1, outbox::FIRST_DUE, 10))
            .await
            .expect("due");
        assert_eq!(due[0].url.as_deref(), Some(URL));
        let stored: (String, String) = store
            .call(|c| {
                Ok(c.query_row(
                    "SELECT p.callback_url, o.url FROM payments p JOIN outbox o USING (payment_id)",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?)
            })
            .await
            .expect("raw");
        assert!(stored.0.starts_with(PREFIX) && stored.1.starts_with(PREFIX));
        drop(store);

        // Restored elsewhere: the database without its key file.
        std::fs::remove_file(key_path(&db)).expect("remove the key");
        let store = Store::open_inline(&db).expect("opens with a new key");
        let due = store
            .call(|c| outbox::due(c, 1, outbox::FIRST_DUE, 10))
            .await
            .expect("the outbox still reads");
        assert_eq!(due[0].url, None);
        let read = store.call(|c| payments::get(c, "p1")).await.expect("get");
        assert!(read.is_some_and(|p| p.callback_url.starts_with(PREFIX)));
    }

    #[tokio::test]
    async fn addresses_written_before_sealing_are_sealed_at_open() {
        use crate::payment::PaymentState;
        use crate::store::{Store, outbox, payments};
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("p.db");
        let store = Store::open_inline(&db).expect("open");
        store
            .call(|c| {
                payments::insert(c, &payments::test_payment("old", PaymentState::Approved), 1)?;
                outbox::enqueue(c, "old", URL, "{}", 1)?;
                // As a release before sealing wrote them (schema 5, addresses in clear).
                c.execute("UPDATE payments SET callback_url = ?1", [URL])?;
                c.execute("UPDATE outbox SET url = ?1", [URL])?;
                c.execute_batch("PRAGMA user_version = 5")?;
                Ok(())
            })
            .await
            .expect("old clear rows");
        drop(store);
        let store = Store::open_inline(&db).expect("reopen");
        let raw: (String, String) = store
            .call(|c| {
                Ok(c.query_row(
                    "SELECT p.callback_url, o.url FROM payments p JOIN outbox o USING (payment_id)",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?)
            })
            .await
            .expect("raw");
        assert!(
            raw.0.starts_with(PREFIX) && raw.1.starts_with(PREFIX),
            "{raw:?}"
        );
        let due = store
            .call(|c| outbox::due(c, 1, outbox::FIRST_DUE, 10))
            .await
            .expect("due");
        assert_eq!(due[0].url.as_deref(), Some(URL));
    }
}
