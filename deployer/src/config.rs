//! `deployer.toml`: the typed configuration, its loading and layering.
//!
//! Layers, lowest first: the file; `DEPLOYER_*` environment variables; CLI flags (applied by the
//! CLI through [`Overrides`]). An environment variable addresses any key by its path, levels
//! separated by `__`, list items by index:
//! `DEPLOYER_ENVIRONMENTS__STAGING__CLUSTER=other`,
//! `DEPLOYER_ENVIRONMENTS__STAGING__SERVICES__0__DESIRED_COUNT=3`.
//! A value replacing a string stays a string; otherwise it is read as a TOML value (`3`, `true`,
//! `["a","b"]`) and falls back to a string.
//!
//! Unknown keys and wrong types are errors naming the file, line and column, with a hint.
//! Secret values (API token, webhook URL) never live in the file: the file names the environment
//! variable holding them, and the loaded config keeps them as [`SecretString`]s that print as
//! `[redacted]`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize, Serializer};

/// Prefix of environment variables overriding keys of the file.
pub const ENV_PREFIX: &str = "DEPLOYER_";
/// Variables with this prefix that are CLI flags, not config keys.
const FLAG_VARS: &[&str] = &[
    "DEPLOYER_CONFIG",
    "DEPLOYER_ENV",
    "DEPLOYER_PROFILE",
    "DEPLOYER_REGION",
    "DEPLOYER_ENDPOINT_URL",
    "DEPLOYER_OUTPUT",
    "DEPLOYER_LOG",
    "DEPLOYER_NO_COLOR",
    "DEPLOYER_GIT_SHA",
    "DEPLOYER_IMAGE",
];
pub const DEFAULT_FILE: &str = "deployer.toml";

// ------------------------------------------------------------------ the model

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub project: Project,
    #[serde(default)]
    pub environments: BTreeMap<String, Environment>,
    /// The file this was loaded from.
    #[serde(skip_deserializing)]
    pub source: PathBuf,
    /// Relative paths in the file are relative to this directory (the file's).
    #[serde(skip_deserializing)]
    pub root: PathBuf,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Project {
    /// Project name; used in labels, audit records and default family names.
    pub name: String,
    /// ECR repository name; the local image is tagged `<ecr_repository>:<git sha>`.
    pub ecr_repository: String,
    #[serde(default = "default_dockerfile")]
    pub dockerfile: PathBuf,
    /// Build context directory.
    #[serde(default = "default_context")]
    pub context: PathBuf,
    /// Directory of task-definition templates.
    #[serde(default = "default_templates")]
    pub templates: PathBuf,
    #[serde(default = "default_platform")]
    pub platform: String,
    /// Extra `--build-arg`s (GIT_SHA and VERSION are always set).
    #[serde(default)]
    pub build_args: BTreeMap<String, String>,
    /// Template variables for every environment.
    #[serde(default)]
    pub vars: BTreeMap<String, toml::Value>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    pub region: Option<String>,
    /// Expected AWS account; checked by `verify` when set.
    pub account_id: Option<String>,
    pub cluster: String,
    /// AWS endpoint (an emulator for the `local` environment); default: the SDK's.
    pub endpoint_url: Option<String>,
    /// AWS profile for this environment; default: the SDK's chain.
    pub profile: Option<String>,
    /// Push to this registry (`host:port`) instead of the ECR repository's host, while auth and
    /// repository calls still go to ECR. For tests and the local demo.
    pub registry: Option<String>,
    /// ECR repository for this environment (default: the project's).
    pub ecr_repository: Option<String>,
    /// A `terraform output -json` file for the `tf_output` template helper.
    pub tf_output: Option<PathBuf>,
    /// DynamoDB table of the deploy lock.
    #[serde(default = "default_lock_table")]
    pub lock_table: String,
    /// DynamoDB table of the release audit log.
    #[serde(default = "default_audit_table")]
    pub audit_table: String,
    /// Template variables for this environment (over the project's).
    #[serde(default)]
    pub vars: BTreeMap<String, toml::Value>,
    /// Secret name → ARN (Secrets Manager or SSM), for the `secret_arn` helper. ARNs only.
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    pub network: Option<Network>,
    #[serde(default)]
    pub urls: Urls,
    /// Name of the environment variable holding the platform API token (smoke checks, agent gate).
    pub api_token_env: Option<String>,
    /// The token itself, read from `api_token_env` at load time.
    #[serde(skip_deserializing, serialize_with = "redact_opt")]
    pub api_token: Option<SecretString>,
    #[serde(default)]
    pub timeouts: Timeouts,
    #[serde(default)]
    pub release: ReleaseSettings,
    pub migration: Option<Migration>,
    #[serde(default)]
    pub notifications: Notifications,
    #[serde(default)]
    pub smoke_checks: Vec<SmokeCheck>,
    #[serde(default)]
    pub services: Vec<Service>,
    /// Set when settings reference `tf_output` but the outputs file could not be read: using
    /// the environment is then an error naming the file.
    #[serde(skip)]
    pub unresolved_tf_outputs: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    pub subnets: Vec<String>,
    #[serde(default)]
    pub security_groups: Vec<String>,
    #[serde(default)]
    pub assign_public_ip: bool,
}

