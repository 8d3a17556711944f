//! Test-only crash points. In debug builds, `POSBRIDGE_FAILPOINT=<name>` makes the process die
//! on the spot (like SIGKILL: no cleanup) when it reaches that point. Release builds ignore it.

pub fn hit(name: &str) {
    if cfg!(debug_assertions) && std::env::var("POSBRIDGE_FAILPOINT").is_ok_and(|v| v == name) {
        eprintln!("failpoint {name}: aborting");
        std::process::abort();
    }
}
