//! A store daemon behind the relay tier (`[uplink]`), on a real `nats-server` with JetStream:
//! requests relayed over NATS are answered exactly as on the store's own listener, the store's
//! terminal serials reach the relay's serial map (never taking another store's), and the store
//! finds NATS again by itself after the server restarts. The test plays the relay's part.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use async_nats::HeaderMap;
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::harness::*;

const STORE: &str = "store-1";
const OTHER_STORE: &str = "store-2";

/// `posbridge issue-store-credentials`: the store's password file in `dir` and its `users`
/// entry for nats-server.conf, as the relay tier's operator would paste it.
fn issued_user(dir: &std::path::Path, store: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_posbridge"))
        .args(["issue-store-credentials", store, "--password-file"])
        .arg(dir.join(format!("{store}.password")))
        .output()
        .expect("posbridge issue-store-credentials");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let start = text.find("\n{\n").expect("a users entry") + 1;
    let end = start + text[start..].find("\n}\n").expect("its end") + 2;
    assert!(text.contains(&format!("store_id = \"{store}\"")), "{text}");
    text[start..end].to_string()
}

/// Whether `nats-server` is here; `false` (with a visible message) where it is not, and under
/// CI=true (`.ci/run` installs Debian's package) a failure instead.
fn nats_server_installed() -> bool {
    if Command::new("nats-server")
        .arg("--version")
        .output()
        .is_ok()
    {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "nats-server is missing and CI=true (.ci/run installs Debian's nats-server)"
    );
    eprintln!("SKIPPED: nats-server is not installed (apt-get install nats-server)");
    false
}

/// The accounts of the shipped `config/nats-server.conf` (the relay's, the stores'), with
/// `users` (issued store entries) pasted where it says: the tests run on the tier's own
/// accounts and permissions.
fn shipped_accounts(users: &str) -> String {
    let shipped = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/nats-server.conf"
    ))
    .expect("config/nats-server.conf");
    let accounts = &shipped[shipped.find("\naccounts {").expect("an accounts block")..];
    let marker = "of the serial map only. Paste each below, then `systemctl reload nats-server`.\n";
    assert!(
        accounts.contains(marker),
        "the conf says where store entries go"
    );
    accounts.replace(marker, &format!("{marker}{users}\n"))
}

/// A `nats-server` with JetStream on 127.0.0.1, with the shipped accounts.
pub struct NatsServer {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl NatsServer {
    /// `None` (with a visible message) where `nats-server` is not installed; under CI=true
    /// (`.ci/run` installs Debian's package) that fails the test instead.
    pub fn start() -> Option<NatsServer> {
        Self::start_for(&[STORE, OTHER_STORE])
    }

    /// As [`NatsServer::start`], with a login for each of `stores`.
    pub fn start_for(stores: &[&str]) -> Option<NatsServer> {
        if !nats_server_installed() {
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let users: Vec<String> = stores
            .iter()
            .map(|store| issued_user(dir.path(), store))
            .collect();
        std::fs::write(dir.path().join("users.conf"), users.join(",\n")).expect("users");
        let (child, port) = Self::spawn(dir.path(), "-1");
        Some(NatsServer { child, port, dir })
    }

    fn spawn(dir: &std::path::Path, port: &str) -> (Child, u16) {
        let config = dir.join("nats-server.conf");
        std::fs::write(
            &config,
            format!(
                "listen: \"127.0.0.1:{port}\"\njetstream {{ store_dir: \"{}\" }}\n{}",
                dir.join("jetstream").display(),
                shipped_accounts(&std::fs::read_to_string(dir.join("users.conf")).expect("users"))
            ),
        )
        .expect("config");
        let mut child = Command::new("nats-server")
            .arg("-c")
            .arg(&config)
            .env("RELAY_PASSWORD", "relay-secret")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("nats-server");
        let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let port = loop {
            let line = lines
                .next()
                .expect("nats-server stopped before listening")
                .expect("a log line");
            if let Some((_, address)) = line.split_once("Listening for client connections on ") {
                let port = address.rsplit(':').next().expect("a port");
                break port.trim().parse::<u16>().expect("a port number");
            }
        };
        std::thread::spawn(move || for _ in lines {});
        (child, port)
    }

    /// Stops the server and starts it again on the same port with the same JetStream data.
    pub fn restart(&mut self) {
        self.stop();
        self.start_again();
    }

    /// Kills the server (its JetStream data stays).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on the same port with the same data, after [`NatsServer::stop`].
    pub fn start_again(&mut self) {
        let (child, port) = Self::spawn(self.dir.path(), &self.port.to_string());
        assert_eq!(port, self.port);
        self.child = child;
    }

    /// The files of the server's JetStream store (the relay tier's records) holding `needle`.
    pub fn files_holding(&self, needle: &str) -> Vec<std::path::PathBuf> {
        fn walk(dir: &std::path::Path, needle: &[u8], found: &mut Vec<std::path::PathBuf>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, needle, found);
                } else if std::fs::read(&path)
                    .is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
                {
                    found.push(path);
                }
            }
        }
        let mut found = Vec::new();
        walk(
            &self.dir.path().join("jetstream"),
            needle.as_bytes(),
            &mut found,
        );
        found
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The `[uplink]` section of the store `STORE`.
    pub fn uplink(&self) -> String {
        self.uplink_of(STORE)
    }

