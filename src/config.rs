//! The TOML configuration: every table denies unknown keys, defaults live here, and
//! `validate` checks what serde cannot. Errors name the file, the line, the key and the problem.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::net::trusted_proxies::TrustedProxies;
use crate::secret::Secret;
use crate::terminal::setup::{PROTOCOLS, ProtocolSettings, ReadError};

mod nats;
mod relay;
pub use nats::{NatsConnection, NatsLogin, UplinkConfig, check_store_id};
pub use relay::{RelayConfig, RelayNats};

/// The embedded default configuration: a demo box (the simulator terminal, allowed), localhost,
/// a local database.
pub const DEFAULT_CONFIG: &str = include_str!("../config/posbridge.toml");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub storage: StorageConfig,
    #[serde(default)]
    pub store: StoreConfig,
    /// Required, except behind the relay tier (`[uplink]`), where it may be left out.
    #[serde(default)]
    pub vtex: VtexConfig,
    #[serde(default)]
    pub pos: PosConfig,
    #[serde(default)]
    pub callbacks: CallbackConfig,
    #[serde(default)]
    pub onboarding: OnboardingConfig,
    #[serde(default)]
    pub admin: AdminConfig,
    #[serde(default)]
    pub payment_app: PaymentAppConfig,
    #[serde(default)]
    pub rate_limits: RateLimitConfig,
    /// The link to the relay tier, when this store is one of many behind it.
    #[serde(default)]
    pub uplink: Option<UplinkConfig>,
    /// The `[[terminals]]` entries as written, read into `terminals` by `parse` (an entry's
    /// keys are split between those every terminal has and its protocol's own).
    #[serde(default, rename = "terminals")]
    written_terminals: Vec<toml::Table>,
    #[serde(skip)]
    pub terminals: Vec<TerminalConfig>,
}

/// The store itself, as people there read times.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// IANA time zone (`America/Sao_Paulo`): "today" and the times people read; unset: the
    /// system's.
    pub timezone: Option<String>,
}

/// Per client address: this many failures within `window_s` and that address gets 429 on
/// those routes for `window_s`. 0 turns a limit off.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    pub window_s: u64,
    /// Wrong or missing app key / token on `/payments…` (401).
    pub credential_failures: u32,
    /// Wrong submitUrl / Payment App feed tokens (403).
    pub token_failures: u32,
    /// Wrong onboarding codes or authorization tokens on the configuration flow's pages.
    pub onboarding_failures: u32,
    /// Client addresses remembered at most (memory bound); the oldest unblocked go first.
    pub tracked_addresses: usize,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            window_s: 300,
            credential_failures: 20,
            token_failures: 10,
            onboarding_failures: 10,
            tracked_addresses: 10_000,
        }
    }
}

/// `[server.tls]`: serve HTTPS (TLS 1.2 and 1.3) with this certificate chain and key (PEM).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// The Payment App the second Create answer opens while the terminal works.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PaymentAppConfig {
    /// A custom Payment App (`vendor.app-name`) that gets a WebSocket URL with live terminal
    /// events; unset: VTEX's `vtex.challenge-wait-for-confirmation`.
    pub app_name: Option<String>,
}

/// The local admin listener (terminal commands for store IT's CLI).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    pub listen: SocketAddr,
    /// Bearer token the admin endpoint requires (its holder is named `admin` in what is
    /// recorded); unset, and no `tokens`: no admin listener.
    pub token: Option<Secret>,
    /// More tokens, each with the name that records who did what (`ana = "…"`).
    pub tokens: std::collections::BTreeMap<String, Secret>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9090)),
            token: None,
            tokens: std::collections::BTreeMap::new(),
        }
    }
}

/// The name the holder of `[admin] token` is recorded under.
pub const ADMIN_TOKEN_NAME: &str = "admin";

impl AdminConfig {
    /// Every admin token with its holder's name; empty: the admin listener is off.
    pub fn named_tokens(&self) -> Vec<(String, Secret)> {
        let mut all: Vec<(String, Secret)> = self
            .token
            .iter()
            .map(|t| (ADMIN_TOKEN_NAME.to_string(), t.clone()))
            .collect();
        all.extend(self.tokens.iter().map(|(n, t)| (n.clone(), t.clone())));
        all
    }

