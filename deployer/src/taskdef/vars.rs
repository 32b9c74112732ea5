//! The variables task-definition templates see, built from the config and the release.
//!
//! Lowest first: `[project.vars]`, `[environments.X.vars]`, the service's `vars`, then the
//! built-ins (which always win): `project`, `environment`, `region`, `cluster`, `account_id`, `service`,
//! `desired_count`, `agent_kind`, `container_name`, `container_port`, `git_sha`, `version`,
//! `image`, `release_id` (during a release), `secrets` (name → ARN), `secret_env` (variables
//! holding secrets), `tf_outputs` and `tf_output_file`.

use std::path::Path;

use serde_json::{Map, Value};

use crate::config::{Config, Environment, Service, toml_to_json};

/// What identifies a release in templates.
#[derive(Debug, Clone)]
pub struct Release {
    pub git_sha: String,
    pub version: String,
    /// Image URI (with digest when known).
    pub image: Option<String>,
    /// Set during a release (templates may tag resources with it).
    pub release_id: Option<String>,
}

/// The template variables for one service (or the migration task when `service` is None).
pub fn for_service(
    config: &Config,
    env_name: &str,
    env: &Environment,
    service: Option<&Service>,
    release: &Release,
    tf: Option<(&Path, &Value)>,
) -> Value {
    let mut m = Map::new();
    let layers = [
        Some(&config.project.vars),
        Some(&env.vars),
        service.map(|s| &s.vars),
    ];
    for layer in layers.into_iter().flatten() {
        for (k, v) in layer {
            m.insert(k.clone(), toml_to_json(v));
        }
    }
    let s = |v: &str| Value::String(v.to_string());
    m.insert("project".into(), s(&config.project.name));
    m.insert("environment".into(), s(env_name));
    m.insert(
        "region".into(),
        env.region.as_deref().map(s).unwrap_or(Value::Null),
    );
    m.insert("cluster".into(), s(&env.cluster));
    if let Some(a) = &env.account_id {
        m.insert("account_id".into(), s(a));
    }
    m.insert("git_sha".into(), s(&release.git_sha));
    m.insert("version".into(), s(&release.version));
    if let Some(i) = &release.image {
        m.insert("image".into(), s(i));
    }
    if let Some(id) = &release.release_id {
        m.insert("release_id".into(), s(id));
    }
    // Names of variables holding secrets: the `env` helpers refuse them.
    let secret_env: Vec<Value> = [
        env.api_token_env.as_deref(),
        env.notifications.webhook_url_env.as_deref(),
    ]
    .into_iter()
    .flatten()
    .map(s)
    .collect();
    m.insert("secret_env".into(), Value::Array(secret_env));
    let secrets: Map<String, Value> = env.secrets.iter().map(|(k, v)| (k.clone(), s(v))).collect();
    m.insert("secrets".into(), Value::Object(secrets));
    if let Some((path, outputs)) = tf {
        m.insert("tf_outputs".into(), outputs.clone());
        m.insert("tf_output_file".into(), s(&path.display().to_string()));
    }
    match service {
        Some(svc) => {
            m.insert("service".into(), s(&svc.name));
            if let Some(n) = svc.desired_count {
                m.insert("desired_count".into(), Value::from(n));
            }
            if let Some(k) = &svc.agent_kind {
                m.insert("agent_kind".into(), s(k));
            }
            if let Some(lb) = &svc.load_balancer {
                m.insert("container_name".into(), s(&lb.container_name));
                m.insert("container_port".into(), Value::from(lb.container_port));
            }
        }
        None => {
            m.insert("service".into(), s("migration"));
        }
    }
    Value::Object(m)
}
