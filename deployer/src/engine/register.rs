//! Registering a release's task definitions: rendered through the environment's one render set
//! and tagged with the release (git sha, release id, deployer version).

use anyhow::{Context, anyhow};

use super::{Ctx, Outcome, Step, Stop};
use crate::taskdef::{RenderSet, Target, vars::Release};

/// The template variables' view of a release.
pub(crate) fn release(ctx: &Ctx, image: &str, git_sha: &str, release_id: &str) -> Release {
    Release {
        git_sha: git_sha.to_owned(),
        version: crate::config::git::version(&ctx.cfg.root, git_sha),
        image: (!image.is_empty()).then(|| image.to_owned()),
        release_id: Some(release_id.to_owned()),
    }
}

/// Renders `target` for the release and registers it; returns the new revision's ARN.
/// A template error ends as a config error; an AWS error as failed.
pub(crate) async fn register(ctx: &Ctx, target: &Target<'_>, release: &Release) -> Step<String> {
    let set = RenderSet::new(&ctx.cfg, &ctx.env_name, &ctx.env)
        .map_err(|f| Stop::new(Outcome::ConfigError, format!("{f}")))?;
    let td = set
        .render(target, release)
        .map_err(|e| Stop::new(Outcome::ConfigError, e.to_string()))?;
    let tags = vec![
        ("git_sha".to_owned(), release.git_sha.clone()),
        (
            "release_id".to_owned(),
            release.release_id.clone().unwrap_or_default(),
        ),
        (
            "deployer_version".to_owned(),
            env!("CARGO_PKG_VERSION").to_owned(),
        ),
    ];
    let template = target.template;
    let sent = async {
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
    };
    sent.await.map_err(Stop::aws)
}

/// The render target of one configured service.
pub(crate) fn service_target(svc: &crate::config::Service) -> Target<'_> {
    Target {
        name: &svc.name,
        template: &svc.template,
        service: Some(svc),
    }
}
