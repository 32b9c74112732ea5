//! `deployer`: the CLI. Thin: parses flags and calls the library.

use clap::{Parser, Subcommand};

/// Render, diff, verify, build, push and release ECS services, with blue/green gates and automatic rollback.
#[derive(Parser)]
#[command(name = "deployer", version, about, long_about = None)]
#[command(after_help = "Examples:
  deployer render --env staging              # the task definitions that would be registered
  deployer diff --env staging                # what would change against what runs
  deployer release --env staging             # build, push and release with smoke-test gates
  deployer rollback --env production         # put the previous good release back")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show the resolved configuration.
    Config,
    /// Render task definitions.
    Render,
    /// Diff rendered task definitions against the running ones.
    Diff,
    /// Preflight checks; changes nothing.
    Verify,
    /// Build the production image.
    Build,
    /// Push the image to ECR.
    Push,
    /// Release to an environment with blue/green gates.
    Release,
    /// Roll an environment back.
    Rollback,
    /// Show the state of an environment's deployments.
    Status,
    /// List past releases.
    History,
    /// Inspect or release the deploy lock.
    Lock,
    /// Print shell completions.
    Completions,
}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    anyhow::bail!("not implemented yet")
}
