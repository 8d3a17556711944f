//! The outbox's gate: Create Payment calls still being answered, per payment. A callback for a
//! payment waits until none is in flight: VTEX loses results that race its own authorization
//! request.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;

#[derive(Debug, Default)]
pub struct InFlight {
    gate: Mutex<Gate>,
    /// Told when the last answer in flight for an awaited payment has been sent.
    released: Notify,
}

#[derive(Debug, Default)]
struct Gate {
    /// Create answers in flight, per payment.
    counts: HashMap<String, usize>,
    /// Payments whose due callback is held back: only their release wakes the worker, so the
    /// Gateway's polls of other payments do not.
    awaited: HashSet<String>,
}

/// Held while a Create answer is on its way; dropping it releases the payment.
#[derive(Debug)]
pub struct InFlightGuard {
    owner: Arc<InFlight>,
    payment_id: String,
}

impl InFlight {
    pub fn enter(self: &Arc<Self>, payment_id: &str) -> InFlightGuard {
        *self
            .lock()
            .counts
            .entry(payment_id.to_string())
            .or_default() += 1;
        InFlightGuard {
            owner: self.clone(),
            payment_id: payment_id.to_string(),
        }
    }

    /// Whether a callback of `payment_id` must wait: a Create answer for it is in flight. If
    /// so, [`InFlight::released`] resolves once the last one is sent — asked and noted under
    /// one lock, so a release in between is never missed.
    pub fn hold_back(&self, payment_id: &str) -> bool {
        let mut gate = self.lock();
        let in_flight = gate.counts.contains_key(payment_id);
        if in_flight {
            gate.awaited.insert(payment_id.to_string());
        }
        in_flight
    }

    /// Resolves when a payment [`InFlight::hold_back`] held has no answer in flight any more
    /// (at once if that happened since the last call).
    pub async fn released(&self) {
        self.released.notified().await;
    }

    fn lock(&self) -> MutexGuard<'_, Gate> {
        // A count is changed in one step: a panic elsewhere cannot leave one half-changed.
        self.gate.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        let mut gate = self.owner.lock();
        let Some(n) = gate.counts.get_mut(&self.payment_id) else {
            return;
        };
        *n -= 1;
        if *n == 0 {
            gate.counts.remove(&self.payment_id);
            if gate.awaited.remove(&self.payment_id) {
                // A permit if the worker is not waiting yet: it looks again at once.
                self.owner.released.notify_one();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_nested_calls() {
        let f = Arc::new(InFlight::default());
        let a = f.enter("p");
        let b = f.enter("p");
        drop(a);
        assert!(f.hold_back("p"));
        drop(b);
        assert!(!f.hold_back("p"));
    }

    #[tokio::test(start_paused = true)]
    async fn only_the_release_of_a_held_back_payment_wakes_the_worker() {
        let f = Arc::new(InFlight::default());
        let held = f.enter("held");
        let other = f.enter("other");
        assert!(f.hold_back("held"));
        // Released before anyone waits: not lost.
        drop(other);
        let quiet = tokio::time::timeout(std::time::Duration::from_secs(1), f.released());
        assert!(quiet.await.is_err(), "woken by a payment nothing waits for");
        drop(held);
        let woken = tokio::time::timeout(std::time::Duration::ZERO, f.released());
        assert!(
            woken.await.is_ok(),
            "the held-back payment's release was lost"
        );
    }
}
