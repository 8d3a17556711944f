//! A TEF Dial terminal's keys in its `[[terminals]]` entry, checked, and how it opens.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::driver::TefDialDriver;
use super::exchange::Folders;
use crate::terminal::TerminalHandle;
use crate::terminal::protocol::{InvalidSetting, OpenError, Opening, Protocol};

/// The entry's TEF Dial keys as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WrittenTefDial {
    /// The TEF client's request folder: posbridge writes `IntPos.001` here.
    #[serde(default)]
    pub request_dir: Option<PathBuf>,
    /// Where the TEF client answers: `IntPos.Sts`, then `IntPos.001`.
    #[serde(default)]
    pub response_dir: Option<PathBuf>,
    /// How long the client may take to write `IntPos.Sts`.
    #[serde(default = "default_ack_timeout_s")]
    pub ack_timeout_s: u64,
}

/// Seven seconds: what the public TEF Dial clients and ACBr wait for the status file.
fn default_ack_timeout_s() -> u64 {
    7
}

/// What is wrong with a TEF Dial entry, by the key it is written under.
#[derive(Debug, thiserror::Error)]
pub enum TefDialSettingError {
    #[error("a tef-dial terminal needs `{0}` (the TEF client's folder)")]
    Missing(&'static str),
    #[error("`{0}` must be an absolute path")]
    Relative(&'static str),
    #[error("request_dir and response_dir must be two different folders")]
    SameFolder,
    #[error("ack_timeout_s must be between 1 and 600 seconds")]
    AckTimeout,
}

impl TefDialSettingError {
    fn key(&self) -> &'static str {
        match self {
            Self::Missing(key) | Self::Relative(key) => key,
            Self::SameFolder => "response_dir",
            Self::AckTimeout => "ack_timeout_s",
        }
    }
}

impl From<TefDialSettingError> for InvalidSetting {
    fn from(e: TefDialSettingError) -> Self {
        InvalidSetting::new(e.key(), e)
    }
}

/// A TEF Dial terminal's checked settings.
#[derive(Debug, Clone)]
pub struct TefDialSettings {
    pub folders: Folders,
    pub ack_timeout: Duration,
}

impl TefDialSettings {
    fn checked(written: WrittenTefDial) -> Result<Self, TefDialSettingError> {
        let folder = |path: Option<PathBuf>, key: &'static str| {
            let path = path.ok_or(TefDialSettingError::Missing(key))?;
            if !path.is_absolute() {
                return Err(TefDialSettingError::Relative(key));
            }
            Ok(path)
        };
        let request_dir = folder(written.request_dir, "request_dir")?;
        let response_dir = folder(written.response_dir, "response_dir")?;
        if request_dir == response_dir {
            return Err(TefDialSettingError::SameFolder);
        }
        if !(1..=600).contains(&written.ack_timeout_s) {
            return Err(TefDialSettingError::AckTimeout);
        }
        Ok(Self {
            folders: Folders::new(request_dir, response_dir),
            ack_timeout: Duration::from_secs(written.ack_timeout_s),
        })
    }
}

impl Protocol for TefDialSettings {
    const NAME: &'static str = "tef-dial";
    type Written = WrittenTefDial;

    fn check(written: WrittenTefDial) -> Result<Self, InvalidSetting> {
        Ok(Self::checked(written)?)
    }

    fn open(&self, terminal: Opening<'_>) -> Result<TerminalHandle, OpenError> {
        let driver = TefDialDriver::new(
            terminal.id,
            self.folders.clone(),
            self.ack_timeout,
            TefDialDriver::journal_path(terminal.database, terminal.id),
            terminal.clock,
        )
        .map_err(|source| OpenError::new(terminal.id, source))?;
        Ok(crate::terminal::spawn(
            terminal.id,
            Self::NAME,
            driver,
            terminal.prompts,
            terminal.result_timeout,
        ))
    }

    fn host_problems(&self) -> Vec<String> {
        self.folders.problems()
    }
}

#[cfg(test)]
mod tests {
    use super::super::exchange::writable_folder;
    use super::*;

    fn written(request: &str, response: &str, ack: u64) -> WrittenTefDial {
        WrittenTefDial {
            request_dir: Some(request.into()),
            response_dir: Some(response.into()),
            ack_timeout_s: ack,
        }
    }

    #[test]
    fn the_folders_are_absolute_and_different_and_the_ack_timeout_sane() {
        let ok = TefDialSettings::checked(written("/mnt/tef/req", "/mnt/tef/resp", 7));
        assert!(ok.is_ok());
        let key = |w| TefDialSettings::checked(w).map(|_| ()).map_err(|e| e.key());
        assert_eq!(key(written("tef/req", "/r", 7)), Err("request_dir"));
        assert_eq!(key(written("/q", "/q", 7)), Err("response_dir"));
        assert_eq!(key(written("/q", "/r", 0)), Err("ack_timeout_s"));
        assert_eq!(
            key(WrittenTefDial {
                request_dir: None,
                ..written("/q", "/r", 7)
            }),
            Err("request_dir")
        );
    }

    #[test]
    fn a_folder_is_checked_by_writing_in_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(writable_folder(dir.path()).is_ok());
        let missing = dir.path().join("absent");
        let error = writable_folder(&missing).expect_err("missing");
        assert!(error.contains("absent"), "{error}");
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").expect("file");
        assert!(
            writable_folder(&file)
                .expect_err("a file")
                .contains("not a folder")
        );
    }
}
