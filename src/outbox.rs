//! Durable callback delivery. Rows are written by the engine in the same transaction as the
//! result they carry; this worker POSTs them to the stored `callbackUrl`, verbatim, with the
//! partner key pair, retrying on a growing schedule until delivered or given up. A callback
//! waits while a Create call for its payment is still being answered.
//!
//! Attempts run concurrently, bounded in all and per target (`host:port`), so a host that never
//! answers holds back only the callbacks to it; a payment has one attempt at a time.
//!
//! * `handle`: the [`Outbox`] the engine and store IT hold (enqueue, hold, wake, re-deliver).
//! * `gate`: the Create answers in flight that hold callbacks back.

mod gate;
mod handle;

pub use gate::InFlightGuard;
pub use handle::{Outbox, Redeliver, Redelivered};

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::{Id as TaskId, JoinError, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::clock::SharedClock;
use crate::config::CallbackConfig;
use crate::locale::StoreTime;
use crate::secret::Secret;
use crate::store::StoreError;
use crate::store::alarms::{self, AlarmKind};
use crate::store::outbox::{self, Callback};
use crate::store::payments;

/// Delivers one callback.
pub trait CallbackSender: Send + Sync + 'static {
    fn send(&self, url: &str, body: &str) -> impl Future<Output = Result<(), SendError>> + Send;
}

/// Why a callback attempt failed, as stored with the callback and shown to people. A request
/// failure keeps only the innermost cause's text: reqwest's own would include the URL, whose
/// query carries the X-VTEX-signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("timed out: {0}")]
    TimedOut(String),
    #[error("cannot connect: {0}")]
    CannotConnect(String),
    #[error("invalid callback URL: {0}")]
    InvalidUrl(String),
    #[error("request failed: {0}")]
    RequestFailed(String),
    #[error("the Gateway answered HTTP {0}")]
    Refused(u16),
}

impl From<&reqwest::Error> for SendError {
    fn from(e: &reqwest::Error) -> Self {
        // The innermost cause says what went wrong.
        let mut cause = String::new();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            cause = s.to_string();
            source = s.source();
        }
        if e.is_timeout() {
            SendError::TimedOut(cause)
        } else if e.is_connect() {
            SendError::CannotConnect(cause)
        } else if e.is_builder() {
            SendError::InvalidUrl(cause)
        } else {
            SendError::RequestFailed(cause)
        }
    }
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
    async fn send(&self, url: &str, body: &str) -> Result<(), SendError> {
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
            .map_err(|e| SendError::from(&e))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(SendError::Refused(status.as_u16()))
        }
    }
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
    /// The handle whose wake-ups and gate this worker follows.
    pub outbox: Outbox,
    pub clock: SharedClock,
    pub config: CallbackConfig,
    pub sender: S,
    /// The store's time zone, for the alarm people read when a callback is given up.
    pub time: StoreTime,
}

impl<S> OutboxWorker<S> {
    /// The same worker with another way to send (HTTP to the Gateway, or the relay tier).
    pub fn with_sender<T>(self, sender: T) -> OutboxWorker<T> {
        OutboxWorker {
            outbox: self.outbox,
            clock: self.clock,
            config: self.config,
            sender,
            time: self.time,
        }
    }
}

/// Callback attempts in flight at once, over all targets.
pub const MAX_ATTEMPTS_IN_FLIGHT: usize = 64;
/// Callback attempts in flight at once to one `host:port`: a host that never answers takes at
/// most this many, and the other targets keep the rest. Sized for one Gateway: an attempt
/// holds its place for the POST and the commit that records it (tens of ms under load), and at
/// 4 places the callbacks of a busy store queued for seconds (docs/performance.md).
pub const MAX_ATTEMPTS_PER_TARGET: usize = 32;
/// Due callbacks read per query.
const DUE_PAGE: u32 = 64;
/// How often to look again while nothing is due (a safety net for missed wake-ups).
const IDLE_POLL: Duration = Duration::from_secs(30);
/// The pause after a database error.
const DATABASE_RETRY: Duration = Duration::from_secs(1);

