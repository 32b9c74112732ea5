//! How a release or rollback ended: its exit code, its name in the audit table and in GitHub
//! outputs, and its description — one table ([`Outcome::info`]).

use serde::{Deserialize, Serialize};

use crate::exit::Code;

/// How a release (or rollback) ended. Each has its own exit code (docs/release.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Another deployment, not this release's, took over a service (another actor's
    /// UpdateService); the deployer rolled nothing back.
    Superseded,
    /// A rollback failed (ROLLBACK_FAILED, or a revert that did not go back): production may
    /// run a mix of revisions.
    RollbackFailed,
}

/// One row of the outcome table.
struct Info {
    code: Code,
    name: &'static str,
    describe: &'static str,
    /// Which outcome wins when services of one release end differently (higher wins).
    rank: u8,
}

impl Outcome {
    pub const ALL: [Outcome; 13] = [
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
        Outcome::Superseded,
        Outcome::RollbackFailed,
    ];

    #[rustfmt::skip]
    const fn info(self) -> Info {
        use Outcome::*;
        let (code, name, describe, rank) = match self {
            Succeeded => (Code::Ok, "succeeded", "succeeded", 0),
            RolledBackSmoke => (Code::RolledBackSmoke, "rolled_back_smoke", "rolled back after a failed smoke check / gate", 3),
            RolledBackEcs => (Code::RolledBackEcs, "rolled_back_ecs", "rolled back by ECS", 4),
            TimedOut => (Code::TimedOut, "timed_out", "timed out (rolled back)", 5),
            LockHeld => (Code::LockHeld, "lock_held", "not started: the deploy lock is held", 1),
            PreflightFailed => (Code::Preflight, "preflight_failed", "not started: preflight failed", 1),
            ImageFailed => (Code::Image, "image_failed", "not started: building/pushing the image failed", 1),
            ConfigError => (Code::Config, "config_error", "not started: configuration error", 1),
            MigrationFailed => (Code::MigrationFailed, "migration_failed", "stopped: the migration failed (no service changed)", 1),
            Interrupted => (Code::Interrupted, "interrupted", "interrupted (in-flight deployments rolled back)", 6),
            Failed => (Code::Aws, "failed", "failed", 2),
            Superseded => (Code::Superseded, "superseded", "stopped: another deployment took over (nothing rolled back)", 7),
            RollbackFailed => (Code::RollbackFailed, "rollback_failed", "ROLLBACK FAILED: production may run a mix of revisions", 8),
        };
        Info { code, name, describe, rank }
    }

    /// The process exit code.
    pub fn code(self) -> Code {
        self.info().code
    }

    pub fn exit_code(self) -> i32 {
        self.code().as_u8() as i32
    }

    /// The name in the audit table, JSON and GitHub outputs.
    pub fn as_str(self) -> &'static str {
        self.info().name
    }

    pub fn describe(self) -> &'static str {
        self.info().describe
    }

    pub fn from_name(name: &str) -> Option<Outcome> {
        Self::ALL.into_iter().find(|o| o.as_str() == name)
    }

    /// The worse of two outcomes (for a release of many services).
    pub fn worst(self, other: Outcome) -> Outcome {
        if other.info().rank > self.info().rank {
            other
        } else {
            self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_have_distinct_codes_and_names() {
        let mut codes: Vec<i32> = Outcome::ALL.iter().map(|o| o.exit_code()).collect();
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), Outcome::ALL.len());
        for o in Outcome::ALL {
            assert_eq!(Outcome::from_name(o.as_str()), Some(o));
            let json = serde_json::to_value(o).unwrap();
            assert_eq!(json, o.as_str(), "serde and the table agree");
        }
        assert_eq!(
            Outcome::Succeeded.worst(Outcome::RolledBackEcs),
            Outcome::RolledBackEcs
        );
    }
}
