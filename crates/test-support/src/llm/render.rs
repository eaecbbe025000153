//! Rendering scripted replies in each protocol's documented wire format.

use std::io;

use axum::body::{Body, Bytes};
use axum::response::Response;
use futures::StreamExt;
use serde_json::{Value, json};

use super::{FakeUsage, Protocol, Reply, ReplyBody, RetryAfter, StreamFault};

pub(super) fn response(protocol: Protocol, reply: &Reply) -> Response {
    match &reply.body {
        ReplyBody::Error { status, retry_after } => error(protocol, *status, retry_after),
        ReplyBody::ContextOverflow => context_overflow(protocol),
        ReplyBody::MalformedSse => {
            sse(vec!["data: {\"choices\": [ {\"delta\": \n\n".to_owned()], None)
        }
        ReplyBody::MalformedJson => {
            plain(200, "application/json", "{\"id\": \"x\", \"choices\": [".to_owned())
        }
        ReplyBody::Oversized(n) => {
            plain(200, "application/json", format!("{{\"pad\": \"{}\"}}", "x".repeat(*n)))
        }
        ReplyBody::Raw { status, content_type, body } => plain(*status, content_type, body.clone()),
        ReplyBody::Text(_) | ReplyBody::ToolCall { .. } if reply.stream => {
            let (events, fault) = stream_events(protocol, reply);
            sse(events, fault)
        }
        ReplyBody::Text(_) | ReplyBody::ToolCall { .. } => {
            plain(200, "application/json", complete(protocol, reply).to_string())
        }
    }
}

fn plain(status: u16, content_type: &str, body: String) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Body::from(body))
        .unwrap()
}

fn sse(events: Vec<String>, fault: Option<StreamFault>) -> Response {
    let chunks =
        futures::stream::iter(events.into_iter().map(|e| Ok::<Bytes, io::Error>(Bytes::from(e))));
    let body = match fault {
        None | Some(StreamFault::Overloaded) => Body::from_stream(chunks),
        Some(StreamFault::Stall) => Body::from_stream(chunks.chain(futures::stream::pending())),
        Some(StreamFault::Disconnect) => Body::from_stream(
            // A moment first, so that the events before the fault are flushed to the client.
            chunks.chain(futures::stream::once(async {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                Err(io::Error::other("the fake hangs up"))
            })),
        ),
    };
    Response::builder()
        .status(200)
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(body)
        .unwrap()
}

fn data(v: &Value) -> String {
    format!("data: {v}\n\n")
}

fn event(name: &str, v: &Value) -> String {
    format!("event: {name}\ndata: {v}\n\n")
}

fn pieces(reply: &Reply) -> Vec<String> {
    match &reply.body {
        ReplyBody::Text(p) => p.clone(),
        ReplyBody::ToolCall { text, .. } if !text.is_empty() => vec![text.clone()],
        _ => Vec::new(),
    }
}

fn full_text(reply: &Reply) -> String {
    pieces(reply).concat()
}

fn openai_usage(u: FakeUsage) -> Value {
    json!({
        "prompt_tokens": u.input + u.cached,
        "completion_tokens": u.output + u.reasoning,
        "total_tokens": u.input + u.cached + u.output + u.reasoning,
        "prompt_tokens_details": {"cached_tokens": u.cached},
        "completion_tokens_details": {"reasoning_tokens": u.reasoning},
    })
}

fn anthropic_usage(u: FakeUsage) -> Value {
    json!({
        "input_tokens": u.input,
        "cache_read_input_tokens": u.cached,
        "cache_creation_input_tokens": u.cache_write,
        "output_tokens": u.output + u.reasoning,
    })
}

fn gemini_usage(u: FakeUsage) -> Value {
    json!({
        "promptTokenCount": u.input + u.cached,
        "cachedContentTokenCount": u.cached,
        "candidatesTokenCount": u.output,
        "thoughtsTokenCount": u.reasoning,
        "totalTokenCount": u.input + u.cached + u.output + u.reasoning,
    })
}

