//! The custom Payment App's live feed over WebSocket: order, late join, resume, cancel from
//! the app, tokens, slow consumers, bad input and shutdown.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::harness::*;

pub const APP: &str = "acme.pos-feed";

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub async fn feed_daemon(approve_after_ms: u64) -> Daemon {
    Daemon::start(Options {
        payment_app: Some(APP),
        approve_after_ms,
        ..Options::default()
    })
    .await
}

/// Drives the POS flow to the charge; returns the custom app's payload.
pub async fn start_with_app(gateway: &Gateway, body: &Value) -> Value {
    let first = gateway.create(body).await;
    let url = submit_url(&first);
    let (status, _) = submit_serial(&url, &json!({ "serialNumber": SERIAL }).to_string()).await;
    assert_eq!(status, 200);
    let second = gateway.create(body).await;
    assert_eq!(second["status"], "undefined", "{second}");
    assert_eq!(second["paymentAppData"]["appName"], APP, "{second}");
    let payload: Value = serde_json::from_str(
        second["paymentAppData"]["payload"]
            .as_str()
            .expect("payload string"),
    )
    .expect("payload json");
    assert_eq!(payload["paymentId"], body["paymentId"]);
    assert_eq!(payload["secondsWaiting"], 600);
    assert!(
        payload["wsUrl"]
            .as_str()
            .expect("wsUrl")
            .starts_with("ws://127.0.0.1:"),
        "{payload}"
    );
    payload
}

pub fn ws_url(payload: &Value) -> String {
    payload["wsUrl"].as_str().expect("wsUrl").to_string()
}

pub async fn connect(url: &str) -> Socket {
    let (socket, response) = tokio_tungstenite::connect_async(url)
        .await
        .expect("websocket");
    assert_eq!(response.status(), 101);
    socket
}

/// Reads events until the server closes: (events, close code).
pub async fn read_all(socket: &mut Socket, limit: Duration) -> (Vec<Value>, Option<u16>) {
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let next = tokio::time::timeout_at(deadline, socket.next())
            .await
            .expect("feed did not end in time");
        match next {
            Some(Ok(Message::Text(text))) => {
                events.push(serde_json::from_str(&text).expect("event json"))
            }
            Some(Ok(Message::Close(frame))) => {
                return (events, frame.map(|f| u16::from(f.code)));
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return (events, None),
        }
    }
}

/// Reads until an event satisfies `want`; returns every event read.
pub async fn read_until(socket: &mut Socket, want: impl Fn(&Value) -> bool) -> Vec<Value> {
    let mut events = Vec::new();
    loop {
        let next = tokio::time::timeout(Duration::from_secs(15), socket.next())
            .await
            .expect("event in time");
        if let Some(Ok(Message::Text(text))) = next {
            let event: Value = serde_json::from_str(&text).expect("json");
            let done = want(&event);
            events.push(event);
            if done {
                return events;
            }
        } else if !matches!(next, Some(Ok(_))) {
            panic!("feed ended early: {next:?} after {events:?}");
        }
    }
}

fn seqs(events: &[Value]) -> Vec<i64> {
    events
        .iter()
        .map(|e| e["seq"].as_i64().expect("seq"))
        .collect()
}

fn assert_contiguous(events: &[Value], from: i64) {
    let s = seqs(events);
    let expected: Vec<i64> = (from..from + s.len() as i64).collect();
    assert_eq!(s, expected, "sequence numbers must be contiguous");
}

#[tokio::test]
async fn events_arrive_in_order_to_every_client_and_the_feed_closes_after_the_result() {
    let daemon = feed_daemon(1200).await;
    let gateway = daemon.gateway();
    let body = create_body(
        "WS-1",
        json!(29.90),
        "Venda Direta Credito",
        "http://127.0.0.1:9/cb",
    );
    let payload = start_with_app(&gateway, &body).await;
    let url = ws_url(&payload);
    let mut clients = Vec::new();
    for _ in 0..5 {
        clients.push(connect(&url).await);
    }
    let mut feeds = Vec::new();
    for mut client in clients {
        feeds.push(tokio::spawn(async move {
            read_all(&mut client, Duration::from_secs(20)).await
        }));
    }
    let mut first: Option<Vec<Value>> = None;
    for feed in feeds {
        let (events, code) = feed.await.expect("join");
        assert_eq!(code, Some(1000), "{events:?}");
        assert_contiguous(&events, 1);
        assert_eq!(events[0]["type"], "state", "{events:?}");
        assert_eq!(events[0]["state"], "charging");
        let texts: Vec<&str> = events
            .iter()
            .filter(|e| e["type"] == "prompt")
            .map(|e| e["text"].as_str().expect("text"))
            .collect();
        assert_eq!(
            texts,
            [
                "insert, tap or swipe card",
                "enter PIN",
                "processing, please wait",
                "approved"
            ]
        );
        let result = events.last().expect("result");
        assert_eq!(result["type"], "result");
        assert_eq!(result["status"], "approved");
        assert_eq!(result["cardBrand"], "Visa");
        assert_eq!(result["lastDigits"], "1111");
        assert!(
            !result.to_string().contains("444433"),
            "only brand and last 4: {result}"
        );
        match &first {
            None => first = Some(events),
            Some(f) => assert_eq!(f, &events, "every client gets every event"),
        }
    }
    let answer = gateway.poll_final(&body, Duration::from_secs(5)).await;
    assert_eq!(answer["status"], "approved");
}

