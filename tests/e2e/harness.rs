//! Test harness: the real compiled daemon on 127.0.0.1:0 with its own SQLite file, a Gateway
//! client, and a real HTTP server that receives callbacks.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{Value, json};

pub const APP_KEY: &str = "vtexappkey-test-merchant";
pub const APP_TOKEN: &str = "test-app-token-SECRET-3f9a";
pub const CALLBACK_KEY: &str = "vtexappkey-partner-test";
pub const CALLBACK_TOKEN: &str = "test-callback-token-SECRET-77c1";
pub const ONBOARDING_CODE: &str = "onboard-CODE-51e0";
pub const SERIAL: &str = "SIM-0001";
pub const SERIAL_2: &str = "SIM-0002";
pub const ADMIN_TOKEN: &str = "admin-token-SECRET-9b1c";

#[derive(Clone)]
pub struct Options {
    pub approve_after_ms: u64,
    pub result_timeout_s: u64,
    pub seconds_waiting: u32,
    pub first_retry_s: u64,
    pub test_suite_cards: bool,
    pub identify_terminal: bool,
    pub two_terminals: bool,
    pub log_level: &'static str,
    pub failpoint: Option<&'static str>,
    pub max_body_bytes: usize,
    pub shutdown_grace_s: u64,
    /// `Some(transport)`: lane-1 is a ZVT terminal there instead of the built-in simulator.
    pub zvt_transport: Option<String>,
    /// `Some(keys)`: lane-1's protocol keys as written (`protocol = "tef-dial"` …), instead of
    /// the built-in simulator or `zvt_transport`.
    pub terminal_keys: Option<String>,
    pub completion_timeout_s: u64,
    pub admin: bool,
    /// Extra environment for the daemon.
    pub env: Vec<(&'static str, String)>,
    /// `[payment_app] app_name`: a custom Payment App with the live feed.
    pub payment_app: Option<&'static str>,
    /// More `[server]` lines (TOML).
    pub server_extra: String,
    /// More tables, appended at the end (TOML).
    pub extra_config: String,
    /// Where the database (and the terminal journals beside it) live; default: the daemon's
    /// own temporary directory.
    pub database_dir: Option<PathBuf>,
    /// `[callbacks] give_up_after_s`.
    pub give_up_after_s: u64,
    /// The first terminal's id (its serial number stays `SERIAL`).
    pub terminal_id: &'static str,
    /// `[server] listen`: fixed when something must know the daemon's address before it
    /// starts (a terminal that notifies it).
    pub listen: String,
    /// The first terminal's serial number (the relay tier routes by it).
    pub serial: &'static str,
    /// No key pair in `[vtex]` (a store behind the relay tier, which holds them all).
    pub behind_relay: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            approve_after_ms: 200,
            result_timeout_s: 60,
            seconds_waiting: 600,
            first_retry_s: 1,
            test_suite_cards: false,
            identify_terminal: true,
            two_terminals: false,
            log_level: "debug",
            failpoint: None,
            max_body_bytes: 65_536,
            shutdown_grace_s: 10,
            zvt_transport: None,
            terminal_keys: None,
            completion_timeout_s: 30,
            admin: false,
            env: Vec::new(),
            payment_app: None,
            server_extra: String::new(),
            extra_config: String::new(),
            database_dir: None,
            give_up_after_s: 3600,
            terminal_id: "lane-1",
            listen: "127.0.0.1:0".to_string(),
            serial: SERIAL,
            behind_relay: false,
        }
    }
}

pub struct Daemon {
    dir: Arc<tempfile::TempDir>,
    options: Options,
    child: Child,
    pub base: String,
    /// The admin listener's address, when `Options::admin` is on.
    pub admin: Option<String>,
    logs: Arc<Mutex<String>>,
}

impl Daemon {
    pub async fn start(options: Options) -> Daemon {
        let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
        Self::spawn(dir, options).await
    }

