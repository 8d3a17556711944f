//! The relay tier (`posbridge relay --config relay.toml`): one public Service URL for the
//! Gateway in front of many stores that only dial out (`uplink`). A replica keeps nothing of
//! its own: what it knows of payments (`payments`), which store has which terminal
//! (`directory`, from the serial map the stores write) and the merchants the configuration flow
//! onboarded (`merchants`, `onboarding`) is in JetStream on the tier's NATS cluster, so any
//! replica behind a load balancer continues any payment or flow. The relay checks every
//! merchant's credentials itself; requests for a payment whose store is known go to that store
//! over NATS naming the merchant, never with its credentials (`forward`); `routes` is the HTTP
//! side.

mod answers;
mod callbacks;
mod create;
pub mod directory;
mod feed;
mod forward;
mod handover;
pub mod merchants;
pub mod onboarding;
mod operations;
pub mod payments;
mod routes;
mod state;
mod submit;
mod watch;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use async_nats::jetstream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::RelayConfig;
use crate::ppp::auth::Credentials;
use crate::ppp::create_answer::PublicUrls;
use crate::ppp::onboarding::Onboarding;
use crate::uplink::SERIALS_BUCKET;
use merchants::MERCHANTS_BUCKET;
use onboarding::{ONBOARDING_BUCKET, RelayOnboardingRecords};
use payments::{PAYMENTS_BUCKET, Payments};
use state::RelayState;

/// The relay's own reply inboxes: a prefix no store's NATS user may read (stores have
/// `_INBOX.<store_id>.>` only), so no store can read another's answers.
const RELAY_INBOX: &str = "_RELAY_INBOX";
/// How long the relay tier remembers a payment (its route to its store).
const PAYMENT_RECORDS_KEPT: Duration = Duration::from_secs(400 * 86_400);
/// How long the relay tier keeps a configuration flow's token or code (each is good for ten
/// minutes; a taken one is kept as taken till then).
const ONBOARDING_RECORDS_KEPT: Duration = Duration::from_secs(3_600);
/// How long one JetStream call may take (the Gateway's budget is a few seconds).
const JETSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

/// Runs one relay replica until `shutdown`.
pub async fn run(config: RelayConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let crate::net::Bound {
        listener,
        tls,
        addr,
    } = crate::net::Bound::from_config(&config.server).await?;
    let limits = crate::net::route_limits(&config.server, &config.rate_limits);
    let nats = crate::uplink::connect(
        &config.nats.connection,
        "posbridge relay",
        RELAY_INBOX,
        None,
    )
    .await
    .context("cannot start the relay's NATS connection ([nats])")?;
    let mut js = jetstream::new(nats.clone());
    js.set_timeout(JETSTREAM_TIMEOUT);
    let buckets = tokio::select! {
        () = shutdown.cancelled() => None,
        buckets = open_buckets(&js, config.nats.replicas) => Some(buckets),
    };
    let Some(records) = buckets else {
        return Ok(());
    };

    let tasks = TaskTracker::new();
    let workers_stop = CancellationToken::new();
    let directory = Arc::new(RwLock::new(directory::Directory::default()));
    let loaded = CancellationToken::new();
    tasks.spawn(directory::follow(
        records.serials,
        directory.clone(),
        loaded.clone(),
        workers_stop.clone(),
    ));
    let credentials = Credentials::new(
        &config.vtex.app_key,
        config.vtex.app_token.clone(),
        Vec::new(),
    );
    let merchants_loaded = CancellationToken::new();
    tasks.spawn(merchants::follow(
        records.merchants.clone(),
        credentials.clone(),
        merchants_loaded.clone(),
        workers_stop.clone(),
    ));
    let sender = crate::outbox::HttpSender::new(
        &config.vtex.callback_app_key,
        config.vtex.callback_app_token.clone(),
        Duration::from_secs(config.callbacks.request_timeout_s),
    )
    .context("cannot build the callback HTTP client")?;
    // Every replica derives the same key from the partner's token it already has: no key file
    // to share; a changed token leaves the callback URLs kept before unreadable (an alarm).
    let seal = Arc::new(
        crate::seal::SealKey::derived(
            "posbridge relay: callback URLs kept in NATS",
            config.vtex.callback_app_token.expose(),
        )
        .map_err(|_| anyhow::anyhow!("cannot make the key that seals callback URLs"))?,
    );
    let payments = Payments::new(records.payments);
    tasks.spawn(callbacks::deliver(
        records.callbacks,
        payments.clone(),
        seal.clone(),
        sender,
        config.callbacks.clone(),
        workers_stop.clone(),
    ));
    tokio::select! {
        () = shutdown.cancelled() => return Ok(()),
        () = async { loaded.cancelled().await; merchants_loaded.cancelled().await } => {}
    }
    let public_url = config
        .server
        .public_url
        .clone()
        .context("server.public_url is required")?;
    let state = RelayState {
        nats: nats.clone(),
        payments,
        directory,
        onboarding: Arc::new(Onboarding::new(
            &config.onboarding,
            Arc::new(RelayOnboardingRecords::new(
                records.onboarding,
                records.merchants,
                credentials.clone(),
            )),
        )),
        credentials,
        urls: PublicUrls::new(&public_url),
        // Within the Gateway's budget, with room for the relay's own records.
        store_timeout: Duration::from_millis(config.server.ppp_timeout_ms * 3 / 4),
        max_body_bytes: config.server.max_body_bytes,
        seal,
        stop: shutdown.clone(),
    };
    crate::observability::install();
    let app = crate::net::layer(routes::router(state, &limits), &config.server);
    if let Some(tls) = &tls {
        tasks.spawn(tls.clone().watch(workers_stop.clone()));
        tracing::info!(sha256 = %tls.fingerprint(), "serving TLS 1.2 and 1.3");
    }
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(%public_url, "relay listening on {scheme}://{addr}");
    let notifier = crate::systemd::Notifier::from_env();
    notifier.notify("READY=1");
    let grace = Duration::from_secs(config.server.shutdown_grace_s);
    let served = crate::net::serve(listener, app, tls, &shutdown, grace).await;
    notifier.notify("STOPPING=1");
    workers_stop.cancel();
    tasks.close();
    let _ = tokio::time::timeout(Duration::from_secs(5), tasks.wait()).await;
    let _ = nats.flush().await;
    tracing::info!("stopped");
    served
}

