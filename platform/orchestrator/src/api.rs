//! The REST API. Every error is JSON `{"error":{"code","message","details"}}` with a 4xx status
//! for anything a client did; extractor rejections are mapped too, so bad input never yields a
//! plain-text body or a 500.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use platform_core::{Stage, WorkflowState, WorkflowType};
use platform_store::{ListFilter, NewWorkflow, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{OpenApi, ToSchema};
use uuid::Uuid;

use crate::AppState;

pub mod events;
pub mod operator;

type S = State<Arc<AppState>>;

#[derive(OpenApi)]
#[openapi(
    info(title = "platform orchestrator", description = "Workflows through five agents on Redis Streams and Postgres."),
    paths(create_workflow, list_workflows, get_workflow, cancel_workflow, list_agents, health, live, ready),
    components(schemas(CreateWorkflow, ErrorBody, ErrorDetail, WorkflowList, HealthBody)),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
pub struct ApiDoc;

struct BearerAuth;
impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let c = openapi.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

pub fn router(state: Arc<AppState>) -> Router {
    let limit = state.cfg.body_limit;
    let api = Router::new()
        .route("/workflows", post(create_workflow).get(list_workflows))
        .route("/workflows/{id}", get(get_workflow))
        .route("/workflows/{id}/cancel", post(cancel_workflow))
        .route("/agents", get(list_agents))
        .route("/openapi.json", get(openapi))
        .merge(operator_routes())
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            backing_timeout,
        ))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth));
    Router::new()
        .nest("/api/v1", api)
        .route("/api/v1/health", get(health))
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .route(
            "/metrics",
            get(metrics).route_layer(middleware::from_fn_with_state(
                state.clone(),
                backing_timeout,
            )),
        )
        .merge(crate::ui::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            panic_response,
        ))
        .layer(middleware::map_response(crate::ui::security_headers))
        .with_state(state)
}

/// The operator's routes (api/operator.rs, api/events.rs), behind the same token.
fn operator_routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/dlq", get(operator::list_dlq))
        .route("/dlq/{kind}/{entry}/redrive", post(operator::redrive))
        .route("/workflows/{id}/retry", post(operator::retry_workflow))
        .route("/events/stream", get(events::all_events))
        .route(
            "/workflows/{id}/events/stream",
            get(events::workflow_events),
        )
}

// ---------------------------------------------------------------- errors

#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `not_found`, `invalid_body`.
    code: String,
    message: String,
    #[schema(value_type = Object)]
    details: Value,
}

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    details: Value,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: Value::Null,
        }
    }
    fn details(mut self, d: Value) -> Self {
        self.details = d;
        self
    }
    fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            message,
        )
    }
    fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    fn unavailable(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "backing service failed");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "a backing service (Postgres or Redis) is unavailable; retry shortly",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body =
            json!({"error": {"code": self.code, "message": self.message, "details": self.details}});
        let mut r = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(id) => ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("workflow {id} does not exist"),
            ),
            StoreError::Conflict { .. } | StoreError::Transition(_) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string())
            }
            other => ApiError::unavailable(other),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let status = r.status();
        let (status, code) = match r {
            JsonRejection::MissingJsonContentType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            JsonRejection::JsonSyntaxError(_) => (StatusCode::BAD_REQUEST, "malformed_json"),
            JsonRejection::JsonDataError(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
            _ if status == StatusCode::PAYLOAD_TOO_LARGE => (status, "body_too_large"),
            _ => (StatusCode::BAD_REQUEST, "invalid_body"),
        };
        ApiError::new(status, code, r.body_text())
    }
}

/// `Json` whose rejections are our JSON errors (through `From<JsonRejection> for ApiError`).
#[derive(FromRequest)]
#[from_request(via(Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "internal error; see the orchestrator log",
    )
    .into_response()
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such route; see /api/v1/openapi.json",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this route; see /api/v1/openapi.json",
    )
}

fn parse_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| {
        ApiError::bad_request(
            "invalid_id",
            format!("{raw:?} is not a workflow id (a UUID)"),
        )
    })
}

// ---------------------------------------------------------------- auth

async fn auth(State(state): S, req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match given {
        Some(t) if constant_time_eq(t.as_bytes(), state.cfg.token.as_bytes()) => next.run(req).await,
        Some(_) => ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "the bearer token is not valid").into_response(),
        None => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing `Authorization: Bearer <token>` header (the token is PLATFORM_API_TOKEN of the orchestrator)",
        )
        .into_response(),
    }
}

