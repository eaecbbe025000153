//! Chat: messages in, the agent's answer out. A chat is a run in a conversation (a new one
//! unless the client names one): the earlier messages join the conversation as history, the last
//! one is the run's task. The answer is the run's events as SSE (`stream: true`) or, after
//! waiting, the final message with any approvals the run waits for.

use std::time::Duration;

use agentd_core::approval::ApprovalStatus;
use agentd_core::conversation::{MessageRole, NewMessage};
use agentd_core::run::{Run, RunStatus, event};
use agentd_core::{ApprovalId, ConversationId, ProjectId};
use agentd_protocol::conversation::{ChatRequest, ChatResponse};
use agentd_protocol::run::{Multitask, RunErrorBody};
use agentd_protocol::{ErrorDetail, ErrorEnvelope};
use axum::extract::State;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};

use super::approvals::approval_response;
use super::conversations::parse_id;
use super::runs::{RunRequest, sse, start_run};
use crate::auth::middleware::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::feed::EventFeed;
use crate::state::AppState;

/// The most messages one chat request may carry.
const MAX_MESSAGES: usize = 100;
/// The largest message, in bytes.
const MAX_MESSAGE_BYTES: usize = 100 * 1024;
/// The agent type of a chat that names none: it reads and answers, and changes nothing.
const DEFAULT_AGENT: &str = "research";
/// How long a chat waits for its answer (the longest `GET /v1/runs/{id}/wait` allows).
const WAIT: Duration = Duration::from_secs(300);

/// Every problem with the messages, each naming its field.
fn check_messages(body: &ChatRequest) -> Result<Vec<NewMessage>, ApiError> {
    let mut problems = Vec::new();
    if body.messages.is_empty() || body.messages.len() > MAX_MESSAGES {
        problems.push(ErrorDetail::field(
            "messages",
            format!("must hold 1 to {MAX_MESSAGES} messages"),
        ));
    }
    let mut messages = Vec::with_capacity(body.messages.len());
    for (i, m) in body.messages.iter().enumerate() {
        match m.role.parse::<MessageRole>() {
            Ok(role) => messages.push(NewMessage { role, content: m.content.clone() }),
            Err(_) => problems.push(ErrorDetail::field(
                format!("messages[{i}].role"),
                "must be system, user or assistant",
            )),
        }
        if m.content.len() > MAX_MESSAGE_BYTES {
            problems.push(ErrorDetail::field(
                format!("messages[{i}].content"),
                "must be at most 100 KB",
            ));
        }
    }
    if let Some((i, last)) = body.messages.iter().enumerate().next_back() {
        if last.role != "user" {
            problems.push(ErrorDetail::field(
                format!("messages[{i}].role"),
                "the last message must be the user's",
            ));
        }
        if last.content.trim().is_empty() {
            problems.push(ErrorDetail::field(
                format!("messages[{i}].content"),
                "the last message must not be empty",
            ));
        }
    }
    if problems.is_empty() { Ok(messages) } else { Err(ApiError::Validation(problems)) }
}

