//! Stamps the binary with its git commit and build date for `posbridge --version`, and tells
//! the end-to-end tests which of them this machine cannot or must not run, so that a local run
//! shows them as `ignored` in its summary instead of a silent `ok` (libtest has no skip at run
//! time; a `cfg` read by `#[cfg_attr(…, ignore)]` is the one way).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

fn main() {
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "unknown".into());
    // SOURCE_DATE_EPOCH keeps reproducible builds reproducible.
    let seconds = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        });
    let (y, m, d) = civil_from_days(i64::try_from(seconds / 86_400).unwrap_or(0));
    println!(
        "cargo:rustc-env=POSBRIDGE_LONG_VERSION={} (commit {commit}, built {y:04}-{m:02}-{d:02})",
        env!("CARGO_PKG_VERSION")
    );
    println!("cargo:rustc-env=POSBRIDGE_BUILD_UNIX={seconds}");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    test_gates();
}

/// `posbridge_browser_missing`: the browser tests' tools are missing and this is not CI (where
/// they must run, and fail loudly without them). `posbridge_dpkg_allowed`: the packaging test
/// may install the package system-wide (`CI=true` or `POSBRIDGE_TEST_DPKG=1`), never by
/// surprise on a developer's machine.
fn test_gates() {
    println!("cargo::rustc-check-cfg=cfg(posbridge_browser_missing)");
    println!("cargo::rustc-check-cfg=cfg(posbridge_dpkg_allowed)");
    println!("cargo:rerun-if-env-changed=CI");
    println!("cargo:rerun-if-env-changed=POSBRIDGE_TEST_DPKG");
    println!("cargo:rerun-if-env-changed=PATH");
    // Existing paths only: cargo reruns the script (and rebuilds the crate) on every build for
    // a path that does not exist. Installing chromium or node changes /usr/bin; `npm ci`
    // changes tests/browser.
    println!("cargo:rerun-if-changed=tests/browser");
    println!("cargo:rerun-if-changed=/usr/bin");
    let ci = std::env::var("CI").as_deref() == Ok("true");
    if ci || std::env::var("POSBRIDGE_TEST_DPKG").as_deref() == Ok("1") {
        println!("cargo:rustc-cfg=posbridge_dpkg_allowed");
    }
    if !ci && let Some(why) = browser_tools_missing() {
        println!("cargo:rustc-cfg=posbridge_browser_missing");
        println!("cargo:warning=the browser tests are ignored here: {why}");
    }
}

/// What the browser tests (tests/e2e/browser.rs) lack on this machine, if anything.
fn browser_tools_missing() -> Option<&'static str> {
    let node = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !node {
        Some("node is not installed")
    } else if !Path::new("tests/browser/node_modules/playwright-core").is_dir() {
        Some("tests/browser/node_modules is missing (cd tests/browser && npm ci)")
    } else if !Path::new("/usr/bin/chromium").exists() {
        Some("/usr/bin/chromium is missing (apt-get install chromium)")
    } else {
        None
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let month = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}
