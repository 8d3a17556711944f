//! The terminals' front door: the protocol list, each protocol's settings (read and checked by
//! its own module) and how a configured terminal is opened into a running [`TerminalHandle`].
//!
//! To add a protocol: a folder under `src/terminal/` whose settings type implements
//! [`Protocol`], and one line in the `protocols!` list below. Nothing else changes.

use std::error::Error;
use std::path::Path;
use std::time::Duration;

use serde::Deserializer;
use serde::de::DeserializeOwned;
use tokio::sync::broadcast;

use super::{PromptSink, TerminalEvent, TerminalHandle, simulator, zvt};
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

/// Why a protocol's own keys could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError<E: Error + 'static> {
    #[error("unknown protocol `{0}`, expected one of: {list}", list = PROTOCOLS.join(", "))]
    UnknownProtocol(String),
    /// A key unknown to the protocol, of the wrong type, or missing.
    #[error(transparent)]
    Keys(E),
    #[error(transparent)]
    Invalid(InvalidSetting),
}

/// A terminal that could not be started.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("terminal `{terminal}`: {source}")]
    Zvt {
        terminal: String,
        source: zvt::driver::PasswordError,
    },
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
}

macro_rules! protocols {
    ($($variant:ident => $settings:ty),* $(,)?) => {
        /// A terminal's protocol with its checked settings.
        #[derive(Debug, Clone)]
        pub enum ProtocolSettings {
            $($variant($settings)),*
        }

        /// Every `protocol = "…"` posbridge speaks.
        pub const PROTOCOLS: &[&str] = &[$(<$settings as Protocol>::NAME),*];

        impl ProtocolSettings {
            /// Reads the keys of an entry that belong to the protocol `name` (the keys every
            /// terminal has are not among them).
            pub fn read<'de, D: Deserializer<'de>>(
                name: &str,
                keys: D,
            ) -> Result<Self, ReadError<D::Error>> {
                $(if name == <$settings as Protocol>::NAME {
                    let written = <<$settings as Protocol>::Written as serde::Deserialize>::deserialize(keys)
                        .map_err(ReadError::Keys)?;
                    return <$settings as Protocol>::check(written)
                        .map(Self::$variant)
                        .map_err(ReadError::Invalid);
                })*
                Err(ReadError::UnknownProtocol(name.to_string()))
            }

            pub fn name(&self) -> &'static str {
                match self {
                    $(Self::$variant(_) => <$settings as Protocol>::NAME),*
                }
            }

            pub fn approves_without_a_card(&self) -> bool {
                match self {
                    $(Self::$variant(_) => <$settings as Protocol>::APPROVES_WITHOUT_A_CARD),*
                }
            }

            fn open_with(&self, terminal: Opening<'_>) -> Result<TerminalHandle, OpenError> {
                match self {
                    $(Self::$variant(settings) => settings.open(terminal)),*
                }
            }
        }
    };
}

protocols! {
    Simulator => simulator::SimulatorSettings,
    Zvt => zvt::ZvtTerminalSettings,
}

/// A running terminal and the serial number the terminal-connector-app scans on it.
pub struct OpenedTerminal {
    pub handle: TerminalHandle,
    pub serial_number: String,
}

/// The running terminals, and where they publish what they show (a chatty terminal may send
/// many status lines in a burst: roomy).
pub struct Terminals {
    pub opened: Vec<OpenedTerminal>,
    pub events: broadcast::Sender<TerminalEvent>,
}

impl Default for Terminals {
    fn default() -> Self {
        Self {
            opened: Vec::new(),
            events: broadcast::channel(4096).0,
        }
    }
}

impl Terminals {
    /// Opens a configured terminal.
    pub fn open(
        &mut self,
        id: &str,
        serial_number: &str,
        result_timeout: Duration,
        settings: &ProtocolSettings,
        database: &Path,
        clock: SharedClock,
    ) -> Result<(), OpenError> {
        let handle = settings.open_with(Opening {
            id,
            result_timeout,
            database,
            clock,
            prompts: self.prompts(id),
        })?;
        self.opened.push(OpenedTerminal {
            handle,
            serial_number: serial_number.to_string(),
        });
        Ok(())
    }

    /// Where the terminal `id` shows its prompts.
    pub fn prompts(&self, id: &str) -> PromptSink {
        PromptSink::new(id, self.events.clone())
    }

    /// Adds a terminal started elsewhere (a test's scripted driver).
    pub fn add(&mut self, handle: TerminalHandle, serial_number: &str) {
        self.opened.push(OpenedTerminal {
            handle,
            serial_number: serial_number.to_string(),
        });
    }
}
