//! Operations on the admin listener: Prometheus metrics, the log level, and what the
//! `posbridge payments …` / `callbacks …` commands ask (behind the admin auth layer). Answers
//! are for scripts (UTC unix ms, minor units) and carry the store's time zone, so the CLI shows
//! times in the zone the daemon counts days in.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::clock::{Clock, SystemClock};
use crate::money::Currency;
use crate::outbox::{Redeliver, Redelivered};
use crate::payment::Payment;
use crate::pos::Engine;
use crate::store::{StoreError, alarms, outbox, payments, receipts};

use super::AdminState;

fn refused(status: StatusCode, error: String) -> Response {
    (status, Json(json!({ "error": error }))).into_response()
}

/// The store as answers for people need it: its time zone (IANA name).
pub(super) fn store_json(engine: &Engine) -> Value {
    json!({ "timezone": engine.store_time().name() })
}

fn internal(e: StoreError) -> Response {
    tracing::error!(error = %e, "admin: database error");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(json!({ "error": "database error" })),
    )
        .into_response()
}

pub async fn metrics(State(state): State<AdminState>) -> Response {
    let now = SystemClock.now_ms();
    let read = state
        .store
        .call(|c| Ok((payments::count_by_state(c)?, outbox::backlog(c)?)))
        .await;
    let (by_state, (backlog, oldest)) = match read {
        Ok(v) => v,
        Err(e) => return internal(e),
    };
    for (payment_state, count) in by_state {
        #[allow(clippy::cast_precision_loss)]
        crate::observability::gauge(
            "posbridge_payments",
            &[("state", payment_state)],
            count as f64,
        );
    }
    #[allow(clippy::cast_precision_loss)]
    {
        crate::observability::gauge("posbridge_callbacks_pending", &[], backlog as f64);
        let age = oldest.map_or(0.0, |t| (now - t).max(0) as f64 / 1000.0);
        crate::observability::gauge("posbridge_callbacks_oldest_pending_age_seconds", &[], age);
    }
    for (id, _, handle) in state.engine.terminals() {
        let (online, _, _) = handle.health();
        let labels = [
            ("terminal", id.clone()),
            ("protocol", handle.protocol().to_string()),
        ];
        crate::observability::gauge(
            "posbridge_terminal_online",
            &labels,
            f64::from(u8::from(online)),
        );
        crate::observability::gauge(
            "posbridge_terminal_busy",
            &labels,
            f64::from(u8::from(handle.is_busy())),
        );
        let blocked = state.engine.lane_status(&id).blocked_by.is_some();
        crate::observability::gauge(
            "posbridge_terminal_blocked",
            &labels,
            f64::from(u8::from(blocked)),
        );
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::observability::render(),
    )
        .into_response()
}

pub async fn set_log_level(body: String) -> Response {
    match crate::telemetry::set_level(body.trim()) {
        Ok(()) => {
            tracing::warn!(level = %body.trim(), "log level changed by store IT");
            Json(json!({ "level": body.trim() })).into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, Json(json!({ "error": e }))).into_response(),
    }
}

/// A payment as store IT sees it: brand and last 4 only.
/// `alarm`: the text of its first open alarm, if any (its alarms are listed by `show`).
fn payment_json(p: &Payment, alarm: Option<&str>) -> Value {
    let (resolvable, resolution) = super::alarms::resolution_json(p);
    let amount = Currency::parse(&p.currency).map_or(Value::Null, |c| c.to_decimal(p.amount_minor));
    json!({
        "paymentId": p.payment_id, "state": p.state.as_str(), "amount": amount,
        "amountMinor": p.amount_minor, "currency": p.currency, "method": p.method,
        "installments": p.installments, "terminal": p.terminal_id, "cardBrand": p.sale.card_brand,
        "lastDigits": p.sale.last_digits, "authorizationId": p.sale.authorization_id, "nsu": p.sale.nsu,
        "code": p.sale.code, "message": p.sale.message, "settledMinor": p.settled_minor,
        "refundedMinor": p.refunded_minor, "createdAtMs": p.created_at,
        "resolvable": resolvable, "resolution": resolution, "alarm": alarm,
    })
}

#[derive(Deserialize)]
pub struct ListQuery {
    /// From this instant (unix ms).
    #[serde(default)]
    since_ms: Option<i64>,
    /// From the store's midnight that starts this date (`2026-11-30`).
    #[serde(default)]
    since: Option<String>,
    #[serde(default)]
    limit: Option<u32>,
}

