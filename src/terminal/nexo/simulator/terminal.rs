//! What the simulated terminal remembers and decides: the sales it took, their outcomes by the
//! cents of the amount, aborts, reversals and status requests. No I/O but the record file; the
//! HTTP side (`super`) hands it clear messages and seals what it answers.

use std::path::PathBuf;
use std::time::Duration;

use firmware_protocols::nexo::messages::{
    AbortRequest, AmountsResp, CardData, DiagnosisResponse, ErrorCondition, MaskedPan,
    MessageCategory, MessageHeader, MessageType, OutputContent, OutputText, PaymentAcquirerData,
    PaymentInstrumentData, PaymentReceipt, PaymentRequest, PaymentResponse, PaymentResult, PoiData,
    PoiStatus, RepeatedMessageResponse, RepeatedResponseMessageBody, Response, ResponseBody,
    ResponseStatus, ResultCode, ReversalRequest, ReversalResponse, TransactionIdentification,
    TransactionStatusRequest, TransactionStatusResponse, currency_minor_digits,
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::FaultKind;

/// How a sale turns out, by the cents of its amount (the table of every simulator).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Plan {
    Approve,
    /// `.04`: approved after 20 s.
    ApproveSlowly,
    /// `.06`: approved; its reversal is refused.
    ApproveNotReversible,
    /// `.01`: declined by the issuer.
    Decline,
    /// `.02`: the shopper cancels on the terminal.
    ShopperCancels,
    /// `.03`: never completes; stays in progress until aborted.
    NeverCompletes,
}

impl Plan {
    fn for_amount(amount_minor: u64) -> Plan {
        match amount_minor % 100 {
            1 => Plan::Decline,
            2 => Plan::ShopperCancels,
            3 => Plan::NeverCompletes,
            4 => Plan::ApproveSlowly,
            6 => Plan::ApproveNotReversible,
            _ => Plan::Approve,
        }
    }
}

/// Where a sale stands, as the record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SaleState {
    Running,
    Approved,
    /// Declined by the issuer or cancelled by the shopper: nothing charged.
    Declined,
    /// Stopped by an `AbortRequest`: nothing charged.
    Aborted,
    Reversed,
}

impl SaleState {
    fn as_str(self) -> &'static str {
        match self {
            SaleState::Running => "running",
            SaleState::Approved => "approved",
            SaleState::Declined => "declined",
            SaleState::Aborted => "aborted",
            SaleState::Reversed => "reversed",
        }
    }
}

/// One `PaymentRequest` the terminal took.
struct Sale {
    sale_id: String,
    service_id: String,
    /// `SaleTransactionID.TransactionID`: the sale system's reference.
    reference: String,
    sale_transaction: TransactionIdentification,
    amount_minor: u64,
    currency: String,
    debit: bool,
    /// Equal monthly payments (1: paid at once).
    installments: u32,
    plan: Plan,
    state: SaleState,
    /// The header of its `PaymentResponse` (repeated by `TransactionStatus`).
    response_header: MessageHeader,
    poi_transaction: TransactionIdentification,
    abort: CancellationToken,
    /// `None` while running, then the `PaymentResponse` it answered (or would have).
    outcome: watch::Sender<Option<PaymentResponse>>,
}

/// A `ReversalRequest` the terminal answered, kept so that `TransactionStatus` repeats it.
struct Reversal {
    sale_id: String,
    service_id: String,
    response_header: MessageHeader,
    response: ReversalResponse,
}

/// What became of a `PaymentRequest`.
pub(super) enum Taken {
    /// The sale runs: its task completes it at `plan`'s time, or at an abort.
    Running {
        index: usize,
        plan: Plan,
        abort: CancellationToken,
        outcome: watch::Receiver<Option<PaymentResponse>>,
    },
    /// Refused at once (busy, unreadable amount): this answer, nothing recorded.
    Refused(Box<PaymentResponse>),
}

