//! The whole PPP flow against `posbridge simulate-terminal zvt`: a terminal speaking the real
//! ZVT wire protocol, over TCP and over a pseudo-terminal pair, with faults.

use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use crate::harness::*;

const FINAL: Duration = Duration::from_secs(40);

/// A ZVT terminal simulator process.
pub struct ZvtTerminal {
    child: Child,
    /// The daemon's `transport` for it.
    pub transport: String,
    logs: Arc<Mutex<String>>,
    /// Holds the pty symlink; handed on to a replacement (see [`ZvtTerminal::replaced`]).
    dir: Option<tempfile::TempDir>,
}

impl ZvtTerminal {
    pub async fn tcp(extra: &[&str]) -> ZvtTerminal {
        Self::spawn(&["--listen", "tcp:127.0.0.1:0"], extra, |line| {
            line.strip_prefix("listening on ").map(str::to_string)
        })
        .await
    }

    /// A terminal on a given TCP port (e.g. where another one was: a swapped terminal).
    pub async fn tcp_at(port: u16, extra: &[&str]) -> ZvtTerminal {
        let listen = format!("tcp:127.0.0.1:{port}");
        Self::spawn(&["--listen", &listen], extra, |line| {
            line.strip_prefix("listening on ").map(str::to_string)
        })
        .await
    }

    /// The TCP port it listens on.
    pub fn port(&self) -> u16 {
        port_of(&self.transport)
    }

