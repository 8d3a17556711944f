//! What a store's NATS user may do on the relay tier's cluster: serve its own subjects, answer
//! the relay, and write its own key of the serial map. Nothing of another store: it cannot see,
//! answer or claim another store's payments or terminals. `posbridge issue-store-credentials`
//! prints this for the relay tier's `nats-server.conf`.

use super::{SERIALS_BUCKET, inbox_prefix};

/// Subjects the store may publish to.
pub fn publish(store_id: &str) -> Vec<String> {
    vec![
        format!("posbridge.store.{store_id}.>"),
        // Its own entry of the serial map, and reading that map's stream to find it.
        format!("$KV.{SERIALS_BUCKET}.{store_id}"),
        format!("$JS.API.STREAM.INFO.KV_{SERIALS_BUCKET}"),
    ]
}

/// Subjects the store may subscribe to: its requests and the answers to its own requests.
pub fn subscribe(store_id: &str) -> Vec<String> {
    vec![
        format!("posbridge.store.{store_id}.>"),
        format!("{}.>", inbox_prefix(store_id)),
    ]
}

/// The `users` entry of the relay tier's `nats-server.conf` for a store with a plain password.
/// `allow_responses` lets it answer the relay's requests (their reply subjects are the relay's).
pub fn server_conf_user(store_id: &str, password: &str) -> String {
    let list = |subjects: Vec<String>| {
        subjects
            .iter()
            .map(|s| format!("\"{s}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "{{\n  user: \"{store_id}\"\n  password: \"{password}\"\n  permissions: {{\n    publish: {{ allow: [{}] }}\n    subscribe: {{ allow: [{}] }}\n    allow_responses: true\n  }}\n}}",
        list(publish(store_id)),
        list(subscribe(store_id))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_user_is_limited_to_its_own_subjects_and_serial_entry() {
        let entry = server_conf_user("store-0042", "pw");
        assert!(entry.contains("user: \"store-0042\""));
        assert!(entry.contains("\"posbridge.store.store-0042.>\""));
        assert!(entry.contains("\"$KV.posbridge_serials.store-0042\""));
        assert!(entry.contains("\"_INBOX.store-0042.>\""));
        assert!(entry.contains("allow_responses: true"));
        // No wildcard reaches past the store's own name.
        for subject in publish("store-0042").iter().chain(&subscribe("store-0042")) {
            assert!(
                subject.contains("store-0042") || subject.starts_with("$JS.API.STREAM.INFO."),
                "{subject}"
            );
            assert!(!subject.contains('*'), "{subject}");
        }
    }
}