/// Faults not applied yet.
#[derive(Debug, Default)]
pub(super) struct Faults(Vec<FaultKind>);

impl Faults {
    pub(super) fn new(faults: &[FaultKind]) -> Faults {
        Faults(faults.to_vec())
    }

    /// Whether `kind` is still to be applied; it is applied now (once).
    pub(super) fn take(&mut self, kind: FaultKind) -> bool {
        match self.0.iter().position(|pending| *pending == kind) {
            Some(position) => {
                self.0.remove(position);
                tracing::warn!(fault = kind.name(), "nexo simulator: fault {}", kind.name());
                true
            }
            None => false,
        }
    }
}

/// The test cards the simulator charges (documented test numbers; only first 6 / last 4 go out).
const CREDIT_CARD: (&str, &str) = ("visa", "411111 **** 1111");
const DEBIT_CARD: (&str, &str) = ("mc", "555555 **** 4444");

pub(super) struct Terminal {
    poi_id: String,
    record: Option<PathBuf>,
    pub(super) faults: Faults,
    sales: Vec<Sale>,
    reversals: Vec<Reversal>,
    /// Numbers the terminal's transactions (sales and reversals).
    next_transaction: u64,
    /// When the simulator started (unix ms): makes its transaction IDs unique across runs.
    started_ms: i64,
}

impl Terminal {
    pub(super) fn new(poi_id: &str, faults: &[FaultKind], record: Option<PathBuf>) -> Terminal {
        let terminal = Terminal {
            poi_id: poi_id.to_owned(),
            record,
            faults: Faults::new(faults),
            sales: Vec::new(),
            reversals: Vec::new(),
            next_transaction: 1,
            started_ms: jiff::Timestamp::now().as_millisecond(),
        };
        terminal.export();
        terminal
    }

    /// Takes a payment, one at a time.
    pub(super) fn take_payment(
        &mut self,
        header: &MessageHeader,
        request: &PaymentRequest,
    ) -> Taken {
        let response_header = response_header(header);
        let amounts = &request.payment_transaction.amounts_req;
        let amount_minor = currency_minor_digits(&amounts.currency)
            .and_then(|digits| amounts.requested_amount.to_minor_units(digits));
        let Some(amount_minor) = amount_minor else {
            tracing::warn!(
                currency = %amounts.currency,
                amount = amounts.requested_amount.as_str(),
                "nexo simulator: payment refused: unknown currency or amount"
            );
            return Taken::Refused(Box::new(failed_payment(
                ErrorCondition::MessageFormat,
                "message=Unknown%20currency%20or%20amount",
            )));
        };
        if self
            .sales
            .iter()
            .any(|sale| sale.state == SaleState::Running)
        {
            tracing::warn!(
                service_id = header.service_id.as_deref().unwrap_or_default(),
                "nexo simulator: payment refused: a sale is running (busy)"
            );
            return Taken::Refused(Box::new(failed_payment(
                ErrorCondition::Busy,
                "message=Terminal%20busy",
            )));
        }
        let reference = request.sale_data.sale_transaction_id.transaction_id.clone();
        let debit = request
            .payment_transaction
            .transaction_conditions
            .as_ref()
            .and_then(|conditions| conditions.debit_preferred_flag)
            .unwrap_or(false);
        let installments = request
            .payment_data
            .as_ref()
            .and_then(|data| data.instalment.as_ref())
            .map_or(1, |instalment| instalment.total_nb_of_payments);
        let plan = Plan::for_amount(amount_minor);
        let service_id = header.service_id.clone().unwrap_or_default();
        tracing::info!(
            payment_id = %reference,
            service_id = %service_id,
            amount_minor,
            currency = %amounts.currency,
            debit,
            installments,
            "nexo simulator: sale taken"
        );
        let (outcome, receiver) = watch::channel(None);
        let abort = CancellationToken::new();
        let poi_transaction = self.next_transaction_id();
        self.sales.push(Sale {
            sale_id: header.sale_id.clone(),
            service_id,
            reference,
            sale_transaction: request.sale_data.sale_transaction_id.clone(),
            amount_minor,
            currency: amounts.currency.clone(),
            debit,
            installments,
            plan,
            state: SaleState::Running,
            response_header,
            poi_transaction,
            abort: abort.clone(),
            outcome,
        });
        self.export();
        Taken::Running {
            index: self.sales.len() - 1,
            plan,
            abort,
            outcome: receiver,
        }
    }

