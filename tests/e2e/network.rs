//! The network edge: HTTPS with certificate reload, per-address rate limits (with
//! `X-Forwarded-For` believed only from trusted proxies), load shedding and time limits.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::*;

const WRONG_TOKEN: &str = "wrong-token-SECRET-0d1e";

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// POST with the given credentials, as the client at `from` behind the (trusted) proxy.
async fn post_as(
    daemon: &Daemon,
    from: &str,
    path: &str,
    token: &str,
    body: &Value,
) -> (u16, Value, Option<String>) {
    let response = client()
        .post(format!("{}{path}", daemon.base))
        .header("X-Forwarded-For", from)
        .header("X-VTEX-API-AppKey", APP_KEY)
        .header("X-VTEX-API-AppToken", token)
        .body(body.to_string())
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (
        status,
        response.json().await.unwrap_or(Value::Null),
        retry_after,
    )
}

async fn submit_as(url: &str, from: &str) -> u16 {
    client()
        .post(url)
        .header("X-Forwarded-For", from)
        .body(json!({ "serialNumber": SERIAL }).to_string())
        .send()
        .await
        .expect("submit")
        .status()
        .as_u16()
}

async fn code_as(daemon: &Daemon, from: &str, token: &str, code: &str) -> u16 {
    client()
        .post(format!("{}/authorization/redirect", daemon.base))
        .header("X-Forwarded-For", from)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!("token={token}&code={code}"))
        .send()
        .await
        .expect("code")
        .status()
        .as_u16()
}