    /// The token a command of this box's CLI uses: the one named `as_name`, else `[admin]
    /// token`, else the only named one.
    pub fn token_for(&self, as_name: Option<&str>) -> Result<(String, Secret), String> {
        let all = self.named_tokens();
        if all.is_empty() {
            return Err("no [admin] token in the configuration: the admin listener is off".into());
        }
        match as_name {
            Some(name) => all
                .into_iter()
                .find(|(n, _)| n == name)
                .ok_or_else(|| format!("no admin token named `{name}` ([admin] tokens)")),
            None => match (&self.token, all.len()) {
                (Some(t), _) => Ok((ADMIN_TOKEN_NAME.to_string(), t.clone())),
                (None, 1) => all
                    .into_iter()
                    .next()
                    .ok_or_else(|| "no admin token".to_string()),
                (None, _) => {
                    Err("several admin tokens: say whose with --as NAME ([admin] tokens)".into())
                }
            },
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Base of the URLs handed to the Sales App; default: the bound address.
    pub public_url: Option<String>,
    pub max_body_bytes: usize,
    /// How long in-flight requests may take to finish after SIGTERM.
    pub shutdown_grace_s: u64,
    /// Requests handled at once; beyond it: 503 `overloaded` at once, never a queue.
    pub max_concurrent_requests: usize,
    /// Time limit of a PPP request (`/payments…`, `/manifest`, `/authorization/…`).
    pub ppp_timeout_ms: u64,
    /// Time limit of any other request (submitUrl, Payment App pages, `/healthz`).
    pub request_timeout_ms: u64,
    /// Peers (IPs or CIDRs) whose `X-Forwarded-For` names the client; nobody else's is read.
    pub trusted_proxies: TrustedProxies,
    /// HTTPS instead of HTTP.
    pub tls: Option<TlsConfig>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: None,
            max_body_bytes: 1024 * 1024,
            shutdown_grace_s: 10,
            max_concurrent_requests: 256,
            ppp_timeout_ms: 4_000,
            request_timeout_ms: 10_000,
            trusted_proxies: TrustedProxies::default(),
            tls: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// SQLite file; relative paths are relative to the working directory.
    pub path: PathBuf,
    /// Finished payments, their receipts and delivered callbacks are deleted after this many
    /// days (LGPD: keep no personal data longer than needed); 0 keeps them forever.
    pub retain_days: u32,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("posbridge.db"),
            retain_days: 90,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VtexConfig {
    /// Not needed behind the relay tier (`[uplink]`): the relay checks the Gateway's
    /// credentials and posts the callbacks; a store there keeps none of them.
    #[serde(default)]
    pub app_key: String,
    #[serde(default)]
    pub app_token: Secret,
    #[serde(default)]
    pub callback_app_key: String,
    #[serde(default)]
    pub callback_app_token: Secret,
    #[serde(default)]
    pub test_suite_cards: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PosConfig {
    pub seconds_waiting: u32,
    pub delay_to_cancel: u32,
    pub delay_to_auto_settle: u32,
    pub delay_to_auto_settle_after_antifraud: u32,
    pub identify_terminal: bool,
    /// A demo box: `simulator` terminals (which approve sales that never touched a card) and
    /// placeholder `[vtex]` credentials are accepted.
    pub allow_simulator: bool,
}

impl Default for PosConfig {
    fn default() -> Self {
        Self {
            seconds_waiting: 600,
            delay_to_cancel: 900,
            delay_to_auto_settle: 21_600,
            delay_to_auto_settle_after_antifraud: 1_800,
            identify_terminal: true,
            allow_simulator: false,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CallbackConfig {
    pub first_retry_s: u64,
    pub max_interval_s: u64,
    pub give_up_after_s: u64,
    pub request_timeout_s: u64,
}

impl Default for CallbackConfig {
    fn default() -> Self {
        Self {
            first_retry_s: 5,
            max_interval_s: 3_600,
            give_up_after_s: 604_800,
            request_timeout_s: 10,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OnboardingConfig {
    /// The code a merchant types on the authorization page; unset disables the flow.
    pub code: Option<Secret>,
    /// Hosts `returnUrl` may point at; `*.` matches any subdomain.
    pub allowed_return_hosts: Vec<String>,
    /// Wrong codes allowed per authorization token before it is burnt.
    pub max_attempts: u32,
}

impl OnboardingConfig {
    /// What is wrong with it (a daemon's or the relay's), by key.
    pub fn problem(&self) -> Option<(&'static str, String)> {
        match &self.code {
            Some(code) if code.expose().len() < 8 => Some((
                "onboarding.code",
                "must be at least 8 characters".to_string(),
            )),
            _ => None,
        }
    }
}

impl Default for OnboardingConfig {
    fn default() -> Self {
        Self {
            code: None,
            allowed_return_hosts: vec![
                "*.myvtex.com".into(),
                "*.vtexcommercestable.com.br".into(),
                "*.vtexpayments.com.br".into(),
            ],
            max_attempts: 5,
        }
    }
}

/// The keys every `[[terminals]]` entry has, whatever its protocol; the others are the
/// protocol's own (`terminal::setup`).
#[derive(Debug, Deserialize)]
pub struct CommonTerminalKeys {
    pub id: String,
    pub serial_number: String,
    pub protocol: String,
    #[serde(default = "default_result_timeout_s")]
    pub result_timeout_s: u64,
}

/// One `[[terminals]]` entry, read and checked.
#[derive(Debug, Clone)]
pub struct TerminalConfig {
    pub id: String,
    pub serial_number: String,
    pub result_timeout_s: u64,
    pub protocol: ProtocolSettings,
}

fn default_result_timeout_s() -> u64 {
    180
}

/// A configuration that cannot be used, with where and why.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {key}: {problem}")]
    Invalid {
        path: String,
        line: usize,
        key: String,
        problem: String,
    },
}

impl Config {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::parse(&read_text(path)?, &path.display().to_string())
    }

    /// Parses and validates `text`; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| toml_error(text, origin, &e))?;
        config
            .validate()
            .and_then(|()| config.read_terminals())
            .map_err(|(key, problem)| ConfigError::Invalid {
                path: origin.to_string(),
                line: line_of_key(text, &key),
                key,
                problem,
            })?;
        Ok(config)
    }

    /// What to tell store IT when this is a demo box (`pos.allow_simulator`), else `None`.
    pub fn demo_box_warning(&self) -> Option<String> {
        if !self.pos.allow_simulator {
            return None;
        }
        let simulators: Vec<&str> = self
            .terminals
            .iter()
            .filter(|t| t.protocol.approves_without_a_card())
            .map(|t| t.id.as_str())
            .collect();
        Some(if simulators.is_empty() {
            "pos.allow_simulator = true: a simulator terminal would approve sales that never \
             touched a card, and placeholder [vtex] keys are accepted"
                .to_string()
        } else {
            format!(
                "pos.allow_simulator = true and terminal(s) {} are the built-in simulator: \
                 this box approves sales that never touched a card",
                simulators.join(", ")
            )
        })
    }

    fn validate(&self) -> Result<(), (String, String)> {
        let bad = |key: &str, problem: String| Err((key.to_string(), problem));
        for (name, token) in &self.admin.tokens {
            let key = format!("admin.tokens.{name}");
            let valid_name = !name.is_empty()
                && name.len() <= 64
                && name != ADMIN_TOKEN_NAME
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b));
            if !valid_name {
                return bad(
                    &key,
                    format!(
                        "a token's name is letters, digits and . _ - @ (not `{ADMIN_TOKEN_NAME}`)"
                    ),
                );
            }
            if token.expose().trim().is_empty() {
                return bad(&key, "the token must not be empty".into());
            }
        }
        if let Some(zone) = &self.store.timezone
            && let Err(problem) = crate::locale::StoreTime::new(Some(zone))
        {
            return bad("store.timezone", problem.to_string());
        }
        if let Some(url) = &self.server.public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return bad(
                "server.public_url",
                format!("`{url}` must start with http:// or https://"),
            );
        }
        if self.server.max_body_bytes < 1024 {
            return bad(
                "server.max_body_bytes",
                "must be at least 1024 bytes".into(),
            );
        }
        if self.server.max_concurrent_requests == 0 {
            return bad(
                "server.max_concurrent_requests",
                "must be at least 1".into(),
            );
        }
        if !(1_000..=4_500).contains(&self.server.ppp_timeout_ms) {
            return bad(
                "server.ppp_timeout_ms",
                "must be between 1000 and 4500: the Gateway gives up after 5 s".into(),
            );
        }
        if self.server.request_timeout_ms < 1_000 {
            return bad("server.request_timeout_ms", "must be at least 1000".into());
        }
        if let Some(tls) = &self.server.tls {
            if tls.cert.as_os_str().is_empty() {
                return bad("server.tls.cert", "must name a PEM file".into());
            }
            if tls.key.as_os_str().is_empty() {
                return bad("server.tls.key", "must name a PEM file".into());
            }
        }
        let limits = &self.rate_limits;
        if limits.window_s == 0 {
            return bad("rate_limits.window_s", "must be at least 1".into());
        }
        if limits.tracked_addresses < 16 {
            return bad(
                "rate_limits.tracked_addresses",
                "must be at least 16".into(),
            );
        }
        check_vtex_keys(&self.vtex, self.pos.allow_simulator, self.uplink.is_some())?;
        let pos = &self.pos;
        if pos.seconds_waiting == 0 {
            return bad("pos.seconds_waiting", "must be at least 1".into());
        }
        if pos.delay_to_cancel < pos.seconds_waiting {
            return bad(
                "pos.delay_to_cancel",
                format!(
                    "{} is below seconds_waiting ({}): VTEX would cancel payments still on the terminal",
                    pos.delay_to_cancel, pos.seconds_waiting
                ),
            );
        }
        let cb = &self.callbacks;
        if cb.first_retry_s == 0 {
            return bad("callbacks.first_retry_s", "must be at least 1".into());
        }
        if cb.max_interval_s < cb.first_retry_s {
            return bad(
                "callbacks.max_interval_s",
                "must not be below first_retry_s".into(),
            );
        }
        if cb.request_timeout_s == 0 {
            return bad("callbacks.request_timeout_s", "must be at least 1".into());
        }
        if let Some((key, problem)) = self.onboarding.problem() {
            return bad(key, problem);
        }
        if let Some(name) = &self.payment_app.app_name {
            let valid = name.split_once('.').is_some_and(|(vendor, app)| {
                !vendor.is_empty()
                    && !app.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            });
            if !valid {
                return bad(
                    "payment_app.app_name",
                    format!("`{name}` must look like `vendor.app-name`"),
                );
            }
        }
        Ok(())
    }

    /// Reads each `[[terminals]]` entry: the keys every terminal has, then the rest by its
    /// protocol. Errors name `terminals[N].key`: the line is looked up in that entry.
    fn read_terminals(&mut self) -> Result<(), (String, String)> {
        let mut ids = HashSet::new();
        let mut serials = HashSet::new();
        for (index, mut entry) in std::mem::take(&mut self.written_terminals)
            .into_iter()
            .enumerate()
        {
            let key = |name: &str| format!("terminals[{index}].{name}");
            let common: CommonTerminalKeys =
                read_keys(toml::Value::Table(entry.clone())).map_err(|(name, problem)| {
                    (
                        name.map_or(format!("terminals[{index}]"), |n| key(&n)),
                        problem,
                    )
                })?;
            if common.id.is_empty() || !ids.insert(common.id.clone()) {
                return Err((
                    key("id"),
                    format!("terminal id `{}` is empty or repeated", common.id),
                ));
            }
            if common.serial_number.is_empty() || !serials.insert(common.serial_number.clone()) {
                return Err((
                    key("serial_number"),
                    format!(
                        "serial number `{}` is empty or repeated",
                        common.serial_number
                    ),
                ));
            }
            if common.result_timeout_s == 0 {
                return Err((key("result_timeout_s"), "must be at least 1".into()));
            }
            for name in ["id", "serial_number", "protocol", "result_timeout_s"] {
                entry.remove(name);
            }
            let mut tracked = serde_path_to_error::Track::new();
            let own =
                serde_path_to_error::Deserializer::new(toml::Value::Table(entry), &mut tracked);
            let protocol = match ProtocolSettings::read(&common.protocol, own) {
                Ok(protocol) => protocol,
                Err(ReadError::UnknownProtocol(name)) => {
                    return Err((
                        key("protocol"),
                        format!(
                            "unknown protocol `{name}`, expected one of: {}",
                            PROTOCOLS.join(", ")
                        ),
                    ));
                }
                Err(ReadError::Keys(e)) => {
                    let name = first_key(&tracked.path());
                    return Err((
                        name.map_or(format!("terminals[{index}]"), |n| key(&n)),
                        e.message().trim().to_string(),
                    ));
                }
                Err(ReadError::Invalid(invalid)) => {
                    return Err((
                        key(invalid.key),
                        format!("terminal `{}`: {invalid}", common.id),
                    ));
                }
            };
            if protocol.approves_without_a_card() && !self.pos.allow_simulator {
                return Err((
                    key("protocol"),
                    format!(
                        "terminal `{}` is the built-in simulator, which approves sales that \
                         never touched a card; configure your real terminal, or allow it on \
                         a demo box with `allow_simulator = true` in [pos]",
                        common.id
                    ),
                ));
            }
            self.terminals.push(TerminalConfig {
                id: common.id,
                serial_number: common.serial_number,
                result_timeout_s: common.result_timeout_s,
                protocol,
            });
        }
        Ok(())
    }
}

/// Deserializes `T` from a TOML value; an error comes with the key it is about (none: the
/// whole table, e.g. a missing key).
fn read_keys<T: serde::de::DeserializeOwned>(
    value: toml::Value,
) -> Result<T, (Option<String>, String)> {
    serde_path_to_error::deserialize(value)
        .map_err(|e| (first_key(e.path()), e.inner().message().trim().to_string()))
}

/// The first key of a serde path (`transport` in `transport`), if it names one.
fn first_key(path: &serde_path_to_error::Path) -> Option<String> {
    match path.iter().next() {
        Some(serde_path_to_error::Segment::Map { key }) => Some(key.clone()),
        _ => None,
    }
}

/// What the two `[vtex]` key pairs are, for the error that asks for them.
const GATEWAY_PAIR: &str =
    "the key pair VTEX's Gateway sends in X-VTEX-API-AppKey / X-VTEX-API-AppToken";
const PARTNER_PAIR: &str = "your partner account's key pair, sent with every callback";

/// A configuration file's text (the daemon's or the relay's).
fn read_text(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// A TOML or type error as the file, line and key it is at.
fn toml_error(text: &str, origin: &str, e: &toml::de::Error) -> ConfigError {
    let (line, key) = match e.span() {
        Some(span) => locate(text, span.start),
        None => (0, String::from("(file)")),
    };
    ConfigError::Invalid {
        path: origin.to_string(),
        line,
        key,
        problem: e.message().trim().to_string(),
    }
}

/// Both `[vtex]` key pairs are set (a placeholder only on a demo box): a store daemon's and
/// the relay's. `behind_relay`: a store with `[uplink]`, which needs none of the four (a pair
/// it has is checked all the same, and half a pair is refused).
fn check_vtex_keys(
    vtex: &VtexConfig,
    allow_placeholders: bool,
    behind_relay: bool,
) -> Result<(), (String, String)> {
    let bad = |key: &str, problem: String| Err((key.to_string(), problem));
    // Behind the relay each pair is optional, but half a pair is a mistake.
    let halves = [
        (
            "vtex.app_key",
            !vtex.app_key.is_empty(),
            "vtex.app_token",
            !vtex.app_token.expose().is_empty(),
        ),
        (
            "vtex.callback_app_key",
            !vtex.callback_app_key.is_empty(),
            "vtex.callback_app_token",
            !vtex.callback_app_token.expose().is_empty(),
        ),
    ];
    for (key, set, other, other_set) in halves {
        if behind_relay && set != other_set {
            let (missing, given) = if set { (other, key) } else { (key, other) };
            return bad(
                missing,
                format!("is empty while {given} is set: give both or neither"),
            );
        }
    }
    for (key, value, what) in [
        ("vtex.app_key", vtex.app_key.as_str(), GATEWAY_PAIR),
        ("vtex.app_token", vtex.app_token.expose(), GATEWAY_PAIR),
        (
            "vtex.callback_app_key",
            vtex.callback_app_key.as_str(),
            PARTNER_PAIR,
        ),
        (
            "vtex.callback_app_token",
            vtex.callback_app_token.expose(),
            PARTNER_PAIR,
        ),
    ] {
        if behind_relay && value.is_empty() {
            continue;
        }
        // The value is never echoed: it may be a real secret.
        if value.is_empty() {
            return bad(key, format!("is empty: set your VTEX credentials ({what})"));
        }
        if is_placeholder(value) && !allow_placeholders {
            return bad(
                key,
                format!("is a placeholder: set your VTEX credentials ({what})"),
            );
        }
    }
    Ok(())
}

/// The packaged configuration's `CHANGE-ME`, and the development default's `…-change-me`.
fn is_placeholder(credential: &str) -> bool {
    credential.to_ascii_lowercase().contains("change-me")
}

/// The 1-based line of byte `offset` and the dotted key written on it (or its table).
fn locate(text: &str, offset: usize) -> (usize, String) {
    let offset = offset.min(text.len());
    let line_no = text[..offset].matches('\n').count() + 1;
    let mut table = String::new();
    let mut key = String::new();
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            table = trimmed.trim_matches(['[', ']']).trim().to_string();
        }
        if i + 1 == line_no {
            if let Some((k, _)) = trimmed.split_once('=') {
                key = k.trim().to_string();
            }
            break;
        }
    }
    let key = match (table.is_empty(), key.is_empty()) {
        (true, true) => "(file)".to_string(),
        (true, false) => key,
        (false, true) => table,
        (false, false) => format!("{table}.{key}"),
    };
    (line_no, key)
}

/// The line where a dotted key is written: `pos.delay_to_cancel`, or `terminals[1].protocol`
/// (in the second `[[terminals]]` entry); an entry itself (`terminals[1]`): its header's line.
fn line_of_key(text: &str, dotted: &str) -> usize {
    let (table, key) = match dotted.rsplit_once('.') {
        Some(split) => split,
        None if dotted.ends_with(']') => (dotted, ""),
        None => ("", dotted),
    };
    let (table, entry) = match table.split_once('[') {
        Some((name, index)) => (name, index.trim_end_matches(']').parse::<usize>().ok()),
        None => (table, None),
    };
    let mut current = String::new();
    let mut entries_seen = 0;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            current = trimmed.trim_matches(['[', ']']).trim().to_string();
            if current == table {
                entries_seen += 1;
                if key.is_empty() && entry.is_some_and(|index| entries_seen == index + 1) {
                    return i + 1;
                }
            }
            continue;
        }
        let in_table = table.is_empty()
            || (current == table && entry.is_none_or(|index| entries_seen == index + 1));
        if in_table
            && trimmed
                .split_once('=')
                .is_some_and(|(k, _)| k.trim() == key)
        {
            return i + 1;
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_is_a_valid_demo_box() {
        let c = Config::parse(DEFAULT_CONFIG, "default").expect("default config");
        assert_eq!(c.terminals.len(), 1);
        assert_eq!(c.terminals[0].protocol.name(), "simulator");
        assert!(c.pos.allow_simulator);
        assert!(c.demo_box_warning().is_some());
    }

    const PACKAGED_CONFIG: &str = include_str!("../config/posbridge-debian.toml");

    /// The `[vtex]` placeholders replaced, as store IT does after installing the package.
    fn with_vtex_keys(text: &str) -> String {
        text.replace("\"CHANGE-ME\"", "\"store-credential-8c1d\"")
    }

    /// A box that takes real payments: real-looking keys, a ZVT terminal, no allow_simulator.
    fn production_config() -> String {
        let text = DEFAULT_CONFIG
            .replace("allow_simulator = true\n", "")
            .replace("approve_after_ms = 1500\n", "")
            .replace("-change-me\"", "-store-2b7e\"")
            .replace(
                "protocol = \"simulator\"",
                "protocol = \"zvt\"\ntransport = \"tcp:127.0.0.1:20007\"",
            );
        assert!(!text.to_lowercase().contains("change-me\""));
        assert!(!text.contains("\nallow_simulator"));
        text
    }

    fn invalid(text: &str) -> (usize, String, String) {
        match Config::parse(text, "x.toml") {
            Err(ConfigError::Invalid {
                line, key, problem, ..
            }) => (line, key, problem),
            other => panic!("not refused as invalid: {other:?}"),
        }
    }

    /// The 1-based line of the `nth` (0-based) line of `text` that is exactly `line`.
    fn line_number(text: &str, line: &str, nth: usize) -> usize {
        text.lines()
            .enumerate()
            .filter(|(_, l)| *l == line)
            .nth(nth)
            .unwrap_or_else(|| panic!("no {nth}th `{line}`"))
            .0
            + 1
    }

    /// Every shipped file parses (the packaged one once its `[vtex]` placeholders are set: it is
    /// refused for them alone), and each rejects an unknown key in each of its tables.
    #[test]
    fn every_file_in_config_dir_is_valid_and_strict() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).expect("config dir") {
            let path = entry.expect("entry").path();
            if path.extension().is_none_or(|e| e != "toml") {
                continue;
            }
            seen += 1;
            let shipped = std::fs::read_to_string(&path).expect("read");
            let origin = path.display().to_string();
            if path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("relay"))
            {
                check_relay_example(&shipped, &origin);
                continue;
            }
            let text = match Config::parse(&shipped, &origin) {
                Ok(_) => shipped,
                Err(ConfigError::Invalid { key, problem, .. })
                    if key.starts_with("vtex.") && problem.starts_with("is a placeholder") =>
                {
                    let filled = with_vtex_keys(&shipped);
                    if let Err(e) = Config::parse(&filled, &origin) {
                        panic!("valid once the [vtex] keys are set: {e}");
                    }
                    filled
                }
                Err(e) => panic!("valid example: {e}"),
            };
            for table in [
                "[server]",
                "[storage]",
                "[vtex]",
                "[pos]",
                "[callbacks]",
                "[onboarding]",
                "[admin]",
                "[payment_app]",
                "[rate_limits]",
                "[store]",
                "[server.tls]",
                "[uplink]",
                "[[terminals]]",
            ] {
                if text.contains(table) {
                    let strict = text.replacen(table, &format!("{table}\nno_such_key = 1"), 1);
                    let err = Config::parse(&strict, "x").expect_err(table);
                    assert!(err.to_string().contains("no_such_key"), "{table}: {err}");
                }
            }
        }
        assert!(seen >= 1, "no config files found");
    }

