//! Money first (issue 8): what excludes what after a sale, answers that never change once
//! final, a callback for every final result, repeated Creates that must match, results kept
//! while the disk is full, and a restored backup that never charges again.

use std::process::Command;
use std::time::Duration;

use futures_util::SinkExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::disk_faults::SmallDisk;
use crate::harness::*;

const FINAL: Duration = Duration::from_secs(40);

fn credit(id: &str, value: Value, receiver: &CallbackReceiver) -> Value {
    create_body(id, value, "Venda Direta Credito", &receiver.url_for(id))
}

async fn approved(daemon: &Daemon, receiver: &CallbackReceiver, id: &str, value: Value) -> Value {
    let done = pay(daemon, receiver, id, value).await;
    assert_eq!(done["status"], "approved", "{done}");
    done
}

/// #4: approve A; a slow sale on the same terminal keeps A's reversal waiting in the lane;
/// while it waits, settle and refund of A are refused, and only the reversal happens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_reversal_excludes_settle_and_refund() {
    let daemon = Daemon::start(Options::default()).await;
    let receiver = CallbackReceiver::start(0).await;
    let gateway = daemon.gateway();
    let a = approved(&daemon, &receiver, "ex-a", json!(40)).await;

    // B: a slow (.04, 20 s) sale on the same terminal.
    let b = credit("ex-b", json!(12.04), &receiver);
    start_sale(&daemon, &b).await;

    let (status, cancel) = gateway
        .post(
            "/payments/ex-a/cancellations",
            &json!({ "requestId": "c1" }),
        )
        .await;
    assert_eq!(
        (status, cancel["code"].clone()),
        (500, json!("cancel-pending")),
        "{cancel}"
    );
    let (status, settle) = gateway
        .post(
            "/payments/ex-a/settlements",
            &json!({ "requestId": "s1", "value": 40 }),
        )
        .await;
    assert_eq!(
        status, 400,
        "a pending reversal excludes settling: {settle}"
    );
    assert_eq!(settle["code"], "payment-cancelled");
    assert!(settle["settleId"].is_null());
    let (status, refund) = gateway
        .post(
            "/payments/ex-a/refunds",
            &json!({ "requestId": "r1", "value": 40 }),
        )
        .await;
    assert_eq!(
        status, 400,
        "a pending reversal excludes refunding: {refund}"
    );

    // B ends (aborted), the lane reverses A; the cancel retried is now true.
    let (status, _) = gateway
        .post(
            "/payments/ex-b/cancellations",
            &json!({ "requestId": "cb" }),
        )
        .await;
    assert!(status == 200 || status == 500);
    let cancelled = gateway.cancel_until_done("ex-a", "c1").await;
    assert!(cancelled["cancellationId"].is_string());
    let (status, settle) = gateway
        .post(
            "/payments/ex-a/settlements",
            &json!({ "requestId": "s2", "value": 40 }),
        )
        .await;
    assert_eq!(
        (status, settle["code"].clone()),
        (400, json!("payment-cancelled"))
    );
    assert_eq!(daemon.journal_entries("ex-a", "reversal"), 1);
    assert_eq!(daemon.journal_entries("ex-a", "refund"), 0);
    let db = rusqlite::Connection::open(daemon.db_path()).expect("db");
    let (settled, refunded): (i64, i64) = db
        .query_row(
            "SELECT settled_minor, refunded_minor FROM payments WHERE payment_id = 'ex-a'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("row");
    assert_eq!(
        (settled, refunded),
        (0, 0),
        "reversed, never settled or refunded"
    );
    // The approval's answer is final and stays as it was (see README).
    assert_eq!(
        gateway.create(&credit("ex-a", json!(40), &receiver)).await,
        a
    );
}

