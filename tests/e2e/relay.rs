//! The relay tier end to end: a real `nats-server` with JetStream, two `posbridge relay`
//! replicas and three store daemons (simulator terminals) that only dial out. The Gateway and
//! the Sales App talk to the relays alone, alternating replicas; each payment reaches the store
//! whose terminal the Sales App names, and every failure the tier promises to survive is played.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use crate::harness::*;
use crate::uplink::NatsServer;

const STORES: [&str; 3] = ["store-1", "store-2", "store-3"];
const SERIALS: [&str; 3] = ["SIM-A001", "SIM-B001", "SIM-C001"];

/// One `posbridge relay` replica.
struct Relay {
    child: Child,
    base: String,
    logs: Arc<Mutex<String>>,
    _dir: tempfile::TempDir,
}

impl Relay {
    /// A replica on an ephemeral port, giving out [`PUBLIC_URL`].
    fn start(nats: &NatsServer) -> Relay {
        let dir = tempfile::tempdir().expect("tempdir");
        let password = dir.path().join("relay.password");
        std::fs::write(&password, "relay-secret\n").expect("password");
        let config = dir.path().join("relay.toml");
        std::fs::write(
            &config,
            format!(
                r#"[server]
listen = "127.0.0.1:0"
public_url = "{public_url}"

[vtex]
app_key = "{APP_KEY}"
app_token = "{APP_TOKEN}"
callback_app_key = "{CALLBACK_KEY}"
callback_app_token = "{CALLBACK_TOKEN}"

[nats]
url = "{url}"
user = "relay"
password_file = "{password}"

[onboarding]
code = "{ONBOARDING_CODE}"
"#,
                public_url = PUBLIC_URL,
                url = nats.url(),
                password = password.display(),
            ),
        )
        .expect("config");
        let mut child = Command::new(env!("CARGO_BIN_EXE_posbridge"))
            .args(["relay", "--config"])
            .arg(&config)
            .args(["--log-level", "trace"])
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("posbridge relay");
        let logs = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        for stream in [
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ] {
            let logs = logs.clone();
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if let Some(rest) = line.split("relay listening on http://").nth(1) {
                        let address = rest.split_whitespace().next().unwrap_or_default();
                        let _ = tx.send(address.to_string());
                    }
                    let mut logs = logs.lock().expect("logs");
                    logs.push_str(&line);
                    logs.push('\n');
                }
            });
        }
        let Ok(address) = rx.recv_timeout(Duration::from_secs(30)) else {
            let _ = child.kill();
            panic!("the relay did not start:\n{}", logs.lock().expect("logs"));
        };
        Relay {
            child,
            base: format!("http://{address}"),
            logs,
            _dir: dir,
        }
    }

    fn gateway(&self) -> Gateway {
        Gateway::new(&self.base, APP_KEY, APP_TOKEN)
    }

    fn logs(&self) -> String {
        self.logs.lock().expect("logs").clone()
    }

    /// SIGKILL.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A store daemon behind the relay: its one terminal is `serial`, it has no inbound port the
/// test uses, and it gives out the relay's address.
async fn store(nats: &NatsServer, index: usize, public_url: &str, extra: &str) -> Daemon {
    let daemon = Daemon::start(Options {
        serial: SERIALS[index],
        behind_relay: true,
        server_extra: format!("public_url = \"{public_url}\""),
        extra_config: format!("{}{extra}", nats.uplink_of(STORES[index])),
        ..Options::default()
    })
    .await;
    assert!(
        daemon
            .wait_log("terminals announced to the relay", Duration::from_secs(20))
            .await,
        "{}",
        daemon.logs()
    );
    daemon
}

/// The same URL on another replica (the Sales App's load balancer picked another one).
fn on(relay: &Relay, url: &str) -> String {
    let path = url.splitn(4, '/').nth(3).expect("a path");
    format!("{}/{path}", relay.base)
}

/// Waits until `relay` routes each of `stores`' terminals (they announce themselves as they
/// start; every replica follows the serial map).
async fn until_routed(relay: &Relay, stores: &[&str]) {
    let routed = || {
        let logs = relay.logs();
        stores.iter().all(|store| {
            logs.lines()
                .any(|l| l.contains("terminals routed") && l.contains(&format!("store_id={store}")))
        })
    };
    assert!(
        eventually(Duration::from_secs(20), routed).await,
        "stores not routed: {}",
        relay.logs()
    );
}

