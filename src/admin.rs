//! The local admin listener: store IT's commands to the running daemon, which owns the
//! terminals (a second process must never open a serial port or a terminal session).
//! Every route needs `Authorization: Bearer <[admin] token>`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::config::Config;
use crate::pos::Engine;
use crate::secret::Secret;

#[derive(Clone)]
struct AdminState {
    engine: Arc<Engine>,
    token: Secret,
}

pub fn router(engine: Arc<Engine>, token: Secret) -> Router {
    Router::new()
        .route("/terminals", get(list_terminals))
        .route("/terminals/{id}/probe", post(probe))
        .route("/terminals/{id}/end-of-day", post(end_of_day))
        .with_state(AdminState {
            engine: engine.clone(),
            token: token.clone(),
        })
        .merge(crate::admin_ops::router(engine, token))
}

/// Whether the request carries the admin Bearer token (constant-time compare).
pub(crate) fn authorized(token: &Secret, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let presented = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if token.matches(presented.trim()) {
        Ok(())
    } else {
        tracing::warn!("admin: rejected a request without the right token");
        let response = (
            StatusCode::UNAUTHORIZED,
            Json(json!({ "error": "missing or wrong bearer token" })),
        );
        Err(Box::new(response.into_response()))
    }
}

async fn list_terminals(State(state): State<AdminState>, headers: HeaderMap) -> Response {
    if let Err(r) = authorized(&state.token, &headers) {
        return *r;
    }
    let terminals: Vec<_> = state
        .engine
        .terminals()
        .into_iter()
        .map(|(id, serial, handle)| {
            let (online, last_seen_ms, last_error) = handle.health();
            json!({
                "id": id, "serialNumber": serial, "protocol": handle.protocol(),
                "online": online, "busy": handle.is_busy(),
                "lastSeenMs": (last_seen_ms > 0).then_some(last_seen_ms), "lastError": last_error,
            })
        })
        .collect();
    Json(json!({ "terminals": terminals })).into_response()
}

async fn probe(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = authorized(&state.token, &headers) {
        return *r;
    }
    let Some(terminal) = state.engine.terminal_handle(&id) else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": format!("no terminal `{id}`") })),
        )
            .into_response();
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

async fn end_of_day(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = authorized(&state.token, &headers) {
        return *r;
    }
    let Some(terminal) = state.engine.terminal_handle(&id) else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": format!("no terminal `{id}`") })),
        )
            .into_response();
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

/// The CLI side: one request to the running daemon's admin listener, as the config says.
/// Returns the HTTP status and body, or why the daemon could not be asked.
pub async fn call(
    config: &Config,
    method: reqwest::Method,
    path: &str,
    body: Option<String>,
) -> Result<(u16, String), String> {
    let Some(token) = &config.admin.token else {
        return Err("no [admin] token in the configuration: the admin listener is off".into());
    };
    let url = format!("http://{}{path}", config.admin.listen);
    let response = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(90))
        .build()
        .map_err(|e| e.to_string())?
        .request(method, &url)
        .bearer_auth(token.expose())
        .body(body.unwrap_or_default())
        .send()
        .await
        .map_err(|e| format!("cannot reach the daemon at {}: {e}", config.admin.listen))?;
    let status = response.status().as_u16();
    let body = response.text().await.map_err(|e| e.to_string())?;
    Ok((status, body))
}
