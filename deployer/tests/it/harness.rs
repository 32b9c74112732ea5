//! The shared runner's own checks can fail: a run that prints a secret fails the test.

use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::support::*;

#[test]
fn the_runner_fails_a_run_that_prints_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    for (secret, what) in [
        (SECRET, "the API token"),
        (WEBHOOK, "the webhook URL"),
        (TOKEN, "the release tests' API token"),
    ] {
        // clap echoes an unexpected argument on stderr: the secret is printed.
        let run = catch_unwind(AssertUnwindSafe(|| {
            Deployer::new(dir.path(), &["render", secret]).output()
        }));
        let panic = run.expect_err("a printed secret must fail the run");
        let msg = panic.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(
            msg.contains(&format!("{what} leaked into the output")),
            "{msg}"
        );
    }
}
