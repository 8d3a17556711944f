//! One HTTP exchange as one NATS request and its reply. The method, the path and the HTTP headers
//! travel as NATS headers and the body as the payload, untouched: the store answers a relayed
//! request exactly as its own listener would, and the relay hands that answer on byte for byte.
//! Only the Gateway's credentials never cross: the relay checks them and names the merchant.

use async_nats::HeaderMap;
use axum::body::Body;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};

/// The request's method (`POST`).
pub const METHOD: &str = "Posbridge-Method";
/// The request's path and query (`/payments/p-1/cancellations`).
pub const PATH: &str = "Posbridge-Path";
/// The address the relay took the request from: the store's failure limits count by it.
pub const CLIENT: &str = "Posbridge-Client";
/// The `tid` the relay gave a payment in its first Create answer (`RelayAssigned`).
pub const TID: &str = "Posbridge-Tid";
/// The submitUrl token the relay gave out with it.
pub const SUBMIT_TOKEN: &str = "Posbridge-Submit-Token";
/// The merchant (app key) the relay authenticated the request as (`RelayMerchant`).
pub const MERCHANT: &str = "Posbridge-Merchant";
/// The answer's status code.
pub const STATUS: &str = "Posbridge-Status";
/// Prefix of the HTTP headers carried along, so that none can pose as one of the above.
const HTTP_HEADER: &str = "Http-";

/// Headers of one connection, not of the request: they do not cross.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "content-length",
    "host",
];

/// The Gateway's credentials: the relay checks them and names the merchant instead
/// ([`MERCHANT`]), so no app token crosses NATS.
const CREDENTIALS: &[&str] = &[
    "x-vtex-api-appkey",
    "x-vtex-api-apptoken",
    "x-provider-api-appkey",
    "x-provider-api-apptoken",
];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    #[error("the relayed message has no {0} header")]
    Missing(&'static str),
    #[error("the relayed message's {0} header is not valid: `{1}`")]
    Invalid(&'static str, String),
}

/// What the relay sends: the HTTP request as NATS headers and payload.
pub fn request_to_nats(
    method: &Method,
    path_and_query: &str,
    http_headers: &http::HeaderMap,
    client: Option<std::net::IpAddr>,
) -> HeaderMap {
    let mut headers = carry(http_headers);
    headers.insert(METHOD, method.as_str());
    headers.insert(PATH, path_and_query);
    if let Some(client) = client {
        headers.insert(CLIENT, client.to_string().as_str());
    }
    headers
}

/// A Create the relay forwards carries the identity it already gave the payment out under.
pub fn assign(headers: &mut HeaderMap, assigned: &crate::ids::RelayAssigned) {
    headers.insert(TID, assigned.tid.as_str());
    headers.insert(SUBMIT_TOKEN, assigned.submit_token.as_str());
}

/// A PPP request the relay authenticated names its merchant.
pub fn name_merchant(headers: &mut HeaderMap, merchant: &crate::ids::RelayMerchant) {
    headers.insert(MERCHANT, merchant.0.as_str());
}

/// What the store serves: the HTTP request rebuilt from a relayed message, with the identity
/// the relay gave the payment (if it names one) as a request extension.
pub fn request_from_nats(
    headers: Option<&HeaderMap>,
    payload: Bytes,
) -> Result<(Request<Body>, Option<std::net::IpAddr>), WireError> {
    let headers = headers.ok_or(WireError::Missing(METHOD))?;
    let method = required(headers, METHOD)?;
    let method = Method::from_bytes(method.as_bytes())
        .map_err(|_| WireError::Invalid(METHOD, method.to_string()))?;
    let path = required(headers, PATH)?;
    if !path.starts_with('/') {
        return Err(WireError::Invalid(PATH, path.to_string()));
    }
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .body(Body::from(payload))
        .map_err(|_| WireError::Invalid(PATH, path.to_string()))?;
    restore(headers, request.headers_mut());
    match (headers.get(TID), headers.get(SUBMIT_TOKEN)) {
        (None, None) => {}
        (Some(tid), Some(token)) => {
            let assigned = crate::ids::RelayAssigned::parse(tid.as_str(), token.as_str())
                .ok_or_else(|| WireError::Invalid(TID, tid.to_string()))?;
            request.extensions_mut().insert(assigned);
        }
        (None, Some(_)) => return Err(WireError::Missing(TID)),
        (Some(_), None) => return Err(WireError::Missing(SUBMIT_TOKEN)),
    }
    if let Some(merchant) = headers.get(MERCHANT) {
        let merchant = crate::ids::RelayMerchant::parse(merchant.as_str())
            .ok_or_else(|| WireError::Invalid(MERCHANT, merchant.to_string()))?;
        request.extensions_mut().insert(merchant);
    }
    let client = match headers.get(CLIENT) {
        Some(value) => Some(
            value
                .as_str()
                .parse()
                .map_err(|_| WireError::Invalid(CLIENT, value.to_string()))?,
        ),
        None => None,
    };
    Ok((request, client))
}

/// What the store replies: the status and headers of its answer (its body is the payload).
pub fn response_to_nats(response: &Response<Body>) -> HeaderMap {
    let mut headers = carry(response.headers());
    headers.insert(STATUS, response.status().as_u16().to_string().as_str());
    headers
}

/// What the relay answers: the store's answer rebuilt from its reply.
pub fn response_from_nats(
    headers: Option<&HeaderMap>,
    payload: Bytes,
) -> Result<Response<Body>, WireError> {
    let headers = headers.ok_or(WireError::Missing(STATUS))?;
    let status = required(headers, STATUS)?;
    let status = status
        .parse::<u16>()
        .ok()
        .and_then(|code| StatusCode::from_u16(code).ok())
        .ok_or_else(|| WireError::Invalid(STATUS, status.to_string()))?;
    let mut response = Response::new(Body::from(payload));
    *response.status_mut() = status;
    restore(headers, response.headers_mut());
    Ok(response)
}

fn required<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<&'a str, WireError> {
    headers
        .get(name)
        .map(|value| value.as_str())
        .ok_or(WireError::Missing(name))
}