/// Whether `done` came true within `limit` (checked every 50 ms).
async fn eventually(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while !done() {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

/// The Service URL the Gateway and the Sales App are given: a load balancer's name in
/// production. Never dialled here: the test sends each request to the replica it picks.
const PUBLIC_URL: &str = "http://relay.invalid";

#[tokio::test]
async fn many_stores_behind_two_relay_replicas_take_payments_through_either() {
    let Some(nats) = NatsServer::start_for(&STORES) else {
        return;
    };
    let receiver = CallbackReceiver::start(0).await;
    // The replicas share nothing but NATS and the one public name.
    let mut relay_a = Relay::start(&nats);
    let relay_b = Relay::start(&nats);
    let public_url = PUBLIC_URL;
    let stores = [
        store(&nats, 0, public_url, "").await,
        store(&nats, 1, public_url, "").await,
        store(&nats, 2, public_url, "").await,
    ];
    let (a, b) = (relay_a.gateway(), relay_b.gateway());
    until_routed(&relay_a, &STORES).await;
    until_routed(&relay_b, &STORES).await;

    // The first Create: the relay keeps it and sends the Sales App to its own submitUrl.
    let body = create_body(
        "relay-pay-1",
        json!(25.9),
        "Venda Direta Credito",
        &receiver.url_for("relay-pay-1"),
    );
    let first = a.create(&body).await;
    assert_eq!(first["status"], "undefined", "{first}");
    let url = submit_url(&first);
    assert!(
        url.starts_with(&format!(
            "{PUBLIC_URL}/pos/payments/relay-pay-1/terminal?token="
        )),
        "{url}"
    );
    // The other replica answers the repeat with the same identity.
    let again = b.create(&body).await;
    assert_eq!(
        (again["tid"].clone(), submit_url(&again)),
        (first["tid"].clone(), url.clone())
    );
    // A serial no store has: 404, and the payment waits for a good one.
    let (status, refused) =
        submit_serial(&on(&relay_b, &url), "{\"serialNumber\":\"SIM-NONE\"}").await;
    assert_eq!(
        (status, refused["code"].clone()),
        (404, json!("unknown-terminal")),
        "{refused}"
    );
    // A wrong token: 403, as on a store.
    let forged = url.replace("token=", "token=0");
    let (status, _) =
        submit_serial(&on(&relay_b, &forged), "{\"serialNumber\":\"SIM-B001\"}").await;
    assert_eq!(status, 403);

    // The Sales App names store-2's terminal on replica B: store-2 charges it.
    let (status, bound) =
        submit_serial(&on(&relay_b, &url), "{\"serialNumber\":\"SIM-B001\"}").await;
    assert_eq!(status, 200, "{bound}");
    assert_eq!(bound["status"], "bound", "{bound}");
    // Polls alternate replicas until final; the tid never changes.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut n = 0;
    let last = loop {
        n += 1;
        let gateway = if n % 2 == 0 { &a } else { &b };
        let answer = gateway.create(&body).await;
        assert_eq!(answer["tid"], first["tid"], "{answer}");
        if answer["status"] != "undefined" {
            break answer;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never final: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(last["status"], "approved", "{last}");
    // The store's own answer, relayed: the card fragments a store keeps.
    assert!(last["lastDigits"].is_string(), "{last}");
    assert_eq!(stores[1].charges_of("relay-pay-1"), 1);
    for other in [&stores[0], &stores[2]] {
        assert!(
            !other.logs().contains("relay-pay-1"),
            "another store saw the payment"
        );
    }
    let callbacks = receiver
        .wait_for("relay-pay-1", Duration::from_secs(20))
        .await;
    // The store has no partner keys: a relay posted the callback with them (the receiver
    // refuses a callback without), once, equal to the final Create answer.
    assert_eq!(callbacks.len(), 1);
    assert_eq!(callbacks[0].2["status"], "approved");
    assert_eq!(callbacks[0].2["tid"], first["tid"]);
    assert_eq!(
        callbacks[0].2, last,
        "the callback agrees with the final Create answer"
    );
    let delivered_by = |relay: &Relay| {
        relay
            .logs()
            .lines()
            .any(|l| l.contains("callback delivered") && l.contains("payment_id=relay-pay-1"))
    };
    // Logged once the stream took the acknowledgement, just after the POST was answered.
    assert!(
        eventually(Duration::from_secs(10), || delivered_by(&relay_a)
            || delivered_by(&relay_b))
        .await,
        "no replica says it delivered it"
    );
    assert!(
        !(delivered_by(&relay_a) && delivered_by(&relay_b)),
        "one replica delivered it, not both"
    );
    // Another store's login hands in a callback for this payment: the relay posts nothing
    // (it posts only for the store a payment was routed to, to the URL it kept) and says so.
    let intruder = async_nats::jetstream::new(nats.store(STORES[0]).await);
    intruder
        .publish(
            posbridge::uplink::callbacks::callbacks_subject(STORES[0]),
            json!({ "paymentId": "relay-pay-1", "status": "denied" })
                .to_string()
                .into(),
        )
        .await
        .expect("published")
        .await
        .expect("stored");
    let refused = |relay: &Relay| {
        relay
            .logs()
            .contains("a store sent a callback for a payment the relay did not route to it")
    };
    assert!(
        eventually(Duration::from_secs(10), || refused(&relay_a)
            || refused(&relay_b))
        .await,
        "the forged callback was not refused"
    );
    assert_eq!(
        receiver.for_payment("relay-pay-1").len(),
        1,
        "nothing more was posted"
    );
    // Settle through replica A: the store's answer.
    let (status, settled) = a
        .post(
            "/payments/relay-pay-1/settlements",
            &json!({ "requestId": "settle-1", "paymentId": "relay-pay-1", "value": 25.9 }),
        )
        .await;
    assert_eq!(status, 200, "{settled}");
    assert!(settled["settleId"].is_string(), "{settled}");

    // A cancel before any terminal was named: nothing can have been charged, the relay
    // cancels it; the Create then says denied, and no submitUrl works for it any more.
    let body2 = create_body(
        "relay-pay-2",
        json!(3),
        "Venda Direta Debito",
        &receiver.url_for("relay-pay-2"),
    );
    let url2 = submit_url(&b.create(&body2).await);
    let (status, cancelled) = a
        .post(
            "/payments/relay-pay-2/cancellations",
            &json!({ "requestId": "c-2" }),
        )
        .await;
    assert_eq!(status, 200, "{cancelled}");
    let (_, repeated) = b
        .post(
            "/payments/relay-pay-2/cancellations",
            &json!({ "requestId": "c-2" }),
        )
        .await;
    assert_eq!(repeated["cancellationId"], cancelled["cancellationId"]);
    assert_eq!(a.create(&body2).await["status"], "denied");
    let (status, _) = submit_serial(&on(&relay_a, &url2), "{\"serialNumber\":\"SIM-A001\"}").await;
    assert_eq!(status, 409);
    assert!(!stores[0].logs().contains("relay-pay-2"));

    // A replica killed mid-payment: the other continues it.
    let body3 = create_body(
        "relay-pay-3",
        json!(7.5),
        "Venda Direta Credito",
        &receiver.url_for("relay-pay-3"),
    );
    let url3 = submit_url(&a.create(&body3).await);
    let (status, _) = submit_serial(&on(&relay_a, &url3), "{\"serialNumber\":\"SIM-A001\"}").await;
    assert_eq!(status, 200);
    relay_a.kill();
    let last = b.poll_final(&body3, Duration::from_secs(20)).await;
    assert_eq!(last["status"], "approved", "{last}");
    assert_eq!(stores[0].charges_of("relay-pay-3"), 1);
    // The relay tier's records on disk (JetStream's files) hold no callback signature (the
    // kept callback URLs are sealed) and no Gateway or partner token.
    assert!(
        !nats.files_holding("relay-pay-1").is_empty(),
        "the records are where we look"
    );
    for secret in [CALLBACK_SIGNATURE, APP_TOKEN, CALLBACK_TOKEN] {
        let files = nats.files_holding(secret);
        assert!(
            files.is_empty(),
            "`{secret}` in the relay tier's JetStream files: {files:?}"
        );
    }
    assert_eq!(
        receiver
            .wait_for("relay-pay-3", Duration::from_secs(20))
            .await
            .len(),
        1
    );
}

/// A store away: its payments' polls stay `undefined`, cancel / settle / refund get a
/// retryable 503 `store-offline`, and once it is back the sale its terminal finished meanwhile
/// is answered and called back. Two stores claiming one serial: refused, with an alarm.
#[tokio::test]
async fn a_store_offline_loses_nothing_and_a_disputed_serial_is_refused() {
    let Some(nats) = NatsServer::start_for(&STORES) else {
        return;
    };
    let receiver = CallbackReceiver::start(0).await;
    let relay = Relay::start(&nats);
    let public_url = PUBLIC_URL;
    let extra_terminal = format!(
        "\n[[terminals]]\nid = \"lane-9\"\nserial_number = \"{SERIAL_2}\"\nprotocol = \"simulator\"\napprove_after_ms = 200\n"
    );
    let store_1 = store(&nats, 0, public_url, &extra_terminal).await;
    let mut store_3 = store(&nats, 2, public_url, &extra_terminal).await;
    until_routed(&relay, &[STORES[0], STORES[2]]).await;
    let gateway = relay.gateway();

    // SERIAL_2 is claimed by store-1 and store-3: refused, and the relay raises an alarm.
    let body = create_body(
        "disputed-1",
        json!(2),
        "Venda Direta Credito",
        &receiver.url_for("disputed-1"),
    );
    let url = submit_url(&gateway.create(&body).await);
    let (status, refused) = submit_serial(
        &on(&relay, &url),
        &format!("{{\"serialNumber\":\"{SERIAL_2}\"}}"),
    )
    .await;
    assert_eq!(
        (status, refused["code"].clone()),
        (409, json!("disputed-terminal")),
        "{refused}"
    );
    assert!(
        relay
            .logs()
            .contains("ALARM: two stores claim one terminal serial number"),
        "{}",
        relay.logs()
    );
    assert!(!store_1.logs().contains("disputed-1") && !store_3.logs().contains("disputed-1"));

    // store-3 charges, then dies before its terminal answers; the simulator goes on.
    let body = create_body(
        "offline-1",
        json!(12),
        "Venda Direta Credito",
        &receiver.url_for("offline-1"),
    );
    let url = submit_url(&gateway.create(&body).await);
    let (status, bound) = submit_serial(&on(&relay, &url), "{\"serialNumber\":\"SIM-C001\"}").await;
    assert_eq!(status, 200, "{bound}");
    store_3.kill();
    let answer = gateway.create(&body).await;
    assert_eq!(answer["status"], "undefined", "{answer}");
    for (path, request) in [
        ("cancellations", json!({ "requestId": "o-c" })),
        ("settlements", json!({ "requestId": "o-s", "value": 12 })),
        ("refunds", json!({ "requestId": "o-r", "value": 12 })),
    ] {
        let (status, refused) = gateway
            .post(&format!("/payments/offline-1/{path}"), &request)
            .await;
        assert_eq!(
            (status, refused["code"].clone()),
            (503, json!("store-offline")),
            "{path}: {refused}"
        );
    }
    // Back: the sale the terminal finished while the store was down is answered and called back.
    let store_3 = store_3.restart().await;
    let last = gateway.poll_final(&body, Duration::from_secs(30)).await;
    assert_eq!(last["status"], "approved", "{last}");
    assert_eq!(store_3.charges_of("offline-1"), 1);
    let callbacks = receiver
        .wait_for("offline-1", Duration::from_secs(20))
        .await;
    assert_eq!(callbacks.len(), 1);
    assert_eq!(callbacks[0].2["status"], "approved");
}

/// What the Gateway's retries see: a 503 with a retryable code, or the answer.
async fn until_answered(
    gateway: &Gateway,
    path: &str,
    body: &serde_json::Value,
) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (status, answer) = gateway.post(path, body).await;
        if status == 200 {
            return answer;
        }
        assert_eq!(
            status, 503,
            "{path}: only a retryable answer while NATS is away: {answer}"
        );
        assert!(
            ["relay-unavailable", "store-offline", "timeout"]
                .contains(&answer["code"].as_str().unwrap_or_default()),
            "{answer}"
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "{path}: never answered: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The NATS server restarts under a payment: the relay and the store reconnect by themselves,
/// every request meanwhile gets a retryable answer (never a wrong one), and the payment ends
/// approved, charged once and called back once.
#[tokio::test]
async fn the_nats_server_restarting_under_a_payment_loses_nothing() {
    let Some(mut nats) = NatsServer::start_for(&STORES) else {
        return;
    };
    let receiver = CallbackReceiver::start(0).await;
    let relay = Relay::start(&nats);
    let store_1 = Daemon::start(Options {
        serial: SERIALS[0],
        behind_relay: true,
        // The sale outlasts the restart.
        approve_after_ms: 3_000,
        admin: true,
        server_extra: format!("public_url = \"{PUBLIC_URL}\""),
        extra_config: nats.uplink_of(STORES[0]),
        ..Options::default()
    })
    .await;
    until_routed(&relay, &STORES[..1]).await;
    // What store IT sees: connected to the relay tier, under its name.
    let status: serde_json::Value =
        serde_json::from_str(&store_1.admin_get("/status/api").await).expect("status json");
    assert_eq!(
        status["relay"],
        json!({ "storeId": "store-1", "connected": true })
    );
    let gateway = relay.gateway();
    let body = create_body(
        "restart-1",
        json!(19.9),
        "Venda Direta Credito",
        &receiver.url_for("restart-1"),
    );
    let url = submit_url(&gateway.create(&body).await);
    let (status, bound) = submit_serial(&on(&relay, &url), "{\"serialNumber\":\"SIM-A001\"}").await;
    assert_eq!(status, 200, "{bound}");

    // The relay tier loses the store's serial-map entry (a bucket made anew, say): the store
    // announces itself again at its next connection, without a restart of its own.
    let serial_map = async_nats::jetstream::new(nats.relay().await)
        .get_key_value(posbridge::uplink::SERIALS_BUCKET)
        .await
        .expect("the serial map");
    let routed = || {
        relay
            .logs()
            .lines()
            .filter(|l| l.contains("a store's terminals routed") && l.contains("store_id=store-1"))
            .count()
    };
    serial_map.delete(STORES[0]).await.expect("deleted");
    assert!(serial_map.get(STORES[0]).await.expect("read").is_none());
    let routed_before = routed();
    // NATS away: the relay's /healthz tells the load balancer (503), and the store's status
    // page says it is not connected.
    nats.stop();
    let health = || async {
        reqwest::get(format!("{}/healthz", relay.base))
            .await
            .expect("healthz")
            .status()
            .as_u16()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while health().await != 503 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "/healthz still ok without NATS"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status: serde_json::Value =
        serde_json::from_str(&store_1.admin_get("/status/api").await).expect("status json");
    assert_eq!(
        status["relay"],
        json!({ "storeId": "store-1", "connected": false })
    );
    nats.start_again();
    // Polls while both sides find NATS again: undefined or a retryable 503, then approved.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    let last = loop {
        let answer = until_answered(&gateway, "/payments", &body).await;
        if answer["status"] != "undefined" {
            break answer;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never final: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(last["status"], "approved", "{last}");
    assert_eq!(store_1.charges_of("restart-1"), 1);
    let callbacks = receiver
        .wait_for("restart-1", Duration::from_secs(30))
        .await;
    assert_eq!(callbacks.len(), 1, "one callback");
    assert_eq!(callbacks[0].2, last);
    assert!(
        relay
            .logs()
            .contains("lost the relay tier (NATS): reconnecting"),
        "{}",
        relay.logs()
    );

    let serial_map = async_nats::jetstream::new(nats.relay().await)
        .get_key_value(posbridge::uplink::SERIALS_BUCKET)
        .await
        .expect("the serial map");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while serial_map.get(STORES[0]).await.ok().flatten().is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the store did not announce itself again"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The relay follows it (its watch taken up again after the restart).
    assert_eq!(health().await, 200, "/healthz ok again once NATS is back");
    assert!(
        eventually(Duration::from_secs(20), || routed() > routed_before).await,
        "the relay did not route it again"
    );
    // And a new payment goes through the whole flow after the restart (routed by the entry
    // announced again).
    let body = create_body(
        "restart-2",
        json!(5),
        "Venda Direta Debito",
        &receiver.url_for("restart-2"),
    );
    let url = submit_url(&until_answered(&gateway, "/payments", &body).await);
    let (status, bound) = submit_serial(&on(&relay, &url), "{\"serialNumber\":\"SIM-A001\"}").await;
    assert_eq!(status, 200, "{bound}");
    assert_eq!(
        gateway.poll_final(&body, Duration::from_secs(20)).await["status"],
        "approved"
    );
}

/// A custom Payment App's live feed through the relay: the `wsUrl` the store gives out is the
/// relay's; the events arrive in order as the store sends them, the socket closes 1000 after
/// the result, `?after=` resumes exactly, a wrong token is refused before the upgrade, and a
/// cancel from the app aborts the sale on the store's terminal.
#[tokio::test]
async fn the_payment_app_feed_works_through_the_relay() {
    use crate::payment_app::{APP, connect, read_all, read_until};
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;

    let Some(nats) = NatsServer::start_for(&STORES) else {
        return;
    };
    let relay = Relay::start(&nats);
    let store_1 = Daemon::start(Options {
        serial: SERIALS[0],
        behind_relay: true,
        approve_after_ms: 1_200,
        payment_app: Some(APP),
        server_extra: format!("public_url = \"{PUBLIC_URL}\""),
        extra_config: nats.uplink_of(STORES[0]),
        ..Options::default()
    })
    .await;
    until_routed(&relay, &STORES[..1]).await;
    let gateway = relay.gateway();
    let ws_of = |answer: &serde_json::Value| {
        assert_eq!(answer["paymentAppData"]["appName"], APP, "{answer}");
        let payload: serde_json::Value = serde_json::from_str(
            answer["paymentAppData"]["payload"]
                .as_str()
                .expect("payload"),
        )
        .expect("json");
        let url = payload["wsUrl"].as_str().expect("wsUrl").to_string();
        let path = url
            .strip_prefix("ws://relay.invalid")
            .unwrap_or_else(|| panic!("the store gives out the relay's address: {url}"))
            .to_string();
        format!("{}{path}", relay.base.replacen("http://", "ws://", 1))
    };
    let start = |id: &'static str, value: serde_json::Value| {
        let gateway = &gateway;
        let relay = &relay;
        async move {
            let body = create_body(id, value, "Venda Direta Credito", "http://127.0.0.1:9/cb");
            let url = submit_url(&gateway.create(&body).await);
            let (status, _) =
                submit_serial(&on(relay, &url), "{\"serialNumber\":\"SIM-A001\"}").await;
            assert_eq!(status, 200);
            (body.clone(), gateway.create(&body).await)
        }
    };

    let (body, answer) = start("feed-1", json!(12)).await;
    let url = ws_of(&answer);
    let mut socket = connect(&url).await;
    let (events, code) = read_all(&mut socket, Duration::from_secs(20)).await;
    assert_eq!(code, Some(1000), "{events:?}");
    let result = events.last().expect("events");
    assert_eq!(result["type"], "result", "{events:?}");
    assert_eq!(result["status"], "approved");
    let seqs: Vec<i64> = events
        .iter()
        .map(|e| e["seq"].as_i64().expect("seq"))
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "contiguous: {seqs:?}"
    );
    assert_eq!(gateway.create(&body).await["status"], "approved");
    // Resumed after the first event: exactly the rest, then 1000.
    let mut resumed = connect(&format!("{url}&after={}", seqs[0])).await;
    let (rest, code) = read_all(&mut resumed, Duration::from_secs(10)).await;
    assert_eq!((rest.as_slice(), code), (&events[1..], Some(1000)));
    // After the result: nothing more, 1000 at once.
    let last = seqs.last().copied().expect("last");
    let mut done = connect(&format!("{url}&after={last}")).await;
    assert_eq!(
        read_all(&mut done, Duration::from_secs(10)).await,
        (vec![], Some(1000))
    );
    // A wrong token: refused before the upgrade (the store's 403), nothing sent.
    let forged = url.replace("token=", "token=0");
    match tokio_tungstenite::connect_async(&forged).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403)
        }
        other => panic!("a wrong token was let in: {:?}", other.map(|_| ())),
    }

    // The reference page and its script, from the relay as from a store.
    for (path, kind) in [
        ("/payment-app/", "text/html"),
        ("/payment-app/app.js", "text/javascript"),
    ] {
        let response = reqwest::get(format!("{}{path}", relay.base))
            .await
            .expect("page");
        assert_eq!(response.status(), 200, "{path}");
        let content_type = response.headers()["content-type"]
            .to_str()
            .expect("type")
            .to_string();
        assert!(content_type.starts_with(kind), "{path}: {content_type}");
    }

    // .04: a slow sale (20 s) that honours an abort; the app's cancel reaches the terminal.
    let (body, answer) = start("feed-2", json!(30.04)).await;
    let mut socket = connect(&ws_of(&answer)).await;
    read_until(&mut socket, |e| e["type"] == "prompt").await;
    socket
        .send(Message::text(r#"{"type":"cancel"}"#))
        .await
        .expect("cancel");
    let (events, code) = read_all(&mut socket, Duration::from_secs(15)).await;
    assert_eq!(code, Some(1000), "{events:?}");
    let result = events.last().expect("result");
    assert_eq!(
        (result["status"].clone(), result["state"].clone()),
        (json!("denied"), json!("cancelled"))
    );
    assert_eq!(
        gateway.poll_final(&body, Duration::from_secs(5)).await["status"],
        "denied"
    );
    assert_eq!(store_1.journal_entries("feed-2", "aborted"), 1);
}

/// Bad input to the relay gets a clear, specific refusal and changes nothing (no record made,
/// nothing handed to a store), and nothing secret reaches its log or the store's, both at
/// trace level: not the Gateway's or the partner's token, not a callback signature, not a
/// submitUrl token.
#[tokio::test]
async fn the_relay_refuses_bad_input_clearly_and_logs_no_secret() {
    let Some(nats) = NatsServer::start_for(&STORES) else {
        return;
    };
    let receiver = CallbackReceiver::start(0).await;
    let relay = Relay::start(&nats);
    let store_1 = Daemon::start(Options {
        serial: SERIALS[0],
        behind_relay: true,
        log_level: "trace",
        server_extra: format!("public_url = \"{PUBLIC_URL}\""),
        extra_config: nats.uplink_of(STORES[0]),
        ..Options::default()
    })
    .await;
    until_routed(&relay, &STORES[..1]).await;
    let gateway = relay.gateway();
    let wrong = Gateway::new(&relay.base, APP_KEY, "not-the-token");

    for (body, headers, status, code) in [
        (b"{not json".to_vec(), vec![], 400, "bad-request"),
        (
            serde_json::to_vec(&json!({ "paymentId": "x" })).expect("json"),
            vec![],
            400,
            "bad-request",
        ),
        (
            serde_json::to_vec(&create_body(
                "neg-1",
                json!(-5),
                "Venda Direta Credito",
                "http://127.0.0.1:9/cb",
            ))
            .expect("json"),
            vec![],
            400,
            "invalid-value",
        ),
        (vec![b'x'; 2 * 1024 * 1024], vec![], 413, "body-too-large"),
    ] {
        let (got, answer) = gateway.post_raw("/payments", body, &headers).await;
        assert_eq!(
            (got, answer["code"].clone()),
            (status, json!(code)),
            "{answer}"
        );
    }
    let (status, answer) = wrong
        .post(
            "/payments",
            &create_body(
                "w-1",
                json!(1),
                "Venda Direta Credito",
                "http://127.0.0.1:9/cb",
            ),
        )
        .await;
    assert_eq!(
        (status, answer["code"].clone()),
        (401, json!("unauthorized"))
    );
    let (status, answer) = gateway
        .post(
            "/payments/no-such-payment/cancellations",
            &json!({ "requestId": "r" }),
        )
        .await;
    assert_eq!(
        (status, answer["code"].clone()),
        (404, json!("unknown-payment"))
    );
    let (status, _) = submit_serial(
        &format!(
            "{}/pos/payments/no-such/terminal?token={}",
            relay.base,
            "ab".repeat(32)
        ),
        "{\"serialNumber\":\"SIM-A001\"}",
    )
    .await;
    assert_eq!(status, 403);
    // None of it reached a store.
    assert!(
        !store_1.logs().contains("payment stored"),
        "{}",
        store_1.logs()
    );

    // A whole payment, then the relay's log is read for every secret it saw.
    let body = create_body(
        "secret-1",
        json!(8),
        "Venda Direta Credito",
        &receiver.url_for("secret-1"),
    );
    let first = gateway.create(&body).await;
    let url = submit_url(&first);
    let token = url.split("token=").nth(1).expect("token").to_string();
    let (status, _) = submit_serial(&on(&relay, &url), "{\"serialNumber\":\"SIM-A001\"}").await;
    assert_eq!(status, 200);
    assert_eq!(
        gateway.poll_final(&body, Duration::from_secs(20)).await["status"],
        "approved"
    );
    assert_eq!(
        receiver
            .wait_for("secret-1", Duration::from_secs(20))
            .await
            .len(),
        1
    );
    let logs = relay.logs() + &store_1.logs();
    for (secret, what) in [
        (APP_TOKEN, "the Gateway's app token"),
        ("not-the-token", "a wrong app token"),
        (CALLBACK_TOKEN, "the partner's token"),
        (CALLBACK_SIGNATURE, "a callback signature"),
        (token.as_str(), "a submitUrl token"),
    ] {
        let line = logs.lines().find(|l| l.contains(secret));
        assert!(line.is_none(), "{what} in a log: {line:?}");
    }
}

/// The PPP configuration flow through the relay tier: VTEX's token request, the merchant's
/// page, the code and the exchange each reach another replica; the credentials issued work on
/// every replica (one started after, too) and at the store, which never sees them; the
/// merchants' payments stay apart; deleting the merchant's entry revokes the credentials.
#[tokio::test]
async fn the_configuration_flow_works_through_the_relay_and_merchants_stay_apart() {
    let Some(nats) = NatsServer::start_for(&STORES[..1]) else {
        return;
    };
    let receiver = CallbackReceiver::start(0).await;
    let relay_a = Relay::start(&nats);
    let relay_b = Relay::start(&nats);
    let store_1 = store(&nats, 0, PUBLIC_URL, "").await;
    until_routed(&relay_a, &STORES[..1]).await;
    until_routed(&relay_b, &STORES[..1]).await;

    let (key, token) = crate::merchants::onboard_across(&[&relay_a.base, &relay_b.base]).await;
    let merchant_on_a = Gateway::new(&relay_a.base, &key, &token);
    let merchant_on_b = Gateway::new(&relay_b.base, &key, &token);
    let partner = relay_a.gateway();

    // A whole payment of the new merchant: Create on one replica, the rest on the other.
    let body = create_body(
        "onb-pay-1",
        json!(12),
        "Venda Direta Credito",
        &receiver.url_for("onb-pay-1"),
    );
    let first = merchant_on_b.create(&body).await;
    assert_eq!(first["status"], "undefined", "{first}");
    let url = submit_url(&first);
    let (status, bound) =
        submit_serial(&on(&relay_a, &url), "{\"serialNumber\":\"SIM-A001\"}").await;
    assert_eq!(status, 200, "{bound}");
    let last = merchant_on_a
        .poll_final(&body, Duration::from_secs(20))
        .await;
    assert_eq!(last["status"], "approved", "{last}");
    assert_eq!(store_1.charges_of("onb-pay-1"), 1);
    let callbacks = receiver
        .wait_for("onb-pay-1", Duration::from_secs(20))
        .await;
    assert_eq!(callbacks.len(), 1);
    assert_eq!(callbacks[0].2, last);

    // The partner's own pair does not reach the merchant's payment, on either replica.
    for path in [
        "/payments/onb-pay-1/cancellations",
        "/payments/onb-pay-1/settlements",
        "/payments/onb-pay-1/refunds",
    ] {
        let (status, answer) = partner
            .post(path, &json!({ "requestId": "other-1", "value": 12 }))
            .await;
        assert_eq!(
            (status, answer["code"].clone()),
            (404, json!("unknown-payment")),
            "{path}: {answer}"
        );
    }
    let (status, answer) = relay_b
        .gateway()
        .post_raw("/payments", serde_json::to_vec(&body).expect("json"), &[])
        .await;
    assert_eq!(
        (status, answer["code"].clone()),
        (400, json!("payment-mismatch")),
        "{answer}"
    );
    // The merchant settles its own.
    let (status, settled) = merchant_on_b
        .post(
            "/payments/onb-pay-1/settlements",
            &json!({ "requestId": "settle-1", "paymentId": "onb-pay-1", "value": 12 }),
        )
        .await;
    assert_eq!(status, 200, "{settled}");

    // The store keeps no Gateway credentials: its own listener takes neither pair.
    for (key, token) in [(APP_KEY, APP_TOKEN), (key.as_str(), token.as_str())] {
        let (status, _) = Gateway::new(&store_1.base, key, token)
            .post_raw("/payments", serde_json::to_vec(&body).expect("json"), &[])
            .await;
        assert_eq!(status, 401, "the store's listener took {key}");
    }
    // The merchant's token never reached the store, a log or the relay tier's files.
    let logs = relay_a.logs() + &relay_b.logs() + &store_1.logs();
    assert!(!logs.contains(&token), "the issued app token in a log");
    assert!(
        nats.files_holding(&token).is_empty(),
        "the issued app token in the relay tier's JetStream files"
    );
    assert!(
        !nats.files_holding(&key).is_empty(),
        "the merchant is kept where we look"
    );

    // A replica started after the issuance knows the merchant.
    let relay_c = Relay::start(&nats);
    let second = Gateway::new(&relay_c.base, &key, &token)
        .create(&create_body(
            "onb-pay-2",
            json!(3),
            "Venda Direta Debito",
            &receiver.url_for("onb-pay-2"),
        ))
        .await;
    assert_eq!(second["status"], "undefined", "{second}");
    // Before any store has it, only the relay can answer for it: the partner's pair cannot
    // cancel the merchant's payment either.
    let (status, answer) = partner
        .post(
            "/payments/onb-pay-2/cancellations",
            &json!({ "requestId": "other-2" }),
        )
        .await;
    assert_eq!(
        (status, answer["code"].clone()),
        (404, json!("unknown-payment")),
        "{answer}"
    );
    let still = merchant_on_a
        .create(&create_body(
            "onb-pay-2",
            json!(3),
            "Venda Direta Debito",
            &receiver.url_for("onb-pay-2"),
        ))
        .await;
    assert_eq!(still["status"], "undefined", "{still}");

    // Revoked: the merchant's entry deleted, every replica refuses its credentials.
    let merchants = async_nats::jetstream::new(nats.relay().await)
        .get_key_value(posbridge::relay::merchants::MERCHANTS_BUCKET)
        .await
        .expect("bucket");
    merchants.delete(&key).await.expect("deleted");
    for relay in [&relay_a, &relay_b, &relay_c] {
        let gateway = Gateway::new(&relay.base, &key, &token);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            // The final payment's Create poll: harmless to repeat.
            let (status, _) = gateway
                .post_raw("/payments", serde_json::to_vec(&body).expect("json"), &[])
                .await;
            if status == 401 {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "still accepted after revocation: {status}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
