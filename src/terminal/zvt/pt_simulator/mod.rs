//! A ZVT payment terminal (the PT side) speaking the real wire protocol, for tests and demos:
//! `posbridge simulate-terminal zvt`.
//!
//! It listens on TCP (bare APDUs) or offers a pseudo-terminal (serial framing with DLE/STX,
//! CRC, ACK/NAK) behind a stable symlink, serves one ECR at a time and keeps its state —
//! trace and receipt counters, its journal, the open batch — in memory across connections.
//!
//! Sale outcomes by the cents of the amount, as the built-in simulator
//! (`terminal::simulator`):
//!
//! | cents | outcome |
//! |---|---|
//! | .01 | declined by the issuer: `04 0F` result 0x05, receipts, `06 1E 05` |
//! | .02 | the shopper cancels on the terminal: `06 1E 6C` |
//! | .03 | silent after `80 00 00` and one `04 FF`; never completed, not journaled |
//! | .04 | approved after 20 s |
//! | .05 | approved; an `06 B0` from the ECR is refused with `84 83 00` |
//! | .06 | approved; its reversal is refused with `06 1E 65` (needs the card) |
//! | other | approved after `--approve-after-ms` |
//!
//! When the ECR goes away mid-sale (a crash, a pulled cable) before the outcome is decided, the
//! terminal goes on with the sale and completes it at its time, as a real one does; an `06 B0`
//! from a later connection aborts it (`80 00 00`) if it still can (refused `84 83 00` for a
//! `.05` sale; no answer for a silent one). Meanwhile Repeat Receipt shows the transaction
//! before it, and a new sale is refused (`84 9C 00`, busy). `--terminal-id` and
//! `--first-trace` make it another (or a reset) terminal.
//!
//! Other result codes: `06 1E 6C` after an ECR abort; reversal of an unknown receipt `83`,
//! of a sale whose batch was closed `B5`, of a reversed one `B4`; refund `65`; Repeat
//! Receipt with nothing to repeat `83`; unsupported commands `84 83 00`; undecodable ones
//! `84 9A 00`.

mod session;
mod terminal;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use firmware_protocols::zvt::Password;
use tokio::sync::oneshot;

use super::link::{Framing, LinkError, ZvtLink};
use session::{Session, SessionEnd, Timing};
use terminal::{SaleFaults, Terminal};

/// The terminal ID the simulator reports (BMP 29).
pub const TERMINAL_ID: u32 = 52_500_017;

/// Faults to inject, each once (into the first sale).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FaultKind {
    /// After accepting a sale and sending the first intermediate status, drop the line (close
    /// the TCP connection; on a pty, close it and offer a new one behind the same symlink
    /// after ~1 s). The sale still completes inside the terminal.
    DropMidSale,
    /// NAK the next frame received (serial only).
    NakNext,
    /// Send the next frame with a corrupted CRC (serial only).
    BadCrc,
    /// Wait 2 s before each message of the first sale.
    Slow,
    /// Never send the `06 0F` Completion of the first sale.
    NoCompletion,
    /// The first sale refuses an abort (the card was read) and takes `--late-approval-ms`
    /// (default 8 s) to approve: an ECR that gave up on it meanwhile learns of it late.
    LateApproval,
    /// `NAK` the next frames received, more in a row than the ECR repeats one (serial only).
    NakStorm,
    /// Put line noise on the wire before the next message: stray bytes, a lone `DLE`, a
    /// frame start without an end (on TCP, bytes that are no APDU).
    Garbage,
}

/// Command-line options of `posbridge simulate-terminal zvt`.
#[derive(Debug, Clone, clap::Args)]
pub struct SimulatorArgs {
    /// `tcp:HOST:PORT` (port 0 allowed) to listen on; bare APDUs.
    #[arg(long, required_unless_present = "pty", conflicts_with = "pty")]
    pub listen: Option<String>,
    /// Offer a pseudo-terminal (serial framing) behind a symlink at PATH (default:
    /// `$TMPDIR/posbridge-zvt-<pid>`).
    #[arg(long, value_name = "PATH")]
    pub pty: Option<Option<PathBuf>>,
    /// How long a normal sale takes.
    #[arg(long, default_value_t = 1500)]
    pub approve_after_ms: u64,
    /// A fault to inject (repeatable).
    #[arg(long = "fault", value_enum, value_name = "KIND")]
    pub faults: Vec<FaultKind>,
    /// The terminal password (6 digits); a mismatch is only logged.
    #[arg(long, default_value = "000000")]
    pub password: String,
    /// The terminal ID it reports (BMP 29): another ID is another terminal.
    #[arg(long, default_value_t = TERMINAL_ID)]
    pub terminal_id: u32,
    /// The trace number of its first transaction (a fresh terminal starts at 1).
    #[arg(long, default_value_t = 1)]
    pub first_trace: u32,
    /// Start as a terminal in use: its memory holds an earlier sale (1,00, not in the record),
    /// which Repeat Receipt shows. Without it the terminal is fresh (or reset): it remembers
    /// nothing, and a sale lost on it cannot be proven never done by its time alone.
    #[arg(long)]
    pub in_use: bool,
    /// How long the `late-approval` fault's sale takes.
    #[arg(long, default_value_t = 8000)]
    pub late_approval_ms: u64,
    /// How long the `slow` fault waits before each message (longer than the ECR's timeouts:
    /// a terminal slower than every timeout).
    #[arg(long, default_value_t = 2000)]
    pub slow_ms: u64,
    /// Write the terminal's journal to PATH (JSON lines, rewritten whole after each change): what
    /// it charged, reversed and aborted, for tests and audits to compare with posbridge's record.
    #[arg(long, value_name = "PATH")]
    pub record: Option<PathBuf>,
}

