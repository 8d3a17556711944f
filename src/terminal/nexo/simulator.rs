//! An Adyen payment terminal in local mode (the nexo Retailer Protocol as Adyen's Terminal API
//! renders it), for tests and demos: `posbridge simulate-terminal nexo`.
//!
//! It serves `POST /nexo` over HTTPS with a certificate it makes at start: a CA of its own
//! (written to `--ca-out`) and a leaf for `{poi_id}.{environment}.terminal.adyen.com`, the name a
//! real terminal's certificate carries. Requests come sealed (AES-256-CBC + HMAC-SHA256 under
//! the shared key's passphrase); it checks the key identifier and version, then the HMAC, as a
//! real terminal does, and answers sealed `SaleToPOIResponse`s. A request it cannot accept is
//! answered in clear, HTTP 401, with Adyen's error text:
//!
//! | request | answer body |
//! |---|---|
//! | not JSON, no envelope, or sent in clear | `{"errors":["Nexo Service: crypto error (1)"],"ServiceID":…}` |
//! | another key identifier or version | `… crypto error (2) …` |
//! | does not decrypt, or its HMAC does not match | `… crypto error (9) …` |
//!
//! A request that opens but is no message it serves gets a sealed `EventNotification` `Reject`.
//!
//! Sale outcomes by the cents of the amount, as the other simulators (`terminal::simulator`):
//!
//! | cents | outcome |
//! |---|---|
//! | .01 | declined by the issuer: `Failure`, `Refusal`, `refusalReason=Refused` |
//! | .02 | cancelled by the shopper: `Failure`, `Cancel` |
//! | .03 | never completes: in progress until aborted |
//! | .04 | approved after 20 s |
//! | .06 | approved; its reversal is refused |
//! | other | approved after `--approve-after-ms` |
//!
//! Approvals charge a documented test card: `visa 411111 **** 1111` for credit,
//! `mc 555555 **** 4444` when the request prefers debit.
//!
//! With `--notify-url`, it POSTs each step of a sale to that URL (repeatable) as a sealed
//! display notification, as an Adyen terminal does to its display URLs: "insert, tap or swipe
//! card", "enter PIN", "processing, please wait", then "approved", "declined" or "cancelled".
//! Plain HTTP to a loopback address only. A notification that cannot be delivered is logged
//! and skipped: the sale goes on.
//!
//! Like a real terminal, a sale runs on its own, whatever becomes of the HTTP connection that
//! brought it: if posbridge goes away mid-sale the sale completes and is kept, so a later
//! `TransactionStatus` for its `ServiceID` repeats its `PaymentResponse`. One sale at a time:
//! another payment meanwhile is answered `Busy`.

mod terminal;
#[cfg(test)]
mod tests;

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use firmware_protocols::nexo::crypto::{self, Direction, KeyIdentity, KeyMaterial};
use firmware_protocols::nexo::messages::{
    EventNotification, MessageCategory, MessageClass, MessageHeader, MessageType, PaymentRequest,
    Request, RequestBody, Response, ResponseBody,
};
use firmware_protocols::nexo::notification::Notification;
use firmware_protocols::nexo::seal_request;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::header::HeaderValue;
use hyper::server::conn::http1;
use hyper::{Method, StatusCode};
use hyper_util::rt::TokioIo;
use reqwest::Url;
use reqwest::header::CONTENT_TYPE;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use terminal::{Plan, Taken, Terminal};

/// The path a terminal serves the Terminal API on.
const NEXO_PATH: &str = "/nexo";
/// Larger than any Terminal API request.
const MAX_REQUEST_BYTES: usize = 1 << 20;
/// How long a `.04` sale takes.
const SLOW_SALE: Duration = Duration::from_secs(20);
/// How long one display notification may take to be delivered.
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(2);

/// Faults to inject, each once, into the next request (or connection) it applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FaultKind {
    /// Take the next payment, complete it (charged), then close the connection without an
    /// answer.
    DropAnswer,
    /// Answer the next sealed answer with a broken HMAC.
    BadHmac,
    /// Close the next connection at once (before TLS), or the connection of the next request
    /// on one already open, without reading it: the terminal looks offline, nothing is done.
    Offline,
    /// Answer the next request only after `--slow-ms`.
    Slow,
}

