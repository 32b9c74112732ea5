//! `deployer status --env X`: the deploy lock, every service's revision and in-flight
//! deployment (stage, paused hook and when it expires), and the newest releases. A release whose
//! deployer died and whose deployments have ended is finalised in the audit table here.

use std::fmt::Write as _;

use anyhow::Result;
use serde::Serialize;

use crate::ecs_deploy;
use crate::history;
use crate::release::flow::Ctx;

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
}

#[derive(Debug, Serialize)]
pub struct EnvStatus {
    pub env: String,
    pub lock: Option<crate::lock::LockInfo>,
    pub services: Vec<ServiceStatus>,
    pub recent: Vec<crate::audit::ReleaseRecord>,
    pub notes: Vec<String>,
}

pub async fn collect(ctx: &Ctx) -> Result<EnvStatus> {
    let lock = ctx.lock().status().await?;
    let mut services = Vec::new();
    for svc in &ctx.env.services {
        let out = ctx
            .ecs
            .describe_services()
            .cluster(&ctx.env.cluster)
            .services(&svc.name)
            .send()
            .await?;
        let td = out
            .services()
            .first()
            .and_then(|s| s.task_definition())
            .unwrap_or("(missing)")
            .to_owned();
        let in_flight =
            ecs_deploy::list_deployments(&ctx.ecs, &ctx.env.cluster, &svc.name, true).await?;
        let deployment = match in_flight.first() {
            Some((arn, _, _)) => {
                let v = ecs_deploy::describe(&ctx.ecs, arn).await?;
                Some(DeploymentStatus {
                    arn: v.arn.clone(),
                    status: v.status.clone(),
                    stage: v.stage.clone(),
                    hook_id: v.awaiting_hook.as_ref().map(|h| h.hook_id.clone()),
                    hook_expires_at: v.awaiting_hook.as_ref().and_then(|h| h.expires_at.clone()),
                    hook_timeout_action: v.awaiting_hook.as_ref().map(|h| h.timeout_action.clone()),
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
    for rec in recent.iter_mut().filter(|r| r.outcome == "in_progress") {
        if let Some(reason) = crate::rollback::reconcile_open_record(ctx, rec).await {
            notes.push(format!(
                "release {} was left unfinished by its deployer; ECS ended it: {reason} (audit record updated)",
                rec.release_id
            ));
            rec.outcome = crate::release::Outcome::RolledBackEcs.as_str().into();
            rec.reason = reason;
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

pub fn render_text(s: &EnvStatus) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "environment {}", s.env);
    match &s.lock {
        Some(l) if !l.expired(crate::lock::now_epoch()) => {
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
            history::short_td(&svc.task_definition)
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
    out.push_str(&history::render_text(&s.env, &s.recent));
    for n in &s.notes {
        let _ = writeln!(out, "note: {n}");
    }
    out
}
