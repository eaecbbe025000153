//! The three wire protocols, and the HTTP transport that carries them.
//!
//! Each protocol module is pure translation: a neutral request to its JSON body, its JSON answer
//! and its stream events to neutral types, its error bodies to the facts [`classify`] turns into
//! an [`LlmError`]. [`Wire`] exposes that translation (the conformance fixtures drive it
//! directly); `transport` sends it over reqwest with the per-phase timeouts. Nothing here
//! retries: the policy in `router` is the only owner of retries.

mod anthropic;
mod assembly;
mod gemini;
mod openai;
pub mod sse;
pub(crate) mod transport;

use std::time::Duration;

use http::HeaderMap;
use serde_json::Value;
use time::OffsetDateTime;

use crate::config::ProviderKind;
use crate::error::{LlmError, LlmResult};
use crate::message::{ChatRequest, ChatResponse, StreamEvent};
use crate::retry::{retry_after_from_headers, should_retry_header};
use assembly::Assembly;
use sse::SseParser;

pub use anthropic::{
    API_VERSION as ANTHROPIC_VERSION, DEFAULT_MAX_TOKENS as ANTHROPIC_DEFAULT_MAX_TOKENS,
};

/// The translation of one wire protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wire(pub ProviderKind);

impl Wire {
    /// The path, after the base URL, of a call to `model`.
    #[must_use]
    pub fn path(self, model: &str, stream: bool) -> String {
        match self.0 {
            ProviderKind::Openai => openai::path(),
            ProviderKind::Anthropic => anthropic::path(),
            ProviderKind::Gemini => gemini::path(model, stream),
        }
    }

    /// The JSON body of a call to `model`.
    #[must_use]
    pub fn request_body(self, model: &str, req: &ChatRequest, stream: bool) -> Value {
        match self.0 {
            ProviderKind::Openai => openai::request_body(model, req, stream),
            ProviderKind::Anthropic => anthropic::request_body(model, req, stream),
            ProviderKind::Gemini => gemini::request_body(req),
        }
    }

    /// The headers that carry `key` (and, for Anthropic, the API version).
    #[must_use]
    pub fn auth_headers(self, key: Option<&str>) -> Vec<(&'static str, String)> {
        let mut headers = Vec::new();
        match (self.0, key) {
            (ProviderKind::Openai, Some(k)) => {
                headers.push(("authorization", format!("Bearer {k}")))
            }
            (ProviderKind::Anthropic, k) => {
                headers.push(("anthropic-version", ANTHROPIC_VERSION.to_owned()));
                if let Some(k) = k {
                    headers.push(("x-api-key", k.to_owned()));
                }
            }
            (ProviderKind::Gemini, Some(k)) => headers.push(("x-goog-api-key", k.to_owned())),
            (ProviderKind::Openai | ProviderKind::Gemini, None) => {}
        }
        headers
    }

    /// A complete (non-streamed) answer.
    ///
    /// # Errors
    /// A protocol error when the body is not the protocol's answer.
    pub fn parse_response(
        self,
        body: &[u8],
        provider: &str,
        model: &str,
    ) -> LlmResult<ChatResponse> {
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| LlmError::protocol(format!("the answer is not JSON: {e}")))?;
        match self.0 {
            ProviderKind::Openai => openai::parse_response(&value, provider, model),
            ProviderKind::Anthropic => anthropic::parse_response(&value, provider, model),
            ProviderKind::Gemini => gemini::parse_response(&value, provider, model),
        }
    }

    /// A decoder for one streamed answer.
    #[must_use]
    pub fn decoder(self, max_event_bytes: usize) -> StreamDecoder {
        let protocol = match self.0 {
            ProviderKind::Openai => Protocol::Openai(openai::Decoder::default()),
            ProviderKind::Anthropic => Protocol::Anthropic(anthropic::Decoder::default()),
            ProviderKind::Gemini => Protocol::Gemini(gemini::Decoder::default()),
        };
        StreamDecoder {
            protocol,
            assembly: Assembly::default(),
            parser: SseParser::new(max_event_bytes),
        }
    }

    /// The error an unsuccessful response means, and `x-should-retry` if the upstream sent it.
    #[must_use]
    pub fn classify_error(
        self,
        status: u16,
        headers: &HeaderMap,
        body: &[u8],
        now: OffsetDateTime,
    ) -> (LlmError, Option<bool>) {
        let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let mut facts = match self.0 {
            ProviderKind::Openai => openai::error_facts(status, &value),
            ProviderKind::Anthropic => anthropic::error_facts(status, &value),
            ProviderKind::Gemini => gemini::error_facts(status, &value),
        };
        if facts.message.is_empty() {
            facts.message = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
        }
        if let Some(delay) = retry_after_from_headers(headers, now) {
            facts.retry_after = Some(delay);
        }
        (classify(&facts), should_retry_header(headers))
    }
}

#[derive(Debug)]
enum Protocol {
    Openai(openai::Decoder),
    Anthropic(anthropic::Decoder),
    Gemini(gemini::Decoder),
}

/// Turns the bytes of a streamed answer into neutral events, and assembles the answer.
#[derive(Debug)]
pub struct StreamDecoder {
    protocol: Protocol,
    assembly: Assembly,
    parser: SseParser,
}

