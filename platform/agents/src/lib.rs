//! The five agent kinds: scaffold, validation, e2e, integration, deployment.
//!
//! An agent reads its kind's stream through the kind's consumer group, does the stage work and
//! publishes the result atomically with the acknowledgement. Entries a dead agent held are
//! claimed after the visibility timeout; after the delivery limit they go to the dead-letter
//! stream and the workflow fails with the reason.

pub mod work;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use platform_bus::{AgentInfo, Bus, BusConfig, Delivery, env_parse};
use platform_core::envelope::EnvelopeHeader;
use platform_core::{RESULT_SCHEMA_VERSION, Stage, TaskEnvelope, TaskOutcome, TaskResult};
use platform_store::Store;
use tokio_util::sync::CancellationToken;

/// The variable naming the agent's liveness file.
pub const LIVENESS_FILE_ENV: &str = "PLATFORM_AGENT_LIVENESS_FILE";

/// Agent settings, from the environment.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub kind: Stage,
    pub id: String,
    pub bus: BusConfig,
    pub database_url: String,
    pub git_sha: String,
    pub heartbeat_interval: Duration,
    /// Rewritten at every heartbeat tick, for `platform healthcheck --agent`
    /// (`PLATFORM_AGENT_LIVENESS_FILE`; the image sets it, local runs leave it unset).
    pub liveness_file: Option<PathBuf>,
    /// On SIGTERM: how long the in-flight task may still run before it is handed back.
    pub stop_timeout: Duration,
    /// Skip stage work (benchmarks of the bus and the state machine).
    pub noop: bool,
    /// In no-op mode, pretend each task takes this long (recovery measurements).
    pub noop_delay: Duration,
    pub work: work::WorkConfig,
}

impl AgentConfig {
    pub fn from_env(kind: Stage, git_sha: String, id: String) -> anyhow::Result<Self> {
        let database_url = match std::env::var("DATABASE_URL") {
            Ok(u) if !u.trim().is_empty() => u,
            _ => anyhow::bail!("DATABASE_URL is required (agents keep artifacts in Postgres)"),
        };
        let templates_dir = std::env::var("PLATFORM_TEMPLATES_DIR")
            .ok()
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("templates/scaffold"));
        Ok(Self {
            kind,
            id,
            bus: BusConfig::from_env()?,
            database_url,
            git_sha,
            heartbeat_interval: heartbeat_interval_from_env()?,
            liveness_file: liveness_file_from_env(),
            stop_timeout: Duration::from_millis(env_parse(
                "PLATFORM_AGENT_STOP_TIMEOUT_MS",
                30_000u64,
            )?),
            noop: std::env::var("PLATFORM_NOOP_WORK").is_ok_and(|v| v == "1" || v == "true"),
            noop_delay: Duration::from_millis(env_parse("PLATFORM_NOOP_DELAY_MS", 0u64)?),
            work: work::WorkConfig {
                templates_dir,
                artifact_max_bytes: env_parse(
                    "PLATFORM_ARTIFACT_MAX_BYTES",
                    10 * 1024 * 1024usize,
                )?,
                git_repo: std::env::var("PLATFORM_GIT_REPO")
                    .ok()
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| ".platform/apps.git".into()),
                command_timeout: Duration::from_millis(env_parse(
                    "PLATFORM_COMMAND_TIMEOUT_MS",
                    120_000u64,
                )?),
                lint_allow: std::env::var("PLATFORM_LINT_ALLOW")
                    .unwrap_or_else(|_| "sh".into())
                    .split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect(),
                image_registry: std::env::var("PLATFORM_IMAGE_REGISTRY")
                    .unwrap_or_else(|_| "registry.local".into()),
            },
        })
    }
}

struct Agent {
    cfg: AgentConfig,
    bus: Bus,
    store: Store,
    in_flight: Arc<Mutex<Option<String>>>,
    started_at: chrono::DateTime<Utc>,
}

/// Runs one agent until `shutdown` fires, then finishes (or hands back) its task and exits.
pub async fn run(cfg: AgentConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let store = Store::connect(&cfg.database_url, 2)
        .await
        .context("connecting to Postgres (DATABASE_URL)")?;
    let bus = Bus::connect(cfg.bus.clone()).await?;
    bus.ensure_groups()
        .await
        .context("creating consumer groups")?;
    let agent = Arc::new(Agent {
        cfg,
        bus,
        store,
        in_flight: Arc::new(Mutex::new(None)),
        started_at: Utc::now(),
    });
    tracing::info!(kind = %agent.cfg.kind, id = %agent.cfg.id, noop = agent.cfg.noop, "agent started");
    let hb_stop = CancellationToken::new();
    let hb = tokio::spawn(heartbeats(agent.clone(), hb_stop.clone()));
    let result = consume(agent.clone(), shutdown).await;
    hb_stop.cancel();
    let _ = hb.await;
    if let Err(e) = agent
        .bus
        .deregister(agent.cfg.kind.as_str(), &agent.cfg.id)
        .await
    {
        tracing::warn!(error = %e, "deregistering failed; the registration expires by itself");
    }
    tracing::info!("agent stopped");
    result
}

