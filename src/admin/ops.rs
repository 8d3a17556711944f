//! Operations on the admin listener: Prometheus metrics, the log level, and what the
//! `posbridge payments …` / `callbacks …` commands ask (behind the admin auth layer).

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::clock::{Clock, SystemClock};
use crate::money::Currency;
use crate::store::payments::Payment;
use crate::store::{StoreError, alarms, outbox, payments, receipts};

use super::AdminState;

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
        .engine
        .store()
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
fn payment_json(p: &Payment) -> Value {
    let (resolvable, resolution) = super::alarms::resolution_json(p);
    let amount = Currency::parse(&p.currency).map_or(Value::Null, |c| c.to_decimal(p.amount_minor));
    json!({
        "paymentId": p.payment_id, "state": p.state.as_str(), "amount": amount, "currency": p.currency,
        "method": p.method, "terminal": p.terminal_id, "cardBrand": p.sale.card_brand,
        "lastDigits": p.sale.last_digits, "authorizationId": p.sale.authorization_id, "nsu": p.sale.nsu,
        "code": p.sale.code, "message": p.sale.message, "settledMinor": p.settled_minor,
        "refundedMinor": p.refunded_minor, "createdAtMs": p.created_at,
        "resolvable": resolvable, "resolution": resolution,
    })
}

#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    since_ms: Option<i64>,
    #[serde(default)]
    limit: Option<u32>,
}

pub async fn list_payments(
    State(state): State<AdminState>,
    Query(q): Query<ListQuery>,
) -> Response {
    let since = q.since_ms.unwrap_or(SystemClock.now_ms() - 86_400_000);
    let limit = q.limit.unwrap_or(200).min(1000);
    match state
        .engine
        .store()
        .call(move |c| payments::created_since(c, since, limit))
        .await
    {
        Ok(list) => Json(json!({ "payments": list.iter().map(payment_json).collect::<Vec<_>>() }))
            .into_response(),
        Err(e) => internal(e),
    }
}

pub async fn show_payment(State(state): State<AdminState>, Path(id): Path<String>) -> Response {
    let read = state
        .engine
        .store()
        .call(move |c| {
            let Some(p) = payments::get(c, &id)? else {
                return Ok(None);
            };
            Ok(Some((
                p,
                receipts::of_payment(c, &id)?,
                outbox::states_of(c, &id)?,
                alarms::of_payment(c, &id)?,
            )))
        })
        .await;
    match read {
        Ok(Some((p, receipts, callbacks, alarms))) => {
            let mut body = payment_json(&p);
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
            Json(body).into_response()
        }
        Ok(None) => (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": "no such payment" })),
        )
            .into_response(),
        Err(e) => internal(e),
    }
}

pub async fn list_callbacks(State(state): State<AdminState>) -> Response {
    match state
        .engine
        .store()
        .call(|c| outbox::undelivered(c, 500))
        .await
    {
        Ok(list) => Json(json!({
            "callbacks": list.iter().map(|u| json!({
                "id": u.id, "paymentId": u.payment_id, "state": u.state, "attempts": u.attempts,
                "nextAttemptAtMs": u.next_attempt_at, "lastError": u.last_error,
            })).collect::<Vec<_>>()
        }))
        .into_response(),
        Err(e) => internal(e),
    }
}

pub async fn retry_callback(State(state): State<AdminState>, Path(id): Path<i64>) -> Response {
    let now = SystemClock.now_ms();
    match state
        .engine
        .store()
        .call(move |c| outbox::redeliver_now(c, id, now))
        .await
    {
        Ok(true) => {
            state.engine.outbox_wake().notify_one();
            tracing::info!(callback = id, "callback re-delivery requested by store IT");
            Json(json!({ "callback": id, "status": "due now" })).into_response()
        }
        Ok(false) => (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": "no such undelivered callback" })),
        )
            .into_response(),
        Err(e) => internal(e),
    }
}
