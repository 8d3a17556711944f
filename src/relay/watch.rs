//! Following a JetStream key-value bucket: every entry at start, then every change; after a
//! lost connection, read whole again. What the relay keeps in memory of the serial map and of
//! the issued merchant credentials is each such a copy.

use std::time::Duration;

use async_nats::jetstream::kv;
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

/// Follows `bucket` until `stop`: `reload` gets every entry at start and after every lost
/// watch, `change` each change after. `loaded` is cancelled once the first full read is in:
/// a replica serves only then, so nothing is refused for being unread.
pub async fn follow(
    bucket: kv::Store,
    what: &'static str,
    mut reload: impl FnMut(Vec<kv::Entry>),
    mut change: impl FnMut(kv::Entry),
    loaded: CancellationToken,
    stop: CancellationToken,
) {
    const RETRY: Duration = Duration::from_secs(1);
    loop {
        // Changes are watched before the entries are read: none falls between the two (an
        // entry is a whole value, so reading one twice changes nothing).
        let read = async {
            let mut changes = bucket.watch_all().await.map_err(|e| e.to_string())?;
            let mut keys = bucket.keys().await.map_err(|e| e.to_string())?;
            let mut entries = Vec::new();
            while let Some(key) = keys.next().await {
                let key = key.map_err(|e| e.to_string())?;
                if let Some(entry) = bucket.entry(&key).await.map_err(|e| e.to_string())? {
                    entries.push(entry);
                }
            }
            reload(entries);
            loaded.cancel();
            while let Some(next) = changes.next().await {
                change(next.map_err(|e| e.to_string())?);
            }
            Ok::<(), String>(())
        };
        let why = tokio::select! {
            () = stop.cancelled() => return,
            result = read => match result {
                Ok(()) => "the watch ended".to_string(),
                Err(e) => e,
            },
        };
        tracing::warn!(error = %why, "lost {what}: reading it again");
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(RETRY) => {}
        }
    }
}
