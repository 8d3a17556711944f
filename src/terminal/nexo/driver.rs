//! The sale system's side of the Terminal API in local mode: payments, their recovery by
//! `TransactionStatus`, aborts, reversals and the `Diagnosis` probe.
//!
//! Every payment and reversal is journaled under a fresh `ServiceID` before it is sent. An
//! answer that does not come, breaks off, fails decryption or its HMAC, or is sealed under
//! another key leaves the payment unclear: only a `TransactionStatus` for its `ServiceID` may
//! settle it (in progress: ask again; not found: never charged; found: its own answer). A
//! payment is never sent twice. Since the terminal only reports its last or current
//! transaction, no new payment or reversal is sent while the journal holds one it has not
//! settled (after a crash, that one is asked about first).

use std::path::{Path, PathBuf};
use std::time::Duration;

use firmware_protocols::nexo::crypto::{self, KeyIdentity, KeyMaterial, OpenError};
use firmware_protocols::nexo::messages::{
    AbortRequest, DiagnosisRequest, Incoming, MessageCategory, MessageReference,
    OriginalPoiTransaction, PaymentInput, PaymentMethod, PaymentRequest, PaymentResponse,
    PaymentStatus, Request, RequestBody, ResponseBody, ResultCode, ReversalRequest,
    TransactionIdentification, TransactionStatusRequest, TransactionStatusResponse,
    currency_minor_digits, is_acknowledgement,
};
use firmware_protocols::nexo::seal_request;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::connection::{Answer, Connection, PostError};
use super::notifications::RunningSale;
use crate::clock::SharedClock;
use crate::terminal::{
    Approval, CardFunction, DriverError, OperationOutcome, OperationQuery, OperationRequest,
    PromptSink, Receipt, ReceiptKind, SaleInquiry, SaleOutcome, SaleQuery, SaleRequest, SentRecord,
    TerminalDriver, Verdict, journal, mask_card_numbers,
};

/// How long a request other than a payment may take (status, abort, reversal, diagnosis):
/// under the actor's bound on any command.
const SERVICE_TIMEOUT: Duration = Duration::from_secs(45);

/// Asking again about a payment still in progress: first after this, then twice as long each
/// time, up to [`IN_PROGRESS_POLL_MAX`].
const IN_PROGRESS_POLL: Duration = Duration::from_secs(1);
const IN_PROGRESS_POLL_MAX: Duration = Duration::from_secs(10);

/// What the driver remembers on disk: one JSON line per step, `{"kind":"sale",…}`, each on
/// disk before the step is taken.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
enum Entry {
    /// A payment about to be sent under `service_id` (before its POST).
    Sale {
        service_id: String,
        /// The payment it charges.
        reference: String,
        amount_minor: i64,
        currency: String,
        at: i64,
    },
    /// A reversal about to be sent under `service_id`, of the sale the terminal calls `sale`
    /// (its POI transaction id).
    Reversal {
        service_id: String,
        /// The operation (reversal or refund) it is; none when the driver gives back an
        /// approval the payment did not keep.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        sale: String,
        amount_minor: i64,
        at: i64,
    },
    /// The request never reached the terminal (no connection, or refused unread).
    NotSent { service_id: String },
    /// The terminal has no such request (`TransactionStatus`: not found): never done.
    NotFound { service_id: String },
    /// The terminal's answer to a payment (card data: brand, first 6 and last 4 digits).
    Result {
        service_id: String,
        result: Box<Kept>,
    },
    /// What the database made of an approval: kept, or to be given back.
    Verdict { service_id: String, keep: bool },
    /// The terminal's answer to a reversal.
    Reversed {
        service_id: String,
        done: bool,
        message: String,
    },
}

/// The part of a payment answer posbridge keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Kept {
    /// The terminal approved (`Success`, or `Partial`): money may be held on the card.
    approved: bool,
    /// Approved for another amount than asked (or partially): never reported approved,
    /// given back instead.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    amount_mismatch: bool,
    /// Why not approved (`Refusal`, `Aborted`…); empty when approved.
    code: String,
    message: String,
    authorization_code: String,
    /// `POIData.POITransactionID`: what a reversal names.
    poi_transaction_id: String,
    poi_time_stamp: String,
    brand: String,
    first_digits: String,
    last_digits: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    receipts: Vec<(String, Vec<String>)>,
}