/// Base URLs the smoke checks call.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Urls {
    /// Production listener (what users hit).
    pub production: Option<String>,
    /// Test listener (the new version during a blue/green test-traffic stage).
    pub test: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    /// Whole service deployment, from update to a terminal state.
    #[serde(default = "d_30m", with = "humantime_serde")]
    pub deployment: Duration,
    /// The one-off migration task.
    #[serde(default = "d_15m", with = "humantime_serde")]
    pub migration: Duration,
    /// ECS lifecycle-hook timeout (its action is ROLLBACK): the safety net when the deployer dies.
    #[serde(default = "d_30m", with = "humantime_serde")]
    pub hook: Duration,
    /// Deploy-lock expiry without heartbeat.
    #[serde(default = "d_10m", with = "humantime_serde")]
    pub lock_ttl: Duration,
    #[serde(default = "d_30s", with = "humantime_serde")]
    pub lock_heartbeat: Duration,
    /// Waiting for a lock held by someone else (`--wait-lock` overrides).
    #[serde(default = "d_0s", with = "humantime_serde")]
    pub lock_wait: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            deployment: d_30m(),
            migration: d_15m(),
            hook: d_30m(),
            lock_ttl: d_10m(),
            lock_heartbeat: d_30s(),
            lock_wait: d_0s(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseSettings {
    /// How many services are updated at the same time (within the order of `services`).
    #[serde(default = "default_parallel")]
    pub max_parallel: u32,
}

impl Default for ReleaseSettings {
    fn default() -> Self {
        Self {
            max_parallel: default_parallel(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Migration {
    /// Template of the migration task definition.
    pub template: String,
    /// Container whose command is overridden (default: the first).
    pub container: Option<String>,
    /// Command override; default: the template's.
    #[serde(default)]
    pub command: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Notifications {
    /// Name of the environment variable holding a Slack-compatible webhook URL (a secret).
    pub webhook_url_env: Option<String>,
    #[serde(skip_deserializing, serialize_with = "redact_opt")]
    pub webhook_url: Option<SecretString>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// ECS native BLUE_GREEN (with a load balancer, or headless with a POST_SCALE_UP pause).
    BlueGreen,
    /// ECS ROLLING with the circuit breaker and rollback.
    Rolling,
}

impl Strategy {
    /// The ECS `deploymentConfiguration.strategy` value.
    pub fn ecs_name(self) -> &'static str {
        match self {
            Strategy::BlueGreen => "BLUE_GREEN",
            Strategy::Rolling => "ROLLING",
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// ECS service name.
    pub name: String,
    /// Task-definition template (file name in `templates` without `.json.hbs`).
    pub template: String,
    pub strategy: Strategy,
    #[serde(default = "default_desired")]
    pub desired_count: u32,
    /// The agent kind, for agent services (gate: agents of the new version heart-beat).
    pub agent_kind: Option<String>,
    pub load_balancer: Option<LoadBalancer>,
    /// BLUE_GREEN bake time.
    #[serde(default, with = "humantime_serde::option")]
    pub bake_time: Option<Duration>,
    /// PAUSE lifecycle hooks, e.g. `POST_TEST_TRAFFIC_SHIFT`.
    #[serde(default)]
    pub hooks: Vec<Hook>,
    /// Names of smoke checks gating this service (default: all of the environment's, for
    /// load-balanced services).
    pub smoke_checks: Option<Vec<String>>,
    /// Template variables for this service (over the environment's).
    #[serde(default)]
    pub vars: BTreeMap<String, toml::Value>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LoadBalancer {
    pub container_name: String,
    pub container_port: u16,
    pub target_group_arn: String,
    /// BLUE_GREEN `advancedConfiguration`.
    pub alternate_target_group_arn: Option<String>,
    pub production_listener_rule: Option<String>,
    pub test_listener_rule: Option<String>,
    pub role_arn: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Hook {
    /// Lifecycle stage, e.g. POST_TEST_TRAFFIC_SHIFT, POST_PRODUCTION_TRAFFIC_SHIFT, POST_SCALE_UP.
    pub stage: String,
    /// Hook target (e.g. a Lambda ARN) when the platform needs one.
    pub target_arn: Option<String>,
    pub role_arn: Option<String>,
    /// Overrides `timeouts.hook` for this hook.
    #[serde(default, with = "humantime_serde::option")]
    pub timeout: Option<Duration>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SmokeCheck {
    pub name: String,
    /// Which listener: `test`, `production` or `both`.
    #[serde(default)]
    pub target: SmokeTarget,
    #[serde(default = "default_method")]
    pub method: String,
    /// Path under the target URL, e.g. `/api/v1/health`.
    pub path: String,
    #[serde(default = "default_status")]
    pub expect_status: u16,
    /// JSON-pointer assertions on the response body. `equals` values are templated with the
    /// release's values (`{{git_sha}}`, `{{version}}`).
    #[serde(default)]
    pub assertions: Vec<Assertion>,
    /// Extra request headers (values are redacted in output).
    #[serde(default, serialize_with = "redact_map")]
    pub headers: BTreeMap<String, String>,
    /// Send `Authorization: Bearer <api token>`.
    #[serde(default)]
    pub auth: bool,
    #[serde(default = "d_5s", with = "humantime_serde")]
    pub timeout: Duration,
    #[serde(default = "default_retries")]
    pub retries: u32,
    #[serde(default = "d_1s", with = "humantime_serde")]
    pub backoff: Duration,
    #[serde(default = "default_one")]
    pub consecutive_successes: u32,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SmokeTarget {
    Test,
    Production,
    #[default]
    Both,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Assertion {
    /// RFC 6901 JSON pointer, e.g. `/git_sha`.
    pub pointer: String,
    /// Expected value (strings are templated). Without it, the pointer must exist.
    pub equals: Option<toml::Value>,
}

fn default_dockerfile() -> PathBuf {
    "Dockerfile.production".into()
}
fn default_context() -> PathBuf {
    ".".into()
}
fn default_templates() -> PathBuf {
    "templates/task-definitions".into()
}
fn default_platform() -> String {
    "linux/amd64".into()
}
fn default_lock_table() -> String {
    "deployer-locks".into()
}
fn default_audit_table() -> String {
    "deployer-releases".into()
}
fn default_parallel() -> u32 {
    2
}
fn default_desired() -> u32 {
    1
}
fn default_method() -> String {
    "GET".into()
}
fn default_status() -> u16 {
    200
}
fn default_retries() -> u32 {
    3
}
fn default_one() -> u32 {
    1
}
fn d_0s() -> Duration {
    Duration::ZERO
}
fn d_1s() -> Duration {
    Duration::from_secs(1)
}
fn d_5s() -> Duration {
    Duration::from_secs(5)
}
fn d_30s() -> Duration {
    Duration::from_secs(30)
}
fn d_10m() -> Duration {
    Duration::from_secs(600)
}
fn d_15m() -> Duration {
    Duration::from_secs(900)
}
fn d_30m() -> Duration {
    Duration::from_secs(1800)
}

pub const REDACTED: &str = "[redacted]";

fn redact_opt<S: Serializer>(v: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(_) => s.serialize_str(REDACTED),
        None => s.serialize_none(),
    }
}

fn redact_map<S: Serializer>(v: &BTreeMap<String, String>, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut m = s.serialize_map(Some(v.len()))?;
    for k in v.keys() {
        m.serialize_entry(k, REDACTED)?;
    }
    m.end()
}

// ------------------------------------------------------------------ errors

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
        hint: String,
    },
    #[error("{}{}: {message}", path.display(), at(*line, *column))]
    Parse {
        path: PathBuf,
        line: Option<u32>,
        column: Option<u32>,
        message: String,
        /// The offending source line.
        snippet: Option<String>,
        hint: Option<String>,
    },
    #[error("{var}: {message}")]
    Env {
        var: String,
        message: String,
        hint: Option<String>,
    },
    #[error("{}: {message}", path.display())]
    Invalid {
        path: PathBuf,
        message: String,
        hint: Option<String>,
    },
    #[error("unknown environment `{name}` in {}; it defines: {}", path.display(), if known.is_empty() { "none".to_string() } else { known.join(", ") })]
    UnknownEnvironment {
        name: String,
        path: PathBuf,
        known: Vec<String>,
        hint: Option<String>,
    },
}

impl ConfigError {
    /// What to do about it, when there is something to say.
    pub fn hint(&self) -> Option<&str> {
        match self {
            ConfigError::Read { hint, .. } => Some(hint),
            ConfigError::Parse { hint, .. }
            | ConfigError::Env { hint, .. }
            | ConfigError::Invalid { hint, .. }
            | ConfigError::UnknownEnvironment { hint, .. } => hint.as_deref(),
        }
    }

    pub fn snippet(&self) -> Option<&str> {
        match self {
            ConfigError::Parse { snippet, .. } => snippet.as_deref(),
            _ => None,
        }
    }
}

fn at(line: Option<u32>, column: Option<u32>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(":{l}:{c}"),
        (Some(l), None) => format!(":{l}"),
        _ => String::new(),
    }
}

// ------------------------------------------------------------------ loading

/// Values from CLI flags; they win over the file and the environment.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub region: Option<String>,
    pub profile: Option<String>,
    pub endpoint_url: Option<String>,
}

/// Finds the config file: the given path, else `./deployer.toml`, else the nearest one upwards.
pub fn locate(explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    for dir in cwd.ancestors() {
        let candidate = dir.join(DEFAULT_FILE);
        if candidate.is_file() {
            return candidate;
        }
    }
    cwd.join(DEFAULT_FILE)
}

/// Loads the file and applies `DEPLOYER_*` variables from the process environment.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let vars: Vec<(String, String)> = std::env::vars().collect();
    load_with_env(path, &vars)
}

/// Like [`load`], with the environment given (tests).
pub fn load_with_env(path: &Path, env: &[(String, String)]) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        hint: if source.kind() == std::io::ErrorKind::NotFound {
            "create deployer.toml at the repository root, or pass --config <file> (or DEPLOYER_CONFIG)".into()
        } else {
            "check the file's permissions".into()
        },
        source,
    })?;
    let mut config = parse_str(path, &text, env)?;
    config.source = path.to_path_buf();
    config.root = path
        .parent()
        .map(|p| {
            if p.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                p.to_path_buf()
            }
        })
        .unwrap_or_else(|| PathBuf::from("."));
    resolve_secrets(&mut config, env)?;
    resolve_tf_outputs(&mut config)?;
    check(&config)?;
    Ok(config)
}

fn parse_str(path: &Path, text: &str, env: &[(String, String)]) -> Result<Config, ConfigError> {
    // First the file alone, so its errors carry a line and column.
    let file_only: Result<Config, toml::de::Error> = toml::from_str(text);
    let file_only = file_only.map_err(|e| parse_error(path, text, &e))?;
    let overrides: Vec<&(String, String)> = env
        .iter()
        .filter(|(k, _)| k.starts_with(ENV_PREFIX) && !FLAG_VARS.contains(&k.as_str()))
        .collect();
    if overrides.is_empty() {
        return Ok(file_only);
    }
    let mut tree: toml::Value = toml::from_str(text).map_err(|e| parse_error(path, text, &e))?;
    let mut applied = Vec::new();
    let mut applied_values: Vec<(String, String)> = Vec::new();
    for (var, value) in overrides {
        let keys: Vec<String> = var[ENV_PREFIX.len()..]
            .split("__")
            .map(|k| k.to_ascii_lowercase())
            .collect();
        if keys.iter().any(String::is_empty) {
            return Err(ConfigError::Env {
                var: var.clone(),
                message: "empty key in the variable name".into(),
                hint: Some("separate levels with a double underscore, e.g. DEPLOYER_ENVIRONMENTS__STAGING__CLUSTER".into()),
            });
        }
        set_path(&mut tree, &keys, value).map_err(|message| ConfigError::Env {
            var: var.clone(),
            message,
            hint: Some("the variable names a key path of deployer.toml; list items by index (…__SERVICES__0__…)".into()),
        })?;
        applied.push((keys.join("."), var.clone()));
        applied_values.push((var.clone(), value.clone()));
    }
    serde_path_to_error::deserialize::<_, Config>(tree).map_err(|e| {
        let key = e.path().to_string();
        // serde quotes the offending value; it may be a secret (a header, a token).
        let mut message = e.inner().to_string();
        for (_, value) in &applied_values {
            if value.len() >= 4 {
                message = message.replace(value.as_str(), "[redacted]");
            }
        }
        let var = applied
            .iter()
            .filter(|(k, _)| key.starts_with(k.as_str()) || k.starts_with(key.as_str()))
            .map(|(_, v)| v.clone())
            .next()
            .unwrap_or_else(|| {
                applied
                    .iter()
                    .map(|(_, v)| v.clone())
                    .collect::<Vec<_>>()
                    .join(", ")
            });
        ConfigError::Env {
            hint: hint_for(&message),
            var,
            message: format!("{key}: {message}"),
        }
    })
}

fn set_path(tree: &mut toml::Value, keys: &[String], raw: &str) -> Result<(), String> {
    let (last, parents) = keys.split_last().expect("non-empty key path");
    let mut cur = tree;
    for k in parents {
        cur = match cur {
            toml::Value::Table(t) => t
                .entry(k.clone())
                .or_insert_with(|| toml::Value::Table(Default::default())),
            toml::Value::Array(a) => {
                let i: usize = k
                    .parse()
                    .map_err(|_| format!("`{k}` is not a list index"))?;
                let len = a.len();
                a.get_mut(i).ok_or_else(|| {
                    format!("index {i} is out of range (the list has {len} items)")
                })?
            }
            _ => return Err(format!("`{k}` is inside a value that is not a table")),
        };
    }
    let existing_is_string = match &*cur {
        toml::Value::Table(t) => matches!(t.get(last), Some(toml::Value::String(_))),
        _ => false,
    };
    let value = if existing_is_string {
        toml::Value::String(raw.to_string())
    } else {
        parse_scalar(raw)
    };
    match cur {
        toml::Value::Table(t) => {
            t.insert(last.clone(), value);
            Ok(())
        }
        toml::Value::Array(a) => {
            let i: usize = last
                .parse()
                .map_err(|_| format!("`{last}` is not a list index"))?;
            let len = a.len();
            *a.get_mut(i)
                .ok_or_else(|| format!("index {i} is out of range (the list has {len} items)"))? =
                value;
            Ok(())
        }
        _ => Err(format!("`{last}` is inside a value that is not a table")),
    }
}

fn parse_scalar(raw: &str) -> toml::Value {
    #[derive(Deserialize)]
    struct W {
        v: toml::Value,
    }
    toml::from_str::<W>(&format!("v = {raw}"))
        .map(|w| w.v)
        .unwrap_or_else(|_| toml::Value::String(raw.to_string()))
}

fn parse_error(path: &Path, text: &str, e: &toml::de::Error) -> ConfigError {
    let message = e.message().trim().to_string();
    let (line, column, snippet) = match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            let snippet = text.lines().nth(line - 1).map(|l| l.to_string());
            let n = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
            (Some(n(line)), Some(n(column)), snippet)
        }
        None => (None, None, None),
    };
    ConfigError::Parse {
        path: path.to_path_buf(),
        line,
        column,
        hint: hint_for(&message),
        message,
        snippet,
    }
}

