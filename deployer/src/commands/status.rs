//! `deployer status --env X`: the deploy lock, every service's revision and in-flight
//! deployment (stage, paused hook and when it expires), and the newest releases. A release whose
//! deployer died and whose deployments have ended is finalised in the audit table here.

use std::fmt::Write as _;

use anyhow::Result;
use serde::Serialize;

use super::{Global, engine_ctx, out};
use crate::aws::ecs::{self, short_td};
use crate::engine::resume::{foreign_deployment, reconcile_open_record};
use crate::engine::{Ctx, Outcome};
use crate::exit::{CmdResult, Code, Failure};
use crate::state::audit::{RecordOutcome, ReleaseRecord};
use crate::state::lock::{LockInfo, now_epoch};

pub const EXAMPLES: &str = "Examples:
  deployer status --env staging
  deployer status --env production -o json
  deployer status --env production --watch          # follow a running release live
  deployer status --env production --watch -o json  # one JSON event per change";

#[derive(clap::Args, Debug, Clone)]
pub struct StatusCmd {
    /// Follow the environment until no deployment is in flight: redrawn on a terminal, one line
    /// per change otherwise (CI logs), one JSON object per change with `-o json`.
    #[arg(long)]
    pub watch: bool,
    /// How often `--watch` reads ECS.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    pub every: std::time::Duration,
}

pub async fn run(g: &Global, cmd: &StatusCmd) -> CmdResult<Code> {
    let ctx = engine_ctx(g, true).await?;
    if cmd.watch {
        return watch(&ctx, g.json(), cmd.every).await;
    }
    let s = collect(&ctx)
        .await
        .map_err(|e| Failure::new(Code::Aws, e))?;
    if g.json() {
        out!("{}", serde_json::to_string_pretty(&s).unwrap_or_default());
    } else {
        print!("{}", render_text(&s));
    }
    Ok(Code::Ok)
}

/// One line of `--watch`: what a service's deployment is doing now.
fn change_line(svc: &ServiceStatus) -> String {
    match &svc.deployment {
        None => format!("{} idle on {}", svc.service, short_td(&svc.task_definition)),
        Some(d) => format!(
            "{} {} {} at {}{}",
            svc.service,
            d.arn.rsplit('/').next().unwrap_or(&d.arn),
            d.status,
            d.stage.as_deref().unwrap_or("-"),
            match (&d.hook_id, d.production_weight) {
                (Some(_), Some(w)) => format!(
                    ", paused with {w}% of production until {}",
                    d.hook_expires_at.as_deref().unwrap_or("?")
                ),
                (Some(_), None) => format!(
                    ", paused until {}",
                    d.hook_expires_at.as_deref().unwrap_or("?")
                ),
                (None, Some(w)) => format!(", {w}% of production"),
                (None, None) => String::new(),
            }
        ),
    }
}

/// `--watch`: polls until nothing is in flight (after having seen something, or at once when
/// nothing is), printing what changed.
async fn watch(ctx: &Ctx, json: bool, every: std::time::Duration) -> CmdResult<Code> {
    use std::io::IsTerminal as _;
    let tty = !json && std::io::stdout().is_terminal();
    let mut last: std::collections::BTreeMap<String, String> = Default::default();
    loop {
        let s = collect(ctx).await.map_err(|e| Failure::new(Code::Aws, e))?;
        let in_flight = s.services.iter().any(|svc| svc.deployment.is_some());
        if tty {
            // Redraw in place: clear the screen, home the cursor.
            print!("\x1b[2J\x1b[H{}", render_text(&s));
        } else {
            for svc in &s.services {
                let line = change_line(svc);
                if last.get(&svc.service) != Some(&line) {
                    if json {
                        out!(
                            "{}",
                            serde_json::json!({
                                "at": chrono::Utc::now().to_rfc3339(),
                                "service": svc.service,
                                "task_definition": svc.task_definition,
                                "deployment": svc.deployment,
                            })
                        );
                    } else {
                        out!("{} {line}", chrono::Utc::now().format("%H:%M:%S"));
                    }
                    last.insert(svc.service.clone(), line);
                }
            }
        }
        if !in_flight {
            if !json {
                out!("nothing in flight in {}", s.env);
            }
            return Ok(Code::Ok);
        }
        tokio::time::sleep(every).await;
    }
}

#[derive(Debug, Serialize)]
pub struct ServiceStatus {
    pub service: String,
    pub task_definition: String,
    pub deployment: Option<DeploymentStatus>,
}