/// Where the simulator offers its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Tcp(SocketAddr),
    /// The symlink to (re)create.
    Pty(PathBuf),
}

/// Everything [`serve`] needs; [`SimulatorOptions::from_args`] builds it from the command
/// line, tests build it directly (with shorter delays).
#[derive(Debug, Clone)]
pub struct SimulatorOptions {
    pub endpoint: Endpoint,
    pub approve_after: Duration,
    pub faults: Vec<FaultKind>,
    pub password: Password,
    pub terminal_id: u32,
    /// The trace number of its first transaction.
    pub first_trace: u32,
    /// Starts with an earlier sale in its memory (`--in-use`).
    pub in_use: bool,
    /// How long the `late-approval` fault's sale takes.
    pub late_approval: Duration,
    /// The `slow` fault's delay before each message.
    pub slow_delay: Duration,
    /// How long a `.04` sale takes.
    pub slow_sale: Duration,
    /// How long the line stays unplugged after `drop-mid-sale` (pty).
    pub replug_delay: Duration,
    /// How long the terminal waits for the ECR's `80 00 00` to one of its messages before
    /// it gives the dialogue up.
    pub ack_timeout: Duration,
    /// Where to write the terminal's journal after each change (`--record`).
    pub record: Option<PathBuf>,
}

impl SimulatorOptions {
    /// Options with the given endpoint and the command line's defaults.
    pub fn new(endpoint: Endpoint) -> Self {
        Self {
            endpoint,
            approve_after: Duration::from_millis(1500),
            faults: Vec::new(),
            password: Password::from_bytes([0, 0, 0]),
            terminal_id: TERMINAL_ID,
            first_trace: 1,
            in_use: false,
            late_approval: Duration::from_secs(8),
            slow_delay: Duration::from_secs(2),
            slow_sale: Duration::from_secs(20),
            replug_delay: Duration::from_secs(1),
            ack_timeout: Duration::from_secs(10),
            record: None,
        }
    }

    pub fn from_args(args: &SimulatorArgs) -> anyhow::Result<Self> {
        let endpoint = match (&args.listen, &args.pty) {
            (Some(listen), None) => {
                let address = listen
                    .strip_prefix("tcp:")
                    .with_context(|| format!("--listen `{listen}` must be tcp:HOST:PORT"))?;
                let address = address
                    .parse::<SocketAddr>()
                    .with_context(|| format!("--listen `{listen}`: not an IP address and port"))?;
                Endpoint::Tcp(address)
            }
            (None, Some(path)) => Endpoint::Pty(path.clone().unwrap_or_else(default_pty_link)),
            _ => anyhow::bail!("give exactly one of --listen tcp:HOST:PORT and --pty [PATH]"),
        };
        let password = (args.password.len() == 6)
            .then(|| args.password.parse::<u32>().ok())
            .flatten()
            .and_then(Password::from_number)
            .with_context(|| "--password must be 6 digits".to_string())?;
        Ok(Self {
            approve_after: Duration::from_millis(args.approve_after_ms),
            faults: args.faults.clone(),
            password,
            terminal_id: args.terminal_id,
            first_trace: args.first_trace,
            in_use: args.in_use,
            late_approval: Duration::from_millis(args.late_approval_ms),
            slow_delay: Duration::from_millis(args.slow_ms),
            record: args.record.clone(),
            ..Self::new(endpoint)
        })
    }

    fn timing(&self) -> Timing {
        Timing {
            approve_after: self.approve_after,
            slow_delay: self.slow_delay,
            slow_sale: self.slow_sale,
            late_approval: self.late_approval,
            ack_timeout: self.ack_timeout,
            password: self.password,
        }
    }
}

fn default_pty_link() -> PathBuf {
    std::env::temp_dir().join(format!("posbridge-zvt-{}", std::process::id()))
}

pub async fn run(args: SimulatorArgs) -> anyhow::Result<()> {
    let options = SimulatorOptions::from_args(&args)?;
    let (ready, announced) = oneshot::channel();
    let server = serve(options, ready);
    crate::terminal::simulator_process::run_announced("ZVT simulator", server, announced).await
}

