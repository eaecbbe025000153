//! Conversations, chat, and the WebSocket of a run's events.
//!
//! A conversation is a thread of messages that successive runs continue: each run sees the
//! earlier messages as its history and, when it succeeds, adds its task and its answer. Chat is
//! the shortest way to use one: send messages, get the agent's answer (or its events).

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::approval::ApprovalResponse;
use crate::run::RunErrorBody;

/// `POST /v1/conversations`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateConversationRequest {
    /// The project it is about (one of the caller's), if any. Runs continuing the conversation
    /// must be of this project.
    #[serde(default)]
    pub project_id: Option<String>,
    /// The client's own reference (a task or ticket id), 1–200 characters; agentd stores it.
    #[serde(default)]
    pub task_id: Option<String>,
    /// A title, 1–200 characters.
    #[serde(default)]
    pub title: Option<String>,
}

/// A conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ConversationResponse {
    /// Its id.
    pub id: String,
    /// Its project.
    pub project_id: Option<String>,
    /// The client's reference.
    pub task_id: Option<String>,
    /// Its title.
    pub title: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// When a message was last added (retention counts from here). RFC 3339.
    pub updated_at: String,
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ConversationMessageBody {
    /// Its position, from 1.
    pub seq: i64,
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
    /// The run that added it; absent for messages a client sent that no run has taken up yet.
    pub run_id: Option<String>,
    /// RFC 3339.
    pub created_at: String,
}

/// A conversation with its messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ConversationDetail {
    /// Its id.
    pub id: String,
    /// Its project.
    pub project_id: Option<String>,
    /// The client's reference.
    pub task_id: Option<String>,
    /// Its title.
    pub title: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
    /// Every message, in order.
    pub messages: Vec<ConversationMessageBody>,
}

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`; the last message must be the user's.
    pub role: String,
    /// The text, at most 100 KB.
    pub content: String,
}

/// `POST /v1/agent/chat`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatRequest {
    /// 1–100 messages. The last one (the user's) is the run's task; the ones before it are added
    /// to the conversation first, so the run sees them as history. When the conversation has a
    /// run that has not ended, the new run waits for it (`multitask` `enqueue`).
    pub messages: Vec<ChatMessage>,
    /// The project the agent works on (one of the caller's), if any.
    #[serde(default)]
    pub project_id: Option<String>,
    /// The conversation to continue; a new one is created when absent.
    #[serde(default)]
    pub conversation_id: Option<String>,
    /// The agent type (see `GET /v1/agents`); `research` when absent.
    #[serde(default)]
    pub agent: Option<String>,
    /// `true`: answer with the run's events as SSE, to its end. `false` (default): wait for the
    /// answer.
    #[serde(default)]
    pub stream: bool,
}

/// The answer of `POST /v1/agent/chat` without `stream`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChatResponse {
    /// The run that answered.
    pub run_id: String,
    /// The conversation (new or continued).
    pub conversation_id: String,
    /// The run's status when the answer was given: `succeeded` with a message;
    /// `waiting_approval` with pending approvals; `failed`, `cancelled` or `timed_out` with an
    /// error; `queued` or `running` when the wait ran out (follow the run).
    pub status: String,
    /// The agent's final answer, when it succeeded.
    pub message: Option<String>,
    /// The approvals the run waits for (decide them with `POST /v1/approvals/{id}`).
    pub pending_approvals: Vec<ApprovalResponse>,
    /// Why the run ended without an answer.
    pub error: Option<RunErrorBody>,
}

/// `after` of `GET /v1/runs/{id}/ws`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RunSocketQuery {
    /// Send the events after this sequence number (default 0: from the start).
    pub after: Option<i64>,
}

/// The first message a WebSocket client sends when it connected without an `Authorization`
/// header: `{"type": "auth", "token": "…"}` (an access token or an API key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum RunSocketClientMessage {
    /// Authenticates the connection.
    Auth {
        /// An access token or an API key.
        token: String,
    },
}
