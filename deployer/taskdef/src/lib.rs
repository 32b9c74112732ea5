//! The RegisterTaskDefinition input shape as a typed model and its validation, plus the
//! handlebars renderer that produces it ([`render`]).
//!
//! A crate of its own, without the AWS SDK, so the platform's deployment agent can render and
//! validate task definitions without linking the deployer's AWS and Docker clients; the
//! deployer converts the model into the SDK request (`deployer::taskdef::register_request`).
//!
//! The SDK's own input types cannot be deserialized without an unstable cfg, so this mirrors the
//! API's field names (camelCase) with `deny_unknown_fields`: a misspelt or unsupported field is an
//! error naming its JSON path, before anything is sent. Rules that the API enforces server side
//! (Fargate needs task-level cpu/memory and awsvpc, valid cpu/memory pairs, ports, health-check
//! ranges …) are checked in [`TaskDefinition::validate`] so they fail here, not half-way through a
//! release.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

pub mod render;

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskDefinition {
    pub family: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_role_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_role_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_mode: Option<String>,
    pub container_definitions: Vec<ContainerDefinition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<Vec<Volume>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement_constraints: Option<Vec<PlacementConstraint>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requires_compatibilities: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<Tag>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipc_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_platform: Option<RuntimePlatform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ephemeral_storage: Option<EphemeralStorage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_fault_injection: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerDefinition {
    pub name: String,
    pub image: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository_credentials: Option<RepositoryCredentials>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_reservation: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub links: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_mappings: Option<Vec<PortMapping>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub essential: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<RestartPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_point: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<Vec<KeyValuePair>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment_files: Option<Vec<EnvironmentFile>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount_points: Option<Vec<MountPoint>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes_from: Option<Vec<VolumeFrom>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linux_parameters: Option<LinuxParameters>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets: Option<Vec<Secret>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depends_on: Option<Vec<ContainerDependency>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_timeout: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_consistency: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_directory: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_networking: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privileged: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readonly_root_filesystem: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_servers: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_search_domains: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_hosts: Option<Vec<HostEntry>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_security_options: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interactive: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pseudo_terminal: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ulimits: Option<Vec<Ulimit>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_configuration: Option<LogConfiguration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_controls: Option<Vec<SystemControl>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_requirements: Option<Vec<ResourceRequirement>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firelens_configuration: Option<FirelensConfiguration>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RepositoryCredentials {
    pub credentials_parameter: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortMapping {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_port: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_port: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_protocol: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_port_range: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RestartPolicy {
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignored_exit_codes: Option<Vec<i32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_attempt_period: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeyValuePair {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvironmentFile {
    pub value: String,
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MountPoint {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_volume: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VolumeFrom {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_container: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LinuxParameters {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Capabilities>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_process_enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_memory_size: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_swap: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swappiness: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Capabilities {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Secret {
    pub name: String,
    pub value_from: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerDependency {
    pub container_name: String,
    pub condition: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HostEntry {
    pub hostname: String,
    pub ip_address: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Ulimit {
    pub name: String,
    pub soft_limit: i32,
    pub hard_limit: i32,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LogConfiguration {
    pub log_driver: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_options: Option<Vec<Secret>>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthCheck {
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_period: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SystemControl {
    pub namespace: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceRequirement {
    pub value: String,
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FirelensConfiguration {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Volume {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<HostVolume>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub efs_volume_configuration: Option<EfsVolume>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configured_at_launch: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HostVolume {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_path: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EfsVolume {
    pub file_system_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_directory: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transit_encryption: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transit_encryption_port: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_config: Option<EfsAuthorization>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EfsAuthorization {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_point_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iam: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlacementConstraint {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuntimePlatform {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_architecture: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operating_system_family: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EphemeralStorage {
    pub size_in_gi_b: i32,
}

/// Parses a JSON value into the model; the error names the JSON path of the offending field.
pub fn from_json(value: &serde_json::Value) -> Result<TaskDefinition, String> {
    let json = value.to_string();
    let de = &mut serde_json::Deserializer::from_str(&json);
    serde_path_to_error::deserialize::<_, TaskDefinition>(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        // serde_json appends " at line 1 column N" (of the re-serialised text): meaningless here.
        let inner = match inner.rfind(" at line ") {
            Some(i) => inner[..i].to_string(),
            None => inner,
        };
        if path == "." {
            inner
        } else {
            format!("{path}: {inner}")
        }
    })
}

const NETWORK_MODES: &[&str] = &["bridge", "host", "awsvpc", "none"];
const COMPATIBILITIES: &[&str] = &["EC2", "FARGATE", "EXTERNAL", "MANAGED_INSTANCES"];
const LOG_DRIVERS: &[&str] = &[
    "json-file",
    "syslog",
    "journald",
    "gelf",
    "fluentd",
    "awslogs",
    "splunk",
    "awsfirelens",
];
const FARGATE_LOG_DRIVERS: &[&str] = &["awslogs", "splunk", "awsfirelens"];
const DEPENDENCY_CONDITIONS: &[&str] = &["START", "COMPLETE", "SUCCESS", "HEALTHY"];

/// Task-level cpu in CPU units: "1024" or "1 vCPU"/"0.5 vcpu".
pub fn parse_cpu_units(s: &str) -> Option<u32> {
    let t = s.trim().to_ascii_lowercase();
    if let Some(v) = t.strip_suffix("vcpu") {
        let f: f64 = v.trim().parse().ok()?;
        return Some((f * 1024.0).round() as u32);
    }
    t.parse().ok()
}

/// Task-level memory in MiB: "2048" or "2 GB"/"2gb".
pub fn parse_memory_mib(s: &str) -> Option<u32> {
    let t = s.trim().to_ascii_lowercase();
    if let Some(v) = t.strip_suffix("gb") {
        let f: f64 = v.trim().parse().ok()?;
        return Some((f * 1024.0).round() as u32);
    }
    if let Some(v) = t.strip_suffix("mb") {
        return v.trim().parse().ok();
    }
    t.parse().ok()
}

/// The memory values (MiB) Fargate accepts for a cpu value (units).
fn fargate_memory_ok(cpu: u32, mem: u32) -> bool {
    let gb = |n: u32| n * 1024;
    match cpu {
        256 => [512, 1024, 2048].contains(&mem),
        512 => (gb(1)..=gb(4)).contains(&mem) && mem.is_multiple_of(1024),
        1024 => (gb(2)..=gb(8)).contains(&mem) && mem.is_multiple_of(1024),
        2048 => (gb(4)..=gb(16)).contains(&mem) && mem.is_multiple_of(1024),
        4096 => (gb(8)..=gb(30)).contains(&mem) && mem.is_multiple_of(1024),
        8192 => (gb(16)..=gb(60)).contains(&mem) && mem.is_multiple_of(gb(4)),
        16384 => (gb(32)..=gb(120)).contains(&mem) && mem.is_multiple_of(gb(8)),
        _ => false,
    }
}

fn name_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl TaskDefinition {
    pub fn is_fargate(&self) -> bool {
        self.requires_compatibilities
            .as_deref()
            .is_some_and(|c| c.iter().any(|c| c == "FARGATE"))
    }

    /// Every rule violation, each naming its JSON path. Empty = valid.
    pub fn validate(&self) -> Vec<String> {
        let mut p = Vec::new();
        let one_of = |path: &str, v: &str, allowed: &[&str], p: &mut Vec<String>| {
            if !allowed.contains(&v) {
                p.push(format!(
                    "{path}: `{v}` is not one of {}",
                    allowed.join(", ")
                ));
            }
        };
        if !name_ok(&self.family) {
            p.push(format!(
                "family: `{}` must be 1-255 letters, digits, hyphens or underscores",
                self.family
            ));
        }
        if let Some(m) = &self.network_mode {
            one_of("networkMode", m, NETWORK_MODES, &mut p);
        }
        for (i, c) in self.requires_compatibilities.iter().flatten().enumerate() {
            one_of(
                &format!("requiresCompatibilities[{i}]"),
                c,
                COMPATIBILITIES,
                &mut p,
            );
        }
        let cpu = self.cpu.as_deref().map(|c| (c, parse_cpu_units(c)));
        let mem = self.memory.as_deref().map(|m| (m, parse_memory_mib(m)));
        if let Some((raw, None)) = cpu {
            p.push(format!(
                "cpu: `{raw}` is not a CPU value (use units like \"512\" or \"1 vCPU\")"
            ));
        }
        if let Some((raw, None)) = mem {
            p.push(format!(
                "memory: `{raw}` is not a memory value (use MiB like \"1024\" or \"2 GB\")"
            ));
        }
        let awsvpc = self.network_mode.as_deref() == Some("awsvpc");
        let fargate = self.is_fargate();
        if fargate {
            if !awsvpc {
                p.push("networkMode: Fargate tasks need \"awsvpc\"".into());
            }
            match (cpu, mem) {
                (None, _) => p.push("cpu: Fargate tasks need a task-level cpu (e.g. \"512\")".into()),
                (_, None) => {
                    p.push("memory: Fargate tasks need a task-level memory (e.g. \"1024\")".into())
                }
                (Some((_, Some(c))), Some((_, Some(m)))) if !fargate_memory_ok(c, m) => {
                    p.push(format!(
                        "cpu/memory: {c} CPU units with {m} MiB is not a Fargate size (see the Fargate task size table)"
                    ))
                }
                _ => {}
            }
        }
        if self.container_definitions.is_empty() {
            p.push("containerDefinitions: at least one container is needed".into());
        }
        if self.container_definitions.len() > 10 {
            p.push("containerDefinitions: at most 10 containers per task definition".into());
        }
        let names: Vec<&str> = self
            .container_definitions
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        let mut seen = HashSet::new();
        for n in &names {
            if !seen.insert(*n) {
                p.push(format!(
                    "containerDefinitions: container name `{n}` is used twice"
                ));
            }
        }
        if !self
            .container_definitions
            .iter()
            .any(|c| c.essential.unwrap_or(true))
        {
            p.push("containerDefinitions: at least one container must be essential".into());
        }
        let task_memory = mem.and_then(|(_, m)| m);
        for (i, c) in self.container_definitions.iter().enumerate() {
            let at = format!("containerDefinitions[{i}]");
            if !name_ok(&c.name) {
                p.push(format!(
                    "{at}.name: `{}` must be 1-255 letters, digits, hyphens or underscores",
                    c.name
                ));
            }
            if c.image.trim().is_empty() {
                p.push(format!("{at}.image: must not be empty"));
            }
            if task_memory.is_none() && c.memory.is_none() && c.memory_reservation.is_none() {
                p.push(format!(
                    "{at}: without a task-level memory, each container needs memory or memoryReservation"
                ));
            }
            if let (Some(hard), Some(soft)) = (c.memory, c.memory_reservation)
                && soft > hard
            {
                p.push(format!(
                    "{at}.memoryReservation: {soft} is above memory {hard}"
                ));
            }
            if let (Some(cm), Some(tm)) = (c.memory, task_memory)
                && cm as u32 > tm
            {
                p.push(format!(
                    "{at}.memory: {cm} MiB is above the task's {tm} MiB"
                ));
            }
            if fargate && c.privileged == Some(true) {
                p.push(format!("{at}.privileged: not supported on Fargate"));
            }
            if awsvpc && c.links.as_ref().is_some_and(|l| !l.is_empty()) {
                p.push(format!("{at}.links: not supported with networkMode awsvpc"));
            }
            for (j, pm) in c.port_mappings.iter().flatten().enumerate() {
                let at = format!("{at}.portMappings[{j}]");
                for (field, port) in [
                    ("containerPort", pm.container_port),
                    ("hostPort", pm.host_port),
                ] {
                    if let Some(port) = port
                        && !(0..=65535).contains(&port)
                    {
                        p.push(format!("{at}.{field}: {port} is not a port (0-65535)"));
                    }
                }
                if pm.container_port.is_none() && pm.container_port_range.is_none() {
                    p.push(format!("{at}: needs containerPort or containerPortRange"));
                }
                if awsvpc
                    && let (Some(h), Some(cp)) = (pm.host_port, pm.container_port)
                    && h != cp
                {
                    p.push(format!(
                        "{at}.hostPort: with networkMode awsvpc it must equal containerPort ({cp}) or be left out"
                    ));
                }
                if let Some(proto) = &pm.protocol {
                    one_of(&format!("{at}.protocol"), proto, &["tcp", "udp"], &mut p);
                }
                if let Some(ap) = &pm.app_protocol {
                    one_of(
                        &format!("{at}.appProtocol"),
                        ap,
                        &["http", "http2", "grpc"],
                        &mut p,
                    );
                }
            }
            let mut env_names = HashSet::new();
            for (j, kv) in c.environment.iter().flatten().enumerate() {
                if kv.name.is_empty() {
                    p.push(format!("{at}.environment[{j}].name: must not be empty"));
                } else if !env_names.insert(kv.name.as_str()) {
                    p.push(format!(
                        "{at}.environment[{j}].name: `{}` is set twice",
                        kv.name
                    ));
                }
            }
            for (j, s) in c.secrets.iter().flatten().enumerate() {
                if s.name.is_empty() || s.value_from.is_empty() {
                    p.push(format!(
                        "{at}.secrets[{j}]: name and valueFrom must not be empty"
                    ));
                } else if !env_names.insert(s.name.as_str()) {
                    p.push(format!(
                        "{at}.secrets[{j}].name: `{}` is also set elsewhere in this container",
                        s.name
                    ));
                }
            }
            for (j, d) in c.depends_on.iter().flatten().enumerate() {
                if !names.contains(&d.container_name.as_str()) || d.container_name == c.name {
                    p.push(format!(
                        "{at}.dependsOn[{j}].containerName: `{}` is not another container of this task",
                        d.container_name
                    ));
                }
                one_of(
                    &format!("{at}.dependsOn[{j}].condition"),
                    &d.condition,
                    DEPENDENCY_CONDITIONS,
                    &mut p,
                );
            }
            if let Some(l) = &c.log_configuration {
                one_of(
                    &format!("{at}.logConfiguration.logDriver"),
                    &l.log_driver,
                    LOG_DRIVERS,
                    &mut p,
                );
                if fargate && !FARGATE_LOG_DRIVERS.contains(&l.log_driver.as_str()) {
                    p.push(format!(
                        "{at}.logConfiguration.logDriver: `{}` is not available on Fargate ({})",
                        l.log_driver,
                        FARGATE_LOG_DRIVERS.join(", ")
                    ));
                }
                if l.log_driver == "awslogs" {
                    let opts = l.options.clone().unwrap_or_default();
                    for key in ["awslogs-group", "awslogs-region"] {
                        if opts.get(key).is_none_or(|v| v.is_empty()) {
                            p.push(format!(
                                "{at}.logConfiguration.options: awslogs needs `{key}`"
                            ));
                        }
                    }
                }
            }
            if let Some(h) = &c.health_check {
                let at = format!("{at}.healthCheck");
                match h.command.first().map(String::as_str) {
                    Some("CMD") | Some("CMD-SHELL") if h.command.len() > 1 => {}
                    Some("NONE") => {}
                    _ => p.push(format!(
                        "{at}.command: must start with \"CMD\" or \"CMD-SHELL\" followed by the command"
                    )),
                }
                for (field, v, lo, hi) in [
                    ("interval", h.interval, 5, 300),
                    ("timeout", h.timeout, 2, 120),
                    ("retries", h.retries, 1, 10),
                    ("startPeriod", h.start_period, 0, 300),
                ] {
                    if let Some(v) = v
                        && !(lo..=hi).contains(&v)
                    {
                        p.push(format!("{at}.{field}: {v} is outside {lo}..={hi}"));
                    }
                }
            }
            if let Some(v) = &c.version_consistency {
                one_of(
                    &format!("{at}.versionConsistency"),
                    v,
                    &["enabled", "disabled"],
                    &mut p,
                );
            }
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> serde_json::Value {
        json!({
            "family": "web",
            "networkMode": "awsvpc",
            "requiresCompatibilities": ["FARGATE"],
            "cpu": "512",
            "memory": "1024",
            "containerDefinitions": [{"name": "web", "image": "x:1", "essential": true}]
        })
    }

    #[test]
    fn a_valid_fargate_definition_has_no_problems() {
        let td = from_json(&base()).unwrap();
        assert_eq!(td.validate(), Vec::<String>::new());
    }

    #[test]
    fn fargate_without_cpu_is_named() {
        let mut v = base();
        v.as_object_mut().unwrap().remove("cpu");
        let p = from_json(&v).unwrap().validate();
        assert!(p.iter().any(|m| m.starts_with("cpu: Fargate")), "{p:?}");
    }

    #[test]
    fn unknown_fields_name_their_path() {
        let mut v = base();
        v["containerDefinitions"][0]["imagee"] = json!("x");
        let e = from_json(&v).unwrap_err();
        assert!(
            e.starts_with("containerDefinitions[0].imagee: unknown field `imagee`"),
            "{e}"
        );
    }

    #[test]
    fn wrong_types_name_their_path() {
        let mut v = base();
        v["containerDefinitions"][0]["memory"] = json!("lots");
        let e = from_json(&v).unwrap_err();
        assert!(
            e.starts_with("containerDefinitions[0].memory: invalid type"),
            "{e}"
        );
    }

    #[test]
    fn fargate_sizes() {
        assert!(fargate_memory_ok(256, 512));
        assert!(!fargate_memory_ok(256, 4096));
        assert!(fargate_memory_ok(1024, 3072));
        assert_eq!(parse_cpu_units("1 vCPU"), Some(1024));
        assert_eq!(parse_memory_mib("2 GB"), Some(2048));
    }
}
