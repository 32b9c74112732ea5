//! `deployer rollback` and `deployer release --resume`.
//!
//! Rollback: if a deployment is in flight, roll it back (ContinueServiceDeployment ROLLBACK at a
//! paused hook, StopServiceDeployment ROLLBACK otherwise). If not, deploy the previous successful
//! release from the audit table (or the one named with `--to`) through the same gated flow; when
//! the audit table has nothing usable, fall back to task-definition history. A deregistered
//! target revision is re-registered from the release's image.
//!
//! Resume: re-attach to the newest `in_progress` release found in the audit table and the ECS API
//! (hook ids come from DescribeServiceDeployments — no local state), finish it with the same
//! gates, and finalise its audit record.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use aws_sdk_ecs::types::{SortOrder, TaskDefinitionField, TaskDefinitionStatus};

use crate::audit::{self, ReleaseRecord, ServiceRecord};
use crate::ecs_deploy;
use crate::history;
use crate::lock;
use crate::release::Outcome;
use crate::release::flow::{self, Ctx, ServicePlan};

async fn in_flight(ctx: &Ctx) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for svc in &ctx.env.services {
        for (arn, _, _) in
            ecs_deploy::list_deployments(&ctx.ecs, &ctx.env.cluster, &svc.name, true).await?
        {
            out.push((svc.name.clone(), arn));
        }
    }
    Ok(out)
}

async fn td_tags(ctx: &Ctx, td: &str) -> BTreeMap<String, String> {
    let mut tags = BTreeMap::new();
    if let Ok(out) = ctx
        .ecs
        .describe_task_definition()
        .task_definition(td)
        .include(TaskDefinitionField::Tags)
        .send()
        .await
    {
        for t in out.tags() {
            if let (Some(k), Some(v)) = (t.key(), t.value()) {
                tags.insert(k.to_owned(), v.to_owned());
            }
        }
    }
    tags
}

async fn td_status(ctx: &Ctx, td: &str) -> Result<(String, String)> {
    let out = ctx
        .ecs
        .describe_task_definition()
        .task_definition(td)
        .send()
        .await
        .with_context(|| format!("DescribeTaskDefinition {td}"))?;
    let t = out
        .task_definition()
        .ok_or_else(|| anyhow!("task definition {td} not found"))?;
    Ok((
        t.task_definition_arn().unwrap_or(td).to_owned(),
        t.status()
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default(),
    ))
}

async fn current_td(ctx: &Ctx, service: &str) -> Result<String> {
    let out = ctx
        .ecs
        .describe_services()
        .cluster(&ctx.env.cluster)
        .services(service)
        .send()
        .await
        .with_context(|| format!("DescribeServices {service}"))?;
    out.services()
        .first()
        .and_then(|s| s.task_definition())
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("service {service} does not exist in {}", ctx.env.cluster))
}

