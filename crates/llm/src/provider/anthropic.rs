//! Anthropic Messages (`POST {base}/messages`).
//!
//! Anthropic counts cached prompt tokens outside `input_tokens` (`cache_read_input_tokens`,
//! `cache_creation_input_tokens`); they are added back so that `input_tokens` counts every prompt
//! token once. `overloaded_error` (status 529, or an `error` event inside a stream) is transient.

use serde_json::{Map, Value, json};

use super::assembly::{Assembly, settle_stop_reason};
use super::sse::SseEvent;
use super::{ErrorFacts, num, text_of};
use crate::error::LlmError;
use crate::message::{ChatRequest, ChatResponse, Content, Role, StopReason, StreamEvent, ToolCall};
use crate::usage::Usage;

/// The `max_tokens` sent when the request gives none (the protocol requires one).
pub const DEFAULT_MAX_TOKENS: u32 = 4096;
/// The API version header value.
pub const API_VERSION: &str = "2023-06-01";

pub(crate) fn path() -> String {
    "/messages".to_owned()
}

pub(crate) fn request_body(model: &str, req: &ChatRequest, stream: bool) -> Value {
    let mut system = Vec::new();
    let mut messages: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for m in &req.messages {
        let (role, blocks): (&'static str, Vec<Value>) = match m.role {
            Role::System => {
                system.push(m.text());
                continue;
            }
            Role::User | Role::Tool | Role::Assistant => {
                let role = if m.role == Role::Assistant { "assistant" } else { "user" };
                let blocks = m
                    .content
                    .iter()
                    .filter_map(|c| match c {
                        Content::Text { text } if text.is_empty() => None,
                        Content::Text { text } => Some(json!({"type": "text", "text": text})),
                        Content::ToolCall(call) => Some(json!({
                            "type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments,
                        })),
                        Content::ToolResult { call_id, content, is_error } => {
                            let mut block = json!({"type": "tool_result", "tool_use_id": call_id, "content": content});
                            if *is_error {
                                block["is_error"] = json!(true);
                            }
                            Some(block)
                        }
                    })
                    .collect();
                (role, blocks)
            }
        };
        // The protocol wants user and assistant turns to alternate: merge neighbours.
        match messages.last_mut() {
            Some((last, existing)) if *last == role => existing.extend(blocks),
            _ => messages.push((role, blocks)),
        }
    }
    let mut body = Map::new();
    body.insert("model".into(), json!(model));
    body.insert("max_tokens".into(), json!(req.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS)));
    if !system.is_empty() {
        body.insert("system".into(), json!(system.join("\n\n")));
    }
    body.insert(
        "messages".into(),
        Value::Array(
            messages
                .into_iter()
                .map(|(role, content)| json!({"role": role, "content": content}))
                .collect(),
        ),
    );
    if !req.tools.is_empty() {
        let tools: Vec<Value> = req
            .tools
            .iter()
            .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.parameters}))
            .collect();
        body.insert("tools".into(), Value::Array(tools));
    }
    if let Some(t) = req.temperature {
        body.insert("temperature".into(), json!(t));
    }
    if !req.stop.is_empty() {
        body.insert("stop_sequences".into(), json!(req.stop));
    }
    if stream {
        body.insert("stream".into(), json!(true));
    }
    Value::Object(body)
}

fn stop_reason(reason: &str) -> StopReason {
    match reason {
        "end_turn" | "pause_turn" => StopReason::EndTurn,
        "max_tokens" | "model_context_window_exceeded" => StopReason::MaxTokens,
        "stop_sequence" => StopReason::StopSequence,
        "tool_use" => StopReason::ToolUse,
        "refusal" => StopReason::ContentFilter,
        _ => StopReason::Other,
    }
}

/// Updates `usage` with the fields present in `u` (stream events report some fields only).
fn merge_usage(usage: &mut Usage, u: &Value) {
    let field = |name: &str| u.get(name).filter(|v| v.is_u64()).map(num);
    let input = field("input_tokens");
    let read = field("cache_read_input_tokens");
    let write = field("cache_creation_input_tokens");
    if input.is_some() || read.is_some() || write.is_some() {
        let uncached = input.unwrap_or_else(|| usage.uncached_input_tokens());
        let read = read.unwrap_or(usage.cached_input_tokens);
        let write = write.unwrap_or(usage.cache_write_tokens);
        usage.input_tokens = uncached + read + write;
        usage.cached_input_tokens = read;
        usage.cache_write_tokens = write;
    }
    if let Some(output) = field("output_tokens") {
        usage.output_tokens = output;
    }
}

