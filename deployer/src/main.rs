//! `deployer`: the CLI. Thin: parses flags, loads the config, calls the library, prints.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use serde_json::{Value, json};

use deployer::config::{self, Config, Environment, Overrides};

/// println! that ignores a closed stdout (`deployer render | head`) instead of panicking.
macro_rules! out {
    ($($t:tt)*) => {{
        let _ = writeln!(std::io::stdout().lock(), $($t)*);
    }};
}
use deployer::exit::{CmdResult, Code, Failure};
use deployer::vars::{self, Release};
use deployer::{aws, diff, image, render, verify};

/// Render, diff, verify, build, push and release ECS services, with blue/green gates and automatic rollback.
#[derive(Parser)]
#[command(name = "deployer", version, about, long_about = None)]
#[command(after_help = "Examples:
  deployer config show --env staging         # the resolved configuration (secrets redacted)
  deployer render --env staging              # the task definitions that would be registered
  deployer diff --env staging                # what would change against what runs (exit 1 if anything)
  deployer verify --env production           # preflight checks, changes nothing
  deployer build && deployer push --env staging
  deployer completions bash > /etc/bash_completion.d/deployer

Exit codes: 0 ok, 1 diff found changes, 2 usage, 3 config/template, 4 preflight failed,
5 AWS, 6 image build/push, 9 internal; release outcomes 10-19 (see docs/deployer.md).")]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct Global {
    /// Environment from deployer.toml (staging, production, local …).
    #[arg(long, short = 'e', global = true, env = "DEPLOYER_ENV")]
    env: Option<String>,
    /// Config file (default: deployer.toml here or in a parent directory).
    #[arg(long, global = true, env = "DEPLOYER_CONFIG")]
    config: Option<PathBuf>,
    /// AWS profile (default: the environment's, then the SDK chain).
    #[arg(long, global = true, env = "DEPLOYER_PROFILE")]
    profile: Option<String>,
    /// AWS region (default: the environment's, then AWS_REGION).
    #[arg(long, global = true, env = "DEPLOYER_REGION")]
    region: Option<String>,
    /// AWS endpoint URL, e.g. an emulator (default: the environment's, then AWS_ENDPOINT_URL).
    #[arg(long, global = true, env = "DEPLOYER_ENDPOINT_URL")]
    endpoint_url: Option<String>,
    /// Output format of results on stdout.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Output::Text, env = "DEPLOYER_OUTPUT")]
    output: Output,
    /// More log output on stderr (-v info, -vv debug).
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Only errors on stderr.
    #[arg(long, short = 'q', global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// No colours (also NO_COLOR).
    #[arg(long, global = true)]
    no_color: bool,
}

#[derive(Copy, Clone, PartialEq, Eq, ValueEnum)]
enum Output {
    Text,
    Json,
}

