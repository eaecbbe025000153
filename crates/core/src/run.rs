//! Runs: one agent working on one task, durably.
//!
//! A run is a row (its status, lease, counters and outcome) plus two append-only logs: the
//! **journal** of steps (each LLM reply, each tool call started and completed), from which a
//! worker that takes over after a crash rebuilds the conversation without asking the model again
//! or re-running a tool; and the **event log** (numbered per run), which everything that streams
//! to clients reads from. This module owns the run's state machine and the vocabulary of both
//! logs; the store persists them and the runner drives them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use crate::id::ConversationId;
use crate::{ProjectId, RunId, UserId};

/// Where a run is in its life.
///
/// ```text
/// queued ──> running ──> succeeded | failed | cancelled | timed_out
///   ▲  │        │  ▲
///   │  │        ▼  │
///   │  │   waiting_approval
///   │  └──> cancelled
///   └──── running (a transient failure, or a worker giving the run back)
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Waiting for a worker.
    Queued,
    /// A worker is on it (or one will take it over when its lease is free).
    Running,
    /// Paused until a human decides on a risky step; holds no worker.
    WaitingApproval,
    /// Finished with a result.
    Succeeded,
    /// Ended by an error (see the run's error type).
    Failed,
    /// Cancelled by a user.
    Cancelled,
    /// Its active-time limit passed.
    TimedOut,
}

impl RunStatus {
    /// Every status.
    pub const ALL: [Self; 7] = [
        Self::Queued,
        Self::Running,
        Self::WaitingApproval,
        Self::Succeeded,
        Self::Failed,
        Self::Cancelled,
        Self::TimedOut,
    ];

    /// The stored and wire name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::WaitingApproval => "waiting_approval",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::TimedOut => "timed_out",
        }
    }

    /// Whether the run is over (nothing will change it again).
    #[must_use]
    pub const fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled | Self::TimedOut)
    }

    /// Whether the run occupies its conversation (one active run per conversation).
    #[must_use]
    pub const fn is_active(self) -> bool {
        matches!(self, Self::Running | Self::WaitingApproval)
    }

    /// Whether the state machine allows going from `self` to `next`.
    #[must_use]
    pub const fn can_become(self, next: Self) -> bool {
        matches!(
            (self, next),
            (Self::Queued, Self::Running | Self::Cancelled)
                | (
                    Self::Running,
                    Self::Queued
                        | Self::WaitingApproval
                        | Self::Succeeded
                        | Self::Failed
                        | Self::Cancelled
                        | Self::TimedOut,
                )
                | (
                    Self::WaitingApproval,
                    Self::Running | Self::Failed | Self::Cancelled | Self::TimedOut,
                )
        )
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status name agentd does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown run status {0:?}")]
pub struct UnknownRunStatus(pub String);

impl FromStr for RunStatus {
    type Err = UnknownRunStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownRunStatus(s.to_owned()))
    }
}

/// Why a run failed, with a stable type clients can branch on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunError {
    /// Stable: `llm_unavailable`, `max_steps_exceeded`, `lease_lost`, ...
    #[serde(rename = "type")]
    pub error_type: String,
    /// For humans.
    pub message: String,
}

impl RunError {
    /// An error of `error_type`.
    pub fn new(error_type: impl Into<String>, message: impl Into<String>) -> Self {
        Self { error_type: error_type.into(), message: message.into() }
    }
}

/// What the run was asked to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInput {
    /// The task, in words.
    pub task: String,
    /// Anything else the client wants the agent to know.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Value>,
}

/// Tokens and cost spent by a run so far.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunUsage {
    /// LLM calls made (cache hits included).
    pub llm_calls: u64,
    /// Input tokens (cached ones included).
    pub input_tokens: u64,
    /// Of which served from the provider's prompt cache.
    pub cached_tokens: u64,
    /// Output tokens (reasoning included).
    pub output_tokens: u64,
    /// Of which reasoning.
    pub reasoning_tokens: u64,
    /// Cost in USD, when every call was priced.
    pub cost_usd: Option<f64>,
    /// Whether some call had no price (so `cost_usd` is a lower bound or absent).
    #[serde(default)]
    pub unpriced_calls: bool,
}

impl RunUsage {
    /// Adds another usage to this one.
    pub fn add(&mut self, other: &Self) {
        self.llm_calls += other.llm_calls;
        self.input_tokens += other.input_tokens;
        self.cached_tokens += other.cached_tokens;
        self.output_tokens += other.output_tokens;
        self.reasoning_tokens += other.reasoning_tokens;
        self.cost_usd = match (self.cost_usd, other.cost_usd) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
        self.unpriced_calls |= other.unpriced_calls;
    }

    /// Input plus output tokens.
    #[must_use]
    pub const fn total_tokens(&self) -> u64 {
        self.input_tokens + self.output_tokens
    }
}

