//! `deployer build`: the production image through the Docker engine, tagged <repo>:<git sha>.

use std::path::PathBuf;

use clap::Args;
use serde_json::json;

use super::{Global, Output, load_config, out, print_json};
use crate::exit::{CmdResult, Code};
use crate::image;

pub const EXAMPLES: &str = "Examples:
  deployer build                                   # Dockerfile.production, linux/amd64, tag <repo>:<HEAD sha>
  deployer build --git-sha 3f2c1d0 --platform linux/arm64
  CI=true deployer build -v                        # plain log lines (no spinner), whole build log";

#[derive(Args)]
pub struct BuildArgs {
    #[arg(long, env = "DEPLOYER_GIT_SHA")]
    pub git_sha: Option<String>,
    /// Target platform.
    #[arg(long)]
    pub platform: Option<String>,
    /// Build context (default: project.context).
    #[arg(long)]
    pub context: Option<PathBuf>,
    /// Dockerfile (default: project.dockerfile), inside the context.
    #[arg(long)]
    pub dockerfile: Option<PathBuf>,
}

pub async fn run(g: &Global, args: &BuildArgs) -> CmdResult<Code> {
    let cfg = load_config(g)?;
    let sha = crate::config::git::git_sha(args.git_sha.as_deref(), &cfg.root)?;
    let opts = image::BuildOptions::for_project(
        &cfg,
        &cfg.project.ecr_repository,
        &sha,
        args.platform.clone(),
        args.context.clone(),
        args.dockerfile.clone(),
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
