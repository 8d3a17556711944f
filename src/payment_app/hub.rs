//! The live feed of each payment for its Payment App: the engine's state changes and every
//! driver's terminal prompts become numbered events, persisted before anyone sees them, then
//! fanned out to the payment's sockets through bounded queues.
//!
//! * Sequence numbers are per payment and stored in SQLite with the event (one writer assigns
//!   them), so `?after=SEQ` resumes without loss or duplicates, across restarts too.
//! * A subscriber whose queue is full is dropped at once and told so (`lagged`): the payment,
//!   the hub and the other sockets never wait for a slow client.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value, json};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use crate::locale;
use crate::payment::{Payment, PaymentState};
use crate::pos::answer::PaymentAnswer;
use crate::pos::{
    DEBIT_METHOD, Engine, FeedStore, FeedTx, PaymentChange, StoreError, payment_app_token,
};
use crate::secret::ct_eq;
use crate::terminal::{TerminalEvent, mask_card_numbers};

/// Events a socket may have queued before it counts as fallen behind.
/// Bigger than a batch, so one burst never drops a client that keeps up.
pub const CLIENT_BUFFER: usize = 2048;
/// A payment's feed (and its token) stays open this long after the payment is final.
pub const TOKEN_VALID_AFTER_FINAL_MS: i64 = 10 * 60 * 1000;
/// Feeds are forgotten this long after their result (at start).
const KEEP_FEEDS_MS: i64 = 24 * 60 * 60 * 1000;
/// At most this many inputs go into one database transaction.
const MAX_BATCH: usize = 1024;

/// One event of a payment's feed, as sent.
#[derive(Debug)]
pub struct FeedEvent {
    pub seq: i64,
    /// The `result` event: the last one; the socket closes (1000) after it.
    pub is_final: bool,
    pub json: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("wrong token or unknown payment")]
    BadToken,
    #[error("the feed of this payment has expired")]
    Expired,
    #[error("internal error")]
    Internal,
}

enum Input {
    Change(PaymentChange),
    Prompt(TerminalEvent),
    Error {
        payment_id: String,
        code: String,
        message: String,
    },
    /// A client joined a feed with no events yet: record the payment's current state.
    Ensure(String),
}

struct Subscriber {
    id: u64,
    tx: mpsc::Sender<Arc<FeedEvent>>,
    lagged: CancellationToken,
}

type Sources = (
    broadcast::Receiver<PaymentChange>,
    broadcast::Receiver<TerminalEvent>,
    mpsc::UnboundedReceiver<Input>,
);

pub struct Hub {
    engine: Arc<Engine>,
    /// Payments by id and the feed's own events: all the hub touches in the database.
    db: FeedStore,
    subscribers: Mutex<HashMap<String, Vec<Subscriber>>>,
    next_id: AtomicU64,
    inputs: mpsc::UnboundedSender<Input>,
    sources: Mutex<Option<Sources>>,
    /// Cancelled when the daemon shuts down: every socket closes with a close frame.
    sockets_stop: CancellationToken,
}

/// What a joining socket sends first.
pub struct Backlog {
    pub events: Vec<Arc<FeedEvent>>,
    /// The sequence number of the result, once the payment is final.
    pub final_seq: Option<i64>,
}

/// A socket's place in a payment's fan-out; leaving is dropping it.
pub struct Subscription {
    hub: Arc<Hub>,
    payment_id: String,
    id: u64,
    pub events: mpsc::Receiver<Arc<FeedEvent>>,
    /// Cancelled when this subscriber fell behind and was dropped from the fan-out.
    pub lagged: CancellationToken,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.unsubscribe(&self.payment_id, self.id);
    }
}

