//! ECS reads and actions the commands and the release engine share, each defined once: which
//! task definition a service runs, which deployments are in flight, what a service deployment
//! looks like (typed with the SDK's enums), and acting on its PAUSE hooks.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use aws_sdk_ecs::Client as Ecs;
use aws_sdk_ecs::error::SdkError;
use aws_sdk_ecs::operation::describe_services::DescribeServicesError;
use aws_sdk_ecs::primitives::DateTime;
use aws_sdk_ecs::types::{
    CreatedAt, DeploymentLifecycleHookAction, DeploymentLifecycleHookStatus, Service,
    ServiceDeployment, ServiceDeploymentLifecycleStage, ServiceDeploymentStatus, SortOrder,
    StopServiceDeploymentStopType, TaskDefinitionField, TaskDefinitionStatus,
};

// ------------------------------------------------------------------ services

/// The services of `names` that exist (not INACTIVE), by name; DescribeServices takes 10 a call.
pub async fn live_services(
    ecs: &Ecs,
    cluster: &str,
    names: &[String],
) -> Result<BTreeMap<String, Service>, SdkError<DescribeServicesError>> {
    let mut out = BTreeMap::new();
    for chunk in names.chunks(10) {
        let page = ecs
            .describe_services()
            .cluster(cluster)
            .set_services(Some(chunk.to_vec()))
            .send()
            .await?;
        for s in page.services() {
            if s.status() != Some("INACTIVE")
                && let Some(name) = s.service_name()
            {
                out.insert(name.to_owned(), s.clone());
            }
        }
    }
    Ok(out)
}

/// The task definition ARN a service runs; `None` when the service does not exist.
pub async fn current_task_definition(
    ecs: &Ecs,
    cluster: &str,
    service: &str,
) -> Result<Option<String>> {
    let live = live_services(ecs, cluster, &[service.to_owned()])
        .await
        .with_context(|| format!("DescribeServices {service}"))?;
    Ok(live
        .get(service)
        .and_then(|s| s.task_definition())
        .map(str::to_owned))
}

/// The last few service events: the "why" of a failed deployment.
pub async fn recent_events(ecs: &Ecs, cluster: &str, service: &str, n: usize) -> Vec<String> {
    match live_services(ecs, cluster, &[service.to_owned()]).await {
        Ok(live) => live
            .get(service)
            .map(|s| {
                s.events()
                    .iter()
                    .take(n)
                    .map(|e| e.message().unwrap_or_default().to_owned())
                    .collect()
            })
            .unwrap_or_default(),
        Err(_) => vec![],
    }
}

// ------------------------------------------------------------------ task definitions

/// A task definition's ARN (resolving `family:N`) and status.
pub async fn task_definition_status(
    ecs: &Ecs,
    td: &str,
) -> Result<(String, Option<TaskDefinitionStatus>)> {
    let out = ecs
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
        t.status().cloned(),
    ))
}

