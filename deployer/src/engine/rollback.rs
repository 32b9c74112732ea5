//! `deployer rollback`. If a deployment is in flight, roll it back (ContinueServiceDeployment
//! ROLLBACK at a paused hook, StopServiceDeployment ROLLBACK otherwise). If not, deploy the
//! previous successful release from the audit table (or the one named with `--to`) through the
//! same gated waves a release uses; when the audit table has nothing usable, fall back to
//! task-definition history. A deregistered target revision is re-registered from the release's
//! image. Rollback never goes through `release`.

use std::time::{Duration, Instant};

use aws_sdk_ecs::types::{ServiceDeploymentStatus, TaskDefinitionStatus};

use super::deploy::ServicePlan;
use super::register::{self, register, service_target};
use super::run::{ended_message, finish, run_locked};
use super::waves::{deploy_all, smoke_vars};
use super::{Ctx, Outcome, Step, Stop};
use crate::aws::ecs::{self, short_td};
use crate::aws::follow::Poller;
use crate::state::audit::{
    self, RecordOutcome, ReleaseKind, ReleaseRecord, ServiceRecord, ServiceStatus,
};
use crate::state::history;

/// Follows deployments we asked ECS to roll back until they end: whether all rolled back, and
/// whether any ended ROLLBACK_FAILED.
async fn follow_rollbacks(ctx: &Ctx, arns: &[(String, String)], timeout: Duration) -> (bool, bool) {
    let deadline = Instant::now() + timeout;
    let mut all_ok = true;
    let mut any_failed = false;
    for (svc, arn) in arns {
        let mut poller = Poller::new();
        loop {
            match ecs::describe(&ctx.ecs, arn).await {
                Ok(v) => {
                    if poller.observe(&v) {
                        ctx.report.line(&format!(
                            "[{svc}] {} · {}",
                            v.status.as_str(),
                            v.stage_name()
                        ));
                    }
                    if v.is_terminal() {
                        any_failed |= v.status == ServiceDeploymentStatus::RollbackFailed;
                        all_ok &= matches!(
                            v.status,
                            ServiceDeploymentStatus::RollbackSuccessful
                                | ServiceDeploymentStatus::Stopped
                        );
                        break;
                    }
                }
                Err(e) => ctx.report.line(&format!("[{svc}] {e:#}")),
            }
            if Instant::now() >= deadline {
                ctx.report
                    .line(&format!("[{svc}] rollback still running at the deadline"));
                all_ok = false;
                break;
            }
            tokio::time::sleep(poller.interval()).await;
        }
    }
    (all_ok, any_failed)
}

fn service_names(ctx: &Ctx) -> Vec<String> {
    ctx.env.services.iter().map(|s| s.name.clone()).collect()
}

/// `deployer rollback --env X [--to <release-id|git-sha|revision>]`.
pub async fn rollback(ctx: &Ctx, to: Option<&str>, wait_lock: Option<Duration>) -> Step<()> {
    ctx.report.stage(&format!("Rollback of {}", ctx.env_name));
    let flights = ecs::in_flight_of(&ctx.ecs, &ctx.env.cluster, &service_names(ctx))
        .await
        .map_err(Stop::aws)?;
    if !flights.is_empty() {
        return roll_back_in_flight(ctx, &flights).await;
    }
    let records = match ctx.audit().list(&ctx.env_name, 50).await {
        Ok(r) => r,
        Err(e) => {
            ctx.report.line(&format!(
                "warning: audit table unreadable ({e:#}); using task-definition history"
            ));
            vec![]
        }
    };
    // Nothing in flight: deploy an earlier release through the gated waves.
    let newest_success = records
        .iter()
        .find(|r| r.succeeded())
        .map(|r| r.release_id.clone());
    let target = match to {
        Some(t) => history::find_target(&records, t),
        None => history::previous_success(&records, newest_success.as_deref()),
    };
    let (plans, git_sha, image, source) = match target {
        Some(t) => {
            let plans = plans_from_record(ctx, t).await?;
            (
                plans,
                t.git_sha.clone(),
                t.image.clone(),
                format!("audit record {}", t.release_id),
            )
        }
        None => {
            if let Some(t) = to
                && !records.is_empty()
                && !t.contains(':')
            {
                return Err(Stop::new(
                    Outcome::ConfigError,
                    format!(
                        "no successful release matching '{t}' in the audit table {}; pass a release id, a git sha (7+ characters) or a task-definition revision (family:N)",
                        ctx.env.audit_table
                    ),
                ));
            }
            ctx.report
                .line("no usable audit record; falling back to task-definition history");
            let (plans, sha) = plans_from_revisions(ctx, to).await?;
            (plans, sha, String::new(), "task-definition history".into())
        }
    };
    if plans.is_empty() {
        return Err(Stop::failed(
            "nothing to roll back to: every service already runs the target revision (or none exists)",
        ));
    }
    ctx.report.line(&format!("rolling back using {source}"));
    let mut rec = ReleaseRecord::start(&ctx.env_name, ReleaseKind::Rollback, &git_sha, &image);
    rec.reason = format!("rollback using {source}");
    rec.services = plans
        .iter()
        .map(|p| ServiceRecord {
            service: p.svc.name.clone(),
            task_definition: p.target_td.clone(),
            previous_task_definition: p.previous_td.clone(),
            ..Default::default()
        })
        .collect();
    let source_note = rec.reason.clone();
    run_locked(ctx, &mut rec, wait_lock, None, move |ctx, rec| {
        Box::pin(async move {
            let vars = smoke_vars(ctx, rec);
            deploy_all(ctx, &plans, &vars, rec)
                .await
                .map(|()| source_note)
        })
    })
    .await
}

