//! A driver's journal: what was sent to a terminal, as JSON lines beside the database, each
//! line on disk (fsync) before the call returns. Read back after a crash; a line torn by the
//! crash is skipped, as a terminal skips a torn record.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::DriverError;

/// Where the `prefix` driver of `terminal_id` keeps its journal: beside the database, so that a
/// backup of the database's folder holds both.
pub fn path_beside(database: &Path, prefix: &str, terminal_id: &str) -> PathBuf {
    let dir = database.parent().unwrap_or(Path::new("."));
    dir.join(format!("{prefix}-{terminal_id}.journal"))
}

fn io_error(path: &Path, e: &std::io::Error) -> DriverError {
    DriverError::Disconnected(format!("journal {}: {e}", path.display()))
}

pub fn append<T: Serialize>(path: &Path, entry: &T) -> Result<(), DriverError> {
    let mut line =
        serde_json::to_string(entry).map_err(|e| DriverError::Protocol(e.to_string()))?;
    line.push('\n');
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| io_error(path, &e))?;
    let length = file.metadata().map_err(|e| io_error(path, &e))?.len();
    let written = file
        .write_all(line.as_bytes())
        .and_then(|()| file.sync_data());
    if let Err(e) = written {
        // A line half-written (a full disk) would glue the next entry onto it, and a reader
        // skips a torn line: cut the file back to where it was, so only this entry is lost
        // (and the caller knows it was not written).
        let _ = file.set_len(length);
        return Err(io_error(path, &e));
    }
    Ok(())
}

/// Every readable entry, oldest first; no file yet is an empty journal.
pub fn read<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>, DriverError> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error(path, &e)),
    };
    let mut entries = Vec::new();
    for line in std::io::BufReader::new(file).lines() {
        let line = line.map_err(|e| io_error(path, &e))?;
        if let Ok(entry) = serde_json::from_str(&line) {
            entries.push(entry);
        }
    }
    Ok(entries)
}
