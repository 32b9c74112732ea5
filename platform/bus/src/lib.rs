//! Task bus on Redis Streams: dispatch to agent consumer groups, results back to the orchestrator.
//!
//! Keys (all under `PLATFORM_REDIS_PREFIX`, joined with `:` when set):
//! - `stream:agent:{kind}:tasks` — tasks, consumer group `agent-{kind}-group`; mirrored to pub/sub
//!   `agent:{kind}:tasks` for live observers;
//! - `stream:agent:{kind}:dlq` — tasks that no agent could process within the delivery limit;
//! - `stream:orchestrator:results` — results, group `orchestrator-group`; mirror `orchestrator:results`;
//! - `agents:{kind}:{id}` — an agent's registration (JSON, expires without heartbeats), indexed
//!   in the set `agents`.
//!
//! Delivery is at-least-once: entries are acknowledged only after their effect is durable, and
//! entries idle longer than the visibility timeout are claimed by another consumer (XAUTOCLAIM).

mod config;
mod dlq;

use std::time::Duration;

use chrono::{DateTime, Utc};
use platform_core::{Stage, TaskEnvelope, TaskResult};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::streams::{StreamAutoClaimReply, StreamId, StreamMaxlen, StreamReadReply};
use redis::{AsyncCommands, SetExpiry, SetOptions, Value as RValue};
use serde::{Deserialize, Serialize};

pub use config::{BusConfig, ConfigError, DEFAULT_VISIBILITY_TIMEOUT_MS, env_parse};
pub use dlq::{DlqEntry, valid_entry_id};

pub const RESULTS_GROUP: &str = "orchestrator-group";

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("Redis error: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("Redis at {url} is not reachable: {source}; check REDIS_URL and that Redis runs")]
    Connect {
        url: String,
        source: redis::RedisError,
    },
}

/// One stream entry handed to a consumer.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: String,
    /// The JSON body (an envelope or a result).
    pub raw: String,
    /// How many times it has been delivered, this time included (known for reclaimed entries;
    /// 1 for fresh reads).
    pub deliveries: u64,
}

/// An agent's registration, refreshed by its heartbeats.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AgentInfo {
    pub kind: String,
    pub id: String,
    pub version: String,
    pub git_sha: String,
    pub started_at: DateTime<Utc>,
    pub last_heartbeat: DateTime<Utc>,
    pub in_flight_task: Option<String>,
}

/// Stream counters for metrics.
#[derive(Debug, Clone, Default)]
pub struct StreamStats {
    pub length: u64,
    pub pending: u64,
    pub dlq: u64,
}

#[derive(Clone)]
pub struct Bus {
    cfg: BusConfig,
    cmd: ConnectionManager,
    /// Blocking reads get their own connection: a blocked XREADGROUP would stall every command
    /// queued behind it on a multiplexed connection.
    blocking: ConnectionManager,
}

impl Bus {
    pub async fn connect(cfg: BusConfig) -> Result<Self, BusError> {
        let client = redis::Client::open(cfg.url.as_str()).map_err(|source| BusError::Connect {
            url: redact(&cfg.url),
            source,
        })?;
        let base = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_max_delay(Duration::from_secs(2))
            .set_number_of_retries(6);
        let connect = |c: ConnectionManagerConfig| {
            let client = client.clone();
            async move { client.get_connection_manager_with_config(c).await }
        };
        let cmd = connect(
            base.clone()
                .set_response_timeout(Some(Duration::from_secs(5))),
        )
        .await
        .map_err(|source| BusError::Connect {
            url: redact(&cfg.url),
            source,
        })?;
        let blocking = connect(base.set_response_timeout(Some(cfg.block + Duration::from_secs(5))))
            .await
            .map_err(|source| BusError::Connect {
                url: redact(&cfg.url),
                source,
            })?;
        Ok(Self { cfg, cmd, blocking })
    }

    pub fn config(&self) -> &BusConfig {
        &self.cfg
    }

