//! Logging: one line per event (text or JSON) on stdout, where journald stores it under systemd;
//! the level can be changed while the daemon runs (admin listener). Values from outside (a
//! paymentId, an error text) can never start a line of their own: the text format escapes
//! control characters, the JSON format escapes them as JSON does.
//!
//! On stdout the lines are written by a thread of their own, in order, none dropped (a full
//! queue makes the logging thread wait, as a direct write would): a request never waits for a
//! write to stdout. [`flush`] writes what is queued before the process ends.

use std::fmt::{self, Write as _};
use std::sync::{Mutex, OnceLock, PoisonError};

pub use crate::ids::is_unsafe_in_logs;

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::Writer;
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

/// The stdout writer's thread, until [`flush`] ends it.
static STDOUT_WRITER: Mutex<Option<tracing_appender::non_blocking::WorkerGuard>> = Mutex::new(None);

/// Lines queued at most before a logging thread waits for the writer (the queue's slots are
/// allocated at start: 4,096 take 128 KiB; a burst of that many lines is several seconds of a
/// busy store's log).
const QUEUED_LINES: usize = 4096;

/// Writes every line logged so far to stdout and ends the writer's thread (lines logged
/// after this are not written): before the process ends.
pub fn flush() {
    drop(
        STDOUT_WRITER
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take(),
    );
}

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
    let filter = EnvFilter::try_new(directives)
        .map_err(|e| format!("invalid log level `{directives}`: {e}"))?;
    // The NATS client logs whole messages at trace (relayed requests carry the Gateway's
    // credentials): held at info unless named on purpose (`async_nats=debug`).
    if directives.contains("async_nats") {
        return Ok(filter);
    }
    let quiet = "async_nats=info"
        .parse()
        .map_err(|e| format!("invalid log level `{directives}`: {e}"))?;
    Ok(filter.add_directive(quiet))
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
    let lines = match output {
        LogOutput::Stdout => {
            let (stdout, writer) = tracing_appender::non_blocking::NonBlockingBuilder::default()
                .lossy(false)
                .buffered_lines_limit(QUEUED_LINES)
                .thread_name("log-writer")
                // Buffered: what is queued goes out in one write (the writer flushes each time
                // the queue is empty).
                .finish(std::io::BufWriter::new(std::io::stdout()));
            *STDOUT_WRITER.lock().unwrap_or_else(PoisonError::into_inner) = Some(writer);
            match format {
                LogFormat::Text => base.fmt_fields(EscapedFields).with_writer(stdout).boxed(),
                LogFormat::Json => base.json().with_writer(stdout).boxed(),
            }
        }
        LogOutput::Stderr => match format {
            LogFormat::Text => base
                .fmt_fields(EscapedFields)
                .with_writer(std::io::stderr)
                .boxed(),
            LogFormat::Json => base.json().with_writer(std::io::stderr).boxed(),
        },
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

/// The text format's fields — the message first, then `name=value` — with the characters of
/// [`is_unsafe_in_logs`] escaped in every value: the message, event fields and span fields.
struct EscapedFields;

impl<'writer> FormatFields<'writer> for EscapedFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut visitor = EscapingVisitor {
            writer,
            empty: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct EscapingVisitor<'writer> {
    writer: Writer<'writer>,
    empty: bool,
    result: fmt::Result,
}

impl EscapingVisitor<'_> {
    fn write_field(&mut self, name: &str, value: &dyn fmt::Debug) -> fmt::Result {
        if !self.empty {
            self.writer.write_char(' ')?;
        }
        self.empty = false;
        if name != "message" {
            write!(self.writer, "{}=", name.strip_prefix("r#").unwrap_or(name))?;
        }
        write!(Escaped(&mut self.writer), "{value:?}")
    }
}

impl Visit for EscapingVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        // The message as it reads; other strings quoted, as the default format does.
        if field.name() == "message" {
            self.record_debug(field, &format_args!("{value}"));
        } else {
            self.record_debug(field, &value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // `log.*`: metadata of records from the `log` crate, already shown in the line.
        if self.result.is_ok() && !field.name().starts_with("log.") {
            self.result = self.write_field(field.name(), value);
        }
    }
}

/// Writes to the inner writer with the characters of [`is_unsafe_in_logs`] escaped: `\n`,
/// `\r`, `\t`, others as `\u{1b}`.
struct Escaped<'a, W>(&'a mut W);

impl<W: fmt::Write> fmt::Write for Escaped<'_, W> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let mut rest = text;
        while let Some(at) = rest.find(is_unsafe_in_logs) {
            let (clean, unsafe_and_after) = rest.split_at(at);
            self.0.write_str(clean)?;
            let mut chars = unsafe_and_after.chars();
            match chars.next() {
                Some('\n') => self.0.write_str("\\n")?,
                Some('\r') => self.0.write_str("\\r")?,
                Some('\t') => self.0.write_str("\\t")?,
                Some(c) => write!(self.0, "{}", c.escape_unicode())?,
                None => {}
            }
            rest = chars.as_str();
        }
        self.0.write_str(rest)
    }
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

    /// A buffer the test subscriber writes its lines to.
    #[derive(Clone, Default)]
    struct Lines(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lines").extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Lines {
        type Writer = Lines;

        fn make_writer(&'a self) -> Lines {
            self.clone()
        }
    }

    #[test]
    fn text_lines_escape_control_characters_in_every_value() {
        let lines = Lines::default();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_target(false)
            .fmt_fields(EscapedFields)
            .with_writer(lines.clone())
            .finish();
        let forged = "p1\n2026-01-01T00:00:00Z ERROR ALARM: forged\r\t\u{1b}[31m\u{2028}\u{202E}";
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("cancel", payment_id = %forged);
            let _entered = span.enter();
            tracing::warn!(reason = %forged, quoted = forged, count = 3, "refused {forged}");
        });
        let text = String::from_utf8(lines.0.lock().expect("lines").clone()).expect("utf-8");
        assert_eq!(text.lines().count(), 1, "{text}");
        let escaped =
            "p1\\n2026-01-01T00:00:00Z ERROR ALARM: forged\\r\\t\\u{1b}[31m\\u{2028}\\u{202e}";
        assert!(
            text.contains(&format!("cancel{{payment_id={escaped}}}")),
            "{text}"
        );
        assert!(
            text.contains(&format!("refused {escaped} reason={escaped}")),
            "{text}"
        );
        assert!(text.contains("quoted=\"p1\\n2026"), "{text}");
        assert!(text.contains(" count=3"), "{text}");
    }

    #[test]
    fn unsafe_characters() {
        for c in [
            '\n', '\r', '\t', '\u{0}', '\u{1b}', '\u{7f}', '\u{85}', '\u{2028}', '\u{202E}',
            '\u{2067}',
        ] {
            assert!(is_unsafe_in_logs(c), "{c:?}");
        }
        for c in ['a', ' ', 'é', '€', '-', '\u{200B}'] {
            assert!(!is_unsafe_in_logs(c), "{c:?}");
        }
    }
}
