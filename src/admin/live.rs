//! `GET /status/ws`: live updates for the status page. The server sends
//! `{"type": "changed", "paymentId", "state"}` when a payment changes state (bursts coalesced)
//! and `{"type": "tick"}` every few seconds (terminal health and the outbox change without a
//! payment changing); the page reloads `/status/api` on each. Client messages are ignored.
//! On shutdown the socket gets a close frame (1001).

use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use super::AdminState;
use crate::payment_app::socket::{GOING_AWAY, INTERNAL, close};

/// How often a quiet socket still tells the page to refresh.
const TICK: Duration = Duration::from_secs(3);
/// A notice that cannot be sent in this time ends the socket.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// The page sends nothing that matters; anything big is refused.
const MAX_CLIENT_MESSAGE: usize = 1024;

pub async fn upgrade(
    State(state): State<AdminState>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    if !same_origin(&headers) {
        tracing::warn!("admin: refused a status socket from another origin");
        return (StatusCode::FORBIDDEN, "cross-origin status socket").into_response();
    }
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    ws.max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| serve(state, socket))
}

/// A browser always sends `Origin` on a WebSocket: it must be this listener's own.
/// Non-browser clients (no `Origin`) are judged by their token alone.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let origin_host = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .unwrap_or_default();
    !host.is_empty() && origin_host.eq_ignore_ascii_case(host)
}

async fn serve(state: AdminState, socket: WebSocket) {
    let (mut sink, mut stream) = socket.split();
    let mut changes = state.engine.subscribe_changes();
    let stop = state.sockets_stop.clone();
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + TICK, TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let notice = tokio::select! {
            biased;
            () = stop.cancelled() => {
                close(sink, stream, GOING_AWAY, "posbridge is shutting down").await;
                return;
            }
            change = changes.recv() => match change {
                Ok(change) => {
                    // One notice for a burst: the page reloads everything anyway.
                    let mut latest = change;
                    loop {
                        match changes.try_recv() {
                            Ok(next) => latest = next,
                            Err(TryRecvError::Lagged(_)) => {}
                            Err(_) => break,
                        }
                    }
                    json!({ "type": "changed", "paymentId": latest.payment_id, "state": latest.state.as_str() })
                }
                Err(RecvError::Lagged(_)) => json!({ "type": "changed" }),
                Err(RecvError::Closed) => {
                    close(sink, stream, INTERNAL, "feed ended").await;
                    return;
                }
            },
            _ = tick.tick() => json!({ "type": "tick" }),
            message = stream.next() => match message {
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                Some(Ok(_)) => continue,
            },
        };
        let sent = tokio::time::timeout(
            SEND_TIMEOUT,
            sink.send(Message::Text(notice.to_string().into())),
        )
        .await;
        if !matches!(sent, Ok(Ok(()))) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::same_origin;
    use axum::http::{HeaderMap, HeaderValue, header};

    #[test]
    fn only_the_listeners_own_origin() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:9090"));
        assert!(same_origin(&h), "no Origin: not a browser");
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:9090"),
        );
        assert!(same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert!(!same_origin(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(!same_origin(&h));
    }
}
