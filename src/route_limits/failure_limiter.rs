//! Failures per client address in a fixed window: an address that fails `max` times within
//! `window` is refused for `window`. The map is bounded; nothing secret is kept (addresses only).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

struct Entry {
    window_start: Instant,
    failures: u32,
    blocked_until: Option<Instant>,
}

pub struct FailureLimiter {
    max: u32,
    window: Duration,
    capacity: usize,
    entries: Mutex<HashMap<IpAddr, Entry>>,
}

impl FailureLimiter {
    /// `max` 0: never blocks.
    pub fn new(max: u32, window: Duration, capacity: usize) -> Self {
        Self {
            max,
            window,
            capacity: capacity.max(1),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// How long `ip` is still refused, if it is.
    pub fn blocked(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        if self.max == 0 {
            return None;
        }
        let mut entries = self.entries.lock().ok()?;
        let until = entries.get(&ip)?.blocked_until?;
        if until > now {
            return Some(until - now);
        }
        entries.remove(&ip);
        None
    }

    /// Counts a failure; true when it makes `ip` blocked (the moment to log it, once).
    pub fn note_failure(&self, ip: IpAddr, now: Instant) -> bool {
        if self.max == 0 {
            return false;
        }
        let Ok(mut entries) = self.entries.lock() else {
            return false;
        };
        if !entries.contains_key(&ip) && entries.len() >= self.capacity {
            self.make_room(&mut entries, now);
        }
        let entry = entries.entry(ip).or_insert(Entry {
            window_start: now,
            failures: 0,
            blocked_until: None,
        });
        if entry.blocked_until.is_some_and(|until| until > now) {
            return false;
        }
        if entry.blocked_until.is_some() || now.duration_since(entry.window_start) >= self.window {
            *entry = Entry {
                window_start: now,
                failures: 0,
                blocked_until: None,
            };
        }
        entry.failures += 1;
        if entry.failures >= self.max {
            entry.blocked_until = Some(now + self.window);
            return true;
        }
        false
    }

    /// Drops what has expired; if still full, the unblocked entry with the oldest window (or,
    /// all blocked, the one released soonest).
    fn make_room(&self, entries: &mut HashMap<IpAddr, Entry>, now: Instant) {
        let window = self.window;
        entries.retain(|_, e| match e.blocked_until {
            Some(until) => until > now,
            None => now.duration_since(e.window_start) < window,
        });
        if entries.len() < self.capacity {
            return;
        }
        let victim = entries
            .iter()
            .min_by_key(|(_, e)| (e.blocked_until.is_some(), e.blocked_until, e.window_start))
            .map(|(ip, _)| *ip);
        if let Some(ip) = victim {
            entries.remove(&ip);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, n])
    }

    #[test]
    fn blocks_after_max_failures_for_the_window_per_address() {
        let limiter = FailureLimiter::new(3, Duration::from_secs(60), 100);
        let t0 = Instant::now();
        assert!(!limiter.note_failure(ip(1), t0));
        assert!(!limiter.note_failure(ip(1), t0));
        assert_eq!(limiter.blocked(ip(1), t0), None);
        assert!(limiter.note_failure(ip(1), t0), "third failure blocks");
        assert_eq!(limiter.blocked(ip(1), t0), Some(Duration::from_secs(60)));
        assert_eq!(limiter.blocked(ip(2), t0), None, "another address is not");
        let later = t0 + Duration::from_secs(61);
        assert_eq!(
            limiter.blocked(ip(1), later),
            None,
            "released after the window"
        );
        assert!(!limiter.note_failure(ip(1), later), "counting starts again");
    }

    #[test]
    fn failures_spread_over_windows_do_not_add_up() {
        let limiter = FailureLimiter::new(2, Duration::from_secs(10), 100);
        let t0 = Instant::now();
        assert!(!limiter.note_failure(ip(1), t0));
        assert!(!limiter.note_failure(ip(1), t0 + Duration::from_secs(11)));
        assert!(limiter.note_failure(ip(1), t0 + Duration::from_secs(12)));
    }

    #[test]
    fn the_map_stays_bounded_and_keeps_blocked_addresses() {
        let limiter = FailureLimiter::new(2, Duration::from_secs(60), 16);
        let t0 = Instant::now();
        limiter.note_failure(ip(0), t0);
        limiter.note_failure(ip(0), t0);
        for n in 1..=200u8 {
            limiter.note_failure(ip(n), t0 + Duration::from_millis(u64::from(n)));
            assert!(limiter.len() <= 16);
        }
        assert!(
            limiter.blocked(ip(0), t0).is_some(),
            "blocked ones are evicted last"
        );
    }

    #[test]
    fn zero_turns_the_limit_off() {
        let limiter = FailureLimiter::new(0, Duration::from_secs(60), 16);
        let t0 = Instant::now();
        for _ in 0..100 {
            assert!(!limiter.note_failure(ip(1), t0));
        }
        assert_eq!(limiter.blocked(ip(1), t0), None);
    }
}
