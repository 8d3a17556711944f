//! `posbridge doctor`: the checks store IT would otherwise do by hand, in one report.

use std::fmt::Write;
use std::path::Path;

use crate::clock::{Clock, SystemClock};
use crate::config::{Config, DEFAULT_CONFIG};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Ok,
    Warn,
    Fail,
}

#[derive(Debug, Default)]
pub struct Report {
    checks: Vec<(Level, String, String)>,
}

impl Report {
    fn add(&mut self, level: Level, check: &str, detail: impl Into<String>) {
        self.checks.push((level, check.to_string(), detail.into()));
    }

    /// True when nothing failed (warnings are fine).
    pub fn ok(&self) -> bool {
        self.checks
            .iter()
            .all(|(level, _, _)| *level != Level::Fail)
    }

    pub fn text(&self) -> String {
        let mut out = String::new();
        for (level, check, detail) in &self.checks {
            let tag = match level {
                Level::Ok => "ok  ",
                Level::Warn => "warn",
                Level::Fail => "FAIL",
            };
            let _ = writeln!(out, "{tag}  {check}: {detail}");
        }
        let _ = writeln!(
            out,
            "{}",
            if self.ok() {
                "all checks passed"
            } else {
                "some checks FAILED"
            }
        );
        out
    }
}

pub async fn run(config_path: Option<&Path>) -> Report {
    let mut report = Report::default();
    let loaded = match config_path {
        Some(path) => Config::load(path),
        None => Config::parse(DEFAULT_CONFIG, "(embedded default)"),
    };
    let config = match loaded {
        Ok(c) if c.terminals.is_empty() => {
            report.add(
                Level::Warn,
                "configuration",
                "no terminal configured: no sale can be taken",
            );
            c
        }
        Ok(c) => {
            report.add(
                Level::Ok,
                "configuration",
                format!("{} terminal(s) configured", c.terminals.len()),
            );
            c
        }
        Err(e) => {
            report.add(Level::Fail, "configuration", e.to_string());
            return report;
        }
    };
    if let Some(warning) = config.demo_box_warning() {
        report.add(Level::Warn, "simulator", warning);
    }
    check_terminal_hosts(&mut report, &config);
    check_tls(&mut report, &config);
    check_database(&mut report, &config.storage.path);
    check_clock(&mut report);
    check_daemon(&mut report, &config).await;
    report
}

/// What each terminal needs of this machine (a TEF client's folders, writable).
fn check_terminal_hosts(report: &mut Report, config: &Config) {
    for terminal in &config.terminals {
        for problem in terminal.protocol.host_problems() {
            report.add(Level::Fail, &format!("terminal {}", terminal.id), problem);
        }
    }
}

/// Asks an idle terminal through the daemon whether it answers.
async fn probe_terminal(report: &mut Report, config: &Config, id: &str) {
    let check = format!("terminal {id}");
    let path = format!("/terminals/{id}/probe");
    match crate::admin::call(config, reqwest::Method::POST, &path, None).await {
        Ok((200, body)) => {
            let parsed: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            let status = parsed["status"].as_str().unwrap_or("answered");
            report.add(Level::Ok, &check, format!("online: {status}"));
        }
        Ok((_, body)) => {
            let parsed: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            let error = parsed["error"].as_str().unwrap_or("no answer");
            report.add(Level::Fail, &check, format!("offline: {error}"));
        }
        Err(e) => report.add(Level::Fail, &check, e),
    }
}

fn check_tls(report: &mut Report, config: &Config) {
    let Some(files) = &config.server.tls else {
        report.add(
            Level::Ok,
            "tls",
            "off (plain HTTP; fine behind a TLS proxy or tunnel)",
        );
        return;
    };
    if let Err(e) = crate::tls::Tls::load(files) {
        return report.add(Level::Fail, "tls", e.to_string());
    }
    match crate::tls::certificate_expiry(files) {
        Ok(expiry) => {
            let days = (expiry - SystemClock.now_ms() / 1000) / 86_400;
            let level = match days {
                d if d < 0 => Level::Fail,
                d if d < 14 => Level::Warn,
                _ => Level::Ok,
            };
            let detail = if days < 0 {
                format!("{} expired {} days ago", files.cert.display(), -days)
            } else {
                format!("{} valid, expires in {days} days", files.cert.display())
            };
            report.add(level, "tls certificate", detail);
        }
        Err(e) => report.add(Level::Fail, "tls certificate", e.to_string()),
    }
}

