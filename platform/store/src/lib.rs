//! Postgres persistence for workflows, tasks, events and artifacts.
//!
//! Every state change of a workflow is written together with its event row and, when it starts
//! a stage, the task row and the outbox row carrying the envelope — all in one transaction.
//! Queries are checked at run time (no database needed to compile).

use std::time::Duration;

use chrono::{DateTime, Utc};
use platform_core::{
    ENVELOPE_SCHEMA_VERSION, Stage, TaskEnvelope, TaskOutcome, TaskResult, TransitionError,
    WorkflowState, WorkflowType,
};
use serde::Serialize;
use serde_json::{Value, json};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{FromRow, Postgres, Transaction};
use uuid::Uuid;

mod operator;
pub use operator::{Redrive, Retry};

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("workflow {0} not found")]
    NotFound(Uuid),
    #[error("workflow {id} is already {state}; only a running workflow can be cancelled")]
    Conflict { id: Uuid, state: WorkflowState },
    #[error(transparent)]
    Transition(#[from] TransitionError),
    #[error("artifact of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// The database failed a group commit this request was part of.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A workflow as listed.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct WorkflowRow {
    pub id: Uuid,
    pub name: String,
    #[sqlx(rename = "type")]
    #[serde(rename = "type")]
    pub kind: String,
    pub description: String,
    pub template: String,
    pub params: Value,
    pub state: String,
    pub current_stage: Option<String>,
    pub context: Value,
    pub failure_reason: Option<String>,
    pub correlation_id: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl WorkflowRow {
    pub fn state(&self) -> Result<WorkflowState> {
        self.state
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("workflow {}: {e}", self.id)))
    }
}

#[derive(Debug, Clone, Serialize, FromRow)]
pub struct TaskRow {
    pub id: Uuid,
    pub workflow_id: Uuid,
    pub stage: String,
    pub status: String,
    pub attempts: i32,
    pub result: Option<Value>,
    pub error: Option<String>,
    pub agent_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub dispatched_at: DateTime<Utc>,
    pub picked_up_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, FromRow)]
pub struct EventRow {
    pub id: i64,
    pub workflow_id: Uuid,
    pub kind: String,
    pub from_state: Option<String>,
    pub to_state: Option<String>,
    pub data: Value,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize)]
pub struct WorkflowDetail {
    #[serde(flatten)]
    pub workflow: WorkflowRow,
    pub tasks: Vec<TaskRow>,
    pub events: Vec<EventRow>,
}

/// Input of [`Store::create_workflow`], already validated by the caller.
#[derive(Debug, Clone)]
pub struct NewWorkflow {
    pub name: String,
    pub kind: WorkflowType,
    pub description: String,
    pub template: String,
    pub params: Value,
    pub correlation_id: String,
}

#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub state: Option<WorkflowState>,
    pub kind: Option<WorkflowType>,
    pub limit: i64,
    /// The id of the last workflow of the previous page (ids are time-ordered UUIDv7).
    pub before: Option<Uuid>,
}

/// What applying a result did.
#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    /// The workflow moved to `to`; the next stage's task (if any) is in the outbox.
    Advanced {
        to: WorkflowState,
        queued: Option<Queued>,
    },
    /// Nothing changed: a duplicate, a late result for a finished or cancelled workflow.
    Ignored { why: String },
}

/// An envelope committed to the outbox, for the caller to publish at once (fast path); the
/// relay publishes it later if the caller could not.
#[derive(Debug, Clone, PartialEq)]
pub struct Queued {
    pub outbox_id: i64,
    pub envelope: TaskEnvelope,
}

impl StoreError {
    /// An error of the database itself (a statement it refused), as opposed to the connection
    /// or the pool: worth retrying the members of a failed batch one by one.
    pub fn is_statement_error(&self) -> bool {
        !matches!(
            self,
            StoreError::Db(
                sqlx::Error::Io(_)
                    | sqlx::Error::PoolTimedOut
                    | sqlx::Error::PoolClosed
                    | sqlx::Error::Tls(_)
                    | sqlx::Error::Protocol(_)
                    | sqlx::Error::WorkerCrashed
            ) | StoreError::Unavailable(_)
        )
    }
}

