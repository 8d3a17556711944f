//! The `posbridge` command line: what each subcommand does, and its exit code.
//! Exit codes: 0 success; 64 bad configuration (EX_USAGE: systemd does not restart on it);
//! 65 the database is older than the terminals' journals (EX_DATAERR: restored from an old
//! backup; `adopt-journals` or a newer backup, then start again); 1 failure; 2 the running
//! daemon could not be asked.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Config, DEFAULT_CONFIG};
use crate::telemetry::{self, LogFormat, LogOutput};

const EXIT_CONFIG: u8 = 64;
const EXIT_JOURNALS_AHEAD: u8 = 65;

#[derive(Parser)]
#[command(
    name = "posbridge",
    version = env!("POSBRIDGE_LONG_VERSION"),
    about = "VTEX Payment Provider Protocol bridge for in-store card terminals"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon (without --config: the embedded default, a simulator on localhost).
    Run {
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Log filter: a level (info, debug, trace) or EnvFilter directives. RUST_LOG overrides.
        #[arg(long, default_value = "info", env = "POSBRIDGE_LOG")]
        log_level: String,
        #[arg(long, value_enum, default_value = "text")]
        log_format: LogFormat,
    },
    /// Validate a configuration file and exit (64 when it is invalid).
    CheckConfig {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Print the embedded default configuration.
    PrintDefaultConfig,
    /// Check everything store IT would check: config, database, clock, the running daemon and
    /// its terminals. Exit 1 on any failure.
    Doctor {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// With the daemon stopped: adopt what the terminals' journals name and the database does
    /// not know (after restoring an old backup), so the daemon starts again. Adopted sales are
    /// recovered from the terminal when the Gateway repeats their Create; never charged again.
    AdoptJournals {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Copy the live database to a new file (consistent while the daemon runs).
    Backup {
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Where to write the copy (must not exist).
        destination: PathBuf,
    },
    /// Ask the running daemon about its terminals (through its admin listener).
    Terminals {
        #[arg(long, short)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        action: TerminalAction,
    },
    /// Ask the running daemon about payments (brand and last 4 digits only).
    Payments {
        #[arg(long, short)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        action: PaymentAction,
    },
    /// Ask the running daemon about the callback outbox, or re-deliver one now.
    Callbacks {
        #[arg(long, short)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        action: CallbackAction,
    },
    /// Change the running daemon's log level (e.g. `debug`, `info`, `posbridge=trace,info`).
    LogLevel {
        #[arg(long, short)]
        config: Option<PathBuf>,
        level: String,
    },
    /// Run a simulated payment terminal that speaks a real protocol (for tests and demos).
    SimulateTerminal {
        #[command(subcommand)]
        protocol: SimulatedProtocol,
    },
    /// List what needs a person, each alarm with what to do (see the runbook); `ack ID` once
    /// dealt with. Exit 0: nothing open; 1: something listed; 2: the database cannot be read.
    Alarms {
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
        /// The history too: acknowledged alarms and those that cleared by themselves.
        #[arg(long)]
        all: bool,
        /// JSON for scripts (times in UTC milliseconds).
        #[arg(long)]
        json: bool,
        #[command(subcommand)]
        action: Option<AlarmAction>,
    },
}

#[derive(Subcommand)]
enum AlarmAction {
    /// Acknowledge an alarm (through the running daemon): it leaves the list and doctor's
    /// failure, and stays in the history with your name.
    Ack {
        id: i64,
        /// What was done about it.
        #[arg(long)]
        note: Option<String>,
        /// Whose admin token to use ([admin] tokens); default: [admin] token.
        #[arg(long = "as", value_name = "NAME")]
        as_name: Option<String>,
    },
}

/// How a person resolves a payment the terminal could not.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum DecisionArg {
    Approved,
    Denied,
}

#[derive(Subcommand)]
enum TerminalAction {
    /// Every terminal: protocol, online, busy, last seen, last error.
    List,
    /// Ask one terminal for its status (ZVT: status enquiry).
    Probe { id: String },
    /// Close one terminal's batch (after it, sales can no longer be reversed on it).
    EndOfDay { id: String },
}

#[derive(Subcommand)]
enum PaymentAction {
    /// Payments of the last 24 hours.
    List,
    /// One payment with its receipts and callbacks.
    Show { id: String },
    /// Resolve a payment the terminal could not (state unknown or unresolved) from its receipt:
    /// the result and its callback go out as if the terminal had said so; your name, the time
    /// and the reason are recorded.
    Resolve {
        id: String,
        #[arg(value_enum)]
        decision: DecisionArg,
        /// Why (what the receipt or the acquirer's report shows); required.
        #[arg(long)]
        reason: String,
        /// Whose admin token to use ([admin] tokens); default: [admin] token.
        #[arg(long = "as", value_name = "NAME")]
        as_name: Option<String>,
        /// From the receipt, for the Gateway: the card brand.
        #[arg(long)]
        card_brand: Option<String>,
        /// From the receipt: the card's first 6 digits.
        #[arg(long)]
        first_digits: Option<String>,
        /// From the receipt: the card's last 4 digits.
        #[arg(long)]
        last_digits: Option<String>,
        /// From the receipt: the NSU.
        #[arg(long)]
        nsu: Option<String>,
        /// From the receipt: the authorization code.
        #[arg(long)]
        authorization_id: Option<String>,
    },
}

#[derive(Subcommand)]
enum CallbackAction {
    /// Callbacks not delivered yet (pending, failing, given up).
    List,
    /// Make one due now.
    Retry { id: i64 },
}

#[derive(Subcommand)]
enum SimulatedProtocol {
    /// A ZVT terminal on TCP or a pseudo-terminal; prints where it listens as its first line.
    Zvt(crate::terminal::zvt::pt_simulator::SimulatorArgs),
}

fn load(path: Option<&PathBuf>) -> Result<Config, ExitCode> {
    let loaded = match path {
        Some(path) => Config::load(path),
        None => Config::parse(DEFAULT_CONFIG, "(embedded default)"),
    };
    loaded.map_err(|e| {
        eprintln!("posbridge: invalid configuration: {e}");
        ExitCode::from(EXIT_CONFIG)
    })
}

/// A path segment for the admin URL (payment keys may hold `~`, which stays; anything else
/// outside RFC 3986's unreserved set is percent-encoded).
fn encode_segment(s: &str) -> String {
    use std::fmt::Write;
    s.bytes().fold(String::new(), |mut out, b| {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
        out
    })
}

fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("posbridge: cannot start the runtime: {e}");
            ExitCode::FAILURE
        })
}

