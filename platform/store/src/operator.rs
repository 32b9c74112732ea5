//! What operators do to workflows: retry a failed one from its failed stage, reopen the task of
//! a redriven DLQ entry, and read the audit trail as it grows (the live event stream).
//!
//! Both retries go `failed` → the failed stage's state (`WorkflowState::retry`), written with
//! an audit event, the transition event and the task's envelope in the outbox — one transaction,
//! like every other change.

use chrono::{DateTime, Utc};
use platform_core::{Stage, WorkflowState};
use serde_json::{Value, json};
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use crate::{
    EventRow, Queued, Result, Store, StoreError, WorkflowRow, enqueue, fetch_for_update_opt,
    insert_event,
};

/// What [`Store::retry_workflow`] did.
#[derive(Debug, Clone)]
pub enum Retry {
    /// The failed stage runs again as a new task (attempt `attempt` of that stage).
    Retried {
        workflow: WorkflowRow,
        stage: Stage,
        attempt: i64,
        queued: Queued,
    },
    /// The workflow is running (retried already): nothing changed.
    AlreadyRunning(WorkflowRow),
    /// Completed or cancelled (or failed before any stage ran): nothing to retry.
    NotRetryable(WorkflowRow),
}

/// What [`Store::redrive_task`] did.
#[derive(Debug, Clone)]
pub enum Redrive {
    /// The dead-lettered task is dispatched again and its workflow runs that stage again.
    Reopened {
        workflow: WorkflowRow,
        queued: Queued,
    },
    /// Redriven before: the task is dispatched and its stage running; nothing changed.
    AlreadyReopened(WorkflowRow),
    /// The entry's task cannot be reopened, and why.
    NotRedrivable(String),
}

