//! A terminal replaced while a sale is unresolved, on every driver that can simulate it
//! (`Driver::replacements`): the daemon is killed mid-sale, store IT swaps the terminal for
//! another or it is reset (its memory lost), the daemon comes back. The old terminal's record
//! holds the charge and the terminal now in the lane never saw the sale, so nothing can prove
//! it approved and denying it would hide a charge: the payment stays undefined with an alarm.
//! A clean sale on the new terminal approves, and every invariant holds against the records of
//! both terminals.

use std::time::Duration;

use serde_json::Value;

use crate::harness::*;
use crate::proof::crash_matrix::{approved_amount, run_all};
use crate::proof::drivers::{DRIVERS, Driver, Replacement, Setup};
use crate::proof::rig::Rig;
use crate::proof::{Seed, invariants, seeds_for, selected};

const LIMIT: Duration = Duration::from_secs(60);

async fn run_replacement(driver: &'static Driver, how: Replacement, mut seed: Seed) -> usize {
    // Long enough a sale that the kill lands before its result exists.
    let approve_after_ms = seed.between(1500, 3000);
    let setup = Setup {
        approve_after_ms,
        ..Setup::default()
    };
    let scenario = format!("the terminal {how:?} mid-sale");
    let mut rig = Rig::start(&scenario, driver, setup, Options::default(), seed.clone()).await;
    let id = format!("replaced-{}-{:x}", driver.name, seed.value & 0xffff_ffff);
    // The rig's terminals are in use (a ZVT one remembers an earlier sale); a fresh one reset
    // during its first sale is `zvt_recovery`'s case.
    let (value, minor) = approved_amount(&mut seed);
    let lost = create_body(
        &id,
        value,
        "Venda Direta Credito",
        &rig.receiver.url_for(&id),
    );
    let kill_ms = seed.between(100, approve_after_ms / 3);
    rig.kill_after_log("sale sent to the terminal", kill_ms, LIMIT);
    rig.pay_until_death(&lost, LIMIT).await;
    // The old terminal goes on with the sale without its register; its record says so (on a
    // serial line only once it gave up waiting for an acknowledgement).
    let deadline = tokio::time::Instant::now() + LIMIT;
    while rig
        .terminal
        .record(rig.daemon())
        .charges_of(&id, minor)
        .is_empty()
    {
        if tokio::time::Instant::now() > deadline {
            rig.fail("the old terminal's record never held the sale");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    rig.replace_terminal(how).await;
    // Until the daemon decides: a final answer would be a guess, an alarm naming it is right.
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        if let Some(answer) = rig.create(&lost).await
            && answer["status"] != "undefined"
        {
            rig.fail(&format!(
                "{id} answered {answer}, but no terminal can tell (the old one charged it)"
            ));
        }
        let alarmed = rig
            .daemon()
            .logs()
            .lines()
            .any(|l| l.contains("ALARM: the terminal can no longer tell") && l.contains(&id));
        if alarmed {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            rig.fail(&format!("{id}: no alarm within {LIMIT:?}"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The lane goes on with the new terminal.
    let next = clean_sale(&mut rig, &mut seed, &format!("{id}-next")).await;
    invariants::check_with_unresolved(&mut rig, &[next], &[lost]).await;
    rig.restarts
}

/// A sale that must approve; its Create body.
async fn clean_sale(rig: &mut Rig, seed: &mut Seed, id: &str) -> Value {
    let (value, _) = approved_amount(seed);
    let body = create_body(id, value, "Venda Direta Credito", &rig.receiver.url_for(id));
    let answer = rig.pay(&body, LIMIT).await;
    if answer["status"] != "approved" {
        rig.fail(&format!("a clean sale {id}: {answer}"));
    }
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminal_swapped_or_reset_mid_sale_leaves_it_unresolved_on_every_driver() {
    let mut cells = Vec::new();
    for (d, driver) in DRIVERS.iter().enumerate() {
        for (r, how) in driver.replacements.iter().enumerate() {
            for seed in seeds_for((2000 + d * 100 + r) as u64, 1) {
                let name = format!("{} × {how:?} (seed {:#x})", driver.name, seed.value);
                if selected(&name) {
                    cells.push((name, run_replacement(driver, *how, seed)));
                }
            }
        }
    }
    assert!(!cells.is_empty() || std::env::var("POSBRIDGE_PROOF_ONLY").is_ok());
    run_all(cells).await;
}
