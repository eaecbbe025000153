//! The provider-neutral conversation: messages with roles, tool definitions, tool calls and
//! results, the answer, and the deltas of a streamed answer.
//!
//! These types know nothing of any wire protocol; each adapter translates them both ways. They
//! serialise to canonical JSON (object keys sorted), which is what the response cache hashes.

use std::pin::Pin;

use futures::Stream;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::LlmError;
use crate::usage::Usage;

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Instructions for the model.
    System,
    /// The human (or the agent loop speaking for them).
    User,
    /// The model.
    Assistant,
    /// Results of tool calls the model asked for.
    Tool,
}

/// One part of a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Content {
    /// Plain text.
    Text {
        /// The text.
        text: String,
    },
    /// A tool call the model made (assistant messages only).
    ToolCall(ToolCall),
    /// The result of a tool call (tool messages only).
    ToolResult {
        /// The id of the call this answers.
        call_id: String,
        /// What the tool returned, as text.
        content: String,
        /// Whether the tool failed.
        #[serde(default)]
        is_error: bool,
    },
}

/// One message of the conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Who wrote it.
    pub role: Role,
    /// Its parts, in order.
    pub content: Vec<Content>,
}

impl Message {
    /// A system message.
    pub fn system(text: impl Into<String>) -> Self {
        Self { role: Role::System, content: vec![Content::Text { text: text.into() }] }
    }

    /// A user message.
    pub fn user(text: impl Into<String>) -> Self {
        Self { role: Role::User, content: vec![Content::Text { text: text.into() }] }
    }

    /// An assistant message with text only.
    pub fn assistant(text: impl Into<String>) -> Self {
        Self { role: Role::Assistant, content: vec![Content::Text { text: text.into() }] }
    }

    /// The assistant message that replays an earlier answer into the conversation.
    #[must_use]
    pub fn from_response(response: &ChatResponse) -> Self {
        let mut content = Vec::new();
        if !response.text.is_empty() {
            content.push(Content::Text { text: response.text.clone() });
        }
        content.extend(response.tool_calls.iter().cloned().map(Content::ToolCall));
        Self { role: Role::Assistant, content }
    }

    /// A tool message answering the call `call_id`.
    pub fn tool_result(
        call_id: impl Into<String>,
        content: impl Into<String>,
        is_error: bool,
    ) -> Self {
        Self {
            role: Role::Tool,
            content: vec![Content::ToolResult {
                call_id: call_id.into(),
                content: content.into(),
                is_error,
            }],
        }
    }

    /// The text parts, joined.
    #[must_use]
    pub fn text(&self) -> String {
        self.content
            .iter()
            .filter_map(|c| match c {
                Content::Text { text } => Some(text.as_str()),
                Content::ToolCall(_) | Content::ToolResult { .. } => None,
            })
            .collect()
    }

    /// The tool calls in this message.
    pub fn tool_calls(&self) -> impl Iterator<Item = &ToolCall> {
        self.content.iter().filter_map(|c| match c {
            Content::ToolCall(call) => Some(call),
            Content::Text { .. } | Content::ToolResult { .. } => None,
        })
    }
}

/// A call of one tool, as the model asked for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The call's id, quoted back in its result.
    pub id: String,
    /// The tool's name.
    pub name: String,
    /// The arguments, a JSON object.
    pub arguments: Value,
}

/// A tool the model may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolDefinition {
    /// Its name.
    pub name: String,
    /// What it does, for the model.
    pub description: String,
    /// Its parameters as a JSON schema (an object schema).
    pub parameters: Value,
}

/// What to send to a model. The model itself is chosen by the route of the agent type.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ChatRequest {
    /// The conversation so far. System messages may appear anywhere; adapters whose protocol
    /// has a separate system field join them there.
    pub messages: Vec<Message>,
    /// The tools the model may call.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolDefinition>,
    /// Sampling temperature; `Some(0.0)` makes the request cacheable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// The most tokens the answer may have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Sequences that end the answer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<String>,
}

/// Why the model stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// It finished its answer.
    EndTurn,
    /// It wants tool calls run.
    ToolUse,
    /// It hit `max_tokens`.
    MaxTokens,
    /// It produced a stop sequence.
    StopSequence,
    /// The provider filtered the content.
    ContentFilter,
    /// The provider gave a reason we do not know.
    Other,
}

impl StopReason {
    /// The snake_case name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::EndTurn => "end_turn",
            Self::ToolUse => "tool_use",
            Self::MaxTokens => "max_tokens",
            Self::StopSequence => "stop_sequence",
            Self::ContentFilter => "content_filter",
            Self::Other => "other",
        }
    }
}

/// A model's complete answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// The text of the answer.
    pub text: String,
    /// The tools it asked to run, in order.
    pub tool_calls: Vec<ToolCall>,
    /// Why it stopped.
    pub stop_reason: StopReason,
    /// Tokens, normalised (see [`Usage`]). Zero for a cache hit.
    pub usage: Usage,
    /// The provider that answered (its configured name).
    pub provider: String,
    /// The model that answered.
    pub model: String,
    /// Whether the answer came from the response cache.
    pub cache_hit: bool,
}

/// One item of a streamed answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamEvent {
    /// More answer text.
    TextDelta {
        /// The new text.
        text: String,
    },
    /// The model started a tool call.
    ToolCallStart {
        /// The call's position among this answer's tool calls.
        index: usize,
        /// The call's id.
        id: String,
        /// The tool's name.
        name: String,
    },
    /// More of a tool call's JSON arguments.
    ToolCallDelta {
        /// The call's position.
        index: usize,
        /// The next fragment of the arguments' JSON text.
        arguments: String,
    },
    /// The answer is complete; always the last item of a successful stream.
    Completed(ChatResponse),
}

impl StreamEvent {
    /// Whether this event carries answer content (the point after which a stream is never
    /// retried or failed over).
    #[must_use]
    pub const fn is_delta(&self) -> bool {
        !matches!(self, Self::Completed(_))
    }
}

/// A streamed answer: deltas, then [`StreamEvent::Completed`], or an error as the last item.
pub type ChatStream = Pin<Box<dyn Stream<Item = Result<StreamEvent, LlmError>> + Send>>;
