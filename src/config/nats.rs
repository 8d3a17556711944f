//! How posbridge reaches the NATS cluster of the relay tier: `[uplink]` in a store daemon's
//! configuration (and, with the relay, its `[nats]`). The login is a NATS `.creds` file or a plain
//! user whose password is in a file; never a secret in the TOML.

use std::path::PathBuf;

use serde::Deserialize;

/// A store daemon's link to the relay tier: its requests arrive and its answers leave over NATS,
/// so the store needs no inbound port.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "WrittenUplink")]
pub struct UplinkConfig {
    pub nats: NatsConnection,
    /// The store's name on the relay tier: its subjects are `posbridge.store.<store_id>.>`.
    pub store_id: String,
}

/// One or more servers of one NATS cluster, and how to log in to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsConnection {
    pub servers: Vec<String>,
    pub login: NatsLogin,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NatsLogin {
    /// A NATS `.creds` file (a user JWT and its nkey seed), as `nsc` issues them.
    CredentialsFile(PathBuf),
    /// A plain NATS user; the password is the file's first line.
    Password {
        user: String,
        password_file: PathBuf,
    },
}

impl NatsConnection {
    /// What this machine must give the login (`posbridge check-config`): its file readable, and
    /// a password file's first line not empty. `key` names the table (`uplink`, `nats`).
    pub fn host_problems(&self, key: &str) -> Vec<String> {
        let (name, path) = match &self.login {
            NatsLogin::CredentialsFile(path) => ("credentials_file", path),
            NatsLogin::Password { password_file, .. } => ("password_file", password_file),
        };
        match std::fs::read_to_string(path) {
            Err(e) => vec![format!("{key}.{name} {}: {e}", path.display())],
            Ok(text)
                if matches!(self.login, NatsLogin::Password { .. })
                    && text.lines().next().is_none_or(|l| l.trim().is_empty()) =>
            {
                vec![format!(
                    "{key}.{name} {}: the first line is empty",
                    path.display()
                )]
            }
            Ok(_) => Vec::new(),
        }
    }
}

/// `[uplink]` as written; [`UplinkConfig`] once its keys agree with each other.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WrittenUplink {
    nats_url: String,
    store_id: String,
    credentials_file: Option<PathBuf>,
    user: Option<String>,
    password_file: Option<PathBuf>,
}

impl TryFrom<WrittenUplink> for UplinkConfig {
    type Error = String;

    fn try_from(written: WrittenUplink) -> Result<Self, String> {
        check_store_id(&written.store_id)?;
        Ok(UplinkConfig {
            nats: NatsConnection {
                servers: servers(&written.nats_url, "nats_url")?,
                login: login(
                    written.credentials_file,
                    written.user,
                    written.password_file,
                )?,
            },
            store_id: written.store_id,
        })
    }
}

/// A subject token (no `.`, `*`, `>` or spaces) that also reads well in logs and NATS user
/// names: letters, digits, `-` and `_`, at most 64.
pub fn check_store_id(id: &str) -> Result<(), String> {
    let valid = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "store_id `{id}` must be 1 to 64 letters, digits, - or _ (it names the store's NATS subjects)"
        ))
    }
}

/// `nats://host:port` or `tls://host:port`, several separated by commas (one cluster).
pub(super) fn servers(text: &str, key: &str) -> Result<Vec<String>, String> {
    let servers: Vec<String> = text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if servers.is_empty() {
        return Err(format!("{key} names no server"));
    }
    for server in &servers {
        let Some((scheme, rest)) = server.split_once("://") else {
            return Err(format!(
                "{key}: `{server}` must be nats://host:port or tls://host:port"
            ));
        };
        if !matches!(scheme, "nats" | "tls") || rest.is_empty() || rest.contains('/') {
            return Err(format!(
                "{key}: `{server}` must be nats://host:port or tls://host:port"
            ));
        }
    }
    Ok(servers)
}

