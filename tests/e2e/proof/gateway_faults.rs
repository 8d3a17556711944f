//! Gateway faults: a callback target refusing, hanging past the timeout, or answering slowly;
//! Create, cancel, settle and refund repeated concurrently and out of order, with and without
//! kills. (A Gateway answering 500 for an hour is proven on a paused clock in `outbox`'s
//! unit tests.) The callback path does not depend on the terminal: those run on the built-in
//! simulator. The concurrent requests do reach it (reversals racing settlements and refunds):
//! every protocol row also goes through that storm once, with kills.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::*;
use crate::proof::crash_matrix::{approved_amount, run_all};
use crate::proof::drivers::{DRIVERS, Driver, Setup};
use crate::proof::rig::Rig;
use crate::proof::{Seed, invariants, scale, selected};

const FINAL: Duration = Duration::from_secs(60);

async fn simulator_rig(scenario: &str, seed: Seed) -> Rig {
    let driver = &DRIVERS[0];
    assert_eq!(driver.name, "simulator");
    rig_on(driver, scenario, seed).await
}

async fn rig_on(driver: &Driver, scenario: &str, seed: Seed) -> Rig {
    let setup = Setup {
        approve_after_ms: 300,
        ..Setup::default()
    };
    Rig::start(scenario, driver, setup, Options::default(), seed).await
}

