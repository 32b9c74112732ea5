//! The `deployer` CLI as a user runs it, against moto (each test its own AWS account), the local
//! OCI registry and the Docker engine: config, render, diff, verify, build, push — success and
//! failure paths, exit codes, no AWS write on bad input, no secret in any output.

use std::path::{Path, PathBuf};
use std::process::Output;

use anyhow::{Context, Result};
use serde_json::Value;
use test_support::TestAws;

use crate::support::*;

/// A project directory of its own: deployer.toml, terraform outputs, optionally templates.
struct Project {
    dir: tempfile::TempDir,
    repo: String,
    cluster: String,
}

fn repo_templates() -> PathBuf {
    test_support::repo_root().join("templates/task-definitions")
}

const TF_OUTPUTS: &str = r#"{
  "task_execution_role_arn": {"sensitive": false, "type": "string", "value": "arn:aws:iam::123456789012:role/exec"},
  "orchestrator_task_role_arn": {"sensitive": false, "type": "string", "value": "arn:aws:iam::123456789012:role/orchestrator"},
  "agent_task_role_arn": {"sensitive": false, "type": "string", "value": "arn:aws:iam::123456789012:role/agent"},
  "migrate_task_role_arn": {"sensitive": false, "type": "string", "value": "arn:aws:iam::123456789012:role/migrate"},
  "log_group_name": {"sensitive": false, "type": "string", "value": "/ecs/test"},
  "database_url_secret_arn": {"sensitive": false, "type": "string", "value": "arn:aws:secretsmanager:us-east-1:123456789012:secret:db"},
  "redis_url_secret_arn": {"sensitive": false, "type": "string", "value": "arn:aws:secretsmanager:us-east-1:123456789012:secret:redis"},
  "api_token_secret_arn": {"sensitive": false, "type": "string", "value": "arn:aws:secretsmanager:us-east-1:123456789012:secret:token"}
}"#;

impl Project {
    /// `extra_env` is appended to [environments.test]; `services` are TOML service tables.
    fn new(templates: &Path, extra_env: &str, services: &str) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let repo = test_support::unique("deployer-test-");
        let cluster = test_support::unique("cluster-");
        std::fs::write(dir.path().join("outputs.json"), TF_OUTPUTS)?;
        let toml = format!(
            r#"[project]
name = "agentic"
ecr_repository = "{repo}"
templates = "{templates}"
dockerfile = "Dockerfile.production"
context = "."

[project.vars]
log_level = "info"
redis_prefix = ""
orchestrator_cpu = "1024"
orchestrator_memory = "2048"
agent_cpu = "512"
agent_memory = "1024"
e2e_agent_memory = "2048"
migration_cpu = "512"
migration_memory = "1024"

[environments.test]
region = "us-east-1"
cluster = "{cluster}"
tf_output = "outputs.json"
api_token_env = "PLATFORM_API_TOKEN"
notifications = {{ webhook_url_env = "SLACK_WEBHOOK_URL" }}
{extra_env}
[environments.test.secrets]
database_url = '{{{{tf_output "database_url_secret_arn"}}}}'
redis_url = '{{{{tf_output "redis_url_secret_arn"}}}}'
api_token = '{{{{tf_output "api_token_secret_arn"}}}}'

{services}
"#,
            templates = templates.display()
        );
        std::fs::write(dir.path().join("deployer.toml"), toml)?;
        Ok(Self { dir, repo, cluster })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn edit(&self, from: &str, to: &str) -> Result<()> {
        let p = self.path().join("deployer.toml");
        let text = std::fs::read_to_string(&p)?;
        assert!(text.contains(from), "deployer.toml has no `{from}`");
        std::fs::write(p, text.replacen(from, to, 1))?;
        Ok(())
    }
}

const ORCHESTRATOR: &str = r#"[[environments.test.services]]
name = "orchestrator"
template = "orchestrator"
strategy = "rolling"
desired_count = 1
"#;

/// Runs the CLI in `dir` (the shared runner: scrubbed environment, secrets in it and checked
/// absent from the output), with the test account's environment, no AWS retries (error paths fail
/// fast), and `extra` variables.
fn deployer(aws: Option<&TestAws>, dir: &Path, args: &[&str], extra: &[(&str, &str)]) -> Output {
    let mut d = Deployer::new(dir, args).env("AWS_MAX_ATTEMPTS", "1");
    if let Some(aws) = aws {
        d = d.aws(aws);
    }
    d.envs(extra).output()
}