    /// The sale at `index` reached its outcome (`aborted`: stopped by an abort first).
    pub(super) fn complete(&mut self, index: usize, aborted: bool) {
        let number = self.next_transaction;
        self.next_transaction += 1;
        let psp = psp_reference(self.started_ms, number);
        let Some(sale) = self.sales.get_mut(index) else {
            return;
        };
        let state = outcome_state(sale.plan, aborted);
        let response = match (aborted, sale.plan) {
            (true, _) => failed_payment(ErrorCondition::Aborted, "message=Transaction%20aborted"),
            (false, Plan::Decline) => failed_payment(
                ErrorCondition::Refusal,
                "refusalReason=Refused&message=Declined%20by%20issuer",
            ),
            (false, Plan::ShopperCancels) => {
                failed_payment(ErrorCondition::Cancel, "message=Cancelled%20by%20shopper")
            }
            (false, _) => approved_payment(sale, number, psp),
        };
        let response = PaymentResponse {
            poi_data: Some(PoiData {
                poi_transaction_id: sale.poi_transaction.clone(),
            }),
            sale_data: Some(firmware_protocols::nexo::messages::SaleData {
                sale_transaction_id: sale.sale_transaction.clone(),
            }),
            ..response
        };
        sale.state = state;
        tracing::info!(
            payment_id = %sale.reference,
            service_id = %sale.service_id,
            state = state.as_str(),
            "nexo simulator: sale completed"
        );
        sale.outcome.send_replace(Some(response));
        self.export();
    }

    /// Stops the running sale `abort` names, if any (a finished one stays as it is).
    pub(super) fn abort(&mut self, header: &MessageHeader, abort: &AbortRequest) {
        let reference = &abort.message_reference;
        let sale_id = reference.sale_id.as_deref().unwrap_or(&header.sale_id);
        let found = self.sales.iter().find(|sale| {
            Some(sale.service_id.as_str()) == reference.service_id.as_deref()
                && sale.sale_id == sale_id
                && sale.state == SaleState::Running
        });
        match found {
            Some(sale) => {
                tracing::info!(
                    payment_id = %sale.reference,
                    service_id = %sale.service_id,
                    reason = %abort.abort_reason,
                    "nexo simulator: abort of the running sale"
                );
                sale.abort.cancel();
            }
            None => tracing::info!(
                service_id = reference.service_id.as_deref().unwrap_or_default(),
                "nexo simulator: abort names no running sale, nothing to do"
            ),
        }
    }

