//! `/payments…`: Create, cancel, settle, refund and inbound requests.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use http_body::{Frame, SizeHint};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tracing::Instrument;

use super::AppState;
use super::auth::Merchant;
use super::body::{RawBody, lenient_int, object_or_none, parse};
use super::error::PppError;
use super::ids::check_id;
use super::operations::{self, Operation};
use crate::ids::RelayAssigned;
use crate::money::{Amount, Currency};
use crate::pos::{
    CreatePayment, DEBIT_METHOD, EngineError, InFlightGuard, OperationAnswer, PaymentReply, Reply,
};
use crate::secret::CardNumber;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateBody {
    payment_id: String,
    payment_method: String,
    value: Amount,
    currency: String,
    callback_url: String,
    transaction_id: String,
    #[serde(default)]
    installments: Option<Value>,
    /// Not an object: no card. Card data is never quoted in an error.
    #[serde(default, deserialize_with = "object_or_none")]
    card: Option<CardBody>,
}

/// Only the number is read (Test Suite); every other card field is skipped, never kept.
#[derive(Deserialize)]
struct CardBody {
    #[serde(default, deserialize_with = "CardNumber::deserialize_lenient")]
    number: Option<CardNumber>,
}

fn engine_error(e: EngineError) -> PppError {
    match e {
        EngineError::UnknownPayment => PppError::NotFound,
        EngineError::UnsupportedMethod(m) => PppError::bad(
            "unsupported-payment-method",
            format!("payment method `{m}` is not supported"),
        ),
        EngineError::NotPositive => PppError::bad("invalid-value", "value must be positive"),
        e @ EngineError::Mismatch { .. } => PppError::bad("payment-mismatch", e.to_string()),
        EngineError::Store(e) => {
            tracing::error!(error = %e, "database error");
            PppError::Storage
        }
        e @ (EngineError::Random(_)
        | EngineError::TimeZone(_)
        | EngineError::Journal { .. }
        | EngineError::JournalsAhead(_)) => {
            tracing::error!(error = %e, "internal error");
            PppError::Internal
        }
    }
}

