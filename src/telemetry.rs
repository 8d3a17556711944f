//! Logging: one line per event (text or JSON) on stdout, where journald stores it under systemd;
//! the level can be changed while the daemon runs (admin listener).

use std::sync::OnceLock;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry, reload};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Where log lines go: the daemon logs to stdout (journald); tools whose stdout is their
/// output (the terminal simulator prints its address there) log to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogOutput {
    Stdout,
    Stderr,
}

type FilterHandle = reload::Handle<EnvFilter, Registry>;

static FILTER: OnceLock<FilterHandle> = OnceLock::new();

/// Parses `level` or `target=level` directives, comma-separated. Stricter than EnvFilter,
/// which takes almost anything as a target name.
fn parse_filter(directives: &str) -> Result<EnvFilter, String> {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    let invalid = || {
        format!(
            "invalid log level `{directives}`: use trace, debug, info, warn, error, off or target=level"
        )
    };
    for directive in directives.split(',') {
        let level = directive
            .rsplit_once('=')
            .map_or(directive, |(_, level)| level)
            .trim();
        let target_ok = directive.split_once('=').is_none_or(|(target, _)| {
            !target.is_empty()
                && target
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_:-".contains(c))
        });
        if !LEVELS.contains(&level.to_ascii_lowercase().as_str()) || !target_ok {
            return Err(invalid());
        }
    }
    EnvFilter::try_new(directives).map_err(|e| format!("invalid log level `{directives}`: {e}"))
}

/// `level` is an EnvFilter directive (`info`, `posbridge=debug,warn`); RUST_LOG overrides it.
pub fn init(level: &str, format: LogFormat, output: LogOutput) -> Result<(), String> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.is_empty() => parse_filter(&v)?,
        _ => parse_filter(level)?,
    };
    let (filter, handle) = reload::Layer::new(filter);
    let ansi = match output {
        LogOutput::Stdout => std::io::IsTerminal::is_terminal(&std::io::stdout()),
        LogOutput::Stderr => std::io::IsTerminal::is_terminal(&std::io::stderr()),
    };
    let base = tracing_subscriber::fmt::layer()
        .with_target(false)
        .with_ansi(ansi);
    let lines = match (format, output) {
        (LogFormat::Text, LogOutput::Stdout) => base.boxed(),
        (LogFormat::Text, LogOutput::Stderr) => base.with_writer(std::io::stderr).boxed(),
        (LogFormat::Json, LogOutput::Stdout) => base.json().boxed(),
        (LogFormat::Json, LogOutput::Stderr) => base.json().with_writer(std::io::stderr).boxed(),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(lines)
        .try_init()
        .map_err(|e| e.to_string())?;
    let _ = FILTER.set(handle);
    Ok(())
}

/// Changes the log filter of the running process.
pub fn set_level(directives: &str) -> Result<(), String> {
    let filter = parse_filter(directives)?;
    let handle = FILTER.get().ok_or("logging is not initialised")?;
    handle.reload(filter).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_levels_are_checked() {
        for good in [
            "info",
            "debug",
            "posbridge=trace,info",
            "hyper=warn,posbridge::pos=debug",
        ] {
            assert!(parse_filter(good).is_ok(), "{good}");
        }
        for bad in ["not a level!!", "loud", "=debug", "posbridge=loud", ""] {
            assert!(parse_filter(bad).is_err(), "{bad}");
        }
    }
}
