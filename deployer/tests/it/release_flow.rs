//! `deployer release` end to end against moto + the lifecycle plugin, run as a user runs it:
//! the happy path and the fault matrix. Every failure case ends with production on the
//! previous revision, the right exit code, an audit record with the reason, and the lock free.

use crate::support::*;

/// A release that fails at the gate or in ECS: production ends on the previous revision, the
/// audit record says `outcome` with a reason containing `reason_has`, and the lock is free.
async fn assert_failed_release(w: &World, outcome: Outcome, reason_has: &[&str]) -> ReleaseRecord {
    w.assert_all_on(OLD_SHA).await;
    let rec = w.last_record().await;
    assert_eq!(rec.outcome, RecordOutcome::Ended(outcome));
    for needle in reason_has {
        assert!(
            rec.reason.contains(needle),
            "{needle:?} not in {}",
            rec.reason
        );
    }
    assert!(w.lock_is_free().await, "lock released");
    rec
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn happy_path_releases_every_service_and_records_it() {
    let (w, _new, out) = release_new(Options::default(), &[]).await;
    assert_exit(&out, Code::Ok);
    w.assert_all_on(NEW_SHA).await;
    let rec = w.last_record().await;
    assert_eq!(rec.outcome, RecordOutcome::Ended(Outcome::Succeeded));
    assert_eq!(rec.git_sha, NEW_SHA);
    assert!(
        rec.migration_task.contains(":task/"),
        "{}",
        rec.migration_task
    );
    assert_eq!(rec.services.len(), SERVICES.len());
    for s in &rec.services {
        assert!(s.deployment_arn.contains("service-deployment/"), "{s:?}");
        assert_ne!(s.task_definition, s.previous_task_definition);
    }
    assert!(w.lock_is_free().await, "lock released");
    let summary = std::fs::read_to_string(&w.summary).unwrap();
    assert!(
        summary.contains("orchestrator") && summary.contains("succeeded"),
        "{summary}"
    );
    let outputs = std::fs::read_to_string(&w.outputs).unwrap();
    assert!(
        outputs.contains("outcome=succeeded") && outputs.contains(&format!("git_sha={NEW_SHA}"))
    );
    let err = stderr(&out);
    assert!(
        err.contains("POST_TEST_TRAFFIC_SHIFT")
            && err.contains("ContinueServiceDeployment CONTINUE"),
        "{err}"
    );
    // The API token never appears: the runner checks stdout, stderr and both files above.
    assert!(
        !err.contains(TOKEN) && !summary.contains(TOKEN),
        "the API token never appears"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_failure_at_test_traffic_rolls_back() {
    let w = World::new(Options::default()).await;
    // The test listener serves the wrong version: the gate must notice it is not the new sha.
    let wrong = spawn_target(OLD_SHA, None).await;
    let out = w.run(RELEASE, &wrong.url).await;
    assert_exit(&out, Code::RolledBackSmoke);
    assert_failed_release(&w, Outcome::RolledBackSmoke, &["/git_sha", OLD_SHA]).await;
    assert_stderr_has(&out, "ContinueServiceDeployment ROLLBACK");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_failure_during_bake_rolls_back() {
    let w = World::new(Options::default()).await;
    let new = spawn_target(NEW_SHA, None).await;
    let sick = spawn_target(NEW_SHA, Some("unhealthy")).await;
    let out = w.deployer(RELEASE, &new.url, &sick.url).run().await;
    assert_exit(&out, Code::RolledBackSmoke);
    assert_failed_release(&w, Outcome::RolledBackSmoke, &["bake"]).await;
    assert_stderr_has(&out, "StopServiceDeployment ROLLBACK");
}

/// A release with `fault` injected is rolled back by ECS itself, for a reason naming `reason`.
async fn assert_ecs_rollback(opts: Options, fault: serde_json::Value, reason: &str) {
    let (w, _new, out) = release_new(opts, &[fault]).await;
    assert_exit(&out, Code::RolledBackEcs);
    assert_failed_release(&w, Outcome::RolledBackEcs, &[reason]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn circuit_breaker_trip_is_an_ecs_rollback() {
    let fault = serde_json::json!({"kind": "circuit_breaker", "service": "agent-scaffold"});
    assert_ecs_rollback(Options::default(), fault, "circuit breaker").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alarm_during_bake_is_an_ecs_rollback_and_reverts_moved_services() {
    // The alarm is configured on the service (by Terraform): only then can it roll back.
    let terraform = aws_sdk_ecs::types::DeploymentConfiguration::builder()
        .strategy(aws_sdk_ecs::types::DeploymentStrategy::BlueGreen)
        .bake_time_in_minutes(1)
        .alarms(
            aws_sdk_ecs::types::DeploymentAlarms::builder()
                .enable(true)
                .rollback(true)
                .alarm_names("platform-5xx")
                .build()
                .expect("alarms"),
        )
        .build();
    let opts = Options {
        load_balanced_configuration: Some(terraform),
        ..Options::default()
    };
    let fault =
        serde_json::json!({"kind": "alarm", "service": "orchestrator", "alarm": "platform-5xx"});
    // The agents had already moved to the new revision: they are put back too (every service
    // on the old revision).
    assert_ecs_rollback(opts, fault, "platform-5xx").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_migration_changes_no_service() {
    let fault =
        serde_json::json!({"kind": "fail_task", "family": "platform-migrate", "exit_code": 3});
    let (w, _new, out) = release_new(Options::default(), &[fault]).await;
    assert_exit(&out, Code::MigrationFailed);
    for s in SERVICES {
        // Listings lag (the strict emulator hides deployments younger than 2 s): wait until the
        // creation deployment shows, then there must be nothing else.
        let deps = test_support::eventually(
            "the creation deployment listed",
            std::time::Duration::from_secs(10),
            || async {
                let deps = list_deployments(&w.ecs, &w.cluster, s.name, false).await?;
                Ok((!deps.is_empty()).then_some(deps))
            },
        )
        .await
        .unwrap();
        assert_eq!(
            deps.len(),
            1,
            "{}: only the creation deployment, no update",
            s.name
        );
    }
    assert_failed_release(&w, Outcome::MigrationFailed, &["migrate=3"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_image_with_no_build_fails_preflight_without_changes() {
    let w = World::new(Options::default()).await;
    let new = spawn_target(NEW_SHA, None).await;
    let missing = "2222222222222222222222222222222222222ccc";
    let out = w
        .run(&["release", "--git-sha", missing, "--no-build"], &new.url)
        .await;
    assert_exit(&out, Code::Preflight);
    let err = stderr(&out);
    assert!(err.contains("not in ECR") && err.contains(missing), "{err}");
    assert!(
        !err.contains("Build and push"),
        "--no-build never builds: {err}"
    );
    w.assert_all_on(OLD_SHA).await;
    assert!(w.lock_is_free().await);
    assert!(
        w.history().await.is_empty(),
        "nothing started, nothing recorded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_image_is_built_and_pushed_then_released() {
    let registry = test_support::registry().await.expect("local OCI registry");
    let w = World::new(Options::default()).await;
    // A fresh sha (the local image tag is `platform:<sha>`, shared by every test on this engine).
    let sha = format!("{}{}", test_support::unique(""), "d".repeat(28));
    // The project's dockerfile/context settings and the environment's registry override, as a
    // user configures them.
    let ctx = w.dir.path().join("image");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile.release"),
        "FROM scratch\nARG GIT_SHA\nCOPY marker.txt /marker.txt\n",
    )
    .unwrap();
    std::fs::write(ctx.join("marker.txt"), &sha).unwrap();
    let toml = std::fs::read_to_string(&w.config).unwrap();
    let toml = toml
        .replacen(
            "templates = \"templates\"\n",
            "templates = \"templates\"\ncontext = \"image\"\ndockerfile = \"image/Dockerfile.release\"\n",
            1,
        )
        .replacen(
            "[environments.test]\n",
            &format!("[environments.test]\nregistry = \"{registry}\"\n"),
            1,
        );
    std::fs::write(&w.config, toml).unwrap();

    let new = spawn_target(&sha, None).await;
    let out = w.run(&["release", "--git-sha", &sha], &new.url).await;
    let err = stderr(&out);
    assert_exit(&out, Code::Ok);
    assert!(
        err.contains(&format!("Build and push image for {sha}"))
            && err.contains(&format!("platform:{sha}"))
            && err.contains("pushed "),
        "{err}"
    );
    w.assert_all_on(&sha).await;
    // The image is now in ECR (the manifest went to the local registry, recorded in ECR).
    let described = w
        .ecr
        .describe_images()
        .repository_name("platform")
        .image_ids(
            aws_sdk_ecr::types::ImageIdentifier::builder()
                .image_tag(&sha)
                .build(),
        )
        .send()
        .await
        .expect("the built image is in ECR");
    let digest = described.image_details()[0]
        .image_digest()
        .unwrap()
        .to_owned();
    let rec = w.last_record().await;
    assert_eq!(rec.outcome, RecordOutcome::Ended(Outcome::Succeeded));
    assert_eq!(rec.git_sha, sha);
    assert_eq!(rec.image_digest, digest);
    let manifest = reqwest::Client::new()
        .head(format!("http://{registry}/v2/platform/manifests/{sha}"))
        .header(
            "Accept",
            "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json",
        )
        .send()
        .await
        .unwrap();
    assert!(
        manifest.status().is_success(),
        "manifest in the local registry: {}",
        manifest.status()
    );
    assert!(w.lock_is_free().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_and_5xx_bursts_are_retried() {
    // Three failed answers in a row (2 throttled, 1 HTTP 503): within the SDK's 4 attempts.
    let faults = [
        serde_json::json!({"kind": "throttle", "count": 2}),
        serde_json::json!({"kind": "server_error", "count": 1}),
    ];
    let (w, _new, out) = release_new(Options::default(), &faults).await;
    assert_exit(&out, Code::Ok);
    w.assert_all_on(NEW_SHA).await;
    let state = plugin_state(&w.aws).await;
    assert!(
        state["faults"].as_array().unwrap().is_empty(),
        "every injected failure was hit"
    );
    assert!(w.lock_is_free().await);
}
