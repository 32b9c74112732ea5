//! Preflight: read-only checks that a release to an environment can start. `verify` runs all of
//! them as a report; each check passes, fails (with why) or warns (could not be checked; does
//! not fail the preflight). An unreachable endpoint or missing credentials abort the whole run
//! with an AWS error instead: nothing else could be checked.
//!
//! `release` runs the subset that must hold for it to start ([`for_release`]: cluster ACTIVE,
//! every service exists with the ECS deployment controller, blue/green services have their
//! load balancer's advancedConfiguration), built on the same reads and run before the
//! migration, so nothing that would make UpdateService fail is found after it. The image is
//! resolved by the release itself (it may build it), in-flight deployments are checked under
//! the lock. Target-group and listener-rule existence checks stay `verify`'s: a release
//! reconfigures the service's deployment strategy itself. Both check the production listener
//! rule's forwarding (engine/traffic.rs) before anything changes; only a release that starts
//! from there may see the weights move.

use std::collections::BTreeMap;

use aws_sdk_ecs::error::SdkError as EcsSdkError;
use aws_sdk_ecs::operation::list_service_deployments::ListServiceDeploymentsError;
use aws_sdk_ecs::types::{DeploymentControllerType, Service as EcsService};
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use serde::Serialize;

use super::traffic::{self, Production};
use super::{Ctx, Outcome, Step, Stop};
use crate::aws::ecr::{ReleaseImage, resolve_release_image};
use crate::aws::ecs::{self, short_td};
use crate::config::{Config, Environment};
use crate::exit::{Code, Failure};
use crate::taskdef::{RenderSet, vars::Release};

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

/// Every check, as `deployer verify` reports them.
pub async fn verify(
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

    // Image first: templates need its URI.
    let image = check_image(&ecr, config.ecr_repository(env), release, opts, &mut r).await?;
    check_templates(
        config,
        env_name,
        env,
        &Release {
            image: Some(image),
            ..release.clone()
        },
        &mut r,
    );
    if !check_cluster(&ecs, env, sdk, &mut r).await? || env.services.is_empty() {
        return Ok(r);
    }

    let names: Vec<String> = env.services.iter().map(|s| s.name.clone()).collect();
    let live = match ecs::live_services(&ecs, &env.cluster, &names).await {
        Ok(live) => live,
        Err(e) => {
            let why = classify("ECS DescribeServices", e)?;
            r.fail("services", why);
            return Ok(r);
        }
    };
    for svc in &env.services {
        let Some(s) = live.get(&svc.name) else {
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
        check_strategy(svc, s, &mut r);
        check_load_balancer(&elb, svc, s, &mut r).await?;
        check_traffic(&elb, env, svc, s, &mut r).await;
        check_idle(&ecs, &env.cluster, &svc.name, s, &mut r).await?;
    }
    Ok(r)
}

/// The image check; returns the image URI the templates are rendered with.
async fn check_image(
    ecr: &aws_sdk_ecr::Client,
    repo: &str,
    release: &Release,
    opts: &Options,
    r: &mut Report,
) -> Result<String, Failure> {
    let fallback = opts
        .image
        .clone()
        .unwrap_or_else(|| format!("{repo}:{}", release.git_sha));
    match resolve_release_image(ecr, repo, opts.image.as_deref(), &release.git_sha).await {
        Ok(_) if opts.image.is_some() => {
            r.pass(
                "image",
                format!(
                    "using the given image {}",
                    opts.image.as_deref().unwrap_or_default()
                ),
            );
            Ok(fallback)
        }
        Ok(ReleaseImage::Found {
            image,
            pinned,
            digest,
        }) => {
            r.pass("image", format!("{image} exists ({digest})"));
            Ok(pinned)
        }
        Ok(ReleaseImage::Missing { image, .. }) if opts.require_image => {
            r.fail("image", format!("{image} is not in ECR; run `deployer build` and `deployer push` (or pass --image)"));
            Ok(image)
        }
        Ok(ReleaseImage::Missing { image, .. }) => {
            r.warn(
                "image",
                format!("{image} is not in ECR yet; it will be built and pushed"),
            );
            Ok(image)
        }
        Ok(ReleaseImage::External { image }) => Ok(image),
        Err(f) if is_dispatch(&f) => Err(f),
        Err(f) => {
            r.fail("image", format!("{:#}", f.error));
            Ok(fallback)
        }
    }
}

fn check_templates(
    config: &Config,
    env_name: &str,
    env: &Environment,
    release: &Release,
    r: &mut Report,
) {
    let set = match RenderSet::new(config, env_name, env) {
        Ok(set) => set,
        Err(f) => {
            r.fail("templates", f.to_string());
            return;
        }
    };
    for t in set.all_targets() {
        let what = match t.service {
            Some(s) => format!("renders a valid task definition for {}", s.name),
            None => "renders a valid migration task definition".into(),
        };
        match set.render(&t, release) {
            Ok(_) => r.pass(format!("template {}", t.template), what),
            Err(e) => r.fail(format!("template {}", t.template), e.to_string()),
        }
    }
}

/// The cluster exists and is ACTIVE (and belongs to the expected account); false when there is
/// no point in checking services.
async fn check_cluster(
    ecs: &aws_sdk_ecs::Client,
    env: &Environment,
    sdk: &aws_config::SdkConfig,
    r: &mut Report,
) -> Result<bool, Failure> {
    let out = match ecs.describe_clusters().clusters(&env.cluster).send().await {
        Ok(out) => out,
        Err(e) => {
            let why = classify("ECS DescribeClusters", e)?;
            r.fail("cluster", why);
            return Ok(false);
        }
    };
    match out.clusters().first() {
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
            Ok(true)
        }
        Some(c) => {
            r.fail(
                "cluster",
                format!(
                    "{} is {}",
                    env.cluster,
                    c.status().unwrap_or("in an unknown state")
                ),
            );
            Ok(true)
        }
        None => {
            r.fail(
                "cluster",
                format!(
                    "{} does not exist in {}",
                    env.cluster,
                    sdk.region().map(|r| r.to_string()).unwrap_or_default()
                ),
            );
            Ok(false)
        }
    }
}