/// A hint for serde's messages: the closest expected key, or what the type should look like.
fn hint_for(message: &str) -> Option<String> {
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let field = rest.split('`').next().unwrap_or_default();
        let expected: Vec<&str> = message
            .split_once("expected")
            .map(|(_, e)| e.split('`').skip(1).step_by(2).collect())
            .unwrap_or_default();
        let best = expected
            .iter()
            .map(|k| (strsim::jaro_winkler(field, k), *k))
            .filter(|(s, _)| *s > 0.75)
            .max_by(|a, b| a.0.total_cmp(&b.0));
        return Some(match best {
            Some((_, k)) => format!("did you mean `{k}`? (keys are listed in docs/deployer.md)"),
            None => "remove it; the keys are listed in docs/deployer.md".into(),
        });
    }
    if message.starts_with("unknown variant") {
        return Some("use one of the values listed".into());
    }
    if message.starts_with("missing field") {
        let field = message.split('`').nth(1).unwrap_or("it");
        return Some(format!("add `{field} = …` to this table"));
    }
    if message.starts_with("invalid type: string") {
        if message.contains("expected u") || message.contains("expected i") {
            return Some("write the number without quotes".into());
        }
        if message.contains("expected a boolean") {
            return Some("write true or false without quotes".into());
        }
        if message.contains("sequence") {
            return Some("write a list, e.g. [\"a\", \"b\"]".into());
        }
    }
    if message.starts_with("invalid type") && message.contains("expected a string") {
        return Some("quote the value".into());
    }
    if message.contains("duration") || message.contains("time unit") || message.contains("unit") {
        return Some("durations are strings like \"30s\", \"5m\", \"1h 30m\"".into());
    }
    None
}