/// A stored run.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    /// Its id.
    pub id: RunId,
    /// Who started it (and owns it).
    pub owner_id: UserId,
    /// The project it works on, if any.
    pub project_id: Option<ProjectId>,
    /// The conversation it continues, if any.
    pub conversation_id: Option<ConversationId>,
    /// The agent type (`code`, `research`, ...).
    pub agent: String,
    /// The task.
    pub input: RunInput,
    /// Where it is.
    pub status: RunStatus,
    /// 0–100.
    pub progress: u8,
    /// What it is doing now, in a few words.
    pub current_step: Option<String>,
    /// How many times a worker has taken it (also the fencing token of the current worker).
    pub attempt: u32,
    /// How many attempts ended in a retryable failure.
    pub failures: u32,
    /// The most retryable failures before the run fails.
    pub max_attempts: u32,
    /// Tokens and cost so far.
    pub usage: RunUsage,
    /// The result, when it succeeded.
    pub result: Option<Value>,
    /// The error, when it failed, was cancelled or timed out.
    pub error: Option<RunError>,
    /// The client's idempotency key, if it gave one.
    pub idempotency_key: Option<String>,
    /// Time spent working (not waiting for a worker or a human), in milliseconds.
    pub active_ms: u64,
    /// When a worker may take it next.
    pub scheduled_at: OffsetDateTime,
    /// When the current worker's lease ends, if one holds it.
    pub lease_expires_at: Option<OffsetDateTime>,
    /// When a user asked to cancel it, if they did.
    pub cancel_requested_at: Option<OffsetDateTime>,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// When a worker first took it.
    pub started_at: Option<OffsetDateTime>,
    /// When it ended.
    pub finished_at: Option<OffsetDateTime>,
    /// When it last changed.
    pub updated_at: OffsetDateTime,
}

/// What it takes to start a run.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRun {
    /// Who starts it.
    pub owner_id: UserId,
    /// The project, if any.
    pub project_id: Option<ProjectId>,
    /// The conversation to continue, if any.
    pub conversation_id: Option<ConversationId>,
    /// The agent type.
    pub agent: String,
    /// The task.
    pub input: RunInput,
    /// Makes creation idempotent per owner: the same key returns the same run.
    pub idempotency_key: Option<String>,
    /// The most retryable failures before the run fails.
    pub max_attempts: u32,
    /// When `true`, refuse (instead of queueing behind it) when the conversation has an active
    /// or queued run.
    pub reject_if_busy: bool,
}

/// What creating a run did.
#[derive(Debug, Clone, PartialEq)]
pub enum Created {
    /// A new run.
    New(Run),
    /// The run created earlier with the same idempotency key.
    Existing(Run),
    /// The conversation is busy and the caller asked not to queue.
    ConversationBusy,
}

/// Which runs to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFilter {
    /// Only this project's.
    pub project_id: Option<ProjectId>,
    /// Only runs in this status.
    pub status: Option<RunStatus>,
}

/// The proof that a worker holds a run: every write a worker makes carries it, and the store
/// refuses (with [`crate::StoreError::LeaseLost`]) writes whose lease is no longer current.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The run.
    pub run_id: RunId,
    /// The attempt the lease was granted for.
    pub attempt: u32,
    /// The worker holding it.
    pub worker: String,
}

/// What a heartbeat learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat {
    /// A user has asked to cancel the run.
    pub cancel_requested: bool,
}

/// How a worker ends its attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Finish {
    /// The run is over with this status (terminal).
    Done {
        /// `succeeded`, `failed`, `cancelled` or `timed_out`.
        status: RunStatus,
        /// The result (for `succeeded`).
        result: Option<Value>,
        /// The error (otherwise).
        error: Option<RunError>,
    },
    /// Run it again later: a retryable failure (counts against `max_attempts`; when they are
    /// used up the run fails with `error`).
    Retry {
        /// When it may run again.
        after: std::time::Duration,
        /// What went wrong.
        error: RunError,
    },
    /// Give the run back without blame (the worker is shutting down): another worker resumes
    /// it at once.
    Release,
    /// Pause until a human decides; the worker is freed.
    WaitForApproval,
}

/// A kind of journal step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// A model reply, recorded before it is acted on.
    Llm,
    /// A tool call.
    Tool,
    /// Older turns replaced by a summary.
    Compaction,
}

/// Where a journal step is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Begun; for a tool with side effects, the dangerous window.
    Started,
    /// Done, with its output.
    Completed,
    /// A tool with side effects was started but never recorded as completed (the worker died):
    /// it may or may not have happened, and it is never run again silently.
    UnknownOutcome,
}

impl StepKind {
    /// The stored name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Llm => "llm",
            Self::Tool => "tool",
            Self::Compaction => "compaction",
        }
    }
}

impl StepStatus {
    /// The stored name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Started => "started",
            Self::Completed => "completed",
            Self::UnknownOutcome => "unknown_outcome",
        }
    }
}

impl FromStr for StepKind {
    type Err = UnknownRunStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::Llm, Self::Tool, Self::Compaction]
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownRunStatus(s.to_owned()))
    }
}

impl FromStr for StepStatus {
    type Err = UnknownRunStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::Started, Self::Completed, Self::UnknownOutcome]
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownRunStatus(s.to_owned()))
    }
}