impl FaultKind {
    fn name(self) -> &'static str {
        match self {
            FaultKind::DropAnswer => "drop-answer",
            FaultKind::BadHmac => "bad-hmac",
            FaultKind::Offline => "offline",
            FaultKind::Slow => "slow",
        }
    }
}

/// Which of Adyen's certificate names the terminal carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Environment {
    Test,
    Live,
}

impl Environment {
    fn as_str(self) -> &'static str {
        match self {
            Environment::Test => "test",
            Environment::Live => "live",
        }
    }
}

/// Command-line options of `posbridge simulate-terminal nexo`.
#[derive(Debug, Clone, clap::Args)]
pub struct SimulatorArgs {
    /// `https:HOST:PORT` (port 0 allowed) to serve `POST /nexo` on.
    #[arg(long, value_name = "https:HOST:PORT")]
    pub listen: String,
    /// The terminal's POIID (`[model]-[serial]`): in its certificate's name and every answer.
    #[arg(long, value_name = "ID")]
    pub poi_id: String,
    /// The file holding the shared key's passphrase (a trailing newline is not part of it).
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: PathBuf,
    /// The shared key's identifier, as configured on the terminal.
    #[arg(long, default_value = "posbridge")]
    pub key_identifier: String,
    /// The shared key's version.
    #[arg(long, default_value_t = 1)]
    pub key_version: u32,
    /// The certificate name's environment: `{poi_id}.{environment}.terminal.adyen.com`.
    #[arg(long, value_enum, default_value_t = Environment::Test)]
    pub environment: Environment,
    /// Where to write the PEM of the CA that signed its certificate (posbridge's `ca_file`).
    #[arg(long, value_name = "PATH")]
    pub ca_out: Option<PathBuf>,
    /// How long a normal sale takes.
    #[arg(long, default_value_t = 1500)]
    pub approve_after_ms: u64,
    /// A fault to inject (repeatable).
    #[arg(long = "fault", value_enum, value_name = "KIND")]
    pub faults: Vec<FaultKind>,
    /// How long the `slow` fault holds its answer (longer than Adyen's 120 s by default).
    #[arg(long, default_value_t = 150_000)]
    pub slow_ms: u64,
    /// Write the terminal's record to PATH (JSON lines, rewritten whole after each change): each
    /// sale it took and its state.
    #[arg(long, value_name = "PATH")]
    pub record: Option<PathBuf>,
    /// POST each step of a sale here as a sealed display notification (repeatable):
    /// `http://127.0.0.1:PORT/nexo/notifications` (plain HTTP, loopback only).
    #[arg(long = "notify-url", value_name = "URL")]
    pub notify_urls: Vec<String>,
}

/// Everything [`serve`] needs; tests build it directly.
#[derive(Debug, Clone)]
pub struct SimulatorOptions {
    pub listen: SocketAddr,
    pub poi_id: String,
    pub passphrase: Vec<u8>,
    pub key: KeyIdentity,
    pub environment: Environment,
    pub ca_out: Option<PathBuf>,
    pub approve_after: Duration,
    pub faults: Vec<FaultKind>,
    pub slow_delay: Duration,
    /// How long a `.04` sale takes.
    pub slow_sale: Duration,
    pub record: Option<PathBuf>,
    /// Where display notifications go (checked: plain HTTP, loopback).
    pub notify_urls: Vec<Url>,
}

