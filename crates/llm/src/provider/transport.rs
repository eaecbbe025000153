//! One provider endpoint over reqwest: sends a call, enforces the per-phase timeouts, bounds
//! every body, and classifies failures. It never retries.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use agentd_core::Clock;
use secrecy::{ExposeSecret, SecretString};

use super::{StreamDecoder, Wire};
use crate::config::{LlmConfigError, ProviderSettings, Timeouts};
use crate::error::{LlmError, TimeoutPhase};
use crate::message::{ChatRequest, ChatResponse, StreamEvent};

/// The most of an error body read to classify it.
const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// A failed attempt, and whether the policy may try again.
#[derive(Debug, Clone)]
pub(crate) struct AttemptError {
    pub(crate) error: LlmError,
    pub(crate) retryable: bool,
}

impl From<LlmError> for AttemptError {
    fn from(error: LlmError) -> Self {
        Self { retryable: error.is_transient(), error }
    }
}

/// A configured provider, ready to call.
#[derive(Debug)]
pub(crate) struct Endpoint {
    pub(crate) name: String,
    pub(crate) wire: Wire,
    pub(crate) base_url: String,
    api_key: Option<SecretString>,
    pub(crate) timeouts: Timeouts,
    client: reqwest::Client,
    max_body: usize,
    clock: Arc<dyn Clock>,
}

impl Endpoint {
    pub(crate) fn new(
        name: &str,
        settings: &ProviderSettings,
        max_body: usize,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, LlmConfigError> {
        let timeouts = settings.timeouts();
        let client = reqwest::Client::builder()
            .connect_timeout(timeouts.connect)
            .pool_idle_timeout(Duration::from_secs(90))
            .build()
            .map_err(|e| LlmConfigError {
                key: format!("llm.providers.{name}"),
                message: format!("cannot build an HTTP client: {e}"),
            })?;
        Ok(Self {
            name: name.to_owned(),
            wire: Wire(settings.kind),
            base_url: settings.effective_base_url(),
            api_key: settings.api_key.clone(),
            timeouts,
            client,
            max_body,
            clock,
        })
    }

    /// Sends the call and waits for the response headers (the first-byte clock).
    async fn send(
        &self,
        model: &str,
        req: &ChatRequest,
        stream: bool,
    ) -> Result<reqwest::Response, AttemptError> {
        let url = format!("{}{}", self.base_url, self.wire.path(model, stream));
        let body = serde_json::to_vec(&self.wire.request_body(model, req, stream))
            .map_err(|e| LlmError::protocol(format!("cannot encode the request: {e}")))?;
        let mut request =
            self.client.post(url).header(http::header::CONTENT_TYPE, "application/json").body(body);
        for (name, value) in
            self.wire.auth_headers(self.api_key.as_ref().map(ExposeSecret::expose_secret))
        {
            request = request.header(name, value);
        }
        if stream {
            request = request.header(http::header::ACCEPT, "text/event-stream");
        }
        let response = tokio::time::timeout(self.timeouts.first_byte, request.send())
            .await
            .map_err(|_| LlmError::Timeout { phase: TimeoutPhase::FirstByte })?
            .map_err(|e| map_reqwest(&e))?;
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(response);
        }
        let headers = response.headers().clone();
        let body = read_limited(response, ERROR_BODY_LIMIT, self.timeouts.idle, false)
            .await
            .unwrap_or_default();
        let (error, should_retry) =
            self.wire.classify_error(status, &headers, &body, self.clock.now());
        let never = matches!(status, 400 | 401 | 403 | 404)
            || matches!(error, LlmError::ContextOverflow { .. });
        let retryable = match should_retry {
            Some(v) if !never => v,
            Some(_) | None => error.is_transient(),
        };
        Err(AttemptError { error, retryable })
    }

    /// A complete answer within the attempt's total time.
    pub(crate) async fn complete(
        &self,
        model: &str,
        req: &ChatRequest,
    ) -> Result<ChatResponse, AttemptError> {
        let attempt = async {
            let response = self.send(model, req, false).await?;
            let body = read_limited(response, self.max_body, self.timeouts.total, true).await?;
            self.wire.parse_response(&body, &self.name, model).map_err(AttemptError::from)
        };
        tokio::time::timeout(self.timeouts.total, attempt)
            .await
            .unwrap_or_else(|_| Err(LlmError::Timeout { phase: TimeoutPhase::Total }.into()))
    }

