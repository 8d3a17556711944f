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

use std::sync::Arc;

use crate::secret::{Secret, ct_eq, derived_token};

/// The status page's session cookie.
pub const COOKIE: &str = "posbridge_admin";
/// The header the status page's own `fetch` calls send with every change they ask for.
pub const PAGE_HEADER: &str = "x-posbridge-admin";

/// Who may use the admin listener: every configured token, by its holder's name.
#[derive(Clone)]
pub struct AdminAuth {
    holders: Arc<Vec<Holder>>,
}

struct Holder {
    name: String,
    token: Secret,
    /// The cookie's value: derived one-way from the token.
    cookie: Secret,
}

/// How a caller proved it holds a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Bearer,
    Cookie,
}

/// The authenticated caller: its token's name (what is recorded, never the token), and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
    pub via: Via,
}

impl AdminAuth {
    /// `tokens`: (holder's name, token).
    pub fn new(tokens: Vec<(String, Secret)>) -> Self {
        let holders = tokens
            .into_iter()
            .map(|(name, token)| {
                let cookie = Secret::new(derived_token("posbridge admin cookie", token.expose()));
                Holder {
                    name,
                    token,
                    cookie,
                }
            })
            .collect();
        Self {
            holders: Arc::new(holders),
        }
    }

    /// The caller, when it presented a token (Bearer) or a login cookie. Every holder is
    /// compared, in constant time, whichever matches.
    pub fn caller(&self, headers: &HeaderMap) -> Option<Caller> {
        let bearers: Vec<&str> = headers
            .get_all("authorization")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .collect();
        let cookies: Vec<&str> = headers
            .get_all("cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .filter(|(name, _)| *name == COOKIE)
            .map(|(_, value)| value)
            .collect();
        let mut found = None;
        for holder in self.holders.iter() {
            let bearer = bearers.iter().any(|t| holder.token.matches(t));
            let cookie = cookies
                .iter()
                .any(|v| ct_eq(holder.cookie.expose().as_bytes(), v.as_bytes()));
            let via = match (bearer, cookie) {
                (true, _) => Some(Via::Bearer),
                (false, true) => Some(Via::Cookie),
                (false, false) => None,
            };
            if let (None, Some(via)) = (&found, via) {
                found = Some(Caller {
                    name: holder.name.clone(),
                    via,
                });
            }
        }
        found
    }

    /// The name of the token `presented` (typed into the login form), if it is one.
    pub fn holder_of(&self, presented: &str) -> Option<String> {
        let presented = presented.trim();
        let mut found = None;
        for holder in self.holders.iter() {
            if holder.token.matches(presented) && found.is_none() {
                found = Some(holder.name.clone());
            }
        }
        found
    }

    /// The `Set-Cookie` value that logs the browser in as the holder named `name`.
    pub fn login_cookie(&self, name: &str) -> Option<String> {
        self.holders.iter().find(|h| h.name == name).map(|h| {
            format!(
                "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/",
                h.cookie.expose()
            )
        })
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
pub async fn require(State(auth): State<AdminAuth>, mut request: Request, next: Next) -> Response {
    match auth.caller(request.headers()) {
        None => {
            tracing::warn!(path = %request.uri().path(), "admin: rejected a request without the right token");
            refuse(StatusCode::UNAUTHORIZED, "missing or wrong bearer token")
        }
        Some(Caller {
            via: Via::Cookie, ..
        }) if !matches!(*request.method(), Method::GET | Method::HEAD)
            && !request.headers().contains_key(PAGE_HEADER) =>
        {
            tracing::warn!(path = %request.uri().path(), "admin: refused a change without the page's header");
            refuse(
                StatusCode::FORBIDDEN,
                "changes from the status page must carry the X-Posbridge-Admin header",
            )
        }
        Some(caller) => {
            // Handlers that record who did something read the caller's name from here.
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
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
    fn bearer_or_cookie_and_nothing_else_each_with_its_name() {
        let auth = AdminAuth::new(vec![
            ("admin".into(), Secret::new("tok-123")),
            ("ana".into(), Secret::new("tok-ana")),
        ]);
        let bearer = |t: &str| auth.caller(&headers(&[("authorization", &format!("Bearer {t}"))]));
        assert_eq!(
            bearer("tok-123"),
            Some(Caller {
                name: "admin".into(),
                via: Via::Bearer
            })
        );
        assert_eq!(bearer("tok-ana").map(|c| c.name), Some("ana".into()));
        assert_eq!(bearer("tok-12"), None);
        let cookie = auth.login_cookie("ana").expect("ana's cookie");
        assert!(
            !cookie.contains("tok-ana"),
            "the cookie never holds the token"
        );
        let pair = cookie.split(';').next().expect("pair").to_string();
        assert_eq!(
            auth.caller(&headers(&[("cookie", &format!("a=b; {pair}; c=d"))])),
            Some(Caller {
                name: "ana".into(),
                via: Via::Cookie
            })
        );
        assert_eq!(
            auth.caller(&headers(&[("cookie", "posbridge_admin=tok-123")])),
            None
        );
        assert_eq!(auth.caller(&headers(&[])), None);
        assert_eq!(auth.holder_of(" tok-123 ").as_deref(), Some("admin"));
        assert_eq!(auth.holder_of("tok"), None);
    }
}
