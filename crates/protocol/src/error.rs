//! The one error envelope every agentd error response carries, and its stable `type` values.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Stable machine-readable error types. Clients branch on these; they never change meaning.
///
/// Each type has exactly one HTTP status, given by [`ErrorType::http_status`], except `timeout`,
/// which is 408 when the client was too slow to send its request and 504 when agentd was too slow
/// to answer. Several types may share a status: `invalid_path` and `workspace_not_allowed` are
/// specific kinds of `bad_request`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorType {
    /// 400: the request is malformed in a way that is not a per-field validation problem.
    BadRequest,
    /// 400: a file path is not acceptable inside a workspace (absolute, `..`, encoded traversal,
    /// control characters, too long, or leading outside the workspace through a symbolic link).
    InvalidPath,
    /// 400: a directory workspace was requested outside the roots the operator allows.
    WorkspaceNotAllowed,
    /// 401: no valid credentials were presented.
    Unauthorized,
    /// 403: the caller is known but lacks the role or scope for this act.
    Forbidden,
    /// 404: no such route or resource, or the caller may not know it exists.
    NotFound,
    /// 405: the route exists but not with this method.
    MethodNotAllowed,
    /// 408 or 504: the request took too long (see the type's documentation).
    Timeout,
    /// 409: the request conflicts with the resource's current state.
    Conflict,
    /// 409: the conversation has a run that has not ended, and the request asked not to queue.
    ConversationBusy,
    /// 409: the approval was already decided; the decision that stands is in the message.
    ApprovalDecided,
    /// 409: the approval expired before this decision arrived (which counts as a rejection).
    ApprovalExpired,
    /// 412: a precondition (`If-Match`, `If-None-Match`) does not hold: the resource changed.
    PreconditionFailed,
    /// 413: the request body, or a stored object, is larger than allowed.
    PayloadTooLarge,
    /// 415: the request body is not of a media type this endpoint accepts.
    UnsupportedMediaType,
    /// 422: the body or parameters failed validation; `details` lists each problem.
    ValidationError,
    /// 429: a rate limit was exceeded; the response carries `Retry-After`.
    RateLimitExceeded,
    /// 500: agentd failed; the message never carries internals.
    InternalError,
    /// 503: agentd or one of its dependencies cannot serve the request now.
    ServiceUnavailable,
    /// 503: no language model is configured for the agent type.
    NoLlmConfigured,
    /// 503: every language model for the request is unavailable (breakers open, rate limits
    /// cooling down); the response carries `Retry-After`.
    LlmUnavailable,
    /// 504: the language model did not answer within the deadline.
    LlmTimeout,
    /// 502: the language model provider failed in a way retries and fallbacks could not mend.
    LlmUpstreamError,
    /// 400: the request does not fit the model's context window.
    ContextOverflow,
    /// 503: the OS sandbox commands run in cannot be set up on this server (see
    /// `GET /v1/system/capabilities`); nothing was run.
    SandboxUnavailable,
    /// 503: a directory workspace's directory cannot be opened on this server (removed,
    /// unmounted, or no longer readable); nothing was read or changed.
    WorkspaceUnavailable,
}

impl ErrorType {
    /// The HTTP status code that goes with this type. For `timeout` this is 504 (agentd was too
    /// slow); the 408 form is produced only by the HTTP layer for slow clients.
    #[must_use]
    pub const fn http_status(self) -> u16 {
        match self {
            Self::BadRequest | Self::InvalidPath | Self::WorkspaceNotAllowed => 400,
            Self::Unauthorized => 401,
            Self::Forbidden => 403,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::Timeout => 504,
            Self::Conflict
            | Self::ConversationBusy
            | Self::ApprovalDecided
            | Self::ApprovalExpired => 409,
            Self::PreconditionFailed => 412,
            Self::PayloadTooLarge => 413,
            Self::UnsupportedMediaType => 415,
            Self::ValidationError => 422,
            Self::RateLimitExceeded => 429,
            Self::InternalError => 500,
            Self::ServiceUnavailable => 503,
            Self::NoLlmConfigured => 503,
            Self::LlmUnavailable => 503,
            Self::LlmTimeout => 504,
            Self::LlmUpstreamError => 502,
            Self::ContextOverflow => 400,
            Self::SandboxUnavailable => 503,
            Self::WorkspaceUnavailable => 503,
        }
    }

