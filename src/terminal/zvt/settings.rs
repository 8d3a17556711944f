//! A ZVT terminal's keys in its `[[terminals]]` entry, checked, and how it opens.

use serde::Deserialize;

use super::dialogue::Timeouts;
use super::driver::{
    DEFAULT_CONFIG_BYTE, PasswordError, ZvtDriver, ZvtSettings, parse_password, timeouts,
};
use super::transport::{Transport, TransportError};
use crate::secret::Secret;
use crate::terminal::TerminalHandle;
use crate::terminal::protocol::{InvalidSetting, OpenError, Opening, Protocol};

/// The entry's ZVT keys as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WrittenZvt {
    /// `serial:/dev/…?baud=9600&data_bits=8&parity=none&stop_bits=2` or `tcp:HOST[:PORT]`.
    #[serde(default)]
    pub transport: Option<String>,
    /// The terminal's 6-digit password.
    #[serde(default = "default_password")]
    pub password: Secret,
    /// The registration config byte.
    #[serde(default)]
    pub config_byte: Option<u8>,
    /// T3, how long the terminal may take to accept a command.
    #[serde(default = "default_ack_timeout_ms")]
    pub ack_timeout_ms: u64,
    /// T4, how long the terminal may stay silent while it works.
    #[serde(default = "default_completion_timeout_s")]
    pub completion_timeout_s: u64,
}

fn default_password() -> Secret {
    Secret::new("000000")
}

fn default_ack_timeout_ms() -> u64 {
    5_000
}

fn default_completion_timeout_s() -> u64 {
    180
}

/// What is wrong with a ZVT entry, by the key it is written under.
#[derive(Debug, thiserror::Error)]
pub enum ZvtSettingError {
    #[error("a zvt terminal needs a transport")]
    NoTransport,
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error(transparent)]
    Password(#[from] PasswordError),
    #[error("timeouts must be positive")]
    Timeouts,
}

impl ZvtSettingError {
    /// The key a person fixes (a missing transport: the protocol that asks for one).
    fn key(&self) -> &'static str {
        match self {
            Self::NoTransport => "protocol",
            Self::Transport(_) => "transport",
            Self::Password(_) => "password",
            Self::Timeouts => "ack_timeout_ms",
        }
    }
}

impl From<ZvtSettingError> for InvalidSetting {
    fn from(e: ZvtSettingError) -> Self {
        InvalidSetting::new(e.key(), e)
    }
}

/// A ZVT terminal's checked settings.
#[derive(Debug, Clone)]
pub struct ZvtTerminalSettings {
    pub transport: Transport,
    pub password: Secret,
    pub config_byte: u8,
    pub timeouts: Timeouts,
}

impl ZvtTerminalSettings {
    fn checked(written: WrittenZvt) -> Result<Self, ZvtSettingError> {
        let transport = Transport::parse(
            written
                .transport
                .as_deref()
                .ok_or(ZvtSettingError::NoTransport)?,
        )?;
        parse_password(written.password.expose())?;
        if written.ack_timeout_ms == 0 || written.completion_timeout_s == 0 {
            return Err(ZvtSettingError::Timeouts);
        }
        Ok(Self {
            transport,
            password: written.password,
            config_byte: written.config_byte.unwrap_or(DEFAULT_CONFIG_BYTE),
            timeouts: timeouts(written.ack_timeout_ms, written.completion_timeout_s),
        })
    }
}

impl Protocol for ZvtTerminalSettings {
    const NAME: &'static str = "zvt";
    type Written = WrittenZvt;

    fn check(written: WrittenZvt) -> Result<Self, InvalidSetting> {
        Ok(Self::checked(written)?)
    }

    fn open(&self, terminal: Opening<'_>) -> Result<TerminalHandle, OpenError> {
        let settings = ZvtSettings {
            transport: self.transport.clone(),
            password: self.password.expose().to_string(),
            config_byte: self.config_byte,
            timeouts: self.timeouts,
            sale_window: terminal.result_timeout,
        };
        let driver = ZvtDriver::new(
            terminal.id,
            settings,
            ZvtDriver::journal_path(terminal.database, terminal.id),
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
}
