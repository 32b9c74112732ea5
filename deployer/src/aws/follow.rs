//! Following one service deployment: finding the deployment an UpdateService started (ECS does
//! not return its ARN: aws/containers-roadmap#2709), finding a successor when ECS replaces it,
//! and an adaptive poll interval — fast right after anything changed or we acted, backing off
//! while nothing is expected, slowest while baking.

use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use aws_sdk_ecs::Client as Ecs;
use aws_sdk_ecs::primitives::DateTime;
use aws_sdk_ecs::types::{ServiceDeploymentLifecycleStage as Stage, ServiceDeploymentStatus};

use super::ecs::{
    DeploymentBrief, DeploymentView, is_terminal, list_created_after, revision_task_definitions,
};

/// A deployment found after an UpdateService (or after the one we followed ended).
#[derive(Debug, Clone, PartialEq)]
pub enum Found {
    /// A deployment of the service to our task definition.
    Ours(String),
    /// A newer deployment to another task definition: someone else updated the service.
    Other {
        arn: String,
        task_definition: String,
    },
}

/// Finds the deployment of `service` to `target_td` created after `since` and not in `exclude`,
/// the way an UpdateService caller has to (the call does not return it): list only deployments
/// created after the update, and match each one's target service revision to the task
/// definition we asked for. Prefers one still running (of duplicates ECS started for one
/// update, the first is STOPPED within seconds: kayac/ecspresso#899). Listing errors and a
/// deployment not listed yet (ECS reads are eventually consistent) are retried until
/// `timeout`; only then is the last error returned. `successor`: looking for what replaced a
/// deployment created at `since`.
#[allow(clippy::too_many_arguments)]
pub async fn find_deployment(
    ecs: &Ecs,
    cluster: &str,
    service: &str,
    target_td: &str,
    since: DateTime,
    exclude: &[String],
    timeout: Duration,
    successor: bool,
) -> Result<Found> {
    let deadline = Instant::now() + timeout;
    let mut wait = Duration::from_millis(500);
    let mut last_error = None;
    let mut stopped_ours: Option<String> = None;
    loop {
        match candidates(ecs, cluster, service, since, exclude).await {
            Ok(found) => {
                let revisions: Vec<String> = found
                    .iter()
                    .filter_map(|d| d.target_revision.clone())
                    .collect();
                match revision_task_definitions(ecs, &revisions).await {
                    Ok(tds) => {
                        let td_of = |d: &DeploymentBrief| {
                            d.target_revision.as_ref().and_then(|r| tds.get(r)).cloned()
                        };
                        // Newest first: the first running one of ours wins.
                        if let Some(d) = found.iter().find(|d| {
                            td_of(d).as_deref() == Some(target_td)
                                && d.status != ServiceDeploymentStatus::Stopped
                        }) {
                            return Ok(Found::Ours(d.arn.clone()));
                        }
                        // Another revision's deployment: when looking for our deployment, one
                        // that already finished is history (the listing before the update may
                        // have missed it: eventual consistency); when looking for what replaced
                        // ours (`successor`), created after ours, it is the one that won.
                        if let Some(d) = found.iter().find(|d| {
                            td_of(d).is_some_and(|td| td != target_td)
                                && (successor || !is_terminal(&d.status))
                                && d.status != ServiceDeploymentStatus::Stopped
                        }) {
                            return Ok(Found::Other {
                                arn: d.arn.clone(),
                                task_definition: td_of(d).unwrap_or_default(),
                            });
                        }
                        stopped_ours = found
                            .iter()
                            .find(|d| td_of(d).as_deref() == Some(target_td))
                            .map(|d| d.arn.clone())
                            .or(stopped_ours);
                    }
                    Err(e) => last_error = Some(e),
                }
            }
            Err(e) => last_error = Some(e),
        }
        if Instant::now() + wait >= deadline {
            // Only STOPPED ones of ours: the caller follows it and sees how it ended.
            if let Some(arn) = stopped_ours {
                return Ok(Found::Ours(arn));
            }
            return Err(match last_error {
                Some(e) => e.context(format!(
                    "finding the service deployment of {cluster}/{service} (retried for {timeout:?})"
                )),
                None => anyhow!(
                    "ECS listed no service deployment of {cluster}/{service} to {target_td} within {timeout:?} after UpdateService; \
                     check that the service uses the ECS deployment controller, and `deployer status`"
                ),
            });
        }
        tokio::time::sleep(wait).await;
        wait = wait.mul_f32(1.5).min(Duration::from_secs(3));
    }
}

async fn candidates(
    ecs: &Ecs,
    cluster: &str,
    service: &str,
    since: DateTime,
    exclude: &[String],
) -> Result<Vec<DeploymentBrief>> {
    Ok(list_created_after(ecs, cluster, service, since)
        .await?
        .into_iter()
        .filter(|d| !exclude.contains(&d.arn))
        .collect())
}

