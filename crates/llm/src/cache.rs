//! The response cache: size-bounded, with a TTL, keyed by a hash of provider, model and the
//! canonical request.
//!
//! Only deterministic requests are cached (temperature 0, or an agent type that opts in); the
//! router decides that. The key is SHA-256 over `provider \0 model \0 canonical JSON`, the NUL
//! bytes keeping it prefix-free; canonical JSON has its object keys sorted. Expiry is checked
//! against `tokio::time::Instant` at read time (so paused-clock tests see it), and moka's own TTL
//! and byte weigher bound memory.

use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use crate::config::{CacheMode, CacheSettings};
use crate::message::{ChatRequest, ChatResponse, StopReason};

#[derive(Debug)]
struct Entry {
    response: ChatResponse,
    stored_at: Instant,
}

/// The cache.
#[derive(Debug, Clone)]
pub(crate) struct ResponseCache {
    entries: Cache<String, Arc<Entry>>,
    mode: CacheMode,
    ttl: Duration,
}

/// The cache key of `req` sent to `provider`'s `model`.
#[must_use]
pub fn cache_key(provider: &str, model: &str, req: &ChatRequest) -> String {
    // serde_json's map keeps keys sorted, so the JSON text is canonical.
    let canonical = serde_json::to_value(req).map(|v| v.to_string()).unwrap_or_default();
    let mut hasher = Sha256::new();
    hasher.update(provider.as_bytes());
    hasher.update([0]);
    hasher.update(model.as_bytes());
    hasher.update([0]);
    hasher.update(canonical.as_bytes());
    hex::encode(hasher.finalize())
}

#[allow(clippy::ptr_arg, reason = "moka's weigher is given the key as &K")]
fn weight(key: &String, entry: &Arc<Entry>) -> u32 {
    let r = &entry.response;
    let bytes = key.len()
        + r.text.len()
        + r.tool_calls
            .iter()
            .map(|c| c.id.len() + c.name.len() + c.arguments.to_string().len())
            .sum::<usize>()
        + 256;
    u32::try_from(bytes).unwrap_or(u32::MAX)
}

impl ResponseCache {
    /// A cache per the settings, or `None` when it is off.
    pub(crate) fn new(settings: &CacheSettings) -> Option<Self> {
        if settings.mode == CacheMode::Off {
            return None;
        }
        let ttl = Duration::from_secs(settings.ttl_seconds);
        let entries = Cache::builder()
            .max_capacity(settings.max_bytes)
            .weigher(weight)
            .time_to_live(ttl)
            .build();
        Some(Self { entries, mode: settings.mode, ttl })
    }

    /// The cached answer under `key`, if the mode reads and it has not expired.
    pub(crate) async fn get(&self, key: &str) -> Option<ChatResponse> {
        if !self.mode.reads() {
            return None;
        }
        let entry = self.entries.get(key).await?;
        if entry.stored_at.elapsed() >= self.ttl {
            self.entries.invalidate(key).await;
            return None;
        }
        Some(entry.response.clone())
    }

    /// Stores a complete answer, if the mode writes.
    pub(crate) async fn put(&self, key: String, response: &ChatResponse) {
        let complete = matches!(
            response.stop_reason,
            StopReason::EndTurn
                | StopReason::ToolUse
                | StopReason::StopSequence
                | StopReason::MaxTokens
        );
        if self.mode.writes() && complete {
            let entry = Entry { response: response.clone(), stored_at: Instant::now() };
            self.entries.insert(key, Arc::new(entry)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;

    #[test]
    fn the_key_separates_provider_model_and_request() {
        let req = ChatRequest {
            messages: vec![Message::user("hi")],
            temperature: Some(0.0),
            ..ChatRequest::default()
        };
        let k = cache_key("openai", "gpt-4o", &req);
        assert_eq!(k, cache_key("openai", "gpt-4o", &req.clone()));
        assert_ne!(k, cache_key("openai", "gpt-4o-mini", &req));
        assert_ne!(cache_key("a", "bc", &req), cache_key("ab", "c", &req));
        let other = ChatRequest { messages: vec![Message::user("hi!")], ..req };
        assert_ne!(k, cache_key("openai", "gpt-4o", &other));
    }
}