fn resolve_secrets(config: &mut Config, env: &[(String, String)]) -> Result<(), ConfigError> {
    let get = |name: &str| {
        env.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    };
    for e in config.environments.values_mut() {
        if let Some(var) = &e.api_token_env {
            e.api_token = get(var).map(SecretString::from);
        }
        if let Some(var) = &e.notifications.webhook_url_env {
            e.notifications.webhook_url = get(var).map(SecretString::from);
        }
    }
    Ok(())
}

/// Rules serde cannot express.
fn check(config: &Config) -> Result<(), ConfigError> {
    let invalid = |message: String, hint: &str| ConfigError::Invalid {
        path: config.source.clone(),
        message,
        hint: Some(hint.to_string()),
    };
    for (env_name, e) in &config.environments {
        let mut names = std::collections::HashSet::new();
        for (i, s) in e.services.iter().enumerate() {
            let at = format!("environments.{env_name}.services[{i}]");
            if !names.insert(s.name.as_str()) {
                return Err(invalid(
                    format!("{at}.name: service `{}` is listed twice", s.name),
                    "each service appears once per environment",
                ));
            }
            for (j, h) in s.hooks.iter().enumerate() {
                const STAGES: &[&str] = &[
                    "RECONCILE_SERVICE",
                    "PRE_SCALE_UP",
                    "POST_SCALE_UP",
                    "TEST_TRAFFIC_SHIFT",
                    "POST_TEST_TRAFFIC_SHIFT",
                    "PRODUCTION_TRAFFIC_SHIFT",
                    "POST_PRODUCTION_TRAFFIC_SHIFT",
                ];
                if !STAGES.contains(&h.stage.as_str()) {
                    return Err(invalid(
                        format!(
                            "{at}.hooks[{j}].stage: `{}` is not a lifecycle stage",
                            h.stage
                        ),
                        &format!("use one of {}", STAGES.join(", ")),
                    ));
                }
            }
            if s.strategy == Strategy::Rolling && !s.hooks.is_empty() {
                return Err(invalid(
                    format!("{at}.hooks: lifecycle hooks need strategy = \"blue_green\""),
                    "remove the hooks or switch the strategy",
                ));
            }
            if let Some(lb) = &s.load_balancer
                && s.strategy == Strategy::BlueGreen
                && lb.alternate_target_group_arn.is_none()
            {
                return Err(invalid(
                    format!(
                        "{at}.load_balancer: blue_green with a load balancer needs alternate_target_group_arn"
                    ),
                    "add alternate_target_group_arn, production_listener_rule, test_listener_rule and role_arn",
                ));
            }
            for name in s.smoke_checks.iter().flatten() {
                if !e.smoke_checks.iter().any(|c| &c.name == name) {
                    return Err(invalid(
                        format!(
                            "{at}.smoke_checks: `{name}` is not a smoke check of this environment"
                        ),
                        "define it under [[environments.<env>.smoke_checks]]",
                    ));
                }
            }
        }
        for (i, c) in e.smoke_checks.iter().enumerate() {
            let at = format!("environments.{env_name}.smoke_checks[{i}]");
            if !c.path.starts_with('/') {
                return Err(invalid(
                    format!("{at}.path: `{}` must start with /", c.path),
                    "e.g. path = \"/api/v1/health\"",
                ));
            }
            for (j, a) in c.assertions.iter().enumerate() {
                if !a.pointer.is_empty() && !a.pointer.starts_with('/') {
                    return Err(invalid(
                        format!(
                            "{at}.assertions[{j}].pointer: `{}` is not a JSON pointer",
                            a.pointer
                        ),
                        "JSON pointers start with /, e.g. \"/git_sha\"",
                    ));
                }
            }
        }
    }
    Ok(())
}

