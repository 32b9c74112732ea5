//! `deployer release`: take a git sha to production traffic only after it has proven itself, and
//! put the last good version back whenever anything fails.
//!
//! Flow per environment: preflight → deploy lock → image → migration (one-off RunTask) →
//! register task definitions (tagged) → update services in waves (agents first, then the
//! load-balanced ones; `release.max_parallel` at a time) → follow each ECS service deployment,
//! gating its PAUSE hooks with smoke checks (test listener) or the agent gate, watching the bake
//! time against production → audit record, summary, lock release. Exit codes: [`Outcome`].

pub mod cli;
pub mod flow;
pub mod report;

use std::time::Duration;

use serde::Serialize;

pub use flow::{Ctx, ReleaseArgs};

/// How a release (or rollback) ended. Each has its own exit code (docs/release.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Succeeded,
    /// A smoke check or the agent gate failed; the deployer rolled back.
    RolledBackSmoke,
    /// ECS rolled back by itself: circuit breaker, alarm, hook timeout.
    RolledBackEcs,
    TimedOut,
    LockHeld,
    PreflightFailed,
    /// The release had to build and push the image, and that failed; nothing was changed.
    ImageFailed,
    ConfigError,
    /// The migration task failed; no service was changed.
    MigrationFailed,
    /// Ctrl-C / SIGTERM: in-flight deployments were rolled back.
    Interrupted,
    /// Anything else (AWS errors, …).
    Failed,
}

impl Outcome {
    pub fn exit_code(self) -> i32 {
        match self {
            // Shared with the other commands (crate::exit::Code).
            Outcome::Succeeded => 0,
            Outcome::ConfigError => 3,
            Outcome::PreflightFailed => 4,
            Outcome::ImageFailed => 6,
            Outcome::Failed => 5,
            // Release outcomes: 10-19.
            Outcome::RolledBackSmoke => 10,
            Outcome::RolledBackEcs => 11,
            Outcome::TimedOut => 12,
            Outcome::LockHeld => 13,
            Outcome::MigrationFailed => 14,
            Outcome::Interrupted => 15,
        }
    }

    /// The process exit code as the CLI's shared [`crate::exit::Code`].
    pub fn code(self) -> crate::exit::Code {
        use crate::exit::Code;
        match self {
            Outcome::Succeeded => Code::Ok,
            Outcome::ConfigError => Code::Config,
            Outcome::PreflightFailed => Code::Preflight,
            Outcome::ImageFailed => Code::Image,
            Outcome::Failed => Code::Aws,
            Outcome::RolledBackSmoke => Code::RolledBackSmoke,
            Outcome::RolledBackEcs => Code::RolledBackEcs,
            Outcome::TimedOut => Code::TimedOut,
            Outcome::LockHeld => Code::LockHeld,
            Outcome::MigrationFailed => Code::MigrationFailed,
            Outcome::Interrupted => Code::Interrupted,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::RolledBackSmoke => "rolled_back_smoke",
            Outcome::RolledBackEcs => "rolled_back_ecs",
            Outcome::TimedOut => "timed_out",
            Outcome::LockHeld => "lock_held",
            Outcome::PreflightFailed => "preflight_failed",
            Outcome::ImageFailed => "image_failed",
            Outcome::ConfigError => "config_error",
            Outcome::MigrationFailed => "migration_failed",
            Outcome::Interrupted => "interrupted",
            Outcome::Failed => "failed",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::RolledBackSmoke => "rolled back after a failed smoke check / gate",
            Outcome::RolledBackEcs => "rolled back by ECS",
            Outcome::TimedOut => "timed out (rolled back)",
            Outcome::LockHeld => "not started: the deploy lock is held",
            Outcome::PreflightFailed => "not started: preflight failed",
            Outcome::ImageFailed => "not started: building/pushing the image failed",
            Outcome::ConfigError => "not started: configuration error",
            Outcome::MigrationFailed => "stopped: the migration failed (no service changed)",
            Outcome::Interrupted => "interrupted (in-flight deployments rolled back)",
            Outcome::Failed => "failed",
        }
    }

    /// The worse of two outcomes (for a release of many services).
    pub fn worst(self, other: Outcome) -> Outcome {
        fn rank(o: Outcome) -> u8 {
            match o {
                Outcome::Succeeded => 0,
                Outcome::RolledBackSmoke => 3,
                Outcome::RolledBackEcs => 4,
                Outcome::TimedOut => 5,
                Outcome::Interrupted => 6,
                Outcome::Failed => 2,
                _ => 1,
            }
        }
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }
}

/// Whole minutes for ECS fields (`bakeTimeInMinutes`, `timeoutInMinutes`), rounded up.
pub fn minutes_ceil(d: Duration, min: i32) -> i32 {
    let m = d.as_secs().div_ceil(60) as i32;
    m.max(min)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_distinct() {
        let all = [
            Outcome::Succeeded,
            Outcome::RolledBackSmoke,
            Outcome::RolledBackEcs,
            Outcome::TimedOut,
            Outcome::LockHeld,
            Outcome::PreflightFailed,
            Outcome::ImageFailed,
            Outcome::ConfigError,
            Outcome::MigrationFailed,
            Outcome::Interrupted,
            Outcome::Failed,
        ];
        let mut codes: Vec<i32> = all.iter().map(|o| o.exit_code()).collect();
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
        for o in all {
            assert_eq!(o.code().as_u8() as i32, o.exit_code(), "{o:?}");
        }
        assert_eq!(
            Outcome::Succeeded.worst(Outcome::RolledBackEcs),
            Outcome::RolledBackEcs
        );
        assert_eq!(minutes_ceil(Duration::from_secs(61), 1), 2);
        assert_eq!(minutes_ceil(Duration::ZERO, 0), 0);
    }
}
