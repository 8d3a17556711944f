//! A stale Payment App feed must never lock a store out. A payment's feed token dies 10 minutes
//! after the result; using it then is not a guess at someone else's token, so it gets
//! **410 Gone**, which the per-address failure limit (403s on token routes) does not count.
//! The browser side (the reference page stops on a refused feed) is in `browser.rs`.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::*;
use crate::payment_app::{APP, start_with_app, ws_url};

/// Blocks an address after this many wrong tokens: small, so counting 410s would show at once.
const TOKEN_FAILURES: u32 = 3;

/// A daemon with the live feed and a small `token_failures`.
pub async fn strict_feed_daemon() -> Daemon {
    Daemon::start(Options {
        payment_app: Some(APP),
        extra_config: format!("[rate_limits]\ntoken_failures = {TOKEN_FAILURES}\n"),
        ..Options::default()
    })
    .await
}

/// The status of a WebSocket handshake to `url`.
async fn handshake_status(url: &str) -> u16 {
    match tokio_tungstenite::connect_async(url).await {
        Ok((_, response)) => response.status().as_u16(),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(e) => panic!("{e}"),
    }
}

/// A plain GET of the feed's URL, as the reference page asks why a connection failed.
async fn plain_get(ws_url: &str) -> (u16, Value) {
    let url = ws_url.replacen("ws://", "http://", 1);
    let response = reqwest::get(&url).await.expect("GET the feed");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Makes a payment's feed look final for longer than its token lives. Waits for the feed's
/// `result` event first: the Gateway's poll may see the final answer (kept in memory once the
/// result is committed) before the feed has stored the event the token's life counts from.
fn age_feed(daemon: &Daemon, payment_id: &str) {
    let db = rusqlite::Connection::open(daemon.db_path()).expect("db");
    db.busy_timeout(Duration::from_secs(5)).expect("busy");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let results: i64 = db
            .query_row(
                "SELECT COUNT(*) FROM payment_events WHERE payment_id = ?1 AND kind = 'result'",
                [payment_id],
                |row| row.get(0),
            )
            .expect("count the feed's results");
        if results > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the feed of {payment_id} never stored its result"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let moved = db
        .execute(
            "UPDATE payment_events SET created_at = created_at - 601000 WHERE payment_id = ?1",
            [payment_id],
        )
        .expect("age the feed");
    assert!(moved > 0, "the feed of {payment_id} has events");
}

#[tokio::test]
async fn an_expired_feed_token_gets_410_and_never_counts_toward_the_limit() {
    let daemon = strict_feed_daemon().await;
    let gateway = daemon.gateway();
    let old = create_body(
        "EXP-1",
        json!(10.00),
        "Venda Direta Credito",
        "http://127.0.0.1:9/cb",
    );
    let old_url = ws_url(&start_with_app(&gateway, &old).await);
    assert_eq!(
        gateway.poll_final(&old, Duration::from_secs(30)).await["status"],
        "approved"
    );
    age_feed(&daemon, "EXP-1");

    // Twice the limit, both ways a page may ask: never 429.
    for _ in 0..TOKEN_FAILURES {
        assert_eq!(handshake_status(&old_url).await, 410, "expired, not wrong");
        let (status, body) = plain_get(&old_url).await;
        assert_eq!(status, 410, "{body}");
        assert_eq!(body["code"], "expired-token", "{body}");
    }

    // The address is not blocked: another payment's submitUrl and feed still work.
    let fresh = create_body(
        "EXP-2",
        json!(10.00),
        "Venda Direta Credito",
        "http://127.0.0.1:9/cb",
    );
    let fresh_url = ws_url(&start_with_app(&gateway, &fresh).await);
    assert_eq!(handshake_status(&fresh_url).await, 101);

    // A wrong token is still a wrong token (403), whether or not the payment is over: the
    // answer never tells an outsider more than the token holder may know.
    let wrong = format!(
        "{}?token={}",
        old_url.split("?token=").next().expect("base"),
        "0".repeat(64)
    );
    let (status, body) = plain_get(&wrong).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["code"], "bad-token", "{body}");
    assert!(
        !daemon.logs().contains("too many failures"),
        "never blocked"
    );
}
