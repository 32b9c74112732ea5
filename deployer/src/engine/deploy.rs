//! Deploying one service: UpdateService (unless re-attaching), finding the service deployment it
//! started, then following it to the end — acting on PAUSE hooks through the gates, checking
//! production once traffic moved, rolling back on a failed gate, the deadline or Ctrl-C, and
//! putting the previous revision back whenever a deployment we decided to roll back still ended
//! SUCCESSFUL.

use std::time::{Duration, Instant};

use aws_sdk_ecs::primitives::DateTime;
use aws_sdk_ecs::types::{
    CanaryConfiguration, DeploymentCircuitBreaker, DeploymentConfiguration,
    DeploymentLifecycleHook, DeploymentLifecycleHookAction, DeploymentLifecycleHookStage,
    DeploymentLifecycleHookTargetType, DeploymentLifecycleHookTimeoutConfiguration,
    DeploymentStrategy, LinearConfiguration, ServiceDeploymentLifecycleStage as Stage,
    ServiceDeploymentStatus,
};

use super::analysis::{self, Verdict};
use super::gates::{self, GateFailed};
use super::smoke::Vars;
use super::{Ctx, Outcome, Stop};
use crate::aws::ecs::{self, DeploymentView, short_td};
use crate::aws::error_chain as aws_err;
use crate::aws::follow::{self, Found, Poller};
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

/// How long a deployment ECS just created may stay unlisted (List) or MISSING (Describe): ECS
/// reads are eventually consistent.
const FIND_WITHIN: Duration = Duration::from_secs(60);
/// After the deployment we followed ended STOPPED without our doing, how long to look for the
/// deployment that replaced it.
const SUCCESSOR_WITHIN: Duration = Duration::from_secs(20);
/// Production checks during and after the traffic shift run at their own pace, not ECS's.
const PRODUCTION_CHECK_EVERY: Duration = Duration::from_millis(500);

/// The lifecycle stages the deployer pauses at for `svc`, in the order ECS reaches them.
pub(crate) fn pause_stages(
    svc: &config::Service,
) -> Vec<(DeploymentLifecycleHookStage, Option<Duration>)> {
    let mut stages: Vec<(DeploymentLifecycleHookStage, Option<Duration>)> = svc
        .hooks
        .iter()
        .map(|h| {
            (
                DeploymentLifecycleHookStage::from(h.stage.as_str()),
                h.timeout,
            )
        })
        .collect();
    if stages.is_empty() {
        // LINEAR/CANARY: ECS runs PRE_PRODUCTION_TRAFFIC_SHIFT before every traffic step, so
        // one PAUSE there gates the test traffic first, then each step after its bake.
        let default = if svc.strategy.steps_traffic() {
            DeploymentLifecycleHookStage::PreProductionTrafficShift
        } else if svc.load_balancer.is_some() {
            DeploymentLifecycleHookStage::PostTestTrafficShift
        } else {
            DeploymentLifecycleHookStage::PostScaleUp
        };
        stages.push((default, None));
    }
    stages.sort_by_key(|(s, _)| ecs::lifecycle_position(s.as_str()));
    stages
}

