//! `deployer render`: the task definitions exactly as they would be registered.

use clap::Args;
use serde_json::Value;

use super::{Global, ReleaseArgs, print_json, render_env};
use crate::exit::{CmdResult, Code};

pub const EXAMPLES: &str = "Examples:
  deployer render --env staging                       # every service, as {\"<service>\": <definition>}
  deployer render --env staging --service orchestrator
  deployer render --env staging --image 123.dkr.ecr.eu-west-1.amazonaws.com/platform@sha256:…";

#[derive(Args)]
pub struct RenderArgs {
    /// Only this service (`migration` for the migration task).
    #[arg(long, short = 's')]
    pub service: Option<String>,
    #[command(flatten)]
    pub release: ReleaseArgs,
}

pub async fn run(g: &Global, args: &RenderArgs) -> CmdResult<Code> {
    let only = args.service.as_deref();
    let rendered = render_env(g, only, &args.release, false).await?;
    let defs = rendered.defs;
    if only.is_some() && defs.len() == 1 {
        print_json(&defs[0].json());
    } else {
        let m: serde_json::Map<String, Value> = defs
            .into_iter()
            .map(|d| (d.name.clone(), d.json()))
            .collect();
        print_json(&Value::Object(m));
    }
    Ok(Code::Ok)
}
