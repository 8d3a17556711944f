//! The POS engine: what each PPP call means for a payment taken on a terminal. It owns the
//! state machine, idempotency and the one-charge rule; it knows neither HTTP nor wire bytes.

mod after_sale;
mod alarm_texts;
pub mod answer;
mod by_hand;
#[cfg(test)]
mod engine_tests;
mod feed;
mod finish;
mod journals;
mod kept_replies;
mod lane;
pub mod outcome;
mod removed_terminal;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::clock::SharedClock;
use crate::config::{Config, PosConfig};
use crate::money::Currency;
use crate::outbox::Outbox;
use crate::payment::{Delays, NewPayment, Payment, PaymentState, SaleFields};
use crate::secret::{CardNumber, ct_eq, random_id, random_token};
use crate::store::alarms::{self, AlarmKind};
use crate::store::payments;
use crate::store::{Store, orphans};
use crate::terminal::{CardFunction, OpenedTerminal, TerminalEvent, TerminalHandle, Terminals};

pub use crate::outbox::InFlightGuard;
// What the feed's narrow handle fails with: its users need not import the store.
pub use crate::store::StoreError;
pub use answer::{NextStep, PaymentAnswer, PaymentReply};
pub use by_hand::{ByHand, Decision, ResolveError};
pub use feed::{FeedStore, FeedTx};
pub use journals::{Reconciled, UnknownEntries};
pub use lane::LaneStatus;
use lane::{LaneJob, LaneState};
pub use outcome::{OperationAnswer, RenderOperations, Reply};

pub const CREDIT_METHOD: &str = "Venda Direta Credito";
pub const DEBIT_METHOD: &str = "Venda Direta Debito";
/// Card methods the manifest lists when the Test Suite cards are on.
pub const TEST_SUITE_CARD_METHODS: &[&str] = &[
    "Visa",
    "Mastercard",
    "American Express",
    "Diners",
    "Elo",
    "Hipercard",
    "Discover",
    "JCB",
];

/// How long a PPP call may wait for a terminal step before answering "still working".
const TERMINAL_STEP_WAIT: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("unknown payment")]
    UnknownPayment,
    #[error("payment method `{0}` is not supported")]
    UnsupportedMethod(String),
    #[error("value must be positive")]
    NotPositive,
    /// A repeated Create whose field differs from what was stored for the payment.
    #[error(
        "field `{field}` ({given}) differs from what this paymentId was created with ({stored})"
    )]
    Mismatch {
        field: &'static str,
        given: String,
        stored: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot generate a random token: {0}")]
    Random(#[from] getrandom::Error),
    /// The terminals' journals name sales or operations the database does not know: it is
    /// older than they are (restored from an old backup, or replaced).
    #[error(
        "the terminal journals beside the database name what the database does not know: {0}. The database is older than the journals (restored from an old backup, or replaced): starting now could lose those results or charge again. Restore the newest backup, or adopt them with `posbridge adopt-journals` (see the operator guide, docs/operator-guide.md, \"Backup and restore\")"
    )]
    JournalsAhead(UnknownEntries),
    #[error("configuration: {0}")]
    TimeZone(#[from] crate::locale::UnknownTimeZone),
    #[error("cannot read the journal of terminal {terminal}: {error}")]
    Journal {
        terminal: String,
        error: crate::terminal::TerminalError,
    },
}

/// A Create Payment request, validated and converted at the edge.
#[derive(Debug)]
pub struct CreatePayment {
    pub payment_id: String,
    pub transaction_id: String,
    pub method: String,
    pub amount_minor: i64,
    pub currency: Currency,
    pub installments: Option<i64>,
    pub callback_url: String,
    /// A card number on a Test Suite request (never stored).
    pub test_card: Option<CardNumber>,
    pub is_test_suite: bool,
    /// The `tid` and submit token the relay tier already gave out (`[uplink]`), else made here.
    pub relay_assigned: Option<crate::ids::RelayAssigned>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BindFailure {
    #[error("unknown payment")]
    UnknownPayment,
    #[error("wrong token")]
    BadToken,
    #[error("no terminal has this serial number")]
    UnknownSerial,
    #[error("the charge has already started on another terminal")]
    ChargeStarted,
    #[error("the payment is already final")]
    Final,
    #[error("internal error")]
    Internal,
}

/// A payment's state changed (published after the change is committed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentChange {
    pub payment_id: String,
    pub state: PaymentState,
}