/// #4 again, as a race: cancels, settles and refunds of one approved payment at once. Either
/// the payment is reversed (and never settled) or settled (and never reversed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_cancel_settle_and_refund_never_both_reverse_and_settle() {
    let daemon = Daemon::start(Options::default()).await;
    let receiver = CallbackReceiver::start(0).await;
    for round in 0..4 {
        let id = format!("race-{round}");
        approved(&daemon, &receiver, &id, json!(25)).await;
        let gateway = daemon.gateway();
        let mut calls = Vec::new();
        for i in 0..12 {
            let (gateway, id) = (gateway.clone(), id.clone());
            calls.push(tokio::spawn(async move {
                let (path, body) = match i % 3 {
                    0 => ("cancellations", json!({ "requestId": format!("c{i}") })),
                    1 => (
                        "settlements",
                        json!({ "requestId": format!("s{i}"), "value": 25 }),
                    ),
                    _ => (
                        "refunds",
                        json!({ "requestId": format!("r{i}"), "value": 25 }),
                    ),
                };
                let (status, answer) = gateway.post(&format!("/payments/{id}/{path}"), &body).await;
                (path, status, answer)
            }));
        }
        let mut results = Vec::new();
        for call in calls {
            results.push(call.await.expect("join"));
        }
        let settled = results
            .iter()
            .any(|(p, s, _)| *p == "settlements" && *s == 200);
        let cancelling = results
            .iter()
            .any(|(p, s, a)| *p == "cancellations" && (*s == 200 || a["code"] == "cancel-pending"));
        assert!(!(settled && cancelling), "round {round}: {results:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
        let reversals = daemon.journal_entries(&id, "reversal");
        let db = rusqlite::Connection::open(daemon.db_path()).expect("db");
        let settled_minor: i64 = db
            .query_row(
                "SELECT settled_minor FROM payments WHERE payment_id = ?1",
                [&id],
                |r| r.get(0),
            )
            .expect("row");
        assert!(
            reversals == 0 || settled_minor == 0,
            "round {round}: reversed {reversals} and settled {settled_minor}: {results:?}"
        );
    }
}

/// #5: a payment is settled once; another amount is a 400 naming the conflict, the same
/// amount replays the settlement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_settle_with_another_amount_is_refused() {
    let daemon = Daemon::start(Options::default()).await;
    let receiver = CallbackReceiver::start(0).await;
    let gateway = daemon.gateway();
    approved(&daemon, &receiver, "st-1", json!(30)).await;
    let (status, first) = gateway
        .post(
            "/payments/st-1/settlements",
            &json!({ "requestId": "s1", "value": 30 }),
        )
        .await;
    assert_eq!(status, 200, "{first}");
    let (status, other) = gateway
        .post(
            "/payments/st-1/settlements",
            &json!({ "requestId": "s2", "value": 20 }),
        )
        .await;
    assert_eq!(status, 400, "{other}");
    assert_eq!(other["code"], "settle-conflict");
    assert!(
        other["settleId"].is_null() && other["value"] == 0,
        "{other}"
    );
    assert!(
        other["message"]
            .as_str()
            .is_some_and(|m| m.contains("30") && m.contains("20"))
    );
    let (status, same) = gateway
        .post(
            "/payments/st-1/settlements",
            &json!({ "requestId": "s3", "value": 30 }),
        )
        .await;
    assert_eq!(status, 200, "{same}");
    assert_eq!(same["settleId"], first["settleId"]);
    assert_eq!(same["value"], first["value"]);
    assert_eq!(
        gateway
            .post(
                "/payments/st-1/settlements",
                &json!({ "requestId": "s1", "value": 30 })
            )
            .await,
        (200, first),
        "the same requestId replays byte for byte"
    );
}

/// #8: every field of a final answer agrees with its status, and the answer never changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn final_answers_agree_with_their_status_and_never_change() {
    let daemon = Daemon::start(Options {
        approve_after_ms: 1500,
        ..Options::default()
    })
    .await;
    let receiver = CallbackReceiver::start(0).await;
    let gateway = daemon.gateway();

    // Approved, then cancelled (reversed): Create keeps answering the approval.
    let approved_answer = approved(&daemon, &receiver, "fa-ok", json!(10)).await;
    let (status, _) = gateway
        .post(
            "/payments/fa-ok/cancellations",
            &json!({ "requestId": "c" }),
        )
        .await;
    assert_eq!(status, 200);
    let body = credit("fa-ok", json!(10), &receiver);
    assert_eq!(gateway.create(&body).await, approved_answer);
    let callbacks = receiver.wait_for("fa-ok", FINAL).await;
    assert_eq!(callbacks.len(), 1);
    assert_eq!(callbacks[0].2, approved_answer);

    // .05 ignores the abort: the late approval is reversed, never reported.
    let late = credit("fa-late", json!(10.05), &receiver);
    start_sale(&daemon, &late).await;
    let (status, _) = gateway
        .post(
            "/payments/fa-late/cancellations",
            &json!({ "requestId": "c" }),
        )
        .await;
    assert!(status == 200 || status == 500);
    let denied = gateway.poll_final(&late, FINAL).await;
    assert_eq!(denied["status"], "denied", "{denied}");
    assert_eq!(denied["code"], "cancelled", "{denied}");
    assert!(denied["authorizationId"].is_null(), "{denied}");
    assert_ne!(denied["message"], "approved", "{denied}");
    assert!(
        daemon
            .wait_log("reversal done on the terminal", FINAL)
            .await
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        gateway.create(&late).await,
        denied,
        "never changes once final"
    );
    let callbacks = receiver.wait_for("fa-late", FINAL).await;
    assert_eq!(callbacks.len(), 1);
    assert_eq!(callbacks[0].2, denied, "the callback agrees with Create");
}