/// A request that waits on Postgres or Redis longer than `PLATFORM_DB_TIMEOUT_MS` (a backing
/// service cut off: a partition leaves connections hanging rather than failing) is answered
/// 503 `unavailable` instead of hanging the client. A creation answered so may still commit
/// once the database is back (the outcome is unknown, like any request whose answer is lost).
async fn backing_timeout(State(state): S, req: Request, next: Next) -> Response {
    match tokio::time::timeout(state.cfg.db_timeout, next.run(req)).await {
        Ok(r) => r,
        Err(_) => ApiError::unavailable(format!(
            "no answer from Postgres or Redis within {} ms",
            state.cfg.db_timeout.as_millis()
        ))
        .into_response(),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

// ---------------------------------------------------------------- workflows

/// A new workflow.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWorkflow {
    /// Lower-case letters, digits and `-`, 1–50 characters, starting with a letter.
    name: String,
    /// `app`, `feature` or `bugfix`.
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    description: Option<String>,
    /// A directory of `templates/scaffold/`; default `static-web`.
    #[serde(default)]
    template: Option<String>,
    /// Template parameters (a JSON object).
    #[serde(default)]
    #[schema(value_type = Object)]
    params: Option<Value>,
}

fn valid_name(n: &str) -> bool {
    (1..=50).contains(&n.len())
        && n.starts_with(|c: char| c.is_ascii_lowercase())
        && n.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

#[utoipa::path(post, path = "/api/v1/workflows", request_body = CreateWorkflow,
    responses((status = 201, description = "created", body = Object), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_workflow(
    State(state): S,
    headers: HeaderMap,
    body: ApiJson<CreateWorkflow>,
) -> Result<Response, ApiError> {
    let b = body.0;
    if !valid_name(&b.name) {
        return Err(ApiError::unprocessable(
            "name must be 1-50 characters of a-z, 0-9 and '-', starting with a letter",
        )
        .details(json!({"field": "name"})));
    }
    let kind: WorkflowType = b
        .kind
        .parse()
        .map_err(|e: platform_core::state::ParseError| {
            ApiError::unprocessable(format!("type: {e}")).details(json!({"field": "type"}))
        })?;
    let description = b.description.unwrap_or_default();
    if description.len() > 4000 {
        return Err(
            ApiError::unprocessable("description is longer than 4000 bytes")
                .details(json!({"field": "description"})),
        );
    }
    let template = b.template.unwrap_or_else(|| "static-web".into());
    let known = known_templates(&state.cfg.templates_dir);
    if !known.contains(&template) {
        return Err(
            ApiError::unprocessable(format!("unknown template {template:?}"))
                .details(json!({"field": "template", "available": known})),
        );
    }
    let params = match b.params {
        None => json!({}),
        Some(p @ Value::Object(_)) => p,
        Some(_) => {
            return Err(ApiError::unprocessable("params must be a JSON object")
                .details(json!({"field": "params"})));
        }
    };
    let correlation_id = headers
        .get("x-correlation-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.chars().all(|c| c.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| Uuid::new_v4().to_string());
    // Group commit: the creator loop commits every creation waiting at that moment in one
    // transaction; the answer comes only after that commit.
    let (reply, answer) = tokio::sync::oneshot::channel();
    let new = NewWorkflow {
        name: b.name,
        kind,
        description,
        template,
        params,
        correlation_id,
    };
    if state.creates.send((new, reply)).await.is_err() {
        return Err(ApiError::unavailable("the orchestrator is stopping"));
    }
    let wf = answer
        .await
        .map_err(|_| ApiError::unavailable("the orchestrator is stopping"))??;
    tracing::info!(workflow_id = %wf.id, correlation_id = %wf.correlation_id, "workflow created");
    let location = format!("/api/v1/workflows/{}", wf.id);
    let mut r = (StatusCode::CREATED, Json(wf)).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    Ok(r)
}

fn known_templates(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join("template.toml").is_file())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    v.sort();
    v
}

#[derive(Serialize, ToSchema)]
pub struct WorkflowList {
    #[schema(value_type = Vec<Object>)]
    workflows: Vec<platform_store::WorkflowRow>,
    /// Pass as `cursor` for the next page; null on the last page.
    next_cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/workflows",
    params(("status" = Option<String>, Query, description = "state filter"), ("type" = Option<String>, Query, description = "app|feature|bugfix"),
        ("limit" = Option<u32>, Query, description = "1-100, default 20"), ("cursor" = Option<String>, Query, description = "next_cursor of the previous page")),
    responses((status = 200, body = WorkflowList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn list_workflows(
    State(state): S,
    q: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<WorkflowList>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    for k in q.keys() {
        if !["status", "type", "limit", "cursor"].contains(&k.as_str()) {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("unknown query parameter {k:?}; use status, type, limit, cursor"),
            ));
        }
    }
    let state_f = q
        .get("status")
        .map(|s| s.parse::<WorkflowState>())
        .transpose()
        .map_err(|e| ApiError::bad_request("invalid_query", format!("status: {e}")))?;
    let kind = q
        .get("type")
        .map(|s| s.parse::<WorkflowType>())
        .transpose()
        .map_err(|e| ApiError::bad_request("invalid_query", format!("type: {e}")))?;
    let limit = match q.get("limit") {
        None => 20,
        Some(l) => match l.parse::<i64>() {
            Ok(n) if (1..=100).contains(&n) => n,
            _ => {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    format!("limit {l:?} must be an integer from 1 to 100"),
                ));
            }
        },
    };
    let before = q
        .get("cursor")
        .map(|c| {
            Uuid::parse_str(c).map_err(|_| {
                ApiError::bad_request(
                    "invalid_query",
                    format!("cursor {c:?} is not a cursor from next_cursor"),
                )
            })
        })
        .transpose()?;
    let mut rows = state
        .store
        .list_workflows(&ListFilter {
            state: state_f,
            kind,
            limit: limit + 1,
            before,
        })
        .await?;
    let next_cursor = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|w| w.id.to_string())
    } else {
        None
    };
    Ok(Json(WorkflowList {
        workflows: rows,
        next_cursor,
    }))
}

