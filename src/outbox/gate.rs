//! The outbox's gate: Create Payment calls still being answered, per payment. A callback for a
//! payment waits until none is in flight: VTEX loses results that race its own authorization
//! request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

#[derive(Debug, Default)]
pub struct InFlight {
    counts: Mutex<HashMap<String, usize>>,
    released: Notify,
}

/// Held while a Create answer is on its way; dropping it releases the payment.
#[derive(Debug)]
pub struct InFlightGuard {
    owner: Arc<InFlight>,
    payment_id: String,
}

impl InFlight {
    pub fn enter(self: &Arc<Self>, payment_id: &str) -> InFlightGuard {
        if let Ok(mut counts) = self.counts.lock() {
            *counts.entry(payment_id.to_string()).or_default() += 1;
        }
        InFlightGuard {
            owner: self.clone(),
            payment_id: payment_id.to_string(),
        }
    }

    pub fn is_in_flight(&self, payment_id: &str) -> bool {
        self.counts
            .lock()
            .map(|c| c.contains_key(payment_id))
            .unwrap_or(false)
    }

    /// Resolves when some Create answer has been sent.
    pub async fn released(&self) {
        self.released.notified().await;
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        if let Ok(mut counts) = self.owner.counts.lock()
            && let Some(n) = counts.get_mut(&self.payment_id)
        {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.payment_id);
            }
        }
        self.owner.released.notify_waiters();
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
        assert!(f.is_in_flight("p"));
        drop(b);
        assert!(!f.is_in_flight("p"));
    }
}
