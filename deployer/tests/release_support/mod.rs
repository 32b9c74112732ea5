//! Shared setup for the release tests: a moto account seeded like a real environment (ECR
//! repository with images, an ECS cluster with services on a previous revision), a deployer.toml
//! for it, smoke-target orchestrators, and a way to run the `deployer` CLI as a user does.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use aws_sdk_ecs::types::{ContainerDefinition, KeyValuePair, Tag};
use test_support::{ChildGuard, TestAws};

pub const OLD_SHA: &str = "0000000000000000000000000000000000000aaa";
pub const NEW_SHA: &str = "1111111111111111111111111111111111111bbb";
pub const TOKEN: &str = "release-test-token-value";

pub struct Service {
    pub name: &'static str,
    /// "blue_green" with a load balancer, "headless" (blue_green without), or "rolling".
    pub kind: &'static str,
}

pub const SERVICES: &[Service] = &[
    Service {
        name: "agent-scaffold",
        kind: "rolling",
    },
    Service {
        name: "agent-validation",
        kind: "headless",
    },
    Service {
        name: "orchestrator",
        kind: "blue_green",
    },
];

/// A smoke target: a `platform orchestrator` process (or, while the platform binary cannot
/// serve yet, a stand-in answering the same health contract; see `spawn_target`).
pub struct Target {
    pub url: String,
    pub guard: Option<ChildGuard>,
    pub task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Some(t) = &self.task {
            t.abort();
        }
    }
}

pub struct World {
    pub services: &'static [Service],
    pub aws: TestAws,
    pub ecs: aws_sdk_ecs::Client,
    pub ecr: aws_sdk_ecr::Client,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub cluster: String,
    pub repo_uri: String,
    pub summary: PathBuf,
    pub outputs: PathBuf,
}

pub struct Options {
    pub migration: bool,
    pub bake: &'static str,
    pub hook_timeout: &'static str,
    pub consecutive_successes: u32,
    pub retries: u32,
    pub minute_seconds: f64,
    pub deployment_timeout: &'static str,
    pub max_parallel: u32,
    pub stage_seconds: f64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            migration: true,
            bake: "1m",
            hook_timeout: "10m",
            consecutive_successes: 2,
            retries: 3,
            minute_seconds: 1.0,
            deployment_timeout: "60s",
            max_parallel: 2,
            stage_seconds: 0.05,
        }
    }
}

/// Like `test_support::aws()`, but probes moto with the plugin's cheap state endpoint instead of
/// `/moto-api/data.json`, which dumps every account and grows slow on a busy shared server.
pub async fn fresh_account() -> TestAws {
    let endpoint = std::env::var("AWS_ENDPOINT_URL")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| test_support::DEFAULT_AWS_ENDPOINT_URL.to_owned());
    test_support::wait_http_ok(&format!("{endpoint}/_plugin/state?account=0"), Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("moto (with the lifecycle plugin) is not reachable at {endpoint}: start it with `scripts/env up` ({e:#})"));
    let account_id = test_support::random_account_id();
    let region = "us-east-1".to_owned();
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(&endpoint)
        .region(aws_config::Region::new(region.clone()))
        .credentials_provider(aws_credential_types::Credentials::new(
            &account_id,
            "testing",
            None,
            None,
            "release-tests",
        ))
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(4))
        .load()
        .await;
    TestAws {
        endpoint,
        account_id,
        region,
        config,
    }
}

pub async fn control(aws: &TestAws, path: &str, body: serde_json::Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}{path}", aws.endpoint))
        .json(&body)
        .send()
        .await
        .expect("plugin control endpoint");
    assert!(resp.status().is_success(), "{path}: {}", resp.status());
}

pub async fn fault(w: &World, body: serde_json::Value) {
    let mut body = body;
    body["account"] = serde_json::json!(w.aws.account_id);
    control(&w.aws, "/_plugin/faults", body).await;
}

