//! The audit table: one DynamoDB item per release (partition key = environment, sort key =
//! release id, which sorts by time). Written when a release starts (outcome `in_progress`) and
//! updated when it ends, so a release whose deployer died is still on record and `status` /
//! `release --resume` can finish the entry.

use anyhow::{Context, Result};
use aws_sdk_dynamodb::Client as Ddb;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_ecs::types::ServiceDeploymentStatus;
use serde::{Deserialize, Serialize};

use super::outcome::Outcome;

/// Whether a record is a release or a rollback.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseKind {
    #[default]
    Release,
    Rollback,
}

impl ReleaseKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ReleaseKind::Release => "release",
            ReleaseKind::Rollback => "rollback",
        }
    }
}

/// `in_progress` from the moment a release takes the lock until it ends with an [`Outcome`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum RecordOutcome {
    #[default]
    InProgress,
    Ended(Outcome),
}

impl RecordOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordOutcome::InProgress => "in_progress",
            RecordOutcome::Ended(o) => o.as_str(),
        }
    }
}

impl From<RecordOutcome> for String {
    fn from(o: RecordOutcome) -> String {
        o.as_str().to_owned()
    }
}

impl TryFrom<String> for RecordOutcome {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s == "in_progress" {
            return Ok(RecordOutcome::InProgress);
        }
        Outcome::from_name(&s)
            .map(RecordOutcome::Ended)
            .ok_or_else(|| format!("unknown release outcome `{s}`"))
    }
}

impl std::fmt::Display for RecordOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where one service of a release stands.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(into = "String", from = "String")]
pub enum ServiceStatus {
    /// Not updated (yet).
    #[default]
    NotStarted,
    /// The status of the service deployment the release started.
    Deployment(ServiceDeploymentStatus),
    /// The deployment succeeded but the gate after it failed.
    GateFailed,
    /// Went back to the previous revision after another service failed.
    Reverted,
    /// An in-flight deployment `deployer rollback` rolled back.
    RolledBack,
    /// A revert was attempted and did not put the previous revision back.
    RevertFailed,
    /// Another deployment (not this release's) took over the service.
    Superseded,
}

impl From<ServiceStatus> for String {
    fn from(s: ServiceStatus) -> String {
        s.to_string()
    }
}

impl From<String> for ServiceStatus {
    fn from(s: String) -> ServiceStatus {
        match s.as_str() {
            "" => ServiceStatus::NotStarted,
            // "SUCCESSFUL (gate failed)": records written before the status was typed.
            "GATE_FAILED" | "SUCCESSFUL (gate failed)" => ServiceStatus::GateFailed,
            "REVERTED" => ServiceStatus::Reverted,
            "ROLLED_BACK" => ServiceStatus::RolledBack,
            "REVERT_FAILED" => ServiceStatus::RevertFailed,
            "SUPERSEDED" => ServiceStatus::Superseded,
            other => ServiceStatus::Deployment(ServiceDeploymentStatus::from(other)),
        }
    }
}

impl std::fmt::Display for ServiceStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ServiceStatus::NotStarted => "",
            ServiceStatus::Deployment(d) => d.as_str(),
            ServiceStatus::GateFailed => "GATE_FAILED",
            ServiceStatus::Reverted => "REVERTED",
            ServiceStatus::RolledBack => "ROLLED_BACK",
            ServiceStatus::RevertFailed => "REVERT_FAILED",
            ServiceStatus::Superseded => "SUPERSEDED",
        })
    }
}

/// One service's part of a release.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ServiceRecord {
    pub service: String,
    /// Task definition ARN (with revision) the release deploys.
    pub task_definition: String,
    /// What ran before (the rollback target).
    pub previous_task_definition: String,
    #[serde(default)]
    pub deployment_arn: String,
    #[serde(default)]
    pub status: ServiceStatus,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ReleaseRecord {
    pub env: String,
    pub release_id: String,
    pub kind: ReleaseKind,
    pub git_sha: String,
    pub image: String,
    #[serde(default)]
    pub image_digest: String,
    pub actor: String,
    #[serde(default)]
    pub ci_url: String,
    pub deployer_version: String,
    pub started_at: String,
    #[serde(default)]
    pub finished_at: String,
    pub outcome: RecordOutcome,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub migration_task: String,
    #[serde(default)]
    pub services: Vec<ServiceRecord>,
}

