//! The release tests' world: a moto account seeded like a real environment (an ECR repository
//! with two images, an ECS cluster with services on the previous revision), a deployer.toml for
//! it, and the `deployer` runner pointed at it.

use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use aws_sdk_ecs::types::{KeyValuePair, Tag};
use test_support::TestAws;

use super::{
    Background, Deployer, Elbv2, LoadBalancerPair, ReleaseRecord, Target, container,
    create_load_balanced_service, create_repo, create_service, fresh_account, plugin_config,
    plugin_fault, put_image, register, service_task_definition, spawn_target,
};

pub const OLD_SHA: &str = "0000000000000000000000000000000000000aaa";
pub const NEW_SHA: &str = "1111111111111111111111111111111111111bbb";
/// `deployer release --git-sha NEW_SHA`.
pub const RELEASE: &[&str] = &["release", "--git-sha", NEW_SHA];
/// A URL nothing listens on, for commands that make no smoke check.
pub const NOWHERE: &str = "http://127.0.0.1:1";

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
    /// The services' desired count when created (what Terraform or autoscaling set).
    pub desired: i32,
    /// More emulator settings for the account (knobs of docs/moto-plugin.md), over the profile.
    pub emulator: serde_json::Value,
    /// The load-balanced service's deploymentConfiguration as Terraform created it.
    pub load_balanced_configuration: Option<aws_sdk_ecs::types::DeploymentConfiguration>,
    /// `timeouts.agent_gate` (the deployer's default when `None`).
    pub agent_gate: Option<&'static str>,
    /// The port of the test listener of the world's real ELBv2 resources in moto ([`Elbv2`]):
    /// where the smoke target listens when `urls.test` is left to be found from the rule;
    /// `None`: 8080, unused (the tests that set `urls.test`).
    pub elbv2_test_port: Option<u16>,
    /// The load-balanced service's `strategy` in deployer.toml, and more of its keys.
    pub lb_strategy: &'static str,
    pub lb_keys: &'static str,
    /// TOML appended to deployer.toml (e.g. `[[environments.test.analysis]]` entries).
    pub extra_toml: &'static str,
}

/// The emulator profile every release test runs under: `DEPLOYER_TEST_EMULATOR_PROFILE`, by
/// default "strict" (finished hooks not listed, no stage while paused, list lag, duplicate
/// deployments): what AWS leaves unspecified, set the inconvenient way.
pub fn emulator_profile() -> String {
    std::env::var("DEPLOYER_TEST_EMULATOR_PROFILE")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "strict".into())
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
            desired: 1,
            emulator: serde_json::json!({}),
            load_balanced_configuration: None,
            agent_gate: None,
            elbv2_test_port: None,
            lb_strategy: "blue_green",
            lb_keys: "",
            extra_toml: "",
        }
    }
}

impl Options {
    /// No bake time: a successful release ends as soon as its deployments do.
    pub fn no_bake() -> Self {
        Self {
            bake: "0s",
            ..Self::default()
        }
    }

    /// A smoke gate that takes a few seconds to pass (many consecutive successes), so a test can
    /// act while the release is paused at its hook.
    pub fn slow_gate(minute_seconds: f64, hook_timeout: &'static str) -> Self {
        Self {
            consecutive_successes: 30,
            bake: "0s",
            minute_seconds,
            hook_timeout,
            ..Self::default()
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
    /// The load-balanced services' pair: the target groups and rules of `elbv2`.
    pub lb: LoadBalancerPair,
    /// The load balancer, its target groups, listeners and rules, real in moto.
    pub elbv2: Elbv2,
}

const SERVICE_TEMPLATE: &str = r#"{
  "family": "{{service}}",
  "containerDefinitions": [
    {"name": "{{service}}", "image": "{{image}}", "memory": 256, "essential": true,
     "environment": [{"name": "GIT_SHA", "value": "{{git_sha}}"}]}
  ]
}
"#;

const MIGRATION_TEMPLATE: &str = r#"{
  "family": "{{project}}-migrate",
  "containerDefinitions": [
    {"name": "migrate", "image": "{{image}}", "memory": 256, "essential": true, "command": ["platform", "migrate"]}
  ]
}
"#;