    pub fn config_text(dir: &Path, o: &Options) -> String {
        let mut text = format!(
            r#"
[server]
listen = "{listen}"
max_body_bytes = {max_body}
shutdown_grace_s = {grace}
{server_extra}

[storage]
path = "{db}"

[vtex]
{vtex_keys}
test_suite_cards = {test_suite}

[pos]
seconds_waiting = {waiting}
delay_to_cancel = 900
identify_terminal = {identify}
allow_simulator = true

[callbacks]
first_retry_s = {first_retry}
max_interval_s = {max_interval}
give_up_after_s = {give_up}
request_timeout_s = 2

[onboarding]
code = "{ONBOARDING_CODE}"

{admin}
{payment_app}
[[terminals]]
id = "{terminal_id}"
serial_number = "{serial}"
result_timeout_s = {result_timeout}
{terminal}
"#,
            listen = o.listen,
            max_body = o.max_body_bytes,
            grace = o.shutdown_grace_s,
            server_extra = o.server_extra,
            db = o
                .database_dir
                .as_deref()
                .unwrap_or(dir)
                .join("posbridge.db")
                .display(),
            test_suite = o.test_suite_cards,
            waiting = o.seconds_waiting,
            identify = o.identify_terminal,
            first_retry = o.first_retry_s,
            max_interval = o.first_retry_s.max(2),
            give_up = o.give_up_after_s,
            result_timeout = o.result_timeout_s,
            terminal_id = o.terminal_id,
            serial = o.serial,
            vtex_keys = if o.behind_relay {
                String::new()
            } else {
                format!(
                    "app_key = \"{APP_KEY}\"\napp_token = \"{APP_TOKEN}\"\ncallback_app_key = \"{CALLBACK_KEY}\"\ncallback_app_token = \"{CALLBACK_TOKEN}\""
                )
            },
            admin = if o.admin {
                format!("[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"{ADMIN_TOKEN}\"\n")
            } else {
                String::new()
            },
            payment_app = match o.payment_app {
                Some(name) => format!("[payment_app]\napp_name = \"{name}\"\n"),
                None => String::new(),
            },
            terminal = match (&o.terminal_keys, &o.zvt_transport) {
                (Some(keys), _) => keys.clone(),
                (None, Some(transport)) => format!(
                    "protocol = \"zvt\"\ntransport = \"{transport}\"\nack_timeout_ms = 3000\ncompletion_timeout_s = {}",
                    o.completion_timeout_s
                ),
                (None, None) => format!(
                    "protocol = \"simulator\"\napprove_after_ms = {}",
                    o.approve_after_ms
                ),
            },
        );
        if o.two_terminals {
            text.push_str(&format!(
                "\n[[terminals]]\nid = \"lane-2\"\nserial_number = \"{SERIAL_2}\"\nprotocol = \"simulator\"\napprove_after_ms = {}\n",
                o.approve_after_ms
            ));
        }
        text.push('\n');
        text.push_str(&o.extra_config);
        text
    }

