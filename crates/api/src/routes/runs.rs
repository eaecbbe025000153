//! Runs: start, read, list, cancel, wait, and their events (SSE or JSON pages); agent types.

use std::convert::Infallible;
use std::time::Duration;

use agentd_core::run::{Created, NewRun, Run, RunFilter, RunInput, RunStatus};
use agentd_core::{ConversationId, ProjectId, RunId};
use agentd_protocol::run::{
    AgentResponse, CreateRunRequest, EventsQuery, Multitask, RunErrorBody, RunEventBody,
    RunEventsPage, RunListQuery, RunResponse, RunTimings, RunUsageBody, WaitQuery,
};
use agentd_protocol::{ErrorEnvelope, ListResponse, PageQuery};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;

use super::{list, page_request, rfc3339};
use crate::auth::middleware::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::feed::EventFeed;
use crate::state::AppState;

/// The largest task text, and the largest serialised context.
const MAX_INPUT_BYTES: usize = 100 * 1024;
/// The longest idempotency key.
const MAX_IDEMPOTENCY_KEY: usize = 255;

pub(crate) fn run_response(run: Run) -> RunResponse {
    RunResponse {
        id: run.id.to_string(),
        project_id: run.project_id.map(|p| p.to_string()),
        conversation_id: run.conversation_id.map(|c| c.to_string()),
        agent: run.agent,
        input: agentd_protocol::run::RunInput { task: run.input.task, context: run.input.context },
        status: run.status.to_string(),
        progress: run.progress,
        current_step: run.current_step,
        attempts: run.attempt,
        cancel_requested: run.cancel_requested_at.is_some(),
        usage: RunUsageBody {
            llm_calls: run.usage.llm_calls,
            input_tokens: run.usage.input_tokens,
            cached_tokens: run.usage.cached_tokens,
            output_tokens: run.usage.output_tokens,
            reasoning_tokens: run.usage.reasoning_tokens,
            cost_usd: run.usage.cost_usd,
            unpriced_calls: run.usage.unpriced_calls,
        },
        result: run.result,
        error: run.error.map(|e| RunErrorBody { error_type: e.error_type, message: e.message }),
        timings: RunTimings {
            created_at: rfc3339(run.created_at),
            started_at: run.started_at.map(rfc3339),
            finished_at: run.finished_at.map(rfc3339),
            #[allow(clippy::cast_precision_loss)]
            active_seconds: run.active_ms as f64 / 1000.0,
        },
        created_at: rfc3339(run.created_at),
        updated_at: rfc3339(run.updated_at),
    }
}

/// The idempotency key of a request, validated.
pub(crate) fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<String>> {
    let Some(value) = headers.get("idempotency-key") else { return Ok(None) };
    let key = value
        .to_str()
        .map_err(|_| ApiError::invalid("Idempotency-Key", "must be visible ASCII"))?;
    if key.is_empty()
        || key.len() > MAX_IDEMPOTENCY_KEY
        || !key.bytes().all(|b| (0x21..0x7f).contains(&b))
    {
        return Err(ApiError::invalid(
            "Idempotency-Key",
            "must be 1 to 255 visible ASCII characters",
        ));
    }
    Ok(Some(key.to_owned()))
}

/// Everything a new run needs, checked: used by this route and by the compatibility and chat
/// routes, which start runs too.
pub(crate) struct RunRequest {
    pub(crate) project: Option<ProjectId>,
    pub(crate) agent: String,
    pub(crate) task: String,
    pub(crate) context: Option<serde_json::Value>,
    pub(crate) conversation: Option<ConversationId>,
    pub(crate) multitask: Multitask,
    pub(crate) idempotency_key: Option<String>,
}

