//! The `posbridge` command line: what each subcommand does, and its exit code.
//! Exit codes: 0 success; 64 bad configuration or command line (EX_USAGE: systemd does not
//! restart on it); 65 the database is older than the terminals' journals (EX_DATAERR: restored
//! from an old backup; `adopt-journals` or a newer backup, then start again), newer than this
//! binary (a downgrade), damaged or read-only (restarting would not help); 1 failure, or the daemon refused; 2 the running daemon could not be
//! asked.
//!
//! What the running daemon answers is shown for people (`views`: tables, local times, amounts
//! as written) or, with `--json`, printed as it is for scripts.

pub mod table;
mod views;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::clock::{Clock, SystemClock};
use crate::config::{Config, DEFAULT_CONFIG};
use crate::locale::StoreTime;
use crate::telemetry::{self, LogFormat, LogOutput};

const EXIT_USAGE: u8 = 64;
/// The database cannot be used as it is: older than the terminal journals, newer than this
/// binary, damaged or read-only (EX_DATAERR).
const EXIT_DATA: u8 = 65;
const EXIT_NOT_ASKED: u8 = 2;

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
        /// Print the daemon's JSON as it is (UTC unix ms), for scripts.
        #[arg(long, global = true)]
        json: bool,
        #[command(subcommand)]
        action: TerminalAction,
    },
    /// Ask the running daemon about payments (brand and last 4 digits only).
    Payments {
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Print the daemon's JSON as it is (UTC unix ms, minor units), for scripts.
        #[arg(long, global = true)]
        json: bool,
        #[command(subcommand)]
        action: PaymentAction,
    },
    /// Ask the running daemon about the callback outbox, or re-deliver now.
    Callbacks {
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Print the daemon's JSON as it is (UTC unix ms), for scripts.
        #[arg(long, global = true)]
        json: bool,
        #[command(subcommand)]
        action: CallbackAction,
    },
    /// Change the running daemon's log level (e.g. `debug`, `info`, `posbridge=trace,info`).
    LogLevel {
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Print the daemon's JSON as it is, for scripts.
        #[arg(long)]
        json: bool,
        level: String,
    },
    /// Run one replica of the relay tier: one public Service URL for the Gateway in front of
    /// many stores that dial out to its NATS cluster (`[uplink]`).
    Relay {
        #[arg(long, short)]
        config: PathBuf,
        /// Log filter: a level (info, debug, trace) or EnvFilter directives. RUST_LOG overrides.
        #[arg(long, default_value = "info", env = "POSBRIDGE_LOG")]
        log_level: String,
        #[arg(long, value_enum, default_value = "text")]
        log_format: LogFormat,
    },
    /// For the relay tier's operator: issue a store's NATS login. Writes a new random password
    /// to --password-file (mode 0600; never over an existing file) and prints the `users` entry
    /// for the relay tier's nats-server.conf (the store limited to its own subjects) and the
    /// store's `[uplink]` section.
    IssueStoreCredentials {
        /// The store's name on the relay tier (letters, digits, - and _).
        store_id: String,
        /// Where to write the password (copy it to the store, e.g. /etc/posbridge/uplink.password).
        #[arg(long)]
        password_file: PathBuf,
        /// The NATS cluster the store dials, for the printed `[uplink]` section.
        #[arg(long, default_value = "tls://nats.partner.example.com:4222")]
        nats_url: String,
    },
    /// Run a simulated payment terminal that speaks a real protocol (for tests and demos).
    SimulateTerminal {
        #[command(subcommand)]
        protocol: SimulatedProtocol,
    },
    /// List what needs a person, each alarm with what to do (see the runbook); `ack ID` once
    /// dealt with. Exit 0: nothing open; 1: something open; 2: the database cannot be read.
    Alarms {
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
        /// The history too: acknowledged alarms and those that cleared by themselves.
        #[arg(long)]
        all: bool,
        /// JSON for scripts (times in UTC milliseconds).
        #[arg(long, global = true)]
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
    /// Today's payments (since the store's midnight, `[store] timezone`), newest first.
    List {
        /// From the store's midnight of this date instead (YYYY-MM-DD).
        #[arg(long, value_name = "YYYY-MM-DD", value_parser = store_date)]
        since: Option<String>,
    },
    /// One payment with its receipts and callbacks.
    Show { id: String },
    /// Resolve a payment its terminal can no longer account for (state unresolved) from its
    /// receipt: the result and its callback go out as if the terminal had said so; your name,
    /// the time and the reason are recorded.
    Resolve {
        id: String,
        #[arg(value_enum, value_name = "approved|denied")]
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
    /// Make callbacks due now: the one with this ID, or every undelivered one of a payment
    /// (a number is taken as a callback ID first).
    Retry {
        #[arg(value_name = "ID|PAYMENT-ID")]
        id: String,
    },
}

#[derive(Subcommand)]
enum SimulatedProtocol {
    /// A ZVT terminal on TCP or a pseudo-terminal; prints where it listens as its first line.
    Zvt(crate::terminal::zvt::pt_simulator::SimulatorArgs),
    /// A TEF client on the TEF Dial file exchange (IntPos.001 in two folders); prints the
    /// folders it watches as its first line.
    TefDial(crate::terminal::tef_dial::simulator::SimulatorArgs),
    /// An Adyen terminal in local mode (Terminal API over HTTPS, sealed messages); prints
    /// `listening on https://HOST:PORT/nexo` as its first line.
    Nexo(crate::terminal::nexo::simulator::SimulatorArgs),
}

fn load(path: Option<&PathBuf>) -> Result<Config, ExitCode> {
    let loaded = match path {
        Some(path) => Config::load(path),
        None => Config::parse(DEFAULT_CONFIG, "(embedded default)"),
    };
    loaded.map_err(|e| {
        eprintln!("posbridge: invalid configuration: {e}");
        ExitCode::from(EXIT_USAGE)
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

/// `--since`: a calendar date, checked here so a typo is a usage error, not a daemon's refusal.
fn store_date(text: &str) -> Result<String, String> {
    jiff::civil::Date::strptime("%Y-%m-%d", text)
        .map(|date| date.strftime("%Y-%m-%d").to_string())
        .map_err(|_| format!("`{text}` is not a date (YYYY-MM-DD, e.g. 2026-11-30)"))
}

/// An id as one path segment: payment ids may hold `/`, `?`, `#`, spaces or `%`.
fn segment(id: &str) -> String {
    let mut encoded = String::with_capacity(id.len());
    for byte in id.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// A question for the running daemon's admin listener.
struct Request {
    method: reqwest::Method,
    path: String,
    body: Option<String>,
    /// Whose admin token asks ([admin] tokens); `None`: `[admin] token`.
    as_name: Option<String>,
}

impl Request {
    fn get(path: impl Into<String>) -> Self {
        Self {
            method: reqwest::Method::GET,
            path: path.into(),
            body: None,
            as_name: None,
        }
    }

    /// A POST with a JSON body, asked as the holder named `as_name`.
    fn post_as(path: impl Into<String>, body: &Value, as_name: Option<String>) -> Self {
        Self {
            method: reqwest::Method::POST,
            body: Some(body.to_string()),
            as_name,
            ..Self::get(path)
        }
    }

    fn post(path: impl Into<String>) -> Self {
        Self {
            method: reqwest::Method::POST,
            ..Self::get(path)
        }
    }

    fn put(path: impl Into<String>, body: String) -> Self {
        Self {
            method: reqwest::Method::PUT,
            body: Some(body),
            ..Self::get(path)
        }
    }
}

/// Asks the running daemon: the body of a 2xx answer. Otherwise says why and gives the exit
/// code: 1 when the daemon refused, 2 when it could not be asked.
fn ask(config: &Config, request: Request) -> Result<String, ExitCode> {
    let rt = runtime()?;
    let answer = crate::admin::call_as(
        config,
        request.as_name.as_deref(),
        request.method,
        &request.path,
        request.body,
    );
    match rt.block_on(answer) {
        Ok((status, body)) if (200..300).contains(&status) => Ok(body),
        Ok((status, body)) => {
            eprintln!("posbridge: {}", refusal(status, &body));
            Err(ExitCode::FAILURE)
        }
        Err(e) => {
            eprintln!("posbridge: {e}");
            Err(ExitCode::from(EXIT_NOT_ASKED))
        }
    }
}

/// The daemon's own words for a refusal (`{"error": …}`, about a terminal when it names one),
/// else its status and the start of its body; printable either way.
fn refusal(status: u16, body: &str) -> String {
    let answer = serde_json::from_str::<Value>(body).unwrap_or_default();
    let error = answer.get("error").and_then(Value::as_str);
    let terminal = answer.get("terminal").and_then(Value::as_str);
    let text = match (error, terminal) {
        (Some(error), Some(terminal)) => format!("terminal {terminal}: {error} (HTTP {status})"),
        (Some(error), None) => format!("{error} (HTTP {status})"),
        _ => format!(
            "the daemon answered HTTP {status}: {}",
            table::shorten(body.trim(), 200)
        ),
    };
    table::printable(&text)
}

/// The zone the daemon counts days in (its answers name it), else the configuration's.
fn store_time(answered: Option<&str>, config: &Config) -> StoreTime {
    answered
        .and_then(|zone| StoreTime::new(Some(zone)).ok())
        .or_else(|| StoreTime::new(config.store.timezone.as_deref()).ok())
        .unwrap_or_else(StoreTime::utc)
}

/// Asks the running daemon one question and prints its answer: the JSON as it is (`json`), or
/// `view`'s text for people.
fn admin_command<T: DeserializeOwned>(
    config: Option<&PathBuf>,
    json: bool,
    request: Request,
    view: impl FnOnce(&T, &views::StoreNow) -> String,
) -> ExitCode {
    let config = match load(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let answer = match ask(&config, request) {
        Ok(answer) => answer,
        Err(code) => return code,
    };
    if json {
        println!("{}", answer.trim_end());
        return ExitCode::SUCCESS;
    }
    let read = serde_json::from_str::<Value>(&answer).and_then(|value| {
        let zone = value
            .pointer("/store/timezone")
            .and_then(Value::as_str)
            .map(str::to_string);
        Ok((serde_json::from_value::<T>(value)?, zone))
    });
    match read {
        Ok((answer, zone)) => {
            let zone = store_time(zone.as_deref(), &config);
            let clock = views::StoreNow {
                zone: &zone,
                now_ms: SystemClock.now_ms(),
            };
            print!("{}", view(&answer, &clock));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!(
                "posbridge: the daemon answered, but not as this posbridge expects ({e}); `--json` prints the answer as it is"
            );
            ExitCode::FAILURE
        }
    }
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // --help and --version end here too, successfully.
            return if e.exit_code() == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_USAGE)
            };
        }
    };
    match cli.command {
        Command::CheckConfig { config } => match load(Some(&config)) {
            Ok(loaded) => {
                // The certificate and key are read as `run` would read them.
                if let Some(files) = &loaded.server.tls
                    && let Err(e) = crate::tls::Tls::load(files)
                {
                    eprintln!("posbridge: {e}");
                    return ExitCode::from(EXIT_USAGE);
                }
                let mut problems: Vec<String> = loaded
                    .terminals
                    .iter()
                    .flat_map(|t| {
                        t.protocol
                            .host_problems()
                            .into_iter()
                            .map(|p| format!("terminal `{}`: {p}", t.id))
                    })
                    .collect();
                if let Some(uplink) = &loaded.uplink {
                    problems.extend(uplink.nats.host_problems("uplink"));
                }
                if !problems.is_empty() {
                    for problem in problems {
                        eprintln!("posbridge: {problem}");
                    }
                    return ExitCode::from(EXIT_USAGE);
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
        Command::Terminals {
            config,
            json,
            action,
        } => match action {
            TerminalAction::List => admin_command(
                config.as_ref(),
                json,
                Request::get("/terminals"),
                views::terminal_list,
            ),
            TerminalAction::Probe { id } => admin_command(
                config.as_ref(),
                json,
                Request::post(format!("/terminals/{}/probe", segment(&id))),
                |answer, _| views::terminal_answer(answer),
            ),
            TerminalAction::EndOfDay { id } => admin_command(
                config.as_ref(),
                json,
                Request::post(format!("/terminals/{}/end-of-day", segment(&id))),
                |answer, _| views::terminal_answer(answer),
            ),
        },
        Command::Payments {
            config,
            json,
            action,
        } => match action {
            PaymentAction::List { since } => {
                let (path, period) = match since {
                    Some(date) => (format!("/payments?since={date}"), views::Period::Since),
                    None => ("/payments".to_string(), views::Period::Today),
                };
                admin_command(config.as_ref(), json, Request::get(path), |list, clock| {
                    views::payment_list(list, &period, clock)
                })
            }
            PaymentAction::Show { id } => admin_command(
                config.as_ref(),
                json,
                Request::get(format!("/payments/{}", segment(&id))),
                views::payment,
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
                admin_command(
                    config.as_ref(),
                    json,
                    Request::post_as(
                        format!("/payments/{}/resolve", segment(&id)),
                        &body,
                        as_name,
                    ),
                    views::resolved,
                )
            }
        },
        Command::Callbacks {
            config,
            json,
            action,
        } => match action {
            CallbackAction::List => admin_command(
                config.as_ref(),
                json,
                Request::get("/callbacks"),
                views::callback_list,
            ),
            CallbackAction::Retry { id } => admin_command(
                config.as_ref(),
                json,
                Request::post(format!("/callbacks/{}/retry", segment(&id))),
                |answer, _| views::retried(answer),
            ),
        },
        Command::LogLevel {
            config,
            json,
            level,
        } => admin_command(
            config.as_ref(),
            json,
            Request::put("/log-level", level),
            |answer, _| views::log_level(answer),
        ),
        Command::Alarms {
            config,
            json,
            action: Some(AlarmAction::Ack { id, note, as_name }),
            ..
        } => admin_command(
            config.as_ref(),
            json,
            Request::post_as(
                format!("/alarms/{id}/ack"),
                &serde_json::json!({ "note": note }),
                as_name,
            ),
            views::acknowledged,
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
                        ExitCode::from(EXIT_NOT_ASKED)
                    }
                };
            }
            let time = StoreTime::new(config.store.timezone.as_deref())
                .unwrap_or_else(|_| StoreTime::utc());
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
                    ExitCode::from(EXIT_NOT_ASKED)
                }
            }
        }
        Command::Relay {
            config,
            log_level,
            log_format,
        } => {
            let config = match crate::config::RelayConfig::load(&config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("posbridge: {e}");
                    return ExitCode::from(EXIT_USAGE);
                }
            };
            if let Err(e) = telemetry::init(&log_level, log_format, LogOutput::Stdout) {
                eprintln!("posbridge: {e}");
                return ExitCode::from(EXIT_USAGE);
            }
            tracing::trace!(config = ?config, "relay configuration as read");
            let code = until_signalled(|shutdown| crate::relay::run(config, shutdown));
            telemetry::flush();
            code
        }
        Command::IssueStoreCredentials {
            store_id,
            password_file,
            nats_url,
        } => match crate::uplink::permissions::issue_store_credentials(
            &store_id,
            &password_file,
            &nats_url,
        ) {
            Ok(text) => {
                println!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("posbridge: {e}");
                ExitCode::from(EXIT_USAGE)
            }
        },
        Command::SimulateTerminal { protocol } => {
            let _ = telemetry::init("info", LogFormat::Text, LogOutput::Stderr);
            let rt = match runtime() {
                Ok(rt) => rt,
                Err(code) => return code,
            };
            let simulated = rt.block_on(async {
                match protocol {
                    SimulatedProtocol::Zvt(args) => {
                        crate::terminal::zvt::pt_simulator::run(args).await
                    }
                    SimulatedProtocol::TefDial(args) => {
                        crate::terminal::tef_dial::simulator::run(args).await
                    }
                    SimulatedProtocol::Nexo(args) => {
                        crate::terminal::nexo::simulator::run(args).await
                    }
                }
            });
            match simulated {
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
                return ExitCode::from(EXIT_USAGE);
            }
            if let Some(warning) = config.demo_box_warning() {
                tracing::warn!("demo box: {warning}");
            }
            // What the daemon understood, for a support case; its secrets print as `***`
            // (the end-to-end secret scan runs at trace level and reads this line).
            tracing::trace!(config = ?config, "configuration as read");
            let code = until_signalled(|shutdown| crate::server::run(config, shutdown));
            telemetry::flush();
            code
        }
    }
}

