//! TEF Dial on the compiled daemon, against `posbridge simulate-terminal tef-dial` on two real
//! folders: sales (credit, debit, installments), declines, an offline client, every crash rule
//! of the file exchange with SIGKILL, cancellations before and after the result, and an
//! answer file that is not whole.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::*;

const FINAL: Duration = Duration::from_secs(40);

/// A TEF client simulator process on its own two folders; it goes on while the daemon is down.
pub struct TefClient {
    child: Child,
    pub request_dir: PathBuf,
    pub response_dir: PathBuf,
    record: PathBuf,
    logs: Arc<Mutex<String>>,
    _dir: tempfile::TempDir,
}

impl TefClient {
    pub async fn start(extra: &[&str]) -> TefClient {
        let dir = tempfile::tempdir().expect("tempdir");
        let request_dir = dir.path().join("req");
        let response_dir = dir.path().join("resp");
        std::fs::create_dir(&request_dir).expect("req");
        std::fs::create_dir(&response_dir).expect("resp");
        let record = dir.path().join("tef-record.jsonl");
        let mut args: Vec<String> = vec!["simulate-terminal".into(), "tef-dial".into()];
        args.extend([
            "--request-dir".into(),
            request_dir.display().to_string(),
            "--response-dir".into(),
            response_dir.display().to_string(),
            "--record".into(),
            record.display().to_string(),
        ]);
        if !extra.contains(&"--approve-after-ms") {
            args.extend(["--approve-after-ms".to_string(), "300".to_string()]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let SimulatorProcess {
            child,
            logs,
            first_line: first,
        } = spawn_simulator(&args).await;
        assert!(
            !first.trim().is_empty(),
            "the simulator never said it was ready"
        );
        TefClient {
            child,
            request_dir,
            response_dir,
            record,
            logs,
            _dir: dir,
        }
    }

    /// lane-1's keys for this client.
    pub fn keys(&self, ack_timeout_s: u64) -> String {
        format!(
            "protocol = \"tef-dial\"\nrequest_dir = \"{}\"\nresponse_dir = \"{}\"\nack_timeout_s = {ack_timeout_s}",
            self.request_dir.display(),
            self.response_dir.display()
        )
    }

    pub fn logs(&self) -> String {
        self.logs.lock().expect("logs").clone()
    }

    /// The client's own record of the sales it took.
    pub fn record_text(&self) -> String {
        std::fs::read_to_string(&self.record).unwrap_or_default()
    }

    /// Its sales, as JSON.
    pub fn sales(&self) -> Vec<Value> {
        self.record_text()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| e["kind"] == "sale")
            .collect()
    }

    /// The state of the client's sale for `reference` (`pending`, `confirmed`, `undone`…).
    pub fn state_of(&self, reference: &str) -> Vec<String> {
        self.sales()
            .iter()
            .filter(|s| s["reference"] == reference)
            .map(|s| s["state"].as_str().unwrap_or("?").to_string())
            .collect()
    }

    /// Waits until the client's sale for `reference` is in `state`.
    pub async fn wait_state(&self, reference: &str, state: &str, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        while tokio::time::Instant::now() < deadline {
            if self.state_of(reference).iter().any(|s| s == state) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    /// Sends a signal to the simulator process (`STOP`, `CONT`).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }
}

impl Drop for TefClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read_dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    names.sort();
    names
}

pub async fn daemon_for(client: &TefClient, options: Options) -> Daemon {
    Daemon::start(Options {
        terminal_keys: Some(client.keys(2)),
        ..options
    })
    .await
}

fn body(id: &str, value: Value, method: &str, receiver: &CallbackReceiver) -> Value {
    create_body(id, value, method, &receiver.url_for(id))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tef_sales_approve_credit_debit_and_installments_confirmed_after_the_commit() {
    let client = TefClient::start(&[]).await;
    let daemon = daemon_for(&client, Options::default()).await;
    let receiver = CallbackReceiver::start(0).await;
    let gateway = daemon.gateway();

    let credit = body("tef-credit", json!(12.5), "Venda Direta Credito", &receiver);
    start_charge(&gateway, &credit).await;
    let done = gateway.poll_final(&credit, FINAL).await;
    assert_eq!(done["status"], "approved", "{done}\n{}", client.logs());
    assert_eq!(done["firstDigits"], "476173", "{done}");
    assert_eq!(done["lastDigits"], "0010", "{done}");
    let nsu = done["nsu"].as_str().expect("nsu");
    assert!(
        nsu.starts_with('0'),
        "the NSU keeps its leading zeros: {done}"
    );
    assert!(
        done["authorizationId"]
            .as_str()
            .is_some_and(|a| !a.is_empty())
    );
    assert!(done["acquirer"].as_str().is_some_and(|a| !a.is_empty()));
    assert!(done["cardBrand"].as_str().is_some_and(|a| !a.is_empty()));
    assert_eq!(receiver.wait_for("tef-credit", FINAL).await[0].2, done);
    assert!(
        client.wait_state("tef-credit", "confirmed", FINAL).await,
        "the approval is confirmed once stored: {}",
        client.record_text()
    );

    let debit = body("tef-debit", json!(20), "Venda Direta Debito", &receiver);
    start_charge(&gateway, &debit).await;
    let done = gateway.poll_final(&debit, FINAL).await;
    assert_eq!(done["status"], "approved", "{done}");

    let mut installments = body(
        "tef-parcelas",
        json!(300),
        "Venda Direta Credito",
        &receiver,
    );
    installments["installments"] = json!(3);
    start_charge(&gateway, &installments).await;
    let done = gateway.poll_final(&installments, FINAL).await;
    assert_eq!(done["status"], "approved", "{done}");

    let logs = client.logs();
    assert!(
        logs.contains("card=debit") && logs.contains("installments=3"),
        "the client was asked for debit and for 3 installments: {logs}"
    );
    for reference in ["tef-debit", "tef-parcelas"] {
        assert!(client.wait_state(reference, "confirmed", FINAL).await);
    }
    assert_eq!(client.sales().len(), 3, "one CRT per payment");
    // Everything the client wrote is consumed (its last acknowledgement within a poll);
    // nothing waits in its request folder.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !files_in(&client.response_dir).is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        files_in(&client.response_dir).is_empty(),
        "{:?}",
        files_in(&client.response_dir)
    );
    assert!(files_in(&client.request_dir).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_tef_sale_is_denied_with_the_clients_message() {
    let client = TefClient::start(&[]).await;
    let daemon = daemon_for(&client, Options::default()).await;
    let receiver = CallbackReceiver::start(0).await;
    let done = pay(&daemon, &receiver, "tef-declined", json!(10.01)).await;
    assert_eq!(done["status"], "denied", "{done}");
    assert!(
        done["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{done}"
    );
    assert!(
        client
            .state_of("tef-declined")
            .iter()
            .all(|s| s != "confirmed")
    );
}

/// The client never acknowledges: the request is taken back, the sale denied
/// `terminal-offline`, nothing charged; the next sale goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_tef_client_denies_the_sale_and_leaves_no_request_behind() {
    let client = TefClient::start(&["--fault", "offline"]).await;
    let daemon = daemon_for(&client, Options::default()).await;
    let receiver = CallbackReceiver::start(0).await;
    let done = pay(&daemon, &receiver, "tef-offline", json!(7)).await;
    assert_eq!(done["status"], "denied", "{done}");
    assert_eq!(done["code"], "terminal-offline", "{done}");
    assert!(
        files_in(&client.request_dir).is_empty(),
        "the request is taken back: {:?}",
        files_in(&client.request_dir)
    );
    assert!(client.state_of("tef-offline").is_empty(), "never charged");
    let next = pay(&daemon, &receiver, "tef-after-offline", json!(8)).await;
    assert_eq!(next["status"], "approved", "{next}\n{}", client.logs());
}

/// Crash rule 1: killed before the client took the request (the client is stopped): on
/// restart the request is removed and the sale never happened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_before_the_client_took_the_request_the_sale_never_happened() {
    let client = TefClient::start(&[]).await;
    let daemon = daemon_for(&client, Options::default()).await;
    let receiver = CallbackReceiver::start(0).await;
    let credit = body("tef-untaken", json!(9), "Venda Direta Credito", &receiver);
    client.signal("STOP");
    start_charge(&daemon.gateway(), &credit).await;
    assert!(
        daemon
            .wait_log("sale sent to the terminal", Duration::from_secs(10))
            .await
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut daemon = daemon;
    daemon.kill();
    assert_eq!(
        files_in(&client.request_dir),
        ["IntPos.001"],
        "left waiting"
    );
    let daemon = daemon.restart().await;
    let done = daemon.gateway().poll_final(&credit, FINAL).await;
    client.signal("CONT");
    assert_eq!(done["status"], "denied", "{done}");
    assert!(files_in(&client.request_dir).is_empty());
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(client.state_of("tef-untaken").is_empty(), "never charged");
}

/// Crash rule 2: killed after the client acknowledged: on restart the answer is waited for,
/// committed and confirmed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_the_client_took_the_sale_its_answer_is_waited_for() {
    let client = TefClient::start(&["--approve-after-ms", "3000"]).await;
    let daemon = daemon_for(&client, Options::default()).await;
    let receiver = CallbackReceiver::start(0).await;
    let credit = body("tef-taken", json!(11), "Venda Direta Credito", &receiver);
    start_charge(&daemon.gateway(), &credit).await;
    assert!(
        daemon
            .wait_log("the TEF client took the sale", Duration::from_secs(10))
            .await,
        "{}",
        daemon.logs()
    );
    let mut daemon = daemon;
    daemon.kill();
    let daemon = daemon.restart().await;
    let done = daemon.gateway().poll_final(&credit, FINAL).await;
    assert_eq!(done["status"], "approved", "{done}\n{}", client.logs());
    assert!(client.wait_state("tef-taken", "confirmed", FINAL).await);
    assert_eq!(client.sales().len(), 1, "never a second CRT");
}

/// Crash rules 3 and 4: killed after the answer was read but before its commit, and after
/// the commit but before the CNF: either way the restart commits and confirms it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_around_the_commit_the_approval_is_stored_then_confirmed() {
    for (n, failpoint) in ["after-terminal-result", "after-result-committed"]
        .into_iter()
        .enumerate()
    {
        let client = TefClient::start(&[]).await;
        let mut daemon = Daemon::start(Options {
            terminal_keys: Some(client.keys(2)),
            failpoint: Some(failpoint),
            ..Options::default()
        })
        .await;
        let receiver = CallbackReceiver::start(0).await;
        let id = format!("tef-commit-{n}");
        let credit = body(&id, json!(13), "Venda Direta Credito", &receiver);
        start_charge(&daemon.gateway(), &credit).await;
        assert!(
            daemon.wait_exit(FINAL).await.is_some(),
            "the failpoint {failpoint} kills the daemon"
        );
        assert_eq!(
            client.state_of(&id),
            ["pending"],
            "{failpoint}: not confirmed before the commit"
        );
        let daemon = daemon.restart().await;
        let done = daemon.gateway().poll_final(&credit, FINAL).await;
        assert_eq!(done["status"], "approved", "{failpoint}: {done}");
        assert!(
            client.wait_state(&id, "confirmed", FINAL).await,
            "{failpoint}: {}\n{}",
            client.record_text(),
            daemon.logs()
        );
        assert_eq!(receiver.wait_for(&id, FINAL).await[0].2, done);
    }
}

/// A cancel while the shopper is at the PIN pad: TEF Dial cannot abort, so it is pending
/// until the result, which is then undone (NCN), never confirmed; the payment never approved.
/// And the same with the daemon killed while it waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_at_the_pin_pad_waits_for_the_result_and_undoes_it() {
    for kill in [false, true] {
        // Longer than the 3 s a cancel waits for the terminal before answering cancel-pending.
        let client = TefClient::start(&["--approve-after-ms", "6000"]).await;
        let daemon = daemon_for(&client, Options::default()).await;
        let receiver = CallbackReceiver::start(0).await;
        let id = format!("tef-pinpad-{kill}");
        let credit = body(&id, json!(14), "Venda Direta Credito", &receiver);
        start_charge(&daemon.gateway(), &credit).await;
        assert!(
            daemon
                .wait_log("the TEF client took the sale", Duration::from_secs(10))
                .await
        );
        let (status, answer) = daemon
            .gateway()
            .post(
                &format!("/payments/{id}/cancellations"),
                &json!({ "requestId": "c-1" }),
            )
            .await;
        assert_eq!(
            (status, answer["code"].clone()),
            (500, json!("cancel-pending"))
        );
        let daemon = if kill {
            let mut daemon = daemon;
            daemon.kill();
            daemon.restart().await
        } else {
            daemon
        };
        let gateway = daemon.gateway();
        let cancelled = gateway.cancel_until_done(&id, "c-1").await;
        assert!(cancelled["cancellationId"].is_string());
        assert!(
            client.wait_state(&id, "undone", FINAL).await,
            "kill={kill}: {}\n{}",
            client.record_text(),
            daemon.logs()
        );
        let done = gateway.create(&credit).await;
        assert_ne!(done["status"], "approved", "{done}");
        assert_ne!(done["status"], "undefined", "{done}");
    }
}

/// A cancel of an approved TEF sale is a CNC naming the original network, NSU, date, time
/// and amount; the client gives the sale back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_after_the_approval_cancels_the_sale_on_the_client() {
    let client = TefClient::start(&[]).await;
    let daemon = daemon_for(&client, Options::default()).await;
    let receiver = CallbackReceiver::start(0).await;
    let done = pay(&daemon, &receiver, "tef-cnc", json!(15)).await;
    assert_eq!(done["status"], "approved", "{done}");
    assert!(client.wait_state("tef-cnc", "confirmed", FINAL).await);
    let cancelled = daemon.gateway().cancel_until_done("tef-cnc", "c-1").await;
    assert!(cancelled["cancellationId"].is_string());
    assert!(
        client.wait_state("tef-cnc", "cancelled", FINAL).await,
        "{}\n{}",
        client.record_text(),
        client.logs()
    );
}