/// The `{{tf_output "name"}}` references in a string: (byte range, output name).
pub fn tf_output_refs(s: &str) -> Vec<(std::ops::Range<usize>, String)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(start) = s[from..].find("{{").map(|i| i + from) {
        let Some(end) = s[start..].find("}}").map(|i| i + start + 2) else {
            break;
        };
        let inner = s[start + 2..end - 2].trim();
        if let Some(arg) = inner.strip_prefix("tf_output") {
            let name = arg
                .trim()
                .trim_matches(|c| c == '"' || c == '\'')
                .to_string();
            if !name.is_empty() {
                out.push((start..end, name));
            }
        }
        from = end;
    }
    out
}

/// Replaces `{{tf_output "name"}}` in every string setting of each environment with the value
/// from its `tf_output` file (`terraform output -json`). A list element that is exactly one
/// reference to a list output expands to that list (e.g. subnets).
fn resolve_tf_outputs(config: &mut Config) -> Result<(), ConfigError> {
    for (name, env) in config.environments.iter_mut() {
        let mut settings = serde_json::to_value(&*env).expect("environment serialises");
        let mut strings = Vec::new();
        collect_strings(&settings, &mut strings);
        if !strings.iter().any(|s| !tf_output_refs(s).is_empty()) {
            continue;
        }
        let Some(file) = env.tf_output.clone() else {
            return Err(ConfigError::Invalid {
                path: config.source.clone(),
                message: format!("environments.{name} uses tf_output references but sets no `tf_output` file"),
                hint: Some("add tf_output = \"<file written by terraform output -json>\" to the environment".into()),
            });
        };
        let path = if file.is_absolute() {
            file
        } else {
            config.root.join(file)
        };
        let outputs: serde_json::Value = match std::fs::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str(&t).map_err(|e| format!("not JSON: {e}")))
        {
            Ok(v) => v,
            Err(e) => {
                env.unresolved_tf_outputs = Some(format!(
                    "environment `{name}` takes settings from {} ({e}); write it with `terraform output -json > {}`",
                    path.display(),
                    path.display()
                ));
                continue;
            }
        };
        substitute(&mut settings, &outputs, &path).map_err(|message| ConfigError::Invalid {
            path: config.source.clone(),
            message: format!("environments.{name}: {message}"),
            hint: Some(format!(
                "add the output to terraform or fix the reference; outputs are read from {}",
                path.display()
            )),
        })?;
        if let Some(o) = settings.as_object_mut() {
            o.remove("api_token");
            if let Some(n) = o.get_mut("notifications").and_then(|n| n.as_object_mut()) {
                n.remove("webhook_url");
            }
        }
        let mut resolved: Environment =
            serde_json::from_value(settings).map_err(|e| ConfigError::Invalid {
                path: config.source.clone(),
                message: format!("environments.{name}: after substituting terraform outputs: {e}"),
                hint: Some("a tf_output value has the wrong type for its setting".into()),
            })?;
        resolved.api_token = env.api_token.take();
        resolved.notifications.webhook_url = env.notifications.webhook_url.take();
        *env = resolved;
    }
    Ok(())
}