#[tokio::test]
async fn a_late_client_gets_the_current_state_first_and_after_resumes_exactly() {
    let daemon = feed_daemon(300).await;
    let gateway = daemon.gateway();
    let body = create_body(
        "WS-2",
        json!(12.00),
        "Venda Direta Debito",
        "http://127.0.0.1:9/cb",
    );
    let payload = start_with_app(&gateway, &body).await;
    let url = ws_url(&payload);
    let mut first = connect(&url).await;
    let (all, code) = read_all(&mut first, Duration::from_secs(20)).await;
    assert_eq!(code, Some(1000));
    let last = *seqs(&all).last().expect("events");

    // Late, without `after`: the current state first, then what followed it.
    let mut late = connect(&url).await;
    let (events, code) = read_all(&mut late, Duration::from_secs(5)).await;
    assert_eq!(code, Some(1000));
    assert_eq!(events[0]["type"], "state", "{events:?}");
    assert_eq!(events[0]["state"], "approved");
    assert_eq!(events.last().expect("result")["type"], "result");
    assert_eq!(events.last(), all.last());

    // Resume from any point: exactly the events after it.
    for after in [0, 1, 3, last - 1, last] {
        let mut socket = connect(&format!("{url}&after={after}")).await;
        let (events, code) = read_all(&mut socket, Duration::from_secs(5)).await;
        assert_eq!(code, Some(1000), "after={after}");
        assert_eq!(events.as_slice(), &all[after as usize..], "after={after}");
    }
    // A bad `after` is refused before the upgrade.
    let refused = tokio_tungstenite::connect_async(format!("{url}&after=-1")).await;
    assert!(
        matches!(refused, Err(tokio_tungstenite::tungstenite::Error::Http(ref r)) if r.status() == 400),
        "{refused:?}"
    );
}

