//! The task dead-letter streams, for operators: list entries, look one up, and remove one that
//! was redriven (remembering that it was, so a repeated redrive is answered, not failed).

use platform_core::Stage;
use redis::AsyncCommands;
use redis::streams::{StreamId, StreamRangeReply};
use serde::Serialize;

use crate::{Bus, BusError};

/// How long a redriven entry's id is remembered (a repeated redrive within it is a no-op).
const REDRIVEN_TTL_SECS: u64 = 7 * 24 * 3600;

/// One dead-lettered task.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DlqEntry {
    /// The entry's id in `stream:agent:{kind}:dlq`.
    pub id: String,
    pub kind: String,
    /// Why no agent could process it.
    pub reason: String,
    /// Deliveries before it was dead-lettered.
    pub deliveries: u64,
    /// Its id in the task stream.
    pub source_id: Option<String>,
    pub task_id: Option<String>,
    pub workflow_id: Option<String>,
    /// `schema_version` of the envelope, when it could be read as JSON.
    pub schema_version: Option<u64>,
    /// The envelope as it was dead-lettered.
    pub envelope: String,
}

fn field(e: &StreamId, name: &str) -> Option<String> {
    e.map
        .get(name)
        .and_then(|v| redis::from_redis_value_ref::<String>(v).ok())
}

fn to_entry(kind: Stage, e: &StreamId) -> DlqEntry {
    let envelope = field(e, "envelope").unwrap_or_default();
    let json: Option<serde_json::Value> = serde_json::from_str(&envelope).ok();
    let text = |k: &str| {
        json.as_ref()
            .and_then(|j| j.get(k))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    DlqEntry {
        id: e.id.clone(),
        kind: kind.as_str().to_owned(),
        reason: field(e, "reason").unwrap_or_default(),
        deliveries: field(e, "deliveries")
            .and_then(|d| d.parse().ok())
            .unwrap_or(0),
        source_id: field(e, "source_id"),
        task_id: text("task_id"),
        workflow_id: text("workflow_id"),
        schema_version: json
            .as_ref()
            .and_then(|j| j.get("schema_version"))
            .and_then(|v| v.as_u64()),
        envelope,
    }
}

/// A stream entry id as Redis writes them (`<ms>-<seq>`): anything else is refused before it
/// reaches Redis.
pub fn valid_entry_id(id: &str) -> bool {
    let mut parts = id.splitn(2, '-');
    let ok = |p: Option<&str>| {
        p.is_some_and(|p| (1..=20).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
    };
    ok(parts.next()) && ok(parts.next())
}

impl Bus {
    fn redriven_key(&self, kind: Stage, id: &str) -> String {
        self.key(&format!("dlq:redriven:{kind}:{id}"))
    }

    /// The newest `count` entries of a kind's DLQ (newest first) and its length.
    pub async fn dlq_entries(
        &self,
        kind: Stage,
        count: usize,
    ) -> Result<(u64, Vec<DlqEntry>), BusError> {
        let mut c = self.cmd.clone();
        let stream = self.dlq_stream(kind);
        let len: u64 = c.xlen(&stream).await?;
        let reply: StreamRangeReply = c.xrevrange_count(&stream, "+", "-", count).await?;
        Ok((len, reply.ids.iter().map(|e| to_entry(kind, e)).collect()))
    }

    /// One DLQ entry, if it is (still) there. `id` must pass [`valid_entry_id`].
    pub async fn dlq_entry(&self, kind: Stage, id: &str) -> Result<Option<DlqEntry>, BusError> {
        let mut c = self.cmd.clone();
        let reply: StreamRangeReply = c.xrange(self.dlq_stream(kind), id, id).await?;
        Ok(reply.ids.first().map(|e| to_entry(kind, e)))
    }

    /// Whether the entry was removed by a redrive (within the last week).
    pub async fn dlq_was_redriven(&self, kind: Stage, id: &str) -> Result<bool, BusError> {
        let mut c = self.cmd.clone();
        Ok(c.exists(self.redriven_key(kind, id)).await?)
    }

    /// Removes a redriven entry and remembers it was redriven, in one MULTI.
    pub async fn dlq_remove_redriven(&self, kind: Stage, id: &str) -> Result<(), BusError> {
        let mut p = redis::pipe();
        p.atomic()
            .xdel(self.dlq_stream(kind), &[id])
            .ignore()
            .set_ex(self.redriven_key(kind, id), "1", REDRIVEN_TTL_SECS)
            .ignore();
        self.send(&p).await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn entry_ids() {
        assert!(super::valid_entry_id("1700000000000-0"));
        assert!(!super::valid_entry_id("1700000000000"));
        assert!(!super::valid_entry_id("a-0"));
        assert!(!super::valid_entry_id("1-0-0"));
        assert!(!super::valid_entry_id("-"));
        assert!(!super::valid_entry_id("+"));
    }
}
