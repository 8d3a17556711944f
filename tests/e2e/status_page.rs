//! The status page for store IT on the admin listener: authentication (Bearer or the login
//! cookie), what `/status/api` shows (and never shows), re-delivering a failing callback, the
//! live-update socket and its close frame on shutdown.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::harness::*;

const FINAL: Duration = Duration::from_secs(20);

/// A daemon with the admin listener and callbacks retried only once a minute (a failing
/// callback stays failing for the whole test unless re-delivered).
pub async fn status_daemon(approve_after_ms: u64) -> Daemon {
    Daemon::start(Options {
        admin: true,
        first_retry_s: 60,
        approve_after_ms,
        ..Options::default()
    })
    .await
}

pub fn admin_base(daemon: &Daemon) -> String {
    format!("http://{}", daemon.admin.as_ref().expect("admin listener"))
}

/// An approved payment with an alarm: `.06` cannot return an unsettled difference.
pub async fn alarmed_payment(daemon: &Daemon, receiver: &CallbackReceiver, id: &str) {
    let done = pay(daemon, receiver, id, json!(20.06)).await;
    assert_eq!(done["status"], "approved");
    let (status, settled) = daemon
        .gateway()
        .post(
            &format!("/payments/{id}/settlements"),
            &json!({ "requestId": "s1", "value": 15 }),
        )
        .await;
    assert_eq!(status, 200, "{settled}");
}

/// Waits until the receiver saw at least `n` attempts.
pub async fn wait_attempts(receiver: &CallbackReceiver, n: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while receiver.attempts() < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} callback attempts",
            receiver.attempts()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

async fn get(url: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut request = client().get(url);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

/// The login form: (status, Set-Cookie, Location).
async fn login(base: &str, token: &str) -> (u16, Option<String>, Option<String>) {
    let response = client()
        .post(format!("{base}/status/login"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!("token={token}"))
        .send()
        .await
        .expect("login");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    (
        response.status().as_u16(),
        header("set-cookie"),
        header("location"),
    )
}

fn payment<'a>(api: &'a Value, id: &str) -> &'a Value {
    api["payments"]
        .as_array()
        .expect("payments")
        .iter()
        .find(|p| p["paymentId"] == id)
        .unwrap_or_else(|| panic!("payment {id} not listed: {api}"))
}

