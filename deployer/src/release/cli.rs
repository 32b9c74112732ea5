//! The command-line side of release, rollback, status, history and lock: flags (clap) and the
//! glue the `deployer` binary calls. Returns the process exit code.

use std::time::Duration;

use clap::{Args, Subcommand};
use tokio::sync::watch;

use super::Outcome;
use super::flow::{Ctx, ReleaseArgs};
use crate::config::Config;

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

#[derive(Args, Clone, Debug)]
pub struct RollbackCmd {
    /// Release id, git sha (7+ characters) or task-definition revision (family:N) to go back to
    /// (default: the previous successful release).
    #[arg(long)]
    pub to: Option<String>,
    #[arg(long, value_parser = humantime::parse_duration)]
    pub wait_lock: Option<Duration>,
}

#[derive(Args, Clone, Debug)]
pub struct HistoryCmd {
    /// How many releases to show.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
}

#[derive(Subcommand, Clone, Debug)]
pub enum LockCmd {
    /// Who holds the environment's deploy lock.
    Status,
    /// Remove the lock (only with --force: make sure its holder is gone).
    Release {
        #[arg(long)]
        force: bool,
    },
}

pub const RELEASE_EXAMPLES: &str = "Examples:
  deployer release --env staging                          # HEAD's image, built+pushed if missing
  deployer release --env staging --no-build               # exit 4 if the image is not in ECR
  deployer release --env staging --image <repo>:<tag>     # a given image, never built
  deployer release --env production --wait-lock 10m       # queue behind a running release
  deployer release --env staging --resume                 # finish a release whose CI job died

Exit codes: 0 success, 3 config error, 4 preflight failed (incl. image missing with
--no-build), 5 AWS error, 6 image build/push failed,
10 rolled back after a failed smoke check/gate, 11 rolled back by ECS (circuit breaker, alarm,
hook timeout), 12 timed out, 13 lock held, 14 migration failed, 15 interrupted (see docs/release.md).";

pub const ROLLBACK_EXAMPLES: &str = "Examples:
  deployer rollback --env production                      # in-flight: roll it back; else previous release
  deployer rollback --env production --to 3f2c1d0         # a named git sha
  deployer rollback --env staging --to orchestrator:41    # a task-definition revision";

/// Ctrl-C / SIGTERM flip the returned receiver to true (the release rolls back and cleans up).
pub fn cancel_on_signals() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let mut term = match signal(SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => return,
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        eprintln!("interrupted: rolling back what is in flight, then releasing the lock");
        let _ = tx.send(true);
    });
    rx
}

fn ctx(cfg: Config, env: &str, sdk: &aws_config::SdkConfig, quiet: bool) -> Result<Ctx, u8> {
    Ctx::new(cfg, env, sdk, quiet, cancel_on_signals()).map_err(|e| {
        eprintln!("error: {e}");
        Outcome::ConfigError.exit_code() as u8
    })
}

fn code(o: Outcome) -> u8 {
    o.code().as_u8()
}

/// Maps the u8 these functions return back to the CLI's exit code type.
pub fn to_code(n: u8) -> crate::exit::Code {
    use crate::exit::Code;
    [
        Code::Ok,
        Code::Changes,
        Code::Usage,
        Code::Config,
        Code::Preflight,
        Code::Aws,
        Code::Image,
        Code::Internal,
        Code::RolledBackSmoke,
        Code::RolledBackEcs,
        Code::TimedOut,
        Code::LockHeld,
        Code::MigrationFailed,
        Code::Interrupted,
    ]
    .into_iter()
    .find(|c| c.as_u8() == n)
    .unwrap_or(Code::Internal)
}

pub async fn release(
    cfg: Config,
    env: &str,
    sdk: &aws_config::SdkConfig,
    quiet: bool,
    json: bool,
    cmd: &ReleaseCmd,
) -> u8 {
    let ctx = match ctx(cfg, env, sdk, quiet) {
        Ok(c) => c,
        Err(c) => return c,
    };
    let outcome = super::flow::release(
        &ctx,
        &ReleaseArgs {
            git_sha: cmd.git_sha.clone(),
            image: cmd.image.clone(),
            no_build: cmd.no_build,
            resume: cmd.resume,
            wait_lock: cmd.wait_lock,
        },
    )
    .await;
    print_result(&ctx, outcome, json);
    code(outcome)
}

