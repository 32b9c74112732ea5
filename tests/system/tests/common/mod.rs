//! The platform harness shared by the operator tests (operator_api.rs, mission_control.rs):
//! real `platform` processes on a fresh database and a private Redis key prefix.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use test_support::{ChildGuard, eventually};

pub const TOKEN: &str = "test-token-0123456789";
pub const KINDS: [&str; 5] = ["scaffold", "validation", "e2e", "integration", "deployment"];

pub struct Platform {
    pub db_url: String,
    pub redis_url: String,
    pub prefix: String,
    pub port: u16,
    pub work: PathBuf,
    pub extra_env: Vec<(String, String)>,
    /// Run with the shipped visibility timeout and heartbeat interval instead of the tests'
    /// shortened ones.
    pub shipped_defaults: bool,
    pub orchestrator: Option<ChildGuard>,
    pub agents: Vec<(String, ChildGuard)>,
    pub http: reqwest::Client,
}

/// Copies the shipped templates and adds `slow-web` and `long-web`, whose tests take 4 s and
/// 10 s, so a test can act while a task is in flight.
pub fn templates(work: &Path) -> anyhow::Result<PathBuf> {
    let dir = work.join("templates");
    test_support::copy_tree(&test_support::repo_root().join("templates/scaffold"), &dir)?;
    for (name, secs) in [("slow-web", 4), ("long-web", 10)] {
        test_support::copy_tree(&dir.join("static-web"), &dir.join(name))?;
        let manifest = dir.join(name).join("template.toml");
        let text = std::fs::read_to_string(&manifest)?.replace(
            "command = [\"sh\", \"tests/run.sh\"]",
            &format!("command = [\"sh\", \"-c\", \"sleep {secs} && sh tests/run.sh\"]"),
        );
        std::fs::write(manifest, text)?;
    }
    // `flaky-web`: its tests fail (after a second) until the file `flaky-ok` exists in the work
    // directory — a stage failure an operator fixes and then retries.
    test_support::copy_tree(&dir.join("static-web"), &dir.join("flaky-web"))?;
    let manifest = dir.join("flaky-web/template.toml");
    let marker = work.join("flaky-ok");
    let text = std::fs::read_to_string(&manifest)?.replace(
        "command = [\"sh\", \"tests/run.sh\"]",
        &format!(
            "command = [\"sh\", \"-c\", \"sleep 1 && test -f '{}' && sh tests/run.sh\"]",
            marker.display()
        ),
    );
    std::fs::write(manifest, text)?;
    Ok(dir)
}

impl Platform {
    pub async fn new(extra_env: &[(&str, &str)]) -> anyhow::Result<Self> {
        let redis = test_support::redis().await?;
        Self::with_redis(redis.url, redis.prefix, extra_env).await
    }

