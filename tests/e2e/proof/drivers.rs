//! Every terminal protocol the proof suite runs, one row each. A new driver (nexo) joins
//! every matrix by one row in [`DRIVERS`] and a [`TerminalUnderTest`] for its simulator.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

use crate::harness::{Daemon, Options};
use crate::nexo::NexoTerminal;
use crate::proof::record::TerminalRecord;
use crate::tef_dial::TefClient;
use crate::zvt::ZvtTerminal;

/// A terminal as the proof suite sees it: how the daemon reaches it, and its own record.
pub trait TerminalUnderTest: Send + Sync {
    /// The daemon's options for lane-1 on this terminal.
    fn configure(&self, options: Options) -> Options;
    /// What the terminal says it did, read from its own journal.
    fn record(&self, daemon: &Daemon) -> TerminalRecord;
    /// Its own log (every terminal in its place so far), for a failure's report and to prove
    /// a fault was applied.
    fn logs(&self) -> String;
    /// Puts another terminal in its place (see [`Replacement`]), while the daemon is down. The
    /// record goes on counting what every terminal before it did. Only called for the
    /// replacements its row lists ([`Driver::replacements`]).
    fn replace(&mut self, how: Replacement) -> Replacing<'_> {
        panic!("this terminal simulates no replacement ({how:?}): its row must not list it")
    }
}

pub type Replacing<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// How store IT changes the lane's terminal between two sales.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replacement {
    /// Another terminal, with its own identity and an empty memory, at the same address.
    Swapped,
    /// The same terminal (same identity, same address) after a reset: its memory is lost.
    Reset,
}

/// How a scenario wants its terminal.
#[derive(Debug, Clone, Default)]
pub struct Setup {
    /// How long a normal sale takes.
    pub approve_after_ms: u64,
    /// Faults in the simulator's own words (`--fault KIND` for ZVT); rows that cannot simulate
    /// one skip the scenario (see [`Driver::faults`]). The simulator logs `fault KIND` when it
    /// applies one: `terminal_faults` requires it.
    pub faults: Vec<&'static str>,
    /// More arguments for a protocol simulator.
    pub args: Vec<String>,
}

impl Setup {
    /// The command line of a simulator process (TEF client, nexo terminal) for this setup.
    fn simulator_args(self) -> Vec<String> {
        let mut args = vec![
            "--approve-after-ms".to_string(),
            self.approve_after_ms.to_string(),
        ];
        for fault in &self.faults {
            args.extend(["--fault".to_string(), fault.to_string()]);
        }
        args.extend(self.args);
        args
    }
}

pub type Started = Pin<Box<dyn Future<Output = Box<dyn TerminalUnderTest>> + Send>>;

/// One terminal protocol (and transport) under proof.
pub struct Driver {
    pub name: &'static str,
    pub start: fn(Setup) -> Started,
    /// The simulator faults this row can inject (`Setup::faults`).
    pub faults: &'static [&'static str],
    /// Simulator arguments for a fault on this row instead of the scenario's own, where this
    /// protocol's timeouts differ (see [`Driver::fault_args`]).
    pub fault_args: &'static [(&'static str, &'static [&'static str])],
    /// The replacements this row can simulate ([`TerminalUnderTest::replace`]).
    pub replacements: &'static [Replacement],
}

impl Driver {
    /// The simulator arguments for the fault `kind` on this row: its own if it lists some,
    /// else the scenario's `default`.
    pub fn fault_args(
        &self,
        kind: &str,
        default: &'static [&'static str],
    ) -> &'static [&'static str] {
        self.fault_args
            .iter()
            .find(|(listed, _)| *listed == kind)
            .map_or(default, |(_, args)| args)
    }
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

/// What the TEF client simulator injects. Not `no-answer`: a client that took a sale and never
/// answers keeps the payment undefined for good (only the client knows; posbridge never
/// guesses), which no scenario here can end — the simulator's own tests cover it.
const TEF_FAULTS: &[&str] = &["offline", "slow-ack", "garbage-answer"];

/// What the nexo simulator injects: each ends in a result its `TransactionStatus` gives, or
/// in nothing sent.
const NEXO_FAULTS: &[&str] = &["drop-answer", "bad-hmac", "offline", "slow"];

/// A nexo payment waits for its answer up to the terminal's `result_timeout_s` (20 s in
/// `terminal_faults`), not ZVT's completion timeout: "slower than every timeout" is past it.
const NEXO_FAULT_ARGS: &[(&str, &[&str])] = &[("slow", &["--slow-ms", "25000"])];

