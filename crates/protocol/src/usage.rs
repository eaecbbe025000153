//! `GET /v1/usage`: language-model usage aggregated per day, model, agent type and project.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// The period to aggregate, as query parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct UsageParams {
    /// First day, `YYYY-MM-DD` (UTC); default: 29 days before `to`.
    pub from: Option<String>,
    /// Last day, `YYYY-MM-DD` (UTC), included; default: today.
    pub to: Option<String>,
}

/// Usage in the period, one row per (day, provider, model, agent type, project).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UsageResponse {
    /// First day.
    pub from: String,
    /// Last day.
    pub to: String,
    /// The rows, by day.
    pub data: Vec<UsageRow>,
}

/// One aggregate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UsageRow {
    /// The day, `YYYY-MM-DD`.
    pub day: String,
    /// The provider's configured name.
    pub provider: String,
    /// The model.
    pub model: String,
    /// The agent type.
    pub agent_type: String,
    /// The project, if the calls were for one.
    pub project_id: Option<String>,
    /// Attempts sent (retries and fallbacks included).
    pub attempts: u64,
    /// Attempts that failed.
    pub failures: u64,
    /// Answers from the response cache (they cost nothing).
    pub cache_hits: u64,
    /// Input tokens, cached ones included.
    pub input_tokens: u64,
    /// Input tokens read from the provider's prompt cache.
    pub cached_input_tokens: u64,
    /// Input tokens written to the provider's prompt cache.
    pub cache_write_tokens: u64,
    /// Output tokens, reasoning included.
    pub output_tokens: u64,
    /// Reasoning tokens.
    pub reasoning_tokens: u64,
    /// Cost in USD of the priced attempts (a decimal string, exact).
    pub cost_usd: String,
    /// Attempts on models without a price: their cost is unknown, not zero.
    pub unpriced_attempts: u64,
}
