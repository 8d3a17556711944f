//! Terminal faults, on every driver whose simulator can inject them (`Driver::faults`): the
//! faulted sale and a clean one after it (the lane goes on), every invariant at the end, and
//! the terminal's own log showing the fault was applied.
//! A terminal swapped between two sales or one that lost its memory cannot always tell what it
//! did: those end undefined with an alarm, proven in `replaced`.

use std::time::Duration;

use crate::harness::*;
use crate::proof::crash_matrix::{approved_amount, run_all};
use crate::proof::drivers::{DRIVERS, Driver, Setup};
use crate::proof::rig::Rig;
use crate::proof::{Seed, invariants, seeds_for, selected};

pub struct Fault {
    pub name: &'static str,
    /// The simulator's name for it (`Setup::faults`).
    pub kind: &'static str,
    /// More simulator arguments.
    pub args: &'static [&'static str],
}

pub const FAULTS: &[Fault] = &[
    Fault {
        name: "the line dropped mid-sale",
        kind: "drop-mid-sale",
        args: &[],
    },
    Fault {
        name: "garbage on the line",
        kind: "garbage",
        args: &[],
    },
    Fault {
        name: "a corrupted frame",
        kind: "bad-crc",
        args: &[],
    },
    Fault {
        name: "a NAK",
        kind: "nak-next",
        args: &[],
    },
    Fault {
        name: "a NAK storm",
        kind: "nak-storm",
        args: &[],
    },
    Fault {
        name: "a terminal that never completes",
        kind: "no-completion",
        args: &[],
    },
    // The harness gives the daemon ack_timeout_ms = 3000 and completion_timeout_s = 5 here
    // (ZVT); a row whose timeouts differ gives its own `--slow-ms` (`Driver::fault_args`).
    Fault {
        name: "a terminal slower than every timeout",
        kind: "slow",
        args: &["--slow-ms", "6000"],
    },
    // TEF: the client never takes the request; nexo: the connection closes before TLS.
    Fault {
        name: "an offline terminal that takes nothing",
        kind: "offline",
        args: &[],
    },
    // The daemon's tef-dial terminal has ack_timeout_s = 2 here.
    Fault {
        name: "a TEF client acknowledging after the timeout",
        kind: "slow-ack",
        args: &["--slow-ack-ms", "3500"],
    },
    Fault {
        name: "a TEF answer file that is not whole",
        kind: "garbage-answer",
        args: &[],
    },
    Fault {
        name: "an answer lost after the charge",
        kind: "drop-answer",
        args: &[],
    },
    Fault {
        name: "an answer failing its HMAC",
        kind: "bad-hmac",
        args: &[],
    },
    Fault {
        name: "an approval after the register gave up",
        kind: "late-approval",
        args: &["--late-approval-ms", "7000"],
    },
];

const FINAL: Duration = Duration::from_secs(120);

async fn run_fault(driver: &'static Driver, fault: &'static Fault, mut seed: Seed) -> usize {
    let setup = Setup {
        approve_after_ms: seed.between(300, 1200),
        faults: vec![fault.kind],
        args: driver
            .fault_args(fault.kind, fault.args)
            .iter()
            .map(|a| a.to_string())
            .collect(),
    };
    let options = Options {
        completion_timeout_s: 5,
        result_timeout_s: 20,
        ..Options::default()
    };
    let mut rig = Rig::start(fault.name, driver, setup, options, seed.clone()).await;
    let mut payments = Vec::new();
    for n in 0..2 {
        let (value, _) = approved_amount(&mut seed);
        let id = format!("fault-{}-{n}-{:x}", driver.name, seed.value & 0xffff_ffff);
        let body = create_body(
            &id,
            value,
            "Venda Direta Credito",
            &rig.receiver.url_for(&id),
        );
        rig.pay(&body, FINAL).await;
        payments.push(body);
    }
    invariants::check(&mut rig, &payments).await;
    // A simulator that ignored `--fault` would pass everything above: it must say it applied it.
    let applied = format!("fault {}", fault.kind);
    if !rig.terminal.logs().contains(&applied) {
        rig.fail(&format!(
            "the terminal never logged `{applied}`: the fault was not applied"
        ));
    }
    0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_terminal_fault_on_every_driver_keeps_every_invariant() {
    let mut cells = Vec::new();
    for (d, driver) in DRIVERS.iter().enumerate() {
        for (f, fault) in FAULTS.iter().enumerate() {
            if !driver.faults.contains(&fault.kind) {
                continue;
            }
            for seed in seeds_for((1000 + d * 100 + f) as u64, 1) {
                let name = format!("{} × {} (seed {:#x})", driver.name, fault.name, seed.value);
                if selected(&name) {
                    cells.push((name, run_fault(driver, fault, seed)));
                }
            }
        }
    }
    assert!(!cells.is_empty() || std::env::var("POSBRIDGE_PROOF_ONLY").is_ok());
    run_all(cells).await;
}
