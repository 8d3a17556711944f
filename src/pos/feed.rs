//! What the Payment App feed may read and write in the database: a payment by id (read only)
//! and the feed's own event log. The hub gets this narrow handle from the engine instead of the
//! database itself, so it can change no payment.

use rusqlite::Connection;

use crate::payment::Payment;
use crate::store::events::{self, StoredEvent};
use crate::store::payments;
use crate::store::{Store, StoreError};

#[derive(Clone)]
pub struct FeedStore {
    store: Store,
}

/// The feed's view of one transaction.
pub struct FeedTx<'c> {
    c: &'c Connection,
}

impl FeedStore {
    pub(super) fn new(store: Store) -> Self {
        Self { store }
    }

    /// Runs `work` in one transaction and answers once it is committed.
    pub async fn transaction<R, F>(&self, work: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&FeedTx<'_>) -> Result<R, StoreError> + Send + 'static,
    {
        self.store.call(move |c| work(&FeedTx { c })).await
    }

    /// Forgets every feed event older than `before` (unix ms); how many.
    pub async fn prune(&self, before: i64) -> Result<usize, StoreError> {
        self.store.call(move |c| events::prune(c, before)).await
    }
}

impl FeedTx<'_> {
    pub fn payment(&self, payment_id: &str) -> Result<Option<Payment>, StoreError> {
        payments::get(self.c, payment_id)
    }

    /// The next sequence number of a payment's feed.
    pub fn next_seq(&self, payment_id: &str) -> Result<i64, StoreError> {
        events::next_seq(self.c, payment_id)
    }

    /// Appends an event whose frame already carries `seq` (from [`FeedTx::next_seq`]).
    pub fn append(
        &self,
        payment_id: &str,
        seq: i64,
        kind: &str,
        body: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        events::append(self.c, payment_id, seq, kind, body, now)
    }

    /// Events with a sequence number above `after`, in order.
    pub fn after(&self, payment_id: &str, after: i64) -> Result<Vec<StoredEvent>, StoreError> {
        events::after(self.c, payment_id, after)
    }

    /// The latest event of `kind` in a payment's feed.
    pub fn last_of_kind(
        &self,
        payment_id: &str,
        kind: &str,
    ) -> Result<Option<StoredEvent>, StoreError> {
        events::last_of_kind(self.c, payment_id, kind)
    }
}
