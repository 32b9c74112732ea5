//! Notifications reach a real HTTP receiver (a Slack-compatible webhook endpoint on a loopback
//! port) at every pause and at the end, say what a reader needs, and carry no secret.

use std::sync::{Arc, Mutex};

use crate::support::*;

const ORCHESTRATOR_ONLY: &[Service] = &[Service {
    name: "orchestrator",
    kind: "blue_green",
}];

/// The secret part of the webhook URL (as in Slack's `/services/T…/B…/<secret>`).
const URL_SECRET: &str = "rcvr-url-secret-0f3a9";

/// An HTTP server that records every JSON body posted to its webhook path.
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<serde_json::Value>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn receiver() -> Receiver {
    let got: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let store = got.clone();
    let app = axum::Router::new().route(
        &format!("/services/T1/B1/{URL_SECRET}"),
        axum::routing::post(move |axum::Json(body): axum::Json<serde_json::Value>| {
            let store = store.clone();
            async move {
                store.lock().unwrap().push(body);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Receiver {
        url: format!("http://127.0.0.1:{port}/services/T1/B1/{URL_SECRET}"),
        got,
        task,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pauses_and_the_outcome_are_posted_without_secrets() {
    let rcv = receiver().await;
    let opts = Options {
        migration: false,
        extra_toml: "\n[environments.test.notifications]\nwebhook_url_env = \"RELEASE_TEST_WEBHOOK\"\n",
        ..Options::no_bake()
    };
    let w = World::with_services(opts, ORCHESTRATOR_ONLY).await;
    let new = spawn_target(NEW_SHA, None).await;
    let out = w
        .deployer(RELEASE, &new.url, &new.url)
        .env("RELEASE_TEST_WEBHOOK", &rcv.url)
        .run()
        .await;
    assert_exit(&out, Code::Ok);
    // Posted before the process exited (a pause's post is awaited before the outcome's), in
    // the order they happened: the outcome last.
    let texts: Vec<String> = rcv
        .got
        .lock()
        .unwrap()
        .iter()
        .map(|b| b["text"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(
        texts.len() >= 2
            && texts
                .last()
                .is_some_and(|t| t.starts_with(":white_check_mark:")),
        "a pause and then the outcome: {texts:?}"
    );
    let pause = texts
        .iter()
        .find(|t| t.starts_with(":pause_button:"))
        .unwrap_or_else(|| panic!("no pause notification: {texts:?}"));
    for want in [
        "orchestrator paused at POST_TEST_TRAFFIC_SHIFT",
        "until 20",
        "then ECS will ROLLBACK",
        "`deployer release --env test --resume`",
        "`deployer rollback --env test`",
    ] {
        assert!(pause.contains(want), "{want:?} not in {pause}");
    }
    let end = texts
        .iter()
        .find(|t| t.starts_with(":white_check_mark:"))
        .unwrap_or_else(|| panic!("no outcome notification: {texts:?}"));
    assert!(
        end.contains("succeeded") && end.contains("hook-to-action p50"),
        "{end}"
    );
    for t in &texts {
        for secret in [URL_SECRET, SECRET, TOKEN] {
            assert!(!t.contains(secret), "a secret in a notification: {t}");
        }
    }
    assert!(!stderr(&out).contains(URL_SECRET) && !stdout(&out).contains(URL_SECRET));
}