impl SimulatorOptions {
    /// Options with the command line's defaults, listening on 127.0.0.1, port chosen by the
    /// system.
    pub fn new(poi_id: &str, passphrase: &[u8]) -> SimulatorOptions {
        SimulatorOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            poi_id: poi_id.to_owned(),
            passphrase: passphrase.to_vec(),
            key: KeyIdentity {
                key_identifier: "posbridge".to_owned(),
                key_version: 1,
            },
            environment: Environment::Test,
            ca_out: None,
            approve_after: Duration::from_millis(1500),
            faults: Vec::new(),
            slow_delay: Duration::from_secs(150),
            slow_sale: SLOW_SALE,
            record: None,
            notify_urls: Vec::new(),
        }
    }

    pub fn from_args(args: &SimulatorArgs) -> anyhow::Result<SimulatorOptions> {
        let listen = args
            .listen
            .strip_prefix("https:")
            .with_context(|| format!("--listen `{}` must be https:HOST:PORT", args.listen))?
            .parse::<SocketAddr>()
            .with_context(|| format!("--listen `{}`: not an IP address and port", args.listen))?;
        let mut passphrase = std::fs::read(&args.passphrase_file).with_context(|| {
            format!(
                "cannot read --passphrase-file {}",
                args.passphrase_file.display()
            )
        })?;
        while passphrase
            .last()
            .is_some_and(|byte| matches!(byte, b'\n' | b'\r'))
        {
            passphrase.pop();
        }
        anyhow::ensure!(
            !passphrase.is_empty(),
            "--passphrase-file {} is empty",
            args.passphrase_file.display()
        );
        let notify_urls = args
            .notify_urls
            .iter()
            .map(|url| notify_url(url))
            .collect::<anyhow::Result<_>>()?;
        Ok(SimulatorOptions {
            listen,
            notify_urls,
            key: KeyIdentity {
                key_identifier: args.key_identifier.clone(),
                key_version: args.key_version,
            },
            environment: args.environment,
            ca_out: args.ca_out.clone(),
            approve_after: Duration::from_millis(args.approve_after_ms),
            faults: args.faults.clone(),
            slow_delay: Duration::from_millis(args.slow_ms),
            record: args.record.clone(),
            ..SimulatorOptions::new(&args.poi_id, &passphrase)
        })
    }

    /// The name in the terminal's certificate.
    pub fn certificate_name(&self) -> String {
        format!(
            "{}.{}.terminal.adyen.com",
            self.poi_id,
            self.environment.as_str()
        )
    }
}

/// A `--notify-url`: plain HTTP to a loopback address, so a test terminal never sends its
/// notifications off the machine.
fn notify_url(text: &str) -> anyhow::Result<Url> {
    let url = Url::parse(text).with_context(|| format!("--notify-url `{text}`: not a URL"))?;
    let loopback = url
        .host_str()
        .map(|host| host.trim_start_matches('[').trim_end_matches(']'))
        .and_then(|host| host.parse::<IpAddr>().ok())
        .is_some_and(|ip| ip.is_loopback());
    anyhow::ensure!(
        url.scheme() == "http" && loopback,
        "--notify-url `{text}`: only http:// to 127.0.0.1 or [::1]"
    );
    Ok(url)
}

pub async fn run(args: SimulatorArgs) -> anyhow::Result<()> {
    let (ready, announced) = oneshot::channel();
    let terminal = serve(SimulatorOptions::from_args(&args)?, ready);
    crate::terminal::simulator_process::run_announced("nexo simulator", terminal, announced).await
}

/// Plays the terminal until it cannot listen. `ready` receives the line `run` prints first:
/// `listening on https://HOST:PORT/nexo`.
pub async fn serve(
    options: SimulatorOptions,
    ready: oneshot::Sender<String>,
) -> anyhow::Result<()> {
    let certificate_name = options.certificate_name();
    let certificate = TerminalCertificate::generate(&certificate_name)?;
    if let Some(path) = &options.ca_out {
        std::fs::write(path, &certificate.ca_pem)
            .with_context(|| format!("writing the CA to {}", path.display()))?;
    }
    let acceptor = tokio_rustls::TlsAcceptor::from(certificate.server_config()?);
    let listener = TcpListener::bind(options.listen)
        .await
        .with_context(|| format!("cannot listen on {}", options.listen))?;
    let local = listener
        .local_addr()
        .context("reading the listening address")?;
    let notifier = Notifier::start(options.notify_urls.clone())?;
    let simulator = Arc::new(Simulator::new(options, notifier));
    tracing::info!(
        %local,
        poi_id = %simulator.options.poi_id,
        certificate_name = %certificate_name,
        key_identifier = %simulator.identity.key_identifier,
        key_version = simulator.identity.key_version,
        "nexo simulator: listening"
    );
    let _ = ready.send(format!("listening on https://{local}{NEXO_PATH}"));
    loop {
        let (stream, peer) = listener.accept().await.context("accepting a connection")?;
        if simulator.terminal().faults.take(FaultKind::Offline) {
            tracing::warn!(%peer, "nexo simulator: connection closed at once (offline)");
            drop(stream);
            continue;
        }
        tokio::spawn(serve_connection(
            Arc::clone(&simulator),
            acceptor.clone(),
            stream,
        ));
    }
}

/// The terminal's certificate, made at start: a CA and a leaf for the terminal's name.
struct TerminalCertificate {
    ca_pem: String,
    leaf: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
}

