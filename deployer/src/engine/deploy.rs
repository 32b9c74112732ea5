//! Deploying one service: UpdateService (unless re-attaching), then following its service
//! deployment to the end — acting on PAUSE hooks through the gates, checking production during
//! bake time, rolling back on the deadline or Ctrl-C.

use std::time::{Duration, Instant};

use aws_sdk_ecs::types::{
    DeploymentCircuitBreaker, DeploymentConfiguration, DeploymentLifecycleHook,
    DeploymentLifecycleHookAction, DeploymentLifecycleHookStage, DeploymentLifecycleHookTargetType,
    DeploymentLifecycleHookTimeoutConfiguration, DeploymentStrategy,
    ServiceDeploymentLifecycleStage as Stage, ServiceDeploymentStatus,
};

use super::gates::{self, GateFailed};
use super::smoke::Vars;
use super::{Ctx, Outcome, Stop};
use crate::aws::ecs::{self, DeploymentView, short_td};
use crate::aws::error_chain as aws_err;
use crate::aws::follow::{self, Poller};
use crate::config::{self, Strategy};
use crate::state::audit::ServiceStatus;

/// One service's part of a release.
#[derive(Debug, Clone)]
pub(crate) struct ServicePlan {
    pub svc: config::Service,
    pub target_td: String,
    pub previous_td: String,
    pub git_sha: String,
    /// Set when re-attaching to a deployment already in flight.
    pub deployment_arn: Option<String>,
}

/// How one service's deployment ended.
#[derive(Debug, Clone)]
pub(crate) struct ServiceResult {
    pub name: String,
    pub outcome: Outcome,
    pub reason: String,
    pub deployment_arn: String,
    pub status: ServiceStatus,
}

/// UpdateService to the plan's revision and deployment configuration; returns the service
/// deployment it started.
async fn start_deployment(ctx: &Ctx, plan: &ServicePlan) -> anyhow::Result<String> {
    let name = &plan.svc.name;
    let before: Vec<String> = ecs::list_deployments(&ctx.ecs, &ctx.env.cluster, name, false)
        .await?
        .into_iter()
        .map(|d| d.arn)
        .collect();
    ctx.ecs
        .update_service()
        .cluster(&ctx.env.cluster)
        .service(name)
        .task_definition(&plan.target_td)
        .desired_count(plan.svc.desired_count as i32)
        .deployment_configuration(deployment_configuration(ctx, &plan.svc))
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("UpdateService {name}: {}", aws_err(&e)))?;
    follow::wait_for_new_deployment(
        &ctx.ecs,
        &ctx.env.cluster,
        name,
        &before,
        Duration::from_secs(30),
    )
    .await
}

/// The ECS deployment configuration the service's strategy and hooks call for.
pub(crate) fn deployment_configuration(
    ctx: &Ctx,
    svc: &config::Service,
) -> DeploymentConfiguration {
    let breaker = DeploymentCircuitBreaker::builder()
        .enable(true)
        .rollback(true)
        .build();
    match svc.strategy {
        Strategy::Rolling => DeploymentConfiguration::builder()
            .strategy(DeploymentStrategy::Rolling)
            .deployment_circuit_breaker(breaker)
            .minimum_healthy_percent(100)
            .maximum_percent(200)
            .build(),
        Strategy::BlueGreen => {
            let mut stages: Vec<(String, Option<Duration>)> = svc
                .hooks
                .iter()
                .map(|h| (h.stage.clone(), h.timeout))
                .collect();
            if stages.is_empty() {
                let default = if svc.load_balancer.is_some() {
                    "POST_TEST_TRAFFIC_SHIFT"
                } else {
                    "POST_SCALE_UP"
                };
                stages.push((default.into(), None));
            }
            let mut b = DeploymentConfiguration::builder()
                .strategy(DeploymentStrategy::BlueGreen)
                .deployment_circuit_breaker(breaker)
                .bake_time_in_minutes(super::minutes_ceil(
                    svc.bake_time.unwrap_or(Duration::ZERO),
                    0,
                ));
            for (stage, timeout) in stages {
                b = b.lifecycle_hooks(
                    DeploymentLifecycleHook::builder()
                        .target_type(DeploymentLifecycleHookTargetType::Pause)
                        .lifecycle_stages(DeploymentLifecycleHookStage::from(stage.as_str()))
                        .timeout_configuration(
                            DeploymentLifecycleHookTimeoutConfiguration::builder()
                                .timeout_in_minutes(super::minutes_ceil(
                                    timeout.unwrap_or(ctx.env.timeouts.hook),
                                    1,
                                ))
                                .action(DeploymentLifecycleHookAction::Rollback)
                                .build(),
                        )
                        .build(),
                );
            }
            b.build()
        }
    }
}