fn credit(rig: &Rig, id: &str, value: Value) -> Value {
    create_body(id, value, "Venda Direta Credito", &rig.receiver.url_for(id))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_gateway_gets_the_callback_once_it_listens() {
    let mut seed = Seed::new(scale("POSBRIDGE_PROOF_SEED", 11) ^ 0x6a7e);
    let mut rig = simulator_rig("a refusing Gateway", seed.clone()).await;
    // Nothing listens where the callback goes until the receiver comes up there.
    let port = rig.receiver.port();
    rig.receiver.stop();
    let (value, _) = approved_amount(&mut seed);
    let body = credit(&rig, "gw-refused", value);
    rig.pay(&body, FINAL).await;
    let refused = rig
        .daemon()
        .wait_log("callback failed; will retry", Duration::from_secs(20))
        .await;
    assert!(refused, "the callback was never attempted");
    rig.receiver = CallbackReceiver::start_on(port).await;
    invariants::check(&mut rig, &[body]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_that_hangs_past_the_timeout_is_tried_again() {
    let mut seed = Seed::new(scale("POSBRIDGE_PROOF_SEED", 11) ^ 0x4a46);
    let mut rig = simulator_rig("a hanging Gateway", seed.clone()).await;
    // The daemon gives a callback request 2 s; the first two answers take 4 s.
    rig.receiver.hang_first(2, Duration::from_secs(4));
    let (value, _) = approved_amount(&mut seed);
    let body = credit(&rig, "gw-hang", value);
    rig.pay(&body, FINAL).await;
    let rows = rig
        .daemon()
        .wait_outbox_settled("gw-hang", Duration::from_secs(40))
        .await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].0, "delivered", "{rows:?}");
    assert!(rows[0].1 >= 3, "two timeouts, then delivered: {rows:?}");
    invariants::check(&mut rig, &[body]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_gateway_within_the_timeout_gets_each_callback_once() {
    let mut seed = Seed::new(scale("POSBRIDGE_PROOF_SEED", 11) ^ 0x5107);
    let mut rig = simulator_rig("a slow Gateway", seed.clone()).await;
    rig.receiver
        .hang_first(usize::MAX, Duration::from_millis(1_200));
    let mut payments = Vec::new();
    for n in 0..3 {
        let (value, _) = approved_amount(&mut seed);
        let body = credit(&rig, &format!("gw-slow-{n}"), value);
        rig.pay(&body, FINAL).await;
        payments.push(body);
    }
    for n in 0..3 {
        let rows = rig
            .daemon()
            .wait_outbox_settled(&format!("gw-slow-{n}"), Duration::from_secs(30))
            .await;
        assert_eq!(
            rows.iter().map(|r| (r.0.as_str(), r.1)).collect::<Vec<_>>(),
            [("delivered", 1)],
            "a slow 200 is one delivery, never a retry"
        );
    }
    invariants::check(&mut rig, &payments).await;
}

/// Every request of a payment's life, fired at once and in a shuffled order, each several
/// times (the same requestId, as the Gateway retries), while the daemon may be killed.
async fn storm(driver: &'static Driver, mut seed: Seed, kills: usize) -> usize {
    let scenario = format!("concurrent requests, {kills} kills");
    let mut rig = rig_on(driver, &scenario, seed.clone()).await;
    let mut payments = Vec::new();
    for n in 0..4 {
        let (value, minor) = approved_amount(&mut seed);
        let id = format!(
            "storm-{}-{kills}-{n}-{:x}",
            driver.name,
            seed.value & 0xffff
        );
        payments.push((credit(&rig, &id, value), id, minor));
    }
    // Creates, all at once, several times each: the Gateway and the wait app polling.
    for round in 0..2 {
        let gateway = rig.daemon().gateway();
        let mut burst = Vec::new();
        for (body, _, _) in &payments {
            for _ in 0..3 {
                let (gateway, body) = (gateway.clone(), body.clone());
                burst.push(tokio::spawn(async move {
                    gateway.try_post("/payments", &body).await
                }));
            }
        }
        if round == 0 && kills > 0 {
            rig.kill_after_log(
                "payment stored",
                seed.between(0, 40),
                Duration::from_secs(10),
            );
        }
        for task in burst {
            if let Ok(Some((200, answer))) = task.await {
                rig.note_answer(&answer);
            }
        }
        rig.revive().await;
    }
    for (body, _, _) in &payments {
        rig.pay(body, FINAL).await;
    }
    // Cancel, settle (whole or part) and refund, shuffled, fired together, three times each.
    let mut requests: Vec<(String, Value)> = Vec::new();
    for (_, id, minor) in &payments {
        let settle = if seed.chance(50) { *minor } else { minor - 100 };
        requests.push((
            format!("/payments/{id}/cancellations"),
            json!({ "requestId": "c1" }),
        ));
        requests.push((
            format!("/payments/{id}/settlements"),
            json!({ "requestId": "s1", "value": settle as f64 / 100.0 }),
        ));
        requests.push((
            format!("/payments/{id}/refunds"),
            json!({ "requestId": "r1", "value": 1.0 }),
        ));
    }
    for i in (1..requests.len()).rev() {
        let j = seed.between(0, i as u64) as usize;
        requests.swap(i, j);
    }
    let gateway = rig.daemon().gateway();
    let mut burst = Vec::new();
    for (path, body) in requests
        .iter()
        .chain(requests.iter())
        .chain(requests.iter())
    {
        let (gateway, path, body) = (gateway.clone(), path.clone(), body.clone());
        let pause = Duration::from_millis(seed.between(0, 300));
        burst.push(tokio::spawn(async move {
            tokio::time::sleep(pause).await;
            gateway.try_post(&path, &body).await
        }));
    }
    if kills > 1 {
        rig.kill_after_log("sale", seed.between(0, 200), Duration::from_secs(5));
    }
    for task in burst {
        let _ = task.await;
    }
    rig.revive().await;
    // Every request repeated until its answer is final; a replay answers the same.
    for (path, body) in &requests {
        let first = rig.operation(path, body, &[400, 409, 501], FINAL).await;
        let again = rig.operation(path, body, &[400, 409, 501], FINAL).await;
        if first != again {
            rig.fail(&format!("{path} answered\n{first:?}\nthen\n{again:?}"));
        }
    }
    let bodies: Vec<Value> = payments.into_iter().map(|(body, _, _)| body).collect();
    invariants::check(&mut rig, &bodies).await;
    invariants::nothing_beyond_what_was_charged(&rig, &bodies);
    rig.restarts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_out_of_order_requests_with_and_without_kills_keep_every_invariant() {
    let first = scale("POSBRIDGE_PROOF_SEED", 11);
    let cells = (0..3)
        .map(|kills| {
            let seed = Seed::new(first ^ (0x5707 + kills as u64));
            (
                format!("storm with {kills} kills (seed {:#x})", seed.value),
                storm(&DRIVERS[0], seed, kills),
            )
        })
        .collect();
    run_all(cells).await;
}

/// The storm once on every protocol simulator's row, with both kills (the built-in simulator
/// goes through every variant above).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_out_of_order_requests_on_every_protocol_row_keep_every_invariant() {
    let first = scale("POSBRIDGE_PROOF_SEED", 11);
    let cells: Vec<_> = DRIVERS
        .iter()
        .enumerate()
        .skip(1)
        .filter(|(_, driver)| selected(driver.name))
        .map(|(d, driver)| {
            let seed = Seed::new(first ^ (0x5707_0000 + d as u64));
            (
                format!(
                    "{} × storm with 2 kills (seed {:#x})",
                    driver.name, seed.value
                ),
                storm(driver, seed, 2),
            )
        })
        .collect();
    run_all(cells).await;
}
