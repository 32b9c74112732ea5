//! The loops that move workflows: outbox relay, results consumer, sweeper.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use platform_bus::Delivery;
use platform_core::{TaskEnvelope, TaskOutcome, TaskResult};
use platform_store::{Applied, NewWorkflow, StoreError, WorkflowRow};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::AppState;

/// Outbox rows younger than this belong to the fast path of the process that committed them.
const FAST_PATH_GRACE: Duration = Duration::from_secs(2);

/// A creation waiting for the next group commit, and where its answer goes.
pub type CreateRequest = (
    NewWorkflow,
    tokio::sync::oneshot::Sender<Result<WorkflowRow, StoreError>>,
);

/// Most creations in one group commit.
const CREATE_BATCH: usize = 64;

pub fn spawn(state: Arc<AppState>, shutdown: CancellationToken) -> Vec<JoinHandle<()>> {
    vec![
        tokio::spawn(delete_published(state.clone(), shutdown.clone())),
        tokio::spawn(relay(state.clone(), shutdown.clone())),
        tokio::spawn(results(state.clone(), shutdown.clone())),
        tokio::spawn(sweeper(state, shutdown)),
    ]
}

/// Publishes committed envelopes from the outbox to Redis; woken right after each commit and
/// every 250 ms otherwise (other orchestrator instances' rows, rows left by a crash).
async fn relay(state: Arc<AppState>, shutdown: CancellationToken) {
    loop {
        match relay_once(&state).await {
            Ok(0) => {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = state.dispatch.notified() => {}
                    _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                }
            }
            Ok(_) => {
                if shutdown.is_cancelled() {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "outbox relay failed; retrying in 500 ms");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
        }
    }
}

async fn relay_once(state: &AppState) -> anyhow::Result<usize> {
    tokio::time::timeout(state.cfg.db_timeout, relay_step(state))
        .await
        .unwrap_or_else(|_| Err(anyhow::anyhow!("no answer from Postgres or Redis in time")))
}

async fn relay_step(state: &AppState) -> anyhow::Result<usize> {
    let bus = &state.bus;
    let n = state
        .store
        .drain_outbox(500, FAST_PATH_GRACE, |rows| async move {
            let now = Utc::now();
            let envs: Vec<TaskEnvelope> = rows
                .into_iter()
                .filter_map(|r| match serde_json::from_value::<TaskEnvelope>(r.envelope) {
                    Ok(mut e) => {
                        e.dispatched_at = Some(now);
                        Some(e)
                    }
                    Err(e) => {
                        tracing::error!(outbox_id = r.id, error = %e, "dropping unreadable outbox row");
                        None
                    }
                })
                .collect();
            bus.publish_tasks(&envs).await
        })
        .await??;
    if n > 0 {
        state.metrics.dispatched.add(n as u64);
    }
    Ok(n)
}

/// Applies agents' results: each in its own transaction, acknowledged only after commit.
async fn results(state: Arc<AppState>, shutdown: CancellationToken) {
    let consumer = state.cfg.instance_id.clone();
    let reclaim_every = (state.cfg.bus.visibility_timeout / 2).max(Duration::from_millis(100));
    let mut last_reclaim = tokio::time::Instant::now() - reclaim_every;
    loop {
        if shutdown.is_cancelled() {
            return;
        }
        let batch = if last_reclaim.elapsed() >= reclaim_every {
            last_reclaim = tokio::time::Instant::now();
            match state.bus.reclaim_results(&consumer).await {
                Ok(b) if !b.is_empty() => {
                    tracing::info!(
                        count = b.len(),
                        "reclaimed results of a stalled orchestrator"
                    );
                    Ok(b)
                }
                Ok(_) => {
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        b = state.bus.read_results(&consumer) => b,
                    }
                }
                Err(e) => Err(e),
            }
        } else {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                b = state.bus.read_results(&consumer) => b,
            }
        };
        let batch = match batch {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "reading results failed; retrying in 500 ms");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        if batch.is_empty() {
            continue;
        }
        let acks = apply_batch(&state, batch).await;
        if let Err(e) = state.bus.ack_results(&acks).await {
            // Unacknowledged results are reclaimed and re-applied; applying is idempotent.
            tracing::warn!(error = %e, "acknowledging results failed");
        }
    }
}

