//! The stores' callbacks, delivered by the relay tier: every store hands its callbacks to one
//! JetStream stream (durable once acknowledged), and the relay replicas share one durable
//! consumer of it, so each callback is posted by one replica at a time, with the partner's keys,
//! and retried on the store daemon's schedule (`[callbacks]`) until the Gateway takes it — by
//! another replica if this one dies mid-attempt (JetStream gives it out again after `ack_wait`).

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer};
use futures_util::StreamExt;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::payments::Payments;
use crate::config::CallbackConfig;
use crate::outbox::{CallbackSender, retry_delay};
use crate::seal::SealKey;
use crate::uplink::callbacks::{ALL_CALLBACKS, CALLBACKS_STREAM};

/// The relay replicas' one consumer of the stream (they share its messages).
const CONSUMER: &str = "relay-callbacks";
/// Callback attempts in flight at once in one replica.
const IN_FLIGHT: usize = 32;

/// The stream's settings: a work queue (a callback leaves it once delivered or given up).
pub fn stream_config(replicas: usize) -> jetstream::stream::Config {
    jetstream::stream::Config {
        name: CALLBACKS_STREAM.to_string(),
        subjects: vec![ALL_CALLBACKS.to_string()],
        retention: jetstream::stream::RetentionPolicy::WorkQueue,
        num_replicas: replicas,
        ..Default::default()
    }
}

/// Delivers until `stop`; after a lost connection, takes up the consumer again.
pub async fn deliver<S: CallbackSender>(
    stream: jetstream::stream::Stream,
    payments: Payments,
    seal: Arc<SealKey>,
    sender: S,
    config: CallbackConfig,
    stop: CancellationToken,
) {
    let sender = Arc::new(sender);
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    // An attempt may take the whole request timeout; the message is given out again only
    // after that (to another replica if this one died).
    let ack_wait = Duration::from_secs(config.request_timeout_s + 20);
    loop {
        let run = async {
            let consumer: consumer::PullConsumer = stream
                .get_or_create_consumer(
                    CONSUMER,
                    consumer::pull::Config {
                        durable_name: Some(CONSUMER.to_string()),
                        ack_policy: consumer::AckPolicy::Explicit,
                        ack_wait,
                        max_deliver: -1,
                        ..Default::default()
                    },
                )
                .await
                .map_err(|e| e.to_string())?;
            let mut messages = consumer.messages().await.map_err(|e| e.to_string())?;
            while let Some(message) = messages.next().await {
                let message = message.map_err(|e| e.to_string())?;
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    break;
                };
                let (sender, config, payments, seal) = (
                    sender.clone(),
                    config.clone(),
                    payments.clone(),
                    seal.clone(),
                );
                tokio::spawn(async move {
                    deliver_one(&*sender, &config, &payments, &seal, message).await;
                    drop(slot);
                });
            }
            Ok::<(), String>(())
        };
        let why = tokio::select! {
            () = stop.cancelled() => return,
            result = run => result.err().unwrap_or_else(|| "the consumer ended".to_string()),
        };
        tracing::warn!(error = %why, "lost the stores' callback stream: taking it up again");
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// How long the schedule has waited between `attempts` attempts.
fn tried_for(config: &CallbackConfig, attempts: u32) -> Duration {
    (1..attempts).map(|n| retry_delay(config, n)).sum()
}

async fn deliver_one<S: CallbackSender>(
    sender: &S,
    config: &CallbackConfig,
    payments: &Payments,
    seal: &SealKey,
    message: jetstream::Message,
) {
    let store_id = message
        .subject
        .split('.')
        .nth(2)
        .unwrap_or_default()
        .to_string();
    let body = std::str::from_utf8(&message.payload).ok();
    let payment_id = body
        .and_then(|b| serde_json::from_str::<serde_json::Value>(b).ok())
        .and_then(|v| {
            v.get("paymentId")
                .and_then(|p| p.as_str().map(str::to_string))
        });
    let attempts = message
        .info()
        .map(|info| u32::try_from(info.delivered).unwrap_or(u32::MAX))
        .unwrap_or(1);
    let (Some(body), Some(payment_id)) = (body, payment_id) else {
        tracing::error!(store_id = %store_id, "ALARM: a store's callback the relay cannot read: dropped; the store's own record of the payment is the truth");
        let _ = message.ack_with(AckKind::Term).await;
        return;
    };
    // Posted only where the Gateway asked for this payment, and only for the store that has it.
    let url = match payments.get(&payment_id).await {
        Ok(Some(found)) if found.payment.store.as_deref() == Some(store_id.as_str()) => {
            found.payment.callback_url(seal)
        }
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(payment_id = %payment_id, error = %e, "cannot read the payment's record: the callback waits");
            let _ = message
                .ack_with(AckKind::Nak(Some(Duration::from_secs(5))))
                .await;
            return;
        }
    };
    let Some(url) = url else {
        tracing::error!(payment_id = %payment_id, store_id = %store_id, "ALARM: a store sent a callback for a payment the relay did not route to it: dropped, nothing posted");
        let _ = message.ack_with(AckKind::Term).await;
        return;
    };
    match sender.send(&url, body).await {
        Ok(()) => {
            if let Err(e) = message.ack().await {
                // Given out again later: the Gateway may see it twice (it takes repeats).
                tracing::warn!(payment_id = %payment_id, error = %e, "delivered, but cannot tell the stream");
            }
            tracing::info!(payment_id = %payment_id, store_id = %store_id, attempts, "callback delivered");
        }
        Err(e) if tried_for(config, attempts) >= Duration::from_secs(config.give_up_after_s) => {
            tracing::error!(payment_id = %payment_id, store_id = %store_id, attempts, error = %e, "ALARM: callback given up after the retry schedule: the Gateway learns the result only from a Create poll");
            let _ = message.ack_with(AckKind::Term).await;
        }
        Err(e) => {
            let delay = retry_delay(config, attempts);
            tracing::warn!(payment_id = %payment_id, store_id = %store_id, attempts, retry_in_s = delay.as_secs(), error = %e, "callback not delivered: retrying");
            let _ = message.ack_with(AckKind::Nak(Some(delay))).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_callback_is_given_up_after_the_schedule_has_run_its_time() {
        let config = CallbackConfig {
            first_retry_s: 5,
            max_interval_s: 60,
            give_up_after_s: 3600,
            request_timeout_s: 10,
        };
        assert_eq!(tried_for(&config, 1), Duration::ZERO);
        assert_eq!(tried_for(&config, 4), Duration::from_secs(5 + 10 + 20));
        // 5+10+20+40 then 60 s each: an hour has passed at the 64th attempt.
        let given_up = (1..200)
            .find(|n| tried_for(&config, *n) >= Duration::from_secs(3600))
            .expect("given up");
        assert_eq!(given_up, 64);
    }
}
