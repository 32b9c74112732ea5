//! Live events: the audit trail as server-sent events, every transition as it commits.
//!
//! Each SSE event is one `events` row: `id:` is the row id, `event:` its kind, `data:` the row
//! as JSON. A client that reconnects with `Last-Event-ID` gets what it missed (ids above it),
//! then live events. The stream polls Postgres (every 200 ms, on the primary-key index), so it
//! sees the commits of every orchestrator instance. Ids are taken before commit, so a row can
//! become visible after a row with a higher id: each poll looks back [`LOOKBACK`] ids and skips
//! what it has sent, so a late commit is still delivered once.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use utoipa::OpenApi;
use uuid::Uuid;

use super::{ApiError, ErrorBody, S, parse_id};
use crate::AppState;

#[derive(OpenApi)]
#[openapi(paths(all_events, workflow_events))]
pub struct EventsDoc;

const POLL: Duration = Duration::from_millis(200);
const LOOKBACK: i64 = 256;
const PAGE: i64 = 500;

fn last_event_id(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    let Some(v) = headers.get("last-event-id") else {
        return Ok(None);
    };
    let s = v.to_str().unwrap_or("").trim();
    if s.is_empty() {
        return Ok(None);
    }
    match s.parse::<i64>() {
        Ok(n) if n >= 0 => Ok(Some(n)),
        _ => Err(ApiError::bad_request(
            "invalid_header",
            format!("Last-Event-ID {s:?} is not an event id from this stream"),
        )),
    }
}

#[utoipa::path(get, path = "/api/v1/events/stream",
    params(("Last-Event-ID" = Option<i64>, Header, description = "resume after this event id")),
    responses((status = 200, description = "text/event-stream of every workflow's events, from now (or after Last-Event-ID)", content_type = "text/event-stream"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub(super) async fn all_events(State(state): S, headers: HeaderMap) -> Result<Response, ApiError> {
    let from = match last_event_id(&headers)? {
        Some(n) => n,
        None => state.store.last_event_id().await?,
    };
    Ok(stream(state, None, from))
}

#[utoipa::path(get, path = "/api/v1/workflows/{id}/events/stream",
    params(("id" = String, Path, description = "workflow id"), ("Last-Event-ID" = Option<i64>, Header, description = "resume after this event id")),
    responses((status = 200, description = "text/event-stream of the workflow's events from its start (or after Last-Event-ID)", content_type = "text/event-stream"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn workflow_events(
    State(state): S,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let from = last_event_id(&headers)?.unwrap_or(0);
    if state.store.get_workflow(id).await?.is_none() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("workflow {id} does not exist"),
        ));
    }
    Ok(stream(state, Some(id), from))
}

struct Cursor {
    state: Arc<AppState>,
    workflow: Option<Uuid>,
    /// Nothing at or below it is ever sent (the client's Last-Event-ID).
    floor: i64,
    /// The highest id sent.
    high: i64,
    /// Ids sent within the look-back window.
    sent: BTreeSet<i64>,
    /// Read without pausing first (the first read, or after a full page).
    first: bool,
}

fn stream(state: Arc<AppState>, workflow: Option<Uuid>, from: i64) -> Response {
    let shutdown = state.shutdown.clone();
    let cursor = Cursor {
        state,
        workflow,
        floor: from,
        high: from,
        sent: BTreeSet::new(),
        first: true,
    };
    let events = futures::stream::unfold(cursor, |mut c| async move {
        loop {
            if !c.first {
                tokio::time::sleep(POLL).await;
            }
            c.first = false;
            let low = (c.high - LOOKBACK).max(c.floor);
            let rows = match c.state.store.events_after(low, c.workflow, PAGE).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %e, "reading events for a live stream failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            // A full page: more is waiting, read on without the pause.
            c.first = rows.len() as i64 == PAGE;
            let mut out = Vec::new();
            for r in rows {
                if !c.sent.insert(r.id) {
                    continue;
                }
                c.high = c.high.max(r.id);
                let data = serde_json::to_string(&r).unwrap_or_else(|_| "{}".into());
                out.push(Ok::<_, Infallible>(
                    Event::default()
                        .id(r.id.to_string())
                        .event(r.kind.clone())
                        .data(data),
                ));
            }
            let keep_from = (c.high - LOOKBACK).max(c.floor);
            c.sent = c.sent.split_off(&keep_from);
            if !out.is_empty() {
                return Some((futures::stream::iter(out), c));
            }
        }
    })
    .flatten()
    .take_until(shutdown.cancelled_owned());
    let mut r = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response();
    r.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    r
}