impl Agent {
    fn info(&self) -> AgentInfo {
        AgentInfo {
            kind: self.cfg.kind.as_str().to_owned(),
            id: self.cfg.id.clone(),
            version: platform_core::VERSION.to_owned(),
            git_sha: self.cfg.git_sha.clone(),
            started_at: self.started_at,
            last_heartbeat: Utc::now(),
            in_flight_task: self.in_flight.lock().map(|g| g.clone()).unwrap_or(None),
        }
    }

    fn set_in_flight(self: &Arc<Self>, task: Option<String>) {
        if let Ok(mut g) = self.in_flight.lock() {
            *g = task;
        }
        // Publish at once so the API shows the task, without waiting on Redis here.
        let me = self.clone();
        tokio::spawn(async move {
            let _ = me.bus.heartbeat(&me.info(), me.ttl()).await;
        });
    }

    fn ttl(&self) -> Duration {
        self.cfg.heartbeat_interval * 3
    }
}

async fn heartbeats(agent: Arc<Agent>, stop: CancellationToken) {
    let mut liveness_warned = false;
    loop {
        if let Err(e) = agent.bus.heartbeat(&agent.info(), agent.ttl()).await {
            tracing::warn!(error = %e, "heartbeat failed");
        }
        // Liveness, not readiness: written whether or not Redis answered, so an outage of a
        // dependency does not get every agent container restarted; a stuck runtime stops it.
        if let Some(path) = &agent.cfg.liveness_file
            && let Err(e) = std::fs::write(path, Utc::now().to_rfc3339())
            && !liveness_warned
        {
            liveness_warned = true;
            tracing::warn!(error = %e, path = %path.display(), "cannot write the liveness file; `platform healthcheck --agent` will fail");
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(agent.cfg.heartbeat_interval) => {}
        }
    }
}

