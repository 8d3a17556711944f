//! Wall-clock time as the database stores it (unix milliseconds), behind a trait so timer
//! logic can be tested on tokio's paused clock.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since the unix epoch.
    fn now_ms(&self) -> i64;
}

pub type SharedClock = Arc<dyn Clock>;

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
}

/// A clock that follows tokio's (possibly paused) time, starting at a fixed wall time.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    start_wall_ms: i64,
    start: tokio::time::Instant,
}

impl TokioClock {
    pub fn starting_at(start_wall_ms: i64) -> Self {
        Self {
            start_wall_ms,
            start: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now_ms(&self) -> i64 {
        let elapsed = i64::try_from(self.start.elapsed().as_millis()).unwrap_or(i64::MAX);
        self.start_wall_ms.saturating_add(elapsed)
    }
}
