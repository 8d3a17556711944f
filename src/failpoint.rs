//! Test-only failure points, armed by `POSBRIDGE_FAILPOINT=<name>` in debug builds (release
//! builds ignore it). `stall-engine` wedges the engine so the systemd watchdog pings stop; every
//! other name kills the process on the spot (like SIGKILL: no cleanup) at one step of a payment,
//! for the crash matrix (tests/e2e/proof):
//!
//! | name | the process dies |
//! |---|---|
//! | `after-payment-stored` | after the first Create is stored, before it is answered |
//! | `after-bind` | after the terminal is bound, before the submitUrl is answered |
//! | `after-charge-queued` | after the Create that starts the charge is stored, before the lane runs |
//! | `after-sale-marked-sent` | after the database marks the sale sent, before the driver is called |
//! | `after-charge-intent` | after the driver journaled its intent, before the terminal has it |
//! | `after-terminal-result` | after the terminal's result, before it is stored |
//! | `after-result-committed` | after the result and its callback are stored, before any delivery |
//! | `after-callback-delivered` | after the Gateway took a callback, before it is marked delivered |
//! | `after-operation-sent` | after a reversal or refund is marked sent, before the terminal has it |
//! | `after-operation-result` | after the terminal did a reversal or refund, before it is stored |

/// Dies here if the failpoint `name` is armed.
pub fn hit(name: &str) {
    if active(name) {
        eprintln!("failpoint {name}: aborting");
        // The log lines before this point, as a test reads them after the crash (the
        // database is left exactly as a SIGKILL leaves it).
        crate::telemetry::flush();
        std::process::abort();
    }
}

/// Whether the failpoint `name` is armed.
pub fn active(name: &str) -> bool {
    cfg!(debug_assertions) && std::env::var("POSBRIDGE_FAILPOINT").is_ok_and(|v| v == name)
}
