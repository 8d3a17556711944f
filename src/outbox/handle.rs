//! The outbox's front door: what the rest of the daemon does with callbacks. The engine queues
//! them with its results and holds them while a Create answer is in flight; store IT makes
//! them due again. The worker ([`super::OutboxWorker`]) is built from the same handle, so a
//! wake-up or a release always reaches it.

use std::sync::{Arc, Mutex, PoisonError};

use rusqlite::Connection;
use tokio::sync::Notify;

use super::gate::{InFlight, InFlightGuard};
use crate::store::outbox::{self, Callback};
use crate::store::{Store, StoreError};

#[derive(Clone)]
pub struct Outbox {
    store: Store,
    gate: Arc<InFlight>,
    wake: Arc<Notify>,
    /// Callbacks handed over after the commit that queued them, not yet taken by the worker.
    handed: Arc<Mutex<Vec<Callback>>>,
}

/// Which undelivered callbacks store IT asks to send again now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redeliver {
    /// The callback with this number.
    Callback(i64),
    /// A callback's number or a paymentId (all of that payment's); a number names a callback
    /// first.
    CallbackOrPayment(String),
}

/// What a re-delivery made due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redelivered {
    /// The callback with this number.
    Callback(i64),
    /// Every undelivered callback of the payment named, oldest first.
    Payment(Vec<i64>),
    /// No undelivered callback goes by that name.
    Nothing,
}

impl Outbox {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            gate: Arc::new(InFlight::default()),
            wake: Arc::new(Notify::new()),
            handed: Arc::default(),
        }
    }

    /// Queues a payment's callback in the transaction `c` that records its result, so the
    /// result and its callback commit together. Once it is committed, give what this returns
    /// to [`Outbox::hand_over`] (or call [`Outbox::wake`]).
    pub fn enqueue(
        c: &Connection,
        payment_id: &str,
        url: &str,
        body: &str,
        now: i64,
    ) -> Result<Callback, StoreError> {
        let id = outbox::enqueue(c, payment_id, url, body, now)?;
        Ok(Callback {
            id,
            payment_id: payment_id.to_string(),
            url: Some(url.to_string()),
            body: body.to_string(),
            attempts: 0,
            created_at: now,
            next_attempt_at: now,
        })
    }

    /// Gives the worker a callback whose queueing is committed, so its first attempt starts
    /// without a look at the outbox (the row stays the durable copy: retries, restarts and a
    /// worker that cannot start it now find it there), and wakes the worker.
    pub fn hand_over(&self, callback: Callback) {
        self.handed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(callback);
        self.wake();
    }

    /// Holds the payment's callbacks until the guard is dropped: while its Create answer is
    /// on its way.
    pub fn hold(&self, payment_id: &str) -> InFlightGuard {
        self.gate.enter(payment_id)
    }

    /// Tells the worker to look for due callbacks now (after a commit that queued one).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Makes the named undelivered callbacks due now (given-up ones too: one more attempt)
    /// and wakes the worker.
    pub async fn redeliver_now(
        &self,
        which: Redeliver,
        now: i64,
    ) -> Result<Redelivered, StoreError> {
        let made_due = self
            .store
            .call(move |c| {
                let (callback, payment) = match &which {
                    Redeliver::Callback(id) => (Some(*id), None),
                    Redeliver::CallbackOrPayment(name) => (name.parse::<i64>().ok(), Some(name)),
                };
                if let Some(id) = callback
                    && outbox::redeliver_now(c, id, now)?
                {
                    return Ok(Redelivered::Callback(id));
                }
                if let Some(payment_id) = payment {
                    let ids = outbox::redeliver_payment_now(c, payment_id, now)?;
                    if !ids.is_empty() {
                        return Ok(Redelivered::Payment(ids));
                    }
                }
                Ok(Redelivered::Nothing)
            })
            .await?;
        if made_due != Redelivered::Nothing {
            self.wake();
        }
        Ok(made_due)
    }

    /// The callbacks handed over since the last call.
    pub(super) fn take_handed(&self) -> Vec<Callback> {
        std::mem::take(&mut *self.handed.lock().unwrap_or_else(PoisonError::into_inner))
    }

    pub(super) fn store(&self) -> &Store {
        &self.store
    }

    pub(super) fn gate(&self) -> &InFlight {
        &self.gate
    }

    pub(super) fn woken(&self) -> &Notify {
        &self.wake
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payment::PaymentState;
    use crate::store::payments;

    async fn outbox_with_callbacks(dir: &std::path::Path) -> Outbox {
        let store = Store::open_inline(&dir.join("handle.db")).expect("open");
        store
            .call(|c| {
                let p = payments::test_payment("p1", PaymentState::Approved);
                payments::insert(c, &p, 0)?;
                Outbox::enqueue(c, "p1", &p.callback_url, "{}", 0)?;
                Outbox::enqueue(c, "p1", &p.callback_url, "{}", 0)?;
                let id: i64 = c.query_row("SELECT MIN(id) FROM outbox", [], |r| r.get(0))?;
                outbox::delivered(c, id, 0)
            })
            .await
            .expect("seed");
        Outbox::new(store)
    }

    #[tokio::test]
    async fn redelivers_a_callback_by_number_first_then_a_payment_by_id() {
        let dir = tempfile::tempdir().expect("tempdir");
        let outbox = outbox_with_callbacks(dir.path()).await;
        // The first callback was delivered: only the second is made due again.
        let by_payment = outbox
            .redeliver_now(Redeliver::CallbackOrPayment("p1".into()), 5)
            .await
            .expect("redeliver");
        assert_eq!(by_payment, Redelivered::Payment(vec![2]));
        let by_number = outbox
            .redeliver_now(Redeliver::CallbackOrPayment("2".into()), 6)
            .await
            .expect("redeliver");
        assert_eq!(by_number, Redelivered::Callback(2));
        for delivered in [
            Redeliver::Callback(1),
            Redeliver::CallbackOrPayment("1".into()),
        ] {
            let none = outbox.redeliver_now(delivered, 7).await.expect("redeliver");
            assert_eq!(none, Redelivered::Nothing);
        }
    }

    #[tokio::test]
    async fn a_redelivery_wakes_the_worker_and_a_miss_does_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let outbox = outbox_with_callbacks(dir.path()).await;
        outbox
            .redeliver_now(Redeliver::Callback(1), 5)
            .await
            .expect("redeliver");
        // notify_one stores a permit: a wake-up before the wait is not lost.
        let woken = tokio::time::timeout(std::time::Duration::ZERO, outbox.woken().notified());
        assert!(woken.await.is_err(), "woken without a callback made due");
        outbox
            .redeliver_now(Redeliver::Callback(2), 5)
            .await
            .expect("redeliver");
        let woken = tokio::time::timeout(std::time::Duration::ZERO, outbox.woken().notified());
        assert!(
            woken.await.is_ok(),
            "not woken after a callback was made due"
        );
    }
}