/// One entry of a run's journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// Its position in the journal, from 1.
    pub seq: u32,
    /// What it is.
    pub kind: StepKind,
    /// The tool's name, the model's name, or `compaction`.
    pub name: String,
    /// Where it is.
    pub status: StepStatus,
    /// Whether it changes anything outside the run (tools only).
    pub side_effects: bool,
    /// What went in: the tool call (id and arguments), or nothing for LLM steps.
    pub input: Value,
    /// What came out: the model's reply, the tool's result, the summary.
    pub output: Option<Value>,
    /// The attempt that wrote it last.
    pub attempt: u32,
    /// When it started.
    pub started_at: OffsetDateTime,
    /// When it completed, if it did.
    pub completed_at: Option<OffsetDateTime>,
}

/// One entry of a run's event log, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunEvent {
    /// The run.
    pub run_id: RunId,
    /// Its number in the run's log, from 1, without gaps.
    pub seq: i64,
    /// `run.status`, `llm.message`, `tool.call`, ...
    pub event_type: String,
    /// The payload.
    pub data: Value,
    /// When it was appended.
    pub created_at: OffsetDateTime,
}

/// An event to append: its type and payload.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// The type.
    pub event_type: &'static str,
    /// The payload.
    pub data: Value,
}

impl NewEvent {
    /// An event of `event_type` with `data`.
    pub fn new(event_type: &'static str, data: Value) -> Self {
        Self { event_type, data }
    }
}

/// Event types, one place for their names.
pub mod event {
    /// The run's status changed. `{status, previous, error?}`.
    pub const RUN_STATUS: &str = "run.status";
    /// A step began. `{seq, kind, name}`.
    pub const STEP_STARTED: &str = "step.started";
    /// Part of the model's answer as it streams (coalesced). `{step, text}`.
    pub const LLM_DELTA: &str = "llm.delta";
    /// The model's complete answer, as recorded. `{step, text, tool_calls, usage, model}`.
    pub const LLM_MESSAGE: &str = "llm.message";
    /// A tool call begins. `{step, call_id, tool, arguments}`.
    pub const TOOL_CALL: &str = "tool.call";
    /// A tool call ended. `{step, call_id, tool, status, output}`.
    pub const TOOL_RESULT: &str = "tool.result";
    /// A check of a checks run began. `{step, check, command, source}`.
    pub const CHECK_STARTED: &str = "check.started";
    /// A check of a checks run ended. `{step, check, status, exit_code, duration_ms, counts,
    /// reason}`.
    pub const CHECK_COMPLETED: &str = "check.completed";
    /// Older turns were summarised to fit the context. `{step, replaced_messages}`.
    pub const CONTEXT_COMPACTED: &str = "context.compacted";
    /// A human decision is needed. `{approval_id, ...}`.
    pub const APPROVAL_REQUESTED: &str = "approval.requested";
    /// A human decided. `{approval_id, decision, ...}`.
    pub const APPROVAL_DECIDED: &str = "approval.decided";
    /// An attempt failed and the run will be tried again. `{error, retry_at}`.
    pub const RUN_RETRY: &str = "run.retry";
    /// The run ended; always the last event. `{status, result?, error?, usage}`.
    pub const RUN_COMPLETED: &str = "run.completed";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_statuses_go_nowhere() {
        for from in RunStatus::ALL.into_iter().filter(|s| s.is_terminal()) {
            for to in RunStatus::ALL {
                assert!(!from.can_become(to), "{from} -> {to}");
            }
        }
    }

    #[test]
    fn the_lifecycle_transitions_are_allowed() {
        use RunStatus::*;
        for (a, b) in [
            (Queued, Running),
            (Running, WaitingApproval),
            (WaitingApproval, Running),
            (Running, Succeeded),
            (Running, Failed),
            (Running, Cancelled),
            (Running, TimedOut),
            (Running, Queued),
            (Queued, Cancelled),
            (WaitingApproval, Cancelled),
        ] {
            assert!(a.can_become(b), "{a} -> {b}");
        }
        assert!(!Queued.can_become(Succeeded));
        assert!(!Queued.can_become(WaitingApproval));
    }

    #[test]
    fn statuses_round_trip_through_their_names() {
        for s in RunStatus::ALL {
            assert_eq!(s.as_str().parse::<RunStatus>(), Ok(s));
            assert_eq!(serde_json::to_value(s).ok(), Some(Value::String(s.as_str().into())));
        }
    }

    #[test]
    fn usage_adds_up_and_an_unpriced_call_is_remembered() {
        let mut a =
            RunUsage { llm_calls: 1, input_tokens: 10, cost_usd: Some(0.5), ..Default::default() };
        let b = RunUsage {
            llm_calls: 1,
            output_tokens: 5,
            cost_usd: None,
            unpriced_calls: true,
            ..Default::default()
        };
        a.add(&b);
        assert_eq!((a.llm_calls, a.total_tokens()), (2, 15));
        assert_eq!(a.cost_usd, Some(0.5));
        assert!(a.unpriced_calls);
    }
}