/// #9: a payment cancelled from the Payment App is called back like any other final result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_cancelled_from_the_payment_app_is_called_back() {
    let daemon = crate::payment_app::feed_daemon(300).await;
    let receiver = CallbackReceiver::start(0).await;
    let gateway = daemon.gateway();
    let body = credit("pa-cancel", json!(50.04), &receiver);
    let payload = crate::payment_app::start_with_app(&gateway, &body).await;
    let mut socket = crate::payment_app::connect(&crate::payment_app::ws_url(&payload)).await;
    assert!(
        daemon
            .wait_log(
                "simulator: sale started terminal=lane-1 payment_id=pa-cancel",
                FINAL
            )
            .await
    );
    socket
        .send(Message::text(r#"{"type":"cancel"}"#))
        .await
        .expect("cancel");
    let (events, _) = crate::payment_app::read_all(&mut socket, Duration::from_secs(10)).await;
    assert_eq!(
        events.last().map(|e| e["state"].clone()),
        Some(json!("cancelled"))
    );
    let callbacks = receiver.wait_for("pa-cancel", FINAL).await;
    assert_eq!(callbacks.len(), 1, "the Gateway must learn the result");
    assert_eq!(callbacks[0].2["status"], "denied");
    assert_eq!(callbacks[0].2, gateway.create(&body).await);
}

/// #10: a cancel while the terminal charges is answered 200 only once the terminal confirmed
/// the abort (or the approval it ignored the abort with was reversed); until then 500
/// `cancel-pending`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_while_charging_claims_nothing_the_terminal_has_not_confirmed() {
    let daemon = Daemon::start(Options {
        approve_after_ms: 6000,
        ..Options::default()
    })
    .await;
    let receiver = CallbackReceiver::start(0).await;
    let gateway = daemon.gateway();
    // .05: the card was read; the terminal ignores the abort and approves after 6 s.
    let body = credit("cw-05", json!(20.05), &receiver);
    start_sale(&daemon, &body).await;
    let (status, first) = gateway
        .post(
            "/payments/cw-05/cancellations",
            &json!({ "requestId": "c" }),
        )
        .await;
    assert_eq!(
        (status, first["code"].clone()),
        (500, json!("cancel-pending")),
        "{first}"
    );
    assert!(first["cancellationId"].is_null());
    gateway.cancel_until_done("cw-05", "c").await;
    assert_eq!(
        daemon.journal_entries("cw-05", "reversal"),
        1,
        "200 only once the terminal gave the money back"
    );
}

/// #12: a repeated Create must be the same request; another amount, currency, method or
/// installments is a 400 naming the field, and charges nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_create_must_match_what_was_stored() {
    let daemon = Daemon::start(Options::default()).await;
    let receiver = CallbackReceiver::start(0).await;
    let gateway = daemon.gateway();
    let body = credit("rp-1", json!(10), &receiver);
    let first = gateway.create(&body).await;
    let url = submit_url(&first);
    let (status, _) = submit_serial(&url, &json!({ "serialNumber": SERIAL }).to_string()).await;
    assert_eq!(status, 200);
    let mut changes = Vec::new();
    let mut b = body.clone();
    b["value"] = json!(1000);
    changes.push(("value", b));
    let mut b = body.clone();
    b["currency"] = json!("USD");
    changes.push(("currency", b));
    let mut b = body.clone();
    b["paymentMethod"] = json!("Venda Direta Debito");
    changes.push(("paymentMethod", b));
    let mut b = body.clone();
    b["installments"] = json!(3);
    changes.push(("installments", b));
    for (field, changed) in changes {
        let (status, answer) = gateway.post("/payments", &changed).await;
        assert_eq!(status, 400, "{field}: {answer}");
        assert_eq!(answer["code"], "payment-mismatch", "{field}: {answer}");
        assert!(
            answer["message"]
                .as_str()
                .is_some_and(|m| m.contains(&format!("`{field}`"))),
            "{field}: {answer}"
        );
    }
    assert_eq!(daemon.charges_of("rp-1"), 0, "a mismatch starts nothing");
    let done = gateway.poll_final(&body, FINAL).await;
    assert_eq!(done["status"], "approved");
    let journal = daemon.journal();
    assert!(
        journal.contains("\"amount_minor\":1000,"),
        "charged the stored 10.00: {journal}"
    );
    assert_eq!(daemon.charges_of("rp-1"), 1);
}

