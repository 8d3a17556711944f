//! systemd integration without libsystemd: readiness and stopping notifications, and the
//! watchdog, pinged only while the engine itself answers (a hung engine stops the pings and
//! systemd restarts the service).

use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::pos::Engine;

/// Sends `sd_notify` messages to `$NOTIFY_SOCKET`, if systemd gave one.
pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
}

impl Notifier {
    pub fn from_env() -> Self {
        let target = std::env::var_os("NOTIFY_SOCKET").and_then(|path| {
            let path = path.to_string_lossy().to_string();
            let address = match path.strip_prefix('@') {
                Some(name) => abstract_address(name),
                None => SocketAddr::from_pathname(&path).ok(),
            }?;
            let socket = UnixDatagram::unbound().ok()?;
            Some((socket, address))
        });
        Self { target }
    }

    /// Sends one notification (`READY=1`, `STOPPING=1`, `WATCHDOG=1`, `STATUS=…`).
    pub fn notify(&self, state: &str) {
        if let Some((socket, address)) = &self.target
            && let Err(e) = socket.send_to_addr(state.as_bytes(), address)
        {
            tracing::warn!(error = %e, state, "cannot notify systemd");
        }
    }
}

#[cfg(target_os = "linux")]
fn abstract_address(name: &str) -> Option<SocketAddr> {
    use std::os::linux::net::SocketAddrExt;
    SocketAddr::from_abstract_name(name.as_bytes()).ok()
}

#[cfg(not(target_os = "linux"))]
fn abstract_address(_name: &str) -> Option<SocketAddr> {
    None
}

/// Half the watchdog interval systemd asks for (`WATCHDOG_USEC`, for this process).
pub fn watchdog_period() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID")
        && pid.parse::<u32>().ok() != Some(std::process::id())
    {
        return None;
    }
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

/// Pings the watchdog every `period` for as long as the engine answers its heartbeat in time.
pub async fn watchdog(
    notifier: Arc<Notifier>,
    engine: Arc<Engine>,
    period: Duration,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(period) => {}
            () = stop.cancelled() => return,
        }
        match tokio::time::timeout(period, engine.heartbeat()).await {
            Ok(Ok(())) => notifier.notify("WATCHDOG=1"),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "engine heartbeat failed: not pinging the watchdog")
            }
            Err(_) => {
                tracing::error!("the engine did not answer its heartbeat: not pinging the watchdog")
            }
        }
    }
}
