//! The PPP side of identifier checks (see `crate::ids`): a 400 naming the field.

use super::error::PppError;
use crate::ids::{MAX_ID_CHARS, problem};

/// Checks the identifier in `field`; the error names the field, never repeats the value.
pub fn check_id(field: &str, id: &str) -> Result<(), PppError> {
    match problem(id, MAX_ID_CHARS) {
        None => Ok(()),
        Some(problem) => Err(PppError::bad(
            "bad-request",
            format!("field `{field}` {problem}"),
        )),
    }
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
