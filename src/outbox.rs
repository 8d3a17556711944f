//! Durable callback delivery. Rows are written by the engine in the same transaction as the
//! result they carry; this worker POSTs them to the stored `callbackUrl`, verbatim, with the
//! partner key pair, retrying on a growing schedule until delivered or given up. A callback
//! waits while a Create call for its payment is still being answered.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::clock::SharedClock;
use crate::config::CallbackConfig;
use crate::pos::InFlight;
use crate::secret::Secret;
use crate::store::outbox::{self, Callback};
use crate::store::{Store, StoreError};

/// Delivers one callback; `Err` carries why it failed (no URL query, no secrets).
pub trait CallbackSender: Send + Sync + 'static {
    fn send(&self, url: &str, body: &str) -> impl Future<Output = Result<(), String>> + Send;
}

/// Posts callbacks over HTTP(S) with the partner's VTEX key pair.
pub struct HttpSender {
    client: reqwest::Client,
    app_key: String,
    app_token: Secret,
}

impl HttpSender {
    pub fn new(
        app_key: &str,
        app_token: Secret,
        timeout: Duration,
    ) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .tls_version_min(reqwest::tls::Version::TLS_1_2)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            client,
            app_key: app_key.to_string(),
            app_token,
        })
    }
}

impl CallbackSender for HttpSender {
    async fn send(&self, url: &str, body: &str) -> Result<(), String> {
        let response = self
            .client
            .post(url)
            .header("Content-Type", "application/json")
            .header("Accept", "application/json")
            .header("X-VTEX-API-AppKey", &self.app_key)
            .header("X-VTEX-API-AppToken", self.app_token.expose())
            .body(body.to_string())
            .send()
            .await
            // Without the URL: it carries the X-VTEX-signature.
            .map_err(|e| describe_error(&e))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("the Gateway answered HTTP {}", status.as_u16()))
        }
    }
}

fn describe_error(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else if e.is_builder() {
        "invalid callback URL"
    } else {
        "request failed"
    };
    // The innermost cause says what went wrong; reqwest's own text would include the URL.
    let mut cause = String::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        cause = s.to_string();
        source = s.source();
    }
    format!("{kind}: {cause}")
}

/// The wait before retry number `failures + 1`: `first_retry_s` doubling up to `max_interval_s`.
pub fn retry_delay(config: &CallbackConfig, failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(32);
    let seconds = config
        .first_retry_s
        .saturating_mul(1u64 << exponent)
        .min(config.max_interval_s);
    Duration::from_secs(seconds)
}

pub struct OutboxWorker<S> {
    pub store: Store,
    pub clock: SharedClock,
    pub config: CallbackConfig,
    pub sender: S,
    pub inflight: Arc<InFlight>,
    pub wake: Arc<Notify>,
}

/// How often to look again while nothing is due (a safety net for missed wake-ups).
const IDLE_POLL: Duration = Duration::from_secs(30);

