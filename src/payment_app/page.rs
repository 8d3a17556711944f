//! The reference Payment App page and its script: static files, served alike by a store and by
//! the relay tier (which has no feed state of its own: the page's socket is what it relays).

use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};

const PAGE: &str = include_str!("page.html");
const SCRIPT: &str = include_str!("app.js");

pub async fn to_page() -> Redirect {
    Redirect::permanent("/payment-app/")
}

pub async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                // http(s): the page asks a refused feed why with a GET of the same URL.
                "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; connect-src ws: wss: http: https:",
            ),
        ],
        PAGE,
    )
        .into_response()
}

pub async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
        .into_response()
}
