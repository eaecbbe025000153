//! Checks: start a run of a project's lint, test and build checks; read a run's stored output
//! (a check's full log).

use agentd_core::check::{CHECKS_AGENT, CheckKind};
use agentd_core::run::{Created, NewRun, RunInput};
use agentd_core::{ProjectId, RunId};
use agentd_protocol::ErrorEnvelope;
use agentd_protocol::run::{RunResponse, StartChecksRequest};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::runs::{accepted, idempotency_key};
use crate::auth::middleware::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath};
use crate::state::AppState;

/// The kinds asked for, checked, in the order checks run.
fn kinds(requested: Option<Vec<String>>) -> ApiResult<Vec<CheckKind>> {
    let Some(requested) = requested else { return Ok(CheckKind::ALL.to_vec()) };
    if requested.is_empty() {
        return Err(ApiError::invalid("kinds", "must name at least one of lint, test, build"));
    }
    let mut kinds = Vec::new();
    for (i, name) in requested.iter().enumerate() {
        let kind = name
            .parse::<CheckKind>()
            .map_err(|e| ApiError::invalid(format!("kinds[{i}]"), e.to_string()))?;
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    kinds.sort();
    Ok(kinds)
}

/// Run the project's checks: each kind's configured command (`settings.checks`), or the one
/// detected from the project's files, in the sandbox. It is queued like any run and executed by
/// a worker without a model; its `result` gives every check's status, exit code, duration,
/// output head and tail, stored log and parsed counts. With an `Idempotency-Key` header,
/// repeating the request returns the same run.
#[utoipa::path(
    post, path = "/v1/projects/{id}/checks", tag = "runs", operation_id = "start_checks",
    params(
        ("id" = String, Path, description = "The project's id."),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes the request safe to repeat: the same key returns the same run."),
    ),
    request_body = StartChecksRequest,
    responses(
        (status = 202, description = "The checks run, queued (agent `checks`).", body = RunResponse),
        (status = 401, description = "Not signed in.", body = ErrorEnvelope),
        (status = 403, description = "An API key without the `write` scope.", body = ErrorEnvelope),
        (status = 404, description = "No such project visible to the caller.", body = ErrorEnvelope),
        (status = 422, description = "An unknown kind, or an empty `kinds` (`validation_error`).", body = ErrorEnvelope),
        (status = 429, description = "Too many runs started; see `Retry-After`.", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
pub(crate) async fn start_checks(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiPath(project): ApiPath<ProjectId>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<StartChecksRequest>,
) -> ApiResult<Response> {
    let kinds = kinds(body.kinds)?;
    let idempotency_key = idempotency_key(&headers)?;
    state.store.project(caller.owner_filter(), project).await?;
    let names: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
    let created = state
        .store
        .create_run(NewRun {
            owner_id: caller.user_id,
            project_id: Some(project),
            conversation_id: None,
            agent: CHECKS_AGENT.to_owned(),
            input: RunInput {
                task: format!("Run the project's checks: {}", names.join(", ")),
                context: Some(serde_json::json!({"kinds": names})),
            },
            idempotency_key,
            max_attempts: state.config.run_max_attempts,
            reject_if_busy: false,
        })
        .await?;
    match created {
        Created::New(run) => Ok(accepted(run, true)),
        Created::Existing(run) => Ok(accepted(run, false)),
        Created::ConversationBusy => Err(ApiError::ConversationBusy),
    }
}

/// An output a run stored: a check's full log (`result.checks[].log.blob_id`) or a large tool
/// result. Served as bytes.
#[utoipa::path(
    get, path = "/v1/runs/{id}/blobs/{blob_id}", tag = "runs", operation_id = "get_run_blob",
    params(
        ("id" = String, Path, description = "The run's id."),
        ("blob_id" = String, Path, description = "The stored output's id."),
    ),
    responses(
        (status = 200, description = "The stored bytes.", content((Vec<u8> = "application/octet-stream"))),
        (status = 401, description = "Not signed in.", body = ErrorEnvelope),
        (status = 404, description = "No such run visible to the caller, or no such output of it.", body = ErrorEnvelope),
        (status = 422, description = "An id is not a UUID.", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
pub(crate) async fn run_blob(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiPath((run, blob)): ApiPath<(RunId, uuid::Uuid)>,
) -> ApiResult<Response> {
    state.store.run(caller.owner_filter(), run).await?;
    let content = state.store.run_blob(run, blob).await?;
    let mut response = content.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_default_to_all_and_are_checked_deduplicated_and_ordered() {
        assert_eq!(kinds(None).unwrap(), CheckKind::ALL);
        let k = kinds(Some(vec!["build".into(), "test".into(), "build".into()])).unwrap();
        assert_eq!(k, [CheckKind::Test, CheckKind::Build]);
        let ApiError::Validation(details) =
            kinds(Some(vec!["test".into(), "deploy".into()])).unwrap_err()
        else {
            panic!("not a validation error")
        };
        assert_eq!(details[0].field.as_deref(), Some("kinds[1]"));
        assert!(kinds(Some(vec![])).is_err());
    }
}
