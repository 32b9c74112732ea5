//! The platform end to end: a real orchestrator and real agent processes (`platform` binary) on
//! a fresh Postgres database and a private Redis key prefix (or a private Redis server).

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context;
use common::*;
use serde_json::{Value, json};
use test_support::{ChildGuard, eventually};

#[tokio::test]
async fn workflow_completes_through_five_agent_processes_with_events_in_order() -> anyhow::Result<()>
{
    let mut p = Platform::new(&[]).await?;
    p.start_orchestrator().await?;
    p.start_all_agents()?;
    let agents = eventually(
        "five registered agents",
        Duration::from_secs(20),
        || async {
            let (_, v) = p.call(reqwest::Method::GET, "/api/v1/agents", None).await?;
            let list = v["agents"].as_array().cloned().unwrap_or_default();
            Ok((list.len() == 5).then_some(list))
        },
    )
    .await?;
    let mut kinds: Vec<&str> = agents
        .iter()
        .map(|a| a["kind"].as_str().unwrap_or(""))
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        ["deployment", "e2e", "integration", "scaffold", "validation"]
    );
    assert!(
        agents
            .iter()
            .all(|a| a["version"] == "0.1.0" && a["last_heartbeat"].is_string())
    );

    let id = p.create("shop", "static-web").await?;
    let w = p
        .wait_state(&id, "completed", Duration::from_secs(60))
        .await?;
    assert_eq!(transitions(&w), HAPPY_PATH);
    for k in KINDS {
        assert_eq!(
            task(&w, k)["status"],
            "succeeded",
            "task {k}: {}",
            task(&w, k)
        );
        assert_eq!(task(&w, k)["agent_id"], format!("{k}-1"));
    }
    // Real work happened: tests ran, a commit was merged into main, a task definition rendered.
    assert!(
        w["context"]["e2e"]["output_tail"]
            .as_str()
            .unwrap_or("")
            .contains("ok: shop passes")
    );
    let commit = w["context"]["integration"]["commit"]
        .as_str()
        .context("integration commit")?;
    let repo = p.work.join("apps.git");
    let out = Command::new("git")
        .args(["-C"])
        .arg(&repo)
        .args(["merge-base", "--is-ancestor", commit, "main"])
        .status()?;
    assert!(out.success(), "the workflow's commit is merged into main");
    let branch = Command::new("git")
        .arg("-C")
        .arg(&repo)
        .args(["rev-parse", &format!("workflow/{id}")])
        .output()?;
    assert_eq!(String::from_utf8_lossy(&branch.stdout).trim(), commit);
    assert_eq!(w["context"]["deployment"]["rendered_by"], "deployer");
    let td = &w["context"]["deployment"]["task_definition"];
    assert_eq!(td["family"], "app-shop");
    assert_eq!(
        td["containerDefinitions"][0]["portMappings"][0]["containerPort"],
        8080
    );

    // Listing with filters and keyset pagination.
    let second = p.create("blog", "static-web").await?;
    p.wait_state(&second, "completed", Duration::from_secs(60))
        .await?;
    let (_, page1) = p
        .call(
            reqwest::Method::GET,
            "/api/v1/workflows?status=completed&limit=1",
            None,
        )
        .await?;
    assert_eq!(page1["workflows"][0]["id"], second.as_str());
    let cursor = page1["next_cursor"].as_str().context("next_cursor")?;
    let (_, page2) = p
        .call(
            reqwest::Method::GET,
            &format!("/api/v1/workflows?status=completed&limit=1&cursor={cursor}"),
            None,
        )
        .await?;
    assert_eq!(page2["workflows"][0]["id"], id.as_str());
    assert!(page2["next_cursor"].is_null());
    let (_, none) = p
        .call(reqwest::Method::GET, "/api/v1/workflows?type=bugfix", None)
        .await?;
    assert_eq!(none["workflows"], json!([]));

    // Graceful stop deregisters.
    let status = p
        .agent("scaffold-1")
        .terminate(Duration::from_secs(10))
        .context("agent exits on SIGTERM")?;
    assert!(status.success(), "agent exit status {status}");
    let metrics = p.http.get(p.url("/metrics")).send().await?.text().await?;
    assert!(
        metrics.contains("platform_workflows{state=\"completed\"} 2"),
        "{metrics}"
    );
    assert!(metrics.contains("platform_stage_duration_seconds_count{stage=\"e2e\"} 2"));
    Ok(())
}