fn deployer_toml(
    opts: &Options,
    services: &[Service],
    cluster: &str,
    lb: &LoadBalancerPair,
) -> String {
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
{gate}
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
        gate = opts
            .agent_gate
            .map(|g| format!("agent_gate = \"{g}\"\n"))
            .unwrap_or_default(),
    );
    if opts.migration {
        toml.push_str("\n[environments.test.migration]\ntemplate = \"migration\"\n");
    }
    for s in services {
        let (strategy, extra) = match s.kind {
            "blue_green" => (opts.lb_strategy, {
                format!(
                    "{}bake_time = \"{}\"\nload_balancer = {{ container_name = \"{n}\", container_port = 3000, target_group_arn = \"{blue}\", alternate_target_group_arn = \"{green}\", production_listener_rule = \"{prod}\", test_listener_rule = \"{test}\", role_arn = \"{role}\" }}\n",
                    opts.lb_keys,
                    opts.bake,
                    n = s.name,
                    blue = lb.blue,
                    green = lb.green,
                    prod = lb.production_rule,
                    test = lb.test_rule,
                    role = lb.role,
                )
            }),
            "headless" => ("blue_green", String::new()),
            "rolling_agent" => ("rolling", "agent_kind = \"scaffold\"\n".to_owned()),
            _ => ("rolling", String::new()),
        };
        toml.push_str(&format!(
            "\n[[environments.test.services]]\nname = \"{}\"\ntemplate = \"service\"\nstrategy = \"{strategy}\"\n{extra}",
            s.name
        ));
    }
    toml.push_str(opts.extra_toml);
    toml
}

/// A world with `faults` injected (the plugin's fault bodies), a smoke target on `NEW_SHA`, and
/// `deployer release --git-sha NEW_SHA` run to the end.
pub async fn release_new(opts: Options, faults: &[serde_json::Value]) -> (World, Target, Output) {
    let w = World::new(opts).await;
    for f in faults {
        plugin_fault(&w.aws, f.clone()).await;
    }
    let new = spawn_target(NEW_SHA, None).await;
    let out = w.run(RELEASE, &new.url).await;
    (w, new, out)
}

impl World {
    pub async fn new(opts: Options) -> World {
        Self::with_services(opts, SERVICES).await
    }