/// Applies a batch of results in one transaction (one commit, which also deletes the outbox
/// rows published since the last commit), publishes the next stages' tasks in one round trip
/// and returns the entries to acknowledge. When the batch cannot commit as a whole because the
/// database refused one of its statements, the results are applied one at a time, so one bad
/// result holds up no other; when the database is unreachable, nothing is acknowledged and the
/// batch is redelivered.
async fn apply_batch(state: &AppState, batch: Vec<Delivery>) -> Vec<String> {
    let mut results = Vec::with_capacity(batch.len());
    for d in batch {
        match TaskResult::decode(&d.raw) {
            Ok(r) => results.push((d.id, r)),
            Err(e) => {
                tracing::error!(entry = %d.id, error = %e, "unreadable result; moving it to the results dead-letter stream");
                if let Err(e) = state.bus.dead_letter_result(&d, &e.to_string()).await {
                    tracing::warn!(error = %e, "dead-lettering a result failed");
                }
            }
        }
    }
    if results.is_empty() {
        return Vec::new();
    }
    let rs: Vec<TaskResult> = results.iter().map(|(_, r)| r.clone()).collect();
    let published = state.take_published();
    // A partition leaves the connection hanging, not failing: give up after the timeout (the
    // results stay pending and are reclaimed; if the hung commit lands after all, applying
    // them again changes nothing and the relay publishes the next stages it queued).
    let outcome = tokio::time::timeout(
        state.cfg.db_timeout,
        state.store.apply_results(&rs, &published),
    )
    .await
    .unwrap_or_else(|_| Err(StoreError::Unavailable("timed out".into())));
    let applied: Vec<Option<Applied>> = match outcome {
        Ok(a) => a.into_iter().map(Some).collect(),
        Err(e) => {
            state.return_published(published);
            if e.is_statement_error() && rs.len() > 1 {
                tracing::warn!(error = %e, count = rs.len(), "applying a batch of results failed; applying them one by one");
                let mut one_by_one = Vec::with_capacity(rs.len());
                for r in &rs {
                    match state.store.apply_result(r).await {
                        Ok(a) => one_by_one.push(Some(a)),
                        Err(e) => {
                            tracing::warn!(task_id = %r.task_id, error = %e, "applying a result failed; it will be redelivered");
                            one_by_one.push(None);
                        }
                    }
                }
                one_by_one
            } else {
                tracing::warn!(error = %e, count = rs.len(), "applying results failed; they will be redelivered");
                vec![None; rs.len()]
            }
        }
    };
    let mut queued = Vec::new();
    let mut acks = Vec::new();
    for ((id, r), a) in results.into_iter().zip(applied) {
        let Some(a) = a else { continue };
        if let Applied::Advanced {
            queued: Some(q), ..
        } = &a
        {
            queued.push(q.clone());
        }
        observe(state, &r, a);
        acks.push(id);
    }
    state.dispatch_all(queued).await;
    acks
}

/// Logs and counts an applied result.
fn observe(state: &AppState, r: &TaskResult, a: Applied) {
    match a {
        Applied::Advanced { to, .. } => {
            tracing::info!(
                workflow_id = %r.workflow_id,
                task_id = %r.task_id,
                stage = %r.stage,
                correlation_id = %r.correlation_id,
                to = %to,
                "result applied"
            );
            let secs = (r.finished_at - r.picked_up_at)
                .num_microseconds()
                .unwrap_or(0) as f64
                / 1e6;
            state.metrics.observe_stage(r.stage, secs.max(0.0));
            match r.outcome {
                TaskOutcome::Succeeded { .. } => state.metrics.results_ok.inc(),
                _ => state.metrics.results_failed.inc(),
            }
        }
        Applied::Ignored { why } => {
            tracing::info!(
                workflow_id = %r.workflow_id,
                task_id = %r.task_id,
                correlation_id = %r.correlation_id,
                why,
                "result ignored"
            );
            state.metrics.results_ignored.inc();
        }
    }
}

