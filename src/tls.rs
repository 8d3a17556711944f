//! HTTPS: rustls (aws-lc-rs), TLS 1.2 and 1.3 only. The certificate sits behind a resolver
//! that is swapped on SIGHUP and when the files change (their mtime, size or inode, polled):
//! new handshakes get the new certificate, open connections keep theirs. A file that cannot
//! be used is an error naming it: fatal at startup (exit 64), logged at ERROR on a reload (the
//! old certificate stays).

use std::fmt;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use axum_server::accept::Accept;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::config::TlsConfig;

/// How often the files are looked at.
const POLL: Duration = Duration::from_secs(2);

/// A certificate or key file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("[server.tls] {key} {path}: {problem}")]
pub struct TlsFileError {
    /// `cert` or `key`.
    pub key: &'static str,
    pub path: PathBuf,
    pub problem: String,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The served certificate, swappable.
#[derive(Debug)]
pub struct Resolver(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.read().ok().map(|k| k.clone())
    }
}

pub struct Tls {
    files: TlsConfig,
    resolver: Arc<Resolver>,
    server_config: Arc<ServerConfig>,
}

impl Tls {
    /// Reads the certificate and key and builds the server configuration.
    pub fn load(files: &TlsConfig) -> Result<Arc<Self>, TlsFileError> {
        let key = load_pair(files)?;
        let resolver = Arc::new(Resolver(RwLock::new(key)));
        let server_config = server_config(resolver.clone()).map_err(|e| TlsFileError {
            key: "cert",
            path: files.cert.clone(),
            problem: format!("cannot build the TLS configuration: {e}"),
        })?;
        Ok(Arc::new(Self {
            files: files.clone(),
            resolver,
            server_config,
        }))
    }

    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.server_config.clone()
    }

    /// SHA-256 of the served leaf certificate, hex.
    pub fn fingerprint(&self) -> String {
        self.resolver
            .0
            .read()
            .ok()
            .and_then(|k| k.cert.first().map(|c| hex(&Sha256::digest(c))))
            .unwrap_or_default()
    }

    /// Loads the files again; on success new handshakes use them.
    pub fn reload(&self, why: &str) {
        match load_pair(&self.files) {
            Ok(key) => {
                if let Ok(mut current) = self.resolver.0.write() {
                    *current = key;
                }
                tracing::info!(
                    reason = why,
                    sha256 = %self.fingerprint(),
                    "reloaded the TLS certificate"
                );
            }
            Err(e) => tracing::error!(
                reason = why,
                "cannot reload the TLS certificate, keeping the old one: {e}"
            ),
        }
    }

    /// Reloads on SIGHUP and when either file changes, until `stop`. Call it (it registers
    /// for SIGHUP) before the listener is announced.
    pub fn watch(self: Arc<Self>, stop: CancellationToken) -> impl Future<Output = ()> + Send {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP: TLS reload on file change only");
                None
            }
        };
        async move {
            let mut seen = self.stamps();
            let mut tick = tokio::time::interval(POLL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                let hangup = async {
                    match hup.as_mut() {
                        Some(h) => h.recv().await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    () = stop.cancelled() => return,
                    Some(()) = hangup => {
                        tracing::info!("SIGHUP: reloading the TLS certificate");
                        seen = self.stamps();
                        self.reload("SIGHUP");
                    }
                    _ = tick.tick() => {
                        let now = self.stamps();
                        if now != seen {
                            seen = now;
                            self.reload("file changed");
                        }
                    }
                }
            }
        }
    }

    fn stamps(&self) -> [Option<(SystemTime, u64, u64)>; 2] {
        [stamp(&self.files.cert), stamp(&self.files.key)]
    }
}

fn stamp(path: &Path) -> Option<(SystemTime, u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len(), meta.ino()))
}