impl Kept {
    /// The answer to a payment of `requested_minor` in `currency`.
    fn of(answer: &PaymentResponse, requested_minor: i64, currency: &str) -> Self {
        let status = &answer.response;
        let additional = status.additional();
        let said = |key: &str| {
            additional
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| mask_card_numbers(v))
                .filter(|v| !v.is_empty())
        };
        let approved = matches!(status.result, ResultCode::Success | ResultCode::Partial);
        let authorized = answer
            .payment_result
            .as_ref()
            .and_then(|r| r.amounts_resp.as_ref())
            .map(|a| {
                currency_minor_digits(currency)
                    .and_then(|digits| a.authorized_amount.to_minor_units(digits))
                    .and_then(|minor| i64::try_from(minor).ok())
            });
        let amount_mismatch = approved
            && (status.result == ResultCode::Partial
                || authorized.is_some_and(|a| a != Some(requested_minor)));
        let (poi_transaction_id, poi_time_stamp) = answer
            .poi_transaction()
            .map(|t| (t.transaction_id.clone(), t.time_stamp.clone()))
            .unwrap_or_default();
        let card = answer.card();
        let pan = card.and_then(|c| c.masked_pan.as_ref());
        let receipts = answer
            .payment_receipt
            .iter()
            .map(|r| (r.document_qualifier.clone(), r.lines()))
            .collect();
        Self {
            approved,
            amount_mismatch,
            code: if approved {
                String::new()
            } else {
                status
                    .error_condition
                    .map_or_else(|| format!("{:?}", status.result), |c| format!("{c:?}"))
            },
            message: said("refusalReason")
                .or_else(|| said("message"))
                .unwrap_or_default(),
            authorization_code: answer.approval_code().unwrap_or_default().to_string(),
            poi_transaction_id,
            poi_time_stamp,
            brand: card
                .and_then(|c| c.payment_brand.clone())
                .unwrap_or_default(),
            first_digits: pan.map(|p| p.first6().to_string()).unwrap_or_default(),
            last_digits: pan.map(|p| p.last4().to_string()).unwrap_or_default(),
            receipts,
        }
    }

    fn receipts(&self) -> Vec<Receipt> {
        self.receipts
            .iter()
            .map(|(qualifier, lines)| {
                let kind = match qualifier.as_str() {
                    "CashierReceipt" => ReceiptKind::Merchant,
                    "CustomerReceipt" => ReceiptKind::Customer,
                    _ => ReceiptKind::Other,
                };
                Receipt::masked(kind, lines.iter().cloned())
            })
            .collect()
    }

    fn outcome(&self) -> SaleOutcome {
        if self.amount_mismatch {
            return SaleOutcome::Declined {
                code: "amount-mismatch".into(),
                message:
                    "the terminal approved another amount than asked; the approval is given back"
                        .into(),
                receipts: self.receipts(),
            };
        }
        if !self.approved {
            return SaleOutcome::Declined {
                code: self.code.clone(),
                message: if self.message.is_empty() {
                    format!("declined by the terminal ({})", self.code)
                } else {
                    self.message.clone()
                },
                receipts: self.receipts(),
            };
        }
        SaleOutcome::Approved(Approval {
            authorization_code: self.authorization_code.clone(),
            nsu: self.poi_transaction_id.clone(),
            acquirer: "adyen".to_string(),
            card_brand: self.brand.clone(),
            first_digits: self.first_digits.clone(),
            last_digits: self.last_digits.clone(),
            terminal_ref: self.poi_transaction_id.clone(),
            message: format!("POI transaction {}", self.poi_transaction_id),
            receipts: self.receipts(),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Sale,
    Reversal,
}

/// One payment or reversal and what became of it, rebuilt from the journal.
#[derive(Debug, Clone)]
struct Exchange {
    service_id: String,
    kind: Kind,
    /// The payment, or the operation a reversal is (empty: the driver's own).
    reference: String,
    /// The POI transaction a reversal gives back.
    sale: Option<String>,
    amount_minor: i64,
    currency: String,
    at: i64,
    /// Never reached the terminal, or the terminal never had it: never done.
    void: bool,
    result: Option<Kept>,
    /// Whether the database kept the payment's approval.
    keep: Option<bool>,
    reversed: Option<bool>,
}

impl Exchange {
    /// Sent, and the terminal has not told what became of it.
    fn unsettled(&self) -> bool {
        !self.void && self.result.is_none() && self.reversed.is_none()
    }
}

/// Who posbridge is to the terminal, and the shared key.
pub struct TerminalIdentity {
    pub sale_id: String,
    pub poi_id: String,
    pub key: KeyMaterial,
    pub key_identity: KeyIdentity,
}

pub struct NexoDriver {
    terminal_id: String,
    identity: TerminalIdentity,
    connection: Connection,
    /// How long a payment's own answer may take (the shopper is at the terminal).
    result_timeout: Duration,
    journal: PathBuf,
    clock: SharedClock,
    exchanges: Vec<Exchange>,
    in_progress_poll: (Duration, Duration),
    /// Told which payment runs, so the terminal's display notifications reach its feed.
    running_sale: RunningSale,
}

/// What a request came to.
enum Reply {
    /// Its answer (to this very ServiceID).
    Response(Box<ResponseBody>),
    /// The terminal took the request and said nothing (an abort in local mode).
    Acknowledged,
}

impl Reply {
    fn body(self) -> Option<ResponseBody> {
        match self {
            Self::Response(body) => Some(*body),
            Self::Acknowledged => None,
        }
    }
}

/// Why a request has no usable answer.
enum CallError {
    /// It never reached the terminal, or the terminal refused it unread: it did nothing.
    NotSent(String),
    /// It may have reached the terminal, and what came back (if anything) cannot be trusted
    /// as its answer.
    Unclear(String),
}

impl CallError {
    fn into_driver_error(self) -> DriverError {
        match self {
            Self::NotSent(why) => DriverError::Disconnected(why),
            Self::Unclear(why) => DriverError::Protocol(why),
        }
    }
}

/// What a `TransactionStatus` said about a payment.
enum Status {
    Found(Box<Kept>),
    NotFound,
    InProgress,
}

/// A text from the terminal fit for a log line and an error shown to people.
fn printable(bytes: &[u8]) -> String {
    let text: String = String::from_utf8_lossy(bytes)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    mask_card_numbers(text.trim())
}

impl NexoDriver {
    pub fn new(
        terminal_id: &str,
        identity: TerminalIdentity,
        connection: Connection,
        result_timeout: Duration,
        journal: PathBuf,
        clock: SharedClock,
    ) -> Result<Self, DriverError> {
        let mut driver = Self {
            terminal_id: terminal_id.to_string(),
            identity,
            connection,
            result_timeout,
            journal,
            clock,
            exchanges: Vec::new(),
            in_progress_poll: (IN_PROGRESS_POLL, IN_PROGRESS_POLL_MAX),
            running_sale: RunningSale::default(),
        };
        for entry in journal::read::<Entry>(&driver.journal)? {
            driver.apply(entry);
        }
        Ok(driver)
    }

    /// Tells `running_sale` (the terminal's place at the notification desk) each payment it
    /// runs.
    pub(super) fn with_running_sale(mut self, running_sale: RunningSale) -> Self {
        self.running_sale = running_sale;
        self
    }

    /// Where the driver of `terminal_id` keeps its journal, beside the database.
    pub fn journal_path(database: &Path, terminal_id: &str) -> PathBuf {
        journal::path_beside(database, "nexo", terminal_id)
    }

    fn apply(&mut self, entry: Entry) {
        match entry {
            Entry::Sale {
                service_id,
                reference,
                amount_minor,
                currency,
                at,
            } => self.exchanges.push(Exchange {
                service_id,
                kind: Kind::Sale,
                reference,
                sale: None,
                amount_minor,
                currency,
                at,
                void: false,
                result: None,
                keep: None,
                reversed: None,
            }),
            Entry::Reversal {
                service_id,
                reference,
                sale,
                amount_minor,
                at,
            } => self.exchanges.push(Exchange {
                service_id,
                kind: Kind::Reversal,
                reference: reference.unwrap_or_default(),
                sale: Some(sale),
                amount_minor,
                currency: String::new(),
                at,
                void: false,
                result: None,
                keep: None,
                reversed: None,
            }),
            Entry::NotSent { service_id } | Entry::NotFound { service_id } => {
                if let Some(x) = self.exchange_mut(&service_id) {
                    x.void = true;
                }
            }
            Entry::Result { service_id, result } => {
                if let Some(x) = self.exchange_mut(&service_id) {
                    x.result = Some(*result);
                }
            }
            Entry::Verdict { service_id, keep } => {
                if let Some(x) = self.exchange_mut(&service_id) {
                    x.keep = Some(keep);
                }
            }
            Entry::Reversed {
                service_id, done, ..
            } => {
                if let Some(x) = self.exchange_mut(&service_id) {
                    x.reversed = Some(done);
                }
            }
        }
    }

    fn exchange_mut(&mut self, service_id: &str) -> Option<&mut Exchange> {
        self.exchanges
            .iter_mut()
            .rev()
            .find(|x| x.service_id == service_id)
    }

    /// The latest exchange of `kind` for `reference`.
    fn latest(&self, kind: Kind, reference: &str) -> Option<Exchange> {
        self.exchanges
            .iter()
            .rev()
            .find(|x| x.kind == kind && x.reference == reference)
            .cloned()
    }

    /// Journals a step (on disk before the call returns), then remembers it.
    fn record(&mut self, entry: Entry) -> Result<(), DriverError> {
        journal::append(&self.journal, &entry)?;
        self.apply(entry);
        Ok(())
    }

    /// A fresh `ServiceID`: 10 random letters and digits (62^10 values: no two requests of a
    /// `SaleID` share one, across restarts and a lost journal), never one the journal holds.
    fn service_id(&self) -> Result<String, DriverError> {
        const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        loop {
            let mut bytes = [0u8; 10];
            getrandom::fill(&mut bytes)
                .map_err(|e| DriverError::NotSent(format!("no random ServiceID: {e}")))?;
            let id: String = bytes
                .iter()
                .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
                .collect();
            if !self.exchanges.iter().any(|x| x.service_id == id) {
                return Ok(id);
            }
        }
    }

    /// Seals `body` under `service_id`, POSTs it and opens the answer.
    async fn call(
        &self,
        service_id: &str,
        body: RequestBody,
        timeout: Duration,
    ) -> Result<Reply, CallError> {
        let request = Request::service(
            &self.identity.sale_id,
            service_id,
            &self.identity.poi_id,
            body,
        );
        let sealed = seal_request(&request, &self.identity.key, &self.identity.key_identity)
            .map_err(|e| CallError::NotSent(e.to_string()))?;
        let answer = match self.connection.post(sealed, timeout).await {
            Ok(answer) => answer,
            Err(e @ PostError::Unreachable { .. }) => {
                return Err(CallError::NotSent(e.to_string()));
            }
            Err(e @ PostError::NoAnswer(_)) => return Err(CallError::Unclear(e.to_string())),
        };
        if !answer.is_success() {
            return Err(refusal_or_unclear(&answer));
        }
        if is_acknowledgement(&answer.body) {
            return Ok(Reply::Acknowledged);
        }
        let opened = match crypto::open(&answer.body, &self.identity.key) {
            Ok(opened) => opened,
            Err(OpenError::Clear) => {
                return Err(CallError::Unclear(format!(
                    "the terminal answered in clear: {}",
                    printable(&answer.body)
                )));
            }
            Err(e) => return Err(CallError::Unclear(e.to_string())),
        };
        let sealed_under = KeyIdentity {
            key_identifier: opened.trailer.key_identifier.clone(),
            key_version: opened.trailer.key_version,
        };
        if sealed_under != self.identity.key_identity {
            return Err(CallError::Unclear(format!(
                "the answer is sealed under key `{}` version {}, not the configured one",
                sealed_under.key_identifier, sealed_under.key_version
            )));
        }
        match Incoming::from_json(&opened.plaintext) {
            Ok(Incoming::Response(response))
                if response.header.service_id.as_deref() == Some(service_id) =>
            {
                Ok(Reply::Response(Box::new(response.body)))
            }
            Ok(Incoming::Response(response)) => Err(CallError::Unclear(format!(
                "the answer is for ServiceID {:?}, not {service_id}",
                response.header.service_id
            ))),
            Ok(Incoming::Request(request)) => Err(CallError::Unclear(format!(
                "the terminal answered with a {:?} message instead",
                request.header.message_category
            ))),
            Err(e) => Err(CallError::Unclear(e.to_string())),
        }
    }

    /// Sends a `TransactionStatusRequest` for `reference` (under a ServiceID of its own).
    async fn transaction_status(
        &self,
        reference: MessageReference,
    ) -> Result<TransactionStatusResponse, DriverError> {
        let body = RequestBody::TransactionStatusRequest(TransactionStatusRequest {
            message_reference: reference,
        });
        match self
            .call(&self.service_id()?, body, SERVICE_TIMEOUT)
            .await
            .map_err(CallError::into_driver_error)?
            .body()
        {
            Some(ResponseBody::TransactionStatus(status)) => Ok(status),
            _ => Err(DriverError::Protocol(
                "the terminal's answer to TransactionStatus is not a status".into(),
            )),
        }
    }

    /// Asks the terminal about the payment sent as `service_id`.
    async fn ask_status(&self, service_id: &str) -> Result<Status, DriverError> {
        let status = self
            .transaction_status(MessageReference::payment(
                &self.identity.sale_id,
                service_id,
            ))
            .await?;
        match status.payment_status() {
            PaymentStatus::InProgress => Ok(Status::InProgress),
            PaymentStatus::NotFound => Ok(Status::NotFound),
            PaymentStatus::Found(payment) => {
                let repeated = status
                    .repeated_message_response
                    .as_ref()
                    .and_then(|r| r.message_header.service_id.as_deref());
                if repeated.is_some_and(|id| id != service_id) {
                    return Err(DriverError::Protocol(format!(
                        "TransactionStatus for {service_id} repeated the answer to {repeated:?}"
                    )));
                }
                let (amount_minor, currency) = self
                    .exchanges
                    .iter()
                    .rev()
                    .find(|x| x.service_id == service_id)
                    .map(|x| (x.amount_minor, x.currency.as_str()))
                    .unwrap_or_default();
                Ok(Status::Found(Box::new(Kept::of(
                    payment,
                    amount_minor,
                    currency,
                ))))
            }
            PaymentStatus::Unclear => Err(DriverError::Protocol(format!(
                "TransactionStatus for {service_id} neither found it, nor not found, nor in progress ({:?})",
                status.response.error_condition
            ))),
        }
    }

    /// Records what a status said of the payment `service_id`; `None` while in progress.
    fn settle_with(
        &mut self,
        service_id: &str,
        status: Status,
    ) -> Result<Option<SaleQuery>, DriverError> {
        match status {
            Status::Found(kept) => {
                let outcome = kept.outcome();
                self.record(Entry::Result {
                    service_id: service_id.to_string(),
                    result: kept,
                })?;
                Ok(Some(SaleQuery::Completed(outcome)))
            }
            Status::NotFound => {
                self.record(Entry::NotFound {
                    service_id: service_id.to_string(),
                })?;
                Ok(Some(SaleQuery::NotFound))
            }
            Status::InProgress => Ok(None),
        }
    }

    /// Settles an unclear payment by `TransactionStatus`, asking again while it is in progress
    /// (and aborting it once, should the payment be cancelled meanwhile).
    async fn resolve(
        &mut self,
        service_id: &str,
        reference: &str,
        abort: &CancellationToken,
    ) -> Result<SaleOutcome, DriverError> {
        let (mut wait, most) = self.in_progress_poll;
        let mut abort_sent = abort.is_cancelled();
        loop {
            let status = self.ask_status(service_id).await?;
            match self.settle_with(service_id, status)? {
                Some(SaleQuery::Completed(outcome)) => {
                    tracing::info!(payment_id = %reference, service_id, "TransactionStatus: the terminal reports the payment's result");
                    return Ok(outcome);
                }
                Some(_) => {
                    tracing::info!(payment_id = %reference, service_id, "TransactionStatus: the terminal never had the payment");
                    return Ok(SaleOutcome::declined(
                        "no-transaction",
                        "the terminal has no record of the sale",
                    ));
                }
                None => {
                    tracing::debug!(payment_id = %reference, service_id, "TransactionStatus: still in progress");
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = abort.cancelled(), if !abort_sent => {
                            abort_sent = true;
                            self.abort_payment(service_id, reference).await;
                        }
                    }
                    wait = (wait * 2).min(most);
                }
            }
        }
    }

    /// Before a new payment or reversal: the terminal only reports its last transaction, so
    /// every payment or reversal the journal holds unsettled (a crash mid-sale) is asked about
    /// first. `NotSent` while one cannot be settled yet.
    async fn settle_unsettled(&mut self) -> Result<(), DriverError> {
        let unsettled: Vec<Exchange> = self
            .exchanges
            .iter()
            .filter(|x| x.unsettled())
            .cloned()
            .collect();
        for x in unsettled {
            tracing::info!(payment_id = %x.reference, service_id = %x.service_id, "asking the terminal about a request left unsettled before anything else");
            let still_open = |why: String| {
                DriverError::NotSent(format!(
                    "the terminal has not yet said what became of {} {} ({why})",
                    if x.kind == Kind::Sale {
                        "payment"
                    } else {
                        "the reversal"
                    },
                    x.reference
                ))
            };
            let settled = match x.kind {
                Kind::Sale => {
                    let status = self
                        .ask_status(&x.service_id)
                        .await
                        .map_err(|e| still_open(e.to_string()))?;
                    self.settle_with(&x.service_id, status)?.is_some()
                }
                Kind::Reversal => self
                    .ask_reversal(&x.service_id)
                    .await
                    .map(|_| true)
                    .map_err(|e| still_open(e.to_string()))?,
            };
            if !settled {
                return Err(still_open("still in progress".into()));
            }
        }
        Ok(())
    }

    /// Asks the terminal to abort the payment `service_id` (it answers with its result).
    async fn abort_payment(&self, service_id: &str, reference: &str) {
        let body = RequestBody::AbortRequest(AbortRequest {
            message_reference: MessageReference::payment(&self.identity.sale_id, service_id),
            abort_reason: "MerchantAbort".into(),
        });
        let aborted = match self.service_id() {
            Ok(id) => self.call(&id, body, SERVICE_TIMEOUT).await.map(|_| ()),
            Err(e) => Err(CallError::NotSent(e.to_string())),
        };
        match aborted {
            Ok(()) => {
                tracing::info!(payment_id = %reference, service_id, "abort sent to the terminal")
            }
            Err(CallError::NotSent(why) | CallError::Unclear(why)) => {
                tracing::warn!(payment_id = %reference, service_id, error = %why, "the terminal did not take the abort; its status tells what became of the payment");
            }
        }
    }

    /// Gives back a whole approved sale (`ReversalRequest` by its POI transaction).
    async fn give_back(
        &mut self,
        request: &OperationRequest,
    ) -> Result<OperationOutcome, DriverError> {
        let sale = self
            .exchanges
            .iter()
            .filter_map(|x| x.result.as_ref())
            .find(|k| k.approved && k.poi_transaction_id == request.sale_ref)
            .cloned();
        let Some(sale) = sale.filter(|k| !k.poi_transaction_id.is_empty()) else {
            return Ok(OperationOutcome::Unsupported(
                "the sale is not in posbridge's journal for this terminal: reverse it in Adyen's Customer Area".into(),
            ));
        };
        if self.reversed(&sale.poi_transaction_id) {
            return Ok(OperationOutcome::Done);
        }
        if request.amount_minor != request.sale_amount_minor {
            return Ok(OperationOutcome::Unsupported(
                "a terminal reversal gives back the whole sale: return part of it in Adyen's Customer Area".into(),
            ));
        }
        self.reverse_sale(&sale, Some(&request.reference), request.amount_minor)
            .await
    }

    /// Whether the sale the terminal calls `poi_transaction_id` was given back.
    fn reversed(&self, poi_transaction_id: &str) -> bool {
        self.exchanges.iter().any(|x| {
            x.kind == Kind::Reversal
                && x.sale.as_deref() == Some(poi_transaction_id)
                && x.reversed == Some(true)
        })
    }

    /// Sends a `ReversalRequest` for the approved `sale`, journaled first. A reversal of it
    /// already sent without a clear answer is looked up first, never sent twice blindly.
    async fn reverse_sale(
        &mut self,
        sale: &Kept,
        operation: Option<&str>,
        amount_minor: i64,
    ) -> Result<OperationOutcome, DriverError> {
        let unsettled: Vec<String> = self
            .exchanges
            .iter()
            .filter(|x| {
                x.kind == Kind::Reversal
                    && x.sale.as_deref() == Some(&sale.poi_transaction_id)
                    && x.unsettled()
            })
            .map(|x| x.service_id.clone())
            .collect();
        for service_id in unsettled {
            if self.ask_reversal(&service_id).await? == OperationQuery::Done {
                return Ok(OperationOutcome::Done);
            }
        }
        self.settle_unsettled().await?;
        let service_id = self.service_id()?;
        self.record(Entry::Reversal {
            service_id: service_id.clone(),
            reference: operation.map(str::to_string),
            sale: sale.poi_transaction_id.clone(),
            amount_minor,
            at: self.clock.now_ms(),
        })?;
        let body = RequestBody::ReversalRequest(ReversalRequest {
            original_poi_transaction: OriginalPoiTransaction {
                poi_transaction_id: TransactionIdentification {
                    transaction_id: sale.poi_transaction_id.clone(),
                    time_stamp: sale.poi_time_stamp.clone(),
                },
            },
            reversal_reason: "MerchantCancel".into(),
        });
        match self.call(&service_id, body, SERVICE_TIMEOUT).await {
            Ok(reply) => {
                let Some(ResponseBody::Reversal(reversal)) = reply.body() else {
                    return Err(DriverError::Protocol(
                        "the terminal's answer to the reversal is not a reversal answer".into(),
                    ));
                };
                let done = reversal.response.result == ResultCode::Success;
                let message = reversal
                    .response
                    .additional()
                    .into_iter()
                    .find(|(k, _)| k == "message" || k == "refusalReason")
                    .map(|(_, v)| mask_card_numbers(&v))
                    .unwrap_or_else(|| format!("{:?}", reversal.response.error_condition));
                self.record(Entry::Reversed {
                    service_id,
                    done,
                    message: message.clone(),
                })?;
                if done {
                    Ok(OperationOutcome::Done)
                } else {
                    Ok(OperationOutcome::Failed(format!(
                        "the terminal refused the reversal: {message}"
                    )))
                }
            }
            Err(CallError::NotSent(why)) => {
                self.record(Entry::NotSent { service_id })?;
                Err(DriverError::NotSent(why))
            }
            Err(CallError::Unclear(why)) => Err(DriverError::Protocol(why)),
        }
    }

    /// Asks the terminal about the reversal sent as `service_id`.
    async fn ask_reversal(&mut self, service_id: &str) -> Result<OperationQuery, DriverError> {
        let status = self
            .transaction_status(MessageReference {
                message_category: MessageCategory::Reversal,
                ..MessageReference::payment(&self.identity.sale_id, service_id)
            })
            .await?;
        let reversal = status
            .repeated_message_response
            .as_ref()
            .and_then(|r| r.repeated_response_message_body.reversal_response.as_ref());
        match (status.payment_status(), reversal) {
            (PaymentStatus::NotFound, _) => {
                self.record(Entry::NotFound {
                    service_id: service_id.to_string(),
                })?;
                Ok(OperationQuery::NotFound)
            }
            (_, Some(reversal)) if status.response.result == ResultCode::Success => {
                let done = reversal.response.result == ResultCode::Success;
                self.record(Entry::Reversed {
                    service_id: service_id.to_string(),
                    done,
                    message: format!("{:?}", reversal.response.error_condition),
                })?;
                Ok(if done {
                    OperationQuery::Done
                } else {
                    OperationQuery::NotFound
                })
            }
            _ => Err(DriverError::Protocol(format!(
                "the terminal cannot tell yet what became of reversal {service_id}"
            ))),
        }
    }
}

/// The payment as the codec writes it.
fn payment_input(request: &SaleRequest, at_ms: i64) -> Result<PaymentInput, DriverError> {
    let amount = u64::try_from(request.amount_minor)
        .map_err(|_| DriverError::NotSent("a negative amount".into()))?;
    let timestamp = jiff::Timestamp::from_millisecond(at_ms)
        .map_err(|e| DriverError::NotSent(format!("the clock: {e}")))?;
    let method = match request.function {
        CardFunction::Debit => PaymentMethod::Debit,
        CardFunction::Credit => PaymentMethod::Credit {
            installments: request
                .installments
                .and_then(|n| u32::try_from(n).ok())
                .filter(|n| *n > 1)
                .unwrap_or(1),
        },
    };
    Ok(PaymentInput {
        transaction_id: request.reference.clone(),
        timestamp: timestamp.to_string(),
        currency: request.currency.code().to_string(),
        amount_minor_units: amount,
        method,
    })
}

impl TerminalDriver for NexoDriver {
    async fn sale(
        &mut self,
        request: &SaleRequest,
        prompts: &PromptSink,
        abort: &CancellationToken,
    ) -> Result<SaleOutcome, DriverError> {
        let currency = request.currency.code();
        if currency_minor_digits(currency).is_none() {
            return Ok(SaleOutcome::declined(
                "currency-unsupported",
                &format!("the terminal is not set up to charge in {currency}"),
            ));
        }
        if request.amount_minor <= 0 {
            return Ok(SaleOutcome::declined("invalid-amount", "nothing to charge"));
        }
        self.settle_unsettled().await?;
        let payment = PaymentRequest::new(&payment_input(request, self.clock.now_ms())?)
            .map_err(|e| DriverError::NotSent(e.to_string()))?;
        let service_id = self.service_id()?;
        self.record(Entry::Sale {
            service_id: service_id.clone(),
            reference: request.reference.clone(),
            amount_minor: request.amount_minor,
            currency: currency.to_string(),
            at: self.clock.now_ms(),
        })
        .map_err(DriverError::not_journaled)?;
        crate::failpoint::hit("after-charge-intent");
        // Until this sale returns, by any path, the terminal's notifications are about it.
        let _running = self.running_sale.start(&request.reference, &service_id);
        prompts.show(&request.reference, "Follow the terminal");
        tracing::info!(payment_id = %request.reference, terminal = %self.terminal_id, service_id, "payment sent to the terminal");
        let answer = tokio::select! {
            answer = self.call(&service_id, RequestBody::PaymentRequest(payment), self.result_timeout) => Some(answer),
            () = abort.cancelled() => None,
        };
        let why = match answer.map(|answer| answer.map(Reply::body)) {
            Some(Ok(Some(ResponseBody::Payment(payment)))) => {
                let kept = Kept::of(&payment, request.amount_minor, currency);
                let outcome = kept.outcome();
                self.record(Entry::Result {
                    service_id,
                    result: Box::new(kept),
                })?;
                return Ok(outcome);
            }
            Some(Ok(_)) => "the answer is not a payment answer".to_string(),
            Some(Err(CallError::NotSent(why))) => {
                self.record(Entry::NotSent { service_id })?;
                return Err(DriverError::NotSent(why));
            }
            Some(Err(CallError::Unclear(why))) => why,
            None => {
                self.abort_payment(&service_id, &request.reference).await;
                "aborted".to_string()
            }
        };
        tracing::warn!(payment_id = %request.reference, service_id, reason = %why, "no trustworthy answer to the payment: asking the terminal with TransactionStatus");
        self.resolve(&service_id, &request.reference, abort).await
    }

    async fn query_sale(&mut self, inquiry: &SaleInquiry) -> Result<SaleQuery, DriverError> {
        let Some(x) = self.latest(Kind::Sale, &inquiry.reference) else {
            // Marked sent, never journaled: the payment was never sent.
            return Ok(SaleQuery::NotFound);
        };
        if x.void {
            return Ok(SaleQuery::NotFound);
        }
        if let Some(kept) = &x.result {
            return Ok(SaleQuery::Completed(kept.outcome()));
        }
        if inquiry.cancel_requested {
            self.abort_payment(&x.service_id, &x.reference).await;
        }
        let status = self.ask_status(&x.service_id).await?;
        Ok(self
            .settle_with(&x.service_id, status)?
            .unwrap_or(SaleQuery::InProgress))
    }

    async fn reverse(
        &mut self,
        request: &OperationRequest,
    ) -> Result<OperationOutcome, DriverError> {
        self.give_back(request).await
    }

    /// A referenced refund is the same `ReversalRequest` on an Adyen terminal.
    async fn refund(
        &mut self,
        request: &OperationRequest,
    ) -> Result<OperationOutcome, DriverError> {
        self.give_back(request).await
    }

    async fn query_operation(&mut self, reference: &str) -> Result<OperationQuery, DriverError> {
        let Some(x) = self.latest(Kind::Reversal, reference) else {
            return Ok(OperationQuery::NotFound);
        };
        match x.reversed {
            Some(true) => Ok(OperationQuery::Done),
            Some(false) => Ok(OperationQuery::NotFound),
            None if x.void => Ok(OperationQuery::NotFound),
            None => self.ask_reversal(&x.service_id).await,
        }
    }

    async fn probe(&mut self) -> Result<String, DriverError> {
        let body = RequestBody::DiagnosisRequest(DiagnosisRequest::default());
        match self
            .call(&self.service_id()?, body, SERVICE_TIMEOUT)
            .await
            .map_err(CallError::into_driver_error)?
            .body()
        {
            Some(ResponseBody::Diagnosis(diagnosis)) => Ok(format!(
                "the terminal answered Diagnosis: {}",
                diagnosis.poi_status.map_or_else(
                    || format!("{:?}", diagnosis.response.result),
                    |s| s.global_status
                )
            )),
            _ => Err(DriverError::Protocol(
                "the terminal's answer to Diagnosis is not a diagnosis".into(),
            )),
        }
    }

    async fn end_of_day(&mut self) -> Result<String, DriverError> {
        Ok("an Adyen terminal's payments are settled by Adyen each day: nothing to close".into())
    }

    fn sent(&self) -> Result<Vec<SentRecord>, DriverError> {
        Ok(self
            .exchanges
            .iter()
            .filter(|x| !x.void && !x.reference.is_empty())
            .map(|x| SentRecord {
                reference: x.reference.clone(),
                amount_minor: Some(x.amount_minor),
                at_ms: x.at,
            })
            .collect())
    }

    /// One phase on the terminal: an approval is final there. The verdict is journaled; an
    /// approval the payment did not keep (another amount, or cancelled meanwhile) is given
    /// back at once.
    async fn committed(&mut self, reference: &str, verdict: Verdict) -> Result<(), DriverError> {
        let Some(x) = self.latest(Kind::Sale, reference) else {
            return Ok(());
        };
        let Some(kept) = x.result.filter(|k| k.approved) else {
            return Ok(());
        };
        let keep = verdict == Verdict::Keep;
        if x.keep != Some(keep) {
            self.record(Entry::Verdict {
                service_id: x.service_id.clone(),
                keep,
            })?;
        }
        if keep || self.reversed(&kept.poi_transaction_id) {
            return Ok(());
        }
        tracing::warn!(payment_id = %reference, poi_transaction = %kept.poi_transaction_id, "giving back an approval the payment did not keep");
        match self.reverse_sale(&kept, None, x.amount_minor).await? {
            OperationOutcome::Done => Ok(()),
            outcome => {
                tracing::error!(payment_id = %reference, ?outcome, "the terminal would not give back an approval the payment did not keep");
                Err(DriverError::Protocol(format!(
                    "the approval of payment {reference} was not given back: {outcome:?}"
                )))
            }
        }
    }

    /// Approvals the database has not yet judged, or judged not kept and not yet given back
    /// (the daemon stopped in between).
    fn unconfirmed(&self) -> Vec<(String, String)> {
        self.exchanges
            .iter()
            .filter(|x| x.kind == Kind::Sale)
            .filter_map(|x| {
                let kept = x.result.as_ref().filter(|k| k.approved)?;
                let judged = x.keep == Some(true)
                    || (x.keep == Some(false) && self.reversed(&kept.poi_transaction_id));
                (!judged).then(|| (x.reference.clone(), kept.poi_transaction_id.clone()))
            })
            .collect()
    }
}

/// What an error status from the terminal proves. The terminal refuses a request it cannot
/// decrypt or read, before doing anything with it, in clear: a client-error status, or its error
/// document (`{"errors": ["Nexo Service: crypto error (9)"]}`) whatever the status. Anything else
/// (an empty 500, a proxy's 502 page) may have come after the sale started: unclear, for
/// `TransactionStatus` to settle.
fn refusal_or_unclear(answer: &Answer) -> CallError {
    let errors: Vec<String> = serde_json::from_slice::<serde_json::Value>(&answer.body)
        .ok()
        .and_then(|document| {
            document.get("errors")?.as_array().map(|errors| {
                errors
                    .iter()
                    .filter_map(|e| e.as_str().map(str::to_string))
                    .collect()
            })
        })
        .unwrap_or_default();
    let refused = (400..500).contains(&answer.status) || !errors.is_empty();
    if !refused {
        return CallError::Unclear(format!(
            "the terminal answered HTTP {} ({})",
            answer.status,
            printable(&answer.body)
        ));
    }
    let key_problem =
        errors.iter().any(|e| e.contains("crypto")) || matches!(answer.status, 401 | 403);
    CallError::NotSent(format!(
        "the terminal refused the request with HTTP {} ({}){}",
        answer.status,
        printable(&answer.body),
        if key_problem {
            ": check key_identifier, key_version and the passphrase on both sides"
        } else {
            ""
        }
    ))
}

#[cfg(test)]
#[path = "driver_tests.rs"]
mod tests;