impl ReleaseRecord {
    /// A new record, `in_progress`, started now by this process's actor.
    pub fn start(env: &str, kind: ReleaseKind, git_sha: &str, image: &str) -> Self {
        let (actor, ci_url) = super::lock::actor_and_ci_url();
        ReleaseRecord {
            env: env.to_owned(),
            release_id: new_release_id(),
            kind,
            git_sha: git_sha.to_owned(),
            image: image.to_owned(),
            actor,
            ci_url,
            deployer_version: env!("CARGO_PKG_VERSION").into(),
            started_at: now_rfc3339(),
            ..Default::default()
        }
    }

    pub fn succeeded(&self) -> bool {
        self.outcome == RecordOutcome::Ended(Outcome::Succeeded)
    }

    pub fn in_progress(&self) -> bool {
        self.outcome == RecordOutcome::InProgress
    }

    pub fn service_mut(&mut self, name: &str) -> Option<&mut ServiceRecord> {
        self.services.iter_mut().find(|s| s.service == name)
    }
}

#[derive(Clone)]
pub struct AuditTable {
    ddb: Ddb,
    table: String,
}

impl AuditTable {
    pub fn new(ddb: Ddb, table: &str) -> Self {
        Self {
            ddb,
            table: table.to_owned(),
        }
    }

    pub fn name(&self) -> &str {
        &self.table
    }

    pub async fn ensure_table(&self) -> Result<()> {
        crate::aws::dynamo::ensure_table(&self.ddb, &self.table, "env", Some("release_id")).await
    }

    /// Writes (creates or replaces) the record.
    pub async fn put(&self, rec: &ReleaseRecord) -> Result<()> {
        let body = serde_json::to_string(rec)?;
        self.ddb
            .put_item()
            .table_name(&self.table)
            .item("env", AttributeValue::S(rec.env.clone()))
            .item("release_id", AttributeValue::S(rec.release_id.clone()))
            .item("git_sha", AttributeValue::S(rec.git_sha.clone()))
            .item("outcome", AttributeValue::S(rec.outcome.to_string()))
            .item("started_at", AttributeValue::S(rec.started_at.clone()))
            .item("record", AttributeValue::S(body))
            .send()
            .await
            .with_context(|| format!("PutItem on audit table {}", self.table))?;
        Ok(())
    }

    pub async fn get(&self, env: &str, release_id: &str) -> Result<Option<ReleaseRecord>> {
        let out = self
            .ddb
            .get_item()
            .table_name(&self.table)
            .key("env", AttributeValue::S(env.to_owned()))
            .key("release_id", AttributeValue::S(release_id.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .with_context(|| format!("GetItem on audit table {}", self.table))?;
        out.item()
            .and_then(|i| i.get("record"))
            .and_then(|v| v.as_s().ok())
            .map(|s| serde_json::from_str(s).context("reading an audit record"))
            .transpose()
    }

    /// Newest first. A missing table means no history (not an error).
    pub async fn list(&self, env: &str, limit: usize) -> Result<Vec<ReleaseRecord>> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let res = self
                .ddb
                .query()
                .table_name(&self.table)
                .key_condition_expression("env = :e")
                .expression_attribute_values(":e", AttributeValue::S(env.to_owned()))
                .scan_index_forward(false)
                .set_exclusive_start_key(start)
                .consistent_read(true)
                .send()
                .await;
            let page = match res {
                Ok(p) => p,
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|e| e.is_resource_not_found_exception()) =>
                {
                    return Ok(out);
                }
                Err(e) => {
                    return Err(anyhow::Error::new(e)
                        .context(format!("Query on audit table {}", self.table)));
                }
            };
            for item in page.items() {
                if let Some(s) = item.get("record").and_then(|v| v.as_s().ok()) {
                    match serde_json::from_str::<ReleaseRecord>(s) {
                        Ok(r) => out.push(r),
                        Err(e) => tracing::warn!(error = %e, "skipping unreadable audit record"),
                    }
                }
            }
            start = page.last_evaluated_key().cloned();
            if start.is_none() || out.len() >= limit {
                break;
            }
        }
        // Sort keys are time-ordered, but be explicit: newest first.
        out.sort_by(|a, b| b.release_id.cmp(&a.release_id));
        out.truncate(limit);
        Ok(out)
    }
}

/// A release id that sorts by time: `r20261125T153210Z-1a2b3c`.
pub fn new_release_id() -> String {
    let now = chrono::Utc::now();
    let nanos = now.timestamp_subsec_nanos() as u64;
    let salt = (nanos ^ ((std::process::id() as u64) << 20)) & 0xff_ffff;
    format!("r{}-{salt:06x}", now.format("%Y%m%dT%H%M%SZ"))
}

pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