    /// `TransactionStatus` of the payment or reversal the request names by its `ServiceID`.
    pub(super) fn status(
        &self,
        header: &MessageHeader,
        request: &TransactionStatusRequest,
    ) -> Response {
        let reference = &request.message_reference;
        let sale_id = reference.sale_id.as_deref().unwrap_or(&header.sale_id);
        let names = |service_id: &str, of_sale: &str| {
            Some(service_id) == reference.service_id.as_deref() && of_sale == sale_id
        };
        let failure = |condition| ResponseStatus {
            result: ResultCode::Failure,
            error_condition: Some(condition),
            additional_response: None,
        };
        let success = ResponseStatus {
            result: ResultCode::Success,
            error_condition: None,
            additional_response: None,
        };
        let found = self
            .sales
            .iter()
            .rev()
            .find(|sale| names(&sale.service_id, &sale.sale_id));
        let reversal = self
            .reversals
            .iter()
            .rev()
            .find(|reversal| names(&reversal.service_id, &reversal.sale_id));
        let (response, repeated) = match (reference.message_category, found, reversal) {
            (MessageCategory::Reversal, _, None) => (failure(ErrorCondition::NotFound), None),
            (MessageCategory::Reversal, _, Some(reversal)) => (
                success,
                Some(Box::new(RepeatedMessageResponse {
                    message_header: reversal.response_header.clone(),
                    repeated_response_message_body: RepeatedResponseMessageBody {
                        payment_response: None,
                        reversal_response: Some(reversal.response.clone()),
                    },
                })),
            ),
            (_, None, _) => (failure(ErrorCondition::NotFound), None),
            (_, Some(sale), _) => match sale.outcome.borrow().clone() {
                None => (failure(ErrorCondition::InProgress), None),
                Some(payment) => (
                    success,
                    Some(Box::new(RepeatedMessageResponse {
                        message_header: sale.response_header.clone(),
                        repeated_response_message_body: RepeatedResponseMessageBody {
                            payment_response: Some(payment),
                            reversal_response: None,
                        },
                    })),
                ),
            },
        };
        tracing::info!(
            service_id = reference.service_id.as_deref().unwrap_or_default(),
            result = ?response.result,
            error_condition = ?response.error_condition,
            "nexo simulator: transaction status"
        );
        Response {
            header: response_header(header),
            body: ResponseBody::TransactionStatus(TransactionStatusResponse {
                response,
                message_reference: Some(reference.clone()),
                repeated_message_response: repeated,
            }),
        }
    }

    /// Reverses the approved sale the request names by its POI transaction.
    pub(super) fn reverse(
        &mut self,
        header: &MessageHeader,
        request: &ReversalRequest,
    ) -> Response {
        let wanted = &request
            .original_poi_transaction
            .poi_transaction_id
            .transaction_id;
        let position = self
            .sales
            .iter()
            .position(|sale| &sale.poi_transaction.transaction_id == wanted);
        let refused = |condition, why: &str| ResponseStatus {
            result: ResultCode::Failure,
            error_condition: Some(condition),
            additional_response: Some(format!("message={}", form_encode(why))),
        };
        let (response, poi_data) = match position.and_then(|index| self.sales.get(index)) {
            None => (
                refused(ErrorCondition::NotFound, "Original transaction not found"),
                None,
            ),
            Some(sale) if sale.state != SaleState::Approved => (
                refused(ErrorCondition::NotAllowed, "Transaction cannot be reversed"),
                None,
            ),
            Some(sale) if sale.plan == Plan::ApproveNotReversible => (
                refused(ErrorCondition::Refusal, "Reversal refused: card needed"),
                None,
            ),
            Some(_) => {
                let transaction = self.next_transaction_id();
                if let Some(sale) = position.and_then(|index| self.sales.get_mut(index)) {
                    sale.state = SaleState::Reversed;
                }
                self.export();
                (
                    ResponseStatus {
                        result: ResultCode::Success,
                        error_condition: None,
                        additional_response: None,
                    },
                    Some(PoiData {
                        poi_transaction_id: transaction,
                    }),
                )
            }
        };
        tracing::info!(
            poi_transaction = %wanted,
            result = ?response.result,
            error_condition = ?response.error_condition,
            "nexo simulator: reversal"
        );
        let response = ReversalResponse { response, poi_data };
        // Kept whatever its answer, as a terminal keeps every transaction it answered.
        self.reversals.push(Reversal {
            sale_id: header.sale_id.clone(),
            service_id: header.service_id.clone().unwrap_or_default(),
            response_header: response_header(header),
            response: response.clone(),
        });
        Response {
            header: response_header(header),
            body: ResponseBody::Reversal(response),
        }
    }

    pub(super) fn diagnosis(&self, header: &MessageHeader) -> Response {
        Response {
            header: response_header(header),
            body: ResponseBody::Diagnosis(DiagnosisResponse {
                response: ResponseStatus {
                    result: ResultCode::Success,
                    error_condition: None,
                    additional_response: None,
                },
                poi_status: Some(PoiStatus {
                    global_status: "OK".to_owned(),
                }),
            }),
        }
    }

