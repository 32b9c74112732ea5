//! The moto lifecycle plugin, driven through the same SDK the deployer uses: a BLUE_GREEN update
//! pauses at POST_TEST_TRAFFIC_SHIFT, continues to SUCCESSFUL, a ROLLBACK puts the previous task
//! definition back, and a one-off task stops with the injected exit code.

use std::time::Duration;

use aws_sdk_ecs::types::{
    DeploymentConfiguration, DeploymentLifecycleHook, DeploymentLifecycleHookAction,
    DeploymentLifecycleHookStage, DeploymentLifecycleHookTargetType,
    DeploymentLifecycleHookTimeoutConfiguration, DeploymentStrategy, LaunchType,
};
use test_support::eventually;

use crate::support::*;

async fn register_app(ecs: &aws_sdk_ecs::Client, family: &str, image: &str) -> String {
    register(ecs, family, container("app", image, 128).build(), &[]).await
}

async fn wait_view(
    ecs: &aws_sdk_ecs::Client,
    arn: &str,
    what: &str,
    pred: impl Fn(&DeploymentView) -> bool,
) -> DeploymentView {
    eventually(what, Duration::from_secs(20), || async {
        let v = describe_deployment(ecs, arn).await?;
        Ok(pred(&v).then_some(v))
    })
    .await
    .unwrap()
}

/// Points service `orc` at `td`; returns the new service deployment (not one of `known`).
async fn update_to(ecs: &aws_sdk_ecs::Client, td: &str, known: &[String]) -> String {
    let since = aws_sdk_ecs::primitives::DateTime::from(
        std::time::SystemTime::now() - Duration::from_secs(5),
    );
    ecs.update_service()
        .cluster("c")
        .service("orc")
        .task_definition(td)
        .send()
        .await
        .unwrap();
    match find_deployment(
        ecs,
        "c",
        "orc",
        td,
        since,
        known,
        Duration::from_secs(10),
        false,
    )
    .await
    .unwrap()
    {
        Found::Ours(arn) => arn,
        other => panic!("not our deployment: {other:?}"),
    }
}