/// `deployer render --env test --service orchestrator --git-sha <git_sha> <more>`, which succeeds.
fn render_orchestrator(aws: &TestAws, p: &Project, git_sha: &str, more: &[&str]) -> Output {
    let mut args = vec![
        "render",
        "--env",
        "test",
        "--service",
        "orchestrator",
        "--git-sha",
        git_sha,
    ];
    args.extend(more);
    let o = deployer(Some(aws), p.path(), &args, &[]);
    assert_exit(&o, Code::Ok);
    o
}

/// Runs `deployer <args>` against the test's account in the project, expects exit `want`, and
/// reads its stdout as JSON.
fn run_json(
    aws: &TestAws,
    p: &Project,
    args: &[&str],
    extra: &[(&str, &str)],
    want: Code,
) -> Result<Value> {
    let o = deployer(Some(aws), p.path(), args, extra);
    assert_exit(&o, want);
    json(&o)
}

/// The run's stdout as JSON.
fn json(o: &Output) -> Result<Value> {
    serde_json::from_str(&stdout(o)).with_context(|| format!("stdout is not JSON:\n{}", stdout(o)))
}

/// `deployer <verb> --env test --git-sha <git_sha> -o json`.
fn json_for<'a>(verb: &'a str, git_sha: &'a str) -> [&'a str; 7] {
    [verb, "--env", "test", "--git-sha", git_sha, "-o", "json"]
}

fn sha() -> String {
    test_support::unique("")
        .chars()
        .chain("0000".chars())
        .take(12)
        .collect()
}

/// Registers revision of the orchestrator's family (one container running `image`); its ARN.
async fn register_orchestrator(ecs: &aws_sdk_ecs::Client, image: &str) -> String {
    let c = container("orchestrator", image, 512).build();
    register(ecs, "agentic-test-orchestrator", c, &[]).await
}

/// Nothing was written to the account: no task definitions, no services, no images.
async fn assert_no_aws_writes(aws: &TestAws, repo: &str) -> Result<()> {
    let ecs = aws_sdk_ecs::Client::new(&aws.config);
    let tds = ecs.list_task_definitions().send().await?;
    assert!(
        tds.task_definition_arns().is_empty(),
        "task definitions were registered: {:?}",
        tds.task_definition_arns()
    );
    let ecr = aws_sdk_ecr::Client::new(&aws.config);
    let repos = ecr.describe_repositories().send().await?;
    for r in repos.repositories() {
        let name = r.repository_name().unwrap_or_default();
        let images = ecr.list_images().repository_name(name).send().await?;
        assert!(
            images.image_ids().is_empty(),
            "images were pushed to {name}"
        );
        assert_eq!(name, repo, "a repository was created: {name}");
    }
    Ok(())
}

// ------------------------------------------------------------------ help, completions, config

#[test]
fn help_of_every_command_shows_examples() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        vec!["--help"],
        vec!["config", "show", "--help"],
        vec!["render", "--help"],
        vec!["diff", "--help"],
        vec!["verify", "--help"],
        vec!["build", "--help"],
        vec!["push", "--help"],
        vec!["completions", "--help"],
    ] {
        let o = deployer(None, dir.path(), &args, &[]);
        assert_exit(&o, Code::Ok);
        assert!(
            stdout(&o).contains("Examples:"),
            "{args:?} help has no examples:\n{}",
            stdout(&o)
        );
    }
    let o = deployer(None, dir.path(), &["completions", "bash"], &[]);
    assert_exit(&o, Code::Ok);
    assert!(stdout(&o).contains("_deployer"), "bash completion script");
    let o = deployer(None, dir.path(), &["render", "--no-such-flag"], &[]);
    assert_exit(&o, Code::Usage);
}

#[test]
fn config_show_layers_file_env_and_flags_and_redacts_secrets() -> Result<()> {
    let p = Project::new(&repo_templates(), "", ORCHESTRATOR)?;
    let o = deployer(
        None,
        p.path(),
        &[
            "config",
            "show",
            "--env",
            "test",
            "--region",
            "eu-central-1",
            "-o",
            "json",
        ],
        &[
            ("DEPLOYER_ENVIRONMENTS__TEST__CLUSTER", "from-env"),
            ("DEPLOYER_ENVIRONMENTS__TEST__REGION", "eu-west-3"),
            (
                "DEPLOYER_ENVIRONMENTS__TEST__SERVICES__0__DESIRED_COUNT",
                "4",
            ),
        ],
    );
    assert_exit(&o, Code::Ok);
    let v = json(&o)?;
    let s = &v["settings"];
    assert_eq!(s["cluster"], "from-env", "env var over file");
    assert_eq!(s["region"], "eu-central-1", "flag over env var");
    assert_eq!(s["services"][0]["desired_count"], 4);
    assert_eq!(s["api_token"], "[redacted]");
    assert_eq!(s["notifications"]["webhook_url"], "[redacted]");
    assert_eq!(
        s["secrets"]["api_token"], "arn:aws:secretsmanager:us-east-1:123456789012:secret:token",
        "tf_output resolved"
    );

    let o = deployer(None, p.path(), &["config", "show", "--env", "test"], &[]);
    assert_exit(&o, Code::Ok);
    assert!(
        stdout(&o).contains("api_token = \"[redacted]\""),
        "{}",
        stdout(&o)
    );
    Ok(())
}

