//! The feed by long polling, for the relay tier (which carries requests to a store over NATS,
//! not sockets): what a socket sends, as answers to plain requests, with the same tokens and the
//! same `after` resume. `GET /payment-app/events/{payment_id}?token=&after=N[&wait_ms=M]`: the
//! events after `N` (without it: from the current state) as `{"events": [{"seq", "final",
//! "text"}], "final"}` — `text` is the frame a socket would send, byte for byte — waiting up to
//! `wait_ms` (at most 5 s) for the next one when there is none yet. `POST
//! /payment-app/cancel/{payment_id}?token=`: a socket's `{"type": "cancel"}` (202).

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::admission::{admit, start_cancel};
use super::hub::FeedEvent;
use super::{PaymentAppState, error};

/// The longest wait of one poll: well within the request's time budget.
const MAX_WAIT: Duration = Duration::from_secs(5);

#[derive(Deserialize)]
pub struct PollQuery {
    #[serde(default)]
    token: String,
    after: Option<String>,
    wait_ms: Option<u64>,
}

pub async fn events(
    State(state): State<PaymentAppState>,
    Path(payment_id): Path<String>,
    Query(query): Query<PollQuery>,
) -> Response {
    let after = match admit(&state, &payment_id, &query.token, query.after.as_deref()).await {
        Ok(after) => after,
        Err(refused) => return refused,
    };
    let wait = query
        .wait_ms
        .map_or(MAX_WAIT, Duration::from_millis)
        .min(MAX_WAIT);
    // Joined before the backlog is read: nothing falls between.
    let mut subscription = state.hub.subscribe(&payment_id);
    let backlog = match state.hub.backlog(&payment_id, after).await {
        Ok(backlog) => backlog,
        Err(e) => {
            tracing::error!(payment_id = %payment_id, error = %e, "payment app: cannot read the feed");
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal-error",
                "cannot read the feed",
            );
        }
    };
    let seen = after.unwrap_or(0);
    let already_final = backlog
        .final_seq
        .is_some_and(|f| f <= seen && after.is_some());
    let mut events: Vec<Arc<FeedEvent>> = backlog
        .events
        .into_iter()
        .filter(|e| e.seq > seen)
        .collect();
    if events.is_empty() && !already_final {
        let stop = state.hub.sockets_stop().clone();
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = stop.cancelled() => {}
            event = subscription.events.recv() => {
                events.extend(event);
                while let Ok(more) = subscription.events.try_recv() {
                    events.push(more);
                }
            }
        }
        events.retain(|e| e.seq > seen);
    }
    // Up to the result, which is the last event.
    if let Some(last) = events.iter().position(|e| e.is_final) {
        events.truncate(last + 1);
    }
    let is_final = already_final || events.iter().any(|e| e.is_final);
    let listed: Vec<_> = events
        .iter()
        .map(|e| json!({ "seq": e.seq, "final": e.is_final, "text": e.json }))
        .collect();
    Json(json!({ "events": listed, "final": is_final })).into_response()
}

pub async fn cancel(
    State(state): State<PaymentAppState>,
    Path(payment_id): Path<String>,
    Query(query): Query<PollQuery>,
) -> Response {
    if let Err(refused) = admit(&state, &payment_id, &query.token, None).await {
        return refused;
    }
    start_cancel(&state.hub, &payment_id, &Arc::new(AtomicBool::new(false)));
    (
        StatusCode::ACCEPTED,
        Json(json!({ "status": "cancelling" })),
    )
        .into_response()
}