#[tokio::test]
async fn blue_green_pauses_continues_and_rolls_back() {
    let aws = fresh_account().await;
    plugin_config(
        &aws,
        // The plain lifecycle: what AWS leaves open (duplicates, lag) is the release tests' job.
        serde_json::json!({"profile": "fast", "stage_seconds": 0.05, "minute_seconds": 0.5}),
    )
    .await;
    let ecs = aws_sdk_ecs::Client::new(&aws.config);
    ecs.create_cluster().cluster_name("c").send().await.unwrap();
    let v1 = register_app(&ecs, "orc", "img:1").await;
    let v2 = register_app(&ecs, "orc", "img:2").await;
    let v3 = register_app(&ecs, "orc", "img:3").await;
    let config = DeploymentConfiguration::builder()
        .strategy(DeploymentStrategy::BlueGreen)
        .bake_time_in_minutes(1)
        // The circuit breaker acts only when configured (as in AWS).
        .deployment_circuit_breaker(
            aws_sdk_ecs::types::DeploymentCircuitBreaker::builder()
                .enable(true)
                .rollback(true)
                .build(),
        )
        .lifecycle_hooks(
            DeploymentLifecycleHook::builder()
                .target_type(DeploymentLifecycleHookTargetType::Pause)
                .lifecycle_stages(DeploymentLifecycleHookStage::PostTestTrafficShift)
                .timeout_configuration(
                    DeploymentLifecycleHookTimeoutConfiguration::builder()
                        .timeout_in_minutes(60)
                        .action(DeploymentLifecycleHookAction::Rollback)
                        .build(),
                )
                .build(),
        )
        .build();
    ecs.create_service()
        .cluster("c")
        .service_name("orc")
        .task_definition(&v1)
        .desired_count(2)
        .deployment_configuration(config)
        .send()
        .await
        .unwrap();

    // Happy path: pause, CONTINUE, SUCCESSFUL, the service runs v2.
    let arn = update_to(&ecs, &v2, &[]).await;
    let paused = wait_view(&ecs, &arn, "hook awaiting action", |v| {
        v.awaiting_hook.is_some()
    })
    .await;
    assert_eq!(paused.status, ServiceDeploymentStatus::InProgress);
    assert_eq!(
        paused.stage,
        Some(ServiceDeploymentLifecycleStage::PostTestTrafficShift)
    );
    let hook = paused.awaiting_hook.unwrap();
    assert!(hook.hook_id.starts_with("ecs-pause-"));
    assert_eq!(hook.timeout_action, DeploymentLifecycleHookAction::Rollback);
    continue_hook(
        &ecs,
        &arn,
        &hook.hook_id,
        DeploymentLifecycleHookAction::Continue,
    )
    .await
    .unwrap();
    // A second CONTINUE on the same hook is refused, as in AWS.
    assert!(
        continue_hook(
            &ecs,
            &arn,
            &hook.hook_id,
            DeploymentLifecycleHookAction::Continue
        )
        .await
        .is_err()
    );
    let done = wait_view(&ecs, &arn, "SUCCESSFUL", |v| v.is_terminal()).await;
    assert_eq!(done.status, ServiceDeploymentStatus::Successful);
    assert_eq!(service_task_definition(&ecs, "c", "orc").await, v2);

    // ROLLBACK at the hook: the service goes back to v2.
    let arn3 = update_to(&ecs, &v3, std::slice::from_ref(&arn)).await;
    let paused = wait_view(&ecs, &arn3, "hook awaiting action", |v| {
        v.awaiting_hook.is_some()
    })
    .await;
    let how = roll_back_in_flight(&ecs, &paused).await.unwrap();
    assert_eq!(how, "ContinueServiceDeployment ROLLBACK");
    let rolled = wait_view(&ecs, &arn3, "rolled back", |v| v.is_terminal()).await;
    assert_eq!(rolled.status, ServiceDeploymentStatus::RollbackSuccessful);
    assert!(rolled.rollback_reason.is_some());
    assert_eq!(
        rolled.ecs_failure(),
        None,
        "a rollback we asked for is not an ECS failure"
    );
    assert_eq!(service_task_definition(&ecs, "c", "orc").await, v2);
    let listed = list_deployments(&ecs, "c", "orc", false).await.unwrap();
    assert_eq!(listed.len(), 3, "create + two updates: {listed:?}");
    assert_eq!(listed[0].arn, arn3, "newest first");

    // Circuit breaker injected: ECS rolls back by itself and says why.
    plugin_fault(
        &aws,
        serde_json::json!({"kind": "circuit_breaker", "service": "orc"}),
    )
    .await;
    let arn4 = update_to(&ecs, &v3, &[arn, arn3]).await;
    let failed = wait_view(&ecs, &arn4, "circuit breaker rollback", |v| v.is_terminal()).await;
    assert_eq!(failed.status, ServiceDeploymentStatus::RollbackSuccessful);
    assert!(failed.ecs_failure().unwrap().contains("circuit breaker"));
}

#[tokio::test]
async fn one_off_task_reports_the_injected_exit_code() {
    let aws = fresh_account().await;
    plugin_config(&aws, serde_json::json!({"run_task_seconds": 0.1})).await;
    plugin_fault(
        &aws,
        serde_json::json!({"kind": "fail_task", "family": "migrate", "exit_code": 3}),
    )
    .await;
    let ecs = aws_sdk_ecs::Client::new(&aws.config);
    ecs.create_cluster().cluster_name("c").send().await.unwrap();
    let td = register_app(&ecs, "migrate", "img:1").await;
    let mut codes = vec![];
    for _ in 0..2 {
        let task = ecs
            .run_task()
            .cluster("c")
            .task_definition(&td)
            .launch_type(LaunchType::Fargate)
            .send()
            .await
            .unwrap();
        let task_arn = task.tasks()[0].task_arn().unwrap().to_owned();
        assert_eq!(task.tasks()[0].last_status(), Some("RUNNING"));
        let code = eventually("task stopped", Duration::from_secs(10), || async {
            let d = ecs
                .describe_tasks()
                .cluster("c")
                .tasks(&task_arn)
                .send()
                .await?;
            let t = &d.tasks()[0];
            Ok((t.last_status() == Some("STOPPED")).then(|| t.containers()[0].exit_code()))
        })
        .await
        .unwrap();
        codes.push(code);
    }
    assert_eq!(codes, vec![Some(3), Some(0)], "the fault fires once");
}