impl Hub {
    /// Subscribes to the engine at once (call before the engine starts, to miss nothing).
    pub fn new(engine: Arc<Engine>, sockets_stop: CancellationToken) -> Arc<Self> {
        let (inputs, inputs_rx) = mpsc::unbounded_channel();
        let sources = (
            engine.subscribe_changes(),
            engine.subscribe_terminal_events(),
            inputs_rx,
        );
        Arc::new(Self {
            db: engine.feed(),
            engine,
            subscribers: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            inputs,
            sources: Mutex::new(Some(sources)),
            sockets_stop,
        })
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    pub fn sockets_stop(&self) -> &CancellationToken {
        &self.sockets_stop
    }

    /// Records and fans out events until `stop`.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let sources = self.sources.lock().ok().and_then(|mut s| s.take());
        let Some((mut changes, mut prompts, mut inputs)) = sources else {
            return;
        };
        let before = self.engine.now_ms() - KEEP_FEEDS_MS;
        match self.db.prune(before).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(events = n, "payment app: old feeds forgotten"),
            Err(e) => tracing::warn!(error = %e, "payment app: cannot prune old feeds"),
        }
        loop {
            let mut batch = Vec::new();
            tokio::select! {
                () = stop.cancelled() => return,
                r = changes.recv() => push_broadcast(&mut batch, r, Input::Change),
                r = prompts.recv() => push_broadcast(&mut batch, r, Input::Prompt),
                Some(i) = inputs.recv() => batch.push(i),
            }
            while batch.len() < MAX_BATCH {
                let before = batch.len();
                if let Ok(c) = changes.try_recv() {
                    batch.push(Input::Change(c));
                }
                if let Ok(p) = prompts.try_recv() {
                    batch.push(Input::Prompt(p));
                }
                if let Ok(i) = inputs.try_recv() {
                    batch.push(i);
                }
                if batch.len() == before {
                    break;
                }
            }
            self.record_and_fan_out(batch).await;
        }
    }

    async fn record_and_fan_out(&self, mut batch: Vec<Input>) {
        // Across the two channels, order is by meaning: a charge starts before the terminal
        // shows anything, and the result comes after what it showed.
        batch.sort_by_key(|i| match i {
            Input::Change(c) if c.state == PaymentState::Charging => 0,
            Input::Ensure(_) => 0,
            Input::Prompt(_) => 1,
            _ => 2,
        });
        let now = self.engine.now_ms();
        let recorded = self
            .db
            .transaction(move |c| {
                let mut out = Vec::new();
                let mut cursors = HashMap::new();
                for input in batch {
                    record(c, input, now, &mut cursors, &mut out)?;
                }
                Ok(out)
            })
            .await;
        match recorded {
            Ok(events) => {
                for (payment_id, event) in events {
                    self.fan_out(&payment_id, Arc::new(event));
                }
            }
            Err(e) => tracing::error!(error = %e, "payment app: cannot record feed events"),
        }
    }

    fn fan_out(&self, payment_id: &str, event: Arc<FeedEvent>) {
        let Ok(mut subscribers) = self.subscribers.lock() else {
            return;
        };
        let Some(list) = subscribers.get_mut(payment_id) else {
            return;
        };
        list.retain(|s| match s.tx.try_send(event.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::info!(payment_id = %payment_id, "payment app: a client fell behind; closing it");
                s.lagged.cancel();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        });
        if list.is_empty() {
            subscribers.remove(payment_id);
        }
    }

    /// Joins a payment's fan-out. Join first, then read the backlog: nothing falls between.
    pub fn subscribe(self: &Arc<Self>, payment_id: &str) -> Subscription {
        let (tx, rx) = mpsc::channel(CLIENT_BUFFER);
        let lagged = CancellationToken::new();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut subscribers) = self.subscribers.lock() {
            subscribers
                .entry(payment_id.to_string())
                .or_default()
                .push(Subscriber {
                    id,
                    tx,
                    lagged: lagged.clone(),
                });
        }
        Subscription {
            hub: self.clone(),
            payment_id: payment_id.to_string(),
            id,
            events: rx,
            lagged,
        }
    }

    fn unsubscribe(&self, payment_id: &str, id: u64) {
        if let Ok(mut subscribers) = self.subscribers.lock()
            && let Some(list) = subscribers.get_mut(payment_id)
        {
            list.retain(|s| s.id != id);
            if list.is_empty() {
                subscribers.remove(payment_id);
            }
        }
    }

    /// How many sockets follow a payment (for tests and the status page).
    pub fn clients(&self) -> usize {
        self.subscribers
            .lock()
            .map(|s| s.values().map(Vec::len).sum())
            .unwrap_or(0)
    }

    /// Checks a feed token: the payment's own, and not expired.
    pub async fn authorize(&self, payment_id: &str, token: &str) -> Result<(), Denied> {
        let (id, token) = (payment_id.to_string(), token.to_string());
        let now = self.engine.now_ms();
        let checked = self
            .db
            .transaction(move |c| {
                let Some(p) = c.payment(&id)? else {
                    return Ok(Err(Denied::BadToken));
                };
                if !ct_eq(payment_app_token(&p).as_bytes(), token.as_bytes()) {
                    return Ok(Err(Denied::BadToken));
                }
                let result = c.last_of_kind(&id, "result")?;
                if result.is_some_and(|r| now > r.created_at + TOKEN_VALID_AFTER_FINAL_MS) {
                    return Ok(Err(Denied::Expired));
                }
                Ok(Ok(()))
            })
            .await;
        checked.unwrap_or_else(|e| {
            tracing::error!(payment_id = %payment_id, error = %e, "payment app: cannot check a token");
            Err(Denied::Internal)
        })
    }

    /// What a joining socket sends first: the events after `after`; without it, the feed
    /// from its latest state event (the current state first). Records the current state of
    /// a feed that has no events yet.
    pub async fn backlog(
        &self,
        payment_id: &str,
        after: Option<i64>,
    ) -> Result<Backlog, StoreError> {
        let id = payment_id.to_string();
        let stored = self
            .db
            .transaction(move |c| {
                let from = match after {
                    Some(seq) => seq,
                    None => c.last_of_kind(&id, "state")?.map_or(0, |e| e.seq - 1),
                };
                let result = c.last_of_kind(&id, "result")?.map(|e| e.seq);
                Ok((c.after(&id, from)?, c.next_seq(&id)? == 1, result))
            })
            .await?;
        let (list, empty, final_seq) = stored;
        if empty {
            let _ = self.inputs.send(Input::Ensure(payment_id.to_string()));
        }
        let events = list
            .into_iter()
            .map(|e| {
                Arc::new(FeedEvent {
                    seq: e.seq,
                    is_final: e.kind == "result",
                    json: e.body,
                })
            })
            .collect();
        Ok(Backlog { events, final_seq })
    }

    /// Adds an `error` event to a payment's feed (e.g. a cancel the terminal cannot do).
    pub fn report_error(&self, payment_id: &str, code: &str, message: &str) {
        let _ = self.inputs.send(Input::Error {
            payment_id: payment_id.to_string(),
            code: code.to_string(),
            message: message.to_string(),
        });
    }
}