    /// The relay tier's example (`posbridge relay`): valid once its placeholders are set, and
    /// strict in each table.
    fn check_relay_example(shipped: &str, origin: &str) {
        let filled = with_vtex_keys(shipped);
        if let Err(e) = RelayConfig::parse(&filled, origin) {
            panic!("valid once the [vtex] keys are set: {e}");
        }
        for table in [
            "[server]",
            "[server.tls]",
            "[vtex]",
            "[nats]",
            "[callbacks]",
        ] {
            assert!(filled.contains(table), "{origin}: no {table}");
            let strict = filled.replacen(table, &format!("{table}\nno_such_key = 1"), 1);
            let err = RelayConfig::parse(&strict, "x").expect_err(table);
            assert!(err.to_string().contains("no_such_key"), "{table}: {err}");
        }
    }

    #[test]
    fn a_store_behind_the_relay_needs_no_vtex_keys_but_never_half_a_pair() {
        let uplink = "\n[uplink]\nnats_url = \"nats://127.0.0.1:4222\"\nstore_id = \"store-1\"\ncredentials_file = \"/etc/posbridge/store-1.creds\"\n";
        let production = production_config();
        let start = production.find("[vtex]").expect("[vtex]");
        let end = production[start + 1..]
            .find("\n[")
            .map_or(production.len(), |i| start + 2 + i);
        let without_vtex = format!("{}{}{uplink}", &production[..start], &production[end..]);
        let config = Config::parse(&without_vtex, "x").expect("no [vtex] behind the relay");
        assert!(config.vtex.app_key.is_empty() && config.vtex.callback_app_key.is_empty());
        let half = without_vtex.replace(uplink, &format!("[vtex]\napp_key = \"k-1\"\n{uplink}"));
        let (_, key, problem) = invalid(&half);
        assert_eq!(key, "vtex.app_token");
        assert!(problem.contains("give both or neither"), "{problem}");
        // Not behind the relay, the keys stay required.
        let (_, key, _) = invalid(&without_vtex.replace(uplink, ""));
        assert_eq!(key, "vtex.app_key");
    }

