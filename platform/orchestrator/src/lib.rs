//! The orchestrator: REST API (axum) and the workflow driver.
//!
//! The driver has three loops: the outbox relay (Postgres → Redis), the results consumer
//! (Redis → Postgres, idempotent) and the sweeper (re-dispatches tasks lost inside Redis).

pub mod api;
pub mod cloudwatch;
pub mod driver;
pub mod metrics;
pub mod ui;

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use platform_bus::{Bus, BusConfig, ConfigError, env_parse};
use platform_store::Store;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The HTTP port when `PORT` is unset (the image, compose file and task definitions use it too).
pub const DEFAULT_PORT: u16 = 3000;

/// `PORT`, else [`DEFAULT_PORT`]: where the orchestrator listens and `platform healthcheck` probes,
/// read by this one function so the two cannot disagree.
pub fn port_from_env() -> Result<u16, ConfigError> {
    env_parse("PORT", DEFAULT_PORT)
}

/// Under compose's 10 s between SIGTERM and SIGKILL (ECS's default stop timeout is 30 s), with
/// room left for the background loops and the pools to close.
pub const DEFAULT_SHUTDOWN_TIMEOUT_MS: u64 = 8_000;

/// Orchestrator settings, from the environment.
#[derive(Debug, Clone)]
pub struct Config {
    pub port: u16,
    pub token: String,
    pub database_url: String,
    pub db_max_connections: u32,
    pub bus: BusConfig,
    pub git_sha: String,
    pub instance_id: String,
    pub body_limit: usize,
    /// A dispatched task without a result for this long is dispatched again.
    pub task_timeout: Duration,
    pub max_attempts: i32,
    pub fault_unhealthy: bool,
    /// Scaffold templates, to refuse unknown template names at the API.
    pub templates_dir: PathBuf,
    /// How long a stop waits for requests in flight before it closes them.
    pub shutdown_timeout: Duration,
    /// The longest a request or a driver step waits on Postgres or Redis before it gives up
    /// (503 for a request; the step is retried).
    pub db_timeout: Duration,
}

impl Config {
    pub fn from_env(git_sha: String) -> anyhow::Result<Self> {
        let token = match (
            std::env::var("PLATFORM_API_TOKEN")
                .ok()
                .filter(|t| !t.trim().is_empty()),
            std::env::var("PLATFORM_API_TOKEN_FILE")
                .ok()
                .filter(|t| !t.trim().is_empty()),
        ) {
            (Some(t), _) => t.trim().to_owned(),
            (None, Some(path)) => std::fs::read_to_string(&path)
                .with_context(|| format!("reading PLATFORM_API_TOKEN_FILE {path}"))?
                .trim()
                .to_owned(),
            (None, None) => bail!(
                "no API token: set PLATFORM_API_TOKEN or PLATFORM_API_TOKEN_FILE (a file holding the bearer token clients must send)"
            ),
        };
        if token.len() < 8 {
            bail!(
                "the API token is too short ({} characters); use at least 8",
                token.len()
            );
        }
        Ok(Self {
            port: port_from_env()?,
            token,
            database_url: database_url()?,
            db_max_connections: env_parse("PLATFORM_DB_MAX_CONNECTIONS", 16u32)?.max(2),
            bus: BusConfig::from_env()?,
            git_sha,
            instance_id: instance_id("orchestrator"),
            body_limit: env_parse("PLATFORM_BODY_LIMIT_BYTES", 64 * 1024usize)?,
            task_timeout: Duration::from_millis(env_parse("PLATFORM_TASK_TIMEOUT_MS", 600_000u64)?),
            max_attempts: env_parse("PLATFORM_MAX_ATTEMPTS", 3i32)?.max(1),
            fault_unhealthy: std::env::var("PLATFORM_FAULT").is_ok_and(|f| f == "unhealthy"),
            templates_dir: templates_dir(),
            shutdown_timeout: Duration::from_millis(env_parse(
                "PLATFORM_SHUTDOWN_TIMEOUT_MS",
                DEFAULT_SHUTDOWN_TIMEOUT_MS,
            )?),
            db_timeout: Duration::from_millis(
                env_parse("PLATFORM_DB_TIMEOUT_MS", 5_000u64)?.max(100),
            ),
        })
    }
}

pub fn database_url() -> anyhow::Result<String> {
    match std::env::var("DATABASE_URL") {
        Ok(u) if !u.trim().is_empty() => Ok(u),
        _ => bail!("DATABASE_URL is required, e.g. postgres://user:password@host:5432/db"),
    }
}

/// `PLATFORM_TEMPLATES_DIR`, else `templates/scaffold` under the working directory.
pub fn templates_dir() -> PathBuf {
    std::env::var("PLATFORM_TEMPLATES_DIR")
        .ok()
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("templates/scaffold"))
}

/// A consumer name unique to this process: `PLATFORM_INSTANCE_ID`, else role-host-pid-random.
pub fn instance_id(role: &str) -> String {
    if let Ok(id) = std::env::var("PLATFORM_INSTANCE_ID")
        && !id.trim().is_empty()
    {
        return id;
    }
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "local".into());
    let rand = &uuid::Uuid::new_v4().simple().to_string()[..6];
    format!("{role}-{host}-{}-{rand}", std::process::id())
}

