//! The Payment App's live feed through the relay: the WebSocket the store's `wsUrl` names ends
//! here, and the relay follows the payment's feed on its store by long polling over NATS
//! (`/payment-app/events/…`, the store's own token check and `after` resume), sending each
//! event on as the very frame the store would have sent. A `{"type": "cancel"}` from the app
//! goes to the store as its cancel request. Close codes as on a store: 1000 after the result,
//! 1013 when the store is away (the app resumes with `?after=`), 1001 when the relay stops.

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use std::time::Duration;

use super::forward::{self, Relayed};
use super::state::RelayState;
use crate::error_body;

const NORMAL: u16 = 1000;
const GOING_AWAY: u16 = 1001;
const INTERNAL: u16 = 1011;
const TRY_AGAIN_LATER: u16 = 1013;
/// A store's poll waits up to 5 s for the next event; its answer has this long to come.
const POLL_TIMEOUT: Duration = Duration::from_secs(8);
/// A cancel is 17 bytes; anything much larger is no message of the app's.
const MAX_CLIENT_MESSAGE: usize = 4096;

#[derive(Deserialize)]
struct Poll {
    events: Vec<PolledEvent>,
    #[serde(rename = "final")]
    is_final: bool,
}

#[derive(Deserialize)]
struct PolledEvent {
    seq: i64,
    text: String,
}

/// The query a feed URL carries: `token`, and `after` on a resume.
#[derive(Deserialize)]
pub struct FeedQuery {
    #[serde(default)]
    token: String,
    after: Option<i64>,
}

fn query_of(token: &str, after: Option<i64>, wait_ms: u64) -> String {
    let mut query = format!("token={}", encoded(token));
    if let Some(after) = after {
        query.push_str(&format!("&after={after}"));
    }
    query.push_str(&format!("&wait_ms={wait_ms}"));
    query
}

/// Percent-encodes all but RFC 3986's unreserved characters (a path segment, a query value).
fn encoded(value: &str) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// One poll of the store's feed: its answer, or the close code to end the socket with.
async fn poll(
    state: &RelayState,
    store: &str,
    path_id: &str,
    token: &str,
    after: Option<i64>,
    wait_ms: u64,
) -> Result<Response, u16> {
    let path = format!(
        "/payment-app/events/{path_id}?{}",
        query_of(token, after, wait_ms)
    );
    let relayed = Relayed {
        method: &Method::GET,
        path_and_query: &path,
        headers: &HeaderMap::new(),
        client: None,
        body: Bytes::new(),
        assigned: None,
        merchant: None,
    };
    forward::to_store(&state.nats, store, relayed, POLL_TIMEOUT)
        .await
        .map_err(|why| {
            tracing::info!(store_id = %store, why = why.describe(), "payment app feed: store away");
            TRY_AGAIN_LATER
        })
}

async fn read_poll(answer: Response) -> Option<Poll> {
    let body = axum::body::to_bytes(answer.into_body(), 1 << 20)
        .await
        .ok()?;
    serde_json::from_slice(&body).ok()
}

pub async fn upgrade(
    State(state): State<RelayState>,
    Path(payment_id): Path<String>,
    query: Result<Query<FeedQuery>, QueryRejection>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return error_body::response(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "after must be a sequence number (0 or more)",
        );
    };
    let store = match state.payments.get(&payment_id).await {
        Ok(Some(found)) => found.payment.store,
        Ok(None) => None,
        Err(e) => return super::answers::unavailable(&e),
    };
    // A feed URL is given out by the store, once it has the payment: no store, no feed.
    let Some(store) = store else {
        return error_body::response(
            StatusCode::FORBIDDEN,
            "bad-token",
            "wrong token or unknown payment",
        );
    };
    let path_id = encoded(&payment_id);
    // The store checks the token and `after` before the upgrade, as on its own listener.
    let first = match poll(&state, &store, &path_id, &query.token, query.after, 0).await {
        Ok(answer) if answer.status() == StatusCode::OK => read_poll(answer).await,
        Ok(refused) => return refused,
        Err(_) => {
            return error_body::response(
                StatusCode::SERVICE_UNAVAILABLE,
                "store-offline",
                "the store is not connected to the relay tier: try again",
            );
        }
    };
    let Some(first) = first else {
        return error_body::response(
            StatusCode::BAD_GATEWAY,
            "bad-store-answer",
            "the store's feed answer cannot be read",
        );
    };
    let Ok(ws) = ws else {
        return error_body::response(
            StatusCode::BAD_REQUEST,
            "not-a-websocket",
            "this is the Payment App's WebSocket feed",
        );
    };
    ws.max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| {
            serve(
                state,
                socket,
                store,
                path_id,
                query.token,
                query.after,
                first,
            )
        })
}