    /// Sends a signal to the simulator process (`STOP`, `CONT`, `KILL`).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    pub async fn pty(extra: &[&str]) -> ZvtTerminal {
        Self::spawn(&["--pty"], extra, |line| {
            Some(format!("serial:{}", line.trim()))
        })
        .await
    }

    /// A terminal on a pseudo-terminal behind the symlink `link` (e.g. where another one was:
    /// a swapped terminal on the same serial port).
    pub async fn pty_at(link: &std::path::Path, extra: &[&str]) -> ZvtTerminal {
        let link = link.display().to_string();
        Self::spawn(&["--pty", &link], extra, |line| {
            Some(format!("serial:{}", line.trim()))
        })
        .await
    }

    /// Starts a terminal like this one (same transport, TCP or pty) on the same address once
    /// this one is gone: the lane's terminal swapped or reset.
    pub async fn replaced(mut self, extra: &[&str]) -> ZvtTerminal {
        let transport = self.transport.clone();
        // The pty symlink's directory outlives this terminal.
        let dir = self.dir.take();
        drop(self);
        let mut replacement = match transport.strip_prefix("serial:") {
            Some(link) => Self::pty_at(std::path::Path::new(link), extra).await,
            None => Self::tcp_at(port_of(&transport), extra).await,
        };
        replacement.dir = dir;
        replacement
    }

    async fn spawn(
        mode: &[&str],
        extra: &[&str],
        transport_of: fn(&str) -> Option<String>,
    ) -> ZvtTerminal {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut args: Vec<String> = vec!["simulate-terminal".into(), "zvt".into()];
        args.extend(mode.iter().map(|s| s.to_string()));
        if mode == ["--pty"] {
            args.push(dir.path().join("zvt-tty").display().to_string());
        }
        if !extra.contains(&"--approve-after-ms") {
            args.extend(["--approve-after-ms".to_string(), "300".to_string()]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let SimulatorProcess {
            child,
            logs,
            first_line: first,
        } = spawn_simulator(&args).await;
        let transport =
            transport_of(first.trim()).unwrap_or_else(|| panic!("unexpected first line `{first}`"));
        ZvtTerminal {
            child,
            transport,
            logs,
            dir: Some(dir),
        }
    }

    pub fn logs(&self) -> String {
        self.logs.lock().expect("logs").clone()
    }

    /// How many Authorizations (sales) the terminal has received.
    pub fn sales(&self) -> usize {
        self.logs()
            .lines()
            .filter(|l| l.contains("ZVT simulator: sale amount="))
            .count()
    }
}

impl Drop for ZvtTerminal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn port_of(transport: &str) -> u16 {
    transport
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a tcp transport")
}

pub async fn daemon_for(terminal: &ZvtTerminal, options: Options) -> Daemon {
    Daemon::start(Options {
        zvt_transport: Some(terminal.transport.clone()),
        ..options
    })
    .await
}

fn receipts_of(daemon: &Daemon, payment_id: &str) -> Vec<(String, String)> {
    let conn = rusqlite::Connection::open(daemon.db_path()).expect("db");
    let mut stmt = conn
        .prepare("SELECT kind, text FROM receipts WHERE payment_id = ?1 ORDER BY id")
        .expect("prepare");
    stmt.query_map([payment_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .collect::<Result<Vec<_>, _>>()
        .expect("rows")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zvt_sale_over_tcp_end_to_end() {
    let terminal = ZvtTerminal::tcp(&[]).await;
    let daemon = daemon_for(
        &terminal,
        Options {
            admin: true,
            ..Options::default()
        },
    )
    .await;
    let receiver = CallbackReceiver::start(0).await;
    let done = pay(&daemon, &receiver, "zvt-ok", json!(12.5)).await;
    assert_eq!(done["status"], "approved", "{done}\n{}", terminal.logs());
    assert_eq!(
        done["firstDigits"].as_str().map(str::len),
        Some(6),
        "{done}"
    );
    assert_eq!(done["lastDigits"].as_str().map(str::len), Some(4), "{done}");
    assert!(
        done["cardBrand"]
            .as_str()
            .is_some_and(|b| !b.is_empty() && b != "unknown"),
        "{done}"
    );
    assert!(
        done["nsu"].is_string() && done["authorizationId"].is_string(),
        "{done}"
    );
    let callbacks = receiver.wait_for("zvt-ok", FINAL).await;
    assert_eq!(callbacks[0].2, done);
    assert_eq!(terminal.sales(), 1);
    let receipts = receipts_of(&daemon, "zvt-ok");
    assert!(!receipts.is_empty(), "receipts are kept with the payment");
    assert!(
        daemon.logs().contains("terminal prompt"),
        "intermediate status reaches the engine"
    );
    // Decline.
    let declined = pay(&daemon, &receiver, "zvt-no", json!(12.01)).await;
    assert_eq!(declined["status"], "denied", "{declined}");
    assert!(
        declined["code"]
            .as_str()
            .is_some_and(|c| c.starts_with("zvt-")),
        "{declined}"
    );
    // Store IT sees it.
    let (code, out) = daemon.terminals_cli(&["list", "--json"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("\"online\":true") && out.contains("\"protocol\":\"zvt\""),
        "{out}"
    );
    let (code, out) = daemon.terminals_cli(&["probe", "lane-1"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("registered"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zvt_cancel_is_a_reversal_until_end_of_day() {
    let terminal = ZvtTerminal::tcp(&[]).await;
    let daemon = daemon_for(
        &terminal,
        Options {
            admin: true,
            ..Options::default()
        },
    )
    .await;
    let receiver = CallbackReceiver::start(0).await;
    let gateway = daemon.gateway();
    assert_eq!(
        pay(&daemon, &receiver, "zvt-rev", json!(20)).await["status"],
        "approved"
    );
    let (status, cancelled) = gateway
        .post(
            "/payments/zvt-rev/cancellations",
            &json!({ "requestId": "c1" }),
        )
        .await;
    assert_eq!(status, 200, "{cancelled}\n{}", terminal.logs());
    assert!(cancelled["cancellationId"].is_string());

    assert_eq!(
        pay(&daemon, &receiver, "zvt-late", json!(30)).await["status"],
        "approved"
    );
    let (code, out) = daemon.terminals_cli(&["end-of-day", "lane-1"]);
    assert_eq!(code, Some(0), "{out}");
    let (status, answer) = gateway
        .post(
            "/payments/zvt-late/cancellations",
            &json!({ "requestId": "c2" }),
        )
        .await;
    assert_eq!(
        status, 501,
        "after end of day only a card-present refund is possible: {answer}"
    );
    assert_eq!(answer["code"], "cancel-manually");
    let (status, settled) = gateway
        .post(
            "/payments/zvt-late/settlements",
            &json!({ "requestId": "s", "value": 30 }),
        )
        .await;
    assert_eq!(status, 200, "{settled}");
    let (status, refund) = gateway
        .post(
            "/payments/zvt-late/refunds",
            &json!({ "requestId": "r", "value": 10 }),
        )
        .await;
    assert_eq!(status, 501, "{refund}");
    assert_eq!(refund["code"], "refund-manually");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zvt_over_a_serial_line_survives_corrupted_frames() {
    let terminal = ZvtTerminal::pty(&["--fault", "bad-crc", "--fault", "nak-next"]).await;
    let daemon = daemon_for(&terminal, Options::default()).await;
    let receiver = CallbackReceiver::start(0).await;
    let done = pay(&daemon, &receiver, "zvt-pty", json!(9.9)).await;
    assert_eq!(done["status"], "approved", "{done}\n{}", terminal.logs());
    assert_eq!(terminal.sales(), 1);
    assert_eq!(receiver.wait_for("zvt-pty", FINAL).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zvt_cable_pulled_mid_sale_then_back_resolves_with_one_charge() {
    for terminal in [
        ZvtTerminal::tcp(&["--fault", "drop-mid-sale"]).await,
        ZvtTerminal::pty(&["--fault", "drop-mid-sale"]).await,
    ] {
        let daemon = daemon_for(&terminal, Options::default()).await;
        let receiver = CallbackReceiver::start(0).await;
        let done = pay(&daemon, &receiver, "zvt-pull", json!(14)).await;
        assert_eq!(
            done["status"],
            "approved",
            "{} {done}\n{}\n{}",
            terminal.transport,
            terminal.logs(),
            daemon.logs()
        );
        assert_eq!(terminal.sales(), 1, "never charged twice");
        assert_eq!(receiver.wait_for("zvt-pull", FINAL).await.len(), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zvt_posbridge_killed_mid_sale_recovers_the_sale() {
    let terminal = ZvtTerminal::tcp(&["--approve-after-ms", "3000"]).await;
    let daemon = daemon_for(&terminal, Options::default()).await;
    let receiver = CallbackReceiver::start(0).await;
    let gateway = daemon.gateway();
    let body = create_body(
        "zvt-kill",
        json!(16),
        "Venda Direta Credito",
        &receiver.url_for("zvt-kill"),
    );
    start_charge(&gateway, &body).await;
    assert!(
        daemon
            .wait_log("sale sent to the terminal", Duration::from_secs(10))
            .await
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let daemon = daemon.restart().await;
    let done = daemon.gateway().poll_final(&body, FINAL).await;
    assert_eq!(
        done["status"],
        "approved",
        "{done}\n{}\n{}",
        terminal.logs(),
        daemon.logs()
    );
    assert_eq!(terminal.sales(), 1);
    assert_eq!(receiver.wait_for("zvt-kill", FINAL).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zvt_terminal_that_never_finishes_is_resolved_by_recovery() {
    let terminal = ZvtTerminal::tcp(&["--fault", "no-completion"]).await;
    let daemon = daemon_for(
        &terminal,
        Options {
            completion_timeout_s: 2,
            ..Options::default()
        },
    )
    .await;
    let receiver = CallbackReceiver::start(0).await;
    let done = pay(&daemon, &receiver, "zvt-stuck", json!(18)).await;
    assert_eq!(done["status"], "approved", "{done}\n{}", daemon.logs());
    assert_eq!(terminal.sales(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zvt_terminal_unreachable_denies_without_charging() {
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let daemon = Daemon::start(Options {
        zvt_transport: Some(format!("tcp:127.0.0.1:{port}")),
        ..Options::default()
    })
    .await;
    let receiver = CallbackReceiver::start(0).await;
    let done = pay(&daemon, &receiver, "zvt-down", json!(5)).await;
    assert_eq!(done["status"], "denied", "{done}");
    assert_eq!(done["code"], "terminal-offline");
}
