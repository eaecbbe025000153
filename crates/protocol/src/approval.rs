//! Approvals of risky steps, and grants.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

/// A tool call waiting for (or given) a human's decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ApprovalResponse {
    /// Its id.
    pub id: String,
    /// The run that asked.
    pub run_id: String,
    /// The run's project.
    pub project_id: Option<String>,
    /// The tool call (as the model named it).
    pub call_id: String,
    /// The tool.
    pub tool: String,
    /// The exact arguments: what runs if approved.
    pub arguments: Value,
    /// SHA-256 (hex) of the tool name, a NUL byte and the canonical JSON of the arguments: what
    /// finally executes is checked against it.
    pub action_hash: String,
    /// `low`, `medium` or `high`.
    pub risk: String,
    /// Why it needs approval.
    pub reason: String,
    /// `approve`, `reject`, and `approve_for_run` / `approve_for_project` when the action can be
    /// granted more widely (send them as `decision: "approve"` with `scope: "run"` or `"project"`).
    pub available_decisions: Vec<String>,
    /// The command prefix a `run` or `project` scope would grant.
    pub grant_key: Option<String>,
    /// `pending`, `approved`, `rejected`, `expired` (nobody decided in time: a rejection) or
    /// `cancelled` (the run ended first).
    pub status: String,
    /// The scope of an approval.
    pub scope: Option<String>,
    /// The decider's reason (given to the model on rejection).
    pub decision_reason: Option<String>,
    /// Who decided.
    pub decided_by: Option<String>,
    /// When.
    pub decided_at: Option<String>,
    /// When an undecided approval expires.
    pub expires_at: String,
    /// When it was requested.
    pub created_at: String,
}

/// `GET /v1/approvals` filters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ApprovalListQuery {
    /// Only approvals with this status (`pending`, `approved`, `rejected`, `expired`,
    /// `cancelled`).
    pub status: Option<String>,
    /// Items per page (1 to 100, default 20).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DecisionBody {
    /// Let it run.
    Approve,
    /// Do not; the model is told (with the reason, if given).
    Reject,
}

/// How far an approval reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScopeBody {
    /// This call only.
    #[default]
    Once,
    /// Calls with the same command prefix, for the rest of this run.
    Run,
    /// Calls with the same command prefix in this project, until the grant is deleted.
    Project,
}

/// `POST /v1/approvals/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecideRequest {
    /// `approve` or `reject`.
    pub decision: DecisionBody,
    /// Why (at most 2,000 characters); a rejection's reason is given to the model.
    #[serde(default)]
    pub reason: Option<String>,
    /// For approvals: `once` (default), `run` or `project`.
    #[serde(default)]
    pub scope: Option<ScopeBody>,
}

/// A standing permission: calls of `tool` whose command prefix is `key` run without asking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GrantResponse {
    /// Its id.
    pub id: String,
    /// `run` or `project`.
    pub scope: String,
    /// The project it applies to.
    pub project_id: Option<String>,
    /// The run it applies to (run scope).
    pub run_id: Option<String>,
    /// The tool.
    pub tool: String,
    /// The command prefix.
    pub key: String,
    /// Who granted it.
    pub created_by: String,
    /// When.
    pub created_at: String,
}

/// `POST /v1/agent/execute-pending`: decide several approvals at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecutePendingRequest {
    /// The approvals (1 to 100).
    pub approval_ids: Vec<String>,
    /// `approve` or `reject`, for all of them.
    pub decision: DecisionBody,
    /// Why.
    #[serde(default)]
    pub reason: Option<String>,
}

/// What happened to one approval of an `execute-pending` request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ExecutePendingItem {
    /// The approval id as sent.
    pub approval_id: String,
    /// `decided` (this request decided it), `already_decided`, `expired` or `not_found`.
    pub outcome: String,
    /// The approval afterwards, when it exists.
    pub approval: Option<ApprovalResponse>,
}

/// `POST /v1/agent/execute-pending` result, in request order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ExecutePendingResponse {
    /// One item per id.
    pub results: Vec<ExecutePendingItem>,
}