#[derive(Debug, Serialize)]
pub struct DeploymentStatus {
    pub arn: String,
    pub status: String,
    pub stage: Option<String>,
    pub hook_id: Option<String>,
    pub hook_expires_at: Option<String>,
    pub hook_timeout_action: Option<String>,
    /// The share of production traffic on the new revision (LINEAR/CANARY steps).
    pub production_weight: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct EnvStatus {
    pub env: String,
    pub lock: Option<LockInfo>,
    pub services: Vec<ServiceStatus>,
    pub recent: Vec<ReleaseRecord>,
    pub notes: Vec<String>,
}

pub async fn collect(ctx: &Ctx) -> Result<EnvStatus> {
    let lock = ctx.lock().status().await?;
    let names: Vec<String> = ctx.env.services.iter().map(|s| s.name.clone()).collect();
    let live = ecs::live_services(&ctx.ecs, &ctx.env.cluster, &names).await?;
    let mut services = Vec::new();
    for svc in &ctx.env.services {
        let td = live
            .get(&svc.name)
            .and_then(|s| s.task_definition())
            .unwrap_or("(missing)")
            .to_owned();
        let in_flight = ecs::in_flight(&ctx.ecs, &ctx.env.cluster, &svc.name).await?;
        let deployment = match in_flight.first() {
            Some(d) => {
                let v = ecs::describe(&ctx.ecs, &d.arn).await?;
                let hook = v.awaiting_hook.as_ref();
                Some(DeploymentStatus {
                    arn: v.arn.clone(),
                    status: v.status.as_str().to_owned(),
                    stage: v.stage.as_ref().map(|s| s.as_str().to_owned()),
                    hook_id: hook.map(|h| h.hook_id.clone()),
                    hook_expires_at: hook.and_then(|h| h.expires_at.clone()),
                    hook_timeout_action: hook.map(|h| h.timeout_action.as_str().to_owned()),
                    production_weight: v.production_weight,
                })
            }
            None => None,
        };
        services.push(ServiceStatus {
            service: svc.name.clone(),
            task_definition: td,
            deployment,
        });
    }
    let mut recent = ctx.audit().list(&ctx.env_name, 5).await?;
    let mut notes = Vec::new();
    for rec in recent.iter_mut().filter(|r| r.in_progress()) {
        if let Some(reason) = reconcile_open_record(ctx, rec).await {
            notes.push(format!(
                "release {} was left unfinished by its deployer; ECS ended it: {reason} (audit record updated)",
                rec.release_id
            ));
            rec.outcome = RecordOutcome::Ended(Outcome::RolledBackEcs);
            rec.reason = reason;
        } else if let Some(why) = foreign_in_flight(ctx, rec, &services).await {
            notes.push(format!(
                "release {} is in progress, but {why}: `deployer release --resume --env {}` refuses it; `deployer rollback --env {}` puts the previous revision back",
                rec.release_id, ctx.env_name, ctx.env_name
            ));
        } else if services.iter().any(|s| s.deployment.is_some()) {
            notes.push(format!(
                "release {} is in progress; `deployer release --resume --env {}` re-attaches to it, `deployer rollback --env {}` rolls it back",
                rec.release_id, ctx.env_name, ctx.env_name
            ));
        }
    }
    Ok(EnvStatus {
        env: ctx.env_name.clone(),
        lock,
        services,
        recent,
        notes,
    })
}

/// The first in-flight deployment that is not the open release's, said as what differs.
async fn foreign_in_flight(
    ctx: &Ctx,
    rec: &ReleaseRecord,
    services: &[ServiceStatus],
) -> Option<String> {
    for s in services {
        let Some(d) = &s.deployment else { continue };
        let Ok(v) = ecs::describe(&ctx.ecs, &d.arn).await else {
            continue;
        };
        if let Some(why) = foreign_deployment(ctx, rec, &s.service, &v).await {
            return Some(why);
        }
    }
    None
}

pub fn render_text(s: &EnvStatus) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "environment {}", s.env);
    match &s.lock {
        Some(l) if !l.expired(now_epoch()) => {
            let _ = writeln!(out, "lock: {}", l.describe());
        }
        Some(l) => {
            let _ = writeln!(out, "lock: expired ({})", l.describe());
        }
        None => {
            let _ = writeln!(out, "lock: free");
        }
    }
    for svc in &s.services {
        let _ = writeln!(
            out,
            "service {:<20} {}",
            svc.service,
            short_td(&svc.task_definition)
        );
        if let Some(d) = &svc.deployment {
            let _ = writeln!(
                out,
                "    deployment {} {} at {}",
                d.arn.rsplit('/').next().unwrap_or(&d.arn),
                d.status,
                d.stage.as_deref().unwrap_or("-")
            );
            if let Some(h) = &d.hook_id {
                let _ = writeln!(
                    out,
                    "    paused: hook {h} AWAITING_ACTION, expires {} (then {})",
                    d.hook_expires_at.as_deref().unwrap_or("?"),
                    d.hook_timeout_action.as_deref().unwrap_or("ROLLBACK")
                );
            }
        }
    }
    out.push_str(&crate::state::history::render_table(&s.env, &s.recent));
    for n in &s.notes {
        let _ = writeln!(out, "note: {n}");
    }
    out
}
