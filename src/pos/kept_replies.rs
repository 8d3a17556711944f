//! Replies to repeated Creates, kept in memory: the Gateway polls every payment with the same
//! Create until it is final, and for minutes after, so most Creates are answered from here,
//! without a read or the writer.
//!
//! Only what a repeated Create provably gets again is kept: a card sale that is not bound
//! (bound is the one state in which a Create starts the charge, on the writer), read from a
//! committed row, and served only for the same request (the engine's own comparison,
//! [`mismatch`]). A kept reply is served only while the store's log of written payments
//! ([`Store::payment_written_since`]) shows no change to its row since the mark taken before
//! the read it came from; any change, a deletion, or a mark older than the log remembers makes
//! it read again. So a poll never gets an answer older than a change whose caller has been
//! answered (a change is logged before that).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use super::answer::PaymentReply;
use super::{CREDIT_METHOD, CreatePayment, DEBIT_METHOD, Terms, mismatch};
use crate::payment::PaymentState;
use crate::store::{Store, WriteMark};

/// How many replies are kept; the oldest kept goes first. Each costs about 1 KiB: a few
/// thousand cover every payment a busy store has in flight and those the Gateway still polls.
pub(super) const CAPACITY: usize = 4096;

/// The Gateway's paymentId under its merchant: what a Create names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    merchant: String,
    vtex_payment_id: String,
}

pub(super) struct KeptReplies {
    store: Store,
    capacity: usize,
    kept: Mutex<Kept>,
}

#[derive(Default)]
struct Kept {
    replies: HashMap<Key, Entry>,
    /// Oldest first; each key once (a key is kept only when absent).
    order: VecDeque<Key>,
}

struct Entry {
    /// Taken before the read the reply came from.
    mark: WriteMark,
    /// Shared with the polls it answers: a poll copies no payment.
    reply: Arc<PaymentReply>,
}

impl KeptReplies {
    pub(super) fn new(store: Store, capacity: usize) -> Self {
        Self {
            store,
            capacity,
            kept: Mutex::new(Kept::default()),
        }
    }

    /// Taken before the read whose payment [`KeptReplies::keep`] may keep.
    pub(super) fn mark(&self) -> WriteMark {
        self.store.write_mark()
    }

    /// Keeps `reply`, a repeat's reply made from a committed row read by a read begun after
    /// `mark`: unless its payment is bound, not a card sale (a Test Suite payment's answer
    /// depends on headers the engine checks again), or changed since `mark`.
    pub(super) fn keep(&self, mark: WriteMark, reply: &Arc<PaymentReply>) {
        let payment = &reply.payment;
        if payment.state == PaymentState::Bound
            || !(payment.method == CREDIT_METHOD || payment.method == DEBIT_METHOD)
        {
            return;
        }
        let key = Key {
            merchant: payment.merchant.clone(),
            vtex_payment_id: payment.vtex_payment_id().to_string(),
        };
        let mut kept = self.lock();
        if kept.replies.contains_key(&key)
            || self.store.payment_written_since(mark, &payment.payment_id)
        {
            return;
        }
        while kept.replies.len() >= self.capacity {
            let Some(oldest) = kept.order.pop_front() else {
                break;
            };
            kept.replies.remove(&oldest);
        }
        kept.order.push_back(key.clone());
        kept.replies.insert(
            key,
            Entry {
                mark,
                reply: reply.clone(),
            },
        );
    }

