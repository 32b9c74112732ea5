//! The release engine. See the module docs of `release` for the flow.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use aws_sdk_ecs::types::{
    AwsVpcConfiguration, ContainerOverride, DeploymentCircuitBreaker, DeploymentConfiguration,
    DeploymentLifecycleHook, DeploymentLifecycleHookAction, DeploymentLifecycleHookStage,
    DeploymentLifecycleHookTargetType, DeploymentLifecycleHookTimeoutConfiguration,
    DeploymentStrategy, LaunchType, NetworkConfiguration, TaskOverride,
};
use serde_json::Value;
use tokio::sync::watch;

use super::Outcome;
use super::report::{self, Reporter};
use crate::audit::{self, AuditTable, ReleaseRecord, ServiceRecord};
use crate::config::{self, Config, Environment, SmokeTarget, Strategy};
use crate::ecs_deploy::{self, DeploymentView, Poller};
use crate::lock::{self, DeployLock, LockError, LockRequest};
use crate::smoke::{self, CheckResult, SmokeCheck, Vars};

/// Everything a release needs: the resolved config, AWS clients, output, and the cancel signal.
pub struct Ctx {
    pub cfg: Config,
    pub env_name: String,
    pub env: Environment,
    pub ecs: aws_sdk_ecs::Client,
    pub ecr: aws_sdk_ecr::Client,
    pub ddb: aws_sdk_dynamodb::Client,
    pub http: reqwest::Client,
    pub report: Reporter,
    /// Flips to true on Ctrl-C / SIGTERM.
    pub cancel: watch::Receiver<bool>,
    pub stats: Mutex<Stats>,
    /// The release being run, so deployment ARNs reach the audit table as soon as they exist
    /// (what `--resume` and `status` need when this process dies).
    pub open_record: Mutex<Option<ReleaseRecord>>,
}

#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Stats {
    /// From a hook appearing (its expiresAt minus its timeout) to our ContinueServiceDeployment.
    pub hook_to_action_ms: Vec<f64>,
    /// From a hook appearing to the deployer noticing it.
    pub hook_detect_ms: Vec<f64>,
    pub smoke: Vec<(String, CheckResult)>,
    pub polls: u64,
}

impl Ctx {
    pub fn new(
        cfg: Config,
        env_name: &str,
        sdk: &aws_config::SdkConfig,
        quiet: bool,
        cancel: watch::Receiver<bool>,
    ) -> Result<Self, config::ConfigError> {
        let env = cfg.environment(env_name)?.clone();
        Ok(Self {
            cfg,
            env_name: env_name.to_owned(),
            env,
            ecs: aws_sdk_ecs::Client::new(sdk),
            ecr: aws_sdk_ecr::Client::new(sdk),
            ddb: aws_sdk_dynamodb::Client::new(sdk),
            http: reqwest::Client::builder()
                .user_agent(concat!("deployer/", env!("CARGO_PKG_VERSION")))
                .build()
                .expect("an HTTP client"),
            report: Reporter::new(quiet),
            cancel,
            stats: Mutex::new(Stats::default()),
            open_record: Mutex::new(None),
        })
    }

    /// Writes a just-started deployment's ARN into the open audit record.
    async fn note_deployment(&self, service: &str, arn: &str) {
        let rec = {
            let mut guard = self.open_record.lock().expect("open record");
            let Some(rec) = guard.as_mut() else { return };
            if let Some(s) = rec.services.iter_mut().find(|s| s.service == service) {
                s.deployment_arn = arn.to_owned();
                s.status = "IN_PROGRESS".into();
            }
            rec.clone()
        };
        if let Err(e) = self.audit().put(&rec).await {
            self.report
                .line(&format!("warning: audit record not updated: {e:#}"));
        }
    }

    fn cancelled(&self) -> bool {
        *self.cancel.borrow()
    }

    pub fn lock(&self) -> DeployLock {
        DeployLock::new(
            self.ddb.clone(),
            &self.env.lock_table,
            &self.env_name,
            self.env.timeouts.lock_ttl,
        )
    }

    pub fn audit(&self) -> AuditTable {
        AuditTable::new(self.ddb.clone(), &self.env.audit_table)
    }

    fn token(&self) -> Option<&str> {
        self.env.api_token.as_ref().map(config::expose)
    }

    fn smoke_checks(&self, svc: &config::Service, place: SmokeTarget) -> Vec<SmokeCheck> {
        let names = svc.smoke_checks.clone();
        if names.is_none() && svc.agent_kind.is_some() {
            // Agent services are gated by the agent gate, not HTTP checks, unless named.
            return vec![];
        }
        self.env
            .smoke_checks
            .iter()
            .filter(|c| c.target == place || c.target == SmokeTarget::Both)
            .filter(|c| names.as_ref().is_none_or(|n| n.contains(&c.name)))
            .map(|c| SmokeCheck::from_config(c, self.token()))
            .collect()
    }

    fn record_smoke(&self, place: &str, r: &smoke::SmokeReport) {
        let mut s = self.stats.lock().expect("stats");
        for c in &r.results {
            s.smoke.push((place.to_owned(), c.clone()));
        }
    }
}

/// Flags of `deployer release`.
#[derive(Debug, Clone, Default)]
pub struct ReleaseArgs {
    pub git_sha: Option<String>,
    pub image: Option<String>,
    /// Fail preflight when the image is not in ECR instead of building and pushing it.
    pub no_build: bool,
    pub resume: bool,
    pub wait_lock: Option<Duration>,
}

