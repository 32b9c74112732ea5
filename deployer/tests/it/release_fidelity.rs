//! Where real ECS differs from a convenient emulator (issue #11): duplicate and superseding
//! deployments, ROLLBACK_FAILED, a Stop that does not take, capacity and configuration others
//! own, pauses whose stage ECS does not report, a controller that cannot take the update, and
//! API calls that fail or are throttled. One test per defect; each failed on the engine before
//! the fix (run with DEPLOYER_TEST_BINARY=<the old binary>).

use std::time::Duration;

use aws_sdk_ecs::types::{
    DeploymentAlarms, DeploymentConfiguration, DeploymentController, DeploymentControllerType,
    DeploymentLifecycleHook, DeploymentLifecycleHookStage, DeploymentLifecycleHookTargetType,
    DeploymentStrategy, Tag,
};

use crate::support::*;

const ORCHESTRATOR_ONLY: &[Service] = &[Service {
    name: "orchestrator",
    kind: "blue_green",
}];

const ROLLING_AGENT: &[Service] = &[Service {
    name: "agent-scaffold",
    kind: "rolling_agent",
}];

/// Every service runs `sha`, and no deployment of any is still in flight.
async fn settled_on(w: &World, sha: &str) {
    w.eventually_all_on(sha, Duration::from_secs(20)).await;
}

/// Defect 1: one UpdateService, two deployments (ECS starts a duplicate, the first goes
/// STOPPED): the release follows the one that runs and succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_deployment_for_one_update_is_followed_to_success() {
    let opts = Options {
        // Listed at once, the first deployment is the one found; the duplicate replaces it
        // while it is followed.
        emulator: serde_json::json!({
            "duplicate_deployments": true,
            "duplicate_after_seconds": 0.5,
            "duplicate_stop_seconds": 0.5,
            "list_lag_seconds": 0,
        }),
        ..Options::default()
    };
    let (w, _new, out) = release_new(opts, &[]).await;
    assert_exit(&out, Code::Ok);
    w.assert_all_on(NEW_SHA).await;
    assert_eq!(
        w.last_record().await.outcome,
        RecordOutcome::Ended(Outcome::Succeeded)
    );
}

/// Defect 1: another actor updates the service to another revision mid-release: the release
/// ends "superseded" (its own exit code), never "rolled back", and reverts nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_actors_update_ends_the_release_as_superseded() {
    let w = World::with_services(Options::no_bake(), ORCHESTRATOR_ONLY).await;
    let hotfix = register(
        &w.ecs,
        "orchestrator",
        container("orchestrator", &format!("{}:hotfix", w.repo_uri), 256)
            .essential(true)
            .build(),
        &[Tag::builder().key("git_sha").value("hotfix").build()],
    )
    .await;
    plugin_fault(
        &w.aws,
        serde_json::json!({"kind": "supersede", "service": "orchestrator", "at": "POST_SCALE_UP", "task_definition": hotfix}),
    )
    .await;
    let new = spawn_target(NEW_SHA, None).await;
    let out = w.run(RELEASE, &new.url).await;
    assert_exit(&out, Code::Superseded);
    let err = stderr(&out);
    assert!(
        err.contains("another deployment took over") && !err.contains("rolled back by ECS"),
        "{err}"
    );
    let rec = w.last_record().await;
    assert_eq!(rec.outcome, RecordOutcome::Ended(Outcome::Superseded));
    assert_eq!(rec.services[0].status.to_string(), "SUPERSEDED");
    assert!(w.lock_is_free().await, "lock released");
}

/// Defect 2: ROLLBACK_FAILED is its own outcome, exit code and audit status, with a message that
/// says production may be mixed and what to run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_rollback_is_not_reported_as_a_rollback() {
    let w = World::with_services(Options::default(), ORCHESTRATOR_ONLY).await;
    plugin_fault(
        &w.aws,
        serde_json::json!({"kind": "rollback_failed", "service": "orchestrator"}),
    )
    .await;
    // The test listener serves the old version: the gate fails and rolls back, which fails.
    let wrong = spawn_target(OLD_SHA, None).await;
    let out = w.run(RELEASE, &wrong.url).await;
    assert_exit(&out, Code::RollbackFailed);
    let err = stderr(&out);
    assert!(
        err.contains("ROLLBACK_FAILED") && err.contains("deployer rollback --env test"),
        "{err}"
    );
    let rec = w.last_record().await;
    assert_eq!(rec.outcome, RecordOutcome::Ended(Outcome::RollbackFailed));
    assert_eq!(rec.services[0].status.to_string(), "ROLLBACK_FAILED");
}