/// Chat with an agent. Starts a run in a conversation (a new one when `conversation_id` is
/// absent) and answers, with `stream: true`, with the run's events as SSE to its end (the
/// `X-Run-Id` and `X-Conversation-Id` headers name them), otherwise after waiting up to 300 s:
/// the final message, or the approvals the run waits for, or its error.
#[utoipa::path(
    post, path = "/v1/agent/chat", tag = "conversations", operation_id = "chat",
    request_body = ChatRequest,
    responses(
        (status = 200, description = "The answer; or, with `stream: true`, the SSE stream of `RunEventBody` items (as `GET /v1/runs/{id}/events`).", body = ChatResponse),
        (status = 401, description = "Not signed in.", body = ErrorEnvelope),
        (status = 404, description = "No such project or conversation visible to the caller.", body = ErrorEnvelope),
        (status = 422, description = "No messages or more than 100, a message over 100 KB, an unknown role, a last message that is not the user's, an unknown agent (`validation_error`; `details` names each problem).", body = ErrorEnvelope),
        (status = 429, description = "Too many runs started; see `Retry-After`.", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
pub(crate) async fn chat(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiJson(body): ApiJson<ChatRequest>,
) -> ApiResult<Response> {
    let mut messages = check_messages(&body)?;
    let project = parse_id::<ProjectId>("project_id", body.project_id.as_deref())?;
    let conversation =
        parse_id::<ConversationId>("conversation_id", body.conversation_id.as_deref())?;
    let agent = body.agent.unwrap_or_else(|| DEFAULT_AGENT.to_owned());
    if !state.profiles.contains_key(&agent) {
        return Err(ApiError::invalid(
            "agent",
            format!("unknown agent type {agent:?}; GET /v1/agents lists them"),
        ));
    }
    let owner = caller.owner_filter();
    // Everything that could refuse the run is checked before the history is written.
    let (conversation, project) = match conversation {
        Some(id) => {
            let c = state.store.conversation(owner, id).await?;
            if let Some(project) = project {
                state.store.project(owner, project).await?;
                if c.project_id.is_some_and(|p| p != project) {
                    return Err(ApiError::invalid("conversation_id", "belongs to another project"));
                }
            }
            // A chat that names no project works on the conversation's.
            (c.id, project.or(c.project_id))
        }
        None => {
            (super::conversations::create(&state, &caller, project, None, None).await?.id, project)
        }
    };
    let task = messages.pop().map(|m| m.content).unwrap_or_default();
    if !messages.is_empty() {
        state.store.append_messages(conversation, None, messages).await?;
    }
    let (run, _) = start_run(
        &state,
        &caller,
        RunRequest {
            project,
            agent,
            task,
            context: None,
            conversation: Some(conversation),
            multitask: Multitask::Enqueue,
            idempotency_key: None,
        },
    )
    .await?;
    if body.stream {
        let mut response = sse(&state, run.id, 0);
        let headers = response.headers_mut();
        for (name, value) in
            [("x-run-id", run.id.to_string()), ("x-conversation-id", conversation.to_string())]
        {
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert(name, v);
            }
        }
        return Ok(response);
    }
    let (run, approvals) = answer_of(&state, run).await?;
    let mut pending = Vec::new();
    for id in approvals {
        let approval = state.store.approval(owner, id).await?;
        if approval.status == ApprovalStatus::Pending {
            pending.push(approval_response(approval));
        }
    }
    Ok(ApiJson(ChatResponse {
        run_id: run.id.to_string(),
        conversation_id: conversation.to_string(),
        status: run.status.to_string(),
        message: run
            .result
            .as_ref()
            .and_then(|r| r.get("text"))
            .and_then(|t| t.as_str())
            .map(str::to_owned),
        pending_approvals: pending,
        error: run.error.map(|e| RunErrorBody { error_type: e.error_type, message: e.message }),
    })
    .into_response())
}

/// Follows the run until it ends, waits for a human, or [`WAIT`] passes; returns it then, with
/// the approvals it asked for.
async fn answer_of(state: &AppState, run: Run) -> ApiResult<(Run, Vec<ApprovalId>)> {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut feed = EventFeed::new(state.store.clone(), run.id, 0, state.lifecycle.stopping());
    let mut approvals = Vec::new();
    loop {
        let events = match tokio::time::timeout_at(deadline, feed.next()).await {
            Ok(Ok(Some(events))) => events,
            Ok(Ok(None)) | Err(_) => break,
            Ok(Err(e)) => return Err(e.into()),
        };
        let mut waiting = false;
        for e in events {
            match e.event_type.as_str() {
                event::APPROVAL_REQUESTED => {
                    if let Some(id) = e.data["approval_id"].as_str().and_then(|s| s.parse().ok()) {
                        approvals.push(id);
                    }
                }
                event::RUN_STATUS => {
                    waiting = e.data["status"] == RunStatus::WaitingApproval.as_str();
                }
                _ => {}
            }
        }
        if waiting {
            break;
        }
    }
    Ok((state.store.run(None, run.id).await?, approvals))
}

#[cfg(test)]
mod tests {
    use agentd_protocol::conversation::ChatMessage;

    use super::*;

    fn request(messages: Vec<(&str, String)>) -> ChatRequest {
        ChatRequest {
            messages: messages
                .into_iter()
                .map(|(role, content)| ChatMessage { role: role.into(), content })
                .collect(),
            project_id: None,
            conversation_id: None,
            agent: None,
            stream: false,
        }
    }

    fn fields(err: ApiError) -> Vec<String> {
        match err {
            ApiError::Validation(d) => d.into_iter().filter_map(|d| d.field).collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn messages_are_checked_one_by_one() {
        assert!(check_messages(&request(vec![("user", "hi".into())])).is_ok());
        assert_eq!(fields(check_messages(&request(vec![])).unwrap_err()), ["messages"]);
        let many = (0..101).map(|_| ("user", "x".to_owned())).collect();
        assert_eq!(fields(check_messages(&request(many)).unwrap_err()), ["messages"]);
        let err = check_messages(&request(vec![
            ("robot", "x".into()),
            ("user", "y".repeat(MAX_MESSAGE_BYTES + 1)),
            ("assistant", "z".into()),
        ]))
        .unwrap_err();
        assert_eq!(fields(err), ["messages[0].role", "messages[1].content", "messages[2].role"]);
    }
}
