//! A store daemon behind the relay tier (`[uplink]`), on a real `nats-server` with JetStream:
//! requests relayed over NATS are answered exactly as on the store's own listener, the store's
//! terminal serials reach the relay's serial map (never taking another store's), and the store
//! finds NATS again by itself after the server restarts. The test plays the relay's part.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use async_nats::HeaderMap;
use bytes::Bytes;
use serde_json::{Value, json};

use crate::harness::*;

const STORE: &str = "store-1";

/// A `nats-server` with JetStream on 127.0.0.1, one account for the relay and a store.
pub struct NatsServer {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl NatsServer {
    /// `None` (with a visible message) where `nats-server` is not installed; under CI=true
    /// (`.ci/run` installs Debian's package) that fails the test instead.
    pub fn start() -> Option<NatsServer> {
        if Command::new("nats-server")
            .arg("--version")
            .output()
            .is_err()
        {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "nats-server is missing and CI=true (.ci/run installs Debian's nats-server)"
            );
            eprintln!("SKIPPED: nats-server is not installed (apt-get install nats-server)");
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("store.password"), "store-secret\n").expect("password");
        let (child, port) = Self::spawn(dir.path(), "-1");
        Some(NatsServer { child, port, dir })
    }

    fn spawn(dir: &std::path::Path, port: &str) -> (Child, u16) {
        let config = dir.join("nats-server.conf");
        std::fs::write(
            &config,
            format!(
                r#"listen: "127.0.0.1:{port}"
jetstream {{ store_dir: "{}" }}
accounts {{
  POSBRIDGE {{
    jetstream: enabled
    users: [ {{ user: relay, password: relay-secret }}, {{ user: "{STORE}", password: store-secret }} ]
  }}
}}
"#,
                dir.join("jetstream").display()
            ),
        )
        .expect("config");
        let mut child = Command::new("nats-server")
            .arg("-c")
            .arg(&config)
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
        let _ = self.child.kill();
        let _ = self.child.wait();
        let (child, port) = Self::spawn(self.dir.path(), &self.port.to_string());
        assert_eq!(port, self.port);
        self.child = child;
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The `[uplink]` section of the store `STORE`.
    pub fn uplink(&self) -> String {
        format!(
            "\n[uplink]\nnats_url = \"{}\"\nstore_id = \"{STORE}\"\nuser = \"{STORE}\"\npassword_file = \"{}\"\n",
            self.url(),
            self.dir.path().join("store.password").display()
        )
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
async fn relayed(
    relay: &async_nats::Client,
    method: &str,
    path: &str,
    credentials: (&str, &str),
    body: &Value,
) -> (u16, Value) {
    let mut http_headers = http::HeaderMap::new();
    http_headers.insert("x-vtex-api-appkey", credentials.0.parse().expect("key"));
    http_headers.insert("x-vtex-api-apptoken", credentials.1.parse().expect("token"));
    http_headers.insert("content-type", "application/json".parse().expect("type"));
    let headers = posbridge::uplink::wire::request_to_nats(
        &method.parse().expect("method"),
        path,
        &http_headers,
        Some("127.0.0.1".parse().expect("ip")),
    );
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

/// Where the relay finds the store of a terminal, `None` when no store announced it.
async fn serial_holder(serials: &async_nats::jetstream::kv::Store, serial: &str) -> Option<String> {
    serials
        .get(serial)
        .await
        .expect("the serial map answers")
        .map(|holder| String::from_utf8_lossy(&holder).into_owned())
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
    // Another store already holds the second terminal's serial.
    serials
        .put(SERIAL_2, Bytes::from_static(b"store-9"))
        .await
        .expect("put");
    let daemon = Daemon::start(Options {
        two_terminals: true,
        extra_config: nats.uplink(),
        ..Options::default()
    })
    .await;
    assert!(
        daemon
            .wait_log("terminal announced to the relay", Duration::from_secs(10))
            .await,
        "{}",
        daemon.logs()
    );
    assert_eq!(
        serial_holder(&serials, SERIAL).await.as_deref(),
        Some(STORE)
    );
    assert!(
        daemon
            .wait_log("ALARM: another store holds", Duration::from_secs(10))
            .await,
        "{}",
        daemon.logs()
    );
    assert_eq!(
        serial_holder(&serials, SERIAL_2).await.as_deref(),
        Some("store-9"),
        "a serial another store holds is never taken over"
    );

    // The same Create, relayed and on the store's own listener: the same answer.
    let body = create_body(
        "relayed-1",
        json!(12.5),
        "Venda Direta Credito",
        "http://127.0.0.1:9/cb",
    );
    let (status, by_relay) =
        relayed(&relay, "POST", "/payments", (APP_KEY, APP_TOKEN), &body).await;
    assert_eq!(status, 200, "{by_relay}");
    assert_eq!(by_relay["status"], "undefined", "{by_relay}");
    assert_eq!(by_relay["paymentId"], "relayed-1");
    let direct = daemon.gateway().create(&body).await;
    assert_eq!(
        by_relay, direct,
        "a relayed answer is the store's exact answer"
    );

    // Wrong credentials: refused as on the listener, nothing created.
    let other = create_body(
        "relayed-2",
        json!(1),
        "Venda Direta Credito",
        "http://127.0.0.1:9/cb",
    );
    let (status, refused) = relayed(
        &relay,
        "POST",
        "/payments",
        (APP_KEY, "not-the-token"),
        &other,
    )
    .await;
    assert_eq!(status, 401, "{refused}");
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
