//! Every terminal protocol the proof suite runs, one row each. A new driver (TEF Dial, nexo)
//! joins every matrix by one row in [`DRIVERS`] and a [`TerminalUnderTest`] for its simulator.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

use crate::harness::{Daemon, Options};
use crate::proof::record::TerminalRecord;
use crate::zvt::ZvtTerminal;

/// A terminal as the proof suite sees it: how the daemon reaches it, and its own record.
pub trait TerminalUnderTest: Send + Sync {
    /// The daemon's options for lane-1 on this terminal.
    fn configure(&self, options: Options) -> Options;
    /// What the terminal says it did, read from its own journal.
    fn record(&self, daemon: &Daemon) -> TerminalRecord;
    /// Its own log, for a failure's report.
    fn logs(&self) -> String;
}

/// How a scenario wants its terminal.
#[derive(Debug, Clone, Default)]
pub struct Setup {
    /// How long a normal sale takes.
    pub approve_after_ms: u64,
    /// Faults in the simulator's own words (`--fault KIND` for ZVT); rows that cannot simulate
    /// one skip the scenario (see [`Driver::faults`]).
    pub faults: Vec<&'static str>,
    /// More arguments for a protocol simulator.
    pub args: Vec<String>,
}

pub type Started = Pin<Box<dyn Future<Output = Box<dyn TerminalUnderTest>> + Send>>;

/// One terminal protocol (and transport) under proof.
pub struct Driver {
    pub name: &'static str,
    pub start: fn(Setup) -> Started,
    /// The simulator faults this row can inject (`Setup::faults`).
    pub faults: &'static [&'static str],
}

/// What the ZVT simulator injects on any line; serial framing adds its own.
const ZVT_FAULTS: &[&str] = &[
    "drop-mid-sale",
    "garbage",
    "slow",
    "no-completion",
    "late-approval",
];
const ZVT_SERIAL_FAULTS: &[&str] = &[
    "drop-mid-sale",
    "garbage",
    "slow",
    "no-completion",
    "late-approval",
    "nak-next",
    "nak-storm",
    "bad-crc",
];

pub const DRIVERS: &[Driver] = &[
    Driver {
        name: "simulator",
        start: |setup| {
            Box::pin(async move { Box::new(BuiltIn(setup)) as Box<dyn TerminalUnderTest> })
        },
        faults: &[],
    },
    Driver {
        name: "zvt-tcp",
        start: |setup| Box::pin(Zvt::start(Line::Tcp, setup)),
        faults: ZVT_FAULTS,
    },
    Driver {
        name: "zvt-pty",
        start: |setup| Box::pin(Zvt::start(Line::Pty, setup)),
        faults: ZVT_SERIAL_FAULTS,
    },
];

/// The built-in simulator: it lives in the daemon, its journal beside the database is the
/// terminal's record, and it goes on with a sale while the daemon is down.
struct BuiltIn(Setup);

impl TerminalUnderTest for BuiltIn {
    fn configure(&self, options: Options) -> Options {
        Options {
            approve_after_ms: self.0.approve_after_ms,
            ..options
        }
    }

    fn record(&self, daemon: &Daemon) -> TerminalRecord {
        TerminalRecord::from_simulator_journal(&daemon.journal())
    }

    fn logs(&self) -> String {
        String::from("(the built-in simulator logs into the daemon's log)")
    }
}

#[derive(Clone, Copy)]
enum Line {
    Tcp,
    Pty,
}

/// `posbridge simulate-terminal zvt`: the real wire protocol in a process of its own, which
/// keeps running (and completes a sale) while the daemon is down.
struct Zvt {
    terminal: ZvtTerminal,
    record: PathBuf,
    _dir: tempfile::TempDir,
}

impl Zvt {
    async fn start(line: Line, setup: Setup) -> Box<dyn TerminalUnderTest> {
        let dir = tempfile::tempdir().expect("tempdir");
        let record = dir.path().join("zvt-record.jsonl");
        let mut args = vec![
            "--approve-after-ms".to_string(),
            setup.approve_after_ms.to_string(),
            "--record".to_string(),
            record.display().to_string(),
        ];
        for fault in &setup.faults {
            args.extend(["--fault".to_string(), fault.to_string()]);
        }
        args.extend(setup.args);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let terminal = match line {
            Line::Tcp => ZvtTerminal::tcp(&args).await,
            Line::Pty => ZvtTerminal::pty(&args).await,
        };
        Box::new(Zvt {
            terminal,
            record,
            _dir: dir,
        })
    }
}

impl TerminalUnderTest for Zvt {
    fn configure(&self, options: Options) -> Options {
        Options {
            zvt_transport: Some(self.terminal.transport.clone()),
            ..options
        }
    }

    fn record(&self, _daemon: &Daemon) -> TerminalRecord {
        TerminalRecord::from_zvt_record(&std::fs::read_to_string(&self.record).unwrap_or_default())
    }

    fn logs(&self) -> String {
        self.terminal.logs()
    }
}
