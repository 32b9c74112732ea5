//! With `-o json`, a failing command prints one JSON object on stdout carrying an `error`
//! object (message, hint, exit code), whichever command it is: the release-side commands did
//! not (a failing `rollback` printed only `"outcome":"failed"`, the reason only on stderr).

use serde_json::Value;

use crate::support::*;

/// The one JSON object on stdout, with its `error` object naming `want`.
#[track_caller]
fn json_error(out: &std::process::Output, want: Code) -> Value {
    assert_exit(out, want);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON object ({e}):\n{}\n--- stderr\n{}",
            stdout(out),
            stderr(out)
        )
    });
    assert_eq!(v["error"]["exit_code"], want as u8, "{v:#}");
    let message = v["error"]["message"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "the error says what went wrong: {v:#}");
    assert!(
        stderr(out).contains(message.lines().next().unwrap_or_default()),
        "stderr says the same:\n{}",
        stderr(out)
    );
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_release_side_commands_print_the_json_error_object() {
    let w = World::new(Options::no_bake()).await;
    let json = ["-o", "json"];

    // release: the test listener serves the old version → rolled back (10), with the run
    // summary and the error in one object.
    let wrong = spawn_target(OLD_SHA, None).await;
    let out = w.run(&[RELEASE, &json[..]].concat(), &wrong.url).await;
    let v = json_error(&out, Code::RolledBackSmoke);
    assert_eq!(v["outcome"], "rolled_back_smoke", "{v:#}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("/git_sha"),
        "the reason names the failed assertion: {v:#}"
    );

    // rollback to a sha no release had: a usage error (3).
    let out = w
        .run(
            &["rollback", "--to", "deadbeefdeadbeef", "-o", "json"],
            &wrong.url,
        )
        .await;
    let v = json_error(&out, Code::Config);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("deadbeefdeadbeef"),
        "{v:#}"
    );

    // status, history, lock status against an endpoint that does not answer: AWS errors (5).
    let closed = format!("http://127.0.0.1:{}", test_support::free_port());
    for args in [vec!["status"], vec!["history"], vec!["lock", "status"]] {
        let mut args = args;
        args.extend(["--endpoint-url", closed.as_str(), "-o", "json"]);
        let out = w.run(&args, &wrong.url).await;
        json_error(&out, Code::Aws);
    }

    // lock release without --force: refused (3), with the hint.
    let out = w.run(&["lock", "release", "-o", "json"], &wrong.url).await;
    let v = json_error(&out, Code::Config);
    assert!(
        v["error"]["hint"].as_str().unwrap().contains("lock status"),
        "{v:#}"
    );
}