/// `posbridge run` that is expected to refuse to start: (exit code, stderr); `None` when it
/// started and kept running (it is stopped then).
fn run_refused(config: &std::path::Path) -> Option<(Option<i32>, String)> {
    use std::io::Read;
    let mut child = Command::new(env!("CARGO_BIN_EXE_posbridge"))
        .args(["run", "--config"])
        .arg(config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let mut stderr = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                let _ = pipe.read_to_string(&mut stderr);
            }
            return Some((status.code(), stderr));
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn posbridge(args: &[&str], config: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_posbridge"))
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .expect("posbridge")
}

/// #6: a backup restored as the README says never charges a payment again: the terminal's
/// journal shows the sale; unknown journal entries stop the start until adopted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restoring_an_old_backup_never_charges_again() {
    let daemon = Daemon::start(Options {
        approve_after_ms: 300,
        ..Options::default()
    })
    .await;
    let receiver = CallbackReceiver::start(0).await;
    let gateway = daemon.gateway();
    let config = daemon.dir().join("posbridge.toml");

    // P is bound when the backup is taken, charged afterwards.
    let p = credit("bk-p", json!(17), &receiver);
    let first = gateway.create(&p).await;
    let (status, _) = submit_serial(
        &submit_url(&first),
        &json!({ "serialNumber": SERIAL }).to_string(),
    )
    .await;
    assert_eq!(status, 200);
    let backup = daemon.dir().join("backup.db");
    let out = Command::new(env!("CARGO_BIN_EXE_posbridge"))
        .arg("backup")
        .arg("--config")
        .arg(&config)
        .arg(&backup)
        .output()
        .expect("backup");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let approved_p = gateway.poll_final(&p, FINAL).await;
    assert_eq!(approved_p["status"], "approved");
    // Q exists only after the backup.
    let q = credit("bk-q", json!(18), &receiver);
    let approved_q = pay(&daemon, &receiver, "bk-q", json!(18)).await;
    assert_eq!(approved_q["status"], "approved");
    assert_eq!(daemon.charges_of("bk-p"), 1);

    // Restore: stop, replace the database with the backup, start.
    let mut daemon = daemon;
    daemon.signal("TERM");
    assert!(
        daemon
            .wait_exit(Duration::from_secs(20))
            .await
            .is_some_and(|s| s.success())
    );
    let db = daemon.db_path();
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    std::fs::copy(&backup, &db).expect("restore");
    let (code, stderr) =
        run_refused(&config).expect("a database older than the journals must not start");
    assert_eq!(code, Some(65), "{stderr}");
    assert!(
        stderr.contains("bk-q") && stderr.contains("adopt-journals"),
        "names the unknown payment and the way out: {stderr}"
    );
    // A zero-length database is refused just the same (never a silent fresh start).
    let kept = std::fs::read(&db).expect("db");
    std::fs::write(&db, b"").expect("truncate");
    let (code, stderr) = run_refused(&config).expect("an empty database must not start");
    assert_eq!(code, Some(65), "{stderr}");
    std::fs::write(&db, kept).expect("put back");
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }

    let adopted = posbridge(&["adopt-journals"], &config);
    assert!(adopted.status.success(), "{adopted:?}");
    assert!(
        String::from_utf8_lossy(&adopted.stdout).contains("adopted 1 journal entry"),
        "{adopted:?}"
    );
    let daemon = daemon.restart().await;
    let gateway = daemon.gateway();
    // P was bound in the backup: the journal shows its sale, so it is recovered, not charged.
    assert_eq!(gateway.poll_final(&p, FINAL).await["status"], "approved");
    // Q was unknown: the Gateway's repeated Create takes the adopted sale over.
    assert_eq!(gateway.poll_final(&q, FINAL).await["status"], "approved");
    assert_eq!(daemon.charges_of("bk-p"), 1, "never charged twice");
    assert_eq!(daemon.charges_of("bk-q"), 1, "never charged twice");
    let (code, report) = daemon.alarms();
    assert_eq!(code, Some(0), "nothing left for a person: {report}");
}

