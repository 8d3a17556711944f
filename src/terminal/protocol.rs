//! What every protocol module provides and is given: its own keys of a `[[terminals]]` entry,
//! how they are checked, and how a terminal of it opens. A leaf the protocol modules and the
//! front door (`terminal::setup`) both import, so that neither imports the other's insides.

use std::error::Error;
use std::path::Path;
use std::time::Duration;

use serde::de::DeserializeOwned;

use super::nexo::NotificationDesk;
use super::{PromptSink, TerminalHandle};
use crate::clock::SharedClock;

/// What a protocol module provides: the keys of a `[[terminals]]` entry that are its own, how
/// they are checked, and how a terminal of it is opened.
pub trait Protocol: Sized {
    /// `protocol = "…"` in the entry.
    const NAME: &'static str;
    /// Approves sales that never touched a card: allowed on a demo box only.
    const APPROVES_WITHOUT_A_CARD: bool = false;
    /// The protocol's keys as written (`#[serde(deny_unknown_fields)]`: a key of another
    /// protocol is an error naming it).
    type Written: DeserializeOwned;
    /// Checks what serde cannot (a transport string, a password's digits).
    fn check(written: Self::Written) -> Result<Self, InvalidSetting>;
    /// Starts the terminal's actor with this protocol's driver.
    fn open(&self, terminal: Opening<'_>) -> Result<TerminalHandle, OpenError>;
    /// What this machine lacks for the terminal (a folder missing or not writable), in plain
    /// words: `check-config` and `doctor` report it. Nothing by default.
    fn host_problems(&self) -> Vec<String> {
        Vec::new()
    }
}

/// A protocol setting serde accepted and its protocol does not: which key, and why.
#[derive(Debug, thiserror::Error)]
#[error("{source}")]
pub struct InvalidSetting {
    /// The key as written in the entry (`transport`).
    pub key: &'static str,
    pub source: Box<dyn Error + Send + Sync>,
}

impl InvalidSetting {
    pub fn new(key: &'static str, source: impl Error + Send + Sync + 'static) -> Self {
        Self {
            key,
            source: Box::new(source),
        }
    }
}

/// A terminal that could not be started.
#[derive(Debug, thiserror::Error)]
#[error("terminal `{terminal}`: {source}")]
pub struct OpenError {
    pub terminal: String,
    pub source: Box<dyn Error + Send + Sync>,
}

impl OpenError {
    pub fn new(terminal: &str, source: impl Error + Send + Sync + 'static) -> Self {
        Self {
            terminal: terminal.to_string(),
            source: Box::new(source),
        }
    }
}

/// What opening any terminal needs, whatever its protocol.
pub struct Opening<'a> {
    pub id: &'a str,
    /// A sale without a result by then is recovered (asked about), never assumed.
    pub result_timeout: Duration,
    /// Drivers keep their journal beside the database.
    pub database: &'a Path,
    pub clock: SharedClock,
    pub prompts: PromptSink,
    /// Where a terminal that POSTs notifications to posbridge (nexo) is found by the route
    /// that receives them.
    pub notifications: &'a NotificationDesk,
}