#[tokio::test]
async fn cancel_from_the_app_aborts_the_sale_and_nothing_else_changes_state() {
    let daemon = feed_daemon(300).await;
    let gateway = daemon.gateway();
    // .04: a slow sale (20 s) that honours an abort.
    let body = create_body(
        "WS-3",
        json!(50.04),
        "Venda Direta Credito",
        "http://127.0.0.1:9/cb",
    );
    let payload = start_with_app(&gateway, &body).await;
    let mut socket = connect(&ws_url(&payload)).await;
    read_until(&mut socket, |e| e["type"] == "prompt").await;

    // Garbage, unknown types, binary, a huge message on another socket: nothing changes.
    for junk in [
        "not json",
        "{}",
        r#"{"type":"approve"}"#,
        r#"{"type":"CANCEL"}"#,
        r#"{"type":["cancel"]}"#,
        "[1,2,3]",
    ] {
        socket.send(Message::text(junk)).await.expect("send");
    }
    socket
        .send(Message::binary(vec![0u8; 64]))
        .await
        .expect("send");
    let mut big = connect(&ws_url(&payload)).await;
    let _ = big.send(Message::text("x".repeat(64 * 1024))).await;
    let (_, code) = read_all(&mut big, Duration::from_secs(5)).await;
    assert_ne!(code, Some(1000), "a huge message ends that socket only");
    // The socket reads in order: each junk text is ignored (and says so) before the next.
    let ignored = ["payment app: ignored a client message", "WS-3"];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while daemon.log_lines_with(&ignored) < 6 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not every junk message was ignored:\n{}",
            daemon.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(daemon.log_lines_with(&ignored), 6);
    assert!(
        !daemon
            .logs()
            .contains("cancel requested from the Payment App"),
        "junk cancelled the sale"
    );
    let answer = gateway.create(&body).await;
    assert_eq!(
        answer["status"], "undefined",
        "junk changed nothing: {answer}"
    );

    socket
        .send(Message::text(r#"{"type":"cancel"}"#))
        .await
        .expect("cancel");
    let (events, code) = read_all(&mut socket, Duration::from_secs(10)).await;
    assert_eq!(code, Some(1000), "{events:?}");
    let result = events.last().expect("result");
    assert_eq!(result["type"], "result", "{events:?}");
    assert_eq!(result["status"], "denied");
    assert_eq!(result["state"], "cancelled");
    let answer = gateway.poll_final(&body, Duration::from_secs(5)).await;
    assert_eq!(answer["status"], "denied");
    assert_eq!(daemon.journal_entries("WS-3", "aborted"), 1);
    assert_eq!(daemon.charges_of("WS-3"), 1);
    // The Gateway's own cancellation afterwards finds it cancelled.
    let (status, cancel) = gateway
        .post(
            "/payments/WS-3/cancellations",
            &json!({ "requestId": "gw-1" }),
        )
        .await;
    assert_eq!(status, 200, "{cancel}");
}

#[tokio::test]
async fn wrong_tokens_get_403_and_expired_ones_410_before_the_upgrade() {
    let daemon = feed_daemon(200).await;
    let gateway = daemon.gateway();
    let a = create_body(
        "WS-4a",
        json!(10.00),
        "Venda Direta Credito",
        "http://127.0.0.1:9/cb",
    );
    let b = create_body(
        "WS-4b",
        json!(10.00),
        "Venda Direta Credito",
        "http://127.0.0.1:9/cb",
    );
    let url_a = ws_url(&start_with_app(&gateway, &a).await);
    gateway.poll_final(&a, Duration::from_secs(10)).await;
    let url_b = ws_url(&start_with_app(&gateway, &b).await);
    let token_b = url_b.split("token=").nth(1).expect("token");
    let base_a = url_a.split("?token=").next().expect("base");
    let status_of = |url: String| async move {
        match tokio_tungstenite::connect_async(url).await {
            Ok((_, r)) => r.status().as_u16(),
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => r.status().as_u16(),
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(
        status_of(format!("{base_a}?token={token_b}")).await,
        403,
        "another payment's token"
    );
    assert_eq!(status_of(format!("{base_a}?token=")).await, 403);
    assert_eq!(status_of(base_a.to_string()).await, 403);
    assert_eq!(
        status_of(format!("{base_a}?token={}", "0".repeat(64))).await,
        403
    );
    let unknown = base_a.replace("WS-4a", "WS-nope");
    assert_eq!(status_of(format!("{unknown}?token={token_b}")).await, 403);
    assert_eq!(
        status_of(url_a.clone()).await,
        101,
        "final less than 10 minutes ago"
    );

    // Ten minutes after the result, the token is dead.
    let db = rusqlite::Connection::open(daemon.db_path()).expect("db");
    db.busy_timeout(Duration::from_secs(5)).expect("busy");
    let moved = db
        .execute(
            "UPDATE payment_events SET created_at = created_at - 601000 WHERE payment_id = 'WS-4a'",
            [],
        )
        .expect("age the feed");
    assert!(moved > 0);
    assert_eq!(status_of(url_a).await, 410, "expired");
    assert!(!daemon.logs().contains(token_b), "tokens are never logged");
}

/// A client that stops reading never slows the payment or the others: it is dropped from
/// the fan-out, closed with 1013, and resumes with `?after=` without loss or duplicates.
#[tokio::test]
async fn a_slow_consumer_is_closed_with_1013_and_resumes_without_loss() {
    let daemon = feed_daemon(300).await;
    let gateway = daemon.gateway();
    // .07: a chatty terminal, 20000 status lines in bursts.
    let body = create_body(
        "WS-5",
        json!(20.07),
        "Venda Direta Credito",
        "http://127.0.0.1:9/cb",
    );
    let payload = start_with_app(&gateway, &body).await;
    let url = ws_url(&payload);

    // The slow one: a tiny receive buffer, and it does not read.
    let addr = daemon.base.trim_start_matches("http://").to_string();
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("rcvbuf");
    let stream = socket
        .connect(addr.parse().expect("addr"))
        .await
        .expect("connect");
    let (mut slow, _) = tokio_tungstenite::client_async(url.clone(), MaybeTlsStream::Plain(stream))
        .await
        .expect("slow client");
    let mut quick = connect(&url).await;

    let started = tokio::time::Instant::now();
    let (quick_events, code) = read_all(&mut quick, Duration::from_secs(30)).await;
    assert_eq!(code, Some(1000));
    assert_contiguous(&quick_events, 1);
    assert!(quick_events.len() > 20_000, "{}", quick_events.len());
    assert!(!daemon.logs().contains("missed engine events"));
    let answer = gateway.poll_final(&body, Duration::from_secs(10)).await;
    assert_eq!(answer["status"], "approved");
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(15),
        "the payment was not slowed: {took:?}"
    );

    let (slow_events, code) = read_all(&mut slow, Duration::from_secs(30)).await;
    assert_eq!(code, Some(1013), "after {} events", slow_events.len());
    assert_contiguous(&slow_events, 1);
    assert!(slow_events.len() < quick_events.len());
    let last = *seqs(&slow_events).last().expect("some events");
    let mut resumed = connect(&format!("{url}&after={last}")).await;
    let (rest, code) = read_all(&mut resumed, Duration::from_secs(30)).await;
    assert_eq!(code, Some(1000));
    let mut joined = slow_events;
    joined.extend(rest);
    assert_eq!(joined, quick_events, "resume: no loss, no duplicates");
}

#[tokio::test]
async fn shutdown_closes_every_socket_with_a_close_frame() {
    let mut daemon = feed_daemon(300).await;
    let gateway = daemon.gateway();
    let body = create_body(
        "WS-6",
        json!(30.04),
        "Venda Direta Credito",
        "http://127.0.0.1:9/cb",
    );
    let payload = start_with_app(&gateway, &body).await;
    let mut sockets = Vec::new();
    for _ in 0..3 {
        let mut s = connect(&ws_url(&payload)).await;
        read_until(&mut s, |e| e["type"] == "prompt").await;
        sockets.push(s);
    }
    daemon.signal("TERM");
    for mut s in sockets {
        let (_, code) = read_all(&mut s, Duration::from_secs(10)).await;
        assert_eq!(code, Some(u16::from(CloseCode::Away)));
    }
    let status = daemon
        .wait_exit(Duration::from_secs(20))
        .await
        .expect("exited");
    assert!(status.success(), "{status:?}");
}

/// The feed tells the app what the sale is, so the cashier and the shopper can check it: the
/// amount (minor units and as the currency writes it), credit or debit with the installments,
/// and the terminal — on every `state` event, so a late client has it too.
#[tokio::test]
async fn state_events_say_what_the_sale_is_amount_method_installments_terminal() {
    let daemon = feed_daemon(300).await;
    let gateway = daemon.gateway();
    let mut credit = create_body(
        "WS-SALE-1",
        json!(1234.50),
        "Venda Direta Credito",
        "http://127.0.0.1:9/cb",
    );
    credit["installments"] = json!(3);
    let url = ws_url(&start_with_app(&gateway, &credit).await);
    let mut socket = connect(&url).await;
    let (events, code) = read_all(&mut socket, Duration::from_secs(20)).await;
    assert_eq!(code, Some(1000), "{events:?}");
    let states: Vec<&Value> = events.iter().filter(|e| e["type"] == "state").collect();
    assert!(states.len() >= 2, "{events:?}");
    for state in &states {
        assert_eq!(state["amount"], 123_450, "{state}");
        assert_eq!(state["currency"], "BRL", "{state}");
        assert_eq!(state["amountText"], "R$ 1.234,50", "{state}");
        assert_eq!(state["method"], "credit", "{state}");
        assert_eq!(state["installments"], 3, "{state}");
        assert_eq!(state["terminal"], "lane-1", "{state}");
    }
    assert_eq!(
        events[0]["state"], "charging",
        "the contract holds: {events:?}"
    );
    assert_contiguous(&events, 1);
    // A late client starts from the latest state event: it has the sale too.
    let mut late = connect(&url).await;
    let (again, _) = read_all(&mut late, Duration::from_secs(5)).await;
    assert_eq!(again[0]["type"], "state", "{again:?}");
    assert_eq!(again[0]["state"], "approved");
    assert_eq!(again[0]["amountText"], "R$ 1.234,50", "{again:?}");

    let debit = create_body(
        "WS-SALE-2",
        json!(12.00),
        "Venda Direta Debito",
        "http://127.0.0.1:9/cb",
    );
    let mut socket = connect(&ws_url(&start_with_app(&gateway, &debit).await)).await;
    let (events, _) = read_all(&mut socket, Duration::from_secs(20)).await;
    let first = &events[0];
    assert_eq!(first["method"], "debit", "{first}");
    assert_eq!(first["installments"], 1, "{first}");
    assert_eq!(first["amount"], 1200, "{first}");
}