/// What the handlers and loops share.
pub struct AppState {
    pub cfg: Config,
    pub store: Store,
    pub bus: Bus,
    /// Wakes the outbox relay right after a commit that queued a task.
    pub dispatch: Notify,
    pub metrics: metrics::Metrics,
    /// Outbox rows published by the fast path, not yet deleted: the next group commit (a batch
    /// of results or of creations) deletes them in its own transaction; a background loop
    /// deletes what is left when nothing else commits.
    pub published: std::sync::Mutex<Vec<i64>>,
    /// Workflow creations waiting for the next group commit (see [`driver`]).
    pub creates: tokio::sync::mpsc::Sender<driver::CreateRequest>,
    /// Fires on stop: live event streams end with it.
    pub shutdown: CancellationToken,
}

impl AppState {
    /// Fast path: publishes an envelope right after its commit. When Redis refuses, the row
    /// stays in the outbox and the relay publishes it.
    pub async fn dispatch_now(&self, q: platform_store::Queued) {
        self.dispatch_all(vec![q]).await;
    }

    /// The fast path for a whole group commit: every envelope in one Redis round trip.
    pub async fn dispatch_all(&self, queued: Vec<platform_store::Queued>) {
        if queued.is_empty() {
            return;
        }
        let now = chrono::Utc::now();
        let (ids, envs): (Vec<i64>, Vec<_>) = queued
            .into_iter()
            .map(|q| {
                let mut env = q.envelope;
                env.dispatched_at = Some(now);
                (q.outbox_id, env)
            })
            .unzip();
        match self.bus.publish_tasks(&envs).await {
            Ok(()) => {
                self.metrics.dispatched.add(envs.len() as u64);
                self.return_published(ids);
            }
            Err(e) => {
                tracing::warn!(count = envs.len(), error = %e, "publishing tasks failed; the outbox relay will retry");
            }
        }
    }

    /// Takes the published outbox ids, for the caller's transaction to delete.
    pub fn take_published(&self) -> Vec<i64> {
        self.published
            .lock()
            .map(|mut g| std::mem::take(&mut *g))
            .unwrap_or_default()
    }

    /// Gives published ids back (their deletion did not commit, or they were just published).
    pub fn return_published(&self, ids: Vec<i64>) {
        if let Ok(mut g) = self.published.lock() {
            g.extend(ids);
        }
    }
}

/// Runs the orchestrator until `shutdown` fires.
pub async fn run(cfg: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let store = Store::connect(&cfg.database_url, cfg.db_max_connections)
        .await
        .context("connecting to Postgres (DATABASE_URL)")?;
    store
        .migrate()
        .await
        .context("applying database migrations")?;
    let bus = Bus::connect(cfg.bus.clone()).await?;
    bus.ensure_groups()
        .await
        .context("creating consumer groups")?;
    let (creates, creates_rx) = tokio::sync::mpsc::channel(1024);
    let state = Arc::new(AppState {
        cfg,
        store,
        bus,
        dispatch: Notify::new(),
        metrics: metrics::Metrics::default(),
        published: std::sync::Mutex::new(Vec::new()),
        creates,
        shutdown: shutdown.clone(),
    });
    let addr = SocketAddr::from(([0, 0, 0, 0], state.cfg.port));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr} (PORT)"))?;
    tracing::info!(
        addr = %listener.local_addr()?,
        instance = %state.cfg.instance_id,
        version = platform_core::VERSION,
        git_sha = %state.cfg.git_sha,
        "orchestrator listening"
    );
    // The group-commit writer for creations serves requests until the server has stopped (in
    // flight requests get their answer), so it has its own stop signal.
    let writers_stop = CancellationToken::new();
    let mut loops = driver::spawn(state.clone(), shutdown.clone());
    loops.push(tokio::spawn(driver::creator(
        state.clone(),
        creates_rx,
        writers_stop.clone(),
    )));
    if let Some(cw) = cloudwatch::CloudWatchConfig::from_env()? {
        loops.push(cloudwatch::spawn(state.clone(), cw, shutdown.clone()));
    }
    let app = api::router(state.clone());
    let grace = state.cfg.shutdown_timeout;
    let server = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.clone().cancelled_owned())
        .into_future();
    // Graceful shutdown waits for every open request; a stop must not wait on a client (a
    // stalled upload, a long poll), so after the shutdown timeout the rest are closed.
    let deadline = async {
        shutdown.cancelled().await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        served = server => served.context("serving HTTP")?,
        _ = deadline => tracing::warn!(
            timeout_ms = grace.as_millis() as u64,
            "requests still open at the shutdown timeout; closing them"
        ),
    }
    shutdown.cancel();
    writers_stop.cancel();
    // The loops stop at their next await point; a loop stuck in a call is not waited for.
    if tokio::time::timeout(Duration::from_secs(2), futures::future::join_all(loops))
        .await
        .is_err()
    {
        tracing::warn!("background loops did not stop within 2 s; exiting anyway");
    }
    tracing::info!("orchestrator stopped");
    Ok(())
}