async fn serve(
    state: RelayState,
    socket: WebSocket,
    store: String,
    path_id: String,
    token: String,
    after: Option<i64>,
    first: Poll,
) {
    let (mut sink, mut stream) = socket.split();
    let mut last = after;
    let mut batch = first;
    loop {
        for event in batch.events {
            if last.is_some_and(|seen| event.seq <= seen) {
                continue;
            }
            if sink.send(Message::Text(event.text.into())).await.is_err() {
                return;
            }
            last = Some(event.seq);
        }
        if batch.is_final {
            close(sink, NORMAL, "final").await;
            return;
        }
        // The next poll, while listening to the app (a cancel) and to the relay stopping.
        let next = poll(&state, &store, &path_id, &token, last, 5_000);
        tokio::pin!(next);
        let answer = loop {
            tokio::select! {
                answer = &mut next => break answer,
                () = state.stop.cancelled() => {
                    close(sink, GOING_AWAY, "the relay is shutting down; resume with ?after=").await;
                    return;
                }
                message = stream.next() => match message {
                    Some(Ok(Message::Text(text))) => {
                        if is_cancel(&text) {
                            cancel(&state, &store, &path_id, &token).await;
                        }
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                    Some(Ok(_)) => {}
                },
            }
        };
        batch = match answer {
            Ok(answer) if answer.status() == StatusCode::OK => match read_poll(answer).await {
                Some(batch) => batch,
                None => {
                    close(sink, INTERNAL, "the store's feed answer cannot be read").await;
                    return;
                }
            },
            // The token expired meanwhile, or the store refused: as its own socket would end.
            Ok(_) => {
                close(sink, INTERNAL, "the store ended the feed").await;
                return;
            }
            Err(code) => {
                close(sink, code, "the store is away; resume with ?after=").await;
                return;
            }
        };
    }
}

fn is_cancel(text: &str) -> bool {
    #[derive(Deserialize)]
    struct ClientMessage {
        #[serde(rename = "type")]
        kind: String,
    }
    serde_json::from_str::<ClientMessage>(text).is_ok_and(|m| m.kind == "cancel")
}

async fn cancel(state: &RelayState, store: &str, path_id: &str, token: &str) {
    let path = format!("/payment-app/cancel/{path_id}?token={}", encoded(token));
    let relayed = Relayed {
        method: &Method::POST,
        path_and_query: &path,
        headers: &HeaderMap::new(),
        client: None,
        body: Bytes::new(),
        assigned: None,
        merchant: None,
    };
    if let Err(why) = forward::to_store(&state.nats, store, relayed, state.store_timeout).await {
        tracing::warn!(store_id = %store, why = why.describe(), "payment app: a cancel could not reach the store");
    }
}

async fn close(
    mut sink: futures_util::stream::SplitSink<WebSocket, Message>,
    code: u16,
    reason: &str,
) {
    let frame = Message::Close(Some(CloseFrame {
        code,
        reason: reason.to_string().into(),
    }));
    let _ = tokio::time::timeout(Duration::from_secs(10), sink.send(frame)).await;
}
