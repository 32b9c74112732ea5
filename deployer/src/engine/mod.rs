//! The release machinery every verb that changes ECS shares (`release`, `rollback`,
//! `release --resume`): the run context, preflight, registering task definitions, following one
//! service deployment through its PAUSE hooks and gates, waves and reverts, the migration task,
//! the locked run with its audit record and summary. Never imports `commands/`.
//!
//! Flow of a release: preflight → deploy lock → image → migration (one-off RunTask) → register
//! task definitions (tagged) → update services in waves (agents first, then the load-balanced
//! ones; `release.max_parallel` at a time) → follow each ECS service deployment, gating its
//! PAUSE hooks with smoke checks (test listener) or the agent gate, watching the bake time
//! against production → audit record, summary, lock release.

pub mod analysis;
pub mod context;
pub mod deploy;
pub mod diagnose;
pub mod gates;
pub mod migration;
pub mod preflight;
pub mod register;
pub mod release;
pub mod report;
pub mod resume;
pub mod rollback;
pub mod run;
pub mod smoke;
pub mod traffic;
pub mod waves;

use std::time::Duration;

pub use crate::state::outcome::Outcome;
pub use context::{Ctx, Stats, cancel_on_signals};

/// Why the engine stopped short of success: how it ended and what to tell the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stop {
    pub outcome: Outcome,
    pub reason: String,
}

impl Stop {
    pub fn new(outcome: Outcome, reason: impl Into<String>) -> Self {
        Self {
            outcome,
            reason: reason.into(),
        }
    }

    /// An AWS or other unexpected error (exit 5).
    pub fn failed(e: impl std::fmt::Display) -> Self {
        Self::new(Outcome::Failed, e.to_string())
    }

    /// An error chain (`anyhow`), all of it.
    pub fn aws(e: anyhow::Error) -> Self {
        Self::new(Outcome::Failed, format!("{e:#}"))
    }
}

/// What engine steps return.
pub type Step<T> = Result<T, Stop>;

/// Whole minutes for ECS fields (`bakeTimeInMinutes`, `timeoutInMinutes`), rounded up.
pub fn minutes_ceil(d: Duration, min: i32) -> i32 {
    let m = d.as_secs().div_ceil(60) as i32;
    m.max(min)
}

/// The median of some timings (the hook-to-action figure of the summary and the bench).
pub fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    Some(s[s.len() / 2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minutes_round_up() {
        assert_eq!(minutes_ceil(Duration::from_secs(61), 1), 2);
        assert_eq!(minutes_ceil(Duration::ZERO, 0), 0);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
    }
}