/// #21: after a clean stop the database file alone holds everything (nothing left in -wal).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_stop_leaves_the_database_file_complete() {
    let mut daemon = Daemon::start(Options::default()).await;
    let receiver = CallbackReceiver::start(0).await;
    for i in 0..3 {
        approved(&daemon, &receiver, &format!("wal-{i}"), json!(10)).await;
    }
    daemon.signal("TERM");
    assert!(
        daemon
            .wait_exit(Duration::from_secs(20))
            .await
            .is_some_and(|s| s.success())
    );
    let wal = std::fs::metadata(format!("{}-wal", daemon.db_path().display()))
        .map(|m| m.len())
        .unwrap_or(0);
    assert_eq!(wal, 0, "the log is checkpointed and emptied");
    let copy_dir = tempfile::tempdir().expect("tempdir");
    let copy = copy_dir.path().join("copy.db");
    std::fs::copy(daemon.db_path(), &copy).expect("copy the file alone");
    let db = rusqlite::Connection::open(&copy).expect("open copy");
    let count: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM payments WHERE state = 'approved'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(count, 3);
}

/// A rollback without the backup: a database a newer release migrated stops the start with
/// exit 65 (systemd does not restart it) and is left byte for byte as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_from_a_newer_release_stops_the_start_untouched() {
    let mut daemon = Daemon::start(Options::default()).await;
    let receiver = CallbackReceiver::start(0).await;
    approved(&daemon, &receiver, "newer-1", json!(10)).await;
    daemon.signal("TERM");
    assert!(
        daemon
            .wait_exit(Duration::from_secs(20))
            .await
            .is_some_and(|s| s.success())
    );
    let db = daemon.db_path();
    {
        let conn = rusqlite::Connection::open(&db).expect("open");
        let known: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .expect("version");
        conn.execute_batch(&format!("PRAGMA user_version = {}", known + 1))
            .expect("as a newer release would leave it");
    }
    let before = std::fs::read(&db).expect("db");
    let config = daemon.dir().join("posbridge.toml");
    let (code, stderr) = run_refused(&config).expect("a newer database must not start");
    assert_eq!(code, Some(65), "{stderr}");
    assert!(
        stderr.contains("newer than this binary knows") && stderr.contains("Upgrade and rollback"),
        "says what happened and where the way out is: {stderr}"
    );
    assert_eq!(std::fs::read(&db).expect("db"), before, "left untouched");
}

/// #7: the terminal approves while the filesystem is full: the result is kept (retried,
/// alarmed, shown on the lane), never dropped; it is stored once there is room again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_is_kept_while_the_disk_is_full() {
    let Some(disk) = SmallDisk::mount() else {
        return;
    };
    let receiver = CallbackReceiver::start(0).await;
    let daemon = Daemon::start(Options {
        approve_after_ms: 3000,
        admin: true,
        extra_config: String::new(),
        database_dir: Some(disk.path()),
        ..Options::default()
    })
    .await;
    let gateway = daemon.gateway();
    let body = credit("full-1", json!(33), &receiver);
    start_sale(&daemon, &body).await;
    // Fill the filesystem while the terminal works.
    disk.fill();
    assert!(
        daemon
            .wait_log("ALARM: cannot store the terminal's result", FINAL)
            .await,
        "{}",
        daemon.logs()
    );
    let (code, terminals) = daemon.terminals_cli(&["list", "--json"]);
    assert_eq!(code, Some(0), "{terminals}");
    assert!(
        terminals.contains("\"blocked\":true") && terminals.contains("full-1"),
        "{terminals}"
    );
    assert_eq!(
        gateway.create(&body).await["status"],
        "undefined",
        "not final until stored"
    );
    // Room again: the result the terminal gave is stored and called back.
    disk.free();
    let done = gateway.poll_final(&body, FINAL).await;
    assert_eq!(done["status"], "approved", "{done}");
    assert_eq!(receiver.wait_for("full-1", FINAL).await.len(), 1);
    assert_eq!(daemon.charges_of("full-1"), 1);
    assert!(daemon.logs().contains("stored after all"));
}
