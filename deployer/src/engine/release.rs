//! `deployer release`: take a git sha to production traffic only after it has proven itself,
//! and put the last good version back whenever anything fails. (`--resume` is the release
//! command's dispatch to [`super::resume`].)

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::deploy::ServicePlan;
use super::register::{self, register, service_target};
use super::run::run_locked;
use super::waves::{deploy_all, smoke_vars};
use super::{Ctx, Outcome, Step, Stop, migration, preflight};
use crate::aws::ecr::{ReleaseImage, resolve_release_image};
use crate::aws::ecs::short_td;
use crate::exit::Failure;
use crate::state::audit::{ReleaseKind, ReleaseRecord, ServiceRecord};

/// What a release is asked to do.
#[derive(Debug, Clone, Default)]
pub struct ReleaseArgs {
    /// The release's git sha (already resolved by the caller).
    pub git_sha: String,
    pub image: Option<String>,
    /// Fail preflight when the image is not in ECR instead of building and pushing it.
    pub no_build: bool,
    pub wait_lock: Option<Duration>,
}

/// Flattens a command-level failure (image build/push) into one line with its hint.
fn failure_text(f: &Failure) -> String {
    format!(
        "{:#}{}",
        f.error,
        f.hint
            .as_ref()
            .map(|h| format!(" ({h})"))
            .unwrap_or_default()
    )
}

/// The image for the release, building and pushing it when it is missing and may be built.
async fn release_image(ctx: &Ctx, args: &ReleaseArgs) -> Step<Option<ReleaseImage>> {
    let repo = ctx.cfg.ecr_repository(&ctx.env);
    // Build and push only for this environment's own `<repository>:<git sha>`: a given --image
    // is the caller's to provide.
    let may_build = args.image.is_none() && !args.no_build;
    match resolve_release_image(&ctx.ecr, repo, args.image.as_deref(), &args.git_sha).await {
        Ok(ReleaseImage::Missing { .. }) if may_build => {
            ctx.report.line(&format!(
                "note  image for {} is not in ECR: the release builds and pushes it",
                args.git_sha
            ));
            Ok(None)
        }
        Ok(ReleaseImage::Missing { image, .. }) => Err(Stop::new(
            Outcome::PreflightFailed,
            format!(
                "preflight failed: the image {image} is not in ECR; build and push it first (`deployer build && deployer push --env {}`), pass --image, or drop --no-build",
                ctx.env_name
            ),
        )),
        Ok(found) => {
            ctx.report.line(&format!("pass  image {}", found.image()));
            Ok(Some(found))
        }
        Err(f) => Err(Stop::new(
            Outcome::PreflightFailed,
            format!("preflight failed: {}", failure_text(&f)),
        )),
    }
}

/// `deployer build` then `deployer push` for the release's sha, with the project's build settings
/// and the environment's repository (and registry override).
async fn build_and_push(ctx: &Ctx, git_sha: &str) -> Result<(), Failure> {
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

/// `deployer release`: preflight, the image (built if missing), then the locked release.
pub async fn release(ctx: &Ctx, args: &ReleaseArgs) -> Step<()> {
    let git_sha = args.git_sha.clone();
    let mut rec = ReleaseRecord::start(&ctx.env_name, ReleaseKind::Release, &git_sha, "");
    ctx.report.stage(&format!(
        "Preflight: release {} of {} to {}",
        rec.release_id, git_sha, ctx.env_name
    ));
    let mut resolved = release_image(ctx, args).await?;
    // Deployments in flight are checked under the lock (a concurrent release must be reported as
    // holding the lock, not as a preflight failure).
    let current = preflight::for_release(ctx).await?;
    if resolved.is_none() {
        // After the other checks, so a broken environment fails before a long build.
        ctx.report
            .stage(&format!("Build and push image for {git_sha}"));
        build_and_push(ctx, &git_sha).await.map_err(|f| {
            Stop::new(
                Outcome::ImageFailed,
                format!("building/pushing the image failed: {}", failure_text(&f)),
            )
        })?;
        let repo = ctx.cfg.ecr_repository(&ctx.env);
        resolved = match resolve_release_image(&ctx.ecr, repo, None, &git_sha).await {
            Ok(found @ ReleaseImage::Found { .. }) => Some(found),
            Ok(other) => {
                return Err(Stop::new(
                    Outcome::ImageFailed,
                    format!("the pushed image {} is not visible in ECR", other.image()),
                ));
            }
            Err(f) => {
                return Err(Stop::new(
                    Outcome::ImageFailed,
                    format!(
                        "the pushed image is not visible in ECR: {}",
                        failure_text(&f)
                    ),
                ));
            }
        };
    }
    let resolved = resolved.expect("resolved or built above");
    rec.image = resolved.image().to_owned();
    rec.image_digest = resolved.digest().unwrap_or_default().to_owned();
    rec.services = ctx
        .env
        .services
        .iter()
        .map(|s| ServiceRecord {
            service: s.name.clone(),
            previous_task_definition: current.get(&s.name).cloned().unwrap_or_default(),
            ..Default::default()
        })
        .collect();
    run_locked(ctx, &mut rec, args.wait_lock, None, |ctx, rec| {
        Box::pin(async move { release_body(ctx, rec, current).await.map(|_| String::new()) })
    })
    .await
}

async fn release_body(
    ctx: &Ctx,
    rec: &mut ReleaseRecord,
    current: BTreeMap<String, String>,
) -> Step<()> {
    preflight::nothing_in_flight(ctx).await?;
    let release = register::release(ctx, &rec.image, &rec.git_sha, &rec.release_id);
    // Migration first: a failed migration stops the release before any service changes.
    if ctx.env.migration.is_some() {
        ctx.report.stage("Migration (one-off task)");
        rec.migration_task = migration::run_migration(ctx, &release).await?;
    }
    ctx.report.stage("Register task definitions");
    let mut plans = Vec::new();
    for svc in &ctx.env.services {
        let td = register(ctx, &service_target(svc), &release).await?;
        ctx.report
            .line(&format!("registered {} for {}", short_td(&td), svc.name));
        if let Some(s) = rec.service_mut(&svc.name) {
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
    ctx.audit()
        .put(rec)
        .await
        .map_err(|e| Stop::failed(format!("writing the audit record: {e:#}")))?;
    let vars = smoke_vars(ctx, rec);
    deploy_all(ctx, &plans, &vars, rec).await
}