struct Lane {
    handle: TerminalHandle,
    jobs: mpsc::UnboundedSender<LaneJob>,
    status: Arc<LaneState>,
}

pub struct Engine {
    store: Store,
    clock: SharedClock,
    pos: PosConfig,
    test_suite_cards: bool,
    lanes: HashMap<String, Lane>,
    /// serial number → terminal id
    serials: HashMap<String, String>,
    pending_lane_jobs: Mutex<Vec<(String, mpsc::UnboundedReceiver<LaneJob>)>>,
    changes: broadcast::Sender<PaymentChange>,
    terminal_events: broadcast::Sender<TerminalEvent>,
    /// Where results' callbacks go: queued with the result, held while a Create answer is in
    /// flight, woken after each commit that queued one.
    outbox: Outbox,
    /// The edge's rendering of operation outcomes, for the answers stored for replay.
    answers: Arc<dyn RenderOperations>,
    heartbeats: AtomicU64,
    /// `storage.retain_days`: journal entries older than this are expected to be purged.
    retain_days: u32,
    /// The store's time zone (`[store] timezone`), for what people read.
    store_time: crate::locale::StoreTime,
    /// Replies to repeated Creates kept in memory: the Gateway's polls without a read.
    kept_replies: kept_replies::KeptReplies,
}

impl Engine {
    /// Builds the engine over terminals already running; `start` begins the work.
    pub fn new(
        config: &Config,
        store: Store,
        outbox: Outbox,
        clock: SharedClock,
        answers: Arc<dyn RenderOperations>,
        terminals: Terminals,
    ) -> Result<Arc<Self>, EngineError> {
        let (changes, _) = broadcast::channel(1024);
        let mut lanes = HashMap::new();
        let mut serials = HashMap::new();
        let mut pending = Vec::new();
        for OpenedTerminal {
            handle,
            serial_number,
        } in terminals.opened
        {
            let id = handle.id().to_string();
            let (tx, rx) = mpsc::unbounded_channel();
            lanes.insert(
                id.clone(),
                Lane {
                    handle,
                    jobs: tx,
                    status: Arc::new(LaneState::default()),
                },
            );
            serials.insert(serial_number, id.clone());
            pending.push((id, rx));
        }
        Ok(Arc::new(Self {
            store: store.clone(),
            clock,
            pos: config.pos.clone(),
            test_suite_cards: config.vtex.test_suite_cards,
            lanes,
            serials,
            pending_lane_jobs: Mutex::new(pending),
            changes,
            terminal_events: terminals.events,
            outbox,
            answers,
            heartbeats: AtomicU64::new(0),
            retain_days: config.storage.retain_days,
            store_time: crate::locale::StoreTime::new(config.store.timezone.as_deref())?,
            kept_replies: kept_replies::KeptReplies::new(store, kept_replies::CAPACITY),
        }))
    }

    /// Journal entries older than this may name payments the retention purge deleted (a
    /// payment is purged `retain_days` after its last change, which is after it was sent).
    pub fn journal_horizon_ms(&self) -> i64 {
        if self.retain_days == 0 {
            i64::MIN
        } else {
            self.now() - i64::from(self.retain_days) * 86_400_000
        }
    }

