//! A driver's journal: what was sent to a terminal, as JSON lines beside the database, each
//! line on disk (fsync) before the call returns. Read back after a crash; a line torn by the
//! crash is skipped, as a terminal skips a torn record.

use std::io::{BufRead, Write};
use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::DriverError;

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
    file.write_all(line.as_bytes())
        .map_err(|e| io_error(path, &e))?;
    file.sync_data().map_err(|e| io_error(path, &e))
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
