//! ZVT recovery that never reports a guess (issue 8 #1–#3): a sale the terminal may still
//! complete is aborted or waited for before it is called never done; a swapped or reset
//! terminal keeps the payment undefined with an alarm instead of denying it; a lane waiting on
//! an unresolved sale says so; an approval found late is reversed.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::*;
use crate::zvt::{ZvtTerminal, daemon_for};

const FINAL: Duration = Duration::from_secs(40);

fn credit(id: &str, value: Value, receiver: &CallbackReceiver) -> Value {
    create_body(id, value, "Venda Direta Credito", &receiver.url_for(id))
}

/// Starts the charge and kills posbridge while the terminal works on it; a new posbridge
/// comes up on the same database and journal.
pub async fn kill_mid_sale(daemon: Daemon, body: &Value) -> Daemon {
    start_charge(&daemon.gateway(), body).await;
    assert!(
        daemon
            .wait_log("sale sent to the terminal", Duration::from_secs(10))
            .await
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    let mut daemon = daemon;
    daemon.kill();
    daemon
}

/// #1: posbridge dies while the sale is at the PIN pad; the terminal goes on with it. On
/// restart Repeat Receipt still shows the transaction before: that proves nothing while the
/// terminal may still complete the sale, so posbridge waits and reports what it did.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sale_the_terminal_may_still_complete_is_waited_for_not_denied() {
    let terminal = ZvtTerminal::tcp(&["--approve-after-ms", "4000"]).await;
    let daemon = daemon_for(&terminal, Options::default()).await;
    let receiver = CallbackReceiver::start(0).await;
    let body = credit("zr-wait", json!(21), &receiver);
    let daemon = kill_mid_sale(daemon, &body).await.restart().await;
    let done = daemon.gateway().poll_final(&body, FINAL).await;
    assert_eq!(
        done["status"],
        "approved",
        "the terminal approved it: {done}\n{}\n{}",
        terminal.logs(),
        daemon.logs()
    );
    assert_eq!(terminal.sales(), 1);
    assert_eq!(receiver.wait_for("zr-wait", FINAL).await[0].2, done);
}

/// #1: the same, but the Gateway cancels while posbridge recovers: the terminal is told to
/// abort the sale it still runs (`06 B0`), and only once it accepted is the sale never done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_during_recovery_aborts_the_running_sale_before_it_is_called_never_done() {
    let terminal = ZvtTerminal::tcp(&["--approve-after-ms", "6000"]).await;
    let daemon = daemon_for(&terminal, Options::default()).await;
    let receiver = CallbackReceiver::start(0).await;
    let body = credit("zr-abort", json!(22), &receiver);
    let daemon = kill_mid_sale(daemon, &body).await.restart().await;
    let gateway = daemon.gateway();
    let cancelled = gateway.cancel_until_done("zr-abort", "c").await;
    assert!(cancelled["cancellationId"].is_string());
    let logs = terminal.logs();
    assert!(logs.contains("06 B0 aborts the orphaned sale"), "{logs}");
    let done = gateway.create(&body).await;
    assert_eq!(done["status"], "denied", "{done}");
    // After the sale's time, the terminal still has not charged it.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let next = pay(&daemon, &receiver, "zr-after-abort", json!(23)).await;
    assert_eq!(next["status"], "approved");
    assert!(
        !terminal.logs().contains("orphaned sale completes"),
        "{}",
        terminal.logs()
    );
}