pub async fn rollback(
    cfg: Config,
    env: &str,
    sdk: &aws_config::SdkConfig,
    quiet: bool,
    json: bool,
    cmd: &RollbackCmd,
) -> u8 {
    let ctx = match ctx(cfg, env, sdk, quiet) {
        Ok(c) => c,
        Err(c) => return c,
    };
    let outcome = crate::rollback::rollback(&ctx, cmd.to.as_deref(), cmd.wait_lock).await;
    print_result(&ctx, outcome, json);
    code(outcome)
}

fn print_result(ctx: &Ctx, outcome: Outcome, json: bool) {
    if json {
        let stats = ctx.stats.lock().expect("stats").clone();
        println!(
            "{}",
            serde_json::json!({
                "env": ctx.env_name,
                "outcome": outcome,
                "exit_code": outcome.exit_code(),
                "hook_to_action_ms": stats.hook_to_action_ms,
                "hook_detect_ms": stats.hook_detect_ms,
                "polls": stats.polls,
                "smoke": stats.smoke.iter().map(|(p, r)| serde_json::json!({"where": p, "result": r})).collect::<Vec<_>>(),
                "duration_s": ctx.report.elapsed_s(),
            })
        );
    }
}

pub async fn status(cfg: Config, env: &str, sdk: &aws_config::SdkConfig, json: bool) -> u8 {
    let ctx = match ctx(cfg, env, sdk, true) {
        Ok(c) => c,
        Err(c) => return c,
    };
    match crate::status::collect(&ctx).await {
        Ok(s) => {
            if json {
                println!("{}", serde_json::to_string_pretty(&s).unwrap_or_default());
            } else {
                print!("{}", crate::status::render_text(&s));
            }
            0
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            code(Outcome::Failed)
        }
    }
}

pub async fn history(
    cfg: Config,
    env: &str,
    sdk: &aws_config::SdkConfig,
    json: bool,
    cmd: &HistoryCmd,
) -> u8 {
    let ctx = match ctx(cfg, env, sdk, true) {
        Ok(c) => c,
        Err(c) => return c,
    };
    match ctx.audit().list(env, cmd.limit).await {
        Ok(records) => {
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&records).unwrap_or_default()
                );
            } else {
                print!("{}", crate::history::render_text(env, &records));
            }
            0
        }
        Err(e) => {
            eprintln!(
                "error: reading the audit table {}: {e:#}",
                ctx.env.audit_table
            );
            code(Outcome::Failed)
        }
    }
}

pub async fn lock(
    cfg: Config,
    env: &str,
    sdk: &aws_config::SdkConfig,
    json: bool,
    cmd: &LockCmd,
) -> u8 {
    let ctx = match ctx(cfg, env, sdk, true) {
        Ok(c) => c,
        Err(c) => return c,
    };
    let lock = ctx.lock();
    match cmd {
        LockCmd::Status => match lock.status().await {
            Ok(info) => {
                if json {
                    println!("{}", serde_json::json!({ "env": env, "lock": info }));
                } else {
                    match info {
                        Some(i) if !i.expired(crate::lock::now_epoch()) => {
                            println!("lock for {env}: {}", i.describe())
                        }
                        Some(i) => println!("lock for {env}: expired ({})", i.describe()),
                        None => println!("lock for {env}: free"),
                    }
                }
                0
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                code(Outcome::Failed)
            }
        },
        LockCmd::Release { force } => {
            if !force {
                eprintln!(
                    "error: refusing to remove the deploy lock without --force\nhint: check `deployer lock status --env {env}` first; the holder's release may still be running"
                );
                return code(Outcome::ConfigError);
            }
            match lock.force_release().await {
                Ok(Some(i)) => {
                    println!("removed the lock for {env} ({})", i.describe());
                    0
                }
                Ok(None) => {
                    println!("the lock for {env} was already free");
                    0
                }
                Err(e) => {
                    eprintln!("error: {e:#}");
                    code(Outcome::Failed)
                }
            }
        }
    }
}
