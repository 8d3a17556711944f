//! Figures, not pass/fail: how long from a terminal showing a prompt (the `at` stamp the
//! driver puts on it) until a Payment App WebSocket client has the event, with 1 and with 100
//! clients on the payment. Runs the compiled daemon (simulator terminal) on 127.0.0.1:0.
//!
//! `cargo bench --bench ws_latency`

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const SALES: usize = 20;

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("bench.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[server]
listen = "127.0.0.1:0"
[storage]
path = "{}"
[vtex]
app_key = "k"
app_token = "bench-token"
callback_app_key = "ck"
callback_app_token = "bench-callback"
[pos]
identify_terminal = false
allow_simulator = true
[payment_app]
app_name = "bench.feed"
[[terminals]]
id = "lane-1"
serial_number = "SIM-0001"
protocol = "simulator"
approve_after_ms = 300
"#,
            dir.path().join("bench.db").display()
        ),
    )
    .expect("config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_posbridge"))
        .args(["run", "--log-level", "warn,posbridge=info", "--config"])
        .arg(&config)
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn posbridge");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let base = loop {
        let line = lines.next().expect("daemon output").expect("line");
        if let Some(addr) = line.split("listening on http://").nth(1) {
            break format!("http://{}", addr.trim());
        }
    };
    std::thread::spawn(move || for _ in lines {});

    println!("ws_latency: terminal prompt → WebSocket client, {SALES} simulator sales per row");
    println!(
        "{:>8} {:>8} {:>10} {:>10} {:>10}",
        "clients", "samples", "p50 ms", "p99 ms", "max ms"
    );
    let mut n = 0;
    for clients in [1usize, 100] {
        let mut samples = Vec::new();
        for _ in 0..SALES {
            n += 1;
            samples.extend(runtime.block_on(one_sale(&base, &format!("B-{n}"), clients)));
        }
        samples.sort_by(f64::total_cmp);
        let pct = |p: f64| samples[((samples.len() - 1) as f64 * p).round() as usize];
        println!(
            "{clients:>8} {:>8} {:>10.3} {:>10.3} {:>10.3}",
            samples.len(),
            pct(0.50),
            pct(0.99),
            pct(1.0)
        );
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// One sale with `clients` sockets: the latency of every prompt at every client (ms).
async fn one_sale(base: &str, payment_id: &str, clients: usize) -> Vec<f64> {
    let body = json!({
        "paymentId": payment_id, "transactionId": "T", "paymentMethod": "Venda Direta Credito",
        "value": 10.00, "currency": "BRL", "installments": 1,
        "callbackUrl": "http://127.0.0.1:9/cb",
    });
    let answer: Value = reqwest::Client::new()
        .post(format!("{base}/payments"))
        .header("X-VTEX-API-AppKey", "k")
        .header("X-VTEX-API-AppToken", "bench-token")
        .body(body.to_string())
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("answer");
    let payload: Value = serde_json::from_str(
        answer["paymentAppData"]["payload"]
            .as_str()
            .expect("payload"),
    )
    .expect("payload json");
    let url = payload["wsUrl"].as_str().expect("wsUrl").to_string();
    let mut sockets = Vec::new();
    for _ in 0..clients {
        let (socket, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .expect("connect");
        sockets.push(socket);
    }
    // Prompts shown before every client was connected arrive as backlog: not live latency.
    let connected_at = now_ms();
    let mut readers = Vec::new();
    for mut socket in sockets {
        readers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while let Ok(Some(Ok(message))) =
                tokio::time::timeout(Duration::from_secs(30), socket.next()).await
            {
                let Message::Text(text) = message else {
                    break;
                };
                let received = now_ms();
                let event: Value = serde_json::from_str(&text).expect("event");
                let at = event["at"].as_f64().expect("at");
                if event["type"] == "prompt" && at > connected_at {
                    latencies.push(received - at);
                }
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for reader in readers {
        all.extend(reader.await.expect("join"));
    }
    all
}
