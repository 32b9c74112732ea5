//! Preflight: read-only checks that a release to an environment can start. Each check passes,
//! fails (with why) or warns (could not be checked; does not fail the preflight).
//!
//! An unreachable endpoint or missing credentials abort the whole run with an AWS error instead:
//! nothing else could be checked.

use aws_sdk_ecs::types::Service as EcsService;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use serde::Serialize;

use crate::config::{Config, Environment, Strategy};
use crate::exit::{Code, Failure};
use crate::render::Renderer;
use crate::vars::{self, Release};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    Warn,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub status: Status,
    pub detail: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub env: String,
    pub checks: Vec<Check>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.status != Status::Fail)
    }

    fn push(&mut self, name: impl Into<String>, status: Status, detail: impl Into<String>) {
        self.checks.push(Check {
            name: name.into(),
            status,
            detail: detail.into(),
        });
    }
    fn pass(&mut self, name: impl Into<String>, detail: impl Into<String>) {
        self.push(name, Status::Pass, detail)
    }
    fn fail(&mut self, name: impl Into<String>, detail: impl Into<String>) {
        self.push(name, Status::Fail, detail)
    }
    fn warn(&mut self, name: impl Into<String>, detail: impl Into<String>) {
        self.push(name, Status::Warn, detail)
    }
}

pub struct Options {
    /// Fail when the release's image is not in ECR (false during a release that will build it).
    pub require_image: bool,
    /// An explicit image URI (skips the ECR lookup by git sha).
    pub image: Option<String>,
}

/// A call that failed: fatal (endpoint/credentials: stop everything) or a failed check.
fn classify<E, R>(what: &str, e: SdkError<E, R>) -> Result<String, Failure>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match &e {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
            Err(crate::aws::failure(what, e))
        }
        _ => Ok(crate::aws::explain(&e).0),
    }
}

