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

/// The public identity the relay tier gave a payment before its store knew it (`tid` and the
/// submitUrl's token, both in the relay's first Create answer): the store adopts them when it
/// creates the payment, so every later answer names the same `tid` and submitUrl. Only the
/// uplink sets it, from the relay's message; a request on the listener cannot.
#[derive(Clone, PartialEq, Eq)]
pub struct RelayAssigned {
    pub tid: String,
    pub submit_token: String,
}

impl RelayAssigned {
    /// Both in the shapes posbridge makes them (`pb` and 20 hex digits; 64 hex digits), or
    /// `None`: a store never adopts what it would not have made itself.
    pub fn parse(tid: &str, submit_token: &str) -> Option<Self> {
        let hex = |s: &str, len: usize| {
            s.len() == len
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        let tid_ok = tid.strip_prefix("pb").is_some_and(|rest| hex(rest, 20));
        (tid_ok && hex(submit_token, 64)).then(|| Self {
            tid: tid.to_string(),
            submit_token: submit_token.to_string(),
        })
    }
}

impl std::fmt::Debug for RelayAssigned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayAssigned")
            .field("tid", &self.tid)
            .field("submit_token", &"***")
            .finish()
    }
}

/// The merchant (its app key) the relay tier authenticated a relayed PPP request as: the relay
/// holds every merchant's credentials and sends none of them to the store, which serves the
/// request as that merchant's. Only the uplink sets it, from the relay's message; a request on
/// the listener cannot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayMerchant(pub String);

impl RelayMerchant {
    /// An app key as posbridge would accept one from outside, or `None`.
    pub fn parse(app_key: &str) -> Option<Self> {
        problem(app_key, MAX_ID_CHARS)
            .is_none()
            .then(|| Self(app_key.to_string()))
    }
}

#[cfg(test)]
mod relay_assigned_tests {
    use super::RelayAssigned;

    #[test]
    fn only_identities_in_posbridges_own_shapes_are_adopted_and_the_token_never_prints() {
        let token = "ab".repeat(32);
        let assigned = RelayAssigned::parse("pb0123456789abcdef0123", &token).expect("valid");
        assert!(!format!("{assigned:?}").contains(&token));
        for (tid, token) in [
            ("pb0123", token.as_str()),
            ("xx0123456789abcdef0123", token.as_str()),
            ("pb0123456789ABCDEF0123", token.as_str()),
            ("pb0123456789abcdef0123", "short"),
            ("pb0123456789abcdef0123", &"zz".repeat(32)),
        ] {
            assert!(RelayAssigned::parse(tid, token).is_none(), "{tid} {token}");
        }
    }

    #[test]
    fn a_relayed_merchant_is_an_id_posbridge_would_accept() {
        use super::RelayMerchant;
        assert_eq!(
            RelayMerchant::parse("posbridge-0a1b"),
            Some(RelayMerchant("posbridge-0a1b".into()))
        );
        for bad in ["", " ", "key\nforged line", &"k".repeat(129)] {
            assert_eq!(RelayMerchant::parse(bad), None, "{bad}");
        }
    }
}
