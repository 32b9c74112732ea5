//! `deployer push`: the built image to the environment's ECR repository (skips if already there).

use clap::Args;
use serde_json::json;

use super::{Global, Output, env_of, load_env, out, print_json, sdk_for};
use crate::exit::{CmdResult, Code};
use crate::image;

pub const EXAMPLES: &str = "Examples:
  deployer push --env staging                      # pushes <repo>:<HEAD sha>, prints the digest
  deployer push --env local --git-sha 3f2c1d0 -o json";

#[derive(Args)]
pub struct PushArgs {
    #[arg(long, env = "DEPLOYER_GIT_SHA")]
    pub git_sha: Option<String>,
}

pub async fn run(g: &Global, args: &PushArgs) -> CmdResult<Code> {
    let (cfg, name) = load_env(g)?;
    let env = env_of(&cfg, &name);
    let sha = crate::config::git::git_sha(args.git_sha.as_deref(), &cfg.root)?;
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
