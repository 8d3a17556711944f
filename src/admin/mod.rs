//! The local admin listener: store IT's commands to the running daemon, which owns the
//! terminals (a second process must never open a serial port or a terminal session), and the
//! status page.
//!
//! * `auth`: every route but the login form and static files needs
//!   `Authorization: Bearer <[admin] token>` or the status page's login cookie.
//! * `terminals`: `GET /terminals`, `POST /terminals/{id}/probe|end-of-day` (the CLI).
//! * `status`: `GET /status` (the page), `/status/api` (its JSON), the re-delivery of a
//!   callback, the login form.
//! * `live`: `GET /status/ws`, the page's live "changed" notices.
//! * `ops`: `GET /metrics`, `PUT /log-level`, `GET /payments[/{id}]`, `GET /callbacks`,
//!   `POST /callbacks/{id}/retry` (the CLI).

mod alarms;
mod auth;
mod live;
mod ops;
mod status;
mod terminals;

use std::sync::Arc;

use axum::Router;
use axum::middleware;
use axum::routing::{get, post, put};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::outbox::Outbox;
use crate::pos::Engine;
use crate::secret::Secret;
use crate::store::Store;

pub use alarms::alarm_json;
pub use auth::AdminAuth;

#[derive(Clone)]
pub struct AdminState {
    engine: Arc<Engine>,
    /// What store IT reads (payments, callbacks, alarms) and acknowledges.
    store: Store,
    /// Callbacks made due again on request.
    outbox: Outbox,
    auth: AdminAuth,
    /// Cancelled when the daemon shuts down: every status socket closes with a close frame.
    sockets_stop: CancellationToken,
    /// A store behind the relay tier: whether it is connected.
    uplink: Option<crate::uplink::UplinkStatus>,
}

/// `tokens`: every admin token with its holder's name (`AdminConfig::named_tokens`).
pub fn router(
    engine: Arc<Engine>,
    store: Store,
    outbox: Outbox,
    tokens: Vec<(String, Secret)>,
    sockets_stop: CancellationToken,
    uplink: Option<crate::uplink::UplinkStatus>,
) -> Router {
    let auth = AdminAuth::new(tokens);
    let state = AdminState {
        engine,
        store,
        outbox,
        auth: auth.clone(),
        uplink,
        sockets_stop,
    };
    let protected = Router::new()
        .route("/terminals", get(terminals::list_terminals))
        .route("/terminals/{id}/probe", post(terminals::probe))
        .route("/terminals/{id}/end-of-day", post(terminals::end_of_day))
        .route("/status/api", get(status::api))
        .route(
            "/status/api/callbacks/{id}/redeliver",
            post(status::redeliver),
        )
        .route("/status/ws", get(live::upgrade))
        .route("/metrics", get(ops::metrics))
        .route("/log-level", put(ops::set_log_level))
        .route("/payments", get(ops::list_payments))
        .route("/payments/{id}", get(ops::show_payment))
        .route("/callbacks", get(ops::list_callbacks))
        .route("/callbacks/{id}/retry", post(ops::retry_callback))
        .route("/alarms", get(alarms::list))
        .route("/alarms/{id}/ack", post(alarms::ack))
        .route("/payments/{id}/resolve", post(alarms::resolve))
        .route("/status/api/alarms/{id}/ack", post(alarms::ack))
        .route("/status/api/payments/{id}/resolve", post(alarms::resolve))
        .route_layer(middleware::from_fn_with_state(auth, auth::require));
    let public = Router::new()
        // The page checks the cookie itself: without it, it sends the browser to the login.
        .route("/status", get(status::page))
        .route("/status/", get(status::to_page))
        .route("/status/status.js", get(status::script))
        .route("/status/login", get(status::login_page).post(status::login))
        .route("/status/logout", post(status::logout));
    protected.merge(public).with_state(state)
}

/// The CLI side: one request to the running daemon's admin listener, as the config says.
/// Returns the HTTP status and body, or why the daemon could not be asked.
pub async fn call(
    config: &Config,
    method: reqwest::Method,
    path: &str,
    body: Option<String>,
) -> Result<(u16, String), String> {
    call_as(config, None, method, path, body).await
}

/// [`call`] with the token of the holder named `as_name` (see `AdminConfig::token_for`): what
/// the daemon records as who did it.
pub async fn call_as(
    config: &Config,
    as_name: Option<&str>,
    method: reqwest::Method,
    path: &str,
    body: Option<String>,
) -> Result<(u16, String), String> {
    let (_, token) = config.admin.token_for(as_name)?;
    let url = format!("http://{}{path}", config.admin.listen);
    let response = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(90))
        .build()
        .map_err(|e| e.to_string())?
        .request(method, &url)
        .bearer_auth(token.expose())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.unwrap_or_default())
        .send()
        .await
        .map_err(|e| format!("cannot reach the daemon at {}: {e}", config.admin.listen))?;
    let status = response.status().as_u16();
    let body = response.text().await.map_err(|e| e.to_string())?;
    Ok((status, body))
}