/// The service's deployment configuration with only what the deployer owns changed: the
/// strategy, the bake time (when deployer.toml sets one), and the PAUSE hooks (the deployer's
/// gates; it acts on every pause, so it owns them all). Everything else the service has —
/// alarms, Lambda hooks, the circuit breaker, min/max percent, linear/canary settings — is sent
/// back as it is (UpdateService replaces the whole structure). A service with no circuit
/// breaker gets one with rollback, the deployer's safety default.
pub(crate) fn deployment_configuration(
    ctx: &Ctx,
    svc: &config::Service,
    current: Option<&DeploymentConfiguration>,
) -> DeploymentConfiguration {
    let keep_breaker = current
        .and_then(|c| c.deployment_circuit_breaker())
        .cloned();
    let breaker = keep_breaker.unwrap_or_else(|| {
        DeploymentCircuitBreaker::builder()
            .enable(true)
            .rollback(true)
            .build()
    });
    let mut b = DeploymentConfiguration::builder()
        .deployment_circuit_breaker(breaker)
        .set_maximum_percent(current.and_then(|c| c.maximum_percent()))
        .set_minimum_healthy_percent(current.and_then(|c| c.minimum_healthy_percent()))
        .set_alarms(current.and_then(|c| c.alarms()).cloned())
        .set_linear_configuration(current.and_then(|c| c.linear_configuration()).cloned())
        .set_canary_configuration(current.and_then(|c| c.canary_configuration()).cloned())
        .set_early_success_criteria(current.and_then(|c| c.early_success_criteria()).cloned());
    let others: Vec<DeploymentLifecycleHook> = current
        .map(|c| c.lifecycle_hooks())
        .unwrap_or_default()
        .iter()
        .filter(|h| h.target_type() != Some(&DeploymentLifecycleHookTargetType::Pause))
        .cloned()
        .collect();
    match svc.strategy {
        Strategy::Rolling => {
            b = b
                .strategy(DeploymentStrategy::Rolling)
                .set_bake_time_in_minutes(current.and_then(|c| c.bake_time_in_minutes()))
                .set_lifecycle_hooks((!others.is_empty()).then_some(others));
        }
        Strategy::BlueGreen | Strategy::Linear | Strategy::Canary => {
            let bake = match svc.bake_time {
                Some(d) => super::minutes_ceil(d, 0),
                None => current.and_then(|c| c.bake_time_in_minutes()).unwrap_or(0),
            };
            b = b
                .strategy(DeploymentStrategy::from(svc.strategy.ecs_name()))
                .bake_time_in_minutes(bake);
            // The step settings deployer.toml gives win; what it leaves out stays as the
            // service has it (ECS's defaults when neither says).
            if svc.strategy == Strategy::Linear {
                let live = current.and_then(|c| c.linear_configuration());
                b = b.linear_configuration(
                    LinearConfiguration::builder()
                        .set_step_percent(svc.step_percent.or(live.and_then(|l| l.step_percent())))
                        .set_step_bake_time_in_minutes(
                            svc.step_bake_time
                                .map(|d| super::minutes_ceil(d, 0))
                                .or(live.and_then(|l| l.step_bake_time_in_minutes())),
                        )
                        .build(),
                );
            }
            if svc.strategy == Strategy::Canary {
                let live = current.and_then(|c| c.canary_configuration());
                b = b.canary_configuration(
                    CanaryConfiguration::builder()
                        .set_canary_percent(
                            svc.canary_percent.or(live.and_then(|l| l.canary_percent())),
                        )
                        .set_canary_bake_time_in_minutes(
                            svc.canary_bake_time
                                .map(|d| super::minutes_ceil(d, 0))
                                .or(live.and_then(|l| l.canary_bake_time_in_minutes())),
                        )
                        .build(),
                );
            }
            let mut hooks = others;
            for (stage, timeout) in pause_stages(svc) {
                hooks.push(
                    DeploymentLifecycleHook::builder()
                        .target_type(DeploymentLifecycleHookTargetType::Pause)
                        .lifecycle_stages(stage)
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
            b = b.set_lifecycle_hooks(Some(hooks));
        }
    }
    b.build()
}

/// Why starting a deployment did not give us one to follow.
struct NotStarted {
    outcome: Outcome,
    reason: String,
    status: ServiceStatus,
    arn: String,
}

/// UpdateService to the plan's revision (the deployment configuration merged into the live
/// one, the desired count only when the deployer owns it), then the service deployment it
/// started.
async fn start_deployment(ctx: &Ctx, plan: &ServicePlan) -> Result<String, NotStarted> {
    let name = &plan.svc.name;
    let not_changed = |reason: String| NotStarted {
        outcome: Outcome::Failed,
        reason,
        status: ServiceStatus::NotStarted,
        arn: String::new(),
    };
    let live = ecs::live_services(&ctx.ecs, &ctx.env.cluster, std::slice::from_ref(name))
        .await
        .map_err(|e| not_changed(format!("DescribeServices {name}: {}", aws_err(&e))))?;
    let current = live
        .get(name)
        .and_then(|s| s.deployment_configuration())
        .cloned();
    // Deployments that exist before the update are never ours. Only recent ones are listed.
    let recent = DateTime::from(std::time::SystemTime::now() - Duration::from_secs(3600));
    let before: Vec<String> = ecs::list_created_after(&ctx.ecs, &ctx.env.cluster, name, recent)
        .await
        .map_err(|e| not_changed(format!("{e:#}")))?
        .into_iter()
        .map(|d| d.arn)
        .collect();
    let sent_at = std::time::SystemTime::now();
    let mut update = ctx
        .ecs
        .update_service()
        .cluster(&ctx.env.cluster)
        .service(name)
        .task_definition(&plan.target_td)
        .deployment_configuration(deployment_configuration(ctx, &plan.svc, current.as_ref()));
    if let Some(n) = plan.svc.desired_count {
        update = update.desired_count(n as i32);
    }
    let out = update
        .send()
        .await
        .map_err(|e| not_changed(format!("UpdateService {name}: {}", aws_err(&e))))?;
    // The service's PRIMARY deployment carries ECS's own clock: list from just before it.
    let since = out
        .service()
        .and_then(|s| {
            s.deployments()
                .iter()
                .find(|d| d.status() == Some("PRIMARY"))
        })
        .and_then(|d| d.created_at())
        .map(|t| DateTime::from_secs_f64(t.as_secs_f64() - 2.0))
        .unwrap_or_else(|| DateTime::from(sent_at - Duration::from_secs(60)));
    match follow::find_deployment(
        &ctx.ecs,
        &ctx.env.cluster,
        name,
        &plan.target_td,
        since,
        &before,
        FIND_WITHIN,
        false,
    )
    .await
    {
        Ok(Found::Ours(arn)) => Ok(arn),
        Ok(Found::Other {
            arn,
            task_definition,
        }) => Err(NotStarted {
            outcome: Outcome::Superseded,
            reason: superseded_reason(ctx, name, &arn, &task_definition),
            status: ServiceStatus::Superseded,
            arn,
        }),
        Err(e) => Err(NotStarted {
            outcome: Outcome::Failed,
            reason: format!(
                "UpdateService {name} was accepted, but {e:#}; a deployment may be running unattended: \
                 `deployer status --env {env}` shows it, `deployer rollback --env {env}` rolls it back",
                env = ctx.env_name
            ),
            status: ServiceStatus::Deployment(ServiceDeploymentStatus::InProgress),
            arn: String::new(),
        }),
    }
}

fn superseded_reason(ctx: &Ctx, service: &str, arn: &str, td: &str) -> String {
    format!(
        "another deployment took over {service}: {} to {} (not this release's); the deployer rolled nothing back. \
         Someone else updated the service (bypassing the deploy lock?); see `deployer status --env {}`",
        arn.rsplit('/').next().unwrap_or(arn),
        short_td(td),
        ctx.env_name
    )
}

/// Updates one service (unless re-attaching) and follows its deployment to a terminal state,
/// acting on hooks and watching production once traffic moved.
pub(crate) async fn deploy_service(
    ctx: &Ctx,
    plan: &ServicePlan,
    vars: &Vars,
    gated: bool,
) -> ServiceResult {
    let name = plan.svc.name.clone();
    let reattached = plan.deployment_arn.is_some();
    let arn = match &plan.deployment_arn {
        Some(a) => a.clone(),
        None => match start_deployment(ctx, plan).await {
            Ok(a) => a,
            Err(n) => {
                return ServiceResult {
                    name,
                    outcome: n.outcome,
                    reason: n.reason,
                    deployment_arn: n.arn,
                    status: n.status,
                };
            }
        },
    };
    if !reattached && gated {
        ctx.note_deployment(&name, &arn).await;
    }
    ctx.report.line(&format!(
        "[{name}] deployment {} → {}",
        arn.rsplit('/').next().unwrap_or(&arn),
        short_td(&plan.target_td)
    ));
    let mut f = Follow {
        ctx,
        plan,
        vars,
        gated,
        reattached,
        arn,
        followed: Vec::new(),
        stages: pause_stages(&plan.svc)
            .into_iter()
            .map(|(s, _)| s)
            .collect(),
        handled_hooks: Vec::new(),
        our_rollback: None,
        deadline: Instant::now() + ctx.env.timeouts.deployment,
        rollback_deadline: None,
        production_rounds: 0,
        last_production_check: None,
        analyses: analysis::for_service(&ctx.env.analysis, &plan.svc)
            .into_iter()
            .cloned()
            .collect(),
        target_groups: None,
        traffic_since: None,
        last_analysis: None,
    };
    f.run().await
}

/// Following one deployment (and its successor when ECS replaces it).
struct Follow<'a> {
    ctx: &'a Ctx,
    plan: &'a ServicePlan,
    vars: &'a Vars,
    gated: bool,
    reattached: bool,
    arn: String,
    /// Deployments followed before `arn` (a successor search skips them).
    followed: Vec<String>,
    /// The PAUSE stages configured, in ECS's order: which gate a pause gets.
    stages: Vec<DeploymentLifecycleHookStage>,
    handled_hooks: Vec<String>,
    /// Set once we decided to roll back (a failed gate, the deadline): how the service ends.
    our_rollback: Option<Stop>,
    deadline: Instant,
    /// Set when a rollback was asked for: the wait for it is bounded too.
    rollback_deadline: Option<Instant>,
    production_rounds: u32,
    last_production_check: Option<Instant>,
    /// The metric analyses that judge this service (deployer.toml `analysis`).
    analyses: Vec<config::Analysis>,
    /// New and old target group, read once when an analysis first needs them.
    target_groups: Option<analysis::TargetGroups>,
    /// When production traffic first reached the new revision: where the analysis' periods start.
    traffic_since: Option<std::time::SystemTime>,
    last_analysis: Option<Instant>,
}

impl Follow<'_> {
    fn name(&self) -> &str {
        &self.plan.svc.name
    }

    fn result(&self, outcome: Outcome, reason: String, status: ServiceStatus) -> ServiceResult {
        ServiceResult {
            name: self.name().to_owned(),
            outcome,
            reason,
            deployment_arn: self.arn.clone(),
            status,
        }
    }

    fn line(&self, text: &str) {
        self.ctx.report.line(&format!("[{}] {text}", self.name()));
    }

    async fn run(&mut self) -> ServiceResult {
        let ctx = self.ctx;
        let bake = self.plan.svc.bake_time;
        let mut poller = Poller::new().with_bake(bake);
        let mut cancel = ctx.cancel.clone();
        let mut missing_since: Option<Instant> = None;
        let mut last_view: Option<DeploymentView> = None;
        loop {
            let view = match ecs::describe_opt(&ctx.ecs, &self.arn).await {
                Ok(Some(v)) => {
                    missing_since = None;
                    v
                }
                Ok(None) => {
                    // Just created, not readable yet (eventual consistency): wait, bounded.
                    let since = *missing_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= FIND_WITHIN {
                        return self.result(
                            Outcome::Failed,
                            format!(
                                "service deployment {} stayed MISSING in DescribeServiceDeployments for {FIND_WITHIN:?}; see `deployer status --env {}`",
                                self.arn, ctx.env_name
                            ),
                            ServiceStatus::Deployment(ServiceDeploymentStatus::InProgress),
                        );
                    }
                    self.pause(&mut poller, &mut cancel).await;
                    continue;
                }
                Err(e) => {
                    // The SDK already retried; what is left is reported, and the deployment is
                    // still followed until the deadline.
                    self.line(&format!("{e:#}"));
                    if let Some(stop) = self.past_deadlines(last_view.as_ref()).await {
                        return stop;
                    }
                    self.pause(&mut poller, &mut cancel).await;
                    continue;
                }
            };
            ctx.stats.lock().expect("stats").polls += 1;
            if poller.observe(&view) {
                self.mark(&view);
                self.line(&format!(
                    "{} · {}{}",
                    view.status.as_str(),
                    view.stage_name(),
                    if view.awaiting_hook.is_some() {
                        " · hook AWAITING_ACTION"
                    } else {
                        ""
                    }
                ));
            }
            poller.expect_pause(self.pause_due(&view));
            if view.is_terminal() {
                match self.ended(&view).await {
                    Ended::Result(r) => return r,
                    Ended::Follow(next) => {
                        self.followed.push(std::mem::replace(&mut self.arn, next));
                        self.handled_hooks.clear();
                        poller = Poller::new().with_bake(bake);
                        last_view = None;
                        continue;
                    }
                }
            }
            if let Some(hook) = view.awaiting_hook.clone()
                && !self.handled_hooks.contains(&hook.hook_id)
            {
                self.act_on_hook(&view, &hook).await;
                poller.acted();
                last_view = Some(view);
                continue;
            }
            if self.gated
                && self.our_rollback.is_none()
                && view.status == ServiceDeploymentStatus::InProgress
                && production_has_traffic(&view)
            {
                self.production_check().await;
            }
            if let Some(stop) = self.past_deadlines(Some(&view)).await {
                return stop;
            }
            // Ctrl-C / SIGTERM: roll back, and follow the rollback (a deployment that still
            // ends SUCCESSFUL is reverted). Reverts (ungated) run to completion: they restore
            // production.
            if self.gated && ctx.cancelled() && self.our_rollback.is_none() {
                self.decide_rollback(Stop::new(
                    Outcome::Interrupted,
                    "interrupted (Ctrl-C / SIGTERM); the deployment was rolled back",
                ));
                let how = ecs::roll_back_until_taken(&ctx.ecs, &self.arn, self.rollback_by()).await;
                self.line(&format!("interrupted; rolling back: {how:?}"));
                poller.acted();
            }
            let checking = self.gated
                && self.our_rollback.is_none()
                && view.status == ServiceDeploymentStatus::InProgress
                && production_has_traffic(&view);
            last_view = Some(view);
            self.checks_until_next_poll(&poller, &mut cancel, checking)
                .await;
        }
    }

    /// Waits for the next poll.
    async fn pause(&self, poller: &mut Poller, cancel: &mut tokio::sync::watch::Receiver<bool>) {
        self.sleep_or_cancel(poller.interval(), cancel).await;
    }

    /// Returns early (true) when the release was cancelled meanwhile.
    async fn sleep_or_cancel(
        &self,
        wait: Duration,
        cancel: &mut tokio::sync::watch::Receiver<bool>,
    ) -> bool {
        if self.ctx.cancelled() {
            tokio::time::sleep(wait).await;
            false
        } else {
            tokio::select! {
                _ = tokio::time::sleep(wait) => false,
                _ = cancel.changed() => true,
            }
        }
    }

    /// Until the next poll of the deployment: production checks every PRODUCTION_CHECK_EVERY
    /// while production traffic is on the new revision. The checks need no ECS call, and the
    /// deployment is read again only when the poll is due (ECS's describe budget is shared by
    /// the whole account), or at once when a check decided to roll back.
    async fn checks_until_next_poll(
        &mut self,
        poller: &Poller,
        cancel: &mut tokio::sync::watch::Receiver<bool>,
        checking: bool,
    ) {
        let due = Instant::now() + poller.interval();
        loop {
            let now = Instant::now();
            if now >= due {
                return;
            }
            let wait = if checking {
                (due - now).min(PRODUCTION_CHECK_EVERY)
            } else {
                due - now
            };
            if self.sleep_or_cancel(wait, cancel).await {
                return;
            }
            if !checking || Instant::now() >= due {
                return;
            }
            self.production_check().await;
            if self.our_rollback.is_some() {
                return;
            }
        }
    }

    /// When the wait for a rollback we asked for ends.
    fn rollback_by(&self) -> Instant {
        self.rollback_deadline
            .unwrap_or_else(|| Instant::now() + self.ctx.env.timeouts.deployment)
    }

    /// The deployment deadline (roll back) and the rollback's own deadline (give up, say so).
    async fn past_deadlines(&mut self, view: Option<&DeploymentView>) -> Option<ServiceResult> {
        let now = Instant::now();
        if let Some(by) = self.rollback_deadline
            && now >= by
        {
            let status = view
                .map(|v| ServiceStatus::Deployment(v.status.clone()))
                .unwrap_or_default();
            return Some(self.result(
                Outcome::RollbackFailed,
                format!(
                    "the rollback of {} did not finish within {:?}{}; production may run a mix of revisions: \
                     check `deployer status --env {env}`, then `deployer rollback --env {env}`",
                    self.arn,
                    self.ctx.env.timeouts.deployment,
                    self.our_rollback
                        .as_ref()
                        .map(|s| format!(" (rolled back because: {})", s.reason))
                        .unwrap_or_default(),
                    env = self.ctx.env_name
                ),
                status,
            ));
        }
        if now >= self.deadline && self.our_rollback.is_none() {
            self.decide_rollback(Stop::new(
                Outcome::TimedOut,
                format!(
                    "the deployment did not finish within {:?}",
                    self.ctx.env.timeouts.deployment
                ),
            ));
            let how =
                ecs::roll_back_until_taken(&self.ctx.ecs, &self.arn, self.rollback_by()).await;
            self.line(&format!("timed out; rolling back: {how:?}"));
        }
        None
    }

    fn decide_rollback(&mut self, stop: Stop) {
        if self.our_rollback.is_none() {
            self.our_rollback = Some(stop);
            self.rollback_deadline = Some(Instant::now() + self.ctx.env.timeouts.deployment);
        }
    }

    /// The gate for a paused hook, then CONTINUE or ROLLBACK, retried until ECS shows it.
    async fn act_on_hook(&mut self, view: &DeploymentView, hook: &ecs::AwaitingHook) {
        let ctx = self.ctx;
        let seen = now_f64();
        let appeared = view.updated_at;
        let stage = self.stage_of_pause(view);
        self.line(&format!(
            "paused (hook {}) at {}{}, running the gate",
            hook.hook_id,
            stage
                .as_ref()
                .map(|s| s.as_str())
                .unwrap_or("an unknown stage"),
            match view.production_weight {
                Some(w) if self.plan.svc.strategy.steps_traffic() =>
                    format!(" (new revision at {w}% of production)"),
                _ => String::new(),
            }
        ));
        if self.gated {
            self.notify_pause(view, hook, stage.as_ref());
        }
        let verdict = if self.our_rollback.is_some() {
            Err(GateFailed(
                "the deployer already decided to roll back".into(),
            ))
        } else if self.gated && ctx.cancelled() {
            Err(GateFailed("interrupted (Ctrl-C / SIGTERM)".into()))
        } else if !self.gated {
            Ok(())
        } else {
            match &stage {
                Some(s) => {
                    let gate =
                        gates::gate_for_hook(ctx, &self.plan.svc, &self.plan.git_sha, s, self.vars)
                            .await;
                    // A LINEAR/CANARY step: the step that baked is judged on production too
                    // before the next one moves more traffic.
                    match gate {
                        Ok(()) if production_has_traffic(view) => {
                            let at = |GateFailed(f)| {
                                GateFailed(format!(
                                    "at the traffic step with {}% of production: {f}",
                                    view.production_weight.unwrap_or_default()
                                ))
                            };
                            match gates::bake_check(ctx, &self.plan.svc, self.vars)
                                .await
                                .unwrap_or(Ok(()))
                            {
                                Ok(()) => self
                                    .step_analysis(hook, view.production_weight)
                                    .await
                                    .map_err(at),
                                Err(e) => Err(at(e)),
                            }
                        }
                        other => other,
                    }
                }
                None => Err(GateFailed(format!(
                    "the deployment paused (hook {}) where the deployer has no gate: it configured PAUSE at {} and cannot tell which stage this pause is; failing closed",
                    hook.hook_id,
                    self.stages
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))),
            }
        };
        let action = if verdict.is_ok() {
            DeploymentLifecycleHookAction::Continue
        } else {
            DeploymentLifecycleHookAction::Rollback
        };
        let acted = now_f64();
        let give_up = self.rollback_by().min(self.deadline.max(Instant::now()));
        match ecs::continue_until_taken(&ctx.ecs, &self.arn, hook, action.clone(), give_up).await {
            Ok(calls) => self.line(&format!(
                "ContinueServiceDeployment {}{}",
                action.as_str(),
                if calls > 1 {
                    format!(" (after {calls} attempts)")
                } else {
                    String::new()
                }
            )),
            Err(e) => self.line(&format!("{e:#}")),
        }
        if let Some(a) = appeared {
            let mut s = ctx.stats.lock().expect("stats");
            s.hook_to_action_ms.push(((acted - a) * 1000.0).max(0.0));
            s.hook_detect_ms.push(((seen - a) * 1000.0).max(0.0));
        }
        self.handled_hooks.push(hook.hook_id.clone());
        if let Err(GateFailed(reason)) = verdict
            && self.our_rollback.is_none()
        {
            let outcome = if ctx.cancelled() {
                Outcome::Interrupted
            } else {
                Outcome::RolledBackSmoke
            };
            self.decide_rollback(Stop::new(outcome, reason));
        }
    }

    /// One entry of the step summary's timeline: the stage (with the traffic step), a pause,
    /// or how the deployment ended.
    fn mark(&self, view: &DeploymentView) {
        let what = if view.is_terminal() {
            view.status.as_str().to_owned()
        } else if view.awaiting_hook.is_some() {
            "paused".to_owned()
        } else {
            match (view.stage.as_ref(), view.production_weight) {
                (Some(s), Some(w)) if w > 0.0 && w < 100.0 => format!("{} {w}%", s.as_str()),
                (Some(s), _) => s.as_str().to_owned(),
                (None, _) => view.status.as_str().to_owned(),
            }
        };
        self.ctx.stats.lock().expect("stats").timeline.push((
            self.name().to_owned(),
            what,
            now_f64(),
        ));
    }

    fn record_analysis(&self, place: &str, verdict: &str) {
        self.ctx.stats.lock().expect("stats").analysis.push((
            self.name().to_owned(),
            place.to_owned(),
            verdict.to_owned(),
        ));
    }

    /// A PAUSE of ours comes at the next transition, or at this stage without the hook showing
    /// yet: the stage ECS reports is the configured one still ahead, or the stage just before it.
    fn pause_due(&self, view: &DeploymentView) -> bool {
        let (Some(stage), true) = (&view.stage, view.awaiting_hook.is_none()) else {
            return false;
        };
        let next = self.stages.get(self.handled_hooks.len()).or_else(|| {
            self.stages
                .last()
                .filter(|s| **s == DeploymentLifecycleHookStage::PreProductionTrafficShift)
        });
        let (Some(now), Some(pause)) = (
            ecs::lifecycle_position(stage.as_str()),
            next.and_then(|n| ecs::lifecycle_position(n.as_str())),
        ) else {
            return false;
        };
        now == pause || now + 1 == pause
    }

    /// The pause notification (webhook), sent beside the gate so the gate is not delayed.
    fn notify_pause(
        &self,
        view: &DeploymentView,
        hook: &ecs::AwaitingHook,
        stage: Option<&DeploymentLifecycleHookStage>,
    ) {
        let Some(url) = &self.ctx.env.notifications.webhook_url else {
            return;
        };
        let url = config::expose(url).to_owned();
        let at = format!(
            "{}{}",
            stage
                .map(|s| s.as_str())
                .unwrap_or("a stage it cannot tell"),
            match view.production_weight {
                Some(w) if self.plan.svc.strategy.steps_traffic() =>
                    format!(" (new revision at {w}% of production)"),
                _ => String::new(),
            }
        );
        let release_id = self
            .ctx
            .open_record
            .lock()
            .expect("open record")
            .as_ref()
            .map(|r| r.release_id.clone())
            .unwrap_or_default();
        let (env, service) = (self.ctx.env_name.clone(), self.name().to_owned());
        let (expires, action) = (
            hook.expires_at.clone(),
            hook.timeout_action.as_str().to_owned(),
        );
        let report = self.ctx.report.clone_handle();
        let sending = tokio::spawn(async move {
            let pause = super::report::Pause {
                env: &env,
                release_id: &release_id,
                service: &service,
                at: &at,
                expires_at: expires.as_deref(),
                timeout_action: &action,
            };
            if let Err(e) = super::report::notify_pause(&url, &pause).await {
                report.line(&format!(
                    "[{service}] warning: pause notification not sent: {e}"
                ));
            }
        });
        self.ctx
            .pause_notifications
            .lock()
            .expect("pause notifications")
            .push(sending);
    }

    fn stage_of_pause(&self, view: &DeploymentView) -> Option<DeploymentLifecycleHookStage> {
        stage_of_pause(
            &self.stages,
            view.stage.as_ref(),
            PauseCount {
                handled: self.handled_hooks.len(),
                reattached: self.reattached,
                finished_hooks: view.finished_hooks,
            },
            view.production_weight,
        )
    }

    /// The analysis over the periods since production traffic reached the new revision, at most
    /// every [`analysis::EVERY`]; `None` when there is none to run (or not yet due).
    async fn analysis_round(&mut self) -> Option<Verdict> {
        if self.analyses.is_empty()
            || self
                .last_analysis
                .is_some_and(|t| t.elapsed() < analysis::EVERY)
        {
            return None;
        }
        self.last_analysis = Some(Instant::now());
        Some(self.analysis_now().await)
    }

    async fn analysis_now(&mut self) -> Verdict {
        let since = *self
            .traffic_since
            .get_or_insert_with(std::time::SystemTime::now);
        let tgs = match self.target_groups.clone() {
            Some(t) => t,
            None => match self.read_target_groups().await {
                Ok(t) => {
                    self.target_groups = Some(t.clone());
                    t
                }
                Err(e) => return Verdict::Inconclusive(e),
            },
        };
        let analyses: Vec<&config::Analysis> = self.analyses.iter().collect();
        analysis::evaluate(self.ctx, &analyses, &tgs, since).await
    }

    /// The new revision's target group is the one of the pair not serving production before
    /// the deployment (DescribeServices: the service's target group until ECS swaps them).
    async fn read_target_groups(&self) -> Result<analysis::TargetGroups, String> {
        let lb = self
            .plan
            .svc
            .load_balancer
            .as_ref()
            .ok_or("the service has no load balancer")?;
        let alternate = lb
            .alternate_target_group_arn
            .as_deref()
            .ok_or("the service has no alternate target group")?;
        let live = ecs::live_services(
            &self.ctx.ecs,
            &self.ctx.env.cluster,
            &[self.name().to_owned()],
        )
        .await
        .map_err(|e| format!("DescribeServices {}: {}", self.name(), aws_err(&e)))?;
        let serving = live
            .get(self.name())
            .and_then(|s| s.load_balancers().first())
            .and_then(|l| l.target_group_arn())
            .unwrap_or(&lb.target_group_arn)
            .to_owned();
        let green = if serving == alternate {
            lb.target_group_arn.as_str()
        } else {
            alternate
        };
        Ok(analysis::TargetGroups::from_arns(green, &serving))
    }

    /// The analysis at a traffic-step gate: inconclusive under `wait` is looked at again until
    /// the pause is about to expire.
    async fn step_analysis(
        &mut self,
        hook: &ecs::AwaitingHook,
        hook_weight: Option<f64>,
    ) -> Result<(), GateFailed> {
        if self.analyses.is_empty() {
            return Ok(());
        }
        // Leave time to act before ECS's timeout action: a tenth of what is left, 2-30 s.
        let left = hook
            .expires_secs
            .map(|e| Duration::from_secs_f64((e - now_f64()).max(0.0)));
        let give_up = Instant::now()
            + left
                .map(|l| {
                    l.saturating_sub(
                        (l / 10).clamp(Duration::from_secs(2), Duration::from_secs(30)),
                    )
                })
                .unwrap_or(self.ctx.env.timeouts.hook);
        loop {
            let verdict = self.analysis_now().await;
            let analyses: Vec<&config::Analysis> = self.analyses.iter().collect();
            let waited = Instant::now() >= give_up || self.ctx.cancelled();
            let place = format!("gate at {}% of production", hook_weight.unwrap_or_default());
            match analysis::settle(&analyses, verdict, waited) {
                Verdict::Pass(p) => {
                    self.record_analysis(&place, &format!("pass: {p}"));
                    self.line(&p);
                    return Ok(());
                }
                Verdict::Fail(f) => {
                    self.record_analysis(&place, &format!("FAIL: {f}"));
                    return Err(GateFailed(f));
                }
                Verdict::Inconclusive(why) => {
                    self.line(&format!("{why}; waiting for more data"));
                    tokio::time::sleep(
                        analysis::EVERY.min(give_up.saturating_duration_since(Instant::now())),
                    )
                    .await;
                }
            }
        }
    }

    /// One round of production checks once production traffic is on the new revision; a
    /// failure stops the deployment with ROLLBACK (retried until ECS shows it).
    async fn production_check(&mut self) {
        if self
            .last_production_check
            .is_some_and(|t| t.elapsed() < PRODUCTION_CHECK_EVERY)
        {
            return;
        }
        self.last_production_check = Some(Instant::now());
        if let Some(Verdict::Fail(f)) = self.analysis_round().await {
            self.record_analysis("with production traffic", &format!("FAIL: {f}"));
            self.line(&format!("with production traffic: {f}"));
            self.decide_rollback(Stop::new(Outcome::RolledBackSmoke, f));
            match ecs::roll_back_until_taken(&self.ctx.ecs, &self.arn, self.rollback_by()).await {
                Ok(how) => self.line(how),
                Err(e) => self.line(&format!("{e:#}")),
            }
            return;
        }
        let Some(verdict) = gates::bake_check(self.ctx, &self.plan.svc, self.vars).await else {
            return;
        };
        self.production_rounds += 1;
        if let Err(GateFailed(f)) = verdict {
            self.line(&format!("during bake: {f}"));
            self.decide_rollback(Stop::new(
                Outcome::RolledBackSmoke,
                format!("during bake time: {f}"),
            ));
            match ecs::roll_back_until_taken(&self.ctx.ecs, &self.arn, self.rollback_by()).await {
                Ok(how) => self.line(how),
                Err(e) => self.line(&format!("{e:#}")),
            }
        }
    }

    /// The deployment ended: what that means for the release.
    async fn ended(&mut self, view: &DeploymentView) -> Ended {
        let ctx = self.ctx;
        let status = ServiceStatus::Deployment(view.status.clone());
        match view.status {
            ServiceDeploymentStatus::Successful => {
                // Never report success unless the service runs the new revision.
                match ecs::current_task_definition(&ctx.ecs, &ctx.env.cluster, self.name()).await {
                    Ok(Some(td)) if td == self.plan.target_td => {}
                    Ok(td) => {
                        return Ended::Result(self.result(
                            Outcome::Failed,
                            format!(
                                "the deployment reported SUCCESSFUL but the service runs {}",
                                td.unwrap_or_else(|| "nothing".into())
                            ),
                            status,
                        ));
                    }
                    Err(e) => {
                        return Ended::Result(self.result(
                            Outcome::Failed,
                            format!("{e:#}"),
                            status,
                        ));
                    }
                }
                if self.gated && self.our_rollback.is_none() {
                    self.final_gates().await;
                }
                if let Some(stop) = self.our_rollback.clone() {
                    // We decided to roll back and ECS finished anyway (the Stop failed or came
                    // too late): a failed gate never ends in success. Put the previous revision
                    // back with a new deployment.
                    return Ended::Result(self.revert_after_success(stop).await);
                }
                Ended::Result(self.result(Outcome::Succeeded, String::new(), status))
            }
            ServiceDeploymentStatus::RollbackFailed => {
                let why = self
                    .our_rollback
                    .as_ref()
                    .map(|s| format!("rolled back because: {}; ", s.reason))
                    .unwrap_or_default();
                let events = self.events().await;
                Ended::Result(self.result(
                    Outcome::RollbackFailed,
                    format!(
                        "ECS could not roll the deployment back (ROLLBACK_FAILED: {}); {why}production may run a mix of revisions: \
                         check `deployer status --env {env}`, then `deployer rollback --env {env}`{events}",
                        view.best_reason(),
                        env = ctx.env_name
                    ),
                    status,
                ))
            }
            ServiceDeploymentStatus::Stopped if self.our_rollback.is_none() => {
                // Not our doing: ECS replaced it (a duplicate for the same update, or someone
                // else's update), or ECS stopped it without rolling back.
                let mut exclude = self.followed.clone();
                exclude.push(self.arn.clone());
                let since = view
                    .created_at
                    .unwrap_or_else(|| DateTime::from(std::time::SystemTime::now()));
                match follow::find_deployment(
                    &ctx.ecs,
                    &ctx.env.cluster,
                    self.name(),
                    &self.plan.target_td,
                    since,
                    &exclude,
                    SUCCESSOR_WITHIN,
                    true,
                )
                .await
                {
                    Ok(Found::Ours(next)) if !exclude.contains(&next) => {
                        self.line(&format!(
                            "deployment {} was STOPPED and replaced by {} to the same revision; following it",
                            short(&self.arn),
                            short(&next)
                        ));
                        if self.gated {
                            ctx.note_deployment(self.name(), &next).await;
                        }
                        Ended::Follow(next)
                    }
                    Ok(Found::Other {
                        arn,
                        task_definition,
                    }) => Ended::Result(ServiceResult {
                        name: self.name().to_owned(),
                        outcome: Outcome::Superseded,
                        reason: superseded_reason(ctx, self.name(), &arn, &task_definition),
                        deployment_arn: arn,
                        status: ServiceStatus::Superseded,
                    }),
                    _ => {
                        let events = self.events().await;
                        Ended::Result(self.result(
                            Outcome::Failed,
                            format!(
                                "ECS stopped the deployment without rolling back ({}); the service may run a mix of revisions: \
                                 check `deployer status --env {env}`, then `deployer rollback --env {env}`{events}",
                                view.best_reason(),
                                env = ctx.env_name
                            ),
                            status,
                        ))
                    }
                }
            }
            _ => {
                // ROLLBACK_SUCCESSFUL (or STOPPED after our stop).
                if let Some(stop) = self.our_rollback.clone() {
                    let seen = self.events().await;
                    return Ended::Result(self.result(
                        stop.outcome,
                        format!("{}{seen}", stop.reason),
                        status,
                    ));
                }
                let why = view.ecs_failure().unwrap_or_else(|| {
                    format!(
                        "deployment ended {}: {}",
                        view.status.as_str(),
                        view.best_reason()
                    )
                });
                let events = self.events().await;
                Ended::Result(self.result(Outcome::RolledBackEcs, format!("{why}{events}"), status))
            }
        }
    }

    /// After SUCCESSFUL: the agent gate of a rolling agent service, and, when production
    /// checks never got a round during the traffic shift (a short bake), one round now.
    async fn final_gates(&mut self) {
        let ctx = self.ctx;
        let svc = &self.plan.svc;
        if svc.strategy == Strategy::Rolling
            && let Some(kind) = &svc.agent_kind
            && let Err(GateFailed(reason)) =
                gates::agent_gate(ctx, kind, &self.plan.git_sha, ctx.env.timeouts.agent_gate).await
        {
            self.decide_rollback(Stop::new(Outcome::RolledBackSmoke, reason));
            return;
        }
        // A bake was asked for (production is watched), but it was too short for a round.
        let baked = svc.bake_time.is_some_and(|d| !d.is_zero());
        if svc.strategy.shifts_traffic()
            && svc.load_balancer.is_some()
            && baked
            && self.production_rounds == 0
            && let Some(Err(GateFailed(f))) = gates::bake_check(ctx, svc, self.vars).await
        {
            self.decide_rollback(Stop::new(
                Outcome::RolledBackSmoke,
                format!("after the traffic shift: {f}"),
            ));
        }
    }

    /// The deployment ended SUCCESSFUL although we decided to roll back: deploy the previous
    /// revision (ungated: it already proved itself) and say whether it went back.
    async fn revert_after_success(&self, stop: Stop) -> ServiceResult {
        self.line(&format!(
            "the deployment ended SUCCESSFUL after the deployer decided to roll back ({}); reverting to {}",
            stop.reason,
            short_td(&self.plan.previous_td)
        ));
        let back = revert_plan(self.plan);
        let r = Box::pin(deploy_service(self.ctx, &back, &Vars::default(), false)).await;
        if r.outcome == Outcome::Succeeded {
            self.result(stop.outcome, stop.reason, ServiceStatus::Reverted)
        } else {
            self.result(
                Outcome::RollbackFailed,
                format!(
                    "{}; putting {} back failed: {}; production may run the new revision: check `deployer status --env {env}`, then `deployer rollback --env {env}`",
                    stop.reason,
                    short_td(&self.plan.previous_td),
                    r.reason,
                    env = self.ctx.env_name
                ),
                ServiceStatus::RevertFailed,
            )
        }
    }

    /// Target health, stopped tasks and the last service events (engine/diagnose.rs).
    async fn events(&self) -> String {
        super::diagnose::what_it_can_see(self.ctx, &self.plan.svc).await
    }
}

