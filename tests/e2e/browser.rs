//! Real-browser tests: Debian's chromium driven by playwright-core (`tests/browser/pages.mjs`)
//! against the real daemon: the reference Payment App page during a sale, a cancel and a
//! refused feed, and the status page re-delivering a failing callback. Each saves a screenshot
//! (see `screenshot`).
//!
//! Without `node`, `tests/browser/node_modules` or `/usr/bin/chromium` they print `SKIPPED: …`
//! and pass, unless `CI=true`: then they fail.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::harness::*;
use crate::payment_app::{connect, feed_daemon, start_with_app, ws_url};
use crate::stale_feeds::strict_feed_daemon;
use crate::status_page::{admin_base, alarmed_payment, status_daemon, wait_attempts};

const CHROMIUM: &str = "/usr/bin/chromium";

/// One browser at a time: the machine may have two cores.
static BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Whether the browser tests can run here; otherwise says why (and fails under `CI=true`).
fn browser_available() -> bool {
    let node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let missing = if !node {
        Some("node is not installed".to_string())
    } else if !root()
        .join("tests/browser/node_modules/playwright-core")
        .is_dir()
    {
        Some("tests/browser/node_modules is missing (cd tests/browser && npm ci)".to_string())
    } else if !Path::new(CHROMIUM).exists() {
        Some(format!("{CHROMIUM} is missing (apt-get install chromium)"))
    } else {
        None
    };
    match missing {
        None => true,
        Some(why) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("browser tests cannot run in CI: {why}")
        }
        Some(why) => {
            println!("SKIPPED: browser test: {why}");
            false
        }
    }
}