/// Defect 3: production fails during bake, and StopServiceDeployment keeps failing, so the
/// deployment ends SUCCESSFUL: the release still never exits 0; it puts the old revision back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_bake_check_never_ends_in_success_even_when_stop_fails() {
    let w = World::with_services(Options::default(), ORCHESTRATOR_ONLY).await;
    plugin_fault(
        &w.aws,
        serde_json::json!({"kind": "server_error", "action": "StopServiceDeployment", "count": 1000}),
    )
    .await;
    let new = spawn_target(NEW_SHA, None).await;
    let sick = spawn_target(NEW_SHA, Some("unhealthy")).await;
    let out = w.deployer(RELEASE, &new.url, &sick.url).run().await;
    assert_exit(&out, Code::RolledBackSmoke);
    settled_on(&w, OLD_SHA).await;
    let rec = w.last_record().await;
    assert_eq!(rec.outcome, RecordOutcome::Ended(Outcome::RolledBackSmoke));
    assert_eq!(rec.services[0].status.to_string(), "REVERTED");
}

/// Defect 4: a service autoscaled to 8 tasks keeps 8: the deployer does not own the count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_autoscaled_desired_count_is_left_alone() {
    let opts = Options {
        desired: 8,
        ..Options::no_bake()
    };
    let (w, _new, out) = release_new(opts, &[]).await;
    assert_exit(&out, Code::Ok);
    for s in SERVICES {
        let svc = describe_service(&w.ecs, &w.cluster, s.name).await;
        assert_eq!(svc.desired_count(), 8, "{} desired count", s.name);
    }
}

/// Defect 5: alarms and a Lambda hook Terraform configured survive the release; the alarm then
/// does its job (before, a fault on an unconfigured alarm "rolled back" vacuously).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_configuration_others_own_is_kept() {
    let lambda = DeploymentLifecycleHook::builder()
        .target_type(DeploymentLifecycleHookTargetType::AwsLambda)
        .hook_target_arn("arn:aws:lambda:us-east-1:123456789012:function:pre-scale-check")
        .role_arn("arn:aws:iam::123456789012:role/ecs-hooks")
        .lifecycle_stages(DeploymentLifecycleHookStage::PreScaleUp)
        .build();
    let terraform = DeploymentConfiguration::builder()
        .strategy(DeploymentStrategy::BlueGreen)
        .bake_time_in_minutes(1)
        .alarms(
            DeploymentAlarms::builder()
                .enable(true)
                .rollback(true)
                .alarm_names("platform-5xx")
                .build()
                .expect("alarms"),
        )
        .lifecycle_hooks(lambda)
        .build();
    let opts = Options {
        load_balanced_configuration: Some(terraform),
        ..Options::default()
    };
    let w = World::with_services(opts, ORCHESTRATOR_ONLY).await;
    let new = spawn_target(NEW_SHA, None).await;
    let out = w.run(RELEASE, &new.url).await;
    assert_exit(&out, Code::Ok);
    let svc = describe_service(&w.ecs, &w.cluster, "orchestrator").await;
    let cfg = svc
        .deployment_configuration()
        .expect("deploymentConfiguration");
    let alarms = cfg.alarms().expect("alarms kept");
    assert_eq!(alarms.alarm_names(), ["platform-5xx"]);
    let hooks = cfg.lifecycle_hooks();
    assert!(
        hooks.iter().any(|h| h.target_type()
            == Some(&DeploymentLifecycleHookTargetType::AwsLambda)
            && h.hook_target_arn()
                .is_some_and(|a| a.ends_with(":pre-scale-check"))),
        "the Lambda hook is kept: {hooks:?}"
    );
    assert!(
        hooks
            .iter()
            .any(|h| h.target_type() == Some(&DeploymentLifecycleHookTargetType::Pause)),
        "the deployer's PAUSE hook is there: {hooks:?}"
    );

    // The alarm is configured, so a firing alarm rolls the next release back (ECS's doing).
    plugin_fault(
        &w.aws,
        serde_json::json!({"kind": "alarm", "service": "orchestrator", "alarm": "platform-5xx"}),
    )
    .await;
    let third = "2222222222222222222222222222222222222ccc";
    put_image(&w.ecr, "platform", third).await;
    let target = spawn_target(third, None).await;
    let out = w.run(&["release", "--git-sha", third], &target.url).await;
    assert_exit(&out, Code::RolledBackEcs);
    assert_stderr_has(&out, "platform-5xx");
    settled_on(&w, NEW_SHA).await;
}