impl<S: CallbackSender> OutboxWorker<S> {
    /// Delivers callbacks as they fall due, each attempt in its own task, until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let worker = Arc::new(self);
        // Dropped on return, which aborts the attempts in flight: their callbacks stay pending
        // and go out again after the restart (at least once, as after a crash).
        let mut attempts = Attempts::default();
        loop {
            let wait = match worker.start_due(&mut attempts).await {
                Ok(wait) => wait,
                Err(e) => {
                    tracing::error!(error = %e, "callback outbox: database error");
                    DATABASE_RETRY
                }
            };
            tokio::select! {
                Some(ended) = attempts.next_ended() => attempts.release(ended),
                () = tokio::time::sleep(wait) => {}
                () = worker.outbox.woken().notified() => {}
                () = worker.outbox.gate().released() => {}
                () = shutdown.cancelled() => return,
            }
        }
    }

    /// Starts an attempt for every due callback the bounds allow; returns how long to wait
    /// before looking again, unless an attempt ending or a wake-up comes first.
    async fn start_due(self: &Arc<Self>, attempts: &mut Attempts) -> Result<Duration, StoreError> {
        // Handed over after their commit: started without a read, or kept in memory until
        // their payment's release or a free place lets them start (a look leaves them to
        // this). One a look has already had (started, held back or left for lack of room) is
        // the look's: a look that began after its commit may come before its hand-over, and
        // its attempt may have ended since.
        let handed = attempts.take_waiting().chain(self.outbox.take_handed());
        for callback in handed.collect::<Vec<_>>() {
            if !attempts.looked_at(callback.id)
                && let Some(waits) = self.try_start(callback, attempts)
            {
                attempts.wait(waits);
            }
        }
        let now = self.clock.now_ms();
        let mut after = outbox::FIRST_DUE;
        // When the next callback not yet due falls due: read with each page, in the same read
        // (a look costs one read, not two). Reads go beside the writer, never queued behind
        // the Creates' commits: a look that began before an attempt's delivery was recorded
        // may still list that callback, but its payment's attempt is not released until the
        // look is over (`Attempts::may_start` refuses it), and the next look sees the record.
        let mut next = None;
        let mut looked = false;
        // Page on while there is room: callbacks queued behind a busy target's get their turn.
        while attempts.have_room() {
            let (page, next_due) = self
                .outbox
                .store()
                .read(move |c| {
                    Ok((
                        outbox::due(c, now, after, DUE_PAGE)?,
                        outbox::next_due_after(c, now)?,
                    ))
                })
                .await?;
            (next, looked) = (next_due, true);
            let Some(last) = page.last() else { break };
            after = (last.next_attempt_at, last.id);
            let last_page = page.len() < DUE_PAGE as usize;
            for callback in page {
                if attempts.is_waiting(callback.id) {
                    continue;
                }
                if callback.attempts == 0 {
                    attempts.note_looked_at(callback.id);
                }
                // One that cannot start now is found by the next look.
                let _ = self.try_start(callback, attempts);
            }
            if last_page {
                break;
            }
        }
        // Due callbacks that could not start wait for an attempt to end, not for a timer.
        if !looked {
            next = self
                .outbox
                .store()
                .read(move |c| outbox::next_due_after(c, now))
                .await?;
        }
        let now = self.clock.now_ms();
        Ok(match next {
            Some(at) => Duration::from_millis(u64::try_from(at - now).unwrap_or(0)).min(IDLE_POLL),
            None => IDLE_POLL,
        })
    }

    /// Starts an attempt for `callback` if the bounds allow and no Create answer for its
    /// payment is in flight (that payment's release wakes the worker: `InFlight::released`;
    /// an attempt ending wakes it too). The callback back when it could not start.
    fn try_start(
        self: &Arc<Self>,
        callback: Callback,
        attempts: &mut Attempts,
    ) -> Option<Callback> {
        if self.outbox.gate().hold_back(&callback.payment_id) {
            return Some(callback);
        }
        let target = callback.url.as_deref().map(target_of).unwrap_or_default();
        if !attempts.may_start(&callback.payment_id, &target) {
            return Some(callback);
        }
        // Instrumented, never entered across an await: entered, the span would stay on the
        // thread where the task paused and name this payment on other lines.
        let span = tracing::info_span!("callback", payment_id = %callback.payment_id, attempt = callback.attempts + 1);
        let payment_id = callback.payment_id.clone();
        let attempt = self.clone().attempt(callback).instrument(span);
        attempts.start(payment_id, target, attempt);
        None
    }

    /// One attempt, in its own task.
    async fn attempt(self: Arc<Self>, callback: Callback) {
        if let Err(e) = self.send_and_record(callback).await {
            tracing::error!(error = %e, "callback outbox: database error");
            // Keeps its place a moment: the callback is not sent again at once.
            tokio::time::sleep(DATABASE_RETRY).await;
        }
    }

    async fn send_and_record(&self, callback: Callback) -> Result<(), StoreError> {
        let Some(url) = callback.url.as_deref() else {
            return self.give_up_unreadable(&callback).await;
        };
        let started = self.clock.now_ms();
        let result = self.sender.send(url, &callback.body).await;
        let now = self.clock.now_ms();
        let id = callback.id;
        match result {
            Ok(()) => {
                crate::failpoint::hit("after-callback-delivered");
                self.outbox
                    .store()
                    .call(move |c| {
                        outbox::delivered(c, id, now)?;
                        alarms::clear_subject(c, AlarmKind::CallbackGivenUp, &id.to_string(), now)
                    })
                    .await?;
                crate::observability::callback_attempt("delivered");
                // Where a callback's time went: queued (its result's commit → this attempt),
                // the POST, and recording it delivered (the slot is held until then).
                tracing::info!(
                    queued_ms = started - callback.next_attempt_at.max(callback.created_at),
                    send_ms = now - started,
                    mark_ms = self.clock.now_ms() - now,
                    "callback delivered"
                );
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
                let reason = why.to_string();
                let time = self.time.clone();
                let (payment_id, body, since) = (
                    callback.payment_id.clone(),
                    callback.body.clone(),
                    callback.created_at,
                );
                self.outbox
                    .store()
                    .call(move |c| {
                        if next.is_some() {
                            return outbox::failed(c, id, next, &reason);
                        }
                        let text = given_up_text(
                            c,
                            &payment_id,
                            id,
                            &body,
                            failures,
                            since,
                            &reason,
                            &time,
                            now,
                        )?;
                        give_up(c, id, &payment_id, &reason, &text, now)
                    })
                    .await?;
                match next {
                    Some(at) => {
                        crate::observability::callback_attempt("retry");
                        tracing::warn!(error = %why, retry_in_ms = at - now, "callback failed; will retry")
                    }
                    None => announce_given_up(&why.to_string(), failures),
                }
            }
        }
        Ok(())
    }
}

