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

use super::hub::{Denied, FeedEvent};
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

/// The token and `after` checks a socket makes before its upgrade, with the same answers.
pub(super) async fn admit(
    state: &PaymentAppState,
    payment_id: &str,
    token: &str,
    after: Option<&str>,
) -> Result<Option<i64>, Response> {
    if let Some(problem) = crate::ids::problem(payment_id, crate::ids::MAX_KEY_CHARS) {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "bad-request",
            &format!("field `paymentId` {problem}"),
        ));
    }
    let after = match after.map(str::parse::<i64>) {
        None => None,
        Some(Ok(n)) if n >= 0 => Some(n),
        Some(_) => {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "bad-request",
                "after must be a sequence number (0 or more)",
            ));
        }
    };
    if let Err(denied) = state.hub.authorize(payment_id, token).await {
        tracing::warn!(payment_id = %payment_id, reason = %denied, "payment app: feed refused");
        let (status, code) = match denied {
            Denied::BadToken => (StatusCode::FORBIDDEN, "bad-token"),
            // Not a guess at a token (it matched): 410 is not counted by the failure limit,
            // so a stale page cannot lock the store's address out.
            Denied::Expired => (StatusCode::GONE, "expired-token"),
            Denied::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal-error"),
        };
        return Err(error(status, code, &denied.to_string()));
    }
    Ok(after)
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
    super::socket::start_cancel(&state.hub, &payment_id, &Arc::new(AtomicBool::new(false)));
    (
        StatusCode::ACCEPTED,
        Json(json!({ "status": "cancelling" })),
    )
        .into_response()
}