fn is_test_suite(headers: &HeaderMap) -> bool {
    headers
        .get("x-vtex-api-is-testsuite")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

pub async fn create(
    State(state): State<AppState>,
    Merchant(merchant): Merchant,
    headers: HeaderMap,
    relay_assigned: Option<Extension<RelayAssigned>>,
    RawBody(bytes): RawBody,
) -> Response {
    let mut request = match read_create(&headers, &bytes) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    request.relay_assigned = relay_assigned.map(|Extension(assigned)| assigned);
    let span = tracing::info_span!("create_payment", payment_id = %request.payment_id);
    let _enter = span.enter();
    // The callback for this payment waits until this answer has been sent.
    let guard = state.engine.hold_callback(&request.payment_id);
    drop(_enter);
    match state.engine.create(&merchant, request).await {
        Ok(reply) => {
            let body = match state.create_answers.answer(&reply).to_json() {
                Ok(json) => Body::from(json),
                Err(e) => return engine_error(e.into()).into_response(),
            };
            let mut response = Response::new(Body::new(GuardedBody {
                inner: body,
                _guard: guard,
            }));
            response.headers_mut().insert(
                axum::http::header::CONTENT_TYPE,
                axum::http::HeaderValue::from_static("application/json"),
            );
            response
        }
        Err(e) => engine_error(e).into_response(),
    }
}

/// A Create Payment request as the Gateway sent it, checked field by field (also what the
/// relay tier checks before it keeps a Create for a store not known yet).
pub fn read_create(headers: &HeaderMap, bytes: &[u8]) -> Result<CreatePayment, PppError> {
    let body: CreateBody = parse(bytes).map_err(|message| PppError::bad("bad-request", message))?;
    validate_create(body, is_test_suite(headers))
}

fn validate_create(body: CreateBody, is_test_suite: bool) -> Result<CreatePayment, PppError> {
    let required = |name: &str, v: &str| {
        if v.trim().is_empty() {
            Err(PppError::bad(
                "bad-request",
                format!("field `{name}` must not be empty"),
            ))
        } else {
            Ok(())
        }
    };
    check_id("paymentId", &body.payment_id)?;
    check_id("transactionId", &body.transaction_id)?;
    required("paymentMethod", &body.payment_method)?;
    if !(body.callback_url.starts_with("https://") || body.callback_url.starts_with("http://"))
        || reqwest::Url::parse(&body.callback_url).is_err()
    {
        return Err(PppError::bad(
            "bad-request",
            "field `callbackUrl` must be an http(s) URL",
        ));
    }
    let currency = Currency::parse(&body.currency)
        .map_err(|e| PppError::bad("bad-request", format!("field `currency`: {e}")))?;
    let amount_minor = currency
        .parse_amount(&body.value)
        .map_err(|e| PppError::bad("invalid-value", format!("field `value`: {e}")))?;
    if amount_minor <= 0 {
        return Err(PppError::bad(
            "invalid-value",
            "field `value` must be positive",
        ));
    }
    let installments = lenient_int(body.installments.as_ref());
    if body.payment_method == DEBIT_METHOD && installments.is_some_and(|n| n > 1) {
        return Err(PppError::bad(
            "bad-request",
            format!("field `installments`: a `{DEBIT_METHOD}` sale is paid at once (0 or 1)"),
        ));
    }
    Ok(CreatePayment {
        payment_id: body.payment_id,
        transaction_id: body.transaction_id,
        method: body.payment_method,
        amount_minor,
        currency,
        installments,
        callback_url: body.callback_url,
        test_card: body.card.and_then(|c| c.number),
        is_test_suite,
        relay_assigned: None,
    })
}

/// A response body that holds the in-flight guard until the body has been sent.
struct GuardedBody {
    inner: Body,
    _guard: InFlightGuard,
}

impl http_body::Body for GuardedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CancelBody {
    request_id: String,
    #[serde(default)]
    payment_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AmountBody {
    request_id: String,
    value: Amount,
    #[serde(default)]
    payment_id: Option<String>,
}

/// What the cancel, settle and refund bodies share.
trait OperationBody: DeserializeOwned {
    fn request_id(&self) -> &str;
    /// The body's own paymentId, if it carries one (it must match the path).
    fn payment_id(&self) -> Option<&str>;
}

impl OperationBody for CancelBody {
    fn request_id(&self) -> &str {
        &self.request_id
    }

    fn payment_id(&self) -> Option<&str> {
        self.payment_id.as_deref()
    }
}

impl OperationBody for AmountBody {
    fn request_id(&self) -> &str {
        &self.request_id
    }

    fn payment_id(&self) -> Option<&str> {
        self.payment_id.as_deref()
    }
}

/// An operation request refused before it reached the engine, with the ids its answer may
/// repeat: only those that passed their check.
struct Refusal<'a> {
    error: PppError,
    payment_id: Option<&'a str>,
    request_id: Option<String>,
}

/// The body of an operation on the payment at `path_id`, with its ids checked.
fn operation_body<'a, B: OperationBody>(path_id: &'a str, bytes: &[u8]) -> Result<B, Refusal<'a>> {
    let refuse = |payment_id, request_id, error| Refusal {
        error,
        payment_id,
        request_id,
    };
    check_id("paymentId", path_id).map_err(|e| refuse(None, None, e))?;
    let body: B =
        parse(bytes).map_err(|m| refuse(Some(path_id), None, PppError::bad("bad-request", m)))?;
    check_id("requestId", body.request_id()).map_err(|e| refuse(Some(path_id), None, e))?;
    if body
        .payment_id()
        .is_some_and(|id| !id.is_empty() && id != path_id)
    {
        return Err(refuse(
            Some(path_id),
            Some(body.request_id().to_string()),
            PppError::bad(
                "bad-request",
                "field `paymentId` differs from the payment in the path",
            ),
        ));
    }
    Ok(body)
}

fn operation_response(answer: OperationAnswer) -> Response {
    let status =
        StatusCode::from_u16(answer.http_status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, Json(answer.body)).into_response()
}