fn push_broadcast<T>(
    batch: &mut Vec<Input>,
    received: Result<T, broadcast::error::RecvError>,
    wrap: fn(T) -> Input,
) {
    match received {
        Ok(v) => batch.push(wrap(v)),
        Err(broadcast::error::RecvError::Lagged(n)) => {
            tracing::warn!(missed = n, "payment app: the feed missed engine events")
        }
        Err(broadcast::error::RecvError::Closed) => {}
    }
}

/// What a batch knows of one payment's feed (read once per batch, then kept up to date).
struct FeedCursor {
    payment: Payment,
    next_seq: i64,
    finished: bool,
    last_state: Option<String>,
}

/// Writes what `input` means for its payment's feed; appends what to fan out to `out`.
fn record(
    c: &FeedTx<'_>,
    input: Input,
    now: i64,
    cursors: &mut HashMap<String, Option<FeedCursor>>,
    out: &mut Vec<(String, FeedEvent)>,
) -> Result<(), StoreError> {
    let payment_id = match &input {
        Input::Change(change) => change.payment_id.clone(),
        Input::Prompt(prompt) => prompt.reference.clone(),
        Input::Error { payment_id, .. } | Input::Ensure(payment_id) => payment_id.clone(),
    };
    if !cursors.contains_key(&payment_id) {
        let cursor = match c.payment(&payment_id)? {
            // Not a payment: e.g. a prompt during a reversal, named by the operation.
            None => None,
            Some(payment) => Some(FeedCursor {
                payment,
                next_seq: c.next_seq(&payment_id)?,
                finished: c.last_of_kind(&payment_id, "result")?.is_some(),
                last_state: c
                    .last_of_kind(&payment_id, "state")?
                    .and_then(|e| serde_json::from_str::<Value>(&e.body).ok())
                    .and_then(|v| v["state"].as_str().map(str::to_string)),
            }),
        };
        cursors.insert(payment_id.clone(), cursor);
    }
    let Some(Some(cursor)) = cursors.get_mut(&payment_id) else {
        return Ok(());
    };
    if cursor.finished {
        return Ok(()); // the feed is over
    }
    let mut push = |cursor: &mut FeedCursor, kind: &str, at_ms: f64, fields: Value| {
        let seq = cursor.next_seq;
        let mut frame = Map::new();
        frame.insert("seq".into(), json!(seq));
        frame.insert("type".into(), json!(kind));
        if let Value::Object(fields) = fields {
            frame.extend(fields);
        }
        frame.insert("at".into(), json!(at_ms));
        let body = Value::Object(frame).to_string();
        c.append(&payment_id, seq, kind, &body, now)?;
        cursor.next_seq += 1;
        cursor.finished |= kind == "result";
        out.push((
            payment_id.clone(),
            FeedEvent {
                seq,
                is_final: kind == "result",
                json: body,
            },
        ));
        Ok::<(), StoreError>(())
    };
    #[allow(clippy::cast_precision_loss)]
    let now_ms = now as f64;
    let state = match input {
        Input::Prompt(prompt) => {
            #[allow(clippy::cast_precision_loss)]
            let at = prompt.at_us as f64 / 1000.0;
            let fields =
                json!({ "terminal": prompt.terminal_id, "text": mask_card_numbers(&prompt.text) });
            return push(cursor, "prompt", at, fields);
        }
        Input::Error { code, message, .. } => {
            return push(
                cursor,
                "error",
                now_ms,
                json!({ "code": code, "message": message }),
            );
        }
        Input::Change(change) => {
            if change.state.is_final() {
                // The result carries what the terminal said: read the committed row.
                if let Some(p) = c.payment(&payment_id)? {
                    cursor.payment = p;
                }
            }
            change.state
        }
        Input::Ensure(_) => {
            if cursor.next_seq > 1 {
                return Ok(());
            }
            cursor.payment.state
        }
    };
    if cursor.last_state.as_deref() != Some(state.as_str()) {
        cursor.last_state = Some(state.as_str().to_string());
        let mut fields = sale_fields(&cursor.payment);
        fields.insert("state".into(), json!(state.as_str()));
        fields.insert("status".into(), json!(state.ppp_status().as_str()));
        push(cursor, "state", now_ms, Value::Object(fields))?;
    }
    if state == PaymentState::Unknown {
        let fields = json!({
            "code": "terminal-unclear",
            "message": "the terminal could not tell what happened; posbridge keeps asking it",
        });
        push(cursor, "error", now_ms, fields)?;
    }
    if state.is_final() {
        let fields = result_fields(&cursor.payment, state);
        push(cursor, "result", now_ms, fields)?;
    }
    Ok(())
}

