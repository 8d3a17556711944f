//! The status page for store IT: terminals, today's payments, the callback outbox (with a
//! re-delivery button) and alarms, as HTML (`GET /status`, plain HTML/JS, no build step) and
//! JSON (`GET /status/api`). Card data: brand and last 4 only. Callbacks: never their URL (it
//! carries the Gateway's signature).

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AdminState;
use super::auth;
use crate::locale;
use crate::money::Currency;
use crate::outbox::{Redeliver, Redelivered};
use crate::payment::Payment;
use crate::store::{StoreError, alarms, outbox, payments};

const PAGE: &str = include_str!("status.html");
const SCRIPT: &str = include_str!("status.js");
const LOGIN: &str = include_str!("login.html");

/// At most this many of today's payments are listed (newest first).
const MAX_PAYMENTS: u32 = 500;
/// At most this many undelivered callbacks are listed (oldest first).
const MAX_CALLBACKS: u32 = 500;
/// A wrong token typed into the login form is answered this late (slows guessing).
const WRONG_TOKEN_DELAY: Duration = Duration::from_millis(300);

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; \
                   connect-src 'self' ws: wss:; img-src 'self'; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

pub async fn page(State(state): State<AdminState>, headers: HeaderMap) -> Response {
    if state.auth.caller(&headers).is_none() {
        return Redirect::to("/status/login").into_response();
    }
    html(StatusCode::OK, PAGE.to_string())
}

pub async fn to_page() -> Redirect {
    Redirect::permanent("/status")
}

pub async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
        .into_response()
}

fn login_form(message: &str) -> String {
    LOGIN.replace("{{message}}", message)
}

pub async fn login_page() -> Response {
    html(StatusCode::OK, login_form(""))
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    token: String,
}

/// The login form posts the token once; the answer sets the cookie and goes to the page.
pub async fn login(State(state): State<AdminState>, Form(form): Form<LoginForm>) -> Response {
    let Some(name) = state.auth.holder_of(&form.token) else {
        tracing::warn!("admin: wrong token typed into the status page's login");
        tokio::time::sleep(WRONG_TOKEN_DELAY).await;
        return html(
            StatusCode::UNAUTHORIZED,
            login_form("That is not the admin token."),
        );
    };
    tracing::info!(who = %name, "admin: status page login");
    match state.auth.login_cookie(&name) {
        Some(cookie) => ([(header::SET_COOKIE, cookie)], Redirect::to("/status")).into_response(),
        None => html(
            StatusCode::UNAUTHORIZED,
            login_form("That is not the admin token."),
        ),
    }
}

pub async fn logout() -> Response {
    (
        [(header::SET_COOKIE, auth::logout_cookie())],
        Redirect::to("/status/login"),
    )
        .into_response()
}

pub async fn api(State(state): State<AdminState>) -> Response {
    match snapshot(&state).await {
        Ok(value) => ([(header::CACHE_CONTROL, "no-store")], Json(value)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "status page: cannot read the database");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({ "error": "cannot read the database" })),
            )
                .into_response()
        }
    }
}

/// Makes one undelivered callback due now and wakes the outbox.
pub async fn redeliver(State(state): State<AdminState>, Path(id): Path<i64>) -> Response {
    let now = state.engine.now_ms();
    let found = state
        .outbox
        .redeliver_now(Redeliver::Callback(id), now)
        .await;
    match found {
        Ok(Redelivered::Callback(_) | Redelivered::Payment(_)) => {
            tracing::info!(callback = id, "status page: callback re-delivery requested");
            Json(json!({ "id": id, "redelivering": true })).into_response()
        }
        Ok(Redelivered::Nothing) => (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": format!("no undelivered callback {id}") })),
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "status page: cannot schedule a re-delivery");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({ "error": "cannot schedule the re-delivery" })),
            )
                .into_response()
        }
    }
}

