//! The operator's API: the dead-letter queues (list, redrive) and workflow retry.
//!
//! Both writes are idempotent: a repeated redrive or retry answers 200 with `"changed": false`
//! and changes nothing. Each change writes an audit event (`dlq_redriven`, `workflow_retried`)
//! with the transition, in one transaction.

use std::collections::HashMap;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use platform_bus::valid_entry_id;
use platform_core::Stage;
use platform_store::{Redrive, Retry, StoreError};
use serde_json::json;
use utoipa::OpenApi;
use uuid::Uuid;

use super::{ApiError, ErrorBody, S, parse_id};

#[derive(OpenApi)]
#[openapi(paths(list_dlq, redrive, retry_workflow))]
pub struct OperatorDoc;

fn parse_kind(raw: &str) -> Result<Stage, ApiError> {
    raw.parse().map_err(|e: platform_core::state::ParseError| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no dead-letter queue for kind {raw:?}: {e}"),
        )
    })
}

#[utoipa::path(get, path = "/api/v1/dlq",
    params(("kind" = Option<String>, Query, description = "one kind: scaffold|validation|e2e|integration|deployment"),
        ("limit" = Option<u32>, Query, description = "entries per kind, 1-100, default 50 (newest first)")),
    responses((status = 200, description = "`{dlq: [{kind, length, entries: [{id, kind, reason, deliveries, source_id, task_id, workflow_id, schema_version, envelope}]}]}`", body = Object),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub(super) async fn list_dlq(
    State(state): S,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    if let Some(k) = q.keys().find(|k| !["kind", "limit"].contains(&k.as_str())) {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("unknown query parameter {k:?}; use kind, limit"),
        ));
    }
    let kinds: Vec<Stage> = match q.get("kind") {
        None => Stage::ALL.to_vec(),
        Some(k) => vec![
            k.parse()
                .map_err(|e| ApiError::bad_request("invalid_query", format!("kind: {e}")))?,
        ],
    };
    let limit = match q.get("limit") {
        None => 50,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=100).contains(&n) => n,
            _ => {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    format!("limit {l:?} must be an integer from 1 to 100"),
                ));
            }
        },
    };
    let mut out = Vec::new();
    for kind in kinds {
        let (length, entries) = state
            .bus
            .dlq_entries(kind, limit)
            .await
            .map_err(ApiError::unavailable)?;
        out.push(json!({"kind": kind, "length": length, "entries": entries}));
    }
    Ok(Json(json!({"dlq": out})).into_response())
}

#[utoipa::path(post, path = "/api/v1/dlq/{kind}/{entry}/redrive",
    params(("kind" = String, Path, description = "agent kind"), ("entry" = String, Path, description = "the DLQ entry id")),
    responses((status = 200, description = "`{changed, workflow_id, task_id, state}`: redriven (its task dispatched again, its workflow running that stage), or redriven before (`changed: false`)", body = Object),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(super) async fn redrive(
    State(state): S,
    Path((kind, entry)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let kind = parse_kind(&kind)?;
    if !valid_entry_id(&entry) {
        return Err(ApiError::bad_request(
            "invalid_id",
            format!("{entry:?} is not a stream entry id (<ms>-<seq>)"),
        ));
    }
    let bus = &state.bus;
    let Some(e) = bus
        .dlq_entry(kind, &entry)
        .await
        .map_err(ApiError::unavailable)?
    else {
        if bus
            .dlq_was_redriven(kind, &entry)
            .await
            .map_err(ApiError::unavailable)?
        {
            return Ok(Json(json!({"changed": false, "entry": entry, "kind": kind, "message": "redriven before"})).into_response());
        }
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no entry {entry} in the {kind} dead-letter queue"),
        ));
    };
    let ids = e
        .workflow_id
        .as_deref()
        .and_then(|w| Uuid::parse_str(w).ok())
        .zip(e.task_id.as_deref().and_then(|t| Uuid::parse_str(t).ok()));
    let Some((workflow_id, task_id)) = ids else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            "the entry's envelope names no workflow and task; it cannot be redriven",
        ));
    };
    let (changed, wf) = match state
        .store
        .redrive_task(workflow_id, task_id, &entry)
        .await?
    {
        Redrive::Reopened { workflow, queued } => {
            state.dispatch_now(queued).await;
            (true, workflow)
        }
        Redrive::AlreadyReopened(wf) => (false, wf),
        Redrive::NotRedrivable(why) => {
            return Err(ApiError::new(StatusCode::CONFLICT, "conflict", why));
        }
    };
    // After the commit: a crash in between leaves the entry listed, and redriving it again
    // finds the task reopened (`changed: false`) and removes it.
    bus.dlq_remove_redriven(kind, &entry)
        .await
        .map_err(ApiError::unavailable)?;
    tracing::info!(workflow_id = %workflow_id, task_id = %task_id, entry, kind = %kind, changed, "DLQ entry redriven");
    Ok(Json(json!({
        "changed": changed,
        "entry": entry,
        "kind": kind,
        "workflow_id": workflow_id,
        "task_id": task_id,
        "state": wf.state,
    }))
    .into_response())
}

#[utoipa::path(post, path = "/api/v1/workflows/{id}/retry", params(("id" = String, Path, description = "workflow id")),
    responses((status = 200, description = "`{changed, workflow, stage?, attempt?}`: the failed stage runs again as a new task, or the workflow runs already (`changed: false`)", body = Object),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(super) async fn retry_workflow(
    State(state): S,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    match state.store.retry_workflow(id).await {
        Ok(Retry::Retried {
            workflow,
            stage,
            attempt,
            queued,
        }) => {
            state.dispatch_now(queued).await;
            tracing::info!(workflow_id = %id, stage = %stage, attempt, "workflow retried");
            Ok(Json(
                json!({"changed": true, "workflow": workflow, "stage": stage, "attempt": attempt}),
            )
            .into_response())
        }
        Ok(Retry::AlreadyRunning(wf)) => {
            Ok(Json(json!({"changed": false, "workflow": wf})).into_response())
        }
        Ok(Retry::NotRetryable(wf)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!(
                "workflow {id} is {}; only a failed workflow is retried",
                wf.state
            ),
        )),
        Err(StoreError::NotFound(id)) => Err(StoreError::NotFound(id).into()),
        Err(e) => Err(e.into()),
    }
}