pub async fn put_image(ecr: &aws_sdk_ecr::Client, tag: &str) {
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 2, "digest": format!("sha256:{tag:0>64}")},
        "layers": []
    });
    ecr.put_image()
        .repository_name("platform")
        .image_manifest(manifest.to_string())
        .image_tag(tag)
        .send()
        .await
        .expect("PutImage");
}

impl World {
    pub async fn new(opts: Options) -> World {
        Self::with_services(opts, SERVICES).await
    }

    pub async fn with_services(opts: Options, services: &'static [Service]) -> World {
        let aws = fresh_account().await;
        control(
            &aws,
            "/_plugin/config",
            serde_json::json!({
                "account": aws.account_id,
                "stage_seconds": opts.stage_seconds,
                "minute_seconds": opts.minute_seconds,
                "run_task_seconds": 0.2,
                "rollback_seconds": 0.1,
            }),
        )
        .await;
        let ecs = aws_sdk_ecs::Client::new(&aws.config);
        let ecr = aws_sdk_ecr::Client::new(&aws.config);
        let repo_uri = ecr
            .create_repository()
            .repository_name("platform")
            .send()
            .await
            .expect("CreateRepository")
            .repository()
            .and_then(|r| r.repository_uri())
            .unwrap()
            .to_owned();
        put_image(&ecr, OLD_SHA).await;
        put_image(&ecr, NEW_SHA).await;
        let cluster = "release-test".to_owned();
        ecs.create_cluster()
            .cluster_name(&cluster)
            .send()
            .await
            .unwrap();
        for s in services {
            let td = ecs
                .register_task_definition()
                .family(s.name)
                .container_definitions(
                    ContainerDefinition::builder()
                        .name(s.name)
                        .image(format!("{repo_uri}:{OLD_SHA}"))
                        .memory(256)
                        .essential(true)
                        .environment(
                            KeyValuePair::builder()
                                .name("GIT_SHA")
                                .value(OLD_SHA)
                                .build(),
                        )
                        .build(),
                )
                .tags(Tag::builder().key("git_sha").value(OLD_SHA).build())
                .send()
                .await
                .unwrap()
                .task_definition()
                .unwrap()
                .task_definition_arn()
                .unwrap()
                .to_owned();
            ecs.create_service()
                .cluster(&cluster)
                .service_name(s.name)
                .task_definition(td)
                .desired_count(1)
                .send()
                .await
                .unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let templates = dir.path().join("templates");
        std::fs::create_dir_all(&templates).unwrap();
        std::fs::write(
            templates.join("service.json.hbs"),
            r#"{
  "family": "{{service}}",
  "containerDefinitions": [
    {"name": "{{service}}", "image": "{{image}}", "memory": 256, "essential": true,
     "environment": [{"name": "GIT_SHA", "value": "{{git_sha}}"}]}
  ]
}
"#,
        )
        .unwrap();
        std::fs::write(
            templates.join("migration.json.hbs"),
            r#"{
  "family": "{{project}}-migrate",
  "containerDefinitions": [
    {"name": "migrate", "image": "{{image}}", "memory": 256, "essential": true, "command": ["platform", "migrate"]}
  ]
}
"#,
        )
        .unwrap();
        let mut toml = format!(
            r#"[project]
name = "platform"
ecr_repository = "platform"
templates = "templates"

[environments.test]
region = "us-east-1"
cluster = "{cluster}"
lock_table = "locks"
audit_table = "releases"
api_token_env = "RELEASE_TEST_TOKEN"

[environments.test.timeouts]
deployment = "{dt}"
migration = "30s"
hook = "{hook}"
lock_ttl = "30s"

[environments.test.release]
max_parallel = {mp}

[[environments.test.smoke_checks]]
name = "health reports the release"
path = "/api/v1/health"
auth = true
retries = {retries}
backoff = "100ms"
timeout = "2s"
consecutive_successes = {cs}
assertions = [{{ pointer = "/status", equals = "healthy" }}, {{ pointer = "/git_sha", equals = "{{{{git_sha}}}}" }}]
"#,
            dt = opts.deployment_timeout,
            hook = opts.hook_timeout,
            retries = opts.retries,
            cs = opts.consecutive_successes,
            mp = opts.max_parallel,
        );
        if opts.migration {
            toml.push_str("\n[environments.test.migration]\ntemplate = \"migration\"\n");
        }
        for s in services {
            let (strategy, extra) = match s.kind {
                "blue_green" => (
                    "blue_green",
                    format!(
                        "bake_time = \"{}\"\nload_balancer = {{ container_name = \"{n}\", container_port = 3000, target_group_arn = \"arn:aws:elasticloadbalancing:us-east-1:{a}:targetgroup/blue/1\", alternate_target_group_arn = \"arn:aws:elasticloadbalancing:us-east-1:{a}:targetgroup/green/2\" }}\n",
                        opts.bake,
                        n = s.name,
                        a = aws.account_id
                    ),
                ),
                "headless" => ("blue_green", String::new()),
                _ => ("rolling", String::new()),
            };
            toml.push_str(&format!(
                "\n[[environments.test.services]]\nname = \"{}\"\ntemplate = \"service\"\nstrategy = \"{strategy}\"\n{extra}",
                s.name
            ));
        }
        let config = dir.path().join("deployer.toml");
        std::fs::write(&config, toml).unwrap();
        let summary = dir.path().join("summary.md");
        let outputs = dir.path().join("outputs.txt");
        World {
            services,
            aws,
            ecs,
            ecr,
            dir,
            config,
            cluster,
            repo_uri,
            summary,
            outputs,
        }
    }

    /// The `deployer` command for this world, with the test listener and production URLs.
    pub fn deployer(&self, args: &[&str], test_url: &str, prod_url: &str) -> Command {
        let mut cmd = Command::new(test_support::bin_path("deployer"));
        cmd.args(args)
            .arg("--env")
            .arg("test")
            .arg("--config")
            .arg(&self.config)
            .env("DEPLOYER_ENVIRONMENTS__TEST__URLS__TEST", test_url)
            .env("DEPLOYER_ENVIRONMENTS__TEST__URLS__PRODUCTION", prod_url)
            .env("RELEASE_TEST_TOKEN", TOKEN)
            .env("GITHUB_STEP_SUMMARY", &self.summary)
            .env("GITHUB_OUTPUT", &self.outputs)
            .env("NO_COLOR", "1")
            .env_remove("GITHUB_ACTIONS")
            .env_remove("DEPLOYER_ENV")
            .stdin(Stdio::null());
        for (k, v) in self.aws.env() {
            cmd.env(k, v);
        }
        cmd
    }

    pub async fn run(&self, args: &[&str], test_url: &str, prod_url: &str) -> Output {
        let out = tokio::process::Command::from(self.deployer(args, test_url, prod_url))
            .output()
            .await
            .expect("run deployer");
        eprintln!(
            "--- deployer {args:?} exit {:?}\n{}\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    pub async fn service_td(&self, name: &str) -> String {
        let out = self
            .ecs
            .describe_services()
            .cluster(&self.cluster)
            .services(name)
            .send()
            .await
            .unwrap();
        out.services()[0].task_definition().unwrap().to_owned()
    }

    /// The git_sha tag of the task definition each service runs.
    pub async fn running_shas(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for s in self.services {
            let td = self.service_td(s.name).await;
            let d = self
                .ecs
                .describe_task_definition()
                .task_definition(&td)
                .include(aws_sdk_ecs::types::TaskDefinitionField::Tags)
                .send()
                .await
                .unwrap();
            let sha = d
                .tags()
                .iter()
                .find(|t| t.key() == Some("git_sha"))
                .and_then(|t| t.value())
                .unwrap_or_default()
                .to_owned();
            out.push((s.name.to_owned(), sha));
        }
        out
    }

    pub async fn assert_all_on(&self, sha: &str) {
        let shas = self.running_shas().await;
        assert!(
            shas.iter().all(|(_, s)| s == sha),
            "every service should run {sha}: {shas:?}"
        );
    }

    pub async fn history(&self) -> Vec<serde_json::Value> {
        let out = self
            .run(
                &["history", "-o", "json"],
                "http://127.0.0.1:1",
                "http://127.0.0.1:1",
            )
            .await;
        assert!(out.status.success());
        serde_json::from_slice(&out.stdout).expect("history JSON")
    }

    pub async fn lock_is_free(&self) -> bool {
        let out = self
            .run(
                &["lock", "status", "-o", "json"],
                "http://127.0.0.1:1",
                "http://127.0.0.1:1",
            )
            .await;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("lock JSON");
        v["lock"].is_null()
    }
}

