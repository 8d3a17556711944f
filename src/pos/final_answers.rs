//! Final answers served without the database writer. A final payment's PPP answer is frozen
//! when it becomes final and never changes again (not even when an approved payment is later
//! cancelled: see `answer`), so a repeated Create of a final payment — the Gateway's poll — can
//! be answered from memory. Kept here only after the transaction that made it final (or that a
//! Create found it final in) has committed, and only for the requests the engine provably
//! answers with it (see [`FinalAnswers::get`]); anything else goes through the writer as before.
//!
//! Sound because the daemon is the only writer of its database (the writer lock,
//! `posbridge.db.lock`: a second process cannot open it for writing), so nothing changes a row
//! behind this memory, and a frozen answer is only ever removed with its payment — which the
//! store counts ([`Store::payments_deleted`]): any deletion empties the memory.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};

use super::answer::{NextStep, PaymentAnswer, PaymentReply};
use super::{CREDIT_METHOD, CreatePayment, DEBIT_METHOD, Terms, mismatch};
use crate::payment::Payment;
use crate::store::Store;

/// How many final answers are kept; the oldest kept goes first. The Gateway polls a payment
/// for minutes after it ends, so a few thousand cover a busy store; each costs about 1 KiB.
pub(super) const CAPACITY: usize = 4096;

/// The Gateway's paymentId under its merchant: what a Create names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    merchant: String,
    vtex_payment_id: String,
}

pub(super) struct FinalAnswers {
    store: Store,
    capacity: usize,
    kept: Mutex<Kept>,
}

#[derive(Default)]
struct Kept {
    /// `Store::payments_deleted` when these were read: they hold while it is unchanged.
    deletions: u64,
    replies: HashMap<Key, PaymentReply>,
    /// Oldest first; each key once (a key is kept only when absent).
    order: VecDeque<Key>,
}

/// What to read before the database call whose result may be kept: proves no payment was
/// deleted between the read and the keeping.
#[derive(Debug, Clone, Copy)]
pub(super) struct Before {
    deletions: u64,
}

impl FinalAnswers {
    pub(super) fn new(store: Store, capacity: usize) -> Self {
        Self {
            store,
            capacity,
            kept: Mutex::new(Kept::default()),
        }
    }

    /// Taken before the database call whose payment [`FinalAnswers::keep`] may keep.
    pub(super) fn before(&self) -> Before {
        Before {
            deletions: self.store.payments_deleted(),
        }
    }

    /// Keeps `payment`'s final answer, read by a call started after `before` and committed.
    /// Only a frozen answer is kept (a row written before answers were frozen computes its
    /// answer from its state, which a cancellation changes), and only for card sales (a Test
    /// Suite payment's answer to a repeat depends on headers the engine checks again).
    pub(super) fn keep(&self, before: Before, payment: &Payment) {
        if !payment.state.is_final()
            || !(payment.method == CREDIT_METHOD || payment.method == DEBIT_METHOD)
        {
            return;
        }
        let Some(Ok(frozen)) = payment
            .final_answer
            .as_deref()
            .map(serde_json::from_str::<PaymentAnswer>)
        else {
            return;
        };
        let key = Key {
            merchant: payment.merchant.clone(),
            vtex_payment_id: payment.vtex_payment_id().to_string(),
        };
        let mut kept = self.lock();
        kept.forget_if_deleted(self.store.payments_deleted());
        if before.deletions != kept.deletions || kept.replies.contains_key(&key) {
            // A payment was deleted since this one was read (it may be this one), or it is
            // kept already.
            return;
        }
        while kept.replies.len() >= self.capacity {
            let Some(oldest) = kept.order.pop_front() else {
                break;
            };
            kept.replies.remove(&oldest);
        }
        let reply = PaymentReply {
            payment: payment.clone(),
            next: NextStep::Final(Box::new(frozen)),
        };
        kept.order.push_back(key.clone());
        kept.replies.insert(key, reply);
    }