/// One request to the running daemon's admin listener; prints the answer.
fn ask_daemon(
    config: Option<&PathBuf>,
    method: reqwest::Method,
    path: &str,
    body: Option<String>,
) -> ExitCode {
    ask_daemon_as(config, None, method, path, body)
}

/// [`ask_daemon`] with the admin token of the holder named `as_name`.
fn ask_daemon_as(
    config: Option<&PathBuf>,
    as_name: Option<&str>,
    method: reqwest::Method,
    path: &str,
    body: Option<String>,
) -> ExitCode {
    let config = match load(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match rt.block_on(crate::admin::call_as(&config, as_name, method, path, body)) {
        Ok((200, body)) => {
            println!("{body}");
            ExitCode::SUCCESS
        }
        Ok((status, body)) => {
            eprintln!("posbridge: the daemon answered {status}: {body}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("posbridge: {e}");
            ExitCode::from(2)
        }
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { config } => match load(Some(&config)) {
            Ok(loaded) => {
                // The certificate and key are read as `run` would read them.
                if let Some(files) = &loaded.server.tls
                    && let Err(e) = crate::tls::Tls::load(files)
                {
                    eprintln!("posbridge: {e}");
                    return ExitCode::from(EXIT_CONFIG);
                }
                println!("{}: configuration OK", config.display());
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::PrintDefaultConfig => {
            print!("{DEFAULT_CONFIG}");
            ExitCode::SUCCESS
        }
        Command::Doctor { config } => {
            let rt = match runtime() {
                Ok(rt) => rt,
                Err(code) => return code,
            };
            let report = rt.block_on(crate::doctor::run(config.as_deref()));
            print!("{}", report.text());
            if report.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Command::Backup {
            config,
            destination,
        } => {
            let config = match load(config.as_ref()) {
                Ok(c) => c,
                Err(code) => return code,
            };
            match crate::store::maintenance::backup(&config.storage.path, &destination) {
                Ok(()) => {
                    println!(
                        "backed up {} to {}",
                        config.storage.path.display(),
                        destination.display()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("posbridge: backup failed: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::AdoptJournals { config } => {
            let config = match load(config.as_ref()) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let _ = telemetry::init("warn", LogFormat::Text, LogOutput::Stderr);
            let rt = match runtime() {
                Ok(rt) => rt,
                Err(code) => return code,
            };
            match rt.block_on(crate::server::adopt_journals(config)) {
                Ok(done) => {
                    println!(
                        "adopted {} journal entr{} the database did not know; {} payment(s) caught up to what the terminals were sent",
                        done.adopted,
                        if done.adopted == 1 { "y" } else { "ies" },
                        done.caught_up.len()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("posbridge: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Terminals { config, action } => {
            let (method, path) = match &action {
                TerminalAction::List => (reqwest::Method::GET, "/terminals".to_string()),
                TerminalAction::Probe { id } => {
                    (reqwest::Method::POST, format!("/terminals/{id}/probe"))
                }
                TerminalAction::EndOfDay { id } => {
                    (reqwest::Method::POST, format!("/terminals/{id}/end-of-day"))
                }
            };
            ask_daemon(config.as_ref(), method, &path, None)
        }
        Command::Payments { config, action } => match action {
            PaymentAction::List => {
                ask_daemon(config.as_ref(), reqwest::Method::GET, "/payments", None)
            }
            PaymentAction::Show { id } => ask_daemon(
                config.as_ref(),
                reqwest::Method::GET,
                &format!("/payments/{}", encode_segment(&id)),
                None,
            ),
            PaymentAction::Resolve {
                id,
                decision,
                reason,
                as_name,
                card_brand,
                first_digits,
                last_digits,
                nsu,
                authorization_id,
            } => {
                let decision = match decision {
                    DecisionArg::Approved => "approved",
                    DecisionArg::Denied => "denied",
                };
                let body = serde_json::json!({
                    "decision": decision, "reason": reason, "cardBrand": card_brand,
                    "firstDigits": first_digits, "lastDigits": last_digits, "nsu": nsu,
                    "authorizationId": authorization_id,
                });
                ask_daemon_as(
                    config.as_ref(),
                    as_name.as_deref(),
                    reqwest::Method::POST,
                    &format!("/payments/{}/resolve", encode_segment(&id)),
                    Some(body.to_string()),
                )
            }
        },
        Command::Callbacks { config, action } => {
            let (method, path) = match &action {
                CallbackAction::List => (reqwest::Method::GET, "/callbacks".to_string()),
                CallbackAction::Retry { id } => {
                    (reqwest::Method::POST, format!("/callbacks/{id}/retry"))
                }
            };
            ask_daemon(config.as_ref(), method, &path, None)
        }
        Command::LogLevel { config, level } => ask_daemon(
            config.as_ref(),
            reqwest::Method::PUT,
            "/log-level",
            Some(level),
        ),
        Command::Alarms {
            config,
            action: Some(AlarmAction::Ack { id, note, as_name }),
            ..
        } => ask_daemon_as(
            config.as_ref(),
            as_name.as_deref(),
            reqwest::Method::POST,
            &format!("/alarms/{id}/ack"),
            Some(serde_json::json!({ "note": note }).to_string()),
        ),
        Command::Alarms {
            config,
            all,
            json,
            action: None,
        } => {
            let config = match load(config.as_ref()) {
                Ok(c) => c,
                Err(code) => return code,
            };
            if json {
                return match crate::alarms::json(&config.storage.path, all) {
                    Ok(text) => {
                        println!("{text}");
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        eprintln!("posbridge: {e}");
                        ExitCode::from(2)
                    }
                };
            }
            let time = crate::locale::StoreTime::new(config.store.timezone.as_deref())
                .unwrap_or_else(|_| crate::locale::StoreTime::utc());
            match crate::alarms::report(&config.storage.path, all, &time) {
                Ok(report) => {
                    print!("{}", report.text);
                    if report.open == 0 {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    }
                }
                Err(e) => {
                    eprintln!("posbridge: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::SimulateTerminal {
            protocol: SimulatedProtocol::Zvt(args),
        } => {
            let _ = telemetry::init("info", LogFormat::Text, LogOutput::Stderr);
            let rt = match runtime() {
                Ok(rt) => rt,
                Err(code) => return code,
            };
            match rt.block_on(crate::terminal::zvt::pt_simulator::run(args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("posbridge: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Run {
            config,
            log_level,
            log_format,
        } => {
            let config = match load(config.as_ref()) {
                Ok(c) => c,
                Err(code) => return code,
            };
            if let Err(e) = telemetry::init(&log_level, log_format, LogOutput::Stdout) {
                eprintln!("posbridge: {e}");
                return ExitCode::from(EXIT_CONFIG);
            }
            if let Some(warning) = config.demo_box_warning() {
                tracing::warn!("demo box: {warning}");
            }
            let rt = match runtime() {
                Ok(rt) => rt,
                Err(code) => return code,
            };
            let result = rt.block_on(async {
                let shutdown = crate::server::shutdown_on_signals()?;
                crate::server::run(config, shutdown).await
            });
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("fatal: {e:#}");
                    eprintln!("posbridge: {e:#}");
                    // An unusable certificate or key file is a configuration problem.
                    if e.downcast_ref::<crate::tls::TlsFileError>().is_some() {
                        ExitCode::from(EXIT_CONFIG)
                    } else if matches!(
                        e.downcast_ref::<crate::pos::EngineError>(),
                        Some(crate::pos::EngineError::JournalsAhead(_))
                    ) {
                        ExitCode::from(EXIT_JOURNALS_AHEAD)
                    } else {
                        ExitCode::FAILURE
                    }
                }
            }
        }
    }
}
