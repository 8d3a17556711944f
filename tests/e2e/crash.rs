//! SIGKILL at the worst moments: nothing answered is forgotten, nothing is charged twice,
//! every pending callback is still delivered.

use std::time::Duration;

use serde_json::json;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_during_a_slow_sale_recovers_the_approval_with_one_charge() {
    let daemon = Daemon::start(Options::default()).await;
    let receiver = CallbackReceiver::start(0).await;
    let gateway = daemon.gateway();
    let body = create_body(
        "pay-kill",
        json!(10.04),
        "Venda Direta Credito",
        &receiver.url_for("pay-kill"),
    );
    start_charge(&gateway, &body).await;
    assert!(
        daemon
            .wait_log("sale sent to the terminal", Duration::from_secs(10))
            .await
    );
    // The terminal keeps working while posbridge is dead.
    let daemon = daemon.restart().await;
    let gateway = daemon.gateway();
    assert!(
        daemon
            .logs()
            .contains("resuming: asking the terminal what happened")
    );
    let answer = gateway.create(&body).await;
    assert_eq!(answer["status"], "undefined", "still charging: {answer}");
    let done = gateway.poll_final(&body, Duration::from_secs(40)).await;
    assert_eq!(
        done["status"], "approved",
        "recovery must find the approval, not assume a decline"
    );
    assert_eq!(daemon.charges_of("pay-kill"), 1);
    let callbacks = receiver.wait_for("pay-kill", Duration::from_secs(20)).await;
    assert_eq!(callbacks.len(), 1);
    assert_eq!(callbacks[0].2, done);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_the_approval_before_the_commit_recovers_it() {
    let daemon = Daemon::start(Options {
        failpoint: Some("after-terminal-result"),
        ..Options::default()
    })
    .await;
    let receiver = CallbackReceiver::start(0).await;
    let gateway = daemon.gateway();
    let body = create_body(
        "pay-fp",
        json!(42),
        "Venda Direta Credito",
        &receiver.url_for("pay-fp"),
    );
    start_charge(&gateway, &body).await;
    let mut daemon = daemon;
    let status = daemon.wait_exit(Duration::from_secs(20)).await;
    assert!(
        status.is_some_and(|s| !s.success()),
        "the failpoint kills the daemon"
    );
    assert!(daemon.logs().contains("failpoint after-terminal-result"));
    let daemon = daemon.restart().await;
    let done = daemon
        .gateway()
        .poll_final(&body, Duration::from_secs(30))
        .await;
    assert_eq!(done["status"], "approved");
    assert_eq!(daemon.charges_of("pay-fp"), 1);
    assert_eq!(
        receiver
            .wait_for("pay-fp", Duration::from_secs(20))
            .await
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_with_a_callback_pending_delivers_it_after_restart() {
    let daemon = Daemon::start(Options::default()).await;
    let receiver = CallbackReceiver::start(0).await;
    receiver.fail_always();
    let gateway = daemon.gateway();
    let body = create_body(
        "pay-cb",
        json!(15),
        "Venda Direta Credito",
        &receiver.url_for("pay-cb"),
    );
    start_charge(&gateway, &body).await;
    let done = gateway.poll_final(&body, Duration::from_secs(30)).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while receiver.attempts() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the callback was never attempted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let daemon = daemon.restart().await;
    receiver.succeed_from_now();
    let callbacks = receiver.wait_for("pay-cb", Duration::from_secs(20)).await;
    assert_eq!(callbacks.len(), 1, "delivered after the restart");
    assert_eq!(callbacks[0].2, done);
    assert_eq!(
        daemon.gateway().create(&body).await,
        done,
        "nothing answered is forgotten"
    );
    assert_eq!(daemon.charges_of("pay-cb"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_gateway_gets_the_callback_on_retry() {
    let daemon = Daemon::start(Options::default()).await;
    let receiver = CallbackReceiver::start(2).await;
    let gateway = daemon.gateway();
    let body = create_body(
        "pay-retry",
        json!(9.99),
        "Venda Direta Credito",
        &receiver.url_for("pay-retry"),
    );
    start_charge(&gateway, &body).await;
    let done = gateway.poll_final(&body, Duration::from_secs(30)).await;
    let callbacks = receiver
        .wait_for("pay-retry", Duration::from_secs(30))
        .await;
    assert_eq!(callbacks.len(), 1);
    assert_eq!(callbacks[0].2, done);
    assert_eq!(
        receiver.attempts(),
        3,
        "two failures, then delivered, then never again"
    );
    assert!(daemon.logs().contains("callback failed; will retry"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_online_backup_restores_every_answer() {
    let daemon = Daemon::start(Options::default()).await;
    let receiver = CallbackReceiver::start(0).await;
    let gateway = daemon.gateway();
    let body = create_body(
        "pay-bak",
        json!(21),
        "Venda Direta Credito",
        &receiver.url_for("pay-bak"),
    );
    start_charge(&gateway, &body).await;
    let done = gateway.poll_final(&body, Duration::from_secs(30)).await;
    let backup = daemon.dir().join("backup.db");
    daemon.backup_to(&backup);
    // Restore: stop, put the copy in place, start again.
    let mut daemon = daemon;
    daemon.kill();
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", daemon.db_path().display()));
    }
    std::fs::copy(&backup, daemon.db_path()).expect("restore");
    let daemon = daemon.restart().await;
    assert_eq!(
        daemon.gateway().create(&body).await,
        done,
        "the restored database answers the same"
    );
}
