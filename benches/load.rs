//! The load generator (issue 14): figures, not pass/fail, against their ceilings measured in
//! the same run on the same machine. It starts the release daemon (the default configuration,
//! simulator terminals at zero delay, logging at the default level), plays the Gateway, the
//! Sales App and the Gateway's callback receiver, and prints per step p50/p99/max latency and
//! throughput, terminal result → callback received, the daemon's RSS and CPU time, database
//! bytes per 1,000 payments, startup to ready and the binary's size. The ceilings: a plain axum
//! handler answering static JSON (a process of its own, the same client and concurrency) and
//! SQLite's one-row durable commits (WAL, `synchronous=FULL`) on the same disk.
//!
//! `cargo bench --bench load`; what docs/performance.md explains. Settings (environment):
//! `POSBRIDGE_LOAD_CLIENTS` (64: concurrent clients, one kept-alive connection each),
//! `POSBRIDGE_LOAD_SECONDS` (5: each timed phase), `POSBRIDGE_LOAD_TERMINALS` (8: simulator
//! terminals, the sales spread over them), `POSBRIDGE_LOAD_IN_FLIGHT` (10000: undefined payments
//! created before the RSS reading "in flight").

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::Path as UrlPath;
use axum::http::{StatusCode, header};
use axum::routing::post;
use serde_json::{Value, json};

const APP_KEY: &str = "vtexappkey-load";
const APP_TOKEN: &str = "load-app-token";
/// Set in the environment of the bench binary started again as the static-JSON ceiling.
const ROLE: &str = "POSBRIDGE_LOAD_ROLE";
/// What the ceiling answers: the bytes of posbridge's own `GET /manifest`.
const STATIC_JSON: &str = r#"{"paymentMethods":[{"name":"Venda Direta Credito","allowsSplit":"onCapture"},{"name":"Venda Direta Debito","allowsSplit":"onCapture"}],"customFields":[]}"#;
/// Between two polls of one payment in the whole flow: the wait app polls, it does not spin.
const FLOW_POLL_PAUSE: Duration = Duration::from_millis(10);
/// The names of a flow phase's steps, and how its paymentIds begin.
struct FlowSteps {
    id_prefix: &'static str,
    create_new: &'static str,
    submit: &'static str,
    starts: &'static str,
    poll_charging: &'static str,
    poll_final: &'static str,
    charge_to_final: &'static str,
}

/// `clients` concurrent flows: far more payments at once than the terminals can take (they
/// queue on the lanes), to load the daemon.
const BUSY_FLOW: FlowSteps = FlowSteps {
    id_prefix: "flow",
    create_new: "flow: create, new payment",
    submit: "flow: submitUrl (Sales App)",
    starts: "flow: create, starts the charge",
    poll_charging: "flow: poll while charging",
    poll_final: "flow: poll answering final",
    charge_to_final: "flow: charge started → final answer",
};

/// One flow per terminal: the most sales a store can have at once.
const STORE_FLOW: FlowSteps = FlowSteps {
    id_prefix: "paced",
    create_new: "store pace: create, new payment",
    submit: "store pace: submitUrl (Sales App)",
    starts: "store pace: create, starts the charge",
    poll_charging: "store pace: poll while charging",
    poll_final: "store pace: poll answering final",
    charge_to_final: "store pace: charge started → final answer",
};

/// The simulator approves an amount ending in .04 after 20 s: a payment that stays charging.
const SLOW_SALE_VALUE: f64 = 10.04;

struct Settings {
    clients: usize,
    phase: Duration,
    terminals: usize,
    in_flight: usize,
}

fn env_or<T: FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(text) => text
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text}: not a number")),
        Err(_) => default,
    }
}

impl Settings {
    fn from_env() -> Self {
        Self {
            clients: env_or("POSBRIDGE_LOAD_CLIENTS", 64usize).max(1),
            phase: Duration::from_secs(env_or("POSBRIDGE_LOAD_SECONDS", 5u64).max(1)),
            terminals: env_or("POSBRIDGE_LOAD_TERMINALS", 8usize).max(1),
            in_flight: env_or("POSBRIDGE_LOAD_IN_FLIGHT", 10_000usize),
        }
    }
}

fn main() {
    if std::env::var(ROLE).is_ok_and(|role| role == "static-server") {
        static_server();
        return;
    }
    let settings = Settings::from_env();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(settings));
}

/// The ceiling for HTTP: a plain axum handler, static JSON, the daemon's runtime defaults.
fn static_server() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        // The body is read, as every handler of the daemon reads it.
        let answer = |_body: axum::body::Bytes| async {
            ([(header::CONTENT_TYPE, "application/json")], STATIC_JSON)
        };
        let app = Router::new().fallback(answer);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        println!(
            "listening on http://{}",
            listener.local_addr().expect("address")
        );
        axum::serve(listener, app).await.expect("serve");
    });
}