/// Runs `node tests/browser/pages.mjs TEST` with `env`; returns its `RESULT` JSON.
async fn run_browser(test: &str, env: Vec<(&'static str, String)>) -> Value {
    let test = test.to_string();
    let output = tokio::task::spawn_blocking(move || {
        let mut command = Command::new("node");
        command
            .arg(root().join("tests/browser/pages.mjs"))
            .arg(&test)
            .current_dir(root().join("tests/browser"));
        for (k, v) in env {
            command.env(k, v);
        }
        command.output().expect("run node")
    })
    .await
    .expect("join");
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(
        output.status.success(),
        "browser test failed ({:?})\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| panic!("no RESULT line:\n{stdout}\n{stderr}"));
    let result: Value = serde_json::from_str(line).expect("result json");
    assert_eq!(result["errors"], json!([]), "errors in the page: {result}");
    result
}

/// Where a page's screenshot goes: `docs/` (the README's pictures) when
/// `POSBRIDGE_UPDATE_SCREENSHOTS=1`, otherwise `target/screenshots/`, so a test run leaves the
/// committed pictures alone.
fn screenshot(name: &str) -> PathBuf {
    let dir = if std::env::var("POSBRIDGE_UPDATE_SCREENSHOTS").as_deref() == Ok("1") {
        root().join("docs")
    } else {
        root().join("target").join("screenshots")
    };
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    let path = dir.join(name);
    let _ = std::fs::remove_file(&path);
    path
}

fn assert_png(path: &Path) {
    let bytes = std::fs::read(path).expect("screenshot written");
    assert!(
        bytes.starts_with(b"\x89PNG") && bytes.len() > 10_000,
        "{}",
        path.display()
    );
}

/// The reference page's URL for a payment app payload, on the daemon's own listener.
fn page_url(daemon: &Daemon, payload: &Value) -> String {
    page_url_for(&daemon.base, &ws_url(payload))
}

/// The reference page at `base` (`http://host:port`) following the feed at `ws`.
fn page_url_for(base: &str, ws: &str) -> String {
    let encoded: String = ws
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    format!("{base}/payment-app/?wsUrl={encoded}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_payment_app_page_shows_the_prompts_then_the_approval() {
    if !browser_available() {
        return;
    }
    let _one = BROWSER.lock().await;
    // 12 s on the terminal: prompts at 0, 4 and 8 s, the approval at 12 s.
    let daemon = feed_daemon(12_000).await;
    let gateway = daemon.gateway();
    let mut body = create_body(
        "BR-1",
        json!(42.50),
        "Venda Direta Credito",
        "http://127.0.0.1:9/cb",
    );
    body["installments"] = json!(3);
    let payload = start_with_app(&gateway, &body).await;
    let shot = screenshot("payment-app.png");
    let result = run_browser(
        "payment-app",
        vec![
            ("PAGE_URL", page_url(&daemon, &payload)),
            ("SCREENSHOT", shot.display().to_string()),
        ],
    )
    .await;
    assert_eq!(result["stateWhileRunning"], "charging", "{result}");
    let prompts: Vec<&str> = result["prompts"]
        .as_array()
        .expect("prompts")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        prompts.contains(&"enter PIN") || prompts.contains(&"processing, please wait"),
        "the terminal's prompts were shown: {result}"
    );
    assert!(
        result["log"]
            .as_str()
            .expect("log")
            .contains("processing, please wait"),
        "{result}"
    );
    assert_eq!(result["state"], "approved");
    let shown = result["result"].as_str().expect("result");
    assert!(
        shown.contains("Approved") && shown.contains("1111"),
        "{shown}"
    );
    assert!(!shown.contains("444433"));
    // What the sale is, as the cashier reads it.
    assert_eq!(result["amount"], "R$ 42,50", "{result}");
    assert_eq!(result["method"], "Credit · 3 installments", "{result}");
    assert_eq!(result["terminal"], "Terminal lane-1", "{result}");
    // Cancel while it runs; after the result there is nothing to cancel: no button.
    assert_eq!(result["cancelVisibleWhileRunning"], true, "{result}");
    assert_eq!(result["cancelVisibleAfterResult"], false, "{result}");
    // The developer's event list is folded away until "Details" is clicked.
    assert_eq!(result["logVisibleWhileRunning"], false, "{result}");
    assert_eq!(result["logVisibleAfterResult"], false, "{result}");
    assert_eq!(result["logVisibleAfterClick"], true, "{result}");
    assert_png(&shot);
    assert_eq!(gateway.create(&body).await["status"], "approved");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_payment_app_page_cancels_the_sale() {
    if !browser_available() {
        return;
    }
    let _one = BROWSER.lock().await;
    let daemon = feed_daemon(60_000).await;
    let gateway = daemon.gateway();
    let body = create_body(
        "BR-2",
        json!(18.00),
        "Venda Direta Credito",
        "http://127.0.0.1:9/cb",
    );
    let payload = start_with_app(&gateway, &body).await;
    let shot = screenshot("payment-app-cancelled.png");
    let result = run_browser(
        "cancel",
        vec![
            ("PAGE_URL", page_url(&daemon, &payload)),
            ("SCREENSHOT", shot.display().to_string()),
        ],
    )
    .await;
    assert_eq!(result["state"], "cancelled", "{result}");
    assert!(
        result["result"]
            .as_str()
            .expect("result")
            .contains("Not approved"),
        "{result}"
    );
    assert_eq!(result["cancelVisibleAfterResult"], false, "{result}");
    assert_eq!(result["amount"], "R$ 18,00", "{result}");
    assert_png(&shot);
    assert_eq!(gateway.create(&body).await["status"], "denied");
    assert_eq!(daemon.charges_of("BR-2"), 1);
    assert_eq!(
        daemon.journal_entries("BR-2", "aborted"),
        1,
        "{}",
        daemon.journal()
    );
}

/// Finding 16 of issue 8: a page whose feed is refused used to retry forever, each retry a
/// counted 403, until the store's address (one NAT for every lane) got 429 on every submitUrl.
/// With `token_failures = 3` the old page locked the store out within 2 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_payment_app_page_says_why_and_stops_without_locking_the_store_out() {
    if !browser_available() {
        return;
    }
    let _one = BROWSER.lock().await;
    let daemon = strict_feed_daemon().await;
    let gateway = daemon.gateway();
    let body = create_body(
        "BR-STALE-1",
        json!(10.00),
        "Venda Direta Credito",
        "http://127.0.0.1:9/cb",
    );
    let feed = ws_url(&start_with_app(&gateway, &body).await);
    let (feed_base, _) = feed.split_once("?token=").expect("token");
    let wrong_link = format!("{feed_base}?token={}", "0".repeat(64));
    // Served under another name than the feed's (localhost, not 127.0.0.1): the page must be
    // able to ask the feed why even from another origin.
    let page_base = daemon.base.replacen("127.0.0.1", "localhost", 1);
    let shot = screenshot("payment-app-stale.png");
    let result = run_browser(
        "stale",
        vec![
            ("PAGE_URL", page_url_for(&page_base, &wrong_link)),
            ("SCREENSHOT", shot.display().to_string()),
        ],
    )
    .await;
    // The same address still works: another payment's submitUrl. (Every fact is gathered
    // before the first assertion, so a failure shows them all.)
    let next = create_body(
        "BR-STALE-2",
        json!(10.00),
        "Venda Direta Credito",
        "http://127.0.0.1:9/cb",
    );
    let first = gateway.create(&next).await;
    let serial = json!({ "serialNumber": SERIAL }).to_string();
    let (submitted, answer) = submit_serial(&submit_url(&first), &serial).await;
    let refused = daemon.logs().matches("payment app: feed refused").count();
    let seen = format!("{result}; {refused} refused; submitUrl {submitted} {answer}");
    assert_eq!(result["stopped"], true, "{seen}");
    assert!(
        result["error"]
            .as_str()
            .expect("error")
            .contains("no longer available"),
        "{seen}"
    );
    assert_eq!(result["cancelDisabled"], true, "{seen}");
    assert_eq!(result["socketAttempts"], 1, "{seen}");
    assert_eq!(result["fetches"], 1, "asked why once: {seen}");
    assert!(refused <= 2, "{seen}");
    assert_eq!(submitted, 200, "{seen}");
    // And so does the payment's feed with its right token.
    connect(&feed).await;
    assert_png(&shot);
    assert!(
        !daemon.logs().contains("too many failures"),
        "never blocked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_logs_in_and_redelivers_a_failing_callback() {
    if !browser_available() {
        return;
    }
    let _one = BROWSER.lock().await;
    let daemon = status_daemon(200).await;
    let receiver = CallbackReceiver::start(0).await;
    receiver.fail_always();
    assert_eq!(
        pay(&daemon, &receiver, "BR-ST-1", json!(129.90)).await["status"],
        "approved"
    );
    alarmed_payment(&daemon, &receiver, "BR-ST-2").await;
    assert_eq!(
        pay(&daemon, &receiver, "BR-ST-3", json!(15.01)).await["status"],
        "denied"
    );
    wait_attempts(&receiver, 3).await;
    // Healthy again, but the next attempt is a minute away: the button makes it now.
    receiver.succeed_from_now();
    let shot = screenshot("status-page.png");
    let result = run_browser(
        "status",
        vec![
            ("STATUS_URL", format!("{}/status", admin_base(&daemon))),
            ("ADMIN_TOKEN", ADMIN_TOKEN.to_string()),
            ("PAYMENT_ID", "BR-ST-1".to_string()),
            ("SCREENSHOT", shot.display().to_string()),
        ],
    )
    .await;
    assert!(
        result["loginUrl"]
            .as_str()
            .expect("url")
            .ends_with("/status/login"),
        "{result}"
    );
    assert!(
        result["before"].as_str().expect("row").contains("failing"),
        "{result}"
    );
    let cookie = &result["cookies"][0];
    assert_eq!(cookie["name"], "posbridge_admin");
    assert_eq!(cookie["httpOnly"], true);
    assert_eq!(cookie["sameSite"], "Strict");
    assert_ne!(cookie["value"], ADMIN_TOKEN);
    assert!(
        result["alarms"]
            .as_str()
            .expect("alarms")
            .contains("BR-ST-2")
    );
    let payments = result["payments"].as_str().expect("payments");
    assert!(
        payments.contains("129.90") && payments.contains("1111"),
        "{payments}"
    );
    assert!(result["terminals"].as_str().expect("t").contains("lane-1"));
    assert_eq!(result["pageHasSignature"], false);
    assert_eq!(result["pageHasFirstDigits"], false);
    assert!(
        !result["callbacksAfter"]
            .as_str()
            .expect("after")
            .contains("BR-ST-1")
    );
    assert_eq!(receiver.for_payment("BR-ST-1").len(), 1, "delivered once");
    assert!(
        receiver.for_payment("BR-ST-2").is_empty(),
        "only the one asked for"
    );
    assert_png(&shot);
}
