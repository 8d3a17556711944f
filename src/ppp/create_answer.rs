//! What a Create answers while the payment is not final: the Payment App the Sales App opens
//! for the engine's next step, with the public addresses it calls (submitUrl, the live feed).

use serde_json::json;

use crate::payment::PppStatus;
use crate::pos::answer::PaymentAppData;
use crate::pos::{NextStep, PaymentAnswer, PaymentReply, payment_app_token};

pub const TERMINAL_CONNECTOR_APP: &str = "vtex.terminal-connector-app";
pub const WAIT_FOR_CONFIRMATION_APP: &str = "vtex.challenge-wait-for-confirmation";

/// The addresses the daemon gives out, built once from `server.public_url` (or the listening
/// address): no other part builds a public URL.
#[derive(Debug, Clone)]
pub struct PublicUrls {
    /// Without a trailing `/`.
    base: String,
}

impl PublicUrls {
    pub fn new(public_url: &str) -> Self {
        Self {
            base: public_url.trim_end_matches('/').to_string(),
        }
    }

    /// The terminal connector app's submitUrl: names the terminal, with the payment's token.
    pub fn submit_url(&self, payment_id: &str, submit_token: &str) -> String {
        format!(
            "{}/pos/payments/{}/terminal?token={submit_token}",
            self.base,
            encode_path_segment(payment_id),
        )
    }

    /// The WebSocket URL of a payment's live feed, with its token.
    pub fn feed_url(&self, payment_id: &str, feed_token: &str) -> String {
        let base = match self.base.split_once("://") {
            Some(("https", rest)) => format!("wss://{rest}"),
            Some((_, rest)) => format!("ws://{rest}"),
            None => self.base.clone(),
        };
        format!(
            "{base}/payment-app/ws/{}?token={feed_token}",
            encode_path_segment(payment_id),
        )
    }
}

/// Builds the Create answer of a payment reply.
#[derive(Debug, Clone)]
pub struct CreateAnswers {
    urls: PublicUrls,
    /// A custom Payment App for the charge (`[payment_app] app_name`).
    custom_app: Option<String>,
}

impl CreateAnswers {
    pub fn new(urls: PublicUrls, custom_app: Option<String>) -> Self {
        Self { urls, custom_app }
    }

    pub fn answer(&self, reply: &PaymentReply) -> PaymentAnswer {
        let p = &reply.payment;
        let app = match &reply.next {
            NextStep::Final(frozen) => return frozen.as_ref().clone(),
            NextStep::AwaitCallback => None,
            NextStep::NameTerminal => Some(app(
                TERMINAL_CONNECTOR_APP,
                json!({ "submitUrl": self.urls.submit_url(&p.payment_id, &p.submit_token) }),
            )),
            NextStep::AwaitResult => Some(match &self.custom_app {
                // A partner's Payment App: what the wait app gets, plus the live feed.
                Some(name) => app(
                    name,
                    json!({
                        "paymentId": p.vtex_payment_id(),
                        "secondsWaiting": p.delays.seconds_waiting,
                        "wsUrl": self.urls.feed_url(&p.payment_id, &payment_app_token(p)),
                    }),
                ),
                None => app(
                    WAIT_FOR_CONFIRMATION_APP,
                    json!({ "secondsWaiting": p.delays.seconds_waiting }),
                ),
            }),
        };
        PaymentAnswer::of(p, PppStatus::Undefined, app)
    }
}

/// The payload is a JSON document serialized into a string, as the Payment App expects.
fn app(app_name: &str, payload: serde_json::Value) -> PaymentAppData {
    PaymentAppData {
        app_name: app_name.into(),
        payload: payload.to_string(),
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn encode_path_segment(s: &str) -> String {
    use std::fmt::Write;
    s.bytes().fold(String::new(), |mut out, b| {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_urls_keep_their_scheme_and_encode_the_payment() {
        let urls = PublicUrls::new("https://pos.example/");
        assert_eq!(
            urls.submit_url("a b/c", "tok"),
            "https://pos.example/pos/payments/a%20b%2Fc/terminal?token=tok"
        );
        assert_eq!(
            urls.feed_url("p~1", "t"),
            "wss://pos.example/payment-app/ws/p~1?token=t"
        );
        assert_eq!(
            PublicUrls::new("http://127.0.0.1:8080").feed_url("p", "t"),
            "ws://127.0.0.1:8080/payment-app/ws/p?token=t"
        );
    }
}
