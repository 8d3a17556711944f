//! What the relay tier knows of each payment, in a JetStream key-value bucket (replicated by
//! NATS, shared by every relay replica; a replica keeps nothing of its own): the Create it keeps
//! while no store knows the payment, the identity it gave the payment out under (`tid`, the
//! submitUrl's token), and once the Sales App named a terminal, the store that has it. Every
//! change is a compare-and-set on the entry's revision, so two replicas never route one
//! payment two ways.

use async_nats::jetstream::kv;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::ids::{RelayAssigned, RelayMerchant};
use crate::seal::SealKey;

pub const PAYMENTS_BUCKET: &str = "posbridge_payments";

/// One payment as the relay tier records it.
#[derive(Clone, Serialize, Deserialize)]
pub struct RelayedPayment {
    /// The merchant (app key) whose Gateway created it: only its calls reach the payment.
    pub merchant: String,
    pub tid: String,
    pub submit_token: String,
    /// What the relay keeps of the Gateway's first Create (the fields a store reads), its
    /// `callbackUrl` sealed: handed to the store, opened, once the store is known.
    pub create: String,
    /// The store that has the payment's terminal.
    #[serde(default)]
    pub store: Option<String>,
    /// The store answered the handed-over Create: it has the payment.
    #[serde(default)]
    pub delivered: bool,
    /// Cancelled before any store knew it (nothing can have been charged): its cancellation.
    #[serde(default)]
    pub cancellation_id: Option<String>,
}

impl std::fmt::Debug for RelayedPayment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The Create holds the callback URL and its signature; the token is a credential.
        f.debug_struct("RelayedPayment")
            .field("merchant", &self.merchant)
            .field("tid", &self.tid)
            .field("store", &self.store)
            .field("delivered", &self.delivered)
            .field("cancellation_id", &self.cancellation_id)
            .finish_non_exhaustive()
    }
}

/// The fields of a Create a store reads; nothing else is kept (no card, no shopper).
const KEPT: &[&str] = &[
    "paymentId",
    "transactionId",
    "paymentMethod",
    "value",
    "currency",
    "installments",
    "callbackUrl",
];

impl RelayedPayment {
    /// Whether `merchant`'s calls reach this payment (constant time, as a store compares).
    pub fn belongs_to(&self, merchant: &RelayMerchant) -> bool {
        crate::secret::ct_eq(self.merchant.as_bytes(), merchant.0.as_bytes())
    }

    /// The merchant a store serves this payment's requests as.
    pub fn merchant(&self) -> RelayMerchant {
        RelayMerchant(self.merchant.clone())
    }

    pub fn assigned(&self) -> Option<RelayAssigned> {
        RelayAssigned::parse(&self.tid, &self.submit_token)
    }

    /// What to keep of a Create `body`: the fields a store reads, the callback URL (its query
    /// has the Gateway's signature) sealed under `key`.
    pub fn keep(body: &[u8], key: &SealKey) -> Result<String, crate::seal::SealError> {
        let sent: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        let mut kept = serde_json::Map::new();
        for name in KEPT {
            if let Some(value) = sent.get(*name) {
                let value = match (*name, value.as_str()) {
                    ("callbackUrl", Some(url)) => serde_json::Value::String(key.seal(url)?),
                    _ => value.clone(),
                };
                kept.insert((*name).to_string(), value);
            }
        }
        Ok(serde_json::Value::Object(kept).to_string())
    }

    /// The kept Create as a store reads it: its callback URL opened.
    pub fn create_for_store(&self, key: &SealKey) -> Option<String> {
        let mut create: serde_json::Value = serde_json::from_str(&self.create).ok()?;
        let url = self.callback_url(key)?;
        create["callbackUrl"] = serde_json::Value::String(url);
        Some(create.to_string())
    }

    /// Where the Gateway asked for this payment's callbacks.
    pub fn callback_url(&self, key: &SealKey) -> Option<String> {
        let create: serde_json::Value = serde_json::from_str(&self.create).ok()?;
        key.open(create.get("callbackUrl")?.as_str()?).ok()
    }
}

/// A payment's record and the revision it was read at (what a change is conditional on).
#[derive(Debug, Clone)]
pub struct Found {
    pub payment: RelayedPayment,
    revision: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// NATS or JetStream did not answer (a server restarting, the cluster without quorum):
    /// nothing was changed, the caller may try again.
    #[error("the relay tier's payment records cannot be reached: {0}")]
    Unavailable(String),
    /// An entry this version cannot read (written by a newer relay, or damaged).
    #[error("the relay tier's record of this payment cannot be read: {0}")]
    Unreadable(String),
}

#[derive(Clone)]
pub struct Payments {
    bucket: kv::Store,
}

/// A payment id as a key: any text becomes letters and digits (KV keys allow few characters).
fn key(payment_id: &str) -> String {
    crate::secret::hex(payment_id.as_bytes())
}