/// Validates and creates a run for `caller`.
pub(crate) async fn start_run(
    state: &AppState,
    caller: &agentd_core::auth::Principal,
    req: RunRequest,
) -> ApiResult<(Run, bool)> {
    if !state.profiles.contains_key(&req.agent) {
        return Err(ApiError::invalid(
            "agent",
            format!("unknown agent type {:?}; GET /v1/agents lists them", req.agent),
        ));
    }
    if req.task.trim().is_empty() || req.task.len() > MAX_INPUT_BYTES {
        return Err(ApiError::invalid("input.task", "must be 1 byte to 100 KB of text"));
    }
    if let Some(context) = &req.context
        && serde_json::to_vec(context).map_or(usize::MAX, |v| v.len()) > MAX_INPUT_BYTES
    {
        return Err(ApiError::invalid("input.context", "must be at most 100 KB of JSON"));
    }
    let owner = caller.owner_filter();
    if let Some(project) = req.project {
        state.store.project(owner, project).await?;
    }
    if let Some(conversation) = req.conversation {
        let c = state.store.conversation(owner, conversation).await?;
        if let (Some(cp), Some(rp)) = (c.project_id, req.project)
            && cp != rp
        {
            return Err(ApiError::invalid("conversation_id", "belongs to another project"));
        }
    }
    let created = state
        .store
        .create_run(NewRun {
            owner_id: caller.user_id,
            project_id: req.project,
            conversation_id: req.conversation,
            agent: req.agent,
            input: RunInput { task: req.task, context: req.context },
            idempotency_key: req.idempotency_key,
            max_attempts: state.config.run_max_attempts,
            reject_if_busy: req.multitask == Multitask::Reject,
        })
        .await?;
    match created {
        Created::New(run) => Ok((run, true)),
        Created::Existing(run) => Ok((run, false)),
        Created::ConversationBusy => Err(ApiError::ConversationBusy),
    }
}