#[derive(Args, Clone)]
struct ReleaseArgs {
    /// Git sha of the release (default: GITHUB_SHA, then `git rev-parse HEAD`).
    #[arg(long, env = "DEPLOYER_GIT_SHA")]
    git_sha: Option<String>,
    /// Image URI to use instead of looking up <ecr repository>:<git sha> in ECR.
    #[arg(long, env = "DEPLOYER_IMAGE")]
    image: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Show the resolved configuration.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Render task definitions: the exact JSON that would be registered.
    #[command(after_help = "Examples:
  deployer render --env staging                       # every service, as {\"<service>\": <definition>}
  deployer render --env staging --service orchestrator
  deployer render --env staging --image 123.dkr.ecr.eu-west-1.amazonaws.com/platform@sha256:…")]
    Render {
        /// Only this service (`migration` for the migration task).
        #[arg(long, short = 's')]
        service: Option<String>,
        #[command(flatten)]
        release: ReleaseArgs,
    },
    /// Diff rendered task definitions against the running ones (exit 0 none, 1 changes).
    #[command(after_help = "Examples:
  deployer diff --env staging                      # all services; exit 1 when anything differs
  deployer diff --env staging --service orchestrator --no-color
  deployer diff --env production -o json           # machine-readable, with needs_deployment per service")]
    Diff {
        /// Only this service.
        #[arg(long, short = 's')]
        service: Option<String>,
        #[command(flatten)]
        release: ReleaseArgs,
    },
    /// Preflight checks; changes nothing (exit 0 pass, 4 a check failed).
    #[command(after_help = "Examples:
  deployer verify --env staging
  deployer verify --env production --git-sha 3f2c1d0 -o json")]
    Verify {
        #[command(flatten)]
        release: ReleaseArgs,
        /// Do not fail when the image is not in ECR yet (a release would build it).
        #[arg(long)]
        allow_missing_image: bool,
    },
    /// Build the production image with the Docker engine, tagged <ecr repository>:<git sha>.
    #[command(after_help = "Examples:
  deployer build                                   # Dockerfile.production, linux/amd64, tag <repo>:<HEAD sha>
  deployer build --git-sha 3f2c1d0 --platform linux/arm64
  CI=true deployer build -v                        # plain log lines (no spinner), whole build log")]
    Build {
        #[arg(long, env = "DEPLOYER_GIT_SHA")]
        git_sha: Option<String>,
        /// Target platform.
        #[arg(long)]
        platform: Option<String>,
        /// Build context (default: project.context).
        #[arg(long)]
        context: Option<PathBuf>,
        /// Dockerfile (default: project.dockerfile), inside the context.
        #[arg(long)]
        dockerfile: Option<PathBuf>,
    },
    /// Push the built image to the environment's ECR repository (skips if already there).
    #[command(after_help = "Examples:
  deployer push --env staging                      # pushes <repo>:<HEAD sha>, prints the digest
  deployer push --env local --git-sha 3f2c1d0 -o json")]
    Push {
        #[arg(long, env = "DEPLOYER_GIT_SHA")]
        git_sha: Option<String>,
    },
    /// Release to an environment: migration, blue/green with smoke-test gates, automatic rollback.
    #[command(after_help = deployer::release::cli::RELEASE_EXAMPLES)]
    Release(deployer::release::cli::ReleaseCmd),
    /// Roll an environment back: the in-flight deployment, or to the previous (or a named) release.
    #[command(after_help = deployer::release::cli::ROLLBACK_EXAMPLES)]
    Rollback(deployer::release::cli::RollbackCmd),
    /// The environment's lock, services, in-flight deployments (paused hooks) and recent releases.
    #[command(after_help = "Examples:
  deployer status --env staging
  deployer status --env production -o json")]
    Status,
    /// Past releases from the audit table, newest first.
    #[command(after_help = "Examples:
  deployer history --env production --limit 5
  deployer history --env staging -o json")]
    History(deployer::release::cli::HistoryCmd),
    /// Inspect or remove the environment's deploy lock.
    #[command(
        subcommand,
        after_help = "Examples:
  deployer lock status --env staging
  deployer lock release --env staging --force"
    )]
    Lock(deployer::release::cli::LockCmd),
    /// Print shell completions.
    #[command(after_help = "Examples:
  deployer completions bash > ~/.local/share/bash-completion/completions/deployer
  deployer completions zsh > ~/.zfunc/_deployer")]
    Completions { shell: clap_complete::Shell },
}

#[derive(Subcommand)]
enum ConfigCmd {
    /// Print the resolved configuration of an environment (file < DEPLOYER_* < flags), secrets redacted.
    #[command(after_help = "Examples:
  deployer config show --env staging
  DEPLOYER_ENVIRONMENTS__STAGING__CLUSTER=other deployer config show --env staging -o json")]
    Show,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() {
                Code::Usage.as_u8()
            } else {
                0
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    if cli.global.no_color || std::env::var_os("NO_COLOR").is_some() {
        console::set_colors_enabled(false);
        console::set_colors_enabled_stderr(false);
    }
    init_logging(&cli.global);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(Code::Internal.as_u8());
        }
    };
    let output = cli.global.output;
    match rt.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code.as_u8()),
        Err(f) => {
            let msg = format!("{:#}", f.error);
            eprintln!(
                "{} {msg}",
                console::style("error:").red().bold().for_stderr()
            );
            if let Some(h) = &f.hint {
                eprintln!("{} {h}", console::style("hint:").yellow().for_stderr());
            }
            if output == Output::Json {
                out!(
                    "{}",
                    json!({"error": {"message": msg, "hint": f.hint, "exit_code": f.code.as_u8()}})
                );
            }
            ExitCode::from(f.code.as_u8())
        }
    }
}

