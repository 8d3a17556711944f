//! The file exchange with a TEF client: one request at a time in `request_dir`, its status and
//! its answer in `response_dir`. The folders are polled, at most four times a second as the
//! clients' documentation asks: a share of the till's Windows PC gives no change notices.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use firmware_protocols::tef_dial::{ParseError, Record, RequestId};

/// The request, in `request_dir`; the answer has the same name in `response_dir`.
pub const INTPOS: &str = "IntPos.001";
/// A request while it is written: the client never sees half a file.
const REQUEST_TMP: &str = "IntPos.tmp";
/// The client's acknowledgement, in `response_dir`.
const STATUS: &str = "IntPos.Sts";
/// How often the folders are looked at.
pub const POLL: Duration = Duration::from_millis(250);

/// The two folders a TEF client exchanges files in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folders {
    request_dir: PathBuf,
    response_dir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error("cannot write the request in {}: {source}", dir.display())]
    Write {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot remove {}: {source}", path.display())]
    Remove {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the request cannot be written as a TEF Dial file: {0}")]
    Encode(String),
}

/// What a file of the exchange holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    Nothing,
    /// Still being written (or torn): not a record yet.
    Incomplete,
    /// Not a TEF Dial record at all (why, without its content: it may hold card data).
    Unreadable(String),
    Record(Record),
}

impl Folders {
    pub fn new(request_dir: PathBuf, response_dir: PathBuf) -> Self {
        Self {
            request_dir,
            response_dir,
        }
    }

    pub fn request_dir(&self) -> &Path {
        &self.request_dir
    }

    pub fn response_dir(&self) -> &Path {
        &self.response_dir
    }

    /// What this machine lacks for the exchange: each folder must exist and take files.
    pub fn problems(&self) -> Vec<String> {
        [
            ("request_dir", &self.request_dir),
            ("response_dir", &self.response_dir),
        ]
        .into_iter()
        .filter_map(|(key, dir)| writable_folder(dir).err().map(|e| format!("{key} {e}")))
        .collect()
    }

    /// Writes a request whole: `IntPos.tmp`, flushed to disk, then renamed to `IntPos.001`.
    pub async fn write_request(&self, record: &Record) -> Result<(), ExchangeError> {
        let bytes = record
            .encode()
            .map_err(|e| ExchangeError::Encode(e.to_string()))?;
        let dir = self.request_dir.clone();
        run_blocking(move || {
            let write = || -> std::io::Result<()> {
                let tmp = dir.join(REQUEST_TMP);
                let mut file = std::fs::File::create(&tmp)?;
                file.write_all(&bytes)?;
                file.sync_all()?;
                std::fs::rename(&tmp, dir.join(INTPOS))?;
                // The rename itself on disk (a share may not support it: not an error).
                if let Ok(folder) = std::fs::File::open(&dir) {
                    let _ = folder.sync_all();
                }
                Ok(())
            };
            write().map_err(|source| ExchangeError::Write {
                dir: dir.clone(),
                source,
            })
        })
        .await
    }

    /// The request waiting in `request_dir` (not yet taken by the client), if any.
    pub async fn waiting_request(&self) -> Result<Found, ExchangeError> {
        read(self.request_dir.join(INTPOS)).await
    }

    /// The client's acknowledgement, if written.
    pub async fn status(&self) -> Result<Found, ExchangeError> {
        read(self.response_dir.join(STATUS)).await
    }

    /// The client's answer, if written.
    pub async fn answer(&self) -> Result<Found, ExchangeError> {
        read(self.response_dir.join(INTPOS)).await
    }

    pub async fn remove_status(&self) -> Result<(), ExchangeError> {
        remove(self.response_dir.join(STATUS)).await
    }

    pub async fn remove_answer(&self) -> Result<(), ExchangeError> {
        remove(self.response_dir.join(INTPOS)).await
    }

    /// Takes the request `id` back if the client has not taken it: `true` when it was still
    /// there. It is first moved aside under a name of its own (a rename is atomic: either the
    /// client has it or we do), then removed; a crash in between leaves [`Self::withdrawn`].
    pub async fn withdraw(&self, id: RequestId) -> Result<bool, ExchangeError> {
        match self.waiting_request().await? {
            Found::Record(record) if request_id(&record) == Some(id) => {}
            // Gone (taken), or another request: nothing of ours waits.
            _ => return Ok(false),
        }
        let aside = self.withdrawn_path(id);
        match tokio::fs::rename(self.request_dir.join(INTPOS), &aside).await {
            Ok(()) => {}
            // The client took it a moment ago.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(source) => {
                return Err(ExchangeError::Remove {
                    path: self.request_dir.join(INTPOS),
                    source,
                });
            }
        }
        remove(aside).await?;
        Ok(true)
    }

    /// Whether the request `id` was moved aside by [`Self::withdraw`] (and the daemon stopped
    /// before removing it); removes it.
    pub async fn withdrawn(&self, id: RequestId) -> Result<bool, ExchangeError> {
        let aside = self.withdrawn_path(id);
        if tokio::fs::try_exists(&aside).await.unwrap_or(false) {
            remove(aside).await?;
            return Ok(true);
        }
        Ok(false)
    }

    /// A request half-written when the daemon stopped: never seen by the client.
    pub async fn remove_unfinished_request(&self) -> Result<(), ExchangeError> {
        remove(self.request_dir.join(REQUEST_TMP)).await
    }

    fn withdrawn_path(&self, id: RequestId) -> PathBuf {
        self.request_dir.join(format!("IntPos.{id}.withdrawn"))
    }
}

/// A record's `001-000`.
pub fn request_id(record: &Record) -> Option<RequestId> {
    record
        .get(firmware_protocols::tef_dial::FieldId::new(1, 0))
        .and_then(|v| v.trim().parse().ok())
}

async fn run_blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ExchangeError> + Send + 'static,
) -> Result<T, ExchangeError> {
    tokio::task::spawn_blocking(work).await.unwrap_or_else(|e| {
        Err(ExchangeError::Encode(format!(
            "the writing thread failed: {e}"
        )))
    })
}

async fn read(path: PathBuf) -> Result<Found, ExchangeError> {
    let bytes = match tokio::fs::read(&path).await {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Found::Nothing),
        Err(source) => return Err(ExchangeError::Read { path, source }),
    };
    Ok(match Record::parse(&bytes) {
        Ok(record) => Found::Record(record),
        Err(ParseError::Incomplete) => Found::Incomplete,
        Err(e) => Found::Unreadable(e.to_string()),
    })
}

async fn remove(path: PathBuf) -> Result<(), ExchangeError> {
    match tokio::fs::remove_file(&path).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(ExchangeError::Remove { path, source }),
    }
}

/// Whether `dir` is a folder this process may create and remove files in (a probe file,
/// removed at once: the permission bits alone do not tell for ACLs, shares and read-only
/// mounts).
pub(super) fn writable_folder(dir: &Path) -> Result<(), String> {
    let meta = std::fs::metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if !meta.is_dir() {
        return Err(format!("{}: not a folder", dir.display()));
    }
    let probe = dir.join(format!(".posbridge-probe-{}", std::process::id()));
    std::fs::write(&probe, b"probe")
        .and_then(|()| std::fs::remove_file(&probe))
        .map_err(|e| {
            format!(
                "{}: cannot create and remove a file there: {e}",
                dir.display()
            )
        })
}