#[tokio::test]
async fn sigkill_of_an_agent_holding_a_task_is_recovered_by_another_agent() -> anyhow::Result<()> {
    let mut p = Platform::new(&[]).await?;
    p.start_orchestrator().await?;
    for k in ["scaffold", "validation", "integration", "deployment"] {
        p.start_agent(k, &format!("{k}-1"), &[])?;
    }
    p.start_agent("e2e", "e2e-victim", &[])?;
    let id = p.create("slow", "slow-web").await?;
    eventually(
        "the e2e agent to hold the task",
        Duration::from_secs(30),
        || async {
            let (_, v) = p.call(reqwest::Method::GET, "/api/v1/agents", None).await?;
            Ok(v["agents"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|a| a["id"] == "e2e-victim" && a["in_flight_task"].is_string())
                .then_some(()))
        },
    )
    .await?;
    p.agent("e2e-victim").kill();
    let killed = Instant::now();
    p.start_agent("e2e", "e2e-rescuer", &[])?;
    let w = p
        .wait_state(&id, "completed", Duration::from_secs(60))
        .await?;
    eprintln!(
        "dead-agent recovery: workflow completed {:?} after SIGKILL",
        killed.elapsed()
    );
    assert_eq!(task(&w, "e2e")["agent_id"], "e2e-rescuer");
    assert_eq!(transitions(&w), HAPPY_PATH);
    Ok(())
}

/// SIGTERM stops the orchestrator within its shutdown timeout whatever its clients do: no
/// client, an idle keep-alive connection, a request still in flight (a body that never
/// arrives). ECS and compose SIGKILL a task that outlives its stop timeout.
#[tokio::test]
async fn orchestrator_stops_on_sigterm_within_its_shutdown_timeout() -> anyhow::Result<()> {
    use std::io::{Read, Write};
    const TIMEOUT_MS: u64 = 2000;
    let timeout = Duration::from_millis(TIMEOUT_MS);
    let mut p = Platform::new(&[("PLATFORM_SHUTDOWN_TIMEOUT_MS", "2000")]).await?;
    let stop = |p: &mut Platform, case: &str| -> anyhow::Result<Duration> {
        let started = Instant::now();
        let status = p
            .orchestrator
            .as_mut()
            .context("orchestrator running")?
            .terminate(timeout + Duration::from_secs(5))
            .with_context(|| {
                format!(
                    "{case}: the orchestrator was still running {:?} after SIGTERM",
                    timeout + Duration::from_secs(5)
                )
            })?;
        assert!(status.success(), "{case}: exit status {status}");
        Ok(started.elapsed())
    };

    p.start_orchestrator().await?;
    let took = stop(&mut p, "no client")?;
    assert!(took < timeout, "no client: stopped in {took:?}");

    p.start_orchestrator().await?;
    let mut idle = std::net::TcpStream::connect(("127.0.0.1", p.port))?;
    idle.write_all(b"GET /api/v1/health HTTP/1.1\r\nHost: orchestrator\r\n\r\n")?;
    idle.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut buf = [0u8; 512];
    let n = idle.read(&mut buf)?;
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    let took = stop(&mut p, "idle keep-alive client")?;
    assert!(
        took < timeout,
        "an idle keep-alive connection held the stop: {took:?}"
    );

    p.start_orchestrator().await?;
    let mut stalled = std::net::TcpStream::connect(("127.0.0.1", p.port))?;
    stalled.write_all(
        format!(
            "POST /api/v1/workflows HTTP/1.1\r\nHost: orchestrator\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{{\"type\""
        )
        .as_bytes(),
    )?;
    // A full request answered on another connection after the stalled one was sent: the server
    // has read the stalled request's head by then (its handler waits for the body).
    test_support::wait_http_ok(&p.url("/api/v1/health"), Duration::from_secs(5)).await?;
    let took = stop(&mut p, "request in flight")?;
    // Waited for the request (graceful), then closed it at the timeout (bounded).
    assert!(
        took >= timeout / 2 && took < timeout + Duration::from_secs(3),
        "with a request in flight the stop took {took:?} (shutdown timeout {timeout:?})"
    );
    stalled.set_read_timeout(Some(Duration::from_secs(5)))?;
    let end = stalled.read(&mut buf);
    assert!(
        matches!(end, Ok(0)) || end.is_err() || buf.starts_with(b"HTTP/1.1"),
        "the stalled connection ended: {end:?}"
    );
    Ok(())
}