fn check_database(report: &mut Report, path: &Path) {
    if !path.exists() {
        report.add(
            Level::Warn,
            "database",
            format!(
                "{} does not exist yet (the daemon creates it)",
                path.display()
            ),
        );
        return;
    }
    let conn = match crate::store::open_read_only(path) {
        Ok(c) => c,
        Err(e) => return report.add(Level::Fail, "database", e.to_string()),
    };
    match conn.query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0)) {
        Ok(v) if v == "ok" => report.add(
            Level::Ok,
            "database integrity",
            format!("{}: ok", path.display()),
        ),
        Ok(v) => report.add(Level::Fail, "database integrity", v),
        Err(e) => report.add(Level::Fail, "database integrity", e.to_string()),
    }
    match conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0)) {
        Ok(v) if v == crate::store::LATEST_VERSION => report.add(
            Level::Ok,
            "database schema",
            format!("version {v} (current)"),
        ),
        Ok(v) if v < crate::store::LATEST_VERSION => report.add(
            Level::Warn,
            "database schema",
            format!(
                "version {v}; migrates to {} on the next start",
                crate::store::LATEST_VERSION
            ),
        ),
        Ok(v) => report.add(
            Level::Fail,
            "database schema",
            format!(
                "version {v} is newer than this binary knows ({}): a downgrade?",
                crate::store::LATEST_VERSION
            ),
        ),
        Err(e) => report.add(Level::Fail, "database schema", e.to_string()),
    }
    match crate::store::alarms::open(&conn) {
        Ok(list) if list.is_empty() => report.add(Level::Ok, "alarms", "none open"),
        Ok(list) => report.add(
            Level::Fail,
            "alarms",
            format!(
                "{} alarm(s) need a person: see `posbridge alarms`, then resolve or acknowledge them",
                list.len()
            ),
        ),
        Err(e) => report.add(Level::Fail, "alarms", e.to_string()),
    }
}

fn check_clock(report: &mut Report) {
    let now_s = SystemClock.now_ms() / 1000;
    let built_s: i64 = env!("POSBRIDGE_BUILD_UNIX").parse().unwrap_or(0);
    if now_s + 86_400 < built_s {
        report.add(
            Level::Fail,
            "clock",
            "the system clock is before this binary was built: set the time (NTP)",
        );
    } else if now_s > built_s + 20 * 365 * 86_400 {
        report.add(
            Level::Fail,
            "clock",
            "the system clock is decades ahead: set the time (NTP)",
        );
    } else {
        report.add(Level::Ok, "clock", "plausible (not before the build date)");
    }
}

async fn check_daemon(report: &mut Report, config: &Config) {
    if config.admin.named_tokens().is_empty() {
        report.add(
            Level::Warn,
            "daemon",
            "no [admin] token: the running daemon and its terminals cannot be asked",
        );
        return;
    }
    match crate::admin::call(config, reqwest::Method::GET, "/terminals", None).await {
        Ok((200, body)) => {
            report.add(
                Level::Ok,
                "daemon",
                format!("answering on {}", config.admin.listen),
            );
            let parsed: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            for t in parsed["terminals"].as_array().into_iter().flatten() {
                let id = t["id"].as_str().unwrap_or("?");
                if t["busy"] != true {
                    // Asked now (ZVT: status enquiry; TEF Dial: ATV), not what was last seen.
                    probe_terminal(report, config, id).await;
                    continue;
                }
                match t["reachability"].as_str() {
                    Some("online") => report.add(Level::Ok, &format!("terminal {id}"), "online"),
                    Some("not-contacted") => report.add(
                        Level::Warn,
                        &format!("terminal {id}"),
                        format!("not yet contacted (`posbridge terminals probe {id}` asks it)"),
                    ),
                    _ => report.add(
                        Level::Fail,
                        &format!("terminal {id}"),
                        format!(
                            "offline: {}",
                            t["lastError"].as_str().unwrap_or("no answer")
                        ),
                    ),
                }
            }
        }
        Ok((status, body)) => report.add(
            Level::Fail,
            "daemon",
            format!("the admin listener answered {status}: {body}"),
        ),
        Err(e) => report.add(Level::Fail, "daemon", e),
    }
}