/// TLS 1.3 and 1.2, nothing older (rustls has nothing older); HTTP/2 and HTTP/1.1.
fn server_config(resolver: Arc<Resolver>) -> Result<Arc<ServerConfig>, rustls::Error> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn load_pair(files: &TlsConfig) -> Result<Arc<CertifiedKey>, TlsFileError> {
    let cert_error = |problem: String| TlsFileError {
        key: "cert",
        path: files.cert.clone(),
        problem,
    };
    let key_error = |problem: String| TlsFileError {
        key: "key",
        path: files.key.clone(),
        problem,
    };
    let cert_pem =
        std::fs::read(&files.cert).map_err(|e| cert_error(format!("cannot read: {e}")))?;
    let key_pem = std::fs::read(&files.key).map_err(|e| key_error(format!("cannot read: {e}")))?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_error(format!("not a PEM certificate chain: {e}")))?;
    if chain.is_empty() {
        return Err(cert_error("no CERTIFICATE in the file".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| key_error(format!("no PEM private key: {e}")))?;
    let certified = CertifiedKey::from_der(chain, key, &provider()).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => key_error(format!(
            "does not match the certificate in {}",
            files.cert.display()
        )),
        rustls::Error::General(_) => key_error(format!("unusable private key: {e}")),
        other => cert_error(format!("unusable certificate: {other}")),
    })?;
    Ok(Arc::new(certified))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Bounds each accepted connection's kernel send buffer before the TLS handshake (what the
/// plain listener does with `tap_io`).
#[derive(Clone, Copy, Debug)]
pub struct SendBufferAcceptor(pub usize);

impl<S: Send + 'static> Accept<TcpStream, S> for SendBufferAcceptor {
    type Stream = TcpStream;
    type Service = S;
    type Future = Pin<Box<dyn Future<Output = io::Result<(TcpStream, S)>> + Send>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        if let Err(e) = socket2::SockRef::from(&stream).set_send_buffer_size(self.0) {
            tracing::debug!(error = %e, "cannot bound a connection's send buffer");
        }
        Box::pin(std::future::ready(Ok((stream, service))))
    }
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls").field("files", &self.files).finish()
    }
}

/// When the server certificate (the first in the file) expires, as unix seconds.
pub fn certificate_expiry(files: &TlsConfig) -> Result<i64, TlsFileError> {
    let error = |problem: String| TlsFileError {
        key: "cert",
        path: files.cert.clone(),
        problem,
    };
    let pem = std::fs::read(&files.cert).map_err(|e| error(format!("cannot read: {e}")))?;
    let cert = CertificateDer::pem_slice_iter(&pem)
        .next()
        .ok_or_else(|| error("no certificate in the file".into()))?
        .map_err(|e| error(format!("not PEM: {e}")))?;
    not_after(cert.as_ref()).ok_or_else(|| error("cannot read the certificate's validity".into()))
}

