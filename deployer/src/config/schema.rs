//! The model of `deployer.toml`: what each key means and its default.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;
use serde::{Deserialize, Serialize, Serializer};

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
    /// Metric analysis of the new revision against the old one (CloudWatch), at every traffic
    /// step and through the bake of LINEAR/CANARY/BLUE_GREEN services behind a load balancer.
    #[serde(default)]
    pub analysis: Vec<Analysis>,
    #[serde(default)]
    pub services: Vec<Service>,
    /// Set when settings reference `tf_output` but the outputs file could not be read: using
    /// the environment is then an error naming the file.
    #[serde(skip)]
    pub unresolved_tf_outputs: Option<String>,
    /// The `tf_output` file, read once at load time.
    #[serde(skip)]
    pub tf_outputs: super::tf::TfOutputs,
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
    /// Test listener (the new version during a blue/green test-traffic stage). Unset: found
    /// from the service's test listener rule (engine/traffic.rs).
    pub test: Option<String>,
    /// An IP address to call the found test endpoint at instead of resolving the load
    /// balancer's DNS name (an emulator's); URL, port and Host header stay as found.
    pub test_resolve: Option<String>,
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
    /// The agent gate: how long agents of the new version may take to heart-beat.
    #[serde(default = "d_60s", with = "humantime_serde")]
    pub agent_gate: Duration,
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
            agent_gate: d_60s(),
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
    /// ECS native LINEAR: production traffic moves in equal steps (`step_percent`), each baked
    /// for `step_bake_time`; the deployer gates every step.
    Linear,
    /// ECS native CANARY: `canary_percent` of production traffic, baked for
    /// `canary_bake_time`, then the rest; the deployer gates the canary.
    Canary,
}

impl Strategy {
    /// The ECS `deploymentConfiguration.strategy` value.
    pub fn ecs_name(self) -> &'static str {
        match self {
            Strategy::BlueGreen => "BLUE_GREEN",
            Strategy::Rolling => "ROLLING",
            Strategy::Linear => "LINEAR",
            Strategy::Canary => "CANARY",
        }
    }

    /// BLUE_GREEN, LINEAR and CANARY: a new revision beside the old one, traffic shifted to it,
    /// lifecycle hooks, a bake, target groups swapped at the end.
    pub fn shifts_traffic(self) -> bool {
        !matches!(self, Strategy::Rolling)
    }

    /// LINEAR and CANARY: production traffic moves in steps, with a pause before each.
    pub fn steps_traffic(self) -> bool {
        matches!(self, Strategy::Linear | Strategy::Canary)
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
    /// The desired count the deployer sets on every release. Leave it out (the default) when
    /// Terraform or Application Auto Scaling owns the count: the deployer then never changes it.
    pub desired_count: Option<u32>,
    /// The agent kind, for agent services (gate: agents of the new version heart-beat).
    pub agent_kind: Option<String>,
    pub load_balancer: Option<LoadBalancer>,
    /// Bake time after all production traffic is on the new revision (BLUE_GREEN, LINEAR,
    /// CANARY).
    #[serde(default, with = "humantime_serde::option")]
    pub bake_time: Option<Duration>,
    /// LINEAR: the percentage of production traffic each step moves (3.0 to 100.0, multiples
    /// of 0.1; ECS's default 10).
    pub step_percent: Option<f64>,
    /// LINEAR: how long each step bakes before the next (0 to 24 h, whole minutes; ECS's
    /// default 6 min).
    #[serde(default, with = "humantime_serde::option")]
    pub step_bake_time: Option<Duration>,
    /// CANARY: the percentage of production traffic the canary gets (0.1 to 100.0, multiples
    /// of 0.1; ECS's default 5).
    pub canary_percent: Option<f64>,
    /// CANARY: how long the canary bakes before the rest of the traffic moves (0 to 24 h,
    /// whole minutes; ECS's default 10 min).
    #[serde(default, with = "humantime_serde::option")]
    pub canary_bake_time: Option<Duration>,
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
    /// Refused with a clear error: Lambda hooks belong on the service (Terraform), where the
    /// deployer keeps them. Parsed only to say so.
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

/// One CloudWatch metric of the new target group, judged per period against a limit (absolute,
/// or relative to the old target group's value: the baseline).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Analysis {
    pub name: String,
    /// e.g. `AWS/ApplicationELB`.
    #[serde(default = "default_analysis_namespace")]
    pub namespace: String,
    /// e.g. `HTTPCode_Target_5XX_Count`, `TargetResponseTime`.
    pub metric: String,
    /// Divide by this metric (same namespace and dimensions, statistic `Sum`): a rate, e.g.
    /// `RequestCount` for the 5xx share.
    pub per: Option<String>,
    /// CloudWatch statistic: `Sum`, `Average`, `Maximum`, `Minimum`, `SampleCount`, or a
    /// percentile such as `p99`.
    #[serde(default = "default_stat")]
    pub stat: String,
    /// Dimensions besides `TargetGroup`, which the deployer adds: the new revision's target
    /// group, and the old one's for the baseline. Values are templated (`{{tf_output ...}}`).
    #[serde(default)]
    pub dimensions: BTreeMap<String, String>,
    #[serde(default = "default_period", with = "humantime_serde")]
    pub period: Duration,
    /// Fail an interval when the new revision's value is above this.
    pub max: Option<f64>,
    /// Fail an interval when the new revision's value is above this times the baseline's.
    pub max_relative: Option<f64>,
    /// Requests (`RequestCount` of the new target group, Sum) an interval needs to count;
    /// below it the interval is inconclusive.
    #[serde(default)]
    pub min_requests: f64,
    /// What an analysis with no conclusive interval does at a gate.
    #[serde(default)]
    pub inconclusive: Inconclusive,
    /// Consecutive failing intervals that roll back.
    #[serde(default = "default_failing_intervals")]
    pub failing_intervals: u32,
    /// The services it applies to (default: every load-balanced one).
    pub services: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Inconclusive {
    /// Keep the gate open and look again until the hook's timeout draws near, then fail.
    #[default]
    Wait,
    Pass,
    Fail,
}

fn default_analysis_namespace() -> String {
    "AWS/ApplicationELB".into()
}
fn default_stat() -> String {
    "Sum".into()
}
fn default_period() -> Duration {
    Duration::from_secs(60)
}
fn default_failing_intervals() -> u32 {
    1
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
fn d_60s() -> Duration {
    Duration::from_secs(60)
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