    pub fn key(&self, name: &str) -> String {
        if self.cfg.prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{}:{name}", self.cfg.prefix)
        }
    }

    pub fn task_stream(&self, kind: Stage) -> String {
        self.key(&format!("stream:agent:{kind}:tasks"))
    }
    pub fn task_channel(&self, kind: Stage) -> String {
        self.key(&format!("agent:{kind}:tasks"))
    }
    pub fn dlq_stream(&self, kind: Stage) -> String {
        self.key(&format!("stream:agent:{kind}:dlq"))
    }
    pub fn results_stream(&self) -> String {
        self.key("stream:orchestrator:results")
    }
    pub fn results_dlq(&self) -> String {
        self.key("stream:orchestrator:results:dlq")
    }
    pub fn results_channel(&self) -> String {
        self.key("orchestrator:results")
    }
    pub fn group(kind: Stage) -> String {
        format!("agent-{kind}-group")
    }
    fn agent_key(&self, kind: &str, id: &str) -> String {
        self.key(&format!("agents:{kind}:{id}"))
    }
    fn agents_index(&self) -> String {
        self.key("agents")
    }

    pub async fn ping(&self) -> Result<(), BusError> {
        let mut c = self.cmd.clone();
        let _: String = redis::cmd("PING").query_async(&mut c).await?;
        Ok(())
    }

    async fn ensure_group(&self, stream: &str, group: &str) -> Result<(), BusError> {
        let mut c = self.cmd.clone();
        let r: redis::RedisResult<()> = c.xgroup_create_mkstream(stream, group, "0").await;
        match r {
            Ok(()) => Ok(()),
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Creates every consumer group (idempotent; also after a Redis that lost its data).
    pub async fn ensure_groups(&self) -> Result<(), BusError> {
        for kind in Stage::ALL {
            self.ensure_group(&self.task_stream(kind), &Self::group(kind))
                .await?;
        }
        self.ensure_group(&self.results_stream(), RESULTS_GROUP)
            .await
    }

    // ------------------------------------------------------------ tasks

    /// Puts envelopes on their agents' streams (and the pub/sub mirror) in one round trip.
    pub async fn publish_tasks(&self, envs: &[TaskEnvelope]) -> Result<(), BusError> {
        let mut w = self.writes();
        for e in envs {
            let body = e.encode();
            w.add(&self.task_stream(e.stage), &[("envelope", &body)])
                .publish(&self.task_channel(e.stage), &body);
        }
        w.send().await
    }

    /// New tasks for `consumer`, blocking up to the configured block time.
    pub async fn read_tasks(&self, kind: Stage, consumer: &str) -> Result<Vec<Delivery>, BusError> {
        self.read_tasks_within(kind, consumer, self.cfg.block).await
    }

    /// [`Bus::read_tasks`], blocking at most `block` (at least 1 ms, at most the configured
    /// block time): a consumer that must look for dead consumers' entries soon waits no longer.
    pub async fn read_tasks_within(
        &self,
        kind: Stage,
        consumer: &str,
        block: Duration,
    ) -> Result<Vec<Delivery>, BusError> {
        let stream = self.task_stream(kind);
        let block = block.clamp(Duration::from_millis(1), self.cfg.block);
        self.read_group(&stream, &Self::group(kind), consumer, "envelope", block)
            .await
    }

    /// Tasks idle longer than the visibility timeout (their consumer died), now owned by
    /// `consumer`, with their delivery counts.
    pub async fn reclaim_tasks(
        &self,
        kind: Stage,
        consumer: &str,
    ) -> Result<Vec<Delivery>, BusError> {
        let stream = self.task_stream(kind);
        self.autoclaim(&stream, &Self::group(kind), consumer, "envelope")
            .await
    }

    pub async fn ack_task(&self, kind: Stage, id: &str) -> Result<(), BusError> {
        let mut c = self.cmd.clone();
        let _: i64 = c
            .xack(self.task_stream(kind), Self::group(kind), &[id])
            .await?;
        Ok(())
    }

    /// Resets the idle time of the tasks this consumer still holds (the one in flight and those
    /// read but not started), so no other consumer claims them while their owner is alive
    /// (XCLAIM JUSTID does not count a delivery). Atomic per call and only for entries still
    /// pending for `consumer`: an entry another consumer took over (this one was cut off for
    /// longer than the visibility timeout) is not taken back. Returns the ids still held.
    pub async fn touch_tasks(
        &self,
        kind: Stage,
        consumer: &str,
        ids: &[String],
    ) -> Result<Vec<String>, BusError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        const TOUCH: &str = r"
local held = {}
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if p[1] and p[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    held[#held + 1] = ARGV[i]
  end
end
return held";
        let mut c = self.cmd.clone();
        let held: Vec<String> = redis::cmd("EVAL")
            .arg(TOUCH)
            .arg(1)
            .arg(self.task_stream(kind))
            .arg(Self::group(kind))
            .arg(consumer)
            .arg(ids)
            .query_async(&mut c)
            .await?;
        Ok(held)
    }

    /// Moves a task to the dead-letter stream (atomically with its acknowledgement).
    pub async fn dead_letter_task(
        &self,
        kind: Stage,
        d: &Delivery,
        reason: &str,
    ) -> Result<(), BusError> {
        let deliveries = d.deliveries.to_string();
        self.atomic_writes()
            .add(
                &self.dlq_stream(kind),
                &[
                    ("envelope", &d.raw),
                    ("reason", reason),
                    ("deliveries", &deliveries),
                    ("source_id", &d.id),
                ],
            )
            .ack(&self.task_stream(kind), &Self::group(kind), &d.id)
            .send()
            .await
    }

    /// Hands a task back for another agent right away (graceful stop): a fresh copy goes on the
    /// stream and this delivery is acknowledged, atomically.
    pub async fn hand_back_task(&self, kind: Stage, d: &Delivery) -> Result<(), BusError> {
        let stream = self.task_stream(kind);
        self.atomic_writes()
            .add(&stream, &[("envelope", &d.raw)])
            .ack(&stream, &Self::group(kind), &d.id)
            .send()
            .await
    }

    /// Publishes a task's result and acknowledges the task in one atomic step: the result is
    /// durable in Redis before the task leaves the pending list.
    pub async fn complete_task(
        &self,
        kind: Stage,
        id: &str,
        r: &TaskResult,
    ) -> Result<(), BusError> {
        let body = r.encode();
        self.atomic_writes()
            .add(&self.results_stream(), &[("result", &body)])
            .ack(&self.task_stream(kind), &Self::group(kind), id)
            .publish(&self.results_channel(), &body)
            .send()
            .await
    }

    // ------------------------------------------------------------ results

    pub async fn publish_result(&self, r: &TaskResult) -> Result<(), BusError> {
        let body = r.encode();
        self.writes()
            .add(&self.results_stream(), &[("result", &body)])
            .publish(&self.results_channel(), &body)
            .send()
            .await
    }

    pub async fn read_results(&self, consumer: &str) -> Result<Vec<Delivery>, BusError> {
        let stream = self.results_stream();
        self.read_group(&stream, RESULTS_GROUP, consumer, "result", self.cfg.block)
            .await
    }

    /// Results a dead orchestrator instance had read but not applied.
    pub async fn reclaim_results(&self, consumer: &str) -> Result<Vec<Delivery>, BusError> {
        let stream = self.results_stream();
        self.autoclaim(&stream, RESULTS_GROUP, consumer, "result")
            .await
    }

    pub async fn ack_results(&self, ids: &[String]) -> Result<(), BusError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut c = self.cmd.clone();
        let _: i64 = c.xack(self.results_stream(), RESULTS_GROUP, ids).await?;
        Ok(())
    }

    /// Parks an unreadable result (atomically with its acknowledgement).
    pub async fn dead_letter_result(&self, d: &Delivery, reason: &str) -> Result<(), BusError> {
        self.atomic_writes()
            .add(
                &self.results_dlq(),
                &[("result", &d.raw), ("reason", reason)],
            )
            .ack(&self.results_stream(), RESULTS_GROUP, &d.id)
            .send()
            .await
    }

    // ------------------------------------------------------------ plumbing

    /// Sends a pipeline whose replies are all ignored.
    async fn send(&self, p: &redis::Pipeline) -> Result<(), BusError> {
        let mut c = self.cmd.clone();
        let () = p.query_async(&mut c).await?;
        Ok(())
    }

    /// Stream writes sent together in one round trip.
    fn writes(&self) -> Writes<'_> {
        Writes {
            bus: self,
            pipe: redis::pipe(),
        }
    }

    /// Stream writes applied all or nothing (MULTI/EXEC): used wherever an entry moves from one
    /// stream to another, so it is never lost nor left in both.
    fn atomic_writes(&self) -> Writes<'_> {
        let mut w = self.writes();
        w.pipe.atomic();
        w
    }

    /// The reply, or `None` when the group vanished (Redis lost its data): then it is recreated,
    /// and the caller reads again next time.
    async fn unless_group_lost<T>(
        &self,
        reply: redis::RedisResult<T>,
        stream: &str,
        group: &str,
    ) -> Result<Option<T>, BusError> {
        match reply {
            Ok(r) => Ok(Some(r)),
            Err(e) if e.code() == Some("NOGROUP") => {
                tracing::warn!(stream, group, "consumer group missing; recreating it");
                self.ensure_group(stream, group).await?;
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn read_group(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        field: &str,
        block: Duration,
    ) -> Result<Vec<Delivery>, BusError> {
        let mut c = self.blocking.clone();
        let reply: redis::RedisResult<Option<StreamReadReply>> = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(group)
            .arg(consumer)
            .arg("COUNT")
            .arg(self.cfg.batch)
            .arg("BLOCK")
            .arg(block.as_millis() as u64)
            .arg("STREAMS")
            .arg(stream)
            .arg(">")
            .query_async(&mut c)
            .await;
        let Some(reply) = self.unless_group_lost(reply, stream, group).await? else {
            return Ok(Vec::new());
        };
        Ok(reply
            .map(|r| r.keys.into_iter().flat_map(|k| k.ids).collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .map(|e| to_delivery(e, field, 1))
            .collect())
    }

    async fn autoclaim(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        field: &str,
    ) -> Result<Vec<Delivery>, BusError> {
        let mut c = self.cmd.clone();
        let reply: redis::RedisResult<StreamAutoClaimReply> = redis::cmd("XAUTOCLAIM")
            .arg(stream)
            .arg(group)
            .arg(consumer)
            .arg(self.cfg.visibility_timeout.as_millis() as u64)
            .arg("0-0")
            .arg("COUNT")
            .arg(self.cfg.batch)
            .query_async(&mut c)
            .await;
        let Some(reply) = self.unless_group_lost(reply, stream, group).await? else {
            return Ok(Vec::new());
        };
        if reply.claimed.is_empty() {
            return Ok(Vec::new());
        }
        // XAUTOCLAIM does not report delivery counts; XPENDING per entry does.
        let mut p = redis::pipe();
        for e in &reply.claimed {
            p.cmd("XPENDING")
                .arg(stream)
                .arg(group)
                .arg(&e.id)
                .arg(&e.id)
                .arg(1);
        }
        let counts: Vec<RValue> = p.query_async(&mut c).await?;
        Ok(reply
            .claimed
            .into_iter()
            .zip(counts)
            .map(|(e, v)| {
                let n = delivery_count(&v).unwrap_or(1);
                to_delivery(e, field, n)
            })
            .collect())
    }

    // ------------------------------------------------------------ agents

    /// Registers or refreshes an agent; the registration expires after `ttl` without heartbeat.
    pub async fn heartbeat(&self, info: &AgentInfo, ttl: Duration) -> Result<(), BusError> {
        let key = self.agent_key(&info.kind, &info.id);
        let body = serde_json::to_string(info).expect("agent info serialises");
        let expiry = SetOptions::default().with_expiration(SetExpiry::PX(ttl.as_millis() as u64));
        let mut p = redis::pipe();
        p.set_options(&key, body, expiry)
            .ignore()
            .sadd(self.agents_index(), &key)
            .ignore();
        self.send(&p).await
    }

    pub async fn deregister(&self, kind: &str, id: &str) -> Result<(), BusError> {
        let key = self.agent_key(kind, id);
        let mut p = redis::pipe();
        p.del(&key)
            .ignore()
            .srem(self.agents_index(), &key)
            .ignore();
        self.send(&p).await
    }

    /// Live agents (registrations whose heartbeat has not expired), sorted by kind and id.
    pub async fn list_agents(&self) -> Result<Vec<AgentInfo>, BusError> {
        let mut c = self.cmd.clone();
        let keys: Vec<String> = c.smembers(self.agents_index()).await?;
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let values: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query_async(&mut c).await?;
        let mut agents = Vec::new();
        let mut expired = Vec::new();
        for (k, v) in keys.iter().zip(values) {
            match v.and_then(|s| serde_json::from_str::<AgentInfo>(&s).ok()) {
                Some(a) => agents.push(a),
                None => expired.push(k.clone()),
            }
        }
        if !expired.is_empty() {
            let _: i64 = c.srem(self.agents_index(), &expired).await?;
        }
        agents.sort_by(|a, b| (&a.kind, &a.id).cmp(&(&b.kind, &b.id)));
        Ok(agents)
    }

    // ------------------------------------------------------------ metrics

    pub async fn task_stream_stats(&self, kind: Stage) -> Result<StreamStats, BusError> {
        let mut p = redis::pipe();
        p.cmd("XLEN").arg(self.task_stream(kind));
        p.cmd("XLEN").arg(self.dlq_stream(kind));
        let mut c = self.cmd.clone();
        let (length, dlq): (u64, u64) = p.query_async(&mut c).await?;
        let pending = self
            .pending_count(&self.task_stream(kind), &Self::group(kind))
            .await?;
        Ok(StreamStats {
            length,
            pending,
            dlq,
        })
    }

    /// Entries of the group not yet delivered to any consumer (the backlog).
    pub async fn task_backlog(&self, kind: Stage) -> Result<u64, BusError> {
        let mut c = self.cmd.clone();
        let groups: redis::RedisResult<RValue> = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(self.task_stream(kind))
            .query_async(&mut c)
            .await;
        let Ok(groups) = groups else { return Ok(0) };
        Ok(find_group_field(&groups, &Self::group(kind), "lag").unwrap_or(0))
    }

    async fn pending_count(&self, stream: &str, group: &str) -> Result<u64, BusError> {
        let mut c = self.cmd.clone();
        let v: redis::RedisResult<RValue> = redis::cmd("XPENDING")
            .arg(stream)
            .arg(group)
            .query_async(&mut c)
            .await;
        match v {
            Ok(RValue::Array(items)) => Ok(items.first().and_then(as_u64).unwrap_or(0)),
            Ok(_) => Ok(0),
            Err(e) if e.code() == Some("NOGROUP") => Ok(0),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn results_stats(&self) -> Result<StreamStats, BusError> {
        let mut p = redis::pipe();
        p.cmd("XLEN").arg(self.results_stream());
        p.cmd("XLEN").arg(self.results_dlq());
        let mut c = self.cmd.clone();
        let (length, dlq): (u64, u64) = p.query_async(&mut c).await?;
        let pending = self
            .pending_count(&self.results_stream(), RESULTS_GROUP)
            .await?;
        Ok(StreamStats {
            length,
            pending,
            dlq,
        })
    }
}

/// The one place that builds stream writes: every entry added goes through `add`, so every
/// stream is capped the same way (`XADD … MAXLEN ~ PLATFORM_STREAM_MAXLEN`).
struct Writes<'a> {
    bus: &'a Bus,
    pipe: redis::Pipeline,
}

impl Writes<'_> {
    fn add(&mut self, stream: &str, fields: &[(&str, &str)]) -> &mut Self {
        let cap = StreamMaxlen::Approx(self.bus.cfg.maxlen);
        self.pipe.xadd_maxlen(stream, cap, "*", fields).ignore();
        self
    }

    fn ack(&mut self, stream: &str, group: &str, id: &str) -> &mut Self {
        self.pipe.xack(stream, group, &[id]).ignore();
        self
    }

    /// The pub/sub mirror for live observers.
    fn publish(&mut self, channel: &str, body: &str) -> &mut Self {
        self.pipe.publish(channel, body).ignore();
        self
    }

    async fn send(&mut self) -> Result<(), BusError> {
        self.bus.send(&self.pipe).await
    }
}

fn to_delivery(e: StreamId, field: &str, deliveries: u64) -> Delivery {
    let raw = e
        .map
        .get(field)
        .and_then(|v| redis::from_redis_value_ref::<String>(v).ok())
        .unwrap_or_default();
    Delivery {
        id: e.id,
        raw,
        deliveries,
    }
}

fn as_u64(v: &RValue) -> Option<u64> {
    match v {
        RValue::Int(i) => u64::try_from(*i).ok(),
        RValue::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        RValue::SimpleString(s) => s.parse().ok(),
        _ => None,
    }
}

/// The delivery count from an `XPENDING key group id id 1` reply: `[[id, consumer, idle, count]]`.
fn delivery_count(v: &RValue) -> Option<u64> {
    let RValue::Array(rows) = v else { return None };
    let RValue::Array(row) = rows.first()? else {
        return None;
    };
    as_u64(row.get(3)?)
}

/// A numeric field of one group in an `XINFO GROUPS` reply (RESP2 flat arrays or RESP3 maps).
fn find_group_field(v: &RValue, group: &str, field: &str) -> Option<u64> {
    let RValue::Array(groups) = v else {
        return None;
    };
    for g in groups {
        let pairs: Vec<(&RValue, &RValue)> = match g {
            RValue::Array(a) => a
                .chunks(2)
                .filter_map(|c| Some((c.first()?, c.get(1)?)))
                .collect(),
            RValue::Map(m) => m.iter().map(|(k, v)| (k, v)).collect(),
            _ => continue,
        };
        let text = |v: &RValue| redis::from_redis_value_ref::<String>(v).ok();
        let name = pairs
            .iter()
            .find(|(k, _)| text(k).as_deref() == Some("name"))
            .and_then(|(_, v)| text(v));
        if name.as_deref() == Some(group) {
            return pairs
                .iter()
                .find(|(k, _)| text(k).as_deref() == Some(field))
                .and_then(|(_, v)| as_u64(v));
        }
    }
    None
}

/// The URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***@{}", &url[..s], &url[at + 1..]),
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redact_hides_credentials() {
        assert_eq!(super::redact("redis://:pw@h:1/0"), "redis://***@h:1/0");
        assert_eq!(super::redact("redis://h:1"), "redis://h:1");
    }
}
