//! The terminals' front door: the protocol list, each protocol's settings (read and checked by
//! its own module) and how a configured terminal is opened into a running [`TerminalHandle`].
//!
//! To add a protocol: a folder under `src/terminal/` whose settings type implements
//! [`Protocol`] (`terminal::protocol`), and one line in the `protocols!` list below. Nothing
//! else changes.

use std::error::Error;
use std::path::Path;
use std::time::Duration;

use serde::Deserializer;
use tokio::sync::broadcast;

pub use super::protocol::{InvalidSetting, OpenError, Opening, Protocol};
use super::{PromptSink, TerminalEvent, TerminalHandle, nexo, simulator, tef_dial, zvt};
use crate::clock::SharedClock;

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

            /// What this machine lacks for the terminal, in plain words (`check-config`,
            /// `doctor`).
            pub fn host_problems(&self) -> Vec<String> {
                match self {
                    $(Self::$variant(settings) => settings.host_problems()),*
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
    TefDial => tef_dial::TefDialSettings,
    Nexo => nexo::NexoSettings,
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
    /// The terminals whose notifications `POST /nexo/notifications` takes.
    pub notifications: nexo::NotificationDesk,
}

impl Default for Terminals {
    fn default() -> Self {
        Self {
            opened: Vec::new(),
            events: broadcast::channel(4096).0,
            notifications: nexo::NotificationDesk::default(),
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
            notifications: &self.notifications,
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
