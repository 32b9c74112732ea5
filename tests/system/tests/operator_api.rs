//! The operator's API against real processes: DLQ list and redrive, workflow retry, the live
//! event streams (resumed with Last-Event-ID), and the backlog metric in (moto's) CloudWatch.

mod common;

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use common::{HAPPY_PATH, KINDS, Platform, TOKEN, transitions};
use reqwest::Method;
use serde_json::Value;
use test_support::eventually;

#[tokio::test]
async fn a_dead_lettered_task_is_listed_and_redriven_once_and_its_workflow_completes()
-> anyhow::Result<()> {
    let mut p = Platform::new(&[
        ("PLATFORM_MAX_DELIVERIES", "2"),
        ("PLATFORM_VISIBILITY_TIMEOUT_MS", "300"),
    ])
    .await?;
    p.start_orchestrator().await?;
    let id = p.create_poisoned("poison").await?;
    p.start_all_agents()?;
    let failed = p
        .wait_exactly(&id, "failed", Duration::from_secs(30))
        .await?;
    let task_id = failed["tasks"][0]["id"]
        .as_str()
        .context("task id")?
        .to_owned();

    // Listed, with reason, delivery count, task and workflow.
    let unauth = p.http.get(p.url("/api/v1/dlq")).send().await?;
    assert_eq!(unauth.status(), 401, "the DLQ needs the token");
    let (s, dlq) = p.call(Method::GET, "/api/v1/dlq", None).await?;
    assert_eq!(s, 200, "{dlq}");
    let queues = dlq["dlq"].as_array().context("dlq array")?;
    assert_eq!(
        queues
            .iter()
            .map(|q| q["kind"].as_str().unwrap_or(""))
            .collect::<Vec<_>>(),
        KINDS,
        "one queue per kind"
    );
    let scaffold = &queues[0];
    assert_eq!(scaffold["length"], 1, "{scaffold}");
    let entry = &scaffold["entries"][0];
    assert!(
        entry["reason"]
            .as_str()
            .unwrap_or("")
            .contains("schema version 99"),
        "{entry}"
    );
    assert!(entry["deliveries"].as_u64().unwrap_or(0) >= 2, "{entry}");
    assert_eq!(entry["workflow_id"], id.as_str());
    assert_eq!(entry["task_id"], task_id.as_str());
    assert_eq!(entry["schema_version"], 99);
    let (s, one) = p
        .call(Method::GET, "/api/v1/dlq?kind=scaffold&limit=1", None)
        .await?;
    assert_eq!(
        (s, one["dlq"].as_array().map(Vec::len)),
        (200, Some(1)),
        "{one}"
    );
    let (s, _) = p.call(Method::GET, "/api/v1/dlq?kind=nope", None).await?;
    assert_eq!(s, 400);

    // Redrive: refused without the token, wrong ids are 4xx, then redriven exactly once.
    let entry_id = entry["id"].as_str().context("entry id")?.to_owned();
    let path = format!("/api/v1/dlq/scaffold/{entry_id}/redrive");
    let unauth = p.http.post(p.url(&path)).send().await?;
    assert_eq!(unauth.status(), 401);
    for (bad, code) in [
        ("/api/v1/dlq/scaffold/not-an-id/redrive", 400),
        ("/api/v1/dlq/scaffold/1-0/redrive", 404),
        (&format!("/api/v1/dlq/nope/{entry_id}/redrive"), 404),
    ] {
        let (s, v) = p.call(Method::POST, bad, None).await?;
        assert_eq!(s, code, "{bad}: {v}");
    }
    let (s, v) = p.call(Method::POST, &path, None).await?;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["changed"], true, "{v}");
    assert_eq!(v["state"], "scaffolding", "{v}");
    let (s, again) = p.call(Method::POST, &path, None).await?;
    assert_eq!(
        (s, &again["changed"]),
        (200, &Value::Bool(false)),
        "a repeated redrive changes nothing: {again}"
    );

    let w = p
        .wait_state(&id, "completed", Duration::from_secs(60))
        .await?;
    assert_eq!(
        transitions(&w),
        [
            "initiated",
            "scaffolding",
            "failed",
            "scaffolding",
            "validating",
            "e2e_testing",
            "integrating",
            "deploying",
            "completed"
        ]
    );
    let audit: Vec<&Value> = w["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["kind"] == "dlq_redriven")
        .collect();
    assert_eq!(audit.len(), 1, "one audit event: {audit:?}");
    assert_eq!(audit[0]["data"]["dlq_entry"], entry_id.as_str());
    assert_eq!(audit[0]["data"]["task_id"], task_id.as_str());
    let scaffold_tasks: Vec<&Value> = w["tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["stage"] == "scaffold")
        .collect();
    assert_eq!(scaffold_tasks.len(), 1, "the same task was reopened");
    assert_eq!(scaffold_tasks[0]["status"], "succeeded");
    assert_eq!(scaffold_tasks[0]["attempts"], 2);
    assert!(w["failure_reason"].is_null(), "{}", w["failure_reason"]);
    let (_, dlq) = p
        .call(Method::GET, "/api/v1/dlq?kind=scaffold", None)
        .await?;
    assert_eq!(dlq["dlq"][0]["length"], 0, "{dlq}");
    let (s, after) = p.call(Method::POST, &path, None).await?;
    assert_eq!(
        (s, &after["changed"]),
        (200, &Value::Bool(false)),
        "{after}"
    );
    Ok(())
}

#[tokio::test]
async fn retry_reruns_a_failed_workflow_from_its_failed_stage_once() -> anyhow::Result<()> {
    let mut p = Platform::new(&[]).await?;
    p.start_orchestrator().await?;
    p.start_all_agents()?;
    let id = p.create("flaky", "flaky-web").await?;
    let failed = p
        .wait_exactly(&id, "failed", Duration::from_secs(60))
        .await?;
    assert!(
        failed["failure_reason"]
            .as_str()
            .unwrap_or("")
            .contains("stage e2e failed"),
        "{}",
        failed["failure_reason"]
    );
    let path = format!("/api/v1/workflows/{id}/retry");
    let unauth = p.http.post(p.url(&path)).send().await?;
    assert_eq!(unauth.status(), 401);
    let (s, v) = p
        .call(
            Method::POST,
            "/api/v1/workflows/00000000-0000-0000-0000-000000000000/retry",
            None,
        )
        .await?;
    assert_eq!(s, 404, "{v}");

    // The operator fixes the cause, then retries; a repeated retry while it runs changes nothing.
    std::fs::write(p.work.join("flaky-ok"), "")?;
    let (s, v) = p.call(Method::POST, &path, None).await?;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (&v["changed"], &v["stage"], &v["attempt"]),
        (&Value::Bool(true), &Value::from("e2e"), &Value::from(2)),
        "{v}"
    );
    assert_eq!(v["workflow"]["state"], "e2e_testing");
    let (s, again) = p.call(Method::POST, &path, None).await?;
    assert_eq!(
        (s, &again["changed"]),
        (200, &Value::Bool(false)),
        "{again}"
    );

    let w = p
        .wait_state(&id, "completed", Duration::from_secs(60))
        .await?;
    assert_eq!(
        transitions(&w),
        [
            "initiated",
            "scaffolding",
            "validating",
            "e2e_testing",
            "failed",
            "e2e_testing",
            "integrating",
            "deploying",
            "completed"
        ]
    );
    let stages: Vec<(String, String)> = w["tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            (
                t["stage"].as_str().unwrap_or("").to_owned(),
                t["status"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let e2e: Vec<&str> = stages
        .iter()
        .filter(|(s, _)| s == "e2e")
        .map(|(_, st)| st.as_str())
        .collect();
    assert_eq!(
        e2e,
        ["failed", "succeeded"],
        "a new task for the retried stage: {stages:?}"
    );
    assert_eq!(
        stages.iter().filter(|(s, _)| s == "scaffold").count(),
        1,
        "earlier stages are not re-run"
    );
    let retried: Vec<&Value> = w["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["kind"] == "workflow_retried")
        .collect();
    assert_eq!(retried.len(), 1, "{retried:?}");
    assert_eq!(retried[0]["data"]["attempt"], 2);
    let (s, v) = p.call(Method::POST, &path, None).await?;
    assert_eq!(s, 409, "a completed workflow is not retried: {v}");
    Ok(())
}

/// Reads server-sent events from a response until `done` says so or the deadline passes.
async fn read_sse(
    mut r: reqwest::Response,
    timeout: Duration,
    mut done: impl FnMut(&[(i64, String, Value)]) -> bool,
) -> anyhow::Result<Vec<(i64, String, Value)>> {
    let deadline = Instant::now() + timeout;
    let mut buf = String::new();
    let mut events = Vec::new();
    while !done(&events) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!("timed out waiting for events; got {events:?}");
        }
        let Some(chunk) = tokio::time::timeout(left, r.chunk())
            .await
            .ok()
            .transpose()?
            .flatten()
        else {
            bail!("the event stream ended or stalled; got {events:?}");
        };
        buf.push_str(std::str::from_utf8(&chunk)?);
        while let Some(i) = buf.find("\n\n") {
            let block: String = buf.drain(..i + 2).collect();
            let (mut id, mut kind, mut data) = (None, String::new(), String::new());
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    id = Some(v.trim().parse::<i64>()?);
                } else if let Some(v) = line.strip_prefix("event:") {
                    kind = v.trim().to_owned();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim());
                }
            }
            if let Some(id) = id {
                events.push((id, kind, serde_json::from_str(&data)?));
            }
        }
    }
    Ok(events)
}

