//! `platform-bench`: end-to-end throughput, stage pickup latency, commits per workflow and
//! dead-agent recovery of the platform with no-op stage work.
//!
//! It runs against a PostgreSQL with production durability (`scripts/pg-durable up`: fsync,
//! synchronous_commit and full_page_writes on) named by `PLATFORM_BENCH_DATABASE_URL`, and
//! refuses a server with any of them off unless `--allow-non-durable` is given; the settings it
//! ran with are part of its report. Redis is `REDIS_URL` (`scripts/env up`).
//!
//! It starts its own orchestrator and agents (the `platform` binary next to this one) on a fresh
//! database and a fresh Redis key prefix, so it never touches other data. Every process runs
//! with the shipped defaults except `PLATFORM_NOOP_WORK=1`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use serde_json::{Value, json};
use sqlx::Connection;

/// Measures workflows/s, pickup latency p50/p99 and dead-agent recovery time.
#[derive(Parser)]
#[command(name = "platform-bench")]
struct Args {
    /// Workflows for the throughput phase.
    #[arg(long, default_value_t = 2000)]
    workflows: usize,
    /// Concurrent API clients creating workflows.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Workflows run one at a time for the latency phase.
    #[arg(long, default_value_t = 200)]
    latency_workflows: usize,
    /// Agents per kind.
    #[arg(long, default_value_t = 1)]
    agents_per_kind: usize,
    /// Visibility timeout (ms); unset = the shipped default.
    #[arg(long)]
    visibility_timeout_ms: Option<u64>,
    /// An administrative URL of the PostgreSQL to measure against (a database is created on it).
    #[arg(long, env = "PLATFORM_BENCH_DATABASE_URL")]
    database_url: String,
    /// Run even when the server has fsync, synchronous_commit or full_page_writes off.
    #[arg(long)]
    allow_non_durable: bool,
}

/// Queries the benchmark itself runs on the measured database (polling for completion), so
/// they can be taken out of the commit counts.
static BENCH_QUERIES: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

fn bench_queries() -> i64 {
    BENCH_QUERIES.load(std::sync::atomic::Ordering::Relaxed)
}

fn count_query() {
    BENCH_QUERIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// Committed transactions of database `db` so far (`pg_stat_database.xact_commit`, which
/// counts read-only transactions too). Backends publish their counters at most once a second,
/// so it reads until two readings 1.1 s apart agree.
async fn xact_commits(conn: &mut sqlx::PgConnection, db: &str) -> anyhow::Result<i64> {
    async fn read(conn: &mut sqlx::PgConnection, db: &str) -> sqlx::Result<i64> {
        sqlx::query_scalar("SELECT xact_commit FROM pg_stat_database WHERE datname = $1")
            .bind(db)
            .fetch_one(conn)
            .await
    }
    let mut last = read(conn, db).await?;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let now = read(conn, db).await?;
        if now == last {
            return Ok(now);
        }
        last = now;
    }
    Ok(last)
}

/// CPU time (user + system, ms) of a process so far, from /proc (Linux).
fn cpu_ms(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks * 10.0) // USER_HZ is 100 on Linux
}

/// CPU used so far by each side: the platform processes, the PostgreSQL server processes
/// (every process pg_stat_activity lists: backends and background workers), this benchmark.
async fn cpu_snapshot(
    conn: &mut sqlx::PgConnection,
    platform: &[u32],
) -> anyhow::Result<std::collections::HashMap<(&'static str, u32), f64>> {
    let mut m = std::collections::HashMap::new();
    for &pid in platform {
        if let Some(c) = cpu_ms(pid) {
            m.insert(("platform", pid), c);
        }
    }
    let pg: Vec<i32> = sqlx::query_scalar("SELECT pid FROM pg_stat_activity")
        .fetch_all(&mut *conn)
        .await?;
    for pid in pg {
        if let Some(c) = cpu_ms(pid as u32) {
            m.insert(("postgres", pid as u32), c);
        }
    }
    if let Some(c) = cpu_ms(std::process::id()) {
        m.insert(("bench", std::process::id()), c);
    }
    Ok(m)
}

