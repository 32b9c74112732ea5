//! `deployer diff`: rendered task definitions against what runs (exit 0 none, 1 changes).

use std::io::Write as _;

use clap::Args;
use serde_json::{Value, json};

use super::{Global, Output, ReleaseArgs, env_of, out, print_json, render_env};
use crate::aws::ecs::{live_services, short_td};
use crate::aws::{self, RawResponse};
use crate::exit::{CmdResult, Code, Failure};
use crate::taskdef::diff;

pub const EXAMPLES: &str = "Examples:
  deployer diff --env staging                      # all services; exit 1 when anything differs
  deployer diff --env staging --service orchestrator --no-color
  deployer diff --env production -o json           # machine-readable, with needs_deployment per service";

#[derive(Args)]
pub struct DiffArgs {
    /// Only this service.
    #[arg(long, short = 's')]
    pub service: Option<String>,
    #[command(flatten)]
    pub release: ReleaseArgs,
}

pub async fn run(g: &Global, args: &DiffArgs) -> CmdResult<Code> {
    let rendered = render_env(g, args.service.as_deref(), &args.release, true).await?;
    let env = env_of(&rendered.cfg, &rendered.name);
    let sdk = rendered.sdk.as_ref().expect("diff loads the SDK config");
    let ecs = aws_sdk_ecs::Client::new(sdk);
    let names: Vec<String> = rendered.defs.iter().map(|d| d.name.clone()).collect();
    let live_services = live_services(&ecs, &env.cluster, &names)
        .await
        .map_err(|e| aws::failure("ECS DescribeServices", e))?;
    let mut results = Vec::new();
    let mut any = false;
    for def in &rendered.defs {
        let svc_name = &def.name;
        let rendered_json = def.json();
        let svc_cfg = env
            .services
            .iter()
            .find(|s| &s.name == svc_name)
            .expect("rendered from config");
        let Some(live_svc) = live_services.get(svc_name) else {
            any = true;
            results.push(json!({
                "service": svc_name, "exists": false, "changed": true, "needs_deployment": true,
                "diff": diff::unified(&Value::Null, &diff::normalise(&rendered_json), "(no service)", "rendered"),
                "summary": format!("service {svc_name} does not exist in cluster {}; create it (terraform) before releasing", env.cluster),
            }));
            continue;
        };
        let td_arn = live_svc.task_definition().unwrap_or_default().to_string();
        let raw = RawResponse::default();
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
        let want = diff::normalise(&rendered_json);
        let revision = short_td(&td_arn).to_string();
        let text = diff::unified(&live, &want, &format!("live {revision}"), "rendered");
        let fields = diff::changed_fields(&live, &want);
        let mut service_changes = Vec::new();
        // Only a count the deployer owns (desired_count set) is a difference worth reporting.
        if let Some(want) = svc_cfg.desired_count
            && live_svc.desired_count() != want as i32
        {
            service_changes.push(format!(
                "desiredCount {} → {want}",
                live_svc.desired_count()
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
        Output::Json => {
            print_json(&json!({"env": rendered.name, "changes": any, "services": results}))
        }
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
