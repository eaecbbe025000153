//! OpenAI Chat Completions (`POST {base}/chat/completions`), which Ollama, vLLM, llama.cpp's
//! server, LM Studio and OpenRouter also speak.
//!
//! Usage is already in OpenAI semantics: `prompt_tokens` includes the cached tokens
//! (`prompt_tokens_details.cached_tokens`), `completion_tokens` includes reasoning
//! (`completion_tokens_details.reasoning_tokens`). Streams ask for usage with
//! `stream_options.include_usage`.

use serde_json::{Map, Value, json};

use super::assembly::{Assembly, parse_arguments, settle_stop_reason};
use super::sse::SseEvent;
use super::{ErrorFacts, num, text_of};
use crate::error::LlmError;
use crate::message::{ChatRequest, ChatResponse, Content, Role, StopReason, StreamEvent, ToolCall};
use crate::usage::Usage;

pub(crate) fn path() -> String {
    "/chat/completions".to_owned()
}

pub(crate) fn request_body(model: &str, req: &ChatRequest, stream: bool) -> Value {
    let mut messages = Vec::new();
    for m in &req.messages {
        match m.role {
            Role::System => messages.push(json!({"role": "system", "content": m.text()})),
            Role::User => messages.push(json!({"role": "user", "content": m.text()})),
            Role::Assistant => {
                let text = m.text();
                let mut msg = json!({
                    "role": "assistant",
                    "content": if text.is_empty() { Value::Null } else { Value::String(text) },
                });
                let calls: Vec<Value> = m
                    .tool_calls()
                    .map(|c| {
                        json!({
                            "id": c.id,
                            "type": "function",
                            "function": {"name": c.name, "arguments": c.arguments.to_string()},
                        })
                    })
                    .collect();
                if !calls.is_empty() {
                    msg["tool_calls"] = Value::Array(calls);
                }
                messages.push(msg);
            }
            Role::Tool => {
                for c in &m.content {
                    if let Content::ToolResult { call_id, content, .. } = c {
                        messages.push(
                            json!({"role": "tool", "tool_call_id": call_id, "content": content}),
                        );
                    }
                }
            }
        }
    }
    let mut body = Map::new();
    body.insert("model".into(), json!(model));
    body.insert("messages".into(), Value::Array(messages));
    if !req.tools.is_empty() {
        let tools: Vec<Value> = req
            .tools
            .iter()
            .map(|t| {
                json!({"type": "function", "function": {
                    "name": t.name, "description": t.description, "parameters": t.parameters,
                }})
            })
            .collect();
        body.insert("tools".into(), Value::Array(tools));
    }
    if let Some(t) = req.temperature {
        body.insert("temperature".into(), json!(t));
    }
    if let Some(n) = req.max_tokens {
        body.insert("max_tokens".into(), json!(n));
    }
    if !req.stop.is_empty() {
        body.insert("stop".into(), json!(req.stop));
    }
    if stream {
        body.insert("stream".into(), json!(true));
        body.insert("stream_options".into(), json!({"include_usage": true}));
    }
    Value::Object(body)
}

fn stop_reason(reason: &str) -> StopReason {
    match reason {
        "stop" => StopReason::EndTurn,
        "length" => StopReason::MaxTokens,
        "tool_calls" | "function_call" => StopReason::ToolUse,
        "content_filter" => StopReason::ContentFilter,
        _ => StopReason::Other,
    }
}

fn usage(u: &Value) -> Usage {
    Usage {
        input_tokens: num(&u["prompt_tokens"]),
        cached_input_tokens: num(&u["prompt_tokens_details"]["cached_tokens"]),
        cache_write_tokens: 0,
        output_tokens: num(&u["completion_tokens"]),
        reasoning_tokens: num(&u["completion_tokens_details"]["reasoning_tokens"]),
    }
}

pub(crate) fn parse_response(
    body: &Value,
    provider: &str,
    model: &str,
) -> Result<ChatResponse, LlmError> {
    let choice =
        body["choices"].get(0).ok_or_else(|| LlmError::protocol("the answer has no choices"))?;
    let message = &choice["message"];
    let tool_calls = message["tool_calls"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|c| {
            let name = text_of(&c["function"]["name"]);
            let arguments = match &c["function"]["arguments"] {
                Value::String(s) => parse_arguments(&name, s)?,
                v @ Value::Object(_) => v.clone(),
                _ => Value::Object(Map::new()),
            };
            Ok(ToolCall { id: text_of(&c["id"]), name, arguments })
        })
        .collect::<Result<Vec<_>, LlmError>>()?;
    let reason = stop_reason(choice["finish_reason"].as_str().unwrap_or("stop"));
    Ok(ChatResponse {
        text: text_of(&message["content"]),
        stop_reason: settle_stop_reason(reason, &tool_calls),
        tool_calls,
        usage: usage(&body["usage"]),
        provider: provider.to_owned(),
        model: model.to_owned(),
        cache_hit: false,
    })
}

/// The stream state: finished once `[DONE]` arrives.
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
        if ev.data.trim() == "[DONE]" {
            self.done = true;
            return Ok(out);
        }
        let chunk: Value = serde_json::from_str(&ev.data)
            .map_err(|e| LlmError::protocol(format!("a stream chunk is not JSON: {e}")))?;
        if chunk.get("error").is_some() {
            return Err(stream_error(&chunk["error"]));
        }
        if let Some(u) = chunk.get("usage").filter(|u| u.is_object()) {
            asm.usage = usage(u);
        }
        let Some(choice) = chunk["choices"].get(0) else { return Ok(out) };
        let delta = &choice["delta"];
        if let Some(text) = delta["content"].as_str() {
            asm.text(text, &mut out);
        }
        for call in delta["tool_calls"].as_array().map(Vec::as_slice).unwrap_or_default() {
            let key = call["index"].as_u64().unwrap_or(asm.call_count() as u64);
            if !asm.has_call(key) {
                asm.start_call(
                    key,
                    text_of(&call["id"]),
                    text_of(&call["function"]["name"]),
                    &mut out,
                );
            }
            if let Some(args) = call["function"]["arguments"].as_str() {
                asm.call_arguments(key, args, &mut out)?;
            }
        }
        if let Some(reason) = choice["finish_reason"].as_str() {
            asm.stop_reason = Some(stop_reason(reason));
        }
        Ok(out)
    }

    pub(crate) const fn is_done(&self) -> bool {
        self.done
    }
}

fn stream_error(err: &Value) -> LlmError {
    LlmError::Server { status: 500, retry_after: None, message: text_of(&err["message"]) }
}

pub(crate) fn error_facts(status: u16, body: &Value) -> ErrorFacts {
    let err = &body["error"];
    let code = err["code"].as_str().unwrap_or_default();
    let kind = err["type"].as_str().unwrap_or_default();
    let message = text_of(&err["message"]);
    // OpenAI sets a code; compatible servers (vLLM, llama.cpp) often only say so in words.
    let overflow = code == "context_length_exceeded"
        || kind == "exceed_context_size_error"
        || message.contains("maximum context length")
        || message.contains("context length");
    ErrorFacts {
        status,
        message,
        overflow: overflow && (400..500).contains(&status),
        ..ErrorFacts::default()
    }
}
