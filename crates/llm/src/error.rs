//! The one error type of the LLM layer, classified the way the policy needs it.
//!
//! Adapters turn every upstream failure into an [`LlmError`] from typed facts (the status, the
//! headers, the error code in the body), never from message text alone. The policy asks two
//! questions of an error: is it transient (worth another attempt or a fallback), and did the
//! upstream say when to come back ([`LlmError::retry_after`]).

use std::time::Duration;

/// Which of the per-attempt clocks ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeoutPhase {
    /// The TCP (or TLS) connection was not established in time.
    Connect,
    /// No response headers, or for a stream no first delta, in time.
    FirstByte,
    /// A stream went silent between two chunks for too long.
    Idle,
    /// One attempt took longer than its total budget.
    Total,
    /// The overall deadline of the call, across retries and fallbacks, passed.
    Deadline,
}

impl TimeoutPhase {
    /// The snake_case name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::FirstByte => "first_byte",
            Self::Idle => "idle",
            Self::Total => "total",
            Self::Deadline => "deadline",
        }
    }
}

/// Everything a call to a language model can fail with.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LlmError {
    /// 429 (or Gemini `RESOURCE_EXHAUSTED`): the provider asks us to slow down.
    #[error("rate limited by the provider: {message}")]
    RateLimited {
        /// When the provider said to come back, if it did.
        retry_after: Option<Duration>,
        /// The provider's message.
        message: String,
    },
    /// Anthropic 529 / `overloaded_error`, also when sent inside a stream.
    #[error("the provider is overloaded: {message}")]
    Overloaded {
        /// When the provider said to come back, if it did.
        retry_after: Option<Duration>,
        /// The provider's message.
        message: String,
    },
    /// 408, 409, 500, 502, 503, 504 or another server-side failure.
    #[error("the provider failed with status {status}: {message}")]
    Server {
        /// The HTTP status.
        status: u16,
        /// When the provider said to come back, if it did.
        retry_after: Option<Duration>,
        /// The provider's message.
        message: String,
    },
    /// The connection could not be made or broke before a response arrived.
    #[error("cannot reach the provider: {message}")]
    Connect {
        /// What the HTTP client reported.
        message: String,
    },
    /// A clock ran out.
    #[error("the provider did not answer in time ({})", phase.as_str())]
    Timeout {
        /// Which clock.
        phase: TimeoutPhase,
    },
    /// 401 or 403: the key is missing, wrong or lacks access.
    #[error("the provider refused our credentials (status {status}): {message}")]
    Auth {
        /// The HTTP status.
        status: u16,
        /// The provider's message.
        message: String,
    },
    /// 400 or 422 for a reason other than the context window.
    #[error("the provider rejected the request (status {status}): {message}")]
    BadRequest {
        /// The HTTP status.
        status: u16,
        /// The provider's message.
        message: String,
    },
    /// The request does not fit the model's context window, by our estimate before sending or
    /// by the provider's answer.
    #[error("the request does not fit the model's context window: {message}")]
    ContextOverflow {
        /// What was measured.
        message: String,
    },
    /// The provider stopped for a safety reason.
    #[error("the provider filtered the content: {message}")]
    ContentFiltered {
        /// The provider's reason.
        message: String,
    },
    /// 404: the model or endpoint does not exist.
    #[error("the provider does not know this model or endpoint: {message}")]
    NotFound {
        /// The provider's message.
        message: String,
    },
    /// The provider's answer could not be understood: malformed JSON or SSE, a truncated stream,
    /// invalid tool-call arguments, a body over the size limit.
    #[error("the provider's answer is malformed: {message}")]
    Protocol {
        /// What was wrong.
        message: String,
    },
    /// The caller's cancellation token fired.
    #[error("the call was cancelled")]
    Cancelled,
    /// No enabled provider can serve this agent type's route.
    #[error("no language model is configured for agent type {agent_type:?}")]
    NotConfigured {
        /// The agent type asked for.
        agent_type: String,
    },
    /// Every candidate of the route is unavailable (breaker open or cooling down after a 429).
    #[error("every language model for this request is unavailable; retry in {}s", retry_after.as_secs())]
    Unavailable {
        /// When the soonest candidate admits a call again.
        retry_after: Duration,
    },
}

