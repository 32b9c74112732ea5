//! `platform`: one binary for the orchestrator, every agent kind, migrations and health checks.

use clap::{Parser, Subcommand, ValueEnum};

/// The agentic SDLC platform: an orchestrator and five agents on Redis Streams and Postgres.
#[derive(Parser)]
#[command(name = "platform", version, about, long_about = None)]
#[command(after_help = "Examples:
  platform migrate                      # apply database migrations (DATABASE_URL)
  platform orchestrator                 # serve the REST API on $PORT (default 3000)
  platform agent --kind scaffold        # run one scaffold agent
  platform healthcheck                  # exit 0 when the local orchestrator is ready")]
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
    Healthcheck,
}

#[derive(Clone, Copy, ValueEnum)]
enum AgentKind {
    Scaffold,
    Validation,
    E2e,
    Integration,
    Deployment,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Orchestrator | Command::Agent { .. } | Command::Migrate | Command::Healthcheck => {
            anyhow::bail!("not implemented yet")
        }
    }
}
