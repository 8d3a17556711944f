//! Wiring and lifecycle: open the database, start the terminals and the outbox, serve HTTP,
//! and on shutdown stop accepting, let in-flight requests finish within the grace period.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::clock::{SharedClock, SystemClock};
use crate::config::Config;
use crate::outbox::{HttpSender, Outbox, OutboxWorker};
use crate::payment_app::{self, Hub, PaymentAppState};
use crate::pos::Engine;
use crate::ppp::auth::Credentials;
use crate::ppp::create_answer::{CreateAnswers, PublicUrls};
use crate::ppp::onboarding::Onboarding;
use crate::ppp::onboarding::records::StoreRecords;
use crate::ppp::{self, AppState};
use crate::route_limits::{Limits, Routes, TimeBudget};
use crate::store::{Store, merchants};
use crate::terminal::{OpenError, Terminals};

/// Runs the daemon until `shutdown` is cancelled.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let crate::net::Bound {
        listener,
        tls,
        addr,
    } = crate::net::Bound::from_config(&config.server).await?;
    let limits = crate::net::route_limits(&config.server, &config.rate_limits);
    let scheme = if tls.is_some() { "https" } else { "http" };
    let public_url = config
        .server
        .public_url
        .clone()
        .unwrap_or_else(|| format!("{scheme}://{addr}"));

    // One writer: a second daemon (or a maintenance command) on this database is refused.
    let _writer = crate::store::lock_writer(&config.storage.path)?;
    let store = Store::open(&config.storage.path)?;
    let clock: SharedClock = Arc::new(SystemClock);
    let outbox = Outbox::new(store.clone());
    let terminals = open_terminals(&config, clock.clone())?;
    let nexo_notifications = terminals.notifications.clone();
    let engine = Engine::new(
        &config,
        store.clone(),
        outbox.clone(),
        clock.clone(),
        Arc::new(ppp::operations::PppAnswers),
        terminals,
    )?;
    let tasks = TaskTracker::new();
    let workers_stop = CancellationToken::new();
    // Subscribed before the terminals start: the feed misses nothing.
    let hub = Hub::new(engine.clone(), shutdown.clone());
    tasks.spawn(hub.clone().run(workers_stop.clone()));
    if let Err(refused) = engine.start(&tasks, workers_stop.clone()).await {
        // What the start stored before it refused (payments caught up from the journals)
        // goes into the database file, as on a clean stop: the file alone is complete, and a
        // process ending while its writer closes never leaves it torn without its -wal.
        workers_stop.cancel();
        if let Err(e) = store.checkpoint().await {
            tracing::warn!(error = %e, "cannot checkpoint the database after a refused start");
        }
        return Err(refused.into());
    }

    // Behind the relay tier the store's callbacks go to the relay's stream (the relay holds
    // the partner's keys); otherwise straight to the Gateway.
    let uplink = match &config.uplink {
        Some(uplink) => Some(
            crate::uplink::connect_store(uplink)
                .await
                .context("cannot start the uplink to the relay tier ([uplink])")?,
        ),
        None => None,
    };
    let worker = OutboxWorker {
        outbox: outbox.clone(),
        clock: clock.clone(),
        config: config.callbacks.clone(),
        sender: (),
        time: engine.store_time().clone(),
    };
    match (&config.uplink, &uplink) {
        (Some(settings), Some(link)) => {
            let sender = crate::uplink::callbacks::RelayCallbacks::new(
                link.client.clone(),
                &settings.store_id,
            );
            tasks.spawn(worker.with_sender(sender).run(workers_stop.clone()));
        }
        _ => {
            let sender = HttpSender::new(
                &config.vtex.callback_app_key,
                config.vtex.callback_app_token.clone(),
                Duration::from_secs(config.callbacks.request_timeout_s),
            )
            .context("cannot build the callback HTTP client")?;
            tasks.spawn(worker.with_sender(sender).run(workers_stop.clone()));
        }
    }

    if config.storage.retain_days > 0 {
        tasks.spawn(purge_old_data(
            store.clone(),
            clock.clone(),
            config.storage.retain_days,
            workers_stop.clone(),
        ));
    }

    let issued = store.call(merchants::all).await?;
    let credentials = Credentials::new(&config.vtex.app_key, config.vtex.app_token.clone(), issued);
    let onboarding_records = StoreRecords::new(engine.clone(), credentials.clone());
    let state = AppState {
        engine: engine.clone(),
        credentials,
        onboarding: Arc::new(Onboarding::new(
            &config.onboarding,
            Arc::new(onboarding_records),
        )),
        max_body_bytes: config.server.max_body_bytes,
        create_answers: Arc::new(CreateAnswers::new(
            PublicUrls::new(&public_url),
            config.payment_app.app_name.clone(),
        )),
        limits: limits.clone(),
    };
    let payment_app_state = PaymentAppState {
        engine: engine.clone(),
        hub,
        limits: limits.clone(),
    };
    crate::observability::install();
    let health = Limits {
        failures: None,
        time: TimeBudget::Request,
    };
    let app = Routes::new(&limits)
        .route("/healthz", health, get(|| async { "ok" }))
        .into_router()
        .merge(ppp::router(state))
        .merge(payment_app::router(payment_app_state))
        .merge(crate::nexo_notifications::router(
            nexo_notifications,
            &limits,
        ))
        .fallback(|| async {
            ppp::error::PppError::bad("not-found", "no such route").into_response_404()
        });
    let app = crate::net::layer(app, &config.server);
    let uplink_status = config
        .uplink
        .as_ref()
        .zip(uplink.as_ref())
        .map(|(settings, link)| {
            crate::uplink::UplinkStatus::new(&settings.store_id, link.client.clone())
        });
    if let (Some(settings), Some(link)) = (&config.uplink, uplink) {
        let serials = config
            .terminals
            .iter()
            .map(|t| t.serial_number.clone())
            .collect();
        crate::uplink::start(
            settings,
            link,
            app.clone(),
            serials,
            &tasks,
            workers_stop.clone(),
        )
        .await
        .context("cannot start the uplink to the relay tier ([uplink])")?;
    }

    let admin_tokens = config.admin.named_tokens();
    if !admin_tokens.is_empty() {
        let admin_listener = TcpListener::bind(config.admin.listen)
            .await
            .with_context(|| {
                format!("cannot listen on {} ([admin] listen)", config.admin.listen)
            })?;
        let admin_addr = admin_listener.local_addr().context("no local address")?;
        let admin = crate::admin::router(
            engine.clone(),
            store.clone(),
            outbox.clone(),
            admin_tokens,
            shutdown.clone(),
            uplink_status,
        );
        let stop = shutdown.clone();
        tasks.spawn(async move {
            let served = axum::serve(admin_listener, admin)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "admin listener failed");
            }
        });
        tracing::info!("admin listening on http://{admin_addr}");
    }
    if let Some(tls) = &tls {
        // Registers for SIGHUP now, before anyone is told the daemon is up.
        tasks.spawn(tls.clone().watch(workers_stop.clone()));
        tracing::info!(sha256 = %tls.fingerprint(), "serving TLS 1.2 and 1.3");
    }
    tracing::info!("listening on {scheme}://{addr}");
    // Ready: the database is open and the listener bound.
    let notifier = Arc::new(crate::systemd::Notifier::from_env());
    notifier.notify("READY=1");
    if let Some(period) = crate::systemd::watchdog_period() {
        tracing::info!(
            period_ms = period.as_millis(),
            "pinging the systemd watchdog"
        );
        tasks.spawn(crate::systemd::watchdog(
            notifier.clone(),
            engine.clone(),
            period,
            workers_stop.clone(),
        ));
    }
    {
        let notifier = notifier.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            shutdown.cancelled().await;
            notifier.notify("STOPPING=1");
        });
    }
    let grace = Duration::from_secs(config.server.shutdown_grace_s);
    crate::net::serve(listener, app, tls, &shutdown, grace).await?;
    tracing::info!("stopping workers");
    workers_stop.cancel();
    tasks.close();
    if tokio::time::timeout(Duration::from_secs(5), tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!("workers did not stop in time");
    }
    // A clean stop leaves the database file complete on its own (nothing left in the -wal).
    match store.checkpoint().await {
        Ok(()) => tracing::info!("database checkpointed"),
        Err(e) => tracing::warn!(error = %e, "cannot checkpoint the database at shutdown"),
    }
    tracing::info!("stopped");
    Ok(())
}