fn callbacks_of<'a>(api: &'a Value, id: &str) -> Vec<&'a Value> {
    api["callbacks"]
        .as_array()
        .expect("callbacks")
        .iter()
        .filter(|c| c["paymentId"] == id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_api_and_page_need_the_token_show_what_store_it_needs_and_redeliver() {
    let daemon = status_daemon(200).await;
    let base = admin_base(&daemon);
    let receiver = CallbackReceiver::start(0).await;
    receiver.fail_always();
    let approved = pay(&daemon, &receiver, "ST-1", json!(29.90)).await;
    assert_eq!(approved["status"], "approved");
    assert_eq!(
        approved["firstDigits"], "444433",
        "the simulator reports first 6"
    );
    alarmed_payment(&daemon, &receiver, "ST-ALARM").await;
    wait_attempts(&receiver, 2).await;

    // Without, or with a wrong, token or cookie: 401.
    let api = format!("{base}/status/api");
    assert_eq!(get(&api, &[]).await.0, 401);
    assert_eq!(
        get(&api, &[("Authorization", "Bearer wrong-token")])
            .await
            .0,
        401
    );
    assert_eq!(
        get(
            &api,
            &[("Cookie", &format!("posbridge_admin={ADMIN_TOKEN}"))]
        )
        .await
        .0,
        401,
        "the cookie is not the token"
    );
    assert_eq!(
        get(&api, &[("Cookie", "posbridge_admin=0000")]).await.0,
        401
    );
    // The page sends a browser without the cookie to the login form.
    let unauth = client()
        .get(format!("{base}/status"))
        .send()
        .await
        .expect("page");
    assert_eq!(unauth.status().as_u16(), 303);
    assert_eq!(unauth.headers()["location"], "/status/login");
    let (status, form) = get(&format!("{base}/status/login"), &[]).await;
    assert_eq!(status, 200);
    assert!(
        form.contains("<form") && form.contains("name=\"token\""),
        "{form}"
    );

    // With the Bearer token.
    let bearer = format!("Bearer {ADMIN_TOKEN}");
    let (status, text) = get(&api, &[("Authorization", &bearer)]).await;
    assert_eq!(status, 200, "{text}");
    let body: Value = serde_json::from_str(&text).expect("json");
    let p = payment(&body, "ST-1");
    assert_eq!(p["state"], "approved");
    assert_eq!(p["amount"], "29.90");
    assert_eq!(p["currency"], "BRL");
    assert_eq!(p["lastDigits"], "1111");
    assert!(p["cardBrand"].is_string(), "{p}");
    assert!(!text.contains("444433"), "never the first 6 digits: {text}");
    assert!(
        !text.contains("SIGtestSECRET") && !text.contains("X-VTEX-signature"),
        "never the callback URL: {text}"
    );
    let failing = callbacks_of(&body, "ST-1");
    assert_eq!(failing.len(), 1, "{body}");
    assert_eq!(failing[0]["state"], "failing");
    assert!(failing[0]["attempts"].as_u64().expect("attempts") >= 1);
    assert!(
        failing[0]["nextAttemptAt"].as_i64().expect("next") > body["now"].as_i64().expect("now")
    );
    assert!(failing[0]["lastError"].is_string(), "{failing:?}");
    let alarm = body["alarms"]
        .as_array()
        .expect("alarms")
        .iter()
        .find(|a| a["paymentId"] == "ST-ALARM")
        .unwrap_or_else(|| panic!("alarm listed: {body}"));
    assert!(
        alarm["text"]
            .as_str()
            .expect("text")
            .contains("could not give back the remaining"),
        "{alarm}"
    );
    let terminal = &body["terminals"][0];
    assert_eq!(terminal["id"], "lane-1");
    assert_eq!(terminal["online"], true);
    assert_eq!(terminal["protocol"], "simulator");

    // The login form: a wrong token gets 401 and no cookie; the right one a cookie.
    let (status, cookie, _) = login(&base, "wrong").await;
    assert_eq!((status, cookie), (401, None));
    let (status, cookie, location) = login(&base, ADMIN_TOKEN).await;
    assert_eq!(status, 303);
    assert_eq!(location.as_deref(), Some("/status"));
    let cookie = cookie.expect("Set-Cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(!cookie.contains(ADMIN_TOKEN), "the cookie holds no token");
    let pair = cookie.split(';').next().expect("pair").to_string();
    let (status, text) = get(&api, &[("Cookie", &pair)]).await;
    assert_eq!(status, 200);
    let by_cookie: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(payment(&by_cookie, "ST-1")["amount"], "29.90");
    let (status, page) = get(&format!("{base}/status"), &[("Cookie", &pair)]).await;
    assert_eq!(status, 200);
    assert!(
        page.contains("posbridge") && page.contains("status.js"),
        "{page}"
    );
    assert!(!page.contains("SIGtestSECRET"));
    let (status, script) = get(&format!("{base}/status/status.js"), &[]).await;
    assert_eq!(status, 200);
    assert!(script.contains("/status/api"));

    // Re-deliver: with the cookie, only with the page's header.
    let id = failing[0]["id"].as_i64().expect("id");
    let redeliver = format!("{base}/status/api/callbacks/{id}/redeliver");
    let refused = client()
        .post(&redeliver)
        .header("Cookie", &pair)
        .send()
        .await
        .expect("post");
    assert_eq!(
        refused.status().as_u16(),
        403,
        "a cookie alone cannot change"
    );
    let anonymous = client().post(&redeliver).send().await.expect("post");
    assert_eq!(anonymous.status().as_u16(), 401);
    let unknown = client()
        .post(format!("{base}/status/api/callbacks/999999/redeliver"))
        .header("Authorization", &bearer)
        .send()
        .await
        .expect("post");
    assert_eq!(unknown.status().as_u16(), 404);

    receiver.succeed_from_now();
    assert!(receiver.for_payment("ST-1").is_empty());
    let asked = tokio::time::Instant::now();
    let answer = client()
        .post(&redeliver)
        .header("Cookie", &pair)
        .header("X-Posbridge-Admin", "1")
        .send()
        .await
        .expect("post");
    assert_eq!(answer.status().as_u16(), 200);
    let delivered = receiver.wait_for("ST-1", Duration::from_secs(3)).await;
    assert_eq!(delivered.len(), 1, "delivered after the re-delivery");
    assert!(
        asked.elapsed() < Duration::from_secs(3),
        "{:?}",
        asked.elapsed()
    );
    // Marked delivered right after the 200: wait for it rather than guess how long.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let after = loop {
        let (_, text) = get(&api, &[("Authorization", &bearer)]).await;
        let after: Value = serde_json::from_str(&text).expect("json");
        if callbacks_of(&after, "ST-1").is_empty() {
            break after;
        }
        assert!(tokio::time::Instant::now() < deadline, "{after}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(receiver.for_payment("ST-ALARM").is_empty());
    assert_eq!(
        callbacks_of(&after, "ST-ALARM").len(),
        1,
        "the other callback still waits for its own schedule"
    );

    let logs = daemon.logs();
    let cookie_value = pair.split_once('=').expect("value").1;
    assert!(
        !logs.contains(ADMIN_TOKEN),
        "the admin token is never logged"
    );
    assert!(!logs.contains(cookie_value), "the cookie is never logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_socket_notices_payment_changes_and_closes_on_shutdown() {
    let mut daemon = status_daemon(300).await;
    let admin = daemon.admin.clone().expect("admin");
    let url = format!("ws://{admin}/status/ws");

    // Without the token: refused before the upgrade.
    let refused = tokio_tungstenite::connect_async(&url).await;
    assert!(
        matches!(&refused, Err(tokio_tungstenite::tungstenite::Error::Http(r)) if r.status() == 401),
        "{refused:?}"
    );
    // From another origin (a browser on another site): refused.
    let mut foreign = url.as_str().into_client_request().expect("request");
    foreign.headers_mut().insert(
        "Authorization",
        format!("Bearer {ADMIN_TOKEN}").parse().expect("header"),
    );
    foreign
        .headers_mut()
        .insert("Origin", "http://evil.example".parse().expect("header"));
    let refused = tokio_tungstenite::connect_async(foreign).await;
    assert!(
        matches!(&refused, Err(tokio_tungstenite::tungstenite::Error::Http(r)) if r.status() == 403),
        "{refused:?}"
    );

    let mut request = url.as_str().into_client_request().expect("request");
    request.headers_mut().insert(
        "Authorization",
        format!("Bearer {ADMIN_TOKEN}").parse().expect("header"),
    );
    let (mut socket, response) = tokio_tungstenite::connect_async(request)
        .await
        .expect("status socket");
    assert_eq!(response.status(), 101);

    // A payment changes: a "changed" notice (before the first tick, 3 s).
    let receiver = CallbackReceiver::start(0).await;
    let gateway = daemon.gateway();
    let body = create_body(
        "ST-WS",
        json!(12.00),
        "Venda Direta Credito",
        &receiver.url_for("ST-WS"),
    );
    let started = tokio::time::Instant::now();
    start_charge(&gateway, &body).await;
    let notice = loop {
        let next = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a notice in time");
        match next {
            Some(Ok(Message::Text(text))) => {
                let notice: Value = serde_json::from_str(&text).expect("json");
                if notice["type"] == "changed" {
                    break notice;
                }
            }
            Some(Ok(_)) => {}
            other => panic!("socket ended: {other:?}"),
        }
    };
    assert_eq!(notice["paymentId"], "ST-WS");
    assert!(started.elapsed() < Duration::from_secs(3));

    // Quiet: a tick still comes every few seconds.
    gateway.poll_final(&body, FINAL).await;
    let mut ticked = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
    while !ticked {
        let next = tokio::time::timeout_at(deadline, socket.next())
            .await
            .expect("a tick in time");
        if let Some(Ok(Message::Text(text))) = next {
            ticked = serde_json::from_str::<Value>(&text).expect("json")["type"] == "tick";
        }
    }

    daemon.signal("TERM");
    let code = loop {
        let next = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a close frame in time");
        match next {
            Some(Ok(Message::Close(frame))) => break frame.map(|f| f.code),
            Some(Ok(_)) => {}
            other => panic!("no close frame: {other:?}"),
        }
    };
    assert_eq!(code, Some(CloseCode::Away));
    let status = daemon
        .wait_exit(Duration::from_secs(20))
        .await
        .expect("exited");
    assert!(status.success(), "{status:?}");
}

/// `/status/api` read with the admin token.
pub async fn status_api(daemon: &Daemon) -> Value {
    let text = daemon.admin_get("/status/api").await;
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("status json: {text}"))
}

/// A TCP port on 127.0.0.1 where nothing listens (yet).
pub async fn closed_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    listener.local_addr().expect("addr").port()
}

/// A `[[terminals]]` table for a ZVT terminal on 127.0.0.1:`port` (TOML).
pub fn zvt_terminal_config(id: &str, serial: &str, port: u16) -> String {
    format!(
        "\n[[terminals]]\nid = \"{id}\"\nserial_number = \"{serial}\"\nprotocol = \"zvt\"\n\
         transport = \"tcp:127.0.0.1:{port}\"\nack_timeout_ms = 2000\ncompletion_timeout_s = 10\n"
    )
}

/// `POST /terminals/{id}/probe` on the admin listener: the HTTP status.
pub async fn probe(daemon: &Daemon, id: &str) -> u16 {
    client()
        .post(format!("{}/terminals/{id}/probe", admin_base(daemon)))
        .bearer_auth(ADMIN_TOKEN)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .expect("probe")
        .status()
        .as_u16()
}

fn terminal<'a>(api: &'a Value, id: &str) -> &'a Value {
    api["terminals"]
        .as_array()
        .expect("terminals")
        .iter()
        .find(|t| t["id"] == id)
        .unwrap_or_else(|| panic!("terminal {id} not listed: {api}"))
}