    /// The `[uplink]` section of `store`.
    pub fn uplink_of(&self, store: &str) -> String {
        format!(
            "\n[uplink]\nnats_url = \"{}\"\nstore_id = \"{store}\"\nuser = \"{store}\"\npassword_file = \"{}\"\n",
            self.url(),
            self.dir.path().join(format!("{store}.password")).display()
        )
    }

    /// A store's own login, as its daemon has it.
    pub async fn store(&self, store: &str) -> async_nats::Client {
        let password = std::fs::read_to_string(self.dir.path().join(format!("{store}.password")))
            .expect("password");
        async_nats::ConnectOptions::with_user_and_password(store.into(), password.trim().into())
            .custom_inbox_prefix(posbridge::uplink::inbox_prefix(store))
            .connect(self.url())
            .await
            .expect("the store connects")
    }

    /// The relay's connection.
    pub async fn relay(&self) -> async_nats::Client {
        async_nats::ConnectOptions::with_user_and_password("relay".into(), "relay-secret".into())
            .connect(self.url())
            .await
            .expect("the relay connects")
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A PPP request as the relay carries it (see `posbridge::uplink::wire`); the store's answer.
/// A PPP request as the relay sends it: the Gateway's credentials (which never cross) and
/// the merchant the relay authenticated, if `merchant`.
async fn relayed(
    relay: &async_nats::Client,
    method: &str,
    path: &str,
    merchant: Option<&str>,
    body: &Value,
) -> (u16, Value) {
    let mut http_headers = http::HeaderMap::new();
    http_headers.insert("x-vtex-api-appkey", APP_KEY.parse().expect("key"));
    http_headers.insert("x-vtex-api-apptoken", APP_TOKEN.parse().expect("token"));
    http_headers.insert("content-type", "application/json".parse().expect("type"));
    let mut headers = posbridge::uplink::wire::request_to_nats(
        &method.parse().expect("method"),
        path,
        &http_headers,
        Some("127.0.0.1".parse().expect("ip")),
    );
    if let Some(merchant) = merchant {
        headers.insert(posbridge::uplink::wire::MERCHANT, merchant);
    }
    reply_of(relay, headers, Bytes::from(body.to_string())).await
}

async fn reply_of(relay: &async_nats::Client, headers: HeaderMap, body: Bytes) -> (u16, Value) {
    let reply = tokio::time::timeout(
        Duration::from_secs(10),
        relay.request_with_headers(posbridge::uplink::requests_subject(STORE), headers, body),
    )
    .await
    .expect("the store answers within 10 s")
    .expect("the store answers");
    let response =
        posbridge::uplink::wire::response_from_nats(reply.headers.as_ref(), reply.payload)
            .expect("a reply the relay can read");
    let status = response.status().as_u16();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("body");
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// The relay tier's serial map, made as the relay makes it. The key-value bucket's stream is
/// created by hand: async-nats's `create_key_value` first reads the account's limits in a shape
/// nats-server 2.9 (Debian's) does not send; reading and writing keys works with it.
async fn serial_map(
    jetstream: &async_nats::jetstream::Context,
) -> async_nats::jetstream::kv::Store {
    let bucket = posbridge::uplink::SERIALS_BUCKET;
    jetstream
        .create_stream(async_nats::jetstream::stream::Config {
            name: format!("KV_{bucket}"),
            subjects: vec![format!("$KV.{bucket}.>")],
            max_messages_per_subject: 1,
            discard: async_nats::jetstream::stream::DiscardPolicy::New,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            ..Default::default()
        })
        .await
        .expect("the relay tier makes the serial map");
    jetstream
        .get_key_value(bucket)
        .await
        .expect("the serial map opens")
}

#[tokio::test]
async fn a_store_behind_the_relay_answers_relayed_requests_as_its_own_listener_does() {
    let Some(mut nats) = NatsServer::start() else {
        return;
    };
    let relay = nats.relay().await;
    let jetstream = async_nats::jetstream::new(relay.clone());
    let serials = serial_map(&jetstream).await;
    let daemon = Daemon::start(Options {
        two_terminals: true,
        extra_config: nats.uplink(),
        ..Options::default()
    })
    .await;
    assert!(
        daemon
            .wait_log("terminals announced to the relay", Duration::from_secs(10))
            .await,
        "{}",
        daemon.logs()
    );
    let announced = serials
        .get(STORE)
        .await
        .expect("read")
        .expect("the store's entry");
    assert_eq!(
        serde_json::from_slice::<Value>(&announced).expect("json"),
        json!([SERIAL, SERIAL_2])
    );

    // A store's login reaches nothing of another store: not its requests, not its entry.
    let intruder = nats.store(OTHER_STORE).await;
    let mut spying = intruder
        .subscribe(posbridge::uplink::requests_subject(STORE))
        .await
        .expect("the client sends the subscription");
    // It may write its own entry only (as its daemon does: a JetStream publish to the
    // entry's subject; its account has no JetStream of its own, nor the relay's API).
    let intruder_js = async_nats::jetstream::new(intruder.clone());
    let forged = async {
        intruder_js
            .publish(
                format!("$KV.{}.{STORE}", posbridge::uplink::SERIALS_BUCKET),
                Bytes::from_static(b"[\"SIM-0001\"]"),
            )
            .await?
            .await
            .map(|_| ())
            .map_err(async_nats::Error::from)
    };
    assert!(
        tokio::time::timeout(Duration::from_secs(5), forged)
            .await
            .map_or(true, |put| put.is_err()),
        "a store wrote another store's serials"
    );
    let reaches_api = tokio::time::timeout(
        Duration::from_secs(5),
        intruder_js.get_key_value(posbridge::uplink::SERIALS_BUCKET),
    )
    .await;
    assert!(
        !matches!(reaches_api, Ok(Ok(_))),
        "a store reached the relay's JetStream API"
    );
    assert_eq!(
        serials.get(STORE).await.expect("read").as_deref(),
        Some(&announced[..])
    );
    // The same Create, relayed and on the store's own listener: the same answer.
    let body = create_body(
        "relayed-1",
        json!(12.5),
        "Venda Direta Credito",
        "http://127.0.0.1:9/cb",
    );
    let (status, by_relay) = relayed(&relay, "POST", "/payments", Some(APP_KEY), &body).await;
    assert_eq!(status, 200, "{by_relay}");
    assert_eq!(by_relay["status"], "undefined", "{by_relay}");
    assert_eq!(by_relay["paymentId"], "relayed-1");
    let direct = daemon.gateway().create(&body).await;
    assert_eq!(
        by_relay, direct,
        "a relayed answer is the store's exact answer"
    );
    // The other store's login saw none of it (the server refused its subscription).
    let seen = tokio::time::timeout(Duration::from_millis(500), spying.next()).await;
    assert!(
        matches!(seen, Err(_) | Ok(None)),
        "another store's login read this store's request"
    );

    // No merchant named: refused as on the listener without credentials (the Gateway's never
    // cross NATS, so the store cannot be asked to check them), nothing created.
    let other = create_body(
        "relayed-2",
        json!(1),
        "Venda Direta Credito",
        "http://127.0.0.1:9/cb",
    );
    let (status, refused) = relayed(&relay, "POST", "/payments", None, &other).await;
    assert_eq!(status, 401, "{refused}");
    // A merchant no app key could be: the message is refused whole.
    let (status, refused) = relayed(&relay, "POST", "/payments", Some(" "), &other).await;
    assert_eq!(
        (status, refused["code"].clone()),
        (400, json!("bad-relay-message")),
        "{refused}"
    );
    assert!(!daemon.logs().contains("relayed-2"), "nothing was created");
    // A message that is no HTTP request: a clear 400, and the store keeps serving.
    let (status, broken) = reply_of(&relay, HeaderMap::new(), Bytes::from_static(b"{}")).await;
    assert_eq!(
        (status, broken["code"].clone()),
        (400, json!("bad-relay-message"))
    );

    // NATS restarts: the store reconnects by itself and answers the next relayed request.
    nats.restart();
    let relay = nats.relay().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let mut headers = HeaderMap::new();
        headers.insert(posbridge::uplink::wire::METHOD, "GET");
        headers.insert(posbridge::uplink::wire::PATH, "/manifest");
        let answer = tokio::time::timeout(
            Duration::from_secs(2),
            relay.request_with_headers(
                posbridge::uplink::requests_subject(STORE),
                headers,
                Bytes::new(),
            ),
        )
        .await;
        if let Ok(Ok(reply)) = answer {
            let response =
                posbridge::uplink::wire::response_from_nats(reply.headers.as_ref(), reply.payload)
                    .expect("a reply");
            assert_eq!(response.status(), 200);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the store did not come back to NATS: {}",
            daemon.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        daemon
            .logs()
            .contains("lost the relay tier (NATS): reconnecting")
    );
}

/// `config/nats-server.conf`, as shipped, with its certificate and data paths pointed at this
/// test's files and two stores' entries from `posbridge issue-store-credentials` pasted where it
/// says: `nats-server -t` accepts it.
#[test]
fn the_shipped_nats_server_conf_takes_issued_store_entries() {
    if !nats_server_installed() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let key = rcgen::KeyPair::generate().expect("key");
    let certificate = rcgen::CertificateParams::new(vec!["nats.partner.example.com".into()])
        .expect("params")
        .self_signed(&key)
        .expect("certificate");
    std::fs::write(dir.path().join("fullchain.pem"), certificate.pem()).expect("cert");
    std::fs::write(dir.path().join("privkey.pem"), key.serialize_pem()).expect("key");
    let shipped = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/nats-server.conf"
    ))
    .expect("config/nats-server.conf");
    let marker = "of the serial map only. Paste each below, then `systemctl reload nats-server`.\n";
    assert!(
        shipped.contains(marker),
        "the conf says where store entries go"
    );
    let entries = [STORE, OTHER_STORE]
        .iter()
        .map(|store| issued_user(dir.path(), store))
        .collect::<Vec<_>>()
        .join("\n");
    let conf = shipped
        .replace("/etc/nats-server/tls", &dir.path().display().to_string())
        .replace(
            "/var/lib/nats-server/jetstream",
            &dir.path().join("js").display().to_string(),
        )
        .replace(marker, &format!("{marker}{entries}\n"));
    assert!(conf.contains("user: \"store-2\""));
    let path = dir.path().join("nats-server.conf");
    std::fs::write(&path, conf).expect("conf");
    let out = Command::new("nats-server")
        .arg("-t")
        .arg("-c")
        .arg(&path)
        .env("RELAY_PASSWORD", "relay-secret")
        .output()
        .expect("nats-server -t");
    assert!(
        out.status.success(),
        "nats-server refuses the shipped conf: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `posbridge check-config` reads the uplink's login as `run` would: a password file that is
/// not there is a configuration problem (64) named by its key, before the daemon is started.
#[test]
fn check_config_finds_an_uplink_login_that_is_not_there() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("uplink.password");
    let options = Options {
        extra_config: format!(
            "\n[uplink]\nnats_url = \"nats://127.0.0.1:4222\"\nstore_id = \"{STORE}\"\nuser = \"{STORE}\"\npassword_file = \"{}\"\n",
            missing.display()
        ),
        ..Options::default()
    };
    let config = dir.path().join("posbridge.toml");
    std::fs::write(&config, Daemon::config_text(dir.path(), &options)).expect("config");
    let check = || {
        Command::new(env!("CARGO_BIN_EXE_posbridge"))
            .args(["check-config", "--config"])
            .arg(&config)
            .output()
            .expect("check-config")
    };
    let out = check();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(stderr.contains("uplink.password_file"), "{stderr}");
    std::fs::write(&missing, "a-password\n").expect("password");
    let out = check();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
