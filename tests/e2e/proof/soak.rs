//! The soak: many payments through the whole flow, concurrently, with random outcomes, after-sale
//! operations, callback failures and kills; at the end every invariant holds for every payment,
//! and the daemon's memory, open files and database size grew no more than the data.
//!
//! CI runs a few hundred payments; by hand, one command for hours:
//! `POSBRIDGE_SOAK_PAYMENTS=20000 POSBRIDGE_SOAK_KILLS=200 cargo test --release --test e2e proof::soak -- --nocapture`

use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use crate::harness::*;
use crate::proof::drivers::{DRIVERS, Driver, Setup};
use crate::proof::rig::Rig;
use crate::proof::{Seed, invariants, scale, selected};

const BATCH: usize = 16;

/// What the daemon holds: resident memory, open files, database bytes (with its WAL).
#[derive(Debug, Clone, Copy)]
struct Footprint {
    rss_kib: u64,
    open_files: usize,
    database_bytes: u64,
}

fn footprint(daemon: &Daemon) -> Footprint {
    let pid = daemon.pid();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let open_files = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    let size = |suffix: &str| {
        std::fs::metadata(format!("{}{suffix}", daemon.db_path().display())).map_or(0, |m| m.len())
    };
    Footprint {
        rss_kib,
        open_files,
        database_bytes: size("") + size("-wal"),
    }
}