/// Defect 6: a rolling agent service whose agents never heart-beat with the new sha is reverted,
/// not left on the new revision while the release says "rolled back".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_agent_gate_after_a_rolling_deployment_reverts_the_service() {
    let opts = Options {
        agent_gate: Some("3s"),
        ..Options::no_bake()
    };
    let w = World::with_services(opts, ROLLING_AGENT).await;
    // The orchestrator API answers, but no agent of NEW_SHA ever heart-beats on it.
    let api = spawn_target(NEW_SHA, None).await;
    let out = w.run(RELEASE, &api.url).await;
    assert_exit(&out, Code::RolledBackSmoke);
    settled_on(&w, OLD_SHA).await;
    let rec = w.last_record().await;
    assert_eq!(rec.services[0].status.to_string(), "REVERTED");
}

/// Defect 7: after a blue/green release ECS serves from the other target group; `verify`
/// accepts either group of the pair (before, it failed every second release).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_accepts_the_swapped_target_groups_after_a_release() {
    let w = World::with_services(Options::no_bake(), ORCHESTRATOR_ONLY).await;
    let new = spawn_target(NEW_SHA, None).await;
    assert_exit(&w.run(RELEASE, &new.url).await, Code::Ok);
    let svc = describe_service(&w.ecs, &w.cluster, "orchestrator").await;
    let lb = w.lb.clone();
    assert_eq!(
        svc.load_balancers()[0].target_group_arn(),
        Some(lb.green.as_str()),
        "ECS swapped the pair"
    );
    let out = w
        .run(&["verify", "--git-sha", NEW_SHA, "-o", "json"], &new.url)
        .await;
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("verify JSON");
    let check = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "service orchestrator load balancer")
        .cloned()
        .unwrap_or_else(|| panic!("no load balancer check: {report}"));
    assert_eq!(check["status"], "pass", "{check}");
}

/// Defect 8: ECS does not report the stage while paused (strict emulator): the gate still runs
/// the test-listener checks of the stage the deployer configured; a wrong version on the test
/// listener rolls back (before, an unknown stage CONTINUEd without any check).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_without_a_reported_stage_gets_its_gate() {
    let opts = Options {
        emulator: serde_json::json!({"paused_stage": "omitted"}),
        ..Options::default()
    };
    let w = World::with_services(opts, ORCHESTRATOR_ONLY).await;
    let wrong = spawn_target(OLD_SHA, None).await;
    let good = spawn_target(NEW_SHA, None).await;
    let out = w.deployer(RELEASE, &wrong.url, &good.url).run().await;
    assert_exit(&out, Code::RolledBackSmoke);
    assert_stderr_has(&out, "ContinueServiceDeployment ROLLBACK");
    settled_on(&w, OLD_SHA).await;
}

/// Defect 9: a CODE_DEPLOY service fails the release preflight before the migration runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_deploy_service_fails_preflight_before_the_migration() {
    let w = World::with_services(Options::default(), &[]).await;
    let c = container("orchestrator", &format!("{}:{OLD_SHA}", w.repo_uri), 256)
        .essential(true)
        .build();
    let td = register(&w.ecs, "orchestrator", c, &[]).await;
    w.ecs
        .create_service()
        .cluster(&w.cluster)
        .service_name("orchestrator")
        .task_definition(&td)
        .desired_count(1)
        .deployment_controller(
            DeploymentController::builder()
                .r#type(DeploymentControllerType::CodeDeploy)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("CreateService (CODE_DEPLOY)");
    std::fs::write(
        &w.config,
        std::fs::read_to_string(&w.config).unwrap()
            + "\n[[environments.test.services]]\nname = \"orchestrator\"\ntemplate = \"service\"\nstrategy = \"rolling\"\n",
    )
    .unwrap();
    let new = spawn_target(NEW_SHA, None).await;
    let out = w.run(RELEASE, &new.url).await;
    assert_exit(&out, Code::Preflight);
    assert_stderr_has(&out, "CODE_DEPLOY deployment controller");
    let tasks = w
        .ecs
        .list_tasks()
        .cluster(&w.cluster)
        .send()
        .await
        .expect("ListTasks");
    assert!(
        tasks.task_arns().is_empty(),
        "no migration task ran: {:?}",
        tasks.task_arns()
    );
}

/// Defect 10: ListServiceDeployments throttled right after UpdateService: the release keeps
/// looking for its deployment instead of abandoning it (exit 5).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_listing_after_the_update_does_not_abandon_the_deployment() {
    let opts = Options {
        migration: false,
        emulator: serde_json::json!({
            "throttle": {"ListServiceDeployments": {"rate": 0.1, "burst": 2}},
        }),
        // One listing per 10 s: finding the strict profile's replacing deployment can take
        // two, which the default (10 emulated minutes = 10 s) hook timeout would not wait for.
        hook_timeout: "30m",
        ..Options::no_bake()
    };
    let w = World::with_services(opts, ORCHESTRATOR_ONLY).await;
    let new = spawn_target(NEW_SHA, None).await;
    let out = w.run(RELEASE, &new.url).await;
    assert_exit(&out, Code::Ok);
    w.assert_all_on(NEW_SHA).await;
}