    /// The reply the engine would give `request` from `merchant`, if kept and its row is
    /// unchanged since. `None`: ask the engine.
    pub(super) fn get(&self, merchant: &str, request: &CreatePayment) -> Option<Arc<PaymentReply>> {
        let key = Key {
            merchant: merchant.to_string(),
            vtex_payment_id: request.payment_id.clone(),
        };
        let mut kept = self.lock();
        let entry = kept.replies.get(&key)?;
        if self
            .store
            .payment_written_since(entry.mark, &entry.reply.payment.payment_id)
        {
            // Read again by the caller, and kept again from that read.
            kept.replies.remove(&key);
            kept.order.retain(|k| *k != key);
            return None;
        }
        if mismatch(&entry.reply.payment, Terms::of_request(request)).is_some() {
            return None;
        }
        Some(entry.reply.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        // Nothing in here can be left half-changed by a panic that matters: at worst an entry
        // is missing from `order` and stays until it is found changed.
        self.kept.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Currency;
    use crate::payment::Payment;
    use crate::pos::answer::{NextStep, PaymentAnswer};
    use crate::store::payments;

    /// Stores card payment `id` of merchant `m` in `state` (final ones with their answer
    /// frozen) and reads it back, as the engine's read does after `mark`.
    async fn stored(store: &Store, id: &str, state: PaymentState) -> Payment {
        let owned = id.to_string();
        store
            .call(move |c| {
                let id = owned;
                payments::insert(c, &payments::test_payment(&id, state), 0)?;
                let p = super::super::must_get(c, &id)?;
                if state.is_final() {
                    let answer = PaymentAnswer::of(&p, p.state.ppp_status(), None).to_json()?;
                    payments::freeze_answer(c, &id, &answer)?;
                }
                Ok(())
            })
            .await
            .expect("stored");
        read(store, id).await
    }

    async fn read(store: &Store, id: &str) -> Payment {
        let id = id.to_string();
        store
            .read(move |c| super::super::must_get(c, &id))
            .await
            .expect("read")
    }

    fn reply_of(p: &Payment) -> Arc<PaymentReply> {
        Arc::new(PaymentReply::of(p.clone(), false))
    }

    /// The repeat the test payments were created by.
    fn repeat(id: &str) -> CreatePayment {
        CreatePayment {
            payment_id: id.into(),
            transaction_id: "t".into(),
            method: CREDIT_METHOD.into(),
            amount_minor: 1000,
            currency: Currency::parse("BRL").expect("BRL"),
            installments: None,
            callback_url: "http://127.0.0.1:9/another-callback".into(),
            test_card: None,
            is_test_suite: false,
            relay_assigned: None,
        }
    }

    fn store(dir: &tempfile::TempDir) -> Store {
        Store::open_inline(&dir.path().join("replies.db")).expect("store")
    }

    #[tokio::test]
    async fn only_the_same_request_of_the_same_merchant_gets_a_kept_reply() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store(&dir);
        let replies = KeptReplies::new(store.clone(), 8);
        let p = stored(&store, "p1", PaymentState::Approved).await;
        replies.keep(replies.mark(), &reply_of(&p));
        let kept = replies.get("m", &repeat("p1")).expect("kept");
        assert_eq!(
            kept.next,
            NextStep::Final(Box::new(PaymentAnswer::final_of(&p).expect("final")))
        );
        // The callback URL is not compared by the engine either.
        assert!(replies.get("another merchant", &repeat("p1")).is_none());
        assert!(replies.get("m", &repeat("p2")).is_none());
        let mut other = repeat("p1");
        other.amount_minor = 1001;
        assert!(replies.get("m", &other).is_none(), "another amount");
        let mut other = repeat("p1");
        other.installments = Some(3);
        assert!(replies.get("m", &other).is_none(), "installments");
    }

    #[tokio::test]
    async fn a_reply_is_served_only_while_its_row_is_unchanged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store(&dir);
        let replies = KeptReplies::new(store.clone(), 8);
        let mark = replies.mark();
        let p = stored(&store, "p1", PaymentState::Received).await;
        // Read after a mark taken before the row's last change: it may be the old row.
        replies.keep(mark, &reply_of(&p));
        assert!(
            replies.get("m", &repeat("p1")).is_none(),
            "kept across a change"
        );
        replies.keep(replies.mark(), &reply_of(&p));
        assert_eq!(
            replies.get("m", &repeat("p1")).expect("kept").next,
            NextStep::NameTerminal
        );
        // The Sales App names the terminal: the next poll must reach the writer, which starts
        // the charge.
        store
            .call(|c| payments::bind_terminal(c, "p1", "lane-1", 1))
            .await
            .expect("bound");
        assert!(
            replies.get("m", &repeat("p1")).is_none(),
            "served after a bind"
        );
        // A bound payment is never kept; a deleted one is not served.
        let bound = read(&store, "p1").await;
        replies.keep(replies.mark(), &reply_of(&bound));
        assert!(
            replies.get("m", &repeat("p1")).is_none(),
            "kept while bound"
        );
        let q = stored(&store, "p2", PaymentState::Charging).await;
        replies.keep(replies.mark(), &reply_of(&q));
        assert!(replies.get("m", &repeat("p2")).is_some());
        store
            .call(|c| Ok(c.execute("DELETE FROM payments WHERE payment_id = 'p2'", [])?))
            .await
            .expect("deleted");
        assert!(
            replies.get("m", &repeat("p2")).is_none(),
            "served once deleted"
        );
    }

    #[tokio::test]
    async fn kept_replies_are_bounded_and_the_oldest_goes_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store(&dir);
        let replies = KeptReplies::new(store.clone(), 2);
        let mut read_back = Vec::new();
        for id in ["p1", "p2", "p3"] {
            read_back.push(stored(&store, id, PaymentState::Charging).await);
        }
        let mark = replies.mark();
        for p in &read_back {
            replies.keep(mark, &reply_of(p));
            // Kept again (a second poll): neither a second place nor a new age.
            replies.keep(mark, &reply_of(p));
        }
        assert!(replies.get("m", &repeat("p1")).is_none(), "evicted");
        assert!(replies.get("m", &repeat("p2")).is_some());
        assert!(replies.get("m", &repeat("p3")).is_some());
    }

    #[tokio::test]
    async fn a_test_suite_payment_is_not_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store(&dir);
        let replies = KeptReplies::new(store.clone(), 8);
        let mut p = stored(&store, "p1", PaymentState::Approved).await;
        // A Test Suite card: the engine checks the request's headers again.
        p.method = "Visa".into();
        replies.keep(replies.mark(), &reply_of(&p));
        let mut visa = repeat("p1");
        visa.method = "Visa".into();
        assert!(replies.get("m", &visa).is_none());
    }
}