/// A row of the outbox.
#[derive(Debug, Clone, FromRow)]
pub struct OutboxRow {
    pub id: i64,
    pub stage: String,
    pub envelope: Value,
}

#[derive(Debug, Clone, FromRow)]
pub struct Artifact {
    pub id: Uuid,
    pub workflow_id: Uuid,
    pub name: String,
    pub content_type: String,
    pub size_bytes: i64,
    pub sha256: String,
    pub data: Vec<u8>,
}

#[derive(Clone)]
pub struct Store {
    pool: PgPool,
}

const WF_COLUMNS: &str = "id, name, type, description, template, params, state, current_stage, \
    context, failure_reason, correlation_id, created_at, updated_at";

impl Store {
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await?;
        Ok(Self { pool })
    }

    pub fn from_pool(pool: PgPool) -> Self {
        Self { pool }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        MIGRATOR.run(&self.pool).await
    }

    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Creates a workflow and starts its first stage: `initiated` → `scaffolding`, with the
    /// scaffold task in the outbox — one transaction.
    pub async fn create_workflow(&self, new: NewWorkflow) -> Result<(WorkflowRow, Option<Queued>)> {
        let mut tx = self.pool.begin().await?;
        let created = create_in(&mut tx, &new).await?;
        tx.commit().await?;
        Ok(created)
    }

    /// Group commit of [`Store::create_workflow`]: every workflow of `news` is created in one
    /// transaction (all or none), which also deletes the outbox rows `published` (already on
    /// Redis). The caller answers each request only after this returns.
    pub async fn create_workflows(
        &self,
        news: &[NewWorkflow],
        published: &[i64],
    ) -> Result<Vec<(WorkflowRow, Option<Queued>)>> {
        let mut tx = self.pool.begin().await?;
        let mut out = Vec::with_capacity(news.len());
        for new in news {
            out.push(create_in(&mut tx, new).await?);
        }
        delete_outbox_in(&mut tx, published).await?;
        tx.commit().await?;
        Ok(out)
    }

    /// Applies an agent's result exactly once. Duplicates, results for tasks that are no longer
    /// current and results for finished workflows change nothing.
    pub async fn apply_result(&self, r: &TaskResult) -> Result<Applied> {
        let mut tx = self.pool.begin().await?;
        let applied = apply_in(&mut tx, r).await?;
        tx.commit().await?;
        Ok(applied)
    }

    /// Applies a batch of results in one transaction (one commit for the whole batch), with
    /// exactly the effect of applying them one by one in stream order, and deletes the outbox
    /// rows `published`. All or nothing: on an error nothing is applied (the caller then applies
    /// them one at a time). Workflow rows are locked in id order, so concurrent batches (several
    /// orchestrators) cannot deadlock; results of one workflow keep their order.
    pub async fn apply_results(
        &self,
        results: &[TaskResult],
        published: &[i64],
    ) -> Result<Vec<Applied>> {
        let mut order: Vec<usize> = (0..results.len()).collect();
        order.sort_by_key(|&i| results[i].workflow_id);
        let mut tx = self.pool.begin().await?;
        let mut out: Vec<Option<Applied>> = vec![None; results.len()];
        for i in order {
            out[i] = Some(apply_in(&mut tx, &results[i]).await?);
        }
        // Outbox rows last, after the workflow rows: the order `cancel` locks them in.
        delete_outbox_in(&mut tx, published).await?;
        tx.commit().await?;
        Ok(out
            .into_iter()
            .map(|a| a.expect("every result applied"))
            .collect())
    }

    /// Cancels a running workflow; its open task is marked cancelled so a late result is ignored.
    pub async fn cancel(&self, id: Uuid, reason: &str) -> Result<WorkflowRow> {
        let mut tx = self.pool.begin().await?;
        let wf = fetch_for_update_opt(&mut tx, id)
            .await?
            .ok_or(StoreError::NotFound(id))?;
        let state = wf.state()?;
        if state.is_terminal() {
            return Err(StoreError::Conflict { id, state });
        }
        sqlx::query("UPDATE tasks SET status = 'cancelled', completed_at = now() WHERE workflow_id = $1 AND status = 'dispatched'")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        // Drop a not yet published dispatch too.
        sqlx::query("DELETE FROM outbox WHERE envelope->>'workflow_id' = $1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        let (wf, _) = advance(
            &mut tx,
            wf,
            WorkflowState::Cancelled,
            json!({"reason": reason}),
        )
        .await?;
        tx.commit().await?;
        Ok(wf)
    }

    pub async fn get_workflow(&self, id: Uuid) -> Result<Option<WorkflowDetail>> {
        let wf: Option<WorkflowRow> =
            sqlx::query_as(&format!("SELECT {WF_COLUMNS} FROM workflows WHERE id = $1"))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        let Some(workflow) = wf else { return Ok(None) };
        let tasks =
            sqlx::query_as("SELECT * FROM tasks WHERE workflow_id = $1 ORDER BY created_at, id")
                .bind(id)
                .fetch_all(&self.pool)
                .await?;
        let events = sqlx::query_as("SELECT * FROM events WHERE workflow_id = $1 ORDER BY id")
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
        Ok(Some(WorkflowDetail {
            workflow,
            tasks,
            events,
        }))
    }

    pub async fn list_workflows(&self, f: &ListFilter) -> Result<Vec<WorkflowRow>> {
        let rows = sqlx::query_as(&format!(
            "SELECT {WF_COLUMNS} FROM workflows
             WHERE ($1::text IS NULL OR state = $1) AND ($2::text IS NULL OR type = $2)
               AND ($3::uuid IS NULL OR id < $3)
             ORDER BY id DESC LIMIT $4"
        ))
        .bind(f.state.map(WorkflowState::as_str))
        .bind(f.kind.map(WorkflowType::as_str))
        .bind(f.before)
        .bind(f.limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    /// Publishes outbox rows through `publish` and deletes those it accepted. Rows are locked
    /// (SKIP LOCKED) so two orchestrators never publish the same row at once; a crash after
    /// publishing but before the delete publishes again, which consumers tolerate.
    ///
    /// Only rows older than `min_age` are taken: younger ones are being published by the
    /// process that committed them (fast path).
    pub async fn drain_outbox<F, Fut, E>(
        &self,
        limit: i64,
        min_age: Duration,
        publish: F,
    ) -> Result<Result<usize, E>>
    where
        F: FnOnce(Vec<OutboxRow>) -> Fut,
        Fut: std::future::Future<Output = Result<(), E>>,
    {
        let mut tx = self.pool.begin().await?;
        let rows: Vec<OutboxRow> = sqlx::query_as(
            "SELECT id, stage, envelope FROM outbox WHERE created_at <= now() - make_interval(secs => $2)
             ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
        )
        .bind(limit)
        .bind(min_age.as_secs_f64())
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            return Ok(Ok(0));
        }
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        let n = ids.len();
        if let Err(e) = publish(rows).await {
            return Ok(Err(e));
        }
        sqlx::query("DELETE FROM outbox WHERE id = ANY($1)")
            .bind(&ids)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Ok(n))
    }

    /// Deletes outbox rows published by the fast path.
    pub async fn delete_outbox(&self, ids: &[i64]) -> Result<()> {
        sqlx::query("DELETE FROM outbox WHERE id = ANY($1)")
            .bind(ids)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Safety net for a dispatch lost inside Redis (e.g. the last second of AOF after a crash):
    /// tasks with no result after `timeout` are dispatched again, up to `max_attempts`; then the
    /// workflow fails with the reason. Returns how many tasks were touched.
    pub async fn redispatch_stale(&self, timeout: Duration, max_attempts: i32) -> Result<usize> {
        let secs = timeout.as_secs_f64();
        let stale: Vec<(Uuid, Uuid, i32, String)> = sqlx::query_as(
            "SELECT id, workflow_id, attempts, stage FROM tasks
             WHERE status = 'dispatched' AND dispatched_at < now() - make_interval(secs => $1)
             ORDER BY dispatched_at LIMIT 100",
        )
        .bind(secs)
        .fetch_all(&self.pool)
        .await?;
        let mut touched = 0;
        for (task_id, workflow_id, attempts, stage) in stale {
            let mut tx = self.pool.begin().await?;
            let Some(wf) = fetch_for_update_opt(&mut tx, workflow_id).await? else {
                continue;
            };
            let still: Option<(String, i32)> = sqlx::query_as(
                "SELECT status, attempts FROM tasks WHERE id = $1 AND dispatched_at < now() - make_interval(secs => $2) FOR UPDATE",
            )
            .bind(task_id)
            .bind(secs)
            .fetch_optional(&mut *tx)
            .await?;
            if !matches!(&still, Some((s, a)) if s == "dispatched" && *a == attempts) {
                continue;
            }
            if attempts >= max_attempts {
                let reason = format!(
                    "stage {stage} task {task_id} got no result after {attempts} dispatches of {}s each",
                    timeout.as_secs()
                );
                sqlx::query("UPDATE tasks SET status = 'failed', error = $2, completed_at = now() WHERE id = $1")
                    .bind(task_id)
                    .bind(&reason)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("UPDATE workflows SET failure_reason = $2 WHERE id = $1")
                    .bind(workflow_id)
                    .bind(&reason)
                    .execute(&mut *tx)
                    .await?;
                advance(
                    &mut tx,
                    wf,
                    WorkflowState::Failed,
                    json!({"task_id": task_id, "reason": reason}),
                )
                .await?;
            } else {
                sqlx::query(
                    "UPDATE tasks SET attempts = attempts + 1, dispatched_at = now() WHERE id = $1",
                )
                .bind(task_id)
                .execute(&mut *tx)
                .await?;
                let stage: Stage = stage
                    .parse()
                    .map_err(|e| StoreError::Corrupt(format!("task {task_id}: {e}")))?;
                enqueue(&mut tx, &wf, task_id, stage, (attempts + 1) as u32).await?;
                insert_event(
                    &mut tx,
                    workflow_id,
                    "task_redispatched",
                    None,
                    None,
                    json!({"task_id": task_id, "attempt": attempts + 1}),
                )
                .await?;
            }
            tx.commit().await?;
            touched += 1;
        }
        Ok(touched)
    }

    /// Stores an artifact (idempotent per task and name: a redelivered task overwrites its own).
    pub async fn put_artifact(
        &self,
        workflow_id: Uuid,
        task_id: Uuid,
        name: &str,
        content_type: &str,
        data: &[u8],
        limit: usize,
    ) -> Result<Uuid> {
        use sha2::Digest;
        if data.len() > limit {
            return Err(StoreError::TooLarge {
                size: data.len(),
                limit,
            });
        }
        let sha = format!("{:x}", sha2::Sha256::digest(data));
        let id: Uuid = sqlx::query_scalar(
            "INSERT INTO artifacts (id, workflow_id, task_id, name, content_type, size_bytes, sha256, data)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (task_id, name) DO UPDATE
               SET data = EXCLUDED.data, sha256 = EXCLUDED.sha256, size_bytes = EXCLUDED.size_bytes
             RETURNING id",
        )
        .bind(Uuid::now_v7())
        .bind(workflow_id)
        .bind(task_id)
        .bind(name)
        .bind(content_type)
        .bind(data.len() as i64)
        .bind(sha)
        .bind(data)
        .fetch_one(&self.pool)
        .await?;
        Ok(id)
    }

    pub async fn get_artifact(&self, id: Uuid) -> Result<Option<Artifact>> {
        Ok(sqlx::query_as(
            "SELECT id, workflow_id, name, content_type, size_bytes, sha256, data FROM artifacts WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Workflow counts per state (for metrics).
    pub async fn count_by_state(&self) -> Result<Vec<(String, i64)>> {
        Ok(
            sqlx::query_as("SELECT state, count(*) FROM workflows GROUP BY state")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    pub async fn outbox_len(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM outbox")
            .fetch_one(&self.pool)
            .await?)
    }
}

/// The statements of [`Store::create_workflow`], inside the caller's transaction: one round
/// trip writes the workflow already in `scaffolding` (the `initiated` → `scaffolding` move the
/// state machine checks here), both transition events, the scaffold task and its outbox row.
async fn create_in(
    tx: &mut Transaction<'_, Postgres>,
    new: &NewWorkflow,
) -> Result<(WorkflowRow, Option<Queued>)> {
    use sqlx::Row;
    let id = Uuid::now_v7();
    let to = WorkflowState::Initiated.next().ok_or(TransitionError {
        from: WorkflowState::Initiated,
        to: WorkflowState::Scaffolding,
    })?;
    WorkflowState::Initiated.transition(to)?;
    let stage = to.stage().ok_or(TransitionError {
        from: WorkflowState::Initiated,
        to,
    })?;
    let task_id = Uuid::now_v7();
    let envelope = TaskEnvelope {
        schema_version: ENVELOPE_SCHEMA_VERSION,
        task_id,
        workflow_id: id,
        stage,
        attempt: 1,
        payload: json!({
            "name": new.name,
            "type": new.kind.as_str(),
            "description": new.description,
            "template": new.template,
            "params": new.params,
        }),
        workflow_context: json!({}),
        correlation_id: new.correlation_id.clone(),
        created_at: Utc::now(),
        dispatched_at: None,
    };
    let env_json =
        serde_json::to_value(&envelope).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let row = sqlx::query(&format!(
        "WITH w AS (
             INSERT INTO workflows (id, name, type, description, template, params, state,
                                    current_stage, context, correlation_id)
             VALUES ($1, $2, $3, $4, $5, $6, $8, $9, $10, $7) RETURNING {WF_COLUMNS}),
         e AS (
             INSERT INTO events (workflow_id, kind, from_state, to_state, data)
             VALUES ($1, 'transition', NULL, 'initiated', '{{}}'),
                    ($1, 'transition', 'initiated', $8, '{{}}')),
         t AS (
             INSERT INTO tasks (id, workflow_id, stage, status) VALUES ($11, $1, $9, 'dispatched')),
         o AS (
             INSERT INTO outbox (stage, envelope) VALUES ($9, $12) RETURNING id)
         SELECT w.*, (SELECT id FROM o) AS outbox_id FROM w"
    ))
    .bind(id)
    .bind(&new.name)
    .bind(new.kind.as_str())
    .bind(&new.description)
    .bind(&new.template)
    .bind(&new.params)
    .bind(&new.correlation_id)
    .bind(to.as_str())
    .bind(stage.as_str())
    .bind(&envelope.workflow_context)
    .bind(task_id)
    .bind(env_json)
    .fetch_one(&mut **tx)
    .await?;
    let wf = WorkflowRow::from_row(&row)?;
    let outbox_id: i64 = row.try_get("outbox_id")?;
    Ok((
        wf,
        Some(Queued {
            outbox_id,
            envelope,
        }),
    ))
}

async fn delete_outbox_in(tx: &mut Transaction<'_, Postgres>, ids: &[i64]) -> Result<()> {
    if !ids.is_empty() {
        sqlx::query("DELETE FROM outbox WHERE id = ANY($1)")
            .bind(ids)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// The statements of [`Store::apply_result`], inside the caller's transaction.
async fn apply_in(tx: &mut Transaction<'_, Postgres>, r: &TaskResult) -> Result<Applied> {
    if let Some(applied) = apply_current(tx, r).await? {
        return Ok(applied);
    }
    apply_checked(tx, r).await
}

/// The statement of [`apply_current`].
const APPLY_CURRENT: &str = "
WITH w AS (
    SELECT id FROM workflows WHERE id = $1 AND state = $2 FOR UPDATE),
t AS (
    UPDATE tasks SET status = $4, result = $5, error = $6, agent_id = $7, picked_up_at = $8,
        completed_at = now()
    WHERE id = $3 AND workflow_id = (SELECT id FROM w) AND status = 'dispatched' AND stage = $9
    RETURNING workflow_id),
u AS (
    UPDATE workflows SET state = $10, current_stage = $11, updated_at = now(),
        context = CASE WHEN $12 AND jsonb_typeof(context) = 'object'
                       THEN context || jsonb_build_object($9::text, $13::jsonb) ELSE context END,
        failure_reason = COALESCE($14, failure_reason)
    WHERE id = (SELECT workflow_id FROM t)
    RETURNING id, name, type, description, template, params, context, correlation_id, updated_at),
e AS (
    INSERT INTO events (workflow_id, kind, from_state, to_state, data)
    SELECT id, 'transition', $2, $10, $15 FROM u),
n AS (
    INSERT INTO tasks (id, workflow_id, stage, status)
    SELECT $16, id, $11, 'dispatched' FROM u WHERE $16::uuid IS NOT NULL),
o AS (
    INSERT INTO outbox (stage, envelope)
    SELECT $11, $17::jsonb || jsonb_build_object(
        'payload', jsonb_build_object('name', name, 'type', type, 'description', description,
                                      'template', template, 'params', params),
        'workflow_context', context, 'correlation_id', correlation_id)
    FROM u WHERE $17::jsonb IS NOT NULL
    RETURNING id, envelope)
SELECT (SELECT updated_at FROM u), (SELECT id FROM o), (SELECT envelope FROM o)";

/// What result `r` does to its task and to its workflow running `state` (stage `stage`).
struct Effect {
    task_status: &'static str,
    error: Option<String>,
    to: WorkflowState,
    /// The workflow's failure reason.
    reason: Option<String>,
}

fn effect_of(r: &TaskResult, state: WorkflowState, stage: &str) -> Result<Effect> {
    Ok(match &r.outcome {
        TaskOutcome::Succeeded { .. } => Effect {
            task_status: "succeeded",
            error: None,
            to: state.next().ok_or(TransitionError {
                from: state,
                to: WorkflowState::Completed,
            })?,
            reason: None,
        },
        TaskOutcome::Failed { reason } => Effect {
            task_status: "failed",
            error: Some(reason.clone()),
            to: WorkflowState::Failed,
            reason: Some(format!("stage {stage} failed: {reason}")),
        },
        TaskOutcome::DeadLettered { reason } => Effect {
            task_status: "dead_lettered",
            error: Some(reason.clone()),
            to: WorkflowState::Failed,
            reason: Some(format!(
                "stage {stage} task {} dead-lettered: {reason}",
                r.task_id
            )),
        },
    })
}

/// The common case in one round trip: the result of the task the workflow is running, still
/// open. Locks the workflow row, then the task row (the order `cancel` takes them), completes
/// the task and moves the workflow with its event, next task and outbox row exactly as
/// [`apply_checked`] would. `None` when it changed nothing: anything else (a duplicate, a late
/// or foreign result) goes through [`apply_checked`], which says why.
async fn apply_current(
    tx: &mut Transaction<'_, Postgres>,
    r: &TaskResult,
) -> Result<Option<Applied>> {
    let from = r.stage.state();
    let Effect {
        task_status,
        error,
        to,
        reason,
    } = effect_of(r, from, r.stage.as_str())?;
    let output = match &r.outcome {
        TaskOutcome::Succeeded { output } => Some(output),
        _ => None,
    };
    from.transition(to)?;
    let next_stage = to.stage();
    let next_task = next_stage.map(|_| Uuid::now_v7());
    // What `envelope` sets that the workflow row does not hold; the row supplies the rest.
    let envelope_head = next_stage.zip(next_task).map(|(stage, task_id)| {
        json!({
            "schema_version": ENVELOPE_SCHEMA_VERSION,
            "task_id": task_id,
            "workflow_id": r.workflow_id,
            "stage": stage,
            "attempt": 1,
            "created_at": Utc::now(),
            "dispatched_at": null,
        })
    });
    let result_json = serde_json::to_value(r).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let data = json!({"task_id": r.task_id, "agent_id": r.agent_id, "reason": reason});
    let (updated, outbox_id, envelope): (Option<DateTime<Utc>>, Option<i64>, Option<Value>) =
        sqlx::query_as(APPLY_CURRENT)
            .bind(r.workflow_id)
            .bind(from.as_str())
            .bind(r.task_id)
            .bind(task_status)
            .bind(&result_json)
            .bind(&error)
            .bind(&r.agent_id)
            .bind(r.picked_up_at)
            .bind(r.stage.as_str())
            .bind(to.as_str())
            .bind(next_stage.map(Stage::as_str))
            .bind(output.is_some())
            .bind(output)
            .bind(reason.as_deref())
            .bind(data)
            .bind(next_task)
            .bind(envelope_head)
            .fetch_one(&mut **tx)
            .await?;
    if updated.is_none() {
        return Ok(None);
    }
    let queued = match (outbox_id, envelope) {
        (Some(outbox_id), Some(envelope)) => Some(Queued {
            outbox_id,
            envelope: serde_json::from_value(envelope)
                .map_err(|e| StoreError::Corrupt(format!("outbox envelope: {e}")))?,
        }),
        _ => None,
    };
    Ok(Some(Applied::Advanced { to, queued }))
}

/// A result read against the workflow and task rows step by step: applied when it is the
/// workflow's current task after all, otherwise ignored with the reason.
async fn apply_checked(tx: &mut Transaction<'_, Postgres>, r: &TaskResult) -> Result<Applied> {
    let wf = match fetch_for_update_opt(tx, r.workflow_id).await? {
        Some(wf) => wf,
        None => {
            return Ok(Applied::Ignored {
                why: format!("unknown workflow {}", r.workflow_id),
            });
        }
    };
    let state = wf.state()?;
    let task: Option<(String, String)> = sqlx::query_as(
        "SELECT status, stage FROM tasks WHERE id = $1 AND workflow_id = $2 FOR UPDATE",
    )
    .bind(r.task_id)
    .bind(r.workflow_id)
    .fetch_optional(&mut **tx)
    .await?;
    let Some((status, stage)) = task else {
        return Ok(Applied::Ignored {
            why: format!("unknown task {}", r.task_id),
        });
    };
    if status != "dispatched" {
        return Ok(Applied::Ignored {
            why: format!("task {} is already {status}", r.task_id),
        });
    }
    if state.is_terminal() || state.stage().map(Stage::as_str) != Some(stage.as_str()) {
        return Ok(Applied::Ignored {
            why: format!("workflow {} is {state}, not running stage {stage}", wf.id),
        });
    }
    let result_json = serde_json::to_value(r).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let Effect {
        task_status,
        error,
        to,
        reason,
    } = effect_of(r, state, &stage)?;
    sqlx::query(
        "UPDATE tasks SET status = $2, result = $3, error = $4, agent_id = $5,
                 picked_up_at = $6, completed_at = now()
             WHERE id = $1",
    )
    .bind(r.task_id)
    .bind(task_status)
    .bind(&result_json)
    .bind(&error)
    .bind(&r.agent_id)
    .bind(r.picked_up_at)
    .execute(&mut **tx)
    .await?;
    let mut wf = wf;
    // The stage's output joins the context (the row is locked: this is what jsonb_set on the
    // stored value would give), written by the same statement as the state change.
    let mut write_context = false;
    if let TaskOutcome::Succeeded { output } = &r.outcome
        && let Value::Object(m) = &mut wf.context
    {
        m.insert(stage.clone(), output.clone());
        write_context = true;
    }
    let data = json!({"task_id": r.task_id, "agent_id": r.agent_id, "reason": reason});
    let (_, queued) = advance_with(tx, wf, to, data, write_context, reason.as_deref()).await?;
    Ok(Applied::Advanced { to, queued })
}

async fn fetch_for_update_opt(
    tx: &mut Transaction<'_, Postgres>,
    id: Uuid,
) -> Result<Option<WorkflowRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {WF_COLUMNS} FROM workflows WHERE id = $1 FOR UPDATE"
    ))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?)
}

async fn insert_event(
    tx: &mut Transaction<'_, Postgres>,
    workflow_id: Uuid,
    kind: &str,
    from: Option<WorkflowState>,
    to: Option<WorkflowState>,
    data: Value,
) -> Result<()> {
    sqlx::query("INSERT INTO events (workflow_id, kind, from_state, to_state, data) VALUES ($1, $2, $3, $4, $5)")
        .bind(workflow_id)
        .bind(kind)
        .bind(from.map(WorkflowState::as_str))
        .bind(to.map(WorkflowState::as_str))
        .bind(data)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Moves `wf` to `to` (checked by the state machine), writes the event and, when `to` runs a
/// stage, creates that stage's task with its envelope in the outbox.
async fn advance(
    tx: &mut Transaction<'_, Postgres>,
    wf: WorkflowRow,
    to: WorkflowState,
    data: Value,
) -> Result<(WorkflowRow, Option<Queued>)> {
    advance_with(tx, wf, to, data, false, None).await
}

/// [`advance`], also writing the workflow's context (when `write_context`: `wf.context` as the
/// caller changed it under the row lock) and failure reason — in one statement: the state
/// change, its event, the next stage's task and its outbox row are one round trip.
async fn advance_with(
    tx: &mut Transaction<'_, Postgres>,
    mut wf: WorkflowRow,
    to: WorkflowState,
    data: Value,
    write_context: bool,
    failure_reason: Option<&str>,
) -> Result<(WorkflowRow, Option<Queued>)> {
    let from = wf.state()?;
    from.transition(to)?;
    let stage = to.stage();
    wf.state = to.as_str().to_owned();
    wf.current_stage = stage.map(|s| s.as_str().to_owned());
    let next = stage.map(|stage| {
        let task_id = Uuid::now_v7();
        (task_id, envelope(&wf, task_id, stage, 1))
    });
    let env_json = match &next {
        Some((_, env)) => {
            Some(serde_json::to_value(env).map_err(|e| StoreError::Corrupt(e.to_string()))?)
        }
        None => None,
    };
    let (now, outbox_id): (DateTime<Utc>, Option<i64>) = sqlx::query_as(
        "WITH w AS (
             UPDATE workflows SET state = $2, current_stage = $3, updated_at = now(),
                 context = CASE WHEN $4 THEN $5 ELSE context END,
                 failure_reason = COALESCE($6, failure_reason)
             WHERE id = $1 RETURNING updated_at),
         e AS (
             INSERT INTO events (workflow_id, kind, from_state, to_state, data)
             VALUES ($1, 'transition', $7, $2, $8)),
         t AS (
             INSERT INTO tasks (id, workflow_id, stage, status)
             SELECT $9, $1, $3, 'dispatched' WHERE $9::uuid IS NOT NULL),
         o AS (
             INSERT INTO outbox (stage, envelope)
             SELECT $3, $10 WHERE $10::jsonb IS NOT NULL RETURNING id)
         SELECT (SELECT updated_at FROM w), (SELECT id FROM o)",
    )
    .bind(wf.id)
    .bind(to.as_str())
    .bind(stage.map(Stage::as_str))
    .bind(write_context)
    .bind(&wf.context)
    .bind(failure_reason)
    .bind(from.as_str())
    .bind(data)
    .bind(next.as_ref().map(|(id, _)| *id))
    .bind(env_json)
    .fetch_one(&mut **tx)
    .await?;
    wf.updated_at = now;
    if let Some(reason) = failure_reason {
        wf.failure_reason = Some(reason.to_owned());
    }
    let queued = match (next, outbox_id) {
        (Some((_, envelope)), Some(outbox_id)) => Some(Queued {
            outbox_id,
            envelope,
        }),
        _ => None,
    };
    Ok((wf, queued))
}

/// The envelope for `stage` of `wf`, written to the outbox.
async fn enqueue(
    tx: &mut Transaction<'_, Postgres>,
    wf: &WorkflowRow,
    task_id: Uuid,
    stage: Stage,
    attempt: u32,
) -> Result<Queued> {
    let env = envelope(wf, task_id, stage, attempt);
    let v = serde_json::to_value(&env).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let outbox_id: i64 =
        sqlx::query_scalar("INSERT INTO outbox (stage, envelope) VALUES ($1, $2) RETURNING id")
            .bind(stage.as_str())
            .bind(v)
            .fetch_one(&mut **tx)
            .await?;
    Ok(Queued {
        outbox_id,
        envelope: env,
    })
}

/// The task envelope for `stage` of `wf` (its context as of now).
fn envelope(wf: &WorkflowRow, task_id: Uuid, stage: Stage, attempt: u32) -> TaskEnvelope {
    TaskEnvelope {
        schema_version: ENVELOPE_SCHEMA_VERSION,
        task_id,
        workflow_id: wf.id,
        stage,
        attempt,
        payload: json!({
            "name": wf.name,
            "type": wf.kind,
            "description": wf.description,
            "template": wf.template,
            "params": wf.params,
        }),
        workflow_context: wf.context.clone(),
        correlation_id: wf.correlation_id.clone(),
        created_at: Utc::now(),
        dispatched_at: None,
    }
}
