//! An Adyen terminal's keys in its `[[terminals]]` entry, checked, and how it opens.

use std::path::{Path, PathBuf};

use firmware_protocols::nexo::crypto::{KeyIdentity, KeyMaterial};
use reqwest::Url;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use serde::Deserialize;

use super::connection::{Connection, TlsSetupError};
use super::driver::{NexoDriver, TerminalIdentity};
use super::notifications::PoiIdTaken;
use crate::secret::Secret;
use crate::terminal::protocol::{InvalidSetting, OpenError, Opening, Protocol};
use crate::terminal::{DriverError, TerminalHandle};

/// The entry's nexo keys as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WrittenNexo {
    /// The terminal's local endpoint, `https://IP:8443/nexo`.
    #[serde(default)]
    pub url: Option<String>,
    /// `POIID` in every message header; also names the terminal's certificate.
    #[serde(default)]
    pub poi_id: Option<String>,
    /// `SaleID` in every message header: this lane as the terminal knows it.
    #[serde(default)]
    pub sale_id: Option<String>,
    /// The shared key configured on the terminal: its name and version.
    #[serde(default)]
    pub key_identifier: Option<String>,
    #[serde(default)]
    pub key_version: Option<u32>,
    /// The file holding the key's passphrase (never the passphrase itself).
    #[serde(default)]
    pub passphrase_file: Option<PathBuf>,
    /// The trust anchor the terminal's certificate must chain to (PEM).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub environment: Option<Environment>,
}

/// Which of Adyen's environments the terminal belongs to: the name its certificate carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Test,
    Live,
}

impl Environment {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Test => "test",
            Self::Live => "live",
        }
    }
}

/// What is wrong with a nexo entry, by the key it is written under.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum NexoSettingError {
    #[error("a nexo terminal needs `{0}`")]
    Missing(&'static str),
    #[error("`url` must be an https:// address with a host (the terminal's local endpoint): {0}")]
    Url(String),
    #[error(
        "`poi_id` must be 1 to 63 letters, digits or dashes (it names the terminal's certificate)"
    )]
    PoiId,
    #[error("`{0}` must not be empty")]
    Empty(&'static str),
    #[error("`{0}` must be an absolute path")]
    Relative(&'static str),
}

impl NexoSettingError {
    fn key(&self) -> &'static str {
        match self {
            Self::Missing(key) | Self::Empty(key) | Self::Relative(key) => key,
            Self::Url(_) => "url",
            Self::PoiId => "poi_id",
        }
    }
}

impl From<NexoSettingError> for InvalidSetting {
    fn from(e: NexoSettingError) -> Self {
        InvalidSetting::new(e.key(), e)
    }
}

/// An Adyen terminal's checked settings.
#[derive(Debug, Clone)]
pub struct NexoSettings {
    pub url: Url,
    pub poi_id: String,
    pub sale_id: String,
    pub key: KeyIdentity,
    pub passphrase_file: PathBuf,
    pub ca_file: PathBuf,
    pub environment: Environment,
}

impl NexoSettings {
    fn checked(written: WrittenNexo) -> Result<Self, NexoSettingError> {
        let text = |value: Option<String>, key: &'static str| {
            let value = value.ok_or(NexoSettingError::Missing(key))?;
            if value.trim().is_empty() {
                return Err(NexoSettingError::Empty(key));
            }
            Ok(value)
        };
        let file = |path: Option<PathBuf>, key: &'static str| {
            let path = path.ok_or(NexoSettingError::Missing(key))?;
            if !path.is_absolute() {
                return Err(NexoSettingError::Relative(key));
            }
            Ok(path)
        };
        let url = text(written.url, "url")?;
        let url = Url::parse(&url).map_err(|e| NexoSettingError::Url(format!("{url}: {e}")))?;
        if url.scheme() != "https" || url.host().is_none() {
            return Err(NexoSettingError::Url(url.to_string()));
        }
        let poi_id = text(written.poi_id, "poi_id")?;
        let dns_label = poi_id.len() <= 63
            && !poi_id.starts_with('-')
            && !poi_id.ends_with('-')
            && poi_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !dns_label {
            return Err(NexoSettingError::PoiId);
        }
        Ok(Self {
            url,
            poi_id,
            sale_id: text(written.sale_id, "sale_id")?,
            key: KeyIdentity {
                key_identifier: text(written.key_identifier, "key_identifier")?,
                key_version: written
                    .key_version
                    .ok_or(NexoSettingError::Missing("key_version"))?,
            },
            passphrase_file: file(written.passphrase_file, "passphrase_file")?,
            ca_file: file(written.ca_file, "ca_file")?,
            environment: written
                .environment
                .ok_or(NexoSettingError::Missing("environment"))?,
        })
    }

    /// The name the terminal's certificate must carry: `{poi_id}.{environment}.terminal.adyen.com`
    /// (the IP in `url` is not it).
    pub fn certificate_name(&self) -> String {
        format!(
            "{}.{}.terminal.adyen.com",
            self.poi_id,
            self.environment.as_str()
        )
    }
}