    /// The type to report for a bare HTTP status produced outside agentd's handlers (the router,
    /// a middleware layer). Statuses without a dedicated type map to the closest general one.
    #[must_use]
    pub const fn from_http_status(status: u16) -> Self {
        match status {
            401 => Self::Unauthorized,
            403 => Self::Forbidden,
            404 => Self::NotFound,
            405 => Self::MethodNotAllowed,
            408 | 504 => Self::Timeout,
            409 => Self::Conflict,
            412 => Self::PreconditionFailed,
            413 => Self::PayloadTooLarge,
            415 => Self::UnsupportedMediaType,
            422 => Self::ValidationError,
            429 => Self::RateLimitExceeded,
            503 => Self::ServiceUnavailable,
            400..=499 => Self::BadRequest,
            _ => Self::InternalError,
        }
    }

    /// The snake_case wire name of this type.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::InvalidPath => "invalid_path",
            Self::WorkspaceNotAllowed => "workspace_not_allowed",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Timeout => "timeout",
            Self::Conflict => "conflict",
            Self::ConversationBusy => "conversation_busy",
            Self::ApprovalDecided => "approval_decided",
            Self::ApprovalExpired => "approval_expired",
            Self::PreconditionFailed => "precondition_failed",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::ValidationError => "validation_error",
            Self::RateLimitExceeded => "rate_limit_exceeded",
            Self::InternalError => "internal_error",
            Self::ServiceUnavailable => "service_unavailable",
            Self::NoLlmConfigured => "no_llm_configured",
            Self::LlmUnavailable => "llm_unavailable",
            Self::LlmTimeout => "llm_timeout",
            Self::LlmUpstreamError => "llm_upstream_error",
            Self::ContextOverflow => "context_overflow",
            Self::SandboxUnavailable => "sandbox_unavailable",
            Self::WorkspaceUnavailable => "workspace_unavailable",
        }
    }
}

