//! The job endpoints of earlier clients, mapped onto runs: `POST /v1/run-agent` starts a run,
//! `GET /v1/jobs/{id}` reads one, `GET /v1/jobs/{project_id}/list` lists a project's. A job id
//! is a run id, so the runs API works on jobs too (cancel, wait, events).

use agentd_core::run::{Run, RunFilter, RunStatus};
use agentd_core::{ProjectId, RunId};
use agentd_protocol::job::{JobListQuery, JobResponse, RunAgentRequest, RunAgentResponse};
use agentd_protocol::run::{Multitask, RunErrorBody};
use agentd_protocol::{ErrorEnvelope, ListResponse, PageQuery};
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::runs::{RunRequest, start_run};
use super::{list, page_request, rfc3339};
use crate::auth::middleware::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;

/// The task of a job whose context says what to do but has no `task` of its own.
const CONTEXT_TASK: &str = "Carry out the request described in the context below.";
/// How many recent succeeded runs the estimate averages.
const ESTIMATE_SAMPLE: u32 = 20;

fn job_response(run: Run) -> JobResponse {
    JobResponse {
        job_id: run.id.to_string(),
        project_id: run.project_id.map(|p| p.to_string()),
        agent_type: run.agent,
        status: run.status.to_string(),
        progress: run.progress,
        current_step: run.current_step,
        result: run.result,
        error: run.error.map(|e| RunErrorBody { error_type: e.error_type, message: e.message }),
        created_at: rfc3339(run.created_at),
        started_at: run.started_at.map(rfc3339),
        finished_at: run.finished_at.map(rfc3339),
        #[allow(clippy::cast_precision_loss)]
        active_seconds: run.active_ms as f64 / 1000.0,
    }
}

/// The task and context of a job's `input_context`.
fn task_of(input: Value) -> ApiResult<(String, Option<Value>)> {
    match input {
        Value::String(task) => Ok((task, None)),
        Value::Object(ref map) => match map.get("task") {
            Some(Value::String(task)) => Ok((task.clone(), Some(input))),
            Some(_) => Err(ApiError::invalid("input_context.task", "must be a string")),
            None => Ok((CONTEXT_TASK.to_owned(), Some(input))),
        },
        _ => Err(ApiError::invalid("input_context", "must be a string or an object")),
    }
}

/// The mean duration, in seconds, of the project's recent succeeded runs of `agent`.
async fn estimate(
    state: &AppState,
    caller: &agentd_core::auth::Principal,
    project: ProjectId,
    agent: &str,
) -> ApiResult<Option<f64>> {
    let recent = state
        .store
        .list_runs(
            caller.owner_filter(),
            RunFilter { project_id: Some(project), status: Some(RunStatus::Succeeded) },
            agentd_core::page::PageRequest { limit: ESTIMATE_SAMPLE, after: None },
        )
        .await?;
    let durations: Vec<f64> = recent
        .items
        .iter()
        .filter(|r| r.agent == agent)
        .filter_map(|r| Some((r.finished_at? - r.created_at).as_seconds_f64()))
        .collect();
    if durations.is_empty() {
        return Ok(None);
    }
    #[allow(clippy::cast_precision_loss)]
    Ok(Some(durations.iter().sum::<f64>() / durations.len() as f64))
}

/// Start a job (a run) the way earlier clients do. Answers 202 at once, like
/// `POST /v1/projects/{id}/runs`; follow the job with `GET /v1/jobs/{job_id}`.
#[utoipa::path(
    post, path = "/v1/run-agent", tag = "jobs", operation_id = "run_agent",
    request_body = RunAgentRequest,
    responses(
        (status = 202, description = "The job, queued.", body = RunAgentResponse),
        (status = 401, description = "Not signed in.", body = ErrorEnvelope),
        (status = 404, description = "No such project visible to the caller.", body = ErrorEnvelope),
        (status = 422, description = "Unknown agent type, a bad project id, or an empty, oversized or malformed `input_context`.", body = ErrorEnvelope),
        (status = 429, description = "Too many runs started; see `Retry-After`.", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
pub(crate) async fn run_agent(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiJson(body): ApiJson<RunAgentRequest>,
) -> ApiResult<Response> {
    let project: ProjectId =
        body.project_id.parse().map_err(|_| ApiError::invalid("project_id", "is not an id"))?;
    let (task, context) = task_of(body.input_context)?;
    let (run, _) = start_run(
        &state,
        &caller,
        RunRequest {
            project: Some(project),
            agent: body.agent_type,
            task,
            context,
            conversation: None,
            multitask: Multitask::Enqueue,
            idempotency_key: None,
        },
    )
    .await?;
    let estimated_time = estimate(&state, &caller, project, &run.agent).await?;
    let location = format!("/v1/jobs/{}", run.id);
    let mut response = (
        StatusCode::ACCEPTED,
        ApiJson(RunAgentResponse {
            job_id: run.id.to_string(),
            status: run.status.to_string(),
            estimated_time,
        }),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    Ok(response)
}

/// A job.
#[utoipa::path(
    get, path = "/v1/jobs/{id}", tag = "jobs", operation_id = "get_job",
    params(("id" = String, Path, description = "The job's id (`job_id`).")),
    responses(
        (status = 200, description = "The job.", body = JobResponse),
        (status = 401, description = "Not signed in.", body = ErrorEnvelope),
        (status = 404, description = "No such job visible to the caller.", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
pub(crate) async fn get_job(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiPath(id): ApiPath<RunId>,
) -> ApiResult<ApiJson<JobResponse>> {
    Ok(ApiJson(job_response(state.store.run(caller.owner_filter(), id).await?)))
}

/// A project's jobs, newest first.
#[utoipa::path(
    get, path = "/v1/jobs/{id}/list", tag = "jobs", operation_id = "list_jobs",
    params(("id" = String, Path, description = "The project's id (`project_id`)."), JobListQuery),
    responses(
        (status = 200, description = "A page of jobs.", body = ListResponse<JobResponse>),
        (status = 401, description = "Not signed in.", body = ErrorEnvelope),
        (status = 404, description = "No such project visible to the caller.", body = ErrorEnvelope),
        (status = 422, description = "`limit` outside 1–100 or a cursor not from this list.", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
pub(crate) async fn list_jobs(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiPath(project): ApiPath<ProjectId>,
    ApiQuery(query): ApiQuery<JobListQuery>,
) -> ApiResult<ApiJson<ListResponse<JobResponse>>> {
    let owner = caller.owner_filter();
    state.store.project(owner, project).await?;
    let page = page_request(&PageQuery { limit: query.limit, cursor: query.cursor })?;
    let runs = state
        .store
        .list_runs(owner, RunFilter { project_id: Some(project), status: None }, page)
        .await?;
    Ok(ApiJson(list(runs, job_response)))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn input_context_gives_the_task_and_the_context() {
        assert_eq!(task_of(json!("fix it")).unwrap(), ("fix it".to_owned(), None));
        let obj = json!({"task": "fix it", "files": ["a.rs"]});
        assert_eq!(task_of(obj.clone()).unwrap(), ("fix it".to_owned(), Some(obj)));
        let obj = json!({"goal": "fix it"});
        assert_eq!(task_of(obj.clone()).unwrap(), (CONTEXT_TASK.to_owned(), Some(obj)));
        assert!(task_of(json!({"task": 3})).is_err());
        assert!(task_of(json!(3)).is_err());
    }
}