/// Defect 10: ContinueServiceDeployment fails a few times: retried until it takes, so the
/// gate's CONTINUE is not lost to the hook timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_continue_is_retried_until_it_takes() {
    // One deployment, listed at once: the pause is this deployment's.
    let opts = Options {
        emulator: serde_json::json!({"duplicate_deployments": false, "list_lag_seconds": 0}),
        ..Options::no_bake()
    };
    let w = World::with_services(opts, ORCHESTRATOR_ONLY).await;
    plugin_fault(
        &w.aws,
        serde_json::json!({"kind": "server_error", "action": "ContinueServiceDeployment", "count": 6}),
    )
    .await;
    let new = spawn_target(NEW_SHA, None).await;
    let out = w.run(RELEASE, &new.url).await;
    assert_exit(&out, Code::Ok);
    w.assert_all_on(NEW_SHA).await;
}

/// Defect 10: a rollback that never finishes is not waited for forever: the release ends with
/// "rollback failed" within its bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wait_for_a_rollback_is_bounded() {
    // Stages of 5 s: the deployment is still early when the 3 s deadline passes; the rollback
    // the deployer then asks for takes 10 minutes.
    let opts = Options {
        migration: false,
        deployment_timeout: "3s",
        stage_seconds: 5.0,
        emulator: serde_json::json!({"rollback_seconds": 600}),
        ..Options::no_bake()
    };
    let w = World::with_services(opts, ORCHESTRATOR_ONLY).await;
    let new = spawn_target(NEW_SHA, None).await;
    let run = w.background(RELEASE, &new.url);
    let out = run.finish(Duration::from_secs(60)).await;
    assert_exit(&out, Code::RollbackFailed);
    assert_stderr_has(&out, "did not finish within");
}

/// Defect 10: polling is bounded: one release's ECS calls per service stay few (the old engine
/// described every 50 ms and listed every 100 ms).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_release_makes_few_ecs_calls() {
    // Deployments listed at once and no duplicates: the count is the deployer's polling, not
    // the emulator's inconvenience.
    // Stages of 0.5 s, so a deployment lasts a few seconds and the poll rate shows.
    let opts = Options {
        stage_seconds: 0.5,
        emulator: serde_json::json!({"profile": "fast", "stage_seconds": 0.5}),
        ..Options::no_bake()
    };
    let (w, _new, out) = release_new(opts, &[]).await;
    assert_exit(&out, Code::Ok);
    let state = plugin_state(&w.aws).await;
    let calls = &state["calls"];
    let total: u64 = calls
        .as_object()
        .unwrap_or_else(|| panic!("the emulator counts calls: {state}"))
        .values()
        .filter_map(|v| v.as_u64())
        .sum();
    let per_service = total as f64 / SERVICES.len() as f64;
    eprintln!("{per_service:.1} ECS calls per service: {calls}");
    assert!(
        per_service <= 25.0,
        "{per_service:.0} ECS calls per service for one release: {calls}"
    );
}

/// What AWS leaves unspecified, every way: the stage reported while paused (or not) × finished
/// hooks listed (or not), each with duplicate deployments and list lag, and the plain fast
/// profile. The happy path and a failed gate hold in every setting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn releases_hold_in_every_emulator_setting_aws_leaves_open() {
    let mut settings = vec![serde_json::json!({"profile": "fast"})];
    for paused_stage in ["stage", "omitted"] {
        for list_finished_hooks in [true, false] {
            settings.push(serde_json::json!({
                "profile": "strict",
                "paused_stage": paused_stage,
                "list_finished_hooks": list_finished_hooks,
            }));
        }
    }
    for setting in settings {
        let opts = || Options {
            emulator: setting.clone(),
            ..Options::no_bake()
        };
        let w = World::with_services(opts(), SERVICES).await;
        let new = spawn_target(NEW_SHA, None).await;
        let out = w.run(RELEASE, &new.url).await;
        assert_eq!(
            code(&out),
            0,
            "happy path under {setting}:\n{}",
            stderr(&out)
        );
        w.assert_all_on(NEW_SHA).await;

        let w = World::with_services(opts(), ORCHESTRATOR_ONLY).await;
        let wrong = spawn_target(OLD_SHA, None).await;
        let out = w.deployer(RELEASE, &wrong.url, &new.url).run().await;
        assert_eq!(
            code(&out),
            Code::RolledBackSmoke as i32,
            "failed gate under {setting}:\n{}",
            stderr(&out)
        );
        settled_on(&w, OLD_SHA).await;
    }
}