/// Why an Adyen terminal could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum NexoOpenError {
    #[error("passphrase_file {0}")]
    Passphrase(String),
    #[error("ca_file {0}")]
    Ca(String),
    #[error(transparent)]
    Tls(#[from] TlsSetupError),
    #[error(transparent)]
    Journal(#[from] DriverError),
    #[error(transparent)]
    PoiIdTaken(#[from] PoiIdTaken),
}

/// The key's passphrase: the file's content without its final line end (an editor adds one).
fn read_passphrase(path: &Path) -> Result<Secret, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let passphrase = text
        .strip_suffix('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t))
        .unwrap_or(&text);
    if passphrase.is_empty() {
        return Err(format!("{}: empty", path.display()));
    }
    Ok(Secret::new(passphrase))
}

/// The certificates of a PEM file: at least one.
pub(super) fn read_ca(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: not PEM: {e}", path.display()))?;
    if certificates.is_empty() {
        return Err(format!("{}: no PEM certificate in it", path.display()));
    }
    Ok(certificates)
}

impl Protocol for NexoSettings {
    const NAME: &'static str = "nexo";
    type Written = WrittenNexo;

    fn check(written: WrittenNexo) -> Result<Self, InvalidSetting> {
        Ok(Self::checked(written)?)
    }

    fn open(&self, terminal: Opening<'_>) -> Result<TerminalHandle, OpenError> {
        let fail = |source: NexoOpenError| OpenError::new(terminal.id, source);
        let passphrase = read_passphrase(&self.passphrase_file)
            .map_err(|e| fail(NexoOpenError::Passphrase(e)))?;
        let key = KeyMaterial::derive(passphrase.expose().as_bytes());
        drop(passphrase);
        let roots = read_ca(&self.ca_file).map_err(|e| fail(NexoOpenError::Ca(e)))?;
        let connection = Connection::new(self.url.clone(), roots, &self.certificate_name())
            .map_err(|e| fail(e.into()))?;
        let running_sale = terminal
            .notifications
            .register(
                &self.poi_id,
                terminal.id,
                key.clone(),
                self.key.clone(),
                terminal.prompts.clone(),
            )
            .map_err(|e| fail(e.into()))?;
        let driver = NexoDriver::new(
            terminal.id,
            TerminalIdentity {
                sale_id: self.sale_id.clone(),
                poi_id: self.poi_id.clone(),
                key,
                key_identity: self.key.clone(),
            },
            connection,
            terminal.result_timeout,
            NexoDriver::journal_path(terminal.database, terminal.id),
            terminal.clock,
        )
        .map_err(|e| fail(e.into()))?
        .with_running_sale(running_sale);
        Ok(crate::terminal::spawn(
            terminal.id,
            Self::NAME,
            driver,
            terminal.prompts,
            terminal.result_timeout,
        ))
    }

    fn host_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Err(e) = read_passphrase(&self.passphrase_file) {
            problems.push(format!("the terminal's key: passphrase_file {e}"));
        }
        match read_ca(&self.ca_file) {
            Err(e) => problems.push(format!("the terminal's trust anchor: ca_file {e}")),
            Ok(roots) => {
                if let Err(e) = Connection::new(self.url.clone(), roots, &self.certificate_name()) {
                    problems.push(format!("the terminal's trust anchor: ca_file: {e}"));
                }
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written() -> WrittenNexo {
        WrittenNexo {
            url: Some("https://192.0.2.20:8443/nexo".into()),
            poi_id: Some("V400m-324688179".into()),
            sale_id: Some("store-1-lane-4".into()),
            key_identifier: Some("posbridge".into()),
            key_version: Some(1),
            passphrase_file: Some("/etc/posbridge/nexo-lane-4.key".into()),
            ca_file: Some("/etc/posbridge/adyen-terminal-root.pem".into()),
            environment: Some(Environment::Test),
        }
    }

    fn key(w: WrittenNexo) -> Result<(), &'static str> {
        NexoSettings::checked(w).map(|_| ()).map_err(|e| e.key())
    }

    #[test]
    fn the_issue_example_is_valid_and_names_the_certificate_by_poi_id() {
        let settings = NexoSettings::checked(written()).expect("valid");
        assert_eq!(
            settings.certificate_name(),
            "V400m-324688179.test.terminal.adyen.com"
        );
        let live = NexoSettings::checked(WrittenNexo {
            environment: Some(Environment::Live),
            ..written()
        })
        .expect("valid");
        assert_eq!(
            live.certificate_name(),
            "V400m-324688179.live.terminal.adyen.com"
        );
    }

    #[test]
    fn an_http_url_a_bad_poi_id_and_missing_or_relative_keys_are_refused_by_key() {
        let http = WrittenNexo {
            url: Some("http://192.0.2.20:8443/nexo".into()),
            ..written()
        };
        assert_eq!(key(http), Err("url"));
        let garbage = WrittenNexo {
            url: Some("not a url".into()),
            ..written()
        };
        assert_eq!(key(garbage), Err("url"));
        let dotted = WrittenNexo {
            poi_id: Some("V400m.evil.com".into()),
            ..written()
        };
        assert_eq!(key(dotted), Err("poi_id"));
        let no_passphrase = WrittenNexo {
            passphrase_file: None,
            ..written()
        };
        assert_eq!(key(no_passphrase), Err("passphrase_file"));
        let relative = WrittenNexo {
            ca_file: Some("adyen.pem".into()),
            ..written()
        };
        assert_eq!(key(relative), Err("ca_file"));
        let empty = WrittenNexo {
            sale_id: Some(" ".into()),
            ..written()
        };
        assert_eq!(key(empty), Err("sale_id"));
        let no_environment = WrittenNexo {
            environment: None,
            ..written()
        };
        assert_eq!(key(no_environment), Err("environment"));
    }

    #[test]
    fn an_unknown_key_or_environment_is_refused_by_serde() {
        let table = |extra: &str| {
            format!(
                "url = \"https://192.0.2.20:8443/nexo\"\npoi_id = \"P\"\nsale_id = \"S\"\n\
                 key_identifier = \"k\"\nkey_version = 1\npassphrase_file = \"/k\"\n\
                 ca_file = \"/c\"\n{extra}"
            )
        };
        let read = |text: &str| toml::from_str::<WrittenNexo>(text).map(|_| ());
        assert!(read(&table("environment = \"test\"")).is_ok());
        let unknown =
            read(&table("environment = \"test\"\npassphrase = \"x\"")).expect_err("unknown key");
        assert!(unknown.to_string().contains("passphrase"), "{unknown}");
        let staging = read(&table("environment = \"staging\"")).expect_err("environment");
        assert!(staging.to_string().contains("staging"), "{staging}");
    }

    #[test]
    fn host_problems_name_an_unreadable_key_and_a_ca_that_is_not_pem() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "this is no certificate\n").expect("ca");
        let settings = NexoSettings::checked(WrittenNexo {
            passphrase_file: Some(dir.path().join("absent.key")),
            ca_file: Some(ca),
            ..written()
        })
        .expect("valid");
        let problems = settings.host_problems();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].contains("passphrase_file") && problems[0].contains("absent.key"),
            "{problems:?}"
        );
        assert!(
            problems[1].contains("ca_file") && problems[1].contains("no PEM certificate"),
            "{problems:?}"
        );
        let key_file = dir.path().join("lane.key");
        std::fs::write(&key_file, "\n").expect("key");
        assert!(
            read_passphrase(&key_file)
                .expect_err("empty")
                .contains("empty")
        );
        std::fs::write(&key_file, "s3cret passphrase\r\n").expect("key");
        assert_eq!(
            read_passphrase(&key_file).expect("read").expose(),
            "s3cret passphrase"
        );
    }

    /// The commented example in each config/*.toml is a valid nexo entry once uncommented.
    #[test]
    fn the_commented_example_in_config_is_valid() {
        for text in [
            include_str!("../../../config/posbridge.toml"),
            include_str!("../../../config/posbridge-debian.toml"),
        ] {
            let keys: String = text
                .lines()
                .skip_while(|l| *l != "# protocol = \"nexo\"")
                .skip(1)
                .take_while(|l| l.starts_with("# "))
                .map(|l| format!("{}\n", l.trim_start_matches("# ")))
                .collect();
            let written: WrittenNexo = toml::from_str(&keys).expect("the example parses");
            let settings = NexoSettings::checked(written).expect("the example is valid");
            assert_eq!(settings.environment, Environment::Test, "{keys}");
        }
    }
}
