//! Exit codes and the error type commands return: what went wrong, why, what to do, and the
//! code the process exits with. Documented in docs/deployer.md.

use std::fmt;

/// Process exit codes. 10-19 are the release/rollback outcomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Code {
    /// Success (diff: no changes).
    Ok = 0,
    /// `diff`: there are changes (like `git diff --exit-code`).
    Changes = 1,
    /// Bad command line (clap's own code).
    Usage = 2,
    /// Configuration, template or task-definition error: nothing was sent to AWS.
    Config = 3,
    /// `verify`: at least one preflight check failed.
    Preflight = 4,
    /// AWS: no credentials, endpoint unreachable, an API call failed, a resource is missing.
    Aws = 5,
    /// Docker engine, image build or registry push failed.
    Image = 6,
    /// Anything else (a bug): please report it.
    Internal = 9,
    /// release/rollback: a smoke check or the agent gate failed; rolled back by the deployer.
    RolledBackSmoke = 10,
    /// release: ECS rolled back by itself (circuit breaker, alarm, hook timeout).
    RolledBackEcs = 11,
    /// release: a deployment did not finish in time (rolled back).
    TimedOut = 12,
    /// release/rollback: the environment's deploy lock is held by someone else.
    LockHeld = 13,
    /// release: the migration task failed; no service was changed.
    MigrationFailed = 14,
    /// release: Ctrl-C / SIGTERM; in-flight deployments were rolled back.
    Interrupted = 15,
    /// release: another deployment (not this release's) took over a service; nothing was
    /// rolled back by the deployer.
    Superseded = 16,
    /// release/rollback: a rollback (ECS's or the deployer's revert) failed; production may run
    /// a mix of revisions.
    RollbackFailed = 17,
}

impl Code {
    pub fn as_u8(self) -> u8 {
        self as u8
    }
}

/// A failed command: the error chain, an optional hint, and the exit code.
pub struct Failure {
    pub code: Code,
    pub error: anyhow::Error,
    pub hint: Option<String>,
    /// What the command had to say before it failed (`-o json`: printed with the error).
    pub details: Option<serde_json::Value>,
}

impl Failure {
    pub fn new(code: Code, error: impl Into<anyhow::Error>) -> Self {
        Self {
            code,
            error: error.into(),
            hint: None,
            details: None,
        }
    }

    pub fn msg(code: Code, message: impl fmt::Display) -> Self {
        Self::new(code, anyhow::anyhow!("{message}"))
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }

    /// The object `-o json` prints for this failure: the details (if any) with an `error` key.
    pub fn to_json(&self) -> serde_json::Value {
        let error = serde_json::json!({
            "message": format!("{:#}", self.error),
            "hint": self.hint,
            "exit_code": self.code.as_u8(),
        });
        match &self.details {
            Some(serde_json::Value::Object(m)) => {
                let mut m = m.clone();
                m.insert("error".into(), error);
                serde_json::Value::Object(m)
            }
            _ => serde_json::json!({ "error": error }),
        }
    }

    pub fn config(e: crate::config::ConfigError) -> Self {
        let hint = e.hint().map(str::to_string);
        let snippet = e.snippet().map(str::to_string);
        let mut f = Self::new(Code::Config, e);
        f.hint = match (snippet, hint) {
            (Some(s), Some(h)) => Some(format!("{h}\n  | {}", s.trim_end())),
            (Some(s), None) => Some(format!("  | {}", s.trim_end())),
            (None, h) => h,
        };
        f
    }

    pub fn render(e: crate::taskdef::render::RenderError) -> Self {
        Self::new(Code::Config, e)
    }
}

impl fmt::Debug for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {:#}", self.code, self.error)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#}", self.error)?;
        if let Some(h) = &self.hint {
            write!(f, "\nhint: {h}")?;
        }
        Ok(())
    }
}

impl From<crate::config::ConfigError> for Failure {
    fn from(e: crate::config::ConfigError) -> Self {
        Self::config(e)
    }
}

impl From<crate::taskdef::SetupError> for Failure {
    fn from(e: crate::taskdef::SetupError) -> Self {
        match e {
            crate::taskdef::SetupError::Config(c) => Self::config(c),
            crate::taskdef::SetupError::Templates(r) => Self::render(r),
        }
    }
}

impl From<crate::taskdef::render::RenderError> for Failure {
    fn from(e: crate::taskdef::render::RenderError) -> Self {
        Self::render(e)
    }
}

pub type CmdResult<T> = Result<T, Failure>;

/// Attach an exit code to any error.
pub trait OrExit<T> {
    fn or_exit(self, code: Code) -> CmdResult<T>;
}

impl<T, E: Into<anyhow::Error>> OrExit<T> for Result<T, E> {
    fn or_exit(self, code: Code) -> CmdResult<T> {
        self.map_err(|e| Failure::new(code, e))
    }
}