pub(crate) fn accepted(run: Run, created: bool) -> Response {
    let location = format!("/v1/runs/{}", run.id);
    let mut response = (StatusCode::ACCEPTED, ApiJson(run_response(run))).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    if !created {
        response.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}

/// Start a run of an agent on a project. It is queued and runs in the background: follow it
/// with `GET /v1/runs/{id}`, `/wait` or `/events`. With an `Idempotency-Key` header, repeating
/// the request returns the same run.
#[utoipa::path(
    post, path = "/v1/projects/{id}/runs", tag = "runs", operation_id = "create_run",
    params(
        ("id" = String, Path, description = "The project's id."),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes the request safe to repeat: the same key returns the same run."),
    ),
    request_body = CreateRunRequest,
    responses(
        (status = 202, description = "The run, queued (or the run created earlier with this idempotency key, with `Idempotent-Replayed: true`).", body = RunResponse),
        (status = 401, description = "Not signed in.", body = ErrorEnvelope),
        (status = 404, description = "No such project or conversation visible to the caller.", body = ErrorEnvelope),
        (status = 409, description = "`conversation_busy`: the conversation has a run that has not ended and `multitask` is `reject`.", body = ErrorEnvelope),
        (status = 422, description = "Unknown agent type, empty or oversized input.", body = ErrorEnvelope),
        (status = 429, description = "Too many runs started; see `Retry-After`.", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
pub(crate) async fn create_run(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiPath(project): ApiPath<ProjectId>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CreateRunRequest>,
) -> ApiResult<Response> {
    let conversation = body
        .conversation_id
        .as_deref()
        .map(|c| {
            c.parse::<ConversationId>()
                .map_err(|_| ApiError::invalid("conversation_id", "is not an id"))
        })
        .transpose()?;
    let (run, created) = start_run(
        &state,
        &caller,
        RunRequest {
            project: Some(project),
            agent: body.agent,
            task: body.input.task,
            context: body.input.context,
            conversation,
            multitask: body.multitask,
            idempotency_key: idempotency_key(&headers)?,
        },
    )
    .await?;
    Ok(accepted(run, created))
}

/// A run.
#[utoipa::path(
    get, path = "/v1/runs/{id}", tag = "runs", operation_id = "get_run",
    params(("id" = String, Path, description = "The run's id.")),
    responses(
        (status = 200, description = "The run.", body = RunResponse),
        (status = 401, description = "Not signed in.", body = ErrorEnvelope),
        (status = 404, description = "No such run visible to the caller.", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
pub(crate) async fn get_run(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiPath(id): ApiPath<RunId>,
) -> ApiResult<ApiJson<RunResponse>> {
    Ok(ApiJson(run_response(state.store.run(caller.owner_filter(), id).await?)))
}

/// A project's runs, newest first.
#[utoipa::path(
    get, path = "/v1/projects/{id}/runs", tag = "runs", operation_id = "list_runs",
    params(("id" = String, Path, description = "The project's id."), RunListQuery),
    responses(
        (status = 200, description = "A page of runs.", body = ListResponse<RunResponse>),
        (status = 401, description = "Not signed in.", body = ErrorEnvelope),
        (status = 404, description = "No such project visible to the caller.", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
pub(crate) async fn list_runs(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiPath(project): ApiPath<ProjectId>,
    ApiQuery(query): ApiQuery<RunListQuery>,
) -> ApiResult<ApiJson<ListResponse<RunResponse>>> {
    let owner = caller.owner_filter();
    state.store.project(owner, project).await?;
    let status = query
        .status
        .as_deref()
        .map(|s| {
            s.parse::<RunStatus>().map_err(|_| ApiError::invalid("status", "is not a run status"))
        })
        .transpose()?;
    let page = page_request(&PageQuery { limit: query.limit, cursor: query.cursor })?;
    let runs =
        state.store.list_runs(owner, RunFilter { project_id: Some(project), status }, page).await?;
    Ok(ApiJson(list(runs, run_response)))
}

/// Cancel a run. A queued or waiting run ends at once; a running one stops within about two
/// seconds (its model call or tool is interrupted). Cancelling an ended run changes nothing.
#[utoipa::path(
    post, path = "/v1/runs/{id}/cancel", tag = "runs", operation_id = "cancel_run",
    params(("id" = String, Path, description = "The run's id.")),
    responses(
        (status = 202, description = "The run after the request (`cancel_requested` is set; `status` becomes `cancelled` when it has stopped).", body = RunResponse),
        (status = 401, description = "Not signed in.", body = ErrorEnvelope),
        (status = 404, description = "No such run visible to the caller.", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
pub(crate) async fn cancel_run(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiPath(id): ApiPath<RunId>,
) -> ApiResult<(StatusCode, ApiJson<RunResponse>)> {
    let run = state.store.request_cancel(caller.owner_filter(), id).await?;
    Ok((StatusCode::ACCEPTED, ApiJson(run_response(run))))
}

/// Waits until `run` has ended or `timeout` passed, and returns it as it is then.
pub(crate) async fn wait_for(state: &AppState, run: Run, timeout: Duration) -> ApiResult<Run> {
    if run.status.is_terminal() || timeout.is_zero() {
        return Ok(run);
    }
    let deadline = tokio::time::Instant::now() + timeout;
    let mut feed = EventFeed::new(state.store.clone(), run.id, 0, state.lifecycle.stopping());
    loop {
        match tokio::time::timeout_at(deadline, feed.next()).await {
            Ok(Ok(Some(_))) => {}
            Ok(Ok(None)) | Err(_) => break,
            Ok(Err(e)) => return Err(e.into()),
        }
    }
    Ok(state.store.run(None, run.id).await?)
}

/// Wait for a run to end (a long poll): answers as soon as the run has ended, or after
/// `timeout_seconds` with the run as it is then.
#[utoipa::path(
    get, path = "/v1/runs/{id}/wait", tag = "runs", operation_id = "wait_run",
    params(("id" = String, Path, description = "The run's id."), WaitQuery),
    responses(
        (status = 200, description = "The run: ended, or as it is when the timeout passed.", body = RunResponse),
        (status = 401, description = "Not signed in.", body = ErrorEnvelope),
        (status = 404, description = "No such run visible to the caller.", body = ErrorEnvelope),
        (status = 422, description = "`timeout_seconds` out of 0–300.", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
pub(crate) async fn wait_run(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiPath(id): ApiPath<RunId>,
    ApiQuery(query): ApiQuery<WaitQuery>,
) -> ApiResult<ApiJson<RunResponse>> {
    let timeout = query.timeout_seconds.unwrap_or(30);
    if timeout > 300 {
        return Err(ApiError::invalid("timeout_seconds", "must be between 0 and 300"));
    }
    let run = state.store.run(caller.owner_filter(), id).await?;
    let run = wait_for(&state, run, Duration::from_secs(timeout)).await?;
    Ok(ApiJson(run_response(run)))
}

pub(crate) fn event_body(e: agentd_core::run::RunEvent) -> RunEventBody {
    RunEventBody {
        seq: e.seq,
        event_type: e.event_type,
        data: e.data,
        created_at: rfc3339(e.created_at),
    }
}

fn wants_sse(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/event-stream"))
}

/// A run's events as an SSE stream from `after`: `id` is the sequence number, `event` the type,
/// `data` the event as JSON. The stream ends after `run.completed`.
pub(crate) fn sse(state: &AppState, run: RunId, after: i64) -> Response {
    let feed = EventFeed::new(state.store.clone(), run, after, state.lifecycle.stopping());
    let stream = sse_stream(feed);
    let mut response = Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)).text("keep-alive"))
        .into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // Proxies (nginx) must not buffer the stream.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

fn sse_stream(feed: EventFeed) -> impl Stream<Item = Result<Event, Infallible>> + Send {
    futures::stream::unfold(
        (feed, Vec::new()),
        |(mut feed, mut queue): (EventFeed, Vec<Event>)| async move {
            loop {
                if !queue.is_empty() {
                    let next = queue.remove(0);
                    return Some((Ok(next), (feed, queue)));
                }
                match feed.next().await {
                    Ok(Some(events)) => {
                        queue = events
                            .into_iter()
                            .map(|e| {
                                let seq = e.seq;
                                let kind = e.event_type.clone();
                                let data =
                                    serde_json::to_string(&event_body(e)).unwrap_or_default();
                                Event::default().id(seq.to_string()).event(kind).data(data)
                            })
                            .collect();
                    }
                    Ok(None) => return None,
                    Err(err) => {
                        tracing::warn!(error = %err, "reading events failed; ending the stream");
                        return None;
                    }
                }
            }
        },
    )
}

/// A run's events: an SSE stream when the request accepts `text/event-stream` (resume with
/// `Last-Event-ID`; keep-alive comments every 15 s; the stream ends after `run.completed`),
/// otherwise a JSON page of the events after `after`.
#[utoipa::path(
    get, path = "/v1/runs/{id}/events", tag = "runs", operation_id = "run_events",
    params(
        ("id" = String, Path, description = "The run's id."),
        ("Last-Event-ID" = Option<String>, Header, description = "SSE: resume after this event."),
        EventsQuery,
    ),
    responses(
        (status = 200, description = "A JSON page of events, or (with `Accept: text/event-stream`) the SSE stream of `RunEventBody` items.", body = RunEventsPage),
        (status = 401, description = "Not signed in.", body = ErrorEnvelope),
        (status = 404, description = "No such run visible to the caller.", body = ErrorEnvelope),
        (status = 422, description = "A bad `after`, `limit` or `Last-Event-ID`.", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
pub(crate) async fn run_events(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiPath(id): ApiPath<RunId>,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<EventsQuery>,
) -> ApiResult<Response> {
    let run = state.store.run(caller.owner_filter(), id).await?;
    let mut after = query.after.unwrap_or(0);
    if after < 0 {
        return Err(ApiError::invalid("after", "must not be negative"));
    }
    if wants_sse(&headers) {
        if let Some(last) = headers.get("last-event-id") {
            after = last
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<i64>().ok())
                .filter(|v| *v >= 0)
                .ok_or_else(|| {
                    ApiError::invalid("Last-Event-ID", "must be an event's sequence number")
                })?;
        }
        return Ok(sse(&state, run.id, after));
    }
    let limit = query.limit.unwrap_or(200);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be between 1 and 1000"));
    }
    let events = state.store.events(run.id, after, limit).await?;
    let next_after = events.last().map_or(after, |e| e.seq);
    let complete =
        run.status.is_terminal() && state.store.events(run.id, next_after, 1).await?.is_empty();
    Ok(ApiJson(RunEventsPage {
        data: events.into_iter().map(event_body).collect(),
        next_after,
        complete,
    })
    .into_response())
}

/// The agent types runs can use.
#[utoipa::path(
    get, path = "/v1/agents", tag = "runs", operation_id = "list_agents",
    responses(
        (status = 200, description = "Every agent type, built in or configured.", body = Vec<AgentResponse>),
        (status = 401, description = "Not signed in.", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
pub(crate) async fn list_agents(
    State(state): State<AppState>,
    Caller(_caller): Caller,
) -> ApiJson<Vec<AgentResponse>> {
    ApiJson(
        state
            .profiles
            .values()
            .map(|p| AgentResponse {
                name: p.name.clone(),
                description: p.description.clone(),
                tools: p.tools.clone(),
                approval: serde_json::to_value(p.approval)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                max_steps: p.limits.max_steps,
                max_active_seconds: p.limits.max_active_seconds,
                max_tokens: p.limits.max_tokens,
                max_cost_usd: p.limits.max_cost_usd,
            })
            .collect(),
    )
}