impl<S: CallbackSender> OutboxWorker<S> {
    /// Gives up at once a callback whose sealed address cannot be opened (the database was
    /// restored without its key file): no attempt could ever reach the Gateway.
    async fn give_up_unreadable(&self, callback: &Callback) -> Result<(), StoreError> {
        const REASON: &str = "the callback address cannot be read: restored without its key file";
        let now = self.clock.now_ms();
        let (id, payment_id) = (callback.id, callback.payment_id.clone());
        self.outbox
            .store()
            .call(move |c| {
                let shown = payments::get(c, &payment_id)?
                    .map_or_else(|| payment_id.clone(), |p| p.vtex_payment_id().to_string());
                let text = format!(
                    "The callback address of payment {shown} cannot be read: the database was restored without its key file (the database's file name with .key). The Gateway gets the answer on its next Create. Copy the key file with every backup (see the operator guide, docs/operator-guide.md, \"Backup and restore\")."
                );
                give_up(c, id, &payment_id, REASON, &text, now)
            })
            .await?;
        announce_given_up(REASON, callback.attempts);
        Ok(())
    }
}

/// Gives a callback up: marks it so and raises the alarm a person acts on, in one transaction.
/// Every give-up comes here (the retry limit, an address that cannot be read).
fn give_up(
    c: &rusqlite::Connection,
    callback_id: i64,
    payment_id: &str,
    reason: &str,
    alarm_text: &str,
    now: i64,
) -> Result<(), StoreError> {
    outbox::failed(c, callback_id, None, reason)?;
    alarms::raise(
        c,
        AlarmKind::CallbackGivenUp,
        Some(payment_id),
        Some(&callback_id.to_string()),
        alarm_text,
        now,
    )?;
    Ok(())
}

/// The metric and the log line of a callback given up (inside its `callback` span, which names
/// the payment).
fn announce_given_up(reason: &str, attempts: u32) {
    crate::observability::callback_attempt("given_up");
    tracing::error!(
        error = reason,
        attempts,
        "ALARM: giving up on a callback; the Gateway learns the result only when it asks again"
    );
}