    pub async fn with_services(opts: Options, services: &'static [Service]) -> World {
        let aws = fresh_account().await;
        let mut emulator = serde_json::json!({
            "profile": emulator_profile(),
            "stage_seconds": opts.stage_seconds,
            "minute_seconds": opts.minute_seconds,
            "run_task_seconds": 0.2,
            "rollback_seconds": 0.1,
        });
        if let Some(extra) = opts.emulator.as_object() {
            for (k, v) in extra {
                emulator[k] = v.clone();
            }
        }
        plugin_config(&aws, emulator).await;
        let ecs = aws_sdk_ecs::Client::new(&aws.config);
        let ecr = aws_sdk_ecr::Client::new(&aws.config);
        let repo_uri = create_repo(&aws, "platform").await;
        put_image(&ecr, "platform", OLD_SHA).await;
        put_image(&ecr, "platform", NEW_SHA).await;
        // As Terraform makes them: the release's traffic preflight reads the production rule.
        let elbv2 = Elbv2::create(&aws, opts.elbv2_test_port.unwrap_or(8080)).await;
        let pair = elbv2.pair.clone();
        let cluster = "release-test".to_owned();
        ecs.create_cluster()
            .cluster_name(&cluster)
            .send()
            .await
            .expect("CreateCluster");
        for s in services {
            let c = container(s.name, &format!("{repo_uri}:{OLD_SHA}"), 256)
                .essential(true)
                .environment(
                    KeyValuePair::builder()
                        .name("GIT_SHA")
                        .value(OLD_SHA)
                        .build(),
                )
                .build();
            let tag = Tag::builder().key("git_sha").value(OLD_SHA).build();
            let td = register(&ecs, s.name, c, &[tag]).await;
            if s.kind == "blue_green" {
                let lb = pair.clone();
                create_load_balanced_service(
                    &ecs,
                    &cluster,
                    s.name,
                    &td,
                    opts.desired,
                    &lb,
                    opts.load_balanced_configuration.clone(),
                )
                .await;
            } else {
                create_service(&ecs, &cluster, s.name, &td, opts.desired).await;
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let templates = dir.path().join("templates");
        std::fs::create_dir_all(&templates).unwrap();
        std::fs::write(templates.join("service.json.hbs"), SERVICE_TEMPLATE).unwrap();
        std::fs::write(templates.join("migration.json.hbs"), MIGRATION_TEMPLATE).unwrap();
        let config = dir.path().join("deployer.toml");
        std::fs::write(&config, deployer_toml(&opts, services, &cluster, &pair)).unwrap();
        let summary = dir.path().join("summary.md");
        let outputs = dir.path().join("outputs.txt");
        World {
            lb: pair,
            elbv2,
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

    /// `deployer <args> --env test --config …` for this world, with the test listener and
    /// production URLs (the shared runner: scrubbed environment, secrets checked).
    pub fn deployer(&self, args: &[&str], test_url: &str, prod_url: &str) -> Deployer {
        let d = Deployer::new(self.dir.path(), args)
            .arg("--env")
            .arg("test")
            .arg("--config")
            .arg(&self.config)
            .aws(&self.aws);
        // An empty test URL leaves urls.test unset (found from the test listener rule).
        let d = if test_url.is_empty() {
            d
        } else {
            d.env("DEPLOYER_ENVIRONMENTS__TEST__URLS__TEST", test_url)
        };
        d.env("DEPLOYER_ENVIRONMENTS__TEST__URLS__PRODUCTION", prod_url)
            .report_file("GITHUB_STEP_SUMMARY", &self.summary)
            .report_file("GITHUB_OUTPUT", &self.outputs)
    }

    /// Runs `deployer <args>` to the end with both listeners at `url`.
    pub async fn run(&self, args: &[&str], url: &str) -> Output {
        self.deployer(args, url, url).run().await
    }

    /// Starts `deployer <args>` in the background with both listeners at `url`.
    pub fn background(&self, args: &[&str], url: &str) -> Background {
        self.deployer(args, url, url).spawn()
    }

    pub async fn service_td(&self, name: &str) -> String {
        service_task_definition(&self.ecs, &self.cluster, name).await
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

    /// Polls (up to `within`) until every service runs `sha`.
    pub async fn eventually_all_on(&self, sha: &str, within: Duration) {
        test_support::eventually(&format!("every service on {sha}"), within, || async {
            let shas = self.running_shas().await;
            Ok(shas.iter().all(|(_, s)| s == sha).then_some(()))
        })
        .await
        .unwrap();
    }

    /// `deployer history -o json`, read as the library's audit records, newest first.
    pub async fn history(&self) -> Vec<ReleaseRecord> {
        let out = self.run(&["history", "-o", "json"], NOWHERE).await;
        assert!(out.status.success(), "deployer history failed");
        serde_json::from_slice(&out.stdout).expect("history JSON: a list of audit records")
    }

    /// The newest audit record.
    pub async fn last_record(&self) -> ReleaseRecord {
        self.history()
            .await
            .into_iter()
            .next()
            .expect("an audit record")
    }

    pub async fn lock_is_free(&self) -> bool {
        let out = self.run(&["lock", "status", "-o", "json"], NOWHERE).await;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("lock JSON");
        v["lock"].is_null()
    }
}