async fn run(settings: Settings) {
    let dir = tempfile::tempdir().expect("tempdir");
    let binary = env!("CARGO_BIN_EXE_posbridge");
    let binary_bytes = std::fs::metadata(binary).expect("the daemon binary").len();
    println!(
        "load: {} clients (one connection each), {} s phases, {} simulator terminals at zero delay; {} cores",
        settings.clients,
        settings.phase.as_secs(),
        settings.terminals,
        std::thread::available_parallelism().map_or(0, usize::from),
    );

    // The ceilings first, alone on the machine.
    let mut ceiling = Spawned::start(
        Command::new(std::env::current_exe().expect("this binary")).env(ROLE, "static-server"),
    );
    let static_get = {
        let url = format!("{}/manifest", ceiling.base);
        run_phase(
            settings.clients,
            settings.phase,
            move |_, client, deadline| get_until(client, url.clone(), deadline, "static: GET"),
        )
        .await
    };
    let static_post = {
        let url = format!("{}/payments", ceiling.base);
        let body = create_body("static", 10.0, "http://127.0.0.1:9/cb").to_string();
        run_phase(
            settings.clients,
            settings.phase,
            move |_, client, deadline| {
                let (url, body) = (url.clone(), body.clone());
                async move {
                    let mut steps = Steps::default();
                    while Instant::now() < deadline {
                        let started = Instant::now();
                        match post_json(&client, &url, body.clone()).await {
                            Ok((200, _)) => steps.record("static: POST (JSON body)", started),
                            other => steps.error(format!("static POST: {other:?}")),
                        }
                    }
                    steps
                }
            },
        )
        .await
    };
    ceiling.stop();
    let sqlite = sqlite_ceiling(dir.path(), settings.phase);

    // The daemon.
    let receiver = CallbackReceiver::start().await;
    let config = dir.path().join("posbridge.toml");
    std::fs::write(&config, daemon_config(dir.path(), settings.terminals)).expect("config");
    let spawned_at = Instant::now();
    let mut daemon = Spawned::start(
        Command::new(binary)
            .args(["run", "--config"])
            .arg(&config)
            .env_remove("RUST_LOG")
            .current_dir(dir.path()),
    );
    let ready = wait_healthy(&daemon.base, spawned_at).await;
    let pid = daemon.child.id();
    // Idle: what the first seconds settled to.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_rss = proc_status_kib(pid, "VmRSS");
    let gateway = Arc::new(GatewayTarget {
        base: daemon.base.clone(),
        callbacks: receiver.base.clone(),
        terminals: settings.terminals,
    });

    let mut cpu = CpuMeter::new(pid);
    let fill = {
        let target = gateway.clone();
        let total = settings.in_flight;
        let next = Arc::new(AtomicUsize::new(0));
        run_phase(settings.clients, Duration::ZERO, move |_, client, _| {
            let (target, next) = (target.clone(), next.clone());
            async move {
                let mut steps = Steps::default();
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= total {
                        break;
                    }
                    let body = target.create_body(&format!("idle-{n}"), 10.0);
                    let started = Instant::now();
                    match target.create(&client, &body).await {
                        Ok(answer) if answer["status"] == "undefined" => {
                            steps.record("create: new payment (fill)", started);
                        }
                        other => steps.error(format!("fill create: {other:?}")),
                    }
                }
                steps
            }
        })
        .await
    };
    let in_flight_rss = proc_status_kib(pid, "VmRSS");
    let fill_cpu = cpu.lap();

    let manifest = {
        let url = format!("{}/manifest", gateway.base);
        run_phase(
            settings.clients,
            settings.phase,
            move |_, client, deadline| get_until(client, url.clone(), deadline, "GET /manifest"),
        )
        .await
    };
    let manifest_cpu = cpu.lap();

    let writer_before = thread_cpu_time(pid, "sqlite-writer");
    let creates = {
        let target = gateway.clone();
        run_phase(
            settings.clients,
            settings.phase,
            move |worker, client, deadline| {
                let target = target.clone();
                async move {
                    let mut steps = Steps::default();
                    let mut n = 0;
                    while Instant::now() < deadline {
                        n += 1;
                        let body = target.create_body(&format!("new-{worker}-{n}"), 10.0);
                        let started = Instant::now();
                        match target.create(&client, &body).await {
                            Ok(answer) if answer["status"] == "undefined" => {
                                steps.record("create: new payment (durable)", started);
                            }
                            other => steps.error(format!("create: {other:?}")),
                        }
                    }
                    steps
                }
            },
        )
        .await
    };
    let creates_cpu = cpu.lap();
    let writer_busy = thread_cpu_time(pid, "sqlite-writer").saturating_sub(writer_before);

    let flow = flow_phase(&gateway, settings.clients, settings.phase, &BUSY_FLOW).await;
    let flow_cpu = cpu.lap();
    let finished = flow.steps.finished.clone();
    let callbacks = receiver.wait_for(&finished, Duration::from_secs(30)).await;
    // The deliveries' CPU belongs to no timed phase.
    cpu.lap();

    let store_pace = flow_phase(&gateway, settings.terminals, settings.phase, &STORE_FLOW).await;
    let store_pace_cpu = cpu.lap();
    let store_pace_callbacks = receiver
        .wait_for(&store_pace.steps.finished, Duration::from_secs(30))
        .await;
    cpu.lap();

    let final_polls = {
        let target = gateway.clone();
        let finished = Arc::new(finished.clone());
        run_phase(
            settings.clients,
            settings.phase,
            move |worker, client, deadline| {
                let (target, finished) = (target.clone(), finished.clone());
                async move {
                    let mut steps = Steps::default();
                    let Some(body) = finished.get(worker % finished.len().max(1)) else {
                        steps.error("no final payment to poll".to_string());
                        return steps;
                    };
                    while Instant::now() < deadline {
                        let started = Instant::now();
                        match target.create(&client, body).await {
                            Ok(answer) if answer["status"] == "approved" => {
                                steps.record("poll: a final payment", started);
                            }
                            other => steps.error(format!("final poll: {other:?}")),
                        }
                    }
                    steps
                }
            },
        )
        .await
    };
    let final_cpu = cpu.lap();

    let charging_polls = {
        let target = gateway.clone();
        run_phase(
            settings.clients,
            settings.phase,
            move |worker, client, deadline| {
                let target = target.clone();
                async move {
                    let mut steps = Steps::default();
                    let body = target.create_body(&format!("slow-{worker}"), SLOW_SALE_VALUE);
                    if let Err(e) = target
                        .start_charge(&client, &body, worker, &mut Steps::default(), &BUSY_FLOW)
                        .await
                    {
                        steps.error(format!("charging poll setup: {e}"));
                        return steps;
                    }
                    while Instant::now() < deadline {
                        let started = Instant::now();
                        match target.create(&client, &body).await {
                            Ok(answer) if answer["status"] == "undefined" => {
                                steps.record("poll: a charging payment", started);
                            }
                            other => steps.error(format!("charging poll: {other:?}")),
                        }
                    }
                    steps
                }
            },
        )
        .await
    };
    let charging_cpu = cpu.lap();

    let peak_rss = proc_status_kib(pid, "VmHWM");
    let cpu_total = cpu.total();
    let results = daemon.take_results();
    let deliveries = daemon.take_deliveries();
    daemon.terminate();
    let database = database_bytes(&dir.path().join("posbridge.db"));

    // The report.
    println!();
    println!("ceilings (same run, same client):");
    Row::header();
    Row::of(&static_get, None, None).print();
    Row::of(&static_post, None, None).print();
    Row::of(&sqlite, None, None).print();
    println!();
    println!("posbridge (ratio: to the static handler; create also to SQLite's one-row commits):");
    Row::header();
    let get_ceiling = static_get.stats_only();
    let post_ceiling = static_post.stats_only();
    Row::of(&manifest, Some(&get_ceiling), Some(manifest_cpu)).print();
    Row::of(&fill, Some(&post_ceiling), Some(fill_cpu)).print();
    Row::of(&creates, Some(&post_ceiling), Some(creates_cpu)).print();
    for row in Row::all_of(&flow, Some(&post_ceiling), Some(flow_cpu)) {
        row.print();
    }
    for row in Row::all_of(&store_pace, Some(&post_ceiling), Some(store_pace_cpu)) {
        row.print();
    }
    Row::of(&final_polls, Some(&post_ceiling), Some(final_cpu)).print();
    Row::of(&charging_polls, Some(&post_ceiling), Some(charging_cpu)).print();
    for phase in [
        &manifest,
        &fill,
        &creates,
        &flow,
        &store_pace,
        &final_polls,
        &charging_polls,
    ] {
        for (what, count) in &phase.steps.errors {
            println!("  errors: {count} × {what}");
        }
    }

    let commits = sqlite
        .steps
        .rate("SQLite: one-row durable commit", sqlite.elapsed);
    let create_rate = creates
        .steps
        .rate("create: new payment (durable)", creates.elapsed);
    println!();
    println!(
        "create (durable) / SQLite one-row commits: {:.2}×  (target ≥ 5×)",
        create_rate / commits
    );
    println!(
        "  the database writer thread's CPU meanwhile: {:.0} % of the phase, {:.0} µs per Create (the daemon's in all: {:.0} µs), besides its waits for fsync",
        writer_busy.as_secs_f64() * 100.0 / creates.elapsed.as_secs_f64(),
        writer_busy.as_secs_f64() * 1e6 / (create_rate * creates.elapsed.as_secs_f64()),
        creates_cpu.as_secs_f64() * 1e6 / (create_rate * creates.elapsed.as_secs_f64()),
    );
    let terminal_results = read_journals(dir.path(), settings.terminals);
    for (label, callbacks, finished) in [
        (
            format!("{} concurrent flows", settings.clients),
            &callbacks,
            &finished,
        ),
        (
            format!(
                "store pace ({} flows, one per terminal)",
                settings.terminals
            ),
            &store_pace_callbacks,
            &store_pace.steps.finished,
        ),
    ] {
        println!();
        print_callbacks(
            &label,
            callbacks,
            finished.len(),
            &terminal_results,
            &results,
            &deliveries,
        );
    }
    println!();
    println!(
        "startup to ready (spawn → /healthz 200): {:.1} ms  (target < 150 ms)",
        ms(ready)
    );
    println!("idle RSS: {}  (target < 20 MiB)", mib(idle_rss));
    println!(
        "RSS with {} payments in flight: {}  (target < 100 MiB)",
        settings.in_flight,
        mib(in_flight_rss)
    );
    println!("peak RSS (VmHWM): {}", mib(peak_rss));
    println!(
        "daemon CPU time (user + system): {:.2} s",
        cpu_total.as_secs_f64()
    );
    println!(
        "binary: {:.1} MiB ({binary})",
        binary_bytes as f64 / 1_048_576.0
    );
    match database {
        Ok((bytes, payments)) if payments > 0 => println!(
            "database after a clean stop: {:.1} MiB for {payments} payments ({} whole flows, the rest undefined) = {:.0} KB per 1,000 payments",
            bytes as f64 / 1_048_576.0,
            flow.steps.finished.len(),
            bytes as f64 / payments as f64
        ),
        Ok(_) => println!("database: no payments"),
        Err(e) => println!("database: {e}"),
    }
}