/// Follows deployments we asked ECS to roll back until they end; true if all rolled back.
async fn follow_rollbacks(ctx: &Ctx, arns: &[(String, String)], timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let mut all_ok = true;
    for (svc, arn) in arns {
        let mut poller = ecs_deploy::Poller::new();
        loop {
            match ecs_deploy::describe(&ctx.ecs, arn).await {
                Ok(v) => {
                    if poller.observe(&v) {
                        ctx.report.line(&format!(
                            "[{svc}] {} · {}",
                            v.status,
                            v.stage.as_deref().unwrap_or("-")
                        ));
                    }
                    if v.is_terminal() {
                        all_ok &= v.status == "ROLLBACK_SUCCESSFUL" || v.status == "STOPPED";
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
    all_ok
}

fn base_record(ctx: &Ctx, kind: &str, git_sha: &str, image: &str) -> ReleaseRecord {
    let (actor, ci_url) = lock::actor_and_ci_url();
    ReleaseRecord {
        env: ctx.env_name.clone(),
        release_id: audit::new_release_id(),
        kind: kind.into(),
        git_sha: git_sha.into(),
        image: image.into(),
        actor,
        ci_url,
        deployer_version: env!("CARGO_PKG_VERSION").into(),
        started_at: audit::now_rfc3339(),
        outcome: "in_progress".into(),
        ..Default::default()
    }
}

/// Marks an abandoned `in_progress` record as finished by someone else.
async fn close_record(ctx: &Ctx, rec: &ReleaseRecord, outcome: &str, reason: &str) {
    let mut r = rec.clone();
    r.outcome = outcome.into();
    r.reason = reason.into();
    r.finished_at = audit::now_rfc3339();
    if let Err(e) = ctx.audit().put(&r).await {
        ctx.report.line(&format!(
            "warning: could not update audit record {}: {e:#}",
            r.release_id
        ));
    }
}

/// `deployer rollback --env X [--to <release-id|git-sha|revision>]`.
pub async fn rollback(ctx: &Ctx, to: Option<&str>, wait_lock: Option<Duration>) -> Outcome {
    ctx.report.stage(&format!("Rollback of {}", ctx.env_name));
    let flights = match in_flight(ctx).await {
        Ok(f) => f,
        Err(e) => {
            ctx.report.error(&format!("{e:#}"));
            return Outcome::Failed;
        }
    };
    let records = match ctx.audit().list(&ctx.env_name, 50).await {
        Ok(r) => r,
        Err(e) => {
            ctx.report.line(&format!(
                "warning: audit table unreadable ({e:#}); using task-definition history"
            ));
            vec![]
        }
    };
    if !flights.is_empty() {
        // In flight: no lock needed (the release holding it sees its deployment roll back).
        let mut rolled = Vec::new();
        for (svc, arn) in &flights {
            match ecs_deploy::describe(&ctx.ecs, arn).await {
                Ok(v) => match ecs_deploy::roll_back_in_flight(&ctx.ecs, &v).await {
                    Ok(how) => {
                        ctx.report.line(&format!("[{svc}] {how} on {arn}"));
                        rolled.push((svc.clone(), arn.clone()));
                    }
                    Err(e) => ctx.report.error(&format!("[{svc}] {e:#}")),
                },
                Err(e) => ctx.report.error(&format!("[{svc}] {e:#}")),
            }
        }
        let ok = follow_rollbacks(ctx, &rolled, ctx.env.timeouts.deployment).await;
        let mut rec = base_record(ctx, "rollback", "", "");
        rec.reason = format!("rolled back {} in-flight deployment(s)", rolled.len());
        rec.services = rolled
            .iter()
            .map(|(s, a)| ServiceRecord {
                service: s.clone(),
                deployment_arn: a.clone(),
                status: "ROLLED_BACK".into(),
                ..Default::default()
            })
            .collect();
        let outcome = if ok && rolled.len() == flights.len() {
            Outcome::Succeeded
        } else {
            Outcome::Failed
        };
        rec.outcome = outcome.as_str().into();
        rec.finished_at = audit::now_rfc3339();
        let audit = ctx.audit();
        let _ = audit.ensure_table().await;
        if let Err(e) = audit.put(&rec).await {
            ctx.report
                .line(&format!("warning: audit record not written: {e:#}"));
        }
        flow::finish(ctx, &rec, outcome).await;
        return outcome;
    }

    // Nothing in flight: deploy an earlier release through the gated flow.
    let newest_success = records
        .iter()
        .find(|r| r.succeeded())
        .map(|r| r.release_id.clone());
    let target = match to {
        Some(t) => history::find_target(&records, t),
        None => history::previous_success(&records, newest_success.as_deref()),
    };
    let mut plans = Vec::new();
    let (git_sha, image, source);
    match target {
        Some(t) => {
            ctx.report.line(&format!(
                "target: release {} (git sha {}) from the audit table",
                t.release_id, t.git_sha
            ));
            git_sha = t.git_sha.clone();
            image = t.image.clone();
            source = format!("audit record {}", t.release_id);
            for svc in &ctx.env.services {
                let Some(s) = t.services.iter().find(|s| s.service == svc.name) else {
                    continue;
                };
                let current = match current_td(ctx, &svc.name).await {
                    Ok(c) => c,
                    Err(e) => {
                        ctx.report.error(&format!("{e:#}"));
                        return Outcome::PreflightFailed;
                    }
                };
                let mut target_td = s.task_definition.clone();
                match td_status(ctx, &target_td).await {
                    Ok((_, status)) if status == "ACTIVE" => {}
                    _ => {
                        // Deregistered (or gone): re-register from that release's image.
                        let vars = match flow::template_vars(
                            ctx,
                            Some(svc),
                            &image,
                            &git_sha,
                            &t.release_id,
                        ) {
                            Ok(v) => v,
                            Err(e) => {
                                ctx.report.error(&format!("{e:#}"));
                                return Outcome::ConfigError;
                            }
                        };
                        match flow::register(ctx, &svc.template, &vars, &git_sha, &t.release_id)
                            .await
                        {
                            Ok(td) => {
                                ctx.report.line(&format!(
                                    "[{}] {} is deregistered; re-registered it as {}",
                                    svc.name,
                                    history::short_td(&target_td),
                                    history::short_td(&td)
                                ));
                                target_td = td;
                            }
                            Err(e) => {
                                ctx.report.error(&format!("{e:#}"));
                                return Outcome::Failed;
                            }
                        }
                    }
                }
                if target_td == current {
                    continue;
                }
                plans.push(ServicePlan {
                    svc: svc.clone(),
                    target_td,
                    previous_td: current,
                    git_sha: git_sha.clone(),
                    deployment_arn: None,
                });
            }
        }
        None => {
            if let Some(t) = to
                && !records.is_empty()
                && !t.contains(':')
            {
                ctx.report.error(&format!(
                    "no successful release matching '{t}' in the audit table {}; pass a release id, a git sha (7+ characters) or a task-definition revision (family:N)",
                    ctx.env.audit_table
                ));
                return Outcome::ConfigError;
            }
            ctx.report
                .line("no usable audit record; falling back to task-definition history");
            source = "task-definition history".into();
            let mut sha = String::new();
            for svc in &ctx.env.services {
                let current = match current_td(ctx, &svc.name).await {
                    Ok(c) => c,
                    Err(e) => {
                        ctx.report.error(&format!("{e:#}"));
                        return Outcome::PreflightFailed;
                    }
                };
                let target_td = match previous_revision(ctx, &current, to).await {
                    Ok(Some(t)) => t,
                    Ok(None) => {
                        ctx.report.line(&format!(
                            "[{}] no earlier ACTIVE revision; left as is",
                            svc.name
                        ));
                        continue;
                    }
                    Err(e) => {
                        ctx.report.error(&format!("{e:#}"));
                        return Outcome::Failed;
                    }
                };
                let tags = td_tags(ctx, &target_td).await;
                if sha.is_empty() {
                    sha = tags.get("git_sha").cloned().unwrap_or_default();
                }
                plans.push(ServicePlan {
                    svc: svc.clone(),
                    git_sha: tags.get("git_sha").cloned().unwrap_or_default(),
                    target_td,
                    previous_td: current,
                    deployment_arn: None,
                });
            }
            git_sha = sha;
            image = String::new();
        }
    }
    if plans.is_empty() {
        ctx.report.error("nothing to roll back to: every service already runs the target revision (or none exists)");
        return Outcome::Failed;
    }
    ctx.report.line(&format!("rolling back using {source}"));
    let mut rec = base_record(ctx, "rollback", &git_sha, &image);
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
    flow::run_locked(ctx, &mut rec, wait_lock, None, move |ctx, rec| {
        Box::pin(async move {
            let vars = flow::vars_for(ctx, rec);
            let (o, r) = flow::deploy_all(ctx, &plans, &vars, rec).await;
            if o == Outcome::Succeeded {
                (o, source_note)
            } else {
                (o, r)
            }
        })
    })
    .await
}

/// The newest ACTIVE revision of `current`'s family older than it, or the one `to` names.
async fn previous_revision(ctx: &Ctx, current: &str, to: Option<&str>) -> Result<Option<String>> {
    let family_rev = history::short_td(current);
    let (family, rev) = family_rev
        .rsplit_once(':')
        .ok_or_else(|| anyhow!("cannot read the revision of {current}"))?;
    if let Some(t) = to
        && let Some((f, _)) = history::short_td(t).rsplit_once(':')
        && f == family
    {
        let (arn, _) = td_status(ctx, t).await?;
        return Ok(Some(arn));
    }
    let rev: i64 = rev.parse().unwrap_or(i64::MAX);
    let out = ctx
        .ecs
        .list_task_definitions()
        .family_prefix(family)
        .status(TaskDefinitionStatus::Active)
        .sort(SortOrder::Desc)
        .send()
        .await
        .context("ListTaskDefinitions")?;
    // Sorted here too: moto ignores `sort`.
    let mut candidates: Vec<(i64, String)> = out
        .task_definition_arns()
        .iter()
        .filter_map(|a| {
            let (f, r) = history::short_td(a).rsplit_once(':')?;
            if f != family {
                return None;
            }
            Some((r.parse().ok()?, a.clone()))
        })
        .filter(|(r, _)| *r < rev)
        .collect();
    candidates.sort_by_key(|c| std::cmp::Reverse(c.0));
    Ok(candidates.into_iter().next().map(|(_, a)| a))
}

/// `deployer release --resume`.
pub async fn resume(ctx: &Ctx, wait_lock: Option<Duration>) -> Outcome {
    ctx.report.stage(&format!(
        "Resume: looking for an unfinished release of {}",
        ctx.env_name
    ));
    let records = match ctx.audit().list(&ctx.env_name, 20).await {
        Ok(r) => r,
        Err(e) => {
            ctx.report.error(&format!("{e:#}"));
            return Outcome::Failed;
        }
    };
    let Some(open) = records.iter().find(|r| r.outcome == "in_progress").cloned() else {
        let flights = in_flight(ctx).await.unwrap_or_default();
        if flights.is_empty() {
            ctx.report
                .line("nothing to resume: no release in progress and no deployment in flight");
            return Outcome::Succeeded;
        }
        ctx.report.error(&format!(
            "deployments are in flight ({}) but no release in progress is recorded in {}; use `deployer rollback --env {}` or wait",
            flights.iter().map(|(s, _)| s.as_str()).collect::<Vec<_>>().join(", "),
            ctx.env.audit_table,
            ctx.env_name
        ));
        return Outcome::Failed;
    };
    ctx.report.line(&format!(
        "re-attaching to release {} (git sha {}, started {} by {})",
        open.release_id, open.git_sha, open.started_at, open.actor
    ));
    let mut rec = open.clone();
    let release_id = open.release_id.clone();
    flow::run_locked(ctx, &mut rec, wait_lock, Some(&release_id), |ctx, rec| {
        Box::pin(resume_body(ctx, rec))
    })
    .await
}

async fn resume_body(ctx: &Ctx, rec: &mut ReleaseRecord) -> (Outcome, String) {
    let mut plans = Vec::new();
    let mut done_ok = Vec::new();
    let mut failed: Option<(Outcome, String)> = None;
    for svc in &ctx.env.services {
        let Some(s) = rec.services.iter().find(|s| s.service == svc.name).cloned() else {
            continue;
        };
        if s.task_definition.is_empty() {
            // The first process died before registering: nothing moved; start over.
            return (
                Outcome::Failed,
                "the release stopped before its task definitions were registered; nothing changed — run `deployer release` again".into(),
            );
        }
        let mut arn = (!s.deployment_arn.is_empty()).then(|| s.deployment_arn.clone());
        if arn.is_none() {
            // Started but not recorded (the process died in between): the newest deployment
            // created after the release started.
            let started = chrono::DateTime::parse_from_rfc3339(&rec.started_at)
                .map(|t| t.timestamp())
                .unwrap_or(i64::MAX);
            if let Ok(list) =
                ecs_deploy::list_deployments(&ctx.ecs, &ctx.env.cluster, &svc.name, false).await
            {
                arn = list
                    .into_iter()
                    .find(|(_, _, created)| created.as_ref().is_some_and(|c| c.secs() >= started))
                    .map(|(a, _, _)| a);
            }
        }
        let plan = ServicePlan {
            svc: svc.clone(),
            target_td: s.task_definition.clone(),
            previous_td: s.previous_task_definition.clone(),
            git_sha: rec.git_sha.clone(),
            deployment_arn: arn.clone(),
        };
        match &arn {
            None => plans.push(plan),
            Some(a) => match ecs_deploy::describe(&ctx.ecs, a).await {
                Ok(v) if v.status == "SUCCESSFUL" => done_ok.push(plan),
                Ok(v) if v.is_terminal() => {
                    let why = v
                        .ecs_failure()
                        .unwrap_or_else(|| format!("ended {}: {}", v.status, v.best_reason()));
                    ctx.report.line(&format!("[{}] {why}", svc.name));
                    if let Some(r) = rec.services.iter_mut().find(|r| r.service == svc.name) {
                        r.status = v.status.clone();
                    }
                    failed = Some((Outcome::RolledBackEcs, format!("{}: {why}", svc.name)));
                }
                Ok(_) => plans.push(plan),
                Err(e) => return (Outcome::Failed, format!("{e:#}")),
            },
        }
    }
    if let Some((o, reason)) = failed {
        // Whatever is still in flight of this release is rolled back, and moved services reverted.
        for p in &plans {
            if let Some(a) = &p.deployment_arn
                && let Ok(v) = ecs_deploy::describe(&ctx.ecs, a).await
            {
                let _ = ecs_deploy::roll_back_in_flight(&ctx.ecs, &v).await;
            }
        }
        // Production goes back to the previous revision everywhere.
        if !done_ok.is_empty() {
            ctx.report.stage("Revert services that had already moved");
            flow::revert(ctx, &done_ok).await;
            for p in &done_ok {
                if let Some(s) = rec.services.iter_mut().find(|s| s.service == p.svc.name) {
                    s.status = "REVERTED".into();
                }
            }
        }
        return (o, reason);
    }
    // Already finished before the first process died: nothing to do for them, but a later
    // failure must revert them too.
    let vars = flow::vars_for(ctx, rec);
    let (o, reason) = flow::deploy_all(ctx, &plans, &vars, rec).await;
    if o != Outcome::Succeeded && !done_ok.is_empty() {
        flow::revert(ctx, &done_ok).await;
    }
    (o, reason)
}

/// Used by `status`: close records whose process died and whose deployments all ended.
pub async fn reconcile_open_record(ctx: &Ctx, rec: &ReleaseRecord) -> Option<String> {
    let mut reasons = Vec::new();
    for s in &rec.services {
        if s.deployment_arn.is_empty() {
            continue;
        }
        match ecs_deploy::describe(&ctx.ecs, &s.deployment_arn).await {
            Ok(v) if !v.is_terminal() => return None,
            Ok(v) if v.status != "SUCCESSFUL" => reasons.push(format!(
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
    close_record(ctx, rec, Outcome::RolledBackEcs.as_str(), &reason).await;
    Some(reason)
}