/// The end-to-end HTTP headers, prefixed. A value that is not text (HTTP allows bytes NATS
/// headers do not) is left behind: nothing PPP or the Payment App reads is such a header.
fn carry(http_headers: &http::HeaderMap) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in http_headers {
        if HOP_BY_HOP.contains(&name.as_str()) || CREDENTIALS.contains(&name.as_str()) {
            continue;
        }
        if let Ok(value) = value.to_str() {
            headers.append(format!("{HTTP_HEADER}{name}").as_str(), value);
        }
    }
    headers
}

fn restore(headers: &HeaderMap, http_headers: &mut http::HeaderMap) {
    for (name, values) in headers.iter() {
        let Some(http_name) = strip_prefix_ignoring_case(name.as_ref(), HTTP_HEADER) else {
            continue;
        };
        let Ok(http_name) = http::HeaderName::from_bytes(http_name.as_bytes()) else {
            continue;
        };
        if HOP_BY_HOP.contains(&http_name.as_str()) || CREDENTIALS.contains(&http_name.as_str()) {
            continue;
        }
        for value in values {
            if let Ok(value) = http::HeaderValue::from_str(value.as_str()) {
                http_headers.append(http_name.clone(), value);
            }
        }
    }
}

fn strip_prefix_ignoring_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(body: Body) -> Bytes {
        axum::body::to_bytes(body, 1 << 20).await.expect("body")
    }

    #[tokio::test]
    async fn a_request_crosses_with_its_method_path_headers_and_body_untouched() {
        let mut http_headers = http::HeaderMap::new();
        http_headers.insert("x-vtex-request-id", "r-1".parse().expect("value"));
        http_headers.insert("content-type", "application/json".parse().expect("value"));
        http_headers.insert("connection", "keep-alive".parse().expect("value"));
        http_headers.insert("host", "relay.example.com".parse().expect("value"));
        let headers = request_to_nats(
            &Method::POST,
            "/payments/p-1/cancellations?x=1",
            &http_headers,
            Some("198.51.100.7".parse().expect("ip")),
        );
        let body = Bytes::from_static(b"{\"paymentId\":\"p-1\"}");
        let (request, client) =
            request_from_nats(Some(&headers), body.clone()).expect("a valid message");
        assert_eq!(request.method(), Method::POST);
        assert_eq!(request.uri(), "/payments/p-1/cancellations?x=1");
        assert_eq!(request.headers()["x-vtex-request-id"], "r-1");
        assert_eq!(request.headers()["content-type"], "application/json");
        assert!(request.headers().get("connection").is_none());
        assert!(request.headers().get("host").is_none());
        assert_eq!(client, Some("198.51.100.7".parse().expect("ip")));
        assert_eq!(body_of(request.into_body()).await, body);
    }

    #[tokio::test]
    async fn an_answer_crosses_with_its_status_headers_and_body_untouched() {
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        response
            .headers_mut()
            .insert("retry-after", "5".parse().expect("value"));
        let headers = response_to_nats(&response);
        let back = response_from_nats(Some(&headers), Bytes::from_static(b"{\"code\":\"busy\"}"))
            .expect("a valid reply");
        assert_eq!(back.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(back.headers()["retry-after"], "5");
        assert_eq!(body_of(back.into_body()).await, "{\"code\":\"busy\"}");
    }

    #[test]
    fn an_http_header_cannot_pose_as_the_method_or_the_path() {
        let mut http_headers = http::HeaderMap::new();
        http_headers.insert("posbridge-method", "DELETE".parse().expect("value"));
        let headers = request_to_nats(&Method::GET, "/manifest", &http_headers, None);
        let (request, _) = request_from_nats(Some(&headers), Bytes::new()).expect("valid");
        assert_eq!(request.method(), Method::GET);
        assert_eq!(request.headers()["posbridge-method"], "DELETE");
    }

    #[test]
    fn the_relays_identity_of_a_payment_crosses_as_an_extension_only_when_well_formed() {
        let token = "0f".repeat(32);
        let assigned =
            crate::ids::RelayAssigned::parse("pb00112233445566778899", &token).expect("valid");
        let mut headers =
            request_to_nats(&Method::POST, "/payments", &http::HeaderMap::new(), None);
        assign(&mut headers, &assigned);
        let (request, _) = request_from_nats(Some(&headers), Bytes::new()).expect("valid");
        assert_eq!(
            request.extensions().get::<crate::ids::RelayAssigned>(),
            Some(&assigned)
        );
        // An HTTP header of the same name is carried as a header, never as the identity.
        let mut http_headers = http::HeaderMap::new();
        http_headers.insert(
            "posbridge-tid",
            "pb00112233445566778899".parse().expect("v"),
        );
        let headers = request_to_nats(&Method::POST, "/payments", &http_headers, None);
        let (request, _) = request_from_nats(Some(&headers), Bytes::new()).expect("valid");
        assert!(
            request
                .extensions()
                .get::<crate::ids::RelayAssigned>()
                .is_none()
        );
        let mut headers =
            request_to_nats(&Method::POST, "/payments", &http::HeaderMap::new(), None);
        headers.insert(TID, "pb-not-ours");
        headers.insert(SUBMIT_TOKEN, token.as_str());
        assert!(matches!(
            request_from_nats(Some(&headers), Bytes::new()),
            Err(WireError::Invalid(TID, _))
        ));
    }

    #[test]
    fn credentials_never_cross_and_the_merchant_the_relay_names_becomes_an_extension() {
        let mut http_headers = http::HeaderMap::new();
        for name in CREDENTIALS {
            http_headers.insert(*name, "secret-value".parse().expect("value"));
        }
        let mut headers = request_to_nats(&Method::POST, "/payments", &http_headers, None);
        assert!(
            headers
                .iter()
                .all(|(_, values)| values.iter().all(|v| !v.as_str().contains("secret-value"))),
            "a credential crossed: {headers:?}"
        );
        let merchant = crate::ids::RelayMerchant("posbridge-abc".into());
        name_merchant(&mut headers, &merchant);
        // Even a store's reply path drops a credential header put in by hand.
        headers.insert("Http-x-vtex-api-apptoken", "secret-value");
        let (request, _) = request_from_nats(Some(&headers), Bytes::new()).expect("valid");
        assert_eq!(
            request.extensions().get::<crate::ids::RelayMerchant>(),
            Some(&merchant)
        );
        assert!(request.headers().get("x-vtex-api-apptoken").is_none());
        // An HTTP header of the same name stays a header.
        let mut http_headers = http::HeaderMap::new();
        http_headers.insert("posbridge-merchant", "forged".parse().expect("v"));
        let headers = request_to_nats(&Method::POST, "/payments", &http_headers, None);
        let (request, _) = request_from_nats(Some(&headers), Bytes::new()).expect("valid");
        assert!(
            request
                .extensions()
                .get::<crate::ids::RelayMerchant>()
                .is_none()
        );
        let mut headers =
            request_to_nats(&Method::POST, "/payments", &http::HeaderMap::new(), None);
        headers.insert(MERCHANT, "");
        assert!(matches!(
            request_from_nats(Some(&headers), Bytes::new()),
            Err(WireError::Invalid(MERCHANT, _))
        ));
    }

    #[test]
    fn broken_messages_are_refused_by_name() {
        assert_eq!(
            request_from_nats(None, Bytes::new()).err(),
            Some(WireError::Missing(METHOD))
        );
        let mut headers = HeaderMap::new();
        headers.insert(METHOD, "GET");
        headers.insert(PATH, "manifest");
        assert_eq!(
            request_from_nats(Some(&headers), Bytes::new()).err(),
            Some(WireError::Invalid(PATH, "manifest".into()))
        );
        let mut headers = HeaderMap::new();
        headers.insert(STATUS, "9999");
        assert!(matches!(
            response_from_nats(Some(&headers), Bytes::new()),
            Err(WireError::Invalid(STATUS, _))
        ));
    }
}
