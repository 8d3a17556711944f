//! Nothing in the request path blocks the async runtime (issue 14): a handler waits on the
//! database by awaiting its writer thread, never by holding a runtime thread. Proven with the
//! writer wedged for good (the `stall-engine` failpoint): if a handler blocked its thread on
//! the database, a few of them would take every runtime thread and nothing else would answer.

use std::time::Duration;

use serde_json::json;

use crate::harness::{
    APP_KEY, APP_TOKEN, Daemon, Gateway, Options, SERIAL, create_body, submit_serial, submit_url,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handlers_waiting_on_a_wedged_database_leave_the_runtime_free() {
    let daemon = Daemon::start(Options {
        // The watchdog's heartbeat is what wedges the writer under this failpoint.
        env: vec![("WATCHDOG_USEC", "200000".to_string())],
        failpoint: Some("stall-engine"),
        server_extra: "ppp_timeout_ms = 1000".to_string(),
        log_level: "info",
        ..Options::default()
    })
    .await;
    assert!(
        daemon
            .wait_log(
                "the engine did not answer its heartbeat",
                Duration::from_secs(10)
            )
            .await,
        "the writer never wedged: {}",
        daemon.logs()
    );
    // Far more Creates than the daemon has runtime threads (one per core), all waiting on the
    // wedged writer at once.
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    let creates = (4 * cores).max(64);
    let gateway = daemon.gateway();
    let waiting: Vec<_> = (0..creates)
        .map(|n| {
            let gateway = gateway.clone();
            tokio::spawn(async move {
                let id = format!("pay-wedged-{n}");
                let body = create_body(
                    &id,
                    json!(10.00),
                    "Venda Direta Credito",
                    "http://127.0.0.1:9/cb",
                );
                gateway.try_post("/payments", &body).await
            })
        })
        .collect();
    // Each is answered by its time limit, a timer on the runtime, while its handler runs on.
    for create in waiting {
        let (status, answer) = create
            .await
            .expect("join")
            .expect("an answer: the runtime is not blocked");
        assert_eq!(
            (status, &answer["code"]),
            (503, &json!("timeout")),
            "{answer}"
        );
    }
    // Every one of those handlers still waits on the writer; the rest of the daemon answers.
    for path in ["/healthz", "/manifest"] {
        let response = gateway
            .client
            .get(format!("{}{path}", daemon.base))
            .send()
            .await
            .expect("an answer while the handlers wait on the database");
        assert_eq!(response.status(), 200, "{path}");
    }
}

/// A Create poll of a charging payment changes nothing, so it is answered from a read beside the
/// writer (issue 14): it answers even with the writer wedged, while a new payment, which must
/// be committed, cannot be.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poll_of_a_charging_payment_does_not_wait_for_the_writer() {
    let daemon = Daemon::start(Options {
        // Heartbeats every 2 s; the third wedges the writer (about 6 s in): time enough to
        // start a charge first.
        env: vec![("WATCHDOG_USEC", "4000000".to_string())],
        failpoint: Some("stall-engine"),
        server_extra: "ppp_timeout_ms = 1000".to_string(),
        // The terminal keeps the sale running for the whole test.
        approve_after_ms: 600_000,
        log_level: "info",
        ..Options::default()
    })
    .await;
    let gateway = daemon.gateway();
    let body = create_body(
        "pay-charging",
        json!(10.00),
        "Venda Direta Credito",
        "http://127.0.0.1:9/cb",
    );
    let first = gateway.create(&body).await;
    let (status, _) = submit_serial(
        &submit_url(&first),
        &format!("{{\"serialNumber\":\"{SERIAL}\"}}"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(gateway.create(&body).await["status"], "undefined");
    assert!(
        daemon
            .wait_log("charge queued on the terminal", Duration::from_secs(5))
            .await,
        "{}",
        daemon.logs()
    );
    assert!(
        daemon
            .wait_log(
                "the engine did not answer its heartbeat",
                Duration::from_secs(20)
            )
            .await,
        "the writer never wedged: {}",
        daemon.logs()
    );
    // The writer is wedged: a new payment cannot be stored…
    let (status, answer) = gateway
        .post(
            "/payments",
            &create_body(
                "pay-new",
                json!(5.00),
                "Venda Direta Credito",
                "http://127.0.0.1:9/cb",
            ),
        )
        .await;
    assert_eq!(
        (status, &answer["code"]),
        (503, &json!("timeout")),
        "{answer}"
    );
    // …but the charging payment's polls are answered, as they were before the wedge.
    for _ in 0..3 {
        let (status, answer) = gateway.post("/payments", &body).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["status"], "undefined", "{answer}");
        assert_eq!(answer["tid"], first["tid"], "{answer}");
    }
}

/// A log line costs a request no write to stdout (issue 14): with the daemon's stdout a pipe
/// nobody reads (journald stalled, say), Creates are still answered far past what the pipe
/// holds, and once it is read again every line is there. A daemon that wrote its lines from the
/// request path would stop answering when the pipe filled (about 300 of these lines).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_never_wait_for_a_stdout_nobody_reads() {
    use std::io::BufRead;
    const CREATES: usize = 1000;
    let dir = tempfile::tempdir().expect("tempdir");
    let options = Options {
        log_level: "info",
        ..Options::default()
    };
    let config = dir.path().join("posbridge.toml");
    std::fs::write(&config, Daemon::config_text(dir.path(), &options)).expect("config");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_posbridge"))
        .args(["run", "--config"])
        .arg(&config)
        .args(["--log-level", "info"])
        .env_remove("RUST_LOG")
        .env_remove("POSBRIDGE_FAILPOINT")
        .current_dir(dir.path())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn posbridge");
    // Read up to its address, then not at all while the Creates run.
    let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let addr = loop {
        let mut line = String::new();
        let read = stdout.read_line(&mut line).expect("a line");
        assert!(read > 0, "posbridge ended before listening");
        if let Some(addr) = line.split("listening on http://").nth(1) {
            break addr.trim().to_string();
        }
    };
    let gateway = Gateway::new(&format!("http://{addr}"), APP_KEY, APP_TOKEN);
    let mut answered = 0;
    for batch in 0..CREATES / 50 {
        let creates: Vec<_> = (0..50)
            .map(|n| {
                let gateway = gateway.clone();
                tokio::spawn(async move {
                    let body = create_body(
                        &format!("pay-unread-{batch}-{n}"),
                        json!(10.00),
                        "Venda Direta Credito",
                        "http://127.0.0.1:9/cb",
                    );
                    gateway.try_post("/payments", &body).await
                })
            })
            .collect();
        for create in creates {
            let answer = create.await.expect("join");
            assert!(
                matches!(answer, Some((200, _))),
                "Create {answered} not answered while stdout is not read: {answer:?}"
            );
            answered += 1;
        }
    }
    // Read again: every Create's line comes out, none dropped.
    let stored = tokio::task::spawn_blocking(move || {
        let mut stored = 0;
        let mut line = String::new();
        while stored < CREATES && stdout.read_line(&mut line).is_ok_and(|n| n > 0) {
            if line.contains("payment stored") {
                stored += 1;
            }
            line.clear();
        }
        stored
    });
    let stored = tokio::time::timeout(Duration::from_secs(30), stored).await;
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        stored.ok().map(|joined| joined.expect("join")),
        Some(CREATES),
        "lines lost"
    );
}