/// One service's part of a release.
#[derive(Debug, Clone)]
pub(crate) struct ServicePlan {
    pub svc: config::Service,
    pub target_td: String,
    pub previous_td: String,
    pub git_sha: String,
    /// Set when re-attaching to a deployment already in flight.
    pub deployment_arn: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct ServiceResult {
    pub name: String,
    pub outcome: Outcome,
    pub reason: String,
    pub deployment_arn: String,
    pub status: String,
}

/// Template variables for one task definition (`crate::vars::for_service`) plus the release id.
pub(crate) fn template_vars(
    ctx: &Ctx,
    svc: Option<&config::Service>,
    image: &str,
    git_sha: &str,
    release_id: &str,
) -> Result<Value> {
    let tf = crate::vars::tf_outputs(&ctx.cfg, &ctx.env).map_err(|f| f.error)?;
    let release = crate::vars::Release {
        git_sha: git_sha.to_owned(),
        version: crate::vars::version(&ctx.cfg.root, git_sha),
        image: (!image.is_empty()).then(|| image.to_owned()),
    };
    let mut v = crate::vars::for_service(
        &ctx.cfg,
        &ctx.env_name,
        &ctx.env,
        svc,
        &release,
        tf.as_ref(),
    );
    if let Some(m) = v.as_object_mut() {
        m.insert("release_id".into(), Value::String(release_id.to_owned()));
    }
    Ok(v)
}

/// Registers a rendered task definition with the release's tags; returns its ARN.
pub(crate) async fn register(
    ctx: &Ctx,
    template: &str,
    vars: &Value,
    git_sha: &str,
    release_id: &str,
) -> Result<String> {
    let renderer =
        crate::render::Renderer::new(&ctx.cfg.templates_dir()).map_err(|e| anyhow!("{e}"))?;
    let td = renderer
        .render_typed(template, vars)
        .map_err(|e| anyhow!("{e}"))?;
    let tags = vec![
        ("git_sha".to_owned(), git_sha.to_owned()),
        ("release_id".to_owned(), release_id.to_owned()),
        (
            "deployer_version".to_owned(),
            env!("CARGO_PKG_VERSION").to_owned(),
        ),
    ];
    let req = crate::taskdef::register_request(&td, &ctx.ecs, &tags)
        .map_err(|e| anyhow!("building RegisterTaskDefinition for {template}: {e}"))?;
    let out = req
        .send()
        .await
        .with_context(|| format!("RegisterTaskDefinition ({template})"))?;
    out.task_definition()
        .and_then(|t| t.task_definition_arn())
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("RegisterTaskDefinition returned no ARN"))
}

/// The ECS deployment configuration the service's strategy and hooks call for.
pub(crate) fn deployment_configuration(
    ctx: &Ctx,
    svc: &config::Service,
) -> DeploymentConfiguration {
    let breaker = DeploymentCircuitBreaker::builder()
        .enable(true)
        .rollback(true)
        .build();
    match svc.strategy {
        Strategy::Rolling => DeploymentConfiguration::builder()
            .strategy(DeploymentStrategy::Rolling)
            .deployment_circuit_breaker(breaker)
            .minimum_healthy_percent(100)
            .maximum_percent(200)
            .build(),
        Strategy::BlueGreen => {
            let mut stages: Vec<(String, Option<Duration>)> = svc
                .hooks
                .iter()
                .map(|h| (h.stage.clone(), h.timeout))
                .collect();
            if stages.is_empty() {
                let default = if svc.load_balancer.is_some() {
                    "POST_TEST_TRAFFIC_SHIFT"
                } else {
                    "POST_SCALE_UP"
                };
                stages.push((default.into(), None));
            }
            let mut b = DeploymentConfiguration::builder()
                .strategy(DeploymentStrategy::BlueGreen)
                .deployment_circuit_breaker(breaker)
                .bake_time_in_minutes(super::minutes_ceil(
                    svc.bake_time.unwrap_or(Duration::ZERO),
                    0,
                ));
            for (stage, timeout) in stages {
                b = b.lifecycle_hooks(
                    DeploymentLifecycleHook::builder()
                        .target_type(DeploymentLifecycleHookTargetType::Pause)
                        .lifecycle_stages(DeploymentLifecycleHookStage::from(stage.as_str()))
                        .timeout_configuration(
                            DeploymentLifecycleHookTimeoutConfiguration::builder()
                                .timeout_in_minutes(super::minutes_ceil(
                                    timeout.unwrap_or(ctx.env.timeouts.hook),
                                    1,
                                ))
                                .action(DeploymentLifecycleHookAction::Rollback)
                                .build(),
                        )
                        .build(),
                );
            }
            b.build()
        }
    }
}

async fn current_task_definition(ctx: &Ctx, service: &str) -> Result<Option<String>> {
    let out = ctx
        .ecs
        .describe_services()
        .cluster(&ctx.env.cluster)
        .services(service)
        .send()
        .await
        .with_context(|| format!("DescribeServices {service}"))?;
    Ok(out
        .services()
        .iter()
        .find(|s| s.status() != Some("INACTIVE"))
        .and_then(|s| s.task_definition())
        .map(str::to_owned))
}

/// Recent service events and the target revision's stopped tasks: the "why" of a failure.
async fn explain_service(ctx: &Ctx, service: &str) -> String {
    let mut lines = Vec::new();
    if let Ok(out) = ctx
        .ecs
        .describe_services()
        .cluster(&ctx.env.cluster)
        .services(service)
        .send()
        .await
        && let Some(s) = out.services().first()
    {
        for e in s.events().iter().take(5) {
            lines.push(format!("    event: {}", e.message().unwrap_or_default()));
        }
    }
    lines.join("\n")
}

/// Why [`resolve_image`] found no image.
#[derive(Debug)]
pub(crate) enum ImageError {
    /// The repository answered, but the image is not in it (a release can build it).
    Missing(String),
    Other(String),
}

impl std::fmt::Display for ImageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ImageError::Missing(m) | ImageError::Other(m) => f.write_str(m),
        }
    }
}

