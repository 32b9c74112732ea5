//! `deployer release --resume`: re-attach to the newest `in_progress` release found in the audit
//! table and the ECS API (hook ids come from DescribeServiceDeployments — no local state),
//! finish it with the same gates, and finalise its audit record. Also closing records whose
//! deployer died after ECS ended their deployments (what `status` shows).

use std::time::Duration;

use aws_sdk_ecs::types::ServiceDeploymentStatus;

use super::deploy::ServicePlan;
use super::run::run_locked;
use super::waves::{deploy_all, revert, smoke_vars};
use super::{Ctx, Outcome, Step, Stop};
use crate::aws::ecs;
use crate::state::audit::{self, RecordOutcome, ReleaseRecord, ServiceStatus};

/// `deployer release --resume`.
pub async fn resume(ctx: &Ctx, wait_lock: Option<Duration>) -> Step<()> {
    ctx.report.stage(&format!(
        "Resume: looking for an unfinished release of {}",
        ctx.env_name
    ));
    let records = ctx
        .audit()
        .list(&ctx.env_name, 20)
        .await
        .map_err(Stop::aws)?;
    let Some(open) = records.iter().find(|r| r.in_progress()).cloned() else {
        let names: Vec<String> = ctx.env.services.iter().map(|s| s.name.clone()).collect();
        let flights = ecs::in_flight_of(&ctx.ecs, &ctx.env.cluster, &names)
            .await
            .unwrap_or_default();
        if flights.is_empty() {
            ctx.report
                .line("nothing to resume: no release in progress and no deployment in flight");
            return Ok(());
        }
        return Err(Stop::failed(format!(
            "deployments are in flight ({}) but no release in progress is recorded in {}; use `deployer rollback --env {}` or wait",
            flights
                .iter()
                .map(|(s, _)| s.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            ctx.env.audit_table,
            ctx.env_name
        )));
    };
    ctx.report.line(&format!(
        "re-attaching to release {} (git sha {}, started {} by {})",
        open.release_id, open.git_sha, open.started_at, open.actor
    ));
    let mut rec = open.clone();
    let release_id = open.release_id.clone();
    run_locked(ctx, &mut rec, wait_lock, Some(&release_id), |ctx, rec| {
        Box::pin(async move { resume_body(ctx, rec).await.map(|()| String::new()) })
    })
    .await
}

async fn resume_body(ctx: &Ctx, rec: &mut ReleaseRecord) -> Step<()> {
    let mut plans = Vec::new();
    let mut done_ok = Vec::new();
    let mut failed: Option<Stop> = None;
    let mut foreign = Vec::new();
    for svc in &ctx.env.services {
        let Some(s) = rec.services.iter().find(|s| s.service == svc.name).cloned() else {
            continue;
        };
        if s.task_definition.is_empty() {
            // The first process died before registering: nothing moved; start over.
            return Err(Stop::failed(
                "the release stopped before its task definitions were registered; nothing changed — run `deployer release` again",
            ));
        }
        let mut arn = (!s.deployment_arn.is_empty()).then(|| s.deployment_arn.clone());
        if arn.is_none() {
            // Started but not recorded (the process died in between): the newest deployment
            // created after the release started.
            let started = chrono::DateTime::parse_from_rfc3339(&rec.started_at)
                .map(|t| t.timestamp())
                .unwrap_or(i64::MAX);
            if let Ok(list) =
                ecs::list_deployments(&ctx.ecs, &ctx.env.cluster, &svc.name, false).await
            {
                arn = list
                    .into_iter()
                    .find(|d| d.created_at.as_ref().is_some_and(|c| c.secs() >= started))
                    .map(|d| d.arn);
            }
        }
        let plan = ServicePlan {
            svc: svc.clone(),
            target_td: s.task_definition.clone(),
            previous_td: s.previous_task_definition.clone(),
            git_sha: rec.git_sha.clone(),
            deployment_arn: arn.clone(),
        };
        let Some(a) = &arn else {
            plans.push(plan);
            continue;
        };
        let v = ecs::describe(&ctx.ecs, a).await.map_err(Stop::aws)?;
        // Act only on deployments of this release (ecspresso's `continue` continues whatever
        // is paused): a deployment of another revision in flight — the one found by listing,
        // or the one that replaced ours — belongs to someone else.
        let in_flight = if !v.is_terminal() {
            Some(v.clone())
        } else if v.status == ServiceDeploymentStatus::Stopped {
            let newest = ecs::in_flight(&ctx.ecs, &ctx.env.cluster, &svc.name)
                .await
                .unwrap_or_default()
                .into_iter()
                .next();
            match newest {
                Some(d) => ecs::describe(&ctx.ecs, &d.arn).await.ok(),
                None => None,
            }
        } else {
            None
        };
        if let Some(other) = in_flight
            && let Some(why) = foreign_deployment(ctx, rec, &svc.name, &other).await
        {
            foreign.push(why);
            continue;
        }
        if v.status == ServiceDeploymentStatus::Successful {
            done_ok.push(plan);
        } else if v.is_terminal() {
            let why = v
                .ecs_failure()
                .unwrap_or_else(|| format!("ended {}: {}", v.status.as_str(), v.best_reason()));
            ctx.report.line(&format!("[{}] {why}", svc.name));
            if let Some(r) = rec.service_mut(&svc.name) {
                r.status = ServiceStatus::Deployment(v.status.clone());
            }
            let outcome = if v.status == ServiceDeploymentStatus::RollbackFailed {
                Outcome::RollbackFailed
            } else {
                Outcome::RolledBackEcs
            };
            failed = Some(Stop::new(outcome, format!("{}: {why}", svc.name)));
        } else {
            plans.push(plan);
        }
    }
    if !foreign.is_empty() {
        return Err(Stop::new(
            Outcome::Superseded,
            format!(
                "not resuming: {}. That deployment is not this release's: nothing was continued, rolled back or reverted. See `deployer status --env {env}`; `deployer rollback --env {env}` puts the previous revision back",
                foreign.join("; "),
                env = ctx.env_name
            ),
        ));
    }
    if let Some(stop) = failed {
        // Whatever is still in flight of this release is rolled back, and moved services
        // reverted: production goes back to the previous revision everywhere.
        for p in &plans {
            if let Some(a) = &p.deployment_arn
                && let Ok(v) = ecs::describe(&ctx.ecs, a).await
            {
                let _ = ecs::roll_back_in_flight(&ctx.ecs, &v).await;
            }
        }
        return Err(with_reverts(ctx, stop, revert(ctx, &done_ok, rec).await));
    }
    // Services that finished before the first process died need nothing, but a later failure
    // must revert them too.
    let vars = smoke_vars(ctx, rec);
    match deploy_all(ctx, &plans, &vars, rec).await {
        Err(stop) if stop.outcome != Outcome::Superseded => {
            Err(with_reverts(ctx, stop, revert(ctx, &done_ok, rec).await))
        }
        other => other,
    }
}

/// A stop, made a rollback failure when reverts failed.
fn with_reverts(ctx: &Ctx, stop: Stop, failed: Vec<String>) -> Stop {
    if failed.is_empty() {
        return stop;
    }
    Stop::new(
        stop.outcome.worst(Outcome::RollbackFailed),
        format!(
            "{}\n{}\nproduction may run a mix of revisions: check `deployer status --env {env}`, then `deployer rollback --env {env}`",
            stop.reason,
            failed.join("\n"),
            env = ctx.env_name
        ),
    )
}

/// Closes a record whose process died and whose deployments all ended (used by `status`);
/// returns why ECS ended it, or `None` while anything is in flight or all succeeded.
pub async fn reconcile_open_record(ctx: &Ctx, rec: &ReleaseRecord) -> Option<String> {
    let mut reasons = Vec::new();
    for s in &rec.services {
        if s.deployment_arn.is_empty() {
            continue;
        }
        match ecs::describe(&ctx.ecs, &s.deployment_arn).await {
            Ok(v) if !v.is_terminal() => return None,
            Ok(v) if v.status != ServiceDeploymentStatus::Successful => reasons.push(format!(
                "{}: {}",
                s.service,
                v.ecs_failure().unwrap_or_else(|| v.best_reason())
            )),
            _ => {}
        }
    }
    if reasons.is_empty() {
        return None;
    }
    let reason = reasons.join("; ");
    let mut r = rec.clone();
    r.outcome = RecordOutcome::Ended(Outcome::RolledBackEcs);
    r.reason = reason.clone();
    r.finished_at = audit::now_rfc3339();
    if let Err(e) = ctx.audit().put(&r).await {
        ctx.report.line(&format!(
            "warning: could not update audit record {}: {e:#}",
            r.release_id
        ));
    }
    Some(reason)
}

/// Whether the in-flight deployment `v` of `service` is not the release `rec`'s: its target
/// revision runs another task definition, or an image digest other than the one the release
/// recorded. `Some(what differs)` then; `None` when it matches (or cannot be read: the
/// follower checks the task definition again).
pub async fn foreign_deployment(
    ctx: &Ctx,
    rec: &ReleaseRecord,
    service: &str,
    v: &ecs::DeploymentView,
) -> Option<String> {
    let want = rec.services.iter().find(|s| s.service == service)?;
    let revision = v.target_revision.as_deref()?;
    let have = ecs::revision_identity(&ctx.ecs, revision).await.ok()??;
    let short = |arn: &str| arn.rsplit('/').next().unwrap_or(arn).to_owned();
    if !want.task_definition.is_empty() && have.task_definition != want.task_definition {
        return Some(format!(
            "the deployment {} of {service} targets {}, but the release recorded {}",
            short(&v.arn),
            ecs::short_td(&have.task_definition),
            ecs::short_td(&want.task_definition)
        ));
    }
    if !rec.image_digest.is_empty()
        && !have.image_digests.is_empty()
        && !have.image_digests.contains(&rec.image_digest)
    {
        return Some(format!(
            "the deployment {} of {service} runs image {}, but the release recorded {}",
            short(&v.arn),
            have.image_digests.join(", "),
            rec.image_digest
        ));
    }
    None
}
