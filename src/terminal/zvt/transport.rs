//! Where a terminal is attached: a serial line or a TCP address, from the config's
//! `transport` string, and opening it.

use std::fmt;
use std::pin::Pin;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_serial::{DataBits, Parity, SerialPortBuilderExt, StopBits};

use super::link::{Framing, LinkError};

pub const DEFAULT_TCP_PORT: u16 = 20007;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    Serial {
        path: String,
        baud: u32,
        data_bits: u8,
        parity: ParitySetting,
        stop_bits: u8,
    },
    Tcp {
        host: String,
        port: u16,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParitySetting {
    None,
    Even,
    Odd,
}

pub trait ByteStream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> ByteStream for T {}

pub type BoxStream = Pin<Box<dyn ByteStream>>;

/// Why a `transport` string names no serial line or TCP address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    #[error("`{0}` must start with serial: or tcp:")]
    UnknownKind(String),
    #[error("`{0}` is not an absolute device path")]
    NotAbsolute(String),
    #[error("`{0}` is not key=value")]
    NotKeyValue(String),
    #[error("{key}: `{value}` is not a number")]
    NotANumber { key: String, value: String },
    #[error("parity: `{0}` is not none, even or odd")]
    Parity(String),
    #[error("unknown serial setting `{0}`")]
    UnknownSetting(String),
    #[error("data_bits must be 5 to 8")]
    DataBits,
    #[error("stop_bits must be 1 or 2")]
    StopBits,
    #[error("baud must be positive")]
    Baud,
    #[error("`{0}` is not a port")]
    NotAPort(String),
    #[error("the TCP host is empty")]
    EmptyHost,
}

impl Transport {
    /// Parses `serial:/dev/…?baud=9600&data_bits=8&parity=none&stop_bits=2` (those are the
    /// defaults) or `tcp:HOST[:PORT]` (port 20007 by default).
    pub fn parse(text: &str) -> Result<Transport, TransportError> {
        if let Some(rest) = text.strip_prefix("serial:") {
            let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
            if !path.starts_with('/') {
                return Err(TransportError::NotAbsolute(path.to_string()));
            }
            let (mut baud, mut data_bits, mut parity, mut stop_bits) =
                (9600, 8, ParitySetting::None, 2);
            for pair in query.split('&').filter(|p| !p.is_empty()) {
                let (key, value) = pair
                    .split_once('=')
                    .ok_or_else(|| TransportError::NotKeyValue(pair.to_string()))?;
                let number = || {
                    value
                        .parse::<u32>()
                        .map_err(|_| TransportError::NotANumber {
                            key: key.to_string(),
                            value: value.to_string(),
                        })
                };
                match key {
                    "baud" => baud = number()?,
                    "data_bits" => data_bits = u8::try_from(number()?).unwrap_or(0),
                    "stop_bits" => stop_bits = u8::try_from(number()?).unwrap_or(0),
                    "parity" => {
                        parity = match value {
                            "none" => ParitySetting::None,
                            "even" => ParitySetting::Even,
                            "odd" => ParitySetting::Odd,
                            other => {
                                return Err(TransportError::Parity(other.to_string()));
                            }
                        }
                    }
                    other => return Err(TransportError::UnknownSetting(other.to_string())),
                }
            }
            if !(5..=8).contains(&data_bits) {
                return Err(TransportError::DataBits);
            }
            if !(1..=2).contains(&stop_bits) {
                return Err(TransportError::StopBits);
            }
            if baud == 0 {
                return Err(TransportError::Baud);
            }
            return Ok(Transport::Serial {
                path: path.to_string(),
                baud,
                data_bits,
                parity,
                stop_bits,
            });
        }
        if let Some(rest) = text.strip_prefix("tcp:") {
            let (host, port) = match rest.rsplit_once(':') {
                Some((host, port)) if !host.ends_with(']') || host.starts_with('[') => {
                    let port = port
                        .parse::<u16>()
                        .map_err(|_| TransportError::NotAPort(port.to_string()))?;
                    (host, port)
                }
                _ => (rest, DEFAULT_TCP_PORT),
            };
            if host.is_empty() {
                return Err(TransportError::EmptyHost);
            }
            return Ok(Transport::Tcp {
                host: host.trim_matches(['[', ']']).to_string(),
                port,
            });
        }
        Err(TransportError::UnknownKind(text.to_string()))
    }