#[tokio::test]
async fn sigterm_hands_back_a_task_that_outlives_the_stop_timeout() -> anyhow::Result<()> {
    let mut p = Platform::new(&[]).await?;
    p.start_orchestrator().await?;
    for k in ["scaffold", "validation", "integration", "deployment"] {
        p.start_agent(k, &format!("{k}-1"), &[])?;
    }
    p.start_agent(
        "e2e",
        "e2e-leaving",
        &[("PLATFORM_VISIBILITY_TIMEOUT_MS", "600000")],
    )?;
    let id = p.create("slow", "slow-web").await?;
    eventually(
        "the e2e agent to hold the task",
        Duration::from_secs(30),
        || async {
            let (_, v) = p.call(reqwest::Method::GET, "/api/v1/agents", None).await?;
            Ok(v["agents"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|a| a["id"] == "e2e-leaving" && a["in_flight_task"].is_string())
                .then_some(()))
        },
    )
    .await?;
    let status = p
        .agent("e2e-leaving")
        .terminate(Duration::from_secs(10))
        .context("agent stops within the stop timeout")?;
    assert!(status.success());
    // Handed back: a successor picks it up at once, not after the (here huge) visibility timeout.
    p.start_agent(
        "e2e",
        "e2e-successor",
        &[("PLATFORM_VISIBILITY_TIMEOUT_MS", "600000")],
    )?;
    let w = p
        .wait_state(&id, "completed", Duration::from_secs(60))
        .await?;
    assert_eq!(task(&w, "e2e")["agent_id"], "e2e-successor");
    Ok(())
}

#[tokio::test]
async fn orchestrator_restart_mid_workflow_still_completes() -> anyhow::Result<()> {
    let mut p = Platform::new(&[]).await?;
    p.start_orchestrator().await?;
    p.start_all_agents()?;
    let id = p.create("restart", "slow-web").await?;
    p.wait_state(&id, "e2e_testing", Duration::from_secs(30))
        .await?;
    p.orchestrator.as_mut().expect("running").kill();
    // The e2e result lands while no orchestrator runs.
    tokio::time::sleep(Duration::from_millis(10)).await;
    p.start_orchestrator().await?;
    let w = p
        .wait_state(&id, "completed", Duration::from_secs(60))
        .await?;
    assert_eq!(transitions(&w), HAPPY_PATH);
    Ok(())
}

#[tokio::test]
async fn redis_restart_with_aof_loses_no_workflow() -> anyhow::Result<()> {
    let port = test_support::free_port();
    let dir = std::env::temp_dir().join(test_support::unique("redis-"));
    std::fs::create_dir_all(&dir)?;
    let start_redis = || -> anyhow::Result<ChildGuard> {
        let mut c = Command::new("redis-server");
        c.args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--appendonly",
            "yes",
            "--save",
            "",
            "--dir",
        ])
        .arg(&dir)
        .stdout(std::process::Stdio::null());
        ChildGuard::spawn("redis-server", &mut c)
            .context("starting redis-server (apt-get install redis-server)")
    };
    let mut redis = start_redis()?;
    let url = format!("redis://127.0.0.1:{port}");
    eventually("private redis up", Duration::from_secs(10), || async {
        let mut c = redis::Client::open(url.as_str())?
            .get_multiplexed_async_connection()
            .await?;
        let _: String = redis::cmd("PING").query_async(&mut c).await?;
        Ok(Some(()))
    })
    .await?;
    // A short task timeout lets the sweeper re-dispatch anything the last AOF second lost.
    let mut p = Platform::with_redis(
        url.clone(),
        test_support::unique("t"),
        &[("PLATFORM_TASK_TIMEOUT_MS", "15000")],
    )
    .await?;
    p.start_orchestrator().await?;
    p.start_all_agents()?;
    let mut ids = Vec::new();
    for i in 0..4 {
        let template = if i < 2 { "slow-web" } else { "static-web" };
        ids.push(p.create(&format!("r{i}"), template).await?);
    }
    p.wait_state(&ids[0], "e2e_testing", Duration::from_secs(30))
        .await?;
    redis.kill();
    redis = start_redis()?;
    for i in 4..6 {
        // The API answers while Redis is back or comes back: creation only needs Postgres.
        ids.push(p.create(&format!("r{i}"), "static-web").await?);
    }
    for id in &ids {
        p.wait_state(id, "completed", Duration::from_secs(90))
            .await?;
    }
    drop(redis);
    Ok(())
}