fn init_logging(g: &Global) {
    let level = if g.quiet {
        "error"
    } else {
        match g.verbose {
            0 => "warn",
            1 => "info",
            _ => "debug",
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("DEPLOYER_LOG").unwrap_or_else(|_| {
        // The SDK's own warnings (e.g. each credential provider that came up empty) repeat
        // what the deployer reports as an error; show them from -vv on.
        let others = if g.verbose >= 2 { "debug" } else { "error" };
        tracing_subscriber::EnvFilter::new(format!("deployer={level},{others}"))
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(console::colors_enabled_stderr())
        .with_target(false)
        .try_init();
}

async fn run(cli: Cli) -> CmdResult<Code> {
    let g = cli.global;
    match cli.command {
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "deployer",
                &mut std::io::stdout(),
            );
            Ok(Code::Ok)
        }
        Command::Config(ConfigCmd::Show) => config_show(&g),
        Command::Render { service, release } => cmd_render(&g, service.as_deref(), &release).await,
        Command::Diff { service, release } => cmd_diff(&g, service.as_deref(), &release).await,
        Command::Verify {
            release,
            allow_missing_image,
        } => cmd_verify(&g, &release, allow_missing_image).await,
        Command::Build {
            git_sha,
            platform,
            context,
            dockerfile,
        } => cmd_build(&g, git_sha.as_deref(), platform, context, dockerfile).await,
        Command::Push { git_sha } => cmd_push(&g, git_sha.as_deref()).await,
        Command::Release(cmd) => {
            let (cfg, name, sdk) = release_env(&g).await?;
            let json = g.output == Output::Json;
            let code = deployer::release::cli::release(cfg, &name, &sdk, g.quiet, json, &cmd).await;
            Ok(deployer::release::cli::to_code(code))
        }
        Command::Rollback(cmd) => {
            let (cfg, name, sdk) = release_env(&g).await?;
            let json = g.output == Output::Json;
            let code =
                deployer::release::cli::rollback(cfg, &name, &sdk, g.quiet, json, &cmd).await;
            Ok(deployer::release::cli::to_code(code))
        }
        Command::Status => {
            let (cfg, name, sdk) = release_env(&g).await?;
            let code =
                deployer::release::cli::status(cfg, &name, &sdk, g.output == Output::Json).await;
            Ok(deployer::release::cli::to_code(code))
        }
        Command::History(cmd) => {
            let (cfg, name, sdk) = release_env(&g).await?;
            let code =
                deployer::release::cli::history(cfg, &name, &sdk, g.output == Output::Json, &cmd)
                    .await;
            Ok(deployer::release::cli::to_code(code))
        }
        Command::Lock(cmd) => {
            let (cfg, name, sdk) = release_env(&g).await?;
            let code =
                deployer::release::cli::lock(cfg, &name, &sdk, g.output == Output::Json, &cmd)
                    .await;
            Ok(deployer::release::cli::to_code(code))
        }
    }
}

// ------------------------------------------------------------------ shared

fn load_config(g: &Global) -> CmdResult<Config> {
    let path = config::locate(g.config.as_deref());
    Ok(config::load(&path)?)
}

/// The config with the environment's CLI overrides applied, and the environment's name.
fn load_env(g: &Global) -> CmdResult<(Config, String)> {
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

fn env_of<'a>(cfg: &'a Config, name: &str) -> &'a Environment {
    cfg.environments.get(name).expect("checked by load_env")
}

/// Config, environment name and SDK config for the release-side commands (issue 5).
async fn release_env(g: &Global) -> CmdResult<(Config, String, aws_config::SdkConfig)> {
    let (cfg, name) = load_env(g)?;
    let sdk = sdk_for(env_of(&cfg, &name)).await?;
    Ok((cfg, name, sdk))
}

async fn sdk_for(env: &Environment) -> CmdResult<aws_config::SdkConfig> {
    let sdk = aws::load(&aws::AwsOptions::for_environment(env)).await;
    aws::preflight(&sdk).await?;
    Ok(sdk)
}

fn release_info(cfg: &Config, args: &ReleaseArgs) -> CmdResult<Release> {
    let sha = vars::git_sha(args.git_sha.as_deref(), &cfg.root)?;
    let version = vars::version(&cfg.root, &sha);
    Ok(Release {
        git_sha: sha,
        version,
        image: args.image.clone(),
    })
}

/// The release's image: the given one, else `<repository uri>@<digest>` from ECR, else the tag.
async fn resolve_image(
    cfg: &Config,
    env: &Environment,
    sdk: &aws_config::SdkConfig,
    release: &mut Release,
) -> CmdResult<()> {
    if release.image.is_some() {
        return Ok(());
    }
    let ecr = aws_sdk_ecr::Client::new(sdk);
    let repo = cfg.ecr_repository(env);
    let uri = image::repository_uri(&ecr, repo).await?;
    release.image = Some(
        match image::ecr_image(&ecr, repo, &release.git_sha).await? {
            Some((digest, _)) => format!("{uri}@{digest}"),
            None => {
                tracing::warn!("{uri}:{} is not in ECR yet; using the tag", release.git_sha);
                format!("{uri}:{}", release.git_sha)
            }
        },
    );
    Ok(())
}

fn print_json(v: &Value) {
    let mut out = std::io::stdout().lock();
    let _ = serde_json::to_writer_pretty(&mut out, v);
    let _ = writeln!(out);
}

// ------------------------------------------------------------------ commands

fn config_show(g: &Global) -> CmdResult<Code> {
    let (cfg, name) = load_env(g)?;
    let env = env_of(&cfg, &name);
    let view = json!({
        "source": cfg.source,
        "project": cfg.project,
        "environment": name,
        "settings": env,
    });
    match g.output {
        Output::Json => print_json(&view),
        Output::Text => {
            #[derive(serde::Serialize)]
            struct View<'a> {
                project: &'a config::Project,
                environments: std::collections::BTreeMap<&'a str, &'a Environment>,
            }
            let v = View {
                project: &cfg.project,
                environments: [(name.as_str(), env)].into_iter().collect(),
            };
            let text = toml::to_string_pretty(&v).map_err(|e| {
                Failure::msg(
                    Code::Internal,
                    format!("cannot print the config as TOML: {e}"),
                )
            })?;
            out!(
                "# resolved from {} (file < DEPLOYER_* < flags; secrets redacted)\n{text}",
                cfg.source.display()
            );
        }
    }
    Ok(Code::Ok)
}