/// Runs the simulated terminal until an I/O error on the listener (or forever). `ready`
/// receives the line `run` prints first: `listening on tcp:HOST:PORT`, or the pty symlink
/// path. Dropping the future removes the symlink.
pub async fn serve(
    options: SimulatorOptions,
    ready: oneshot::Sender<String>,
) -> anyhow::Result<()> {
    let mut terminal = Terminal::new(
        options.terminal_id,
        options.first_trace,
        SaleFaults::from_kinds(&options.faults),
    );
    terminal.record_to(options.record.clone());
    if options.in_use {
        terminal.remember_an_earlier_sale();
    }
    match &options.endpoint {
        Endpoint::Tcp(address) => serve_tcp(*address, &options, &mut terminal, ready).await,
        Endpoint::Pty(link) => serve_pty(link, &options, &mut terminal, ready).await,
    }
}

async fn serve_tcp(
    address: SocketAddr,
    options: &SimulatorOptions,
    terminal: &mut Terminal,
    ready: oneshot::Sender<String>,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address}"))?;
    let local = listener.local_addr().context("listener address")?;
    tracing::info!(%local, "ZVT simulator: listening (TCP, bare APDUs)");
    let _ = ready.send(format!("listening on tcp:{local}"));
    loop {
        let (stream, peer) = listener.accept().await.context("accepting an ECR")?;
        let _ = stream.set_nodelay(true);
        tracing::info!(%peer, "ZVT simulator: ECR connected");
        let mut link = ZvtLink::new(stream, Framing::Tcp);
        let end = Session::new(&mut link, terminal, options.timing())
            .run()
            .await;
        match end {
            SessionEnd::DropLine => {
                tracing::warn!(%peer, "ZVT simulator: fault drop-mid-sale, closing the connection")
            }
            SessionEnd::Link(error) => tracing::info!(%peer, %error, "ZVT simulator: ECR gone"),
        }
    }
}

/// A pty pair: the simulator talks on the master and keeps the slave open too (so the
/// master never reads EOF/EIO while no ECR has the line open); the ECR opens the slave's
/// device through the symlink.
struct Line {
    master: tokio_serial::SerialStream,
    /// Never read; kept open so the master does not see a hang-up between ECRs.
    slave: tokio_serial::SerialStream,
    device: String,
}

fn open_line() -> anyhow::Result<Line> {
    use tokio_serial::SerialPort;
    let (master, slave) = tokio_serial::SerialStream::pair().context("cannot create a pty pair")?;
    let device = slave.name().context("the pty slave has no device name")?;
    Ok(Line {
        master,
        slave,
        device,
    })
}

/// Removes the symlink when the simulator stops.
struct LinkGuard(PathBuf);

impl Drop for LinkGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Points `link` at `target` atomically (a temporary symlink renamed over it).
fn point_symlink(link: &Path, target: &str) -> anyhow::Result<()> {
    let name = link
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = link.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&temporary);
    std::os::unix::fs::symlink(target, &temporary)
        .with_context(|| format!("cannot create the symlink {}", temporary.display()))?;
    std::fs::rename(&temporary, link)
        .with_context(|| format!("cannot move the symlink to {}", link.display()))?;
    Ok(())
}

async fn serve_pty(
    path: &Path,
    options: &SimulatorOptions,
    terminal: &mut Terminal,
    ready: oneshot::Sender<String>,
) -> anyhow::Result<()> {
    let mut line = open_line()?;
    point_symlink(path, &line.device)?;
    let _guard = LinkGuard(path.to_path_buf());
    tracing::info!(link = %path.display(), device = %line.device, "ZVT simulator: pty ready (serial framing)");
    let _ = ready.send(path.display().to_string());
    let mut link = ZvtLink::new(line.master, Framing::Serial);
    loop {
        let end = Session::new(&mut link, terminal, options.timing())
            .run()
            .await;
        let replug_after = match end {
            SessionEnd::DropLine => {
                tracing::warn!("ZVT simulator: fault drop-mid-sale, unplugging the line");
                Some(options.replug_delay)
            }
            SessionEnd::Link(LinkError::Closed | LinkError::Io(_)) => {
                tracing::warn!("ZVT simulator: the pty failed, offering a new one");
                Some(Duration::ZERO)
            }
            SessionEnd::Link(error) => {
                tracing::info!(%error, "ZVT simulator: dialogue given up, waiting for the next command");
                // Frames nobody read (an ECR that went away mid-dialogue) must not greet the
                // next ECR that opens the line.
                use tokio_serial::SerialPort;
                if let Err(error) = line.slave.clear(tokio_serial::ClearBuffer::Input) {
                    tracing::debug!(%error, "ZVT simulator: cannot flush the pty");
                }
                None
            }
        };
        if let Some(delay) = replug_after {
            drop(link);
            drop(line.slave);
            tokio::time::sleep(delay).await;
            line = open_line()?;
            point_symlink(path, &line.device)?;
            tracing::info!(link = %path.display(), device = %line.device, "ZVT simulator: line plugged back in");
            link = ZvtLink::new(line.master, Framing::Serial);
        }
    }
}
