//! The interface the agent loop uses.

use async_trait::async_trait;

use crate::context::RequestContext;
use crate::error::LlmResult;
use crate::message::{ChatRequest, ChatResponse, ChatStream};

/// A language model behind the policy: retries, breakers, fallbacks, cache and ledger included.
#[async_trait]
pub trait LlmClient: Send + Sync + std::fmt::Debug {
    /// The complete answer to `req`, from the model the context's agent type routes to.
    ///
    /// # Errors
    /// An [`LlmError`](crate::LlmError) after the policy ran.
    async fn chat(&self, req: ChatRequest, ctx: &RequestContext) -> LlmResult<ChatResponse>;

    /// The answer to `req` as a stream. Failures before the first delta are retried and failed
    /// over like `chat`; once a delta has been delivered, a failure ends the stream with an
    /// error item and nothing is retried.
    ///
    /// # Errors
    /// An [`LlmError`](crate::LlmError) when no candidate produced a first delta.
    async fn chat_stream(&self, req: ChatRequest, ctx: &RequestContext) -> LlmResult<ChatStream>;
}