impl<S: CallbackSender> OutboxWorker<S> {
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            let wait = match self.deliver_due().await {
                Ok(wait) => wait,
                Err(e) => {
                    tracing::error!(error = %e, "callback outbox: database error");
                    Duration::from_secs(1)
                }
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.wake.notified() => {}
                () = self.inflight.released() => {}
                () = shutdown.cancelled() => return,
            }
        }
    }

    /// Delivers every due callback once; returns how long to wait before looking again.
    pub async fn deliver_due(&self) -> Result<Duration, StoreError> {
        let now = self.clock.now_ms();
        let due = self.store.call(move |c| outbox::due(c, now, 64)).await?;
        let mut held_back = false;
        for callback in due {
            if self.inflight.is_in_flight(&callback.payment_id) {
                held_back = true;
                continue;
            }
            self.attempt(callback).await?;
        }
        if held_back {
            return Ok(Duration::from_millis(50));
        }
        let next = self.store.call(outbox::next_due_at).await?;
        let now = self.clock.now_ms();
        Ok(match next {
            Some(at) => Duration::from_millis(u64::try_from(at - now).unwrap_or(0)).min(IDLE_POLL),
            None => IDLE_POLL,
        })
    }

    async fn attempt(&self, callback: Callback) -> Result<(), StoreError> {
        // Instrumented, never entered across an await: entered, the span would stay on the
        // thread where the task paused and name this payment on other tasks' lines.
        let span = tracing::info_span!("callback", payment_id = %callback.payment_id, attempt = callback.attempts + 1);
        self.send_and_record(callback).instrument(span).await
    }

    async fn send_and_record(&self, callback: Callback) -> Result<(), StoreError> {
        let result = self.sender.send(&callback.url, &callback.body).await;
        let now = self.clock.now_ms();
        let id = callback.id;
        match result {
            Ok(()) => {
                self.store
                    .call(move |c| outbox::delivered(c, id, now))
                    .await?;
                crate::observability::callback_attempt("delivered");
                tracing::info!("callback delivered");
            }
            Err(why) => {
                let failures = callback.attempts + 1;
                let age_ms = now - callback.created_at;
                let give_up_ms = i64::try_from(self.config.give_up_after_s.saturating_mul(1000))
                    .unwrap_or(i64::MAX);
                let next = (age_ms < give_up_ms).then(|| {
                    let delay = i64::try_from(retry_delay(&self.config, failures).as_millis())
                        .unwrap_or(i64::MAX);
                    now.saturating_add(delay)
                });
                let reason = why.clone();
                self.store
                    .call(move |c| outbox::failed(c, id, next, &reason))
                    .await?;
                crate::observability::callback_attempt(if next.is_some() {
                    "retry"
                } else {
                    "given_up"
                });
                match next {
                    Some(at) => {
                        tracing::warn!(error = %why, retry_in_ms = at - now, "callback failed; will retry")
                    }
                    None => {
                        tracing::error!(error = %why, attempts = failures, "ALARM: giving up on a callback; the Gateway never learned this result")
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::clock::{Clock, TokioClock};
    use crate::pos::state::PaymentState;
    use crate::store::payments;

    #[test]
    fn retry_schedule_doubles_up_to_the_cap() {
        let c = CallbackConfig {
            first_retry_s: 5,
            max_interval_s: 60,
            give_up_after_s: 1000,
            request_timeout_s: 1,
        };
        let delays: Vec<u64> = (1..=6).map(|n| retry_delay(&c, n).as_secs()).collect();
        assert_eq!(delays, [5, 10, 20, 40, 60, 60]);
        assert_eq!(retry_delay(&c, 100).as_secs(), 60);
    }

    /// A Gateway that fails the first `failures` attempts and records when each came.
    struct FlakyGateway {
        failures: usize,
        start: tokio::time::Instant,
        attempts: Arc<Mutex<Vec<u64>>>,
    }

    impl CallbackSender for FlakyGateway {
        async fn send(&self, _url: &str, _body: &str) -> Result<(), String> {
            let mut attempts = self.attempts.lock().expect("lock");
            attempts.push(self.start.elapsed().as_secs());
            if attempts.len() <= self.failures {
                Err("HTTP 503".into())
            } else {
                Ok(())
            }
        }
    }

    async fn store_with_callback(dir: &std::path::Path, clock: &TokioClock) -> Store {
        let store = Store::open_inline(&dir.join("outbox.db")).expect("open");
        let now = clock.now_ms();
        store
            .call(move |c| {
                let mut p = payments::test_payment("p1", PaymentState::Approved);
                p.amount_minor = 100;
                payments::insert(c, &p, now)?;
                outbox::enqueue(c, "p1", &p.callback_url, "{}", now)
            })
            .await
            .expect("seed");
        store
    }

    fn worker(
        store: Store,
        clock: TokioClock,
        failures: usize,
        give_up_after_s: u64,
    ) -> (OutboxWorker<FlakyGateway>, Arc<Mutex<Vec<u64>>>) {
        let attempts = Arc::new(Mutex::new(Vec::new()));
        let worker = OutboxWorker {
            store,
            clock: Arc::new(clock),
            config: CallbackConfig {
                first_retry_s: 5,
                max_interval_s: 60,
                give_up_after_s,
                request_timeout_s: 1,
            },
            sender: FlakyGateway {
                failures,
                start: tokio::time::Instant::now(),
                attempts: attempts.clone(),
            },
            inflight: Arc::new(InFlight::default()),
            wake: Arc::new(Notify::new()),
        };
        (worker, attempts)
    }

    #[tokio::test(start_paused = true)]
    async fn retries_on_the_schedule_and_gives_up_after_the_limit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = TokioClock::starting_at(1_700_000_000_000);
        let store = store_with_callback(dir.path(), &clock).await;
        let (worker, attempts) = worker(store.clone(), clock, usize::MAX, 300);
        let stop = CancellationToken::new();
        let task = tokio::spawn(worker.run(stop.clone()));
        tokio::time::sleep(Duration::from_secs(3_600)).await;
        stop.cancel();
        task.await.expect("join");
        // 5 s doubling to the 60 s cap; the attempt at 315 s is past the 300 s limit: give up.
        assert_eq!(
            *attempts.lock().expect("lock"),
            [0, 5, 15, 35, 75, 135, 195, 255, 315]
        );
        let states = store
            .call(|c| outbox::states_of(c, "p1"))
            .await
            .expect("states");
        assert_eq!(states, [("given_up".to_string(), 9)]);
    }

    #[tokio::test(start_paused = true)]
    async fn delivers_after_failures_and_never_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = TokioClock::starting_at(1_700_000_000_000);
        let store = store_with_callback(dir.path(), &clock).await;
        let (worker, attempts) = worker(store.clone(), clock, 2, 300);
        let stop = CancellationToken::new();
        let task = tokio::spawn(worker.run(stop.clone()));
        tokio::time::sleep(Duration::from_secs(3_600)).await;
        stop.cancel();
        task.await.expect("join");
        assert_eq!(*attempts.lock().expect("lock"), [0, 5, 15]);
        let states = store
            .call(|c| outbox::states_of(c, "p1"))
            .await
            .expect("states");
        assert_eq!(states, [("delivered".to_string(), 3)]);
    }

    #[tokio::test(start_paused = true)]
    async fn holds_a_callback_while_its_create_is_being_answered() {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = TokioClock::starting_at(1_700_000_000_000);
        let store = store_with_callback(dir.path(), &clock).await;
        let (worker, attempts) = worker(store, clock, 0, 300);
        let guard = worker.inflight.enter("p1");
        worker.deliver_due().await.expect("deliver");
        assert!(
            attempts.lock().expect("lock").is_empty(),
            "sent while the Create answer was in flight"
        );
        drop(guard);
        worker.deliver_due().await.expect("deliver");
        assert_eq!(attempts.lock().expect("lock").len(), 1);
    }
}