// ------------------------------------------------------------------ bad input: clear error, exit code, no AWS write

#[tokio::test]
async fn bad_config_and_templates_fail_clearly_without_touching_aws() -> Result<()> {
    let aws = test_support::aws().await?;
    let p = Project::new(&repo_templates(), "", ORCHESTRATOR)?;
    create_repo(&aws, &p.repo).await;
    let render = ["render", "--env", "test", "--git-sha", "abc1234"];

    // Unknown key: file, line, column and the closest key.
    p.edit("cluster = ", "clustr = ")?;
    let text = std::fs::read_to_string(p.path().join("deployer.toml"))?;
    let line = text
        .lines()
        .position(|l| l.starts_with("clustr"))
        .context("edited line")?
        + 1;
    let o = deployer(Some(&aws), p.path(), &render, &[]);
    assert_exit(&o, Code::Config);
    let e = stderr(&o);
    assert!(
        e.contains(&format!("deployer.toml:{line}:1: unknown field `clustr`")),
        "{e}"
    );
    assert!(e.contains("did you mean `cluster`?"), "{e}");
    p.edit("clustr = ", "cluster = ")?;

    // Wrong type.
    p.edit("desired_count = 1", "desired_count = \"one\"")?;
    let o = deployer(Some(&aws), p.path(), &render, &[]);
    assert_exit(&o, Code::Config);
    assert_stderr_has(&o, "invalid type: string \"one\", expected u32");
    assert_stderr_has(&o, "write the number without quotes");
    p.edit("desired_count = \"one\"", "desired_count = 1")?;

    // Wrong type through an environment variable names the variable.
    let o = deployer(
        Some(&aws),
        p.path(),
        &render,
        &[(
            "DEPLOYER_ENVIRONMENTS__TEST__SERVICES__0__DESIRED_COUNT",
            "many",
        )],
    );
    assert_exit(&o, Code::Config);
    assert_stderr_has(
        &o,
        "DEPLOYER_ENVIRONMENTS__TEST__SERVICES__0__DESIRED_COUNT",
    );
    // The value itself is not echoed: environment overrides may carry secrets.
    assert!(!stderr(&o).contains("many"), "{}", stderr(&o));

    // Unknown environment.
    let o = deployer(Some(&aws), p.path(), &["render", "--env", "tset"], &[]);
    assert_exit(&o, Code::Config);
    assert_stderr_has(&o, "unknown environment `tset`");
    assert_stderr_has(&o, "did you mean `test`?");

    // Unknown service.
    let o = deployer(
        Some(&aws),
        p.path(),
        &["render", "--env", "test", "--service", "nope"],
        &[],
    );
    assert_exit(&o, Code::Config);
    assert_stderr_has(&o, "service `nope` is not in environment `test`");

    assert_no_aws_writes(&aws, &p.repo).await
}

/// A template directory of the test's own (repo partials + one template).
fn templates_with(name: &str, body: &str) -> Result<tempfile::TempDir> {
    let d = tempfile::tempdir()?;
    std::fs::create_dir_all(d.path().join("partials"))?;
    for e in std::fs::read_dir(repo_templates().join("partials"))? {
        let e = e?;
        std::fs::copy(e.path(), d.path().join("partials").join(e.file_name()))?;
    }
    std::fs::write(d.path().join(format!("{name}.json.hbs")), body)?;
    Ok(d)
}

const FARGATE_OK: &str = r#"{
  "family": "t-{{service}}",
  "networkMode": "awsvpc",
  "requiresCompatibilities": ["FARGATE"],
  "cpu": "256",
  "memory": "512",
  "containerDefinitions": [{
    "name": "app",
    "image": "{{image}}",
    "environment": [{"name": "TOKEN_NAME", "value": "{{must_env "APP_TEST_REQUIRED"}}"}],
    "logConfiguration": {{> logging stream="app"}}
  }]
}"#;

