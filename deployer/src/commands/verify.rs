//! `deployer verify`: every preflight check, changes nothing (exit 0 pass, 4 a check failed).

use clap::Args;
use serde_json::json;

use super::{Global, Output, ReleaseArgs, env_of, load_env, out, print_json, release_info};
use crate::engine::preflight::{self, Status};
use crate::exit::{CmdResult, Code, Failure};

pub const EXAMPLES: &str = "Examples:
  deployer verify --env staging
  deployer verify --env production --git-sha 3f2c1d0 -o json";

#[derive(Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub release: ReleaseArgs,
    /// Do not fail when the image is not in ECR yet (a release would build it).
    #[arg(long)]
    pub allow_missing_image: bool,
}

pub async fn run(g: &Global, args: &VerifyArgs) -> CmdResult<Code> {
    let (cfg, name) = load_env(g)?;
    let env = env_of(&cfg, &name);
    let release = release_info(&cfg, &args.release)?;
    let sdk = crate::aws::load(&crate::aws::AwsOptions::for_environment(env)).await;
    let report = preflight::verify(
        &cfg,
        &name,
        env,
        &sdk,
        &release,
        &preflight::Options {
            require_image: !args.allow_missing_image,
            image: args.release.image.clone(),
        },
    )
    .await?;
    let failed = report
        .checks
        .iter()
        .filter(|c| c.status == Status::Fail)
        .count();
    let result = json!({"env": name, "passed": report.passed(), "checks": report.checks});
    match g.output {
        Output::Json if failed > 0 => {}
        Output::Json => print_json(&result),
        Output::Text => {
            for c in &report.checks {
                let tag = match c.status {
                    Status::Pass => console::style("PASS").green(),
                    Status::Fail => console::style("FAIL").red().bold(),
                    Status::Warn => console::style("WARN").yellow(),
                };
                out!("{tag}  {:<36} {}", c.name, c.detail);
            }
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
    if failed == 0 {
        return Ok(Code::Ok);
    }
    Err(Failure::msg(
        Code::Preflight,
        format!(
            "preflight for {name} failed: {failed} of {} checks",
            report.checks.len()
        ),
    )
    .with_hint("fix what the FAIL lines say; `deployer verify` changes nothing")
    .with_details(result))
}