/// `29.9` BRL as `"29.90"`: the amount as a decimal string with the currency's minor digits.
fn decimal(minor: i64, currency: &str) -> String {
    let digits = Currency::parse(currency).map_or(2, |c| c.minor_digits());
    if digits == 0 {
        return minor.to_string();
    }
    let scale = 10i64.pow(u32::from(digits));
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    let scale = scale.unsigned_abs();
    format!(
        "{sign}{}.{:0width$}",
        abs / scale,
        abs % scale,
        width = usize::from(digits)
    )
}

fn payment_json(p: &Payment) -> Value {
    let (resolvable, resolution) = super::alarms::resolution_json(p);
    json!({
        "paymentId": p.payment_id,
        "state": p.state.as_str(),
        "status": p.state.ppp_status().as_str(),
        "amount": decimal(p.amount_minor, &p.currency),
        "amountMinor": p.amount_minor,
        // For people: as the currency writes it (`R$ 29,90`).
        "amountText": locale::money(&p.currency, p.amount_minor),
        "currency": p.currency,
        "method": p.method,
        // Brand and last 4 only: never the first 6.
        "cardBrand": p.sale.card_brand,
        "lastDigits": p.sale.last_digits,
        "terminal": p.terminal_id,
        "createdAt": p.created_at,
        "resolvable": resolvable,
        "resolution": resolution,
    })
}

/// What `/status/api` answers. Today starts at the store's midnight (`[store] timezone`);
/// times are unix ms (UTC) and amounts minor units, with text for people next to them; the
/// page writes times in `store.timezone`.
pub(super) async fn snapshot(state: &AdminState) -> Result<Value, StoreError> {
    let engine = &state.engine;
    let now = engine.now_ms();
    let store_time = engine.store_time();
    let since = store_time.start_of_day_ms(now);
    let (today, undelivered, open_alarms, alarmed) = state
        .store
        .call(move |c| {
            let open_alarms = alarms::open(c)?;
            let mut alarmed: Vec<Payment> = Vec::new();
            for id in open_alarms.iter().filter_map(|a| a.payment_id.as_deref()) {
                if !alarmed.iter().any(|p| p.payment_id == id)
                    && let Some(p) = payments::get(c, id)?
                {
                    alarmed.push(p);
                }
            }
            Ok((
                payments::created_since(c, since, MAX_PAYMENTS)?,
                outbox::undelivered(c, MAX_CALLBACKS)?,
                open_alarms,
                alarmed,
            ))
        })
        .await?;
    let callbacks: Vec<Value> = undelivered
        .iter()
        .map(|cb| {
            json!({
                "id": cb.id,
                "paymentId": cb.payment_id,
                "state": cb.state,
                "attempts": cb.attempts,
                "nextAttemptAt": (cb.state != "given_up").then_some(cb.next_attempt_at),
                "lastError": cb.last_error,
            })
        })
        .collect();
    let alarms: Vec<Value> = open_alarms.iter().map(super::alarms::alarm_json).collect();
    Ok(json!({
        "now": now,
        "store": { "timezone": store_time.name() },
        "todaySince": since,
        "todaySinceText": store_time.date_time(since),
        "terminals": super::terminals::list(engine),
        "payments": today.iter().map(payment_json).collect::<Vec<_>>(),
        // Whatever day they are from: what an alarm about a payment needs to be acted on.
        "alarmedPayments": alarmed.iter().map(payment_json).collect::<Vec<_>>(),
        "callbacks": callbacks,
        "alarms": alarms,
        "relay": state.uplink.as_ref().map(|u| json!({
            "storeId": u.store_id,
            "connected": u.connected(),
        })),
    }))
}

#[cfg(test)]
mod tests {
    use super::decimal;

    #[test]
    fn amounts_keep_their_minor_digits() {
        assert_eq!(decimal(2990, "BRL"), "29.90");
        assert_eq!(decimal(5, "EUR"), "0.05");
        assert_eq!(decimal(-150, "USD"), "-1.50");
        assert_eq!(decimal(1200, "JPY"), "1200");
    }
}