/// The one path of cancel, settle and refund: parse and check the body, call the engine
/// (`call`), answer its outcome as `render` says, or the stored answer of a repeat.
async fn run_operation<B, O, Fut>(
    operation: Operation,
    payment_id: &str,
    bytes: &[u8],
    call: impl FnOnce(B) -> Fut,
    render: fn(&str, &str, &O) -> OperationAnswer,
) -> Response
where
    B: OperationBody,
    Fut: Future<Output = Result<Reply<O>, EngineError>>,
{
    let body: B = match operation_body(payment_id, bytes) {
        Ok(body) => body,
        Err(refusal) => {
            return operation_response(operation.refused(
                refusal.payment_id,
                refusal.request_id.as_deref(),
                &refusal.error,
            ));
        }
    };
    let request_id = body.request_id().to_string();
    let span = match operation {
        Operation::Cancel => tracing::info_span!("cancel", payment_id = %payment_id),
        Operation::Settle => tracing::info_span!("settle", payment_id = %payment_id),
        Operation::Refund => tracing::info_span!("refund", payment_id = %payment_id),
    };
    let answer = match call(body).instrument(span).await {
        Ok(Reply::Decided(outcome)) => render(payment_id, &request_id, &outcome),
        Ok(Reply::Replayed(answer)) => answer,
        Err(e) => operation.refused(Some(payment_id), Some(&request_id), &engine_error(e)),
    };
    operation_response(answer)
}

pub async fn cancel(
    State(state): State<AppState>,
    Merchant(merchant): Merchant,
    Path(payment_id): Path<String>,
    RawBody(bytes): RawBody,
) -> Response {
    let (engine, merchant, id) = (&state.engine, &merchant, &payment_id);
    let call =
        |body: CancelBody| async move { engine.cancel(merchant, id, &body.request_id).await };
    run_operation(
        Operation::Cancel,
        &payment_id,
        &bytes,
        call,
        operations::cancel,
    )
    .await
}

pub async fn settle(
    State(state): State<AppState>,
    Merchant(merchant): Merchant,
    Path(payment_id): Path<String>,
    RawBody(bytes): RawBody,
) -> Response {
    let (engine, merchant, id) = (&state.engine, &merchant, &payment_id);
    let call = |body: AmountBody| async move {
        engine
            .settle(merchant, id, &body.request_id, &body.value)
            .await
    };
    run_operation(
        Operation::Settle,
        &payment_id,
        &bytes,
        call,
        operations::settle,
    )
    .await
}

pub async fn refund(
    State(state): State<AppState>,
    Merchant(merchant): Merchant,
    Path(payment_id): Path<String>,
    RawBody(bytes): RawBody,
) -> Response {
    let (engine, merchant, id) = (&state.engine, &merchant, &payment_id);
    let call = |body: AmountBody| async move {
        engine
            .refund(merchant, id, &body.request_id, &body.value)
            .await
    };
    run_operation(
        Operation::Refund,
        &payment_id,
        &bytes,
        call,
        operations::refund,
    )
    .await
}

/// Inbound requests (BETA): `status` reports the payment; other actions answer 404 inside
/// `responseData`, as the spec's envelope expects.
pub async fn inbound(
    State(state): State<AppState>,
    Merchant(merchant): Merchant,
    Path((payment_id, action)): Path<(String, String)>,
    RawBody(bytes): RawBody,
) -> Response {
    if let Err(e) = check_id("paymentId", &payment_id) {
        return e.into_response();
    }
    let body: Value = match parse(&bytes) {
        Ok(b) => b,
        Err(m) => return PppError::bad("bad-request", m).into_response(),
    };
    let request_id = match body.get("requestId") {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) => match check_id("requestId", id) {
            Ok(()) => Some(id.as_str()),
            Err(e) => return e.into_response(),
        },
        Some(_) => {
            return PppError::bad("bad-request", "field `requestId` must be a string")
                .into_response();
        }
    };
    let payment = match state.engine.payment(&merchant, &payment_id).await {
        Ok(p) => p,
        Err(e) => return engine_error(e).into_response(),
    };
    // The spec's inbound request carries a requestId and its answer repeats it: without one
    // there is no answer the spec allows. Asked after the lookup: an unknown payment is a 404
    // whatever the body.
    let Some(request_id) = request_id else {
        return PppError::bad("bad-request", "missing field `requestId`").into_response();
    };
    let (status_code, content) = if action == "status" {
        let answer = state
            .create_answers
            .answer(&PaymentReply::of(payment.clone(), false));
        let mut content = serde_json::to_value(&answer).unwrap_or(Value::Null);
        content["state"] = json!(payment.state.as_str());
        if let Some(obj) = content.as_object_mut() {
            obj.remove("paymentAppData");
        }
        (200, content)
    } else {
        (
            404,
            json!({ "error": format!("unknown inbound action `{action}`") }),
        )
    };
    Json(json!({
        "requestId": request_id,
        "paymentId": payment_id,
        "responseData": {
            "statusCode": status_code,
            "contentType": "application/json",
            "content": content.to_string(),
        },
    }))
    .into_response()
}
