//! Building a complete answer from stream deltas, the same way for every protocol.

use std::collections::HashMap;

use serde_json::Value;

use crate::error::LlmError;
use crate::message::{ChatResponse, StopReason, StreamEvent, ToolCall};
use crate::usage::Usage;

#[derive(Debug, Default)]
struct PartialCall {
    id: String,
    name: String,
    arguments: String,
}

/// The answer so far.
#[derive(Debug, Default)]
pub(super) struct Assembly {
    text: String,
    calls: Vec<PartialCall>,
    /// Protocol-specific call keys (OpenAI's `index`, Anthropic's block index) to our index.
    keys: HashMap<u64, usize>,
    /// Why the model stopped, once it said.
    pub(super) stop_reason: Option<StopReason>,
    /// Usage as last reported.
    pub(super) usage: Usage,
}

impl Assembly {
    /// More text.
    pub(super) fn text(&mut self, text: &str, out: &mut Vec<StreamEvent>) {
        if !text.is_empty() {
            self.text.push_str(text);
            out.push(StreamEvent::TextDelta { text: text.to_owned() });
        }
    }

    /// A new tool call, under the protocol's `key`.
    pub(super) fn start_call(
        &mut self,
        key: u64,
        id: String,
        name: String,
        out: &mut Vec<StreamEvent>,
    ) {
        let index = self.calls.len();
        self.keys.insert(key, index);
        out.push(StreamEvent::ToolCallStart { index, id: id.clone(), name: name.clone() });
        self.calls.push(PartialCall { id, name, arguments: String::new() });
    }

    /// Whether a call was started under `key`.
    #[must_use]
    pub(super) fn has_call(&self, key: u64) -> bool {
        self.keys.contains_key(&key)
    }

    /// The number of calls started.
    #[must_use]
    pub(super) fn call_count(&self) -> usize {
        self.calls.len()
    }

    /// More arguments of the call under `key`.
    ///
    /// # Errors
    /// A protocol error when no call was started under `key`.
    pub(super) fn call_arguments(
        &mut self,
        key: u64,
        fragment: &str,
        out: &mut Vec<StreamEvent>,
    ) -> Result<(), LlmError> {
        let index = *self
            .keys
            .get(&key)
            .ok_or_else(|| LlmError::protocol("arguments for a tool call that never started"))?;
        if !fragment.is_empty() {
            if let Some(call) = self.calls.get_mut(index) {
                call.arguments.push_str(fragment);
            }
            out.push(StreamEvent::ToolCallDelta { index, arguments: fragment.to_owned() });
        }
        Ok(())
    }

    /// The complete answer.
    ///
    /// # Errors
    /// A protocol error when a tool call's arguments are not a JSON object.
    pub(super) fn finish(self, provider: &str, model: &str) -> Result<ChatResponse, LlmError> {
        let tool_calls = self
            .calls
            .into_iter()
            .map(|c| {
                Ok(ToolCall {
                    arguments: parse_arguments(&c.name, &c.arguments)?,
                    id: c.id,
                    name: c.name,
                })
            })
            .collect::<Result<Vec<_>, LlmError>>()?;
        Ok(ChatResponse {
            stop_reason: settle_stop_reason(
                self.stop_reason.unwrap_or(StopReason::EndTurn),
                &tool_calls,
            ),
            text: self.text,
            tool_calls,
            usage: self.usage,
            provider: provider.to_owned(),
            model: model.to_owned(),
            cache_hit: false,
        })
    }
}

/// Tool-call arguments: a JSON object; empty text means no arguments.
///
/// # Errors
/// A protocol error naming the tool when the text is not a JSON object.
pub(super) fn parse_arguments(name: &str, text: &str) -> Result<Value, LlmError> {
    if text.trim().is_empty() {
        return Ok(Value::Object(serde_json::Map::new()));
    }
    match serde_json::from_str::<Value>(text) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) | Err(_) => Err(LlmError::protocol(format!(
            "the arguments of tool call {name:?} are not a JSON object"
        ))),
    }
}

/// Some servers say "stop" while asking for tools; the calls decide.
#[must_use]
pub(super) fn settle_stop_reason(reason: StopReason, calls: &[ToolCall]) -> StopReason {
    if !calls.is_empty() && reason == StopReason::EndTurn { StopReason::ToolUse } else { reason }
}
