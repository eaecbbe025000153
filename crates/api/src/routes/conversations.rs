//! Conversations: created by a user (or by chat), continued by runs, deleted by their owner or
//! by the retention sweep once idle. Another user's conversation is "not found".

use agentd_core::conversation::{Conversation, ConversationMessage, NewConversation};
use agentd_core::{ConversationId, ProjectId};
use agentd_protocol::conversation::{
    ConversationDetail, ConversationMessageBody, ConversationResponse, CreateConversationRequest,
};
use agentd_protocol::{ErrorEnvelope, ListResponse, PageQuery};
use axum::extract::State;
use axum::http::StatusCode;

use super::{check_len, list, page_request, rfc3339};
use crate::auth::middleware::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;

/// The longest title or task reference, in characters.
const MAX_LABEL_CHARS: usize = 200;

pub(crate) fn conversation_response(c: Conversation) -> ConversationResponse {
    ConversationResponse {
        id: c.id.to_string(),
        project_id: c.project_id.map(|p| p.to_string()),
        task_id: c.task_id,
        title: c.title,
        created_at: rfc3339(c.created_at),
        updated_at: rfc3339(c.updated_at),
    }
}

fn message_body(m: ConversationMessage) -> ConversationMessageBody {
    ConversationMessageBody {
        seq: m.seq,
        role: m.role.as_str().to_owned(),
        content: m.content,
        run_id: m.run_id.map(|r| r.to_string()),
        created_at: rfc3339(m.created_at),
    }
}

/// Parses an optional id field of a body.
pub(crate) fn parse_id<T: std::str::FromStr>(
    field: &str,
    value: Option<&str>,
) -> ApiResult<Option<T>> {
    value.map(|v| v.parse::<T>().map_err(|_| ApiError::invalid(field, "is not an id"))).transpose()
}

/// Creates a conversation for `caller`, in `project` if given (which must be the caller's).
pub(crate) async fn create(
    state: &AppState,
    caller: &agentd_core::auth::Principal,
    project: Option<ProjectId>,
    task_id: Option<String>,
    title: Option<String>,
) -> ApiResult<Conversation> {
    if let Some(project) = project {
        state.store.project(caller.owner_filter(), project).await?;
    }
    Ok(state
        .store
        .create_conversation(NewConversation {
            owner_id: caller.user_id,
            project_id: project,
            task_id,
            title,
        })
        .await?)
}

/// Start a conversation. Runs continue it by naming it (`conversation_id`); each sees the
/// messages before it as history.
#[utoipa::path(
    post, path = "/v1/conversations", tag = "conversations", operation_id = "create_conversation",
    request_body = CreateConversationRequest,
    responses(
        (status = 201, description = "Created, with no messages.", body = ConversationResponse),
        (status = 401, description = "Not signed in.", body = ErrorEnvelope),
        (status = 403, description = "An API key without the `write` scope.", body = ErrorEnvelope),
        (status = 404, description = "No such project visible to the caller.", body = ErrorEnvelope),
        (status = 422, description = "A field is invalid (`validation_error`).", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
pub(crate) async fn create_conversation(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiJson(body): ApiJson<CreateConversationRequest>,
) -> ApiResult<(StatusCode, ApiJson<ConversationResponse>)> {
    let mut problems = Vec::new();
    for (field, value) in [("task_id", &body.task_id), ("title", &body.title)] {
        if let Some(v) = value
            && let Err(ApiError::Validation(mut p)) = check_len(field, v, 1, MAX_LABEL_CHARS)
        {
            problems.append(&mut p);
        }
    }
    if !problems.is_empty() {
        return Err(ApiError::Validation(problems));
    }
    let project = parse_id::<ProjectId>("project_id", body.project_id.as_deref())?;
    let conversation = create(&state, &caller, project, body.task_id, body.title).await?;
    Ok((StatusCode::CREATED, ApiJson(conversation_response(conversation))))
}

/// The caller's conversations (admins: everyone's), newest first.
#[utoipa::path(
    get, path = "/v1/conversations", tag = "conversations", operation_id = "list_conversations",
    params(PageQuery),
    responses(
        (status = 200, description = "A page of conversations, newest first.", body = ListResponse<ConversationResponse>),
        (status = 401, description = "Not signed in.", body = ErrorEnvelope),
        (status = 422, description = "`limit` outside 1–100 or a cursor not from this list.", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
pub(crate) async fn list_conversations(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> ApiResult<ApiJson<ListResponse<ConversationResponse>>> {
    let page = page_request(&query)?;
    let page = state.store.list_conversations(caller.owner_filter(), page).await?;
    Ok(ApiJson(list(page, conversation_response)))
}

/// A conversation with its messages.
#[utoipa::path(
    get, path = "/v1/conversations/{id}", tag = "conversations", operation_id = "get_conversation",
    params(("id" = String, Path, description = "The conversation's id.")),
    responses(
        (status = 200, description = "The conversation and every message, in order.", body = ConversationDetail),
        (status = 401, description = "Not signed in.", body = ErrorEnvelope),
        (status = 404, description = "No such conversation visible to the caller.", body = ErrorEnvelope),
        (status = 422, description = "The id is not a UUID.", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
pub(crate) async fn get_conversation(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiPath(id): ApiPath<ConversationId>,
) -> ApiResult<ApiJson<ConversationDetail>> {
    let c = state.store.conversation(caller.owner_filter(), id).await?;
    let messages = state.store.messages(c.id).await?;
    let c = conversation_response(c);
    Ok(ApiJson(ConversationDetail {
        id: c.id,
        project_id: c.project_id,
        task_id: c.task_id,
        title: c.title,
        created_at: c.created_at,
        updated_at: c.updated_at,
        messages: messages.into_iter().map(message_body).collect(),
    }))
}

/// Delete a conversation and its messages. Its runs stay (no longer linked to it).
#[utoipa::path(
    delete, path = "/v1/conversations/{id}", tag = "conversations", operation_id = "delete_conversation",
    params(("id" = String, Path, description = "The conversation's id.")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 401, description = "Not signed in.", body = ErrorEnvelope),
        (status = 403, description = "An API key without the `write` scope.", body = ErrorEnvelope),
        (status = 404, description = "No such conversation visible to the caller.", body = ErrorEnvelope),
        (status = 422, description = "The id is not a UUID.", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
pub(crate) async fn delete_conversation(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiPath(id): ApiPath<ConversationId>,
) -> ApiResult<StatusCode> {
    state.store.delete_conversation(caller.owner_filter(), id).await?;
    Ok(StatusCode::NO_CONTENT)
}