    /// Opens a stream: the response headers have arrived and were successful.
    pub(crate) async fn open_stream(
        &self,
        model: &str,
        req: &ChatRequest,
    ) -> Result<Upstream, AttemptError> {
        let response = self.send(model, req, true).await?;
        Ok(Upstream {
            response,
            decoder: self.wire.decoder(self.max_body),
            pending: VecDeque::new(),
            idle: self.timeouts.idle,
            finished: false,
            provider: self.name.clone(),
            model: model.to_owned(),
        })
    }
}

/// An open upstream stream, read one neutral event at a time.
#[derive(Debug)]
pub(crate) struct Upstream {
    response: reqwest::Response,
    decoder: StreamDecoder,
    pending: VecDeque<StreamEvent>,
    idle: Duration,
    finished: bool,
    provider: String,
    model: String,
}

impl Upstream {
    /// The next event; `None` after `Completed` or an error.
    pub(crate) async fn next(&mut self) -> Option<Result<StreamEvent, LlmError>> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(Ok(event));
            }
            if self.finished {
                return None;
            }
            if self.decoder.is_done() {
                return Some(self.complete());
            }
            match tokio::time::timeout(self.idle, self.response.chunk()).await {
                Err(_) => return self.fail(LlmError::Timeout { phase: TimeoutPhase::Idle }),
                Ok(Err(e)) => return self.fail(map_reqwest(&e)),
                Ok(Ok(None)) => return Some(self.complete()),
                Ok(Ok(Some(bytes))) => match self.decoder.push(&bytes) {
                    Ok(events) => self.pending.extend(events),
                    Err(e) => return self.fail(e),
                },
            }
        }
    }

    fn fail(&mut self, error: LlmError) -> Option<Result<StreamEvent, LlmError>> {
        self.finished = true;
        Some(Err(error))
    }

    fn complete(&mut self) -> Result<StreamEvent, LlmError> {
        self.finished = true;
        let (rest, response) = self.decoder.finish(&self.provider, &self.model)?;
        if rest.is_empty() {
            return Ok(StreamEvent::Completed(response));
        }
        self.pending.extend(rest);
        self.pending.push_back(StreamEvent::Completed(response));
        self.pending.pop_front().ok_or_else(|| LlmError::protocol("empty stream"))
    }
}

/// Reads a body of at most `limit` bytes, each chunk within `idle`. Over the limit it fails when
/// `strict`, and is cut otherwise (error bodies are only classified).
async fn read_limited(
    mut response: reqwest::Response,
    limit: usize,
    idle: Duration,
    strict: bool,
) -> Result<Vec<u8>, LlmError> {
    let too_large = || LlmError::protocol(format!("the answer is larger than {limit} bytes"));
    if strict && response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    loop {
        let chunk = tokio::time::timeout(idle, response.chunk())
            .await
            .map_err(|_| LlmError::Timeout { phase: TimeoutPhase::Idle })?
            .map_err(|e| map_reqwest(&e))?;
        let Some(chunk) = chunk else { return Ok(body) };
        if body.len() + chunk.len() > limit {
            if strict {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk[..limit - body.len()]);
            return Ok(body);
        }
        body.extend_from_slice(&chunk);
    }
}

/// The error and its causes on one line.
fn describe(err: &reqwest::Error) -> String {
    let mut out = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(e) = source {
        out.push_str(": ");
        out.push_str(&e.to_string());
        source = e.source();
    }
    out
}

fn map_reqwest(err: &reqwest::Error) -> LlmError {
    if err.is_connect() {
        if err.is_timeout() {
            LlmError::Timeout { phase: TimeoutPhase::Connect }
        } else {
            LlmError::Connect { message: describe(err) }
        }
    } else if err.is_timeout() {
        LlmError::Timeout { phase: TimeoutPhase::Total }
    } else {
        LlmError::Connect { message: format!("the connection broke: {}", describe(err)) }
    }
}