fn decode(entry: kv::Entry) -> Result<Option<Found>, RecordError> {
    if entry.operation != kv::Operation::Put {
        return Ok(None);
    }
    let payment =
        serde_json::from_slice(&entry.value).map_err(|e| RecordError::Unreadable(e.to_string()))?;
    Ok(Some(Found {
        payment,
        revision: entry.revision,
    }))
}

fn encode(payment: &RelayedPayment) -> Result<Bytes, RecordError> {
    serde_json::to_vec(payment)
        .map(Bytes::from)
        .map_err(|e| RecordError::Unreadable(e.to_string()))
}

impl Payments {
    pub fn new(bucket: kv::Store) -> Self {
        Self { bucket }
    }

    pub async fn get(&self, payment_id: &str) -> Result<Option<Found>, RecordError> {
        match self.bucket.entry(key(payment_id)).await {
            Ok(Some(entry)) => decode(entry),
            Ok(None) => Ok(None),
            Err(e) => Err(RecordError::Unavailable(e.to_string())),
        }
    }

    /// The payment's record: the one already there, or `new`, stored now. The first replica
    /// to store it wins; the others read and answer with its identity.
    pub async fn get_or_insert(
        &self,
        payment_id: &str,
        new: RelayedPayment,
    ) -> Result<Found, RecordError> {
        if let Some(found) = self.get(payment_id).await? {
            return Ok(found);
        }
        match self.bucket.create(key(payment_id), encode(&new)?).await {
            Ok(revision) => Ok(Found {
                payment: new,
                revision,
            }),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => self
                .get(payment_id)
                .await?
                .ok_or_else(|| RecordError::Unavailable("the record vanished".into())),
            Err(e) => Err(RecordError::Unavailable(e.to_string())),
        }
    }

    /// Writes `change` of `found` if nobody changed it since it was read; otherwise `Ok(None)`:
    /// read it again and decide on what is there now.
    pub async fn update(
        &self,
        payment_id: &str,
        found: &Found,
        change: impl FnOnce(&mut RelayedPayment),
    ) -> Result<Option<Found>, RecordError> {
        let mut payment = found.payment.clone();
        change(&mut payment);
        match self
            .bucket
            .update(key(payment_id), encode(&payment)?, found.revision)
            .await
        {
            Ok(revision) => Ok(Some(Found { payment, revision })),
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(None),
            Err(e) => Err(RecordError::Unavailable(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kept_create_has_what_a_store_reads_its_callback_url_sealed_and_no_card_or_shopper() {
        let key = SealKey::derived("test", "a-shared-secret").expect("key");
        let body = serde_json::json!({
            "paymentId": "p-1", "transactionId": "T-1", "paymentMethod": "Venda Direta Credito",
            "value": 10.5, "currency": "BRL", "installments": 1,
            "callbackUrl": "https://gw/cb?X-VTEX-signature=SIGsecret",
            "card": { "number": "4111111111111111", "csc": "123" },
            "miniCart": { "buyer": { "email": "ana@example.com" } },
        })
        .to_string();
        let payment = RelayedPayment {
            merchant: "vtexappkey-partner".into(),
            tid: "pb00112233445566778899".into(),
            submit_token: "t".into(),
            create: RelayedPayment::keep(body.as_bytes(), &key).expect("kept"),
            store: None,
            delivered: false,
            cancellation_id: None,
        };
        for absent in ["4111111111111111", "ana@example.com", "SIGsecret"] {
            assert!(!payment.create.contains(absent), "{}", payment.create);
        }
        assert_eq!(
            payment.callback_url(&key).as_deref(),
            Some("https://gw/cb?X-VTEX-signature=SIGsecret")
        );
        let for_store = payment.create_for_store(&key).expect("opened");
        let request = crate::ppp::read_create(&http::HeaderMap::new(), for_store.as_bytes())
            .expect("a store reads it");
        assert_eq!(
            (request.amount_minor, request.payment_id.as_str()),
            (1050, "p-1")
        );
        // Another key (another partner token) opens nothing.
        let other = SealKey::derived("test", "another-secret").expect("key");
        assert_eq!(payment.callback_url(&other), None);
    }

    #[test]
    fn any_payment_id_is_a_valid_key_and_the_record_never_prints_its_secrets() {
        assert_eq!(key("a.b c*>"), "612e6220632a3e");
        let payment = RelayedPayment {
            merchant: "vtexappkey-partner".into(),
            tid: "pb00112233445566778899".into(),
            submit_token: "secret-token".into(),
            create: "{\"callbackUrl\":\"https://x/cb?X-VTEX-signature=sig\"}".into(),
            store: Some("store-1".into()),
            delivered: false,
            cancellation_id: None,
        };
        let printed = format!("{payment:?}");
        assert!(!printed.contains("secret-token"), "{printed}");
        assert!(!printed.contains("signature"), "{printed}");
        assert!(printed.contains("store-1"), "{printed}");
    }
}
