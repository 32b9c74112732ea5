//! The verbs of the `deployer` CLI, one file each: its clap arguments, its run function and its
//! printing. A command never imports another command; what several share (loading the
//! environment, the AWS config, rendering the environment's task definitions with the release's
//! image) lives here. Errors go back to `main`, which prints them once.

pub mod build;
pub mod completions;
pub mod config;
pub mod diff;
pub mod history;
pub mod lock;
pub mod push;
pub mod release;
pub mod render;
pub mod rollback;
pub mod status;
pub mod verify;

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::Value;

use crate::aws::ecr::{ReleaseImage, resolve_release_image};
use crate::config::{Config, Environment, Overrides};
use crate::engine::Ctx;
use crate::exit::{CmdResult, Code, Failure};
use crate::taskdef::{RenderSet, Rendered, vars::Release};

/// println! that ignores a closed stdout (`deployer render | head`) instead of panicking.
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($t)*);
    }};
}
pub(crate) use out;

/// Render, diff, verify, build, push and release ECS services, with blue/green gates and automatic rollback.
#[derive(Parser)]
#[command(name = "deployer", version, about, long_about = None)]
#[command(after_help = "Examples:
  deployer config show --env staging         # the resolved configuration (secrets redacted)
  deployer render --env staging              # the task definitions that would be registered
  deployer diff --env staging                # what would change against what runs (exit 1 if anything)
  deployer verify --env production           # preflight checks, changes nothing
  deployer build && deployer push --env staging
  deployer release --env staging             # gated blue/green release, rolls back by itself
  deployer completions bash > /etc/bash_completion.d/deployer

Exit codes: 0 ok, 1 diff found changes, 2 usage, 3 config/template, 4 preflight failed,
5 AWS, 6 image build/push, 9 internal; release outcomes 10-19 (see docs/deployer.md).")]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Clone)]
pub struct Global {
    /// Environment from deployer.toml (staging, production, local …).
    #[arg(long, short = 'e', global = true, env = "DEPLOYER_ENV")]
    pub env: Option<String>,
    /// Config file (default: deployer.toml here or in a parent directory).
    #[arg(long, global = true, env = "DEPLOYER_CONFIG")]
    pub config: Option<PathBuf>,
    /// AWS profile (default: the environment's, then the SDK chain).
    #[arg(long, global = true, env = "DEPLOYER_PROFILE")]
    pub profile: Option<String>,
    /// AWS region (default: the environment's, then AWS_REGION).
    #[arg(long, global = true, env = "DEPLOYER_REGION")]
    pub region: Option<String>,
    /// AWS endpoint URL, e.g. an emulator (default: the environment's, then AWS_ENDPOINT_URL).
    #[arg(long, global = true, env = "DEPLOYER_ENDPOINT_URL")]
    pub endpoint_url: Option<String>,
    /// Output format of results on stdout.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Output::Text, env = "DEPLOYER_OUTPUT")]
    pub output: Output,
    /// More log output on stderr (-v info, -vv debug).
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors on stderr.
    #[arg(long, short = 'q', global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// No colours (also NO_COLOR).
    #[arg(long, global = true)]
    pub no_color: bool,
}

impl Global {
    pub fn json(&self) -> bool {
        self.output == Output::Json
    }
}

#[derive(Copy, Clone, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

