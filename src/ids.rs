//! Identifiers from outside (paymentId, transactionId, requestId) and what may be logged: an id
//! ends up in the database, in every log line about the payment and in answers, so one that
//! could forge a log line or hide its own text is refused at the edge (`problem`), and the text
//! log escapes such characters in any value (`is_unsafe_in_logs`).

/// The longest identifier from outside, in characters (the Gateway's are GUIDs and short hex
/// strings).
pub const MAX_ID_CHARS: usize = 128;
/// The longest payment key in our own URLs (submitUrl, Payment App feed): a paymentId, or one
/// scoped to its merchant (`~` and 16 hex digits more).
pub const MAX_KEY_CHARS: usize = MAX_ID_CHARS + 17;

/// Characters that could forge or hide a log line if printed as they are: Unicode controls
/// (line feed, carriage return, escape sequences…), the line and paragraph separators, and the
/// bidirectional controls, which reorder what a reader sees.
pub fn is_unsafe_in_logs(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}'
                | '\u{2029}'
                | '\u{061C}'
                | '\u{200E}'
                | '\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
        )
}

/// What is wrong with an identifier of at most `max_chars` characters, in words that follow
/// "field `name`"; `None` when it is fine. Never repeats the value.
pub fn problem(id: &str, max_chars: usize) -> Option<String> {
    if id.trim().is_empty() {
        Some("must not be empty".to_string())
    } else if id.chars().nth(max_chars).is_some() {
        Some(format!("must be at most {max_chars} characters"))
    } else if id.chars().any(is_unsafe_in_logs) {
        Some(
            "must not contain control characters (line breaks, escapes, bidirectional controls)"
                .to_string(),
        )
    } else {
        None
    }
}