async fn consume(agent: Arc<Agent>, shutdown: CancellationToken) -> anyhow::Result<()> {
    let kind = agent.cfg.kind;
    let me = agent.cfg.id.clone();
    // A dead agent's entry is claimable one visibility timeout after its last refresh; looking
    // every quarter timeout bounds recovery by 1.25 timeouts (3.75 s at the default).
    let reclaim_every = (agent.cfg.bus.visibility_timeout / 4).max(Duration::from_millis(25));
    let mut last_reclaim = tokio::time::Instant::now() - reclaim_every;
    let mut backoff = Duration::from_millis(100);
    loop {
        if shutdown.is_cancelled() {
            return Ok(());
        }
        let batch = if last_reclaim.elapsed() >= reclaim_every {
            last_reclaim = tokio::time::Instant::now();
            agent.bus.reclaim_tasks(kind, &me).await
        } else {
            Ok(Vec::new())
        };
        let batch = match batch {
            Ok(b) if !b.is_empty() => Ok(b),
            // Block no longer than until the next look for dead consumers' entries, so the
            // takeover bound (1.25 visibility timeouts) holds whatever PLATFORM_BLOCK_MS is.
            Ok(_) => tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                b = agent.bus.read_tasks_within(
                    kind,
                    &me,
                    reclaim_every.saturating_sub(last_reclaim.elapsed()),
                ) => b,
            },
            Err(e) => Err(e),
        };
        let batch = match batch {
            Ok(b) => {
                backoff = Duration::from_millis(100);
                b
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading tasks failed; retrying in {backoff:?}");
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        // Every entry of the batch is ours until handled: the in-flight one and those waiting
        // behind it. Their claims are refreshed together, so none of them is taken over while
        // this agent lives however long the stages take; the guard stops it on every path.
        let held = Arc::new(Mutex::new(Held {
            ids: batch.iter().map(|d| d.id.clone()).collect(),
            lost: Vec::new(),
        }));
        let _keepalive = AbortOnDrop(tokio::spawn(keep_claims(agent.clone(), held.clone())));
        let mut pending = batch.into_iter();
        while let Some(d) = pending.next() {
            if shutdown.is_cancelled() {
                // Read but not started: give them back now rather than after the timeout.
                for d in std::iter::once(d).chain(pending.by_ref()) {
                    let _ = agent.bus.hand_back_task(kind, &d).await;
                }
                return Ok(());
            }
            let lost = held.lock().map(|h| h.lost.contains(&d.id)).unwrap_or(false);
            if lost {
                tracing::warn!(entry = %d.id, "another agent took this task over while it waited here; skipping it");
                continue;
            }
            let id = d.id.clone();
            handle(&agent, d, &shutdown).await;
            if let Ok(mut h) = held.lock() {
                h.ids.retain(|x| x != &id);
            }
        }
    }
}

/// The entries an agent holds (read, not yet finished), and those another consumer took over.
struct Held {
    ids: Vec<String>,
    lost: Vec<String>,
}

/// Refreshes the claims on the held entries every third of the visibility timeout.
async fn keep_claims(agent: Arc<Agent>, held: Arc<Mutex<Held>>) {
    let kind = agent.cfg.kind;
    let every = (agent.cfg.bus.visibility_timeout / 3).max(Duration::from_millis(20));
    loop {
        tokio::time::sleep(every).await;
        let ids = held.lock().map(|h| h.ids.clone()).unwrap_or_default();
        if ids.is_empty() {
            continue;
        }
        match agent.bus.touch_tasks(kind, &agent.cfg.id, &ids).await {
            Ok(still) if still.len() < ids.len() => {
                let gone: Vec<String> = ids.into_iter().filter(|i| !still.contains(i)).collect();
                tracing::warn!(entries = ?gone, "claims lost: another agent took these tasks over (this agent was unreachable longer than the visibility timeout); a result from here will be ignored");
                if let Ok(mut h) = held.lock() {
                    h.ids.retain(|i| !gone.contains(i));
                    h.lost.extend(gone);
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "refreshing the claims on held tasks failed");
            }
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn handle(agent: &Arc<Agent>, d: Delivery, shutdown: &CancellationToken) {
    let kind = agent.cfg.kind;
    let max = agent.cfg.bus.max_deliveries;
    if d.deliveries > max {
        let header = EnvelopeHeader::read(&d.raw);
        let why = match TaskEnvelope::decode(&d.raw) {
            Ok(_) => "no agent finished it".to_owned(),
            Err(e) => e.to_string(),
        };
        let reason = format!(
            "moved to the dead-letter stream after {} deliveries ({why})",
            d.deliveries - 1
        );
        tracing::error!(entry = %d.id, task_id = ?header.task_id, %reason, "dead-lettering task");
        if let Err(e) = agent.bus.dead_letter_task(kind, &d, &reason).await {
            tracing::warn!(error = %e, "dead-lettering failed; it will be retried");
            return;
        }
        if let (Some(task_id), Some(workflow_id)) = (header.task_id, header.workflow_id) {
            let r = TaskResult {
                schema_version: RESULT_SCHEMA_VERSION,
                task_id,
                workflow_id,
                stage: header.stage.unwrap_or(kind),
                attempt: header.attempt.unwrap_or(1),
                agent_id: agent.cfg.id.clone(),
                correlation_id: header.correlation_id.unwrap_or_default(),
                outcome: TaskOutcome::DeadLettered { reason },
                picked_up_at: Utc::now(),
                finished_at: Utc::now(),
            };
            if let Err(e) = agent.bus.publish_result(&r).await {
                tracing::warn!(error = %e, "reporting a dead-lettered task failed");
            }
        }
        return;
    }
    let picked_up_at = Utc::now();
    let env = match TaskEnvelope::decode(&d.raw) {
        Ok(e) => e,
        Err(e) => {
            // Left pending on purpose: a newer agent may read it; otherwise it ends in the DLQ.
            tracing::warn!(entry = %d.id, delivery = d.deliveries, error = %e, "cannot read task; leaving it for redelivery");
            return;
        }
    };
    let span = tracing::info_span!("task", task_id = %env.task_id, workflow_id = %env.workflow_id,
        correlation_id = %env.correlation_id, attempt = env.attempt, delivery = d.deliveries);
    let _enter = span.enter();
    agent.set_in_flight(Some(env.task_id.to_string()));
    let work = {
        let agent = agent.clone();
        let env = env.clone();
        tokio::spawn(async move {
            if agent.cfg.noop {
                if !agent.cfg.noop_delay.is_zero() {
                    tokio::time::sleep(agent.cfg.noop_delay).await;
                }
                return Ok(serde_json::json!({"noop": true}));
            }
            work::run(&agent.cfg.work, &agent.store, &env).await
        })
    };
    tokio::pin!(work);
    let joined = tokio::select! {
        r = &mut work => r,
        _ = shutdown.cancelled() => {
            tracing::info!(timeout = ?agent.cfg.stop_timeout, "stop requested; letting the task finish");
            match tokio::time::timeout(agent.cfg.stop_timeout, &mut work).await {
                Ok(r) => r,
                Err(_) => {
                    work.abort();
                    tracing::warn!("task did not finish within the stop timeout; handing it back");
                    if let Err(e) = agent.bus.hand_back_task(kind, &d).await {
                        tracing::warn!(error = %e, "handing back failed; the task is reclaimed after the visibility timeout");
                    }
                    agent.set_in_flight(None);
                    return;
                }
            }
        }
    };
    let outcome = match joined {
        Ok(Ok(output)) => TaskOutcome::Succeeded { output },
        Ok(Err(work::WorkError::Failed(reason))) => TaskOutcome::Failed { reason },
        Ok(Err(work::WorkError::Transient(e))) => {
            tracing::warn!(error = %e, "stage work hit a transient error; leaving the task for redelivery");
            agent.set_in_flight(None);
            return;
        }
        Err(join) => {
            tracing::error!(error = %join, "stage work panicked; leaving the task for redelivery");
            agent.set_in_flight(None);
            return;
        }
    };
    let r = TaskResult {
        schema_version: RESULT_SCHEMA_VERSION,
        task_id: env.task_id,
        workflow_id: env.workflow_id,
        stage: env.stage,
        attempt: env.attempt,
        agent_id: agent.cfg.id.clone(),
        correlation_id: env.correlation_id.clone(),
        outcome,
        picked_up_at,
        finished_at: Utc::now(),
    };
    // Publishing and acknowledging is retried with backoff; if Redis stays away the entry is
    // still pending and is redelivered (the result is idempotent on the orchestrator side).
    let mut delay = Duration::from_millis(50);
    for attempt in 1..=5 {
        match agent.bus.complete_task(kind, &d.id, &r).await {
            Ok(()) => break,
            Err(e) if attempt < 5 => {
                tracing::warn!(error = %e, "publishing the result failed; retrying in {delay:?}");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            Err(e) => {
                tracing::error!(error = %e, "publishing the result failed; the task will be redelivered")
            }
        }
    }
    if !agent.cfg.noop {
        let status = match &r.outcome {
            TaskOutcome::Succeeded { .. } => "succeeded",
            _ => "failed",
        };
        tracing::info!(status, "task done");
    }
    agent.set_in_flight(None);
}

// The agent and `platform healthcheck --agent` read these the same way, so they agree on the
// file and on how old it may get.
fn heartbeat_interval_from_env() -> Result<Duration, platform_bus::ConfigError> {
    Ok(Duration::from_millis(
        env_parse("PLATFORM_HEARTBEAT_INTERVAL_MS", 5_000u64)?.max(50),
    ))
}

fn liveness_file_from_env() -> Option<PathBuf> {
    std::env::var_os(LIVENESS_FILE_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// `platform healthcheck --agent`: the liveness file named by [`LIVENESS_FILE_ENV`] must have
/// been written within 3 heartbeat intervals (`PLATFORM_HEARTBEAT_INTERVAL_MS`, as the agent reads
/// it), the same span after which the agent's registration expires.
pub fn liveness_check_from_env() -> Result<(), String> {
    let Some(path) = liveness_file_from_env() else {
        return Err(format!(
            "{LIVENESS_FILE_ENV} is not set, so the agent writes no liveness file; set it for the \
             agent and this check (the image sets /tmp/platform-agent-alive)"
        ));
    };
    let interval = heartbeat_interval_from_env().map_err(|e| e.to_string())?;
    check_liveness(&path, interval * 3).map(|_| ())
}

/// Ok(age) when the liveness file was written within
/// `max_age`, else a message saying what is wrong and what to check.
pub fn check_liveness(path: &std::path::Path, max_age: Duration) -> Result<Duration, String> {
    let modified = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .map_err(|e| {
            format!(
                "no agent liveness file at {} ({e}): the agent has not started its heartbeat yet, \
                 or {LIVENESS_FILE_ENV} differs between the agent and this check",
                path.display()
            )
        })?;
    let age = modified.elapsed().unwrap_or_default();
    if age > max_age {
        return Err(format!(
            "agent liveness file {} last written {:.1} s ago (limit {:.1} s): the agent's \
             heartbeat has stopped; see the agent's log",
            path.display(),
            age.as_secs_f64(),
            max_age.as_secs_f64()
        ));
    }
    Ok(age)
}