/// What the alarm of a callback given up says: plain words and the next step.
#[allow(clippy::too_many_arguments)]
fn given_up_text(
    c: &rusqlite::Connection,
    payment_id: &str,
    callback_id: i64,
    body: &str,
    attempts: u32,
    since: i64,
    last_error: &str,
    time: &StoreTime,
    now: i64,
) -> Result<String, StoreError> {
    let status = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|b| b["status"].as_str().map(str::to_string))
        .unwrap_or_else(|| "final".into());
    let (shown_id, amount) = match payments::get(c, payment_id)? {
        Some(p) => (
            p.vtex_payment_id().to_string(),
            crate::locale::money(&p.currency, p.amount_minor),
        ),
        None => (payment_id.to_string(), "amount unknown".to_string()),
    };
    Ok(format!(
        "The Gateway never accepted the {status} result of payment {shown_id} ({amount}) after {attempts} attempts since {w} (last: {last_error}). Check the partner key pair ([vtex] callback_app_key and callback_app_token) and that this box reaches the Gateway, then re-deliver it (posbridge callbacks retry {callback_id}). The Gateway also learns the result when it asks again. This clears by itself once it is delivered.",
        w = time.when(since, now),
    ))
}

/// The `host:port` a callback goes to, as the per-target bound counts it. Create accepts only
/// http(s) URLs; anything unparsable shares one target (and fails at once).
fn target_of(url: &str) -> String {
    reqwest::Url::parse(url)
        .ok()
        .and_then(|u| Some(format!("{}:{}", u.host_str()?, u.port_or_known_default()?)))
        .unwrap_or_default()
}

/// The attempts in flight, each in its own task: at most [`MAX_ATTEMPTS_IN_FLIGHT`],
/// [`MAX_ATTEMPTS_PER_TARGET`] per target, and one per payment, so a callback is never attempted
/// twice at the same time and a payment's callbacks go out one after the other, in the order
/// they fall due.
#[derive(Default)]
struct Attempts {
    tasks: JoinSet<()>,
    running: HashMap<TaskId, Running>,
    /// Callbacks never attempted that a look has found, the latest [`LOOKED_AT_KEPT`]: their
    /// hand-over, if it comes later, is not started again.
    looked_at: HashSet<i64>,
    looked_at_order: VecDeque<i64>,
    /// Handed-over callbacks that could not start yet, tried again at every look (at most
    /// [`WAITING_KEPT`]; the rest are left to the looks).
    waiting: Vec<Callback>,
}

/// Handed-over callbacks kept waiting in memory at most (about 1 KiB each).
const WAITING_KEPT: usize = 1024;

/// New callbacks remembered as found by a look: a hand-over follows its commit by
/// milliseconds, while thousands of callbacks are queued in the meantime only on a busy
/// gateway's worst day.
const LOOKED_AT_KEPT: usize = 4096;

/// What a running attempt is for.
struct Running {
    payment_id: String,
    target: String,
}

impl Attempts {
    fn note_looked_at(&mut self, callback_id: i64) {
        if self.looked_at.insert(callback_id) {
            self.looked_at_order.push_back(callback_id);
            if self.looked_at_order.len() > LOOKED_AT_KEPT
                && let Some(oldest) = self.looked_at_order.pop_front()
            {
                self.looked_at.remove(&oldest);
            }
        }
    }

    fn looked_at(&self, callback_id: i64) -> bool {
        self.looked_at.contains(&callback_id)
    }

    fn wait(&mut self, callback: Callback) {
        // Beyond the bound it is left to the looks, which find its row.
        if self.waiting.len() < WAITING_KEPT {
            self.waiting.push(callback);
        }
    }

    fn take_waiting(&mut self) -> std::vec::IntoIter<Callback> {
        std::mem::take(&mut self.waiting).into_iter()
    }

    fn is_waiting(&self, callback_id: i64) -> bool {
        self.waiting.iter().any(|w| w.id == callback_id)
    }

    fn have_room(&self) -> bool {
        self.running.len() < MAX_ATTEMPTS_IN_FLIGHT
    }

    fn may_start(&self, payment_id: &str, target: &str) -> bool {
        let on_target = self.running.values().filter(|r| r.target == target).count();
        self.have_room()
            && on_target < MAX_ATTEMPTS_PER_TARGET
            && !self.running.values().any(|r| r.payment_id == payment_id)
    }

