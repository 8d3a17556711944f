//! Real-browser tests: Debian's chromium driven by playwright-core (`tests/browser/pages.mjs`)
//! against the real daemon: the reference Payment App page during a sale, a cancel and a
//! refused feed; the status page re-delivering a failing callback, on a phone, and
//! acknowledging and resolving from it. Each saves a screenshot (see `screenshot`).
//!
//! Without `node`, `tests/browser/node_modules` or `/usr/bin/chromium`, build.rs marks them
//! `ignored` (with a cargo warning saying what is missing), so a local run's summary shows the
//! skip; under `CI=true` they run and fail on the missing tool.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::*;
use crate::payment_app::{connect, feed_daemon, start_with_app, ws_url};
use crate::stale_feeds::strict_feed_daemon;
use crate::status_page::{
    admin_base, alarmed_payment, closed_port, probe, status_api, status_daemon, wait_attempts,
    zvt_terminal_config,
};
use crate::zvt::ZvtTerminal;

const CHROMIUM: &str = "/usr/bin/chromium";

/// One browser at a time: the machine may have two cores.
static BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Fails, saying what is missing, when the browser tests cannot run: where the tools are
/// missing outside CI, build.rs marked these tests ignored (the summary shows it), so this
/// only fires under `CI=true`, with `--include-ignored`, or when a tool went away since the
/// build.
fn require_browser() {
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
    if let Some(why) = missing {
        panic!("the browser tests cannot run here: {why}");
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
    if std::env::var("POSBRIDGE_UPDATE_SCREENSHOTS").as_deref() == Ok("1") {
        fresh_path(&root().join("docs"), name)
    } else {
        scratch_screenshot(name)
    }
}

/// Where a screenshot that is never in the docs goes: `target/screenshots/`.
fn scratch_screenshot(name: &str) -> PathBuf {
    fresh_path(&root().join("target").join("screenshots"), name)
}

fn fresh_path(dir: &Path, name: &str) -> PathBuf {
    std::fs::create_dir_all(dir).expect("screenshot dir");
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
#[cfg_attr(
    posbridge_browser_missing,
    ignore = "needs node, /usr/bin/chromium and tests/browser/node_modules (see build.rs)"
)]
async fn the_payment_app_page_shows_the_prompts_then_the_approval() {
    require_browser();
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
#[cfg_attr(
    posbridge_browser_missing,
    ignore = "needs node, /usr/bin/chromium and tests/browser/node_modules (see build.rs)"
)]
async fn the_payment_app_page_cancels_the_sale() {
    require_browser();
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
#[cfg_attr(
    posbridge_browser_missing,
    ignore = "needs node, /usr/bin/chromium and tests/browser/node_modules (see build.rs)"
)]
async fn a_stale_payment_app_page_says_why_and_stops_without_locking_the_store_out() {
    require_browser();
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
#[cfg_attr(
    posbridge_browser_missing,
    ignore = "needs node, /usr/bin/chromium and tests/browser/node_modules (see build.rs)"
)]
async fn the_status_page_logs_in_and_redelivers_a_failing_callback() {
    require_browser();
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
    // The documented picture is the phone test's (same page, more to see).
    let shot = scratch_screenshot("status-page-redeliver.png");
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
        payments.contains("R$ 129,90") && payments.contains("1111"),
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

/// The POS flow up to the charge on the terminal with `serial`: Create, the serial, Create.
async fn charge_on(gateway: &Gateway, body: &Value, serial: &str) {
    let first = gateway.create(body).await;
    let serial = json!({ "serialNumber": serial }).to_string();
    assert_eq!(submit_serial(&submit_url(&first), &serial).await.0, 200);
    assert_eq!(gateway.create(body).await["status"], "undefined");
}

/// `HH:MM` of `unix_ms` in a zone `offset_ms` east of UTC with no daylight saving time.
fn local_time(unix_ms: i64, offset_ms: i64) -> String {
    let minutes = (unix_ms + offset_ms).rem_euclid(86_400_000) / 60_000;
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

/// The status page at 420 px: no horizontal scroll, every button reachable; each terminal as
/// it is (online; not yet contacted; offline with its error; online again with the error
/// gone); times in the store's zone, amounts as the currency writes them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    posbridge_browser_missing,
    ignore = "needs node, /usr/bin/chromium and tests/browser/node_modules (see build.rs)"
)]
async fn the_status_page_fits_a_phone_and_says_how_each_terminal_is() {
    require_browser();
    let _one = BROWSER.lock().await;
    // +05:45 all year, never the browser's (UTC here).
    const KATHMANDU_MS: i64 = (5 * 60 + 45) * 60 * 1000;
    let (comes_back, stays_down) = (closed_port().await, closed_port().await);
    let daemon = Daemon::start(Options {
        admin: true,
        two_terminals: true,
        first_retry_s: 60,
        approve_after_ms: 200,
        extra_config: format!(
            "[store]\ntimezone = \"Asia/Kathmandu\"\n{}{}",
            zvt_terminal_config("lane-3", "ZVT-0003", comes_back),
            zvt_terminal_config("lane-4", "ZVT-0004", stays_down)
        ),
        ..Options::default()
    })
    .await;
    let receiver = CallbackReceiver::start(0).await;
    receiver.fail_always();
    assert_eq!(
        pay(&daemon, &receiver, "BR-PH-1", json!(129.90)).await["status"],
        "approved"
    );
    alarmed_payment(&daemon, &receiver, "BR-PH-LONG-PAYMENT-ID-2").await;
    assert_eq!(
        pay(&daemon, &receiver, "BR-PH-3", json!(15.01)).await["status"],
        "denied"
    );
    assert_eq!(probe(&daemon, "lane-3").await, 502);
    assert_eq!(probe(&daemon, "lane-4").await, 502);
    let _back = ZvtTerminal::tcp_at(comes_back, &[]).await;
    assert_eq!(probe(&daemon, "lane-3").await, 200, "{}", daemon.logs());
    wait_attempts(&receiver, 3).await;
    let created = status_api(&daemon).await["payments"]
        .as_array()
        .expect("payments")
        .iter()
        .find(|p| p["paymentId"] == "BR-PH-1")
        .and_then(|p| p["createdAt"].as_i64())
        .expect("BR-PH-1 listed");

    let phone = screenshot("status-page-phone.png");
    let desktop = screenshot("status-page.png");
    let result = run_browser(
        "status-phone",
        vec![
            ("STATUS_URL", format!("{}/status", admin_base(&daemon))),
            ("ADMIN_TOKEN", ADMIN_TOKEN.to_string()),
            ("SCREENSHOT_PHONE", phone.display().to_string()),
            ("SCREENSHOT", desktop.display().to_string()),
        ],
    )
    .await;
    for page in ["login", "phone"] {
        let fit = &result[page];
        assert_eq!(fit["viewport"], 420, "{result}");
        assert!(
            fit["scrollWidth"].as_i64().expect("width") <= 420
                && fit["bodyScrollWidth"].as_i64().expect("width") <= 420,
            "{page}: nothing off-screen: {fit}"
        );
        assert_eq!(fit["buttonsOutside"], json!([]), "{page}: {fit}");
    }
    assert!(
        result["phone"]["smallestFontPx"].as_f64().expect("px") >= 12.0,
        "{result}"
    );
    assert!(
        result["desktop"]["scrollWidth"].as_i64().expect("width") <= 1100,
        "{result}"
    );
    let terminal = |id: &str| {
        result["terminals"][id]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    assert!(terminal("lane-1").contains("online"), "{result}");
    let never = terminal("lane-2");
    assert!(
        never.contains("not yet contacted") && !never.contains("offline"),
        "{never}"
    );
    let down = terminal("lane-4");
    assert!(
        down.contains("offline") && down.contains("not connected"),
        "{down}"
    );
    let back = terminal("lane-3");
    assert!(
        back.contains("online") && !back.contains("not connected"),
        "the error went with the next success: {back}"
    );
    let row = result["payments"]["BR-PH-1"].as_str().expect("payment row");
    assert!(row.contains("R$ 129,90"), "{row}");
    assert!(
        row.contains(&local_time(created, KATHMANDU_MS)),
        "the store's time, not the browser's: {row}"
    );
    assert_eq!(result["zone"], "Asia/Kathmandu", "{result}");
    assert!(
        result["todaySince"]
            .as_str()
            .expect("since")
            .contains("00:00:00 +05:45"),
        "{result}"
    );
    assert!(
        result["alarms"]
            .as_str()
            .expect("alarms")
            .contains("BR-PH-LONG-PAYMENT-ID-2"),
        "{result}"
    );
    assert_png(&phone);
    assert_png(&desktop);
}

/// Acknowledge an alarm and resolve an unresolved payment from the status page, on a phone:
/// the reason is required, a confirm step names the payment, the amount and the decision; the
/// Gateway is told; the page shows who resolved it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    posbridge_browser_missing,
    ignore = "needs node, /usr/bin/chromium and tests/browser/node_modules (see build.rs)"
)]
async fn the_status_page_acknowledges_an_alarm_and_resolves_a_payment() {
    require_browser();
    let _one = BROWSER.lock().await;
    let old = ZvtTerminal::tcp(&["--approve-after-ms", "3000"]).await;
    let port = old.port();
    let daemon = Daemon::start(Options {
        admin: true,
        first_retry_s: 60,
        extra_config: zvt_terminal_config("lane-2", "ZVT-0002", port),
        ..Options::default()
    })
    .await;
    let receiver = CallbackReceiver::start(0).await;
    alarmed_payment(&daemon, &receiver, "BR-ACK-1").await;

    // A sale on the ZVT lane whose terminal is reset while posbridge is down: after an
    // earlier sale, the reset terminal cannot be the one that took it: unresolved.
    let gateway = daemon.gateway();
    let on_zvt = |id: &str, value: Value| {
        create_body(id, value, "Venda Direta Credito", &receiver.url_for(id))
    };
    let before = on_zvt("BR-RES-0", json!(10.00));
    charge_on(&gateway, &before, "ZVT-0002").await;
    assert_eq!(
        gateway.poll_final(&before, Duration::from_secs(20)).await["status"],
        "approved"
    );
    let lost = on_zvt("BR-RES-1", json!(42.00));
    charge_on(&gateway, &lost, "ZVT-0002").await;
    assert!(
        daemon
            .wait_log("sale sent to the terminal", Duration::from_secs(10))
            .await
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    let mut daemon = daemon;
    daemon.kill();
    drop(old);
    let _reset = ZvtTerminal::tcp_at(port, &["--approve-after-ms", "300"]).await;
    let daemon = daemon.restart().await;
    let gateway = daemon.gateway();
    assert!(
        daemon
            .wait_log(
                "ALARM: the terminal can no longer tell",
                Duration::from_secs(40)
            )
            .await,
        "{}",
        daemon.logs()
    );

    let shot = screenshot("status-page-resolve.png");
    let result = run_browser(
        "status-actions",
        vec![
            ("STATUS_URL", format!("{}/status", admin_base(&daemon))),
            ("ADMIN_TOKEN", ADMIN_TOKEN.to_string()),
            ("ALARM_PAYMENT", "BR-ACK-1".to_string()),
            ("RESOLVE_PAYMENT", "BR-RES-1".to_string()),
            ("SCREENSHOT", shot.display().to_string()),
        ],
    )
    .await;
    assert!(
        result["noDecision"]
            .as_str()
            .expect("problem")
            .contains("approved or denied"),
        "{result}"
    );
    assert!(
        result["noReason"]
            .as_str()
            .expect("problem")
            .contains("reason is required"),
        "{result}"
    );
    assert_eq!(
        result["question"],
        "Resolve payment BR-RES-1 of R$ 42,00 as APPROVED? The Gateway will be told.",
        "{result}"
    );
    assert_eq!(result["dialogFit"]["buttonsOutside"], json!([]), "{result}");
    assert!(
        result["dialogFit"]["scrollWidth"].as_i64().expect("width") <= 420,
        "{result}"
    );
    let resolved = result["resolvedRow"].as_str().expect("row");
    assert!(
        resolved.contains("resolved as approved by admin")
            && resolved.contains("receipt 0042 shows approved"),
        "{resolved}"
    );
    assert!(
        !result["alarmsAfter"]
            .as_str()
            .expect("alarms")
            .contains("BR-ACK-1"),
        "acknowledged: {result}"
    );
    let told = receiver.wait_for("BR-RES-1", Duration::from_secs(10)).await;
    assert_eq!(told.len(), 1, "the Gateway is told once");
    assert_eq!(told[0].2["status"], "approved");
    assert_eq!(gateway.create(&lost).await["status"], "approved");
    let api = status_api(&daemon).await;
    let alarm = api["alarms"]
        .as_array()
        .expect("alarms")
        .iter()
        .find(|a| a["paymentId"] == "BR-ACK-1");
    assert!(alarm.is_none(), "no longer open: {api}");
    assert_png(&shot);
}