    /// The sale ID and `ServiceID` of the payment at `index`: what its display notifications
    /// name.
    pub(super) fn sale_ids(&self, index: usize) -> Option<(String, String)> {
        self.sales
            .get(index)
            .map(|sale| (sale.sale_id.clone(), sale.service_id.clone()))
    }

    /// The header of the payment's answer, for a `PaymentResponse` sent now.
    pub(super) fn payment_header(&self, index: usize) -> Option<MessageHeader> {
        self.sales
            .get(index)
            .map(|sale| sale.response_header.clone())
    }

    /// A fresh `POITransactionID`: Adyen writes `tender.pspReference`.
    fn next_transaction_id(&mut self) -> TransactionIdentification {
        let number = self.next_transaction;
        self.next_transaction += 1;
        TransactionIdentification {
            transaction_id: format!(
                "{}{number:06}.{}",
                self.poi_prefix(),
                psp_reference(self.started_ms, number)
            ),
            time_stamp: timestamp_now(),
        }
    }

    /// The first letters of the POIID, lower case (Adyen's tenders start so).
    fn poi_prefix(&self) -> String {
        self.poi_id
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(4)
            .collect::<String>()
            .to_ascii_lowercase()
    }

    /// Writes the record whole (`--record`): one JSON line per sale taken. A failure is told,
    /// never fatal: the terminal goes on.
    fn export(&self) {
        let Some(path) = &self.record else {
            return;
        };
        let mut text = String::new();
        for sale in &self.sales {
            let line = serde_json::json!({
                "kind": "sale",
                "reference": sale.reference,
                "service_id": sale.service_id,
                "amount_minor": sale.amount_minor,
                "approved": matches!(sale.state, SaleState::Approved | SaleState::Reversed),
                "state": sale.state.as_str(),
            });
            text.push_str(&line.to_string());
            text.push('\n');
        }
        let temporary = path.with_extension("tmp");
        if let Err(error) =
            std::fs::write(&temporary, text).and_then(|()| std::fs::rename(&temporary, path))
        {
            tracing::warn!(%error, path = %path.display(), "nexo simulator: cannot write the record");
        }
    }
}

/// How long the sale of `plan` takes before its outcome; `None`: it never completes.
/// How a sale of `plan` ends (`aborted`: stopped by an abort first).
fn outcome_state(plan: Plan, aborted: bool) -> SaleState {
    match (aborted, plan) {
        (true, _) => SaleState::Aborted,
        (false, Plan::Decline | Plan::ShopperCancels) => SaleState::Declined,
        (false, _) => SaleState::Approved,
    }
}

/// What the terminal's display says as a sale of `plan` ends, as the other simulators say it.
pub(super) fn result_prompt(plan: Plan, aborted: bool) -> &'static str {
    match outcome_state(plan, aborted) {
        SaleState::Approved => "approved",
        SaleState::Declined => "declined",
        SaleState::Aborted | SaleState::Running | SaleState::Reversed => "cancelled",
    }
}

pub(super) fn sale_duration(
    plan: Plan,
    approve_after: Duration,
    slow_sale: Duration,
) -> Option<Duration> {
    match plan {
        Plan::NeverCompletes => None,
        Plan::ApproveSlowly => Some(slow_sale),
        _ => Some(approve_after),
    }
}

/// The request's header turned into its answer's.
pub(super) fn response_header(request: &MessageHeader) -> MessageHeader {
    MessageHeader {
        message_type: MessageType::Response,
        ..request.clone()
    }
}

fn failed_payment(condition: ErrorCondition, additional: &str) -> PaymentResponse {
    PaymentResponse {
        response: ResponseStatus {
            result: ResultCode::Failure,
            error_condition: Some(condition),
            additional_response: Some(additional.to_owned()),
        },
        poi_data: None,
        sale_data: None,
        payment_result: None,
        payment_receipt: Vec::new(),
    }
}

