//! The store's terminal serial numbers in the relay's serial map: one key per store, its own
//! `store_id`, holding the JSON list of its serials, written whole. A store's NATS user may write
//! only that key, so no store can take over another's terminals; the relay reads every store's
//! list and refuses a serial two stores claim.

use std::sync::Arc;
use std::time::Duration;

use async_nats::Client;
use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use super::{Connections, SERIALS_BUCKET};

/// How long to wait between looks for the bucket, while the relay tier has not made it.
const BUCKET_RETRY: Duration = Duration::from_secs(5);

/// Writes the store's entry, and again after every reconnection (the relay tier may have
/// lost or replaced its records meanwhile: a new NATS cluster, a bucket made anew).
pub(super) async fn announce(
    client: Client,
    store_id: String,
    serials: Vec<String>,
    connected: Arc<Connections>,
    stop: CancellationToken,
) {
    // A plain JetStream publish to the entry's subject (what a key-value put is): the store's
    // account has no JetStream of its own, only this subject of the relay's.
    let jetstream = async_nats::jetstream::new(client);
    let subject = format!("$KV.{SERIALS_BUCKET}.{store_id}");
    let list = match serde_json::to_vec(&serials) {
        Ok(list) => Bytes::from(list),
        Err(e) => {
            tracing::error!(error = %e, "cannot write the terminal list for the relay");
            return;
        }
    };
    let mut told = false;
    loop {
        // A connection after this count may have found the relay tier without the entry.
        let seen = connected.count();
        let written = match jetstream.publish(subject.clone(), list.clone()).await {
            Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match written {
            Ok(_) => {
                tracing::info!(
                    serials = %serials.join(", "),
                    "terminals announced to the relay"
                );
                told = false;
                // Until the next (re)connection.
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = connected.after(seen) => continue,
                }
            }
            Err(e) if !told => {
                tracing::warn!(
                    bucket = SERIALS_BUCKET,
                    error = %e,
                    "cannot announce this store's terminals to the relay tier yet: it cannot route payments here until then; retrying"
                );
                told = true;
            }
            Err(_) => {}
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(BUCKET_RETRY) => {}
        }
    }
}
