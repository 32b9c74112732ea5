//! `deployer release`: a gated blue/green release of every service, rolled back by itself when
//! anything fails; `--resume` re-attaches to an unfinished one.

use std::time::Duration;

use clap::Args;

use super::{Global, engine_ctx, engine_result};
use crate::engine::{release, resume};
use crate::exit::{CmdResult, Code};

pub const EXAMPLES: &str = "Examples:
  deployer release --env staging                          # HEAD's image, built+pushed if missing
  deployer release --env staging --no-build               # exit 4 if the image is not in ECR
  deployer release --env staging --image <repo>:<tag>     # a given image, never built
  deployer release --env production --wait-lock 10m       # queue behind a running release
  deployer release --env staging --resume                 # finish a release whose CI job died

Exit codes: 0 success, 3 config error, 4 preflight failed (incl. image missing with
--no-build), 5 AWS error, 6 image build/push failed,
10 rolled back after a failed smoke check/gate, 11 rolled back by ECS (circuit breaker, alarm,
hook timeout), 12 timed out, 13 lock held, 14 migration failed, 15 interrupted (see docs/release.md).";

#[derive(Args, Clone, Debug)]
pub struct ReleaseCmd {
    /// Git sha of the release (default: $GITHUB_SHA, else `git rev-parse HEAD`).
    #[arg(long, env = "DEPLOYER_GIT_SHA")]
    pub git_sha: Option<String>,
    /// Deploy this image URI instead of `<ecr repository>:<git sha>`.
    #[arg(long, env = "DEPLOYER_IMAGE")]
    pub image: Option<String>,
    /// Fail preflight (exit 4) when the image for the sha is not in ECR, instead of building
    /// and pushing it (project.dockerfile / project.context) before taking the lock.
    #[arg(long, conflicts_with = "image")]
    pub no_build: bool,
    /// Re-attach to an unfinished release of this environment (from another process or CI job).
    #[arg(long)]
    pub resume: bool,
    /// Wait up to this long for a deploy lock held by someone else (e.g. 5m).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub wait_lock: Option<Duration>,
}

pub async fn run(g: &Global, cmd: &ReleaseCmd) -> CmdResult<Code> {
    let ctx = engine_ctx(g, g.quiet).await?;
    let ended = if cmd.resume {
        resume::resume(&ctx, cmd.wait_lock).await
    } else {
        let git_sha = crate::config::git::git_sha(cmd.git_sha.as_deref(), &ctx.cfg.root)?;
        release::release(
            &ctx,
            &release::ReleaseArgs {
                git_sha,
                image: cmd.image.clone(),
                no_build: cmd.no_build,
                wait_lock: cmd.wait_lock,
            },
        )
        .await
    };
    engine_result(g, &ctx, ended)
}
