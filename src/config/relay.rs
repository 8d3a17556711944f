//! `posbridge relay --config relay.toml`: the relay tier's configuration. Its `[server]` and
//! `[vtex]` are a store daemon's (the same keys, the same checks); `[nats]` is how it reaches
//! the tier's NATS cluster, where everything it knows is kept (it keeps nothing of its own).

use std::path::Path;

use serde::Deserialize;

use super::nats::{login, servers};
use super::{
    CallbackConfig, ConfigError, NatsConnection, OnboardingConfig, RateLimitConfig, ServerConfig,
    VtexConfig,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelayConfig {
    #[serde(default)]
    pub server: ServerConfig,
    pub vtex: VtexConfig,
    pub nats: RelayNats,
    #[serde(default)]
    pub rate_limits: RateLimitConfig,
    /// The stores' callbacks, delivered by the relay: the store daemon's `[callbacks]`.
    #[serde(default)]
    pub callbacks: CallbackConfig,
    /// The PPP configuration flow for every merchant behind the relay: a store daemon's
    /// `[onboarding]`.
    #[serde(default)]
    pub onboarding: OnboardingConfig,
}

/// `[nats]`: the cluster, the relay's login, and how many copies JetStream keeps of what the
/// relay stores there (the payments it routes, the serial map).
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "WrittenNats")]
pub struct RelayNats {
    pub connection: NatsConnection,
    pub replicas: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WrittenNats {
    url: String,
    credentials_file: Option<std::path::PathBuf>,
    user: Option<String>,
    password_file: Option<std::path::PathBuf>,
    #[serde(default = "one")]
    replicas: usize,
}

fn one() -> usize {
    1
}

impl TryFrom<WrittenNats> for RelayNats {
    type Error = String;

    fn try_from(written: WrittenNats) -> Result<Self, String> {
        if !(1..=5).contains(&written.replicas) {
            return Err(format!(
                "replicas = {} must be 1 to 5 (JetStream's limit; 3 on a three-server cluster)",
                written.replicas
            ));
        }
        Ok(RelayNats {
            connection: NatsConnection {
                servers: servers(&written.url, "url")?,
                login: login(
                    written.credentials_file,
                    written.user,
                    written.password_file,
                )?,
            },
            replicas: written.replicas,
        })
    }
}

impl RelayConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::parse(&super::read_text(path)?, &path.display().to_string())
    }

    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let config: RelayConfig =
            toml::from_str(text).map_err(|e| super::toml_error(text, origin, &e))?;
        let invalid = |key: &str, problem: String| ConfigError::Invalid {
            path: origin.to_string(),
            line: super::line_of_key(text, key),
            key: key.to_string(),
            problem,
        };
        // The relay answers the Gateway for every store: a placeholder key is never a demo here.
        super::check_vtex_keys(&config.vtex, false, false).map_err(|(key, p)| invalid(&key, p))?;
        if let Some((key, problem)) = config.onboarding.problem() {
            return Err(invalid(key, problem));
        }
        if config.server.public_url.is_none() {
            // Missing: the line of its table, or the file's first.
            let line = text
                .lines()
                .position(|l| l.trim() == "[server]")
                .map_or(1, |i| i + 1);
            return Err(ConfigError::Invalid {
                path: origin.to_string(),
                line,
                key: "server.public_url".to_string(),
                problem: "is required: the submitUrls and the Payment App feed the stores give out point there"
                    .to_string(),
            });
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RELAY: &str = r#"
[server]
listen = "127.0.0.1:8443"
public_url = "https://pos.partner.example.com"

[vtex]
app_key = "vtexappkey-partner"
app_token = "a-real-token"
callback_app_key = "vtexappkey-partner-cb"
callback_app_token = "another-token"

[nats]
url = "tls://nats-1.partner.internal:4222, tls://nats-2.partner.internal:4222"
credentials_file = "/etc/posbridge/relay.creds"
replicas = 3
"#;

    #[test]
    fn the_relays_file_reads_its_server_vtex_and_nats() {
        let config = RelayConfig::parse(RELAY, "relay.toml").expect("valid");
        assert_eq!(config.nats.connection.servers.len(), 2);
        assert_eq!(config.nats.replicas, 3);
        assert_eq!(
            config.server.public_url.as_deref(),
            Some("https://pos.partner.example.com")
        );
    }

    #[test]
    fn a_wrong_relay_file_is_refused_with_its_key_and_line() {
        for (from, to, key) in [
            ("replicas = 3", "replicas = 7", "nats"),
            ("replicas = 3", "replica = 3", "nats"),
            (
                "app_token = \"a-real-token\"",
                "app_token = \"CHANGE-ME\"",
                "vtex.app_token",
            ),
            (
                "public_url = \"https://pos.partner.example.com\"",
                "",
                "server.public_url",
            ),
            ("[nats]", "[nats]\nstore_id = \"x\"", "nats"),
        ] {
            let text = RELAY.replace(from, to);
            let error = RelayConfig::parse(&text, "relay.toml").expect_err(to);
            match error {
                ConfigError::Invalid { key: k, line, .. } => {
                    assert!(k.starts_with(key), "{to}: {k}");
                    assert!(line > 0, "{to}");
                }
                other => panic!("{other}"),
            }
        }
    }
}