#[tokio::test]
async fn poison_task_lands_in_the_dlq_and_fails_its_workflow_with_the_reason() -> anyhow::Result<()>
{
    use redis::AsyncCommands;
    let mut p = Platform::new(&[
        ("PLATFORM_MAX_DELIVERIES", "2"),
        ("PLATFORM_VISIBILITY_TIMEOUT_MS", "300"),
    ])
    .await?;
    p.start_orchestrator().await?;
    let id = p.create("poison", "static-web").await?;
    let stream = p.key("stream:agent:scaffold:tasks");
    let mut r = p.redis().await?;
    // Replace the dispatched envelope with one of a schema this build cannot read (the seed
    // system's failure: agents of another build receiving envelopes they do not understand).
    let (entry_id, body) = eventually(
        "the scaffold task on the stream",
        Duration::from_secs(20),
        || {
            let mut r = r.clone();
            let stream = stream.clone();
            async move {
                let entries: redis::streams::StreamRangeReply = r.xrange_all(&stream).await?;
                Ok(entries.ids.first().map(|e| {
                    (
                        e.id.clone(),
                        e.get::<String>("envelope").unwrap_or_default(),
                    )
                }))
            }
        },
    )
    .await?;
    let mut env: Value = serde_json::from_str(&body)?;
    env["schema_version"] = json!(99);
    let _: i64 = r.xdel(&stream, &[&entry_id]).await?;
    let _: String = r
        .xadd(&stream, "*", &[("envelope", env.to_string())])
        .await?;
    p.start_agent("scaffold", "scaffold-1", &[])?;
    let w = eventually("the workflow to fail", Duration::from_secs(30), || async {
        let w = p.workflow(&id).await?;
        Ok((w["state"] == "failed").then_some(w))
    })
    .await?;
    let reason = w["failure_reason"].as_str().unwrap_or("");
    assert!(
        reason.contains("dead-letter") && reason.contains("schema version 99"),
        "{reason}"
    );
    let dlq: i64 = r.xlen(p.key("stream:agent:scaffold:dlq")).await?;
    assert_eq!(dlq, 1);
    assert_eq!(transitions(&w), ["initiated", "scaffolding", "failed"]);
    Ok(())
}

#[tokio::test]
async fn cancel_mid_run_ends_cancelled_and_the_late_result_is_ignored() -> anyhow::Result<()> {
    let mut p = Platform::new(&[]).await?;
    p.start_orchestrator().await?;
    p.start_all_agents()?;
    let id = p.create("cancelme", "slow-web").await?;
    p.wait_state(&id, "e2e_testing", Duration::from_secs(30))
        .await?;
    let (s, v) = p
        .call(
            reqwest::Method::POST,
            &format!("/api/v1/workflows/{id}/cancel"),
            None,
        )
        .await?;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["state"], "cancelled");
    let (s, v) = p
        .call(
            reqwest::Method::POST,
            &format!("/api/v1/workflows/{id}/cancel"),
            None,
        )
        .await?;
    assert_eq!(s, 409, "{v}");
    assert_eq!(v["error"]["code"], "conflict");
    // The e2e agent finishes its run and reports; the orchestrator must ignore it.
    eventually(
        "the late e2e result to be consumed",
        Duration::from_secs(30),
        || async {
            let m = p.http.get(p.url("/metrics")).send().await?.text().await?;
            Ok(m.contains("platform_results_total{outcome=\"ignored\"} 1")
                .then_some(()))
        },
    )
    .await?;
    let w = p.workflow(&id).await?;
    assert_eq!(w["state"], "cancelled");
    assert_eq!(
        transitions(&w),
        [
            "initiated",
            "scaffolding",
            "validating",
            "e2e_testing",
            "cancelled"
        ]
    );
    assert_eq!(task(&w, "e2e")["status"], "cancelled");
    assert!(task(&w, "integration").is_null(), "no later stage started");
    Ok(())
}

