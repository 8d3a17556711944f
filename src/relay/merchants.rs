//! The merchants the configuration flow onboarded through the relay tier: one entry per app
//! key in the `posbridge_merchants` bucket, holding a hash of its token (never the token).
//! Every replica follows the bucket into its `Credentials`, so credentials issued on one
//! replica are accepted on all; deleting an entry revokes them.

use std::sync::Arc;

use async_nats::jetstream::kv;
use tokio_util::sync::CancellationToken;

use crate::ppp::auth::Credentials;

pub const MERCHANTS_BUCKET: &str = "posbridge_merchants";

/// A token's hash as the configuration flow writes it: 64 hex digits.
fn token_hash_of(entry: &kv::Entry) -> Option<String> {
    let hash = std::str::from_utf8(&entry.value).ok()?;
    (hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit())).then(|| hash.to_string())
}

fn apply(credentials: &Credentials, entry: &kv::Entry) {
    match entry.operation {
        kv::Operation::Put => match token_hash_of(entry) {
            Some(hash) => credentials.add_issued(&entry.key, &hash),
            None => {
                credentials.remove_issued(&entry.key);
                tracing::error!(app_key = %entry.key, "a merchant's entry cannot be read: its credentials are refused");
            }
        },
        kv::Operation::Delete | kv::Operation::Purge => {
            credentials.remove_issued(&entry.key);
            tracing::info!(app_key = %entry.key, "a merchant's credentials were revoked");
        }
    }
}

/// Keeps `credentials` accepting exactly the merchants in the bucket, until `stop`.
pub async fn follow(
    bucket: kv::Store,
    credentials: Arc<Credentials>,
    loaded: CancellationToken,
    stop: CancellationToken,
) {
    let reloaded = credentials.clone();
    let reload = move |entries: Vec<kv::Entry>| {
        let issued: Vec<(String, String)> = entries
            .iter()
            .filter(|e| e.operation == kv::Operation::Put)
            .filter_map(|e| {
                let hash = token_hash_of(e);
                if hash.is_none() {
                    tracing::error!(app_key = %e.key, "a merchant's entry cannot be read: its credentials are refused");
                }
                Some((e.key.clone(), hash?))
            })
            .collect();
        tracing::info!(
            merchants = issued.len(),
            "issued merchant credentials loaded"
        );
        reloaded.replace_issued(issued);
    };
    let change = move |entry: kv::Entry| apply(&credentials, &entry);
    super::watch::follow(
        bucket,
        "the merchants' credentials",
        reload,
        change,
        loaded,
        stop,
    )
    .await;
}

/// Issues credentials: the entry is created (never overwritten), then accepted here at once
/// (the other replicas follow the bucket).
pub async fn issue(
    bucket: &kv::Store,
    credentials: &Credentials,
    app_key: &str,
    token_hash: &str,
) -> Result<(), String> {
    bucket
        .create(app_key, bytes::Bytes::from(token_hash.to_string()))
        .await
        .map_err(|e| e.to_string())?;
    credentials.add_issued(app_key, token_hash);
    Ok(())
}