pub(super) fn login(
    credentials_file: Option<PathBuf>,
    user: Option<String>,
    password_file: Option<PathBuf>,
) -> Result<NatsLogin, String> {
    match (credentials_file, user, password_file) {
        (Some(file), None, None) => Ok(NatsLogin::CredentialsFile(file)),
        (None, Some(user), Some(password_file)) if !user.is_empty() => Ok(NatsLogin::Password {
            user,
            password_file,
        }),
        (Some(_), _, _) => Err(
            "credentials_file and user/password_file are two ways to log in: set one".to_string(),
        ),
        _ => Err("set credentials_file (a NATS .creds file) or user and password_file".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<UplinkConfig, String> {
        toml::from_str(text).map_err(|e| e.message().to_string())
    }

    #[test]
    fn a_store_logs_in_with_a_creds_file_or_a_user_and_password_file() {
        let creds = parse(
            "nats_url = \"tls://nats.example.com:4222\"\nstore_id = \"store-0042\"\ncredentials_file = \"/etc/posbridge/store-0042.creds\"",
        )
        .expect("creds");
        assert_eq!(creds.store_id, "store-0042");
        assert_eq!(creds.nats.servers, ["tls://nats.example.com:4222"]);
        assert_eq!(
            creds.nats.login,
            NatsLogin::CredentialsFile("/etc/posbridge/store-0042.creds".into())
        );
        let user = parse(
            "nats_url = \"nats://127.0.0.1:4222, nats://127.0.0.1:4223\"\nstore_id = \"s_1\"\nuser = \"s_1\"\npassword_file = \"/p\"",
        )
        .expect("user");
        assert_eq!(user.nats.servers.len(), 2);
        assert_eq!(
            user.nats.login,
            NatsLogin::Password {
                user: "s_1".into(),
                password_file: "/p".into()
            }
        );
    }

    #[test]
    fn the_login_file_must_be_there_and_a_password_not_empty() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("uplink.password");
        let uplink = |path: &std::path::Path| {
            parse(&format!(
                "nats_url = \"nats://h:1\"\nstore_id = \"s\"\nuser = \"s\"\npassword_file = \"{}\"",
                path.display()
            ))
            .expect("valid")
        };
        let missing = uplink(&file).nats.host_problems("uplink");
        assert!(
            missing[0].starts_with("uplink.password_file"),
            "{missing:?}"
        );
        std::fs::write(&file, "\n").expect("write");
        let empty = uplink(&file).nats.host_problems("uplink");
        assert!(empty[0].contains("the first line is empty"), "{empty:?}");
        std::fs::write(&file, "s3cret\n").expect("write");
        assert!(uplink(&file).nats.host_problems("uplink").is_empty());
    }

    #[test]
    fn wrong_uplinks_are_refused_with_the_reason() {
        for (text, expected) in [
            (
                "nats_url = \"nats://h:1\"\nstore_id = \"a.b\"\ncredentials_file = \"/c\"",
                "store_id `a.b`",
            ),
            (
                "nats_url = \"nats://h:1\"\nstore_id = \"s\"\ncredentials_file = \"/c\"\nuser = \"u\"\npassword_file = \"/p\"",
                "set one",
            ),
            (
                "nats_url = \"nats://h:1\"\nstore_id = \"s\"\nuser = \"u\"",
                "set credentials_file",
            ),
            (
                "nats_url = \"http://h:1\"\nstore_id = \"s\"\ncredentials_file = \"/c\"",
                "must be nats://host:port",
            ),
            (
                "nats_url = \" , \"\nstore_id = \"s\"\ncredentials_file = \"/c\"",
                "names no server",
            ),
            (
                "nats_url = \"nats://h:1\"\nstore_id = \"s\"\ncredentials_file = \"/c\"\npassword = \"x\"",
                "unknown field `password`",
            ),
        ] {
            let error = parse(text).expect_err(text);
            assert!(error.contains(expected), "{text}: {error}");
        }
    }
}
