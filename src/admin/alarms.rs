//! Alarms a person can act on: `GET /alarms` (open ones; `?all=1` the history),
//! `POST /alarms/{id}/ack`, and `POST /payments/{id}/resolve` for a payment the terminal could
//! not resolve. The status page calls the same under `/status/api/…` (cookie + page header).
//! Who did it is the caller's admin token name, never the token.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AdminState;
use super::auth::Caller;
use crate::payment::Payment;
use crate::pos::{ByHand, Decision, ResolveError};
use crate::store::alarms::{self, Ack, Alarm};

/// How many alarms of the history `?all=1` lists at most (newest first).
const HISTORY: u32 = 500;

/// An alarm as the CLI and the page see it (times UTC ms; the text is for people).
pub fn alarm_json(a: &Alarm) -> Value {
    json!({
        "id": a.id, "kind": a.kind.as_str(), "paymentId": a.payment_id, "subject": a.subject,
        "text": a.text, "raisedAtMs": a.raised_at, "clearedAtMs": a.cleared_at,
        "ackedAtMs": a.acked_at, "ackedBy": a.acked_by, "ackNote": a.ack_note,
        "open": a.is_open(),
    })
}

/// Whether a person may resolve this payment, and how it was resolved if one did.
pub fn resolution_json(p: &Payment) -> (bool, Value) {
    let resolvable = p.state == crate::payment::PaymentState::Unresolved;
    let resolution = p.resolution.as_ref().map_or(Value::Null, |r| {
        json!({
            "decision": p.state.ppp_status().as_str(), "by": r.by, "atMs": r.at,
            "reason": r.reason,
        })
    });
    (resolvable, resolution)
}

fn answer(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    all: Option<String>,
}

pub async fn list(State(state): State<AdminState>, Query(q): Query<ListQuery>) -> Response {
    let all = q.all.as_deref().is_some_and(|v| v == "1" || v == "true");
    let read = state
        .store
        .call(move |c| {
            if all {
                alarms::history(c, HISTORY)
            } else {
                alarms::open(c)
            }
        })
        .await;
    match read {
        Ok(list) => Json(json!({ "alarms": list.iter().map(alarm_json).collect::<Vec<_>>() }))
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "admin: cannot read the alarms");
            answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot read the database",
            )
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AckBody {
    #[serde(default)]
    note: Option<String>,
}

pub async fn ack(
    State(state): State<AdminState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<i64>,
    body: axum::body::Bytes,
) -> Response {
    let body: AckBody = if body.is_empty() {
        AckBody::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(b) => b,
            Err(_) => return answer(StatusCode::BAD_REQUEST, "expected {\"note\": \"…\"}"),
        }
    };
    if let Some(problem) = body
        .note
        .as_deref()
        .and_then(|n| crate::ids::problem(n, 500))
    {
        return answer(StatusCode::BAD_REQUEST, &format!("the note {problem}"));
    }
    let now = state.engine.now_ms();
    let who = caller.name.clone();
    let acked = state
        .store
        .call(move |c| alarms::ack(c, id, &who, body.note.as_deref(), now))
        .await;
    match acked {
        Ok(Ack::Done(alarm)) => {
            tracing::info!(alarm = id, kind = %alarm.kind, payment_id = alarm.payment_id.as_deref(), by = %caller.name, "alarm acknowledged");
            Json(json!({ "alarm": alarm_json(&alarm) })).into_response()
        }
        Ok(Ack::AlreadySettled(alarm)) => (
            StatusCode::CONFLICT,
            Json(json!({
                "error": "this alarm was already acknowledged or has cleared by itself",
                "alarm": alarm_json(&alarm),
            })),
        )
            .into_response(),
        Ok(Ack::NoSuchAlarm) => answer(StatusCode::NOT_FOUND, "no such alarm"),
        Err(e) => {
            tracing::error!(error = %e, "admin: cannot acknowledge an alarm");
            answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot write the database",
            )
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResolveBody {
    decision: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    card_brand: Option<String>,
    #[serde(default)]
    first_digits: Option<String>,
    #[serde(default)]
    last_digits: Option<String>,
    #[serde(default)]
    nsu: Option<String>,
    #[serde(default)]
    authorization_id: Option<String>,
}

pub async fn resolve(
    State(state): State<AdminState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let body: ResolveBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(_) => {
            return answer(
                StatusCode::BAD_REQUEST,
                "expected {\"decision\": \"approved\"|\"denied\", \"reason\": \"…\"} (optional: cardBrand, firstDigits, lastDigits, nsu, authorizationId)",
            );
        }
    };
    let Some(decision) = Decision::parse(&body.decision) else {
        return answer(
            StatusCode::BAD_REQUEST,
            "decision must be \"approved\" or \"denied\"",
        );
    };
    let resolution = ByHand {
        decision,
        by: caller.name,
        reason: body.reason,
        card_brand: body.card_brand,
        first_digits: body.first_digits,
        last_digits: body.last_digits,
        nsu: body.nsu,
        authorization_id: body.authorization_id,
    };
    match state.engine.resolve(&id, resolution).await {
        Ok(p) => {
            let (resolvable, resolution) = resolution_json(&p);
            Json(json!({
                "payment": {
                    "paymentId": p.payment_id, "state": p.state.as_str(),
                    "status": p.state.ppp_status().as_str(), "resolvable": resolvable,
                    "resolution": resolution,
                },
            }))
            .into_response()
        }
        Err(ResolveError::UnknownPayment) => answer(StatusCode::NOT_FOUND, "no such payment"),
        Err(e @ (ResolveError::NotUnresolved(_) | ResolveError::TerminalMayStillTell(_))) => {
            answer(StatusCode::CONFLICT, &e.to_string())
        }
        Err(e @ ResolveError::Invalid(_)) => answer(StatusCode::BAD_REQUEST, &e.to_string()),
        Err(ResolveError::Engine(e)) => {
            tracing::error!(error = %e, "admin: cannot resolve a payment");
            answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot write the database",
            )
        }
    }
}
