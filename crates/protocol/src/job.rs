//! The job endpoints of earlier clients (`/v1/run-agent`, `/v1/jobs/…`): runs in the shape
//! those clients expect. A job id is a run id.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::run::RunErrorBody;

/// `POST /v1/run-agent`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunAgentRequest {
    /// The project (one of the caller's).
    pub project_id: String,
    /// The agent type (see `GET /v1/agents`).
    pub agent_type: String,
    /// The task: a string, or an object whose `task` string is the task (the whole object is
    /// passed as the run's context); an object without `task` is the context of a run asked to
    /// carry out what it describes. At most 100 KB.
    #[schema(value_type = Object)]
    pub input_context: Value,
}

/// The answer of `POST /v1/run-agent`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RunAgentResponse {
    /// The job's id (the run's id).
    pub job_id: String,
    /// `queued`.
    pub status: String,
    /// Seconds the job will probably take: the mean duration of this project's recent succeeded
    /// runs of this agent type; `null` when there are none to go by.
    pub estimated_time: Option<f64>,
}

/// A job: a run, in the job shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JobResponse {
    /// The job's id (the run's id).
    pub job_id: String,
    /// Its project.
    pub project_id: Option<String>,
    /// The agent type.
    pub agent_type: String,
    /// `queued`, `running`, `waiting_approval`, `succeeded`, `failed`, `cancelled`, `timed_out`.
    pub status: String,
    /// 0–100.
    pub progress: u8,
    /// What it is doing now.
    pub current_step: Option<String>,
    /// The result, when it succeeded: `{"text": …}`.
    pub result: Option<Value>,
    /// The error, when it did not succeed.
    pub error: Option<RunErrorBody>,
    /// RFC 3339.
    pub created_at: String,
    /// When a worker first took it.
    pub started_at: Option<String>,
    /// When it ended.
    pub finished_at: Option<String>,
    /// Seconds spent working.
    pub active_seconds: f64,
}

/// `limit` of `GET /v1/jobs/{project_id}/list`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct JobListQuery {
    /// Jobs per page, 1–100 (default 50).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}