    pub fn framing(&self) -> Framing {
        match self {
            Transport::Serial { .. } => Framing::Serial,
            Transport::Tcp { .. } => Framing::Tcp,
        }
    }

    pub async fn open(&self) -> Result<BoxStream, LinkError> {
        match self {
            Transport::Serial {
                path,
                baud,
                data_bits,
                parity,
                stop_bits,
            } => {
                let data_bits = match data_bits {
                    5 => DataBits::Five,
                    6 => DataBits::Six,
                    7 => DataBits::Seven,
                    _ => DataBits::Eight,
                };
                let parity = match parity {
                    ParitySetting::None => Parity::None,
                    ParitySetting::Even => Parity::Even,
                    ParitySetting::Odd => Parity::Odd,
                };
                let stop_bits = if *stop_bits == 1 {
                    StopBits::One
                } else {
                    StopBits::Two
                };
                let port = tokio_serial::new(path, *baud)
                    .data_bits(data_bits)
                    .parity(parity)
                    .stop_bits(stop_bits)
                    .flow_control(tokio_serial::FlowControl::None)
                    .open_native_async()
                    .map_err(|e| LinkError::Io(format!("cannot open {path}: {e}")))?;
                Ok(Box::pin(port))
            }
            Transport::Tcp { host, port } => {
                let stream = tokio::time::timeout(
                    CONNECT_TIMEOUT,
                    tokio::net::TcpStream::connect((host.as_str(), *port)),
                )
                .await
                .map_err(|_| LinkError::Io(format!("cannot connect to {host}:{port}: timed out")))?
                .map_err(|e| LinkError::Io(format!("cannot connect to {host}:{port}: {e}")))?;
                let _ = stream.set_nodelay(true);
                Ok(Box::pin(stream))
            }
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Transport::Serial { path, baud, .. } => write!(f, "serial:{path} ({baud} baud)"),
            Transport::Tcp { host, port } => write!(f, "tcp:{host}:{port}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_transports_with_defaults() {
        assert_eq!(
            Transport::parse("serial:/dev/serial/by-id/usb-x-if00"),
            Ok(Transport::Serial {
                path: "/dev/serial/by-id/usb-x-if00".into(),
                baud: 9600,
                data_bits: 8,
                parity: ParitySetting::None,
                stop_bits: 2
            })
        );
        assert_eq!(
            Transport::parse("serial:/dev/ttyUSB0?baud=115200&parity=even&stop_bits=1"),
            Ok(Transport::Serial {
                path: "/dev/ttyUSB0".into(),
                baud: 115200,
                data_bits: 8,
                parity: ParitySetting::Even,
                stop_bits: 1
            })
        );
        assert_eq!(
            Transport::parse("tcp:127.0.0.1"),
            Ok(Transport::Tcp {
                host: "127.0.0.1".into(),
                port: 20007
            })
        );
        assert_eq!(
            Transport::parse("tcp:127.0.0.1:4000"),
            Ok(Transport::Tcp {
                host: "127.0.0.1".into(),
                port: 4000
            })
        );
        assert_eq!(
            Transport::parse("tcp:[::1]:4000"),
            Ok(Transport::Tcp {
                host: "::1".into(),
                port: 4000
            })
        );
        for bad in [
            "usb:/dev/x",
            "serial:ttyUSB0",
            "serial:/dev/x?baud=fast",
            "serial:/dev/x?flow=rts",
            "serial:/dev/x?stop_bits=3",
            "tcp:",
            "tcp:host:99999",
        ] {
            assert!(Transport::parse(bad).is_err(), "{bad}");
        }
    }
}
