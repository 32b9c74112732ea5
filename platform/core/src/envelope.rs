//! What travels on the bus: task envelopes to agents and results back to the orchestrator.
//!
//! Both are versioned. An agent that meets an envelope of a schema it does not know leaves it
//! for a newer agent (and, after the delivery limit, for the dead-letter stream) instead of
//! guessing at fields — the seed system's agents silently lost `payload`/`workflow_context`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::Stage;

pub const ENVELOPE_SCHEMA_VERSION: u32 = 1;
pub const RESULT_SCHEMA_VERSION: u32 = 1;

/// One unit of stage work for an agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskEnvelope {
    pub schema_version: u32,
    pub task_id: Uuid,
    pub workflow_id: Uuid,
    pub stage: Stage,
    /// 1 for the first dispatch; a re-dispatch after a lost task counts up.
    pub attempt: u32,
    /// Stage input: template name, params, workflow name.
    pub payload: Value,
    /// Outputs of the earlier stages (artifact ids, commits), keyed by stage.
    pub workflow_context: Value,
    pub correlation_id: String,
    /// When the task row was committed.
    pub created_at: DateTime<Utc>,
    /// When it was put on the stream (set by the dispatcher).
    #[serde(default)]
    pub dispatched_at: Option<DateTime<Utc>>,
}

/// Why an envelope could not be read.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("envelope is not valid JSON of the expected shape: {0}")]
    Malformed(String),
    #[error(
        "envelope schema version {found} is not supported by this build (supports {supported})"
    )]
    UnsupportedVersion { found: u64, supported: u32 },
}

/// The ids of an envelope, read leniently so even an unreadable task can be dead-lettered
/// against its workflow.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct EnvelopeHeader {
    #[serde(default)]
    pub schema_version: Option<u64>,
    #[serde(default)]
    pub task_id: Option<Uuid>,
    #[serde(default)]
    pub workflow_id: Option<Uuid>,
    #[serde(default)]
    pub stage: Option<Stage>,
    #[serde(default)]
    pub attempt: Option<u32>,
    #[serde(default)]
    pub correlation_id: Option<String>,
}

impl EnvelopeHeader {
    pub fn read(raw: &str) -> Self {
        serde_json::from_str(raw).unwrap_or_default()
    }
}

/// Parses `raw` when its `schema_version` is the one this build `supports`.
fn decode_versioned<T: serde::de::DeserializeOwned>(
    raw: &str,
    supports: u32,
) -> Result<T, EnvelopeError> {
    match EnvelopeHeader::read(raw).schema_version {
        Some(v) if v == u64::from(supports) => {
            serde_json::from_str(raw).map_err(|e| EnvelopeError::Malformed(e.to_string()))
        }
        Some(found) => Err(EnvelopeError::UnsupportedVersion {
            found,
            supported: supports,
        }),
        None => Err(EnvelopeError::Malformed(
            "missing or invalid schema_version".into(),
        )),
    }
}

impl TaskEnvelope {
    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("an envelope always serialises")
    }

    pub fn decode(raw: &str) -> Result<Self, EnvelopeError> {
        decode_versioned(raw, ENVELOPE_SCHEMA_VERSION)
    }
}

/// How a task ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum TaskOutcome {
    /// Stage work done; `output` feeds the next stages' `workflow_context`.
    Succeeded { output: Value },
    /// The work itself failed (a test failed, a file is missing): the workflow fails.
    Failed { reason: String },
    /// No agent could process the task within the delivery limit.
    DeadLettered { reason: String },
}

/// An agent's report on one task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskResult {
    pub schema_version: u32,
    pub task_id: Uuid,
    pub workflow_id: Uuid,
    pub stage: Stage,
    pub attempt: u32,
    pub agent_id: String,
    pub correlation_id: String,
    #[serde(flatten)]
    pub outcome: TaskOutcome,
    /// When the agent read the task off the stream.
    pub picked_up_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
}

impl TaskResult {
    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("a result always serialises")
    }

    pub fn decode(raw: &str) -> Result<Self, EnvelopeError> {
        decode_versioned(raw, RESULT_SCHEMA_VERSION)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope() -> TaskEnvelope {
        TaskEnvelope {
            schema_version: ENVELOPE_SCHEMA_VERSION,
            task_id: Uuid::now_v7(),
            workflow_id: Uuid::now_v7(),
            stage: Stage::Validation,
            attempt: 1,
            payload: serde_json::json!({"template": "static-web"}),
            workflow_context: serde_json::json!({"scaffold": {"artifact_id": "x"}}),
            correlation_id: "c-1".into(),
            created_at: Utc::now(),
            dispatched_at: None,
        }
    }

    #[test]
    fn envelope_round_trips() {
        let e = envelope();
        assert_eq!(TaskEnvelope::decode(&e.encode()).unwrap(), e);
    }

    #[test]
    fn newer_schema_is_refused_but_its_ids_are_readable() {
        let e = envelope();
        let mut v = serde_json::to_value(&e).unwrap();
        v["schema_version"] = 99.into();
        v.as_object_mut().unwrap().remove("payload");
        let raw = v.to_string();
        assert!(matches!(
            TaskEnvelope::decode(&raw),
            Err(EnvelopeError::UnsupportedVersion { found: 99, .. })
        ));
        let h = EnvelopeHeader::read(&raw);
        assert_eq!(h.task_id, Some(e.task_id));
        assert_eq!(h.workflow_id, Some(e.workflow_id));
    }

    #[test]
    fn missing_fields_are_malformed_not_defaulted() {
        let mut v = serde_json::to_value(envelope()).unwrap();
        v.as_object_mut().unwrap().remove("workflow_context");
        assert!(matches!(
            TaskEnvelope::decode(&v.to_string()),
            Err(EnvelopeError::Malformed(_))
        ));
        assert!(TaskEnvelope::decode("not json").is_err());
    }

    #[test]
    fn result_outcome_is_tagged() {
        let r = TaskResult {
            schema_version: RESULT_SCHEMA_VERSION,
            task_id: Uuid::now_v7(),
            workflow_id: Uuid::now_v7(),
            stage: Stage::E2e,
            attempt: 1,
            agent_id: "a".into(),
            correlation_id: "c".into(),
            outcome: TaskOutcome::Failed {
                reason: "tests failed".into(),
            },
            picked_up_at: Utc::now(),
            finished_at: Utc::now(),
        };
        let v: Value = serde_json::from_str(&r.encode()).unwrap();
        assert_eq!(v["status"], "failed");
        assert_eq!(TaskResult::decode(&r.encode()).unwrap(), r);
    }
}