/// `clients` whole flows at once, each starting the next when one is done.
async fn flow_phase(
    gateway: &Arc<GatewayTarget>,
    clients: usize,
    duration: Duration,
    names: &'static FlowSteps,
) -> Phase {
    let target = gateway.clone();
    run_phase(clients, duration, move |worker, client, deadline| {
        whole_flow(target.clone(), worker, client, deadline, names)
    })
    .await
}

/// One client's loop over the whole flow: Create, submitUrl (the Sales App), the Create that
/// starts the charge, polls until final. The final bodies are kept for the final-poll phase.
async fn whole_flow(
    target: Arc<GatewayTarget>,
    worker: usize,
    client: reqwest::Client,
    deadline: Instant,
    names: &'static FlowSteps,
) -> Steps {
    let mut steps = Steps::default();
    let mut n = 0;
    while Instant::now() < deadline {
        n += 1;
        let body = target.create_body(&format!("{}-{worker}-{n}", names.id_prefix), 10.0);
        if let Err(e) = target
            .start_charge(&client, &body, worker, &mut steps, names)
            .await
        {
            steps.error(e);
            continue;
        }
        let charge_started = Instant::now();
        loop {
            let started = Instant::now();
            match target.create(&client, &body).await {
                Ok(answer) if answer["status"] == "undefined" => {
                    steps.record(names.poll_charging, started);
                    tokio::time::sleep(FLOW_POLL_PAUSE).await;
                }
                Ok(answer) if answer["status"] == "approved" => {
                    steps.record(names.poll_final, started);
                    steps.record(names.charge_to_final, charge_started);
                    steps.finished.push(body);
                    break;
                }
                other => {
                    steps.error(format!("flow poll: {other:?}"));
                    break;
                }
            }
        }
    }
    steps
}