#[utoipa::path(get, path = "/api/v1/workflows/{id}", params(("id" = String, Path, description = "workflow id")),
    responses((status = 200, description = "workflow with tasks and events", body = Object), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_workflow(State(state): S, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    match state.store.get_workflow(id).await? {
        Some(d) => Ok(Json(d).into_response()),
        None => Err(StoreError::NotFound(id).into()),
    }
}

#[utoipa::path(post, path = "/api/v1/workflows/{id}/cancel", params(("id" = String, Path, description = "workflow id")),
    responses((status = 200, body = Object), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn cancel_workflow(State(state): S, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let wf = state.store.cancel(id, "cancelled through the API").await?;
    tracing::info!(workflow_id = %id, "workflow cancelled");
    Ok(Json(wf).into_response())
}

// ---------------------------------------------------------------- agents

#[utoipa::path(get, path = "/api/v1/agents", responses((status = 200, description = "registered agents", body = Object), (status = 401, body = ErrorBody)))]
async fn list_agents(State(state): S) -> Result<Response, ApiError> {
    let agents = state
        .bus
        .list_agents()
        .await
        .map_err(ApiError::unavailable)?;
    Ok(Json(json!({"agents": agents})).into_response())
}

/// The whole document: the core routes and the operator's.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.merge(operator::OperatorDoc::openapi());
    doc.merge(events::EventsDoc::openapi());
    doc
}

async fn openapi() -> Response {
    Json(openapi_document()).into_response()
}

// ---------------------------------------------------------------- health

#[derive(Serialize, ToSchema)]
pub struct HealthBody {
    status: &'static str,
    version: &'static str,
    git_sha: String,
    #[schema(value_type = Object)]
    checks: Value,
    timestamp: String,
}

async fn checks(state: &AppState) -> (bool, Value) {
    let t = Duration::from_secs(2);
    let db = match tokio::time::timeout(t, state.store.ping()).await {
        Ok(Ok(())) => "ok".to_owned(),
        Ok(Err(e)) => format!("error: {e}"),
        Err(_) => "error: timed out after 2s".to_owned(),
    };
    let redis = match tokio::time::timeout(t, state.bus.ping()).await {
        Ok(Ok(())) => "ok".to_owned(),
        Ok(Err(e)) => format!("error: {e}"),
        Err(_) => "error: timed out after 2s".to_owned(),
    };
    let mut ok = db == "ok" && redis == "ok";
    let mut checks = json!({"database": db, "redis": redis});
    if state.cfg.fault_unhealthy {
        ok = false;
        checks["fault"] = json!("PLATFORM_FAULT=unhealthy");
    }
    (ok, checks)
}

#[utoipa::path(get, path = "/api/v1/health", security(()), responses((status = 200, body = HealthBody), (status = 503, body = HealthBody)))]
async fn health(State(state): S) -> Response {
    let (ok, checks) = checks(&state).await;
    let body = HealthBody {
        status: if ok { "healthy" } else { "unhealthy" },
        version: platform_core::VERSION,
        git_sha: state.cfg.git_sha.clone(),
        checks,
        timestamp: Utc::now().to_rfc3339(),
    };
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

#[utoipa::path(get, path = "/health/live", security(()), responses((status = 200, description = "process up"), (status = 503, description = "fault injected")))]
async fn live(State(state): S) -> Response {
    if state.cfg.fault_unhealthy {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unhealthy"})),
        )
            .into_response();
    }
    Json(json!({"status": "alive"})).into_response()
}

#[utoipa::path(get, path = "/health/ready", security(()), responses((status = 200, description = "db and redis reachable"), (status = 503, description = "not ready")))]
async fn ready(State(state): S) -> Response {
    let (ok, checks) = checks(&state).await;
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        Json(json!({"status": if ok { "ready" } else { "not_ready" }, "checks": checks})),
    )
        .into_response()
}

