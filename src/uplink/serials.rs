//! The store's terminal serial numbers in the relay's serial → store map. A serial another store
//! already holds is never taken over: two stores claiming one terminal is a mistake a person
//! must settle, and the relay keeps routing that serial where it did.

use std::time::Duration;

use async_nats::Client;
use async_nats::jetstream::kv::{CreateErrorKind, Store};
use bytes::Bytes;
use futures_util::TryStreamExt;
use tokio_util::sync::CancellationToken;

use super::SERIALS_BUCKET;

/// How long to wait between looks for the bucket, while the relay tier has not made it.
const BUCKET_RETRY: Duration = Duration::from_secs(5);

pub(super) async fn announce(
    client: Client,
    store_id: String,
    serials: Vec<String>,
    stop: CancellationToken,
) {
    let jetstream = async_nats::jetstream::new(client);
    let mut told = false;
    let bucket = loop {
        match jetstream.get_key_value(SERIALS_BUCKET).await {
            Ok(bucket) => break bucket,
            Err(e) => {
                if !told {
                    tracing::warn!(
                        bucket = SERIALS_BUCKET,
                        error = %e,
                        "the relay tier's serial map is not there yet: the relay cannot route payments to this store until it is"
                    );
                    told = true;
                }
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(BUCKET_RETRY) => {}
        }
    };
    for serial in &serials {
        claim(&bucket, &store_id, serial).await;
    }
    release_others(&bucket, &store_id, &serials).await;
}

async fn claim(bucket: &Store, store_id: &str, serial: &str) {
    let owner = Bytes::from(store_id.to_string());
    match bucket.create(serial, owner.clone()).await {
        Ok(_) => tracing::info!(serial, "terminal announced to the relay"),
        Err(e) if e.kind() == CreateErrorKind::AlreadyExists => match bucket.get(serial).await {
            Ok(Some(holder)) if holder == owner => {
                tracing::info!(serial, "terminal already announced to the relay");
            }
            Ok(Some(holder)) => tracing::error!(
                serial,
                holder = %String::from_utf8_lossy(&holder),
                "ALARM: another store holds this terminal's serial number on the relay: its \
                 payments go there, not here; remove the serial from the store that does not \
                 have the terminal"
            ),
            // Deleted between the two calls: the next start claims it.
            Ok(None) => tracing::warn!(
                serial,
                "terminal's serial changed hands on the relay while announced: restart to claim it"
            ),
            Err(e) => tracing::warn!(serial, error = %e, "cannot read the relay's serial map"),
        },
        Err(e) => tracing::warn!(serial, error = %e, "cannot announce the terminal to the relay"),
    }
}

/// Serials this store once announced and no longer has (a terminal moved or removed).
async fn release_others(bucket: &Store, store_id: &str, kept: &[String]) {
    let keys: Vec<String> = match bucket.keys().await {
        Ok(keys) => match keys.try_collect().await {
            Ok(keys) => keys,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the relay's serial map");
                return;
            }
        },
        Err(e) => {
            tracing::warn!(error = %e, "cannot list the relay's serial map");
            return;
        }
    };
    for key in keys.iter().filter(|k| !kept.contains(k)) {
        if let Ok(Some(holder)) = bucket.get(key.as_str()).await
            && holder == store_id.as_bytes()
        {
            match bucket.delete(key).await {
                Ok(()) => {
                    tracing::info!(serial = %key, "terminal no longer here: released on the relay")
                }
                Err(e) => {
                    tracing::warn!(serial = %key, error = %e, "cannot release a terminal on the relay")
                }
            }
        }
    }
}