/// A task definition's tags (empty when it cannot be read).
pub async fn task_definition_tags(ecs: &Ecs, td: &str) -> BTreeMap<String, String> {
    let mut tags = BTreeMap::new();
    if let Ok(out) = ecs
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

/// `family:revision` of a task definition ARN.
pub fn short_td(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// The newest ACTIVE revision of `current`'s family older than it.
pub async fn previous_active_revision(ecs: &Ecs, current: &str) -> Result<Option<String>> {
    let (family, rev) = short_td(current)
        .rsplit_once(':')
        .ok_or_else(|| anyhow!("cannot read the revision of {current}"))?;
    let rev: i64 = rev.parse().unwrap_or(i64::MAX);
    let out = ecs
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
            let (f, r) = short_td(a).rsplit_once(':')?;
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

// ------------------------------------------------------------------ service deployments

/// Statuses of a deployment that has not ended: the one definition of "in flight".
pub const IN_FLIGHT: [ServiceDeploymentStatus; 5] = [
    ServiceDeploymentStatus::Pending,
    ServiceDeploymentStatus::InProgress,
    ServiceDeploymentStatus::RollbackRequested,
    ServiceDeploymentStatus::RollbackInProgress,
    ServiceDeploymentStatus::StopRequested,
];

/// Statuses a deployment never leaves.
pub fn is_terminal(status: &ServiceDeploymentStatus) -> bool {
    matches!(
        status,
        ServiceDeploymentStatus::Successful
            | ServiceDeploymentStatus::Stopped
            | ServiceDeploymentStatus::RollbackSuccessful
            | ServiceDeploymentStatus::RollbackFailed
    )
}

/// One entry of ListServiceDeployments.
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentBrief {
    pub arn: String,
    pub status: ServiceDeploymentStatus,
    pub created_at: Option<DateTime>,
    pub target_revision: Option<String>,
}

/// A service's deployments, newest first, optionally only those in flight.
pub async fn list_deployments(
    ecs: &Ecs,
    cluster: &str,
    service: &str,
    in_flight_only: bool,
) -> Result<Vec<DeploymentBrief>> {
    list_filtered(
        ecs,
        cluster,
        service,
        in_flight_only.then_some(&IN_FLIGHT[..]),
        None,
    )
    .await
}

/// A service's deployments created after `after`, newest first: the listing that finds the
/// deployment an UpdateService started without reading the service's whole history.
pub async fn list_created_after(
    ecs: &Ecs,
    cluster: &str,
    service: &str,
    after: DateTime,
) -> Result<Vec<DeploymentBrief>> {
    list_filtered(ecs, cluster, service, None, Some(after)).await
}

async fn list_filtered(
    ecs: &Ecs,
    cluster: &str,
    service: &str,
    status: Option<&[ServiceDeploymentStatus]>,
    created_after: Option<DateTime>,
) -> Result<Vec<DeploymentBrief>> {
    let mut req = ecs
        .list_service_deployments()
        .cluster(cluster)
        .service(service);
    if let Some(status) = status {
        req = req.set_status(Some(status.to_vec()));
    }
    if let Some(after) = created_after {
        req = req.created_at(CreatedAt::builder().after(after).build());
    }
    let mut out = Vec::new();
    let mut token = None;
    loop {
        let page = req
            .clone()
            .set_next_token(token)
            .send()
            .await
            .with_context(|| format!("ListServiceDeployments for {cluster}/{service}"))?;
        for d in page.service_deployments() {
            out.push(DeploymentBrief {
                arn: d.service_deployment_arn().unwrap_or_default().to_owned(),
                status: d
                    .status()
                    .cloned()
                    .unwrap_or(ServiceDeploymentStatus::Pending),
                created_at: d.created_at().cloned(),
                target_revision: d.target_service_revision_arn().map(str::to_owned),
            });
        }
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    out.sort_by_key(|d| std::cmp::Reverse(d.created_at));
    Ok(out)
}

/// A service's deployments that have not ended, newest first.
pub async fn in_flight(ecs: &Ecs, cluster: &str, service: &str) -> Result<Vec<DeploymentBrief>> {
    list_deployments(ecs, cluster, service, true).await
}

/// The in-flight deployments of several services: (service, deployment ARN), newest first.
pub async fn in_flight_of(
    ecs: &Ecs,
    cluster: &str,
    services: &[String],
) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for svc in services {
        for d in in_flight(ecs, cluster, svc).await? {
            out.push((svc.clone(), d.arn));
        }
    }
    Ok(out)
}

/// A paused lifecycle hook waiting for ContinueServiceDeployment.
#[derive(Debug, Clone, PartialEq)]
pub struct AwaitingHook {
    pub hook_id: String,
    /// The lifecycle stage the deployment paused in.
    pub stage: Option<ServiceDeploymentLifecycleStage>,
    pub expires_at: Option<String>,
    /// `expiresAt` in epoch seconds: after it, acting on the hook is pointless.
    pub expires_secs: Option<f64>,
    pub timeout_action: DeploymentLifecycleHookAction,
}

/// The lifecycle stages in the order a deployment goes through them, as the ECS API model
/// documents `ServiceDeployment.lifecycleStage` (the SDK's `values()` lists them alphabetically,
/// which is not that order).
pub const LIFECYCLE_ORDER: [&str; 11] = [
    "RECONCILE_SERVICE",
    "PRE_SCALE_UP",
    "SCALE_UP",
    "POST_SCALE_UP",
    "TEST_TRAFFIC_SHIFT",
    "POST_TEST_TRAFFIC_SHIFT",
    "PRE_PRODUCTION_TRAFFIC_SHIFT",
    "PRODUCTION_TRAFFIC_SHIFT",
    "POST_PRODUCTION_TRAFFIC_SHIFT",
    "BAKE_TIME",
    "CLEAN_UP",
];

/// Where `stage` (a lifecycle or hook stage name) comes in [`LIFECYCLE_ORDER`].
pub fn lifecycle_position(stage: &str) -> Option<usize> {
    LIFECYCLE_ORDER.iter().position(|s| *s == stage)
}

/// What the deployer needs from a service deployment, flattened from the SDK shape.
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentView {
    pub arn: String,
    pub status: ServiceDeploymentStatus,
    pub reason: String,
    pub stage: Option<ServiceDeploymentLifecycleStage>,
    pub awaiting_hook: Option<AwaitingHook>,
    pub rollback_reason: Option<String>,
    pub circuit_breaker_triggered: bool,
    pub triggered_alarms: Vec<String>,
    pub timed_out_hooks: usize,
    pub target_revision: Option<String>,
    /// `updatedAt` in epoch seconds: when the deployment last changed (e.g. a hook appeared).
    pub updated_at: Option<f64>,
    /// `createdAt`: where a successor's search starts.
    pub created_at: Option<DateTime>,
    /// How many lifecycle hooks the deployment lists as finished (SUCCEEDED, FAILED,
    /// TIMED_OUT). ECS may or may not keep finished hooks in the list: a hint, never relied on.
    pub finished_hooks: usize,
    /// The share of production traffic ECS has asked for on the new revision (0-100): which
    /// step of a LINEAR/CANARY shift the deployment is at. `None` when not reported.
    pub production_weight: Option<f64>,
}

impl DeploymentView {
    pub fn from_sdk(d: &ServiceDeployment) -> Self {
        let stage = d.lifecycle_stage().cloned();
        let hooks = d.lifecycle_hook_details();
        let awaiting_hook = hooks
            .iter()
            .find(|h| h.status() == Some(&DeploymentLifecycleHookStatus::AwaitingAction))
            .map(|h| AwaitingHook {
                hook_id: h.hook_id().unwrap_or_default().to_owned(),
                stage: stage.clone(),
                expires_at: h.expires_at().map(|t| t.to_string()),
                expires_secs: h.expires_at().map(|t| t.as_secs_f64()),
                timeout_action: h
                    .timeout_action()
                    .cloned()
                    .unwrap_or(DeploymentLifecycleHookAction::Rollback),
            });
        Self {
            arn: d.service_deployment_arn().unwrap_or_default().to_owned(),
            status: d
                .status()
                .cloned()
                .unwrap_or(ServiceDeploymentStatus::Pending),
            reason: d.status_reason().unwrap_or_default().to_owned(),
            stage,
            awaiting_hook,
            rollback_reason: d.rollback().and_then(|r| r.reason()).map(str::to_owned),
            circuit_breaker_triggered: d
                .deployment_circuit_breaker()
                .and_then(|c| c.status())
                .is_some_and(|s| s.as_str() == "TRIGGERED"),
            triggered_alarms: d
                .alarms()
                .map(|a| a.triggered_alarm_names().to_vec())
                .unwrap_or_default(),
            timed_out_hooks: hooks
                .iter()
                .filter(|h| h.status() == Some(&DeploymentLifecycleHookStatus::TimedOut))
                .count(),
            target_revision: d
                .target_service_revision()
                .and_then(|r| r.arn())
                .map(str::to_owned),
            production_weight: d
                .target_service_revision()
                .and_then(|r| r.requested_production_traffic_weight()),
            updated_at: d.updated_at().map(|t| t.as_secs_f64()),
            created_at: d.created_at().cloned(),
            finished_hooks: hooks
                .iter()
                .filter(|h| {
                    matches!(
                        h.status(),
                        Some(
                            DeploymentLifecycleHookStatus::Succeeded
                                | DeploymentLifecycleHookStatus::Failed
                                | DeploymentLifecycleHookStatus::TimedOut
                        )
                    )
                })
                .count(),
        }
    }

    pub fn is_terminal(&self) -> bool {
        is_terminal(&self.status)
    }

    pub fn is_rolling_back(&self) -> bool {
        matches!(
            self.status,
            ServiceDeploymentStatus::RollbackRequested
                | ServiceDeploymentStatus::RollbackInProgress
                | ServiceDeploymentStatus::RollbackSuccessful
                | ServiceDeploymentStatus::RollbackFailed
        )
    }

    /// The lifecycle stage as ECS names it, `-` when there is none.
    pub fn stage_name(&self) -> &str {
        self.stage.as_ref().map(|s| s.as_str()).unwrap_or("-")
    }

    /// Why ECS itself failed or rolled back the deployment, if it did.
    pub fn ecs_failure(&self) -> Option<String> {
        if self.circuit_breaker_triggered {
            return Some(format!(
                "ECS circuit breaker tripped: {}",
                self.best_reason()
            ));
        }
        if !self.triggered_alarms.is_empty() {
            return Some(format!(
                "CloudWatch alarm(s) {} fired: {}",
                self.triggered_alarms.join(", "),
                self.best_reason()
            ));
        }
        if self.timed_out_hooks > 0 {
            return Some(format!("lifecycle hook timed out: {}", self.best_reason()));
        }
        None
    }

    pub fn best_reason(&self) -> String {
        self.rollback_reason
            .clone()
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| self.reason.clone())
    }
}

pub async fn describe(ecs: &Ecs, arn: &str) -> Result<DeploymentView> {
    match describe_opt(ecs, arn).await? {
        Some(v) => Ok(v),
        None => bail!(
            "service deployment {arn} was not found (DescribeServiceDeployments reported it MISSING)"
        ),
    }
}

/// One deployment, `None` when ECS reports it MISSING (a deployment just created may be missing
/// for a while: ECS reads are eventually consistent).
pub async fn describe_opt(ecs: &Ecs, arn: &str) -> Result<Option<DeploymentView>> {
    let out = ecs
        .describe_service_deployments()
        .service_deployment_arns(arn)
        .send()
        .await
        .with_context(|| format!("DescribeServiceDeployments {arn}"))?;
    Ok(out
        .service_deployments()
        .first()
        .map(DeploymentView::from_sdk))
}

/// The task definition of each service revision (DescribeServiceRevisions, 20 a call).
pub async fn revision_task_definitions(
    ecs: &Ecs,
    revisions: &[String],
) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for chunk in revisions.chunks(20) {
        let page = ecs
            .describe_service_revisions()
            .set_service_revision_arns(Some(chunk.to_vec()))
            .send()
            .await
            .context("DescribeServiceRevisions")?;
        for r in page.service_revisions() {
            if let (Some(arn), Some(td)) = (r.service_revision_arn(), r.task_definition()) {
                out.insert(arn.to_owned(), td.to_owned());
            }
        }
    }
    Ok(out)
}

/// What a service revision runs: its task definition and the image digests ECS resolved for
/// it (`containerImages`; empty when ECS reports none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevisionIdentity {
    pub task_definition: String,
    pub image_digests: Vec<String>,
}