impl LlmError {
    /// Whether another attempt (or a fallback) may succeed.
    ///
    /// Connect errors, rate limits, overload and 408/409/5xx are transient, and so are timeouts of
    /// one attempt (the policy never retries once a delta has reached the caller). Client errors,
    /// context overflow, protocol errors and the overall deadline are not.
    #[must_use]
    pub const fn is_transient(&self) -> bool {
        match self {
            Self::RateLimited { .. }
            | Self::Overloaded { .. }
            | Self::Server { .. }
            | Self::Connect { .. } => true,
            Self::Timeout { phase } => !matches!(phase, TimeoutPhase::Deadline),
            Self::Auth { .. }
            | Self::BadRequest { .. }
            | Self::ContextOverflow { .. }
            | Self::ContentFiltered { .. }
            | Self::NotFound { .. }
            | Self::Protocol { .. }
            | Self::Cancelled
            | Self::NotConfigured { .. }
            | Self::Unavailable { .. } => false,
        }
    }

    /// The delay the upstream asked for, if any.
    #[must_use]
    pub const fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after, .. }
            | Self::Overloaded { retry_after, .. }
            | Self::Server { retry_after, .. } => *retry_after,
            Self::Unavailable { retry_after } => Some(*retry_after),
            Self::Connect { .. }
            | Self::Timeout { .. }
            | Self::Auth { .. }
            | Self::BadRequest { .. }
            | Self::ContextOverflow { .. }
            | Self::ContentFiltered { .. }
            | Self::NotFound { .. }
            | Self::Protocol { .. }
            | Self::Cancelled
            | Self::NotConfigured { .. } => None,
        }
    }

    /// Whether the policy may try the next candidate of the route after this error. Bad
    /// requests, credentials problems and filtered content would fail the same way elsewhere, or
    /// must be fixed by an operator; they are surfaced instead.
    #[must_use]
    pub const fn allows_fallback(&self) -> bool {
        match self {
            Self::RateLimited { .. }
            | Self::Overloaded { .. }
            | Self::Server { .. }
            | Self::Connect { .. }
            | Self::Timeout { .. }
            | Self::Protocol { .. }
            | Self::NotFound { .. }
            | Self::ContextOverflow { .. } => true,
            Self::Auth { .. }
            | Self::BadRequest { .. }
            | Self::ContentFiltered { .. }
            | Self::Cancelled
            | Self::NotConfigured { .. }
            | Self::Unavailable { .. } => false,
        }
    }

    /// A short stable name for logs, the usage ledger and the status view.
    #[must_use]
    pub const fn kind(&self) -> &'static str {
        match self {
            Self::RateLimited { .. } => "rate_limited",
            Self::Overloaded { .. } => "overloaded",
            Self::Server { .. } => "server_error",
            Self::Connect { .. } => "connect_error",
            Self::Timeout { .. } => "timeout",
            Self::Auth { .. } => "auth_error",
            Self::BadRequest { .. } => "bad_request",
            Self::ContextOverflow { .. } => "context_overflow",
            Self::ContentFiltered { .. } => "content_filtered",
            Self::NotFound { .. } => "not_found",
            Self::Protocol { .. } => "protocol_error",
            Self::Cancelled => "cancelled",
            Self::NotConfigured { .. } => "no_llm_configured",
            Self::Unavailable { .. } => "llm_unavailable",
        }
    }

    pub(crate) fn protocol(message: impl Into<String>) -> Self {
        Self::Protocol { message: message.into() }
    }
}

/// Result alias for the LLM layer.
pub type LlmResult<T> = Result<T, LlmError>;
