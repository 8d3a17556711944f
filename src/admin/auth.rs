//! Who may use the admin listener: `Authorization: Bearer <[admin] token>` (the CLI, scripts),
//! or the status page's cookie, set once by its login form. The cookie holds a one-way
//! derivation of the token, never the token itself; both are compared in constant time.
//! A request authenticated by the cookie that changes something must also carry
//! [`PAGE_HEADER`]: a cross-site form cannot set it (on top of `SameSite=Strict`).

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::secret::{Secret, ct_eq, derived_token};

/// The status page's session cookie.
pub const COOKIE: &str = "posbridge_admin";
/// The header the status page's own `fetch` calls send with every change they ask for.
pub const PAGE_HEADER: &str = "x-posbridge-admin";

#[derive(Clone)]
pub struct AdminAuth {
    token: Secret,
    /// The cookie's value: derived one-way from the token.
    cookie: Secret,
}

/// How a caller proved it knows the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    Bearer,
    Cookie,
}

impl AdminAuth {
    pub fn new(token: Secret) -> Self {
        let cookie = Secret::new(derived_token("posbridge admin cookie", token.expose()));
        Self { token, cookie }
    }

    /// The caller, when it presented the token (Bearer) or the login cookie.
    pub fn caller(&self, headers: &HeaderMap) -> Option<Caller> {
        let bearer = headers
            .get_all("authorization")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| v.strip_prefix("Bearer "))
            .any(|t| self.token.matches(t.trim()));
        if bearer {
            return Some(Caller::Bearer);
        }
        let cookie = headers
            .get_all("cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .any(|(name, value)| {
                name == COOKIE && ct_eq(self.cookie.expose().as_bytes(), value.as_bytes())
            });
        cookie.then_some(Caller::Cookie)
    }

    /// Whether `presented` (typed into the login form) is the admin token.
    pub fn is_token(&self, presented: &str) -> bool {
        self.token.matches(presented.trim())
    }

    /// The `Set-Cookie` value that logs the browser in.
    pub fn login_cookie(&self) -> String {
        format!(
            "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/",
            self.cookie.expose()
        )
    }
}

/// The `Set-Cookie` value that logs the browser out.
pub fn logout_cookie() -> String {
    format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0")
}

fn refuse(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

/// Middleware for every protected route: 401 without the token or cookie; 403 for a change
/// asked with the cookie but without the page's header.
pub async fn require(State(auth): State<AdminAuth>, request: Request, next: Next) -> Response {
    match auth.caller(request.headers()) {
        None => {
            tracing::warn!(path = %request.uri().path(), "admin: rejected a request without the right token");
            refuse(StatusCode::UNAUTHORIZED, "missing or wrong bearer token")
        }
        Some(Caller::Cookie)
            if !matches!(*request.method(), Method::GET | Method::HEAD)
                && !request.headers().contains_key(PAGE_HEADER) =>
        {
            tracing::warn!(path = %request.uri().path(), "admin: refused a change without the page's header");
            refuse(
                StatusCode::FORBIDDEN,
                "changes from the status page must carry the X-Posbridge-Admin header",
            )
        }
        Some(_) => next.run(request).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, HeaderValue::from_str(v).expect("header"));
        }
        map
    }

    #[test]
    fn bearer_or_cookie_and_nothing_else() {
        let auth = AdminAuth::new(Secret::new("tok-123"));
        assert_eq!(
            auth.caller(&headers(&[("authorization", "Bearer tok-123")])),
            Some(Caller::Bearer)
        );
        assert_eq!(
            auth.caller(&headers(&[("authorization", "Bearer tok-12")])),
            None
        );
        let cookie = auth.login_cookie();
        assert!(
            !cookie.contains("tok-123"),
            "the cookie never holds the token"
        );
        let pair = cookie.split(';').next().expect("pair").to_string();
        assert_eq!(
            auth.caller(&headers(&[("cookie", &format!("a=b; {pair}; c=d"))])),
            Some(Caller::Cookie)
        );
        assert_eq!(
            auth.caller(&headers(&[("cookie", "posbridge_admin=tok-123")])),
            None
        );
        assert_eq!(auth.caller(&headers(&[])), None);
        assert!(auth.is_token(" tok-123 "));
        assert!(!auth.is_token("tok"));
    }
}
