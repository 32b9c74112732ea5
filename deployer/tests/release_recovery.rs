//! Recovery paths, with real processes: the deploy lock against a concurrent release, the ECS
//! hook timeout after the deployer is SIGKILLed while paused, `--resume` from a second process,
//! and `deployer rollback` in flight and after success.

mod release_support;

use std::time::Duration;

use release_support::*;
use test_support::eventually;

const RELEASE: &[&str] = &["release", "--git-sha", NEW_SHA];

fn background(w: &World, args: &[&str], test_url: &str, prod_url: &str) -> tokio::process::Child {
    tokio::process::Command::from(w.deployer(args, test_url, prod_url))
        .kill_on_drop(true)
        .spawn()
        .expect("spawn deployer")
}

/// Waits until the orchestrator's deployment is paused at a hook; returns its ARN.
async fn paused(w: &World) -> String {
    eventually(
        "orchestrator paused at its hook",
        Duration::from_secs(30),
        || async {
            let deps =
                deployer::aws::ecs::list_deployments(&w.ecs, &w.cluster, "orchestrator", true)
                    .await?;
            for d in deps {
                let arn = d.arn;
                let v = deployer::aws::ecs::describe(&w.ecs, &arn).await?;
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

/// A smoke gate that takes a few seconds to pass (many consecutive successes), so a test can
/// act while the release is paused.
fn slow_gate(minute_seconds: f64, hook_timeout: &'static str) -> Options {
    Options {
        consecutive_successes: 30,
        bake: "0s",
        minute_seconds,
        hook_timeout,
        ..Options::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_release_fails_fast_naming_the_holder() {
    let w = World::new(slow_gate(60.0, "10m")).await;
    let new = spawn_target(NEW_SHA, None).await;
    let mut first = background(&w, RELEASE, &new.url, &new.url);
    paused(&w).await;
    let second = w.run(RELEASE, &new.url, &new.url).await;
    assert_eq!(code(&second), 13, "{}", stderr(&second));
    let err = stderr(&second);
    assert!(
        err.contains("held by") && err.contains(NEW_SHA) && err.contains("--wait-lock"),
        "{err}"
    );
    let status = tokio::time::timeout(Duration::from_secs(60), first.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    w.assert_all_on(NEW_SHA).await;
    assert!(w.lock_is_free().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hook_timeout_rolls_back_after_the_deployer_is_killed_and_resume_records_it() {
    // One configured minute lasts 2 s: the 1-minute hook timeout fires 2 s after the pause.
    let w = World::new(slow_gate(2.0, "1m")).await;
    let new = spawn_target(NEW_SHA, None).await;
    let mut first = background(&w, RELEASE, &new.url, &new.url);
    let arn = paused(&w).await;
    first.start_kill().unwrap();
    let _ = first.wait().await;
    // ECS's safety net: the hook's timeout action (ROLLBACK).
    let ended = eventually(
        "ECS rolls back on hook timeout",
        Duration::from_secs(30),
        || async {
            let v = deployer::aws::ecs::describe(&w.ecs, &arn).await?;
            Ok(v.is_terminal().then_some(v))
        },
    )
    .await
    .unwrap();
    assert_eq!(ended.status.as_str(), "ROLLBACK_SUCCESSFUL");
    assert!(ended.ecs_failure().unwrap().contains("timed out"));
    let resumed = w.run(&["release", "--resume"], &new.url, &new.url).await;
    assert_eq!(code(&resumed), 11, "{}", stderr(&resumed));
    let status = w.run(&["status"], &new.url, &new.url).await;
    assert_eq!(code(&status), 0);
    assert!(String::from_utf8_lossy(&status.stdout).contains("lock: free"));
    w.assert_all_on(OLD_SHA).await;
    let h = w.history().await;
    assert_eq!(h[0]["outcome"], "rolled_back_ecs");
    assert!(
        h[0]["reason"].as_str().unwrap().contains("timed out"),
        "{}",
        h[0]["reason"]
    );
    assert!(w.lock_is_free().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_from_a_second_process_completes_a_paused_release() {
    let w = World::new(slow_gate(60.0, "10m")).await;
    let new = spawn_target(NEW_SHA, None).await;
    let mut first = background(&w, RELEASE, &new.url, &new.url);
    paused(&w).await;
    first.start_kill().unwrap();
    let _ = first.wait().await;
    let second = w.run(&["release", "--resume"], &new.url, &new.url).await;
    assert_eq!(code(&second), 0, "{}", stderr(&second));
    assert!(stderr(&second).contains("re-attaching"));
    w.assert_all_on(NEW_SHA).await;
    let h = w.history().await;
    assert_eq!(h.len(), 1, "the same release, finished");
    assert_eq!(h[0]["outcome"], "succeeded");
    assert!(w.lock_is_free().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_of_an_in_flight_release() {
    let w = World::new(slow_gate(60.0, "10m")).await;
    let new = spawn_target(NEW_SHA, None).await;
    let mut first = background(&w, RELEASE, &new.url, &new.url);
    paused(&w).await;
    let rb = w.run(&["rollback"], &new.url, &new.url).await;
    assert_eq!(code(&rb), 0, "{}", stderr(&rb));
    assert!(stderr(&rb).contains("ROLLBACK"));
    let status = tokio::time::timeout(Duration::from_secs(60), first.wait())
        .await
        .unwrap()
        .unwrap();
    assert_ne!(
        status.code(),
        Some(0),
        "the interrupted release does not report success"
    );
    w.assert_all_on(OLD_SHA).await;
    assert!(w.lock_is_free().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_after_success_to_previous_and_to_a_named_sha() {
    let w = World::new(Options {
        bake: "0s",
        ..Options::default()
    })
    .await;
    let shas = [
        NEW_SHA,
        "3333333333333333333333333333333333333ddd",
        "4444444444444444444444444444444444444eee",
    ];
    let mut targets = Vec::new();
    for sha in shas {
        if sha != NEW_SHA {
            put_image(&w.ecr, sha).await;
        }
        let t = spawn_target(sha, None).await;
        let out = w.run(&["release", "--git-sha", sha], &t.url, &t.url).await;
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        targets.push(t);
    }
    w.assert_all_on(shas[2]).await;
    // Previous successful release: the gate proves the old version answers.
    let out = w.run(&["rollback"], &targets[1].url, &targets[1].url).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stderr(&out).contains("audit"), "says which source it used");
    w.assert_all_on(shas[1]).await;
    // A named git sha (short form).
    let out = w
        .run(
            &["rollback", "--to", &shas[0][..10]],
            &targets[0].url,
            &targets[0].url,
        )
        .await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    w.assert_all_on(shas[0]).await;
    let h = w.history().await;
    assert_eq!(h[0]["kind"], "rollback");
    assert_eq!(h[0]["git_sha"], shas[0]);
    assert!(w.lock_is_free().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_paused_rolls_back_and_releases_the_lock() {
    let w = World::new(slow_gate(60.0, "10m")).await;
    let new = spawn_target(NEW_SHA, None).await;
    let mut first = background(&w, RELEASE, &new.url, &new.url);
    paused(&w).await;
    let pid = first.id().expect("running");
    let _ = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
    let status = tokio::time::timeout(Duration::from_secs(60), first.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(15), "interrupted");
    let h = w.history().await;
    assert_eq!(h[0]["outcome"], "interrupted");
    assert!(w.lock_is_free().await);
    // The rollback it asked for completes: production ends on the previous revision.
    eventually(
        "production back on the old revision",
        Duration::from_secs(30),
        || async {
            let shas = w.running_shas().await;
            Ok(shas.iter().all(|(_, s)| s == OLD_SHA).then_some(()))
        },
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_without_audit_records_uses_task_definition_history() {
    let w = World::new(Options {
        bake: "0s",
        ..Options::default()
    })
    .await;
    let new = spawn_target(NEW_SHA, None).await;
    let out = w.run(RELEASE, &new.url, &new.url).await;
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    w.assert_all_on(NEW_SHA).await;
    // An empty audit table (e.g. lost or never written): fall back to the revisions in ECS.
    let old = spawn_target(OLD_SHA, None).await;
    let mut cmd = w.deployer(&["rollback"], &old.url, &old.url);
    cmd.env("DEPLOYER_ENVIRONMENTS__TEST__AUDIT_TABLE", "empty-audit");
    let out = tokio::process::Command::from(cmd).output().await.unwrap();
    let err = stderr(&out);
    eprintln!("{err}");
    assert_eq!(code(&out), 0, "{err}");
    assert!(
        err.contains("task-definition history"),
        "says which source it used: {err}"
    );
    w.assert_all_on(OLD_SHA).await;
}