#[tokio::test]
async fn bad_input_gets_4xx_json_errors() -> anyhow::Result<()> {
    let mut p = Platform::new(&[]).await?;
    p.start_orchestrator().await?;
    let wf = p.url("/api/v1/workflows");
    let c = &p.http;
    // The server answers 413 before it has read the whole body and then closes that
    // connection; a pooled client could hand the dying connection to the next case
    // ("connection closed before message completed"), so the 413 case has its own
    // client that never reuses a connection.
    let unpooled = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()?;
    let cases: Vec<(&str, reqwest::RequestBuilder, u16)> = vec![
        ("no token", c.get(&wf), 401),
        ("wrong token", c.get(&wf).bearer_auth("nope-nope-nope"), 401),
        (
            "malformed JSON",
            c.post(&wf)
                .bearer_auth(TOKEN)
                .header("content-type", "application/json")
                .body("{\"name\":"),
            400,
        ),
        (
            "unknown field",
            c.post(&wf)
                .bearer_auth(TOKEN)
                .json(&json!({"name": "a", "type": "app", "evil": 1})),
            422,
        ),
        (
            "wrong type",
            c.post(&wf)
                .bearer_auth(TOKEN)
                .json(&json!({"name": 5, "type": "app"})),
            422,
        ),
        (
            "bad enum",
            c.post(&wf)
                .bearer_auth(TOKEN)
                .json(&json!({"name": "a", "type": "saga"})),
            422,
        ),
        (
            "bad name",
            c.post(&wf)
                .bearer_auth(TOKEN)
                .json(&json!({"name": "../etc", "type": "app"})),
            422,
        ),
        (
            "unknown template",
            c.post(&wf)
                .bearer_auth(TOKEN)
                .json(&json!({"name": "a", "type": "app", "template": "nope"})),
            422,
        ),
        (
            "params not object",
            c.post(&wf)
                .bearer_auth(TOKEN)
                .json(&json!({"name": "a", "type": "app", "params": [1]})),
            422,
        ),
        (
            "no content type",
            c.post(&wf).bearer_auth(TOKEN).body("{}"),
            415,
        ),
        (
            "huge body",
            unpooled
                .post(&wf)
                .bearer_auth(TOKEN)
                .header("content-type", "application/json")
                .body(format!("{{\"name\":\"{}\"}}", "a".repeat(200_000))),
            413,
        ),
        (
            "bad id",
            c.get(p.url("/api/v1/workflows/not-a-uuid"))
                .bearer_auth(TOKEN),
            400,
        ),
        (
            "unknown id",
            c.get(p.url("/api/v1/workflows/00000000-0000-7000-8000-000000000000"))
                .bearer_auth(TOKEN),
            404,
        ),
        (
            "cancel unknown",
            c.post(p.url("/api/v1/workflows/00000000-0000-7000-8000-000000000000/cancel"))
                .bearer_auth(TOKEN),
            404,
        ),
        (
            "bad limit",
            c.get(format!("{wf}?limit=0")).bearer_auth(TOKEN),
            400,
        ),
        (
            "bad status",
            c.get(format!("{wf}?status=done")).bearer_auth(TOKEN),
            400,
        ),
        (
            "bad cursor",
            c.get(format!("{wf}?cursor=zzz")).bearer_auth(TOKEN),
            400,
        ),
        (
            "unknown route",
            c.get(p.url("/api/v1/nope")).bearer_auth(TOKEN),
            404,
        ),
        ("wrong method", c.delete(&wf).bearer_auth(TOKEN), 405),
    ];
    for (what, rq, want) in cases {
        let r = if want == 413 {
            // The server answers 413 before the client has sent the whole body and may close
            // the connection under it; the answer is what matters, so retry a reset send.
            let mut attempt = 0;
            loop {
                attempt += 1;
                let again = rq.try_clone().context("a clonable request")?;
                match again.send().await {
                    Ok(r) => break r,
                    Err(e) if attempt >= 3 => return Err(e.into()),
                    Err(_) => continue,
                }
            }
        } else {
            rq.send().await?
        };
        let status = r.status().as_u16();
        let text = r.text().await?;
        let v: Value = serde_json::from_str(&text)
            .with_context(|| format!("{what}: non-JSON body {text:?}"))?;
        assert_eq!(status, want, "{what}: {v}");
        assert!(
            v["error"]["code"].is_string() && v["error"]["message"].is_string(),
            "{what}: {v}"
        );
    }
    // Health needs no token and reports version and sha; GIT_SHA overrides the baked-in one.
    let (s, h) = (
        200,
        p.http
            .get(p.url("/api/v1/health"))
            .send()
            .await?
            .json::<Value>()
            .await?,
    );
    assert_eq!(s, 200);
    assert_eq!(h["status"], "healthy");
    assert_eq!(h["checks"], json!({"database": "ok", "redis": "ok"}));
    Ok(())
}

