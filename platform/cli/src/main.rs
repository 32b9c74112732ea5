//! `platform`: one binary for the orchestrator, every agent kind, migrations and health checks.

use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use platform_core::Stage;
use tokio_util::sync::CancellationToken;

const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("PLATFORM_BUILD_GIT_SHA"),
    ")"
);

/// The agentic SDLC platform: an orchestrator and five agents on Redis Streams and Postgres.
#[derive(Parser)]
#[command(name = "platform", version = LONG_VERSION, about, long_about = None)]
#[command(after_help = after_help())]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the REST API and drive workflows.
    Orchestrator,
    /// Run one agent of the given kind.
    Agent {
        #[arg(long, value_enum)]
        kind: AgentKind,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Probe the local orchestrator's readiness endpoint; exit 0 when ready (for container HEALTHCHECK).
    Healthcheck {
        /// Check an agent instead: its liveness file ($PLATFORM_AGENT_LIVENESS_FILE) must have
        /// been written within 3 heartbeat intervals ($PLATFORM_HEARTBEAT_INTERVAL_MS, 5000).
        #[arg(long)]
        agent: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum AgentKind {
    Scaffold,
    Validation,
    E2e,
    Integration,
    Deployment,
}

impl From<AgentKind> for Stage {
    fn from(k: AgentKind) -> Self {
        match k {
            AgentKind::Scaffold => Stage::Scaffold,
            AgentKind::Validation => Stage::Validation,
            AgentKind::E2e => Stage::E2e,
            AgentKind::Integration => Stage::Integration,
            AgentKind::Deployment => Stage::Deployment,
        }
    }
}

fn after_help() -> String {
    format!(
        "Examples:
  platform migrate                      # apply database migrations (DATABASE_URL)
  platform orchestrator                 # serve the REST API on $PORT (default {port})
  platform agent --kind scaffold        # run one scaffold agent
  platform healthcheck                  # exit 0 when the local orchestrator is ready
  platform healthcheck --agent          # exit 0 when this container's agent heartbeat is fresh

Configuration is read from the environment; see docs/platform.md.",
        port = platform_orchestrator::DEFAULT_PORT
    )
}

/// `GIT_SHA` at run time (task definitions set it to the release's sha), else the baked-in one.
fn git_sha() -> String {
    std::env::var("GIT_SHA")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| env!("PLATFORM_BUILD_GIT_SHA").to_owned())
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let text = std::env::var("LOG_FORMAT").is_ok_and(|f| f == "text");
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if text {
        b.init();
    } else {
        b.json().with_current_span(true).init();
    }
}

/// Cancels on SIGTERM or Ctrl-C.
fn shutdown_token() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let mut term = match signal(SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return,
            };
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("stop signal received; shutting down");
        t.cancel();
    });
    token
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "fatal");
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    match cli.command {
        Command::Healthcheck { agent: false } => Ok(healthcheck().await),
        Command::Healthcheck { agent: true } => Ok(agent_healthcheck()),
        Command::Migrate => {
            init_logging();
            let url = platform_orchestrator::database_url()?;
            let store = platform_store::Store::connect(&url, 2)
                .await
                .context("connecting to Postgres (DATABASE_URL)")?;
            store.migrate().await.context("applying migrations")?;
            tracing::info!("migrations applied");
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::Orchestrator => {
            init_logging();
            let cfg = platform_orchestrator::Config::from_env(git_sha())?;
            platform_orchestrator::run(cfg, shutdown_token()).await?;
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::Agent { kind } => {
            init_logging();
            let kind: Stage = kind.into();
            let id = platform_orchestrator::instance_id(&format!("agent-{kind}"));
            let cfg = platform_agents::AgentConfig::from_env(kind, git_sha(), id)?;
            platform_agents::run(cfg, shutdown_token()).await?;
            Ok(std::process::ExitCode::SUCCESS)
        }
    }
}

fn agent_healthcheck() -> std::process::ExitCode {
    match platform_agents::liveness_check_from_env() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{message}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn healthcheck() -> std::process::ExitCode {
    let port = match platform_orchestrator::port_from_env() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let url = format!("http://127.0.0.1:{port}/health/ready");
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
    {
        Ok(c) => c,
        Err(_) => return std::process::ExitCode::FAILURE,
    };
    match client.get(&url).send().await {
        Ok(r) if r.status().is_success() => std::process::ExitCode::SUCCESS,
        Ok(r) => {
            eprintln!("{url} answered {}", r.status());
            std::process::ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("{url} is not reachable: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