pub async fn revision_identity(ecs: &Ecs, revision_arn: &str) -> Result<Option<RevisionIdentity>> {
    let page = ecs
        .describe_service_revisions()
        .service_revision_arns(revision_arn)
        .send()
        .await
        .context("DescribeServiceRevisions")?;
    Ok(page.service_revisions().first().map(|r| RevisionIdentity {
        task_definition: r.task_definition().unwrap_or_default().to_owned(),
        image_digests: r
            .container_images()
            .iter()
            .filter_map(|c| c.image_digest().map(str::to_owned))
            .collect(),
    }))
}

pub async fn continue_hook(
    ecs: &Ecs,
    arn: &str,
    hook_id: &str,
    action: DeploymentLifecycleHookAction,
) -> Result<()> {
    ecs.continue_service_deployment()
        .service_deployment_arn(arn)
        .hook_id(hook_id)
        .action(action.clone())
        .send()
        .await
        .with_context(|| format!("ContinueServiceDeployment {} on {arn}", action.as_str()))?;
    Ok(())
}

pub async fn stop_with_rollback(ecs: &Ecs, arn: &str) -> Result<()> {
    ecs.stop_service_deployment()
        .service_deployment_arn(arn)
        .stop_type(StopServiceDeploymentStopType::Rollback)
        .send()
        .await
        .with_context(|| format!("StopServiceDeployment ROLLBACK on {arn}"))?;
    Ok(())
}