#[tokio::test]
async fn template_errors_name_template_line_and_cause_without_touching_aws() -> Result<()> {
    let aws = test_support::aws().await?;
    let svc = ORCHESTRATOR.replace("template = \"orchestrator\"", "template = \"app\"");
    let render = ["render", "--env", "test", "--git-sha", "abc1234"];

    // Missing environment variable (must_env) names the variable and the template line.
    let t = templates_with("app", FARGATE_OK)?;
    let p = Project::new(t.path(), "", &svc)?;
    create_repo(&aws, &p.repo).await;
    let o = deployer(Some(&aws), p.path(), &render, &[]);
    assert_exit(&o, Code::Config);
    assert_stderr_has(&o, "cannot render template `app` at line 10");
    assert_stderr_has(&o, "environment variable `APP_TEST_REQUIRED` is required");
    // …and with it set, the same template renders.
    let o = deployer(Some(&aws), p.path(), &render, &[("APP_TEST_REQUIRED", "x")]);
    assert_exit(&o, Code::Ok);

    // Each broken template: render exits with the config code and stderr names the cause.
    let fails = |body: &str, extra: &[(&str, &str)], needles: &[&str]| -> Result<()> {
        std::fs::write(t.path().join("app.json.hbs"), body)?;
        let o = deployer(Some(&aws), p.path(), &render, extra);
        assert_exit(&o, Code::Config);
        for needle in needles {
            assert_stderr_has(&o, needle);
        }
        Ok(())
    };
    let required = [("APP_TEST_REQUIRED", "x")];

    // A secret-bearing variable cannot be put into a task definition.
    fails(
        &FARGATE_OK.replace("APP_TEST_REQUIRED", "PLATFORM_API_TOKEN"),
        &[],
        &["environment variable `PLATFORM_API_TOKEN` holds a secret"],
    )?;
    // Syntax error.
    fails(
        "{\n  \"family\": \"{{#if service}}x\"\n}\n",
        &[],
        &["syntax error in template `app`"],
    )?;
    // Strict mode: an undefined variable.
    fails(
        &FARGATE_OK.replace("{{service}}", "{{servce}}"),
        &required,
        &[
            "template `app` at line 2",
            "variable `servce` is not defined",
        ],
    )?;
    // Invalid task definition: Fargate without cpu.
    fails(
        &FARGATE_OK.replace("\"cpu\": \"256\",", ""),
        &required,
        &[
            "renders an invalid task definition",
            "cpu: Fargate tasks need a task-level cpu",
        ],
    )?;
    // A field RegisterTaskDefinition does not have.
    fails(
        &FARGATE_OK.replace("\"image\":", "\"imageUri\": \"x\", \"image\":"),
        &required,
        &["containerDefinitions[0].imageUri: unknown field `imageUri`"],
    )?;

    assert_no_aws_writes(&aws, &p.repo).await
}

#[tokio::test]
async fn no_credentials_unreachable_endpoint_and_missing_repository_are_aws_errors() -> Result<()> {
    let aws = test_support::aws().await?;
    let p = Project::new(&repo_templates(), "", ORCHESTRATOR)?;
    let args = ["render", "--env", "test", "--git-sha", "abc1234"];

    // No credentials anywhere.
    let o = deployer(None, p.path(), &args, &[("AWS_REGION", "us-east-1")]);
    assert_exit(&o, Code::Aws);
    assert_stderr_has(&o, "no AWS credentials found");
    assert_stderr_has(&o, "hint: pass --profile");

    // Unreachable endpoint (a closed port).
    let closed = format!("http://127.0.0.1:{}", test_support::free_port());
    let o = deployer(
        Some(&aws),
        p.path(),
        &[
            "verify",
            "--env",
            "test",
            "--git-sha",
            "abc1234",
            "--endpoint-url",
            &closed,
        ],
        &[],
    );
    assert_exit(&o, Code::Aws);
    assert_stderr_has(&o, "cannot reach AWS");
    assert_stderr_has(&o, "--endpoint-url");

    // Missing ECR repository: render (looks the image up) and push.
    let o = deployer(Some(&aws), p.path(), &args, &[]);
    assert_exit(&o, Code::Aws);
    assert_stderr_has(&o, &format!("ECR repository `{}` does not exist", p.repo));

    assert_no_aws_writes(&aws, &p.repo).await
}

// ------------------------------------------------------------------ render + diff against real DescribeTaskDefinition output