/// #1: a sale declared never done (its time was over and the terminal did not have it) that
/// the terminal approves after all: found before the next sale, reversed at once, alarmed;
/// the payment's denied answer never changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_found_after_the_sale_was_declared_never_done_is_reversed() {
    // A terminal in use: on one that remembers no transaction at all, the sale's time being
    // over proves nothing (a reset would look the same).
    let terminal = ZvtTerminal::tcp(&[
        "--in-use",
        "--approve-after-ms",
        "300",
        "--fault",
        "late-approval",
        "--late-approval-ms",
        "9000",
    ])
    .await;
    let daemon = daemon_for(
        &terminal,
        Options {
            result_timeout_s: 4,
            admin: true,
            ..Options::default()
        },
    )
    .await;
    let receiver = CallbackReceiver::start(0).await;
    let late = credit("zr-late", json!(30), &receiver);
    let sent = tokio::time::Instant::now();
    let daemon = kill_mid_sale(daemon, &late).await.restart().await;
    let gateway = daemon.gateway();
    let denied = gateway.poll_final(&late, FINAL).await;
    assert_eq!(denied["status"], "denied", "{denied}");
    assert_eq!(denied["code"], "no-transaction");
    // The terminal approves it at 9 s; the next sale finds it first.
    tokio::time::sleep_until(sent + Duration::from_secs(10)).await;
    let next = pay(&daemon, &receiver, "zr-next", json!(31)).await;
    assert_eq!(next["status"], "approved", "{next}");
    assert!(
        daemon
            .wait_log("reversal done on the terminal payment_id=zr-late", FINAL)
            .await,
        "{}\n{}",
        daemon.logs(),
        terminal.logs()
    );
    assert!(terminal.logs().contains("ZVT simulator: reversed"));
    assert_eq!(
        gateway.create(&late).await,
        denied,
        "the answer never changes"
    );
    let callbacks = receiver.for_payment("zr-late");
    assert_eq!(callbacks.len(), 1);
    assert_eq!(callbacks[0].2, denied);
    let (code, report) = daemon.alarms();
    assert_eq!(code, Some(1));
    assert!(report.contains("zr-late"), "{report}");
}

/// #2: store IT swaps the lane's terminal (same address) while posbridge is stopped; the new
/// terminal's first sale has the trace number of the old one's last. posbridge reads the new
/// terminal on connecting, so a sale whose completion is lost is still recognised.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swapped_terminal_is_read_again_and_its_sale_recognised() {
    let old = ZvtTerminal::tcp(&[]).await;
    let port = old.port();
    let mut daemon = daemon_for(&old, Options::default()).await;
    let receiver = CallbackReceiver::start(0).await;
    assert_eq!(
        pay(&daemon, &receiver, "zr-old", json!(10)).await["status"],
        "approved"
    );
    daemon.signal("TERM");
    assert!(daemon.wait_exit(Duration::from_secs(20)).await.is_some());
    drop(old);
    let new = ZvtTerminal::tcp_at(
        port,
        &["--terminal-id", "52500099", "--fault", "drop-mid-sale"],
    )
    .await;
    let daemon = daemon.restart().await;
    let done = pay(&daemon, &receiver, "zr-new", json!(20)).await;
    assert_eq!(
        done["status"],
        "approved",
        "{done}\n{}\n{}",
        new.logs(),
        daemon.logs()
    );
    assert_eq!(new.sales(), 1);
}

/// #2/#3: the terminal is replaced by one with no memory while a sale is unresolved: the
/// payment stays undefined with an alarm (never denied, never called back), `posbridge
/// alarms` names it, and the lane goes on. Over TCP and over a serial line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminal_that_lost_its_memory_leaves_the_payment_unresolved_not_denied() {
    let terminal = ZvtTerminal::tcp(&["--approve-after-ms", "3000"]).await;
    a_terminal_that_lost_its_memory(terminal, SaleBefore::Yes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminal_on_a_serial_line_that_lost_its_memory_leaves_the_payment_unresolved() {
    let terminal = ZvtTerminal::pty(&["--approve-after-ms", "3000"]).await;
    a_terminal_that_lost_its_memory(terminal, SaleBefore::Yes).await;
}

/// The same on a fresh terminal, reset during its very first sale: it remembered nothing
/// before and remembers nothing now, whether the sale never reached it or it charged the sale
/// and was reset since. The sale's time being over proves nothing here: no guess.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_terminal_reset_during_its_first_sale_leaves_it_unresolved_not_denied() {
    let terminal = ZvtTerminal::tcp(&["--approve-after-ms", "2000"]).await;
    a_terminal_that_lost_its_memory(terminal, SaleBefore::No).await;
}

