//! The audit table: one DynamoDB item per release (partition key = environment, sort key =
//! release id, which sorts by time). Written when a release starts (outcome `in_progress`) and
//! updated when it ends, so a release whose deployer died is still on record and `status` /
//! `release --resume` can finish the entry.

use anyhow::{Context, Result};
use aws_sdk_dynamodb::Client as Ddb;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};

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
    pub status: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ReleaseRecord {
    pub env: String,
    pub release_id: String,
    /// `release` or `rollback`.
    pub kind: String,
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
    /// in_progress, succeeded, rolled_back_smoke, rolled_back_ecs, migration_failed, timed_out,
    /// interrupted, failed.
    pub outcome: String,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub migration_task: String,
    #[serde(default)]
    pub services: Vec<ServiceRecord>,
}

impl ReleaseRecord {
    pub fn succeeded(&self) -> bool {
        self.outcome == "succeeded"
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
        crate::lock::ensure_table(&self.ddb, &self.table, "env", Some("release_id")).await
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
            .item("outcome", AttributeValue::S(rec.outcome.clone()))
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
                        .map(|e| e.is_resource_not_found_exception())
                        .unwrap_or(false) =>
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