pub(crate) fn parse_response(
    body: &Value,
    provider: &str,
    model: &str,
) -> Result<ChatResponse, LlmError> {
    let blocks = body["content"]
        .as_array()
        .ok_or_else(|| LlmError::protocol("the answer has no content"))?;
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for block in blocks {
        match block["type"].as_str() {
            Some("text") => text.push_str(block["text"].as_str().unwrap_or_default()),
            Some("tool_use") => tool_calls.push(ToolCall {
                id: text_of(&block["id"]),
                name: text_of(&block["name"]),
                arguments: if block["input"].is_object() {
                    block["input"].clone()
                } else {
                    json!({})
                },
            }),
            _ => {}
        }
    }
    let mut usage = Usage::default();
    merge_usage(&mut usage, &body["usage"]);
    let reason = stop_reason(body["stop_reason"].as_str().unwrap_or("end_turn"));
    Ok(ChatResponse {
        text,
        stop_reason: settle_stop_reason(reason, &tool_calls),
        tool_calls,
        usage,
        provider: provider.to_owned(),
        model: model.to_owned(),
        cache_hit: false,
    })
}

/// The stream state: finished at `message_stop`.
#[derive(Debug, Default)]
pub(crate) struct Decoder {
    done: bool,
}

impl Decoder {
    pub(crate) fn event(
        &mut self,
        ev: &SseEvent,
        asm: &mut Assembly,
    ) -> Result<Vec<StreamEvent>, LlmError> {
        let mut out = Vec::new();
        let data: Value = serde_json::from_str(&ev.data)
            .map_err(|e| LlmError::protocol(format!("a stream event is not JSON: {e}")))?;
        match data["type"].as_str().unwrap_or_default() {
            "message_start" => merge_usage(&mut asm.usage, &data["message"]["usage"]),
            "content_block_start" => {
                let index = data["index"].as_u64().unwrap_or_default();
                let block = &data["content_block"];
                match block["type"].as_str() {
                    Some("tool_use") => {
                        asm.start_call(
                            index,
                            text_of(&block["id"]),
                            text_of(&block["name"]),
                            &mut out,
                        );
                    }
                    Some("text") => asm.text(block["text"].as_str().unwrap_or_default(), &mut out),
                    _ => {}
                }
            }
            "content_block_delta" => {
                let index = data["index"].as_u64().unwrap_or_default();
                let delta = &data["delta"];
                match delta["type"].as_str() {
                    Some("text_delta") => {
                        asm.text(delta["text"].as_str().unwrap_or_default(), &mut out)
                    }
                    Some("input_json_delta") => {
                        asm.call_arguments(
                            index,
                            delta["partial_json"].as_str().unwrap_or_default(),
                            &mut out,
                        )?;
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(reason) = data["delta"]["stop_reason"].as_str() {
                    asm.stop_reason = Some(stop_reason(reason));
                }
                merge_usage(&mut asm.usage, &data["usage"]);
            }
            "message_stop" => self.done = true,
            "error" => return Err(stream_error(&data["error"])),
            // ping, content_block_stop, and event types added later.
            _ => {}
        }
        Ok(out)
    }

    pub(crate) const fn is_done(&self) -> bool {
        self.done
    }
}

fn stream_error(err: &Value) -> LlmError {
    let message = text_of(&err["message"]);
    match err["type"].as_str().unwrap_or_default() {
        "overloaded_error" => LlmError::Overloaded { retry_after: None, message },
        "rate_limit_error" => LlmError::RateLimited { retry_after: None, message },
        "invalid_request_error" => LlmError::BadRequest { status: 400, message },
        _ => LlmError::Server { status: 500, retry_after: None, message },
    }
}

pub(crate) fn error_facts(status: u16, body: &Value) -> ErrorFacts {
    let err = &body["error"];
    let kind = err["type"].as_str().unwrap_or_default();
    let message = text_of(&err["message"]);
    ErrorFacts {
        status,
        overflow: kind == "invalid_request_error" && message.starts_with("prompt is too long"),
        overloaded: kind == "overloaded_error",
        message,
        ..ErrorFacts::default()
    }
}