/// Runs `serve` (the daemon or a relay replica) until SIGTERM or SIGINT; its exit code.
fn until_signalled<F>(serve: impl FnOnce(tokio_util::sync::CancellationToken) -> F) -> ExitCode
where
    F: std::future::Future<Output = anyhow::Result<()>>,
{
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let result = rt.block_on(async {
        let shutdown = crate::server::shutdown_on_signals()?;
        serve(shutdown).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("fatal: {e:#}");
            eprintln!("posbridge: {e:#}");
            // An unusable certificate or key file is a configuration problem.
            if e.downcast_ref::<crate::tls::TlsFileError>().is_some() {
                ExitCode::from(EXIT_USAGE)
            } else if matches!(
                e.downcast_ref::<crate::pos::EngineError>(),
                Some(crate::pos::EngineError::JournalsAhead(_))
            ) || matches!(
                e.downcast_ref::<crate::store::StoreError>(),
                Some(
                    crate::store::StoreError::NewerSchema { .. }
                        | crate::store::StoreError::Damaged { .. }
                        | crate::store::StoreError::ReadOnly { .. }
                )
            ) {
                ExitCode::from(EXIT_DATA)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_stays_one_path_segment() {
        assert_eq!(segment("pay-1_A.b~"), "pay-1_A.b~");
        assert_eq!(segment("a/b?c#d e%"), "a%2Fb%3Fc%23d%20e%25");
        assert_eq!(segment("ação"), "a%C3%A7%C3%A3o");
    }

    #[test]
    fn since_takes_only_a_real_date() {
        assert_eq!(store_date("2026-11-30").as_deref(), Ok("2026-11-30"));
        for bad in [
            "2026-02-30",
            "30/11/2026",
            "yesterday",
            "2026-11-30&limit=1",
            "",
        ] {
            assert!(store_date(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_refusal_is_told_in_the_daemons_words_and_printable() {
        assert_eq!(
            refusal(404, r#"{"error":"no payment `p-1`"}"#),
            "no payment `p-1` (HTTP 404)"
        );
        assert_eq!(
            refusal(502, r#"{"terminal":"lane-1","error":"no answer"}"#),
            "terminal lane-1: no answer (HTTP 502)"
        );
        assert_eq!(
            refusal(400, "Invalid URL\n\x1b[2J"),
            "the daemon answered HTTP 400: Invalid URL �[2J"
        );
    }
}
