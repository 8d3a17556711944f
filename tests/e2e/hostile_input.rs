//! Hostile input at scale: generated requests for every PPP route, the submitUrl and the
//! configuration flow, against one running daemon per test. Each request is invalid by
//! construction (an amount at or past a boundary, a control character in an id, a missing,
//! duplicated or mistyped field, invalid UTF-8, deep nesting, a body past the limit…), and each
//! must get the 4xx it deserves with a JSON error whose message names what is wrong, echo no
//! secret (the daemon's tokens, the request's own secret fields), change nothing in the
//! database, and leave the daemon serving. bad_input.rs holds the single cases; this module
//! covers the space around them.
//!
//! The seed is fixed, so a run is repeatable. `POSBRIDGE_PROOF_CASES` sets the number of cases
//! per test (default 500: the module stays well under a minute in CI on 2 cores); a failing
//! case is shrunk to a smallest one before it is reported.

use std::fmt;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};
use serde_json::{Value, json};

use crate::harness::*;

const DEFAULT_CASES: u32 = 500;
const SEED: [u8; 32] = *b"posbridge-hostile-input-seed-v1!";
/// `[server] max_body_bytes` of the daemons here (the harness default).
const MAX_BODY: usize = 65_536;
/// The onboarding routes' and the submitUrl's own, smaller limit.
const SMALL_BODY: usize = 16 * 1024;
/// What the database holds about payments and their operations: what hostile input must not
/// change (the outbox and the feed move on by themselves).
const WATCHED_TABLES: [&str; 4] = ["payments", "operations", "answers", "merchants"];

fn cases() -> u32 {
    std::env::var("POSBRIDGE_PROOF_CASES")
        .ok()
        .map(|n| n.parse().expect("POSBRIDGE_PROOF_CASES is a number"))
        .unwrap_or(DEFAULT_CASES)
}

/// Where a probe goes.
#[derive(Debug, Clone)]
enum Target {
    /// A `/payments…` route, with the Gateway's credentials.
    Ppp(String),
    /// The submitUrl, as the terminal-connector-app calls it.
    Submit(String),
    /// `POST /authorization/token`.
    Token,
    /// `GET /authorization/credentials` with this query.
    Credentials(String),
    /// `POST /authorization/redirect`: the code form, answered with a page for a person.
    CodeForm,
}

/// One hostile request and what it must get.
#[derive(Clone)]
struct Probe {
    what: String,
    target: Target,
    body: Vec<u8>,
    status: u16,
    /// The error message names one of these.
    mentions: Vec<String>,
    /// Secrets the request carries: never in the answer.
    needles: Vec<String>,
}

impl fmt::Debug for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: String = String::from_utf8_lossy(&self.body)
            .chars()
            .take(300)
            .collect();
        write!(
            f,
            "{} → {:?}, {} bytes: {shown}",
            self.what,
            self.target,
            self.body.len()
        )
    }
}

/// A route's valid body and what its fields are.
struct Shape {
    /// Checked identifiers (1–128 characters, no control characters).
    ids: &'static [&'static str],
    /// Fields without which the request is refused.
    required: &'static [&'static str],
    /// Fields that must be strings (a null among them is a type error too).
    strings: &'static [&'static str],
    amount: Option<&'static str>,
    /// A field the route reads nothing from.
    ignored: &'static str,
    /// Whether the body is parsed into a fixed shape (so duplicates, missing fields and other
    /// JSON types at the top are refused) rather than read as any JSON value.
    strict: bool,
}

const CREATE: Shape = Shape {
    ids: &["paymentId", "transactionId"],
    required: &[
        "paymentId",
        "paymentMethod",
        "value",
        "currency",
        "callbackUrl",
        "transactionId",
    ],
    strings: &[
        "paymentId",
        "paymentMethod",
        "currency",
        "callbackUrl",
        "transactionId",
    ],
    amount: Some("value"),
    ignored: "merchantName",
    strict: true,
};
const CANCEL: Shape = Shape {
    ids: &["requestId"],
    required: &["requestId"],
    strings: &["requestId"],
    amount: None,
    ignored: "authorizationId",
    strict: true,
};
const SETTLE_OR_REFUND: Shape = Shape {
    ids: &["requestId"],
    required: &["requestId", "value"],
    strings: &["requestId"],
    amount: Some("value"),
    ignored: "transactionId",
    strict: true,
};
const INBOUND: Shape = Shape {
    ids: &["requestId"],
    required: &["requestId"],
    strings: &["requestId"],
    amount: None,
    ignored: "tid",
    strict: false,
};
const TOKEN: Shape = Shape {
    ids: &[],
    required: &["applicationId", "returnUrl"],
    strings: &["applicationId", "returnUrl"],
    amount: None,
    ignored: "locale",
    strict: true,
};

