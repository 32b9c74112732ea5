//! The per-environment deploy lock: one DynamoDB item written with a conditional PutItem, so two
//! releases to the same environment can never run at once. The holder refreshes `expires_at`
//! (heartbeat); a holder that died stops refreshing and the lock lapses after the TTL.

use std::time::Duration;

use anyhow::{Context, Result};
use aws_sdk_dynamodb::Client as Ddb;

use crate::aws::dynamo::{ensure_table, get_n, get_s, n, s};
use chrono::{DateTime, TimeZone, Utc};

/// Who holds a lock, as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LockInfo {
    pub env: String,
    pub lock_id: String,
    pub owner: String,
    pub git_sha: String,
    pub release_id: String,
    pub ci_url: String,
    pub acquired_at: i64,
    pub expires_at: i64,
}

impl LockInfo {
    pub fn expired(&self, now: i64) -> bool {
        self.expires_at < now
    }

    pub fn describe(&self) -> String {
        let when = |t: i64| {
            Utc.timestamp_opt(t, 0)
                .single()
                .map(|d: DateTime<Utc>| d.to_rfc3339())
                .unwrap_or_else(|| t.to_string())
        };
        let ci = if self.ci_url.is_empty() {
            String::new()
        } else {
            format!(", CI run {}", self.ci_url)
        };
        format!(
            "held by {} for release {} (git sha {}) since {}, expires {}{}",
            self.owner,
            self.release_id,
            self.git_sha,
            when(self.acquired_at),
            when(self.expires_at),
            ci
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "the deploy lock for environment '{env}' is {}; wait for that release to finish, pass --wait-lock <duration>, \
         or if it is stale run `deployer lock release --env {env} --force`",
        .holder.describe()
    )]
    Held { env: String, holder: Box<LockInfo> },
    #[error("the deploy lock for '{env}' was taken over by someone else ({})", .holder.describe())]
    Lost { env: String, holder: Box<LockInfo> },
    #[error(transparent)]
    Aws(#[from] anyhow::Error),
}

pub fn now_epoch() -> i64 {
    Utc::now().timestamp()
}

/// Handle on one environment's lock in one table.
#[derive(Clone)]
pub struct DeployLock {
    ddb: Ddb,
    table: String,
    env: String,
    pub ttl: Duration,
}

/// What the new holder writes.
#[derive(Debug, Clone)]
pub struct LockRequest {
    pub owner: String,
    pub git_sha: String,
    pub release_id: String,
    pub ci_url: String,
}

impl DeployLock {
    pub fn new(ddb: Ddb, table: &str, env: &str, ttl: Duration) -> Self {
        Self {
            ddb,
            table: table.to_owned(),
            env: env.to_owned(),
            ttl,
        }
    }

    fn key(&self) -> String {
        format!("lock#{}", self.env)
    }

    pub async fn ensure_table(&self) -> Result<()> {
        ensure_table(&self.ddb, &self.table, "pk", None).await
    }

    /// Takes the lock if it is free or expired. `take_over_release` lets `--resume` take a lock
    /// whose holder was working on the same release (a CI job that died).
    pub async fn acquire(
        &self,
        req: &LockRequest,
        take_over_release: Option<&str>,
    ) -> std::result::Result<LockInfo, LockError> {
        self.ensure_table().await?;
        let now = now_epoch();
        let info = LockInfo {
            env: self.env.clone(),
            lock_id: format!("{}-{}", req.release_id, std::process::id()),
            owner: req.owner.clone(),
            git_sha: req.git_sha.clone(),
            release_id: req.release_id.clone(),
            ci_url: req.ci_url.clone(),
            acquired_at: now,
            expires_at: now + self.ttl.as_secs().max(1) as i64,
        };
        let mut cond = "attribute_not_exists(pk) OR expires_at < :now".to_owned();
        let mut put = self
            .ddb
            .put_item()
            .table_name(&self.table)
            .item("pk", s(self.key()))
            .item("lock_id", s(&info.lock_id))
            .item("owner", s(&info.owner))
            .item("git_sha", s(&info.git_sha))
            .item("release_id", s(&info.release_id))
            .item("ci_url", s(&info.ci_url))
            .item("acquired_at", n(info.acquired_at))
            .item("expires_at", n(info.expires_at))
            .expression_attribute_values(":now", n(now));
        if let Some(rel) = take_over_release {
            cond.push_str(" OR release_id = :rel");
            put = put.expression_attribute_values(":rel", s(rel));
        }
        match put.condition_expression(cond).send().await {
            Ok(_) => Ok(info),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                let holder = self.status().await?.unwrap_or(LockInfo {
                    env: self.env.clone(),
                    lock_id: String::new(),
                    owner: "unknown".into(),
                    git_sha: String::new(),
                    release_id: String::new(),
                    ci_url: String::new(),
                    acquired_at: 0,
                    expires_at: 0,
                });
                Err(LockError::Held {
                    env: self.env.clone(),
                    holder: Box::new(holder),
                })
            }
            Err(e) => Err(LockError::Aws(
                anyhow::Error::new(e).context(format!("PutItem on lock table {}", self.table)),
            )),
        }
    }