/// Updates one service (unless re-attaching) and follows its deployment to a terminal state,
/// acting on hooks and watching the bake time.
pub(crate) async fn deploy_service(
    ctx: &Ctx,
    plan: &ServicePlan,
    vars: &Vars,
    gated: bool,
) -> ServiceResult {
    let name = plan.svc.name.clone();
    let fail = |outcome: Outcome, reason: String, arn: &str, status: ServiceStatus| ServiceResult {
        name: name.clone(),
        outcome,
        reason,
        deployment_arn: arn.to_owned(),
        status,
    };
    let arn = match &plan.deployment_arn {
        Some(a) => a.clone(),
        None => match start_deployment(ctx, plan).await {
            Ok(a) => a,
            Err(e) => {
                return fail(
                    Outcome::Failed,
                    format!("{e:#}"),
                    "",
                    ServiceStatus::NotStarted,
                );
            }
        },
    };
    if plan.deployment_arn.is_none() && gated {
        ctx.note_deployment(&name, &arn).await;
    }
    ctx.report.line(&format!(
        "[{name}] deployment {} → {}",
        arn.rsplit('/').next().unwrap_or(&arn),
        short_td(&plan.target_td)
    ));
    let deadline = Instant::now() + ctx.env.timeouts.deployment;
    let mut poller = Poller::new();
    let mut handled_hooks: Vec<String> = Vec::new();
    // Set once we decided to roll back (a failed gate, the deadline): how the service ends.
    let mut our_rollback: Option<Stop> = None;
    let mut last_bake_check = Instant::now() - Duration::from_secs(60);
    let mut cancel = ctx.cancel.clone();
    loop {
        let view: DeploymentView = match ecs::describe(&ctx.ecs, &arn).await {
            Ok(v) => v,
            Err(e) => {
                // Transient errors are retried by the SDK; anything left is reported but the
                // deployment is still followed until the deadline.
                ctx.report.line(&format!("[{name}] {e:#}"));
                if Instant::now() >= deadline {
                    return fail(
                        Outcome::TimedOut,
                        format!("{e:#}"),
                        &arn,
                        ServiceStatus::NotStarted,
                    );
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        if poller.observe(&view) {
            ctx.report.line(&format!(
                "[{name}] {} · {}{}",
                view.status.as_str(),
                view.stage_name(),
                if view.awaiting_hook.is_some() {
                    " · hook AWAITING_ACTION"
                } else {
                    ""
                }
            ));
        }
        ctx.stats.lock().expect("stats").polls += 1;
        if view.is_terminal() {
            let status = ServiceStatus::Deployment(view.status.clone());
            if view.status == ServiceDeploymentStatus::Successful {
                // Never report success unless the service runs the new revision.
                match ecs::current_task_definition(&ctx.ecs, &ctx.env.cluster, &name).await {
                    Ok(Some(td)) if td == plan.target_td => {}
                    Ok(td) => {
                        return fail(
                            Outcome::Failed,
                            format!(
                                "the deployment reported SUCCESSFUL but the service runs {}",
                                td.unwrap_or_else(|| "nothing".into())
                            ),
                            &arn,
                            status,
                        );
                    }
                    Err(e) => return fail(Outcome::Failed, format!("{e:#}"), &arn, status),
                }
                if gated
                    && plan.svc.strategy == Strategy::Rolling
                    && let Some(kind) = &plan.svc.agent_kind
                    && let Err(GateFailed(reason)) =
                        gates::agent_gate(ctx, kind, &plan.git_sha, Duration::from_secs(60)).await
                {
                    return fail(
                        Outcome::RolledBackSmoke,
                        reason,
                        &arn,
                        ServiceStatus::GateFailed,
                    );
                }
                return ServiceResult {
                    name,
                    outcome: Outcome::Succeeded,
                    reason: String::new(),
                    deployment_arn: arn,
                    status,
                };
            }
            let explain = ecs::recent_events(&ctx.ecs, &ctx.env.cluster, &name, 5)
                .await
                .iter()
                .map(|e| format!("    event: {e}"))
                .collect::<Vec<_>>()
                .join("\n");
            if let Some(stop) = our_rollback {
                return fail(stop.outcome, stop.reason, &arn, status);
            }
            let why = view.ecs_failure().unwrap_or_else(|| {
                format!(
                    "deployment ended {}: {}",
                    view.status.as_str(),
                    view.best_reason()
                )
            });
            let reason = if explain.is_empty() {
                why
            } else {
                format!("{why}\n{explain}")
            };
            return fail(Outcome::RolledBackEcs, reason, &arn, status);
        }
        if let Some(hook) = view.awaiting_hook.clone()
            && !handled_hooks.contains(&hook.hook_id)
            && our_rollback.is_none()
        {
            let seen = now_f64();
            // The deployment's updatedAt is when it entered the paused stage.
            let appeared = view.updated_at;
            ctx.report.line(&format!(
                "[{name}] paused at {} (hook {}), running the gate",
                hook.stage.as_ref().map(|s| s.as_str()).unwrap_or("-"),
                hook.hook_id
            ));
            let verdict = if gated {
                gates::gate_for_hook(ctx, &plan.svc, &plan.git_sha, hook.stage.as_ref(), vars).await
            } else {
                Ok(())
            };
            let action = if verdict.is_ok() {
                DeploymentLifecycleHookAction::Continue
            } else {
                DeploymentLifecycleHookAction::Rollback
            };
            let acted = now_f64();
            if let Err(e) = ecs::continue_hook(&ctx.ecs, &arn, &hook.hook_id, action.clone()).await
            {
                ctx.report.line(&format!("[{name}] {e:#}"));
            } else {
                ctx.report.line(&format!(
                    "[{name}] ContinueServiceDeployment {}",
                    action.as_str()
                ));
            }
            if let Some(a) = appeared {
                let mut s = ctx.stats.lock().expect("stats");
                s.hook_to_action_ms.push(((acted - a) * 1000.0).max(0.0));
                s.hook_detect_ms.push(((seen - a) * 1000.0).max(0.0));
            }
            handled_hooks.push(hook.hook_id.clone());
            if let Err(GateFailed(reason)) = verdict {
                our_rollback = Some(Stop::new(Outcome::RolledBackSmoke, reason));
            }
            continue;
        }
        // Bake time: keep checking production; a failure stops the deployment with ROLLBACK.
        if gated
            && our_rollback.is_none()
            && view.status == ServiceDeploymentStatus::InProgress
            && view.stage == Some(Stage::BakeTime)
            && last_bake_check.elapsed() >= Duration::from_millis(500)
        {
            last_bake_check = Instant::now();
            if let Some(Err(GateFailed(f))) = gates::bake_check(ctx, &plan.svc, vars).await {
                ctx.report.line(&format!("[{name}] during bake: {f}"));
                match ecs::stop_with_rollback(&ctx.ecs, &arn).await {
                    Ok(()) => ctx
                        .report
                        .line(&format!("[{name}] StopServiceDeployment ROLLBACK")),
                    Err(e) => ctx.report.line(&format!("[{name}] {e:#}")),
                }
                our_rollback = Some(Stop::new(
                    Outcome::RolledBackSmoke,
                    format!("during bake time: {f}"),
                ));
                continue;
            }
        }
        if Instant::now() >= deadline && our_rollback.is_none() {
            let how = ecs::roll_back_in_flight(&ctx.ecs, &view).await;
            ctx.report
                .line(&format!("[{name}] timed out; rolling back: {how:?}"));
            our_rollback = Some(Stop::new(
                Outcome::TimedOut,
                format!(
                    "the deployment did not finish within {:?}",
                    ctx.env.timeouts.deployment
                ),
            ));
            continue;
        }
        // Reverts (ungated) run to completion even after Ctrl-C: they restore production.
        if gated && ctx.cancelled() && our_rollback.is_none() {
            let how = ecs::roll_back_in_flight(&ctx.ecs, &view).await;
            ctx.report
                .line(&format!("[{name}] interrupted; rolling back: {how:?}"));
            return fail(
                Outcome::Interrupted,
                "interrupted (Ctrl-C / SIGTERM); the deployment was rolled back".into(),
                &arn,
                ServiceStatus::Deployment(ServiceDeploymentStatus::RollbackRequested),
            );
        }
        if ctx.cancelled() {
            tokio::time::sleep(poller.interval()).await;
        } else {
            tokio::select! {
                _ = tokio::time::sleep(poller.interval()) => {}
                _ = cancel.changed() => {}
            }
        }
    }
}

fn now_f64() -> f64 {
    chrono::Utc::now().timestamp_millis() as f64 / 1000.0
}