fn limits(n: u32) -> String {
    format!(
        "[rate_limits]\ncredential_failures = {n}\ntoken_failures = {n}\nonboarding_failures = {n}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_limited_per_client_address_behind_a_trusted_proxy() {
    let daemon = Daemon::start(Options {
        server_extra: "trusted_proxies = [\"127.0.0.1\", \"::1\"]".into(),
        extra_config: limits(3),
        ..Options::default()
    })
    .await;
    let body = create_body(
        "pay-rl",
        json!(10),
        "Venda Direta Credito",
        "http://127.0.0.1:9/cb",
    );

    // Credentials: three wrong tries from one client, then it is refused, even with the right
    // ones; another client behind the same proxy is not.
    for _ in 0..3 {
        let (status, _, _) =
            post_as(&daemon, "198.51.100.7", "/payments", WRONG_TOKEN, &body).await;
        assert_eq!(status, 401);
    }
    let (status, answer, retry) =
        post_as(&daemon, "198.51.100.7", "/payments", WRONG_TOKEN, &body).await;
    assert_eq!(status, 429, "{answer}");
    assert_eq!(answer["status"], "error");
    assert!(retry.is_some_and(|s| s.parse::<u64>().is_ok_and(|s| s > 0)));
    assert_eq!(
        post_as(&daemon, "198.51.100.7", "/payments", APP_TOKEN, &body)
            .await
            .0,
        429,
        "the address is refused, whatever it sends"
    );
    // The proxy appended the real client; a forged leftmost entry changes nothing.
    assert_eq!(
        post_as(
            &daemon,
            "203.0.113.1, 198.51.100.7",
            "/payments",
            APP_TOKEN,
            &body
        )
        .await
        .0,
        429
    );
    let (status, first, _) = post_as(&daemon, "198.51.100.8", "/payments", APP_TOKEN, &body).await;
    assert_eq!(status, 200, "another client is served: {first}");

    // submitUrl tokens.
    let url = submit_url(&first);
    let (prefix, _) = url.split_once("token=").expect("token in the submitUrl");
    let forged = format!("{prefix}token={WRONG_TOKEN}");
    for _ in 0..3 {
        assert_eq!(submit_as(&forged, "198.51.100.9").await, 403);
    }
    assert_eq!(submit_as(&forged, "198.51.100.9").await, 429);
    assert_eq!(submit_as(&url, "198.51.100.9").await, 429);
    assert_eq!(submit_as(&url, "198.51.100.10").await, 200);

    // The onboarding page.
    let token: Value = client()
        .post(format!("{}/authorization/token", daemon.base))
        .body(
            json!({ "applicationId": "vtex", "returnUrl": "https://a.myvtex.com/r?c=" })
                .to_string(),
        )
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    let token = token["token"].as_str().expect("token");
    for _ in 0..3 {
        assert_eq!(
            code_as(&daemon, "198.51.100.11", token, "guess-guess").await,
            401
        );
    }
    assert_eq!(
        code_as(&daemon, "198.51.100.11", token, ONBOARDING_CODE).await,
        429
    );
    assert_eq!(
        code_as(&daemon, "198.51.100.12", token, ONBOARDING_CODE).await,
        303
    );

    let logs = daemon.logs();
    assert!(
        logs.contains("too many failures from one address"),
        "{logs}"
    );
    assert!(logs.contains("198.51.100.7"));
    for secret in [WRONG_TOKEN, APP_TOKEN, token] {
        assert!(!logs.contains(secret), "a token in the logs");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_for_from_an_untrusted_peer_is_ignored() {
    let daemon = Daemon::start(Options {
        extra_config: limits(3),
        ..Options::default()
    })
    .await;
    let body = create_body(
        "pay-xff",
        json!(10),
        "Venda Direta Credito",
        "http://127.0.0.1:9/cb",
    );
    for n in 1..=3 {
        let from = format!("198.51.100.{n}");
        assert_eq!(
            post_as(&daemon, &from, "/payments", WRONG_TOKEN, &body)
                .await
                .0,
            401
        );
    }
    // Every "client" was the peer 127.0.0.1 all along.
    assert_eq!(
        post_as(&daemon, "198.51.100.50", "/payments", APP_TOKEN, &body)
            .await
            .0,
        429
    );
    // Routes without credentials are not affected.
    let manifest = client()
        .get(format!("{}/manifest", daemon.base))
        .send()
        .await
        .expect("manifest");
    assert_eq!(manifest.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_is_shed_with_503_and_slow_ppp_requests_time_out() {
    // .05 ignores the abort: the cancel waits 3 s for the terminal, past the 2 s limit.
    let daemon = Daemon::start(Options {
        approve_after_ms: 8_000,
        server_extra: "max_concurrent_requests = 1\nppp_timeout_ms = 2000".into(),
        ..Options::default()
    })
    .await;
    let gateway = daemon.gateway();
    let body = create_body(
        "pay-slow",
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
    let started = Instant::now();
    let slow = {
        let gateway = gateway.clone();
        tokio::spawn(async move {
            let answer = gateway
                .post(
                    "/payments/pay-slow/cancellations",
                    &json!({ "requestId": "c-slow" }),
                )
                .await;
            (answer, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The one slot is taken: answered at once, not queued.
    let asked = Instant::now();
    let shed = client()
        .get(format!("{}/manifest", daemon.base))
        .send()
        .await
        .expect("manifest");
    assert_eq!(shed.status(), 503);
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "{:?}",
        asked.elapsed()
    );
    let shed: Value = shed.json().await.expect("json");
    assert_eq!(shed["code"], "overloaded", "{shed}");
    assert_eq!(shed["status"], "error");

    let ((status, answer), took) = slow.await.expect("join");
    assert_eq!(status, 503, "{answer}");
    assert_eq!(answer["code"], "timeout", "{answer}");
    // (Without the limit the cancel would answer 500 cancel-pending after its 3 s.)
    assert!(took >= Duration::from_millis(1900), "{took:?}");
    // The slot is free again while the cancel still finishes behind the answer.
    let manifest = client()
        .get(format!("{}/manifest", daemon.base))
        .send()
        .await
        .expect("manifest");
    assert_eq!(manifest.status(), 200);
    assert!(daemon.logs().contains("request over its time limit"));
}

/// A CA and leaves it signs for localhost / 127.0.0.1.
struct Pki {
    ca_pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl Pki {
    fn new() -> Pki {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "posbridge test CA");
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let key = rcgen::KeyPair::generate().expect("key");
        let ca = params.self_signed(&key).expect("ca");
        Pki {
            ca_pem: ca.pem(),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// Writes a new leaf and its key to `cert`/`key` (each through a rename); its DER.
    fn issue(&self, cert: &Path, key: &Path) -> Vec<u8> {
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .expect("params");
        params
            .extended_key_usages
            .push(rcgen::ExtendedKeyUsagePurpose::ServerAuth);
        let leaf_key = rcgen::KeyPair::generate().expect("key");
        let leaf = params.signed_by(&leaf_key, &self.issuer).expect("leaf");
        for (path, text) in [(key, leaf_key.serialize_pem()), (cert, leaf.pem())] {
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, text).expect("write");
            std::fs::rename(&tmp, path).expect("rename");
        }
        leaf.der().to_vec()
    }

    fn client(&self, max_tls12: bool) -> reqwest::Client {
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .tls_certs_only([reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).expect("ca")])
            .tls_info(true);
        if max_tls12 {
            builder = builder.tls_version_max(reqwest::tls::Version::TLS_1_2);
        }
        builder.build().expect("client")
    }
}

/// GET /manifest; the leaf certificate the server presented on that connection.
async fn manifest_over(client: &reqwest::Client, base: &str) -> Vec<u8> {
    let response = client
        .get(format!("{base}/manifest"))
        .send()
        .await
        .expect("manifest over TLS");
    assert_eq!(response.status(), 200);
    let served = response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|i| i.peer_certificate())
        .expect("peer certificate")
        .to_vec();
    let manifest: Value = response.json().await.expect("json");
    assert!(manifest["paymentMethods"].is_array(), "{manifest}");
    served
}

/// Sends a TLS 1.1 ClientHello; the first byte back (None: closed without a word).
fn hello_tls11(addr: &str) -> Option<u8> {
    let mut body = vec![0x03, 0x02];
    body.extend([7u8; 32]);
    body.push(0);
    body.extend([0x00, 0x04, 0xc0, 0x13, 0x00, 0x2f]);
    body.extend([0x01, 0x00]);
    let mut handshake = vec![0x01, 0, (body.len() >> 8) as u8, body.len() as u8];
    handshake.extend(body);
    let mut record = vec![
        0x16,
        0x03,
        0x01,
        (handshake.len() >> 8) as u8,
        handshake.len() as u8,
    ];
    record.extend(handshake);
    let mut socket = std::net::TcpStream::connect(addr).expect("connect");
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    socket.write_all(&record).expect("send hello");
    let mut first = [0u8; 1];
    match socket.read(&mut first) {
        Ok(1) => Some(first[0]),
        _ => None,
    }
}

fn tls_files(dir: &Path) -> (PathBuf, PathBuf, String) {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let table = format!(
        "[server.tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        cert.display(),
        key.display()
    );
    (cert, key, table)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_serves_tls_12_and_13_only_and_reloads_the_certificate_live() {
    let pki = Pki::new();
    let files = tempfile::tempdir().expect("dir");
    let (cert, key, table) = tls_files(files.path());
    let first = pki.issue(&cert, &key);
    let mut daemon = Daemon::start(Options {
        extra_config: table,
        ..Options::default()
    })
    .await;
    assert!(
        daemon.base.starts_with("https://127.0.0.1:"),
        "{}",
        daemon.base
    );
    let addr = daemon.base.trim_start_matches("https://").to_string();

    let kept = pki.client(false);
    assert_eq!(manifest_over(&kept, &daemon.base).await, first);
    assert_eq!(
        manifest_over(&pki.client(true), &daemon.base).await,
        first,
        "TLS 1.2"
    );
    let answer = tokio::task::spawn_blocking({
        let addr = addr.clone();
        move || hello_tls11(&addr)
    })
    .await
    .expect("join");
    assert!(
        matches!(answer, None | Some(0x15)),
        "TLS 1.1 must get an alert or nothing, not a ServerHello: {answer:?}"
    );
    // Plain HTTP on the TLS port gets nothing useful.
    assert!(
        client()
            .get(format!("http://{addr}/manifest"))
            .send()
            .await
            .map_or(true, |r| !r.status().is_success())
    );

    // SIGHUP: new connections get the new certificate; the open one keeps working.
    let second = pki.issue(&cert, &key);
    daemon.signal("HUP");
    assert!(
        daemon
            .wait_log(
                "SIGHUP: reloading the TLS certificate",
                Duration::from_secs(10)
            )
            .await
    );
    assert!(
        daemon
            .wait_log("reloaded the TLS certificate", Duration::from_secs(10))
            .await
    );
    assert_eq!(
        manifest_over(&pki.client(false), &daemon.base).await,
        second
    );
    assert_eq!(
        manifest_over(&kept, &daemon.base).await,
        first,
        "the keep-alive connection from before the reload still works"
    );

    // A broken key is refused with an ERROR; the served certificate stays. (Counted: the poll
    // may have caught the pair above half-written and logged one already.)
    let refusals = || {
        daemon
            .logs()
            .matches("cannot reload the TLS certificate")
            .count()
    };
    let before = refusals();
    std::fs::write(&key, "not a key").expect("write");
    daemon.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while refusals() == before {
        assert!(Instant::now() < deadline, "the broken key was not refused");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        manifest_over(&pki.client(false), &daemon.base).await,
        second
    );

    // A file change alone (no signal) is picked up too.
    let third = pki.issue(&cert, &key);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let served = manifest_over(&pki.client(false), &daemon.base).await;
        if served == third {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the changed files were not picked up"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(manifest_over(&kept, &daemon.base).await, first);

    // SIGTERM stops the TLS listener as it stops the plain one: exit 0.
    daemon.signal("TERM");
    let status = daemon.wait_exit(Duration::from_secs(15)).await;
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_key_file_stops_startup_naming_it() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().expect("dir");
    let (cert, key, table) = tls_files(dir.path());
    pki.issue(&cert, &key);
    std::fs::remove_file(&key).expect("remove key");
    let options = Options {
        extra_config: table,
        ..Options::default()
    };
    let config = dir.path().join("posbridge.toml");
    std::fs::write(&config, Daemon::config_text(dir.path(), &options)).expect("config");
    let out = Command::new(env!("CARGO_BIN_EXE_posbridge"))
        .args(["run", "--config"])
        .arg(&config)
        .current_dir(dir.path())
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(stderr.contains(&key.display().to_string()), "{stderr}");
    assert!(stderr.contains("key"), "{stderr}");
    assert!(
        !dir.path().join("posbridge.db").exists(),
        "checked before anything else starts"
    );
    let check = Command::new(env!("CARGO_BIN_EXE_posbridge"))
        .args(["check-config", "--config"])
        .arg(&config)
        .output()
        .expect("check-config");
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert_eq!(check.status.code(), Some(64), "{stderr}");
    assert!(stderr.contains(&key.display().to_string()), "{stderr}");
}
