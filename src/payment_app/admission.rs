//! Who may follow a payment's feed (the token, `after`), and the Payment App's cancel: the same
//! for a socket and for the long polling the relay tier uses.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::http::StatusCode;
use axum::response::Response;

use super::hub::{Denied, Hub};
use super::{PaymentAppState, error};

/// The token and `after` checks a socket makes before its upgrade, with the same answers.
pub(super) async fn admit(
    state: &PaymentAppState,
    payment_id: &str,
    token: &str,
    after: Option<&str>,
) -> Result<Option<i64>, Response> {
    if let Some(problem) = crate::ids::problem(payment_id, crate::ids::MAX_KEY_CHARS) {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "bad-request",
            &format!("field `paymentId` {problem}"),
        ));
    }
    let after = match after.map(str::parse::<i64>) {
        None => None,
        Some(Ok(n)) if n >= 0 => Some(n),
        Some(_) => {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "bad-request",
                "after must be a sequence number (0 or more)",
            ));
        }
    };
    if let Err(denied) = state.hub.authorize(payment_id, token).await {
        tracing::warn!(payment_id = %payment_id, reason = %denied, "payment app: feed refused");
        let (status, code) = match denied {
            Denied::BadToken => (StatusCode::FORBIDDEN, "bad-token"),
            // Not a guess at a token (it matched): 410 is not counted by the failure limit,
            // so a stale page cannot lock the store's address out.
            Denied::Expired => (StatusCode::GONE, "expired-token"),
            Denied::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal-error"),
        };
        return Err(error(status, code, &denied.to_string()));
    }
    Ok(after)
}

/// Cancels from the Payment App (a socket's message, or the relay's request), one at a time
/// per `cancel_running`; what the terminal cannot do is told on the feed as an `error` event.
pub(super) fn start_cancel(hub: &Arc<Hub>, payment_id: &str, cancel_running: &Arc<AtomicBool>) {
    if cancel_running.swap(true, Ordering::AcqRel) {
        return; // one cancel at a time per socket
    }
    let (hub, payment_id, running) = (hub.clone(), payment_id.to_string(), cancel_running.clone());
    tokio::spawn(async move {
        match hub.engine().cancel_from_payment_app(&payment_id).await {
            Ok(answer) if answer.http_status == 200 => {}
            Ok(answer) if answer.is_final => {
                let field = |k: &str| answer.body[k].as_str().unwrap_or_default().to_string();
                hub.report_error(&payment_id, &field("code"), &field("message"));
            }
            Ok(_) => {
                tracing::info!(payment_id = %payment_id, "payment app: cancel still in progress on the terminal")
            }
            Err(e) => {
                tracing::error!(payment_id = %payment_id, error = %e, "payment app: cancel failed");
                hub.report_error(
                    &payment_id,
                    "cancel-failed",
                    "the cancel could not be started",
                );
            }
        }
        running.store(false, Ordering::Release);
    });
}