/// Rolls back an in-flight deployment the way its state requires: through the paused hook
/// (ContinueServiceDeployment ROLLBACK) or StopServiceDeployment ROLLBACK otherwise. One call;
/// [`roll_back_until_taken`] retries until ECS shows it.
pub async fn roll_back_in_flight(ecs: &Ecs, view: &DeploymentView) -> Result<&'static str> {
    if view.is_terminal() || view.is_rolling_back() {
        return Ok("already finished or rolling back");
    }
    if let Some(hook) = &view.awaiting_hook {
        continue_hook(
            ecs,
            &view.arn,
            &hook.hook_id,
            DeploymentLifecycleHookAction::Rollback,
        )
        .await?;
        return Ok("ContinueServiceDeployment ROLLBACK");
    }
    stop_with_rollback(ecs, &view.arn).await?;
    Ok("StopServiceDeployment ROLLBACK")
}

/// How long the first retry of an action waits; doubles up to [`ACTION_RETRY_MAX`].
const ACTION_RETRY_FIRST: Duration = Duration::from_millis(250);
const ACTION_RETRY_MAX: Duration = Duration::from_secs(5);

/// ContinueServiceDeployment `action` on `hook_id`, retried until ECS shows it took effect (the
/// hook is no longer AWAITING_ACTION, or the deployment moved on), the hook expired, or
/// `give_up`. A call that failed may still have been applied (a timeout after ECS acted), so
/// every failure is followed by a read before the next try. Returns how many calls were made.
pub async fn continue_until_taken(
    ecs: &Ecs,
    arn: &str,
    hook: &AwaitingHook,
    action: DeploymentLifecycleHookAction,
    give_up: Instant,
) -> Result<u32> {
    let mut wait = ACTION_RETRY_FIRST;
    let mut calls = 0;
    loop {
        calls += 1;
        let err = match continue_hook(ecs, arn, &hook.hook_id, action.clone()).await {
            Ok(()) => return Ok(calls),
            Err(e) => e,
        };
        if let Ok(Some(v)) = describe_opt(ecs, arn).await {
            let still_waiting = v
                .awaiting_hook
                .as_ref()
                .is_some_and(|h| h.hook_id == hook.hook_id);
            if !still_waiting || v.is_terminal() || v.is_rolling_back() {
                return Ok(calls);
            }
        }
        let expired = hook.expires_secs.is_some_and(|e| now_secs() >= e);
        if expired || Instant::now() + wait >= give_up {
            return Err(err.context(format!(
                "gave up after {calls} attempt(s){}",
                if expired { ": the hook expired" } else { "" }
            )));
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(ACTION_RETRY_MAX);
    }
}

/// Rolls back an in-flight deployment ([`roll_back_in_flight`]) and retries until ECS shows a
/// rollback (or the end of the deployment), or `give_up`.
pub async fn roll_back_until_taken(ecs: &Ecs, arn: &str, give_up: Instant) -> Result<&'static str> {
    let mut wait = ACTION_RETRY_FIRST;
    let mut last = None;
    loop {
        match describe_opt(ecs, arn).await {
            Ok(Some(v)) => {
                if v.is_terminal() || v.is_rolling_back() {
                    return Ok(last.unwrap_or("already finished or rolling back"));
                }
                match roll_back_in_flight(ecs, &v).await {
                    Ok(how) => last = Some(how),
                    Err(e) if Instant::now() + wait >= give_up => return Err(e),
                    Err(_) => {}
                }
            }
            Ok(None) | Err(_) if Instant::now() + wait >= give_up => {
                bail!("could not roll back {arn} before the deadline")
            }
            _ => {}
        }
        if Instant::now() + wait >= give_up {
            bail!("{arn} did not show a rollback before the deadline");
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(ACTION_RETRY_MAX);
    }
}

fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

// ------------------------------------------------------------------ stopped tasks

/// A stopped task of a service: why it stopped and how its containers exited.
#[derive(Debug, Clone, PartialEq)]
pub struct StoppedTask {
    pub task_id: String,
    pub task_definition: String,
    pub stop_code: Option<String>,
    pub stopped_reason: Option<String>,
    /// `(container, exit code, reason)`.
    pub containers: Vec<(String, Option<i32>, Option<String>)>,
    pub stopped_at: Option<f64>,
}

/// The service's most recently stopped tasks (at most `n`, newest first): ListTasks
/// `desiredStatus = STOPPED`, then DescribeTasks. Only tasks of the service's group
/// (`service:NAME`) are kept: ECS stops tasks of other groups too, and an emulator may not
/// filter by service.
pub async fn stopped_tasks(
    ecs: &Ecs,
    cluster: &str,
    service: &str,
    n: usize,
) -> Result<Vec<StoppedTask>> {
    let arns = ecs
        .list_tasks()
        .cluster(cluster)
        .service_name(service)
        .desired_status(aws_sdk_ecs::types::DesiredStatus::Stopped)
        .max_results(100)
        .send()
        .await
        .map_err(|e| {
            anyhow!(
                "ListTasks {service} STOPPED: {}",
                aws_smithy_types::error::display::DisplayErrorContext(&e)
            )
        })?
        .task_arns()
        .to_vec();
    if arns.is_empty() {
        return Ok(Vec::new());
    }
    let out = ecs
        .describe_tasks()
        .cluster(cluster)
        .set_tasks(Some(arns))
        .send()
        .await
        .map_err(|e| {
            anyhow!(
                "DescribeTasks {service}: {}",
                aws_smithy_types::error::display::DisplayErrorContext(&e)
            )
        })?;
    let group = format!("service:{service}");
    let mut tasks: Vec<StoppedTask> = out
        .tasks()
        .iter()
        .filter(|t| t.group() == Some(group.as_str()))
        .map(|t| StoppedTask {
            task_id: t
                .task_arn()
                .and_then(|a| a.rsplit('/').next())
                .unwrap_or("?")
                .to_owned(),
            task_definition: short_td(t.task_definition_arn().unwrap_or("?")).to_owned(),
            stop_code: t.stop_code().map(|c| c.as_str().to_owned()),
            stopped_reason: t.stopped_reason().map(str::to_owned),
            containers: t
                .containers()
                .iter()
                .map(|c| {
                    (
                        c.name().unwrap_or("?").to_owned(),
                        c.exit_code(),
                        c.reason().map(str::to_owned),
                    )
                })
                .collect(),
            stopped_at: t.stopped_at().map(|s| s.as_secs_f64()),
        })
        .collect();
    tasks.sort_by(|a, b| {
        b.stopped_at
            .unwrap_or(0.0)
            .total_cmp(&a.stopped_at.unwrap_or(0.0))
    });
    tasks.truncate(n);
    Ok(tasks)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn view(
        status: ServiceDeploymentStatus,
        stage: ServiceDeploymentLifecycleStage,
    ) -> DeploymentView {
        DeploymentView {
            arn: "a".into(),
            status,
            reason: String::new(),
            stage: Some(stage),
            awaiting_hook: None,
            rollback_reason: None,
            circuit_breaker_triggered: false,
            triggered_alarms: vec![],
            timed_out_hooks: 0,
            target_revision: None,
            updated_at: None,
            created_at: None,
            finished_hooks: 0,
            production_weight: None,
        }
    }

    #[test]
    fn ecs_failures_are_named() {
        let mut v = view(
            ServiceDeploymentStatus::RollbackSuccessful,
            ServiceDeploymentLifecycleStage::ScaleUp,
        );
        assert_eq!(v.ecs_failure(), None);
        v.circuit_breaker_triggered = true;
        v.rollback_reason = Some("tasks failed".into());
        assert!(v.ecs_failure().unwrap().contains("circuit breaker"));
        assert!(
            is_terminal(&ServiceDeploymentStatus::RollbackSuccessful)
                && !is_terminal(&ServiceDeploymentStatus::RollbackInProgress)
        );
    }
}
