//! One task per terminal owns its driver: commands run one at a time (a terminal does one
//! transaction at a time); an abort reaches the running sale through a cancellation token.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::{
    DriverError, OperationOutcome, OperationQuery, OperationRequest, PromptSink, SaleInquiry,
    SaleOutcome, SaleQuery, SaleRequest, SentRecord, TerminalDriver, Verdict,
};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TerminalError {
    #[error(transparent)]
    Driver(#[from] DriverError),
    #[error("the terminal task has stopped")]
    Stopped,
}

type Reply<T> = oneshot::Sender<Result<T, DriverError>>;

enum Command {
    Sale(SaleRequest, Reply<SaleOutcome>),
    QuerySale(SaleInquiry, Reply<SaleQuery>),
    Reverse(OperationRequest, Reply<OperationOutcome>),
    Refund(OperationRequest, Reply<OperationOutcome>),
    QueryOperation(String, Reply<OperationQuery>),
    Probe(Reply<String>),
    EndOfDay(Reply<String>),
    Sent(Reply<Vec<SentRecord>>),
    Committed(String, Verdict, Reply<()>),
    Unconfirmed(Reply<Vec<(String, String)>>),
}

/// An outcome the terminal reported on its own, for the sale `reference`.
pub type LateOutcome = (String, SaleOutcome);

/// Whether a terminal can be reached, as a person needs to read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reachability {
    /// No command has come back since posbridge started: nothing is known yet, and calling
    /// it offline would send someone to check a cable for nothing.
    NotContacted,
    /// The last command reached the terminal.
    Online,
    /// A command did not reach it, and none has since.
    Offline,
}

impl Reachability {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotContacted => "not-contacted",
            Self::Online => "online",
            Self::Offline => "offline",
        }
    }
}

/// The engine's side of a terminal.
#[derive(Clone)]
pub struct TerminalHandle {
    id: String,
    protocol: &'static str,
    commands: mpsc::Sender<Command>,
    shared: Arc<Shared>,
    late: Arc<Mutex<Option<mpsc::UnboundedReceiver<LateOutcome>>>>,
}

struct Shared {
    busy: AtomicBool,
    /// Whether the last command reached the terminal.
    online: AtomicBool,
    last_seen_ms: AtomicI64,
    last_error: Mutex<Option<String>>,
    /// The sale running now: its reference and the token that aborts it.
    current_sale: Mutex<Option<(String, CancellationToken)>>,
}

/// Starts the actor for a terminal. `result_timeout` bounds a sale; after it, the caller
/// must ask the terminal what happened (recovery) instead of assuming anything.
pub fn spawn<D: TerminalDriver>(
    id: &str,
    protocol: &'static str,
    driver: D,
    prompts: PromptSink,
    result_timeout: Duration,
) -> TerminalHandle {
    let (tx, rx) = mpsc::channel(16);
    let (late_tx, late_rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        busy: AtomicBool::new(false),
        online: AtomicBool::new(false),
        last_seen_ms: AtomicI64::new(0),
        last_error: Mutex::new(None),
        current_sale: Mutex::new(None),
    });
    tokio::spawn(run(
        driver,
        rx,
        prompts,
        result_timeout,
        shared.clone(),
        late_tx,
    ));
    TerminalHandle {
        id: id.to_string(),
        protocol,
        commands: tx,
        shared,
        late: Arc::new(Mutex::new(Some(late_rx))),
    }
}

/// How long a non-sale command may take before it counts as unanswered.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

async fn run<D: TerminalDriver>(
    mut driver: D,
    mut commands: mpsc::Receiver<Command>,
    prompts: PromptSink,
    result_timeout: Duration,
    shared: Arc<Shared>,
    late: mpsc::UnboundedSender<LateOutcome>,
) {
    while let Some(command) = commands.recv().await {
        shared.busy.store(true, Ordering::Relaxed);
        match command {
            Command::Sale(request, reply) => {
                let abort = CancellationToken::new();
                if let Ok(mut slot) = shared.current_sale.lock() {
                    *slot = Some((request.reference.clone(), abort.clone()));
                }
                let result =
                    tokio::time::timeout(result_timeout, driver.sale(&request, &prompts, &abort))
                        .await
                        .unwrap_or(Err(DriverError::Timeout));
                if let Ok(mut slot) = shared.current_sale.lock() {
                    *slot = None;
                }
                observe(&shared, &result);
                let _ = reply.send(result);
            }
            Command::QuerySale(inquiry, reply) => {
                let result = bounded(driver.query_sale(&inquiry)).await;
                observe(&shared, &result);
                let _ = reply.send(result);
            }
            Command::Reverse(request, reply) => {
                let result = bounded(driver.reverse(&request)).await;
                observe(&shared, &result);
                let _ = reply.send(result);
            }
            Command::Refund(request, reply) => {
                let result = bounded(driver.refund(&request)).await;
                observe(&shared, &result);
                let _ = reply.send(result);
            }
            Command::QueryOperation(reference, reply) => {
                let result = bounded(driver.query_operation(&reference)).await;
                observe(&shared, &result);
                let _ = reply.send(result);
            }
            Command::Probe(reply) => {
                let result = bounded(driver.probe()).await;
                observe(&shared, &result);
                let _ = reply.send(result);
            }
            Command::EndOfDay(reply) => {
                let result = bounded(driver.end_of_day()).await;
                observe(&shared, &result);
                let _ = reply.send(result);
            }
            Command::Sent(reply) => {
                let _ = reply.send(driver.sent());
            }
            Command::Committed(reference, verdict, reply) => {
                // Not observed: a driver with nothing to confirm does not reach the terminal.
                let _ = reply.send(bounded(driver.committed(&reference, verdict)).await);
            }
            Command::Unconfirmed(reply) => {
                let _ = reply.send(Ok(driver.unconfirmed()));
            }
        }
        for outcome in driver.late_outcomes() {
            let _ = late.send(outcome);
        }
        shared.busy.store(false, Ordering::Relaxed);
    }
}