    #[test]
    fn packaged_config_is_refused_until_the_vtex_keys_are_set() {
        let (line, key, problem) = invalid(PACKAGED_CONFIG);
        assert_eq!(key, "vtex.app_key");
        assert_eq!(
            line,
            line_number(PACKAGED_CONFIG, "app_key = \"CHANGE-ME\"", 0)
        );
        assert!(
            problem.starts_with("is a placeholder: set your VTEX credentials"),
            "{problem}"
        );
        let c = Config::parse(&with_vtex_keys(PACKAGED_CONFIG), "x").expect("keys set");
        assert!(
            c.terminals.is_empty(),
            "no terminal until store IT adds one"
        );
        assert!(!c.pos.allow_simulator);
        assert_eq!(c.demo_box_warning(), None);
    }

    #[test]
    fn placeholder_credentials_are_refused_with_their_line() {
        let production = production_config();
        Config::parse(&production, "x").expect("production config");
        for key in [
            "app_key",
            "app_token",
            "callback_app_key",
            "callback_app_token",
        ] {
            let line = production
                .lines()
                .find(|l| l.starts_with(&format!("{key} = ")))
                .expect(key);
            for placeholder in ["CHANGE-ME", "my-token-Change-Me-later", ""] {
                let written = format!("{key} = \"{placeholder}\"");
                let text = production.replace(line, &written);
                let (at, k, problem) = invalid(&text);
                assert_eq!(k, format!("vtex.{key}"));
                assert_eq!(at, line_number(&text, &written, 0), "{key}");
                assert!(problem.contains("set your VTEX credentials"), "{problem}");
                if !placeholder.is_empty() {
                    assert!(problem.starts_with("is a placeholder"), "{problem}");
                    assert!(!problem.contains(placeholder), "never echoed: {problem}");
                }
                // A demo box accepts placeholders, never an empty key.
                let demo = text.replace("[pos]\n", "[pos]\nallow_simulator = true\n");
                if placeholder.is_empty() {
                    assert!(invalid(&demo).2.starts_with("is empty"), "{key}");
                } else if let Err(e) = Config::parse(&demo, "x") {
                    panic!("a demo box accepts placeholders: {e}");
                }
            }
        }
    }

