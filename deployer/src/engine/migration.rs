//! The migration: a one-off RunTask of the migration task definition before any service
//! changes, waited for until it stops; success is every container exiting 0.

use std::time::{Duration, Instant};

use aws_sdk_ecs::types::{
    AwsVpcConfiguration, ContainerOverride, LaunchType, NetworkConfiguration, TaskOverride,
};

use super::register::register;
use super::{Ctx, Outcome, Step, Stop};
use crate::aws::error_chain;
use crate::taskdef::{Target, vars::Release};

/// Runs the migration as a one-off task and waits for exit code 0; returns the task ARN (empty
/// when the environment has no migration). Any failure ends the release as `migration_failed`
/// (`interrupted` after Ctrl-C) before a service changed.
pub(crate) async fn run_migration(ctx: &Ctx, release: &Release) -> Step<String> {
    run(ctx, release).await.map_err(|e| {
        let outcome = if ctx.cancelled() {
            Outcome::Interrupted
        } else {
            Outcome::MigrationFailed
        };
        Stop::new(outcome, e)
    })
}

/// The migration run; the error is the reason it failed.
async fn run(ctx: &Ctx, release: &Release) -> Result<String, String> {
    let Some(m) = &ctx.env.migration else {
        return Ok(String::new());
    };
    let target = Target {
        name: "migration",
        template: &m.template,
        service: None,
    };
    let td = register(ctx, &target, release)
        .await
        .map_err(|s| s.reason)?;
    let release_id = release.release_id.as_deref().unwrap_or_default();
    let mut req = ctx
        .ecs
        .run_task()
        .cluster(&ctx.env.cluster)
        .task_definition(&td)
        .launch_type(LaunchType::Fargate)
        .started_by(format!("deployer/{release_id}"));
    if let Some(net) = &ctx.env.network {
        req = req.network_configuration(
            NetworkConfiguration::builder()
                .awsvpc_configuration(
                    AwsVpcConfiguration::builder()
                        .set_subnets(Some(net.subnets.clone()))
                        .set_security_groups(Some(net.security_groups.clone()))
                        .assign_public_ip(if net.assign_public_ip {
                            aws_sdk_ecs::types::AssignPublicIp::Enabled
                        } else {
                            aws_sdk_ecs::types::AssignPublicIp::Disabled
                        })
                        .build()
                        .map_err(|e| e.to_string())?,
                )
                .build(),
        );
    }
    if !m.command.is_empty() {
        let container = m.container.clone().unwrap_or_else(|| "migrate".into());
        req = req.overrides(
            TaskOverride::builder()
                .container_overrides(
                    ContainerOverride::builder()
                        .name(container)
                        .set_command(Some(m.command.clone()))
                        .build(),
                )
                .build(),
        );
    }
    let out = req
        .send()
        .await
        .map_err(|e| format!("RunTask (migration): {}", error_chain(&e)))?;
    if let Some(f) = out.failures().first() {
        return Err(format!(
            "RunTask (migration) failed: {} {}",
            f.reason().unwrap_or_default(),
            f.detail().unwrap_or_default()
        ));
    }
    let task_arn = out
        .tasks()
        .first()
        .and_then(|t| t.task_arn())
        .ok_or("RunTask (migration) started no task")?
        .to_owned();
    ctx.report
        .line(&format!("migration task {task_arn} started"));
    let deadline = Instant::now() + ctx.env.timeouts.migration;
    let mut interval = Duration::from_millis(100);
    loop {
        let d = ctx
            .ecs
            .describe_tasks()
            .cluster(&ctx.env.cluster)
            .tasks(&task_arn)
            .send()
            .await
            .map_err(|e| format!("DescribeTasks (migration): {}", error_chain(&e)))?;
        if let Some(t) = d.tasks().first()
            && t.last_status() == Some("STOPPED")
        {
            let codes: Vec<(String, Option<i32>)> = t
                .containers()
                .iter()
                .map(|c| (c.name().unwrap_or_default().to_owned(), c.exit_code()))
                .collect();
            if codes.iter().all(|(_, c)| *c == Some(0)) {
                ctx.report.line("migration task exited 0");
                return Ok(task_arn);
            }
            return Err(format!(
                "the migration task {task_arn} stopped: {} (stop code {}); container exit codes: {}",
                t.stopped_reason().unwrap_or("no reason given"),
                t.stop_code().map(|c| c.as_str()).unwrap_or("none"),
                codes
                    .iter()
                    .map(|(n, c)| format!(
                        "{n}={}",
                        c.map(|c| c.to_string()).unwrap_or_else(|| "none".into())
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if Instant::now() >= deadline {
            let _ = ctx
                .ecs
                .stop_task()
                .cluster(&ctx.env.cluster)
                .task(&task_arn)
                .reason("deployer: migration timed out")
                .send()
                .await;
            return Err(format!(
                "the migration task {task_arn} did not finish within {:?}; it was stopped",
                ctx.env.timeouts.migration
            ));
        }
        if ctx.cancelled() {
            return Err("interrupted while the migration ran".into());
        }
        tokio::time::sleep(interval).await;
        interval = (interval * 2).min(Duration::from_secs(1));
    }
}