#[tokio::test]
async fn diff_is_empty_after_registering_the_rendered_definition_and_shows_exactly_a_changed_field()
-> Result<()> {
    let aws = test_support::aws().await?;
    let p = Project::new(&repo_templates(), "", ORCHESTRATOR)?;
    let uri = create_repo(&aws, &p.repo).await;
    let image = format!("{uri}@sha256:{}", "a".repeat(64));
    let ecs = aws_sdk_ecs::Client::new(&aws.config);
    ecs.create_cluster().cluster_name(&p.cluster).send().await?;

    // Render exactly what would be registered, and register it as the release would.
    let o = render_orchestrator(&aws, &p, "abc1234", &["--image", &image]);
    let rendered = json(&o)?;
    assert_eq!(rendered["family"], "agentic-test-orchestrator");
    assert_eq!(rendered["containerDefinitions"][0]["image"], image.as_str());
    let td = taskdef_from_json(&rendered).map_err(anyhow::Error::msg)?;
    let registered = register_request(&td, &ecs, &[("git-sha".into(), "abc1234".into())])?
        .send()
        .await?;
    let arn = registered
        .task_definition()
        .and_then(|t| t.task_definition_arn())
        .context("arn")?
        .to_string();
    ecs.create_service()
        .cluster(&p.cluster)
        .service_name("orchestrator")
        .task_definition(&arn)
        .desired_count(1)
        .send()
        .await?;

    let diff = [
        "diff",
        "--env",
        "test",
        "--image",
        &image,
        "--git-sha",
        "abc1234",
    ];
    let o = deployer(Some(&aws), p.path(), &diff, &[]);
    assert_exit(&o, Code::Ok);
    assert!(
        stdout(&o).contains("orchestrator: no changes"),
        "{}",
        stdout(&o)
    );
    assert!(!stdout(&o).contains("@@"), "{}", stdout(&o));

    // One field changes: the diff shows exactly that line and says a deployment is needed.
    let o = deployer(
        Some(&aws),
        p.path(),
        &diff,
        &[("DEPLOYER_PROJECT__VARS__LOG_LEVEL", "debug")],
    );
    assert_exit(&o, Code::Changes);
    let text = stdout(&o);
    let changed: Vec<String> = text
        .lines()
        .filter(|l| {
            (l.starts_with('+') || l.starts_with('-'))
                && !l.starts_with("+++")
                && !l.starts_with("---")
        })
        .map(|l| format!("{}{}", &l[..1], l[1..].trim()))
        .collect();
    assert_eq!(
        changed,
        vec!["-\"value\": \"info\"", "+\"value\": \"debug\""],
        "{text}"
    );
    assert!(
        text.contains("a new revision and a new deployment are needed"),
        "{text}"
    );

    let mut json_args = diff.to_vec();
    json_args.extend(["-o", "json"]);
    let v = run_json(
        &aws,
        &p,
        &json_args,
        &[("DEPLOYER_PROJECT__VARS__LOG_LEVEL", "debug")],
        Code::Changes,
    )?;
    let s = &v["services"][0];
    assert_eq!(s["needs_deployment"], true);
    assert_eq!(
        s["changed_fields"],
        serde_json::json!(["containerDefinitions[orchestrator].environment[RUST_LOG].value"])
    );

    // A service setting only (desired count): a change, but no new deployment.
    let o = deployer(
        Some(&aws),
        p.path(),
        &json_args,
        &[(
            "DEPLOYER_ENVIRONMENTS__TEST__SERVICES__0__DESIRED_COUNT",
            "3",
        )],
    );
    assert_exit(&o, Code::Changes);
    let v = json(&o)?;
    assert_eq!(v["services"][0]["needs_deployment"], false);
    assert_eq!(
        v["services"][0]["service_changes"],
        serde_json::json!(["desiredCount 1 → 3"])
    );

    // Nothing was registered by diff: still the one revision.
    let tds = ecs.list_task_definitions().send().await?;
    assert_eq!(tds.task_definition_arns().len(), 1);
    Ok(())
}

// ------------------------------------------------------------------ verify

struct Lb {
    tg: String,
    alt_tg: String,
}

/// Two target groups. Lambda-type ones: they need no VPC, so moto never instantiates EC2 for the
/// account (its default data makes moto's state dump megabytes larger per account).
async fn target_groups(aws: &TestAws) -> Result<Lb> {
    use aws_sdk_elasticloadbalancingv2::types::TargetTypeEnum;
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&aws.config);
    let mut tgs = Vec::new();
    for n in ["blue", "green"] {
        let tg = elb
            .create_target_group()
            .name(test_support::unique(&format!("{n}-")))
            .target_type(TargetTypeEnum::Lambda)
            .send()
            .await?;
        tgs.push(
            tg.target_groups()[0]
                .target_group_arn()
                .context("tg arn")?
                .to_string(),
        );
    }
    Ok(Lb {
        tg: tgs[0].clone(),
        alt_tg: tgs[1].clone(),
    })
}