/// Plays the Gateway and the Sales App against the daemon.
struct GatewayTarget {
    base: String,
    callbacks: String,
    terminals: usize,
}

impl GatewayTarget {
    fn create_body(&self, payment_id: &str, value: f64) -> Value {
        create_body(
            payment_id,
            value,
            &format!("{}/cb/{payment_id}", self.callbacks),
        )
    }

    async fn create(&self, client: &reqwest::Client, body: &Value) -> Result<Value, String> {
        match post_json(client, &format!("{}/payments", self.base), body.to_string()).await? {
            (200, answer) => Ok(answer),
            (status, answer) => Err(format!("{status} {answer}")),
        }
    }

    /// Create, the serial number on the submitUrl (a terminal chosen by the worker), Create.
    async fn start_charge(
        &self,
        client: &reqwest::Client,
        body: &Value,
        worker: usize,
        steps: &mut Steps,
        names: &'static FlowSteps,
    ) -> Result<(), String> {
        let started = Instant::now();
        let first = self.create(client, body).await?;
        steps.record(names.create_new, started);
        let payload: Value = first["paymentAppData"]["payload"]
            .as_str()
            .and_then(|p| serde_json::from_str(p).ok())
            .ok_or_else(|| format!("no Payment App payload: {first}"))?;
        let submit_url = payload["submitUrl"]
            .as_str()
            .ok_or_else(|| format!("no submitUrl: {first}"))?;
        let serial = json!({ "serialNumber": serial_number(worker % self.terminals) });
        let started = Instant::now();
        let bound = client
            .post(submit_url)
            .header(header::CONTENT_TYPE, "text/plain")
            .body(serial.to_string())
            .send()
            .await
            .map_err(|e| format!("submitUrl: {e}"))?;
        let status = bound.status();
        // Read whole, so the connection is kept alive for the next request.
        let _ = bound.bytes().await;
        if status != StatusCode::OK {
            return Err(format!("submitUrl answered {status}"));
        }
        steps.record(names.submit, started);
        let started = Instant::now();
        let second = self.create(client, body).await?;
        if second["status"] != "undefined" {
            return Err(format!("the charging Create answered {second}"));
        }
        steps.record(names.starts, started);
        Ok(())
    }
}