    #[test]
    fn a_simulator_terminal_needs_allow_simulator_and_points_at_its_entry() {
        // A ZVT terminal first, so a lookup of the first `protocol` line would be wrong.
        let text = format!(
            "{}\n[[terminals]]\nid = \"demo\"\nserial_number = \"SIM-0009\"\nprotocol = \"simulator\"\n",
            production_config()
        );
        let (line, key, problem) = invalid(&text);
        assert_eq!(key, "terminals[1].protocol");
        assert_eq!(line, line_number(&text, "protocol = \"simulator\"", 0));
        assert!(
            problem.contains("terminal `demo` is the built-in simulator")
                && problem.contains("approves sales that never touched a card")
                && problem.contains("`allow_simulator = true` in [pos]"),
            "{problem}"
        );
        let demo = text.replace("[pos]\n", "[pos]\nallow_simulator = true\n");
        let c = Config::parse(&demo, "x").expect("demo box");
        let warning = c.demo_box_warning().expect("warning");
        assert!(
            warning.contains("terminal(s) demo are the built-in simulator")
                && warning.contains("approves sales that never touched a card"),
            "{warning}"
        );
        assert_eq!(
            Config::parse(&production_config(), "x")
                .expect("ok")
                .demo_box_warning(),
            None
        );
    }