/// An answer file that is not whole (cut before `999-999`, or garbage) is never read as an
/// answer: posbridge waits for the real one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_file_that_is_not_whole_is_never_read_as_one() {
    let client = TefClient::start(&["--fault", "garbage-answer"]).await;
    let daemon = daemon_for(&client, Options::default()).await;
    let receiver = CallbackReceiver::start(0).await;
    let done = pay(&daemon, &receiver, "tef-garbage", json!(16)).await;
    assert_eq!(done["status"], "approved", "{done}\n{}", client.logs());
    assert!(
        client.logs().contains("garbage-answer"),
        "the fault was applied: {}",
        client.logs()
    );
    assert!(client.wait_state("tef-garbage", "confirmed", FINAL).await);
}

/// The configuration: a key of another protocol names itself; a folder that is not there
/// fails `check-config`; `doctor` asks the client (ATV).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tef_dial_configuration_is_checked_and_doctor_asks_the_client() {
    let client = TefClient::start(&[]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let check = |keys: &str| {
        let options = Options {
            terminal_keys: Some(keys.to_string()),
            ..Options::default()
        };
        let path = dir.path().join("posbridge.toml");
        std::fs::write(&path, Daemon::config_text(dir.path(), &options)).expect("config");
        let out = Command::new(env!("CARGO_BIN_EXE_posbridge"))
            .args(["check-config", "--config"])
            .arg(&path)
            .output()
            .expect("check-config");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    assert_eq!(check(&client.keys(7)).0, Some(0));
    // The commented example in config/ is valid once uncommented (with this box's folders).
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/posbridge.toml"
    ))
    .expect("config");
    let keys: String = example
        .lines()
        .skip_while(|l| *l != "# protocol = \"tef-dial\"")
        .take_while(|l| l.starts_with("# "))
        .map(|l| format!("{}\n", l.trim_start_matches("# ")))
        .collect::<String>()
        .replace("/mnt/tef/req", &client.request_dir.display().to_string())
        .replace("/mnt/tef/resp", &client.response_dir.display().to_string());
    assert!(keys.contains("request_dir"), "the example: {keys}");
    assert_eq!(check(&keys).0, Some(0), "{keys}");
    let (code, err) = check(&format!(
        "{}\ntransport = \"tcp:127.0.0.1:1\"",
        client.keys(7)
    ));
    assert_eq!(code, Some(64), "{err}");
    assert!(err.contains("terminals[0].transport"), "{err}");
    let missing = client.keys(7).replace(
        &client.request_dir.display().to_string(),
        "/nonexistent/tef/req",
    );
    let (code, err) = check(&missing);
    assert_eq!(code, Some(64), "{err}");
    assert!(
        err.contains("request_dir") && err.contains("/nonexistent/tef/req"),
        "{err}"
    );

    let daemon = daemon_for(
        &client,
        Options {
            admin: true,
            ..Options::default()
        },
    )
    .await;
    let (_, out) = daemon.admin_cli("doctor", &[]);
    assert!(out.contains("the TEF client answered ATV"), "{out}");
}