fn serial_number(terminal: usize) -> String {
    format!("SIM-{:04}", terminal + 1)
}

fn create_body(payment_id: &str, value: f64, callback_url: &str) -> Value {
    json!({
        "reference": "order-1", "orderId": "v1-1", "shopperInteraction": "instore",
        "transactionId": format!("T-{payment_id}"), "paymentId": payment_id,
        "paymentMethod": "Venda Direta Credito", "paymentMethodCustomCode": null,
        "merchantName": "store", "value": value, "currency": "BRL", "installments": 1,
        "deviceFingerprint": "x",
        "card": { "holder": null, "number": null, "csc": null, "expiration": { "month": null, "year": null } },
        "miniCart": { "buyer": { "firstName": "Ana" } },
        "url": "https://store.example/admin/order", "callbackUrl": callback_url,
        "returnUrl": "https://store.example/return", "sandBoxMode": false, "totalCartValue": value,
    })
}

/// The default configuration but for what a bench must set: its own port, database and keys,
/// simulator terminals at zero delay.
fn daemon_config(dir: &Path, terminals: usize) -> String {
    let mut text = format!(
        r#"
[server]
listen = "127.0.0.1:0"

[storage]
path = "{}"

[vtex]
app_key = "{APP_KEY}"
app_token = "{APP_TOKEN}"
callback_app_key = "vtexappkey-load-partner"
callback_app_token = "load-callback-token"

[pos]
allow_simulator = true
"#,
        dir.join("posbridge.db").display()
    );
    for terminal in 0..terminals {
        text.push_str(&format!(
            "\n[[terminals]]\nid = \"lane-{}\"\nserial_number = \"{}\"\nprotocol = \"simulator\"\napprove_after_ms = 0\n",
            terminal + 1,
            serial_number(terminal)
        ));
    }
    text
}

/// A child process that printed `listening on http://ADDR`; the rest of its output is read
/// (and, for the daemon, the time each result was stored is taken from its log).
struct Spawned {
    child: Child,
    base: String,
    results: Arc<Mutex<HashMap<String, f64>>>,
    /// Each delivered callback's `[queued, send, mark]` ms from the daemon's log.
    deliveries: Arc<Mutex<HashMap<String, [f64; 3]>>>,
}

impl Spawned {
    fn start(command: &mut Command) -> Spawned {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let base = loop {
            let line = lines
                .next()
                .expect("the process ended before listening")
                .expect("a line");
            if let Some(addr) = line.split("listening on http://").nth(1) {
                break format!("http://{}", addr.trim());
            }
        };
        let results = Arc::new(Mutex::new(HashMap::new()));
        let deliveries = Arc::new(Mutex::new(HashMap::new()));
        let (sink, delivered) = (results.clone(), deliveries.clone());
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if let Some((id, at)) = result_stored(&line) {
                    sink.lock().expect("results").insert(id, at);
                } else if let Some((id, times)) = delivery_times(&line) {
                    delivered.lock().expect("deliveries").insert(id, times);
                }
            }
        });
        Spawned {
            child,
            base,
            results,
            deliveries,
        }
    }

    fn take_results(&self) -> HashMap<String, f64> {
        std::mem::take(&mut *self.results.lock().expect("results"))
    }

    fn take_deliveries(&self) -> HashMap<String, [f64; 3]> {
        std::mem::take(&mut *self.deliveries.lock().expect("deliveries"))
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait: a clean stop checkpoints the database.
    fn terminate(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `(payment_id, unix ms)` from the line the lane logs once a result and its callback are
/// committed (text format: the timestamp first).
fn result_stored(line: &str) -> Option<(String, f64)> {
    if !line.contains("terminal result recorded") {
        return None;
    }
    let at: jiff::Timestamp = line.split_whitespace().next()?.parse().ok()?;
    Some((payment_id_in(line)?, at.as_microsecond() as f64 / 1000.0))
}

/// The `payment_id` field of a log line, an event's or its span's (`callback{payment_id=…}`).
fn payment_id_in(line: &str) -> Option<String> {
    let (_, rest) = line.split_once("payment_id=")?;
    let end = rest
        .find(|c: char| c.is_whitespace() || c == '}')
        .unwrap_or(rest.len());
    Some(rest[..end].to_string())
}

/// The payment and `[queued, send, mark]` ms from the outbox's `callback delivered` line:
/// result committed → attempt started, the POST, recording it delivered.
fn delivery_times(line: &str) -> Option<(String, [f64; 3])> {
    if !line.contains("callback delivered") {
        return None;
    }
    let field = |name: &str| {
        line.split_whitespace()
            .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))?
            .parse::<f64>()
            .ok()
    };
    Some((
        payment_id_in(line)?,
        [field("queued_ms")?, field("send_ms")?, field("mark_ms")?],
    ))
}