/// Before posbridge ever heard from a terminal it is "not yet contacted", not offline; an
/// error stays shown only until a command reaches the terminal again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminal_is_not_yet_contacted_until_asked_and_its_error_lasts_until_it_answers() {
    let port = closed_port().await;
    let daemon = Daemon::start(Options {
        admin: true,
        zvt_transport: Some(format!("tcp:127.0.0.1:{port}")),
        ..Options::default()
    })
    .await;
    let before = status_api(&daemon).await;
    let lane = terminal(&before, "lane-1");
    assert_eq!(lane["reachability"], "not-contacted", "{lane}");
    assert_eq!(lane["online"], false, "{lane}");
    assert!(
        lane["lastSeenMs"].is_null() && lane["lastError"].is_null(),
        "{lane}"
    );
    // The CLI reads it the same way (doctor asks the terminal itself: below).
    let (_, listed) = daemon.terminals_cli(&["list"]);
    assert!(listed.contains("not yet contacted"), "{listed}");

    assert_eq!(probe(&daemon, "lane-1").await, 502, "nothing listens yet");
    let failed = status_api(&daemon).await;
    let lane = terminal(&failed, "lane-1");
    assert_eq!(lane["reachability"], "offline", "{lane}");
    assert!(
        lane["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("not connected")),
        "{lane}"
    );
    let line = doctor_line(&daemon);
    assert!(
        line.starts_with("FAIL") && line.contains("offline: ") && line.contains("not connected"),
        "{line}"
    );

    let _terminal = crate::zvt::ZvtTerminal::tcp_at(port, &[]).await;
    assert_eq!(probe(&daemon, "lane-1").await, 200, "{}", daemon.logs());
    let answered = status_api(&daemon).await;
    let lane = terminal(&answered, "lane-1");
    assert_eq!(lane["reachability"], "online", "{lane}");
    assert_eq!(lane["online"], true, "{lane}");
    assert!(lane["lastSeenMs"].is_i64(), "{lane}");
    assert!(
        lane["lastError"].is_null(),
        "the error is over once the terminal answered: {lane}"
    );
    let listed = daemon.admin_get("/terminals").await;
    assert!(!listed.contains("not connected"), "{listed}");
    assert!(listed.contains(r#""reachability":"online""#), "{listed}");
    let line = doctor_line(&daemon);
    assert!(
        line.starts_with("ok") && line.contains("online: "),
        "{line}"
    );
}

/// `posbridge doctor`'s line about lane-1.
fn doctor_line(daemon: &Daemon) -> String {
    let (_, report) = daemon.admin_cli("doctor", &[]);
    report
        .lines()
        .find(|l| l.contains("terminal lane-1"))
        .unwrap_or_else(|| panic!("no line about lane-1: {report}"))
        .trim()
        .to_string()
}

/// The store's midnight in a zone `offset_ms` east of UTC with no daylight saving time.
fn store_midnight(now_ms: i64, offset_ms: i64) -> i64 {
    const DAY_MS: i64 = 86_400_000;
    let local = now_ms + offset_ms;
    local - local.rem_euclid(DAY_MS) - offset_ms
}

/// "Today's payments" start at the store's midnight (`[store] timezone`), not UTC's; amounts
/// come with their text as the currency writes them, times stay UTC ms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn today_on_the_status_page_starts_at_the_store_midnight() {
    // +05:45 all year: its midnight is never UTC's.
    const KATHMANDU_MS: i64 = (5 * 60 + 45) * 60 * 1000;
    let daemon = Daemon::start(Options {
        admin: true,
        extra_config: "[store]\ntimezone = \"Asia/Kathmandu\"\n".into(),
        ..Options::default()
    })
    .await;
    let receiver = CallbackReceiver::start(0).await;
    for (id, value) in [("TZ-BEFORE", json!(10.00)), ("TZ-AT", json!(29.90))] {
        assert_eq!(
            pay(&daemon, &receiver, id, value).await["status"],
            "approved"
        );
    }
    let now = status_api(&daemon).await["now"].as_i64().expect("now");
    let midnight = store_midnight(now, KATHMANDU_MS);
    let db = rusqlite::Connection::open(daemon.db_path()).expect("db");
    db.busy_timeout(Duration::from_secs(5)).expect("busy");
    for (id, created_at) in [("TZ-BEFORE", midnight - 1), ("TZ-AT", midnight)] {
        let moved = db
            .execute(
                "UPDATE payments SET created_at = ?1 WHERE payment_id = ?2",
                rusqlite::params![created_at, id],
            )
            .expect("move the payment in time");
        assert_eq!(moved, 1);
    }

    let api = status_api(&daemon).await;
    assert_eq!(api["store"]["timezone"], "Asia/Kathmandu", "{api}");
    assert_eq!(api["todaySince"], midnight, "{api}");
    assert!(
        api["todaySinceText"]
            .as_str()
            .is_some_and(|t| t.ends_with(" 00:00:00 +05:45")),
        "{api}"
    );
    let ids: Vec<&str> = api["payments"]
        .as_array()
        .expect("payments")
        .iter()
        .filter_map(|p| p["paymentId"].as_str())
        .collect();
    assert_eq!(ids, ["TZ-AT"], "today is since the store's midnight: {api}");
    let at = payment(&api, "TZ-AT");
    assert_eq!(at["amountText"], "R$ 29,90", "{at}");
    assert_eq!(at["amountMinor"], 2990, "{at}");
    assert_eq!(at["createdAt"], midnight, "UTC ms: {at}");
}
