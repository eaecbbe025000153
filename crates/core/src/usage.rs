//! The usage ledger: one row per attempt to call a language model, and its aggregates.
//!
//! Rows are written by the LLM layer, never changed, and read back only as aggregates per day,
//! model, agent type and project, for one principal or (for admins) everyone. Costs are whole
//! nano-USD (10⁻⁹ USD); an attempt on a model without a price has no cost ("unpriced"), which is
//! different from a cost of zero.

use time::{Date, OffsetDateTime};
use uuid::Uuid;

use crate::{ProjectId, UserId};

/// One attempt, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUsage {
    /// When the attempt started.
    pub at: OffsetDateTime,
    /// The run it belongs to, if any.
    pub run_id: Option<Uuid>,
    /// The conversation it belongs to, if any.
    pub conversation_id: Option<Uuid>,
    /// The user it was made for.
    pub principal: UserId,
    /// The agent type.
    pub agent_type: String,
    /// The project, if any.
    pub project_id: Option<ProjectId>,
    /// The provider's configured name.
    pub provider: String,
    /// The model.
    pub model: String,
    /// Every prompt token, cached ones included.
    pub input_tokens: u64,
    /// Prompt tokens read from the provider's cache.
    pub cached_input_tokens: u64,
    /// Prompt tokens written to the provider's cache.
    pub cache_write_tokens: u64,
    /// Every generated token, reasoning included.
    pub output_tokens: u64,
    /// Reasoning tokens.
    pub reasoning_tokens: u64,
    /// The cost in nano-USD; `None` when the model has no price.
    pub cost_nano_usd: Option<i64>,
    /// From the start of the attempt to its end, in milliseconds.
    pub latency_ms: u64,
    /// From the start of the attempt to the first delta of a stream, in milliseconds.
    pub ttft_ms: Option<u64>,
    /// `ok`, or the error kind (`rate_limited`, `timeout`, ...).
    pub outcome: String,
    /// Whether the answer came from the response cache.
    pub cache_hit: bool,
    /// Whether the attempt was streamed.
    pub streamed: bool,
}

/// Which usage to aggregate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageQuery {
    /// Only this principal's usage; everyone's when `None` (admins).
    pub principal: Option<UserId>,
    /// The first day, inclusive (UTC).
    pub from: Date,
    /// The last day, inclusive (UTC).
    pub to: Date,
}

/// The usage of one day, model, agent type and project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageBucket {
    /// The day (UTC).
    pub day: Date,
    /// The provider's configured name.
    pub provider: String,
    /// The model.
    pub model: String,
    /// The agent type.
    pub agent_type: String,
    /// The project, if any.
    pub project_id: Option<ProjectId>,
    /// Attempts recorded.
    pub attempts: u64,
    /// Attempts that failed.
    pub failures: u64,
    /// Attempts answered from the response cache.
    pub cache_hits: u64,
    /// Sum of prompt tokens.
    pub input_tokens: u64,
    /// Sum of cached prompt tokens read.
    pub cached_input_tokens: u64,
    /// Sum of prompt tokens written to caches.
    pub cache_write_tokens: u64,
    /// Sum of generated tokens.
    pub output_tokens: u64,
    /// Sum of reasoning tokens.
    pub reasoning_tokens: u64,
    /// Sum of the priced attempts' costs, nano-USD.
    pub cost_nano_usd: i64,
    /// Attempts without a price: when non-zero, the cost is a lower bound.
    pub unpriced_attempts: u64,
}
