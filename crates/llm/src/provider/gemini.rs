//! Google Gemini `generateContent` and `streamGenerateContent?alt=sse`.
//!
//! `promptTokenCount` already includes `cachedContentTokenCount`; `candidatesTokenCount`
//! excludes `thoughtsTokenCount`, which is added so that output counts reasoning too. Function
//! calls may come without ids; they get `call_<n>` ids, and a function response is named after
//! the call it answers. A 429 carries its delay in the body (`google.rpc.RetryInfo.retryDelay`).

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::assembly::{Assembly, settle_stop_reason};
use super::sse::SseEvent;
use super::{ErrorFacts, num, text_of};
use crate::error::LlmError;
use crate::message::{ChatRequest, ChatResponse, Content, Role, StopReason, StreamEvent, ToolCall};
use crate::retry::parse_duration_seconds;
use crate::usage::Usage;

pub(crate) fn path(model: &str, stream: bool) -> String {
    if stream {
        format!("/models/{model}:streamGenerateContent?alt=sse")
    } else {
        format!("/models/{model}:generateContent")
    }
}

pub(crate) fn request_body(req: &ChatRequest) -> Value {
    let names: HashMap<&str, &str> = req
        .messages
        .iter()
        .flat_map(|m| m.tool_calls())
        .map(|c| (c.id.as_str(), c.name.as_str()))
        .collect();
    let mut system = Vec::new();
    let mut contents: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for m in &req.messages {
        if m.role == Role::System {
            system.push(json!({"text": m.text()}));
            continue;
        }
        let role = if m.role == Role::Assistant { "model" } else { "user" };
        let parts: Vec<Value> = m
            .content
            .iter()
            .filter_map(|c| match c {
                Content::Text { text } if text.is_empty() => None,
                Content::Text { text } => Some(json!({"text": text})),
                Content::ToolCall(call) => {
                    Some(json!({"functionCall": {"name": call.name, "args": call.arguments}}))
                }
                Content::ToolResult { call_id, content, is_error } => {
                    let name = names.get(call_id.as_str()).copied().unwrap_or(call_id.as_str());
                    let key = if *is_error { "error" } else { "content" };
                    Some(json!({"functionResponse": {"name": name, "response": {key: content}}}))
                }
            })
            .collect();
        match contents.last_mut() {
            Some((last, existing)) if *last == role => existing.extend(parts),
            _ => contents.push((role, parts)),
        }
    }
    let mut body = Map::new();
    body.insert(
        "contents".into(),
        Value::Array(
            contents
                .into_iter()
                .map(|(role, parts)| json!({"role": role, "parts": parts}))
                .collect(),
        ),
    );
    if !system.is_empty() {
        body.insert("systemInstruction".into(), json!({"parts": system}));
    }
    if !req.tools.is_empty() {
        let decls: Vec<Value> = req
            .tools
            .iter()
            .map(|t| json!({"name": t.name, "description": t.description, "parameters": t.parameters}))
            .collect();
        body.insert("tools".into(), json!([{"functionDeclarations": decls}]));
    }
    let mut config = Map::new();
    if let Some(t) = req.temperature {
        config.insert("temperature".into(), json!(t));
    }
    if let Some(n) = req.max_tokens {
        config.insert("maxOutputTokens".into(), json!(n));
    }
    if !req.stop.is_empty() {
        config.insert("stopSequences".into(), json!(req.stop));
    }
    if !config.is_empty() {
        body.insert("generationConfig".into(), Value::Object(config));
    }
    Value::Object(body)
}

fn stop_reason(reason: &str) -> StopReason {
    match reason {
        "STOP" => StopReason::EndTurn,
        "MAX_TOKENS" => StopReason::MaxTokens,
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => {
            StopReason::ContentFilter
        }
        _ => StopReason::Other,
    }
}

fn usage(u: &Value) -> Usage {
    let thoughts = num(&u["thoughtsTokenCount"]);
    Usage {
        input_tokens: num(&u["promptTokenCount"]),
        cached_input_tokens: num(&u["cachedContentTokenCount"]),
        cache_write_tokens: 0,
        output_tokens: num(&u["candidatesTokenCount"]) + thoughts,
        reasoning_tokens: thoughts,
    }
}

/// A prompt blocked before any candidate was produced.
fn blocked(body: &Value) -> Option<LlmError> {
    let reason = body["promptFeedback"]["blockReason"].as_str()?;
    Some(LlmError::ContentFiltered { message: format!("the prompt was blocked: {reason}") })
}

fn call_id(part: &Value, index: usize) -> String {
    part["functionCall"]["id"].as_str().map_or_else(|| format!("call_{index}"), str::to_owned)
}

