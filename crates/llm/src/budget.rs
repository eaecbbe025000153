//! Token estimates before sending, and the context-window check.
//!
//! The estimate is characters / 4, rounded up, plus a few tokens per message for the role
//! markers: crude, provider-neutral, and cheap. It only decides whether a request can fit; bills
//! come from the usage the provider reports.

use crate::error::LlmError;
use crate::message::{ChatRequest, Content};

/// Tokens added per message for its role and separators.
const PER_MESSAGE: u64 = 4;

fn tokens(chars: usize) -> u64 {
    (chars as u64).div_ceil(4)
}

/// The estimated prompt tokens of `req`.
#[must_use]
pub fn estimate_tokens(req: &ChatRequest) -> u64 {
    let messages: u64 = req
        .messages
        .iter()
        .map(|m| {
            PER_MESSAGE
                + m.content
                    .iter()
                    .map(|c| match c {
                        Content::Text { text } => tokens(text.chars().count()),
                        Content::ToolCall(call) => tokens(
                            call.name.chars().count() + call.arguments.to_string().chars().count(),
                        ),
                        Content::ToolResult { content, .. } => tokens(content.chars().count()),
                    })
                    .sum::<u64>()
        })
        .sum();
    let tools: u64 = req
        .tools
        .iter()
        .map(|t| {
            tokens(
                t.name.len()
                    + t.description.chars().count()
                    + t.parameters.to_string().chars().count(),
            )
        })
        .sum();
    messages + tools
}

/// Checks that the prompt plus the requested output fit `context_window` (when known).
///
/// # Errors
/// `ContextOverflow` with the numbers.
pub fn check_fits(req: &ChatRequest, context_window: Option<u64>) -> Result<u64, LlmError> {
    let estimate = estimate_tokens(req);
    let Some(window) = context_window else { return Ok(estimate) };
    let needed = estimate + u64::from(req.max_tokens.unwrap_or(0));
    if needed > window {
        return Err(LlmError::ContextOverflow {
            message: format!(
                "about {estimate} prompt tokens plus {} output tokens exceed the context window of {window}",
                req.max_tokens.unwrap_or(0)
            ),
        });
    }
    Ok(estimate)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;

    #[test]
    fn the_estimate_is_a_quarter_of_the_characters_plus_message_overhead() {
        let req = ChatRequest {
            messages: vec![Message::user("a".repeat(400))],
            ..ChatRequest::default()
        };
        assert_eq!(estimate_tokens(&req), 104);
    }

    #[test]
    fn a_request_that_cannot_fit_is_refused_with_the_numbers() {
        let req = ChatRequest {
            messages: vec![Message::user("a".repeat(400))],
            max_tokens: Some(100),
            ..ChatRequest::default()
        };
        assert!(check_fits(&req, Some(204)).is_ok());
        assert!(check_fits(&req, None).is_ok());
        let err = check_fits(&req, Some(203)).unwrap_err();
        assert!(matches!(err, LlmError::ContextOverflow { .. }), "{err:?}");
        assert!(err.to_string().contains("203"), "{err}");
    }
}
