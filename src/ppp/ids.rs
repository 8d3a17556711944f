//! Identifiers from outside (paymentId, transactionId, requestId): 1 to 128 characters, none of
//! them a control character. They end up in the database, in every log line about the payment
//! and in answers, so an id that could forge a log line or hide its own text is refused.

use super::error::PppError;
use crate::telemetry::is_unsafe_in_logs;

/// The longest identifier, in characters (the Gateway's are GUIDs and short hex strings).
pub const MAX_ID_CHARS: usize = 128;

/// Checks the identifier in `field`; the error names the field, never repeats the value.
pub fn check_id(field: &str, id: &str) -> Result<(), PppError> {
    let problem = if id.trim().is_empty() {
        "must not be empty".to_string()
    } else if id.chars().nth(MAX_ID_CHARS).is_some() {
        format!("must be at most {MAX_ID_CHARS} characters")
    } else if id.chars().any(is_unsafe_in_logs) {
        "must not contain control characters (line breaks, escapes, bidirectional controls)"
            .to_string()
    } else {
        return Ok(());
    };
    Err(PppError::bad(
        "bad-request",
        format!("field `{field}` {problem}"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        for good in [
            "a",
            "D3AA1FC8372E430E8236649DB5EBD08E",
            "pedido 123/ä€",
            &"x".repeat(128),
            &"é".repeat(128),
        ] {
            assert!(check_id("paymentId", good).is_ok(), "{good}");
        }
        for (bad, says) in [
            ("", "empty"),
            ("   ", "empty"),
            (&"x".repeat(129) as &str, "at most 128"),
            ("p1\nERROR forged", "control"),
            ("p1\r", "control"),
            ("p1\t", "control"),
            ("p1\u{1b}[31m", "control"),
            ("p1\u{85}", "control"),
            ("p1\u{2028}", "control"),
            ("p1\u{202E}gnp.exe", "control"),
            ("p1\u{2066}", "control"),
        ] {
            let error = check_id("requestId", bad).expect_err(bad);
            let message = error.to_string();
            assert!(message.starts_with("field `requestId` "), "{message}");
            assert!(message.contains(says), "{message}");
            assert_eq!(error.code(), "bad-request");
        }
    }
}