/// CPU ms per side between two snapshots (processes present in both).
fn cpu_delta(
    a: &std::collections::HashMap<(&'static str, u32), f64>,
    b: &std::collections::HashMap<(&'static str, u32), f64>,
) -> std::collections::BTreeMap<&'static str, f64> {
    let mut out = std::collections::BTreeMap::new();
    for (k, v1) in b {
        let v0 = a.get(k).copied().unwrap_or(*v1);
        *out.entry(k.0).or_insert(0.0) += v1 - v0;
    }
    out
}

/// Redis's own CPU so far (ms, INFO cpu), server-wide.
fn redis_cpu_ms(url: &str) -> Option<f64> {
    let out = Command::new("redis-cli")
        .args(["-u", url, "INFO", "cpu"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let get = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k)?.trim().parse::<f64>().ok())
    };
    Some((get("used_cpu_user:")? + get("used_cpu_sys:")?) * 1000.0)
}

const TOKEN: &str = "bench-token-0123456789";
const KINDS: [&str; 5] = ["scaffold", "validation", "e2e", "integration", "deployment"];

struct Procs(Vec<(String, Child)>);
impl Drop for Procs {
    fn drop(&mut self) {
        for (_, c) in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

struct Env {
    bin: PathBuf,
    db_url: String,
    redis_url: String,
    prefix: String,
    port: u16,
    vt_ms: Option<u64>,
}

impl Env {
    fn spawn(&self, args: &[&str], extra: &[(&str, &str)]) -> anyhow::Result<Child> {
        let mut c = Command::new(&self.bin);
        c.args(args)
            .env("DATABASE_URL", &self.db_url)
            .env("REDIS_URL", &self.redis_url)
            .env("PLATFORM_REDIS_PREFIX", &self.prefix)
            .env("PORT", self.port.to_string())
            .env("PLATFORM_API_TOKEN", TOKEN)
            .env("PLATFORM_NOOP_WORK", "1")
            .env("RUST_LOG", "warn")
            .env_remove("PLATFORM_VISIBILITY_TIMEOUT_MS")
            .env_remove("PLATFORM_HEARTBEAT_INTERVAL_MS")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        if let Some(vt) = self.vt_ms {
            c.env("PLATFORM_VISIBILITY_TIMEOUT_MS", vt.to_string());
        }
        for (k, v) in extra {
            c.env(k, v);
        }
        c.spawn()
            .with_context(|| format!("starting {} {args:?}", self.bin.display()))
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let admin = args.database_url.clone();
    let redis_url = std::env::var("REDIS_URL").context("REDIS_URL")?;
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..10];
    let db = format!("bench_{suffix}");
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .context("connecting to Postgres (PLATFORM_BENCH_DATABASE_URL)")?;
    let mut durability = serde_json::Map::new();
    for name in ["fsync", "synchronous_commit", "full_page_writes"] {
        let v: String = sqlx::query_scalar(&format!("SHOW {name}"))
            .fetch_one(&mut conn)
            .await?;
        durability.insert(name.into(), Value::String(v));
    }
    eprintln!(
        "platform-bench: PostgreSQL settings {}",
        Value::Object(durability.clone())
    );
    if durability.values().any(|v| v != "on") && !args.allow_non_durable {
        bail!(
            "the PostgreSQL at PLATFORM_BENCH_DATABASE_URL runs without production durability ({}); \
             start one with scripts/pg-durable up, or pass --allow-non-durable",
            Value::Object(durability)
        );
    }
    sqlx::query(&format!("CREATE DATABASE {db}"))
        .execute(&mut conn)
        .await?;
    let db_url = format!(
        "{}/{db}",
        admin
            .rsplit_once('/')
            .context("DATABASE_URL has no database")?
            .0
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let env = Env {
        bin: std::env::current_exe()?.with_file_name("platform"),
        db_url: db_url.clone(),
        redis_url,
        prefix: format!("bench{suffix}"),
        port,
        vt_ms: args.visibility_timeout_ms,
    };
    let mut procs = Procs(Vec::new());
    procs
        .0
        .push(("orchestrator".into(), env.spawn(&["orchestrator"], &[])?));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !http
        .get(format!("{base}/health/ready"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        if Instant::now() > deadline {
            bail!("the orchestrator did not become ready");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for k in KINDS {
        for i in 0..args.agents_per_kind {
            procs.0.push((
                format!("{k}-{i}"),
                env.spawn(
                    &["agent", "--kind", k],
                    &[("PLATFORM_INSTANCE_ID", &format!("{k}-{i}"))],
                )?,
            ));
        }
    }
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&db_url)
        .await?;
    let create = |name: String| {
        let http = http.clone();
        let url = format!("{base}/api/v1/workflows");
        async move {
            let r = http
                .post(url)
                .bearer_auth(TOKEN)
                .json(&json!({"name": name, "type": "app"}))
                .send()
                .await?;
            if r.status().as_u16() != 201 {
                bail!("create answered {}", r.status());
            }
            let v: Value = r.json().await?;
            Ok::<_, anyhow::Error>(v["id"].as_str().unwrap_or_default().to_owned())
        }
    };
    let count_done = |pool: sqlx::PgPool| async move {
        count_query();
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM workflows WHERE state IN ('completed','failed','cancelled')",
        )
        .fetch_one(&pool)
        .await?;
        Ok::<_, anyhow::Error>(n)
    };
    // Warm-up: every agent connected and groups created.
    let id = create("warmup".into()).await?;
    wait_done(&pool, &id, Duration::from_secs(30)).await?;

    // ---- latency: one workflow at a time, no queueing
    let (c0, q0) = (xact_commits(&mut conn, &db).await?, bench_queries());
    for i in 0..args.latency_workflows {
        let id = create(format!("lat-{i}")).await?;
        wait_done(&pool, &id, Duration::from_secs(30)).await?;
    }
    let (c1, q1) = (xact_commits(&mut conn, &db).await?, bench_queries());
    let lat = pickup_latencies_ms(&pool, "lat-").await?;
    let commits_idle = (c1 - c0) - (q1 - q0);

    // ---- throughput
    let before = count_done(pool.clone()).await?;
    let (c2, q2) = (xact_commits(&mut conn, &db).await?, bench_queries());
    let platform_pids: Vec<u32> = procs.0.iter().map(|(_, c)| c.id()).collect();
    let cpu0 = cpu_snapshot(&mut conn, &platform_pids).await?;
    let redis0 = redis_cpu_ms(&env.redis_url);
    let started = Instant::now();
    let ids = futures_lite(args.workflows, args.concurrency, |i| {
        create(format!("tp-{i}"))
    })
    .await?;
    let created_in = started.elapsed();
    let target = before + ids.len() as i64;
    let deadline = Instant::now() + Duration::from_secs(600);
    while count_done(pool.clone()).await? < target {
        if Instant::now() > deadline {
            bail!("throughput phase did not finish in 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    let cpu1 = cpu_snapshot(&mut conn, &platform_pids).await?;
    let redis1 = redis_cpu_ms(&env.redis_url);
    let mut cpu = cpu_delta(&cpu0, &cpu1);
    if let (Some(r0), Some(r1)) = (redis0, redis1) {
        cpu.insert("redis (server-wide)", r1 - r0);
    }
    let n_tp = ids.len().max(1) as f64;
    let cpu_per_wf: serde_json::Map<String, Value> = cpu
        .iter()
        .map(|(k, v)| (k.to_string(), json!((v / n_tp * 1000.0).round() / 1000.0)))
        .collect();
    let cpu_total: f64 = cpu.values().sum::<f64>() / n_tp;
    let (c3, q3) = (xact_commits(&mut conn, &db).await?, bench_queries());
    let commits_load = (c3 - c2) - (q3 - q2);
    let failed: i64 =
        sqlx::query_scalar("SELECT count(*) FROM workflows WHERE state <> 'completed'")
            .fetch_one(&pool)
            .await?;
    let tp_lat = pickup_latencies_ms(&pool, "tp-").await?;

    // ---- dead-agent recovery: a stuck e2e agent holds a task and is SIGKILLed
    for (name, c) in &mut procs.0 {
        if name.starts_with("e2e-") {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let _ = c.wait();
        }
    }
    procs.0.retain(|(n, _)| !n.starts_with("e2e-"));
    let victim = env.spawn(
        &["agent", "--kind", "e2e"],
        &[
            ("PLATFORM_INSTANCE_ID", "e2e-victim"),
            ("PLATFORM_NOOP_DELAY_MS", "600000"),
        ],
    )?;
    procs.0.push(("victim".into(), victim));
    let id = create("recovery".into()).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v: Value = http
            .get(format!("{base}/api/v1/agents"))
            .bearer_auth(TOKEN)
            .send()
            .await?
            .json()
            .await?;
        if v["agents"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|a| a["id"] == "e2e-victim" && a["in_flight_task"].is_string())
        {
            break;
        }
        if Instant::now() > deadline {
            bail!("the victim agent never took the task");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    procs.0.push((
        "rescuer".into(),
        env.spawn(
            &["agent", "--kind", "e2e"],
            &[("PLATFORM_INSTANCE_ID", "e2e-rescuer")],
        )?,
    ));
    tokio::time::sleep(Duration::from_millis(500)).await; // let the rescuer connect first
    let (_, victim) = procs
        .0
        .iter_mut()
        .find(|(n, _)| n == "victim")
        .context("victim")?;
    victim.kill()?;
    let killed = Instant::now();
    wait_done(&pool, &id, Duration::from_secs(120)).await?;
    let recovery = killed.elapsed();

    let per = |c: i64, n: usize| {
        if n == 0 {
            f64::NAN
        } else {
            (c as f64 / n as f64 * 100.0).round() / 100.0
        }
    };
    let report = json!({
        "postgres": durability,
        "commits_per_workflow": {
            "one_at_a_time": per(commits_idle, args.latency_workflows),
            "under_load": per(commits_load, ids.len()),
            "how": "pg_stat_database.xact_commit delta of the benchmark database over the phase, minus the benchmark's own polling queries, divided by the phase's workflows",
        },
        "cpu_ms_per_workflow_under_load": {
            "by_side": cpu_per_wf,
            "total": (cpu_total * 1000.0).round() / 1000.0,
            "two_core_bound_workflows_per_s": (2000.0 / cpu_total).round(),
            "how": "utime+stime from /proc over the throughput phase: the orchestrator and agents, PostgreSQL's processes, this client; Redis from INFO cpu (the whole server, other users included)",
        },
        "workflows": ids.len(),
        "agents_per_kind": args.agents_per_kind,
        "concurrency": args.concurrency,
        "throughput_workflows_per_s": (ids.len() as f64 / elapsed.as_secs_f64() * 10.0).round() / 10.0,
        "throughput_elapsed_s": elapsed.as_secs_f64(),
        "api_create_phase_s": created_in.as_secs_f64(),
        "not_completed": failed,
        "pickup_ms_idle": {"samples": lat.len(), "p50": percentile(&lat, 0.5), "p99": percentile(&lat, 0.99), "max": lat.last()},
        "pickup_ms_under_load": {"samples": tp_lat.len(), "p50": percentile(&tp_lat, 0.5), "p99": percentile(&tp_lat, 0.99)},
        "visibility_timeout_ms": args.visibility_timeout_ms.map_or_else(|| json!("shipped default"), |v| json!(v)),
        "dead_agent_recovery_s": recovery.as_secs_f64(),
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    drop(procs);
    Ok(())
}

/// Pickup latencies (ms, sorted) of the tasks of the workflows named `prefix…`.
async fn pickup_latencies_ms(pool: &sqlx::PgPool, prefix: &str) -> anyhow::Result<Vec<f64>> {
    let mut lat: Vec<f64> = sqlx::query_scalar(
        "SELECT EXTRACT(EPOCH FROM (picked_up_at - created_at))::float8 * 1000 FROM tasks
         WHERE workflow_id IN (SELECT id FROM workflows WHERE name LIKE $1 || '%') AND picked_up_at IS NOT NULL",
    )
    .bind(prefix)
    .fetch_all(pool)
    .await?;
    lat.sort_by(|a, b| a.total_cmp(b));
    Ok(lat)
}

async fn wait_done(pool: &sqlx::PgPool, id: &str, timeout: Duration) -> anyhow::Result<()> {
    let id = uuid::Uuid::parse_str(id)?;
    let deadline = Instant::now() + timeout;
    loop {
        count_query();
        let s: String = sqlx::query_scalar("SELECT state FROM workflows WHERE id = $1")
            .bind(id)
            .fetch_one(pool)
            .await?;
        match s.as_str() {
            "completed" => return Ok(()),
            "failed" | "cancelled" => bail!("workflow {id} ended {s}"),
            _ if Instant::now() > deadline => bail!("workflow {id} still {s} after {timeout:?}"),
            _ => tokio::time::sleep(Duration::from_millis(1)).await,
        }
    }
}

/// Runs `n` futures made by `f`, at most `limit` at a time.
async fn futures_lite<F, Fut>(n: usize, limit: usize, f: F) -> anyhow::Result<Vec<String>>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<String>> + Send + 'static,
{
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(limit.max(1)));
    let mut handles = Vec::with_capacity(n);
    for i in 0..n {
        let permit = sem.clone().acquire_owned().await?;
        let fut = f(i);
        handles.push(tokio::spawn(async move {
            let r = fut.await;
            drop(permit);
            r
        }));
    }
    let mut out = Vec::with_capacity(n);
    for h in handles {
        out.push(h.await??);
    }
    Ok(out)
}
