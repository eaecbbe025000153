//! agentd's LLM layer.
//!
//! One provider-neutral interface ([`LlmClient`]: messages, tools, tool calls and results,
//! streaming deltas, stop reasons, usage) over three hand-written wire adapters: OpenAI Chat
//! Completions (which also covers Ollama, vLLM, llama.cpp's server, LM Studio and OpenRouter),
//! Anthropic Messages and Google Gemini `generateContent`. [`LlmRouter`] is the policy around
//! them and the only owner of retries: per-phase timeouts, retries with full jitter that honour
//! `Retry-After`, a circuit breaker per provider and model, fallback chains per agent type, the
//! response cache, the context-window check, and the usage ledger with costs.
//!
//! This crate must not read the process environment (settings arrive resolved), log a key, or
//! retry anywhere but in `router`.

pub mod breaker;
pub mod budget;
mod cache;
pub mod client;
pub mod config;
pub mod context;
pub mod error;
pub mod ledger;
pub mod message;
pub mod provider;
pub mod retry;
pub mod router;
pub mod status;
pub mod usage;

pub use breaker::BreakerState;
pub use cache::cache_key;
pub use client::LlmClient;
pub use config::{AgentRoute, LlmConfigError, LlmSettings, ProviderKind, ProviderSettings};
pub use context::RequestContext;
pub use error::{LlmError, LlmResult, TimeoutPhase};
pub use ledger::UsageLedger;
pub use message::{
    ChatRequest, ChatResponse, ChatStream, Content, Message, Role, StopReason, StreamEvent,
    ToolCall, ToolDefinition,
};
pub use router::{LlmRouter, LlmRouterBuilder};
pub use status::LlmStatus;
pub use usage::{Price, Usage};