/// One payment through the POS flow on `gateway`, then perhaps an operation: every Create
/// answer seen, and whether the payment got a final one (false when the daemon died under it
/// or the time ran out: the soak finishes it after the restart).
async fn drive(gateway: Gateway, body: Value, then: Option<(String, Value)>) -> (Vec<Value>, bool) {
    let mut answers = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let done = loop {
        if Instant::now() > deadline {
            break false;
        }
        let Some((status, answer)) = gateway.try_post("/payments", &body).await else {
            break false;
        };
        if status != 200 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        answers.push(answer.clone());
        if answer["status"] != "undefined" {
            break true;
        }
        if answer["paymentAppData"]["appName"] == "vtex.terminal-connector-app" {
            let sent = reqwest::Client::new()
                .post(submit_url(&answer))
                .header("Content-Type", "text/plain")
                .body(json!({ "serialNumber": SERIAL }).to_string())
                .send()
                .await;
            if sent.is_err() {
                break false;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    if done && let Some((path, request)) = then {
        let _ = gateway.try_post(&path, &request).await;
    }
    (answers, done)
}

/// The soak on one row: the built-in simulator at CI size (or the row `POSBRIDGE_SOAK_DRIVER`
/// names, at the size asked for).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_soak_of_payments_with_faults_and_kills_keeps_every_invariant_and_does_not_grow() {
    let row = std::env::var("POSBRIDGE_SOAK_DRIVER").unwrap_or_else(|_| DRIVERS[0].name.into());
    let driver = DRIVERS
        .iter()
        .find(|d| d.name == row)
        .unwrap_or_else(|| panic!("POSBRIDGE_SOAK_DRIVER: no row `{row}`"));
    let payments = scale("POSBRIDGE_SOAK_PAYMENTS", 240) as usize;
    let kills = scale("POSBRIDGE_SOAK_KILLS", 4) as usize;
    soak(driver, payments, kills, Growth::Measured).await;
}

/// Every protocol simulator's row through a short soak (the invariants; too few payments to
/// measure growth — `POSBRIDGE_SOAK_DRIVER` runs a row at full size).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_soak_on_every_protocol_row_keeps_every_invariant() {
    for driver in DRIVERS.iter().skip(1) {
        if selected(driver.name) {
            soak(driver, 24, 1, Growth::NotMeasured).await;
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Growth {
    Measured,
    NotMeasured,
}

async fn soak(
    driver: &'static Driver,
    payments_wanted: usize,
    kills_wanted: usize,
    growth: Growth,
) {
    let mut seed = Seed::new(scale("POSBRIDGE_PROOF_SEED", 11) ^ 0x50a4);
    let setup = Setup {
        approve_after_ms: 50,
        ..Setup::default()
    };
    let mut rig = Rig::start("soak", driver, setup, Options::default(), seed.clone()).await;
    // The Gateway refuses callbacks now and then: the first ones outright.
    rig.receiver.fail_first_attempts(25);
    let batches = payments_wanted.div_ceil(BATCH);
    // Kills in the first two thirds; the last third, kill-free, is where growth is measured.
    let measured_from = batches * 2 / 3;
    // Spread out, so that each kill lands before the next is armed.
    let mut kill_batches: Vec<usize> = (1..=kills_wanted)
        .map(|k| k * measured_from / (kills_wanted + 1))
        .collect();
    kill_batches.dedup();
    let kills_planned = kill_batches.len();
    let mut bodies = Vec::new();
    let mut unfinished = Vec::new();
    let mut operations = 0;
    let mut before: Option<(Footprint, usize)> = None;
    let started = Instant::now();
    for batch in 0..batches {
        if batch == measured_from {
            before = Some((footprint(rig.daemon()), bodies.len()));
        }
        let gateway = rig.daemon().gateway();
        let mut tasks = Vec::new();
        for n in 0..BATCH {
            // Approved mostly; declined by the issuer, cancelled by the shopper, an approval
            // that ignores an abort, now and then.
            let cents = match seed.between(0, 9) {
                0 => 1,
                1 => 2,
                2 => 5,
                _ => seed.between(10, 99) as i64,
            };
            let minor = (batch * BATCH + n + 1) as i64 * 100 + cents;
            let id = format!("soak-{batch}-{n}");
            let body = create_body(
                &id,
                json!(minor as f64 / 100.0),
                "Venda Direta Credito",
                &rig.receiver.url_for(&id),
            );
            let then = match seed.between(0, 5) {
                0 => Some((
                    format!("/payments/{id}/cancellations"),
                    json!({ "requestId": "c" }),
                )),
                1 => Some((
                    format!("/payments/{id}/settlements"),
                    json!({ "requestId": "s", "value": (minor - 50) as f64 / 100.0 }),
                )),
                _ => None,
            };
            if then.is_some() {
                operations += 1;
            }
            bodies.push(body.clone());
            tasks.push((
                body.clone(),
                tokio::spawn(drive(gateway.clone(), body, then)),
            ));
        }
        while kill_batches.first() == Some(&batch) {
            kill_batches.remove(0);
            let needle = [
                "payment stored",
                "sale sent to the terminal",
                "terminal result recorded",
                "callback delivered",
            ][seed.between(0, 3) as usize];
            rig.kill_after_log(needle, seed.between(0, 100), Duration::from_secs(20));
        }
        for (body, task) in tasks {
            let (answers, done) = task.await.expect("join");
            for answer in &answers {
                rig.note_answer(answer);
            }
            if !done {
                unfinished.push(body);
            }
        }
        if rig.revive().await {
            // Whatever the kill interrupted is finished by the Gateway's next retries.
            for body in std::mem::take(&mut unfinished) {
                rig.pay(&body, Duration::from_secs(90)).await;
            }
        }
    }
    for body in std::mem::take(&mut unfinished) {
        rig.pay(&body, Duration::from_secs(90)).await;
    }
    let elapsed = started.elapsed();
    let settled_callbacks = rig
        .daemon()
        .wait_outbox_settled_all(Duration::from_secs(60))
        .await;
    let after = footprint(rig.daemon());
    invariants::check(&mut rig, &bodies).await;
    invariants::nothing_beyond_what_was_charged(&rig, &bodies);
    let (before, count_before) = before.expect("a measured tail");
    let tail_payments = (bodies.len() - count_before).max(1) as u64;
    let bytes_per_payment =
        after.database_bytes.saturating_sub(before.database_bytes) / tail_payments;
    eprintln!(
        "soak on {}: {} payments ({operations} with an operation), {} kills, {settled_callbacks} callbacks, in {elapsed:?}; \
         last third: RSS {} → {} KiB, open files {} → {}, database {} → {} bytes ({bytes_per_payment} bytes per payment)",
        driver.name,
        bodies.len(),
        rig.restarts,
        before.rss_kib,
        after.rss_kib,
        before.open_files,
        after.open_files,
        before.database_bytes,
        after.database_bytes,
    );
    assert_eq!(rig.restarts, kills_planned, "every planned kill happened");
    if growth == Growth::NotMeasured {
        return;
    }
    // No leak: open files stay within what pooled connections make come and go (CI saw 17 at
    // one sample and 31 at the next with nothing leaking); a leak grows with the payments,
    // a third of them here. Memory grows by no more than a few MiB over hundreds of payments
    // (allocator noise), whatever the number of payments.
    let tail = bodies.len() - count_before;
    assert!(
        after.open_files <= before.open_files + 24 && after.open_files < before.open_files + tail,
        "{before:?} → {after:?}"
    );
    assert!(
        after.rss_kib <= before.rss_kib + 16 * 1024,
        "{before:?} → {after:?}"
    );
    // The database grows by the payments' rows, not more: a few KiB each.
    assert!(
        bytes_per_payment < 64 * 1024,
        "{bytes_per_payment} bytes per payment"
    );
}