/// What the cashier and the shopper check the sale by: the amount (minor units, and as its
/// currency writes it), credit or debit, the installments and the terminal. On every `state`
/// event, since a client that joins late starts from the latest one.
fn sale_fields(p: &Payment) -> Map<String, Value> {
    let method = if p.method == DEBIT_METHOD {
        "debit"
    } else {
        "credit"
    };
    Map::from_iter([
        ("amount".into(), json!(p.amount_minor)),
        ("currency".into(), json!(p.currency)),
        (
            "amountText".into(),
            json!(locale::money(&p.currency, p.amount_minor)),
        ),
        ("method".into(), json!(method)),
        (
            "installments".into(),
            json!(p.installments.unwrap_or(1).max(1)),
        ),
        ("terminal".into(), json!(p.terminal_id)),
    ])
}

/// The final result as the Payment App may show it (brand and last 4 digits only): what the
/// payment's frozen PPP answer says, so the app, Create and the callback agree.
fn result_fields(p: &Payment, state: PaymentState) -> Value {
    let answer = PaymentAnswer::final_of(p);
    let field = |get: fn(&PaymentAnswer) -> Option<String>| answer.as_ref().and_then(get);
    json!({
        "status": answer.as_ref().map_or(state.ppp_status(), |a| a.status).as_str(),
        "state": state.as_str(),
        "cardBrand": field(|a| a.card_brand.clone()),
        "lastDigits": field(|a| a.last_digits.clone()),
        "authorizationId": field(|a| a.authorization_id.clone()),
        "code": field(|a| a.code.clone()),
        "message": field(|a| a.message.clone()),
    })
}
