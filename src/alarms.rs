//! `posbridge alarms`: what needs a person — each open alarm with its plain-words text and next
//! step (see the operator guide's runbook). Reads the database read-only, so it is safe while
//! the daemon runs; acknowledging goes through the daemon (`alarms ack`).

use std::fmt::Write;
use std::path::Path;

use crate::locale::StoreTime;
use crate::store::alarms::{self, Alarm};
use crate::store::{self, StoreError};

/// What `posbridge alarms` prints, and how many alarms are open (need a person).
pub struct Report {
    pub text: String,
    pub open: usize,
}

/// Open alarms (or, with `all`, the history too), as people read them.
pub fn report(database: &Path, all: bool, time: &StoreTime) -> Result<Report, StoreError> {
    let conn = store::open_read_only(database)?;
    let open = alarms::open(&conn)?;
    let list = if all {
        alarms::history(&conn, 500)?
    } else {
        open.clone()
    };
    let mut text = String::new();
    for alarm in &list {
        let _ = writeln!(text, "{}", line(alarm, time));
    }
    if open.is_empty() {
        text.push_str("nothing needs attention\n");
    }
    Ok(Report {
        text,
        open: open.len(),
    })
}

/// The alarms as JSON for scripts (UTC ms).
pub fn json(database: &Path, all: bool) -> Result<String, StoreError> {
    let conn = store::open_read_only(database)?;
    let list = if all {
        alarms::history(&conn, 500)?
    } else {
        alarms::open(&conn)?
    };
    let items: Vec<_> = list.iter().map(crate::admin::alarm_json).collect();
    Ok(serde_json::json!({ "alarms": items }).to_string())
}

/// `#7  2026-11-30 14:03:05 -03  unresolved  payment P-1` and the text on the next line.
fn line(a: &Alarm, time: &StoreTime) -> String {
    let about = match (&a.payment_id, &a.subject) {
        (Some(p), _) => format!("payment {p}"),
        (None, Some(s)) => s.clone(),
        (None, None) => String::new(),
    };
    let state = match (a.acked_at, &a.acked_by, a.cleared_at) {
        (Some(at), by, _) => format!(
            "  [acknowledged by {} at {}{}]",
            by.as_deref().unwrap_or("?"),
            time.date_time(at),
            a.ack_note
                .as_deref()
                .map(|n| format!(": {n}"))
                .unwrap_or_default()
        ),
        (None, _, Some(at)) => format!("  [cleared by itself at {}]", time.date_time(at)),
        (None, _, None) => String::new(),
    };
    format!(
        "#{}  {}  {}  {}{}\n    {}",
        a.id,
        time.date_time(a.raised_at),
        a.kind,
        about,
        state,
        a.text
    )
}
