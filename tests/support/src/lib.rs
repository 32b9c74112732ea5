//! Helpers every integration test uses, so each test gets real services and its own slice of them:
//! a fresh Postgres database, a unique Redis key prefix, its own moto account, and a way to spawn
//! our binaries and wait for them.
//!
//! The services come from `scripts/env up`. Nothing is skipped silently: when a service is not
//! reachable the helper fails with a message naming that script.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// Defaults match `scripts/env`; the environment overrides them.
pub const DEFAULT_DATABASE_URL: &str = "postgres://agentic:agentic@127.0.0.1:55432/agentic_sdlc";
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:56379";
pub const DEFAULT_AWS_ENDPOINT_URL: &str = "http://127.0.0.1:55000";
pub const DEFAULT_LOCAL_REGISTRY: &str = "127.0.0.1:55050";

const START_HINT: &str = "start the local services with `scripts/env up`";

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// The repository root (for templates, config files and scripts).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

/// A short unique suffix for names of databases, streams, clusters, repositories.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// Copies the directory `from` to `to` (created if missing), following symlinks, so a test can
/// change its copy. The one copy for the test crates; `platform-agents` keeps its own, since a
/// product crate must not depend on this test crate and the tests should not depend on the
/// agents for a dozen lines of `std::fs` (clearer than fs_extra's content_only/copy_inside/
/// overwrite flags, and no new dependency).
pub fn copy_tree(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for e in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let e = e?;
        let target = to.join(e.file_name());
        // `Path::is_dir` follows symlinks (terraform's production/outputs.tf links to staging's).
        if e.path().is_dir() {
            copy_tree(&e.path(), &target)?;
        } else {
            std::fs::copy(e.path(), &target).with_context(|| {
                format!("copying {} to {}", e.path().display(), target.display())
            })?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- Postgres

/// A database created for one test. Dropping it leaves the database behind (cheap, and useful
/// when a test fails); `scripts/env down && rm -rf .local/pg` clears them all.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub async fn pool(&self) -> anyhow::Result<sqlx::PgPool> {
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(10)
            .acquire_timeout(Duration::from_secs(10))
            .connect(&self.url)
            .await
            .with_context(|| format!("connecting to test database {}", self.name))
    }
}

/// `url` with the password of its user info replaced, for messages (a CI log is not the place
/// for a database password, even a test one).
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            let masked = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                user.to_owned()
            };
            format!("{scheme}://{masked}@{host}{}", &rest[authority_end..])
        }
        None => url.to_owned(),
    }
}

/// Creates a fresh, empty database on the local Postgres.
pub async fn fresh_database() -> anyhow::Result<TestDb> {
    use sqlx::Connection;
    let admin_url = env_or("DATABASE_URL", DEFAULT_DATABASE_URL);
    let mut admin = sqlx::PgConnection::connect(&admin_url)
        .await
        .with_context(|| {
            format!(
                "Postgres is not reachable at {}: {START_HINT}",
                redact_url(&admin_url)
            )
        })?;
    let name = unique("test_");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .context("creating test database")?;
    let url = match admin_url.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{name}"),
        None => bail!(
            "DATABASE_URL has no database name: {}",
            redact_url(&admin_url)
        ),
    };
    Ok(TestDb { name, url })
}

// ---------------------------------------------------------------- Redis

/// The local Redis and a key prefix no other test uses.
pub struct TestRedis {
    pub url: String,
    pub prefix: String,
}

impl TestRedis {
    pub async fn connection(&self) -> anyhow::Result<redis::aio::MultiplexedConnection> {
        let client = redis::Client::open(self.url.as_str())?;
        client
            .get_multiplexed_async_connection()
            .await
            .with_context(|| {
                format!(
                    "Redis is not reachable at {}: {START_HINT}",
                    redact_url(&self.url)
                )
            })
    }
}

pub async fn redis() -> anyhow::Result<TestRedis> {
    let t = TestRedis {
        url: env_or("REDIS_URL", DEFAULT_REDIS_URL),
        prefix: unique("t"),
    };
    let mut c = t.connection().await?;
    let _: String = redis::cmd("PING").query_async(&mut c).await?;
    Ok(t)
}

// ---------------------------------------------------------------- moto (AWS)

/// The local moto endpoint and an AWS account of this test's own: our moto server takes a
/// 12-digit access key id as the account id (see `tests/moto/server.py`).
pub struct TestAws {
    pub endpoint: String,
    pub account_id: String,
    pub region: String,
    pub config: aws_config::SdkConfig,
}