/// Terminal result → callback received for the payments of one flow phase, and where the
/// time went.
fn print_callbacks(
    label: &str,
    callbacks: &[(String, f64)],
    finished: usize,
    terminal_results: &HashMap<String, f64>,
    results: &HashMap<String, f64>,
    deliveries: &HashMap<String, [f64; 3]>,
) {
    let since = |times: &HashMap<String, f64>| -> Vec<f64> {
        callbacks
            .iter()
            .filter_map(|(id, at)| times.get(id).map(|then| at - then))
            .collect()
    };
    println!(
        "callbacks, {label}: {} of {finished} final payments received",
        callbacks.len()
    );
    print_spread(
        "terminal result (simulator journal, ms) → callback received",
        since(terminal_results),
        "target p99 < 20 ms",
    );
    print_spread(
        "result stored (daemon log) → callback received",
        since(results),
        "",
    );
    for (i, part) in [
        "  of which queued (result committed → attempt started)",
        "  of which the POST (attempt → receiver answered)",
        "  of which recording it delivered (its slot held meanwhile)",
    ]
    .into_iter()
    .enumerate()
    {
        let parts = callbacks
            .iter()
            .filter_map(|(id, _)| deliveries.get(id).map(|d| d[i]))
            .collect();
        print_spread(part, parts, "");
    }
}

/// Every sale's completion time (unix ms) in the simulators' own journals, by reference.
fn read_journals(dir: &Path, terminals: usize) -> HashMap<String, f64> {
    let mut completed = HashMap::new();
    for terminal in 1..=terminals {
        let path = dir.join(format!("simulator-lane-{terminal}.journal"));
        let Ok(text) = std::fs::read_to_string(path) else {
            continue;
        };
        for entry in text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        {
            if let (Some(reference), Some(at)) =
                (entry["reference"].as_str(), entry["completes_at"].as_f64())
                && entry["kind"] == "sale"
            {
                completed.insert(reference.to_string(), at);
            }
        }
    }
    completed
}

