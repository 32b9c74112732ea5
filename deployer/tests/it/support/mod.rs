//! What every deployer integration test shares: the one way to run the `deployer` CLI (a scrubbed
//! environment, secrets in it, none of them in any output), the moto fixtures, the release
//! tests' seeded account (`World`), and smoke targets that are the real `platform orchestrator`.
#![allow(dead_code)]

mod fixtures;
mod runner;
mod target;
mod world;

use std::process::Output;

pub use fixtures::*;
pub use runner::*;
pub use target::*;
pub use world::*;

/// Every deployer library item the tests use, in one place: when the library moves an item,
/// this block is the one edit.
pub use aws_sdk_ecs::types::{ServiceDeploymentLifecycleStage, ServiceDeploymentStatus};
pub use deployer::{
    aws::ecs::{
        DeploymentView, continue_hook, describe as describe_deployment, list_deployments,
        roll_back_in_flight,
    },
    aws::follow::{Found, find_deployment},
    engine::median,
    exit::Code,
    state::audit::{RecordOutcome, ReleaseKind, ReleaseRecord},
    state::outcome::Outcome,
    taskdef::{from_json as taskdef_from_json, register_request},
};

/// The process's exit code (-1 when a signal ended it).
pub fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

/// Fails, with the whole output, unless the run exited with `want`.
#[track_caller]
pub fn assert_exit(out: &Output, want: Code) {
    assert_eq!(
        code(out),
        want as i32,
        "expected exit code {want:?} ({})\n--- stdout\n{}\n--- stderr\n{}",
        want as i32,
        stdout(out),
        stderr(out)
    );
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Fails with the whole stderr when `needle` is not in it.
#[track_caller]
pub fn assert_stderr_has(out: &Output, needle: &str) {
    let err = stderr(out);
    assert!(err.contains(needle), "stderr lacks {needle:?}:\n{err}");
}