/// What is wrong with a request.
#[derive(Debug, Clone)]
enum Hostile {
    /// The amount field's JSON text.
    Amount(String),
    Id(&'static str, String),
    Missing(&'static str),
    WrongType(&'static str, Value),
    Duplicate(&'static str),
    /// Bytes that are no UTF-8 inside a string field.
    InvalidUtf8(&'static str, Vec<u8>),
    /// A control byte inside a JSON string, unescaped.
    RawControl(&'static str, u8),
    /// The field's value nested in arrays or objects this deep.
    Nested(&'static str, usize, bool),
    /// Padding that takes the body past its limit by this much.
    Huge(usize),
    /// The whole body.
    NotAnObject(&'static str),
    /// The body names another payment than the path.
    OtherPayment,
}

/// Characters an identifier may not hold (see `ids::is_unsafe_in_logs`).
fn unsafe_chars() -> Vec<char> {
    (0u32..0x20)
        .chain(0x7f..=0x9f)
        .chain([0x2028, 0x2029, 0x061C, 0x200E, 0x200F])
        .chain(0x202A..=0x202E)
        .chain(0x2066..=0x2069)
        .filter_map(char::from_u32)
        .collect()
}

/// Identifiers that must be refused: a control character, too long, empty.
fn bad_id() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => ("[A-Za-z0-9-]{0,20}", prop::sample::select(unsafe_chars()), "[A-Za-z0-9-]{0,20}")
            .prop_map(|(a, c, b)| format!("{a}{c}{b}")),
        1 => (129usize..400, prop::sample::select(vec!["x", "é", "€"]))
            .prop_map(|(n, c)| c.repeat(n)),
        1 => "[ ]{0,4}",
    ]
}

/// JSON texts that are no valid amount: zero, negative, too fine, too large, not a decimal,
/// not a number at all.
fn bad_amount() -> impl Strategy<Value = String> {
    const FIXED: [&str; 41] = [
        "0",
        "-0",
        "0.0",
        "0.00",
        "0e5",
        "-1",
        "-0.01",
        "0.001",
        "0.009",
        "1e-3",
        "1E-3",
        "1e-400",
        "-1e2",
        "1e30",
        "1e400",
        "10000000000000",
        "9999999999999.999",
        "99999999999999999999999999",
        "\"\"",
        "\" \"",
        "\"abc\"",
        "\"0,00\"",
        "\"-5\"",
        "\"1.234,56\"",
        "\"10,999\"",
        "\"NaN\"",
        "\"Infinity\"",
        "\"1e2\"",
        "\"+5\"",
        "\"１０\"",
        "\"10 00\"",
        "\"0x10\"",
        "true",
        "false",
        "null",
        "[]",
        "[10]",
        "{}",
        "{\"value\":10}",
        "\"10000000000000\"",
        "\"0.001\"",
    ];
    prop_oneof![
        3 => prop::sample::select(FIXED.to_vec()).prop_map(str::to_string),
        // Past the largest amount (9 999 999 999 999.99).
        1 => (10_000_000_000_000u64..=u64::MAX).prop_map(|n| n.to_string()),
        1 => (i64::MIN..0).prop_map(|n| n.to_string()),
        // More decimals than the currency has, as a number or a string, with `.` or `,`.
        2 => (0u32..100_000, "[0-9]{2,12}", 1u8..10, any::<bool>()).prop_map(
            |(int, digits, last, quoted)| if quoted {
                format!("\"{int},{digits}{last}\"")
            } else {
                format!("{int}.{digits}{last}")
            }
        ),
        // Exponent forms: too large, or too fine (a mantissa that is no multiple of 10).
        1 => (1u32..1000, 14u32..400).prop_map(|(m, e)| format!("{m}e{e}")),
        1 => (1u32..1000, 3u32..400)
            .prop_filter("too fine", |(m, _)| m % 10 != 0)
            .prop_map(|(m, e)| format!("{m}E-{e}")),
    ]
}

fn wrong_type() -> impl Strategy<Value = Value> {
    prop::sample::select(vec![
        Value::Null,
        json!(true),
        json!(42),
        json!(-1.5),
        json!([]),
        json!(["x"]),
        json!({}),
        json!({ "a": "b" }),
    ])
}

fn invalid_utf8() -> impl Strategy<Value = Vec<u8>> {
    prop::sample::select(vec![
        vec![0xff],
        vec![0xfe],
        vec![0x80],
        vec![0xc3, 0x28],
        vec![0xc0, 0xaf],
        vec![0xe2, 0x28, 0xa1],
        vec![0xed, 0xa0, 0x80],
        vec![0xf0, 0x28, 0x8c, 0x28],
        vec![0xf8, 0x88, 0x80, 0x80, 0x80],
    ])
}

/// Everything that can be wrong with a body of this shape.
fn hostile(shape: &'static Shape, operation: bool) -> BoxedStrategy<Hostile> {
    let pick = |fields: &'static [&'static str]| prop::sample::select(fields.to_vec());
    // Bytes that are no UTF-8 are refused anywhere, also in a field the route never reads.
    let mut strings_and_ignored = shape.strings.to_vec();
    strings_and_ignored.push(shape.ignored);
    let mut choices: Vec<(u32, BoxedStrategy<Hostile>)> = vec![
        (
            2,
            (pick(shape.strings), wrong_type())
                .prop_map(|(f, v)| Hostile::WrongType(f, v))
                .boxed(),
        ),
        (
            2,
            (prop::sample::select(strings_and_ignored), invalid_utf8())
                .prop_map(|(f, b)| Hostile::InvalidUtf8(f, b))
                .boxed(),
        ),
        (
            1,
            (pick(shape.strings), 0u8..0x20)
                .prop_map(|(f, b)| Hostile::RawControl(f, b))
                .boxed(),
        ),
        (
            1,
            (pick(shape.strings), 1usize..2000, any::<bool>())
                .prop_map(|(f, depth, arrays)| Hostile::Nested(f, depth, arrays))
                .boxed(),
        ),
        (1, (1usize..(2 * MAX_BODY)).prop_map(Hostile::Huge).boxed()),
        (
            1,
            prop::sample::select(if shape.strict {
                vec![
                    "",
                    "null",
                    "[]",
                    "[{}]",
                    "1",
                    "\"x\"",
                    "true",
                    "{",
                    "{}}",
                    "{\"a\":1,}",
                    "{'a':1}",
                ]
            } else {
                vec!["", "{", "{}}", "{\"a\":1,}", "{'a':1}", "[", "nul"]
            })
            .prop_map(Hostile::NotAnObject)
            .boxed(),
        ),
    ];
    if !shape.ids.is_empty() {
        choices.push((
            3,
            (pick(shape.ids), bad_id())
                .prop_map(|(f, id)| Hostile::Id(f, id))
                .boxed(),
        ));
    }
    choices.push((1, pick(shape.required).prop_map(Hostile::Missing).boxed()));
    if shape.strict {
        choices.push((1, pick(shape.required).prop_map(Hostile::Duplicate).boxed()));
    }
    if shape.amount.is_some() {
        choices.push((4, bad_amount().prop_map(Hostile::Amount).boxed()));
    }
    if operation {
        choices.push((1, Just(Hostile::OtherPayment).boxed()));
    }
    proptest::strategy::Union::new_weighted(choices).boxed()
}

/// The JSON text of `body` with `field`'s value replaced by `raw` bytes.
fn with_raw(body: &Value, field: &str, raw: &[u8]) -> Vec<u8> {
    const MARK: &str = "\"@HOSTILE@\"";
    let mut body = body.clone();
    body[field] = json!("@HOSTILE@");
    let text = body.to_string();
    let (before, after) = text.split_once(MARK).expect("the mark");
    [before.as_bytes(), raw, after.as_bytes()].concat()
}

/// The request `hostile` makes of a valid `body`: its bytes, status and what the message
/// names.
fn render(
    shape: &Shape,
    body: &Value,
    hostile: &Hostile,
    limit: usize,
) -> (Vec<u8>, u16, Vec<String>) {
    let named = |field: &str| vec![format!("`{field}`")];
    let malformed = || vec!["malformed JSON".to_string()];
    match hostile {
        Hostile::Amount(raw) => {
            let field = shape.amount.expect("an amount");
            (
                with_raw(body, field, raw.as_bytes()),
                400,
                vec!["value".into()],
            )
        }
        Hostile::Id(field, id) => {
            let mut body = body.clone();
            body[*field] = json!(id);
            (body.to_string().into_bytes(), 400, named(field))
        }
        Hostile::Missing(field) => {
            let mut body = body.clone();
            body.as_object_mut().expect("object").remove(*field);
            (body.to_string().into_bytes(), 400, named(field))
        }
        Hostile::WrongType(field, value) => {
            let mut body = body.clone();
            body[*field] = value.clone();
            (body.to_string().into_bytes(), 400, named(field))
        }
        Hostile::Duplicate(field) => {
            let first = format!("{{{}:{},", json!(field), body[*field]);
            let text = body.to_string().replacen('{', &first, 1);
            (text.into_bytes(), 400, named(field))
        }
        Hostile::InvalidUtf8(field, bytes) => {
            let raw = [b"\"ok", bytes.as_slice(), b"ok\""].concat();
            (with_raw(body, field, &raw), 400, malformed())
        }
        Hostile::RawControl(field, byte) => {
            let raw = [b"\"ok", &[*byte][..], b"ok\""].concat();
            (with_raw(body, field, &raw), 400, malformed())
        }
        Hostile::Nested(field, depth, arrays) => {
            let (open, close) = if *arrays {
                ("[", "]")
            } else {
                ("{\"a\":", "}")
            };
            let raw = format!("{}1{}", open.repeat(*depth), close.repeat(*depth));
            let mut mentions = named(field);
            mentions.extend(malformed());
            (with_raw(body, field, raw.as_bytes()), 400, mentions)
        }
        Hostile::Huge(extra) => {
            let mut body = body.clone();
            body["padding"] = json!("x".repeat(limit + extra));
            (
                body.to_string().into_bytes(),
                413,
                vec!["larger than".into()],
            )
        }
        Hostile::NotAnObject(text) => (
            text.as_bytes().to_vec(),
            400,
            vec![
                "malformed JSON".into(),
                "expected".into(),
                "missing field".into(),
            ],
        ),
        Hostile::OtherPayment => {
            let mut body = body.clone();
            body["paymentId"] = json!("another-payment");
            (body.to_string().into_bytes(), 400, named("paymentId"))
        }
    }
}

/// A path segment, percent-encoded.
fn encode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'-' {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Secrets a request carries, unique to it.
fn needles() -> impl Strategy<Value = [String; 3]> {
    any::<u64>().prop_map(|n| {
        [
            format!("PASSWORDNEEDLE{n:016x}"),
            format!("SIGNATURENEEDLE{n:016x}"),
            format!("CSCNEEDLE{n:016x}"),
        ]
    })
}

/// The rows hostile input must leave as they are.
#[derive(Debug, PartialEq)]
struct Snapshot(Vec<String>);

impl Snapshot {
    fn of(db: &Path) -> Snapshot {
        let connection = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open the database");
        connection
            .busy_timeout(Duration::from_secs(10))
            .expect("busy timeout");
        let mut rows = Vec::new();
        for table in WATCHED_TABLES {
            let mut statement = connection
                .prepare(&format!("SELECT * FROM {table} ORDER BY rowid"))
                .expect("select");
            let columns = statement.column_count();
            let mut query = statement.query([]).expect("query");
            while let Some(row) = query.next().expect("row") {
                let values: Vec<String> = (0..columns)
                    .map(|i| match row.get_ref(i).expect("column") {
                        ValueRef::Text(text) => String::from_utf8_lossy(text).into_owned(),
                        other => format!("{other:?}"),
                    })
                    .collect();
                rows.push(format!("{table}: {}", values.join(" | ")));
            }
        }
        Snapshot(rows)
    }

    /// Rows in one and not the other.
    fn difference(&self, other: &Snapshot) -> String {
        let gone = self.0.iter().filter(|r| !other.0.contains(r));
        let new = other.0.iter().filter(|r| !self.0.contains(r));
        gone.map(|r| format!("- {r}"))
            .chain(new.map(|r| format!("+ {r}")))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A payment made before the hostile input: its Create body and answer.
struct Reference {
    body: Value,
    answer: Value,
}

/// One daemon with a payment waiting for its terminal and one approved, and the database as
/// they left it.
struct World {
    daemon: Daemon,
    gateway: Gateway,
    open: Reference,
    paid: Reference,
    submit_url: String,
    /// The database as the references left it (moved on after a failure, so that shrinking
    /// looks for the smallest request that changes it again).
    baseline: Mutex<Snapshot>,
    /// The first failure, as it happened: once the database changed, every later case fails.
    first_failure: Mutex<Option<String>>,
    /// Every secret the requests carried, for the log scan at the end.
    needles: Mutex<Vec<String>>,
}

impl World {
    async fn start() -> World {
        let daemon = Daemon::start(Options {
            // Failure limits off: a refused probe must get its own answer, not a 429.
            extra_config: "[rate_limits]\ncredential_failures = 0\ntoken_failures = 0\nonboarding_failures = 0\n".into(),
            ..Options::default()
        })
        .await;
        let gateway = daemon.gateway();
        let receiver = CallbackReceiver::start(0).await;
        let open_body = create_body(
            "pay-hostile-open",
            json!(10),
            "Venda Direta Credito",
            &receiver.url_for("pay-hostile-open"),
        );
        let open_answer = gateway.create(&open_body).await;
        let submit_url = submit_url(&open_answer);
        let paid_answer = pay(&daemon, &receiver, "pay-hostile-paid", json!(10)).await;
        assert_eq!(paid_answer["status"], "approved", "{paid_answer}");
        assert!(
            !receiver
                .wait_for("pay-hostile-paid", Duration::from_secs(20))
                .await
                .is_empty(),
            "the approval is called back"
        );
        let paid_body = create_body(
            "pay-hostile-paid",
            json!(10),
            "Venda Direta Credito",
            &receiver.url_for("pay-hostile-paid"),
        );
        let baseline = Snapshot::of(&daemon.db_path());
        World {
            gateway,
            open: Reference {
                body: open_body,
                answer: open_answer,
            },
            paid: Reference {
                body: paid_body,
                answer: paid_answer,
            },
            submit_url,
            baseline: Mutex::new(baseline),
            first_failure: Mutex::new(None),
            needles: Mutex::new(Vec::new()),
            daemon,
        }
    }

    async fn send(&self, probe: &Probe) -> (u16, String) {
        let json = [("Content-Type", "application/json")];
        match &probe.target {
            Target::Ppp(path) => {
                let (status, body) = self.gateway.post_raw(path, probe.body.clone(), &json).await;
                let text = match body {
                    Value::String(text) => text,
                    other => other.to_string(),
                };
                (status, text)
            }
            Target::Submit(url) => self.post(url, probe, "text/plain").await,
            Target::Token => {
                let url = format!("{}/authorization/token", self.daemon.base);
                self.post(&url, probe, "application/json").await
            }
            Target::CodeForm => {
                let url = format!("{}/authorization/redirect", self.daemon.base);
                self.post(&url, probe, "application/x-www-form-urlencoded")
                    .await
            }
            Target::Credentials(query) => {
                let url = format!("{}/authorization/credentials?{query}", self.daemon.base);
                let response = self.gateway.client.get(url).send().await.expect("request");
                let status = response.status().as_u16();
                (status, response.text().await.expect("body"))
            }
        }
    }

    async fn post(&self, url: &str, probe: &Probe, content_type: &str) -> (u16, String) {
        let response = self
            .gateway
            .client
            .post(url)
            .header("Content-Type", content_type)
            .body(probe.body.clone())
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        (status, response.text().await.expect("body"))
    }

    /// Checks one probe; the first failure is kept.
    async fn check(&self, probe: &Probe) -> Result<(), String> {
        let result = self.check_answer(probe).await;
        if let Err(failure) = &result {
            let mut first = self.first_failure.lock().expect("first failure");
            first.get_or_insert_with(|| failure.clone());
        }
        result
    }

    /// Sends the probe and checks everything its answer and the daemon must show.
    async fn check_answer(&self, probe: &Probe) -> Result<(), String> {
        self.needles
            .lock()
            .expect("needles")
            .extend(probe.needles.iter().cloned());
        let (status, text) = self.send(probe).await;
        let shown = format!("{probe:?}\nanswered {status}: {text}");
        if status != probe.status {
            return Err(format!("expected {}: {shown}", probe.status));
        }
        if matches!(probe.target, Target::CodeForm) {
            // A page for a person, not a JSON error: it must say what is wrong.
            if !probe.mentions.iter().any(|m| text.contains(m.as_str())) {
                return Err(format!(
                    "a page naming none of {:?}: {shown}",
                    probe.mentions
                ));
            }
        } else {
            self.check_error_body(probe, &text, &shown)?;
        }
        self.check_unchanged_and_serving(probe, &text, &shown).await
    }

    /// A JSON error with a code and a message that names what is wrong.
    fn check_error_body(&self, probe: &Probe, text: &str, shown: &str) -> Result<(), String> {
        let answer: Value =
            serde_json::from_str(text).map_err(|_| format!("not a JSON answer: {shown}"))?;
        let message = answer["message"].as_str().unwrap_or_default();
        if answer["code"].as_str().is_none_or(str::is_empty)
            || !probe.mentions.iter().any(|m| message.contains(m.as_str()))
        {
            return Err(format!(
                "no code, or a message naming none of {:?}: {shown}",
                probe.mentions
            ));
        }
        Ok(())
    }

    /// The watched rows as they were.
    fn check_database(&self, shown: &str) -> Result<(), String> {
        let now = Snapshot::of(&self.daemon.db_path());
        let mut baseline = self.baseline.lock().expect("baseline");
        if now != *baseline {
            let difference = baseline.difference(&now);
            *baseline = now;
            return Err(format!("the database changed:\n{difference}\n{shown}"));
        }
        Ok(())
    }

    /// No secret in the answer, the database as it was, the daemon serving.
    async fn check_unchanged_and_serving(
        &self,
        probe: &Probe,
        text: &str,
        shown: &str,
    ) -> Result<(), String> {
        for secret in [APP_TOKEN, CALLBACK_TOKEN, ONBOARDING_CODE]
            .into_iter()
            .chain(probe.needles.iter().map(String::as_str))
        {
            if text.contains(secret) {
                return Err(format!("the answer repeats the secret {secret}: {shown}"));
            }
        }
        self.check_database(shown)?;
        let health = self
            .gateway
            .client
            .get(format!("{}/healthz", self.daemon.base))
            .send()
            .await
            .map_err(|e| format!("the daemon stopped serving ({e}): {shown}"))?;
        if health.status() != 200 {
            return Err(format!("/healthz answered {}: {shown}", health.status()));
        }
        Ok(())
    }

    /// Runs `cases()` probes from `strategy`, each checked; a failure is shrunk and panics.
    fn run(&self, strategy: impl Strategy<Value = Probe>) {
        let config = Config {
            cases: cases(),
            failure_persistence: None,
            max_shrink_iters: 200,
            ..Config::default()
        };
        let mut runner =
            TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &SEED));
        let runtime = tokio::runtime::Handle::current();
        let result = runner.run(&strategy, |probe| {
            tokio::task::block_in_place(|| runtime.block_on(self.check(&probe)))
                .map_err(TestCaseError::fail)
        });
        if let Err(failure) = result {
            let first = self.first_failure.lock().expect("first failure").take();
            panic!(
                "first failure: {}\n\nshrunk to: {failure}",
                first.unwrap_or_default()
            );
        }
    }

    /// The references still answer as before, and no secret reached the log.
    async fn finish(self) {
        assert_eq!(self.gateway.create(&self.open.body).await, self.open.answer);
        assert_eq!(self.gateway.create(&self.paid.body).await, self.paid.answer);
        let logs = self.daemon.logs();
        for needle in self.needles.lock().expect("needles").iter() {
            assert!(!logs.contains(needle.as_str()), "{needle} in the logs");
        }
        assert!(!logs.contains(APP_TOKEN), "the app token in the logs");
    }
}

/// Where a probe goes: the route's name, the target, and whether the path names a payment
/// id that must be refused (then that is the answer, unless the body is too large to be read).
type Route = (String, Target, bool);

/// A probe of `shape` at `target` built from a valid body.
fn probe(
    shape: &'static Shape,
    operation: bool,
    limit: usize,
    target: impl Strategy<Value = Route>,
    valid: impl Fn(&[String; 3]) -> Value,
) -> impl Strategy<Value = Probe> {
    (target, hostile(shape, operation), needles()).prop_map(
        move |((route, target, refused_path), hostile, needles)| {
            let (body, mut status, mut mentions) = render(shape, &valid(&needles), &hostile, limit);
            if refused_path && status != 413 {
                status = 400;
                mentions = vec!["`paymentId`".into()];
            }
            Probe {
                what: format!("{route}: {hostile:?}"),
                target,
                body,
                status,
                mentions,
                needles: needles.to_vec(),
            }
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_refuses_hostile_bodies_and_changes_nothing() {
    let world = World::start().await;
    let create = probe(
        &CREATE,
        false,
        MAX_BODY,
        Just(("create".to_string(), Target::Ppp("/payments".into()), false)),
        |[password, signature, csc]| {
            let id = format!("pay-h-{}", &password[password.len() - 16..]);
            let mut body = create_body(
                &id,
                json!(10),
                "Venda Direta Credito",
                &format!("http://127.0.0.1:9/cb?X-VTEX-signature={signature}"),
            );
            body["card"]["csc"] = json!(csc);
            body["password"] = json!(password);
            body
        },
    );
    world.run(create);
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_settle_refund_and_inbound_refuse_hostile_bodies_and_change_nothing() {
    let world = World::start().await;
    let references = vec!["pay-hostile-open", "pay-hostile-paid"];
    let path_with = |route: &'static str| {
        move |(id, refused): (String, bool)| {
            let path = format!("/payments/{}/{route}", encode(&id));
            (route.to_string(), Target::Ppp(path), refused)
        }
    };
    // The path's paymentId: a reference, or one that must be refused.
    let payment: BoxedStrategy<(String, bool)> = prop_oneof![
        4 => prop::sample::select(references).prop_map(|id| (id.to_string(), false)),
        1 => bad_id()
            .prop_filter("a path segment", |id| !id.is_empty())
            .prop_map(|id| (id, true)),
    ]
    .boxed();
    let secrets = |body: Value| {
        move |[password, _, csc]: &[String; 3]| {
            let mut body = body.clone();
            body["password"] = json!(password);
            body["appToken"] = json!(csc);
            body
        }
    };
    let cancel = probe(
        &CANCEL,
        true,
        MAX_BODY,
        payment.clone().prop_map(path_with("cancellations")),
        secrets(json!({ "requestId": "r-hostile", "authorizationId": "a" })),
    );
    let settle = probe(
        &SETTLE_OR_REFUND,
        true,
        MAX_BODY,
        payment.clone().prop_map(path_with("settlements")),
        secrets(json!({ "requestId": "s-hostile", "value": 5, "transactionId": "T" })),
    );
    let refund = probe(
        &SETTLE_OR_REFUND,
        true,
        MAX_BODY,
        payment.clone().prop_map(path_with("refunds")),
        secrets(json!({ "requestId": "r-hostile", "value": 5, "transactionId": "T" })),
    );
    let inbound_path = (
        payment,
        prop::sample::select(vec!["inbound", "inbound-request"]),
        prop::sample::select(vec!["status", "frobnicate"]),
    )
        .prop_map(|((id, refused), kind, action)| {
            let route = format!("{kind}/{action}");
            let path = format!("/payments/{}/{route}", encode(&id));
            (route, Target::Ppp(path), refused)
        });
    let inbound = probe(
        &INBOUND,
        false,
        MAX_BODY,
        inbound_path,
        secrets(json!({ "requestId": "i-hostile", "tid": "t", "requestData": { "body": "{}" } })),
    );
    world.run(prop_oneof![cancel, settle, refund, inbound]);
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_url_and_configuration_flow_refuse_hostile_bodies() {
    let world = World::start().await;
    const SERIAL_BODY: Shape = Shape {
        ids: &[],
        required: &["serialNumber"],
        strings: &["serialNumber"],
        amount: None,
        ignored: "terminal",
        strict: true,
    };
    let submit = probe(
        &SERIAL_BODY,
        false,
        SMALL_BODY,
        Just((
            "submitUrl".to_string(),
            Target::Submit(world.submit_url.clone()),
            false,
        )),
        |[password, _, _]| json!({ "serialNumber": SERIAL, "password": password }),
    )
    // The submitUrl answers every unreadable body with what it expects.
    .prop_map(|mut probe| {
        if probe.status == 400 {
            probe.mentions = vec!["serialNumber".into()];
        }
        probe
    });
    let token = probe(
        &TOKEN,
        false,
        SMALL_BODY,
        Just(("authorization/token".to_string(), Target::Token, false)),
        |[password, _, _]| {
            json!({
                "applicationId": "vtex",
                "returnUrl": "https://store.myvtex.com/admin/x?authorizationCode=",
                "password": password,
            })
        },
    );
    // The code form and the credentials, with any text where the token and the codes go.
    let text = || {
        prop_oneof![
            bad_id(),
            any::<String>(),
            "[A-Za-z0-9%&=+]{0,300}",
            (1usize..4000).prop_map(|n| "c".repeat(n)),
        ]
    };
    let code_form = (text(), text(), needles()).prop_map(|(token, code, needles)| Probe {
        what: format!("code form: token {token:?}, code {code:?}"),
        target: Target::CodeForm,
        body: format!(
            "token={}&code={}&password={}",
            encode(&token),
            encode(&code),
            needles[0]
        )
        .into_bytes(),
        status: 403,
        mentions: vec!["invalid or has expired".into()],
        needles: needles.to_vec(),
    });
    let credentials = (text(), needles()).prop_map(|(code, needles)| Probe {
        what: format!("credentials: authorizationCode {code:?}"),
        target: Target::Credentials(format!(
            "authorizationCode={}&applicationId=vtex&appToken={}",
            encode(&code),
            needles[0]
        )),
        body: Vec::new(),
        status: 401,
        mentions: vec!["authorizationCode".into()],
        needles: needles.to_vec(),
    });
    world.run(prop_oneof![submit, token, code_form, credentials]);
    world.finish().await;
}

/// What the probes found, kept as plain cases: bytes that are no UTF-8 in a field never read
/// were accepted (a payment stored, the terminal bound), the submitUrl answered a body past its
/// limit in plain text, and an inbound request without a requestId got an answer the spec
/// does not allow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_probes_found_stays_fixed() {
    let world = World::start().await;
    let not_utf8 = |body: &Value| with_raw(body, "merchantName", b"\"st\xffore\"");
    let new_payment = create_body(
        "pay-not-utf8",
        json!(10),
        "Venda Direta Credito",
        "http://127.0.0.1:9/cb",
    );
    let serial = json!({ "serialNumber": SERIAL, "merchantName": "x" });
    let cancel = json!({ "requestId": "c-1", "merchantName": "x" });
    let found = [
        (
            Target::Ppp("/payments".into()),
            not_utf8(&new_payment),
            400,
            "not UTF-8",
        ),
        (
            Target::Ppp("/payments/pay-hostile-open/cancellations".into()),
            not_utf8(&cancel),
            400,
            "not UTF-8",
        ),
        (
            Target::Submit(world.submit_url.clone()),
            not_utf8(&serial),
            400,
            "serialNumber",
        ),
        (
            Target::Submit(world.submit_url.clone()),
            vec![b' '; SMALL_BODY + 1],
            413,
            "larger than",
        ),
        (
            Target::Ppp("/payments/pay-hostile-open/inbound/status".into()),
            b"{}".to_vec(),
            400,
            "`requestId`",
        ),
    ];
    for (target, body, status, mention) in found {
        let probe = Probe {
            what: "a found case".into(),
            target,
            body,
            status,
            mentions: vec![mention.into()],
            needles: Vec::new(),
        };
        if let Err(failure) = world.check(&probe).await {
            panic!("{failure}");
        }
    }
    world.finish().await;
}