enum Ended {
    Result(ServiceResult),
    /// ECS replaced the deployment with another to our revision: follow that one.
    Follow(String),
}

/// The plan that puts a service back on the revision it ran before `plan`.
pub(crate) fn revert_plan(plan: &ServicePlan) -> ServicePlan {
    ServicePlan {
        svc: plan.svc.clone(),
        target_td: plan.previous_td.clone(),
        previous_td: plan.target_td.clone(),
        git_sha: String::new(),
        deployment_arn: None,
    }
}

/// Which configured stage (`stages`, in ECS's order) a pause is at. `lifecycleStage` is used
/// when ECS reports one of ours (what ECS reports while paused is not documented); otherwise the
/// pauses are counted: ECS reaches the stages in order and pauses once at each. A re-attached
/// follower knows earlier pauses only if ECS still lists finished hooks. LINEAR/CANARY pause at
/// PRE_PRODUCTION_TRAFFIC_SHIFT before every step: a pause while the new revision has part of
/// production traffic (`production_weight` between 0 and 100) is such a step; once it has all
/// of it, the pause is at a stage after the shift; and counting past the last stage lands on
/// the repeating one when it is the last. `None` when it cannot be told: the caller fails closed.
fn stage_of_pause(
    stages: &[DeploymentLifecycleHookStage],
    reported: Option<&Stage>,
    pause: PauseCount,
    production_weight: Option<f64>,
) -> Option<DeploymentLifecycleHookStage> {
    use DeploymentLifecycleHookStage as Hs;
    if let Some(reported) = reported {
        let as_hook_stage = Hs::from(reported.as_str());
        if stages.contains(&as_hook_stage) {
            return Some(as_hook_stage);
        }
    }
    let position = |s: &Hs| ecs::lifecycle_position(s.as_str());
    let steps = stages.contains(&Hs::PreProductionTrafficShift);
    match production_weight {
        Some(w) if steps && w > 0.0 && w < 100.0 => return Some(Hs::PreProductionTrafficShift),
        Some(w) if w >= 100.0 => {
            let shifted = position(&Hs::ProductionTrafficShift);
            if let Some(after) = stages.iter().find(|s| position(s) > shifted) {
                return Some(after.clone());
            }
        }
        _ => {}
    }
    let passed = if pause.reattached && pause.handled == 0 {
        if stages.len() > 1 && pause.finished_hooks == 0 {
            return None;
        }
        pause.finished_hooks
    } else {
        pause.handled
    };
    stages.get(passed).cloned().or_else(|| {
        (stages.last() == Some(&Hs::PreProductionTrafficShift) && production_weight != Some(100.0))
            .then_some(Hs::PreProductionTrafficShift)
    })
}