pub fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn platform_bin() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let p = exe.parent()?.parent()?.join("platform");
    p.exists().then_some(p)
}

/// A smoke target reporting `git_sha` (unhealthy with `fault`). Prefers a real
/// `platform orchestrator`; if that binary cannot serve yet, a stand-in that answers the
/// documented health contract (docs/contracts.md) so the deployer's gates are still exercised
/// over real HTTP.
pub async fn spawn_target(git_sha: &str, fault: Option<&str>) -> Target {
    if let Some(bin) = platform_bin()
        && let Some(t) = try_real_orchestrator(&bin, git_sha, fault).await
    {
        eprintln!(
            "smoke target: platform orchestrator at {} (GIT_SHA={git_sha}, fault={fault:?})",
            t.url
        );
        return t;
    }
    let t = stand_in(git_sha, fault).await;
    eprintln!(
        "smoke target: STAND-IN at {} (the platform binary could not serve)",
        t.url
    );
    t
}

async fn try_real_orchestrator(bin: &Path, git_sha: &str, fault: Option<&str>) -> Option<Target> {
    let db = test_support::fresh_database().await.ok()?;
    let redis = test_support::redis().await.ok()?;
    let migrate = Command::new(bin)
        .arg("migrate")
        .env("DATABASE_URL", &db.url)
        .env("REDIS_URL", &redis.url)
        .output()
        .ok()?;
    if !migrate.status.success() {
        return None;
    }
    let port = test_support::free_port();
    let mut cmd = Command::new(bin);
    cmd.arg("orchestrator")
        .env("DATABASE_URL", &db.url)
        .env("REDIS_URL", &redis.url)
        .env("PLATFORM_REDIS_PREFIX", &redis.prefix)
        .env("PORT", port.to_string())
        .env("PLATFORM_API_TOKEN", TOKEN)
        .env("GIT_SHA", git_sha)
        .env("LOG_FORMAT", "text")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(f) = fault {
        cmd.env("PLATFORM_FAULT", f);
    }
    let guard = ChildGuard::spawn("platform orchestrator", &mut cmd).ok()?;
    let url = format!("http://127.0.0.1:{port}");
    // Any answer counts as up: a target started with PLATFORM_FAULT=unhealthy answers 503.
    let probe = format!("{url}/api/v1/health");
    test_support::eventually(
        "orchestrator listening",
        Duration::from_secs(10),
        || async { Ok(reqwest::get(&probe).await.ok().map(|_| ())) },
    )
    .await
    .ok()?;
    Some(Target {
        url,
        guard: Some(guard),
        task: None,
    })
}

async fn stand_in(git_sha: &str, fault: Option<&str>) -> Target {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let healthy = fault != Some("unhealthy");
    let body = if healthy {
        serde_json::json!({"status": "healthy", "version": "0.1.0", "git_sha": git_sha,
            "checks": {"database": "ok", "redis": "ok"}, "timestamp": "2026-11-25T00:00:00Z"})
    } else {
        serde_json::json!({"status": "unhealthy", "version": "0.1.0", "git_sha": git_sha,
            "checks": {"database": "fault injected", "redis": "ok"}, "timestamp": "2026-11-25T00:00:00Z"})
    }
    .to_string();
    let status = if healthy {
        "200 OK"
    } else {
        "503 Service Unavailable"
    };
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let body = body.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = sock.read(&mut buf).await;
                let resp = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
            });
        }
    });
    Target {
        url,
        guard: None,
        task: Some(task),
    }
}
