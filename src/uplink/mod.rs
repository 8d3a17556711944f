//! A store daemon's link to the relay tier (`[uplink]`): the store dials out to the relay's NATS
//! cluster and needs no inbound port. Every PPP or Payment App request the relay routes to this
//! store arrives on the store's own subject and is served by the store's own router, in process,
//! with the same limits, authentication and answers as on its listener; the answer goes back as
//! the reply. The store also tells the relay which terminal serial numbers it has, so that the
//! relay can route a payment to it once the Sales App names the terminal. What a store's NATS
//! user may do is [`permissions`]: its own subjects, its own key of the serial map, nothing else.

pub mod callbacks;
pub mod permissions;
mod serials;
pub mod wire;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::{Client, ConnectOptions, Message};
use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use bytes::Bytes;
use futures_util::StreamExt;
use http::Response;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::config::{NatsConnection, NatsLogin, UplinkConfig};

/// The relay's map of which store has which terminal serial numbers (a JetStream key-value
/// bucket the relay tier creates): one key per store, its `store_id`, holding a JSON list.
pub const SERIALS_BUCKET: &str = "posbridge_serials";

/// Where the relay sends the requests of the store `store_id`'s payments.
pub fn requests_subject(store_id: &str) -> String {
    format!("posbridge.store.{store_id}.http")
}

/// A store's replies and the inboxes of its own requests: a NATS user limited to
/// `posbridge.store.<id>.>` and this prefix serves its store and nothing else.
pub fn inbox_prefix(store_id: &str) -> String {
    format!("_INBOX.{store_id}")
}

/// Larger answers than any PPP answer or Payment App page; below NATS's default 1 MB payload.
const MAX_ANSWER_BYTES: usize = 900 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum UplinkError {
    #[error("cannot read the NATS login from {path}: {source}")]
    Login {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot reach NATS at {servers}: {why}")]
    Connect { servers: String, why: String },
    #[error("cannot subscribe to {subject}: {why}")]
    Subscribe { subject: String, why: String },
}

/// Opens the connection; when no server answers yet, it goes on trying in the background (a
/// store keeps selling on its own LAN while the relay tier is away).
/// `connected` (if any) counts every connection, the first and each after a loss.
pub async fn connect(
    nats: &NatsConnection,
    name: &str,
    inbox: &str,
    connected: Option<Arc<Connections>>,
) -> Result<Client, UplinkError> {
    let options = match &nats.login {
        NatsLogin::CredentialsFile(path) => ConnectOptions::with_credentials_file(path.clone())
            .await
            .map_err(|source| UplinkError::Login {
                path: path.display().to_string(),
                source,
            })?,
        NatsLogin::Password {
            user,
            password_file,
        } => {
            let text =
                std::fs::read_to_string(password_file).map_err(|source| UplinkError::Login {
                    path: password_file.display().to_string(),
                    source,
                })?;
            let password = text.lines().next().unwrap_or_default().to_string();
            ConnectOptions::with_user_and_password(user.clone(), password)
        }
    };
    let servers = nats.servers.join(", ");
    let addresses = nats
        .servers
        .iter()
        .map(|s| s.parse::<async_nats::ServerAddr>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| UplinkError::Connect {
            servers: servers.clone(),
            why: e.to_string(),
        })?;
    let logged = servers.clone();
    options
        .name(name)
        .custom_inbox_prefix(inbox)
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(5))
        .event_callback(move |event| {
            let servers = logged.clone();
            let connected = connected.clone();
            async move {
                match event {
                    async_nats::Event::Connected => {
                        tracing::info!(%servers, "connected to the relay tier (NATS)");
                        if let Some(connected) = connected {
                            connected.count.fetch_add(1, Ordering::AcqRel);
                            connected.changed.notify_waiters();
                        }
                    }
                    async_nats::Event::Disconnected => {
                        tracing::warn!(%servers, "lost the relay tier (NATS): reconnecting");
                    }
                    async_nats::Event::ClientError(_) | async_nats::Event::ServerError(_) => {
                        tracing::warn!(%servers, event = %event, "NATS");
                    }
                    other => tracing::info!(%servers, event = %other, "NATS"),
                }
            }
        })
        .connect(addresses)
        .await
        .map_err(|e| UplinkError::Connect {
            servers,
            why: e.to_string(),
        })
}

/// What store IT sees of the uplink (the status page): the store's name, and whether it is
/// connected to the relay tier now.
#[derive(Clone)]
pub struct UplinkStatus {
    pub store_id: String,
    client: Client,
}