impl TerminalCertificate {
    fn generate(name: &str) -> anyhow::Result<TerminalCertificate> {
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(
            rcgen::DnType::CommonName,
            "posbridge nexo simulator root (not Adyen's)",
        );
        ca_params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate()?)
            .context("making the simulator's CA")?;
        let mut leaf_params = rcgen::CertificateParams::new(vec![name.to_owned()])?;
        leaf_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        leaf_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let leaf_key = rcgen::KeyPair::generate()?;
        let leaf = leaf_params
            .signed_by(&leaf_key, &ca)
            .context("making the terminal's certificate")?;
        Ok(TerminalCertificate {
            ca_pem: ca.pem(),
            leaf: leaf.der().clone(),
            key: PrivatePkcs8KeyDer::from(leaf_key.serialize_der()),
        })
    }

    /// TLS 1.2 and 1.3 only, HTTP/1.1, as a terminal serves.
    fn server_config(&self) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .context("choosing the TLS versions")?
            .with_no_client_auth()
            .with_single_cert(
                vec![self.leaf.clone()],
                PrivateKeyDer::Pkcs8(self.key.clone_key()),
            )
            .context("loading the terminal's certificate")?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// The terminal: its key and what it remembers, shared by every connection and sale task.
struct Simulator {
    options: SimulatorOptions,
    key: KeyMaterial,
    identity: KeyIdentity,
    terminal: Mutex<Terminal>,
    /// Where its display notifications go, if anywhere.
    notifier: Option<Notifier>,
}

/// Delivers the terminal's display notifications to every `--notify-url`, in the order the
/// sale made them, one at a time; one that fails is logged and skipped.
struct Notifier {
    queue: mpsc::UnboundedSender<Delivery>,
}

struct Delivery {
    body: Vec<u8>,
    /// Told once every URL got it (or failed to).
    delivered: Option<oneshot::Sender<()>>,
}

impl Notifier {
    fn start(urls: Vec<Url>) -> anyhow::Result<Option<Notifier>> {
        if urls.is_empty() {
            return Ok(None);
        }
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(NOTIFY_TIMEOUT)
            .build()
            .context("building the notification client")?;
        let (queue, mut deliveries) = mpsc::unbounded_channel::<Delivery>();
        tokio::spawn(async move {
            while let Some(delivery) = deliveries.recv().await {
                for url in &urls {
                    deliver(&client, url, &delivery.body).await;
                }
                if let Some(delivered) = delivery.delivered {
                    let _ = delivered.send(());
                }
            }
        });
        Ok(Some(Notifier { queue }))
    }
}

async fn deliver(client: &reqwest::Client, url: &Url, body: &[u8]) {
    let sent = client
        .post(url.clone())
        .header(CONTENT_TYPE, "application/json")
        .body(body.to_vec())
        .send()
        .await;
    match sent {
        Ok(answer) if answer.status().is_success() => {
            tracing::debug!(%url, "nexo simulator: display notification delivered");
        }
        Ok(answer) => tracing::warn!(
            %url,
            status = answer.status().as_u16(),
            "nexo simulator: display notification refused"
        ),
        Err(error) => {
            tracing::warn!(%url, %error, "nexo simulator: display notification not delivered");
        }
    }
}

/// What a request gets.
#[derive(Debug)]
enum Answer {
    /// A sealed message, HTTP 200.
    Sealed(Vec<u8>),
    /// HTTP 200 with no content (an abort, as local mode acknowledges it).
    Acknowledged,
    /// A crypto error, in clear: HTTP 401 and Adyen's error text.
    CryptoError {
        code: u8,
        service_id: Option<String>,
    },
    /// No answer: the connection is closed.
    HangUp,
}

impl Simulator {
    fn new(options: SimulatorOptions, notifier: Option<Notifier>) -> Simulator {
        Simulator {
            notifier,
            key: KeyMaterial::derive(&options.passphrase),
            identity: options.key.clone(),
            terminal: Mutex::new(Terminal::new(
                &options.poi_id,
                &options.faults,
                options.record.clone(),
            )),
            options,
        }
    }