#[tokio::test]
async fn verify_passes_on_a_matching_environment_and_names_each_failure() -> Result<()> {
    use aws_sdk_ecs::types::{
        AdvancedConfiguration, DeploymentConfiguration, DeploymentStrategy, LoadBalancer,
    };
    let aws = test_support::aws().await?;
    let lb = target_groups(&aws).await?;
    let role = "arn:aws:iam::123456789012:role/ecs-infrastructure";
    let svc = format!(
        r#"[[environments.test.services]]
name = "orchestrator"
template = "orchestrator"
strategy = "blue_green"
desired_count = 1
hooks = [{{ stage = "POST_TEST_TRAFFIC_SHIFT" }}]
load_balancer = {{ container_name = "orchestrator", container_port = 3000, target_group_arn = "{}", alternate_target_group_arn = "{}", role_arn = "{role}" }}
"#,
        lb.tg, lb.alt_tg
    );
    let p = Project::new(
        &repo_templates(),
        "migration = { template = \"migration\", container = \"migrate\" }\n",
        &svc,
    )?;
    let git_sha = sha();
    create_repo(&aws, &p.repo).await;
    let ecs = aws_sdk_ecs::Client::new(&aws.config);
    ecs.create_cluster().cluster_name(&p.cluster).send().await?;
    let td_arn = register_orchestrator(&ecs, "x").await;
    let lb_cfg = LoadBalancer::builder()
        .target_group_arn(&lb.tg)
        .container_name("orchestrator")
        .container_port(3000)
        .advanced_configuration(
            AdvancedConfiguration::builder()
                .alternate_target_group_arn(&lb.alt_tg)
                .role_arn(role)
                .build(),
        )
        .build();
    ecs.create_service()
        .cluster(&p.cluster)
        .service_name("orchestrator")
        .task_definition(&td_arn)
        .desired_count(1)
        .load_balancers(lb_cfg)
        .send()
        .await?;
    let verify = json_for("verify", &git_sha);

    // Before: the service is ROLLING (moto's create_service drops deploymentConfiguration) and the
    // image is not in ECR: two named failures, exit 4.
    let v = run_json(&aws, &p, &verify, &[], Code::Preflight)?;
    let failed: Vec<(String, String)> = v["checks"]
        .as_array()
        .context("checks")?
        .iter()
        .filter(|c| c["status"] == "fail")
        .map(|c| {
            (
                c["name"].as_str().unwrap_or_default().to_string(),
                c["detail"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let names: Vec<&str> = failed.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        vec!["image", "service orchestrator strategy"],
        "{failed:#?}"
    );
    assert!(failed[0].1.contains("is not in ECR"), "{failed:?}");
    assert!(
        failed[1]
            .1
            .contains("service uses ROLLING, deployer.toml says BLUE_GREEN"),
        "{failed:?}"
    );

    // Fix both: push an image manifest to ECR and switch the service to BLUE_GREEN.
    put_image(&aws_sdk_ecr::Client::new(&aws.config), &p.repo, &git_sha).await;
    ecs.update_service()
        .cluster(&p.cluster)
        .service("orchestrator")
        .deployment_configuration(
            DeploymentConfiguration::builder()
                .strategy(DeploymentStrategy::BlueGreen)
                .bake_time_in_minutes(1)
                .build(),
        )
        .send()
        .await?;
    let v = run_json(&aws, &p, &verify, &[], Code::Ok)?;
    let checks: Vec<(String, String)> = v["checks"]
        .as_array()
        .context("checks")?
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap_or_default().to_string(),
                c["status"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    for want in [
        "config",
        "image",
        "template orchestrator",
        "template migration",
        "cluster",
        "service orchestrator",
        "service orchestrator strategy",
        "service orchestrator load balancer",
        "service orchestrator target groups",
    ] {
        assert!(
            checks.iter().any(|(n, s)| n == want && s == "pass"),
            "`{want}` did not pass: {checks:#?}"
        );
    }
    // With or without the lifecycle plugin, the idle check runs (pass, or warn when the endpoint
    // lacks ListServiceDeployments) and never fails on an idle service.
    assert!(
        checks
            .iter()
            .any(|(n, s)| n == "service orchestrator idle" && s != "fail"),
        "{checks:#?}"
    );

    // Text output: a line per check with its verdict.
    let o = deployer(
        Some(&aws),
        p.path(),
        &["verify", "--env", "test", "--git-sha", &git_sha],
        &[],
    );
    assert_exit(&o, Code::Ok);
    assert!(
        stdout(&o).contains("PASS  service orchestrator load balancer"),
        "{}",
        stdout(&o)
    );
    assert!(
        stdout(&o).contains("preflight for test passed"),
        "{}",
        stdout(&o)
    );

    // A missing cluster fails (and stops the service checks).
    let v = run_json(
        &aws,
        &p,
        &verify,
        &[("DEPLOYER_ENVIRONMENTS__TEST__CLUSTER", "no-such-cluster")],
        Code::Preflight,
    )?;
    let check = |v: &Value, name: &str| {
        v["checks"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["name"] == name).cloned())
            .unwrap_or_default()
    };
    let cluster = check(&v, "cluster");
    assert_eq!(cluster["status"], "fail");
    assert!(
        cluster["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("no-such-cluster"),
        "{cluster}"
    );

    // Listener rules in the config that the service does not use and ELBv2 does not have: the
    // load-balancer check names the drifting field, the rules check says they do not exist.
    let rule = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/lb/0123456789abcdef/0123456789abcdef/0123456789abcdef";
    let o = deployer(
        Some(&aws),
        p.path(),
        &verify,
        &[
            (
                "DEPLOYER_ENVIRONMENTS__TEST__SERVICES__0__LOAD_BALANCER__PRODUCTION_LISTENER_RULE",
                rule,
            ),
            (
                "DEPLOYER_ENVIRONMENTS__TEST__SERVICES__0__LOAD_BALANCER__TEST_LISTENER_RULE",
                rule,
            ),
        ],
    );
    assert_exit(&o, Code::Preflight);
    let v = json(&o)?;
    let lb_check = check(&v, "service orchestrator load balancer");
    assert_eq!(lb_check["status"], "fail");
    assert!(
        lb_check["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("advancedConfiguration.testListenerRule is unset"),
        "{lb_check}"
    );
    let rules = check(&v, "service orchestrator listener rules");
    assert_eq!(rules["status"], "fail", "{rules}");
    assert!(
        rules["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("RuleNotFound"),
        "{rules}"
    );
    Ok(())
}

// ------------------------------------------------------------------ build + push (Docker engine, local registry)

fn tiny_context(p: &Project, dockerfile: &str) -> Result<()> {
    std::fs::write(p.path().join("Dockerfile.production"), dockerfile)?;
    std::fs::write(p.path().join("marker.txt"), test_support::unique("m"))?;
    Ok(())
}

#[tokio::test]
async fn build_tags_the_image_with_labels_and_push_is_idempotent() -> Result<()> {
    let aws = test_support::aws().await?;
    let registry = test_support::registry().await?;
    let p = Project::new(
        &repo_templates(),
        &format!("registry = \"{registry}\"\n"),
        ORCHESTRATOR,
    )?;
    tiny_context(
        &p,
        "FROM scratch\nARG GIT_SHA\nARG VERSION\nCOPY marker.txt /marker.txt\n",
    )?;
    let git_sha = sha();

    let built = run_json(
        &aws,
        &p,
        &["build", "--git-sha", &git_sha, "-o", "json"],
        &[("VERSION", "1.2.3")],
        Code::Ok,
    )?;
    let tag = format!("{}:{git_sha}", p.repo);
    assert_eq!(built["image"], tag.as_str());
    let docker = bollard::Docker::connect_with_local_defaults()?
        .negotiate_version()
        .await?;
    let inspect = docker.inspect_image(&tag).await?;
    assert_eq!(inspect.id.as_deref(), built["id"].as_str());
    let labels = inspect.config.and_then(|c| c.labels).unwrap_or_default();
    assert_eq!(
        labels.get("org.opencontainers.image.revision"),
        Some(&git_sha)
    );
    assert_eq!(
        labels
            .get("org.opencontainers.image.version")
            .map(String::as_str),
        Some("1.2.3")
    );
    assert_eq!(inspect.architecture.as_deref(), Some("amd64"));

    // Push to a repository that does not exist: an AWS error, nothing pushed.
    let o = deployer(
        Some(&aws),
        p.path(),
        &["push", "--env", "test", "--git-sha", &git_sha],
        &[],
    );
    assert_exit(&o, Code::Aws);
    assert_stderr_has(&o, "does not exist");
    assert_no_aws_writes(&aws, &p.repo).await?;

    // Push: layers to the local registry, manifest recorded in ECR, digest reported.
    create_repo(&aws, &p.repo).await;
    let push = json_for("push", &git_sha);
    let pushed = run_json(&aws, &p, &push, &[], Code::Ok)?;
    assert_eq!(pushed["skipped"], false);
    let digest = pushed["digest"].as_str().context("digest")?.to_string();
    assert!(digest.starts_with("sha256:"), "{pushed}");
    assert!(
        pushed["image_with_digest"]
            .as_str()
            .unwrap_or_default()
            .ends_with(&format!("/{}@{digest}", p.repo))
    );
    let resp = reqwest::Client::new()
        .head(format!(
            "http://{registry}/v2/{}/manifests/{git_sha}",
            p.repo
        ))
        .header(
            "Accept",
            "application/vnd.docker.distribution.manifest.v2+json",
        )
        .send()
        .await?;
    assert!(
        resp.status().is_success(),
        "manifest in the local registry: {}",
        resp.status()
    );
    assert_eq!(
        resp.headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok()),
        Some(digest.as_str())
    );
    let ecr = aws_sdk_ecr::Client::new(&aws.config);
    let images = ecr.list_images().repository_name(&p.repo).send().await?;
    let ids: Vec<(Option<&str>, Option<&str>)> = images
        .image_ids()
        .iter()
        .map(|i| (i.image_tag(), i.image_digest()))
        .collect();
    assert_eq!(ids, vec![(Some(git_sha.as_str()), Some(digest.as_str()))]);

    // Again: same image already there, nothing pushed.
    let again = run_json(&aws, &p, &push, &[], Code::Ok)?;
    assert_eq!(again["skipped"], true);
    assert_eq!(again["digest"], digest.as_str());

    // verify now finds the image, and render uses it by digest.
    let o = render_orchestrator(&aws, &p, &git_sha, &[]);
    let td = json(&o)?;
    assert!(
        td["containerDefinitions"][0]["image"]
            .as_str()
            .unwrap_or_default()
            .ends_with(&format!("@{digest}")),
        "{td}"
    );
    Ok(())
}

#[tokio::test]
async fn a_failing_build_and_a_missing_local_image_are_image_errors() -> Result<()> {
    let aws = test_support::aws().await?;
    let p = Project::new(&repo_templates(), "", ORCHESTRATOR)?;
    tiny_context(&p, "FROM scratch\nCOPY does-not-exist.txt /x\n")?;
    let git_sha = sha();
    let o = deployer(
        Some(&aws),
        p.path(),
        &["build", "--git-sha", &git_sha],
        &[("CI", "true")],
    );
    assert_exit(&o, Code::Image);
    assert_stderr_has(&o, "docker build of");
    assert_stderr_has(&o, "does-not-exist.txt");

    create_repo(&aws, &p.repo).await;
    let o = deployer(
        Some(&aws),
        p.path(),
        &["push", "--env", "test", "--git-sha", &git_sha],
        &[],
    );
    assert_exit(&o, Code::Image);
    assert_stderr_has(&o, "does not exist");
    assert_stderr_has(&o, "deployer build");
    assert_no_aws_writes(&aws, &p.repo).await
}

/// With the lifecycle plugin (tests/moto), a service deployment that has not finished makes the
/// preflight fail, naming the deployment.
#[tokio::test]
async fn verify_fails_while_a_service_deployment_is_in_progress() -> Result<()> {
    let aws = test_support::aws().await?;
    let p = Project::new(&repo_templates(), "", ORCHESTRATOR)?;
    let git_sha = sha();
    create_repo(&aws, &p.repo).await;
    put_image(&aws_sdk_ecr::Client::new(&aws.config), &p.repo, &git_sha).await;
    // Slow stages, so the deployment below stays in progress while verify runs.
    plugin_config(&aws, serde_json::json!({"stage_seconds": 600})).await;
    let ecs = aws_sdk_ecs::Client::new(&aws.config);
    ecs.create_cluster().cluster_name(&p.cluster).send().await?;
    let mut arns = Vec::new();
    for image in ["x:1", "x:2"] {
        arns.push(register_orchestrator(&ecs, image).await);
    }
    create_service(&ecs, &p.cluster, "orchestrator", &arns[0], 1).await;
    let verify = json_for("verify", &git_sha);
    let idle = |o: &Output| -> Result<Value> {
        let v = json(o)?;
        v["checks"]
            .as_array()
            .and_then(|c| {
                c.iter()
                    .find(|c| c["name"] == "service orchestrator idle")
                    .cloned()
            })
            .context("idle check")
    };
    ecs.update_service()
        .cluster(&p.cluster)
        .service("orchestrator")
        .task_definition(&arns[1])
        .send()
        .await?;
    let o = deployer(Some(&aws), p.path(), &verify, &[]);
    assert_exit(&o, Code::Preflight);
    let check = idle(&o)?;
    assert_eq!(check["status"], "fail", "{check}");
    let detail = check["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("deployment in progress") && detail.contains("service-deployment"),
        "{detail}"
    );
    Ok(())
}
