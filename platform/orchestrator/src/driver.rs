//! The loops that move workflows: outbox relay, results consumer, sweeper.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::StreamExt;
use platform_bus::Delivery;
use platform_core::{TaskEnvelope, TaskOutcome, TaskResult};
use platform_store::Applied;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::AppState;

/// Outbox rows younger than this belong to the fast path of the process that committed them.
const FAST_PATH_GRACE: Duration = Duration::from_secs(2);

pub fn spawn(
    state: Arc<AppState>,
    shutdown: CancellationToken,
    published: tokio::sync::mpsc::UnboundedReceiver<i64>,
) -> Vec<JoinHandle<()>> {
    vec![
        tokio::spawn(delete_published(state.clone(), published, shutdown.clone())),
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
        // Different workflows are independent; row locks serialise results of the same one.
        let acks: Vec<String> = futures::stream::iter(batch)
            .map(|d| {
                let state = state.clone();
                async move { handle_result(&state, d).await }
            })
            .buffer_unordered(16)
            .filter_map(|a| async move { a })
            .collect()
            .await;
        if let Err(e) = state.bus.ack_results(&acks).await {
            // Unacknowledged results are reclaimed and re-applied; applying is idempotent.
            tracing::warn!(error = %e, "acknowledging results failed");
        }
        state.dispatch.notify_one();
    }
}

/// Returns the entry id to acknowledge, or None to leave it for redelivery.
async fn handle_result(state: &AppState, d: Delivery) -> Option<String> {
    let r = match TaskResult::decode(&d.raw) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(entry = %d.id, error = %e, "unreadable result; moving it to the results dead-letter stream");
            if let Err(e) = state.bus.dead_letter_result(&d, &e.to_string()).await {
                tracing::warn!(error = %e, "dead-lettering a result failed");
            }
            return None;
        }
    };
    match state.store.apply_result(&r).await {
        Ok(Applied::Advanced { to, queued }) => {
            if let Some(q) = queued {
                state.dispatch_now(q).await;
            }
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
            Some(d.id)
        }
        Ok(Applied::Ignored { why }) => {
            tracing::info!(
                workflow_id = %r.workflow_id,
                task_id = %r.task_id,
                correlation_id = %r.correlation_id,
                why,
                "result ignored"
            );
            state.metrics.results_ignored.inc();
            Some(d.id)
        }
        Err(e) => {
            tracing::warn!(task_id = %r.task_id, error = %e, "applying a result failed; it will be redelivered");
            None
        }
    }
}

/// Deletes the outbox rows the fast path published, in batches. Ends when the state is dropped.
async fn delete_published(
    state: Arc<AppState>,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<i64>,
    shutdown: CancellationToken,
) {
    // The sender lives in the shared state, so the channel never closes by itself: stop on the
    // shutdown signal (after deleting what is already queued), or the orchestrator never exits.
    let mut ids = Vec::new();
    loop {
        let stopping = tokio::select! {
            n = rx.recv_many(&mut ids, 500) => n == 0,
            _ = shutdown.cancelled() => {
                while let Ok(id) = rx.try_recv() {
                    ids.push(id);
                }
                true
            }
        };
        if !ids.is_empty()
            && let Err(e) = state.store.delete_outbox(&ids).await
        {
            // Left in the outbox, they are published again by the relay: harmless duplicates.
            tracing::warn!(error = %e, count = ids.len(), "deleting published outbox rows failed");
        }
        ids.clear();
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
        match state
            .store
            .redispatch_stale(state.cfg.task_timeout, state.cfg.max_attempts)
            .await
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