    /// Checks the database against the terminals' journals, resumes what a previous run left
    /// on the terminals (recovery first) and starts one worker per terminal.
    pub async fn start(
        self: &Arc<Self>,
        tasks: &TaskTracker,
        shutdown: CancellationToken,
    ) -> Result<(), EngineError> {
        self.reconcile_journals(false, self.journal_horizon_ms())
            .await?;
        self.settle_removed_terminals().await?;
        let pending = match self.pending_lane_jobs.lock() {
            Ok(mut p) => std::mem::take(&mut *p),
            Err(_) => Vec::new(),
        };
        for (terminal_id, rx) in pending {
            let id = terminal_id.clone();
            let (charging, ops) = self
                .store
                .call(move |c| {
                    Ok((
                        payments::charging_on_terminal(c, &id)?,
                        crate::store::operations::unfinished_on_terminal(c, &id)?,
                    ))
                })
                .await?;
            if let Some(lane) = self.lanes.get(&terminal_id) {
                let _ = lane.jobs.send(LaneJob::ConfirmPending);
                for (payment_id, sent) in &charging {
                    if *sent {
                        tracing::warn!(payment_id = %payment_id, terminal = %terminal_id, "resuming: asking the terminal what happened to this sale");
                        let _ = lane.jobs.send(LaneJob::Recover(payment_id.clone()));
                    }
                }
                for op in ops {
                    let _ = lane.jobs.send(LaneJob::Operation(op.op_id));
                }
                for (payment_id, sent) in charging {
                    if !sent {
                        let _ = lane.jobs.send(LaneJob::Charge(payment_id));
                    }
                }
                if let Some(mut late) = lane.handle.take_late_outcomes() {
                    let jobs = lane.jobs.clone();
                    tasks.spawn(async move {
                        while let Some((reference, outcome)) = late.recv().await {
                            let _ = jobs.send(LaneJob::LateResult(reference, Box::new(outcome)));
                        }
                    });
                }
                let engine = self.clone();
                let handle = lane.handle.clone();
                let status = lane.status.clone();
                let shutdown = shutdown.clone();
                tasks.spawn(async move { engine.run_lane(handle, status, rx, shutdown).await });
            }
        }
        Ok(())
    }

    /// Proves the engine is alive: its database writer answers. The watchdog pings on it.
    pub async fn heartbeat(&self) -> Result<(), EngineError> {
        if crate::failpoint::active("stall-engine")
            && self.heartbeats.fetch_add(1, Ordering::Relaxed) >= 2
        {
            // Test-only: wedge the writer thread as a hung engine would.
            let store = self.store.clone();
            tokio::spawn(async move {
                store
                    .call(|_| -> Result<(), StoreError> {
                        loop {
                            std::thread::park();
                        }
                    })
                    .await
            });
        }
        self.store.call(|_| Ok(())).await?;
        Ok(())
    }

    /// The Payment App feed's narrow access to the database: payments by id, its own events.
    pub fn feed(&self) -> FeedStore {
        FeedStore::new(self.store.clone())
    }

    /// Records the credentials the configuration flow issued to a merchant (the token as a
    /// hash only).
    pub async fn record_merchant(
        &self,
        app_key: &str,
        app_token_hash: &str,
    ) -> Result<(), EngineError> {
        let (key, hash, now) = (app_key.to_string(), app_token_hash.to_string(), self.now());
        self.store
            .call(move |c| crate::store::merchants::insert(c, &key, &hash, now))
            .await?;
        Ok(())
    }

    /// Holds the payment's callbacks until the guard is dropped: VTEX loses a result that
    /// races the Create answer it gave for the same payment.
    pub fn hold_callback(&self, payment_id: &str) -> InFlightGuard {
        self.outbox.hold(payment_id)
    }

    pub fn subscribe_changes(&self) -> broadcast::Receiver<PaymentChange> {
        self.changes.subscribe()
    }

    pub fn subscribe_terminal_events(&self) -> broadcast::Receiver<TerminalEvent> {
        self.terminal_events.subscribe()
    }

    /// (id, serial number, handle) of every configured terminal, by id.
    pub fn terminals(&self) -> Vec<(String, String, TerminalHandle)> {
        let mut list: Vec<_> = self
            .serials
            .iter()
            .filter_map(|(serial, id)| {
                self.lanes
                    .get(id)
                    .map(|lane| (id.clone(), serial.clone(), lane.handle.clone()))
            })
            .collect();
        list.sort_by(|a, b| a.0.cmp(&b.0));
        list
    }

    pub fn terminal_handle(&self, id: &str) -> Option<TerminalHandle> {
        self.lanes.get(id).map(|lane| lane.handle.clone())
    }

    /// The store's time zone: "today" and the times people read.
    pub fn store_time(&self) -> &crate::locale::StoreTime {
        &self.store_time
    }

    /// Whether a terminal's lane waits on an unresolved payment, and why.
    pub fn lane_status(&self, id: &str) -> LaneStatus {
        self.lanes
            .get(id)
            .map(|lane| lane.status.get())
            .unwrap_or_default()
    }

    pub fn test_suite_cards(&self) -> bool {
        self.test_suite_cards
    }

    fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    /// The engine's clock (unix ms).
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    fn publish(&self, payment_id: &str, state: PaymentState) {
        let _ = self.changes.send(PaymentChange {
            payment_id: payment_id.to_string(),
            state,
        });
    }