impl UplinkStatus {
    pub fn new(store_id: &str, client: Client) -> Self {
        Self {
            store_id: store_id.to_string(),
            client,
        }
    }

    pub fn connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }
}

/// How many times a client has connected, and a wake-up at each.
#[derive(Default)]
pub struct Connections {
    count: AtomicU64,
    changed: Notify,
}

impl Connections {
    fn count(&self) -> u64 {
        self.count.load(Ordering::Acquire)
    }

    /// Returns once the client has connected more than `seen` times (or at once if it has).
    async fn after(&self, seen: u64) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.count() > seen {
                return;
            }
            changed.await;
        }
    }
}

/// A store's connection to the relay tier, and its count of (re)connections.
pub struct StoreLink {
    pub client: Client,
    connected: Arc<Connections>,
}

/// The store's connection to the relay tier, under its own name and inbox.
pub async fn connect_store(config: &UplinkConfig) -> Result<StoreLink, UplinkError> {
    let connected = Arc::new(Connections::default());
    let client = connect(
        &config.nats,
        &format!("posbridge store {}", config.store_id),
        &inbox_prefix(&config.store_id),
        Some(connected.clone()),
    )
    .await?;
    Ok(StoreLink { client, connected })
}

/// Serves the relay's requests for this store with `app` until `stop`, and keeps the relay's
/// serial map naming this store for `serials`.
pub async fn start(
    config: &UplinkConfig,
    link: StoreLink,
    app: Router,
    serials: Vec<String>,
    tasks: &TaskTracker,
    stop: CancellationToken,
) -> Result<(), UplinkError> {
    let store_id = config.store_id.clone();
    let StoreLink { client, connected } = link;
    let subject = requests_subject(&store_id);
    let requests = client
        .subscribe(subject.clone())
        .await
        .map_err(|e| UplinkError::Subscribe {
            subject: subject.clone(),
            why: e.to_string(),
        })?;
    tracing::info!(store_id = %store_id, %subject, "serving the relay's requests");
    tasks.spawn(serials::announce(
        client.clone(),
        store_id,
        serials,
        connected,
        stop.clone(),
    ));
    tasks.spawn(serve(client, requests, app, tasks.clone(), stop));
    Ok(())
}

async fn serve(
    client: Client,
    mut requests: async_nats::Subscriber,
    app: Router,
    tasks: TaskTracker,
    stop: CancellationToken,
) {
    loop {
        let message = tokio::select! {
            () = stop.cancelled() => break,
            message = requests.next() => match message {
                Some(message) => message,
                None => break,
            },
        };
        tasks.spawn(answer(client.clone(), app.clone(), message));
    }
    // Requests already taken are answered (each task above); no new ones.
    let _ = requests.unsubscribe().await;
}

async fn answer(client: Client, app: Router, message: Message) {
    let Some(reply) = message.reply else {
        tracing::debug!(subject = %message.subject, "a relayed request with nowhere to answer: dropped");
        return;
    };
    let response = match wire::request_from_nats(message.headers.as_ref(), message.payload) {
        Ok((mut request, client_ip)) => {
            if let Some(ip) = client_ip {
                request
                    .extensions_mut()
                    .insert(ConnectInfo(SocketAddr::new(ip, 0)));
            }
            let Ok(response) = app.oneshot(request).await;
            response
        }
        Err(e) => {
            tracing::warn!(error = %e, "a relayed request this store cannot read");
            json_error(
                http::StatusCode::BAD_REQUEST,
                "bad-relay-message",
                &e.to_string(),
            )
        }
    };
    let headers = wire::response_to_nats(&response);
    let (headers, body) = match axum::body::to_bytes(response.into_body(), MAX_ANSWER_BYTES).await {
        Ok(body) => (headers, body),
        Err(e) => {
            tracing::error!(error = %e, "an answer too large to relay");
            let response = json_error(
                http::StatusCode::BAD_GATEWAY,
                "answer-too-large",
                "the store's answer is larger than the relay carries",
            );
            let headers = wire::response_to_nats(&response);
            let body = axum::body::to_bytes(response.into_body(), MAX_ANSWER_BYTES)
                .await
                .unwrap_or_default();
            (headers, body)
        }
    };
    if let Err(e) = client.publish_with_headers(reply, headers, body).await {
        // The relay's request times out and it answers the Gateway as for a store offline.
        tracing::warn!(error = %e, "cannot send an answer to the relay");
    }
}

fn json_error(status: http::StatusCode, code: &str, message: &str) -> Response<Body> {
    let body = serde_json::json!({ "code": code, "message": message }).to_string();
    let mut response = Response::new(Body::from(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}