    async fn spawn(dir: Arc<tempfile::TempDir>, options: Options) -> Daemon {
        let config = dir.path().join("posbridge.toml");
        std::fs::write(&config, Self::config_text(dir.path(), &options)).expect("write config");
        let mut command = Command::new(env!("CARGO_BIN_EXE_posbridge"));
        command
            .args(["run", "--config"])
            .arg(&config)
            .args(["--log-level", options.log_level])
            .env_remove("RUST_LOG")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in &options.env {
            command.env(key, value);
        }
        match options.failpoint {
            Some(name) => command.env("POSBRIDGE_FAILPOINT", name),
            None => command.env_remove("POSBRIDGE_FAILPOINT"),
        };
        let mut child = command.spawn().expect("spawn posbridge");
        let logs = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        for stream in [
            Box::new(stdout) as Box<dyn std::io::Read + Send>,
            Box::new(stderr),
        ] {
            let logs = logs.clone();
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if let Some(addr) = line.split("admin listening on http://").nth(1) {
                        let _ = tx.send(format!("admin {}", addr.trim()));
                    } else if let Some(addr) = line.split("listening on https://").nth(1) {
                        let _ = tx.send(format!("https://{}", addr.trim()));
                    } else if let Some(addr) = line.split("listening on http://").nth(1) {
                        let _ = tx.send(addr.trim().to_string());
                    }
                    let mut logs = logs.lock().expect("logs");
                    logs.push_str(&line);
                    logs.push('\n');
                }
            });
        }
        let wants_admin = options.admin;
        let addrs = tokio::task::spawn_blocking(move || {
            let mut admin = None;
            loop {
                let line = rx.recv_timeout(Duration::from_secs(30))?;
                match line.strip_prefix("admin ") {
                    Some(a) => admin = Some(a.to_string()),
                    None => return Ok::<_, std::sync::mpsc::RecvTimeoutError>((line, admin)),
                }
            }
        })
        .await
        .expect("join");
        let Ok((addr, admin)) = addrs else {
            let _ = child.kill();
            panic!(
                "posbridge did not start; logs:\n{}",
                logs.lock().expect("logs")
            );
        };
        assert_eq!(admin.is_some(), wants_admin, "admin listener");
        Daemon {
            dir,
            options,
            child,
            base: if addr.starts_with("https://") {
                addr
            } else {
                format!("http://{addr}")
            },
            admin,
            logs,
        }
    }

    /// SIGKILL: no cleanup, no goodbye.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// A new daemon on the same directory (database, journal), without failpoints.
    pub async fn restart(self) -> Daemon {
        self.restart_with(|_| {}).await
    }

    /// As [`Daemon::restart`], with its options changed first (store IT edited the config).
    pub async fn restart_with(mut self, change: impl FnOnce(&mut Options)) -> Daemon {
        self.kill();
        let mut options = self.options.clone();
        options.failpoint = None;
        change(&mut options);
        let previous = self.logs();
        let daemon = Self::spawn(self.dir.clone(), options).await;
        daemon.logs.lock().expect("logs").insert_str(0, &previous);
        daemon
    }

    /// Waits (up to `limit`) for the process to exit by itself.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = tokio::time::Instant::now() + limit;
        while tokio::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    /// Whether the process has ended (killed, or died at a failpoint).
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The log as it grows (for a watcher that must not hold the daemon).
    pub fn log_handle(&self) -> Arc<Mutex<String>> {
        self.logs.clone()
    }

    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    pub fn logs(&self) -> String {
        self.logs.lock().expect("logs").clone()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn database_dir(&self) -> &Path {
        self.options
            .database_dir
            .as_deref()
            .unwrap_or(self.dir.path())
    }

    pub fn db_path(&self) -> PathBuf {
        self.database_dir().join("posbridge.db")
    }

    /// The files of the daemon's data directory that hold `needle`: the database, its `-wal`
    /// and `-shm`, the terminal journals and anything else there (the configuration files the
    /// test wrote excepted: they hold the secrets on purpose). Read while the daemon runs, so
    /// a row not yet checkpointed is seen in the `-wal`. Fails when there is no database to
    /// scan, so a "never stored" check cannot pass on an empty directory.
    pub fn files_holding(&self, needle: &str) -> Vec<PathBuf> {
        let mut scanned = Vec::new();
        let mut holding = Vec::new();
        let mut pending = vec![self.database_dir().to_path_buf()];
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(&dir).expect("read the data directory") {
                let path = entry.expect("directory entry").path();
                if path.is_dir() {
                    pending.push(path);
                    continue;
                }
                let written_by_the_test = path.parent() == Some(self.dir.path())
                    && path.extension().is_some_and(|e| e == "toml");
                if written_by_the_test {
                    continue;
                }
                // A file the daemon removes meanwhile (e.g. `-shm` at a stop) held nothing.
                let Ok(bytes) = std::fs::read(&path) else {
                    continue;
                };
                if bytes
                    .windows(needle.len())
                    .any(|window| window == needle.as_bytes())
                {
                    holding.push(path.clone());
                }
                scanned.push(path);
            }
        }
        assert!(
            scanned.contains(&self.db_path()),
            "no database to scan in {}: {scanned:?}",
            self.database_dir().display()
        );
        holding
    }

    /// Asserts that `needle` is in no file of the data directory (see [`Daemon::files_holding`]).
    pub fn assert_never_stored(&self, needle: &str, what: &str) {
        let holding = self.files_holding(needle);
        assert!(holding.is_empty(), "{what} is stored in {holding:?}");
    }

    /// The payment's callbacks in the outbox, oldest first: (state, attempts, body).
    pub fn outbox_of(&self, payment_id: &str) -> Vec<(String, i64, Value)> {
        let db = rusqlite::Connection::open(self.db_path()).expect("open the database");
        let mut rows = db
            .prepare("SELECT state, attempts, body FROM outbox WHERE payment_id = ?1 ORDER BY id")
            .expect("prepare");
        rows.query_map([payment_id], |r| {
            let body: String = r.get(2)?;
            Ok((
                r.get(0)?,
                r.get(1)?,
                serde_json::from_str(&body).unwrap_or(Value::String(body)),
            ))
        })
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
    }

    /// Waits until none of the payment's callbacks is pending: from then on nothing more is
    /// sent for it unless a new callback is queued. The definite signal a "delivered once"
    /// check waits for, instead of a sleep that passes when a second delivery is merely late.
    pub async fn wait_outbox_settled(
        &self,
        payment_id: &str,
        limit: Duration,
    ) -> Vec<(String, i64, Value)> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let rows = self.outbox_of(payment_id);
            if !rows.is_empty() && rows.iter().all(|(state, _, _)| state != "pending") {
                return rows;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "callbacks of {payment_id} still pending after {limit:?}: {rows:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until no callback at all is pending; how many were delivered.
    pub async fn wait_outbox_settled_all(&self, limit: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let db = rusqlite::Connection::open(self.db_path()).expect("open the database");
            let (pending, delivered): (i64, i64) = db
                .query_row(
                    "SELECT COUNT(*) FILTER (WHERE state = 'pending'),
                            COUNT(*) FILTER (WHERE state = 'delivered') FROM outbox",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .expect("the outbox");
            if pending == 0 {
                return usize::try_from(delivered).expect("a count");
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{pending} callbacks still pending after {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `posbridge backup` of this daemon's database (online) into `to`.
    pub fn backup_to(&self, to: &Path) {
        let out = Command::new(env!("CARGO_BIN_EXE_posbridge"))
            .args(["backup", "--config"])
            .arg(self.dir.path().join("posbridge.toml"))
            .arg(to)
            .output()
            .expect("backup");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// How many log lines hold every one of `needles`.
    pub fn log_lines_with(&self, needles: &[&str]) -> usize {
        self.logs()
            .lines()
            .filter(|line| needles.iter().all(|n| line.contains(n)))
            .count()
    }

    pub fn journal(&self) -> String {
        std::fs::read_to_string(self.database_dir().join("simulator-lane-1.journal"))
            .unwrap_or_default()
    }

    /// How many times the terminal was asked to charge this payment.
    pub fn charges_of(&self, payment_id: &str) -> usize {
        self.journal_entries(payment_id, "sale")
    }

    pub fn journal_entries(&self, reference: &str, kind: &str) -> usize {
        self.journal()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| {
                e["kind"] == kind && (e["reference"] == reference || e["sale_ref"] == reference)
            })
            .count()
    }

    /// `posbridge alarms` on this daemon's configuration: (exit code, stdout).
    pub fn alarms(&self) -> (Option<i32>, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_posbridge"))
            .args(["alarms", "--config"])
            .arg(self.dir.path().join("posbridge.toml"))
            .output()
            .expect("alarms");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
        )
    }

    /// `posbridge terminals ARGS…` against this daemon's admin listener: (exit code, output).
    pub fn terminals_cli(&self, args: &[&str]) -> (Option<i32>, String) {
        self.admin_cli("terminals", args)
    }

    /// `posbridge COMMAND --config <this daemon's config, admin port filled in> ARGS…`.
    pub fn admin_cli(&self, command: &str, args: &[&str]) -> (Option<i32>, String) {
        let admin = self.admin.as_ref().expect("admin listener on");
        let cli_config = self.dir.path().join("cli.toml");
        let text = std::fs::read_to_string(self.dir.path().join("posbridge.toml"))
            .expect("config")
            .replace(
                "listen = \"127.0.0.1:0\"\ntoken",
                &format!("listen = \"{admin}\"\ntoken"),
            );
        std::fs::write(&cli_config, text).expect("cli config");
        let out = Command::new(env!("CARGO_BIN_EXE_posbridge"))
            .args([command, "--config"])
            .arg(&cli_config)
            .args(args)
            .output()
            .expect("terminals");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr),
        )
    }

    /// GET on the admin listener with the admin token: the body.
    pub async fn admin_get(&self, path: &str) -> String {
        let admin = self.admin.as_ref().expect("admin listener on");
        reqwest::Client::new()
            .get(format!("http://{admin}{path}"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("admin request")
            .text()
            .await
            .expect("admin body")
    }

    pub fn gateway(&self) -> Gateway {
        Gateway::new(&self.base, APP_KEY, APP_TOKEN)
    }

    pub async fn wait_log(&self, needle: &str, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        while tokio::time::Instant::now() < deadline {
            if self.logs().contains(needle) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Plays the VTEX Payment Gateway.
#[derive(Clone)]
pub struct Gateway {
    pub client: reqwest::Client,
    pub base: String,
    key: String,
    token: String,
}

impl Gateway {
    pub fn new(base: &str, key: &str, token: &str) -> Gateway {
        Gateway {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            base: base.to_string(),
            key: key.to_string(),
            token: token.to_string(),
        }
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.post_raw(path, body.to_string().into_bytes(), &[])
            .await
    }

    pub async fn post_raw(
        &self,
        path: &str,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        self.try_post_raw(path, body, headers)
            .await
            .expect("request")
    }

    /// As [`Gateway::post_raw`], `None` when no answer came (the daemon died meanwhile).
    pub async fn try_post(&self, path: &str, body: &Value) -> Option<(u16, Value)> {
        self.try_post_raw(path, body.to_string().into_bytes(), &[])
            .await
    }

    pub async fn try_post_raw(
        &self,
        path: &str,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> Option<(u16, Value)> {
        let mut request = self
            .client
            .post(format!("{}{path}", self.base))
            .header("X-VTEX-API-AppKey", &self.key)
            .header("X-VTEX-API-AppToken", &self.token)
            .body(body);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let response = request.send().await.ok()?;
        let status = response.status().as_u16();
        let text = response.text().await.ok()?;
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        crate::spec_check::check_response("POST", path, status, &body);
        Some((status, body))
    }

    pub async fn create(&self, body: &Value) -> Value {
        let (status, answer) = self.post("/payments", body).await;
        assert_eq!(status, 200, "create answered {status}: {answer}");
        answer
    }

    /// Asks to cancel until the answer is 200 (every answer before it must be 500
    /// `cancel-pending`, never a claim); the 200 answer.
    pub async fn cancel_until_done(&self, payment_id: &str, request_id: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
        loop {
            let (status, answer) = self
                .post(
                    &format!("/payments/{payment_id}/cancellations"),
                    &json!({ "requestId": request_id }),
                )
                .await;
            if status == 200 {
                assert!(answer["cancellationId"].is_string(), "{answer}");
                return answer;
            }
            assert_eq!(
                (status, answer["code"].clone()),
                (500, json!("cancel-pending")),
                "{answer}"
            );
            assert!(answer["cancellationId"].is_null(), "{answer}");
            assert!(
                tokio::time::Instant::now() < deadline,
                "never cancelled: {answer}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Repeats Create (as the wait app makes the Gateway do) until the payment is final.
    pub async fn poll_final(&self, body: &Value, limit: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let answer = self.create(body).await;
            if answer["status"] != "undefined" {
                return answer;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "still undefined after {limit:?}: {answer}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

pub fn create_body(payment_id: &str, value: Value, method: &str, callback_url: &str) -> Value {
    json!({
        "reference": "order-1", "orderId": "v1-1", "shopperInteraction": "instore",
        "transactionId": format!("T-{payment_id}"), "paymentId": payment_id,
        "paymentMethod": method, "paymentMethodCustomCode": null, "merchantName": "store",
        "value": value, "currency": "BRL", "installments": 1, "deviceFingerprint": "x",
        "card": { "holder": null, "number": null, "csc": null, "expiration": { "month": null, "year": null } },
        "miniCart": { "buyer": { "firstName": "Ana" } },
        "url": "https://store.example/admin/order", "callbackUrl": callback_url,
        "returnUrl": "https://store.example/return", "sandBoxMode": false, "totalCartValue": value,
    })
}

/// The submitUrl from a terminal-connector-app answer.
pub fn submit_url(answer: &Value) -> String {
    assert_eq!(
        answer["paymentAppData"]["appName"], "vtex.terminal-connector-app",
        "{answer}"
    );
    let payload: Value = serde_json::from_str(
        answer["paymentAppData"]["payload"]
            .as_str()
            .expect("payload string"),
    )
    .expect("payload json");
    payload["submitUrl"]
        .as_str()
        .expect("submitUrl")
        .to_string()
}

pub async fn submit_serial(url: &str, body: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(url)
        .header("Content-Type", "text/plain")
        .body(body.to_string())
        .send()
        .await
        .expect("submit");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A payment through the whole POS flow (credit) to its final answer.
pub async fn pay(daemon: &Daemon, receiver: &CallbackReceiver, id: &str, value: Value) -> Value {
    let gateway = daemon.gateway();
    let body = create_body(id, value, "Venda Direta Credito", &receiver.url_for(id));
    start_charge(&gateway, &body).await;
    gateway.poll_final(&body, Duration::from_secs(40)).await
}

/// Drives a payment through the documented POS flow up to the charge: first Create, serial
/// scan, second Create. Returns the second answer.
pub async fn start_charge(gateway: &Gateway, body: &Value) -> Value {
    let first = gateway.create(body).await;
    assert_eq!(first["status"], "undefined");
    let url = submit_url(&first);
    let (status, bound) = submit_serial(&url, &json!({ "serialNumber": SERIAL }).to_string()).await;
    assert_eq!(status, 200, "{bound}");
    let second = gateway.create(body).await;
    assert_eq!(second["status"], "undefined", "{second}");
    assert_eq!(
        second["paymentAppData"]["appName"],
        "vtex.challenge-wait-for-confirmation"
    );
    second
}

/// Drives a payment to the charge (see [`start_charge`]) and waits until the built-in
/// simulator of lane-1 has the sale.
pub async fn start_sale(daemon: &Daemon, body: &Value) {
    start_charge(&daemon.gateway(), body).await;
    let id = body["paymentId"].as_str().expect("paymentId");
    assert!(
        daemon
            .wait_log(
                &format!("simulator: sale started terminal=lane-1 payment_id={id}"),
                Duration::from_secs(20)
            )
            .await,
        "the simulator never started {id}"
    );
}

/// Whether a callback carries the partner's key pair (`[vtex] callback_app_key/_token`).
fn from_partner(headers: &HeaderMap) -> bool {
    headers
        .get("X-VTEX-API-AppKey")
        .and_then(|v| v.to_str().ok())
        == Some(CALLBACK_KEY)
        && headers
            .get("X-VTEX-API-AppToken")
            .and_then(|v| v.to_str().ok())
            == Some(CALLBACK_TOKEN)
}

/// A real HTTP server that receives callbacks as the Gateway does: it refuses (401) a callback
/// without the partner's key pair, and it can fail its first attempts.
pub struct CallbackReceiver {
    pub base: String,
    state: Arc<ReceiverState>,
    server: tokio::task::AbortHandle,
}

struct ReceiverState {
    fail_first: AtomicUsize,
    attempts: AtomicUsize,
    /// Callbacks refused for want of the partner's key pair.
    refused: AtomicUsize,
    /// Attempts numbered below this are answered only after `hang_ms` (a slow or hanging
    /// Gateway; the callback counts as received when it arrives).
    hang_until: AtomicUsize,
    hang_ms: AtomicU64,
    received: Mutex<Vec<(HeaderMap, String, Value)>>,
}

/// What every callback signature of [`CallbackReceiver::url_for`] starts with: a credential,
/// searched for in every log and file the daemon writes.
pub const CALLBACK_SIGNATURE: &str = "SIGtestSECRET";

impl CallbackReceiver {
    pub async fn start(fail_first: usize) -> CallbackReceiver {
        Self::start_at(0, fail_first).await
    }

    /// A receiver on a given port of 127.0.0.1 (where callbacks were refused before).
    pub async fn start_on(port: u16) -> CallbackReceiver {
        Self::start_at(port, 0).await
    }

    async fn start_at(port: u16, fail_first: usize) -> CallbackReceiver {
        let state = Arc::new(ReceiverState {
            fail_first: AtomicUsize::new(fail_first),
            attempts: AtomicUsize::new(0),
            refused: AtomicUsize::new(0),
            hang_until: AtomicUsize::new(0),
            hang_ms: AtomicU64::new(0),
            received: Mutex::new(Vec::new()),
        });
        let handler_state = state.clone();
        let app = Router::new().route(
            "/{*path}",
            post(
                move |uri: axum::http::Uri, headers: HeaderMap, body: String| {
                    let state = handler_state.clone();
                    async move {
                        let n = state.attempts.fetch_add(1, Ordering::SeqCst);
                        // As the Gateway does: a callback without the partner's key pair is
                        // refused, so every test that waits for a callback proves them.
                        if !from_partner(&headers) {
                            state.refused.fetch_add(1, Ordering::SeqCst);
                            return StatusCode::UNAUTHORIZED;
                        }
                        if n < state.fail_first.load(Ordering::SeqCst) {
                            return StatusCode::SERVICE_UNAVAILABLE;
                        }
                        let value = serde_json::from_str(&body).unwrap_or(Value::Null);
                        state.received.lock().expect("lock").push((
                            headers,
                            uri.to_string(),
                            value,
                        ));
                        if n < state.hang_until.load(Ordering::SeqCst) {
                            let pause = state.hang_ms.load(Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(pause)).await;
                        }
                        StatusCode::OK
                    }
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        })
        .abort_handle();
        CallbackReceiver {
            base: format!("http://{addr}"),
            state,
            server,
        }
    }

    pub fn port(&self) -> u16 {
        self.base
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("a port")
    }

    /// Stops listening: callbacks to it are refused (connection refused) from now on. Only
    /// before any callback came: a kept-alive connection would outlive the listener.
    pub fn stop(&self) {
        self.server.abort();
    }

    /// The next `attempts` attempts are answered (200) only after `pause`.
    pub fn hang_first(&self, attempts: usize, pause: Duration) {
        let now = self.attempts();
        self.state.hang_ms.store(
            u64::try_from(pause.as_millis()).unwrap_or(u64::MAX),
            Ordering::SeqCst,
        );
        self.state
            .hang_until
            .store(now.saturating_add(attempts), Ordering::SeqCst);
    }

    /// The next `attempts` attempts fail with 503.
    pub fn fail_first_attempts(&self, attempts: usize) {
        let now = self.attempts();
        self.state
            .fail_first
            .store(now.saturating_add(attempts), Ordering::SeqCst);
    }

    /// A callback URL as VTEX builds them, with a signature in the query.
    pub fn url_for(&self, payment_id: &str) -> String {
        format!(
            "{}/api/pvt/payment-provider/transactions/T-{payment_id}/payments/{payment_id}/callback?accountName=store&X-VTEX-signature={CALLBACK_SIGNATURE}{payment_id}",
            self.base
        )
    }

    pub fn fail_always(&self) {
        self.state.fail_first.store(usize::MAX, Ordering::SeqCst);
    }

    pub fn succeed_from_now(&self) {
        self.state.fail_first.store(0, Ordering::SeqCst);
    }

    pub fn attempts(&self) -> usize {
        self.state.attempts.load(Ordering::SeqCst)
    }

    /// Delivered callbacks for a payment: (headers, full URI, body).
    pub fn for_payment(&self, payment_id: &str) -> Vec<(HeaderMap, String, Value)> {
        self.state
            .received
            .lock()
            .expect("lock")
            .iter()
            .filter(|(_, _, body)| body["paymentId"] == payment_id)
            .cloned()
            .collect()
    }

    pub async fn wait_for(
        &self,
        payment_id: &str,
        limit: Duration,
    ) -> Vec<(HeaderMap, String, Value)> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let refused = self.state.refused.load(Ordering::SeqCst);
            assert_eq!(
                refused, 0,
                "{refused} callback(s) came without the partner's X-VTEX-API-AppKey/AppToken"
            );
            let got = self.for_payment(payment_id);
            if !got.is_empty() || tokio::time::Instant::now() >= deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A protocol simulator in a process of its own (`posbridge simulate-terminal …`): its stderr
/// collected as it comes, its first stdout line (where it listens, or what it watches) read,
/// the rest of stdout drained so that it never blocks on a full pipe.
pub struct SimulatorProcess {
    pub child: Child,
    pub logs: Arc<Mutex<String>>,
    pub first_line: String,
}

pub async fn spawn_simulator(args: &[String]) -> SimulatorProcess {
    let mut child = Command::new(env!("CARGO_BIN_EXE_posbridge"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the simulator");
    let logs = Arc::new(Mutex::new(String::new()));
    let stderr = child.stderr.take().expect("stderr");
    let sink = logs.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let mut logs = sink.lock().expect("logs");
            logs.push_str(&line);
            logs.push('\n');
        }
    });
    let stdout = child.stdout.take().expect("stdout");
    let first_line = tokio::task::spawn_blocking(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        std::thread::spawn(move || for _ in reader.lines() {});
        line.trim().to_string()
    })
    .await
    .expect("join");
    SimulatorProcess {
        child,
        logs,
        first_line,
    }
}