impl StreamDecoder {
    /// Feeds bytes; returns the deltas they complete.
    ///
    /// # Errors
    /// A protocol error for malformed input, or the error the upstream sent inside the stream.
    pub fn push(&mut self, bytes: &[u8]) -> LlmResult<Vec<StreamEvent>> {
        let mut out = Vec::new();
        for event in self.parser.push(bytes)? {
            if self.is_done() {
                break;
            }
            out.extend(self.decode(&event)?);
        }
        Ok(out)
    }

    fn decode(&mut self, event: &sse::SseEvent) -> LlmResult<Vec<StreamEvent>> {
        match &mut self.protocol {
            Protocol::Openai(d) => d.event(event, &mut self.assembly),
            Protocol::Anthropic(d) => d.event(event, &mut self.assembly),
            Protocol::Gemini(d) => d.event(event, &mut self.assembly),
        }
    }

    /// Whether the protocol's end marker has arrived.
    #[must_use]
    pub fn is_done(&self) -> bool {
        match &self.protocol {
            Protocol::Openai(d) => d.is_done(),
            Protocol::Anthropic(d) => d.is_done(),
            Protocol::Gemini(d) => d.is_done(),
        }
    }

    /// The end of the bytes: the assembled answer, or a protocol error when the stream ended
    /// before the model said why it stopped.
    ///
    /// # Errors
    /// As described.
    pub fn finish(
        &mut self,
        provider: &str,
        model: &str,
    ) -> LlmResult<(Vec<StreamEvent>, ChatResponse)> {
        let mut out = Vec::new();
        if !self.is_done()
            && let Some(event) = self.parser.finish()?
        {
            out.extend(self.decode(&event)?);
        }
        let complete = match &self.protocol {
            Protocol::Gemini(d) => d.may_end(),
            Protocol::Openai(_) | Protocol::Anthropic(_) => {
                self.is_done() || self.assembly.stop_reason.is_some()
            }
        };
        if !complete {
            return Err(LlmError::protocol("the stream ended before the answer was complete"));
        }
        let response = std::mem::take(&mut self.assembly).finish(provider, model)?;
        Ok((out, response))
    }

    /// Decodes a whole recorded stream: its deltas, then `Completed`.
    ///
    /// # Errors
    /// As [`Self::push`] and [`Self::finish`].
    pub fn decode_all(
        mut self,
        bytes: &[u8],
        provider: &str,
        model: &str,
    ) -> LlmResult<Vec<StreamEvent>> {
        let mut events = self.push(bytes)?;
        let (rest, response) = self.finish(provider, model)?;
        events.extend(rest);
        events.push(StreamEvent::Completed(response));
        Ok(events)
    }
}

/// What an error response says, in typed facts.
#[derive(Debug, Clone, Default)]
pub(crate) struct ErrorFacts {
    pub(crate) status: u16,
    pub(crate) message: String,
    pub(crate) retry_after: Option<Duration>,
    pub(crate) overflow: bool,
    pub(crate) overloaded: bool,
    pub(crate) rate_limited: bool,
    pub(crate) auth: bool,
}

/// The error an unsuccessful status means, refined by the body's typed facts.
pub(crate) fn classify(f: &ErrorFacts) -> LlmError {
    let message = f.message.clone();
    let retry_after = f.retry_after;
    if f.overflow {
        return LlmError::ContextOverflow { message };
    }
    match f.status {
        401 | 403 => LlmError::Auth { status: f.status, message },
        404 => LlmError::NotFound { message },
        429 => LlmError::RateLimited { retry_after, message },
        529 => LlmError::Overloaded { retry_after, message },
        408 | 409 | 500..=599 if f.overloaded => LlmError::Overloaded { retry_after, message },
        408 | 409 | 500..=599 => LlmError::Server { status: f.status, retry_after, message },
        400..=499 if f.auth => LlmError::Auth { status: f.status, message },
        400..=499 if f.rate_limited => LlmError::RateLimited { retry_after, message },
        400..=499 => LlmError::BadRequest { status: f.status, message },
        other => LlmError::protocol(format!("unexpected status {other}")),
    }
}

/// A token count, zero when absent.
fn num(v: &Value) -> u64 {
    v.as_u64().unwrap_or_default()
}

/// A string field, empty when absent.
fn text_of(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(status: u16) -> ErrorFacts {
        ErrorFacts { status, ..ErrorFacts::default() }
    }

    #[test]
    fn statuses_map_to_the_taxonomy() {
        for status in [408, 409, 500, 502, 503, 504] {
            assert!(matches!(classify(&facts(status)), LlmError::Server { .. }), "{status}");
        }
        assert!(matches!(classify(&facts(429)), LlmError::RateLimited { .. }));
        assert!(matches!(classify(&facts(529)), LlmError::Overloaded { .. }));
        assert!(matches!(classify(&facts(401)), LlmError::Auth { .. }));
        assert!(matches!(classify(&facts(403)), LlmError::Auth { .. }));
        assert!(matches!(classify(&facts(404)), LlmError::NotFound { .. }));
        assert!(matches!(classify(&facts(400)), LlmError::BadRequest { .. }));
        let overflow = ErrorFacts { overflow: true, ..facts(400) };
        assert!(matches!(classify(&overflow), LlmError::ContextOverflow { .. }));
        for status in [400, 401, 403, 404] {
            assert!(!classify(&facts(status)).is_transient(), "{status}");
        }
    }
}