// ---------------------------------------------------------------- metrics

async fn metrics(State(state): S) -> Response {
    use std::fmt::Write;
    let mut out = String::new();
    state.metrics.render_local(&mut out);
    if let Ok(counts) = state.store.count_by_state().await {
        let _ = writeln!(
            out,
            "# HELP platform_workflows Workflows by state.\n# TYPE platform_workflows gauge"
        );
        for s in WorkflowState::ALL {
            let n = counts
                .iter()
                .find(|(k, _)| k == s.as_str())
                .map(|(_, n)| *n)
                .unwrap_or(0);
            let _ = writeln!(out, "platform_workflows{{state=\"{s}\"}} {n}");
        }
    }
    if let Ok(n) = state.store.outbox_len().await {
        let _ = writeln!(
            out,
            "# HELP platform_outbox_rows Envelopes committed but not yet published.\n# TYPE platform_outbox_rows gauge\nplatform_outbox_rows {n}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP platform_stream_backlog Task entries not yet delivered, per kind.\n# TYPE platform_stream_backlog gauge"
    );
    let mut pend = String::new();
    let mut dlq = String::new();
    for kind in Stage::ALL {
        let backlog = state.bus.task_backlog(kind).await.unwrap_or(0);
        let _ = writeln!(out, "platform_stream_backlog{{kind=\"{kind}\"}} {backlog}");
        if let Ok(st) = state.bus.task_stream_stats(kind).await {
            let _ = writeln!(
                pend,
                "platform_stream_pending{{kind=\"{kind}\"}} {}",
                st.pending
            );
            let _ = writeln!(dlq, "platform_dlq_entries{{kind=\"{kind}\"}} {}", st.dlq);
        }
    }
    let _ = write!(
        out,
        "# HELP platform_stream_pending Delivered but unacknowledged task entries, per kind.\n# TYPE platform_stream_pending gauge\n{pend}"
    );
    let _ = write!(
        out,
        "# HELP platform_dlq_entries Dead-lettered tasks, per kind.\n# TYPE platform_dlq_entries gauge\n{dlq}"
    );
    if let Ok(agents) = state.bus.list_agents().await {
        let _ = writeln!(
            out,
            "# HELP platform_agents Live agents, per kind.\n# TYPE platform_agents gauge"
        );
        for kind in Stage::ALL {
            let n = agents.iter().filter(|a| a.kind == kind.as_str()).count();
            let _ = writeln!(out, "platform_agents{{kind=\"{kind}\"}} {n}");
        }
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn names() {
        assert!(super::valid_name("shop-1"));
        assert!(!super::valid_name("1shop"));
        assert!(!super::valid_name("Shop"));
        assert!(!super::valid_name(""));
        assert!(!super::valid_name(&"a".repeat(51)));
    }
}