/// What the relay tier keeps in JetStream.
struct Records {
    payments: jetstream::kv::Store,
    serials: jetstream::kv::Store,
    onboarding: jetstream::kv::Store,
    merchants: jetstream::kv::Store,
    callbacks: jetstream::stream::Stream,
}

/// The relay tier's key-value buckets and the stores' callback stream, made by the first
/// replica that starts (the same settings every time, so a second replica finds them as they
/// are). Waits for NATS.
async fn open_buckets(js: &jetstream::Context, replicas: usize) -> Records {
    let mut told = false;
    loop {
        // A payment's route is kept past any refund the Gateway may still ask for; a store's
        // serial list and a merchant's credentials for as long as they exist.
        let opened = async {
            Ok::<_, String>(Records {
                payments: bucket(js, PAYMENTS_BUCKET, PAYMENT_RECORDS_KEPT, replicas).await?,
                serials: bucket(js, SERIALS_BUCKET, Duration::ZERO, replicas).await?,
                onboarding: bucket(js, ONBOARDING_BUCKET, ONBOARDING_RECORDS_KEPT, replicas)
                    .await?,
                merchants: bucket(js, MERCHANTS_BUCKET, Duration::ZERO, replicas).await?,
                callbacks: js
                    .get_or_create_stream(callbacks::stream_config(replicas))
                    .await
                    .map_err(|e| format!("the callback stream: {e}"))?,
            })
        }
        .await;
        match opened {
            Ok(buckets) => {
                tracing::info!(replicas, "relay records open on NATS");
                return buckets;
            }
            Err(e) if !told => {
                tracing::warn!(error = %e, "cannot open the relay's records on NATS yet: retrying");
                told = true;
            }
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// A key-value bucket: its stream made by hand in the shape JetStream gives buckets (one value
/// per key, writes refused when full rather than old values dropped), because async-nats's
/// `create_key_value` asks the server for account details nats-server 2.9 (Debian's) does not
/// send.
async fn bucket(
    js: &jetstream::Context,
    name: &str,
    max_age: Duration,
    replicas: usize,
) -> Result<jetstream::kv::Store, String> {
    js.get_or_create_stream(jetstream::stream::Config {
        max_age,
        name: format!("KV_{name}"),
        subjects: vec![format!("$KV.{name}.>")],
        max_messages_per_subject: 1,
        discard: jetstream::stream::DiscardPolicy::New,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        num_replicas: replicas,
        ..Default::default()
    })
    .await
    .map_err(|e| format!("bucket {name}: {e}"))?;
    js.get_key_value(name)
        .await
        .map_err(|e| format!("bucket {name}: {e}"))
}
