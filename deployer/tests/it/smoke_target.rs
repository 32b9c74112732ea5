//! The release tests' smoke targets are the real `platform orchestrator`, never a stand-in: a
//! target that cannot start fails the test with a message naming the missing piece and the fix.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::*;

/// An executable `platform` stand-in for the failure cases: a shell script.
fn fake_platform(dir: &Path, script: &str) -> PathBuf {
    let bin = dir.join("platform");
    std::fs::write(&bin, format!("#!/bin/sh\n{script}\n")).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

fn assert_names(err: &str, pieces: &[&str]) {
    for p in pieces {
        assert!(err.contains(p), "{p:?} is not in the error:\n{err}");
    }
}

/// Starting a target from a `platform` that runs `script` fails, and the error names `pieces`.
async fn start_fails(script: &str, ready_within: Duration, pieces: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let bin = fake_platform(dir.path(), script);
    match try_spawn_target(&bin, NEW_SHA, None, ready_within).await {
        Ok(t) => panic!("a target started from {} at {}", bin.display(), t.url),
        Err(e) => assert_names(&format!("{e:#}"), pieces),
    }
}

/// The target's health answer: HTTP status and body.
async fn health(t: &Target) -> (u16, serde_json::Value) {
    let resp = reqwest::get(format!("{}/api/v1/health", t.url))
        .await
        .unwrap_or_else(|e| panic!("{e}; stderr:\n{}", t.stderr_tail()));
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

#[tokio::test]
async fn smoke_target_is_the_real_platform_orchestrator() {
    let healthy = spawn_target(NEW_SHA, None).await;
    let (status, body) = health(&healthy).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "healthy", "{body}");
    assert_eq!(body["git_sha"], NEW_SHA, "{body}");
    // The checks are the orchestrator's own: its database and Redis, really connected.
    assert_eq!(body["checks"]["database"], "ok", "{body}");
    assert_eq!(body["checks"]["redis"], "ok", "{body}");

    let sick = spawn_target(NEW_SHA, Some("unhealthy")).await;
    let (status, body) = health(&sick).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "unhealthy", "{body}");
    assert_eq!(
        body["checks"]["fault"], "PLATFORM_FAULT=unhealthy",
        "{body}"
    );
}

#[tokio::test]
async fn a_release_test_fails_naming_the_unbuilt_platform_binary() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("platform");
    // What a release test does first: the helper panics, so the test fails, with the fix.
    let bin = missing.clone();
    let joined =
        tokio::spawn(async move { spawn_target_from(&bin, NEW_SHA, None).await.url }).await;
    let panic = joined.expect_err("a release test cannot pass without the platform binary");
    let payload = panic.into_panic();
    let msg = payload
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert_names(
        &msg,
        &[
            "the smoke target cannot start",
            &missing.display().to_string(),
            "does not exist",
            "cargo build -p platform --bins",
        ],
    );
}

#[tokio::test]
async fn an_orchestrator_that_exits_fails_with_its_stderr() {
    let script = r#"[ "$1" = migrate ] && exit 0
echo "orchestrator: cannot bind 127.0.0.1:$PORT: address in use" >&2
exit 3"#;
    let names = [
        "orchestrator` exited",
        "exit status: 3",
        "before answering",
        "cannot bind 127.0.0.1:",
        "address in use",
    ];
    start_fails(script, READY_WITHIN, &names).await;
}

#[tokio::test]
async fn an_orchestrator_that_never_answers_fails_after_the_deadline() {
    let script = r#"[ "$1" = migrate ] && exit 0
echo "orchestrator: waiting for something that never comes" >&2
exec sleep 60"#;
    let names = [
        "did not answer on http://127.0.0.1:",
        "/api/v1/health within 500ms",
        "waiting for something that never comes",
    ];
    start_fails(script, Duration::from_millis(500), &names).await;
}

#[tokio::test]
async fn a_failing_migration_fails_with_its_stderr() {
    let script = r#"echo "migration 0003 failed: relation exists" >&2
exit 1"#;
    let names = ["migrate` failed", "exit status: 1", "migration 0003 failed"];
    start_fails(script, READY_WITHIN, &names).await;
}