/// In flight: no lock needed (the release holding it sees its deployment roll back).
async fn roll_back_in_flight(ctx: &Ctx, flights: &[(String, String)]) -> Step<()> {
    let mut rolled = Vec::new();
    for (svc, arn) in flights {
        let how = async {
            let v = ecs::describe(&ctx.ecs, arn).await?;
            ecs::roll_back_in_flight(&ctx.ecs, &v).await
        };
        match how.await {
            Ok(how) => {
                ctx.report.line(&format!("[{svc}] {how} on {arn}"));
                rolled.push((svc.clone(), arn.clone()));
            }
            Err(e) => ctx.report.line(&format!("[{svc}] failed: {e:#}")),
        }
    }
    let (ok, rollback_failed) = follow_rollbacks(ctx, &rolled, ctx.env.timeouts.deployment).await;
    let mut rec = ReleaseRecord::start(&ctx.env_name, ReleaseKind::Rollback, "", "");
    rec.reason = format!("rolled back {} in-flight deployment(s)", rolled.len());
    rec.services = rolled
        .iter()
        .map(|(s, a)| ServiceRecord {
            service: s.clone(),
            deployment_arn: a.clone(),
            status: ServiceStatus::RolledBack,
            ..Default::default()
        })
        .collect();
    let outcome = if ok && rolled.len() == flights.len() {
        Outcome::Succeeded
    } else if rollback_failed {
        Outcome::RollbackFailed
    } else {
        Outcome::Failed
    };
    rec.outcome = RecordOutcome::Ended(outcome);
    rec.finished_at = audit::now_rfc3339();
    let audit = ctx.audit();
    let _ = audit.ensure_table().await;
    if let Err(e) = audit.put(&rec).await {
        ctx.report
            .line(&format!("warning: audit record not written: {e:#}"));
    }
    finish(ctx, &rec, outcome).await;
    if outcome == Outcome::Succeeded {
        Ok(())
    } else {
        let reason = rec.reason.clone();
        Err(ended_message(ctx, &rec, Stop::new(outcome, reason)))
    }
}

/// Plans that put every service of `target` back on its revision (re-registered from its image
/// when it was deregistered).
async fn plans_from_record(ctx: &Ctx, target: &ReleaseRecord) -> Step<Vec<ServicePlan>> {
    ctx.report.line(&format!(
        "target: release {} (git sha {}) from the audit table",
        target.release_id, target.git_sha
    ));
    let mut plans = Vec::new();
    for svc in &ctx.env.services {
        let Some(s) = target.services.iter().find(|s| s.service == svc.name) else {
            continue;
        };
        let current = current_td(ctx, &svc.name).await?;
        let mut target_td = s.task_definition.clone();
        match ecs::task_definition_status(&ctx.ecs, &target_td).await {
            Ok((_, Some(TaskDefinitionStatus::Active))) => {}
            _ => {
                // Deregistered (or gone): re-register from that release's image.
                let release =
                    register::release(ctx, &target.image, &target.git_sha, &target.release_id);
                let td = register(ctx, &service_target(svc), &release).await?;
                ctx.report.line(&format!(
                    "[{}] {} is deregistered; re-registered it as {}",
                    svc.name,
                    short_td(&target_td),
                    short_td(&td)
                ));
                target_td = td;
            }
        }
        if target_td == current {
            continue;
        }
        plans.push(ServicePlan {
            svc: svc.clone(),
            target_td,
            previous_td: current,
            git_sha: target.git_sha.clone(),
            deployment_arn: None,
        });
    }
    Ok(plans)
}

/// Plans from task-definition history: each service's previous ACTIVE revision, or the one
/// `to` names (family:N). Returns the plans and the git sha of the first target's tags.
async fn plans_from_revisions(ctx: &Ctx, to: Option<&str>) -> Step<(Vec<ServicePlan>, String)> {
    let mut plans = Vec::new();
    let mut sha = String::new();
    for svc in &ctx.env.services {
        let current = current_td(ctx, &svc.name).await?;
        let named = match to {
            Some(t)
                if short_td(t).rsplit_once(':').map(|(f, _)| f)
                    == short_td(&current).rsplit_once(':').map(|(f, _)| f) =>
            {
                Some(
                    ecs::task_definition_status(&ctx.ecs, t)
                        .await
                        .map_err(Stop::aws)?
                        .0,
                )
            }
            _ => None,
        };
        let target_td = match named {
            Some(t) => t,
            None => match ecs::previous_active_revision(&ctx.ecs, &current)
                .await
                .map_err(Stop::aws)?
            {
                Some(t) => t,
                None => {
                    ctx.report.line(&format!(
                        "[{}] no earlier ACTIVE revision; left as is",
                        svc.name
                    ));
                    continue;
                }
            },
        };
        let tags = ecs::task_definition_tags(&ctx.ecs, &target_td).await;
        let git_sha = tags.get("git_sha").cloned().unwrap_or_default();
        if sha.is_empty() {
            sha = git_sha.clone();
        }
        plans.push(ServicePlan {
            svc: svc.clone(),
            git_sha,
            target_td,
            previous_td: current,
            deployment_arn: None,
        });
    }
    Ok((plans, sha))
}

/// The revision a service runs; a missing service fails the preflight.
async fn current_td(ctx: &Ctx, service: &str) -> Step<String> {
    match ecs::current_task_definition(&ctx.ecs, &ctx.env.cluster, service).await {
        Ok(Some(td)) => Ok(td),
        Ok(None) => Err(Stop::new(
            Outcome::PreflightFailed,
            format!("service {service} does not exist in {}", ctx.env.cluster),
        )),
        Err(e) => Err(Stop::new(Outcome::PreflightFailed, format!("{e:#}"))),
    }
}
