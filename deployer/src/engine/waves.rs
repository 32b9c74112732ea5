//! Deploying a release's services in waves (agents first, then the rest, in config order,
//! `release.max_parallel` at a time) and putting back the ones that had moved when a later one
//! fails.

use super::deploy::{ServicePlan, deploy_service, revert_plan};
use super::smoke::Vars;
use super::{Ctx, Outcome, Step, Stop};
use crate::aws::ecs::short_td;
use crate::state::audit::{ReleaseRecord, ServiceStatus};

/// The values smoke-check assertions are templated with.
pub(crate) fn smoke_vars(ctx: &Ctx, rec: &ReleaseRecord) -> Vars {
    Vars::new(&[
        ("git_sha", &rec.git_sha),
        ("release_id", &rec.release_id),
        ("version", env!("CARGO_PKG_VERSION")),
        ("env", &ctx.env_name),
        ("image", &rec.image),
    ])
}

/// Puts services that already moved back on their previous task definition (hooks continue
/// without gates: the previous revision already proved itself), and marks in the record what
/// actually went back. Returns the services whose revert failed, with why.
pub(crate) async fn revert(
    ctx: &Ctx,
    plans: &[ServicePlan],
    rec: &mut ReleaseRecord,
) -> Vec<String> {
    let mut failed = Vec::new();
    if plans.is_empty() {
        return failed;
    }
    ctx.report.stage("Revert services that had already moved");
    for p in plans {
        ctx.report.line(&format!(
            "[{}] reverting to {}",
            p.svc.name,
            short_td(&p.previous_td)
        ));
        let r = deploy_service(ctx, &revert_plan(p), &Vars::default(), false).await;
        let went_back = r.outcome == Outcome::Succeeded;
        ctx.report.line(&format!(
            "[{}] revert {}: {} {}",
            p.svc.name,
            if went_back { "done" } else { "FAILED" },
            r.status,
            r.reason
        ));
        if !went_back {
            failed.push(format!(
                "{}: the revert to {} failed: {}",
                p.svc.name,
                short_td(&p.previous_td),
                r.reason
            ));
        }
        let status = if went_back {
            ServiceStatus::Reverted
        } else {
            ServiceStatus::RevertFailed
        };
        if let Some(open) = ctx.open_record.lock().expect("open record").as_mut()
            && let Some(s) = open.service_mut(&p.svc.name)
        {
            s.status = status.clone();
        }
        if let Some(s) = rec.service_mut(&p.svc.name) {
            s.status = status;
        }
    }
    failed
}

/// Deploys the plans in waves; on the first failure stops, and reverts services that had
/// already succeeded.
pub(crate) async fn deploy_all(
    ctx: &Ctx,
    plans: &[ServicePlan],
    vars: &Vars,
    rec: &mut ReleaseRecord,
) -> Step<()> {
    let mut ordered: Vec<&ServicePlan> = plans
        .iter()
        .filter(|p| p.svc.agent_kind.is_some())
        .collect();
    ordered.extend(plans.iter().filter(|p| p.svc.agent_kind.is_none()));
    let parallel = ctx.env.release.max_parallel.max(1) as usize;
    let mut done: Vec<ServicePlan> = Vec::new();
    let mut outcome = Outcome::Succeeded;
    let mut reasons = Vec::new();
    for chunk in ordered.chunks(parallel) {
        if ctx.cancelled() {
            // Ctrl-C / SIGTERM between waves: start nothing more.
            outcome = outcome.worst(Outcome::Interrupted);
            reasons.push("interrupted (Ctrl-C / SIGTERM) before the next wave started".into());
            break;
        }
        let names: Vec<&str> = chunk.iter().map(|p| p.svc.name.as_str()).collect();
        ctx.report.stage(&format!("Deploy {}", names.join(", ")));
        let results =
            futures::future::join_all(chunk.iter().map(|p| deploy_service(ctx, p, vars, true)))
                .await;
        for (p, r) in chunk.iter().zip(results) {
            let note = |rec: &mut ReleaseRecord| {
                if let Some(s) = rec.service_mut(&r.name) {
                    s.deployment_arn = r.deployment_arn.clone();
                    s.status = r.status.clone();
                }
            };
            if let Some(open) = ctx.open_record.lock().expect("open record").as_mut() {
                note(open);
            }
            note(rec);
            if r.outcome == Outcome::Succeeded {
                done.push((*p).clone());
            } else {
                outcome = outcome.worst(r.outcome);
                reasons.push(format!("{}: {}", r.name, r.reason));
            }
        }
        if outcome != Outcome::Succeeded {
            break;
        }
    }
    if outcome == Outcome::Succeeded {
        return Ok(());
    }
    if outcome == Outcome::Superseded {
        // Someone else is deploying this environment: reverting would fight them.
        if !done.is_empty() {
            let names: Vec<&str> = done.iter().map(|p| p.svc.name.as_str()).collect();
            reasons.push(format!(
                "not reverted (they run this release): {}",
                names.join(", ")
            ));
        }
        return Err(Stop::new(outcome, reasons.join("\n")));
    }
    let failed = revert(ctx, &done, rec).await;
    if !failed.is_empty() {
        outcome = outcome.worst(Outcome::RollbackFailed);
        reasons.extend(failed);
        reasons.push(format!(
            "production may run a mix of revisions: check `deployer status --env {env}`, then `deployer rollback --env {env}`",
            env = ctx.env_name
        ));
    }
    Err(Stop::new(outcome, reasons.join("\n")))
}
