//! Configuration errors, health and shutdown.

use std::process::Command;
use std::time::Duration;

use serde_json::json;

use crate::harness::*;

fn posbridge(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_posbridge"))
        .args(args)
        .output()
        .expect("run posbridge")
}

#[test]
fn a_bad_config_exits_64_naming_key_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/posbridge.toml"
    ))
    .expect("example");
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
    tokio::time::sleep(Duration::from_millis(500)).await;
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
    let (code, out) = daemon.terminals_cli(&["list"]);
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
