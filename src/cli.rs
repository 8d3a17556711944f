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
    /// List what needs a person (unresolved payments, late approvals reversed, amounts to
    /// return by hand, callbacks given up). Exit 0: nothing; 1: something listed.
    Alarms {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
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
    let config = match load(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match rt.block_on(crate::admin::call(&config, method, path, body)) {
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
        Command::Payments { config, action } => {
            let path = match &action {
                PaymentAction::List => "/payments".to_string(),
                PaymentAction::Show { id } => format!("/payments/{id}"),
            };
            ask_daemon(config.as_ref(), reqwest::Method::GET, &path, None)
        }
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
        Command::Alarms { config } => {
            let config = match load(config.as_ref()) {
                Ok(c) => c,
                Err(code) => return code,
            };
            match crate::alarms::report(&config.storage.path) {
                Ok(None) => {
                    println!("nothing needs attention");
                    ExitCode::SUCCESS
                }
                Ok(Some(report)) => {
                    print!("{report}");
                    ExitCode::FAILURE
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