/// Records whether the terminal answered (any answer counts: a decline is an answer). An
/// answer clears the last error: it describes a trouble that is over, and a person reading
/// it next to "online" would go looking for one that is not there.
fn observe<T>(shared: &Shared, result: &Result<T, DriverError>) {
    match result {
        Ok(_) => {
            shared.online.store(true, Ordering::Relaxed);
            let now = crate::clock::Clock::now_ms(&crate::clock::SystemClock);
            shared.last_seen_ms.store(now, Ordering::Relaxed);
            if let Ok(mut last) = shared.last_error.lock() {
                *last = None;
            }
        }
        Err(e) => {
            if matches!(
                e,
                DriverError::Disconnected(_) | DriverError::NotSent(_) | DriverError::Timeout
            ) {
                shared.online.store(false, Ordering::Relaxed);
            }
            if let Ok(mut last) = shared.last_error.lock() {
                *last = Some(e.to_string());
            }
        }
    }
}

async fn bounded<T>(work: impl Future<Output = Result<T, DriverError>>) -> Result<T, DriverError> {
    tokio::time::timeout(COMMAND_TIMEOUT, work)
        .await
        .unwrap_or(Err(DriverError::Timeout))
}

impl TerminalHandle {
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn is_busy(&self) -> bool {
        self.shared.busy.load(Ordering::Relaxed)
    }

    pub fn protocol(&self) -> &'static str {
        self.protocol
    }

    /// Whether the last command reached the terminal, when it last did (unix ms, 0: never),
    /// and the error of the commands since (`None` once one reached it).
    pub fn health(&self) -> (bool, i64, Option<String>) {
        (
            self.shared.online.load(Ordering::Relaxed),
            self.shared.last_seen_ms.load(Ordering::Relaxed),
            self.shared.last_error.lock().ok().and_then(|e| e.clone()),
        )
    }

    pub fn reachability(&self) -> Reachability {
        let (online, last_seen_ms, last_error) = self.health();
        if online {
            Reachability::Online
        } else if last_seen_ms == 0 && last_error.is_none() {
            // Every command that comes back either sets `last_seen` or leaves an error.
            Reachability::NotContacted
        } else {
            Reachability::Offline
        }
    }

    async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, TerminalError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| TerminalError::Stopped)?;
        Ok(rx.await.map_err(|_| TerminalError::Stopped)??)
    }

    pub async fn sale(&self, request: SaleRequest) -> Result<SaleOutcome, TerminalError> {
        self.ask(|r| Command::Sale(request, r)).await
    }

    pub async fn query_sale(&self, inquiry: SaleInquiry) -> Result<SaleQuery, TerminalError> {
        self.ask(|r| Command::QuerySale(inquiry, r)).await
    }

    pub async fn probe(&self) -> Result<String, TerminalError> {
        self.ask(Command::Probe).await
    }

    pub async fn end_of_day(&self) -> Result<String, TerminalError> {
        self.ask(Command::EndOfDay).await
    }

    pub async fn reverse(
        &self,
        request: OperationRequest,
    ) -> Result<OperationOutcome, TerminalError> {
        self.ask(|r| Command::Reverse(request, r)).await
    }

    pub async fn refund(
        &self,
        request: OperationRequest,
    ) -> Result<OperationOutcome, TerminalError> {
        self.ask(|r| Command::Refund(request, r)).await
    }

    pub async fn query_operation(&self, reference: &str) -> Result<OperationQuery, TerminalError> {
        let reference = reference.to_string();
        self.ask(|r| Command::QueryOperation(reference, r)).await
    }

    /// What the driver's journal says it handed to the terminal.
    pub async fn sent(&self) -> Result<Vec<SentRecord>, TerminalError> {
        self.ask(Command::Sent).await
    }

    /// Tells the driver that the result of the sale `reference` is committed, and what the
    /// database made of it.
    pub async fn committed(&self, reference: &str, verdict: Verdict) -> Result<(), TerminalError> {
        let reference = reference.to_string();
        self.ask(|r| Command::Committed(reference, verdict, r))
            .await
    }

    /// The sales the terminal holds provisional, waiting for a verdict:
    /// `(reference, terminal_ref)`.
    pub async fn unconfirmed(&self) -> Result<Vec<(String, String)>, TerminalError> {
        self.ask(Command::Unconfirmed).await
    }

    /// The outcomes the terminal reports on its own (taken once: the lane that owns the
    /// terminal reads them).
    pub fn take_late_outcomes(&self) -> Option<mpsc::UnboundedReceiver<LateOutcome>> {
        self.late.lock().ok().and_then(|mut slot| slot.take())
    }

    /// Asks the terminal to abort the sale `reference` if it is the one running now.
    pub fn abort(&self, reference: &str) -> bool {
        match self.shared.current_sale.lock() {
            Ok(slot) => match slot.as_ref() {
                Some((running, token)) if running == reference => {
                    token.cancel();
                    true
                }
                _ => false,
            },
            Err(_) => false,
        }
    }
}
