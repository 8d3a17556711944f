//! `posbridge terminals list|probe|end-of-day`: the terminals as the running daemon sees them.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::AdminState;
use crate::pos::Engine;

/// Every configured terminal: online, busy, blocked (a lane waiting on an unresolved sale, and
/// why), last seen, protocol, last error, and how a person should read its link
/// (`not-contacted` before the first command came back, rather than `offline`).
pub fn list(engine: &Engine) -> Vec<Value> {
    engine
        .terminals()
        .into_iter()
        .map(|(id, serial, handle)| {
            let (online, last_seen_ms, last_error) = handle.health();
            let lane = engine.lane_status(&id);
            json!({
                "id": id, "serialNumber": serial, "protocol": handle.protocol(),
                "online": online, "reachability": handle.reachability().as_str(),
                "busy": handle.is_busy(),
                "blocked": lane.blocked_by.is_some(), "blockedBy": lane.blocked_by,
                "blockedReason": lane.reason, "blockedSinceMs": lane.since_ms,
                "lastSeenMs": (last_seen_ms > 0).then_some(last_seen_ms), "lastError": last_error,
            })
        })
        .collect()
}

pub async fn list_terminals(State(state): State<AdminState>) -> Response {
    Json(json!({
        "terminals": list(&state.engine),
        "store": super::ops::store_json(&state.engine),
    }))
    .into_response()
}

fn no_terminal(id: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({ "error": format!("no terminal `{id}`") })),
    )
        .into_response()
}

pub async fn probe(State(state): State<AdminState>, Path(id): Path<String>) -> Response {
    let Some(terminal) = state.engine.terminal_handle(&id) else {
        return no_terminal(&id);
    };
    match terminal.probe().await {
        Ok(status) => Json(json!({ "terminal": id, "status": status })).into_response(),
        Err(e) => (
            StatusCode::BAD_GATEWAY,
            Json(json!({ "terminal": id, "error": e.to_string() })),
        )
            .into_response(),
    }
}

pub async fn end_of_day(State(state): State<AdminState>, Path(id): Path<String>) -> Response {
    let Some(terminal) = state.engine.terminal_handle(&id) else {
        return no_terminal(&id);
    };
    tracing::info!(terminal = %id, "end of day requested");
    match terminal.end_of_day().await {
        Ok(summary) => Json(json!({ "terminal": id, "status": summary })).into_response(),
        Err(e) => (
            StatusCode::BAD_GATEWAY,
            Json(json!({ "terminal": id, "error": e.to_string() })),
        )
            .into_response(),
    }
}
