//! What `GET /v1/llm/providers` shows: providers, their models, breaker states, the last error
//! type and the policy's counters. Never keys.

use serde::Serialize;
use time::OffsetDateTime;

use crate::breaker::BreakerState;
use crate::config::ProviderKind;

/// The whole layer's status.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct LlmStatus {
    /// Providers by name.
    pub providers: Vec<ProviderStatus>,
    /// The soonest time an open breaker turns half-open, if any is open.
    #[serde(with = "time::serde::rfc3339::option")]
    pub soonest_half_open_at: Option<OffsetDateTime>,
    /// Counters since start.
    pub counters: Counters,
}

/// One provider.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ProviderStatus {
    /// Its configured name.
    pub name: String,
    /// Its wire protocol.
    pub kind: ProviderKind,
    /// Its base URL.
    pub base_url: String,
    /// Whether it can be called (it has a key, or a base URL of its own).
    pub enabled: bool,
    /// Whether it refused our credentials (401/403) since start.
    pub misconfigured: bool,
    /// The kind of its last error (`rate_limited`, `timeout`, ...), if any.
    pub last_error: Option<String>,
    /// When that error happened.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_error_at: Option<OffsetDateTime>,
    /// Its models: those routed to, configured, or called.
    pub models: Vec<ModelStatus>,
}

/// One model of a provider.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ModelStatus {
    /// The model name.
    pub model: String,
    /// Its context window, if configured.
    pub context_window: Option<u64>,
    /// Whether it has a price.
    pub priced: bool,
    /// Its breaker.
    pub breaker: BreakerState,
    /// When its open breaker turns half-open.
    #[serde(with = "time::serde::rfc3339::option")]
    pub half_open_at: Option<OffsetDateTime>,
    /// When its 429 cooldown ends.
    #[serde(with = "time::serde::rfc3339::option")]
    pub cooldown_until: Option<OffsetDateTime>,
    /// The kind of its last error, if any.
    pub last_error: Option<String>,
}

/// Plain counters, since start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, utoipa::ToSchema)]
pub struct Counters {
    /// Calls of `chat` and `chat_stream`.
    pub calls: u64,
    /// Attempts sent to providers.
    pub attempts: u64,
    /// Attempts that were retries.
    pub retries: u64,
    /// Moves to a fallback candidate.
    pub fallbacks: u64,
    /// Answers from the cache.
    pub cache_hits: u64,
    /// Cacheable calls the cache could not answer.
    pub cache_misses: u64,
    /// Usage records dropped because the ledger was behind.
    pub ledger_dropped: u64,
}
