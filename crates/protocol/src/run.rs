//! Runs, their events, agent types, conversations.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

/// What to do when the conversation already has a run that has not ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Multitask {
    /// Queue the new run; it starts when the earlier ones have ended.
    #[default]
    Enqueue,
    /// Refuse with 409 `conversation_busy`.
    Reject,
}

/// The task of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunInput {
    /// What to do, in words (1 byte to 100 KB).
    pub task: String,
    /// Anything else the agent should know (any JSON, at most 100 KB serialised).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Value>,
}

/// `POST /v1/projects/{id}/runs`. Send an `Idempotency-Key` header to make retries safe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRunRequest {
    /// The agent type (see `GET /v1/agents`).
    pub agent: String,
    /// The task.
    pub input: RunInput,
    /// A conversation to continue: its messages are the run's history.
    #[serde(default)]
    pub conversation_id: Option<String>,
    /// What to do if that conversation is busy.
    #[serde(default)]
    pub multitask: Multitask,
}

/// `POST /v1/projects/{id}/checks`: which checks to run. Send an `Idempotency-Key` header to
/// make retries safe.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartChecksRequest {
    /// Any of `lint`, `test`, `build`, run in that order whatever the order given; all three
    /// when absent.
    #[serde(default)]
    pub kinds: Option<Vec<String>>,
}

/// Why a run failed, was cancelled or timed out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RunErrorBody {
    /// Stable: `llm_unavailable`, `max_steps_exceeded`, `active_time_exceeded`, `cancelled`, …
    #[serde(rename = "type")]
    pub error_type: String,
    /// For humans.
    pub message: String,
}

/// Tokens and cost a run spent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RunUsageBody {
    /// Model calls.
    pub llm_calls: u64,
    /// Input tokens (cached included).
    pub input_tokens: u64,
    /// Cached input tokens.
    pub cached_tokens: u64,
    /// Output tokens (reasoning included).
    pub output_tokens: u64,
    /// Reasoning tokens.
    pub reasoning_tokens: u64,
    /// USD, when known.
    pub cost_usd: Option<f64>,
    /// Some calls had no price, so the cost is incomplete.
    pub unpriced_calls: bool,
}

/// When things happened to a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RunTimings {
    /// RFC 3339.
    pub created_at: String,
    /// When a worker first took it.
    pub started_at: Option<String>,
    /// When it ended.
    pub finished_at: Option<String>,
    /// Seconds spent working (not waiting for a worker or a human).
    pub active_seconds: f64,
}

/// A run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RunResponse {
    /// The run's id.
    pub id: String,
    /// Its project.
    pub project_id: Option<String>,
    /// The conversation it continues.
    pub conversation_id: Option<String>,
    /// The agent type.
    pub agent: String,
    /// The task.
    pub input: RunInput,
    /// `queued`, `running`, `waiting_approval`, `succeeded`, `failed`, `cancelled`, `timed_out`.
    pub status: String,
    /// 0–100.
    pub progress: u8,
    /// What it is doing now.
    pub current_step: Option<String>,
    /// How many times a worker has taken it.
    pub attempts: u32,
    /// Whether cancellation was requested.
    pub cancel_requested: bool,
    /// Tokens and cost.
    pub usage: RunUsageBody,
    /// The result, when it succeeded: `{"text": …}`.
    pub result: Option<Value>,
    /// The error, when it did not.
    pub error: Option<RunErrorBody>,
    /// Timings.
    pub timings: RunTimings,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

/// `status`, `limit` and `cursor`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RunListQuery {
    /// Only runs in this status.
    pub status: Option<String>,
    /// Items per page, 1–100 (default 50).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// `timeout_seconds` of `GET /v1/runs/{id}/wait`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct WaitQuery {
    /// How long to wait for the run to end, 0–300 (default 30).
    pub timeout_seconds: Option<u64>,
}

/// One event of a run's log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RunEventBody {
    /// Its number in the run's log, from 1, without gaps (the SSE `id`).
    pub seq: i64,
    /// `run.status`, `step.started`, `llm.delta`, `llm.message`, `tool.call`, `tool.result`,
    /// `context.compacted`, `approval.requested`, `approval.decided`, `run.retry`,
    /// `run.completed`; clients should ignore types they do not know.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The payload; its shape depends on the type (see the run lifecycle documentation).
    pub data: Value,
    /// RFC 3339.
    pub created_at: String,
}

/// A page of events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RunEventsPage {
    /// Events after `after`, in order.
    pub data: Vec<RunEventBody>,
    /// Pass as `after` to continue; equals the request's `after` when there is nothing new.
    pub next_after: i64,
    /// Whether the log is complete (the run ended and every event is in).
    pub complete: bool,
}

/// `after` and `limit` of the events page.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Events after this sequence number (default 0: from the start).
    pub after: Option<i64>,
    /// At most this many (1–1000, default 200).
    pub limit: Option<u32>,
}

/// An agent type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AgentResponse {
    /// Its name.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// The tools it may use.
    pub tools: Vec<String>,
    /// `always`, `risky` or `never`.
    pub approval: String,
    /// Model calls per run.
    pub max_steps: u32,
    /// Working seconds per run.
    pub max_active_seconds: u64,
    /// Tokens per run, if limited.
    pub max_tokens: Option<u64>,
    /// USD per run, if limited.
    pub max_cost_usd: Option<f64>,
}