#[tokio::test]
async fn event_streams_deliver_every_transition_live_and_resume_after_last_event_id()
-> anyhow::Result<()> {
    let mut p = Platform::new(&[]).await?;
    p.start_orchestrator().await?;
    p.start_all_agents()?;
    let sse = reqwest::Client::new();
    let open = |path: &str, last: Option<i64>| {
        let mut rq = sse.get(p.url(path)).bearer_auth(TOKEN);
        if let Some(l) = last {
            rq = rq.header("Last-Event-ID", l.to_string());
        }
        rq.send()
    };
    let unauth = sse.get(p.url("/api/v1/events/stream")).send().await?;
    assert_eq!(unauth.status(), 401);
    let bad = open("/api/v1/events/stream", None).await?;
    assert_eq!(bad.status(), 200);
    assert_eq!(bad.headers()["content-type"], "text/event-stream");
    drop(bad);
    let r = sse
        .get(p.url("/api/v1/events/stream"))
        .bearer_auth(TOKEN)
        .header("Last-Event-ID", "x")
        .send()
        .await?;
    assert_eq!(r.status(), 400);

    // Opened before the workflow exists: every transition arrives as it commits.
    let global = open("/api/v1/events/stream", None).await?;
    let id = p.create("live", "static-web").await?;
    let wid = id.clone();
    let live = read_sse(global, Duration::from_secs(60), |evs| {
        evs.iter()
            .any(|(_, _, e)| e["workflow_id"] == wid.as_str() && e["to_state"] == "completed")
    })
    .await?;
    let ids: Vec<i64> = live.iter().map(|(i, _, _)| *i).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids increase, no duplicate: {ids:?}"
    );
    let w = p.workflow(&id).await?;
    let stored: Vec<i64> = w["events"]
        .as_array()
        .context("events")?
        .iter()
        .map(|e| e["id"].as_i64().unwrap_or(0))
        .collect();
    let streamed: Vec<i64> = live
        .iter()
        .filter(|(_, _, e)| e["workflow_id"] == id.as_str())
        .map(|(i, _, _)| *i)
        .collect();
    assert_eq!(
        streamed, stored,
        "the stream carried every event of the workflow, in order"
    );
    let states: Vec<&str> = live
        .iter()
        .filter(|(_, k, e)| k == "transition" && e["workflow_id"] == id.as_str())
        .map(|(_, _, e)| e["to_state"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(states, HAPPY_PATH);

    // The workflow's stream from its start, then resumed after its third event.
    let path = format!("/api/v1/workflows/{id}/events/stream");
    let n = stored.len();
    let all = read_sse(open(&path, None).await?, Duration::from_secs(20), |e| {
        e.len() >= n
    })
    .await?;
    assert_eq!(all.iter().map(|(i, _, _)| *i).collect::<Vec<_>>(), stored);
    let resumed = read_sse(
        open(&path, Some(stored[2])).await?,
        Duration::from_secs(20),
        |e| e.len() >= n - 3,
    )
    .await?;
    assert_eq!(
        resumed.iter().map(|(i, _, _)| *i).collect::<Vec<_>>(),
        stored[3..],
        "resumed after Last-Event-ID"
    );
    let global_resumed = read_sse(
        open("/api/v1/events/stream", Some(stored[n - 2])).await?,
        Duration::from_secs(20),
        |e| !e.is_empty(),
    )
    .await?;
    assert_eq!(global_resumed[0].0, stored[n - 1]);
    let (s, _) = p
        .call(
            Method::GET,
            "/api/v1/workflows/00000000-0000-0000-0000-000000000000/events/stream",
            None,
        )
        .await?;
    assert_eq!(s, 404);

    // A stop does not wait on open event streams: they end with it, well inside the grace.
    let mut open_stream = open("/api/v1/events/stream", None).await?;
    assert_eq!(open_stream.status(), 200);
    let started = Instant::now();
    let status = p
        .orchestrator
        .as_mut()
        .context("orchestrator")?
        .terminate(Duration::from_secs(7));
    let took = started.elapsed();
    assert!(
        status.is_some_and(|s| s.success()),
        "the orchestrator exits 0 on SIGTERM with a stream open: {status:?}"
    );
    assert!(
        took < Duration::from_secs(4),
        "stopped in {took:?} with a stream open"
    );
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(Some(_)) = open_stream.chunk().await {}
    })
    .await;
    assert!(ended.is_ok(), "the client sees the stream end");
    Ok(())
}

