//! What a store's NATS user may do on the relay tier's cluster: serve its own subjects, answer
//! the relay, and write its own key of the serial map. Nothing of another store: it cannot see,
//! answer or claim another store's payments or terminals. `posbridge issue-store-credentials`
//! ([`issue_store_credentials`]) prints this for the relay tier's `nats-server.conf`.

use super::{SERIALS_BUCKET, inbox_prefix};

/// Subjects the store may publish to.
pub fn publish(store_id: &str) -> Vec<String> {
    vec![
        format!("posbridge.store.{store_id}.>"),
        // Its own entry of the serial map.
        format!("$KV.{SERIALS_BUCKET}.{store_id}"),
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

#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error("{0}")]
    StoreId(String),
    #[error("cannot make a password: {0}")]
    Random(getrandom::Error),
    #[error("cannot write {path} (it must not exist yet): {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

/// `posbridge issue-store-credentials`: a new random password for the store `store_id` written
/// to `password_file` (created, mode 0600), and what to configure on both sides.
pub fn issue_store_credentials(
    store_id: &str,
    password_file: &std::path::Path,
    nats_url: &str,
) -> Result<String, IssueError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;

    crate::config::check_store_id(store_id).map_err(IssueError::StoreId)?;
    let password = crate::secret::random_token().map_err(IssueError::Random)?;
    let write_error = |source| IssueError::Write {
        path: password_file.display().to_string(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(password_file)
        .map_err(write_error)?;
    file.write_all(format!("{password}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(write_error)?;
    Ok(format!(
        "# The relay tier's nats-server.conf: add this entry to the STORES account's users,\n\
         # then reload nats-server (systemctl reload nats-server).\n{}\n\n\
         # The store's posbridge.toml (copy {} to the store, owner root, group posbridge, 0640):\n\
         [uplink]\nnats_url = \"{nats_url}\"\nstore_id = \"{store_id}\"\nuser = \"{store_id}\"\n\
         password_file = \"/etc/posbridge/uplink.password\"",
        server_conf_user(store_id, &password),
        password_file.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuing_writes_a_new_password_once_and_never_over_a_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("store-7.password");
        let text = issue_store_credentials("store-7", &file, "tls://n:4222").expect("issued");
        let password = std::fs::read_to_string(&file).expect("written");
        let password = password.trim();
        assert_eq!(password.len(), 64);
        assert!(
            text.contains(&format!("password: \"{password}\"")),
            "{text}"
        );
        assert!(text.contains("store_id = \"store-7\""), "{text}");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(matches!(
            issue_store_credentials("store-7", &file, "tls://n:4222"),
            Err(IssueError::Write { .. })
        ));
        assert_eq!(
            std::fs::read_to_string(&file).expect("kept").trim(),
            password
        );
        assert!(matches!(
            issue_store_credentials("store.7", &dir.path().join("x"), "tls://n:4222"),
            Err(IssueError::StoreId(_))
        ));
        assert!(!dir.path().join("x").exists());
    }

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
            assert!(subject.contains("store-0042"), "{subject}");
            assert!(!subject.contains('*'), "{subject}");
        }
    }
}