/// `GET /payments`: newest first, the store's today (since its midnight) unless `since` or
/// `since_ms` says from when.
pub async fn list_payments(
    State(state): State<AdminState>,
    Query(q): Query<ListQuery>,
) -> Response {
    let store_time = state.engine.store_time();
    let since = match (q.since_ms, q.since.as_deref()) {
        (Some(_), Some(_)) => {
            return refused(
                StatusCode::BAD_REQUEST,
                "give `since` (a date) or `since_ms`, not both".into(),
            );
        }
        (Some(since_ms), None) => since_ms,
        (None, Some(date)) => match store_time.start_of_date_ms(date) {
            Ok(since_ms) => since_ms,
            Err(problem) => return refused(StatusCode::BAD_REQUEST, problem),
        },
        (None, None) => store_time.start_of_day_ms(state.engine.now_ms()),
    };
    let limit = q.limit.unwrap_or(200).clamp(1, 1000);
    match state
        .store
        .call(move |c| Ok((payments::created_since(c, since, limit)?, alarms::open(c)?)))
        .await
    {
        Ok((list, open)) => Json(json!({
            "payments": list
                .iter()
                .map(|p| {
                    let alarm = open
                        .iter()
                        .find(|a| a.payment_id.as_deref() == Some(p.payment_id.as_str()));
                    payment_json(p, alarm.map(|a| a.text.as_str()))
                })
                .collect::<Vec<_>>(),
            "sinceMs": since,
            "limit": limit,
            "store": store_json(&state.engine),
        }))
        .into_response(),
        Err(e) => internal(e),
    }
}

pub async fn show_payment(State(state): State<AdminState>, Path(id): Path<String>) -> Response {
    let key = id.clone();
    let read = state
        .store
        .call(move |c| {
            let Some(p) = payments::get(c, &key)? else {
                return Ok(None);
            };
            Ok(Some((
                p,
                receipts::of_payment(c, &key)?,
                outbox::states_of(c, &key)?,
                alarms::of_payment(c, &key)?,
            )))
        })
        .await;
    match read {
        Ok(Some((p, receipts, callbacks, alarms))) => {
            let open = alarms.iter().find(|a| a.is_open()).map(|a| a.text.as_str());
            let mut body = payment_json(&p, open);
            body["receipts"] = json!(
                receipts
                    .iter()
                    .map(|(kind, text)| json!({ "kind": kind, "text": text }))
                    .collect::<Vec<_>>()
            );
            body["alarms"] = json!(
                alarms
                    .iter()
                    .map(super::alarms::alarm_json)
                    .collect::<Vec<_>>()
            );
            body["callbacks"] = json!(
                callbacks
                    .iter()
                    .map(|(s, attempts)| json!({ "state": s, "attempts": attempts }))
                    .collect::<Vec<_>>()
            );
            body["store"] = store_json(&state.engine);
            Json(body).into_response()
        }
        Ok(None) => refused(StatusCode::NOT_FOUND, format!("no payment `{id}`")),
        Err(e) => internal(e),
    }
}

pub async fn list_callbacks(State(state): State<AdminState>) -> Response {
    match state.store.call(|c| outbox::undelivered(c, 500)).await {
        Ok(list) => Json(json!({
            "callbacks": list.iter().map(|u| json!({
                "id": u.id, "paymentId": u.payment_id, "state": u.state, "attempts": u.attempts,
                "nextAttemptAtMs": u.next_attempt_at, "lastError": u.last_error,
            })).collect::<Vec<_>>(),
            "store": store_json(&state.engine),
        }))
        .into_response(),
        Err(e) => internal(e),
    }
}

/// `POST /callbacks/{target}/retry`: makes undelivered callbacks due now. `target` is a
/// callback's number or a paymentId (all of that payment's); a number names a callback first,
/// and the answer says which callbacks were made due.
pub async fn retry_callback(
    State(state): State<AdminState>,
    Path(target): Path<String>,
) -> Response {
    let now = state.engine.now_ms();
    let made_due = state
        .outbox
        .redeliver_now(Redeliver::CallbackOrPayment(target.clone()), now)
        .await;
    let answer = match made_due {
        Ok(Redelivered::Callback(id)) => {
            tracing::info!(callback = id, "callback re-delivery requested by store IT");
            json!({ "callbacks": [id], "status": "due now" })
        }
        Ok(Redelivered::Payment(ids)) => {
            tracing::info!(payment_id = %target, callbacks = ?ids, "callback re-delivery requested by store IT");
            json!({ "paymentId": target, "callbacks": ids, "status": "due now" })
        }
        Ok(Redelivered::Nothing) => {
            let key = target.clone();
            return match state.store.call(move |c| payments::get(c, &key)).await {
                Ok(Some(_)) => refused(
                    StatusCode::NOT_FOUND,
                    format!("payment `{target}` has no undelivered callback"),
                ),
                Ok(None) => refused(
                    StatusCode::NOT_FOUND,
                    format!("no undelivered callback and no payment `{target}`"),
                ),
                Err(e) => internal(e),
            };
        }
        Err(e) => return internal(e),
    };
    Json(answer).into_response()
}
