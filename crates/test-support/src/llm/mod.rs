//! Scripted fake LLM servers for the three wire protocols, on 127.0.0.1 over real HTTP.
//!
//! A [`FakeLlm`] answers each request with the next [`Reply`] of its script (or its standing
//! reply), rendered in its protocol's wire format: plain or streamed text, tool calls, and every
//! fault the policy must handle (429 with each `Retry-After` form, 5xx, 529, an in-stream
//! overload, slow headers, a stall or a disconnect mid-stream, malformed SSE or JSON, an
//! oversized body). It records every request it receives, with the paused-clock-aware arrival
//! time, so tests assert on attempts and delays. The fake is written from the providers'
//! documented formats and shares no code with the adapters it tests.
//!
//! A fake shared by many runs at once can instead decide each reply from the request itself
//! ([`FakeLlm::respond_with`]): the request carries the run's whole conversation, so a
//! responder can tell which run and which step it is answering.
//!
//! The server runs as a task on the caller's runtime, so a test with a paused clock drives it
//! too. When the script runs out it answers 500 with a message saying so.

mod render;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use serde_json::Value;
use tokio::net::TcpListener;

/// Which wire protocol a fake speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// OpenAI Chat Completions.
    Openai,
    /// Anthropic Messages.
    Anthropic,
    /// Gemini generateContent.
    Gemini,
}

/// How a 429 says when to come back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryAfter {
    /// `retry-after-ms: N`.
    Millis(u64),
    /// `retry-after: N`.
    Seconds(u64),
    /// `retry-after: <HTTP date>`.
    HttpDate(SystemTime),
    /// Gemini's `google.rpc.RetryInfo.retryDelay` in the body, e.g. `"7s"`.
    GeminiDelay(String),
    /// No hint.
    None,
}

/// Tokens a reply reports, in the protocol's own terms (see `render`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FakeUsage {
    /// Uncached prompt tokens (OpenAI and Gemini: the total includes `cached`).
    pub input: u64,
    /// Cached prompt tokens read.
    pub cached: u64,
    /// Prompt tokens written to the cache (Anthropic only).
    pub cache_write: u64,
    /// Generated tokens, reasoning excluded.
    pub output: u64,
    /// Reasoning tokens.
    pub reasoning: u64,
}

/// What goes wrong inside a stream after `after` deltas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamFault {
    /// The server stops sending but keeps the connection open.
    Stall,
    /// The server drops the connection.
    Disconnect,
    /// The server sends an overload error event.
    Overloaded,
}

/// What a reply contains.
#[derive(Debug, Clone, PartialEq)]
pub enum ReplyBody {
    /// A text answer.
    Text(Vec<String>),
    /// A tool call (after optional text).
    ToolCall {
        /// Text before the call.
        text: String,
        /// The tool.
        name: String,
        /// Its arguments.
        arguments: Value,
    },
    /// An error status with the protocol's error body.
    Error {
        /// The status.
        status: u16,
        /// The hint.
        retry_after: RetryAfter,
    },
    /// The protocol's context-overflow error.
    ContextOverflow,
    /// A 200 stream whose data is not JSON.
    MalformedSse,
    /// A 200 JSON answer that is not JSON.
    MalformedJson,
    /// A 200 answer of this many bytes.
    Oversized(usize),
    /// Exactly this status, content type and body.
    Raw {
        /// The status.
        status: u16,
        /// The content type.
        content_type: String,
        /// The body.
        body: String,
    },
}

/// One scripted reply.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// What it contains.
    pub body: ReplyBody,
    /// Stream it (as SSE) rather than answer at once.
    pub stream: bool,
    /// Wait this long before sending the headers.
    pub delay: Duration,
    /// A fault after this many deltas of a streamed answer.
    pub fault: Option<(usize, StreamFault)>,
    /// The usage to report.
    pub usage: FakeUsage,
}

impl Reply {
    fn new(body: ReplyBody) -> Self {
        Self {
            body,
            stream: false,
            delay: Duration::ZERO,
            fault: None,
            usage: FakeUsage { input: 12, output: 5, ..FakeUsage::default() },
        }
    }

    /// A text answer.
    pub fn text(text: &str) -> Self {
        Self::new(ReplyBody::Text(vec![text.to_owned()]))
    }

    /// A streamed text answer, one delta per piece.
    pub fn stream_text(pieces: &[&str]) -> Self {
        Self {
            stream: true,
            ..Self::new(ReplyBody::Text(pieces.iter().map(|p| (*p).to_owned()).collect()))
        }
    }

    /// A tool call.
    pub fn tool_call(name: &str, arguments: Value) -> Self {
        Self::new(ReplyBody::ToolCall { text: String::new(), name: name.to_owned(), arguments })
    }

    /// An error status with the protocol's error body.
    pub fn status(status: u16) -> Self {
        Self::new(ReplyBody::Error { status, retry_after: RetryAfter::None })
    }

    /// A 429 with this hint.
    pub fn rate_limited(retry_after: RetryAfter) -> Self {
        Self::new(ReplyBody::Error { status: 429, retry_after })
    }

    /// Anthropic's 529 overload (other protocols: 503).
    pub fn overloaded() -> Self {
        Self::new(ReplyBody::Error { status: 529, retry_after: RetryAfter::None })
    }

    /// The protocol's context-overflow error.
    pub fn context_overflow() -> Self {
        Self::new(ReplyBody::ContextOverflow)
    }

    /// A 200 stream with malformed data.
    pub fn malformed_sse() -> Self {
        Self { stream: true, ..Self::new(ReplyBody::MalformedSse) }
    }