/// Adaptive poll interval: [`Poller::FAST`] after a change or an action of ours, growing while
/// nothing moves to [`Poller::SLOW`]. ECS throttles API calls per account and region, so a
/// release of several services must not poll every few milliseconds. Two refinements spend the
/// reads where they matter:
/// - while a PAUSE of ours is due next ([`Poller::expect_pause`]: ECS is in the stage just
///   before one, or in it without the hook showing yet), the ceiling is [`Poller::PAUSE_SOON`],
///   for at most [`Poller::PAUSE_SOON_FOR`] of that stage: a hook appears right after a
///   transition, and acting on it fast shortens the release; a long stage (tasks starting for
///   minutes) is not polled at that rate throughout;
/// - during BAKE_TIME the interval doubles up to [`Poller::BAKING`], and when the bake's length
///   is known the poll lands on its expected end: a bake of many minutes needs a few reads, not
///   hundreds (the deployer's production checks run meanwhile on their own schedule and need no
///   ECS call), and the end is still seen within about a second.
pub struct Poller {
    interval: Duration,
    last: Option<(ServiceDeploymentStatus, Option<Stage>, bool, Option<f64>)>,
    pub polls: u64,
    stage_since: Instant,
    bake: Option<Duration>,
    pause_soon: bool,
}

impl Default for Poller {
    fn default() -> Self {
        Self::new()
    }
}

impl Poller {
    pub const FAST: Duration = Duration::from_millis(1000);
    pub const SLOW: Duration = Duration::from_secs(6);
    pub const PAUSE_SOON: Duration = Duration::from_millis(1500);
    pub const PAUSE_SOON_FOR: Duration = Duration::from_secs(60);
    pub const BAKING: Duration = Duration::from_secs(30);
    const GROWTH: f32 = 1.5;

    pub fn new() -> Self {
        Self {
            interval: Self::FAST,
            last: None,
            polls: 0,
            stage_since: Instant::now(),
            bake: None,
            pause_soon: false,
        }
    }

    /// The bake time the deployment was configured with (`bakeTimeInMinutes`), when known.
    pub fn with_bake(mut self, bake: Option<Duration>) -> Self {
        self.bake = bake;
        self
    }

    /// Whether a PAUSE hook of ours is expected at the next transition (or at this stage).
    pub fn expect_pause(&mut self, soon: bool) {
        self.pause_soon = soon;
        if soon && self.stage_since.elapsed() < Self::PAUSE_SOON_FOR {
            self.interval = self.interval.min(Self::PAUSE_SOON);
        }
    }

    /// Records an observation; returns true when status, stage, hook or traffic step changed.
    pub fn observe(&mut self, view: &DeploymentView) -> bool {
        self.observe_at(view, Instant::now())
    }

    fn observe_at(&mut self, view: &DeploymentView, now: Instant) -> bool {
        self.polls += 1;
        let key = (
            view.status.clone(),
            view.stage.clone(),
            view.awaiting_hook.is_some(),
            view.production_weight,
        );
        let changed = self.last.as_ref() != Some(&key);
        let stage_changed = self.last.as_ref().map(|k| &k.1) != Some(&key.1);
        self.last = Some(key);
        if stage_changed {
            self.stage_since = now;
        }
        if changed {
            self.interval = Self::FAST;
            return true;
        }
        let in_stage = now.saturating_duration_since(self.stage_since);
        self.interval = if view.stage == Some(Stage::BakeTime) {
            let grown = (self.interval * 2).min(Self::BAKING);
            match self.bake {
                // Land on the expected end (and a second after it), then poll as usual.
                Some(bake) if in_stage < bake => grown.min(bake - in_stage + Self::FAST),
                Some(_) => self.interval.mul_f32(Self::GROWTH).min(Self::SLOW),
                None => grown,
            }
        } else {
            let ceiling = if self.pause_soon && in_stage < Self::PAUSE_SOON_FOR {
                Self::PAUSE_SOON
            } else {
                Self::SLOW
            };
            self.interval.mul_f32(Self::GROWTH).min(ceiling)
        };
        false
    }

    /// We acted (Continue, Stop): the next transition is expected soon.
    pub fn acted(&mut self) {
        self.interval = Self::FAST;
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

    #[test]
    fn a_pause_due_next_is_polled_for_and_a_known_bake_end_is_landed_on() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut p = Poller::new();
        p.observe_at(
            &view(ServiceDeploymentStatus::InProgress, Stage::TestTrafficShift),
            at(0),
        );
        p.expect_pause(true);
        for s in 1..10 {
            p.observe_at(
                &view(ServiceDeploymentStatus::InProgress, Stage::TestTrafficShift),
                at(s),
            );
        }
        assert_eq!(p.interval(), Poller::PAUSE_SOON);
        // A stage that lasts long is not polled at that rate throughout.
        p.observe_at(
            &view(ServiceDeploymentStatus::InProgress, Stage::TestTrafficShift),
            at(61),
        );
        assert!(p.interval() > Poller::PAUSE_SOON, "{:?}", p.interval());

        let bake = Duration::from_secs(540);
        let mut p = Poller::new().with_bake(Some(bake));
        p.observe_at(
            &view(ServiceDeploymentStatus::InProgress, Stage::BakeTime),
            at(0),
        );
        let (mut t, mut polls) = (0u64, 0);
        while t < 540 {
            p.observe_at(
                &view(ServiceDeploymentStatus::InProgress, Stage::BakeTime),
                at(t),
            );
            t += p.interval().as_secs().max(1);
            polls += 1;
        }
        assert!(polls <= 25, "{polls} polls during a 9-minute bake");
        // The last poll of the bake lands within a second or two after its end.
        assert!((540..=542).contains(&t), "{t}");
    }
}