/// Deployment controller and strategy.
fn check_strategy(svc: &crate::config::Service, s: &EcsService, r: &mut Report) {
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
}

/// The service's load balancer, target groups and listener rules match the config.
async fn check_load_balancer(
    elb: &aws_sdk_elasticloadbalancingv2::Client,
    svc: &crate::config::Service,
    s: &EcsService,
    r: &mut Report,
) -> Result<(), Failure> {
    let Some(lb) = &svc.load_balancer else {
        return Ok(());
    };
    let name = format!("service {} load balancer", svc.name);
    // ECS swaps the pair after every successful blue/green deployment: the service serves
    // from either group, and the alternate is then the other one.
    let pair: Vec<&str> = [
        Some(lb.target_group_arn.as_str()),
        lb.alternate_target_group_arn.as_deref(),
    ]
    .into_iter()
    .flatten()
    .collect();
    let found = s
        .load_balancers()
        .iter()
        .find(|l| l.target_group_arn().is_some_and(|tg| pair.contains(&tg)));
    match found {
        None => r.fail(
            name,
            format!(
                "the service is not attached to target group {} (nor to its alternate)",
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
            if svc.strategy.shifts_traffic() {
                let adv = l.advanced_configuration();
                // The alternate is whichever of the pair is not serving now.
                let primary = l.target_group_arn().unwrap_or_default();
                let other = pair.iter().copied().find(|tg| *tg != primary);
                for (field, have, want) in [
                    (
                        "alternateTargetGroupArn",
                        adv.and_then(|a| a.alternate_target_group_arn()),
                        other,
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
                        lb.container_name,
                        lb.container_port,
                        l.target_group_arn().unwrap_or_default()
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
        Ok(out) => all_exist(r, name, tgs.len(), out.target_groups().len()),
        Err(e) => r.fail(name, classify("ELBv2 DescribeTargetGroups", e)?),
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
            Ok(out) => all_exist(r, name, rules.len(), out.rules().len()),
            Err(e) => r.fail(name, classify("ELBv2 DescribeRules", e)?),
        }
    }
    Ok(())
}

/// The production listener rule forwards to exactly the service's pair (one at 100, the other
/// at 0), and, when `urls.test` is not set, the test endpoint the test listener rule routes.
async fn check_traffic(
    elb: &aws_sdk_elasticloadbalancingv2::Client,
    env: &Environment,
    svc: &crate::config::Service,
    s: &EcsService,
    r: &mut Report,
) {
    let name = format!("service {} production traffic", svc.name);
    match traffic::check_production(elb, svc, s).await {
        Production::Ok(detail) => r.pass(name, detail),
        Production::Wrong(why) | Production::Unreadable(why) => r.fail(name, why),
        Production::NotApplicable => {}
    }
    // The checks the test-traffic gate runs (agent services run none unless named).
    let paths: Vec<(String, String)> = env
        .smoke_checks
        .iter()
        .filter(|c| c.target != crate::config::SmokeTarget::Production)
        .filter(|c| match &svc.smoke_checks {
            Some(names) => names.contains(&c.name),
            None => svc.agent_kind.is_none(),
        })
        .map(|c| (c.name.clone(), c.path.clone()))
        .collect();
    if env.urls.test.is_none()
        && svc.load_balancer.is_some()
        && svc.strategy.shifts_traffic()
        && !paths.is_empty()
    {
        let name = format!("service {} test endpoint", svc.name);
        match traffic::discover_test_endpoint(elb, svc, Some(s)).await {
            Ok(e) => {
                let off = traffic::unmatched_paths(&e, &paths);
                let via = env
                    .urls
                    .test_resolve
                    .as_ref()
                    .map(|ip| format!("; called at {ip} (urls.test_resolve)"))
                    .unwrap_or_default();
                if off.is_empty() {
                    r.pass(name, format!("{e}{via}"));
                } else {
                    r.fail(
                        name,
                        format!(
                            "{e}: smoke check(s) {} do not match its path patterns; change their paths, or set urls.test",
                            off.join(", ")
                        ),
                    );
                }
            }
            Err(why) => r.fail(
                name,
                format!("urls.test is not set and {why}; set urls.test, or fix the rule"),
            ),
        }
    }
}

/// Every one of `want` resources the config names was found.
fn all_exist(r: &mut Report, name: String, want: usize, found: usize) {
    if found == want {
        r.pass(name, format!("{want} exist"));
    } else {
        r.fail(name, format!("only {found} of {want} exist"));
    }
}

fn is_dispatch(f: &Failure) -> bool {
    f.code == Code::Aws && format!("{:#}", f.error).contains("cannot reach AWS")
}

/// No service deployment in flight ([`ecs::IN_FLIGHT`]).
async fn check_idle(
    ecs_client: &aws_sdk_ecs::Client,
    cluster: &str,
    service: &str,
    live: &EcsService,
    r: &mut Report,
) -> Result<(), Failure> {
    let name = format!("service {service} idle");
    match ecs::in_flight(ecs_client, cluster, service).await {
        Ok(busy) if busy.is_empty() => match rolling_out(live) {
            // Listings are eventually consistent: the service's own deployments are not.
            Some(what) => r.fail(
                name,
                format!("deployment in progress: the service shows {what} (not listed by ListServiceDeployments yet); wait for it, or `deployer status`/`deployer rollback`"),
            ),
            None => r.pass(name, "no service deployment in progress"),
        },
        Ok(busy) => {
            let busy: Vec<String> = busy
                .iter()
                .map(|d| format!("{} ({})", d.arn, d.status.as_str()))
                .collect();
            r.fail(name, format!("deployment in progress: {}; wait for it, or `deployer status`/`deployer rollback`", busy.join(", ")));
        }
        Err(e) => match e.downcast::<EcsSdkError<ListServiceDeploymentsError>>() {
            Ok(sdk) if crate::aws::is_unsupported(&sdk) => {
                // Emulators without the service-deployment API: the service's deployments instead.
                let note = "the endpoint does not support ListServiceDeployments (an AWS emulator without it?); checked the service's deployments instead";
                match rolling_out(live) {
                    None => r.warn(name, note),
                    Some(what) => r.fail(name, format!("deployments in progress: {what}; {note}")),
                }
            }
            Ok(sdk) => {
                let why = classify("ECS ListServiceDeployments", sdk)?;
                r.fail(name, why);
            }
            Err(other) => r.fail(name, format!("{other:#}")),
        },
    }
    Ok(())
}

/// Release preflight: the cluster is ACTIVE and every service exists; returns each service's
/// current task definition (what a rollback goes back to).
pub(crate) async fn for_release(ctx: &Ctx) -> Step<BTreeMap<String, String>> {
    let fail = |problems: Vec<String>| {
        Stop::new(
            Outcome::PreflightFailed,
            format!("preflight failed:\n  - {}", problems.join("\n  - ")),
        )
    };
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
        Ok(_) => {
            return Err(fail(vec![format!(
                "cluster {} does not exist or is not ACTIVE (terraform apply creates it)",
                ctx.env.cluster
            )]));
        }
        Err(e) => {
            return Err(fail(vec![format!(
                "DescribeClusters {} failed: {}",
                ctx.env.cluster,
                crate::aws::error_chain(&e)
            )]));
        }
    }
    let names: Vec<String> = ctx.env.services.iter().map(|s| s.name.clone()).collect();
    let live = ecs::live_services(&ctx.ecs, &ctx.env.cluster, &names)
        .await
        .map_err(|e| {
            fail(vec![format!(
                "DescribeServices: {}",
                crate::aws::error_chain(&e)
            )])
        })?;
    let mut problems = Vec::new();
    let mut current = BTreeMap::new();
    for svc in &ctx.env.services {
        let Some(live_svc) = live.get(&svc.name) else {
            problems.push(format!(
                "service {} does not exist in cluster {} (terraform apply creates it)",
                svc.name, ctx.env.cluster
            ));
            continue;
        };
        // Before the migration runs: what would make UpdateService fail after it.
        if let Some(problem) = update_blocker(svc, live_svc) {
            problems.push(problem);
            continue;
        }
        // Traffic: only before a release starts (a deployment in flight moves the weights).
        match traffic::check_production(&ctx.elb, svc, live_svc).await {
            Production::Ok(detail) => ctx
                .report
                .line(&format!("pass  service {} {detail}", svc.name)),
            Production::Wrong(why) => {
                problems.push(why);
                continue;
            }
            // Not knowing where production traffic goes is no ground to shift it.
            Production::Unreadable(why) => {
                problems.push(format!(
                    "service {}: its production listener rule could not be read, so the release cannot tell \
                     what ECS would shift traffic from: {why}. Check `production_listener_rule` in deployer.toml \
                     (or the Terraform output it comes from) and that the deploy role may call \
                     elasticloadbalancing:DescribeRules",
                    svc.name
                ));
                continue;
            }
            Production::NotApplicable => {}
        }
        match live_svc.task_definition() {
            Some(td) => {
                ctx.report
                    .line(&format!("pass  service {} runs {}", svc.name, short_td(td)));
                current.insert(svc.name.clone(), td.to_owned());
            }
            None => problems.push(format!(
                "service {} has no task definition (was it created by terraform apply?)",
                svc.name
            )),
        }
    }
    if problems.is_empty() {
        Ok(current)
    } else {
        Err(fail(problems))
    }
}

/// What would make the release's UpdateService fail for `svc`: a deployment controller other
/// than ECS (CODE_DEPLOY/EXTERNAL services reject task-definition updates), or a blue/green
/// service whose load balancer has no advancedConfiguration (ECS needs the alternate target
/// group and listener rules to shift traffic).
fn update_blocker(svc: &crate::config::Service, live: &EcsService) -> Option<String> {
    let controller = live
        .deployment_controller()
        .map(|c| c.r#type().clone())
        .unwrap_or(DeploymentControllerType::Ecs);
    if controller != DeploymentControllerType::Ecs {
        return Some(format!(
            "service {} uses the {} deployment controller; ECS rejects task-definition updates there and the deployer releases with ECS-native deployments. \
             Recreate the service with deployment_controller ECS (terraform), or deploy it with its own controller",
            svc.name,
            controller.as_str()
        ));
    }
    if svc.strategy.shifts_traffic()
        && let Some(lb) = &svc.load_balancer
    {
        let attached = live.load_balancers().iter().find(|l| {
            l.target_group_arn().is_some_and(|tg| {
                tg == lb.target_group_arn || lb.alternate_target_group_arn.as_deref() == Some(tg)
            })
        });
        match attached {
            None => {
                return Some(format!(
                    "service {} is not attached to target group {} (or its alternate); terraform apply attaches it",
                    svc.name, lb.target_group_arn
                ));
            }
            Some(l) if l.advanced_configuration().is_none() => {
                return Some(format!(
                    "service {} has no advancedConfiguration on its load balancer; a BLUE_GREEN deployment needs the alternate target group, the listener rules and the role (terraform sets them)",
                    svc.name
                ));
            }
            Some(_) => {}
        }
    }
    None
}

/// Under the lock: no service of the environment has a deployment in flight. Listed
/// deployments are eventually consistent (one just started may not be listed yet), so the
/// services' own `deployments` (DescribeServices: a PRIMARY still rolling out, or more than one)
/// are checked too.
pub(crate) async fn nothing_in_flight(ctx: &Ctx) -> Step<()> {
    let busy = |svc: &str, what: String| {
        Stop::new(
            Outcome::PreflightFailed,
            format!(
                "service {svc} has a deployment in progress ({what}); wait for it, `deployer release --resume --env {}` or `deployer rollback --env {}`",
                ctx.env_name, ctx.env_name
            ),
        )
    };
    let names: Vec<String> = ctx.env.services.iter().map(|s| s.name.clone()).collect();
    let live = ecs::live_services(&ctx.ecs, &ctx.env.cluster, &names)
        .await
        .map_err(|e| Stop::failed(format!("DescribeServices: {}", crate::aws::error_chain(&e))))?;
    for svc in &ctx.env.services {
        if let Some(what) = live.get(&svc.name).and_then(rolling_out) {
            return Err(busy(&svc.name, what));
        }
        let in_flight = ecs::in_flight(&ctx.ecs, &ctx.env.cluster, &svc.name)
            .await
            .map_err(Stop::aws)?;
        if let Some(d) = in_flight.first() {
            return Err(busy(&svc.name, d.arn.clone()));
        }
    }
    Ok(())
}

/// A deployment the service itself shows as rolling out (DescribeServices `deployments`).
fn rolling_out(s: &EcsService) -> Option<String> {
    let busy: Vec<String> = s
        .deployments()
        .iter()
        .filter(|d| {
            d.status() != Some("PRIMARY")
                || d.rollout_state()
                    .is_some_and(|r| r.as_str() == "IN_PROGRESS")
        })
        .map(|d| {
            format!(
                "{} {}{}",
                d.id().unwrap_or("?"),
                d.status().unwrap_or("?"),
                d.rollout_state()
                    .map(|r| format!(" {}", r.as_str()))
                    .unwrap_or_default()
            )
        })
        .collect();
    (!busy.is_empty()).then(|| busy.join(", "))
}