impl Store {
    /// Re-runs a failed workflow from the stage that failed, as a new task.
    pub async fn retry_workflow(&self, id: Uuid) -> Result<Retry> {
        let mut tx = self.pool.begin().await?;
        let wf = fetch_for_update_opt(&mut tx, id)
            .await?
            .ok_or(StoreError::NotFound(id))?;
        let state = wf.state()?;
        if !state.is_terminal() {
            return Ok(Retry::AlreadyRunning(wf));
        }
        if state != WorkflowState::Failed {
            return Ok(Retry::NotRetryable(wf));
        }
        let last: Option<(Uuid, String)> = sqlx::query_as(
            "SELECT id, stage FROM tasks WHERE workflow_id = $1 ORDER BY created_at DESC, id DESC LIMIT 1",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((previous, stage)) = last else {
            return Ok(Retry::NotRetryable(wf));
        };
        let stage: Stage = stage
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("task {previous}: {e}")))?;
        let attempt: i64 = sqlx::query_scalar(
            "SELECT count(*) + 1 FROM tasks WHERE workflow_id = $1 AND stage = $2",
        )
        .bind(id)
        .bind(stage.as_str())
        .fetch_one(&mut *tx)
        .await?;
        let audit = json!({"stage": stage, "previous_task_id": previous, "attempt": attempt});
        insert_event(&mut tx, id, "workflow_retried", None, None, audit.clone()).await?;
        let task_id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO tasks (id, workflow_id, stage, status) VALUES ($1, $2, $3, 'dispatched')",
        )
        .bind(task_id)
        .bind(id)
        .bind(stage.as_str())
        .execute(&mut *tx)
        .await?;
        let mut data = audit;
        data["task_id"] = json!(task_id);
        data["retry"] = json!(true);
        let workflow = reenter(&mut tx, wf, stage, data).await?;
        let queued = enqueue(&mut tx, &workflow, task_id, stage, 1).await?;
        tx.commit().await?;
        Ok(Retry::Retried {
            workflow,
            stage,
            attempt,
            queued,
        })
    }

    /// Reopens the task of a DLQ entry: the task is dispatched again (one more attempt) and its
    /// failed workflow runs that stage again. Idempotent: a second call changes nothing.
    pub async fn redrive_task(
        &self,
        workflow_id: Uuid,
        task_id: Uuid,
        entry: &str,
    ) -> Result<Redrive> {
        let mut tx = self.pool.begin().await?;
        let Some(wf) = fetch_for_update_opt(&mut tx, workflow_id).await? else {
            return Ok(Redrive::NotRedrivable(format!(
                "workflow {workflow_id} does not exist"
            )));
        };
        let task: Option<(String, String, i32)> = sqlx::query_as(
            "SELECT status, stage, attempts FROM tasks WHERE id = $1 AND workflow_id = $2 FOR UPDATE",
        )
        .bind(task_id)
        .bind(workflow_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((status, stage, attempts)) = task else {
            return Ok(Redrive::NotRedrivable(format!(
                "task {task_id} of workflow {workflow_id} does not exist"
            )));
        };
        let stage: Stage = stage
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("task {task_id}: {e}")))?;
        let state = wf.state()?;
        if status == "dispatched" && state.stage() == Some(stage) {
            return Ok(Redrive::AlreadyReopened(wf));
        }
        if status != "dead_lettered" {
            return Ok(Redrive::NotRedrivable(format!(
                "task {task_id} is {status}, not dead-lettered"
            )));
        }
        if state != WorkflowState::Failed {
            return Ok(Redrive::NotRedrivable(format!(
                "workflow {workflow_id} is {state}; only a failed workflow's task is redriven"
            )));
        }
        let latest: Uuid = sqlx::query_scalar(
            "SELECT id FROM tasks WHERE workflow_id = $1 ORDER BY created_at DESC, id DESC LIMIT 1",
        )
        .bind(workflow_id)
        .fetch_one(&mut *tx)
        .await?;
        if latest != task_id {
            return Ok(Redrive::NotRedrivable(format!(
                "workflow {workflow_id} has a later task than {task_id} (it was retried)"
            )));
        }
        let attempt = attempts + 1;
        sqlx::query(
            "UPDATE tasks SET status = 'dispatched', attempts = $2, dispatched_at = now(), result = NULL,
                 error = NULL, agent_id = NULL, picked_up_at = NULL, completed_at = NULL
             WHERE id = $1",
        )
        .bind(task_id)
        .bind(attempt)
        .execute(&mut *tx)
        .await?;
        let audit =
            json!({"stage": stage, "task_id": task_id, "dlq_entry": entry, "attempt": attempt});
        insert_event(
            &mut tx,
            workflow_id,
            "dlq_redriven",
            None,
            None,
            audit.clone(),
        )
        .await?;
        let mut data = audit;
        data["redrive"] = json!(true);
        let workflow = reenter(&mut tx, wf, stage, data).await?;
        let queued = enqueue(&mut tx, &workflow, task_id, stage, attempt as u32).await?;
        tx.commit().await?;
        Ok(Redrive::Reopened { workflow, queued })
    }

    /// Events with an id above `after` (all workflows, or one), oldest first, at most `limit`.
    pub async fn events_after(
        &self,
        after: i64,
        workflow: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<EventRow>> {
        Ok(sqlx::query_as(
            "SELECT * FROM events WHERE id > $1 AND ($2::uuid IS NULL OR workflow_id = $2)
             ORDER BY id LIMIT $3",
        )
        .bind(after)
        .bind(workflow)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The id of the newest event (0 when there is none).
    pub async fn last_event_id(&self) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT COALESCE(max(id), 0)::bigint FROM events")
                .fetch_one(&self.pool)
                .await?,
        )
    }
}

/// `failed` → the state of `stage` (checked by the state machine), failure reason cleared, with
/// its transition event.
async fn reenter(
    tx: &mut Transaction<'_, Postgres>,
    mut wf: WorkflowRow,
    stage: Stage,
    data: Value,
) -> Result<WorkflowRow> {
    let from = wf.state()?;
    let to = from.retry(stage)?;
    let now: DateTime<Utc> = sqlx::query_scalar(
        "UPDATE workflows SET state = $2, current_stage = $3, failure_reason = NULL, updated_at = now()
         WHERE id = $1 RETURNING updated_at",
    )
    .bind(wf.id)
    .bind(to.as_str())
    .bind(stage.as_str())
    .fetch_one(&mut **tx)
    .await?;
    insert_event(tx, wf.id, "transition", Some(from), Some(to), data).await?;
    wf.state = to.as_str().to_owned();
    wf.current_stage = Some(stage.as_str().to_owned());
    wf.failure_reason = None;
    wf.updated_at = now;
    Ok(wf)
}