    /// A 200 answer that is not JSON.
    pub fn malformed_json() -> Self {
        Self::new(ReplyBody::MalformedJson)
    }

    /// A 200 answer of `bytes` bytes.
    pub fn oversized(bytes: usize) -> Self {
        Self::new(ReplyBody::Oversized(bytes))
    }

    /// Exactly this answer.
    pub fn raw(status: u16, content_type: &str, body: &str) -> Self {
        Self::new(ReplyBody::Raw {
            status,
            content_type: content_type.to_owned(),
            body: body.to_owned(),
        })
    }

    /// Streamed.
    #[must_use]
    pub fn streamed(mut self) -> Self {
        self.stream = true;
        self
    }

    /// Headers only after `delay`.
    #[must_use]
    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Streamed, with `fault` after `deltas` deltas.
    #[must_use]
    pub fn fault_after(mut self, deltas: usize, fault: StreamFault) -> Self {
        self.stream = true;
        self.fault = Some((deltas, fault));
        self
    }

    /// Reporting this usage.
    #[must_use]
    pub fn with_usage(mut self, usage: FakeUsage) -> Self {
        self.usage = usage;
        self
    }
}

/// A request the fake received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// When it arrived (tokio's clock: paused in paused tests).
    pub at: tokio::time::Instant,
    /// Path and query.
    pub path: String,
    /// Its headers.
    pub headers: HeaderMap,
    /// Its body as JSON (`Null` when it is not JSON).
    pub body: Value,
}

/// Decides the reply to a request from its JSON body.
pub type Responder = Arc<dyn Fn(&Value) -> Reply + Send + Sync>;

#[derive(Default)]
struct Script {
    replies: VecDeque<Reply>,
    standing: Option<Reply>,
    responder: Option<Responder>,
    received: Vec<Recorded>,
    forget: bool,
}

impl std::fmt::Debug for Script {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Script")
            .field("replies", &self.replies)
            .field("standing", &self.standing)
            .field("responder", &self.responder.is_some())
            .field("received", &self.received.len())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
struct Shared {
    protocol: Protocol,
    script: Arc<Mutex<Script>>,
}

/// A running fake server.
#[derive(Debug, Clone)]
pub struct FakeLlm {
    /// Where it listens.
    pub addr: SocketAddr,
    shared: Shared,
}

impl FakeLlm {
    /// Starts a fake of `protocol` on 127.0.0.1, port 0, as a task of the current runtime.
    pub async fn start(protocol: Protocol) -> Self {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Shared { protocol, script: Arc::new(Mutex::new(Script::default())) };
        let app = Router::new().fallback(answer).with_state(shared.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, shared }
    }

    /// The protocol it speaks.
    #[must_use]
    pub fn protocol(&self) -> Protocol {
        self.shared.protocol
    }

    /// The base URL a provider of this protocol is configured with.
    #[must_use]
    pub fn base_url(&self) -> String {
        match self.shared.protocol {
            Protocol::Openai | Protocol::Anthropic => format!("http://{}/v1", self.addr),
            Protocol::Gemini => format!("http://{}/v1beta", self.addr),
        }
    }

    /// Queues replies, answered in order.
    pub fn push(&self, replies: impl IntoIterator<Item = Reply>) {
        self.shared.script.lock().unwrap().replies.extend(replies);
    }

    /// The reply given whenever the queue is empty.
    pub fn always(&self, reply: Reply) {
        self.shared.script.lock().unwrap().standing = Some(reply);
    }

    /// Answers every request the queue does not with `responder`'s reply to its body.
    pub fn respond_with(&self, responder: impl Fn(&Value) -> Reply + Send + Sync + 'static) {
        self.shared.script.lock().unwrap().responder = Some(Arc::new(responder));
    }

    /// Stops recording requests (a long benchmark would otherwise keep every body).
    pub fn stop_recording(&self) {
        let mut script = self.shared.script.lock().unwrap();
        script.forget = true;
        script.received = Vec::new();
    }

    /// The requests received so far.
    #[must_use]
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.script.lock().unwrap().received.clone()
    }

    /// The number of requests received so far.
    #[must_use]
    pub fn request_count(&self) -> usize {
        self.shared.script.lock().unwrap().received.len()
    }

    /// The gaps between consecutive requests.
    #[must_use]
    pub fn gaps(&self) -> Vec<Duration> {
        let at: Vec<_> = self.requests().iter().map(|r| r.at).collect();
        at.windows(2).map(|w| w[1] - w[0]).collect()
    }
}

async fn answer(
    State(shared): State<Shared>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    // Like a real server, answer a streaming request with a stream.
    let wants_stream =
        uri.path().contains("streamGenerateContent") || body["stream"] == Value::Bool(true);
    let (reply, responder) = {
        let mut script = shared.script.lock().unwrap();
        if !script.forget {
            script.received.push(Recorded {
                at: tokio::time::Instant::now(),
                path: uri
                    .path_and_query()
                    .map_or_else(|| uri.path().to_owned(), |p| p.as_str().to_owned()),
                headers,
                body: body.clone(),
            });
        }
        (script.replies.pop_front(), script.responder.clone())
    };
    // The responder runs outside the lock: it may take its own.
    let reply = match (reply, responder) {
        (Some(reply), _) => Some(reply),
        (None, Some(responder)) => Some(responder(&body)),
        (None, None) => shared.script.lock().unwrap().standing.clone(),
    };
    let Some(mut reply) = reply else {
        return Response::builder()
            .status(500)
            .body(Body::from("the fake LLM's script is exhausted"))
            .unwrap();
    };
    reply.stream |= wants_stream;
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    render::response(shared.protocol, &reply)
}