#[tokio::test]
async fn the_stream_backlog_is_published_to_cloudwatch_per_agent_kind() -> anyhow::Result<()> {
    use aws_sdk_cloudwatch::types::{Dimension, Statistic};
    let aws = test_support::aws().await?;
    let mut env: Vec<(String, String)> = aws
        .env()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    env.push((
        "PLATFORM_CLOUDWATCH_NAMESPACE".into(),
        "Agentic/Platform".into(),
    ));
    env.push(("PLATFORM_CLOUDWATCH_INTERVAL_MS".into(), "300".into()));
    let env_ref: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut p = Platform::new(&env_ref).await?;
    p.start_orchestrator().await?;
    // No agents: three scaffold tasks wait on their stream.
    for i in 0..3 {
        p.create(&format!("backlog-{i}"), "static-web").await?;
    }
    let cw = aws_sdk_cloudwatch::Client::new(&aws.config);
    let start = std::time::SystemTime::now() - Duration::from_secs(600);
    let max = eventually(
        "CloudWatch to hold a scaffold backlog of 3",
        Duration::from_secs(30),
        || async {
            let end = std::time::SystemTime::now() + Duration::from_secs(120);
            let stats = cw
                .get_metric_statistics()
                .namespace("Agentic/Platform")
                .metric_name("StreamBacklog")
                .dimensions(
                    Dimension::builder()
                        .name("AgentKind")
                        .value("scaffold")
                        .build(),
                )
                .start_time(start.into())
                .end_time(end.into())
                .period(60)
                .statistics(Statistic::Maximum)
                .send()
                .await
                .map_err(|e| {
                    anyhow::anyhow!(
                        "GetMetricStatistics: {}",
                        aws_sdk_cloudwatch::error::DisplayErrorContext(&e)
                    )
                })?;
            let max = stats
                .datapoints()
                .iter()
                .filter_map(|d| d.maximum())
                .fold(0f64, f64::max);
            Ok((max >= 3.0).then_some(max))
        },
    )
    .await?;
    assert_eq!(max, 3.0);
    let listed = cw
        .list_metrics()
        .namespace("Agentic/Platform")
        .metric_name("StreamBacklog")
        .send()
        .await?;
    let mut kinds: Vec<String> = listed
        .metrics()
        .iter()
        .map(|m| {
            let dims = m.dimensions();
            assert_eq!(dims.len(), 1, "one dimension: {dims:?}");
            assert_eq!(dims[0].name(), Some("AgentKind"));
            dims[0].value().unwrap_or("").to_owned()
        })
        .collect();
    kinds.sort();
    kinds.dedup();
    let mut want: Vec<String> = KINDS.iter().map(|k| k.to_string()).collect();
    want.sort();
    assert_eq!(kinds, want, "a series per agent kind");
    Ok(())
}
