//! One Payment App socket: checks the token before the upgrade, sends the backlog then live
//! events, closes with 1000 after the result, 1013 when the client fell behind, 1001 on
//! shutdown. The only message a client may send that does anything is `{"type": "cancel"}`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::PaymentAppState;
use super::admission::{admit, start_cancel};
use super::hub::{FeedEvent, Hub};

/// Largest message a client may send (a cancel is 17 bytes).
const MAX_CLIENT_MESSAGE: usize = 4096;
/// How long a close frame may take to reach the client, and its answer to come back.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

pub const NORMAL: u16 = 1000;
pub const GOING_AWAY: u16 = 1001;
pub const TOO_BIG: u16 = 1009;
pub const INTERNAL: u16 = 1011;
pub const TRY_AGAIN_LATER: u16 = 1013;

#[derive(Deserialize)]
pub struct FeedQuery {
    #[serde(default)]
    token: String,
    after: Option<String>,
}

pub async fn upgrade(
    State(state): State<PaymentAppState>,
    Path(payment_id): Path<String>,
    Query(query): Query<FeedQuery>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let after = match admit(&state, &payment_id, &query.token, query.after.as_deref()).await {
        Ok(after) => after,
        Err(refused) => return refused,
    };
    let hub = state.hub.clone();
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    ws.max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| serve(hub, socket, payment_id, after))
}

#[derive(Deserialize)]
struct ClientMessage {
    #[serde(rename = "type")]
    kind: String,
}

async fn serve(hub: Arc<Hub>, socket: WebSocket, payment_id: String, after: Option<i64>) {
    tracing::debug!(payment_id = %payment_id, after = ?after, "payment app: client joined");
    let (mut sink, mut stream) = socket.split();
    let mut subscription = hub.subscribe(&payment_id);
    let stop = hub.sockets_stop().clone();
    let lagged = subscription.lagged.clone();
    let mut pending: VecDeque<Arc<FeedEvent>> = match hub.backlog(&payment_id, after).await {
        Ok(backlog) if backlog.final_seq.is_some_and(|f| Some(f) <= after) => {
            // The client has seen the result already.
            close(sink, stream, NORMAL, "final").await;
            return;
        }
        Ok(backlog) => backlog.events.into(),
        Err(e) => {
            tracing::error!(payment_id = %payment_id, error = %e, "payment app: cannot read the feed");
            close(sink, stream, INTERNAL, "internal error").await;
            return;
        }
    };
    let mut last_sent = after.unwrap_or(0);
    let cancel_running = Arc::new(AtomicBool::new(false));
    loop {
        if let Some(event) = pending.pop_front() {
            if event.seq <= last_sent {
                continue;
            }
            let frame = Message::Text(event.json.clone().into());
            tokio::select! {
                biased;
                (code, reason) = must_close(&stop, &lagged) => {
                    close(sink, stream, code, reason).await;
                    return;
                }
                sent = sink.send(frame) => if sent.is_err() { return },
            }
            last_sent = event.seq;
            if event.is_final {
                close(sink, stream, NORMAL, "final").await;
                return;
            }
            continue;
        }
        tokio::select! {
            biased;
            (code, reason) = must_close(&stop, &lagged) => {
                close(sink, stream, code, reason).await;
                return;
            }
            event = subscription.events.recv() => match event {
                Some(event) => pending.push_back(event),
                None => {
                    close(sink, stream, INTERNAL, "feed ended").await;
                    return;
                }
            },
            message = stream.next() => match message {
                Some(Ok(Message::Text(text))) => on_client_text(&hub, &payment_id, &text, &cancel_running),
                Some(Ok(Message::Close(_))) | None => return,
                Some(Ok(_)) => {} // binary, ping, pong: nothing to do
                Some(Err(e)) => {
                    tracing::debug!(payment_id = %payment_id, error = %e, "payment app: bad client frame");
                    close(sink, stream, TOO_BIG, "message too big or malformed").await;
                    return;
                }
            },
        }
    }
}

/// Resolves when the socket must close whatever else happens: shutdown (1001) first, then a
/// client that fell behind (1013). Both may resume with `?after=`.
async fn must_close(stop: &CancellationToken, lagged: &CancellationToken) -> (u16, &'static str) {
    tokio::select! {
        biased;
        () = stop.cancelled() => (GOING_AWAY, "posbridge is shutting down; resume with ?after="),
        () = lagged.cancelled() => (TRY_AGAIN_LATER, "fell behind; resume with ?after="),
    }
}

/// A client message: only `{"type": "cancel"}` does something; anything else is ignored.
fn on_client_text(hub: &Arc<Hub>, payment_id: &str, text: &str, cancel_running: &Arc<AtomicBool>) {
    let kind = serde_json::from_str::<ClientMessage>(text).map(|m| m.kind);
    if !matches!(kind.as_deref(), Ok("cancel")) {
        tracing::debug!(payment_id = %payment_id, "payment app: ignored a client message");
        return;
    }
    start_cancel(hub, payment_id, cancel_running);
}

/// Sends a close frame (after whatever is still buffered) and waits briefly for the client's
/// answer, so the frame is not lost to a reset.
pub(crate) async fn close(
    mut sink: futures_util::stream::SplitSink<WebSocket, Message>,
    mut stream: futures_util::stream::SplitStream<WebSocket>,
    code: u16,
    reason: &str,
) {
    let frame = Message::Close(Some(CloseFrame {
        code,
        reason: reason.to_string().into(),
    }));
    if tokio::time::timeout(CLOSE_TIMEOUT, sink.send(frame))
        .await
        .is_ok_and(|r| r.is_ok())
    {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
            while let Some(Ok(message)) = stream.next().await {
                if matches!(message, Message::Close(_)) {
                    break;
                }
            }
        })
        .await;
    }
}