fn complete(protocol: Protocol, reply: &Reply) -> Value {
    let text = full_text(reply);
    let call = match &reply.body {
        ReplyBody::ToolCall { name, arguments, .. } => Some((name.clone(), arguments.clone())),
        _ => None,
    };
    match protocol {
        Protocol::Openai => {
            let mut message = json!({"role": "assistant", "content": if text.is_empty() { Value::Null } else { json!(text) }});
            if let Some((name, args)) = &call {
                message["tool_calls"] = json!([{"id": "call_1", "type": "function", "function": {"name": name, "arguments": args.to_string()}}]);
            }
            json!({
                "id": "chatcmpl-1", "object": "chat.completion", "model": "fake",
                "choices": [{"index": 0, "message": message, "finish_reason": if call.is_some() { "tool_calls" } else { "stop" }}],
                "usage": openai_usage(reply.usage),
            })
        }
        Protocol::Anthropic => {
            let mut content = Vec::new();
            if !text.is_empty() {
                content.push(json!({"type": "text", "text": text}));
            }
            if let Some((name, args)) = &call {
                content.push(
                    json!({"type": "tool_use", "id": "toolu_1", "name": name, "input": args}),
                );
            }
            json!({
                "id": "msg_1", "type": "message", "role": "assistant", "model": "fake", "content": content,
                "stop_reason": if call.is_some() { "tool_use" } else { "end_turn" }, "stop_sequence": null,
                "usage": anthropic_usage(reply.usage),
            })
        }
        Protocol::Gemini => {
            let mut parts = Vec::new();
            if !text.is_empty() {
                parts.push(json!({"text": text}));
            }
            if let Some((name, args)) = &call {
                parts.push(json!({"functionCall": {"name": name, "args": args}}));
            }
            json!({
                "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}],
                "usageMetadata": gemini_usage(reply.usage),
                "modelVersion": "fake",
            })
        }
    }
}