    fn delays(&self) -> Delays {
        Delays {
            seconds_waiting: self.pos.seconds_waiting,
            delay_to_cancel: self.pos.delay_to_cancel,
            delay_to_auto_settle: self.pos.delay_to_auto_settle,
            delay_to_auto_settle_after_antifraud: self.pos.delay_to_auto_settle_after_antifraud,
        }
    }

    /// Create Payment: stores the payment on the first call, starts the one charge once a
    /// terminal is bound, and otherwise answers the current state.
    pub async fn create(
        &self,
        merchant: &str,
        request: CreatePayment,
    ) -> Result<Arc<PaymentReply>, EngineError> {
        if request.amount_minor <= 0 {
            return Err(EngineError::NotPositive);
        }
        // A poll answered before, of a row unchanged since: without a read or the writer.
        if let Some(reply) = self.kept_replies.get(merchant, &request) {
            return Ok(reply);
        }
        if let Some(reply) = self.poll_that_changes_nothing(merchant, &request).await? {
            return Ok(reply);
        }
        let new = self.new_payment(merchant, &request)?;
        let merchant = merchant.to_string();
        let now = self.now();
        let time = self.store_time.clone();
        let (payment, started, first_call, adopted) = self
            .store
            .call(move |c| {
                let (mut p, first_call, adopted) =
                    match find_for_merchant(c, &merchant, &new.payment_id)? {
                        Some(p) => {
                            if let Some(mismatch) = mismatch(&p, Terms::of_new(&new)) {
                                return Ok(Err(mismatch));
                            }
                            (p, false, false)
                        }
                        None => {
                            let (p, adopted) = insert_new(c, &merchant, new, &time, now)?;
                            (p, true, adopted)
                        }
                    };
                // The compare-and-set alone decides (no read of the state before it): only a
                // bound payment starts its charge, and only once — a broken CAS shows end to end.
                let started = payments::start_charge(c, &p.payment_id, now)?;
                if started {
                    p = must_get(c, &p.payment_id)?;
                }
                Ok(Ok((p, started, first_call, adopted)))
            })
            .await??;
        if first_call {
            crate::failpoint::hit("after-payment-stored");
        }
        if started {
            crate::failpoint::hit("after-charge-queued");
        }
        if first_call {
            tracing::info!(payment_id = %payment.payment_id, vtex_payment_id = payment.external_id.as_deref(), state = %payment.state, amount_minor = payment.amount_minor, currency = %payment.currency, "payment stored");
            if payment.first_answer_undefined {
                self.outbox.wake();
            }
        }
        if adopted {
            tracing::error!(payment_id = %payment.payment_id, terminal = payment.terminal_id.as_deref().unwrap_or("-"), "ALARM: a terminal's journal shows this payment was sent before the database knew it (adopted after a restore): recovering it from the terminal, never charging it again");
            self.enqueue(&payment, LaneJob::Recover(payment.payment_id.clone()));
        }
        if started {
            crate::observability::charge_started(payment.terminal_id.as_deref().unwrap_or("-"));
            tracing::info!(payment_id = %payment.payment_id, terminal = payment.terminal_id.as_deref().unwrap_or("-"), "charge queued on the terminal");
            self.publish(&payment.payment_id, payment.state);
            self.enqueue(&payment, LaneJob::Charge(payment.payment_id.clone()));
        }
        Ok(Arc::new(PaymentReply::of(payment, first_call)))
    }

    /// A repeated Create of a payment that is not bound (the one state in which a Create
    /// starts the charge) changes nothing: it is answered from a read beside the writer, so
    /// polls of a charging payment do not queue behind every Create's commit. `None`: the
    /// writer decides (a new payment, or a bound one whose charge this Create may start).
    async fn poll_that_changes_nothing(
        &self,
        merchant: &str,
        request: &CreatePayment,
    ) -> Result<Option<Arc<PaymentReply>>, EngineError> {
        let mark = self.kept_replies.mark();
        let (owner, id) = (merchant.to_string(), request.payment_id.clone());
        let found = self
            .store
            .read(move |c| find_for_merchant(c, &owner, &id))
            .await?;
        let Some(payment) = found.filter(|p| p.state != PaymentState::Bound) else {
            return Ok(None);
        };
        if let Some(mismatch) = mismatch(&payment, Terms::of_request(request)) {
            return Err(mismatch);
        }
        // Committed (a reader sees only commits): later repeats get it while the row is
        // unchanged.
        let reply = Arc::new(PaymentReply::of(payment, false));
        self.kept_replies.keep(mark, &reply);
        Ok(Some(reply))
    }