/// Group commit of workflow creations: every request waiting when the previous commit
/// finished goes into the next transaction (up to [`CREATE_BATCH`]), so concurrent clients
/// share commits; each is answered after the commit, with its own error when the batch had to
/// be split. Runs until `stop` (after the HTTP server has stopped).
pub async fn creator(
    state: Arc<AppState>,
    mut rx: tokio::sync::mpsc::Receiver<CreateRequest>,
    stop: CancellationToken,
) {
    let mut buf = Vec::with_capacity(CREATE_BATCH);
    loop {
        let n = tokio::select! {
            n = rx.recv_many(&mut buf, CREATE_BATCH) => n,
            _ = stop.cancelled() => 0,
        };
        if n == 0 {
            return;
        }
        // A client that gave up (its request timed out) is not created behind its back.
        let (news, replies): (Vec<NewWorkflow>, Vec<_>) = buf
            .drain(..)
            .filter(|(_, reply)| !reply.is_closed())
            .unzip();
        if news.is_empty() {
            continue;
        }
        let published = state.take_published();
        let outcome = tokio::time::timeout(
            state.cfg.db_timeout,
            state.store.create_workflows(&news, &published),
        )
        .await
        .unwrap_or_else(|_| Err(StoreError::Unavailable("timed out".into())));
        match outcome {
            Ok(created) => {
                let queued = created.iter().filter_map(|(_, q)| q.clone()).collect();
                state.dispatch_all(queued).await;
                for (reply, (wf, _)) in replies.into_iter().zip(created) {
                    let _ = reply.send(Ok(wf));
                }
            }
            Err(e) if e.is_statement_error() && news.len() > 1 => {
                state.return_published(published);
                tracing::warn!(error = %e, count = news.len(), "a group commit of creations failed; creating them one by one");
                for (new, reply) in news.into_iter().zip(replies) {
                    let r = match state.store.create_workflow(new).await {
                        Ok((wf, q)) => {
                            if let Some(q) = q {
                                state.dispatch_now(q).await;
                            }
                            Ok(wf)
                        }
                        Err(e) => Err(e),
                    };
                    let _ = reply.send(r);
                }
            }
            Err(e) => {
                state.return_published(published);
                let msg = e.to_string();
                let mut e = Some(e);
                for reply in replies {
                    let err = e
                        .take()
                        .unwrap_or_else(|| StoreError::Unavailable(msg.clone()));
                    let _ = reply.send(Err(err));
                }
            }
        }
    }
}

/// Deletes the published outbox rows no group commit has taken (nothing else committed for a
/// while), well within the relay's grace period; also what is left at shutdown.
async fn delete_published(state: Arc<AppState>, shutdown: CancellationToken) {
    loop {
        let stopping = tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(300)) => false,
            _ = shutdown.cancelled() => true,
        };
        let ids = state.take_published();
        if !ids.is_empty()
            && let Err(e) =
                tokio::time::timeout(state.cfg.db_timeout, state.store.delete_outbox(&ids))
                    .await
                    .unwrap_or_else(|_| Err(StoreError::Unavailable("timed out".into())))
        {
            // Left in the outbox, they are published again by the relay: harmless duplicates.
            tracing::warn!(error = %e, count = ids.len(), "deleting published outbox rows failed");
            if !stopping {
                state.return_published(ids);
            }
        }
        if stopping {
            return;
        }
    }
}

/// Re-dispatches tasks that got no result within the task timeout.
async fn sweeper(state: Arc<AppState>, shutdown: CancellationToken) {
    let every =
        (state.cfg.task_timeout / 4).clamp(Duration::from_millis(200), Duration::from_secs(30));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        match tokio::time::timeout(
            state.cfg.db_timeout,
            state
                .store
                .redispatch_stale(state.cfg.task_timeout, state.cfg.max_attempts),
        )
        .await
        .unwrap_or_else(|_| Err(StoreError::Unavailable("timed out".into())))
        {
            Ok(0) => {}
            Ok(n) => {
                tracing::warn!(
                    count = n,
                    "re-dispatched or failed tasks that got no result in time"
                );
                state.dispatch.notify_one();
            }
            Err(e) => tracing::warn!(error = %e, "sweeping stale tasks failed"),
        }
    }
}
