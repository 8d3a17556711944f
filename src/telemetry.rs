//! Logging: one line per event on stdout (journald stores it under systemd), text or JSON.

use tracing_subscriber::EnvFilter;

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

/// `level` is an EnvFilter directive (`info`, `posbridge=debug,warn`); RUST_LOG overrides it.
pub fn init(level: &str, format: LogFormat, output: LogOutput) -> Result<(), String> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.is_empty() => EnvFilter::try_new(v),
        _ => EnvFilter::try_new(level),
    }
    .map_err(|e| format!("invalid log level `{level}`: {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        // Colours only for a person at a terminal; journald and files get plain text.
        .with_ansi(match output {
            LogOutput::Stdout => std::io::IsTerminal::is_terminal(&std::io::stdout()),
            LogOutput::Stderr => std::io::IsTerminal::is_terminal(&std::io::stderr()),
        });
    let result = match (format, output) {
        (LogFormat::Text, LogOutput::Stdout) => builder.try_init(),
        (LogFormat::Text, LogOutput::Stderr) => builder.with_writer(std::io::stderr).try_init(),
        (LogFormat::Json, LogOutput::Stdout) => builder.json().try_init(),
        (LogFormat::Json, LogOutput::Stderr) => {
            builder.json().with_writer(std::io::stderr).try_init()
        }
    };
    result.map_err(|e| e.to_string())
}