impl std::fmt::Display for ErrorType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The body of every error response: `{"error": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorEnvelope {
    /// What went wrong.
    pub error: ErrorBody,
}

/// What went wrong, for clients (`type`) and for humans (`message`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// The stable error type.
    #[serde(rename = "type")]
    pub error_type: ErrorType,
    /// A human-readable explanation. Never contains internals (stack traces, SQL, paths).
    pub message: String,
    /// The request id, as echoed in the `X-Request-ID` response header.
    pub request_id: String,
    /// Per-field or per-item problems, when there are several.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<ErrorDetail>,
}

/// One problem with one part of the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Where the problem is: a JSON path into the body (`input.task`), a query or path parameter
    /// name, or absent when the problem is with the body as a whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// What is wrong with it.
    pub message: String,
}

impl ErrorDetail {
    /// A problem with a named field.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: Some(field.into()), message: message.into() }
    }

    /// A problem with the request as a whole.
    pub fn whole(message: impl Into<String>) -> Self {
        Self { field: None, message: message.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [ErrorType; 26] = [
        ErrorType::BadRequest,
        ErrorType::InvalidPath,
        ErrorType::WorkspaceNotAllowed,
        ErrorType::Unauthorized,
        ErrorType::Forbidden,
        ErrorType::NotFound,
        ErrorType::MethodNotAllowed,
        ErrorType::Timeout,
        ErrorType::Conflict,
        ErrorType::ConversationBusy,
        ErrorType::ApprovalDecided,
        ErrorType::ApprovalExpired,
        ErrorType::PreconditionFailed,
        ErrorType::PayloadTooLarge,
        ErrorType::UnsupportedMediaType,
        ErrorType::ValidationError,
        ErrorType::RateLimitExceeded,
        ErrorType::InternalError,
        ErrorType::ServiceUnavailable,
        ErrorType::NoLlmConfigured,
        ErrorType::LlmUnavailable,
        ErrorType::LlmTimeout,
        ErrorType::LlmUpstreamError,
        ErrorType::ContextOverflow,
        ErrorType::SandboxUnavailable,
        ErrorType::WorkspaceUnavailable,
    ];

    /// Types that refine a general type sharing their status.
    /// Types that refine a general type with the same status; a bare status maps to the general.
    const REFINEMENTS: [(ErrorType, ErrorType); 12] = [
        (ErrorType::ConversationBusy, ErrorType::Conflict),
        (ErrorType::ApprovalDecided, ErrorType::Conflict),
        (ErrorType::ApprovalExpired, ErrorType::Conflict),
        (ErrorType::InvalidPath, ErrorType::BadRequest),
        (ErrorType::WorkspaceNotAllowed, ErrorType::BadRequest),
        (ErrorType::NoLlmConfigured, ErrorType::ServiceUnavailable),
        (ErrorType::LlmUnavailable, ErrorType::ServiceUnavailable),
        (ErrorType::LlmTimeout, ErrorType::Timeout),
        (ErrorType::LlmUpstreamError, ErrorType::InternalError),
        (ErrorType::ContextOverflow, ErrorType::BadRequest),
        (ErrorType::SandboxUnavailable, ErrorType::ServiceUnavailable),
        (ErrorType::WorkspaceUnavailable, ErrorType::ServiceUnavailable),
    ];

    #[test]
    fn every_type_round_trips_through_its_status() {
        for t in ALL {
            let general = REFINEMENTS.iter().find(|(r, _)| *r == t).map_or(t, |(_, g)| *g);
            assert_eq!(ErrorType::from_http_status(t.http_status()), general, "{t}");
            let json = serde_json::to_value(t).unwrap_or_default();
            assert_eq!(json.as_str(), Some(t.as_str()));
        }
    }

    #[test]
    fn the_llm_types_have_their_statuses_and_refine_a_general_type() {
        let expected = [
            (ErrorType::NoLlmConfigured, 503, ErrorType::ServiceUnavailable),
            (ErrorType::LlmUnavailable, 503, ErrorType::ServiceUnavailable),
            (ErrorType::LlmTimeout, 504, ErrorType::Timeout),
            (ErrorType::LlmUpstreamError, 502, ErrorType::InternalError),
            (ErrorType::ContextOverflow, 400, ErrorType::BadRequest),
        ];
        for (t, status, general) in expected {
            assert_eq!(t.http_status(), status, "{t}");
            assert_eq!(ErrorType::from_http_status(status), general, "{t}");
        }
    }

    #[test]
    fn file_store_types_have_their_statuses_and_names() {
        assert_eq!(ErrorType::InvalidPath.http_status(), 400);
        assert_eq!(ErrorType::WorkspaceNotAllowed.http_status(), 400);
        assert_eq!(ErrorType::PreconditionFailed.http_status(), 412);
        assert_eq!(ErrorType::from_http_status(412), ErrorType::PreconditionFailed);
        let names: Vec<_> =
            [ErrorType::InvalidPath, ErrorType::WorkspaceNotAllowed, ErrorType::PreconditionFailed]
                .iter()
                .map(|t| serde_json::to_value(t).unwrap_or_default())
                .collect();
        assert_eq!(
            names,
            [
                serde_json::json!("invalid_path"),
                serde_json::json!("workspace_not_allowed"),
                serde_json::json!("precondition_failed")
            ]
        );
    }

    #[test]
    fn every_type_is_documented() {
        let doc = include_str!("../../../docs/api-errors.md");
        for t in ALL {
            assert!(doc.contains(&format!("| `{t}` |")), "docs/api-errors.md lacks {t}");
        }
    }

    #[test]
    fn details_are_omitted_when_empty() {
        let env = ErrorEnvelope {
            error: ErrorBody {
                error_type: ErrorType::NotFound,
                message: "no such route".into(),
                request_id: "r1".into(),
                details: vec![],
            },
        };
        let json = serde_json::to_string(&env).unwrap_or_default();
        assert_eq!(
            json,
            r#"{"error":{"type":"not_found","message":"no such route","request_id":"r1"}}"#
        );
    }
}