#[derive(Subcommand)]
pub enum Command {
    /// Show the resolved configuration.
    #[command(subcommand)]
    Config(config::ConfigCmd),
    /// Render task definitions: the exact JSON that would be registered.
    #[command(after_help = render::EXAMPLES)]
    Render(render::RenderArgs),
    /// Diff rendered task definitions against the running ones (exit 0 none, 1 changes).
    #[command(after_help = diff::EXAMPLES)]
    Diff(diff::DiffArgs),
    /// Preflight checks; changes nothing (exit 0 pass, 4 a check failed).
    #[command(after_help = verify::EXAMPLES)]
    Verify(verify::VerifyArgs),
    /// Build the production image with the Docker engine, tagged <ecr repository>:<git sha>.
    #[command(after_help = build::EXAMPLES)]
    Build(build::BuildArgs),
    /// Push the built image to the environment's ECR repository (skips if already there).
    #[command(after_help = push::EXAMPLES)]
    Push(push::PushArgs),
    /// Release to an environment: migration, blue/green with smoke-test gates, automatic rollback.
    #[command(after_help = release::EXAMPLES)]
    Release(release::ReleaseCmd),
    /// Roll an environment back: the in-flight deployment, or to the previous (or a named) release.
    #[command(after_help = rollback::EXAMPLES)]
    Rollback(rollback::RollbackCmd),
    /// The environment's lock, services, in-flight deployments (paused hooks) and recent releases.
    #[command(after_help = status::EXAMPLES)]
    Status(status::StatusCmd),
    /// Past releases from the audit table, newest first.
    #[command(after_help = history::EXAMPLES)]
    History(history::HistoryCmd),
    /// Inspect or remove the environment's deploy lock.
    #[command(subcommand, after_help = lock::EXAMPLES)]
    Lock(lock::LockCmd),
    /// Print shell completions.
    #[command(after_help = completions::EXAMPLES)]
    Completions(completions::CompletionsArgs),
}

/// Runs the parsed command; the exit code on success, the failure for `main` to print.
pub async fn run(cli: Cli) -> CmdResult<Code> {
    let g = &cli.global;
    match &cli.command {
        Command::Completions(a) => completions::run(a),
        Command::Config(c) => config::run(g, c),
        Command::Render(a) => render::run(g, a).await,
        Command::Diff(a) => diff::run(g, a).await,
        Command::Verify(a) => verify::run(g, a).await,
        Command::Build(a) => build::run(g, a).await,
        Command::Push(a) => push::run(g, a).await,
        Command::Release(a) => release::run(g, a).await,
        Command::Rollback(a) => rollback::run(g, a).await,
        Command::Status(a) => status::run(g, a).await,
        Command::History(a) => history::run(g, a).await,
        Command::Lock(a) => lock::run(g, a).await,
    }
}

/// `--git-sha` and `--image`, shared by the commands that render.
#[derive(Args, Clone, Debug)]
pub struct ReleaseArgs {
    /// Git sha of the release (default: GITHUB_SHA, then `git rev-parse HEAD`).
    #[arg(long, env = "DEPLOYER_GIT_SHA")]
    pub git_sha: Option<String>,
    /// Image URI to use instead of looking up <ecr repository>:<git sha> in ECR.
    #[arg(long, env = "DEPLOYER_IMAGE")]
    pub image: Option<String>,
}

// ------------------------------------------------------------------ shared

pub(crate) fn print_json(v: &Value) {
    let mut out = std::io::stdout().lock();
    let _ = serde_json::to_writer_pretty(&mut out, v);
    let _ = writeln!(out);
}

pub(crate) fn load_config(g: &Global) -> CmdResult<Config> {
    let path = crate::config::locate(g.config.as_deref());
    Ok(crate::config::load(&path)?)
}

/// The config with the environment's CLI overrides applied, and the environment's name.
pub(crate) fn load_env(g: &Global) -> CmdResult<(Config, String)> {
    let mut cfg = load_config(g)?;
    let Some(name) = g.env.clone() else {
        let known: Vec<&str> = cfg.environments.keys().map(String::as_str).collect();
        return Err(
            Failure::msg(Code::Config, "no environment given").with_hint(format!(
                "pass --env <{}> (or DEPLOYER_ENV)",
                known.join("|")
            )),
        );
    };
    cfg.environment(&name)?;
    cfg.apply_overrides(
        &name,
        &Overrides {
            region: g.region.clone(),
            profile: g.profile.clone(),
            endpoint_url: g.endpoint_url.clone(),
        },
    );
    Ok((cfg, name))
}

pub(crate) fn env_of<'a>(cfg: &'a Config, name: &str) -> &'a Environment {
    cfg.environments.get(name).expect("checked by load_env")
}

/// The AWS config for an environment, with credentials checked.
pub(crate) async fn sdk_for(env: &Environment) -> CmdResult<aws_config::SdkConfig> {
    let sdk = crate::aws::load(&crate::aws::AwsOptions::for_environment(env)).await;
    crate::aws::preflight(&sdk).await?;
    Ok(sdk)
}