    fn start(
        &mut self,
        payment_id: String,
        target: String,
        attempt: impl Future<Output = ()> + Send + 'static,
    ) {
        let task = self.tasks.spawn(attempt);
        self.running
            .insert(task.id(), Running { payment_id, target });
    }

    /// The next attempt to end; `None` while none runs.
    async fn next_ended(&mut self) -> Option<Result<(TaskId, ()), JoinError>> {
        self.tasks.join_next_with_id().await
    }

    /// Frees the place of the attempt that `ended`, and of every other that ended since. Only
    /// here, between two looks at the outbox: a look never finds a callback free while the rows
    /// it read may predate that callback's outcome, so a delivered one is not sent again.
    fn release(&mut self, ended: Result<(TaskId, ()), JoinError>) {
        self.forget(ended);
        while let Some(ended) = self.tasks.try_join_next_with_id() {
            self.forget(ended);
        }
    }

    fn forget(&mut self, ended: Result<(TaskId, ()), JoinError>) {
        let task = match ended {
            Ok((task, ())) => task,
            Err(e) => {
                tracing::error!(error = %e, "a callback attempt panicked");
                e.id()
            }
        };
        self.running.remove(&task);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::clock::{Clock, TokioClock};
    use crate::payment::PaymentState;
    use crate::store::Store;
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

    #[tokio::test]
    async fn the_http_sender_says_why_without_the_callback_url() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let (mut socket, _) = listener.accept().await.expect("accept");
            let mut request = [0u8; 4096];
            let _ = socket.read(&mut request).await;
            let answer = "HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";
            socket.write_all(answer.as_bytes()).await.expect("write");
        });
        let sender =
            HttpSender::new("key", Secret::new("token"), Duration::from_secs(5)).expect("client");
        let refused = sender
            .send(&format!("http://{addr}/cb?X-VTEX-signature=sig"), "{}")
            .await;
        assert_eq!(refused, Err(SendError::Refused(503)));
        assert_eq!(
            refused.map_err(|e| e.to_string()),
            Err("the Gateway answered HTTP 503".to_string())
        );
        // Nothing listens there any more: the text names the cause, never the URL.
        let unreachable = sender
            .send(&format!("http://{addr}/cb?X-VTEX-signature=sig"), "{}")
            .await;
        let Err(why @ SendError::CannotConnect(_)) = unreachable else {
            panic!("expected a connection failure, got {unreachable:?}");
        };
        assert!(why.to_string().starts_with("cannot connect: "), "{why}");
        assert!(!why.to_string().contains("sig"), "{why}");
    }

    /// A Gateway that fails the first `failures` attempts and records when each came.
    struct FlakyGateway {
        failures: usize,
        start: tokio::time::Instant,
        attempts: Arc<Mutex<Vec<u64>>>,
    }

    impl CallbackSender for FlakyGateway {
        async fn send(&self, _url: &str, _body: &str) -> Result<(), SendError> {
            let mut attempts = self.attempts.lock().expect("lock");
            attempts.push(self.start.elapsed().as_secs());
            if attempts.len() <= self.failures {
                Err(SendError::Refused(503))
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
        let sender = FlakyGateway {
            failures,
            start: tokio::time::Instant::now(),
            attempts: attempts.clone(),
        };
        (worker_with(store, clock, give_up_after_s, sender), attempts)
    }

    fn worker_with<S>(
        store: Store,
        clock: TokioClock,
        give_up_after_s: u64,
        sender: S,
    ) -> OutboxWorker<S> {
        OutboxWorker {
            outbox: Outbox::new(store),
            clock: Arc::new(clock),
            config: CallbackConfig {
                first_retry_s: 5,
                max_interval_s: 60,
                give_up_after_s,
                request_timeout_s: 1,
            },
            sender,
            time: StoreTime::utc(),
        }
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
    async fn a_callback_whose_address_cannot_be_read_is_given_up_with_an_alarm() {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = TokioClock::starting_at(1_700_000_000_000);
        drop(store_with_callback(dir.path(), &clock).await);
        // Restored elsewhere without its key file: a new key cannot open the address.
        std::fs::remove_file(dir.path().join("outbox.db.key")).expect("remove the key");
        let store = Store::open_inline(&dir.path().join("outbox.db")).expect("reopen");
        let (worker, attempts) = worker(store.clone(), clock, 0, 300);
        let stop = CancellationToken::new();
        let task = tokio::spawn(worker.run(stop.clone()));
        tokio::time::sleep(Duration::from_secs(60)).await;
        stop.cancel();
        task.await.expect("join");
        assert!(attempts.lock().expect("lock").is_empty(), "never sent");
        let (states, alarms) = store
            .call(|c| Ok((outbox::states_of(c, "p1")?, alarms::open(c)?)))
            .await
            .expect("read");
        assert_eq!(states, [("given_up".to_string(), 1)]);
        assert_eq!(alarms.len(), 1);
        assert_eq!(alarms[0].kind, AlarmKind::CallbackGivenUp);
        assert!(
            alarms[0].text.starts_with("The callback address of payment p1 cannot be read: the database was restored without its key file")
                && alarms[0].text.contains("The Gateway gets the answer on its next Create"),
            "{}",
            alarms[0].text
        );
    }

    /// A Gateway that answers 500 until `outage` has passed, then 200; records every attempt.
    struct Outage {
        outage: Duration,
        start: tokio::time::Instant,
        attempts: Arc<Mutex<Vec<(u64, bool)>>>,
    }

    impl CallbackSender for Outage {
        async fn send(&self, _url: &str, _body: &str) -> Result<(), SendError> {
            let elapsed = self.start.elapsed();
            let up = elapsed >= self.outage;
            self.attempts
                .lock()
                .expect("lock")
                .push((elapsed.as_secs(), up));
            if up {
                Ok(())
            } else {
                Err(SendError::Refused(500))
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_gateway_failing_for_an_hour_gets_the_callback_within_a_retry_interval_of_recovering()
    {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = TokioClock::starting_at(1_700_000_000_000);
        let store = store_with_callback(dir.path(), &clock).await;
        let attempts = Arc::new(Mutex::new(Vec::new()));
        let sender = Outage {
            outage: Duration::from_secs(3_600),
            start: tokio::time::Instant::now(),
            attempts: attempts.clone(),
        };
        let worker = worker_with(store.clone(), clock, 86_400, sender);
        let stop = CancellationToken::new();
        let task = tokio::spawn(worker.run(stop.clone()));
        tokio::time::sleep(Duration::from_secs(3 * 3_600)).await;
        stop.cancel();
        task.await.expect("join");
        let attempts = attempts.lock().expect("lock").clone();
        // Never more than the 60 s cap between two attempts, never a storm, one delivery and
        // nothing after it.
        let times: Vec<u64> = attempts.iter().map(|(at, _)| *at).collect();
        assert!(times.windows(2).all(|w| w[1] - w[0] <= 60), "{times:?}");
        assert!(
            attempts.len() < 3_600 / 60 + 10,
            "{} attempts",
            attempts.len()
        );
        let (last_at, delivered) = *attempts.last().expect("attempts");
        assert!(
            delivered && (3_600..=3_660).contains(&last_at),
            "{attempts:?}"
        );
        assert_eq!(attempts.iter().filter(|(_, up)| *up).count(), 1);
        let states = store
            .call(|c| outbox::states_of(c, "p1"))
            .await
            .expect("states");
        let count = u32::try_from(attempts.len()).expect("a few attempts");
        assert_eq!(states, [("delivered".to_string(), count)]);
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

    /// Queues payment `id`'s callback, its row made due only in an hour: what the hand-over
    /// gives the worker is the only way it can start now.
    async fn queued_not_due(store: &Store, id: &'static str, now: i64) -> Callback {
        store
            .call(move |c| {
                let p = payments::test_payment(id, PaymentState::Approved);
                payments::insert(c, &p, now)?;
                let queued = Outbox::enqueue(c, id, &p.callback_url, "{}", now)?;
                c.execute(
                    "UPDATE outbox SET next_attempt_at = ?2 WHERE id = ?1",
                    rusqlite::params![queued.id, now + 3_600_000],
                )?;
                Ok(queued)
            })
            .await
            .expect("queued")
    }

    #[tokio::test(start_paused = true)]
    async fn a_handed_over_callback_starts_without_a_look_and_once_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = TokioClock::starting_at(1_700_000_000_000);
        let store = store_with_callback(dir.path(), &clock).await;
        let now = clock.now_ms();
        // p2's row says "not due for an hour": only its hand-over can start it now.
        let handed = queued_not_due(&store, "p2", now).await;
        let (worker, attempts) = worker(store.clone(), clock, 0, 300);
        let outbox = worker.outbox.clone();
        let stop = CancellationToken::new();
        let task = tokio::spawn(worker.run(stop.clone()));
        // p1 is due: a look finds it and delivers it.
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(attempts.lock().expect("lock").len(), 1, "p1 by a look");
        outbox.hand_over(handed);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(
            attempts.lock().expect("lock").len(),
            2,
            "p2 by its hand-over"
        );
        // A hand-over that comes after a look had its callback (here: p1's, delivered) is
        // not sent again.
        outbox.hand_over(Callback {
            id: 1,
            payment_id: "p1".into(),
            url: Some("http://127.0.0.1:9/cb".into()),
            body: "{}".into(),
            attempts: 0,
            created_at: now,
            next_attempt_at: now,
        });
        tokio::time::sleep(Duration::from_secs(60)).await;
        stop.cancel();
        task.await.expect("join");
        assert_eq!(attempts.lock().expect("lock").len(), 2, "sent twice");
        let states = store
            .call(|c| Ok((outbox::states_of(c, "p1")?, outbox::states_of(c, "p2")?)))
            .await
            .expect("states");
        assert_eq!(
            states,
            (
                vec![("delivered".to_string(), 1)],
                vec![("delivered".to_string(), 1)]
            )
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_handed_over_callback_held_back_starts_at_its_release_without_a_look() {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = TokioClock::starting_at(1_700_000_000_000);
        let store = Store::open_inline(&dir.path().join("outbox.db")).expect("open");
        let now = clock.now_ms();
        // Its row says "not due for an hour": only the memory can start it now.
        let handed = queued_not_due(&store, "p1", now).await;
        let (worker, attempts) = worker(store.clone(), clock, 0, 300);
        let outbox = worker.outbox.clone();
        let stop = CancellationToken::new();
        let task = tokio::spawn(worker.run(stop.clone()));
        let create_in_flight = outbox.hold("p1");
        outbox.hand_over(handed);
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(attempts.lock().expect("lock").is_empty(), "sent while held");
        drop(create_in_flight);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(
            attempts.lock().expect("lock").len(),
            1,
            "not sent at its release"
        );
        tokio::time::sleep(Duration::from_secs(60)).await;
        stop.cancel();
        task.await.expect("join");
        assert_eq!(attempts.lock().expect("lock").len(), 1, "sent again");
    }

    #[tokio::test(start_paused = true)]
    async fn holds_a_callback_while_its_create_is_being_answered() {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = TokioClock::starting_at(1_700_000_000_000);
        let store = store_with_callback(dir.path(), &clock).await;
        let (worker, attempts) = worker(store, clock, 0, 300);
        let guard = worker.outbox.hold("p1");
        let stop = CancellationToken::new();
        let task = tokio::spawn(worker.run(stop.clone()));
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(
            attempts.lock().expect("lock").is_empty(),
            "sent while the Create answer was in flight"
        );
        drop(guard);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(*attempts.lock().expect("lock"), [10]);
        stop.cancel();
        task.await.expect("join");
    }

    const HANGING_HOST: &str = "http://hang.test";

    /// A Gateway that answers 2xx after `answer_after`, except on [`HANGING_HOST`], which never
    /// answers. Records (second, url, body) of every attempt as it starts.
    struct SlowGateway {
        answer_after: Duration,
        start: tokio::time::Instant,
        attempts: Arc<Mutex<Vec<(u64, String, String)>>>,
    }

    impl CallbackSender for SlowGateway {
        async fn send(&self, url: &str, body: &str) -> Result<(), SendError> {
            let second = self.start.elapsed().as_secs();
            self.attempts
                .lock()
                .expect("lock")
                .push((second, url.to_string(), body.to_string()));
            if url.starts_with(HANGING_HOST) {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(self.answer_after).await;
            Ok(())
        }
    }

    type Attempts = Arc<Mutex<Vec<(u64, String, String)>>>;

    fn slow_worker(
        store: Store,
        clock: TokioClock,
        answer_after: Duration,
    ) -> (OutboxWorker<SlowGateway>, Attempts) {
        let attempts = Attempts::default();
        let sender = SlowGateway {
            answer_after,
            start: tokio::time::Instant::now(),
            attempts: attempts.clone(),
        };
        (worker_with(store, clock, 300, sender), attempts)
    }

    /// Stores a payment and a callback to `url` for each body, in order.
    async fn add_callbacks(
        store: &Store,
        clock: &TokioClock,
        payment_id: &str,
        url: &str,
        bodies: &[&str],
    ) {
        let now = clock.now_ms();
        let (payment_id, url) = (payment_id.to_string(), url.to_string());
        let bodies: Vec<String> = bodies.iter().map(|b| b.to_string()).collect();
        store
            .call(move |c| {
                payments::insert(
                    c,
                    &payments::test_payment(&payment_id, PaymentState::Approved),
                    now,
                )?;
                for body in &bodies {
                    outbox::enqueue(c, &payment_id, &url, body, now)?;
                }
                Ok(())
            })
            .await
            .expect("seed");
    }

    #[tokio::test(start_paused = true)]
    async fn a_host_that_never_answers_holds_back_no_other_host() {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = TokioClock::starting_at(1_700_000_000_000);
        let store = Store::open_inline(&dir.path().join("outbox.db")).expect("open");
        // More callbacks to the hanging host than there are slots in all, and they come first.
        for n in 0..2 * MAX_ATTEMPTS_IN_FLIGHT {
            add_callbacks(
                &store,
                &clock,
                &format!("hang-{n}"),
                &format!("{HANGING_HOST}/cb/{n}"),
                &["{}"],
            )
            .await;
        }
        add_callbacks(&store, &clock, "ok", "http://ok.test/cb", &["{}"]).await;
        let (worker, attempts) = slow_worker(store.clone(), clock, Duration::ZERO);
        let stop = CancellationToken::new();
        let task = tokio::spawn(worker.run(stop.clone()));
        tokio::time::sleep(Duration::from_secs(1)).await;
        let states = store
            .call(|c| outbox::states_of(c, "ok"))
            .await
            .expect("states");
        assert_eq!(states, [("delivered".to_string(), 1)]);
        let attempts = attempts.lock().expect("lock").clone();
        let hanging = attempts
            .iter()
            .filter(|(_, url, _)| url.starts_with(HANGING_HOST))
            .count();
        assert_eq!(hanging, MAX_ATTEMPTS_PER_TARGET, "{attempts:?}");
        stop.cancel();
        task.await.expect("join");
    }

    #[tokio::test(start_paused = true)]
    async fn a_payment_has_one_attempt_at_a_time_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = TokioClock::starting_at(1_700_000_000_000);
        let store = Store::open_inline(&dir.path().join("outbox.db")).expect("open");
        add_callbacks(
            &store,
            &clock,
            "p1",
            "http://gateway.test/cb",
            &["first", "second"],
        )
        .await;
        let (worker, attempts) = slow_worker(store.clone(), clock, Duration::from_secs(10));
        let outbox = worker.outbox.clone();
        let stop = CancellationToken::new();
        let task = tokio::spawn(worker.run(stop.clone()));
        // Looks at the outbox again and again while the first attempt is in flight.
        for _ in 0..5 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            outbox.wake();
        }
        tokio::time::sleep(Duration::from_secs(60)).await;
        stop.cancel();
        task.await.expect("join");
        let started: Vec<(u64, String)> = attempts
            .lock()
            .expect("lock")
            .iter()
            .map(|(second, _, body)| (*second, body.clone()))
            .collect();
        assert_eq!(
            started,
            [(0, "first".to_string()), (10, "second".to_string())]
        );
        let states = store
            .call(|c| outbox::states_of(c, "p1"))
            .await
            .expect("states");
        assert_eq!(
            states,
            [("delivered".to_string(), 1), ("delivered".to_string(), 1)]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_stops_the_worker_with_an_attempt_in_flight() {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = TokioClock::starting_at(1_700_000_000_000);
        let store = Store::open_inline(&dir.path().join("outbox.db")).expect("open");
        add_callbacks(&store, &clock, "p1", &format!("{HANGING_HOST}/cb"), &["{}"]).await;
        let (worker, attempts) = slow_worker(store.clone(), clock, Duration::ZERO);
        let stop = CancellationToken::new();
        let task = tokio::spawn(worker.run(stop.clone()));
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(attempts.lock().expect("lock").len(), 1);
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(1), task)
            .await
            .expect("the worker did not stop")
            .expect("join");
        // Cut off, not failed: still pending, for the next start.
        let states = store
            .call(|c| outbox::states_of(c, "p1"))
            .await
            .expect("states");
        assert_eq!(states, [("pending".to_string(), 0)]);
    }
}