/// Tiny deterministic generator (no extra dependency): xorshift.
struct Gen(u64);
impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[(self.next() % xs.len() as u64) as usize]
    }
    fn value(&mut self, depth: u32) -> Value {
        match self.next() % if depth > 2 { 6 } else { 8 } {
            0 => Value::Null,
            1 => json!(self.next().is_multiple_of(2)),
            2 => json!(self.next() as i64),
            3 => json!((self.next() % 1000) as f64 / 7.0),
            4 => json!(
                self.pick(
                    &[
                        "",
                        "app",
                        "feature",
                        "bugfix",
                        "static-web",
                        "a",
                        "ä∑😀",
                        "../../etc/passwd",
                        "'; DROP TABLE workflows;--",
                        "x-y-z"
                    ][..]
                )
                .to_string()
            ),
            5 => json!("a".repeat((self.next() % 300) as usize)),
            6 => Value::Array(
                (0..self.next() % 4)
                    .map(|_| self.value(depth + 1))
                    .collect(),
            ),
            _ => {
                let keys = [
                    "name",
                    "type",
                    "description",
                    "template",
                    "params",
                    "status",
                    "extra",
                ];
                let mut m = serde_json::Map::new();
                for _ in 0..self.next() % 6 {
                    m.insert(self.pick(&keys[..]).to_string(), self.value(depth + 1));
                }
                Value::Object(m)
            }
        }
    }
}

#[tokio::test]
async fn generated_requests_over_the_openapi_document_never_get_a_5xx() -> anyhow::Result<()> {
    let mut p = Platform::new(&[]).await?;
    p.start_orchestrator().await?;
    let (s, doc) = p
        .call(reqwest::Method::GET, "/api/v1/openapi.json", None)
        .await?;
    assert_eq!(s, 200);
    let paths = doc["paths"].as_object().context("paths")?.clone();
    assert!(paths.len() >= 12, "documented paths: {:?}", paths.keys());
    for operator in [
        "/api/v1/dlq",
        "/api/v1/dlq/{kind}/{entry}/redrive",
        "/api/v1/workflows/{id}/retry",
        "/api/v1/events/stream",
        "/api/v1/workflows/{id}/events/stream",
    ] {
        assert!(
            paths.contains_key(operator),
            "{operator} is documented: {:?}",
            paths.keys()
        );
    }
    let real = p.create("fuzz", "static-web").await?;
    let mut g = Gen(0x9E37_79B9_7F4A_7C15);
    let ids = [
        real.as_str(),
        "not-a-uuid",
        "00000000-0000-0000-0000-000000000000",
        "%00",
        "0",
        "ffffffff-ffff-ffff-ffff-ffffffffffffff",
        "😀",
    ];
    let kinds = ["scaffold", "e2e", "nope", "", "%2e%2e", "😀"];
    let entries = [
        "1-0",
        "0-0",
        "not-an-id",
        "1700000000000-0",
        "99999999999999999999999-0",
        "-",
        "+",
    ];
    let queries = [
        "",
        "?limit=-1",
        "?limit=99999999999999999999",
        "?status=completed&type=app",
        "?cursor=%ZZ",
        "?type=",
        "?limit=5&cursor=00000000-0000-0000-0000-000000000000",
        "?a=b&a=c",
    ];
    let mut sent = 0;
    for (path, item) in &paths {
        for method in item.as_object().into_iter().flat_map(|m| m.keys()) {
            for _ in 0..40 {
                let id: &str = g.pick(&ids[..]);
                let concrete = path
                    .replace("{id}", id)
                    .replace("{kind}", g.pick(&kinds[..]))
                    .replace("{entry}", g.pick(&entries[..]));
                assert!(
                    !concrete.contains('{'),
                    "a path parameter the generator does not fill: {path}"
                );
                let q: &str = g.pick(&queries[..]);
                let url = format!("{}{}", p.url(&concrete), q);
                let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes())?;
                let mut rq = p.http.request(m, &url);
                match g.next() % 5 {
                    0 => {}
                    1 => rq = rq.bearer_auth("wrong-token-xyz"),
                    _ => rq = rq.bearer_auth(TOKEN),
                }
                rq = match g.next() % 4 {
                    0 => rq,
                    1 => rq.header("content-type", "application/json").body(g.value(0).to_string()),
                    2 => rq.header("content-type", "application/json").body(g.value(0).to_string().chars().rev().collect::<String>()),
                    _ => rq.json(&json!({"name": "gen", "type": g.pick(&["app", "feature", "x"][..]).to_string(), "params": g.value(1)})),
                };
                let r = rq.send().await?;
                let status = r.status().as_u16();
                // A live event stream never ends: its status and headers are the answer.
                if r.headers()
                    .get("content-type")
                    .is_some_and(|c| c == "text/event-stream")
                {
                    assert!(status < 500, "{method} {url} answered {status}");
                    sent += 1;
                    continue;
                }
                let body = r.text().await?;
                assert!(status < 500, "{method} {url} answered {status}: {body}");
                sent += 1;
            }
        }
    }
    eprintln!("sent {sent} generated requests, no 5xx");
    Ok(())
}

