//! Smoke targets: real `platform orchestrator` processes, each on its own database, Redis prefix
//! and port, reporting the `GIT_SHA` they were started with. There is no stand-in: when the
//! orchestrator cannot start, the test fails and the message says what is missing and what to do.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use test_support::ChildGuard;

use super::TOKEN;

/// How long a started orchestrator may take to answer its health endpoint.
pub const READY_WITHIN: Duration = Duration::from_secs(10);

/// A running `platform orchestrator` (killed when dropped).
pub struct Target {
    pub url: String,
    guard: ChildGuard,
    /// Its stderr, kept for the failure message of a test that uses it.
    log: tempfile::NamedTempFile,
}

impl Target {
    /// The last lines the orchestrator wrote to stderr.
    pub fn stderr_tail(&self) -> String {
        tail(self.log.path())
    }
}

/// Where `cargo build -p platform --bins` puts the platform binary for this test build
/// (target/<profile>/platform, next to target/<profile>/deps/<this test>).
pub fn platform_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("current test executable");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("target profile directory")
        .join("platform")
}

/// A smoke target reporting `git_sha` (`fault = Some("unhealthy")`: it answers 503). Panics, naming
/// the missing piece and the fix, when the orchestrator cannot start.
pub async fn spawn_target(git_sha: &str, fault: Option<&str>) -> Target {
    spawn_target_from(&platform_bin(), git_sha, fault).await
}

/// `spawn_target` with the platform binary at `bin`.
pub async fn spawn_target_from(bin: &Path, git_sha: &str, fault: Option<&str>) -> Target {
    match try_spawn_target(bin, git_sha, fault, READY_WITHIN).await {
        Ok(t) => t,
        Err(e) => panic!("the smoke target cannot start: {e:#}"),
    }
}

/// Starts `bin orchestrator` (after `bin migrate`) on a fresh database and Redis prefix, and
/// waits up to `ready_within` for it to answer.
pub async fn try_spawn_target(
    bin: &Path,
    git_sha: &str,
    fault: Option<&str>,
    ready_within: Duration,
) -> Result<Target> {
    if !bin.is_file() {
        bail!(
            "the platform binary {} does not exist: build it with `cargo build -p platform --bins`",
            bin.display()
        );
    }
    let db = test_support::fresh_database()
        .await
        .context("the platform orchestrator needs Postgres")?;
    let redis = test_support::redis()
        .await
        .context("the platform orchestrator needs Redis")?;
    let migrate = Command::new(bin)
        .arg("migrate")
        .env("DATABASE_URL", &db.url)
        .env("REDIS_URL", &redis.url)
        .stdin(Stdio::null())
        .output()
        .with_context(|| {
            format!(
                "cannot run {} (rebuild it with `cargo build -p platform --bins`)",
                bin.display()
            )
        })?;
    if !migrate.status.success() {
        bail!(
            "`{} migrate` failed ({}); its stderr ends:\n{}",
            bin.display(),
            migrate.status,
            last_lines(&String::from_utf8_lossy(&migrate.stderr))
        );
    }
    let log = tempfile::NamedTempFile::new().context("a file for the orchestrator's stderr")?;
    let port = test_support::free_port();
    let mut cmd = Command::new(bin);
    cmd.arg("orchestrator")
        .env("DATABASE_URL", &db.url)
        .env("REDIS_URL", &redis.url)
        .env("PLATFORM_REDIS_PREFIX", &redis.prefix)
        .env("PORT", port.to_string())
        .env("PLATFORM_API_TOKEN", TOKEN)
        .env("GIT_SHA", git_sha)
        .env("LOG_FORMAT", "text")
        .stdout(Stdio::null())
        .stderr(log.reopen().context("the orchestrator's stderr file")?);
    if let Some(f) = fault {
        cmd.env("PLATFORM_FAULT", f);
    }
    let mut guard = ChildGuard::spawn("platform orchestrator", &mut cmd)
        .with_context(|| format!("cannot start `{} orchestrator`", bin.display()))?;
    let url = format!("http://127.0.0.1:{port}");
    // Any HTTP answer counts as up: a target started with PLATFORM_FAULT=unhealthy answers 503.
    let probe = format!("{url}/api/v1/health");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()?;
    let deadline = tokio::time::Instant::now() + ready_within;
    loop {
        if let Some(status) = guard.child.try_wait()? {
            bail!(
                "`{} orchestrator` exited ({status}) before answering on {probe}; its stderr ends:\n{}",
                bin.display(),
                tail(log.path())
            );
        }
        if client.get(&probe).send().await.is_ok() {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "`{} orchestrator` did not answer on {probe} within {ready_within:?}; its stderr ends:\n{}",
                bin.display(),
                tail(log.path())
            );
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    eprintln!("smoke target: platform orchestrator at {url} (GIT_SHA={git_sha}, fault={fault:?})");
    Ok(Target { url, guard, log })
}

fn tail(path: &Path) -> String {
    last_lines(&std::fs::read_to_string(path).unwrap_or_default())
}

fn last_lines(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(20)..].join("\n");
    if tail.is_empty() {
        "(nothing)".into()
    } else {
        tail
    }
}