    /// The terminal's state; never held across an await. A panic elsewhere leaves it usable.
    fn terminal(&self) -> MutexGuard<'_, Terminal> {
        self.terminal.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Checks the envelope as a terminal does (key, then HMAC) and serves what is inside.
    async fn answer(self: &Arc<Self>, body: &[u8]) -> Answer {
        let Some(clear) = crypto::clear_parts(body)
            .ok()
            .filter(|clear| clear.direction == Direction::Request)
        else {
            tracing::warn!("nexo simulator: not a SaleToPOIRequest envelope");
            return Answer::CryptoError {
                code: 1,
                service_id: None,
            };
        };
        let service_id = clear
            .header
            .as_ref()
            .and_then(|header| header.service_id.clone());
        let Some(trailer) = clear.trailer.filter(|_| clear.sealed) else {
            tracing::warn!(
                service_id = service_id.as_deref().unwrap_or_default(),
                "nexo simulator: request in clear refused"
            );
            return Answer::CryptoError {
                code: 1,
                service_id,
            };
        };
        if trailer.key_identifier != self.identity.key_identifier
            || trailer.key_version != self.identity.key_version
        {
            tracing::warn!(
                service_id = service_id.as_deref().unwrap_or_default(),
                key_identifier = %trailer.key_identifier,
                key_version = trailer.key_version,
                "nexo simulator: request under an unknown key refused"
            );
            return Answer::CryptoError {
                code: 2,
                service_id,
            };
        }
        let opened = match crypto::open(body, &self.key) {
            Ok(opened) if opened.direction == Direction::Request => opened,
            Ok(_) | Err(_) => {
                tracing::warn!(
                    service_id = service_id.as_deref().unwrap_or_default(),
                    "nexo simulator: request does not decrypt or its HMAC does not match"
                );
                return Answer::CryptoError {
                    code: 9,
                    service_id,
                };
            }
        };
        let request = match Request::from_json(&opened.plaintext) {
            Ok(request) => request,
            Err(error) => return self.reject(&opened.clear_header, &error.to_string()),
        };
        let header = &request.header;
        match &request.body {
            RequestBody::PaymentRequest(payment) => self.pay(header, payment).await,
            RequestBody::AbortRequest(abort) => {
                self.terminal().abort(header, abort);
                Answer::Acknowledged
            }
            RequestBody::ReversalRequest(reversal) => {
                let response = self.terminal().reverse(header, reversal);
                self.seal_response(&response)
            }
            RequestBody::TransactionStatusRequest(status) => {
                let response = self.terminal().status(header, status);
                self.seal_response(&response)
            }
            RequestBody::DiagnosisRequest(_) => {
                let response = self.terminal().diagnosis(header);
                self.seal_response(&response)
            }
            RequestBody::EventNotification(_) | RequestBody::DisplayRequest(_) => {
                self.reject(header, "the terminal does not serve this request")
            }
        }
    }

    /// Takes a payment and answers it when the sale completes. The sale runs in a task of its
    /// own: if this request goes away (its connection dropped), the sale still completes.
    async fn pay(self: &Arc<Self>, header: &MessageHeader, request: &PaymentRequest) -> Answer {
        let taken = self.terminal().take_payment(header, request);
        let (index, mut outcome) = match taken {
            Taken::Refused(payment) => {
                return self.seal_response(&Response {
                    header: terminal::response_header(header),
                    body: ResponseBody::Payment(*payment),
                });
            }
            Taken::Running {
                index,
                plan,
                abort,
                outcome,
            } => {
                tokio::spawn(run_sale(Arc::clone(self), index, plan, abort));
                (index, outcome)
            }
        };
        let drop_answer = self.terminal().faults.take(FaultKind::DropAnswer);
        let payment = match outcome.wait_for(Option::is_some).await {
            Ok(payment) => payment.clone(),
            // The terminal keeps every sale's sender: it cannot go away while it runs.
            Err(_) => return Answer::HangUp,
        };
        let (Some(payment), Some(header)) = (payment, self.terminal().payment_header(index)) else {
            return Answer::HangUp;
        };
        if drop_answer {
            tracing::warn!(
                service_id = header.service_id.as_deref().unwrap_or_default(),
                "nexo simulator: sale completed, its answer dropped"
            );
            return Answer::HangUp;
        }
        self.seal_response(&Response {
            header,
            body: ResponseBody::Payment(payment),
        })
    }