    fn new_payment(&self, merchant: &str, r: &CreatePayment) -> Result<NewPayment, EngineError> {
        let mut new = NewPayment {
            payment_id: r.payment_id.clone(),
            merchant: merchant.to_string(),
            transaction_id: r.transaction_id.clone(),
            method: r.method.clone(),
            amount_minor: r.amount_minor,
            currency: r.currency.code().to_string(),
            installments: r.installments,
            callback_url: r.callback_url.clone(),
            submit_token: match &r.relay_assigned {
                Some(assigned) => assigned.submit_token.clone(),
                None => random_token()?,
            },
            tid: match &r.relay_assigned {
                Some(assigned) => assigned.tid.clone(),
                None => random_id("pb")?,
            },
            state: PaymentState::Received,
            terminal_id: None,
            delays: self.delays(),
            sale: SaleFields::default(),
            first_answer_undefined: false,
            external_id: None,
        };
        if r.method == CREDIT_METHOD || r.method == DEBIT_METHOD {
            // With identification off and one terminal, the first Create binds it.
            if !self.pos.identify_terminal && self.lanes.len() == 1 {
                new.state = PaymentState::Bound;
                new.terminal_id = self.lanes.keys().next().cloned();
            }
            return Ok(new);
        }
        let test_card = r.test_card.as_ref().filter(|_| {
            self.test_suite_cards
                && r.is_test_suite
                && TEST_SUITE_CARD_METHODS.contains(&r.method.as_str())
        });
        let Some(card) = test_card else {
            return Err(EngineError::UnsupportedMethod(r.method.clone()));
        };
        // Its Debug shows the fragments only (the end-to-end secret scan reads this line).
        tracing::trace!(payment_id = %new.payment_id, card = ?card, "Test Suite card");
        // VTEX's documented Test Suite cards; only brand and fragments are kept.
        let (approved, async_) = if card.is("4444333322221111") {
            (true, false)
        } else if card.is("4444333322221112") {
            (false, false)
        } else if card.is("4222222222222224") {
            (true, true)
        } else if card.is("4222222222222225") {
            (false, true)
        } else {
            (false, false)
        };
        let (first_digits, last_digits) = card.fragments().unzip();
        new.state = if approved {
            PaymentState::Approved
        } else {
            PaymentState::Denied
        };
        new.first_answer_undefined = async_;
        new.sale = SaleFields {
            authorization_id: approved.then(|| format!("TS{}", &new.tid[2..10])),
            nsu: Some(new.tid[2..12].to_string()),
            acquirer: Some("posbridge-test-suite".into()),
            code: Some(if approved { "00" } else { "51" }.into()),
            message: Some(
                if approved {
                    "approved (test card)"
                } else {
                    "denied (test card)"
                }
                .into(),
            ),
            card_brand: Some(r.method.clone()),
            first_digits,
            last_digits,
            terminal_ref: None,
        };
        Ok(new)
    }

    /// The submitUrl call: binds (or re-binds, until the charge starts) a terminal by serial.
    pub async fn bind_terminal(
        &self,
        payment_id: &str,
        token: &str,
        serial: &str,
    ) -> Result<String, BindFailure> {
        let terminal_id = self.serials.get(serial).cloned();
        let payment_id = payment_id.to_string();
        let token = token.to_string();
        let now = self.now();
        let result = self
            .store
            .call(move |c| {
                let Some(p) = payments::get(c, &payment_id)? else {
                    return Ok(Err(BindFailure::UnknownPayment));
                };
                if !ct_eq(p.submit_token.as_bytes(), token.as_bytes()) {
                    return Ok(Err(BindFailure::BadToken));
                }
                let Some(terminal_id) = terminal_id else {
                    return Ok(Err(BindFailure::UnknownSerial));
                };
                if p.terminal_id.as_deref() == Some(terminal_id.as_str())
                    && p.state != PaymentState::Received
                {
                    return Ok(Ok(terminal_id)); // a repeat of the same scan
                }
                match p.state.bind() {
                    Ok(_) => {
                        payments::bind_terminal(c, &payment_id, &terminal_id, now)?;
                        Ok(Ok(terminal_id))
                    }
                    Err(crate::payment::BindError::ChargeStarted) => {
                        Ok(Err(BindFailure::ChargeStarted))
                    }
                    Err(crate::payment::BindError::Final) => Ok(Err(BindFailure::Final)),
                }
            })
            .await;
        match result {
            Ok(r) => {
                if r.is_ok() {
                    crate::failpoint::hit("after-bind");
                }
                r
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot bind a terminal");
                Err(BindFailure::Internal)
            }
        }
    }