fn collect_strings<'a>(v: &'a serde_json::Value, out: &mut Vec<&'a str>) {
    match v {
        serde_json::Value::String(s) => out.push(s),
        serde_json::Value::Array(a) => a.iter().for_each(|x| collect_strings(x, out)),
        serde_json::Value::Object(o) => o.values().for_each(|x| collect_strings(x, out)),
        _ => {}
    }
}

fn output_value<'a>(
    outputs: &'a serde_json::Value,
    name: &str,
    path: &Path,
) -> Result<&'a serde_json::Value, String> {
    let o = outputs
        .get(name)
        .ok_or_else(|| format!("terraform output `{name}` is not in {}", path.display()))?;
    if o.get("sensitive").and_then(serde_json::Value::as_bool) == Some(true) {
        return Err(format!(
            "terraform output `{name}` is sensitive and cannot be a setting"
        ));
    }
    Ok(o.get("value").unwrap_or(o))
}

fn substitute(
    v: &mut serde_json::Value,
    outputs: &serde_json::Value,
    path: &Path,
) -> Result<(), String> {
    use serde_json::Value as J;
    match v {
        J::String(s) => {
            let refs = tf_output_refs(s);
            if refs.is_empty() {
                return Ok(());
            }
            if refs.len() == 1 && refs[0].0 == (0..s.len()) {
                let val = output_value(outputs, &refs[0].1, path)?;
                *v = match val {
                    J::String(x) => J::String(x.clone()),
                    J::Number(n) => J::String(n.to_string()),
                    other => other.clone(),
                };
                return Ok(());
            }
            let mut out = String::new();
            let mut last = 0;
            for (range, name) in refs {
                out.push_str(&s[last..range.start]);
                match output_value(outputs, &name, path)? {
                    J::String(x) => out.push_str(x),
                    other => out.push_str(&other.to_string()),
                }
                last = range.end;
            }
            out.push_str(&s[last..]);
            *s = out;
        }
        J::Array(items) => {
            let mut expanded = Vec::new();
            for mut item in std::mem::take(items) {
                let whole_ref = item.as_str().is_some_and(
                    |s| matches!(tf_output_refs(s).as_slice(), [(r, _)] if *r == (0..s.len())),
                );
                substitute(&mut item, outputs, path)?;
                match item {
                    J::Array(inner) if whole_ref => expanded.extend(inner),
                    other => expanded.push(other),
                }
            }
            *items = expanded;
        }
        J::Object(o) => {
            for (k, x) in o.iter_mut() {
                // Template variables keep their references: templates resolve them at render time.
                if k == "vars" {
                    continue;
                }
                substitute(x, outputs, path)?;
            }
        }
        _ => {}
    }
    Ok(())
}

