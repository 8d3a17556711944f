//! nexo / Adyen Terminal API on the compiled daemon, against `posbridge simulate-terminal nexo`
//! over real TLS: sales (credit with installments, debit, a decline), a reversal, posbridge
//! killed mid-sale and the sale found by `TransactionStatus`, and a certificate for another
//! environment refused.

use std::path::Path;
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::*;
use crate::zvt_recovery::kill_mid_sale;

const FINAL: Duration = Duration::from_secs(40);
const POI_ID: &str = "P400Plus-275008565";

/// An Adyen terminal simulator process with its own certificate, key and record; it goes on
/// with a sale while the daemon is down. The proof suite's nexo row starts it too.
pub struct NexoTerminal {
    child: Child,
    url: String,
    logs: Arc<Mutex<String>>,
    dir: tempfile::TempDir,
}

impl NexoTerminal {
    pub async fn start(extra: &[&str]) -> NexoTerminal {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("key"), "a test passphrase\n").expect("key");
        let path = |name: &str| dir.path().join(name).display().to_string();
        let mut args: Vec<String> = [
            "simulate-terminal",
            "nexo",
            "--listen",
            "https:127.0.0.1:0",
            "--poi-id",
            POI_ID,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for (option, name) in [
            ("--passphrase-file", "key"),
            ("--ca-out", "ca.pem"),
            ("--record", "record.jsonl"),
        ] {
            args.extend([option.to_string(), path(name)]);
        }
        if !extra.contains(&"--approve-after-ms") {
            args.extend(["--approve-after-ms".to_string(), "300".to_string()]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let SimulatorProcess {
            child,
            logs,
            first_line,
        } = spawn_simulator(&args).await;
        let url = first_line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line `{first_line}`"))
            .to_string();
        NexoTerminal {
            child,
            url,
            logs,
            dir,
        }
    }

    /// lane-1's keys for this terminal, expecting a certificate of `environment`.
    pub fn keys(&self, environment: &str) -> String {
        self.keys_with_passphrase(environment, &self.dir.path().join("key"))
    }

    /// lane-1's keys for this terminal, with the daemon's passphrase read from `passphrase_file`
    /// (the terminal's own is "a test passphrase").
    fn keys_with_passphrase(&self, environment: &str, passphrase_file: &Path) -> String {
        format!(
            "protocol = \"nexo\"\nurl = \"{}\"\npoi_id = \"{POI_ID}\"\nsale_id = \"store-1-lane-1\"\nkey_identifier = \"posbridge\"\nkey_version = 1\npassphrase_file = \"{}\"\nca_file = \"{}\"\nenvironment = \"{environment}\"",
            self.url,
            passphrase_file.display(),
            self.dir.path().join("ca.pem").display()
        )
    }

    pub fn logs(&self) -> String {
        self.logs.lock().expect("logs").clone()
    }

    /// The terminal's own record (`--record`): one JSON line per sale it took, with its state.
    pub fn record_text(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("record.jsonl")).unwrap_or_default()
    }

    /// The record's sales, as JSON.
    fn sales(&self) -> Vec<Value> {
        self.record_text()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    async fn wait_state(&self, reference: &str, state: &str) -> bool {
        let deadline = tokio::time::Instant::now() + FINAL;
        while tokio::time::Instant::now() < deadline {
            if self
                .sales()
                .iter()
                .any(|s| s["reference"] == reference && s["state"] == state)
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }
}

impl Drop for NexoTerminal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn daemon_for(terminal: &NexoTerminal, environment: &str) -> Daemon {
    Daemon::start(Options {
        terminal_keys: Some(terminal.keys(environment)),
        ..Options::default()
    })
    .await
}

fn body(id: &str, value: Value, method: &str, receiver: &CallbackReceiver) -> Value {
    create_body(id, value, method, &receiver.url_for(id))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nexo_sales_approve_credit_with_installments_and_debit_decline_and_reverse() {
    let terminal = NexoTerminal::start(&[]).await;
    let daemon = daemon_for(&terminal, "test").await;
    let receiver = CallbackReceiver::start(0).await;
    let gateway = daemon.gateway();

    let mut credit = body("nx-credit", json!(300), "Venda Direta Credito", &receiver);
    credit["installments"] = json!(3);
    start_charge(&gateway, &credit).await;
    let done = gateway.poll_final(&credit, FINAL).await;
    assert_eq!(done["status"], "approved", "{done}\n{}", terminal.logs());
    assert_eq!(done["cardBrand"], "visa", "{done}");
    assert_eq!(done["firstDigits"], "411111", "{done}");
    assert_eq!(done["lastDigits"], "1111", "{done}");
    assert!(
        done["authorizationId"]
            .as_str()
            .is_some_and(|a| !a.is_empty()),
        "{done}"
    );
    assert!(
        done["nsu"].as_str().is_some_and(|n| !n.is_empty()),
        "{done}"
    );
    assert_eq!(receiver.wait_for("nx-credit", FINAL).await[0].2, done);
    assert!(
        terminal
            .logs()
            .lines()
            .any(|l| l.contains("sale taken payment_id=nx-credit") && l.contains("installments=3")),
        "{}",
        terminal.logs()
    );

    let debit = body("nx-debit", json!(20), "Venda Direta Debito", &receiver);
    start_charge(&gateway, &debit).await;
    let done = gateway.poll_final(&debit, FINAL).await;
    assert_eq!(done["status"], "approved", "{done}");
    assert!(
        terminal
            .logs()
            .lines()
            .any(|l| l.contains("sale taken payment_id=nx-debit") && l.contains("debit=true")),
        "{}",
        terminal.logs()
    );

    let declined = body(
        "nx-declined",
        json!(10.01),
        "Venda Direta Credito",
        &receiver,
    );
    start_charge(&gateway, &declined).await;
    let done = gateway.poll_final(&declined, FINAL).await;
    assert_eq!(done["status"], "denied", "{done}");

    // Cancelling an approved payment reverses its POI transaction on the terminal.
    let cancelled = gateway
        .cancel_until_done("nx-debit", "cancel-nx-debit")
        .await;
    assert!(cancelled["cancellationId"].is_string(), "{cancelled}");
    assert!(
        terminal.wait_state("nx-debit", "reversed").await,
        "{:?}",
        terminal.sales()
    );
    assert!(terminal.wait_state("nx-credit", "approved").await);
    // The shared key and the card numbers stay out of the daemon's logs.
    let logs = daemon.logs();
    for secret in ["a test passphrase", "4111111111111111", "5555555555554444"] {
        assert!(!logs.contains(secret), "`{secret}` in the logs");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nexo_a_sale_posbridge_died_during_is_found_by_transaction_status() {
    let terminal = NexoTerminal::start(&["--approve-after-ms", "3000"]).await;
    let daemon = daemon_for(&terminal, "test").await;
    let receiver = CallbackReceiver::start(0).await;
    let sale = body("nx-killed", json!(42), "Venda Direta Credito", &receiver);
    let daemon = kill_mid_sale(daemon, &sale).await.restart().await;
    let done = daemon.gateway().poll_final(&sale, FINAL).await;
    assert_eq!(
        done["status"],
        "approved",
        "{done}\n{}\n{}",
        daemon.logs(),
        terminal.logs()
    );
    let taken: Vec<Value> = terminal
        .sales()
        .into_iter()
        .filter(|s| s["reference"] == "nx-killed")
        .collect();
    assert_eq!(taken.len(), 1, "never sent twice: {taken:?}");
    assert_eq!(taken[0]["state"], "approved", "{taken:?}");
    assert!(
        daemon
            .logs()
            .contains("recovery: the terminal reports the sale completed payment_id=nx-killed"),
        "{}",
        daemon.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nexo_a_test_certificate_on_a_live_setting_is_refused_and_nothing_charged() {
    let terminal = NexoTerminal::start(&[]).await;
    let daemon = daemon_for(&terminal, "live").await;
    let receiver = CallbackReceiver::start(0).await;
    let sale = body("nx-live", json!(15), "Venda Direta Credito", &receiver);
    start_charge(&daemon.gateway(), &sale).await;
    let done = daemon.gateway().poll_final(&sale, FINAL).await;
    assert_eq!(done["status"], "denied", "{done}");
    assert_eq!(done["code"], "terminal-offline", "{done}");
    assert!(
        daemon
            .logs()
            .contains(&format!("{POI_ID}.live.terminal.adyen.com")),
        "the error names the certificate name expected: {}",
        daemon.logs()
    );
    assert!(terminal.sales().is_empty(), "{:?}", terminal.sales());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nexo_a_lost_answer_is_settled_by_transaction_status_never_by_a_second_sale() {
    let terminal = NexoTerminal::start(&["--fault", "drop-answer"]).await;
    let daemon = daemon_for(&terminal, "test").await;
    let receiver = CallbackReceiver::start(0).await;
    let sale = body("nx-dropped", json!(33), "Venda Direta Credito", &receiver);
    start_charge(&daemon.gateway(), &sale).await;
    let done = daemon.gateway().poll_final(&sale, FINAL).await;
    assert_eq!(done["status"], "approved", "{done}\n{}", terminal.logs());
    assert!(terminal.logs().contains("fault drop-answer"));
    assert!(
        daemon
            .logs()
            .contains("TransactionStatus: the terminal reports the payment's result"),
        "{}",
        daemon.logs()
    );
    let taken = terminal.sales();
    assert_eq!(taken.len(), 1, "never sent twice: {taken:?}");
}

/// The Gateway cancels while the shopper is still at the terminal: posbridge sends an
/// `AbortRequest` for the sale's `ServiceID`, then asks `TransactionStatus` what became of it,
/// and reports it denied only once the terminal says it was aborted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nexo_a_cancel_while_charging_aborts_the_sale_on_the_terminal() {
    // Longer than the test: only the abort can end this sale.
    let terminal = NexoTerminal::start(&["--approve-after-ms", "60000"]).await;
    let daemon = daemon_for(&terminal, "test").await;
    let receiver = CallbackReceiver::start(0).await;
    let gateway = daemon.gateway();
    let sale = body("nx-abort", json!(27), "Venda Direta Credito", &receiver);
    start_charge(&gateway, &sale).await;
    assert!(
        terminal.wait_state("nx-abort", "running").await,
        "the terminal never took the sale: {}",
        terminal.logs()
    );
    let cancelled = gateway
        .cancel_until_done("nx-abort", "cancel-nx-abort")
        .await;
    assert_eq!(cancelled["requestId"], "cancel-nx-abort", "{cancelled}");
    let done = gateway.poll_final(&sale, FINAL).await;
    assert_eq!(done["status"], "denied", "{done}\n{}", daemon.logs());
    let callbacks = receiver.wait_for("nx-abort", FINAL).await;
    assert_eq!(callbacks.len(), 1, "{callbacks:?}");
    assert_eq!(
        callbacks[0].2, done,
        "the callback carries the final answer"
    );
    // The terminal's own record: the one sale it took was aborted, never approved.
    let taken = terminal.sales();
    assert_eq!(taken.len(), 1, "{taken:?}");
    assert_eq!(taken[0]["state"], "aborted", "{taken:?}");
    assert_eq!(taken[0]["approved"], false, "{taken:?}");
    // After the abort, posbridge asked the terminal about that very sale (its ServiceID).
    let logs = terminal.logs();
    let lines: Vec<&str> = logs.lines().collect();
    let aborted_at = lines
        .iter()
        .position(|l| l.contains("abort of the running sale payment_id=nx-abort"))
        .unwrap_or_else(|| panic!("no abort reached the terminal:\n{logs}"));
    let service_id = taken[0]["service_id"].as_str().expect("service_id");
    assert!(
        lines[aborted_at + 1..]
            .iter()
            .any(|l| l.contains("nexo simulator: transaction status")
                && l.contains(service_id)
                && l.contains("result=Success")),
        "no TransactionStatus for {service_id} after the abort:\n{logs}"
    );
}

/// The daemon's passphrase is not the terminal's: the terminal refuses every request in clear
/// (`Nexo Service: crypto error`) before doing anything with it, so the sale is denied as not
/// sent, nothing is charged, and store IT is told to check the key on both sides.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nexo_a_wrong_key_is_refused_by_the_terminal_and_shown_as_a_key_problem() {
    let terminal = NexoTerminal::start(&[]).await;
    let wrong = tempfile::tempdir().expect("tempdir");
    let passphrase_file = wrong.path().join("key");
    std::fs::write(&passphrase_file, "another passphrase\n").expect("key");
    let daemon = Daemon::start(Options {
        terminal_keys: Some(terminal.keys_with_passphrase("test", &passphrase_file)),
        admin: true,
        ..Options::default()
    })
    .await;
    let receiver = CallbackReceiver::start(0).await;
    let sale = body("nx-wrong-key", json!(18), "Venda Direta Credito", &receiver);
    start_charge(&daemon.gateway(), &sale).await;
    let done = daemon.gateway().poll_final(&sale, FINAL).await;
    assert_eq!(done["status"], "denied", "{done}");
    assert_eq!(done["code"], "terminal-offline", "not sent: {done}");
    assert!(
        terminal
            .logs()
            .contains("request does not decrypt or its HMAC does not match"),
        "{}",
        terminal.logs()
    );
    assert!(terminal.sales().is_empty(), "{:?}", terminal.sales());
    let key_problem = "check key_identifier, key_version and the passphrase on both sides";
    let logs = daemon.logs();
    assert!(
        logs.lines().any(|l| l.contains("payment_id=nx-wrong-key")
            && l.contains("Nexo Service: crypto error")
            && l.contains(key_problem)),
        "{logs}"
    );
    let (code, out) = daemon.terminals_cli(&["list", "--json"]);
    assert_eq!(code, Some(0), "{out}");
    let list: Value = serde_json::from_str(out.trim()).expect("json");
    let lane = &list["terminals"][0];
    assert_eq!(lane["online"], false, "{lane}");
    assert!(
        lane["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("crypto error") && e.contains(key_problem)),
        "{lane}"
    );
    let (code, out) = daemon.terminals_cli(&["probe", "lane-1"]);
    assert_ne!(code, Some(0), "{out}");
    assert!(out.contains(key_problem), "{out}");
    for secret in ["a test passphrase", "another passphrase"] {
        assert!(!logs.contains(secret), "`{secret}` in the logs");
    }
}

// ---------------------------------------------------------------------------------------------
// Display notifications: the terminal's prompts on the Payment App feed.

mod notifications {
    use firmware_protocols::nexo::crypto::{KeyIdentity, KeyMaterial};
    use firmware_protocols::nexo::notification::Notification;
    use firmware_protocols::nexo::seal_request;

    use super::*;
    use crate::payment_app::{APP, connect, read_all, start_with_app, ws_url};

    /// A port free now, for a daemon the terminal must know before it starts.
    fn free_port() -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    }

    /// A display notification for lane-1's terminal sealed under `passphrase`.
    fn display(passphrase: &[u8], text: &str) -> Vec<u8> {
        let notification =
            Notification::display(POI_ID, "store-1-lane-1", None, "WAIT_FOR_PIN", text);
        let identity = KeyIdentity {
            key_identifier: "posbridge".to_string(),
            key_version: 1,
        };
        seal_request(
            &notification.into_request(),
            &KeyMaterial::derive(passphrase),
            &identity,
        )
        .expect("sealed")
    }

    /// POSTs `body`: the status and the answer's text.
    async fn post(url: &str, body: Vec<u8>) -> (u16, String) {
        let answer = reqwest::Client::new()
            .post(url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("posted");
        let status = answer.status().as_u16();
        (status, answer.text().await.expect("answer"))
    }

    /// The `code` of an error answer.
    fn code(answer: &str) -> Option<String> {
        let error: Value = serde_json::from_str(answer).ok()?;
        error["code"].as_str().map(str::to_string)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nexo_display_notifications_show_on_the_feed_and_a_forged_one_is_refused() {
        let port = free_port();
        let notify_url = format!("http://127.0.0.1:{port}/nexo/notifications");
        let terminal =
            NexoTerminal::start(&["--notify-url", &notify_url, "--approve-after-ms", "1500"]).await;
        let daemon = Daemon::start(Options {
            terminal_keys: Some(terminal.keys("test")),
            payment_app: Some(APP),
            listen: format!("127.0.0.1:{port}"),
            ..Options::default()
        })
        .await;
        let receiver = CallbackReceiver::start(0).await;
        let sale = body("nx-shown", json!(25), "Venda Direta Credito", &receiver);
        let mut feed = connect(&ws_url(&start_with_app(&daemon.gateway(), &sale).await)).await;
        assert!(terminal.wait_state("nx-shown", "running").await);

        // While the sale runs: a notification under another key, and one in clear.
        let (status, refused) =
            post(&notify_url, display(b"not the terminal's key", "forged")).await;
        assert_eq!(
            (status, code(&refused).as_deref()),
            (403, Some("bad-seal")),
            "{refused}"
        );
        let clear = Notification::display(POI_ID, "store-1-lane-1", None, "X", "in clear")
            .into_request()
            .to_json()
            .expect("json");
        let (status, refused) = post(&notify_url, clear).await;
        assert_eq!(
            (status, code(&refused).as_deref()),
            (400, Some("not-sealed")),
            "{refused}"
        );

        let (events, _) = read_all(&mut feed, FINAL).await;
        let prompts: Vec<&str> = events
            .iter()
            .filter(|e| e["type"] == "prompt")
            .filter_map(|e| e["text"].as_str())
            .collect();
        let from_the_terminal: Vec<&str> = prompts
            .iter()
            .copied()
            .filter(|p| *p != "Follow the terminal")
            .collect();
        assert_eq!(
            from_the_terminal,
            [
                "insert, tap or swipe card",
                "enter PIN",
                "processing, please wait",
                "approved"
            ],
            "{events:?}\n{}",
            terminal.logs()
        );
        let done = daemon.gateway().poll_final(&sale, FINAL).await;
        assert_eq!(done["status"], "approved", "{done}");
        // Authentic but about no running sale: acknowledged as Adyen expects, shown nowhere.
        let (status, answer) = post(&notify_url, display(b"a test passphrase", "late")).await;
        assert_eq!((status, answer.as_str()), (200, "[accepted]"));
        assert!(
            daemon.logs().contains("nexo notification refused"),
            "{}",
            daemon.logs()
        );
    }
}