/// Renders the selected services: (service name, template, definition).
async fn render_all(
    g: &Global,
    only: Option<&str>,
    args: &ReleaseArgs,
    need_aws: bool,
) -> CmdResult<(
    Config,
    String,
    Option<aws_config::SdkConfig>,
    Vec<(String, String, Value)>,
)> {
    let (cfg, name) = load_env(g)?;
    let env = env_of(&cfg, &name);
    let renderer = render::Renderer::new(&cfg.templates_dir())?;
    let tf = vars::tf_outputs(&cfg, env)?;
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
    let mut release = release_info(&cfg, args)?;
    // Render needs AWS only to look the image up; diff always does.
    let sdk = if need_aws || release.image.is_none() {
        let sdk = sdk_for(env).await?;
        resolve_image(&cfg, env, &sdk, &mut release).await?;
        Some(sdk)
    } else {
        None
    };
    let mut out = Vec::new();
    for svc in env
        .services
        .iter()
        .filter(|s| only.is_none_or(|o| o == s.name))
    {
        let v = vars::for_service(&cfg, &name, env, Some(svc), &release, tf.as_ref());
        out.push((
            svc.name.clone(),
            svc.template.clone(),
            renderer.render(&svc.template, &v)?,
        ));
    }
    if let Some(m) = &env.migration
        && only == Some("migration")
    {
        let v = vars::for_service(&cfg, &name, env, None, &release, tf.as_ref());
        out.push((
            "migration".into(),
            m.template.clone(),
            renderer.render(&m.template, &v)?,
        ));
    }
    Ok((cfg, name, sdk, out))
}

