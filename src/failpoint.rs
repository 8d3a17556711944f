//! Test-only failure points, armed by `POSBRIDGE_FAILPOINT=<name>` in debug builds (release
//! builds ignore it): `after-terminal-result` kills the process on the spot (like SIGKILL: no
//! cleanup); `stall-engine` wedges the engine so the systemd watchdog pings stop.

/// Dies here if the failpoint `name` is armed.
pub fn hit(name: &str) {
    if active(name) {
        eprintln!("failpoint {name}: aborting");
        std::process::abort();
    }
}

/// Whether the failpoint `name` is armed.
pub fn active(name: &str) -> bool {
    cfg!(debug_assertions) && std::env::var("POSBRIDGE_FAILPOINT").is_ok_and(|v| v == name)
}
