//! Following one service deployment: finding the deployment an UpdateService started, and an
//! adaptive poll interval — fast right after anything changed (so a hook is acted on well within
//! a second of appearing), slower while nothing moves, slowest while baking.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use aws_sdk_ecs::Client as Ecs;
use aws_sdk_ecs::types::{ServiceDeploymentLifecycleStage as Stage, ServiceDeploymentStatus};

use super::ecs::{DeploymentView, is_terminal, list_deployments};

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
        if let Some(d) = all.iter().find(|d| {
            !exclude.contains(&d.arn)
                && (!is_terminal(&d.status) || d.status == ServiceDeploymentStatus::Successful)
        }) {
            return Ok(d.arn.clone());
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

/// Adaptive poll interval: `FAST` after a change, growing to `SLOW` (or `BAKING` during
/// BAKE_TIME) while nothing moves. `SLOW` stays under a second so a hook that appears while the
/// deployment looked idle is still acted on within one second.
pub struct Poller {
    interval: Duration,
    last: Option<(ServiceDeploymentStatus, Option<Stage>, bool)>,
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
        let ceiling = if view.stage == Some(Stage::BakeTime) {
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
    use crate::aws::ecs::tests::view;

    #[test]
    fn poller_is_fast_after_changes_and_bounded_while_idle() {
        let mut p = Poller::new();
        assert!(p.observe(&view(ServiceDeploymentStatus::InProgress, Stage::ScaleUp)));
        assert_eq!(p.interval(), Poller::FAST);
        for _ in 0..20 {
            assert!(!p.observe(&view(ServiceDeploymentStatus::InProgress, Stage::ScaleUp)));
        }
        assert_eq!(p.interval(), Poller::SLOW);
        assert!(p.observe(&view(ServiceDeploymentStatus::InProgress, Stage::BakeTime)));
        for _ in 0..20 {
            p.observe(&view(ServiceDeploymentStatus::InProgress, Stage::BakeTime));
        }
        assert_eq!(p.interval(), Poller::BAKING);
    }
}
