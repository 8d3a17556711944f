//! The one page of the configuration flow a merchant sees: the onboarding-code form.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

pub(super) const EXPIRED: &str =
    "This link is invalid or has expired. Start again from the VTEX admin.";

/// The form for `token` (none when empty), with `error` above it if any.
pub(super) fn page(status: StatusCode, token: &str, error: Option<&str>) -> Response {
    let error = error
        .map(|e| format!("<p class=\"error\">{}</p>", escape(e)))
        .unwrap_or_default();
    let form = if token.is_empty() {
        String::new()
    } else {
        format!(
            "<form method=\"post\" action=\"/authorization/redirect\">\
             <input type=\"hidden\" name=\"token\" value=\"{}\">\
             <label>Onboarding code <input name=\"code\" type=\"password\" autocomplete=\"off\" autofocus></label>\
             <button type=\"submit\">Connect this store</button></form>",
            escape(token)
        )
    };
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>posbridge — connect your VTEX account</title>\
         <meta name=\"viewport\" content=\"width=device-width\"></head><body>\
         <h1>Connect posbridge to your VTEX account</h1>\
         <p>Type the onboarding code your store IT gave you.</p>{error}{form}</body></html>"
    );
    let mut response = (status, Html(html)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