#[derive(PartialEq)]
enum SaleBefore {
    Yes,
    No,
}

async fn a_terminal_that_lost_its_memory(old: ZvtTerminal, sale_before: SaleBefore) {
    let transport = old.transport.clone();
    let daemon = daemon_for(
        &old,
        Options {
            admin: true,
            // Without a sale before, only the sale's time being over ends the asking.
            result_timeout_s: 8,
            ..Options::default()
        },
    )
    .await;
    let receiver = CallbackReceiver::start(0).await;
    if sale_before == SaleBefore::Yes {
        assert_eq!(
            pay(&daemon, &receiver, "zr-before", json!(10)).await["status"],
            "approved",
            "{transport}"
        );
    }
    let lost = credit("zr-lost", json!(40), &receiver);
    let daemon = kill_mid_sale(daemon, &lost).await;
    // The same terminal after a reset: same ID, same address, nothing in memory.
    let reset = old.replaced(&["--approve-after-ms", "300"]).await;
    let daemon = daemon.restart().await;
    assert!(
        daemon
            .wait_log("ALARM: the terminal can no longer tell", FINAL)
            .await,
        "{transport}\n{}",
        daemon.logs()
    );
    let gateway = daemon.gateway();
    let (code, report) = daemon.alarms();
    assert_eq!(code, Some(1), "{transport}: {report}");
    assert!(
        report.contains("zr-lost") && report.contains("reset or replaced"),
        "{transport}: {report}"
    );
    // The lane is not locked behind it.
    let next = pay(&daemon, &receiver, "zr-after", json!(12)).await;
    assert_eq!(
        next["status"],
        "approved",
        "{transport}: {next}\n{}",
        reset.logs()
    );
    // Still undefined after a later sale went through: no guess was made meanwhile.
    let answer = gateway.create(&lost).await;
    assert_eq!(answer["status"], "undefined", "{transport}: {answer}");
    // The later sale's callback came (the receiver is fine): none for the unresolved one.
    assert_eq!(receiver.wait_for("zr-after", FINAL).await.len(), 1);
    assert!(
        receiver.for_payment("zr-lost").is_empty(),
        "{transport}: nothing reported on a guess"
    );
    assert_eq!(
        reset.sales(),
        1,
        "{transport}: only the later sale was charged"
    );
}

/// #3: while a sale cannot be resolved yet (the terminal does not answer), the lane says it
/// is blocked and why: `terminals list`, the status page's JSON and the metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lane_waiting_on_an_unresolved_sale_shows_as_blocked() {
    let terminal = ZvtTerminal::tcp(&["--approve-after-ms", "3000"]).await;
    let daemon = daemon_for(
        &terminal,
        Options {
            admin: true,
            ..Options::default()
        },
    )
    .await;
    let receiver = CallbackReceiver::start(0).await;
    let body = credit("zr-block", json!(15), &receiver);
    let daemon = kill_mid_sale(daemon, &body).await;
    terminal.signal("STOP");
    let daemon = daemon.restart().await;
    let deadline = tokio::time::Instant::now() + FINAL;
    let listed = loop {
        let (code, out) = daemon.terminals_cli(&["list", "--json"]);
        assert_eq!(code, Some(0), "{out}");
        if out.contains("\"blocked\":true") {
            break out;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never shown blocked: {out}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(
        listed.contains("\"blockedBy\":\"zr-block\"") && listed.contains("cannot tell yet"),
        "{listed}"
    );
    let metrics = daemon.admin_get("/metrics").await;
    assert!(
        metrics.contains("posbridge_terminal_blocked{terminal=\"lane-1\",protocol=\"zvt\"} 1"),
        "{metrics}"
    );
    terminal.signal("CONT");
    let done = daemon.gateway().poll_final(&body, FINAL).await;
    assert_eq!(done["status"], "approved", "{done}");
    let (_, out) = daemon.terminals_cli(&["list", "--json"]);
    assert!(out.contains("\"blocked\":false"), "{out}");
}