pub(crate) fn parse_response(
    body: &Value,
    provider: &str,
    model: &str,
) -> Result<ChatResponse, LlmError> {
    let Some(candidate) = body["candidates"].get(0) else {
        return Err(
            blocked(body).unwrap_or_else(|| LlmError::protocol("the answer has no candidates"))
        );
    };
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for part in candidate["content"]["parts"].as_array().map(Vec::as_slice).unwrap_or_default() {
        if part["thought"].as_bool() == Some(true) {
            continue;
        }
        if let Some(t) = part["text"].as_str() {
            text.push_str(t);
        }
        if part.get("functionCall").is_some() {
            let args = &part["functionCall"]["args"];
            tool_calls.push(ToolCall {
                id: call_id(part, tool_calls.len()),
                name: text_of(&part["functionCall"]["name"]),
                arguments: if args.is_object() { args.clone() } else { json!({}) },
            });
        }
    }
    let reason = stop_reason(candidate["finishReason"].as_str().unwrap_or("STOP"));
    Ok(ChatResponse {
        text,
        stop_reason: settle_stop_reason(reason, &tool_calls),
        tool_calls,
        usage: usage(&body["usageMetadata"]),
        provider: provider.to_owned(),
        model: model.to_owned(),
        cache_hit: false,
    })
}

/// The stream state: Gemini ends a stream by closing it; a chunk with a `finishReason` comes
/// last.
#[derive(Debug, Default)]
pub(crate) struct Decoder {
    finished: bool,
}

impl Decoder {
    pub(crate) fn event(
        &mut self,
        ev: &SseEvent,
        asm: &mut Assembly,
    ) -> Result<Vec<StreamEvent>, LlmError> {
        let mut out = Vec::new();
        let chunk: Value = serde_json::from_str(&ev.data)
            .map_err(|e| LlmError::protocol(format!("a stream chunk is not JSON: {e}")))?;
        if chunk.get("error").is_some() {
            let (err, _) = classify_body(&chunk, chunk["error"]["code"].as_u64().unwrap_or(500));
            return Err(err);
        }
        if let Some(u) = chunk.get("usageMetadata").filter(|u| u.is_object()) {
            asm.usage = usage(u);
        }
        let Some(candidate) = chunk["candidates"].get(0) else {
            return match blocked(&chunk) {
                Some(err) => Err(err),
                None => Ok(out),
            };
        };
        for part in candidate["content"]["parts"].as_array().map(Vec::as_slice).unwrap_or_default()
        {
            if part["thought"].as_bool() == Some(true) {
                continue;
            }
            if let Some(t) = part["text"].as_str() {
                asm.text(t, &mut out);
            }
            if part.get("functionCall").is_some() {
                let key = asm.call_count() as u64;
                let id = call_id(part, asm.call_count());
                asm.start_call(key, id, text_of(&part["functionCall"]["name"]), &mut out);
                let args = &part["functionCall"]["args"];
                let args = if args.is_object() { args.to_string() } else { "{}".to_owned() };
                asm.call_arguments(key, &args, &mut out)?;
            }
        }
        if let Some(reason) = candidate["finishReason"].as_str() {
            asm.stop_reason = Some(stop_reason(reason));
            self.finished = true;
        }
        Ok(out)
    }

    /// Gemini has no end marker: the stream is complete when it closes after a finish reason.
    pub(crate) const fn is_done(&self) -> bool {
        false
    }

    pub(crate) const fn may_end(&self) -> bool {
        self.finished
    }
}

/// The `retryDelay` of a `google.rpc.RetryInfo` detail.
fn retry_delay(err: &Value) -> Option<Duration> {
    err["details"]
        .as_array()?
        .iter()
        .find(|d| d["@type"].as_str().is_some_and(|t| t.ends_with("google.rpc.RetryInfo")))
        .and_then(|d| d["retryDelay"].as_str())
        .and_then(parse_duration_seconds)
}

fn classify_body(body: &Value, status: u64) -> (LlmError, ErrorFacts) {
    let facts = error_facts(u16::try_from(status).unwrap_or(500), body);
    (super::classify(&facts), facts)
}

pub(crate) fn error_facts(status: u16, body: &Value) -> ErrorFacts {
    let err = &body["error"];
    let state = err["status"].as_str().unwrap_or_default();
    let message = text_of(&err["message"]);
    let key_invalid = err["details"]
        .as_array()
        .is_some_and(|ds| ds.iter().any(|d| d["reason"].as_str() == Some("API_KEY_INVALID")));
    ErrorFacts {
        status,
        retry_after: retry_delay(err),
        overflow: state == "INVALID_ARGUMENT"
            && message.contains("exceeds the maximum number of tokens"),
        rate_limited: state == "RESOURCE_EXHAUSTED",
        auth: key_invalid || state == "UNAUTHENTICATED" || state == "PERMISSION_DENIED",
        message,
        ..ErrorFacts::default()
    }
}
