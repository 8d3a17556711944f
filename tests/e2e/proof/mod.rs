//! The proof suite (issue 11): the money invariants checked at the end of every scenario, against
//! the terminal's own record, over whole spaces of kills, faults and timings, for every terminal
//! protocol.
//!
//! - [`drivers`]: one row per terminal protocol (and transport); every matrix runs every row.
//! - [`record`]: what a terminal says it did (its journal), whatever the protocol.
//! - [`invariants`]: at most one charge per payment, the terminal agrees with every answer, an
//!   answer never changes once final, every final result called back with the same body, no
//!   operation beyond what was charged, no secret anywhere on disk or in the logs.
//! - [`rig`]: a daemon that may die at any step, driven through the POS flow as the Gateway and
//!   the Sales App would, restarted like systemd does.
//!
//! The scenarios: the crash matrix, terminal faults, a terminal replaced mid-sale (swapped or
//! reset), gateway faults and the soak.
//!
//! Scale (defaults fit CI; raise them by hand):
//! - `POSBRIDGE_PROOF_TIMINGS`: randomized timings per cell of the crash matrix (default 1);
//! - `POSBRIDGE_PROOF_SEED`: the first seed (default: fixed, so a CI failure replays exactly);
//! - `POSBRIDGE_PROOF_ONLY`: run only the cells whose name contains it (e.g. `zvt-pty`);
//! - `POSBRIDGE_SOAK_PAYMENTS`: payments in the soak (default 300); `POSBRIDGE_SOAK_KILLS`: kills
//!   in it (default 10).

pub mod drivers;
pub mod invariants;
pub mod record;
pub mod rig;

mod crash_matrix;
mod gateway_faults;
mod replaced;
mod soak;
mod terminal_faults;

/// A number from the environment, or `default`.
pub fn scale(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Whether a cell runs (`POSBRIDGE_PROOF_ONLY` selects by a part of its name).
pub fn selected(cell: &str) -> bool {
    std::env::var("POSBRIDGE_PROOF_ONLY").map_or(true, |only| cell.contains(&only))
}

/// A small deterministic generator (SplitMix64): a seed replays a scenario's timings exactly.
#[derive(Debug, Clone)]
pub struct Seed {
    pub value: u64,
    state: u64,
}

impl Seed {
    pub fn new(value: u64) -> Seed {
        Seed {
            value,
            state: value,
        }
    }

    pub fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `low..=high`.
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low + 1)
    }

    /// True with probability `percent` %.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// The seeds of a matrix cell: `per_cell` × `POSBRIDGE_PROOF_TIMINGS` of them, from
/// `POSBRIDGE_PROOF_SEED`, different for every cell (`cell` numbers it).
pub fn seeds_for(cell: u64, per_cell: usize) -> Vec<Seed> {
    let first = scale("POSBRIDGE_PROOF_SEED", 11);
    let timings = scale("POSBRIDGE_PROOF_TIMINGS", 1) * per_cell as u64;
    (0..timings)
        .map(|i| Seed::new(first.wrapping_mul(1_000_003) ^ (cell << 20) ^ i))
        .collect()
}
