//! `POST /nexo/notifications`: where Adyen terminals send the display and event notifications
//! they make during a sale (configured on each terminal as its display URL and event URL, with
//! encryption on). The sealing, the terminal and its sale are `terminal::nexo::notifications`'
//! business; this is only the HTTP around it.
//!
//! Accepted — shown, or authentic but about no running sale — it answers `200 [accepted]`, the
//! acknowledgement Adyen asks of a notification endpoint. Refused, it answers the one error
//! shape with nothing of the request in it: 400 for what is not a sealed notification, 403 for
//! an unknown POIID or a seal that does not open (counted against the address, as a wrong
//! token on the Payment App routes).

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use crate::error_body::response as error;
use crate::route_limits::{Guarded, Limits, RouteLimits, Routes, TimeBudget};
use crate::terminal::nexo::NotificationDesk;
use crate::terminal::nexo::notifications::{Delivered, Refused};

/// A sealed notification is one or two kilobytes; an event rejecting a message carries that
/// message, still far below this.
const BODY_BYTES: usize = 64 * 1024;

/// A seal that does not open counts against the address like a wrong token.
const LIMITS: Limits = Limits {
    failures: Some(Guarded::Token),
    time: TimeBudget::Request,
};

/// Adyen's acknowledgement of a notification.
const ACCEPTED: &str = "[accepted]";

pub fn router(desk: NotificationDesk, limits: &RouteLimits) -> Router {
    Routes::new(limits)
        .route(
            "/nexo/notifications",
            LIMITS,
            post(receive).layer(DefaultBodyLimit::max(BODY_BYTES)),
        )
        .into_router()
        .with_state(desk)
}

async fn receive(State(desk): State<NotificationDesk>, body: Bytes) -> Response {
    match desk.receive(&body) {
        Ok(Delivered::Shown { .. } | Delivered::Dropped { .. }) => {
            (StatusCode::OK, ACCEPTED).into_response()
        }
        Err(refused) => {
            let (status, code) = match &refused {
                Refused::Malformed(_) => (StatusCode::BAD_REQUEST, "malformed"),
                Refused::NotSealed => (StatusCode::BAD_REQUEST, "not-sealed"),
                Refused::NotANotification => (StatusCode::BAD_REQUEST, "not-a-notification"),
                Refused::UnknownTerminal => (StatusCode::FORBIDDEN, "unknown-terminal"),
                Refused::BadSeal => (StatusCode::FORBIDDEN, "bad-seal"),
            };
            // The parser's words may quote the request: only at debug, never in the answer.
            let message = match &refused {
                Refused::Malformed(detail) => {
                    tracing::debug!(%detail, "nexo notification unreadable");
                    "not a Terminal API notification".to_string()
                }
                other => other.to_string(),
            };
            tracing::warn!(code, reason = %message, "nexo notification refused");
            error(status, code, &message)
        }
    }
}
