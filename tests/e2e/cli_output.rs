//! The admin commands as store IT reads them (tables in the store's zone and currency) and as
//! scripts read them (`--json`: UTC unix ms, minor units), their exit codes, and "today".

use std::process::Command;
use std::time::Duration;

use jiff::Zoned;
use jiff::tz::TimeZone;
use serde_json::{Value, json};

use crate::harness::*;

const ZONE: &str = "America/Sao_Paulo";

fn store_zone() -> Options {
    Options {
        admin: true,
        extra_config: format!("[store]\ntimezone = \"{ZONE}\"\n"),
        ..Options::default()
    }
}

/// `unix_ms` in São Paulo, computed here from the time zone database, not by posbridge.
fn in_store(unix_ms: i64) -> Zoned {
    jiff::Timestamp::from_millisecond(unix_ms)
        .expect("timestamp")
        .to_zoned(TimeZone::get(ZONE).expect("zone"))
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// The value of a `Label   value` line of `payments show`.
fn field<'a>(out: &'a str, label: &str) -> Option<&'a str> {
    out.lines()
        .find_map(|line| line.strip_prefix(label))
        .filter(|rest| rest.starts_with("  "))
        .map(str::trim)
}

fn json_of(out: &str) -> Value {
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payments_read_in_the_store_zone_and_currency_while_json_stays_utc_and_minor_units() {
    let daemon = Daemon::start(store_zone()).await;
    let receiver = CallbackReceiver::start(0).await;
    let before = now_ms();
    let paid = pay(&daemon, &receiver, "cli-brl", json!(12.5)).await;
    assert_eq!(paid["status"], "approved", "{paid}");
    let after = now_ms();

    let (code, out) = daemon.admin_cli("payments", &["list", "--json"]);
    assert_eq!(code, Some(0), "{out}");
    let list = json_of(&out);
    let listed = &list["payments"][0];
    assert_eq!(listed["paymentId"], "cli-brl");
    assert_eq!(listed["amountMinor"], 1250, "minor units: {listed}");
    assert_eq!(listed["currency"], "BRL");
    let created = listed["createdAtMs"].as_i64().expect("createdAtMs");
    assert!(
        (before..=after).contains(&created),
        "UTC unix ms: {created}"
    );
    assert_eq!(list["store"]["timezone"], ZONE);
    let local = in_store(created);

    let (code, out) = daemon.admin_cli("payments", &["list"]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(
        out.lines().next().unwrap_or_default(),
        format!(
            "Today's payments (since {} 00:00, times in {ZONE}): 1",
            local.strftime("%Y-%m-%d")
        ),
        "{out}"
    );
    let row = out
        .lines()
        .find(|line| line.contains("cli-brl"))
        .unwrap_or_else(|| panic!("no row: {out}"));
    assert!(
        row.starts_with(&format!("{}  cli-brl", local.strftime("%H:%M"))),
        "24-hour store time first: {row}"
    );
    for cell in ["approved", "R$ 12,50", "Visa ****1111", "lane-1"] {
        assert!(row.contains(cell), "no `{cell}` in: {row}");
    }
    assert!(out.lines().all(|l| l.chars().count() <= 100), "{out}");
    assert!(!out.contains("444433"), "never the first 6 digits: {out}");

    let (code, out) = daemon.admin_cli("payments", &["show", "cli-brl"]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(field(&out, "Payment"), Some("cli-brl"), "{out}");
    assert_eq!(field(&out, "State"), Some("approved"), "{out}");
    assert_eq!(field(&out, "Amount"), Some("R$ 12,50"), "{out}");
    assert_eq!(field(&out, "Card"), Some("Visa ****1111"), "{out}");
    let stamp = local.strftime("%Y-%m-%d %H:%M:%S %:::z").to_string();
    assert_eq!(field(&out, "Created"), Some(stamp.as_str()), "{out}");
    assert!(
        out.contains("\nReceipts\n") && out.contains("\n  customer\n"),
        "{out}"
    );
    assert!(out.contains("\nCallbacks\n  1. "), "{out}");

    let (code, json_out) = daemon.admin_cli("payments", &["show", "cli-brl", "--json"]);
    assert_eq!(code, Some(0), "{json_out}");
    let shown = json_of(&json_out);
    assert_eq!(shown["amountMinor"], 1250);
    assert_eq!(shown["createdAtMs"], created);
    for text in [&out, &json_out] {
        assert!(!text.contains("SIGtestSECRET"), "no callback URL: {text}");
    }

    let (code, out) = daemon.admin_cli("payments", &["show", "cli-none"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("no payment `cli-none`"), "{out}");

    let (code, out) = daemon.terminals_cli(&["list"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.starts_with(&format!("Terminals: 1 (times in {ZONE})\n")),
        "{out}"
    );
    let lane = out
        .lines()
        .find(|line| line.starts_with("lane-1 "))
        .unwrap_or_else(|| panic!("no lane-1: {out}"));
    assert!(lane.contains(SERIAL) && lane.contains("simulator") && lane.contains("online"));
    let (code, out) = daemon.terminals_cli(&["probe", "lane-1"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.starts_with("lane-1: simulator ready") && out.lines().count() == 1,
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_retry_takes_a_callback_id_or_the_payment_id() {
    let daemon = Daemon::start(Options {
        first_retry_s: 30,
        ..store_zone()
    })
    .await;
    let receiver = CallbackReceiver::start(0).await;
    receiver.fail_always();
    let paid = pay(&daemon, &receiver, "cli-cb", json!(7)).await;
    assert_eq!(paid["status"], "approved", "{paid}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while receiver.attempts() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no callback attempt"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let (code, out) = daemon.admin_cli("callbacks", &["list", "--json"]);
    assert_eq!(code, Some(0), "{out}");
    let id = json_of(&out)["callbacks"][0]["id"]
        .as_i64()
        .expect("callback id");
    let (code, out) = daemon.admin_cli("callbacks", &["list"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.starts_with(&format!(
            "Callbacks not delivered yet: 1 (times in {ZONE})\n"
        )),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.contains(&format!("{id}  cli-cb")) && l.contains("failing")),
        "{out}"
    );

    // By its number: due now, not in 30 s.
    let attempts = receiver.attempts();
    let (code, out) = daemon.admin_cli("callbacks", &["retry", &id.to_string()]);
    assert_eq!(
        (code, out.clone()),
        (Some(0), format!("callback {id} is due now\n"))
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while receiver.attempts() == attempts {
        assert!(tokio::time::Instant::now() < deadline, "not retried now");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // By the payment: every undelivered callback of it.
    receiver.succeed_from_now();
    let (code, out) = daemon.admin_cli("callbacks", &["retry", "cli-cb"]);
    assert_eq!(
        (code, out.clone()),
        (
            Some(0),
            format!("payment cli-cb: callback {id} is due now\n")
        )
    );
    assert_eq!(
        receiver
            .wait_for("cli-cb", Duration::from_secs(5))
            .await
            .len(),
        1,
        "delivered now, not in 30 s"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (code, out) = daemon.admin_cli("callbacks", &["list"]);
        assert_eq!(code, Some(0), "{out}");
        if out == "No callback is waiting to be delivered.\n" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{out}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let (code, out) = daemon.admin_cli("callbacks", &["retry", "cli-cb"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("payment `cli-cb` has no undelivered callback"),
        "{out}"
    );
    for unknown in ["cli-nobody", &id.to_string()] {
        let (code, out) = daemon.admin_cli("callbacks", &["retry", unknown]);
        assert_eq!(code, Some(1), "{out}");
        assert!(
            out.contains(&format!(
                "no undelivered callback and no payment `{unknown}`"
            )),
            "{out}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn todays_payments_start_at_the_store_midnight_not_24_hours_ago() {
    let daemon = Daemon::start(store_zone()).await;
    let gateway = daemon.gateway();
    // An id that is not one URL path segment as it is.
    let odd = "cli odd/id?#%";
    for id in ["cli-yesterday", "cli-midnight", odd] {
        let first = gateway
            .create(&create_body(
                id,
                json!(3),
                "Venda Direta Debito",
                "http://127.0.0.1:9/cb",
            ))
            .await;
        assert_eq!(first["status"], "undefined", "{first}");
    }
    let midnight = in_store(now_ms())
        .start_of_day()
        .expect("midnight")
        .timestamp()
        .as_millisecond();
    let db = rusqlite::Connection::open(daemon.db_path()).expect("db");
    db.busy_timeout(Duration::from_secs(5)).expect("busy");
    for (id, created) in [
        ("cli-yesterday", midnight - 1000),
        ("cli-midnight", midnight),
    ] {
        let moved = db
            .execute(
                "UPDATE payments SET created_at = ?2 WHERE payment_id = ?1",
                rusqlite::params![id, created],
            )
            .expect("move");
        assert_eq!(moved, 1, "{id}");
    }
    let today = in_store(midnight).strftime("%Y-%m-%d").to_string();
    let yesterday = in_store(midnight - 1000).strftime("%Y-%m-%d").to_string();

    let (code, out) = daemon.admin_cli("payments", &["list"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.starts_with(&format!(
            "Today's payments (since {today} 00:00, times in {ZONE}): 2\n"
        )),
        "{out}"
    );
    assert!(out.contains("cli-midnight") && out.contains(odd), "{out}");
    assert!(
        !out.contains("cli-yesterday"),
        "before the store's midnight: {out}"
    );
    let (code, out) = daemon.admin_cli("payments", &["list", "--json"]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(json_of(&out)["sinceMs"], midnight);

    let (code, out) = daemon.admin_cli("payments", &["list", "--since", &yesterday]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.starts_with(&format!(
            "Payments since {yesterday} 00:00 (times in {ZONE}): 3\n"
        )),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with(&format!("{yesterday} 23:59  cli-yesterday"))),
        "another day's time carries its date: {out}"
    );

    let (code, out) = daemon.admin_cli("payments", &["show", odd]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(field(&out, "Payment"), Some(odd), "{out}");
    assert_eq!(field(&out, "Amount"), Some("R$ 3,00"), "{out}");

    let (code, out) = daemon.admin_cli("payments", &["list", "--since", "2026-02-30"]);
    assert_eq!(code, Some(64), "a usage error: {out}");
    assert!(
        out.contains("`2026-02-30` is not a date (YYYY-MM-DD"),
        "{out}"
    );
}

/// A configuration from the shipped example with the admin listener as given.
fn config_with_admin(dir: &std::path::Path, name: &str, admin: &str) -> std::path::PathBuf {
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/posbridge.toml"
    ))
    .expect("example");
    let text = example
        .replace(
            "listen = \"127.0.0.1:9090\"\n# token = \"choose-a-long-random-token\"",
            admin,
        )
        .replace(
            "path = \"posbridge.db\"",
            &format!("path = \"{}\"", dir.join("none.db").display()),
        );
    assert_ne!(text, example, "the example config changed: adapt this test");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path
}

/// `posbridge COMMAND --config CONFIG ARGS…`.
fn posbridge(command_and_args: &[&str], config: &std::path::Path) -> (Option<i32>, String) {
    let (command, args) = command_and_args.split_first().expect("a command");
    let out = Command::new(env!("CARGO_BIN_EXE_posbridge"))
        .arg(command)
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .expect("run posbridge");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn exit_codes_tell_a_refusal_from_an_unreachable_daemon_and_a_typo() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Nothing listens on port 1.
    let unreachable = config_with_admin(
        dir.path(),
        "unreachable.toml",
        "listen = \"127.0.0.1:1\"\ntoken = \"cli-token-0123456789\"",
    );
    let without_token =
        config_with_admin(dir.path(), "without-token.toml", "listen = \"127.0.0.1:1\"");
    for args in [
        &["payments", "list"][..],
        &["payments", "show", "p-1", "--json"],
        &["callbacks", "retry", "p-1"],
        &["terminals", "list"],
        &["log-level", "debug"],
    ] {
        let (code, out) = posbridge(args, &unreachable);
        assert_eq!(code, Some(2), "{args:?}: {out}");
        assert!(
            out.contains("cannot reach the daemon at 127.0.0.1:1"),
            "{out}"
        );
        let (code, out) = posbridge(args, &without_token);
        assert_eq!(code, Some(2), "{args:?}: {out}");
        assert!(out.contains("no [admin] token"), "{out}");
    }
    for args in [
        &["payments", "list", "--since", "yesterday"][..],
        &["payments", "frobnicate"],
        &["callbacks", "retry"],
    ] {
        let (code, out) = posbridge(args, &unreachable);
        assert_eq!(code, Some(64), "{args:?}: {out}");
    }
    let (code, out) = posbridge(&["payments", "--help"], &unreachable);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("--json"), "{out}");
}