/// Waits until the daemon's `/healthz` answers 200: the time since `spawned_at`.
async fn wait_healthy(base: &str, spawned_at: Instant) -> Duration {
    let client = reqwest::Client::new();
    loop {
        if let Ok(response) = client.get(format!("{base}/healthz")).send().await
            && response.status() == StatusCode::OK
        {
            return spawned_at.elapsed();
        }
        assert!(
            spawned_at.elapsed() < Duration::from_secs(30),
            "the daemon never became ready"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// The Gateway's callback receiver: when each payment's callback arrived (unix ms).
struct CallbackReceiver {
    base: String,
    arrived: Arc<Mutex<HashMap<String, f64>>>,
}

impl CallbackReceiver {
    async fn start() -> CallbackReceiver {
        let arrived = Arc::new(Mutex::new(HashMap::new()));
        let sink = arrived.clone();
        let app = Router::new().route(
            "/cb/{payment_id}",
            post(move |UrlPath(id): UrlPath<String>| {
                let at = unix_ms();
                sink.lock().expect("arrivals").entry(id).or_insert(at);
                async { StatusCode::OK }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        CallbackReceiver { base, arrived }
    }

    /// Waits (up to `limit`) for the callbacks of `ids`: those that came, with their arrival.
    async fn wait_for(&self, finished: &[Value], limit: Duration) -> Vec<(String, f64)> {
        let ids: Vec<String> = finished
            .iter()
            .filter_map(|b| b["paymentId"].as_str())
            .map(str::to_string)
            .collect();
        let deadline = Instant::now() + limit;
        loop {
            let got: Vec<(String, f64)> = {
                let arrived = self.arrived.lock().expect("arrivals");
                ids.iter()
                    .filter_map(|id| arrived.get(id).map(|at| (id.clone(), *at)))
                    .collect()
            };
            if got.len() == ids.len() || Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn unix_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// What one phase measured: latencies by step, errors, the final payments of the flow.
#[derive(Default, Clone)]
struct Steps {
    latencies: BTreeMap<&'static str, Vec<f64>>,
    errors: BTreeMap<String, usize>,
    finished: Vec<Value>,
}

impl Steps {
    fn record(&mut self, step: &'static str, started: Instant) {
        self.latencies
            .entry(step)
            .or_default()
            .push(ms(started.elapsed()));
    }

    /// Counted by their text, cut short: one line per kind of error.
    fn error(&mut self, what: String) {
        let what: String = what.chars().take(160).collect();
        *self.errors.entry(what).or_default() += 1;
    }

    fn merge(&mut self, other: Steps) {
        for (step, mut values) in other.latencies {
            self.latencies.entry(step).or_default().append(&mut values);
        }
        for (what, count) in other.errors {
            *self.errors.entry(what).or_default() += count;
        }
        self.finished.extend(other.finished);
    }

    fn rate(&self, step: &str, elapsed: Duration) -> f64 {
        self.latencies.get(step).map_or(0, Vec::len) as f64 / elapsed.as_secs_f64()
    }
}

struct Phase {
    steps: Steps,
    elapsed: Duration,
}

impl Phase {
    /// A ceiling's figures (its single step) for the ratio columns.
    fn stats_only(&self) -> Stats {
        let (step, values) = self.steps.latencies.iter().next().expect("a ceiling step");
        Stats::of(step, values, self.elapsed)
    }
}

/// Runs `clients` workers, each with its own client (one kept-alive connection), until
/// `duration` has passed (zero: until each worker stops by itself).
async fn run_phase<F, Fut>(clients: usize, duration: Duration, worker: F) -> Phase
where
    F: Fn(usize, reqwest::Client, Instant) -> Fut,
    Fut: Future<Output = Steps> + Send + 'static,
{
    let started = Instant::now();
    let deadline = started + duration;
    let workers: Vec<_> = (0..clients)
        .map(|i| tokio::spawn(worker(i, one_connection_client(), deadline)))
        .collect();
    let mut steps = Steps::default();
    for w in workers {
        steps.merge(w.await.expect("a worker"));
    }
    Phase {
        steps,
        elapsed: started.elapsed(),
    }
}

fn one_connection_client() -> reqwest::Client {
    reqwest::Client::builder()
        .http1_only()
        .pool_max_idle_per_host(1)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

async fn get_until(
    client: reqwest::Client,
    url: String,
    deadline: Instant,
    step: &'static str,
) -> Steps {
    let mut steps = Steps::default();
    while Instant::now() < deadline {
        let started = Instant::now();
        match client.get(&url).send().await {
            Ok(response) if response.status() == StatusCode::OK => {
                if response.bytes().await.is_ok() {
                    steps.record(step, started);
                }
            }
            other => steps.error(format!("{step}: {other:?}")),
        }
    }
    steps
}

/// POST a JSON body with the Gateway's key pair; the status and the parsed answer.
async fn post_json(
    client: &reqwest::Client,
    url: &str,
    body: String,
) -> Result<(u16, Value), String> {
    let response = client
        .post(url)
        .header("X-VTEX-API-AppKey", APP_KEY)
        .header("X-VTEX-API-AppToken", APP_TOKEN)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let bytes = response.bytes().await.map_err(|e| e.to_string())?;
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}

/// The SQLite ceiling: one connection committing one row per transaction, durably, as the
/// daemon opens its database (WAL, `synchronous=FULL`, `secure_delete`), on the same disk.
fn sqlite_ceiling(dir: &Path, duration: Duration) -> Phase {
    let db = rusqlite::Connection::open(dir.join("ceiling.db")).expect("ceiling database");
    db.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA secure_delete = ON;
         CREATE TABLE one_row (id INTEGER PRIMARY KEY, body TEXT NOT NULL);",
    )
    .expect("ceiling schema");
    let body = "x".repeat(300);
    let mut steps = Steps::default();
    let started = Instant::now();
    while started.elapsed() < duration {
        let at = Instant::now();
        db.execute_batch("BEGIN IMMEDIATE").expect("begin");
        db.execute("INSERT INTO one_row (body) VALUES (?1)", [&body])
            .expect("insert");
        db.execute_batch("COMMIT").expect("commit");
        steps.record("SQLite: one-row durable commit", at);
    }
    Phase {
        steps,
        elapsed: started.elapsed(),
    }
}

/// The database's bytes in use after a clean stop, and its payments.
fn database_bytes(path: &Path) -> Result<(u64, u64), rusqlite::Error> {
    let db =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let number = |sql: &str| -> Result<u64, rusqlite::Error> {
        let value: i64 = db.query_row(sql, [], |r| r.get(0))?;
        Ok(u64::try_from(value).unwrap_or(0))
    };
    let in_use = (number("PRAGMA page_count")? - number("PRAGMA freelist_count")?)
        * number("PRAGMA page_size")?;
    Ok((in_use, number("SELECT COUNT(*) FROM payments")?))
}

/// The daemon's CPU time (user + system, from /proc/PID/stat), by phase.
struct CpuMeter {
    pid: u32,
    last: Duration,
}

impl CpuMeter {
    fn new(pid: u32) -> CpuMeter {
        CpuMeter {
            pid,
            last: cpu_time(pid),
        }
    }

    /// The CPU time since the last lap.
    fn lap(&mut self) -> Duration {
        let now = cpu_time(self.pid);
        let spent = now.saturating_sub(self.last);
        self.last = now;
        spent
    }

    fn total(&self) -> Duration {
        cpu_time(self.pid)
    }
}

fn cpu_time(pid: u32) -> Duration {
    stat_cpu_time(&format!("/proc/{pid}/stat"))
}

/// The CPU time of the daemon's thread named `name` (its database writer: `sqlite-writer`).
fn thread_cpu_time(pid: u32, name: &str) -> Duration {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Duration::ZERO;
    };
    tasks
        .filter_map(Result::ok)
        .find(|task| {
            std::fs::read_to_string(task.path().join("comm")).is_ok_and(|comm| comm.trim() == name)
        })
        .map_or(Duration::ZERO, |task| {
            stat_cpu_time(&task.path().join("stat").display().to_string())
        })
}

/// utime + stime of a `/proc/…/stat` file.
fn stat_cpu_time(path: &str) -> Duration {
    let ticks_per_s: u64 = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100);
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // After the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    let fields: Vec<&str> = stat
        .rsplit_once(") ")
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Duration::from_millis((field(11) + field(12)) * 1000 / ticks_per_s)
}

/// A `/proc/PID/status` line in KiB (`VmRSS`, `VmHWM`).
fn proc_status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn print_spread(what: &str, mut values: Vec<f64>, target: &str) {
    values.sort_by(f64::total_cmp);
    println!(
        "{what}: n {}, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms  {target}",
        values.len(),
        percentile(&values, 0.5),
        percentile(&values, 0.99),
        percentile(&values, 1.0),
    );
}

struct Stats {
    step: String,
    count: usize,
    per_s: f64,
    p50: f64,
    p99: f64,
    max: f64,
}

impl Stats {
    fn of(step: &str, values: &[f64], elapsed: Duration) -> Stats {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        Stats {
            step: step.to_string(),
            count: sorted.len(),
            per_s: sorted.len() as f64 / elapsed.as_secs_f64(),
            p50: percentile(&sorted, 0.5),
            p99: percentile(&sorted, 0.99),
            max: percentile(&sorted, 1.0),
        }
    }
}

/// One line of the report: a step's figures, its ratios to a ceiling, the daemon's CPU time
/// per request over the phase.
struct Row {
    stats: Stats,
    ratios: Option<(f64, f64)>,
    cpu_us_per_request: Option<f64>,
}

impl Row {
    fn header() {
        println!(
            "{:<42} {:>7} {:>9} {:>8} {:>8} {:>8} {:>8} {:>7} {:>7}",
            "step", "n", "per s", "p50 ms", "p99 ms", "max ms", "CPU µs", "× thr", "× p99"
        );
    }

    fn of(phase: &Phase, ceiling: Option<&Stats>, cpu: Option<Duration>) -> Row {
        Self::all_of(phase, ceiling, cpu)
            .into_iter()
            .next()
            .unwrap_or(Row {
                stats: Stats::of("(no sample)", &[], phase.elapsed),
                ratios: None,
                cpu_us_per_request: None,
            })
    }

    /// A row per step; the phase's CPU time is spread over all its requests.
    fn all_of(phase: &Phase, ceiling: Option<&Stats>, cpu: Option<Duration>) -> Vec<Row> {
        let requests: usize = phase
            .steps
            .latencies
            .iter()
            .filter(|(step, _)| !step.contains('→'))
            .map(|(_, v)| v.len())
            .sum();
        phase
            .steps
            .latencies
            .iter()
            .map(|(step, values)| {
                // A span over several requests (`a → b`) has no ceiling and no CPU of its own.
                let is_request = !step.contains('→');
                let stats = Stats::of(step, values, phase.elapsed);
                let ratios = ceiling
                    .filter(|_| is_request)
                    .map(|c| (stats.per_s / c.per_s, stats.p99 / c.p99));
                Row {
                    stats,
                    ratios,
                    cpu_us_per_request: cpu
                        .filter(|_| is_request && requests > 0)
                        .map(|cpu| cpu.as_secs_f64() * 1e6 / requests as f64),
                }
            })
            .collect()
    }

    fn print(&self) {
        let s = &self.stats;
        let optional = |v: Option<f64>, precision: usize| {
            v.map_or_else(|| "-".to_string(), |v| format!("{v:.precision$}"))
        };
        println!(
            "{:<42} {:>7} {:>9.0} {:>8.2} {:>8.2} {:>8.2} {:>8} {:>7} {:>7}",
            s.step,
            s.count,
            s.per_s,
            s.p50,
            s.p99,
            s.max,
            optional(self.cpu_us_per_request, 0),
            optional(self.ratios.map(|r| r.0), 2),
            optional(self.ratios.map(|r| r.1), 2),
        );
    }
}
