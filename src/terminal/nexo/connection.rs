//! The HTTPS link to an Adyen terminal: one POST per message, on a fresh connection.
//!
//! The terminal's certificate is not issued to the address posbridge dials (an IP on the store
//! network) but to `{POIID}.{environment}.terminal.adyen.com`, a name that does not resolve:
//! posbridge connects to the URL and verifies the certificate against that name, chained to
//! the configured trust anchor only (never the system's roots). TLS 1.2 or 1.3.

use std::error::Error;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, OtherError, RootCertStore,
    SignatureScheme,
};

/// How long reaching the terminal may take: it is on the store's network, or it is off.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest answer read: a payment with both receipts is a few kilobytes.
const MAX_ANSWER_BYTES: usize = 1 << 20;

/// The trust anchor or the name cannot make a TLS configuration.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("not a usable trust anchor: {0}")]
    TrustAnchor(String),
    #[error("`{0}` is not a valid certificate name")]
    Name(String),
    #[error("the HTTPS client cannot be built: {0}")]
    Client(String),
}

/// Why a POST brought no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PostError {
    /// No connection (refused, unreachable, or the TLS handshake failed: a wrong certificate):
    /// the request never left posbridge.
    #[error("cannot reach the terminal at {url}: {why}")]
    Unreachable { url: String, why: String },
    /// The request may have reached the terminal, and no whole answer came back.
    #[error("no answer from the terminal: {0}")]
    NoAnswer(String),
}

/// What the terminal answered: its HTTP status and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// An Adyen terminal's endpoint, with the TLS rules it must pass.
#[derive(Debug, Clone)]
pub struct Connection {
    client: reqwest::Client,
    url: Url,
}

impl Connection {
    /// `roots`: the trust anchor(s) from `ca_file`; `certificate_name`: the name the terminal's
    /// certificate must carry.
    pub fn new(
        url: Url,
        roots: Vec<CertificateDer<'static>>,
        certificate_name: &str,
    ) -> Result<Self, TlsSetupError> {
        let tls = tls_config(roots, certificate_name)?;
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .connect_timeout(CONNECT_TIMEOUT)
            // One connection per message: a pooled connection the terminal closed meanwhile
            // would make a request that was never sent look like one without an answer.
            .pool_max_idle_per_host(0)
            .http1_only()
            .no_proxy()
            .build()
            .map_err(|e| TlsSetupError::Client(chain(&e)))?;
        Ok(Self { client, url })
    }

    /// POSTs a sealed message and reads the whole answer, within `timeout` in all.
    pub async fn post(&self, body: Vec<u8>, timeout: Duration) -> Result<Answer, PostError> {
        let sent = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .timeout(timeout)
            .body(body)
            .send()
            .await;
        let mut response = match sent {
            Ok(response) => response,
            Err(e) if e.is_connect() => {
                return Err(PostError::Unreachable {
                    url: self.url.to_string(),
                    why: chain(&e),
                });
            }
            Err(e) => return Err(PostError::NoAnswer(chain(&e))),
        };
        let status = response.status().as_u16();
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| PostError::NoAnswer(chain(&e)))?
        {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(PostError::NoAnswer(format!(
                    "the answer is larger than {MAX_ANSWER_BYTES} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Answer { status, body })
    }
}

/// An error with its causes, as one line (reqwest's own text hides the TLS reason).
fn chain(error: &dyn Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn tls_config(
    roots: Vec<CertificateDer<'static>>,
    certificate_name: &str,
) -> Result<ClientConfig, TlsSetupError> {
    let mut store = RootCertStore::empty();
    for root in roots {
        store
            .add(root)
            .map_err(|e| TlsSetupError::TrustAnchor(e.to_string()))?;
    }
    let name = ServerName::try_from(certificate_name.to_string())
        .map_err(|_| TlsSetupError::Name(certificate_name.to_string()))?;
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider())
        .build()
        .map_err(|e| TlsSetupError::TrustAnchor(e.to_string()))?;
    let config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsSetupError::Client(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(TerminalNameVerifier { webpki, name }))
        .with_no_client_auth();
    Ok(config)
}

/// Why the terminal's certificate was refused, naming what it was checked against.
#[derive(Debug, thiserror::Error)]
#[error("not accepted for `{name}` (check poi_id, environment and ca_file): {source}")]
struct RefusedCertificate {
    name: String,
    source: rustls::Error,
}

/// The standard WebPKI check (chain to the trust anchor, validity, key usage), against the
/// terminal's certificate name instead of the address dialled.
#[derive(Debug)]
struct TerminalNameVerifier {
    webpki: Arc<WebPkiServerVerifier>,
    name: ServerName<'static>,
}

impl ServerCertVerifier for TerminalNameVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _dialled: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.webpki
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
            .map_err(|source| {
                rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(
                    RefusedCertificate {
                        name: self.name.to_str().into_owned(),
                        source,
                    },
                ))))
            })
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}