    /// A sealed `EventNotification` `Reject`, as a terminal answers a message it cannot serve.
    fn reject(&self, header: &MessageHeader, why: &str) -> Answer {
        tracing::warn!(
            service_id = header.service_id.as_deref().unwrap_or_default(),
            why,
            "nexo simulator: request rejected"
        );
        let notification = Request {
            header: MessageHeader {
                protocol_version: header.protocol_version.clone(),
                message_class: MessageClass::Event,
                message_category: MessageCategory::Event,
                message_type: MessageType::Notification,
                service_id: None,
                device_id: None,
                sale_id: header.sale_id.clone(),
                poi_id: self.options.poi_id.clone(),
            },
            body: RequestBody::EventNotification(EventNotification {
                time_stamp: format!("{:.3}", jiff::Timestamp::now()),
                event_to_notify: "Reject".to_owned(),
                event_details: Some(format!("message={}", terminal::form_encode(why))),
                rejected_message: None,
                display_output: Vec::new(),
            }),
        };
        match notification.to_json() {
            Ok(plaintext) => self.seal(Direction::Request, &notification.header, &plaintext),
            Err(error) => {
                tracing::error!(%error, "nexo simulator: cannot write the rejection");
                Answer::HangUp
            }
        }
    }

    /// Sends what the display shows during the sale at `index` as a display notification.
    /// The returned receiver is told when it was delivered, or given up.
    fn notify(&self, index: usize, event: &str, text: &str) -> Option<oneshot::Receiver<()>> {
        let notifier = self.notifier.as_ref()?;
        let (sale_id, service_id) = self.terminal().sale_ids(index)?;
        let notification = Notification::display(
            &self.options.poi_id,
            &sale_id,
            Some(&service_id),
            event,
            text,
        );
        let body = match seal_request(&notification.into_request(), &self.key, &self.identity) {
            Ok(body) => body,
            Err(error) => {
                tracing::error!(%error, "nexo simulator: cannot seal a display notification");
                return None;
            }
        };
        let (delivered, done) = oneshot::channel();
        let delivery = Delivery {
            body,
            delivered: Some(delivered),
        };
        notifier.queue.send(delivery).ok()?;
        Some(done)
    }

    fn seal_response(&self, response: &Response) -> Answer {
        match response.to_json() {
            Ok(plaintext) => self.seal(Direction::Response, &response.header, &plaintext),
            Err(error) => {
                tracing::error!(%error, "nexo simulator: cannot write the answer");
                Answer::HangUp
            }
        }
    }

    /// Seals a message; the `bad-hmac` fault breaks its HMAC.
    fn seal(&self, direction: Direction, header: &MessageHeader, plaintext: &[u8]) -> Answer {
        let sealed = match crypto::seal(direction, header, plaintext, &self.key, &self.identity) {
            Ok(sealed) => sealed,
            Err(error) => {
                tracing::error!(%error, "nexo simulator: cannot seal the answer");
                return Answer::HangUp;
            }
        };
        if self.terminal().faults.take(FaultKind::BadHmac) {
            return Answer::Sealed(break_hmac(sealed));
        }
        Answer::Sealed(sealed)
    }
}

/// Runs a sale to its outcome at its plan's time, or until an abort stops it, showing its
/// steps as the other simulators do (a third of its time each).
async fn run_sale(simulator: Arc<Simulator>, index: usize, plan: Plan, abort: CancellationToken) {
    let options = &simulator.options;
    simulator.notify(index, "TENDER_CREATED", "insert, tap or swipe card");
    let aborted = match terminal::sale_duration(plan, options.approve_after, options.slow_sale) {
        Some(duration) => {
            let steps = async {
                tokio::time::sleep(duration / 3).await;
                simulator.notify(index, "WAIT_FOR_PIN", "enter PIN");
                tokio::time::sleep(duration / 3).await;
                simulator.notify(index, "PIN_ENTERED", "processing, please wait");
                tokio::time::sleep(duration - 2 * (duration / 3)).await;
            };
            tokio::select! {
                () = steps => false,
                () = abort.cancelled() => true,
            }
        }
        None => {
            abort.cancelled().await;
            true
        }
    };
    // The result is on the display before the answer leaves, as on a terminal: the sale it is
    // about is still running for whoever shows it. A delivery that hangs does not hold the
    // sale beyond the client's timeout.
    if let Some(delivered) = simulator.notify(
        index,
        "TENDER_FINAL",
        terminal::result_prompt(plan, aborted),
    ) {
        let _ = tokio::time::timeout(NOTIFY_TIMEOUT, delivered).await;
    }
    simulator.terminal().complete(index, aborted);
}

