//! Where the configuration flow keeps what it waits for (an authorization token until the
//! merchant types the code, then a one-time authorization code until VTEX exchanges it) and
//! the credentials it issues. A store daemon keeps the first in memory and the credentials in
//! its database ([`StoreRecords`]); the relay tier keeps both in NATS, so that any replica
//! continues a flow another began. Only hashes of tokens and codes are ever keys.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::pos::Engine;
use crate::ppp::auth::Credentials;

/// How long a token or an authorization code stays good.
pub const LIFETIME: Duration = Duration::from_secs(600);

/// An authorization token VTEX asked for, until the merchant types the code.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingToken {
    pub return_url: String,
    pub application_id: String,
    /// Wall-clock milliseconds (a relay's replicas share no monotonic clock).
    pub expires_ms: u64,
    pub failures: u32,
}

/// A one-time authorization code, until VTEX exchanges it for credentials.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingCode {
    pub application_id: String,
    pub expires_ms: u64,
}

/// Now, in wall-clock milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// When something made now expires.
pub fn expiry() -> u64 {
    now_ms().saturating_add(u64::try_from(LIFETIME.as_millis()).unwrap_or(u64::MAX))
}

/// The records could not be reached (the relay tier's NATS away): nothing was changed.
#[derive(Debug, thiserror::Error)]
#[error("the configuration flow's records cannot be reached: {0}")]
pub struct RecordsDown(pub String);

/// What the configuration flow keeps, by the hash of a token or code.
pub trait OnboardingRecords: Send + Sync {
    fn keep_token(
        &self,
        hash: String,
        token: PendingToken,
    ) -> BoxFuture<'_, Result<(), RecordsDown>>;
    /// The token, while good.
    fn token<'a>(
        &'a self,
        hash: &'a str,
    ) -> BoxFuture<'a, Result<Option<PendingToken>, RecordsDown>>;
    /// Counts one wrong code on the token: its wrong codes so far, or `None` if it is gone.
    fn count_failure<'a>(
        &'a self,
        hash: &'a str,
    ) -> BoxFuture<'a, Result<Option<u32>, RecordsDown>>;
    /// Takes the token, once: whoever asks after finds none.
    fn take_token<'a>(
        &'a self,
        hash: &'a str,
    ) -> BoxFuture<'a, Result<Option<PendingToken>, RecordsDown>>;
    fn keep_code(&self, hash: String, code: PendingCode) -> BoxFuture<'_, Result<(), RecordsDown>>;
    /// Takes the code, once.
    fn take_code<'a>(
        &'a self,
        hash: &'a str,
    ) -> BoxFuture<'a, Result<Option<PendingCode>, RecordsDown>>;
    /// Keeps credentials issued to a merchant (the token's hash only) and accepts them from now.
    fn issue<'a>(
        &'a self,
        app_key: &'a str,
        token_hash: &'a str,
    ) -> BoxFuture<'a, Result<(), RecordsDown>>;
}

/// A store daemon's: tokens and codes in memory (a restart only asks the merchant to start
/// again), issued credentials in its database.
pub struct StoreRecords {
    tokens: Mutex<HashMap<String, PendingToken>>,
    codes: Mutex<HashMap<String, PendingCode>>,
    engine: Arc<Engine>,
    credentials: Arc<Credentials>,
}

impl StoreRecords {
    pub fn new(engine: Arc<Engine>, credentials: Arc<Credentials>) -> Self {
        Self {
            tokens: Mutex::new(HashMap::new()),
            codes: Mutex::new(HashMap::new()),
            engine,
            credentials,
        }
    }

    fn poisoned() -> RecordsDown {
        RecordsDown("a lock was poisoned".into())
    }
}

impl OnboardingRecords for StoreRecords {
    fn keep_token(
        &self,
        hash: String,
        token: PendingToken,
    ) -> BoxFuture<'_, Result<(), RecordsDown>> {
        let kept = self.tokens.lock().map(|mut tokens| {
            let now = now_ms();
            tokens.retain(|_, t| t.expires_ms > now);
            tokens.insert(hash, token);
        });
        Box::pin(std::future::ready(kept.map_err(|_| Self::poisoned())))
    }

    fn token<'a>(
        &'a self,
        hash: &'a str,
    ) -> BoxFuture<'a, Result<Option<PendingToken>, RecordsDown>> {
        let found = self.tokens.lock().map(|tokens| {
            tokens
                .get(hash)
                .filter(|t| t.expires_ms > now_ms())
                .cloned()
        });
        Box::pin(std::future::ready(found.map_err(|_| Self::poisoned())))
    }

    fn count_failure<'a>(
        &'a self,
        hash: &'a str,
    ) -> BoxFuture<'a, Result<Option<u32>, RecordsDown>> {
        let counted = self.tokens.lock().map(|mut tokens| {
            tokens
                .get_mut(hash)
                .filter(|t| t.expires_ms > now_ms())
                .map(|t| {
                    t.failures += 1;
                    t.failures
                })
        });
        Box::pin(std::future::ready(counted.map_err(|_| Self::poisoned())))
    }

    fn take_token<'a>(
        &'a self,
        hash: &'a str,
    ) -> BoxFuture<'a, Result<Option<PendingToken>, RecordsDown>> {
        let taken = self
            .tokens
            .lock()
            .map(|mut tokens| tokens.remove(hash).filter(|t| t.expires_ms > now_ms()));
        Box::pin(std::future::ready(taken.map_err(|_| Self::poisoned())))
    }

    fn keep_code(&self, hash: String, code: PendingCode) -> BoxFuture<'_, Result<(), RecordsDown>> {
        let kept = self.codes.lock().map(|mut codes| {
            let now = now_ms();
            codes.retain(|_, c| c.expires_ms > now);
            codes.insert(hash, code);
        });
        Box::pin(std::future::ready(kept.map_err(|_| Self::poisoned())))
    }

    fn take_code<'a>(
        &'a self,
        hash: &'a str,
    ) -> BoxFuture<'a, Result<Option<PendingCode>, RecordsDown>> {
        let taken = self
            .codes
            .lock()
            .map(|mut codes| codes.remove(hash).filter(|c| c.expires_ms > now_ms()));
        Box::pin(std::future::ready(taken.map_err(|_| Self::poisoned())))
    }

    fn issue<'a>(
        &'a self,
        app_key: &'a str,
        token_hash: &'a str,
    ) -> BoxFuture<'a, Result<(), RecordsDown>> {
        Box::pin(async move {
            self.engine
                .record_merchant(app_key, token_hash)
                .await
                .map_err(|e| RecordsDown(e.to_string()))?;
            self.credentials.add_issued(app_key, token_hash);
            Ok(())
        })
    }
}