    /// The payment as its owner sees it (by the Gateway's paymentId).
    pub async fn payment(&self, merchant: &str, payment_id: &str) -> Result<Payment, EngineError> {
        let (merchant, id) = (merchant.to_string(), payment_id.to_string());
        // A read: beside the writer, not queued behind the Creates' commits.
        self.store
            .read(move |c| find_for_merchant(c, &merchant, &id))
            .await?
            .ok_or(EngineError::UnknownPayment)
    }

    fn enqueue(&self, p: &Payment, job: LaneJob) {
        match p.terminal_id.as_ref().and_then(|t| self.lanes.get(t)) {
            Some(lane) => {
                let _ = lane.jobs.send(job);
            }
            None => {
                tracing::error!(payment_id = %p.payment_id, terminal = ?p.terminal_id, "no such terminal configured: the payment cannot proceed")
            }
        }
    }

    fn terminal(&self, p: &Payment) -> Option<&TerminalHandle> {
        p.terminal_id
            .as_ref()
            .and_then(|t| self.lanes.get(t))
            .map(|l| &l.handle)
    }

    /// Waits (up to `wait`) until `check` finds what it looks for, re-checking whenever
    /// `payment_id` changes.
    async fn wait_for<T, F>(
        &self,
        payment_id: &str,
        wait: Duration,
        check: F,
    ) -> Result<Option<T>, EngineError>
    where
        T: Send + 'static,
        F: Fn(&Connection) -> Result<Option<T>, StoreError> + Clone + Send + 'static,
    {
        let mut changes = self.changes.subscribe();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(found) = self.store.call(check.clone()).await? {
                return Ok(Some(found));
            }
            loop {
                match tokio::time::timeout_at(deadline, changes.recv()).await {
                    Err(_) | Ok(Err(broadcast::error::RecvError::Closed)) => return Ok(None),
                    Ok(Ok(change)) if change.payment_id != payment_id => continue,
                    Ok(_) => break,
                }
            }
        }
    }
}

/// The key of a merchant's payment whose paymentId another merchant's payment holds as its key.
/// Payments are per merchant: a second merchant sending the same paymentId gets a payment of
/// its own, so no merchant can learn whether another's paymentId exists.
fn scoped_key(merchant: &str, vtex_payment_id: &str) -> String {
    let tag = crate::secret::token_hash(merchant);
    format!("{vtex_payment_id}~{}", &tag[..16])
}

/// The merchant's payment with the Gateway's `vtex_payment_id`, if it has one. Both places are
/// always looked at, so the answer takes the same work whether or not another merchant's
/// payment holds the plain key.
pub(crate) fn find_for_merchant(
    c: &Connection,
    merchant: &str,
    vtex_payment_id: &str,
) -> Result<Option<Payment>, StoreError> {
    let plain = payments::get(c, vtex_payment_id)?;
    let scoped = payments::get(c, &scoped_key(merchant, vtex_payment_id))?;
    let mine = |p: &Payment| {
        ct_eq(p.merchant.as_bytes(), merchant.as_bytes()) && p.vtex_payment_id() == vtex_payment_id
    };
    Ok(plain.filter(mine).or_else(|| scoped.filter(mine)))
}