/// The same envelope with another HMAC: its first base64 character changed, so the first
/// byte of the HMAC differs and nothing else does.
fn break_hmac(sealed: Vec<u8>) -> Vec<u8> {
    let Ok(mut envelope) = serde_json::from_slice::<serde_json::Value>(&sealed) else {
        return sealed;
    };
    let hmac = envelope
        .as_object_mut()
        .and_then(|outer| outer.values_mut().next())
        .and_then(|inner| inner.get_mut("SecurityTrailer"))
        .and_then(|trailer| trailer.get_mut("Hmac"));
    if let Some(serde_json::Value::String(hmac)) = hmac {
        let replacement = if hmac.starts_with('A') { "B" } else { "A" };
        hmac.replace_range(..1, replacement);
    }
    serde_json::to_vec(&envelope).unwrap_or(sealed)
}

/// One TLS connection: HTTP/1.1 requests one after the other, until the client closes it or
/// an answer is dropped (the connection is then closed without one).
async fn serve_connection(
    simulator: Arc<Simulator>,
    acceptor: tokio_rustls::TlsAcceptor,
    stream: TcpStream,
) {
    let peer = stream.peer_addr().ok();
    let tls = match acceptor.accept(stream).await {
        Ok(tls) => tls,
        Err(error) => {
            tracing::info!(?peer, %error, "nexo simulator: TLS handshake failed");
            return;
        }
    };
    let hang_up = CancellationToken::new();
    let service = {
        let hang_up = hang_up.clone();
        hyper::service::service_fn(move |request| {
            let simulator = Arc::clone(&simulator);
            let hang_up = hang_up.clone();
            async move { Ok::<_, Infallible>(handle(simulator, request, hang_up).await) }
        })
    };
    let connection = http1::Builder::new().serve_connection(TokioIo::new(tls), service);
    tokio::select! {
        result = connection => {
            if let Err(error) = result {
                tracing::debug!(?peer, %error, "nexo simulator: connection ended");
            }
        }
        // Dropping the connection closes the socket, with no answer sent.
        () = hang_up.cancelled() => {
            tracing::info!(?peer, "nexo simulator: connection closed without an answer");
        }
    }
}

type HttpResponse = hyper::Response<Full<Bytes>>;

async fn handle(
    simulator: Arc<Simulator>,
    request: hyper::Request<hyper::body::Incoming>,
    hang_up: CancellationToken,
) -> HttpResponse {
    if request.uri().path() != NEXO_PATH {
        return plain(StatusCode::NOT_FOUND, "not found");
    }
    if request.method() != Method::POST {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "POST only");
    }
    let (offline, slow) = {
        let mut terminal = simulator.terminal();
        (
            terminal.faults.take(FaultKind::Offline),
            terminal.faults.take(FaultKind::Slow),
        )
    };
    if offline {
        return hang_up_now(&hang_up).await;
    }
    let body = match Limited::new(request.into_body(), MAX_REQUEST_BYTES)
        .collect()
        .await
    {
        Ok(body) => body.to_bytes(),
        Err(error) => {
            tracing::warn!(%error, "nexo simulator: request body unreadable");
            return plain(StatusCode::BAD_REQUEST, "unreadable request body");
        }
    };
    let answer = simulator.answer(&body).await;
    if slow {
        tokio::time::sleep(simulator.options.slow_delay).await;
    }
    match answer {
        Answer::Sealed(sealed) => json(StatusCode::OK, sealed),
        Answer::Acknowledged => HttpResponse::new(Full::new(Bytes::new())),
        Answer::CryptoError { code, service_id } => {
            let body = serde_json::json!({
                "errors": [format!("Nexo Service: crypto error ({code})")],
                "ServiceID": service_id.as_deref().unwrap_or("-NULL-"),
            });
            json(StatusCode::UNAUTHORIZED, body.to_string().into_bytes())
        }
        Answer::HangUp => hang_up_now(&hang_up).await,
    }
}

/// Closes the connection without answering: this request never gets a response.
async fn hang_up_now(hang_up: &CancellationToken) -> HttpResponse {
    hang_up.cancel();
    std::future::pending().await
}

fn json(status: StatusCode, body: Vec<u8>) -> HttpResponse {
    let mut response = HttpResponse::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn plain(status: StatusCode, text: &'static str) -> HttpResponse {
    let mut response = HttpResponse::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response
}
