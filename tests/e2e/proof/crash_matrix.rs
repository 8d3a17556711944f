//! The crash matrix: the daemon SIGKILLed at every step of a payment, on every driver, with
//! randomized timings (how long a sale takes, when the kill lands, how long the daemon stays
//! down while the terminal goes on). Every cell ends with every invariant holding.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::*;
use crate::proof::drivers::{DRIVERS, Driver, Setup};
use crate::proof::rig::Rig;
use crate::proof::{Seed, invariants, seeds_for, selected};

/// How the daemon dies.
#[derive(Debug, Clone, Copy)]
pub enum Kill {
    /// At a failpoint (src/failpoint.rs): exactly between two steps.
    At(&'static str),
    /// SIGKILL from outside, a seeded delay (up to the sale's duration) after a log line.
    AfterLog(&'static str),
}

/// What the Gateway does after the payment is final.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Then {
    Nothing,
    /// Cancel the approved payment: a reversal on the terminal.
    Cancel,
    /// Settle for less: the difference returned on the terminal.
    PartialSettle,
    /// Settle, then refund part of it on the terminal.
    Refund,
}

pub struct Step {
    pub name: &'static str,
    pub kill: Kill,
    pub then: Then,
}

/// A timed kill lands anywhere in a window: it gets this many more timings than a failpoint.
const TIMED_KILL_TIMINGS: usize = 4;

/// Every step of a payment where the daemon may die.
pub const STEPS: &[Step] = &[
    Step {
        name: "after the first Create is stored",
        kill: Kill::At("after-payment-stored"),
        then: Then::Nothing,
    },
    Step {
        name: "after binding",
        kill: Kill::At("after-bind"),
        then: Then::Nothing,
    },
    Step {
        name: "after the charge is queued",
        kill: Kill::At("after-charge-queued"),
        then: Then::Nothing,
    },
    Step {
        name: "after the sale is marked sent",
        kill: Kill::At("after-sale-marked-sent"),
        then: Then::Nothing,
    },
    Step {
        name: "right after the charge intent is journaled",
        kill: Kill::At("after-charge-intent"),
        then: Then::Nothing,
    },
    Step {
        name: "while the terminal works",
        kill: Kill::AfterLog("sale sent to the terminal"),
        then: Then::Nothing,
    },
    Step {
        name: "after the terminal's result, before its commit",
        kill: Kill::At("after-terminal-result"),
        then: Then::Nothing,
    },
    Step {
        name: "after the commit, before the callback",
        kill: Kill::At("after-result-committed"),
        then: Then::Nothing,
    },
    Step {
        name: "mid-callback (delivered, not yet marked)",
        kill: Kill::At("after-callback-delivered"),
        then: Then::Nothing,
    },
    Step {
        name: "during a reversal (sent)",
        kill: Kill::At("after-operation-sent"),
        then: Then::Cancel,
    },
    Step {
        name: "during a reversal (done, not stored)",
        kill: Kill::At("after-operation-result"),
        then: Then::Cancel,
    },
    Step {
        name: "during a settle",
        kill: Kill::At("after-operation-result"),
        then: Then::PartialSettle,
    },
    Step {
        name: "during a refund",
        kill: Kill::At("after-operation-result"),
        then: Then::Refund,
    },
];

const FINAL: Duration = Duration::from_secs(90);

/// An amount the simulators approve in normal time (cents .01–.07 mean faults), unique per
/// seed, so that a protocol without references (ZVT) still tells payments apart.
pub fn approved_amount(seed: &mut Seed) -> (Value, i64) {
    let minor = (seed.between(10, 899) * 100 + seed.between(10, 99)) as i64;
    (json!(minor as f64 / 100.0), minor)
}

/// One cell: a payment through the whole flow with the daemon killed at `step`.
pub async fn run_cell(driver: &'static Driver, step: &'static Step, mut seed: Seed) -> usize {
    let approve_after_ms = seed.between(300, 2500);
    let setup = Setup {
        approve_after_ms,
        ..Setup::default()
    };
    let options = Options {
        failpoint: match step.kill {
            Kill::At(name) => Some(name),
            Kill::AfterLog(_) => None,
        },
        ..Options::default()
    };
    let mut rig = Rig::start(step.name, driver, setup, options, seed.clone()).await;
    if let Kill::AfterLog(needle) = step.kill {
        // Mostly while the sale still runs, sometimes as it completes.
        let delay = seed.between(0, approve_after_ms * 2 / 3);
        rig.kill_after_log(needle, delay, Duration::from_secs(30));
    }
    let (value, minor) = approved_amount(&mut seed);
    let id = format!("crash-{}-{:x}", driver.name, seed.value & 0xffff_ffff);
    let body = create_body(
        &id,
        value,
        "Venda Direta Credito",
        &rig.receiver.url_for(&id),
    );
    let answer = rig.pay(&body, FINAL).await;
    let approved = answer["status"] == "approved";
    match step.then {
        Then::Nothing => {}
        _ if !approved => rig.fail(&format!("the sale was not approved: {answer}")),
        Then::Cancel => {
            rig.operation(
                &format!("/payments/{id}/cancellations"),
                &json!({ "requestId": "cancel-1" }),
                &[501],
                FINAL,
            )
            .await;
        }
        Then::PartialSettle => {
            let value = (minor - 100) as f64 / 100.0;
            rig.operation(
                &format!("/payments/{id}/settlements"),
                &json!({ "requestId": "settle-1", "value": value }),
                &[501],
                FINAL,
            )
            .await;
        }
        Then::Refund => {
            let path = format!("/payments/{id}/settlements");
            let settle = json!({ "requestId": "settle-1", "value": minor as f64 / 100.0 });
            rig.operation(&path, &settle, &[], FINAL).await;
            let refund = json!({ "requestId": "refund-1", "value": 1.0 });
            rig.operation(&format!("/payments/{id}/refunds"), &refund, &[501], FINAL)
                .await;
        }
    }
    if rig.restarts == 0 {
        // The step may still come (a callback is delivered after the answer); a step never
        // reached proves nothing: the matrix must kill.
        if !rig.await_death(Duration::from_secs(20)).await {
            rig.fail("the daemon was never killed: the step was never reached");
        }
        rig.revive().await;
    }
    invariants::check(&mut rig, &[body]).await;
    rig.restarts
}

/// Runs `cells` with a few at a time (each is a daemon and a terminal, mostly waiting) and
/// fails with every failed cell's report, not only the first.
pub async fn run_all<F>(cells: Vec<(String, F)>) -> usize
where
    F: std::future::Future<Output = usize> + Send + 'static,
{
    let permits = Arc::new(tokio::sync::Semaphore::new(4));
    let mut tasks = Vec::new();
    for (name, cell) in cells {
        let permits = permits.clone();
        tasks.push((
            name,
            tokio::spawn(async move {
                let _permit = permits.acquire_owned().await.expect("semaphore");
                cell.await
            }),
        ));
    }
    let mut failures = Vec::new();
    let mut kills = 0;
    let count = tasks.len();
    for (name, task) in tasks {
        match task.await {
            Ok(n) => kills += n,
            Err(e) => {
                let why = e.try_into_panic().map_or_else(
                    |e| e.to_string(),
                    |p| {
                        p.downcast_ref::<String>()
                            .cloned()
                            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_default()
                    },
                );
                failures.push(format!("=== {name}\n{why}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {count} cells failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    eprintln!("proof: {count} cells, {kills} kills, every invariant held");
    kills
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_driver_killed_at_every_step_keeps_every_invariant() {
    let mut cells = Vec::new();
    for (d, driver) in DRIVERS.iter().enumerate() {
        for (s, step) in STEPS.iter().enumerate() {
            let timings = match step.kill {
                Kill::At(_) => 1,
                Kill::AfterLog(_) => TIMED_KILL_TIMINGS,
            };
            for seed in seeds_for((d * 100 + s) as u64, timings) {
                let name = format!("{} × {} (seed {:#x})", driver.name, step.name, seed.value);
                if selected(&name) {
                    cells.push((name, run_cell(driver, step, seed)));
                }
            }
        }
    }
    run_all(cells).await;
}