fn approved_payment(sale: &Sale, number: u64, psp: String) -> PaymentResponse {
    let (brand, pan) = if sale.debit { DEBIT_CARD } else { CREDIT_CARD };
    let approval_code = format!("{:06}", (number * 7919 + 1234) % 1_000_000);
    let digits = currency_minor_digits(&sale.currency).unwrap_or(2);
    let amount = firmware_protocols::nexo::messages::DecimalAmount::from_minor_units(
        sale.amount_minor,
        digits,
    );
    let receipt = |qualifier: &str, title: &str| PaymentReceipt {
        document_qualifier: qualifier.to_owned(),
        required_signature_flag: false,
        output_content: OutputContent {
            output_format: Some("Text".to_owned()),
            predefined_content: None,
            output_text: [
                format!("name={}&key=title", form_encode(title)),
                "key=filler".to_owned(),
                format!(
                    "name=Date&value={}&key=txdate",
                    form_encode(&sale.poi_transaction.time_stamp)
                ),
                format!(
                    "name=Card&value={}&key=pan",
                    form_encode(&masked_receipt_pan(pan))
                ),
                format!("name=Card%20type&value={brand}&key=cardType"),
                format!(
                    "name=Type&value={}&key=txtype",
                    if sale.debit { "DEBIT" } else { "CREDIT" }
                ),
                format!(
                    "name=Instalments&value={}&key=instalments",
                    sale.installments
                ),
                format!("name=Auth.%20code&value={approval_code}&key=authCode"),
                format!(
                    "name=TOTAL&value={}&key=totalAmount",
                    form_encode(&format!("{} {}", sale.currency, amount.as_str()))
                ),
                "name=APPROVED&key=approved".to_owned(),
            ]
            .into_iter()
            .map(|text| OutputText { text })
            .collect(),
        },
    };
    PaymentResponse {
        response: ResponseStatus {
            result: ResultCode::Success,
            error_condition: None,
            additional_response: Some(format!(
                "authCode={approval_code}&paymentMethod={brand}&cardSummary={}&installments={}&pspReference={psp}",
                &pan[pan.len() - 4..],
                sale.installments
            )),
        },
        poi_data: None,
        sale_data: None,
        payment_result: Some(PaymentResult {
            payment_acquirer_data: Some(PaymentAcquirerData {
                approval_code: Some(approval_code.clone()),
                acquirer_transaction_id: Some(TransactionIdentification {
                    transaction_id: psp,
                    time_stamp: sale.poi_transaction.time_stamp.clone(),
                }),
            }),
            payment_instrument_data: Some(PaymentInstrumentData {
                card_data: Some(CardData {
                    payment_brand: Some(brand.to_owned()),
                    masked_pan: MaskedPan::parse(pan),
                }),
            }),
            amounts_resp: Some(AmountsResp {
                currency: Some(sale.currency.clone()),
                authorized_amount: amount.clone(),
            }),
        }),
        payment_receipt: vec![
            receipt("CashierReceipt", "MERCHANT COPY"),
            receipt("CustomerReceipt", "CARDHOLDER COPY"),
        ],
    }
}

/// A receipt shows the last 4 digits only, as Adyen's do.
fn masked_receipt_pan(pan: &str) -> String {
    format!("************{}", &pan[pan.len() - 4..])
}

/// A 16-digit reference, unique per run (`started_ms`) and transaction.
fn psp_reference(started_ms: i64, number: u64) -> String {
    let base = u64::try_from(started_ms).unwrap_or(0) % 1_000_000_000_000;
    format!("{:016}", base * 10_000 + number % 10_000)
}

fn timestamp_now() -> String {
    format!("{:.3}", jiff::Timestamp::now())
}

/// `application/x-www-form-urlencoded` as Adyen writes receipt lines and `AdditionalResponse`.
pub(super) fn form_encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02x}"));
        }
    }
    encoded
}
