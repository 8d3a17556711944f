//! The relay tier's figures (issue 15): payments per second through one relay replica in front
//! of 100 simulated stores, and what one hop through the relay costs (Gateway → relay → store →
//! relay → Gateway) against a bare NATS request to the same store. Figures, not pass/fail.
//!
//! It starts a `nats-server` with JetStream on loopback (Debian's package) and the release
//! `posbridge relay` at its default log level. The stores are simulated in this process: each
//! logs in as a store does, announces its terminal serial in the serial map and answers the
//! relay's requests at once with a store's answer shapes (no terminal, no database: the figure
//! is the relay's, not a store's; the store daemon's own figures are `cargo bench --bench load`).
//! Then `POSBRIDGE_RELAY_CLIENTS` clients (64) each run whole payments — Create, submitUrl to a
//! random store, three Create polls — for `POSBRIDGE_RELAY_SECONDS` (10).
//!
//! `cargo bench --bench relay`; docs/performance.md has the figures of the last run.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use posbridge::uplink::{SERIALS_BUCKET, requests_subject, wire};
use serde_json::{Value, json};

const APP_KEY: &str = "vtexappkey-relay-bench";
const APP_TOKEN: &str = "relay-bench-token";
const NATS_USER: &str = "bench";
const NATS_PASSWORD: &str = "bench-password";

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `program` and returns it with the first line of its output that contains `marker`.
fn start_until(mut command: Command, marker: &str, from_stderr: bool) -> (Killed, String) {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start");
    let stream: Box<dyn std::io::Read + Send> = if from_stderr {
        Box::new(child.stderr.take().expect("stderr"))
    } else {
        Box::new(child.stdout.take().expect("stdout"))
    };
    let mut lines = BufReader::new(stream).lines();
    let found = loop {
        let line = lines
            .next()
            .expect("it stopped before it was ready")
            .expect("a line");
        if line.contains(marker) {
            break line;
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (Killed(child), found)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn summary(name: &str, mut ms: Vec<f64>, seconds: f64) {
    ms.sort_by(f64::total_cmp);
    println!(
        "{name:<34} {:>8.0}/s  p50 {:>6.2} ms  p99 {:>6.2} ms  max {:>7.2} ms  (n={})",
        ms.len() as f64 / seconds,
        percentile(&ms, 50.0),
        percentile(&ms, 99.0),
        ms.last().copied().unwrap_or(f64::NAN),
        ms.len()
    );
}

/// A store's answer to one relayed request, in its shapes.
fn store_answer(store: &str, message: &async_nats::Message) -> (async_nats::HeaderMap, Bytes) {
    let (request, _) =
        match wire::request_from_nats(message.headers.as_ref(), message.payload.clone()) {
            Ok(request) => request,
            Err(_) => return (async_nats::HeaderMap::new(), Bytes::new()),
        };
    let body = if request.uri().path() == "/payments" {
        let create: Value = serde_json::from_slice(&message.payload).unwrap_or(Value::Null);
        json!({
            "paymentId": create["paymentId"], "status": "undefined", "tid": "pb00000000000000000000",
            "authorizationId": null, "nsu": null, "acquirer": null, "code": null, "message": null,
            "delayToAutoSettle": 21600, "delayToAutoSettleAfterAntifraud": 1800, "delayToCancel": 900,
            "paymentAppData": { "appName": "vtex.challenge-wait-for-confirmation", "payload": "{\"secondsWaiting\":600}" },
        })
    } else {
        json!({ "status": "bound", "terminal": format!("{store}-lane-1") })
    };
    let mut response = http::Response::new(axum::body::Body::empty());
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    (
        wire::response_to_nats(&response),
        Bytes::from(body.to_string()),
    )
}

fn main() {
    if Command::new("nats-server")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED: nats-server is not installed (apt-get install nats-server)");
        return;
    }
    let stores = setting("POSBRIDGE_RELAY_STORES", 100);
    let clients = setting("POSBRIDGE_RELAY_CLIENTS", 64);
    let seconds = setting("POSBRIDGE_RELAY_SECONDS", 10) as u64;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("nats.conf"),
        format!(
            "listen: \"127.0.0.1:-1\"\njetstream {{ store_dir: \"{}\" }}\nauthorization {{ user: {NATS_USER}, password: {NATS_PASSWORD} }}\n",
            dir.path().join("js").display()
        ),
    )
    .expect("nats.conf");
    let mut nats = Command::new("nats-server");
    nats.arg("-c").arg(dir.path().join("nats.conf"));
    let (_nats, line) = start_until(nats, "Listening for client connections on ", true);
    let port = line.rsplit(':').next().expect("port").trim().to_string();
    let nats_url = format!("nats://127.0.0.1:{port}");
    std::fs::write(dir.path().join("nats.password"), NATS_PASSWORD).expect("password");
    std::fs::write(
        dir.path().join("relay.toml"),
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\npublic_url = \"http://relay.invalid\"\n\n[vtex]\napp_key = \"{APP_KEY}\"\napp_token = \"{APP_TOKEN}\"\ncallback_app_key = \"k\"\ncallback_app_token = \"t\"\n\n[nats]\nurl = \"{nats_url}\"\nuser = \"{NATS_USER}\"\npassword_file = \"{}\"\n",
            dir.path().join("nats.password").display()
        ),
    )
    .expect("relay.toml");
    let mut relay = Command::new(env!("CARGO_BIN_EXE_posbridge"));
    relay
        .args(["relay", "--config"])
        .arg(dir.path().join("relay.toml"))
        .env_remove("RUST_LOG")
        .env_remove("POSBRIDGE_LOG");
    let (relay, line) = start_until(relay, "relay listening on http://", false);
    let address = line
        .split("relay listening on http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("address")
        .to_string();
    let relay_pid = relay.0.id();
    let base = format!("http://{address}");

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async move {
        // The simulated stores: one NATS login each, a serial each, answering at once.
        let mut store_clients = Vec::new();
        for n in 0..stores {
            let store = format!("store-{n:03}");
            let client = async_nats::ConnectOptions::with_user_and_password(
                NATS_USER.into(),
                NATS_PASSWORD.into(),
            )
            .connect(&nats_url)
            .await
            .expect("a store connects");
            let map = async_nats::jetstream::new(client.clone())
                .get_key_value(SERIALS_BUCKET)
                .await
                .expect("the serial map");
            map.put(store.as_str(), Bytes::from(json!([format!("SER-{n:03}")]).to_string()))
                .await
                .expect("announce");
            let mut requests = client
                .subscribe(requests_subject(&store))
                .await
                .expect("subscribe");
            let answering = client.clone();
            tokio::spawn(async move {
                while let Some(message) = requests.next().await {
                    let (headers, body) = store_answer(&store, &message);
                    if let Some(reply) = message.reply {
                        let _ = answering.publish_with_headers(reply, headers, body).await;
                    }
                }
            });
            store_clients.push(client);
        }
        // The relay follows the serial map by a watch: give it the moment it needs.
        tokio::time::sleep(Duration::from_secs(1)).await;

        // The ceiling of one hop: a NATS request to a store and its answer, from here.
        let hop_client = store_clients[0].clone();
        let create = json!({ "paymentId": "hop", "value": 1 }).to_string();
        let mut hop_ms: Vec<f64> = Vec::new();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(2) {
            let mut http_headers = http::HeaderMap::new();
            http_headers.insert("content-type", "application/json".parse().expect("v"));
            let headers = wire::request_to_nats(&http::Method::POST, "/payments", &http_headers, None);
            let t = Instant::now();
            hop_client
                .request_with_headers(requests_subject("store-001"), headers, Bytes::from(create.clone()))
                .await
                .expect("the store answers");
            hop_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        let hop_seconds = started.elapsed().as_secs_f64();

        // One hop through the relay, unloaded: one client polling one routed payment.
        let single = reqwest::Client::new();
        let body = json!({
            "paymentId": "hop-1", "transactionId": "T-hop-1", "paymentMethod": "Venda Direta Credito",
            "value": 1, "currency": "BRL", "callbackUrl": "http://127.0.0.1:9/cb",
        })
        .to_string();
        let create_once = || {
            single
                .post(format!("{base}/payments"))
                .header("X-VTEX-API-AppKey", APP_KEY)
                .header("X-VTEX-API-AppToken", APP_TOKEN)
                .header("Content-Type", "application/json")
                .body(body.clone())
                .send()
        };
        let first: Value = create_once().await.expect("create").json().await.expect("json");
        let submit = first["paymentAppData"]["payload"]
            .as_str()
            .and_then(|p| serde_json::from_str::<Value>(p).ok())
            .and_then(|p| p["submitUrl"].as_str().map(str::to_string))
            .expect("submitUrl");
        let bound = single
            .post(format!("{base}{}", submit.trim_start_matches("http://relay.invalid")))
            .body(json!({ "serialNumber": "SER-001" }).to_string())
            .send()
            .await
            .expect("submit");
        assert!(bound.status().is_success(), "the relay routes to a simulated store");
        let mut unloaded_ms = Vec::new();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(2) {
            let t = Instant::now();
            let answer = create_once().await.expect("poll");
            assert!(answer.status().is_success());
            let _ = answer.bytes().await;
            unloaded_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        let unloaded_seconds = started.elapsed().as_secs_f64();

        let steps: Arc<std::sync::Mutex<[Vec<f64>; 3]>> = Arc::default();
        let payments = Arc::new(AtomicUsize::new(0));
        let failures = Arc::new(AtomicUsize::new(0));
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let cpu_before = cpu_ms(relay_pid);
        let mut tasks = Vec::new();
        for c in 0..clients {
            let (base, steps, payments, failures) =
                (base.clone(), steps.clone(), payments.clone(), failures.clone());
            tasks.push(tokio::spawn(async move {
                let http = reqwest::Client::builder()
                    .pool_max_idle_per_host(1)
                    .build()
                    .expect("client");
                let mut n = 0usize;
                while Instant::now() < deadline {
                    n += 1;
                    let id = format!("bench-{c}-{n}");
                    let body = json!({
                        "paymentId": id, "transactionId": format!("T-{id}"),
                        "paymentMethod": "Venda Direta Credito", "value": 10.5, "currency": "BRL",
                        "installments": 1, "callbackUrl": "http://127.0.0.1:9/cb",
                    })
                    .to_string();
                    let create = || {
                        http.post(format!("{base}/payments"))
                            .header("X-VTEX-API-AppKey", APP_KEY)
                            .header("X-VTEX-API-AppToken", APP_TOKEN)
                            .header("Content-Type", "application/json")
                            .body(body.clone())
                    };
                    let t = Instant::now();
                    let Ok(first) = create().send().await else {
                        failures.fetch_add(1, Ordering::Relaxed);
                        continue;
                    };
                    let first: Value = first.json().await.unwrap_or(Value::Null);
                    let created = t.elapsed().as_secs_f64() * 1000.0;
                    let submit = first["paymentAppData"]["payload"]
                        .as_str()
                        .and_then(|p| serde_json::from_str::<Value>(p).ok())
                        .and_then(|p| p["submitUrl"].as_str().map(str::to_string));
                    let Some(submit) = submit else {
                        failures.fetch_add(1, Ordering::Relaxed);
                        continue;
                    };
                    let path = submit.trim_start_matches("http://relay.invalid");
                    let serial = format!("SER-{:03}", (c * 7919 + n) % stores);
                    let t = Instant::now();
                    let bound = http
                        .post(format!("{base}{path}"))
                        .body(json!({ "serialNumber": serial }).to_string())
                        .send()
                        .await
                        .map(|r| r.status().is_success())
                        .unwrap_or(false);
                    let submitted = t.elapsed().as_secs_f64() * 1000.0;
                    if !bound {
                        failures.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    let mut polls = Vec::new();
                    for _ in 0..3 {
                        let t = Instant::now();
                        let ok = create()
                            .send()
                            .await
                            .map(|r| r.status().is_success())
                            .unwrap_or(false);
                        if !ok {
                            failures.fetch_add(1, Ordering::Relaxed);
                        }
                        polls.push(t.elapsed().as_secs_f64() * 1000.0);
                    }
                    payments.fetch_add(1, Ordering::Relaxed);
                    if let Ok(mut steps) = steps.lock() {
                        steps[0].push(created);
                        steps[1].push(submitted);
                        steps[2].extend(polls);
                    }
                }
            }));
        }
        for task in tasks {
            let _ = task.await;
        }
        let cpu_used = cpu_ms(relay_pid).saturating_sub(cpu_before);
        let steps = steps.lock().expect("steps").clone();
        let [created, submitted, polled] = steps;
        println!(
            "relay bench: {stores} simulated stores, {clients} clients, {seconds} s, one relay replica (release), nats-server {}",
            Command::new("nats-server")
                .arg("--version")
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .unwrap_or_default()
        );
        println!(
            "whole payments (Create, submitUrl, 3 polls): {:.0}/s, {} failed requests",
            payments.load(Ordering::Relaxed) as f64 / seconds as f64,
            failures.load(Ordering::Relaxed)
        );
        println!("under load ({clients} clients):");
        summary("first Create (kept in JetStream KV)", created, seconds as f64);
        summary("submitUrl (route + hand-over + submit)", submitted, seconds as f64);
        summary("Create poll (one hop to the store)", polled.clone(), seconds as f64);
        println!("one client, nothing else running:");
        summary("bare NATS request to a store", hop_ms.clone(), hop_seconds);
        summary("Create poll through the relay", unloaded_ms.clone(), unloaded_seconds);
        unloaded_ms.sort_by(f64::total_cmp);
        hop_ms.sort_by(f64::total_cmp);
        println!(
            "added by the relay per hop (poll through it - bare request): p50 {:.2} ms, p99 {:.2} ms",
            percentile(&unloaded_ms, 50.0) - percentile(&hop_ms, 50.0),
            percentile(&unloaded_ms, 99.0) - percentile(&hop_ms, 99.0)
        );
        println!(
            "relay CPU {:.1} s over {seconds} s, RSS {} MiB",
            cpu_used as f64 / 1000.0,
            rss_kib(relay_pid) / 1024
        );
    });
    drop(relay);
}

/// The process's user + system CPU time in milliseconds (Linux `/proc`).
fn cpu_ms(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: u64 = fields
        .get(11..13)
        .map(|f| f.iter().filter_map(|v| v.parse::<u64>().ok()).sum())
        .unwrap_or(0);
    ticks * 10
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}