/// `posbridge adopt-journals`: with the daemon stopped, records what the terminals' journals
/// name and the database does not know, so the daemon starts again: an adopted sale is
/// recovered from its terminal when the Gateway repeats its Create, never charged again.
pub async fn adopt_journals(config: Config) -> anyhow::Result<crate::pos::Reconciled> {
    let _writer = crate::store::lock_writer(&config.storage.path)?;
    let store = Store::open(&config.storage.path)?;
    let clock: SharedClock = Arc::new(SystemClock);
    // No worker delivers here: the callbacks it queues go out when the daemon starts.
    let outbox = Outbox::new(store.clone());
    let terminals = open_terminals(&config, clock.clone())?;
    let engine = Engine::new(
        &config,
        store.clone(),
        outbox,
        clock,
        Arc::new(ppp::operations::PppAnswers),
        terminals,
    )?;
    let reconciled = engine
        .reconcile_journals(true, engine.journal_horizon_ms())
        .await?;
    store.checkpoint().await?;
    Ok(reconciled)
}

/// Starts each configured terminal (its journal beside the database).
fn open_terminals(config: &Config, clock: SharedClock) -> Result<Terminals, OpenError> {
    let mut terminals = Terminals::default();
    for t in &config.terminals {
        terminals.open(
            &t.id,
            &t.serial_number,
            Duration::from_secs(t.result_timeout_s),
            &t.protocol,
            &config.storage.path,
            clock.clone(),
        )?;
    }
    Ok(terminals)
}

/// Deletes what the retention period no longer allows, at start and then hourly.
async fn purge_old_data(
    store: Store,
    clock: SharedClock,
    retain_days: u32,
    stop: CancellationToken,
) {
    const EVERY: Duration = Duration::from_secs(3600);
    loop {
        let cutoff = clock.now_ms() - i64::from(retain_days) * 86_400_000;
        match store
            .call(move |c| crate::store::maintenance::purge(c, cutoff))
            .await
        {
            Ok(purged) if purged.payments + purged.callbacks > 0 => tracing::info!(
                payments = purged.payments,
                callbacks = purged.callbacks,
                retain_days,
                "purged data past the retention period"
            ),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "retention purge failed"),
        }
        tokio::select! {
            () = tokio::time::sleep(EVERY) => {}
            () = stop.cancelled() => return,
        }
    }
}

/// Cancels the returned token on SIGTERM or SIGINT.
pub fn shutdown_on_signals() -> anyhow::Result<CancellationToken> {
    use tokio::signal::unix::{SignalKind, signal};
    let token = CancellationToken::new();
    let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    let cancel = token.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = int.recv() => tracing::info!("SIGINT: shutting down"),
        }
        cancel.cancel();
    });
    Ok(token)
}
