//! The variables task-definition templates see, built from the config and the release.
//!
//! Lowest first: `[project.vars]`, `[environments.X.vars]`, the service's `vars`, then the
//! built-ins (which always win): `project`, `environment`, `region`, `cluster`, `account_id`, `service`,
//! `desired_count`, `agent_kind`, `container_name`, `container_port`, `git_sha`, `version`,
//! `image`, `secrets` (name → ARN), `secret_env` (variables holding secrets), `tf_outputs` and
//! `tf_output_file`.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Map, Value};

use crate::config::{Config, Environment, Service, toml_to_json};
use crate::exit::{Code, Failure};

/// What identifies a release in templates.
#[derive(Debug, Clone)]
pub struct Release {
    pub git_sha: String,
    pub version: String,
    /// Image URI (with digest when known).
    pub image: Option<String>,
}

/// The git sha of the release: the given one, else `GITHUB_SHA`, else `git rev-parse HEAD` in `dir`.
pub fn git_sha(explicit: Option<&str>, dir: &Path) -> Result<String, Failure> {
    if let Some(s) = explicit.filter(|s| !s.is_empty()) {
        return check_sha(s);
    }
    if let Ok(s) = std::env::var("GITHUB_SHA")
        && !s.is_empty()
    {
        return check_sha(&s);
    }
    let out = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(dir)
        .output()
        .map_err(|e| {
            Failure::msg(
                Code::Config,
                format!("cannot run git to find the release's sha: {e}"),
            )
            .with_hint("pass --git-sha <sha> (or DEPLOYER_GIT_SHA)")
        })?;
    if !out.status.success() {
        return Err(Failure::msg(
            Code::Config,
            format!(
                "`git rev-parse HEAD` failed in {}: {}",
                dir.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        )
        .with_hint("run inside the repository or pass --git-sha <sha>"));
    }
    check_sha(String::from_utf8_lossy(&out.stdout).trim())
}

fn check_sha(s: &str) -> Result<String, Failure> {
    let ok = (4..=64).contains(&s.len()) && s.chars().all(|c| c.is_ascii_hexdigit());
    if ok {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(
            Failure::msg(Code::Config, format!("`{s}` is not a git sha"))
                .with_hint("a git sha is 4-64 hexadecimal characters"),
        )
    }
}

/// The release version: `VERSION` from the environment, else `git describe`, else the short sha.
pub fn version(dir: &Path, sha: &str) -> String {
    if let Ok(v) = std::env::var("VERSION")
        && !v.is_empty()
    {
        return v;
    }
    Command::new("git")
        .args(["describe", "--tags", "--always"])
        .current_dir(dir)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| sha.chars().take(12).collect())
}

/// Loads the environment's `terraform output -json` file, if configured.
pub fn tf_outputs(config: &Config, env: &Environment) -> Result<Option<(PathBuf, Value)>, Failure> {
    let Some(p) = &env.tf_output else {
        return Ok(None);
    };
    let path = config.path(p);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        Failure::msg(Code::Config, format!("cannot read the terraform outputs file {}: {e}", path.display()))
            .with_hint("write it with `terraform output -json > <file>` in the environment's terraform directory, or fix `tf_output` in deployer.toml")
    })?;
    let value: Value = serde_json::from_str(&text).map_err(|e| {
        Failure::msg(Code::Config, format!("{} is not JSON: {e}", path.display()))
            .with_hint("it must be the output of `terraform output -json`")
    })?;
    if !value.is_object() {
        return Err(Failure::msg(
            Code::Config,
            format!("{} is not a JSON object of outputs", path.display()),
        ));
    }
    Ok(Some((path, value)))
}

/// The template variables for one service (or the migration task when `service` is None).
pub fn for_service(
    config: &Config,
    env_name: &str,
    env: &Environment,
    service: Option<&Service>,
    release: &Release,
    tf: Option<&(PathBuf, Value)>,
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
            m.insert("desired_count".into(), Value::from(svc.desired_count));
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