/// The SSE events of a streamed reply, cut at its fault if it has one.
fn stream_events(protocol: Protocol, reply: &Reply) -> (Vec<String>, Option<StreamFault>) {
    let texts = pieces(reply);
    let call = match &reply.body {
        ReplyBody::ToolCall { name, arguments, .. } => Some((name.clone(), arguments.to_string())),
        _ => None,
    };
    // Preamble, one event per delta, and the closing events.
    let mut preamble = Vec::new();
    let mut deltas = Vec::new();
    let mut closing = Vec::new();
    let u = reply.usage;
    match protocol {
        Protocol::Openai => {
            let chunk = |delta: Value, finish: Value| {
                data(
                    &json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "fake",
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}),
                )
            };
            preamble.push(chunk(json!({"role": "assistant", "content": ""}), Value::Null));
            for t in &texts {
                deltas.push(chunk(json!({"content": t}), Value::Null));
            }
            if let Some((name, args)) = &call {
                deltas.push(chunk(json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": name, "arguments": ""}}]}), Value::Null));
                let (a, b) = args.split_at(args.len() / 2);
                for part in [a, b] {
                    deltas.push(chunk(
                        json!({"tool_calls": [{"index": 0, "function": {"arguments": part}}]}),
                        Value::Null,
                    ));
                }
            }
            closing
                .push(chunk(json!({}), json!(if call.is_some() { "tool_calls" } else { "stop" })));
            closing.push(data(&json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [], "usage": openai_usage(u)})));
            closing.push("data: [DONE]\n\n".to_owned());
        }
        Protocol::Anthropic => {
            let start_usage = json!({"input_tokens": u.input, "cache_read_input_tokens": u.cached, "cache_creation_input_tokens": u.cache_write, "output_tokens": 1});
            preamble.push(event("message_start", &json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": "fake", "content": [], "stop_reason": null, "usage": start_usage}})));
            preamble.push(event("content_block_start", &json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})));
            preamble.push("event: ping\ndata: {\"type\": \"ping\"}\n\n".to_owned());
            for t in &texts {
                deltas.push(event("content_block_delta", &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}})));
            }
            let mut stop = vec![event(
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": 0}),
            )];
            if let Some((name, args)) = &call {
                stop.push(event("content_block_start", &json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_1", "name": name, "input": {}}})));
                let (a, b) = args.split_at(args.len() / 2);
                for part in [a, b] {
                    stop.push(event("content_block_delta", &json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": part}})));
                }
                stop.push(event(
                    "content_block_stop",
                    &json!({"type": "content_block_stop", "index": 1}),
                ));
            }
            // Tool-call events are deltas too.
            deltas.extend(stop);
            closing.push(event("message_delta", &json!({"type": "message_delta", "delta": {"stop_reason": if call.is_some() { "tool_use" } else { "end_turn" }, "stop_sequence": null}, "usage": {"output_tokens": u.output + u.reasoning}})));
            closing.push(event("message_stop", &json!({"type": "message_stop"})));
        }
        Protocol::Gemini => {
            let chunk = |parts: Value| {
                data(
                    &json!({"candidates": [{"content": {"role": "model", "parts": parts}, "index": 0}], "modelVersion": "fake"}),
                )
            };
            for t in &texts {
                deltas.push(chunk(json!([{"text": t}])));
            }
            if let Some((name, args)) = &call {
                let args: Value = serde_json::from_str(args).unwrap_or(json!({}));
                deltas.push(chunk(json!([{"functionCall": {"name": name, "args": args}}])));
            }
            closing.push(data(&json!({"candidates": [{"content": {"role": "model", "parts": [{"text": ""}]}, "finishReason": "STOP", "index": 0}], "usageMetadata": gemini_usage(u), "modelVersion": "fake"})));
        }
    }
    let Some((after, fault)) = reply.fault else {
        return ([preamble, deltas, closing].concat(), None);
    };
    let mut events = preamble;
    events.extend(deltas.into_iter().take(after));
    if fault == StreamFault::Overloaded {
        events.push(in_stream_overload(protocol));
    }
    (events, Some(fault))
}

fn in_stream_overload(protocol: Protocol) -> String {
    match protocol {
        Protocol::Openai => {
            data(&json!({"error": {"message": "The server is overloaded", "type": "server_error"}}))
        }
        Protocol::Anthropic => event(
            "error",
            &json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        ),
        Protocol::Gemini => data(
            &json!({"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}),
        ),
    }
}

fn error(protocol: Protocol, status: u16, retry_after: &RetryAfter) -> Response {
    let message = format!("fake failure {status}");
    let (anthropic_type, gemini_status) = match status {
        400 => ("invalid_request_error", "INVALID_ARGUMENT"),
        401 => ("authentication_error", "UNAUTHENTICATED"),
        403 => ("permission_error", "PERMISSION_DENIED"),
        404 => ("not_found_error", "NOT_FOUND"),
        429 => ("rate_limit_error", "RESOURCE_EXHAUSTED"),
        503 => ("api_error", "UNAVAILABLE"),
        504 => ("api_error", "DEADLINE_EXCEEDED"),
        529 => ("overloaded_error", "UNAVAILABLE"),
        _ => ("api_error", "INTERNAL"),
    };
    let body = match protocol {
        Protocol::Openai => {
            json!({"error": {"message": message, "type": if status >= 500 { "server_error" } else { "invalid_request_error" }, "param": null, "code": null}})
        }
        Protocol::Anthropic => {
            json!({"type": "error", "error": {"type": anthropic_type, "message": message}})
        }
        Protocol::Gemini => {
            let mut err = json!({"code": status, "message": message, "status": gemini_status});
            if let RetryAfter::GeminiDelay(delay) = retry_after {
                err["details"] = json!([
                    {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": []},
                    {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay},
                ]);
            }
            json!({"error": err})
        }
    };
    let mut response = plain(status, "application/json", body.to_string());
    let header = match retry_after {
        RetryAfter::Millis(ms) => Some(("retry-after-ms", ms.to_string())),
        RetryAfter::Seconds(s) => Some(("retry-after", s.to_string())),
        RetryAfter::HttpDate(t) => Some(("retry-after", httpdate::fmt_http_date(*t))),
        RetryAfter::GeminiDelay(_) | RetryAfter::None => None,
    };
    if let Some((name, value)) = header {
        response.headers_mut().insert(name, value.parse().unwrap());
    }
    response
}

fn context_overflow(protocol: Protocol) -> Response {
    let body = match protocol {
        Protocol::Openai => {
            json!({"error": {"message": "This model's maximum context length is 128000 tokens. However, your messages resulted in 130000 tokens.", "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}})
        }
        Protocol::Anthropic => {
            json!({"type": "error", "error": {"type": "invalid_request_error", "message": "prompt is too long: 210000 tokens > 200000 maximum"}})
        }
        Protocol::Gemini => {
            json!({"error": {"code": 400, "message": "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).", "status": "INVALID_ARGUMENT"}})
        }
    };
    plain(400, "application/json", body.to_string())
}