/// The run context of the commands that read or change releases (release, rollback, status,
/// history, lock). `quiet` silences progress lines.
pub(crate) async fn engine_ctx(g: &Global, quiet: bool) -> CmdResult<Ctx> {
    let (cfg, name) = load_env(g)?;
    let sdk = sdk_for(env_of(&cfg, &name)).await?;
    Ok(Ctx::new(
        cfg,
        &name,
        &sdk,
        quiet,
        crate::engine::cancel_on_signals(),
    )?)
}

/// The release being rendered: its git sha, version and (given) image.
pub(crate) fn release_info(cfg: &Config, args: &ReleaseArgs) -> CmdResult<Release> {
    let sha = crate::config::git::git_sha(args.git_sha.as_deref(), &cfg.root)?;
    Ok(Release {
        version: crate::config::git::version(&cfg.root, &sha),
        git_sha: sha,
        image: args.image.clone(),
        release_id: None,
    })
}

/// What `render` and `diff` work on: the environment, its AWS config when needed, and the
/// rendered task definitions.
pub(crate) struct RenderedEnv {
    pub cfg: Config,
    pub name: String,
    pub sdk: Option<aws_config::SdkConfig>,
    pub defs: Vec<Rendered>,
}

/// Renders the selected services (`migration` for the migration task) with the release's image:
/// the given one, else `<repository uri>@<digest>` from ECR, else the tag (with a warning).
pub(crate) async fn render_env(
    g: &Global,
    only: Option<&str>,
    args: &ReleaseArgs,
    need_aws: bool,
) -> CmdResult<RenderedEnv> {
    let (cfg, name) = load_env(g)?;
    let env = env_of(&cfg, &name);
    if let Some(s) = only
        && s != "migration"
        && !env.services.iter().any(|x| x.name == s)
    {
        let known: Vec<&str> = env.services.iter().map(|s| s.name.as_str()).collect();
        return Err(Failure::msg(
            Code::Config,
            format!("service `{s}` is not in environment `{name}`"),
        )
        .with_hint(format!("services: {}", known.join(", "))));
    }
    let set = RenderSet::new(&cfg, &name, env)?;
    let mut release = release_info(&cfg, args)?;
    // Render needs AWS only to look the image up; diff always does.
    let sdk = if need_aws || release.image.is_none() {
        let sdk = sdk_for(env).await?;
        if release.image.is_none() {
            let ecr = aws_sdk_ecr::Client::new(&sdk);
            let found =
                resolve_release_image(&ecr, cfg.ecr_repository(env), None, &release.git_sha)
                    .await?;
            release.image = Some(match found {
                ReleaseImage::Found { pinned, .. } => pinned,
                other => {
                    tracing::warn!("{} is not in ECR yet; using the tag", other.image());
                    other.image().to_owned()
                }
            });
        }
        Some(sdk)
    } else {
        None
    };
    let defs = set.render_all(&release, only)?;
    drop(set);
    Ok(RenderedEnv {
        cfg,
        name,
        sdk,
        defs,
    })
}

/// How a release-side run ended, as the command's result: the JSON summary on success (with
/// `-o json`), else the failure with that summary as its details.
pub(crate) fn engine_result(
    g: &Global,
    ctx: &Ctx,
    ended: crate::engine::Step<()>,
) -> CmdResult<Code> {
    use crate::engine::Outcome;
    ctx.report.end_group();
    match ended {
        Ok(()) => {
            if g.json() {
                out!("{}", run_summary(ctx, Outcome::Succeeded));
            }
            Ok(Code::Ok)
        }
        Err(stop) => Err(Failure::msg(stop.outcome.code(), stop.reason)
            .with_details(run_summary(ctx, stop.outcome))),
    }
}

/// The machine-readable result of a release or rollback (`-o json`).
fn run_summary(ctx: &Ctx, outcome: crate::engine::Outcome) -> Value {
    let stats = ctx.stats.lock().expect("stats").clone();
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
}