    #[test]
    fn terminal_errors_name_their_entry_and_its_line() {
        let second = "[[terminals]]\nid = \"lane-2\"\nserial_number = \"52500018\"\nprotocol = \"zvt\"\ntransport = \"tcp:127.0.0.1:20008\"\n";
        let text = format!("{}\n{second}password = \"12345\"\n", production_config());
        let (line, key, _) = invalid(&text);
        assert_eq!(key, "terminals[1].password");
        assert_eq!(line, line_number(&text, "password = \"12345\"", 0));
        let text = format!(
            "{}\n{}",
            production_config(),
            second.replace("52500018", "SIM-0001")
        );
        let (line, key, _) = invalid(&text);
        assert_eq!(key, "terminals[1].serial_number");
        assert_eq!(line, line_number(&text, "serial_number = \"SIM-0001\"", 1));
    }

    /// Each protocol reads its own keys: an error in the second entry names that entry and
    /// points at its line, whether the value is bad or the key is another protocol's.
    #[test]
    fn a_terminal_setting_error_points_at_its_own_entry() {
        let demo = "[[terminals]]\nid = \"demo\"\nserial_number = \"SIM-0009\"\nprotocol = \"simulator\"\n";
        let base = production_config().replace("[pos]\n", "[pos]\nallow_simulator = true\n");
        for (second_key, written, problem) in [
            (
                "transport",
                "transport = \"usb:/dev/ttyUSB0\"",
                "must start with serial: or tcp:",
            ),
            (
                "transport",
                "transport = \"tcp:127.0.0.1\"",
                "unknown field `transport`",
            ),
            (
                "approve_after_ms",
                "approve_after_ms = 5",
                "unknown field `approve_after_ms`",
            ),
            (
                "no_such_key",
                "no_such_key = 1",
                "unknown field `no_such_key`",
            ),
        ] {
            // The first entry is zvt with a good `transport`: a lookup in the first entry
            // would find the wrong line.
            let second = if second_key == "approve_after_ms" || written.contains("usb:") {
                format!(
                    "[[terminals]]\nid = \"lane-2\"\nserial_number = \"52500018\"\nprotocol = \"zvt\"\n{written}\n"
                )
            } else {
                format!("{demo}{written}\n")
            };
            let text = format!("{base}\n{second}");
            let (line, key, message) = invalid(&text);
            assert_eq!(key, format!("terminals[1].{second_key}"), "{written}");
            assert_eq!(line, line_number(&text, written, 0), "{written}");
            assert!(message.contains(problem), "{written}: {message}");
        }
        let with_demo = format!("{base}\n{demo}");
        let c = Config::parse(&with_demo, "x").expect("valid");
        assert_eq!(c.terminals[1].protocol.name(), "simulator");
        assert!(matches!(
            &c.terminals[0].protocol,
            ProtocolSettings::Zvt(zvt) if zvt.transport.to_string() == "tcp:127.0.0.1:20007"
        ));
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let text = DEFAULT_CONFIG.replace("[pos]\n", "[pos]\nsecond_waiting = 5\n");
        let err = Config::parse(&text, "x.toml").expect_err("unknown key");
        let msg = err.to_string();
        assert!(msg.contains("second_waiting"), "{msg}");
        assert!(msg.starts_with("x.toml:"), "{msg}");
        let ConfigError::Invalid { line, .. } = err else {
            panic!("wrong kind")
        };
        let expected = text
            .lines()
            .position(|l| l.starts_with("second_waiting"))
            .expect("line")
            + 1;
        assert_eq!(line, expected);
    }