/// Image URI for the release and its digest when it is in the environment's ECR repository.
pub(crate) async fn resolve_image(
    ctx: &Ctx,
    flag: Option<&str>,
    git_sha: &str,
) -> Result<(String, String), ImageError> {
    let repo = ctx.cfg.ecr_repository(&ctx.env).to_owned();
    let described = ctx
        .ecr
        .describe_repositories()
        .repository_names(&repo)
        .send()
        .await;
    let uri = match described {
        Ok(out) => out
            .repositories()
            .first()
            .and_then(|r| r.repository_uri())
            .map(str::to_owned)
            .unwrap_or_default(),
        Err(e) => {
            return Err(ImageError::Other(format!(
                "the ECR repository '{repo}' is not reachable ({}); create it (terraform) or fix ecr_repository",
                aws_err(&e)
            )));
        }
    };
    let image = flag
        .map(str::to_owned)
        .unwrap_or_else(|| format!("{uri}:{git_sha}"));
    let reference = image
        .strip_prefix(&format!("{uri}@"))
        .map(|d| (None, Some(d.to_owned())))
        .or_else(|| {
            image
                .strip_prefix(&format!("{uri}:"))
                .map(|t| (Some(t.to_owned()), None))
        });
    let Some((tag, digest)) = reference else {
        // Outside this environment's repository: nothing to check against ECR.
        return Ok((image, String::new()));
    };
    let id = aws_sdk_ecr::types::ImageIdentifier::builder()
        .set_image_tag(tag)
        .set_image_digest(digest)
        .build();
    match ctx
        .ecr
        .describe_images()
        .repository_name(&repo)
        .image_ids(id)
        .send()
        .await
    {
        Ok(out) if !out.image_details().is_empty() => Ok((
            image,
            out.image_details()[0]
                .image_digest()
                .unwrap_or_default()
                .to_owned(),
        )),
        Ok(_) => Err(ImageError::Missing(format!(
            "the image {image} is not in ECR; build and push it first (`deployer build && deployer push --env {}`), pass --image, or drop --no-build",
            ctx.env_name
        ))),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_image_not_found_exception()) =>
        {
            Err(ImageError::Missing(format!(
                "the image {image} is not in ECR ({}); build and push it first (`deployer build && deployer push --env {}`), pass --image, or drop --no-build",
                aws_err(&e),
                ctx.env_name
            )))
        }
        Err(e) => Err(ImageError::Other(format!(
            "looking up the image {image} in ECR failed ({}); check the AWS credentials and ecr_repository",
            aws_err(&e)
        ))),
    }
}

/// `deployer build` then `deployer push` for the release's sha, with the project's build settings
/// and the environment's repository (and registry override).
async fn build_and_push(ctx: &Ctx, git_sha: &str) -> Result<(), crate::exit::Failure> {
    let repo = ctx.cfg.ecr_repository(&ctx.env);
    let opts =
        crate::image::BuildOptions::for_project(&ctx.cfg, repo, git_sha, None, None, None, false)?;
    let docker = crate::image::docker().await?;
    let started = Instant::now();
    let built = crate::image::build(&docker, &opts).await?;
    ctx.report.line(&format!(
        "built {} ({}) in {:.1}s",
        built.image,
        built.id,
        started.elapsed().as_secs_f64()
    ));
    let pushed = crate::image::push(
        &docker,
        &ctx.ecr,
        &crate::image::EcrAuthCache::new(),
        &crate::image::PushOptions {
            repository: repo,
            git_sha,
            registry_override: ctx.env.registry.as_deref(),
        },
    )
    .await?;
    ctx.report.line(&format!(
        "pushed {} to {} digest {}",
        pushed.image, pushed.registry, pushed.digest
    ));
    Ok(())
}

fn aws_err<E: std::error::Error + 'static>(e: &E) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s = format!("{s}: {inner}");
        src = inner.source();
    }
    s
}

