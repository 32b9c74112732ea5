//! `deployer rollback`: the in-flight deployment, or back to the previous (or a named) release.

use std::time::Duration;

use clap::Args;

use super::{Global, engine_ctx, engine_result};
use crate::engine::rollback;
use crate::exit::{CmdResult, Code};

pub const EXAMPLES: &str = "Examples:
  deployer rollback --env production                      # in-flight: roll it back; else previous release
  deployer rollback --env production --to 3f2c1d0         # a named git sha
  deployer rollback --env staging --to orchestrator:41    # a task-definition revision";

#[derive(Args, Clone, Debug)]
pub struct RollbackCmd {
    /// Release id, git sha (7+ characters) or task-definition revision (family:N) to go back to
    /// (default: the previous successful release).
    #[arg(long)]
    pub to: Option<String>,
    /// Wait up to this long for a deploy lock held by someone else (e.g. 5m).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub wait_lock: Option<Duration>,
}

pub async fn run(g: &Global, cmd: &RollbackCmd) -> CmdResult<Code> {
    let ctx = engine_ctx(g, g.quiet).await?;
    let ended = rollback::rollback(&ctx, cmd.to.as_deref(), cmd.wait_lock).await;
    engine_result(g, &ctx, ended)
}