/// What the follower knows of earlier pauses of the deployment.
#[derive(Debug, Clone, Copy)]
struct PauseCount {
    /// Pauses this follower acted on.
    handled: usize,
    /// It took over a deployment another run started (`--resume`).
    reattached: bool,
    /// Finished hooks ECS lists (it may not list them).
    finished_hooks: usize,
}

/// Production traffic is (being) shifted to the new revision.
fn production_has_traffic(view: &DeploymentView) -> bool {
    matches!(
        view.stage,
        Some(Stage::ProductionTrafficShift | Stage::PostProductionTrafficShift | Stage::BakeTime)
    ) || view.production_weight.is_some_and(|w| w > 0.0)
}

fn short(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

fn now_f64() -> f64 {
    chrono::Utc::now().timestamp_millis() as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use DeploymentLifecycleHookStage as H;

    fn n(handled: usize, reattached: bool, finished_hooks: usize) -> PauseCount {
        PauseCount {
            handled,
            reattached,
            finished_hooks,
        }
    }

    #[test]
    fn a_pause_gets_the_gate_of_the_stage_the_deployer_configured() {
        let stages = [H::PostScaleUp, H::PostTestTrafficShift];
        // Reported and ours: used.
        assert_eq!(
            stage_of_pause(
                &stages,
                Some(&Stage::PostTestTrafficShift),
                n(0, false, 0),
                None
            ),
            Some(H::PostTestTrafficShift)
        );
        // Not reported (or reported as something else): counted.
        assert_eq!(
            stage_of_pause(&stages, None, n(0, false, 0), None),
            Some(H::PostScaleUp)
        );
        assert_eq!(
            stage_of_pause(
                &stages,
                Some(&Stage::TestTrafficShift),
                n(1, false, 0),
                None
            ),
            Some(H::PostTestTrafficShift)
        );
        // More pauses than configured stages: no gate, fail closed.
        assert_eq!(stage_of_pause(&stages, None, n(2, false, 0), None), None);
        // Re-attached with nothing to count from: cannot tell.
        assert_eq!(stage_of_pause(&stages, None, n(0, true, 0), None), None);
        assert_eq!(
            stage_of_pause(&stages, None, n(0, true, 1), None),
            Some(H::PostTestTrafficShift)
        );
        assert_eq!(
            stage_of_pause(&[H::PostTestTrafficShift], None, n(0, true, 0), None),
            Some(H::PostTestTrafficShift)
        );
    }

    #[test]
    fn pause_stages_come_in_the_order_ecs_reaches_them() {
        let svc: config::Service = toml::from_str(
            r#"
name = "web"
template = "web"
strategy = "blue_green"
hooks = [{ stage = "POST_PRODUCTION_TRAFFIC_SHIFT" }, { stage = "POST_TEST_TRAFFIC_SHIFT" }, { stage = "POST_SCALE_UP" }]
"#,
        )
        .unwrap();
        let stages: Vec<H> = pause_stages(&svc).into_iter().map(|(s, _)| s).collect();
        assert_eq!(
            stages,
            [
                H::PostScaleUp,
                H::PostTestTrafficShift,
                H::PostProductionTrafficShift
            ]
        );
    }

    #[test]
    fn every_traffic_step_of_a_linear_deployment_gets_the_step_gate() {
        let stages = [H::PostTestTrafficShift, H::PreProductionTrafficShift];
        let step = H::PreProductionTrafficShift;
        // Counted: the test gate, then the first PRE_PRODUCTION pause (no traffic yet).
        assert_eq!(
            stage_of_pause(&stages, None, n(0, false, 0), Some(0.0)),
            Some(H::PostTestTrafficShift)
        );
        assert_eq!(
            stage_of_pause(&stages, None, n(1, false, 0), Some(0.0)),
            Some(step.clone())
        );
        // Later steps, with the weight reported or not: the same stage again.
        assert_eq!(
            stage_of_pause(&stages, None, n(3, false, 0), Some(50.0)),
            Some(step.clone())
        );
        assert_eq!(
            stage_of_pause(&stages, None, n(4, false, 0), None),
            Some(step.clone())
        );
        // Re-attached mid-shift with hidden finished hooks: the weight tells.
        assert_eq!(
            stage_of_pause(&stages, None, n(0, true, 0), Some(25.0)),
            Some(step.clone())
        );
        // With a pause after the shift too: all traffic moved means that one.
        let three = [H::PreProductionTrafficShift, H::PostProductionTrafficShift];
        assert_eq!(
            stage_of_pause(&three, None, n(5, false, 0), Some(100.0)),
            Some(H::PostProductionTrafficShift)
        );
        assert_eq!(
            stage_of_pause(&three, None, n(2, false, 0), Some(75.0)),
            Some(step)
        );
        // BLUE_GREEN without a repeating stage: past the last stage is still no gate.
        assert_eq!(
            stage_of_pause(&[H::PostTestTrafficShift], None, n(1, false, 0), Some(0.0)),
            None
        );
    }
}
