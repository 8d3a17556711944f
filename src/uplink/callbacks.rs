//! A store's callbacks behind the relay tier: handed to the relay's JetStream stream instead
//! of posted to the Gateway. The store keeps no partner keys; its outbox counts a callback
//! delivered once JetStream acknowledged it (stored, replicated), and the relay replicas post
//! it to the Gateway with the partner's keys and today's schedule — to the callback URL the
//! relay itself kept for that payment, and only for a payment routed to this store: a store
//! cannot have the partner's keys sent anywhere, nor call back another store's payment.

use async_nats::HeaderMap;
use async_nats::jetstream;
use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::outbox::{CallbackSender, SendError};

/// The stream of every store's callbacks (made by the relay tier).
pub const CALLBACKS_STREAM: &str = "posbridge_callbacks";

/// Where the store `store_id` puts its callbacks (within its own subjects).
pub fn callbacks_subject(store_id: &str) -> String {
    format!("posbridge.store.{store_id}.callbacks")
}

/// Every store's callbacks subject, for the stream.
pub const ALL_CALLBACKS: &str = "posbridge.store.*.callbacks";

/// The outbox's sender on a store with `[uplink]`.
pub struct RelayCallbacks {
    jetstream: jetstream::Context,
    subject: String,
}

impl RelayCallbacks {
    pub fn new(client: async_nats::Client, store_id: &str) -> Self {
        Self {
            jetstream: jetstream::new(client),
            subject: callbacks_subject(store_id),
        }
    }
}

impl CallbackSender for RelayCallbacks {
    async fn send(&self, _url: &str, body: &str) -> Result<(), SendError> {
        // The relay posts to the URL it kept for the payment; this one never crosses.
        let mut headers = HeaderMap::new();
        // The same callback handed over twice (an acknowledgement lost, a restart) is stored
        // once: JetStream drops a repeated message id within its duplicate window.
        let id = crate::secret::hex(&Sha256::digest(body.as_bytes()));
        headers.insert("Nats-Msg-Id", id.as_str());
        let relay =
            |e: &dyn std::fmt::Display| SendError::CannotConnect(format!("the relay tier: {e}"));
        let ack = self
            .jetstream
            .publish_with_headers(self.subject.clone(), headers, Bytes::from(body.to_string()))
            .await
            .map_err(|e| relay(&e))?;
        ack.await.map_err(|e| relay(&e))?;
        Ok(())
    }
}