    /// The reply the engine would give `request` from `merchant`, if kept: the payment is final
    /// with its frozen answer, and the request is the same as the one it was created by (the
    /// engine's own comparison, [`mismatch`]; with a card sale's method, nothing else in a
    /// repeated Create changes the engine's answer). `None`: ask the engine.
    pub(super) fn get(&self, merchant: &str, request: &CreatePayment) -> Option<PaymentReply> {
        let key = Key {
            merchant: merchant.to_string(),
            vtex_payment_id: request.payment_id.clone(),
        };
        let mut kept = self.lock();
        kept.forget_if_deleted(self.store.payments_deleted());
        let reply = kept.replies.get(&key)?;
        if mismatch(&reply.payment, Terms::of_request(request)).is_some() {
            return None;
        }
        Some(reply.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        // Nothing in here can be left half-changed by a panic that matters: at worst an entry
        // is missing from `order` and stays until a deletion empties the memory.
        self.kept.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Kept {
    /// Empties the memory when payments were deleted since it was filled.
    fn forget_if_deleted(&mut self, deletions: u64) {
        if self.deletions != deletions {
            self.replies.clear();
            self.order.clear();
            self.deletions = deletions;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Currency;
    use crate::payment::PaymentState;
    use crate::store::payments;

    /// A final card payment `id` of merchant `m` with its answer frozen, as stored.
    async fn final_payment(store: &Store, id: &str) -> Payment {
        let id = id.to_string();
        store
            .call(move |c| {
                payments::insert(c, &payments::test_payment(&id, PaymentState::Approved), 0)?;
                let p = super::super::must_get(c, &id)?;
                let answer = PaymentAnswer::of(&p, p.state.ppp_status(), None).to_json()?;
                payments::freeze_answer(c, &id, &answer)?;
                super::super::must_get(c, &id)
            })
            .await
            .expect("stored")
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
        Store::open_inline(&dir.path().join("answers.db")).expect("store")
    }

    #[tokio::test]
    async fn only_the_same_request_of_the_same_merchant_gets_a_kept_answer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store(&dir);
        let answers = FinalAnswers::new(store.clone(), 8);
        let before = answers.before();
        let p = final_payment(&store, "p1").await;
        answers.keep(before, &p);
        let kept = answers.get("m", &repeat("p1")).expect("kept");
        assert_eq!(
            kept.next,
            NextStep::Final(Box::new(PaymentAnswer::final_of(&p).expect("final")))
        );
        // The callback URL is not compared by the engine either.
        assert!(answers.get("another merchant", &repeat("p1")).is_none());
        assert!(answers.get("m", &repeat("p2")).is_none());
        let mut other = repeat("p1");
        other.amount_minor = 1001;
        assert!(answers.get("m", &other).is_none(), "another amount");
        let mut other = repeat("p1");
        other.installments = Some(3);
        assert!(answers.get("m", &other).is_none(), "installments");
    }

    #[tokio::test]
    async fn kept_answers_are_bounded_and_the_oldest_goes_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store(&dir);
        let answers = FinalAnswers::new(store.clone(), 2);
        for id in ["p1", "p2", "p3"] {
            let before = answers.before();
            let p = final_payment(&store, id).await;
            answers.keep(before, &p);
            // Kept again (a second poll): neither a second place nor a new age.
            answers.keep(before, &p);
        }
        assert!(answers.get("m", &repeat("p1")).is_none(), "evicted");
        assert!(answers.get("m", &repeat("p2")).is_some());
        assert!(answers.get("m", &repeat("p3")).is_some());
    }

    #[tokio::test]
    async fn a_deleted_payment_empties_the_memory_and_is_not_kept_if_read_before() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store(&dir);
        let answers = FinalAnswers::new(store.clone(), 8);
        let before = answers.before();
        let p1 = final_payment(&store, "p1").await;
        answers.keep(before, &p1);
        // Read before a deletion, kept after it: it may be the row deleted, so not kept.
        let before = answers.before();
        let p2 = final_payment(&store, "p2").await;
        store
            .call(|c| Ok(c.execute("DELETE FROM payments WHERE payment_id = 'p1'", [])?))
            .await
            .expect("deleted");
        answers.keep(before, &p2);
        assert!(answers.get("m", &repeat("p1")).is_none(), "deleted");
        assert!(answers.get("m", &repeat("p2")).is_none(), "read before");
        // Read after it: kept.
        let before = answers.before();
        answers.keep(before, &p2);
        assert!(answers.get("m", &repeat("p2")).is_some());
    }

    #[tokio::test]
    async fn what_can_still_change_is_not_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store(&dir);
        let answers = FinalAnswers::new(store.clone(), 8);
        let before = answers.before();
        let mut p = final_payment(&store, "p1").await;
        // Written before answers were frozen: its answer follows its state.
        let unfrozen = Payment {
            final_answer: None,
            ..p.clone()
        };
        answers.keep(before, &unfrozen);
        let charging = Payment {
            state: PaymentState::Charging,
            ..p.clone()
        };
        answers.keep(before, &charging);
        assert!(answers.get("m", &repeat("p1")).is_none());
        // A Test Suite card: the engine checks the request's headers again.
        p.method = "Visa".into();
        answers.keep(before, &p);
        let mut visa = repeat("p1");
        visa.method = "Visa".into();
        assert!(answers.get("m", &visa).is_none());
    }
}