impl TestAws {
    /// Environment variables that point a child process (the `deployer` CLI) at this account.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", self.account_id.clone()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_REGION", self.region.clone()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ]
    }
}

pub fn random_account_id() -> String {
    let n = uuid::Uuid::new_v4().as_u128() % 900_000_000_000 + 100_000_000_000;
    n.to_string()
}

/// An SDK config for a fresh moto account. Retries are off so error paths fail fast.
pub async fn aws() -> anyhow::Result<TestAws> {
    let endpoint = env_or("AWS_ENDPOINT_URL", DEFAULT_AWS_ENDPOINT_URL);
    wait_http_ok(
        // Not data.json: it holds every account's state and grows to megabytes.
        &format!("{endpoint}/moto-api/"),
        Duration::from_secs(5),
    )
    .await
    .with_context(|| format!("moto is not reachable at {endpoint}: {START_HINT}"))?;
    let account_id = random_account_id();
    let region = "us-east-1".to_owned();
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(&endpoint)
        .region(aws_config::Region::new(region.clone()))
        .credentials_provider(aws_credential(&account_id))
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await;
    Ok(TestAws {
        endpoint,
        account_id,
        region,
        config,
    })
}

fn aws_credential(account_id: &str) -> aws_credential_types::provider::SharedCredentialsProvider {
    aws_credential_types::provider::SharedCredentialsProvider::new(
        aws_credential_types::Credentials::new(account_id, "testing", None, None, "test-support"),
    )
}

// ---------------------------------------------------------------- OCI registry

/// `host:port` of the local OCI registry.
pub async fn registry() -> anyhow::Result<String> {
    let host = env_or("LOCAL_REGISTRY", DEFAULT_LOCAL_REGISTRY);
    wait_http_ok(&format!("http://{host}/v2/"), Duration::from_secs(5))
        .await
        .with_context(|| format!("the OCI registry is not reachable at {host}: {START_HINT}"))?;
    Ok(host)
}

// ---------------------------------------------------------------- processes

/// A free TCP port on loopback (bind to 0, read it back, release it).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on loopback")
}

/// Path of a binary of this workspace, built by `cargo build`/`cargo nextest run --workspace`.
pub fn bin_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current test executable");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let profile_dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target profile directory");
    let path = profile_dir.join(name);
    assert!(
        path.exists(),
        "binary {} not built; run `cargo build --workspace` (the test command does)",
        path.display()
    );
    path
}

/// A child process killed (SIGKILL) and reaped when dropped.
pub struct ChildGuard {
    pub child: Child,
    pub name: String,
}

impl ChildGuard {
    pub fn spawn(name: &str, cmd: &mut Command) -> anyhow::Result<Self> {
        let child = cmd
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("spawning {name}"))?;
        Ok(Self {
            child,
            name: name.to_owned(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL now, as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait up to `grace` for exit.
    pub fn terminate(&mut self, grace: Duration) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `url` until it answers 2xx or `timeout` passes.
pub async fn wait_http_ok(url: &str, timeout: Duration) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()?;
    let deadline = Instant::now() + timeout;
    loop {
        match client.get(url).send().await {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) if Instant::now() >= deadline => bail!("{url} answered {}", r.status()),
            Err(e) if Instant::now() >= deadline => bail!("{url} not reachable: {e}"),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Polls an async condition until it yields `Some` or the deadline passes.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    let mut last_err = None;
    loop {
        match f().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last_err = Some(e),
        }
        if Instant::now() >= deadline {
            match last_err {
                Some(e) => {
                    bail!("timed out after {timeout:?} waiting for {what}; last error: {e:#}")
                }
                None => bail!("timed out after {timeout:?} waiting for {what}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[cfg(test)]
mod redact_tests {
    use super::redact_url;

    #[test]
    fn passwords_are_masked_and_the_rest_kept() {
        assert_eq!(
            redact_url("postgres://agentic:s3cret@127.0.0.1:55432/db"),
            "postgres://agentic:***@127.0.0.1:55432/db"
        );
        assert_eq!(
            redact_url("redis://:tok@127.0.0.1:6379"),
            "redis://:***@127.0.0.1:6379"
        );
        assert_eq!(
            redact_url("redis://127.0.0.1:6379/0"),
            "redis://127.0.0.1:6379/0"
        );
        assert_eq!(redact_url("not a url"), "not a url");
    }
}
