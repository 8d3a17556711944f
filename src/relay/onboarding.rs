//! The configuration flow's records on the relay tier: tokens and authorization codes in the
//! `posbridge_onboarding` bucket (by the hash of each, never the secret; a taken one is
//! overwritten with `null`), so that VTEX's token request, the merchant's page and the code
//! exchange may each reach another replica. Counting a wrong code and taking a token or a
//! code are compare-and-sets: a code is exchanged once, however many replicas are asked.

use std::sync::Arc;

use async_nats::jetstream::kv;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::merchants;
use crate::ppp::auth::Credentials;
use crate::ppp::onboarding::records::{
    OnboardingRecords, PendingCode, PendingToken, RecordsDown, now_ms,
};

pub const ONBOARDING_BUCKET: &str = "posbridge_onboarding";

/// Compare-and-set rounds before giving up (each lost round means another replica changed
/// the entry just then).
const ROUNDS: usize = 5;

pub struct RelayOnboardingRecords {
    pending: kv::Store,
    merchants: kv::Store,
    credentials: Arc<Credentials>,
}

impl RelayOnboardingRecords {
    pub fn new(pending: kv::Store, merchants: kv::Store, credentials: Arc<Credentials>) -> Self {
        Self {
            pending,
            merchants,
            credentials,
        }
    }

    async fn put<T: Serialize>(&self, key: String, value: &T) -> Result<(), RecordsDown> {
        let bytes = serde_json::to_vec(&Some(value)).map_err(|e| RecordsDown(e.to_string()))?;
        self.pending
            .put(key, Bytes::from(bytes))
            .await
            .map(|_| ())
            .map_err(|e| RecordsDown(e.to_string()))
    }

    /// The entry while good (`expires_ms` tells), and its revision.
    async fn read<T: DeserializeOwned>(
        &self,
        key: &str,
        expires_ms: impl Fn(&T) -> u64,
    ) -> Result<Option<(T, u64)>, RecordsDown> {
        let Some(entry) = self
            .pending
            .entry(key)
            .await
            .map_err(|e| RecordsDown(e.to_string()))?
        else {
            return Ok(None);
        };
        if entry.operation != kv::Operation::Put {
            return Ok(None);
        }
        let value: Option<T> = serde_json::from_slice(&entry.value)
            .map_err(|e| RecordsDown(format!("an entry this version cannot read: {e}")))?;
        Ok(value
            .filter(|v| expires_ms(v) > now_ms())
            .map(|v| (v, entry.revision)))
    }

    /// Changes the entry by compare-and-set: `change` gives the new value (`None`: taken) and
    /// what to answer; `Ok(None)` when there is no good entry.
    async fn change<T, A>(
        &self,
        key: &str,
        expires_ms: impl Fn(&T) -> u64,
        change: impl Fn(T) -> (Option<T>, A),
    ) -> Result<Option<A>, RecordsDown>
    where
        T: Serialize + DeserializeOwned,
    {
        for _ in 0..ROUNDS {
            let Some((value, revision)) = self.read(key, &expires_ms).await? else {
                return Ok(None);
            };
            let (new, answer) = change(value);
            let bytes = serde_json::to_vec(&new).map_err(|e| RecordsDown(e.to_string()))?;
            match self.pending.update(key, Bytes::from(bytes), revision).await {
                Ok(_) => return Ok(Some(answer)),
                Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {}
                Err(e) => return Err(RecordsDown(e.to_string())),
            }
        }
        Err(RecordsDown("the entry kept changing under us".into()))
    }
}

fn token_key(hash: &str) -> String {
    format!("token.{hash}")
}

fn code_key(hash: &str) -> String {
    format!("code.{hash}")
}

impl OnboardingRecords for RelayOnboardingRecords {
    fn keep_token(
        &self,
        hash: String,
        token: PendingToken,
    ) -> BoxFuture<'_, Result<(), RecordsDown>> {
        Box::pin(async move { self.put(token_key(&hash), &token).await })
    }

    fn token<'a>(
        &'a self,
        hash: &'a str,
    ) -> BoxFuture<'a, Result<Option<PendingToken>, RecordsDown>> {
        Box::pin(async move {
            let found = self
                .read(&token_key(hash), |t: &PendingToken| t.expires_ms)
                .await?;
            Ok(found.map(|(token, _)| token))
        })
    }

    fn count_failure<'a>(
        &'a self,
        hash: &'a str,
    ) -> BoxFuture<'a, Result<Option<u32>, RecordsDown>> {
        Box::pin(async move {
            self.change(
                &token_key(hash),
                |t: &PendingToken| t.expires_ms,
                |mut t| {
                    t.failures += 1;
                    let failures = t.failures;
                    (Some(t), failures)
                },
            )
            .await
        })
    }

    fn take_token<'a>(
        &'a self,
        hash: &'a str,
    ) -> BoxFuture<'a, Result<Option<PendingToken>, RecordsDown>> {
        Box::pin(async move {
            self.change(
                &token_key(hash),
                |t: &PendingToken| t.expires_ms,
                |t| (None, t),
            )
            .await
        })
    }

    fn keep_code(&self, hash: String, code: PendingCode) -> BoxFuture<'_, Result<(), RecordsDown>> {
        Box::pin(async move { self.put(code_key(&hash), &code).await })
    }

    fn take_code<'a>(
        &'a self,
        hash: &'a str,
    ) -> BoxFuture<'a, Result<Option<PendingCode>, RecordsDown>> {
        Box::pin(async move {
            self.change(
                &code_key(hash),
                |c: &PendingCode| c.expires_ms,
                |c| (None, c),
            )
            .await
        })
    }

    fn issue<'a>(
        &'a self,
        app_key: &'a str,
        token_hash: &'a str,
    ) -> BoxFuture<'a, Result<(), RecordsDown>> {
        Box::pin(async move {
            merchants::issue(&self.merchants, &self.credentials, app_key, token_hash)
                .await
                .map_err(RecordsDown)
        })
    }
}