/// Stores a new payment under its paymentId, or under a merchant-scoped key when another
/// merchant's payment has that paymentId; freezes the answer of one final at once (the Test
/// Suite's cards). A payment a terminal journal showed sent before the database knew it
/// (adopted after a restore) is stored as sent on that terminal: true when so.
fn insert_new(
    c: &Connection,
    merchant: &str,
    mut new: NewPayment,
    time: &crate::locale::StoreTime,
    now: i64,
) -> Result<(Payment, bool), StoreError> {
    if payments::get(c, &new.payment_id)?.is_some() {
        new.external_id = Some(new.payment_id.clone());
        new.payment_id = scoped_key(merchant, &new.payment_id);
    }
    let adopted = match orphans::waiting(c, &new.payment_id)? {
        Some(orphan) if !new.state.is_final() => Some(orphan),
        _ => None,
    };
    payments::insert(c, &new, now)?;
    if let Some(orphan) = &adopted {
        journals::mark_sent_from_journal(
            c,
            &new.payment_id,
            &orphan.terminal_id,
            orphan.sent_at,
            time,
            now,
        )?;
        alarms::clear_subject(
            c,
            AlarmKind::AdoptedSale,
            &journals::adopted_subject(&orphan.terminal_id, &orphan.reference),
            now,
        )?;
        orphans::take_over(c, &orphan.terminal_id, &orphan.reference)?;
        return Ok((must_get(c, &new.payment_id)?, true));
    }
    let p = must_get(c, &new.payment_id)?;
    if !p.state.is_final() {
        return Ok((p, false));
    }
    let answer = PaymentAnswer::of(&p, p.state.ppp_status(), None).to_json()?;
    payments::freeze_answer(c, &p.payment_id, &answer)?;
    if new.first_answer_undefined {
        Outbox::enqueue(c, &p.payment_id, &p.callback_url, &answer, now)?;
    }
    // Read again: with its frozen answer.
    Ok((must_get(c, &new.payment_id)?, false))
}

/// What a repeated Create must repeat: the terms the payment was created with.
struct Terms<'a> {
    currency: &'a str,
    amount_minor: i64,
    method: &'a str,
    installments: Option<i64>,
    transaction_id: &'a str,
}

impl<'a> Terms<'a> {
    fn of_new(new: &'a NewPayment) -> Self {
        Self {
            currency: &new.currency,
            amount_minor: new.amount_minor,
            method: &new.method,
            installments: new.installments,
            transaction_id: &new.transaction_id,
        }
    }

    fn of_request(request: &'a CreatePayment) -> Self {
        Self {
            currency: request.currency.code(),
            amount_minor: request.amount_minor,
            method: &request.method,
            installments: request.installments,
            transaction_id: &request.transaction_id,
        }
    }
}

/// What differs between a repeated Create and the payment it repeats: a repeat must be the
/// same request (the charge is for what was stored, never silently another amount).
fn mismatch(stored: &Payment, repeat: Terms<'_>) -> Option<EngineError> {
    let money = |currency: &str, minor: i64| {
        Currency::parse(currency)
            .map_or_else(|_| minor.to_string(), |c| c.to_decimal(minor).to_string())
    };
    let installments = |n: Option<i64>| n.filter(|n| *n > 1).unwrap_or(1);
    let differs = |field: &'static str, given: String, stored: String| {
        (given != stored).then_some(EngineError::Mismatch {
            field,
            given,
            stored,
        })
    };
    differs(
        "currency",
        repeat.currency.to_string(),
        stored.currency.clone(),
    )
    .or_else(|| {
        differs(
            "value",
            money(repeat.currency, repeat.amount_minor),
            money(&stored.currency, stored.amount_minor),
        )
    })
    .or_else(|| {
        differs(
            "paymentMethod",
            repeat.method.to_string(),
            stored.method.clone(),
        )
    })
    .or_else(|| {
        differs(
            "installments",
            installments(repeat.installments).to_string(),
            installments(stored.installments).to_string(),
        )
    })
    .or_else(|| {
        differs(
            "transactionId",
            repeat.transaction_id.to_string(),
            stored.transaction_id.clone(),
        )
    })
}

/// The token of a payment's live feed: derived one-way from its random submit token, so it is
/// unguessable, good for this payment only, survives restarts, and cannot bind a terminal.
pub fn payment_app_token(p: &Payment) -> String {
    crate::secret::derived_token("posbridge payment-app feed v1", &p.submit_token)
}

fn must_get(c: &Connection, payment_id: &str) -> Result<Payment, StoreError> {
    payments::get(c, payment_id)?
        .ok_or_else(|| StoreError::Corrupt(format!("payment {payment_id} vanished")))
}

fn function_of(method: &str) -> CardFunction {
    if method == DEBIT_METHOD {
        CardFunction::Debit
    } else {
        CardFunction::Credit
    }
}