    pub async fn with_redis(
        redis_url: String,
        prefix: String,
        extra_env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let db = test_support::fresh_database().await?;
        let work = std::env::temp_dir().join(test_support::unique("platform-test-"));
        std::fs::create_dir_all(&work)?;
        Ok(Self {
            db_url: db.url,
            redis_url,
            prefix,
            port: test_support::free_port(),
            work,
            extra_env: extra_env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            shipped_defaults: false,
            orchestrator: None,
            agents: Vec::new(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?,
        })
    }

    /// A platform whose processes run with the shipped visibility timeout and heartbeat.
    pub async fn with_shipped_defaults() -> anyhow::Result<Self> {
        let mut p = Self::new(&[]).await?;
        p.shipped_defaults = true;
        Ok(p)
    }

    pub fn command(&self, args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<Command> {
        let mut c = Command::new(test_support::bin_path("platform"));
        c.args(args)
            .env("DATABASE_URL", &self.db_url)
            .env("REDIS_URL", &self.redis_url)
            .env("PLATFORM_REDIS_PREFIX", &self.prefix)
            .env("PORT", self.port.to_string())
            .env("PLATFORM_API_TOKEN", TOKEN)
            .env("PLATFORM_TEMPLATES_DIR", templates_dir(&self.work)?)
            .env("PLATFORM_GIT_REPO", self.work.join("apps.git"))
            .env("PLATFORM_VISIBILITY_TIMEOUT_MS", "1000")
            .env("PLATFORM_HEARTBEAT_INTERVAL_MS", "200")
            .env("PLATFORM_AGENT_STOP_TIMEOUT_MS", "500")
            .env("LOG_FORMAT", "text")
            .env("RUST_LOG", "warn");
        if self.shipped_defaults {
            c.env_remove("PLATFORM_VISIBILITY_TIMEOUT_MS")
                .env_remove("PLATFORM_HEARTBEAT_INTERVAL_MS");
        }
        for (k, v) in &self.extra_env {
            c.env(k, v);
        }
        for (k, v) in env {
            c.env(k, v);
        }
        Ok(c)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub async fn start_orchestrator(&mut self) -> anyhow::Result<()> {
        let mut c = self.command(&["orchestrator"], &[])?;
        self.orchestrator = Some(ChildGuard::spawn("orchestrator", &mut c)?);
        test_support::wait_http_ok(&self.url("/health/ready"), Duration::from_secs(30)).await
    }

    pub fn start_agent(
        &mut self,
        kind: &str,
        id: &str,
        env: &[(&str, &str)],
    ) -> anyhow::Result<()> {
        let mut env = env.to_vec();
        env.push(("PLATFORM_INSTANCE_ID", id));
        let mut c = self.command(&["agent", "--kind", kind], &env)?;
        self.agents
            .push((id.to_owned(), ChildGuard::spawn(id, &mut c)?));
        Ok(())
    }

    pub fn start_all_agents(&mut self) -> anyhow::Result<()> {
        for k in KINDS {
            self.start_agent(k, &format!("{k}-1"), &[])?;
        }
        Ok(())
    }

    pub fn agent(&mut self, id: &str) -> &mut ChildGuard {
        &mut self
            .agents
            .iter_mut()
            .find(|(i, _)| i == id)
            .expect("agent started")
            .1
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut rq = self.http.request(method, self.url(path)).bearer_auth(TOKEN);
        if let Some(b) = body {
            rq = rq.json(&b);
        }
        let r = rq.send().await?;
        let status = r.status().as_u16();
        let text = r.text().await?;
        let v = serde_json::from_str(&text)
            .with_context(|| format!("{path} answered {status} with non-JSON {text:?}"))?;
        Ok((status, v))
    }

    pub async fn create(&self, name: &str, template: &str) -> anyhow::Result<String> {
        let (s, v) = self
            .call(reqwest::Method::POST, "/api/v1/workflows", Some(json!({"name": name, "type": "app", "template": template, "params": {"title": "T"}})))
            .await?;
        if s != 201 {
            bail!("create answered {s}: {v}");
        }
        Ok(v["id"].as_str().context("id")?.to_owned())
    }

    pub async fn workflow(&self, id: &str) -> anyhow::Result<Value> {
        let (s, v) = self
            .call(
                reqwest::Method::GET,
                &format!("/api/v1/workflows/{id}"),
                None,
            )
            .await?;
        if s != 200 {
            bail!("get workflow answered {s}: {v}");
        }
        Ok(v)
    }

    pub async fn wait_state(
        &self,
        id: &str,
        state: &str,
        timeout: Duration,
    ) -> anyhow::Result<Value> {
        eventually(&format!("workflow {id} to be {state}"), timeout, || async {
            let w = self.workflow(id).await?;
            if w["state"] == state {
                return Ok(Some(w));
            }
            if ["completed", "failed", "cancelled"].contains(&w["state"].as_str().unwrap_or("")) {
                bail!(
                    "workflow ended {} instead of {state}: {}",
                    w["state"],
                    w["failure_reason"]
                );
            }
            Ok(None)
        })
        .await
    }

    pub async fn redis(&self) -> anyhow::Result<redis::aio::MultiplexedConnection> {
        Ok(redis::Client::open(self.redis_url.as_str())?
            .get_multiplexed_async_connection()
            .await?)
    }

    pub fn key(&self, name: &str) -> String {
        format!("{}:{name}", self.prefix)
    }

    /// Creates a workflow and swaps its dispatched scaffold envelope for one of a schema no
    /// agent of this build reads (version 99): started afterwards, the scaffold agent
    /// dead-letters it after `PLATFORM_MAX_DELIVERIES` and the workflow fails. Call before
    /// starting the scaffold agent.
    pub async fn create_poisoned(&self, name: &str) -> anyhow::Result<String> {
        use redis::AsyncCommands;
        let id = self.create(name, "static-web").await?;
        let stream = self.key("stream:agent:scaffold:tasks");
        let r = self.redis().await?;
        let (entry_id, body) = eventually(
            "the scaffold task on the stream",
            Duration::from_secs(20),
            || {
                let mut r = r.clone();
                let stream = stream.clone();
                let id = id.clone();
                async move {
                    let entries: redis::streams::StreamRangeReply = r.xrange_all(&stream).await?;
                    Ok(entries.ids.iter().find_map(|e| {
                        let body = e.get::<String>("envelope").unwrap_or_default();
                        body.contains(&id).then(|| (e.id.clone(), body))
                    }))
                }
            },
        )
        .await?;
        let mut env: Value = serde_json::from_str(&body)?;
        env["schema_version"] = json!(99);
        let mut r = r;
        let _: i64 = r.xdel(&stream, &[&entry_id]).await?;
        let _: String = r
            .xadd(&stream, "*", &[("envelope", env.to_string())])
            .await?;
        Ok(id)
    }

    /// Waits for a workflow to reach `state` even through terminal states on the way.
    pub async fn wait_exactly(
        &self,
        id: &str,
        state: &str,
        timeout: Duration,
    ) -> anyhow::Result<Value> {
        eventually(&format!("workflow {id} to be {state}"), timeout, || async {
            let w = self.workflow(id).await?;
            Ok((w["state"] == state).then_some(w))
        })
        .await
    }
}

pub fn templates_dir(work: &Path) -> anyhow::Result<PathBuf> {
    let dir = work.join("templates");
    if !dir.exists() {
        templates(work)?;
    }
    Ok(dir)
}

pub fn transitions(w: &Value) -> Vec<String> {
    w["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["kind"] == "transition")
        .map(|e| e["to_state"].as_str().unwrap_or("").to_owned())
        .collect()
}

pub const HAPPY_PATH: [&str; 7] = [
    "initiated",
    "scaffolding",
    "validating",
    "e2e_testing",
    "integrating",
    "deploying",
    "completed",
];

pub fn task<'a>(w: &'a Value, stage: &str) -> &'a Value {
    w["tasks"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["stage"] == stage))
        .unwrap_or(&Value::Null)
}

// ------------------------------------------------------------------------------------------