async fn cmd_render(g: &Global, only: Option<&str>, args: &ReleaseArgs) -> CmdResult<Code> {
    let (_, _, _, defs) = render_all(g, only, args, false).await?;
    if only.is_some() && defs.len() == 1 {
        print_json(&defs[0].2);
    } else {
        let m: serde_json::Map<String, Value> = defs.into_iter().map(|(s, _, d)| (s, d)).collect();
        print_json(&Value::Object(m));
    }
    Ok(Code::Ok)
}

async fn cmd_diff(g: &Global, only: Option<&str>, args: &ReleaseArgs) -> CmdResult<Code> {
    let (cfg, name, sdk, defs) = render_all(g, only, args, true).await?;
    let env = env_of(&cfg, &name);
    let sdk = sdk.expect("diff loads the SDK config");
    let ecs = aws_sdk_ecs::Client::new(&sdk);
    let names: Vec<String> = defs.iter().map(|d| d.0.clone()).collect();
    let mut live_services = Vec::new();
    for chunk in names.chunks(10) {
        let out = ecs
            .describe_services()
            .cluster(&env.cluster)
            .set_services(Some(chunk.to_vec()))
            .send()
            .await
            .map_err(|e| aws::failure("ECS DescribeServices", e))?;
        live_services.extend(out.services().iter().cloned());
    }
    let mut results = Vec::new();
    let mut any = false;
    for (svc_name, _template, rendered) in &defs {
        let svc_cfg = env
            .services
            .iter()
            .find(|s| &s.name == svc_name)
            .expect("rendered from config");
        let live_svc = live_services.iter().find(|s| {
            s.service_name() == Some(svc_name.as_str()) && s.status() != Some("INACTIVE")
        });
        let Some(live_svc) = live_svc else {
            any = true;
            results.push(json!({
                "service": svc_name, "exists": false, "changed": true, "needs_deployment": true,
                "diff": diff::unified(&Value::Null, &diff::normalise(rendered), "(no service)", "rendered"),
                "summary": format!("service {svc_name} does not exist in cluster {}; create it (terraform) before releasing", env.cluster),
            }));
            continue;
        };
        let td_arn = live_svc.task_definition().unwrap_or_default().to_string();
        let raw = aws::RawResponse::default();
        ecs.describe_task_definition()
            .task_definition(&td_arn)
            .include(aws_sdk_ecs::types::TaskDefinitionField::Tags)
            .customize()
            .interceptor(raw.clone())
            .send()
            .await
            .map_err(|e| aws::failure(&format!("ECS DescribeTaskDefinition {td_arn}"), e))?;
        let live_json = raw.json().ok_or_else(|| {
            Failure::msg(Code::Aws, "DescribeTaskDefinition returned no JSON body")
        })?;
        let live = diff::normalise(diff::live_definition(&live_json));
        let want = diff::normalise(rendered);
        let revision = td_arn.rsplit('/').next().unwrap_or(&td_arn).to_string();
        let text = diff::unified(&live, &want, &format!("live {revision}"), "rendered");
        let fields = diff::changed_fields(&live, &want);
        let mut service_changes = Vec::new();
        if live_svc.desired_count() != svc_cfg.desired_count as i32 {
            service_changes.push(format!(
                "desiredCount {} → {}",
                live_svc.desired_count(),
                svc_cfg.desired_count
            ));
        }
        let changed = !text.is_empty();
        any |= changed || !service_changes.is_empty();
        let summary = match (changed, service_changes.is_empty()) {
            (false, true) => format!("{svc_name}: no changes (live {revision})"),
            (true, _) => format!(
                "{svc_name}: task definition changed ({}); a new revision and a new deployment are needed",
                fields.join(", ")
            ),
            (false, false) => format!(
                "{svc_name}: task definition unchanged; service settings differ ({}); no new deployment needed, the next release updates the service",
                service_changes.join(", ")
            ),
        };
        results.push(json!({
            "service": svc_name, "exists": true, "live_task_definition": td_arn,
            "changed": changed, "needs_deployment": changed, "changed_fields": fields,
            "service_changes": service_changes, "diff": text, "summary": summary,
        }));
    }
    match g.output {
        Output::Json => print_json(&json!({"env": name, "changes": any, "services": results})),
        Output::Text => {
            for r in &results {
                let d = r["diff"].as_str().unwrap_or_default();
                if !d.is_empty() {
                    let _ = write!(std::io::stdout().lock(), "{}", diff::colorize(d));
                }
                let summary = r["summary"].as_str().unwrap_or_default();
                let styled = if r["changed"].as_bool() == Some(true)
                    || r["service_changes"]
                        .as_array()
                        .is_some_and(|a| !a.is_empty())
                {
                    console::style(summary).yellow().to_string()
                } else {
                    console::style(summary).green().to_string()
                };
                out!("{styled}");
            }
        }
    }
    Ok(if any { Code::Changes } else { Code::Ok })
}

