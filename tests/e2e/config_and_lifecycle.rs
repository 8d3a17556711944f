//! Configuration errors, health and shutdown.

use std::process::Command;
use std::time::Duration;

use serde_json::json;

use crate::harness::*;

/// The shipped example configuration, for tests to adapt.
fn example_config() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/posbridge.toml"
    ))
    .expect("example")
}

fn posbridge(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_posbridge"))
        .args(args)
        .output()
        .expect("run posbridge")
}

#[test]
fn a_bad_config_exits_64_naming_key_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = example_config();
    let cases = [
        (
            "unknown key",
            good.replace("[pos]\n", "[pos]\nsecond_waiting = 5\n"),
            "pos.second_waiting",
        ),
        (
            "wrong type",
            good.replace("max_body_bytes = 1048576", "max_body_bytes = \"big\""),
            "server.max_body_bytes",
        ),
        (
            "rule",
            good.replace("delay_to_cancel = 900", "delay_to_cancel = 10"),
            "pos.delay_to_cancel",
        ),
        ("not toml", "[server\nlisten = ".to_string(), "bad.toml:1:"),
    ];
    for (name, text, mention) in cases {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, &text).expect("write");
        for command in ["check-config", "run"] {
            let out = posbridge(&[command, "--config", path.to_str().expect("utf8")]);
            assert_eq!(out.status.code(), Some(64), "{name} / {command}");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(stderr.contains(mention), "{name} / {command}: {stderr}");
            assert!(!stderr.contains("panicked"), "{stderr}");
        }
    }
    let line = {
        std::fs::write(
            dir.path().join("bad.toml"),
            good.replace("delay_to_cancel = 900", "delay_to_cancel = 10"),
        )
        .expect("write");
        let out = posbridge(&[
            "check-config",
            "--config",
            dir.path().join("bad.toml").to_str().expect("utf8"),
        ]);
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let expected = good
        .lines()
        .position(|l| l.starts_with("delay_to_cancel"))
        .expect("line")
        + 1;
    assert!(line.contains(&format!("bad.toml:{expected}:")), "{line}");
    let missing = posbridge(&["check-config", "--config", "/nonexistent/posbridge.toml"]);
    assert_eq!(missing.status.code(), Some(64));
    let ok = posbridge(&[
        "check-config",
        "--config",
        concat!(env!("CARGO_MANIFEST_DIR"), "/config/posbridge.toml"),
    ]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
}

/// A box with real keys and the simulator still configured: refused, pointing at the simulator
/// entry's `protocol` line and saying how a demo box allows it.
#[test]
fn a_simulator_terminal_needs_allow_simulator() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = example_config()
        .replace("allow_simulator = true\n", "")
        .replace("-change-me\"", "-store-41c7\"")
        .replace("listen = \"127.0.0.1:8080\"", "listen = \"127.0.0.1:0\"")
        .replace(
            "path = \"posbridge.db\"",
            &format!("path = \"{}\"", dir.path().join("p.db").display()),
        );
    assert!(!text.lines().any(|l| l.starts_with("allow_simulator")));
    let path = dir.path().join("production.toml");
    std::fs::write(&path, &text).expect("write");
    let line = text
        .lines()
        .position(|l| l == "protocol = \"simulator\"")
        .expect("simulator")
        + 1;
    let mention = format!("production.toml:{line}: terminals[0].protocol: terminal `lane-1`");
    // check-config first: a daemon that would start instead never gets to `run` here.
    for command in ["check-config", "run"] {
        let out = posbridge(&[command, "--config", path.to_str().expect("utf8")]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{command}: {stderr}");
        assert!(stderr.contains(&mention), "{command}: {stderr}");
        assert!(
            stderr.contains("approves sales that never touched a card")
                && stderr.contains("allow_simulator = true"),
            "{command}: {stderr}"
        );
    }
    let out = posbridge(&["doctor", "--config", path.to_str().expect("utf8")]);
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(
        report.contains("FAIL  configuration") && report.contains(&mention),
        "{report}"
    );
}

/// The quick start keeps working: the embedded default is a demo box (the simulator, allowed)
/// that approves a sale with the README's credentials, and says so in its log and in `doctor`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_default_is_a_demo_box_that_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let default = String::from_utf8(posbridge(&["print-default-config"]).stdout).expect("utf8");
    assert!(
        default.lines().any(|l| l == "allow_simulator = true"),
        "{default}"
    );
    let path = dir.path().join("default.toml");
    std::fs::write(
        &path,
        default
            .replace("listen = \"127.0.0.1:8080\"", "listen = \"127.0.0.1:0\"")
            .replace(
                "path = \"posbridge.db\"",
                &format!("path = \"{}\"", dir.path().join("d.db").display()),
            ),
    )
    .expect("write");
    let mut child = Command::new(env!("CARGO_BIN_EXE_posbridge"))
        .args(["run", "--config", path.to_str().expect("utf8")])
        .env_remove("RUST_LOG")
        .current_dir(dir.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let (base, startup) = tokio::task::spawn_blocking(move || {
        let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
        let mut startup = String::new();
        for line in lines.by_ref().map_while(Result::ok) {
            startup.push_str(&line);
            startup.push('\n');
            if let Some(addr) = line.split("listening on http://").nth(1) {
                let base = format!("http://{}", addr.trim());
                std::thread::spawn(move || lines.for_each(drop));
                return Some((base, startup));
            }
        }
        None
    })
    .await
    .expect("join")
    .expect("the embedded default starts");
    assert!(
        startup.contains("WARN") && startup.contains("approves sales that never touched a card"),
        "{startup}"
    );
    let gateway = Gateway::new(
        &base,
        "vtexappkey-local-posbridge",
        "local-development-token-change-me",
    );
    let receiver = CallbackReceiver::start(0).await;
    let body = create_body(
        "pay-demo",
        json!(29.90),
        "Venda Direta Credito",
        &receiver.url_for("pay-demo"),
    );
    start_charge(&gateway, &body).await;
    let answer = gateway.poll_final(&body, Duration::from_secs(30)).await;
    assert_eq!(answer["status"], "approved", "{answer}");
    let _ = child.kill();
    let _ = child.wait();

    let out = Command::new(env!("CARGO_BIN_EXE_posbridge"))
        .arg("doctor")
        .current_dir(dir.path())
        .output()
        .expect("doctor");
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert!(
        report.contains("warn  simulator: ")
            && report.contains("approves sales that never touched a card"),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_answers_once_ready() {
    let daemon = Daemon::start(Options::default()).await;
    let response = reqwest::get(format!("{}/healthz", daemon.base))
        .await
        .expect("get");
    assert_eq!(response.status(), 200);
    assert!(
        daemon.db_path().exists(),
        "the database is open before the listener announces itself"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_requests_then_exits_zero() {
    // .05 ignores the abort, so the cancel below waits its full 3 s for the terminal.
    let mut daemon = Daemon::start(Options {
        approve_after_ms: 8_000,
        ..Options::default()
    })
    .await;
    let gateway = daemon.gateway();
    let body = create_body(
        "pay-term",
        json!(10.05),
        "Venda Direta Credito",
        "http://127.0.0.1:9/cb",
    );
    start_charge(&gateway, &body).await;
    assert!(
        daemon
            .wait_log("sale sent to the terminal", Duration::from_secs(10))
            .await
    );
    let in_flight = {
        let gateway = gateway.clone();
        tokio::spawn(async move {
            gateway
                .post(
                    "/payments/pay-term/cancellations",
                    &json!({ "requestId": "c" }),
                )
                .await
        })
    };
    // The cancel is in the engine, waiting for the terminal: now it is in flight.
    assert!(
        daemon
            .wait_log("cancel requested while charging", Duration::from_secs(10))
            .await,
        "{}",
        daemon.logs()
    );
    daemon.signal("TERM");
    let (status, answer) = in_flight.await.expect("join");
    assert_eq!(status, 500, "answered, not dropped: {answer}");
    assert_eq!(answer["code"], "cancel-pending");
    let exit = daemon
        .wait_exit(Duration::from_secs(20))
        .await
        .expect("exited");
    assert_eq!(exit.code(), Some(0), "{}", daemon.logs());
    assert!(daemon.logs().contains("SIGTERM: shutting down"));
    assert!(
        reqwest::get(format!("{}/healthz", daemon.base))
            .await
            .is_err(),
        "no longer accepting"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_it_asks_the_running_daemon_about_its_terminals() {
    let daemon = Daemon::start(Options {
        admin: true,
        ..Options::default()
    })
    .await;
    let (code, out) = daemon.terminals_cli(&["list", "--json"]);
    assert_eq!(code, Some(0), "{out}");
    let list: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(list["terminals"][0]["id"], "lane-1");
    assert_eq!(list["terminals"][0]["protocol"], "simulator");
    assert_eq!(list["terminals"][0]["serialNumber"], SERIAL);
    let (code, out) = daemon.terminals_cli(&["probe", "lane-1"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("simulator ready"), "{out}");
    let (code, out) = daemon.terminals_cli(&["end-of-day", "lane-1"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("batch closed"), "{out}");
    let (code, out) = daemon.terminals_cli(&["probe", "lane-9"]);
    assert_eq!(code, Some(1), "{out}");
    // The admin listener wants its token.
    let admin = daemon.admin.as_ref().expect("admin");
    let response = reqwest::Client::new()
        .get(format!("http://{admin}/terminals"))
        .bearer_auth("wrong")
        .send()
        .await
        .expect("get");
    assert_eq!(response.status(), 401);
    let logs = daemon.logs();
    assert!(
        !logs.contains(ADMIN_TOKEN),
        "the admin token is never logged"
    );
}

/// A fake systemd: a datagram socket that records what the daemon notifies, with arrival times.
fn fake_systemd(
    dir: &std::path::Path,
) -> (
    String,
    std::sync::mpsc::Receiver<(std::time::Instant, String)>,
) {
    let path = dir.join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&path).expect("bind notify socket");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok(n) = socket.recv(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).to_string();
            if tx.send((std::time::Instant::now(), text)).is_err() {
                break;
            }
        }
    });
    (path.display().to_string(), rx)
}

fn collect(
    rx: &std::sync::mpsc::Receiver<(std::time::Instant, String)>,
    for_: Duration,
) -> Vec<(std::time::Instant, String)> {
    let end = std::time::Instant::now() + for_;
    let mut got = Vec::new();
    while let Some(left) = end.checked_duration_since(std::time::Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(m) => got.push(m),
            Err(_) => break,
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn systemd_hears_ready_watchdog_and_stopping() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (socket, rx) = fake_systemd(dir.path());
    let env = vec![
        ("NOTIFY_SOCKET", socket),
        ("WATCHDOG_USEC", "400000".to_string()),
    ];
    let mut daemon = Daemon::start(Options {
        env,
        ..Options::default()
    })
    .await;
    let first =
        tokio::task::spawn_blocking(move || (collect(&rx, Duration::from_millis(2500)), rx))
            .await
            .expect("join");
    let (messages, rx) = first;
    assert_eq!(
        messages.first().map(|m| m.1.as_str()),
        Some("READY=1"),
        "{messages:?}"
    );
    let pings = messages.iter().filter(|m| m.1 == "WATCHDOG=1").count();
    assert!(pings >= 3, "pings at half of 400 ms: {messages:?}");
    daemon.signal("TERM");
    daemon
        .wait_exit(Duration::from_secs(20))
        .await
        .expect("exit");
    let rest = tokio::task::spawn_blocking(move || collect(&rx, Duration::from_millis(300)))
        .await
        .expect("join");
    assert!(rest.iter().any(|m| m.1 == "STOPPING=1"), "{rest:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_engine_stops_the_watchdog_pings() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (socket, rx) = fake_systemd(dir.path());
    let env = vec![
        ("NOTIFY_SOCKET", socket),
        ("WATCHDOG_USEC", "400000".to_string()),
    ];
    let daemon = Daemon::start(Options {
        env,
        failpoint: Some("stall-engine"),
        ..Options::default()
    })
    .await;
    // Each round either pings or says it missed the heartbeat. Once the first miss is seen,
    // wait for two more (the watchdog went round twice since): no ping may come after it.
    let missed = "the engine did not answer its heartbeat";
    assert!(
        daemon.wait_log(missed, Duration::from_secs(10)).await,
        "{}",
        daemon.logs()
    );
    let first_miss = std::time::Instant::now();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while daemon.log_lines_with(&[missed]) < 3 {
        assert!(tokio::time::Instant::now() < deadline, "{}", daemon.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let messages: Vec<_> = rx.try_iter().collect();
    let pings: Vec<_> = messages
        .iter()
        .filter(|m| m.1 == "WATCHDOG=1")
        .map(|m| m.0)
        .collect();
    assert!(!pings.is_empty(), "pinged before the stall: {messages:?}");
    assert!(
        pings.iter().all(|&ping| ping < first_miss),
        "a ping after the engine missed its heartbeat: {messages:?}"
    );
    // The HTTP side still answers: only the engine is wedged, and that is what the watchdog sees.
    assert_eq!(
        reqwest::get(format!("{}/healthz", daemon.base))
            .await
            .expect("get")
            .status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_it_observes_payments_callbacks_metrics_and_logs() {
    let daemon = Daemon::start(Options {
        admin: true,
        first_retry_s: 30,
        ..Options::default()
    })
    .await;
    let receiver = CallbackReceiver::start(0).await;
    receiver.fail_always();
    let gateway = daemon.gateway();
    let body = create_body(
        "pay-ops-view",
        json!(12.34),
        "Venda Direta Credito",
        &receiver.url_for("pay-ops-view"),
    );
    start_charge(&gateway, &body).await;
    gateway.poll_final(&body, Duration::from_secs(30)).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while receiver.attempts() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no callback attempt"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let (code, out) = daemon.admin_cli("payments", &["list"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("pay-ops-view") && out.contains("Visa ****1111"),
        "{out}"
    );
    assert!(!out.contains("444433"), "never the first 6 digits: {out}");
    let (code, out) = daemon.admin_cli("payments", &["show", "pay-ops-view"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("\nReceipts\n") && out.contains("customer"),
        "{out}"
    );
    assert!(!out.contains("SIGtestSECRET"), "no callback URL: {out}");

    let (code, out) = daemon.admin_cli("callbacks", &["list", "--json"]);
    assert_eq!(code, Some(0), "{out}");
    let list: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    let callback = &list["callbacks"][0];
    assert_eq!(callback["paymentId"], "pay-ops-view");
    assert_eq!(callback["state"], "failing");
    receiver.succeed_from_now();
    let id = callback["id"].as_i64().expect("id").to_string();
    let (code, out) = daemon.admin_cli("callbacks", &["retry", &id]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(
        receiver
            .wait_for("pay-ops-view", Duration::from_secs(5))
            .await
            .len(),
        1,
        "re-delivered now, not in 30 s"
    );

    let admin = daemon.admin.as_ref().expect("admin");
    let metrics = reqwest::Client::new()
        .get(format!("http://{admin}/metrics"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for needle in [
        "posbridge_http_requests_total{route=\"/payments\",status=\"200\"}",
        "posbridge_http_request_duration_seconds_bucket{route=\"/payments\"",
        "posbridge_charges_started_total{terminal=\"lane-1\"} 1",
        "posbridge_payments{state=\"approved\"} 1",
        "posbridge_callback_attempts_total{outcome=\"retry\"}",
        "posbridge_callback_attempts_total{outcome=\"delivered\"} 1",
        "posbridge_db_commits_per_fsync_count",
        "posbridge_terminal_online{terminal=\"lane-1\",protocol=\"simulator\"} 1",
        "posbridge_terminal_events_total{terminal=\"lane-1\"}",
    ] {
        assert!(
            metrics.contains(needle),
            "missing `{needle}` in:\n{metrics}"
        );
    }

    // The log level changes at runtime: at `warn` a new payment leaves no INFO line.
    let (code, out) = daemon.admin_cli("log-level", &["warn"]);
    assert_eq!(code, Some(0), "{out}");
    let quiet = create_body(
        "pay-quiet",
        json!(5),
        "Venda Direta Credito",
        &receiver.url_for("pay-quiet"),
    );
    gateway.create(&quiet).await;
    // A WARN line after it: once it is read, any INFO line of pay-quiet would have been too
    // (one ordered stream).
    let intruder = Gateway::new(&daemon.base, APP_KEY, "wrong-token");
    assert_eq!(intruder.post("/payments", &quiet).await.0, 401);
    assert!(
        daemon
            .wait_log(
                "rejected a request with wrong credentials",
                Duration::from_secs(5)
            )
            .await
    );
    assert!(
        !daemon
            .logs()
            .lines()
            .any(|l| l.contains("payment stored") && l.contains("pay-quiet"))
    );
    let (code, _) = daemon.admin_cli("log-level", &["info"]);
    assert_eq!(code, Some(0));
    let loud = create_body(
        "pay-loud",
        json!(5),
        "Venda Direta Credito",
        &receiver.url_for("pay-loud"),
    );
    gateway.create(&loud).await;
    assert!(daemon.wait_log("pay-loud", Duration::from_secs(5)).await);
    let (code, out) = daemon.admin_cli("log-level", &["not a level!!"]);
    assert_eq!(code, Some(1), "{out}");

    let (code, out) = daemon.admin_cli("doctor", &[]);
    assert_eq!(code, Some(0), "{out}");
    for needle in [
        "ok    configuration",
        "ok    database integrity",
        "ok    database schema",
        "ok    daemon",
        "ok    terminal lane-1: online",
    ] {
        assert!(out.contains(needle), "missing `{needle}`:\n{out}");
    }
    assert!(!daemon.logs().contains(ADMIN_TOKEN));
}

#[test]
fn doctor_fails_clearly_without_a_daemon() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = example_config();
    let text = good
        .replace(
            "# token = \"choose-a-long-random-token\"",
            "token = \"doctor-token\"",
        )
        .replace("listen = \"127.0.0.1:9090\"", "listen = \"127.0.0.1:1\"")
        .replace(
            "path = \"posbridge.db\"",
            &format!("path = \"{}\"", dir.path().join("none.db").display()),
        );
    let path = dir.path().join("doctor.toml");
    std::fs::write(&path, text).expect("write");
    let out = posbridge(&["doctor", "--config", path.to_str().expect("utf8")]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("FAIL  daemon"), "{text}");
    assert!(text.contains("warn  database"), "{text}");
}

#[test]
fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = example_config();
    let text = good
        .replace("listen = \"127.0.0.1:8080\"", "listen = \"127.0.0.1:0\"")
        .replace(
            "path = \"posbridge.db\"",
            &format!("path = \"{}\"", dir.path().join("j.db").display()),
        );
    let path = dir.path().join("json.toml");
    std::fs::write(&path, text).expect("write");
    let mut child = Command::new(env!("CARGO_BIN_EXE_posbridge"))
        .args([
            "run",
            "--log-format",
            "json",
            "--config",
            path.to_str().expect("utf8"),
        ])
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = Vec::new();
    for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)).map_while(Result::ok) {
        let done = line.contains("listening on http://");
        lines.push(line);
        if done {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        lines
            .last()
            .is_some_and(|l| l.contains("listening on http://")),
        "the daemon never said it was listening: {lines:?}"
    );
    for line in &lines {
        let event: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            event["level"].is_string() && event["fields"]["message"].is_string(),
            "{line}"
        );
    }
}

#[test]
fn doctor_reports_an_expired_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).expect("params");
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let cert = params.self_signed(&key).expect("cert");
    std::fs::write(dir.path().join("cert.pem"), cert.pem()).expect("cert");
    std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).expect("key");
    let good = example_config();
    let text = good
        .replace(
            "path = \"posbridge.db\"",
            &format!("path = \"{}\"", dir.path().join("none.db").display()),
        )
        .replace(
            "[storage]",
            &format!(
                "[server.tls]\ncert = \"{}\"\nkey = \"{}\"\n\n[storage]",
                dir.path().join("cert.pem").display(),
                dir.path().join("key.pem").display()
            ),
        );
    let path = dir.path().join("doctor.toml");
    std::fs::write(&path, text).expect("write");
    let out = posbridge(&["doctor", "--config", path.to_str().expect("utf8")]);
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        report.contains("FAIL  tls certificate") && report.contains("expired"),
        "{report}"
    );
}