    /// Like `acquire`, retrying until `wait` passes while another release holds it.
    pub async fn acquire_waiting(
        &self,
        req: &LockRequest,
        take_over_release: Option<&str>,
        wait: Duration,
    ) -> std::result::Result<LockInfo, LockError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match self.acquire(req, take_over_release).await {
                Err(LockError::Held { .. }) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                other => return other,
            }
        }
    }

    /// Extends the lock; fails if someone else holds it now.
    pub async fn heartbeat(&self, held: &LockInfo) -> std::result::Result<i64, LockError> {
        let expires = now_epoch() + self.ttl.as_secs().max(1) as i64;
        let res = self
            .ddb
            .update_item()
            .table_name(&self.table)
            .key("pk", s(self.key()))
            .update_expression("SET expires_at = :e")
            .condition_expression("lock_id = :id")
            .expression_attribute_values(":e", n(expires))
            .expression_attribute_values(":id", s(&held.lock_id))
            .send()
            .await;
        match res {
            Ok(_) => Ok(expires),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                let holder = self.status().await?.unwrap_or(held.clone());
                Err(LockError::Lost {
                    env: self.env.clone(),
                    holder: Box::new(holder),
                })
            }
            Err(e) => Err(LockError::Aws(
                anyhow::Error::new(e).context("UpdateItem (lock heartbeat)"),
            )),
        }
    }

    /// Releases the lock if this holder still has it (no-op otherwise).
    pub async fn release(&self, held: &LockInfo) -> Result<bool> {
        let res = self
            .ddb
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(self.key()))
            .condition_expression("lock_id = :id")
            .expression_attribute_values(":id", s(&held.lock_id))
            .send()
            .await;
        match res {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(anyhow::Error::new(e).context("DeleteItem (lock release)")),
        }
    }

    /// Removes whatever lock there is (`deployer lock release --force`); returns who held it.
    pub async fn force_release(&self) -> Result<Option<LockInfo>> {
        self.ensure_table().await?;
        let holder = self.status().await?;
        self.ddb
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(self.key()))
            .send()
            .await
            .context("DeleteItem (forced lock release)")?;
        Ok(holder)
    }

    pub async fn status(&self) -> Result<Option<LockInfo>> {
        let out = match self
            .ddb
            .get_item()
            .table_name(&self.table)
            .key("pk", s(self.key()))
            .consistent_read(true)
            .send()
            .await
        {
            Ok(o) => o,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(anyhow::Error::new(e).context("GetItem (lock status)")),
        };
        Ok(out.item().map(|item| LockInfo {
            env: self.env.clone(),
            lock_id: get_s(item, "lock_id"),
            owner: get_s(item, "owner"),
            git_sha: get_s(item, "git_sha"),
            release_id: get_s(item, "release_id"),
            ci_url: get_s(item, "ci_url"),
            acquired_at: get_n(item, "acquired_at"),
            expires_at: get_n(item, "expires_at"),
        }))
    }
}

/// Keeps a held lock alive in the background until dropped or stopped.
pub struct Heartbeat {
    handle: tokio::task::JoinHandle<()>,
}

impl Heartbeat {
    pub fn start(lock: DeployLock, held: LockInfo) -> Self {
        let every = (lock.ttl / 3).max(Duration::from_millis(500));
        let handle = tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                if let Err(e) = lock.heartbeat(&held).await {
                    tracing::warn!(error = %e, "deploy lock heartbeat failed");
                    if matches!(e, LockError::Lost { .. }) {
                        return;
                    }
                }
            }
        });
        Self { handle }
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

/// Who runs this release: the CI actor or the local user, and the CI run URL when in Actions.
pub fn actor_and_ci_url() -> (String, String) {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let actor = env("GITHUB_ACTOR")
        .map(|a| format!("{a} (GitHub Actions)"))
        .or_else(|| env("USER").map(|u| format!("{u}@{}", hostname())))
        .unwrap_or_else(|| format!("pid {}@{}", std::process::id(), hostname()));
    let ci = match (
        env("GITHUB_SERVER_URL"),
        env("GITHUB_REPOSITORY"),
        env("GITHUB_RUN_ID"),
    ) {
        (Some(s), Some(r), Some(id)) => format!("{s}/{r}/actions/runs/{id}"),
        _ => String::new(),
    };
    (actor, ci)
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}
