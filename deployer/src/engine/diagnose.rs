//! What a failed or rolled-back service deployment leaves to see, appended to its reason: the
//! new target group's target health (DescribeTargetHealth: state, reason, description), the
//! service's recently stopped tasks (stoppedReason, stop code, container exit codes) and its
//! last service events. Best effort: each read is bounded in time, and one that fails says so in
//! a line of its own; it never replaces the failure it explains.

use std::time::Duration;

use aws_sdk_elasticloadbalancingv2::types::TargetHealthStateEnum;

use super::Ctx;
use crate::aws::ecs::{self, StoppedTask};
use crate::aws::elb::{self, TargetHealth, short_target_group};
use crate::config;

/// How long each diagnostic read may take.
const READ_WITHIN: Duration = Duration::from_secs(10);
const EVENTS: usize = 5;
const TASKS: usize = 3;

async fn bounded<T>(
    what: &str,
    f: impl std::future::Future<Output = anyhow::Result<T>>,
) -> Result<T, String> {
    match tokio::time::timeout(READ_WITHIN, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{what} not read: {e:#}")),
        Err(_) => Err(format!("{what} not read: no answer within {READ_WITHIN:?}")),
    }
}

/// Lines (`\n    …`) naming what can be seen of `svc` now.
pub(crate) async fn what_it_can_see(ctx: &Ctx, svc: &config::Service) -> String {
    let mut lines = Vec::new();
    let live = bounded("the service", async {
        ecs::live_services(&ctx.ecs, &ctx.env.cluster, std::slice::from_ref(&svc.name))
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "DescribeServices {}: {}",
                    svc.name,
                    crate::aws::error_chain(&e)
                )
            })
    })
    .await
    .map(|mut l| l.remove(&svc.name));
    let live = match live {
        Ok(l) => l,
        Err(e) => {
            lines.push(e);
            None
        }
    };
    if let Some(tg) = new_target_group(svc, live.as_ref()) {
        match bounded("target health", elb::target_health(&ctx.elb, &tg)).await {
            Ok(targets) => lines.push(health_line(&tg, &targets)),
            Err(e) => lines.push(e),
        }
    }
    match bounded(
        "stopped tasks",
        ecs::stopped_tasks(&ctx.ecs, &ctx.env.cluster, &svc.name, TASKS),
    )
    .await
    {
        Ok(tasks) => lines.extend(tasks.iter().map(task_line)),
        Err(e) => lines.push(e),
    }
    if let Some(s) = &live {
        lines.extend(
            s.events()
                .iter()
                .take(EVENTS)
                .map(|e| format!("event: {}", e.message().unwrap_or_default())),
        );
    }
    lines.iter().map(|l| format!("\n    {l}")).collect()
}

/// The target group the new revision's tasks register with: the alternate of a blue/green pair
/// (ECS swaps the pair only on success), the one target group of a rolling service.
fn new_target_group(
    svc: &config::Service,
    live: Option<&aws_sdk_ecs::types::Service>,
) -> Option<String> {
    let lb = svc.load_balancer.as_ref()?;
    let attached = live.and_then(|s| {
        s.load_balancers().iter().find(|l| {
            l.target_group_arn().is_some_and(|tg| {
                tg == lb.target_group_arn || lb.alternate_target_group_arn.as_deref() == Some(tg)
            })
        })
    });
    if !svc.strategy.shifts_traffic() {
        return Some(
            attached
                .and_then(|l| l.target_group_arn())
                .unwrap_or(&lb.target_group_arn)
                .to_owned(),
        );
    }
    attached
        .and_then(|l| l.advanced_configuration())
        .and_then(|a| a.alternate_target_group_arn())
        .map(str::to_owned)
        .or_else(|| lb.alternate_target_group_arn.clone())
}

fn health_line(tg: &str, targets: &[TargetHealth]) -> String {
    if targets.is_empty() {
        return format!(
            "target health of {}: no targets registered",
            short_target_group(tg)
        );
    }
    let shown: Vec<String> = targets
        .iter()
        .map(|t| {
            let state = t.state.as_ref().map(|s| s.as_str()).unwrap_or("unknown");
            let why = match (&t.reason, &t.description) {
                (Some(r), Some(d)) => format!(" ({r}: {d})"),
                (Some(r), None) => format!(" ({r})"),
                (None, Some(d)) => format!(" ({d})"),
                (None, None) => String::new(),
            };
            format!("{} {state}{why}", t.target)
        })
        .collect();
    let healthy = targets
        .iter()
        .filter(|t| t.state == Some(TargetHealthStateEnum::Healthy))
        .count();
    format!(
        "target health of {} ({healthy} of {} healthy): {}",
        short_target_group(tg),
        targets.len(),
        shown.join("; ")
    )
}

fn task_line(t: &StoppedTask) -> String {
    let containers: Vec<String> = t
        .containers
        .iter()
        .map(|(name, code, reason)| {
            format!(
                "{name} exit code {}{}",
                code.map(|c| c.to_string()).unwrap_or_else(|| "none".into()),
                reason
                    .as_ref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            )
        })
        .collect();
    format!(
        "stopped task {} ({}): {}{}{}",
        t.task_id,
        t.task_definition,
        t.stopped_reason.as_deref().unwrap_or("no stoppedReason"),
        t.stop_code
            .as_ref()
            .map(|c| format!(" [{c}]"))
            .unwrap_or_default(),
        if containers.is_empty() {
            String::new()
        } else {
            format!("; {}", containers.join(", "))
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_name_reasons_and_exit_codes() {
        let h = health_line(
            "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/green/2",
            &[TargetHealth {
                target: "10.0.0.5:3000".into(),
                state: Some(TargetHealthStateEnum::Unhealthy),
                reason: Some("Target.FailedHealthChecks".into()),
                description: Some("Health checks failed".into()),
            }],
        );
        assert_eq!(
            h,
            "target health of green (0 of 1 healthy): 10.0.0.5:3000 unhealthy (Target.FailedHealthChecks: Health checks failed)"
        );
        let t = task_line(&StoppedTask {
            task_id: "abc".into(),
            task_definition: "web:7".into(),
            stop_code: Some("EssentialContainerExited".into()),
            stopped_reason: Some("Essential container in task exited".into()),
            containers: vec![("web".into(), Some(137), Some("OutOfMemoryError".into()))],
            stopped_at: None,
        });
        assert_eq!(
            t,
            "stopped task abc (web:7): Essential container in task exited [EssentialContainerExited]; web exit code 137 (OutOfMemoryError)"
        );
    }
}