/// Preflight for a release: cluster and services exist, nothing in flight. Returns the
/// services' current task definitions.
async fn preflight(
    ctx: &Ctx,
    check_in_flight: bool,
) -> Result<BTreeMap<String, String>, Vec<String>> {
    let mut problems = Vec::new();
    let mut current = BTreeMap::new();
    match ctx
        .ecs
        .describe_clusters()
        .clusters(&ctx.env.cluster)
        .send()
        .await
    {
        Ok(out) if out.clusters().iter().any(|c| c.status() == Some("ACTIVE")) => {
            ctx.report
                .line(&format!("pass  cluster {} is ACTIVE", ctx.env.cluster));
        }
        Ok(_) => problems.push(format!(
            "cluster {} does not exist or is not ACTIVE (terraform apply creates it)",
            ctx.env.cluster
        )),
        Err(e) => problems.push(format!(
            "DescribeClusters {} failed: {}",
            ctx.env.cluster,
            aws_err(&e)
        )),
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    for svc in &ctx.env.services {
        match current_task_definition(ctx, &svc.name).await {
            Ok(Some(td)) => {
                match ecs_deploy::list_deployments(&ctx.ecs, &ctx.env.cluster, &svc.name, true)
                    .await
                {
                    Ok(in_flight) if check_in_flight && !in_flight.is_empty() => problems.push(format!(
                        "service {} has a deployment in progress ({}); wait for it, `deployer release --resume --env {}` or `deployer rollback --env {}`",
                        svc.name, in_flight[0].0, ctx.env_name, ctx.env_name
                    )),
                    Ok(_) => {
                        ctx.report.line(&format!(
                            "pass  service {} runs {}",
                            svc.name,
                            crate::history::short_td(&td)
                        ));
                        current.insert(svc.name.clone(), td);
                    }
                    Err(e) => problems.push(format!("{e:#}")),
                }
            }
            Ok(None) => problems.push(format!(
                "service {} does not exist in cluster {} (terraform apply creates it)",
                svc.name, ctx.env.cluster
            )),
            Err(e) => problems.push(format!("{e:#}")),
        }
    }
    if problems.is_empty() {
        Ok(current)
    } else {
        Err(problems)
    }
}

/// Runs the migration as a one-off task and waits for exit code 0.
async fn run_migration(
    ctx: &Ctx,
    image: &str,
    git_sha: &str,
    release_id: &str,
) -> Result<String, String> {
    let Some(m) = &ctx.env.migration else {
        return Ok(String::new());
    };
    let vars =
        template_vars(ctx, None, image, git_sha, release_id).map_err(|e| format!("{e:#}"))?;
    let td = register(ctx, &m.template, &vars, git_sha, release_id)
        .await
        .map_err(|e| format!("{e:#}"))?;
    let mut req = ctx
        .ecs
        .run_task()
        .cluster(&ctx.env.cluster)
        .task_definition(&td)
        .launch_type(LaunchType::Fargate)
        .started_by(format!("deployer/{release_id}"));
    if let Some(net) = &ctx.env.network {
        req = req.network_configuration(
            NetworkConfiguration::builder()
                .awsvpc_configuration(
                    AwsVpcConfiguration::builder()
                        .set_subnets(Some(net.subnets.clone()))
                        .set_security_groups(Some(net.security_groups.clone()))
                        .assign_public_ip(if net.assign_public_ip {
                            aws_sdk_ecs::types::AssignPublicIp::Enabled
                        } else {
                            aws_sdk_ecs::types::AssignPublicIp::Disabled
                        })
                        .build()
                        .map_err(|e| e.to_string())?,
                )
                .build(),
        );
    }
    if !m.command.is_empty() {
        let container = m.container.clone().unwrap_or_else(|| "migrate".into());
        req = req.overrides(
            TaskOverride::builder()
                .container_overrides(
                    ContainerOverride::builder()
                        .name(container)
                        .set_command(Some(m.command.clone()))
                        .build(),
                )
                .build(),
        );
    }
    let out = req
        .send()
        .await
        .map_err(|e| format!("RunTask (migration): {}", aws_err(&e)))?;
    if let Some(f) = out.failures().first() {
        return Err(format!(
            "RunTask (migration) failed: {} {}",
            f.reason().unwrap_or_default(),
            f.detail().unwrap_or_default()
        ));
    }
    let task_arn = out
        .tasks()
        .first()
        .and_then(|t| t.task_arn())
        .ok_or("RunTask (migration) started no task")?
        .to_owned();
    ctx.report
        .line(&format!("migration task {task_arn} started"));
    let deadline = Instant::now() + ctx.env.timeouts.migration;
    let mut interval = Duration::from_millis(100);
    loop {
        let d = ctx
            .ecs
            .describe_tasks()
            .cluster(&ctx.env.cluster)
            .tasks(&task_arn)
            .send()
            .await
            .map_err(|e| format!("DescribeTasks (migration): {}", aws_err(&e)))?;
        if let Some(t) = d.tasks().first()
            && t.last_status() == Some("STOPPED")
        {
            let codes: Vec<(String, Option<i32>)> = t
                .containers()
                .iter()
                .map(|c| (c.name().unwrap_or_default().to_owned(), c.exit_code()))
                .collect();
            if codes.iter().all(|(_, c)| *c == Some(0)) {
                ctx.report.line("migration task exited 0");
                return Ok(task_arn);
            }
            return Err(format!(
                "the migration task {task_arn} stopped: {} (stop code {}); container exit codes: {}",
                t.stopped_reason().unwrap_or("no reason given"),
                t.stop_code().map(|c| c.as_str()).unwrap_or("none"),
                codes
                    .iter()
                    .map(|(n, c)| format!(
                        "{n}={}",
                        c.map(|c| c.to_string()).unwrap_or_else(|| "none".into())
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if Instant::now() >= deadline {
            let _ = ctx
                .ecs
                .stop_task()
                .cluster(&ctx.env.cluster)
                .task(&task_arn)
                .reason("deployer: migration timed out")
                .send()
                .await;
            return Err(format!(
                "the migration task {task_arn} did not finish within {:?}; it was stopped",
                ctx.env.timeouts.migration
            ));
        }
        if ctx.cancelled() {
            return Err("interrupted while the migration ran".into());
        }
        tokio::time::sleep(interval).await;
        interval = (interval * 2).min(Duration::from_secs(1));
    }
}

/// Agents of `kind` reporting `git_sha` and a recent heartbeat on the orchestrator's API.
async fn agent_gate(ctx: &Ctx, kind: &str, git_sha: &str, timeout: Duration) -> Result<(), String> {
    let Some(base) = ctx.env.urls.production.clone() else {
        return Err(format!(
            "the agent gate for '{kind}' needs urls.production (the orchestrator API) in environment {}",
            ctx.env_name
        ));
    };
    let url = format!("{}/api/v1/agents", base.trim_end_matches('/'));
    let deadline = Instant::now() + timeout;
    let mut last;
    loop {
        let mut req = ctx.http.get(&url).timeout(Duration::from_secs(5));
        if let Some(t) = ctx.token() {
            req = req.bearer_auth(t);
        }
        match req.send().await {
            Ok(r) if r.status().is_success() => {
                let body: Value = r.json().await.unwrap_or_default();
                let now = chrono::Utc::now();
                let ok = body["agents"].as_array().is_some_and(|agents| {
                    agents.iter().any(|a| {
                        a["kind"] == kind
                            && a["git_sha"] == git_sha
                            && a["last_heartbeat"]
                                .as_str()
                                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                                .is_some_and(|t| {
                                    (now - t.with_timezone(&chrono::Utc)).num_seconds() < 60
                                })
                    })
                });
                if ok {
                    return Ok(());
                }
                last = format!("no '{kind}' agent with git sha {git_sha} heart-beating yet");
            }
            Ok(r) => last = format!("GET {url} answered HTTP {}", r.status()),
            Err(e) => {
                last = format!(
                    "GET {url} failed: {}",
                    if e.is_timeout() {
                        "timeout".to_owned()
                    } else {
                        "connection error".to_owned()
                    }
                )
            }
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "agent gate for '{kind}' failed after {timeout:?}: {last}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Runs the gate for a paused hook: true = CONTINUE.
async fn gate_for_hook(
    ctx: &Ctx,
    plan: &ServicePlan,
    stage: &str,
    vars: &Vars,
) -> Result<(), String> {
    let (place, url) = match stage {
        "POST_TEST_TRAFFIC_SHIFT" | "TEST_TRAFFIC_SHIFT" => {
            (SmokeTarget::Test, ctx.env.urls.test.clone())
        }
        "POST_PRODUCTION_TRAFFIC_SHIFT" | "PRODUCTION_TRAFFIC_SHIFT" => {
            (SmokeTarget::Production, ctx.env.urls.production.clone())
        }
        "POST_SCALE_UP" => {
            if let Some(kind) = &plan.svc.agent_kind {
                return agent_gate(ctx, kind, &plan.git_sha, Duration::from_secs(60)).await;
            }
            return Ok(());
        }
        _ => return Ok(()),
    };
    let checks = ctx.smoke_checks(&plan.svc, place);
    if checks.is_empty() {
        return Ok(());
    }
    let Some(url) = url else {
        return Err(format!(
            "smoke checks for {} at {stage} need urls.{} in environment {}",
            plan.svc.name,
            if place == SmokeTarget::Test {
                "test"
            } else {
                "production"
            },
            ctx.env_name
        ));
    };
    let label = format!("{} @ {stage}", plan.svc.name);
    let rep = smoke::run_all(&ctx.http, &url, &checks, vars)
        .await
        .map_err(|e| format!("{e:#}"))?;
    ctx.record_smoke(&label, &rep);
    for r in &rep.results {
        ctx.report
            .line(&format!("[{}] {}", plan.svc.name, r.explain()));
    }
    match rep.first_failure() {
        None => Ok(()),
        Some(f) => Err(f.explain()),
    }
}

fn now_f64() -> f64 {
    chrono::Utc::now().timestamp_millis() as f64 / 1000.0
}

/// Updates one service (unless re-attaching) and follows its deployment to a terminal state,
/// acting on hooks and watching the bake time.
pub(crate) async fn deploy_service(
    ctx: &Ctx,
    plan: &ServicePlan,
    vars: &Vars,
    gated: bool,
) -> ServiceResult {
    let name = plan.svc.name.clone();
    let fail = |outcome: Outcome, reason: String, arn: &str, status: &str| ServiceResult {
        name: name.clone(),
        outcome,
        reason,
        deployment_arn: arn.to_owned(),
        status: status.to_owned(),
    };
    let arn =
        match &plan.deployment_arn {
            Some(a) => a.clone(),
            None => {
                let before: Vec<String> =
                    match ecs_deploy::list_deployments(&ctx.ecs, &ctx.env.cluster, &name, false)
                        .await
                    {
                        Ok(v) => v.into_iter().map(|(a, _, _)| a).collect(),
                        Err(e) => return fail(Outcome::Failed, format!("{e:#}"), "", ""),
                    };
                let update = ctx
                    .ecs
                    .update_service()
                    .cluster(&ctx.env.cluster)
                    .service(&name)
                    .task_definition(&plan.target_td)
                    .desired_count(plan.svc.desired_count as i32)
                    .deployment_configuration(deployment_configuration(ctx, &plan.svc))
                    .send()
                    .await;
                if let Err(e) = update {
                    return fail(
                        Outcome::Failed,
                        format!("UpdateService {name}: {}", aws_err(&e)),
                        "",
                        "",
                    );
                }
                match ecs_deploy::wait_for_new_deployment(
                    &ctx.ecs,
                    &ctx.env.cluster,
                    &name,
                    &before,
                    Duration::from_secs(30),
                )
                .await
                {
                    Ok(a) => a,
                    Err(e) => return fail(Outcome::Failed, format!("{e:#}"), "", ""),
                }
            }
        };
    if plan.deployment_arn.is_none() && gated {
        ctx.note_deployment(&name, &arn).await;
    }
    ctx.report.line(&format!(
        "[{name}] deployment {} → {}",
        arn.rsplit('/').next().unwrap_or(&arn),
        crate::history::short_td(&plan.target_td)
    ));
    let deadline = Instant::now() + ctx.env.timeouts.deployment;
    let mut poller = Poller::new();
    let mut handled_hooks: Vec<String> = Vec::new();
    let mut our_rollback: Option<(Outcome, String)> = None;
    let mut last_bake_check = Instant::now() - Duration::from_secs(60);
    let mut cancel = ctx.cancel.clone();
    loop {
        let view: DeploymentView = match ecs_deploy::describe(&ctx.ecs, &arn).await {
            Ok(v) => v,
            Err(e) => {
                // Transient errors are retried by the SDK; anything left is reported but the
                // deployment is still followed until the deadline.
                ctx.report.line(&format!("[{name}] {e:#}"));
                if Instant::now() >= deadline {
                    return fail(Outcome::TimedOut, format!("{e:#}"), &arn, "");
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        if poller.observe(&view) {
            ctx.report.line(&format!(
                "[{name}] {} · {}{}",
                view.status,
                view.stage.as_deref().unwrap_or("-"),
                if view.awaiting_hook.is_some() {
                    " · hook AWAITING_ACTION"
                } else {
                    ""
                }
            ));
        }
        ctx.stats.lock().expect("stats").polls += 1;
        if view.is_terminal() {
            let status = view.status.clone();
            if status == "SUCCESSFUL" {
                // Never report success unless the service runs the new revision.
                match current_task_definition(ctx, &name).await {
                    Ok(Some(td)) if td == plan.target_td => {}
                    Ok(td) => {
                        return fail(
                            Outcome::Failed,
                            format!(
                                "the deployment reported SUCCESSFUL but the service runs {}",
                                td.unwrap_or_else(|| "nothing".into())
                            ),
                            &arn,
                            &status,
                        );
                    }
                    Err(e) => return fail(Outcome::Failed, format!("{e:#}"), &arn, &status),
                }
                if gated
                    && plan.svc.strategy == Strategy::Rolling
                    && let Some(kind) = &plan.svc.agent_kind
                    && let Err(reason) =
                        agent_gate(ctx, kind, &plan.git_sha, Duration::from_secs(60)).await
                {
                    return fail(
                        Outcome::RolledBackSmoke,
                        reason,
                        &arn,
                        "SUCCESSFUL (gate failed)",
                    );
                }
                return ServiceResult {
                    name,
                    outcome: Outcome::Succeeded,
                    reason: String::new(),
                    deployment_arn: arn,
                    status,
                };
            }
            let explain = explain_service(ctx, &name).await;
            if let Some((o, reason)) = our_rollback {
                return fail(o, reason, &arn, &status);
            }
            let why = view
                .ecs_failure()
                .unwrap_or_else(|| format!("deployment ended {status}: {}", view.best_reason()));
            let reason = if explain.is_empty() {
                why
            } else {
                format!("{why}\n{explain}")
            };
            return fail(Outcome::RolledBackEcs, reason, &arn, &status);
        }
        if let Some(hook) = view.awaiting_hook.clone()
            && !handled_hooks.contains(&hook.hook_id)
            && our_rollback.is_none()
        {
            let seen = now_f64();
            // The deployment's updatedAt is when it entered the paused stage.
            let appeared = view.updated_at;
            ctx.report.line(&format!(
                "[{name}] paused at {} (hook {}), running the gate",
                hook.stage, hook.hook_id
            ));
            let verdict = if gated {
                gate_for_hook(ctx, plan, &hook.stage, vars).await
            } else {
                Ok(())
            };
            let action = if verdict.is_ok() {
                DeploymentLifecycleHookAction::Continue
            } else {
                DeploymentLifecycleHookAction::Rollback
            };
            let acted = now_f64();
            if let Err(e) =
                ecs_deploy::continue_hook(&ctx.ecs, &arn, &hook.hook_id, action.clone()).await
            {
                ctx.report.line(&format!("[{name}] {e:#}"));
            } else {
                ctx.report.line(&format!(
                    "[{name}] ContinueServiceDeployment {}",
                    action.as_str()
                ));
            }
            if let Some(a) = appeared {
                let mut s = ctx.stats.lock().expect("stats");
                s.hook_to_action_ms.push(((acted - a) * 1000.0).max(0.0));
                s.hook_detect_ms.push(((seen - a) * 1000.0).max(0.0));
            }
            handled_hooks.push(hook.hook_id.clone());
            if let Err(reason) = verdict {
                our_rollback = Some((Outcome::RolledBackSmoke, reason));
            }
            continue;
        }
        // Bake time: keep checking production; a failure stops the deployment with ROLLBACK.
        if gated
            && our_rollback.is_none()
            && view.status == "IN_PROGRESS"
            && view.stage.as_deref() == Some("BAKE_TIME")
            && last_bake_check.elapsed() >= Duration::from_millis(500)
            && let Some(url) = ctx.env.urls.production.clone()
        {
            last_bake_check = Instant::now();
            let checks = ctx.smoke_checks(&plan.svc, SmokeTarget::Production);
            if !checks.is_empty() {
                match smoke::run_all(&ctx.http, &url, &checks, vars).await {
                    Ok(rep) if !rep.passed() => {
                        ctx.record_smoke(&format!("{name} @ BAKE_TIME"), &rep);
                        let f = rep.first_failure().map(|f| f.explain()).unwrap_or_default();
                        ctx.report.line(&format!("[{name}] during bake: {f}"));
                        match ecs_deploy::stop_with_rollback(&ctx.ecs, &arn).await {
                            Ok(()) => ctx
                                .report
                                .line(&format!("[{name}] StopServiceDeployment ROLLBACK")),
                            Err(e) => ctx.report.line(&format!("[{name}] {e:#}")),
                        }
                        our_rollback =
                            Some((Outcome::RolledBackSmoke, format!("during bake time: {f}")));
                        continue;
                    }
                    Ok(rep) => {
                        let mut s = ctx.stats.lock().expect("stats");
                        if !s
                            .smoke
                            .iter()
                            .any(|(p, _)| p.ends_with("BAKE_TIME") && p.starts_with(&name))
                        {
                            for c in &rep.results {
                                s.smoke.push((format!("{name} @ BAKE_TIME"), c.clone()));
                            }
                        }
                    }
                    Err(e) => ctx.report.line(&format!("[{name}] {e:#}")),
                }
            }
        }
        if Instant::now() >= deadline && our_rollback.is_none() {
            let how = ecs_deploy::roll_back_in_flight(&ctx.ecs, &view).await;
            ctx.report
                .line(&format!("[{name}] timed out; rolling back: {how:?}"));
            our_rollback = Some((
                Outcome::TimedOut,
                format!(
                    "the deployment did not finish within {:?}",
                    ctx.env.timeouts.deployment
                ),
            ));
            continue;
        }
        // Reverts (ungated) run to completion even after Ctrl-C: they restore production.
        if gated && ctx.cancelled() && our_rollback.is_none() {
            let how = ecs_deploy::roll_back_in_flight(&ctx.ecs, &view).await;
            ctx.report
                .line(&format!("[{name}] interrupted; rolling back: {how:?}"));
            return fail(
                Outcome::Interrupted,
                "interrupted (Ctrl-C / SIGTERM); the deployment was rolled back".into(),
                &arn,
                "ROLLBACK_REQUESTED",
            );
        }
        if ctx.cancelled() {
            tokio::time::sleep(poller.interval()).await;
        } else {
            tokio::select! {
                _ = tokio::time::sleep(poller.interval()) => {}
                _ = cancel.changed() => {}
            }
        }
    }
}

/// Puts services that already moved back on their previous task definition (hooks continue
/// without gates: the previous revision already proved itself).
pub(crate) async fn revert(ctx: &Ctx, plans: &[ServicePlan]) {
    for p in plans {
        ctx.report.line(&format!(
            "[{}] reverting to {}",
            p.svc.name,
            crate::history::short_td(&p.previous_td)
        ));
        let back = ServicePlan {
            svc: p.svc.clone(),
            target_td: p.previous_td.clone(),
            previous_td: p.target_td.clone(),
            git_sha: String::new(),
            deployment_arn: None,
        };
        let r = deploy_service(ctx, &back, &Vars::default(), false).await;
        ctx.report.line(&format!(
            "[{}] revert: {} {}",
            p.svc.name, r.status, r.reason
        ));
    }
}

/// Deploys the plans in waves (agents first, then the rest, in config order), `max_parallel` at a
/// time; on the first failure stops, and reverts services that had already succeeded.
pub(crate) async fn deploy_all(
    ctx: &Ctx,
    plans: &[ServicePlan],
    vars: &Vars,
    rec: &mut ReleaseRecord,
) -> (Outcome, String) {
    let mut ordered: Vec<&ServicePlan> = plans
        .iter()
        .filter(|p| p.svc.agent_kind.is_some())
        .collect();
    ordered.extend(plans.iter().filter(|p| p.svc.agent_kind.is_none()));
    let parallel = ctx.env.release.max_parallel.max(1) as usize;
    let mut done: Vec<ServicePlan> = Vec::new();
    let mut outcome = Outcome::Succeeded;
    let mut reasons = Vec::new();
    for chunk in ordered.chunks(parallel) {
        let names: Vec<&str> = chunk.iter().map(|p| p.svc.name.as_str()).collect();
        ctx.report.stage(&format!("Deploy {}", names.join(", ")));
        let results =
            futures::future::join_all(chunk.iter().map(|p| deploy_service(ctx, p, vars, true)))
                .await;
        for (p, r) in chunk.iter().zip(results) {
            if let Some(open) = ctx.open_record.lock().expect("open record").as_mut()
                && let Some(s) = open.services.iter_mut().find(|s| s.service == r.name)
            {
                s.deployment_arn = r.deployment_arn.clone();
                s.status = r.status.clone();
            }
            if let Some(s) = rec.services.iter_mut().find(|s| s.service == r.name) {
                s.deployment_arn = r.deployment_arn.clone();
                s.status = r.status.clone();
            }
            if r.outcome == Outcome::Succeeded {
                done.push((*p).clone());
            } else {
                outcome = outcome.worst(r.outcome);
                reasons.push(format!("{}: {}", r.name, r.reason));
            }
        }
        if outcome != Outcome::Succeeded {
            break;
        }
    }
    if outcome != Outcome::Succeeded && !done.is_empty() {
        ctx.report.stage("Revert services that had already moved");
        revert(ctx, &done).await;
        for p in &done {
            if let Some(s) = rec.services.iter_mut().find(|s| s.service == p.svc.name) {
                s.status = "REVERTED".into();
            }
        }
    }
    (outcome, reasons.join("\n"))
}

fn release_vars(ctx: &Ctx, git_sha: &str, release_id: &str, image: &str) -> Vars {
    Vars::new(&[
        ("git_sha", git_sha),
        ("release_id", release_id),
        ("version", env!("CARGO_PKG_VERSION")),
        ("env", &ctx.env_name),
        ("image", image),
    ])
}

/// `deployer release`.
pub async fn release(ctx: &Ctx, args: &ReleaseArgs) -> Outcome {
    if args.resume {
        return crate::rollback::resume(ctx, args.wait_lock).await;
    }
    let git_sha = match crate::vars::git_sha(args.git_sha.as_deref(), &ctx.cfg.root) {
        Ok(s) => s,
        Err(f) => {
            ctx.report.error(&format!(
                "{:#}{}",
                f.error,
                f.hint.map(|h| format!(" ({h})")).unwrap_or_default()
            ));
            return Outcome::ConfigError;
        }
    };
    let release_id = audit::new_release_id();
    ctx.report.stage(&format!(
        "Preflight: release {release_id} of {} to {}",
        &git_sha, ctx.env_name
    ));
    // Build and push only for this environment's own `<repository>:<git sha>`: a given --image
    // is the caller's to provide.
    let may_build = args.image.is_none() && !args.no_build;
    let mut resolved = match resolve_image(ctx, args.image.as_deref(), &git_sha).await {
        Ok(v) => {
            ctx.report.line(&format!("pass  image {}", v.0));
            Some(v)
        }
        Err(ImageError::Missing(_)) if may_build => {
            ctx.report.line(&format!(
                "note  image for {git_sha} is not in ECR: the release builds and pushes it"
            ));
            None
        }
        Err(e) => {
            ctx.report.error(&format!("preflight failed: {e}"));
            return Outcome::PreflightFailed;
        }
    };
    // Deployments in flight are checked under the lock (a concurrent release must be reported as
    // holding the lock, not as a preflight failure).
    let current = match preflight(ctx, false).await {
        Ok(c) => c,
        Err(problems) => {
            ctx.report.error(&format!(
                "preflight failed:\n  - {}",
                problems.join("\n  - ")
            ));
            return Outcome::PreflightFailed;
        }
    };
    if resolved.is_none() {
        // After the other checks, so a broken environment fails before a long build.
        ctx.report
            .stage(&format!("Build and push image for {git_sha}"));
        if let Err(e) = build_and_push(ctx, &git_sha).await {
            ctx.report.error(&format!(
                "building/pushing the image failed: {:#}{}",
                e.error,
                e.hint.map(|h| format!(" ({h})")).unwrap_or_default()
            ));
            return Outcome::ImageFailed;
        }
        resolved = match resolve_image(ctx, None, &git_sha).await {
            Ok(v) => Some(v),
            Err(e) => {
                ctx.report
                    .error(&format!("the pushed image is not visible in ECR: {e}"));
                return Outcome::ImageFailed;
            }
        };
    }
    let (image, digest) = resolved.expect("resolved or built above");
    let (actor, ci_url) = lock::actor_and_ci_url();
    let mut rec = ReleaseRecord {
        env: ctx.env_name.clone(),
        release_id: release_id.clone(),
        kind: "release".into(),
        git_sha: git_sha.clone(),
        image: image.clone(),
        image_digest: digest,
        actor: actor.clone(),
        ci_url: ci_url.clone(),
        deployer_version: env!("CARGO_PKG_VERSION").into(),
        started_at: audit::now_rfc3339(),
        outcome: "in_progress".into(),
        services: ctx
            .env
            .services
            .iter()
            .map(|s| ServiceRecord {
                service: s.name.clone(),
                previous_task_definition: current.get(&s.name).cloned().unwrap_or_default(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    run_locked(ctx, &mut rec, args.wait_lock, None, |ctx, rec| {
        Box::pin(release_body(ctx, rec, current.clone()))
    })
    .await
}

type Body<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = (Outcome, String)> + Send + 'a>>;

/// Takes the lock, writes the audit record, runs `body`, then always: final audit record,
/// summary/outputs, notification, lock release.
pub(crate) async fn run_locked<F>(
    ctx: &Ctx,
    rec: &mut ReleaseRecord,
    wait_lock: Option<Duration>,
    take_over: Option<&str>,
    body: F,
) -> Outcome
where
    F: for<'a> FnOnce(&'a Ctx, &'a mut ReleaseRecord) -> Body<'a>,
{
    let lock = ctx.lock();
    let req = LockRequest {
        owner: rec.actor.clone(),
        git_sha: rec.git_sha.clone(),
        release_id: rec.release_id.clone(),
        ci_url: rec.ci_url.clone(),
    };
    let wait = wait_lock.unwrap_or(ctx.env.timeouts.lock_wait);
    let held = match lock.acquire_waiting(&req, take_over, wait).await {
        Ok(h) => h,
        Err(e @ LockError::Held { .. }) => {
            ctx.report.error(&e.to_string());
            return Outcome::LockHeld;
        }
        Err(e) => {
            ctx.report.error(&format!("taking the deploy lock: {e:#}"));
            return Outcome::Failed;
        }
    };
    ctx.report.line(&format!(
        "deploy lock for {} taken ({})",
        ctx.env_name, ctx.env.lock_table
    ));
    let heartbeat = lock::Heartbeat::start(lock.clone(), held.clone());
    let audit = ctx.audit();
    if let Err(e) = async {
        audit.ensure_table().await?;
        audit.put(rec).await
    }
    .await
    {
        ctx.report
            .error(&format!("writing the audit record: {e:#}"));
        drop(heartbeat);
        let _ = lock.release(&held).await;
        return Outcome::Failed;
    }
    *ctx.open_record.lock().expect("open record") = Some(rec.clone());
    let (outcome, reason) = body(ctx, rec).await;
    *ctx.open_record.lock().expect("open record") = None;
    rec.outcome = outcome.as_str().into();
    rec.reason = reason.clone();
    rec.finished_at = audit::now_rfc3339();
    ctx.report.end_group();
    if let Err(e) = audit.put(rec).await {
        ctx.report
            .error(&format!("writing the final audit record: {e:#}"));
    }
    drop(heartbeat);
    match lock.release(&held).await {
        Ok(true) => ctx.report.line("deploy lock released"),
        Ok(false) => ctx
            .report
            .line("deploy lock was no longer ours (taken over)"),
        Err(e) => ctx.report.error(&format!(
            "releasing the deploy lock: {e:#}; run `deployer lock release --env {} --force`",
            ctx.env_name
        )),
    }
    finish(ctx, rec, outcome).await;
    outcome
}

/// Summary, GitHub outputs, webhook and the final line.
pub(crate) async fn finish(ctx: &Ctx, rec: &ReleaseRecord, outcome: Outcome) {
    let stats = ctx.stats.lock().expect("stats").clone();
    let md = report::summary_markdown(rec, outcome, &stats.smoke, ctx.report.elapsed_s());
    let outputs = [
        ("release_id", rec.release_id.clone()),
        ("outcome", outcome.as_str().to_owned()),
        ("git_sha", rec.git_sha.clone()),
        ("exit_code", outcome.exit_code().to_string()),
    ];
    if let Err(e) = report::write_github_files(&md, &outputs) {
        ctx.report.line(&format!(
            "warning: could not write the GitHub summary/outputs: {e}"
        ));
    }
    if let Some(url) = &ctx.env.notifications.webhook_url {
        match report::notify(config::expose(url), rec, outcome).await {
            Ok(()) => ctx.report.line("notification sent"),
            Err(e) => ctx
                .report
                .line(&format!("warning: notification not sent: {e}")),
        }
    }
    if let Some(p) = median(&stats.hook_to_action_ms) {
        ctx.report.line(&format!(
            "hook-to-action p50 {p:.0} ms over {} hook(s); {} polls",
            stats.hook_to_action_ms.len(),
            stats.polls
        ));
    }
    if outcome == Outcome::Succeeded {
        eprintln!(
            "{} {} of {} to {}: succeeded in {:.1} s",
            rec.kind,
            rec.release_id,
            rec.git_sha,
            rec.env,
            ctx.report.elapsed_s()
        );
    } else {
        ctx.report.error(&format!(
            "{} {} to {}: {} (exit {})\n{}",
            rec.kind,
            rec.release_id,
            rec.env,
            outcome.describe(),
            outcome.exit_code(),
            rec.reason
        ));
    }
}

pub fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    Some(s[s.len() / 2])
}

async fn release_body(
    ctx: &Ctx,
    rec: &mut ReleaseRecord,
    current: BTreeMap<String, String>,
) -> (Outcome, String) {
    for svc in &ctx.env.services {
        match ecs_deploy::list_deployments(&ctx.ecs, &ctx.env.cluster, &svc.name, true).await {
            Ok(in_flight) if !in_flight.is_empty() => {
                return (
                    Outcome::PreflightFailed,
                    format!(
                        "service {} has a deployment in progress ({}); wait for it, `deployer release --resume --env {}` or `deployer rollback --env {}`",
                        svc.name, in_flight[0].0, ctx.env_name, ctx.env_name
                    ),
                );
            }
            Ok(_) => {}
            Err(e) => return (Outcome::Failed, format!("{e:#}")),
        }
    }
    // Migration first: a failed migration stops the release before any service changes.
    if ctx.env.migration.is_some() {
        ctx.report.stage("Migration (one-off task)");
        match run_migration(ctx, &rec.image, &rec.git_sha, &rec.release_id).await {
            Ok(task) => rec.migration_task = task,
            Err(e) if ctx.cancelled() => return (Outcome::Interrupted, e),
            Err(e) => return (Outcome::MigrationFailed, e),
        }
    }
    ctx.report.stage("Register task definitions");
    let mut plans = Vec::new();
    for svc in &ctx.env.services {
        let vars = match template_vars(ctx, Some(svc), &rec.image, &rec.git_sha, &rec.release_id) {
            Ok(v) => v,
            Err(e) => return (Outcome::ConfigError, format!("{e:#}")),
        };
        let td = match register(ctx, &svc.template, &vars, &rec.git_sha, &rec.release_id).await {
            Ok(td) => td,
            Err(e) => return (Outcome::Failed, format!("{e:#}")),
        };
        ctx.report.line(&format!(
            "registered {} for {}",
            crate::history::short_td(&td),
            svc.name
        ));
        if let Some(s) = rec.services.iter_mut().find(|s| s.service == svc.name) {
            s.task_definition = td.clone();
        }
        plans.push(ServicePlan {
            svc: svc.clone(),
            target_td: td,
            previous_td: current.get(&svc.name).cloned().unwrap_or_default(),
            git_sha: rec.git_sha.clone(),
            deployment_arn: None,
        });
    }
    // Record the registered revisions before touching services, so `--resume` knows them.
    *ctx.open_record.lock().expect("open record") = Some(rec.clone());
    if let Err(e) = ctx.audit().put(rec).await {
        return (Outcome::Failed, format!("writing the audit record: {e:#}"));
    }
    let vars = release_vars(ctx, &rec.git_sha, &rec.release_id, &rec.image);
    deploy_all(ctx, &plans, &vars, rec).await
}

pub(crate) fn vars_for(ctx: &Ctx, rec: &ReleaseRecord) -> Vars {
    release_vars(ctx, &rec.git_sha, &rec.release_id, &rec.image)
}
