//! Following ECS service deployments (List/DescribeServiceDeployments) and acting on their PAUSE
//! hooks. Polling adapts: fast right after anything changed (so a hook is acted on well within a
//! second of appearing), slower while nothing moves, slowest while baking.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use aws_sdk_ecs::Client as Ecs;
use aws_sdk_ecs::types::{
    DeploymentLifecycleHookAction, ServiceDeployment, ServiceDeploymentStatus,
    StopServiceDeploymentStopType,
};

/// A paused lifecycle hook waiting for ContinueServiceDeployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwaitingHook {
    pub hook_id: String,
    pub stage: String,
    pub expires_at: Option<String>,
    pub timeout_action: String,
}

/// What the deployer needs from a service deployment, flattened from the SDK shape.
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentView {
    pub arn: String,
    pub status: String,
    pub reason: String,
    pub stage: Option<String>,
    pub awaiting_hook: Option<AwaitingHook>,
    pub rollback_reason: Option<String>,
    pub circuit_breaker_triggered: bool,
    pub triggered_alarms: Vec<String>,
    pub timed_out_hooks: usize,
    pub target_revision: Option<String>,
    /// `updatedAt` in epoch seconds: when the deployment last changed (e.g. a hook appeared).
    pub updated_at: Option<f64>,
}

impl DeploymentView {
    pub fn from_sdk(d: &ServiceDeployment) -> Self {
        let stage = d.lifecycle_stage().map(|s| s.as_str().to_owned());
        let awaiting_hook = d
            .lifecycle_hook_details()
            .iter()
            .find(|h| h.status().map(|s| s.as_str()) == Some("AWAITING_ACTION"))
            .map(|h| AwaitingHook {
                hook_id: h.hook_id().unwrap_or_default().to_owned(),
                stage: stage.clone().unwrap_or_default(),
                expires_at: h.expires_at().map(|t| t.to_string()),
                timeout_action: h
                    .timeout_action()
                    .map(|a| a.as_str().to_owned())
                    .unwrap_or_else(|| "ROLLBACK".into()),
            });
        Self {
            arn: d.service_deployment_arn().unwrap_or_default().to_owned(),
            status: d
                .status()
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default(),
            reason: d.status_reason().unwrap_or_default().to_owned(),
            stage,
            awaiting_hook,
            rollback_reason: d.rollback().and_then(|r| r.reason()).map(str::to_owned),
            circuit_breaker_triggered: d
                .deployment_circuit_breaker()
                .and_then(|c| c.status())
                .map(|s| s.as_str() == "TRIGGERED")
                .unwrap_or(false),
            triggered_alarms: d
                .alarms()
                .map(|a| a.triggered_alarm_names().to_vec())
                .unwrap_or_default(),
            timed_out_hooks: d
                .lifecycle_hook_details()
                .iter()
                .filter(|h| h.status().map(|s| s.as_str()) == Some("TIMED_OUT"))
                .count(),
            target_revision: d
                .target_service_revision()
                .and_then(|r| r.arn())
                .map(str::to_owned),
            updated_at: d.updated_at().map(|t| t.as_secs_f64()),
        }
    }

    pub fn is_terminal(&self) -> bool {
        is_terminal(&self.status)
    }