async fn cmd_verify(g: &Global, args: &ReleaseArgs, allow_missing_image: bool) -> CmdResult<Code> {
    let (cfg, name) = load_env(g)?;
    let env = env_of(&cfg, &name);
    let release = release_info(&cfg, args)?;
    let sdk = aws::load(&aws::AwsOptions::for_environment(env)).await;
    let report = verify::run(
        &cfg,
        &name,
        env,
        &sdk,
        &release,
        &verify::Options {
            require_image: !allow_missing_image,
            image: args.image.clone(),
        },
    )
    .await?;
    match g.output {
        Output::Json => {
            print_json(&json!({"env": name, "passed": report.passed(), "checks": report.checks}))
        }
        Output::Text => {
            for c in &report.checks {
                let tag = match c.status {
                    verify::Status::Pass => console::style("PASS").green(),
                    verify::Status::Fail => console::style("FAIL").red().bold(),
                    verify::Status::Warn => console::style("WARN").yellow(),
                };
                out!("{tag}  {:<36} {}", c.name, c.detail);
            }
            let failed = report
                .checks
                .iter()
                .filter(|c| c.status == verify::Status::Fail)
                .count();
            if failed == 0 {
                out!(
                    "preflight for {name} passed ({} checks)",
                    report.checks.len()
                );
            } else {
                out!(
                    "preflight for {name} FAILED: {failed} of {} checks",
                    report.checks.len()
                );
            }
        }
    }
    Ok(if report.passed() {
        Code::Ok
    } else {
        Code::Preflight
    })
}

async fn cmd_build(
    g: &Global,
    git_sha: Option<&str>,
    platform: Option<String>,
    context: Option<PathBuf>,
    dockerfile: Option<PathBuf>,
) -> CmdResult<Code> {
    let cfg = load_config(g)?;
    let sha = vars::git_sha(git_sha, &cfg.root)?;
    let opts = image::BuildOptions::for_project(
        &cfg,
        &cfg.project.ecr_repository,
        &sha,
        platform,
        context,
        dockerfile,
        g.verbose > 0,
    )?;
    let docker = image::docker().await?;
    let built = image::build(&docker, &opts).await?;
    match g.output {
        Output::Json => print_json(&json!(built)),
        Output::Text => out!("built {} ({})", built.image, built.id),
    }
    Ok(Code::Ok)
}

async fn cmd_push(g: &Global, git_sha: Option<&str>) -> CmdResult<Code> {
    let (cfg, name) = load_env(g)?;
    let env = env_of(&cfg, &name);
    let sha = vars::git_sha(git_sha, &cfg.root)?;
    let sdk = sdk_for(env).await?;
    let ecr = aws_sdk_ecr::Client::new(&sdk);
    let docker = image::docker().await?;
    let auth = image::EcrAuthCache::new();
    let pushed = image::push(
        &docker,
        &ecr,
        &auth,
        &image::PushOptions {
            repository: cfg.ecr_repository(env),
            git_sha: &sha,
            registry_override: env.registry.as_deref(),
        },
    )
    .await?;
    match g.output {
        Output::Json => print_json(&json!(pushed)),
        Output::Text if pushed.skipped => out!(
            "{} already in ECR with the same image ({}); nothing pushed",
            pushed.image,
            pushed.digest
        ),
        Output::Text => out!(
            "pushed {} to {} digest {}",
            pushed.image,
            pushed.registry,
            pushed.digest
        ),
    }
    Ok(Code::Ok)
}