pub async fn run(
    config: &Config,
    env_name: &str,
    env: &Environment,
    sdk: &aws_config::SdkConfig,
    release: &Release,
    opts: &Options,
) -> Result<Report, Failure> {
    let mut r = Report {
        env: env_name.to_string(),
        ..Default::default()
    };
    r.pass(
        "config",
        format!(
            "{} is valid; environment `{env_name}` has {} service(s)",
            config.source.display(),
            env.services.len()
        ),
    );
    crate::aws::preflight(sdk).await?;
    let ecs = aws_sdk_ecs::Client::new(sdk);
    let ecr = aws_sdk_ecr::Client::new(sdk);
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(sdk);
    let repo = config.ecr_repository(env);

    // Image first: templates need its URI.
    let mut image = opts.image.clone();
    match crate::image::repository_uri(&ecr, repo).await {
        Ok(uri) => {
            if image.is_none() {
                match crate::image::ecr_image(&ecr, repo, &release.git_sha).await {
                    Ok(Some((digest, _))) => {
                        r.pass(
                            "image",
                            format!("{uri}:{} exists ({digest})", release.git_sha),
                        );
                        image = Some(format!("{uri}@{digest}"));
                    }
                    Ok(None) if opts.require_image => {
                        r.fail("image", format!("{uri}:{} is not in ECR; run `deployer build` and `deployer push` (or pass --image)", release.git_sha));
                    }
                    Ok(None) => r.warn(
                        "image",
                        format!(
                            "{uri}:{} is not in ECR yet; it will be built and pushed",
                            release.git_sha
                        ),
                    ),
                    Err(f) if f.code == Code::Aws => r.fail("image", format!("{:#}", f.error)),
                    Err(f) => return Err(f),
                }
                image.get_or_insert_with(|| format!("{uri}:{}", release.git_sha));
            } else {
                r.pass(
                    "image",
                    format!(
                        "using the given image {}",
                        image.as_deref().unwrap_or_default()
                    ),
                );
            }
        }
        Err(f) if is_dispatch(&f) => return Err(f),
        Err(f) => r.fail("ecr repository", format!("{:#}", f.error)),
    }

    // Templates.
    let release = Release {
        image: image
            .clone()
            .or_else(|| Some(format!("{repo}:{}", release.git_sha))),
        ..release.clone()
    };
    match Renderer::new(&config.templates_dir()) {
        Err(e) => r.fail("templates", e.to_string()),
        Ok(renderer) => {
            let tf = match vars::tf_outputs(config, env) {
                Ok(tf) => tf,
                Err(f) => {
                    r.fail("terraform outputs", format!("{:#}", f.error));
                    None
                }
            };
            for svc in &env.services {
                let v = vars::for_service(config, env_name, env, Some(svc), &release, tf.as_ref());
                match renderer.render(&svc.template, &v) {
                    Ok(_) => r.pass(
                        format!("template {}", svc.template),
                        format!("renders a valid task definition for {}", svc.name),
                    ),
                    Err(e) => r.fail(format!("template {}", svc.template), e.to_string()),
                }
            }
            if let Some(m) = &env.migration {
                let v = vars::for_service(config, env_name, env, None, &release, tf.as_ref());
                match renderer.render(&m.template, &v) {
                    Ok(_) => r.pass(
                        format!("template {}", m.template),
                        "renders a valid migration task definition",
                    ),
                    Err(e) => r.fail(format!("template {}", m.template), e.to_string()),
                }
            }
        }
    }

    // Cluster.
    match ecs.describe_clusters().clusters(&env.cluster).send().await {
        Ok(out) => match out.clusters().first() {
            Some(c) if c.status() == Some("ACTIVE") => {
                r.pass("cluster", format!("{} is ACTIVE", env.cluster));
                if let (Some(want), Some(have)) = (
                    env.account_id.as_deref(),
                    c.cluster_arn().and_then(crate::aws::account_from_arn),
                ) {
                    if want == have {
                        r.pass("account", format!("credentials are for account {have}"));
                    } else {
                        r.fail("account", format!("credentials are for account {have}, deployer.toml expects {want}; wrong --profile?"));
                    }
                }
            }
            Some(c) => r.fail(
                "cluster",
                format!(
                    "{} is {}",
                    env.cluster,
                    c.status().unwrap_or("in an unknown state")
                ),
            ),
            None => {
                r.fail(
                    "cluster",
                    format!(
                        "{} does not exist in {}",
                        env.cluster,
                        sdk.region().map(|r| r.to_string()).unwrap_or_default()
                    ),
                );
                return Ok(r);
            }
        },
        Err(e) => {
            let why = classify("ECS DescribeClusters", e)?;
            r.fail("cluster", why);
            return Ok(r);
        }
    }

    // Services.
    if env.services.is_empty() {
        return Ok(r);
    }
    let names: Vec<String> = env.services.iter().map(|s| s.name.clone()).collect();
    let mut live: Vec<EcsService> = Vec::new();
    for chunk in names.chunks(10) {
        match ecs
            .describe_services()
            .cluster(&env.cluster)
            .set_services(Some(chunk.to_vec()))
            .send()
            .await
        {
            Ok(out) => live.extend(out.services().iter().cloned()),
            Err(e) => {
                let why = classify("ECS DescribeServices", e)?;
                r.fail("services", why);
                return Ok(r);
            }
        }
    }
    for svc in &env.services {
        let Some(s) = live.iter().find(|s| {
            s.service_name() == Some(svc.name.as_str()) && s.status() != Some("INACTIVE")
        }) else {
            r.fail(
                format!("service {}", svc.name),
                format!("does not exist in cluster {}", env.cluster),
            );
            continue;
        };
        r.pass(
            format!("service {}", svc.name),
            format!(
                "{} ({} running / {} desired)",
                s.status().unwrap_or("?"),
                s.running_count(),
                s.desired_count()
            ),
        );

        // Deployment controller and strategy.
        let controller = s
            .deployment_controller()
            .map(|c| c.r#type().as_str().to_string())
            .unwrap_or_else(|| "ECS".into());
        let strategy = s
            .deployment_configuration()
            .and_then(|d| d.strategy())
            .map(|s| s.as_str().to_string())
            .unwrap_or_else(|| "ROLLING".into());
        let name = format!("service {} strategy", svc.name);
        if controller != "ECS" {
            r.fail(
                name,
                format!("deployment controller is {controller}; ECS native deployments need ECS"),
            );
        } else if strategy != svc.strategy.ecs_name() {
            r.fail(name, format!("service uses {strategy}, deployer.toml says {}; update the service (terraform) or the config", svc.strategy.ecs_name()));
        } else {
            r.pass(name, format!("{controller} controller, {strategy}"));
        }

        // Load balancer.
        if let Some(lb) = &svc.load_balancer {
            let name = format!("service {} load balancer", svc.name);
            let found = s
                .load_balancers()
                .iter()
                .find(|l| l.target_group_arn() == Some(lb.target_group_arn.as_str()));
            match found {
                None => r.fail(
                    name,
                    format!(
                        "the service is not attached to target group {}",
                        lb.target_group_arn
                    ),
                ),
                Some(l) => {
                    let mut problems = Vec::new();
                    if l.container_name() != Some(lb.container_name.as_str()) {
                        problems.push(format!(
                            "container name is {:?}, config says {}",
                            l.container_name(),
                            lb.container_name
                        ));
                    }
                    if l.container_port() != Some(lb.container_port as i32) {
                        problems.push(format!(
                            "container port is {:?}, config says {}",
                            l.container_port(),
                            lb.container_port
                        ));
                    }
                    if svc.strategy == Strategy::BlueGreen {
                        let adv = l.advanced_configuration();
                        for (field, have, want) in [
                            (
                                "alternateTargetGroupArn",
                                adv.and_then(|a| a.alternate_target_group_arn()),
                                lb.alternate_target_group_arn.as_deref(),
                            ),
                            (
                                "productionListenerRule",
                                adv.and_then(|a| a.production_listener_rule()),
                                lb.production_listener_rule.as_deref(),
                            ),
                            (
                                "testListenerRule",
                                adv.and_then(|a| a.test_listener_rule()),
                                lb.test_listener_rule.as_deref(),
                            ),
                            (
                                "roleArn",
                                adv.and_then(|a| a.role_arn()),
                                lb.role_arn.as_deref(),
                            ),
                        ] {
                            if want.is_some() && have != want {
                                problems.push(format!(
                                    "advancedConfiguration.{field} is {}, config says {}",
                                    have.unwrap_or("unset"),
                                    want.unwrap_or_default()
                                ));
                            }
                        }
                    }
                    if problems.is_empty() {
                        r.pass(
                            name,
                            format!(
                                "{}:{} via {}",
                                lb.container_name, lb.container_port, lb.target_group_arn
                            ),
                        );
                    } else {
                        r.fail(name, problems.join("; "));
                    }
                }
            }
            // Target groups and listener rules exist.
            let tgs: Vec<String> = [
                Some(&lb.target_group_arn),
                lb.alternate_target_group_arn.as_ref(),
            ]
            .into_iter()
            .flatten()
            .cloned()
            .collect();
            let name = format!("service {} target groups", svc.name);
            match elb
                .describe_target_groups()
                .set_target_group_arns(Some(tgs.clone()))
                .send()
                .await
            {
                Ok(out) if out.target_groups().len() == tgs.len() => {
                    r.pass(name, format!("{} exist", tgs.len()))
                }
                Ok(out) => r.fail(
                    name,
                    format!("only {} of {} exist", out.target_groups().len(), tgs.len()),
                ),
                Err(e) => {
                    let why = classify("ELBv2 DescribeTargetGroups", e)?;
                    r.fail(name, why);
                }
            }
            let rules: Vec<String> = [
                lb.production_listener_rule.as_ref(),
                lb.test_listener_rule.as_ref(),
            ]
            .into_iter()
            .flatten()
            .cloned()
            .collect();
            if !rules.is_empty() {
                let name = format!("service {} listener rules", svc.name);
                match elb
                    .describe_rules()
                    .set_rule_arns(Some(rules.clone()))
                    .send()
                    .await
                {
                    Ok(out) if out.rules().len() == rules.len() => {
                        r.pass(name, format!("{} exist", rules.len()))
                    }
                    Ok(out) => r.fail(
                        name,
                        format!("only {} of {} exist", out.rules().len(), rules.len()),
                    ),
                    Err(e) => {
                        let why = classify("ELBv2 DescribeRules", e)?;
                        r.fail(name, why);
                    }
                }
            }
        }

        // No deployment in progress.
        in_progress_check(&ecs, &env.cluster, svc.name.as_str(), s, &mut r).await?;
    }
    Ok(r)
}

fn is_dispatch(f: &Failure) -> bool {
    f.code == Code::Aws && format!("{:#}", f.error).contains("cannot reach AWS")
}

async fn in_progress_check(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    service: &str,
    live: &EcsService,
    r: &mut Report,
) -> Result<(), Failure> {
    use aws_sdk_ecs::types::ServiceDeploymentStatus as S;
    let name = format!("service {service} idle");
    let call = ecs
        .list_service_deployments()
        .cluster(cluster)
        .service(service)
        .status(S::Pending)
        .status(S::InProgress)
        .status(S::RollbackRequested)
        .status(S::RollbackInProgress)
        .send()
        .await;
    match call {
        Ok(out) => {
            let busy: Vec<String> = out
                .service_deployments()
                .iter()
                .map(|d| {
                    format!(
                        "{} ({})",
                        d.service_deployment_arn().unwrap_or("?"),
                        d.status().map(|s| s.as_str()).unwrap_or("?")
                    )
                })
                .collect();
            if busy.is_empty() {
                r.pass(name, "no service deployment in progress");
            } else {
                r.fail(name, format!("deployment in progress: {}; wait for it, or `deployer status`/`deployer rollback`", busy.join(", ")));
            }
        }
        Err(e) if crate::aws::is_unsupported(&e) => {
            // Emulators without the service-deployment API: fall back to the service's deployments.
            let rolling: Vec<String> = live
                .deployments()
                .iter()
                .filter(|d| {
                    d.status() != Some("PRIMARY")
                        || d.rollout_state()
                            .is_some_and(|s| s.as_str() == "IN_PROGRESS")
                })
                .map(|d| format!("{} {}", d.id().unwrap_or("?"), d.status().unwrap_or("?")))
                .collect();
            let note = "the endpoint does not support ListServiceDeployments (an AWS emulator without it?); checked the service's deployments instead";
            if rolling.is_empty() {
                r.warn(name, note);
            } else {
                r.fail(
                    name,
                    format!("deployments in progress: {}; {note}", rolling.join(", ")),
                );
            }
        }
        Err(e) => {
            let why = classify("ECS ListServiceDeployments", e)?;
            r.fail(name, why);
        }
    }
    Ok(())
}