/// `platform healthcheck --agent` (the agent containers' HEALTHCHECK) follows the agent's
/// heartbeat: healthy while it runs, unhealthy once the process is frozen (SIGSTOP: alive to
/// the kernel, but doing nothing), healthy again after SIGCONT; and it says what is wrong.
#[tokio::test]
async fn agent_healthcheck_follows_the_heartbeat_of_a_real_agent() -> anyhow::Result<()> {
    let mut p = Platform::new(&[]).await?;
    let alive = p.work.join("agent-alive");
    let alive_s = alive.to_string_lossy().into_owned();
    let env = [("PLATFORM_AGENT_LIVENESS_FILE", alive_s.as_str())];
    let check = |p: &Platform| -> anyhow::Result<(bool, String)> {
        let out = p.command(&["healthcheck", "--agent"], &env)?.output()?;
        Ok((
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    };
    let (ok, err) = check(&p)?;
    assert!(!ok, "healthy before any agent ran");
    assert!(err.contains("no agent liveness file"), "{err}");

    p.start_agent("validation", "validation-live", &env)?;
    let pid = p.agent("validation-live").pid().to_string();
    let healthy = |want: bool| {
        let p = &p;
        move || async move {
            let (ok, err) = check(p)?;
            Ok((ok == want).then_some(err))
        }
    };
    eventually(
        "the agent to turn healthy",
        Duration::from_secs(20),
        healthy(true),
    )
    .await?;

    assert!(
        Command::new("kill")
            .args(["-STOP", &pid])
            .status()?
            .success()
    );
    // 3 heartbeat intervals of 200 ms, then the check must fail.
    let err = eventually(
        "a frozen agent to turn unhealthy",
        Duration::from_secs(20),
        healthy(false),
    )
    .await;
    assert!(
        Command::new("kill")
            .args(["-CONT", &pid])
            .status()?
            .success()
    );
    let err = err?;
    assert!(err.contains("heartbeat has stopped"), "{err}");
    eventually(
        "the resumed agent to turn healthy",
        Duration::from_secs(20),
        healthy(true),
    )
    .await?;

    let out = p
        .command(&["healthcheck", "--agent"], &[])?
        .env_remove("PLATFORM_AGENT_LIVENESS_FILE")
        .output()?;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("PLATFORM_AGENT_LIVENESS_FILE is not set"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

#[tokio::test]
async fn version_healthcheck_and_fault_injection() -> anyhow::Result<()> {
    let out = Command::new(test_support::bin_path("platform"))
        .arg("--version")
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("platform 0.1.0 (") && text.trim_end().ends_with(')'),
        "{text}"
    );

    let mut p = Platform::new(&[("GIT_SHA", "abc123def456")]).await?;
    p.start_orchestrator().await?;
    let h: Value = p
        .http
        .get(p.url("/api/v1/health"))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(h["git_sha"], "abc123def456");
    assert_eq!(h["version"], "0.1.0");
    let ok = p.command(&["healthcheck"], &[])?.status()?;
    assert!(ok.success());
    p.orchestrator.as_mut().expect("running").kill();

    let mut f = Platform::new(&[("PLATFORM_FAULT", "unhealthy")]).await?;
    let mut c = f.command(&["orchestrator"], &[])?;
    f.orchestrator = Some(ChildGuard::spawn("orchestrator", &mut c)?);
    let r = eventually(
        "the faulty orchestrator to answer",
        Duration::from_secs(30),
        || async { Ok(f.http.get(f.url("/api/v1/health")).send().await.ok()) },
    )
    .await?;
    assert_eq!(r.status().as_u16(), 503);
    let v: Value = r.json().await?;
    assert_eq!(v["status"], "unhealthy");
    let bad = f.command(&["healthcheck"], &[])?.status()?;
    assert!(!bad.success());
    let missing = Command::new(test_support::bin_path("platform"))
        .arg("orchestrator")
        .env_clear()
        .output()?;
    assert!(!missing.status.success());
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(err.contains("PLATFORM_API_TOKEN"), "{err}");
    Ok(())
}

#[tokio::test]
async fn a_task_longer_than_the_visibility_timeout_is_not_taken_from_a_live_agent()
-> anyhow::Result<()> {
    let mut p = Platform::new(&[]).await?;
    p.start_orchestrator().await?;
    p.start_all_agents()?;
    p.start_agent("e2e", "e2e-2", &[])?;
    // slow-web's tests take 4 s; the visibility timeout is 1 s.
    let id = p.create("long", "slow-web").await?;
    p.wait_state(&id, "completed", Duration::from_secs(60))
        .await?;
    let m = p.http.get(p.url("/metrics")).send().await?.text().await?;
    assert!(
        m.contains("platform_results_total{outcome=\"succeeded\"} 5"),
        "{m}"
    );
    assert!(
        m.contains("platform_results_total{outcome=\"ignored\"} 0"),
        "a second agent ran the task too:\n{m}"
    );
    Ok(())
}

/// The agent's in-flight task as the API shows it (`None` when idle or not registered).
async fn in_flight(p: &Platform, agent: &str) -> anyhow::Result<Option<String>> {
    let (_, v) = p.call(reqwest::Method::GET, "/api/v1/agents", None).await?;
    Ok(v["agents"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["id"] == agent)
        .and_then(|a| a["in_flight_task"].as_str().map(str::to_owned)))
}

/// With the shipped defaults (no visibility timeout set), a SIGKILLed agent's stage is taken
/// over by another agent within 5 s, and the workflow completes through it.
#[tokio::test]
async fn a_killed_agents_stage_is_recovered_within_5_s_at_the_shipped_defaults()
-> anyhow::Result<()> {
    let mut p = Platform::with_shipped_defaults().await?;
    p.start_orchestrator().await?;
    for k in ["scaffold", "validation", "integration", "deployment"] {
        p.start_agent(k, &format!("{k}-1"), &[])?;
    }
    p.start_agent("e2e", "e2e-victim", &[])?;
    let id = p.create("slow", "slow-web").await?;
    let task_id = eventually(
        "the e2e agent to hold the task",
        Duration::from_secs(30),
        || async { in_flight(&p, "e2e-victim").await },
    )
    .await?;
    // The rescuer only joins now, so it can get the task by taking it over, not by reading it.
    p.start_agent("e2e", "e2e-rescuer", &[])?;
    eventually(
        "the rescuer to register",
        Duration::from_secs(30),
        || async {
            let (_, v) = p.call(reqwest::Method::GET, "/api/v1/agents", None).await?;
            Ok(v["agents"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|a| a["id"] == "e2e-rescuer")
                .then_some(()))
        },
    )
    .await?;
    p.agent("e2e-victim").kill();
    let killed = Instant::now();
    let taken = eventually(
        "the rescuer to take the task over",
        Duration::from_secs(30),
        || async { in_flight(&p, "e2e-rescuer").await },
    )
    .await?;
    let takeover = killed.elapsed();
    assert_eq!(taken, task_id);
    let w = p
        .wait_state(&id, "completed", Duration::from_secs(60))
        .await?;
    eprintln!(
        "shipped defaults: task taken over {takeover:?} after SIGKILL, workflow completed {:?} after it",
        killed.elapsed()
    );
    assert!(
        takeover <= Duration::from_secs(5),
        "takeover took {takeover:?} at the shipped defaults (target <= 5 s)"
    );
    assert_eq!(task(&w, "e2e")["agent_id"], "e2e-rescuer");
    assert_eq!(transitions(&w), HAPPY_PATH);
    Ok(())
}

/// With the shipped defaults, a live agent whose stage runs 10 s (more than three visibility
/// timeouts) keeps its claim: a second, idle agent of the kind never takes it, the stage runs
/// once.
#[tokio::test]
async fn a_live_agent_with_a_slow_stage_keeps_its_claim_at_the_shipped_defaults()
-> anyhow::Result<()> {
    let mut p = Platform::with_shipped_defaults().await?;
    p.start_orchestrator().await?;
    for k in ["scaffold", "validation", "integration", "deployment"] {
        p.start_agent(k, &format!("{k}-1"), &[])?;
    }
    p.start_agent("e2e", "e2e-worker", &[])?;
    let id = p.create("long", "long-web").await?;
    eventually(
        "the e2e agent to hold the task",
        Duration::from_secs(30),
        || async { in_flight(&p, "e2e-worker").await },
    )
    .await?;
    p.start_agent("e2e", "e2e-idle", &[])?;
    let w = p
        .wait_state(&id, "completed", Duration::from_secs(60))
        .await?;
    assert_eq!(task(&w, "e2e")["agent_id"], "e2e-worker");
    let m = p.http.get(p.url("/metrics")).send().await?.text().await?;
    assert!(
        m.contains("platform_results_total{outcome=\"succeeded\"} 5"),
        "{m}"
    );
    assert!(
        m.contains("platform_results_total{outcome=\"ignored\"} 0"),
        "a second agent ran the task too:\n{m}"
    );
    Ok(())
}
