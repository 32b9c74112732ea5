//! Task definitions: the model and renderer (re-exported from `deployer-taskdef`, which the
//! platform's deployment agent uses without the AWS SDK), the template variables of a release,
//! rendering an environment's set (the one loop `render`, `diff`, `verify` and `release`
//! share), diffing against what runs, and the SDK request that registers one.

pub mod diff;
mod sdk;
pub mod vars;

pub use deployer_taskdef::*;
pub use sdk::register_request;
pub use vars::Release;

use std::path::Path;

use serde_json::Value;

use crate::config::ConfigError;
use crate::config::{Config, Environment, Service};
use render::{RenderError, Renderer};

/// Why an environment's task definitions cannot be rendered at all.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Templates(#[from] RenderError),
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// One task definition of an environment: a service's, or the migration task's.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// `migration` for the migration task.
    pub name: &'a str,
    pub template: &'a str,
    /// `None` for the migration task.
    pub service: Option<&'a Service>,
}

/// A rendered task definition, exactly as it would be registered.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub name: String,
    pub template: String,
    pub definition: TaskDefinition,
}

impl Rendered {
    pub fn json(&self) -> Value {
        serde_json::to_value(&self.definition).expect("a task definition serialises")
    }
}

/// What renders an environment's task definitions: its templates and Terraform outputs.
pub struct RenderSet<'a> {
    cfg: &'a Config,
    env_name: &'a str,
    env: &'a Environment,
    renderer: Renderer,
    tf: Option<(&'a Path, &'a Value)>,
}

impl<'a> RenderSet<'a> {
    /// Loads the templates; fails when they or the Terraform outputs cannot be read.
    pub fn new(
        cfg: &'a Config,
        env_name: &'a str,
        env: &'a Environment,
    ) -> Result<Self, SetupError> {
        let renderer = Renderer::new(&cfg.templates_dir())?;
        let tf = env.tf_outputs.get(&cfg.source)?;
        Ok(Self {
            cfg,
            env_name,
            env,
            renderer,
            tf,
        })
    }

    /// The environment's services in config order (only `only` when given; `migration` names
    /// the migration task, which is otherwise left out).
    pub fn targets(&self, only: Option<&str>) -> Vec<Target<'a>> {
        let mut out: Vec<Target<'a>> = self
            .env
            .services
            .iter()
            .filter(|s| only.is_none_or(|o| o == s.name))
            .map(|s| Target {
                name: &s.name,
                template: &s.template,
                service: Some(s),
            })
            .collect();
        if let Some(m) = &self.env.migration
            && only == Some("migration")
        {
            out.push(self.migration_target(m));
        }
        out
    }

    /// Every service and, when the environment has one, the migration task.
    pub fn all_targets(&self) -> Vec<Target<'a>> {
        let mut out = self.targets(None);
        if let Some(m) = &self.env.migration {
            out.push(self.migration_target(m));
        }
        out
    }

    fn migration_target(&self, m: &'a crate::config::Migration) -> Target<'a> {
        Target {
            name: "migration",
            template: &m.template,
            service: None,
        }
    }

    /// The template variables of one target for a release.
    pub fn vars(&self, target: &Target<'_>, release: &Release) -> Value {
        vars::for_service(
            self.cfg,
            self.env_name,
            self.env,
            target.service,
            release,
            self.tf,
        )
    }

    pub fn render(
        &self,
        target: &Target<'_>,
        release: &Release,
    ) -> Result<TaskDefinition, RenderError> {
        self.renderer
            .render_typed(target.template, &self.vars(target, release))
    }

    /// Renders every target of `only` (see [`targets`](Self::targets)); the first error wins.
    pub fn render_all(
        &self,
        release: &Release,
        only: Option<&str>,
    ) -> Result<Vec<Rendered>, RenderError> {
        self.targets(only)
            .iter()
            .map(|t| {
                Ok(Rendered {
                    name: t.name.to_owned(),
                    template: t.template.to_owned(),
                    definition: self.render(t, release)?,
                })
            })
            .collect()
    }
}