impl Config {
    /// The named environment, or an error listing the known ones (with the closest name).
    pub fn environment(&self, name: &str) -> Result<&Environment, ConfigError> {
        if let Some(e) = self.environments.get(name)
            && let Some(why) = &e.unresolved_tf_outputs
        {
            return Err(ConfigError::Invalid {
                path: self.source.clone(),
                message: why.clone(),
                hint: Some(
                    "run terraform output -json for this environment, or fix `tf_output`".into(),
                ),
            });
        }
        self.environments.get(name).ok_or_else(|| {
            let known: Vec<String> = self.environments.keys().cloned().collect();
            let hint = known
                .iter()
                .map(|k| (strsim::jaro_winkler(name, k), k))
                .filter(|(s, _)| *s > 0.75)
                .max_by(|a, b| a.0.total_cmp(&b.0))
                .map(|(_, k)| format!("did you mean `{k}`?"))
                .or_else(|| Some("pass --env with one of them".into()));
            ConfigError::UnknownEnvironment {
                name: name.to_string(),
                path: self.source.clone(),
                known,
                hint,
            }
        })
    }

    /// A path from the file, made absolute against the file's directory.
    pub fn path(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.root.join(p)
        }
    }

    pub fn templates_dir(&self) -> PathBuf {
        self.path(&self.project.templates)
    }

    /// Applies CLI flags to an environment.
    pub fn apply_overrides(&mut self, env: &str, o: &Overrides) {
        if let Some(e) = self.environments.get_mut(env) {
            if o.region.is_some() {
                e.region = o.region.clone();
            }
            if o.profile.is_some() {
                e.profile = o.profile.clone();
            }
            if o.endpoint_url.is_some() {
                e.endpoint_url = o.endpoint_url.clone();
            }
        }
    }

    /// The ECR repository name for an environment.
    pub fn ecr_repository<'a>(&'a self, env: &'a Environment) -> &'a str {
        env.ecr_repository
            .as_deref()
            .unwrap_or(&self.project.ecr_repository)
    }
}

/// The exposed value of a secret, for the few places that must send it (HTTP headers).
pub fn expose(s: &SecretString) -> &str {
    s.expose_secret()
}