    pub fn is_rolling_back(&self) -> bool {
        self.status.starts_with("ROLLBACK")
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

pub fn is_terminal(status: &str) -> bool {
    matches!(
        status,
        "SUCCESSFUL" | "STOPPED" | "ROLLBACK_SUCCESSFUL" | "ROLLBACK_FAILED"
    )
}

const IN_FLIGHT: [ServiceDeploymentStatus; 5] = [
    ServiceDeploymentStatus::Pending,
    ServiceDeploymentStatus::InProgress,
    ServiceDeploymentStatus::RollbackRequested,
    ServiceDeploymentStatus::RollbackInProgress,
    ServiceDeploymentStatus::StopRequested,
];

/// ARNs of a service's deployments, newest first, optionally only those in flight.
pub async fn list_deployments(
    ecs: &Ecs,
    cluster: &str,
    service: &str,
    in_flight_only: bool,
) -> Result<Vec<(String, String, Option<aws_sdk_ecs::primitives::DateTime>)>> {
    let mut req = ecs
        .list_service_deployments()
        .cluster(cluster)
        .service(service);
    if in_flight_only {
        req = req.set_status(Some(IN_FLIGHT.to_vec()));
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
            out.push((
                d.service_deployment_arn().unwrap_or_default().to_owned(),
                d.status()
                    .map(|s| s.as_str().to_owned())
                    .unwrap_or_default(),
                d.created_at().cloned(),
            ));
        }
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    out.sort_by_key(|d| std::cmp::Reverse(d.2));
    Ok(out)
}

pub async fn describe(ecs: &Ecs, arn: &str) -> Result<DeploymentView> {
    let out = ecs
        .describe_service_deployments()
        .service_deployment_arns(arn)
        .send()
        .await
        .with_context(|| format!("DescribeServiceDeployments {arn}"))?;
    match out.service_deployments().first() {
        Some(d) => Ok(DeploymentView::from_sdk(d)),
        None => bail!(
            "service deployment {arn} was not found (DescribeServiceDeployments reported it MISSING)"
        ),
    }
}

/// Waits for the deployment UpdateService just started: the newest in-flight one.
pub async fn wait_for_new_deployment(
    ecs: &Ecs,
    cluster: &str,
    service: &str,
    exclude: &[String],
    timeout: Duration,
) -> Result<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let all = list_deployments(ecs, cluster, service, false).await?;
        if let Some((arn, _, _)) = all.iter().find(|(arn, status, _)| {
            !exclude.contains(arn) && (!is_terminal(status) || status == "SUCCESSFUL")
        }) {
            return Ok(arn.clone());
        }
        if Instant::now() >= deadline {
            bail!(
                "ECS started no service deployment for {cluster}/{service} within {timeout:?} after UpdateService; \
                 check that the service uses the ECS deployment controller"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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
/// (ContinueServiceDeployment ROLLBACK) or StopServiceDeployment ROLLBACK otherwise.
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

/// Adaptive poll interval: `FAST` after a change, growing to `SLOW` (or `BAKING` during
/// BAKE_TIME) while nothing moves. `SLOW` stays under a second so a hook that appears while the
/// deployment looked idle is still acted on within one second.
pub struct Poller {
    interval: Duration,
    last: Option<(String, Option<String>, bool)>,
    pub polls: u64,
}

impl Default for Poller {
    fn default() -> Self {
        Self::new()
    }
}

impl Poller {
    pub const FAST: Duration = Duration::from_millis(50);
    pub const SLOW: Duration = Duration::from_millis(400);
    pub const BAKING: Duration = Duration::from_millis(1000);

    pub fn new() -> Self {
        Self {
            interval: Self::FAST,
            last: None,
            polls: 0,
        }
    }

    /// Records an observation; returns true when status, stage or hook changed.
    pub fn observe(&mut self, view: &DeploymentView) -> bool {
        self.polls += 1;
        let key = (
            view.status.clone(),
            view.stage.clone(),
            view.awaiting_hook.is_some(),
        );
        let changed = self.last.as_ref() != Some(&key);
        self.last = Some(key);
        let ceiling = if view.stage.as_deref() == Some("BAKE_TIME") {
            Self::BAKING
        } else {
            Self::SLOW
        };
        self.interval = if changed {
            Self::FAST
        } else {
            (self.interval.mul_f32(1.6)).min(ceiling)
        };
        changed
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(status: &str, stage: &str) -> DeploymentView {
        DeploymentView {
            arn: "a".into(),
            status: status.into(),
            reason: String::new(),
            stage: Some(stage.into()),
            awaiting_hook: None,
            rollback_reason: None,
            circuit_breaker_triggered: false,
            triggered_alarms: vec![],
            timed_out_hooks: 0,
            target_revision: None,
            updated_at: None,
        }
    }

    #[test]
    fn poller_is_fast_after_changes_and_bounded_while_idle() {
        let mut p = Poller::new();
        assert!(p.observe(&view("IN_PROGRESS", "SCALE_UP")));
        assert_eq!(p.interval(), Poller::FAST);
        for _ in 0..20 {
            assert!(!p.observe(&view("IN_PROGRESS", "SCALE_UP")));
        }
        assert_eq!(p.interval(), Poller::SLOW);
        assert!(p.observe(&view("IN_PROGRESS", "BAKE_TIME")));
        for _ in 0..20 {
            p.observe(&view("IN_PROGRESS", "BAKE_TIME"));
        }
        assert_eq!(p.interval(), Poller::BAKING);
    }

    #[test]
    fn ecs_failures_are_named() {
        let mut v = view("ROLLBACK_SUCCESSFUL", "SCALE_UP");
        assert_eq!(v.ecs_failure(), None);
        v.circuit_breaker_triggered = true;
        v.rollback_reason = Some("tasks failed".into());
        assert!(v.ecs_failure().unwrap().contains("circuit breaker"));
        assert!(is_terminal("ROLLBACK_SUCCESSFUL") && !is_terminal("ROLLBACK_IN_PROGRESS"));
    }
}