    #[test]
    fn payment_app_name_must_look_like_vendor_app() {
        let with = |name: &str| {
            DEFAULT_CONFIG.replace(
                "# app_name = \"vendor.app-name\"",
                &format!("app_name = \"{name}\""),
            )
        };
        let c = Config::parse(&with("acme.pos-feed"), "x").expect("valid");
        assert_eq!(c.payment_app.app_name.as_deref(), Some("acme.pos-feed"));
        for bad in ["", "noname", "acme.", "acme. app", "<script>.x"] {
            let err = Config::parse(&with(bad), "x").expect_err(bad).to_string();
            assert!(err.contains("payment_app.app_name"), "{bad}: {err}");
        }
    }

    #[test]
    fn network_keys_are_checked_with_their_line() {
        let proxies = "# trusted_proxies = [\"127.0.0.1\", \"::1\"]";
        for (from, to, key) in [
            (
                proxies,
                "trusted_proxies = [\"10.0.0.0/8\", \"not-an-ip\"]",
                "server.trusted_proxies",
            ),
            (
                "ppp_timeout_ms = 4000",
                "ppp_timeout_ms = 5000",
                "server.ppp_timeout_ms",
            ),
            (
                "max_concurrent_requests = 256",
                "max_concurrent_requests = 0",
                "server.max_concurrent_requests",
            ),
            ("window_s = 300", "window_s = 0", "rate_limits.window_s"),
        ] {
            assert!(DEFAULT_CONFIG.contains(from), "{from}");
            let text = DEFAULT_CONFIG.replace(from, to);
            let err = Config::parse(&text, "x.toml").expect_err(to);
            let ConfigError::Invalid { line, key: k, .. } = &err else {
                panic!("wrong kind")
            };
            assert_eq!(k, key);
            assert_eq!(text.lines().nth(line - 1), Some(to), "{err}");
        }
        let text = DEFAULT_CONFIG.replace(
            proxies,
            "trusted_proxies = [\"127.0.0.1\", \"::1\", \"10.0.0.0/8\"]",
        );
        let c = Config::parse(&text, "x").expect("valid");
        assert_eq!(c.server.trusted_proxies.len(), 3);
        assert_eq!(c.server.max_concurrent_requests, 256);
    }

    #[test]
    fn wrong_type_names_key() {
        let text = DEFAULT_CONFIG.replace("seconds_waiting = 600", "seconds_waiting = \"ten\"");
        let msg = Config::parse(&text, "x.toml")
            .expect_err("type")
            .to_string();
        assert!(msg.contains("pos.seconds_waiting"), "{msg}");
    }

    #[test]
    fn delay_to_cancel_below_waiting_is_rejected_with_its_line() {
        let text = DEFAULT_CONFIG.replace("delay_to_cancel = 900", "delay_to_cancel = 60");
        let err = Config::parse(&text, "x.toml").expect_err("invalid");
        let ConfigError::Invalid { line, key, .. } = &err else {
            panic!("wrong kind")
        };
        assert_eq!(key, "pos.delay_to_cancel");
        assert!(
            text.lines()
                .nth(line - 1)
                .expect("line")
                .contains("delay_to_cancel = 60")
        );
    }
}
