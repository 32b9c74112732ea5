//! Recovery paths, with real processes: the deploy lock against a concurrent release, the ECS
//! hook timeout after the deployer is SIGKILLed while paused, `--resume` from a second process,
//! and `deployer rollback` in flight and after success.

use std::time::Duration;

use test_support::eventually;

use crate::support::*;

/// How long a backgrounded release may take to end once the test has acted.
const ENDS_WITHIN: Duration = Duration::from_secs(60);

/// Waits until the orchestrator's deployment is paused at a hook; returns its ARN.
async fn paused(w: &World) -> String {
    eventually(
        "orchestrator paused at its hook",
        Duration::from_secs(30),
        || async {
            let deps = list_deployments(&w.ecs, &w.cluster, "orchestrator", true).await?;
            for d in deps {
                let arn = d.arn;
                let v = describe_deployment(&w.ecs, &arn).await?;
                if v.awaiting_hook.is_some() {
                    return Ok(Some(arn));
                }
            }
            Ok(None)
        },
    )
    .await
    .unwrap()
}

/// A world with a slow gate, a smoke target on the new sha, and `deployer release` started in
/// the background and paused at the orchestrator's hook (its deployment ARN).
async fn paused_release(
    minute_seconds: f64,
    hook_timeout: &'static str,
) -> (World, Target, Background, String) {
    // These tests are about one paused deployment whose deployer dies, stops or is joined by a
    // second one; they pick that deployment by its pause, which an ECS-made duplicate would
    // replace under them. Duplicates have their own tests (release_fidelity); the rest of the
    // strict profile (list lag, no stage while paused, finished hooks not listed) stays on.
    let opts = Options {
        emulator: serde_json::json!({"duplicate_deployments": false}),
        ..Options::slow_gate(minute_seconds, hook_timeout)
    };
    let w = World::new(opts).await;
    let new = spawn_target(NEW_SHA, None).await;
    let first = w.background(RELEASE, &new.url);
    let arn = paused(&w).await;
    (w, new, first, arn)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_release_fails_fast_naming_the_holder() {
    let (w, new, first, _) = paused_release(60.0, "10m").await;
    let second = w.run(RELEASE, &new.url).await;
    assert_exit(&second, Code::LockHeld);
    let err = stderr(&second);
    assert!(
        err.contains("held by") && err.contains(NEW_SHA) && err.contains("--wait-lock"),
        "{err}"
    );
    let first = first.finish(ENDS_WITHIN).await;
    assert_exit(&first, Code::Ok);
    w.assert_all_on(NEW_SHA).await;
    assert!(w.lock_is_free().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hook_timeout_rolls_back_after_the_deployer_is_killed_and_resume_records_it() {
    // One configured minute lasts 5 s: the 1-minute hook timeout fires 5 s after the pause
    // (long enough to see the pause through the emulator's 2 s list lag).
    let (w, new, first, arn) = paused_release(5.0, "1m").await;
    first.kill().await;
    // ECS's safety net: the hook's timeout action (ROLLBACK).
    let ended = eventually(
        "ECS rolls back on hook timeout",
        Duration::from_secs(30),
        || async {
            let v = describe_deployment(&w.ecs, &arn).await?;
            Ok(v.is_terminal().then_some(v))
        },
    )
    .await
    .unwrap();
    assert_eq!(ended.status, ServiceDeploymentStatus::RollbackSuccessful);
    // A TIMED_OUT hook may not be listed once finished (AWS does not say): the rollback's
    // reason says it either way.
    let why = ended.ecs_failure().unwrap_or_else(|| ended.best_reason());
    assert!(why.contains("timed out"), "{why}");
    let resumed = w.run(&["release", "--resume"], &new.url).await;
    assert_exit(&resumed, Code::RolledBackEcs);
    let status = w.run(&["status"], &new.url).await;
    assert_exit(&status, Code::Ok);
    assert!(stdout(&status).contains("lock: free"));
    w.assert_all_on(OLD_SHA).await;
    let rec = w.last_record().await;
    assert_eq!(rec.outcome, RecordOutcome::Ended(Outcome::RolledBackEcs));
    assert!(rec.reason.contains("timed out"), "{}", rec.reason);
    assert!(w.lock_is_free().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_from_a_second_process_completes_a_paused_release() {
    let (w, new, first, _) = paused_release(60.0, "10m").await;
    first.kill().await;
    let second = w.run(&["release", "--resume"], &new.url).await;
    assert_exit(&second, Code::Ok);
    assert_stderr_has(&second, "re-attaching");
    w.assert_all_on(NEW_SHA).await;
    let h = w.history().await;
    assert_eq!(h.len(), 1, "the same release, finished");
    assert_eq!(h[0].outcome, RecordOutcome::Ended(Outcome::Succeeded));
    assert!(w.lock_is_free().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_of_an_in_flight_release() {
    let (w, new, first, _) = paused_release(60.0, "10m").await;
    let rb = w.run(&["rollback"], &new.url).await;
    assert_exit(&rb, Code::Ok);
    assert_stderr_has(&rb, "ROLLBACK");
    let first = first.finish(ENDS_WITHIN).await;
    assert_ne!(
        code(&first),
        Code::Ok as i32,
        "the interrupted release does not report success"
    );
    w.assert_all_on(OLD_SHA).await;
    assert!(w.lock_is_free().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_after_success_to_previous_and_to_a_named_sha() {
    let w = World::new(Options::no_bake()).await;
    let shas = [
        NEW_SHA,
        "3333333333333333333333333333333333333ddd",
        "4444444444444444444444444444444444444eee",
    ];
    let mut targets = Vec::new();
    for sha in shas {
        if sha != NEW_SHA {
            put_image(&w.ecr, "platform", sha).await;
        }
        let t = spawn_target(sha, None).await;
        let out = w.run(&["release", "--git-sha", sha], &t.url).await;
        assert_exit(&out, Code::Ok);
        targets.push(t);
    }
    w.assert_all_on(shas[2]).await;
    // Previous successful release: the gate proves the old version answers.
    let out = w.run(&["rollback"], &targets[1].url).await;
    assert_exit(&out, Code::Ok);
    assert!(stderr(&out).contains("audit"), "says which source it used");
    w.assert_all_on(shas[1]).await;
    // A named git sha (short form).
    let out = w
        .run(&["rollback", "--to", &shas[0][..10]], &targets[0].url)
        .await;
    assert_exit(&out, Code::Ok);
    w.assert_all_on(shas[0]).await;
    let rec = w.last_record().await;
    assert_eq!(rec.kind, ReleaseKind::Rollback);
    assert_eq!(rec.git_sha, shas[0]);
    assert!(w.lock_is_free().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_paused_rolls_back_and_releases_the_lock() {
    let (w, _new, first, _) = paused_release(60.0, "10m").await;
    first.terminate();
    let first = first.finish(ENDS_WITHIN).await;
    assert_exit(&first, Code::Interrupted);
    let rec = w.last_record().await;
    assert_eq!(rec.outcome, RecordOutcome::Ended(Outcome::Interrupted));
    assert!(w.lock_is_free().await);
    // The rollback it asked for completes: production ends on the previous revision.
    w.eventually_all_on(OLD_SHA, Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_without_audit_records_uses_task_definition_history() {
    let (w, _new, out) = release_new(Options::no_bake(), &[]).await;
    assert_exit(&out, Code::Ok);
    w.assert_all_on(NEW_SHA).await;
    // An empty audit table (e.g. lost or never written): fall back to the revisions in ECS.
    let old = spawn_target(OLD_SHA, None).await;
    let out = w
        .deployer(&["rollback"], &old.url, &old.url)
        .env("DEPLOYER_ENVIRONMENTS__TEST__AUDIT_TABLE", "empty-audit")
        .run()
        .await;
    assert_exit(&out, Code::Ok);
    let err = stderr(&out);
    assert!(
        err.contains("task-definition history"),
        "says which source it used: {err}"
    );
    w.assert_all_on(OLD_SHA).await;
}

/// `--resume` acts only on this release's deployments: the deployer died while paused, then
/// someone else updated the service to another revision, whose deployment pauses in turn.
/// Resuming refuses it, says what differs, and continues nothing: the other pause stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_refuses_a_pause_that_is_not_its_releases() {
    let (w, new, first, ours) = paused_release(60.0, "10m").await;
    first.kill().await;
    let theirs_td = register(
        &w.ecs,
        "orchestrator",
        container("orchestrator", &format!("{}:{OLD_SHA}", w.repo_uri), 512)
            .essential(true)
            .build(),
        &[],
    )
    .await;
    w.ecs
        .update_service()
        .cluster(&w.cluster)
        .service("orchestrator")
        .task_definition(&theirs_td)
        .send()
        .await
        .expect("another actor's UpdateService");
    let theirs = eventually(
        "the other deployment paused",
        Duration::from_secs(30),
        || async {
            let deps = list_deployments(&w.ecs, &w.cluster, "orchestrator", true).await?;
            for d in deps.into_iter().filter(|d| d.arn != ours) {
                let v = describe_deployment(&w.ecs, &d.arn).await?;
                if v.awaiting_hook.is_some() {
                    return Ok(Some(d.arn));
                }
            }
            Ok(None)
        },
    )
    .await
    .unwrap();
    let resumed = w.run(&["release", "--resume"], &new.url).await;
    assert_exit(&resumed, Code::Superseded);
    assert_stderr_has(&resumed, "not resuming");
    assert_stderr_has(&resumed, "but the release recorded orchestrator:2");
    let v = describe_deployment(&w.ecs, &theirs).await.unwrap();
    assert!(
        v.awaiting_hook.is_some() && !v.is_terminal(),
        "the other deployment's pause was acted on: {:?}",
        v.status
    );
    let rec = w.last_record().await;
    assert_eq!(rec.outcome, RecordOutcome::Ended(Outcome::Superseded));
    assert!(w.lock_is_free().await);
}

/// `status --watch -o json` follows a running release: an event per change (the pause among
/// them), and it ends by itself once nothing is in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_watch_follows_a_release_to_its_end() {
    let (w, new, first, _) = paused_release(60.0, "10m").await;
    let watch = w.background(
        &["status", "--watch", "-o", "json", "--every", "1s"],
        &new.url,
    );
    let first = first.finish(ENDS_WITHIN).await;
    assert_exit(&first, Code::Ok);
    let out = watch.finish(Duration::from_secs(30)).await;
    assert_exit(&out, Code::Ok);
    let events: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let orchestrator: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["service"] == "orchestrator")
        .collect();
    assert!(
        orchestrator
            .iter()
            .any(|e| e["deployment"]["hook_id"].is_string()),
        "the pause was not among the events: {events:?}"
    );
    assert!(
        orchestrator
            .last()
            .is_some_and(|e| e["deployment"].is_null()),
        "the last event of the orchestrator is not the end of its deployment: {events:?}"
    );
}