pub fn toml_to_json(v: &toml::Value) -> serde_json::Value {
    match v {
        toml::Value::String(s) => serde_json::Value::String(s.clone()),
        toml::Value::Integer(i) => serde_json::Value::from(*i),
        toml::Value::Float(f) => serde_json::Value::from(*f),
        toml::Value::Boolean(b) => serde_json::Value::Bool(*b),
        toml::Value::Datetime(d) => serde_json::Value::String(d.to_string()),
        toml::Value::Array(a) => serde_json::Value::Array(a.iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => serde_json::Value::Object(
            t.iter()
                .map(|(k, v)| (k.clone(), toml_to_json(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: &str = r#"
[project]
name = "platform"
ecr_repository = "platform"

[environments.staging]
region = "eu-west-1"
cluster = "staging"

[[environments.staging.services]]
name = "orchestrator"
template = "orchestrator"
strategy = "rolling"
desired_count = 2
"#;

    fn parse(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        let mut c = parse_str(Path::new("deployer.toml"), text, &env)?;
        c.source = "deployer.toml".into();
        resolve_secrets(&mut c, &env)?;
        check(&c)?;
        Ok(c)
    }

    #[test]
    fn minimal_file_loads_with_defaults() {
        let c = parse(MIN, &[]).unwrap();
        let e = c.environment("staging").unwrap();
        assert_eq!(e.services[0].desired_count, 2);
        assert_eq!(e.lock_table, "deployer-locks");
        assert_eq!(e.timeouts.deployment, Duration::from_secs(1800));
    }

    #[test]
    fn unknown_key_has_line_and_suggestion() {
        let text = MIN.replace("cluster = \"staging\"", "clustr = \"staging\"");
        let e = parse(&text, &[]).unwrap_err();
        let ConfigError::Parse { line, hint, .. } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(*line, Some(8));
        assert_eq!(
            hint.as_deref(),
            Some("did you mean `cluster`? (keys are listed in docs/deployer.md)")
        );
    }

    #[test]
    fn wrong_type_has_line_and_hint() {
        let text = MIN.replace("desired_count = 2", "desired_count = \"two\"");
        let e = parse(&text, &[]).unwrap_err();
        let ConfigError::Parse { line, hint, .. } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(*line, Some(14));
        assert_eq!(hint.as_deref(), Some("write the number without quotes"));
    }

    #[test]
    fn env_vars_override_file_values_and_type_errors_name_the_var() {
        let c = parse(
            MIN,
            &[
                ("DEPLOYER_ENVIRONMENTS__STAGING__CLUSTER", "other"),
                (
                    "DEPLOYER_ENVIRONMENTS__STAGING__SERVICES__0__DESIRED_COUNT",
                    "5",
                ),
            ],
        )
        .unwrap();
        let e = c.environment("staging").unwrap();
        assert_eq!(e.cluster, "other");
        assert_eq!(e.services[0].desired_count, 5);

        let err = parse(
            MIN,
            &[(
                "DEPLOYER_ENVIRONMENTS__STAGING__SERVICES__0__DESIRED_COUNT",
                "many",
            )],
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("DEPLOYER_ENVIRONMENTS__STAGING__SERVICES__0__DESIRED_COUNT:"),
            "{err}"
        );
    }

    #[test]
    fn tf_output_references_resolve_from_the_outputs_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("out.json"),
            r#"{"cluster_name": {"value": "c-1", "type": "string", "sensitive": false},
                "subnets": {"value": ["s-1", "s-2"], "type": ["list", "string"], "sensitive": false}}"#,
        )
        .unwrap();
        let text = MIN
            .replace("cluster = \"staging\"", "cluster = '{{tf_output \"cluster_name\"}}'\ntf_output = \"out.json\"\nnetwork = { subnets = ['{{ tf_output \"subnets\" }}', \"s-3\"] }\nvars = { keep = '{{tf_output \"x\"}}' }");
        let path = dir.path().join("deployer.toml");
        std::fs::write(&path, text).unwrap();
        let c = load_with_env(&path, &[]).unwrap();
        let e = c.environment("staging").unwrap();
        assert_eq!(e.cluster, "c-1");
        assert_eq!(
            e.network.as_ref().unwrap().subnets,
            vec!["s-1", "s-2", "s-3"]
        );
        assert_eq!(e.vars["keep"].as_str(), Some("{{tf_output \"x\"}}"));

        std::fs::remove_file(dir.path().join("out.json")).unwrap();
        let c = load_with_env(&path, &[]).unwrap();
        let err = c.environment("staging").unwrap_err().to_string();
        assert!(err.contains("out.json"), "{err}");
    }

    #[test]
    fn unknown_environment_suggests() {
        let c = parse(MIN, &[]).unwrap();
        let e = c.environment("stagin").unwrap_err();
        assert_eq!(e.hint(), Some("did you mean `staging`?"));
    }

    #[test]
    fn secrets_are_redacted_when_serialised() {
        let text = MIN.replace(
            "cluster = \"staging\"\n",
            "cluster = \"staging\"\napi_token_env = \"TOK\"\n",
        );
        let c = parse(&text, &[("TOK", "s3cr3t-value")]).unwrap();
        let json = serde_json::to_string(&c).unwrap();
        assert!(!json.contains("s3cr3t-value"));
        assert!(json.contains(REDACTED));
    }
}