/// One DER element: (tag, contents, rest).
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7F);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// `notAfter` of an X.509 certificate: Certificate → tbsCertificate → [version], serial,
/// signature, issuer, validity { notBefore, notAfter }.
fn not_after(der: &[u8]) -> Option<i64> {
    let (_, certificate, _) = der_element(der)?;
    let (_, tbs, _) = der_element(certificate)?;
    let mut rest = tbs;
    let (tag, _, after) = der_element(rest)?;
    if tag == 0xA0 {
        rest = after; // explicit version
    }
    for _ in 0..3 {
        rest = der_element(rest)?.2; // serial, signature algorithm, issuer
    }
    let (_, validity, _) = der_element(rest)?;
    let (_, _, after_not_before) = der_element(validity)?;
    let (tag, time, _) = der_element(after_not_before)?;
    let text = std::str::from_utf8(time).ok()?;
    let digits = text.strip_suffix('Z')?;
    let (year, rest) = match tag {
        0x17 => {
            let yy: i64 = digits.get(..2)?.parse().ok()?;
            (
                if yy >= 50 { 1900 + yy } else { 2000 + yy },
                digits.get(2..)?,
            )
        }
        0x18 => (digits.get(..4)?.parse().ok()?, digits.get(4..)?),
        _ => return None,
    };
    let field = |i: usize| -> Option<i64> { rest.get(i..i + 2)?.parse().ok() };
    let (month, day, hour, minute, second) =
        (field(0)?, field(2)?, field(4)?, field(6)?, field(8)?);
    // Days from civil (H. Hinnant), proleptic Gregorian.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hour * 3600 + minute * 60 + second)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_when_the_certificate_expires() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).expect("params");
        params.not_after = rcgen::date_time_ymd(2031, 5, 17);
        let cert = params.self_signed(&key).expect("cert");
        let files = TlsConfig {
            cert: dir.path().join("cert.pem"),
            key: dir.path().join("key.pem"),
        };
        std::fs::write(&files.cert, cert.pem()).expect("write");
        // 2031-05-17T00:00:00Z
        assert_eq!(certificate_expiry(&files).expect("expiry"), 1_936_742_400);
        params.not_after = rcgen::date_time_ymd(2060, 1, 2);
        let later = params.self_signed(&key).expect("cert");
        std::fs::write(&files.cert, later.pem()).expect("write");
        // GeneralizedTime from 2050 on: 2060-01-02T00:00:00Z
        assert_eq!(certificate_expiry(&files).expect("expiry"), 2_840_227_200);
        std::fs::write(&files.cert, "garbage").expect("write");
        assert!(certificate_expiry(&files).is_err());
    }

    fn write_pair(dir: &Path) -> TlsConfig {
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        let files = TlsConfig {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        };
        std::fs::write(&files.cert, cert.pem()).expect("write");
        std::fs::write(&files.key, key.serialize_pem()).expect("write");
        files
    }

    /// A TLS 1.1 ClientHello (no supported_versions extension), as an old client sends it.
    fn tls11_client_hello() -> Vec<u8> {
        let mut body = vec![0x03, 0x02];
        body.extend([7u8; 32]);
        body.push(0);
        body.extend([0x00, 0x04, 0xc0, 0x13, 0x00, 0x2f]);
        body.extend([0x01, 0x00]);
        let mut handshake = vec![0x01, 0, (body.len() >> 8) as u8, body.len() as u8];
        handshake.extend(body);
        let mut record = vec![
            0x16,
            0x03,
            0x01,
            (handshake.len() >> 8) as u8,
            handshake.len() as u8,
        ];
        record.extend(handshake);
        record
    }

    #[test]
    fn tls_11_is_refused_with_an_alert() {
        let dir = tempfile::tempdir().expect("dir");
        let tls = Tls::load(&write_pair(dir.path())).expect("load");
        let config = tls.server_config();
        assert_eq!(
            config.alpn_protocols,
            [b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        let mut conn = rustls::ServerConnection::new(config).expect("conn");
        let hello = tls11_client_hello();
        conn.read_tls(&mut &hello[..]).expect("read");
        let err = conn.process_new_packets().expect_err("TLS 1.1 refused");
        assert!(matches!(err, rustls::Error::PeerIncompatible(_)), "{err:?}");
        let mut out = Vec::new();
        conn.write_tls(&mut out).expect("write");
        assert_eq!(out.first(), Some(&0x15), "an alert record: {out:?}");
    }

    #[test]
    fn errors_name_the_file() {
        let dir = tempfile::tempdir().expect("dir");
        let files = write_pair(dir.path());
        let missing = TlsConfig {
            key: dir.path().join("nope.pem"),
            ..files.clone()
        };
        let e = Tls::load(&missing).expect_err("missing key").to_string();
        assert!(e.contains("key") && e.contains("nope.pem"), "{e}");
        std::fs::write(&files.cert, "garbage").expect("write");
        let e = Tls::load(&files).expect_err("bad cert").to_string();
        assert!(e.contains("cert.pem") && e.contains("CERTIFICATE"), "{e}");
        let other = write_pair(&{
            let d = dir.path().join("other");
            std::fs::create_dir(&d).expect("mkdir");
            d
        });
        let mismatched = TlsConfig {
            cert: other.cert,
            key: files.key.clone(),
        };
        let e = Tls::load(&mismatched).expect_err("mismatch").to_string();
        assert!(e.contains("key.pem") && e.contains("does not match"), "{e}");
    }

    #[test]
    fn a_broken_reload_keeps_the_old_certificate() {
        let dir = tempfile::tempdir().expect("dir");
        let files = write_pair(dir.path());
        let tls = Tls::load(&files).expect("load");
        let before = tls.fingerprint();
        std::fs::write(&files.key, "broken").expect("write");
        tls.reload("test");
        assert_eq!(tls.fingerprint(), before);
        write_pair(dir.path());
        tls.reload("test");
        assert_ne!(tls.fingerprint(), before);
    }
}