pub const DRIVERS: &[Driver] = &[
    Driver {
        name: "simulator",
        start: |setup| {
            Box::pin(async move { Box::new(BuiltIn(setup)) as Box<dyn TerminalUnderTest> })
        },
        faults: &[],
        fault_args: &[],
        // The built-in simulator lives in the daemon and its memory is the journal beside the
        // database: there is no terminal to swap or reset apart from the daemon's own files.
        replacements: &[],
    },
    Driver {
        name: "zvt-tcp",
        start: |setup| Box::pin(Zvt::start(Line::Tcp, setup)),
        faults: ZVT_FAULTS,
        fault_args: &[],
        replacements: &[Replacement::Swapped, Replacement::Reset],
    },
    Driver {
        name: "zvt-pty",
        start: |setup| Box::pin(Zvt::start(Line::Pty, setup)),
        faults: ZVT_SERIAL_FAULTS,
        fault_args: &[],
        replacements: &[Replacement::Swapped, Replacement::Reset],
    },
    Driver {
        name: "tef-dial",
        start: |setup| Box::pin(Tef::start(setup)),
        faults: TEF_FAULTS,
        fault_args: &[],
        // A TEF client keeps its own transaction store (and resolves what it holds pending
        // itself); replacing or reinstalling one is not simulated.
        replacements: &[],
    },
    Driver {
        name: "nexo",
        start: |setup| Box::pin(Nexo::start(setup)),
        faults: NEXO_FAULTS,
        fault_args: NEXO_FAULT_ARGS,
        // An Adyen terminal's transactions are kept in Adyen's platform as well: a swapped or
        // reset one is settled there, which no simulator here can play honestly.
        replacements: &[],
    },
];

/// `posbridge simulate-terminal nexo` over TLS: an Adyen terminal in a process of its own,
/// which completes a sale whose register went away and tells it by `TransactionStatus`.
struct Nexo(NexoTerminal);

impl Nexo {
    async fn start(setup: Setup) -> Box<dyn TerminalUnderTest> {
        let args = setup.simulator_args();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Box::new(Nexo(NexoTerminal::start(&args).await))
    }
}

impl TerminalUnderTest for Nexo {
    fn configure(&self, options: Options) -> Options {
        Options {
            terminal_keys: Some(self.0.keys("test")),
            ..options
        }
    }

    fn record(&self, _daemon: &Daemon) -> TerminalRecord {
        TerminalRecord::from_nexo_record(&self.0.record_text())
    }

    fn logs(&self) -> String {
        self.0.logs()
    }
}

/// `posbridge simulate-terminal tef-dial`: a TEF client on two folders, in a process of its
/// own that answers (and holds the approval pending) while the daemon is down.
struct Tef(TefClient);

impl Tef {
    async fn start(setup: Setup) -> Box<dyn TerminalUnderTest> {
        let args = setup.simulator_args();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Box::new(Tef(TefClient::start(&args).await))
    }
}

impl TerminalUnderTest for Tef {
    fn configure(&self, options: Options) -> Options {
        Options {
            terminal_keys: Some(self.0.keys(2)),
            ..options
        }
    }

    fn record(&self, _daemon: &Daemon) -> TerminalRecord {
        TerminalRecord::from_tef_record(&self.0.record_text())
    }

    fn logs(&self) -> String {
        self.0.logs()
    }
}

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
    /// Always `Some` between calls (taken only to replace it).
    terminal: Option<ZvtTerminal>,
    approve_after_ms: u64,
    /// The record of every terminal that stood in the lane, the current one last.
    records: Vec<PathBuf>,
    /// The logs of the terminals replaced so far.
    earlier_logs: String,
    dir: tempfile::TempDir,
}

/// The identity of a swapped-in ZVT terminal (the simulator's default is 52500017).
const SWAPPED_TERMINAL_ID: &str = "52500099";

impl Zvt {
    async fn start(line: Line, setup: Setup) -> Box<dyn TerminalUnderTest> {
        let dir = tempfile::tempdir().expect("tempdir");
        let record = dir.path().join("zvt-record-0.jsonl");
        let mut args = Self::args(setup.approve_after_ms, &record);
        // A terminal in a store remembers an earlier sale; a reset one (below) remembers none.
        args.push("--in-use".to_string());
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
            terminal: Some(terminal),
            approve_after_ms: setup.approve_after_ms,
            records: vec![record],
            earlier_logs: String::new(),
            dir,
        })
    }

    fn args(approve_after_ms: u64, record: &std::path::Path) -> Vec<String> {
        vec![
            "--approve-after-ms".to_string(),
            approve_after_ms.to_string(),
            "--record".to_string(),
            record.display().to_string(),
        ]
    }

    fn terminal(&self) -> &ZvtTerminal {
        self.terminal.as_ref().expect("a ZVT terminal")
    }
}

impl TerminalUnderTest for Zvt {
    fn configure(&self, options: Options) -> Options {
        Options {
            zvt_transport: Some(self.terminal().transport.clone()),
            ..options
        }
    }

    fn record(&self, _daemon: &Daemon) -> TerminalRecord {
        let text: String = self
            .records
            .iter()
            .map(|path| std::fs::read_to_string(path).unwrap_or_default())
            .collect();
        TerminalRecord::from_zvt_record(&text)
    }

    fn logs(&self) -> String {
        format!("{}{}", self.earlier_logs, self.terminal().logs())
    }

    fn replace(&mut self, how: Replacement) -> Replacing<'_> {
        Box::pin(async move {
            let old = self.terminal.take().expect("a ZVT terminal");
            self.earlier_logs.push_str(&old.logs());
            self.earlier_logs
                .push_str(&format!("--- the terminal {how:?} ---\n"));
            let record = self
                .dir
                .path()
                .join(format!("zvt-record-{}.jsonl", self.records.len()));
            let mut args = Self::args(self.approve_after_ms, &record);
            if how == Replacement::Swapped {
                args.extend(["--terminal-id".to_string(), SWAPPED_TERMINAL_ID.to_string()]);
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            self.terminal = Some(old.replaced(&args).await);
            self.records.push(record);
        })
    }
}
