//! The one `ApiError`, and how every failure becomes the error envelope.
//!
//! Handlers return `ApiError`. Turning it into a response does not render a body: it attaches an
//! [`ErrorReport`] to an empty response, and the `envelope` middleware renders every error
//! response, whatever produced it (a handler, a rejection, the router, a tower layer, a panic),
//! into the same JSON envelope with the request id, and logs server-side failures once.

use std::sync::Arc;
use std::time::Duration;

use agentd_core::project::FieldProblem;
use agentd_core::{PathError, StoreError, WorkspaceError};
use agentd_llm::LlmError;
use agentd_protocol::{ErrorDetail, ErrorType};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// A boxed error kept for the log, never shown to clients.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything an API operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// 401: no valid credentials. The response carries `WWW-Authenticate`.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: the caller may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// 400 `invalid_path`: a file path is not acceptable in a workspace.
    #[error("{0}")]
    InvalidPath(String),
    /// 400 `workspace_not_allowed`: a directory workspace outside the allowed roots.
    #[error("{0}")]
    WorkspaceNotAllowed(String),
    /// 404: no such resource, or the caller may not know of it.
    #[error("{0}")]
    NotFound(String),
    /// 405: the route does not take this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 408: the client was too slow to send the request.
    #[error("the request body took too long to arrive")]
    RequestTimeout,
    /// 504: the request took longer than the per-request deadline.
    #[error("the request took too long to process")]
    Timeout,
    /// 409: the request conflicts with current state.
    #[error("{0}")]
    Conflict(String),
    /// 409: the conversation is busy and the request asked not to queue.
    #[error("the conversation has a run that has not ended")]
    ConversationBusy,
    /// 409 `approval_decided`: someone decided first.
    #[error("{0}")]
    ApprovalDecided(String),
    /// 409 `approval_expired`: the approval expired before the decision.
    #[error("{0}")]
    ApprovalExpired(String),
    /// 412: an `If-Match` / `If-None-Match` precondition does not hold.
    #[error("{0}")]
    PreconditionFailed(String),
    /// 413: a body or object is too large.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 415: the body is not JSON (or another accepted media type).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 422: the input failed validation; one detail per problem.
    #[error("the request is invalid")]
    Validation(Vec<ErrorDetail>),
    /// 429: a rate limit was hit; retry after the given time.
    #[error("rate limit exceeded")]
    RateLimited {
        /// When a retry may succeed.
        retry_after: Duration,
    },
    /// 503: agentd or a dependency cannot serve now.
    #[error("{message}")]
    Unavailable {
        /// What is unavailable, for the client.
        message: String,
        /// Per-dependency problems.
        details: Vec<ErrorDetail>,
        /// The underlying failure, for the log.
        #[source]
        source: Option<BoxError>,
    },
    /// 503 `sandbox_unavailable`: commands cannot run because the sandbox cannot be set up.
    #[error("{0}")]
    SandboxUnavailable(String),
    /// 503 `workspace_unavailable`: a directory workspace's directory cannot be opened.
    #[error("{0}")]
    WorkspaceUnavailable(String),
    /// 500: agentd failed. The source is logged; the client sees a generic message.
    #[error("internal error")]
    Internal(#[source] BoxError),
    /// 503: no language model can serve the agent type.
    #[error("{0}")]
    NoLlmConfigured(String),
    /// 503: every language model of the route is unavailable; retry after the given time.
    #[error("every language model for this request is unavailable; try again later")]
    LlmUnavailable {
        /// When the soonest model admits calls again.
        retry_after: Duration,
    },
    /// 504: the language model did not answer within the deadline.
    #[error("the language model did not answer in time")]
    LlmTimeout,
    /// 502: the provider failed after retries and fallbacks.
    #[error("{message}")]
    LlmUpstream {
        /// What failed, without the provider's own words.
        message: String,
        /// The provider's error, for the log.
        #[source]
        source: BoxError,
    },
    /// 400: the conversation does not fit the model's context window.
    #[error("{0}")]
    ContextOverflow(String),
}

impl ApiError {
    /// A 422 with a single problem.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation(vec![ErrorDetail::field(field, message)])
    }

    /// The envelope type, status and client-facing message for this error.
    fn parts(&self) -> (ErrorType, StatusCode, String) {
        match self {
            Self::BadRequest(m) => (ErrorType::BadRequest, StatusCode::BAD_REQUEST, m.clone()),
            Self::Unauthorized(m) => (ErrorType::Unauthorized, StatusCode::UNAUTHORIZED, m.clone()),
            Self::Forbidden(m) => (ErrorType::Forbidden, StatusCode::FORBIDDEN, m.clone()),
            Self::InvalidPath(m) => (ErrorType::InvalidPath, StatusCode::BAD_REQUEST, m.clone()),
            Self::WorkspaceNotAllowed(m) => {
                (ErrorType::WorkspaceNotAllowed, StatusCode::BAD_REQUEST, m.clone())
            }
            Self::NotFound(m) => (ErrorType::NotFound, StatusCode::NOT_FOUND, m.clone()),
            Self::MethodNotAllowed => {
                (ErrorType::MethodNotAllowed, StatusCode::METHOD_NOT_ALLOWED, self.to_string())
            }
            Self::RequestTimeout => {
                (ErrorType::Timeout, StatusCode::REQUEST_TIMEOUT, self.to_string())
            }
            Self::Timeout => (ErrorType::Timeout, StatusCode::GATEWAY_TIMEOUT, self.to_string()),
            Self::Conflict(m) => (ErrorType::Conflict, StatusCode::CONFLICT, m.clone()),
            Self::ConversationBusy => {
                (ErrorType::ConversationBusy, StatusCode::CONFLICT, self.to_string())
            }
            Self::ApprovalDecided(m) => {
                (ErrorType::ApprovalDecided, StatusCode::CONFLICT, m.clone())
            }
            Self::ApprovalExpired(m) => {
                (ErrorType::ApprovalExpired, StatusCode::CONFLICT, m.clone())
            }
            Self::PreconditionFailed(m) => {
                (ErrorType::PreconditionFailed, StatusCode::PRECONDITION_FAILED, m.clone())
            }
            Self::PayloadTooLarge(m) => {
                (ErrorType::PayloadTooLarge, StatusCode::PAYLOAD_TOO_LARGE, m.clone())
            }
            Self::UnsupportedMediaType(m) => {
                (ErrorType::UnsupportedMediaType, StatusCode::UNSUPPORTED_MEDIA_TYPE, m.clone())
            }
            Self::Validation(_) => {
                (ErrorType::ValidationError, StatusCode::UNPROCESSABLE_ENTITY, self.to_string())
            }
            Self::RateLimited { .. } => {
                (ErrorType::RateLimitExceeded, StatusCode::TOO_MANY_REQUESTS, self.to_string())
            }
            Self::Unavailable { message, .. } => {
                (ErrorType::ServiceUnavailable, StatusCode::SERVICE_UNAVAILABLE, message.clone())
            }
            Self::SandboxUnavailable(m) => {
                (ErrorType::SandboxUnavailable, StatusCode::SERVICE_UNAVAILABLE, m.clone())
            }
            Self::WorkspaceUnavailable(m) => {
                (ErrorType::WorkspaceUnavailable, StatusCode::SERVICE_UNAVAILABLE, m.clone())
            }
            Self::Internal(_) => {
                (ErrorType::InternalError, StatusCode::INTERNAL_SERVER_ERROR, self.to_string())
            }
            Self::NoLlmConfigured(m) => {
                (ErrorType::NoLlmConfigured, StatusCode::SERVICE_UNAVAILABLE, m.clone())
            }
            Self::LlmUnavailable { .. } => {
                (ErrorType::LlmUnavailable, StatusCode::SERVICE_UNAVAILABLE, self.to_string())
            }
            Self::LlmTimeout => {
                (ErrorType::LlmTimeout, StatusCode::GATEWAY_TIMEOUT, self.to_string())
            }
            Self::LlmUpstream { message, .. } => {
                (ErrorType::LlmUpstreamError, StatusCode::BAD_GATEWAY, message.clone())
            }
            Self::ContextOverflow(m) => {
                (ErrorType::ContextOverflow, StatusCode::BAD_REQUEST, m.clone())
            }
        }
    }
}

impl From<agentd_sandbox::SandboxError> for ApiError {
    fn from(err: agentd_sandbox::SandboxError) -> Self {
        match err {
            agentd_sandbox::SandboxError::Unavailable { reason } => {
                Self::SandboxUnavailable(format!(
                    "the command sandbox is unavailable on this server, so nothing was run: {reason}"
                ))
            }
            agentd_sandbox::SandboxError::InvalidCommand { reason } => {
                Self::BadRequest(format!("invalid command: {reason}"))
            }
            log @ agentd_sandbox::SandboxError::Log { .. } => Self::Internal(Box::new(log)),
        }
    }
}

impl From<agentd_core::auth::Denied> for ApiError {
    fn from(denied: agentd_core::auth::Denied) -> Self {
        Self::Forbidden(denied.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound { entity } => Self::NotFound(format!("{entity} not found")),
            StoreError::Conflict { entity, field } => {
                Self::Conflict(format!("a {entity} with this {field} already exists"))
            }
            StoreError::Unavailable(_) => Self::Unavailable {
                message: "the database is unavailable; try again later".into(),
                details: vec![],
                source: Some(Box::new(err)),
            },
            // Only workers write under leases; an HTTP request never should.
            StoreError::LeaseLost | StoreError::Backend(_) => Self::Internal(Box::new(err)),
        }
    }
}

impl From<PathError> for ApiError {
    fn from(err: PathError) -> Self {
        Self::InvalidPath(err.to_string())
    }
}

impl From<WorkspaceError> for ApiError {
    fn from(err: WorkspaceError) -> Self {
        match err {
            WorkspaceError::InvalidPath(e) => e.into(),
            WorkspaceError::OutsideWorkspace => Self::InvalidPath(err.to_string()),
            WorkspaceError::FileNotFound(_) => Self::NotFound(err.to_string()),
            WorkspaceError::NotAFile(_) | WorkspaceError::PathConflict { .. } => {
                Self::Conflict(err.to_string())
            }
            WorkspaceError::PreconditionFailed { .. } => Self::PreconditionFailed(err.to_string()),
            WorkspaceError::FileTooLarge { .. } | WorkspaceError::ProjectTooLarge { .. } => {
                Self::PayloadTooLarge(err.to_string())
            }
            WorkspaceError::TooManyFiles { .. } | WorkspaceError::UnknownRevision { .. } => {
                Self::Validation(vec![ErrorDetail::whole(err.to_string())])
            }
            WorkspaceError::NotAllowed(message) => Self::WorkspaceNotAllowed(message),
            WorkspaceError::Unavailable { .. } => {
                // The path and the OS error are for the operator's log, not for clients.
                tracing::warn!(error = %err, "a directory workspace cannot be opened");
                Self::WorkspaceUnavailable(
                    "the project's workspace directory cannot be opened on this server; its \
                     files are unavailable until the directory is back"
                        .into(),
                )
            }
            WorkspaceError::Io { .. } => Self::Internal(Box::new(err)),
            WorkspaceError::Store(e) => e.into(),
        }
    }
}

impl From<Vec<FieldProblem>> for ApiError {
    /// Per-field validation problems from core (project create and patch) as one 422.
    fn from(problems: Vec<FieldProblem>) -> Self {
        Self::Validation(
            problems.into_iter().map(|p| ErrorDetail::field(p.field, p.message)).collect(),
        )
    }
}

/// What the envelope middleware needs to render and log an error response.
#[derive(Debug, Clone)]
pub struct ErrorReport {
    /// The envelope type.
    pub error_type: ErrorType,
    /// The client-facing message.
    pub message: String,
    /// Per-item problems.
    pub details: Vec<ErrorDetail>,
    /// The failure behind a 5xx, for the log only.
    pub source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (error_type, status, message) = self.parts();
        let mut response = status.into_response();
        let (details, source): (Vec<ErrorDetail>, Option<BoxError>) = match self {
            Self::Validation(details) => (details, None),
            Self::RateLimited { retry_after } | Self::LlmUnavailable { retry_after } => {
                set_retry_after(&mut response, retry_after);
                (vec![], None)
            }
            Self::LlmUpstream { source, .. } => (vec![], Some(source)),
            Self::Unavailable { details, source, .. } => (details, source),
            Self::Unauthorized(_) => {
                response.headers_mut().insert(
                    axum::http::header::WWW_AUTHENTICATE,
                    axum::http::HeaderValue::from_static("Bearer realm=\"agentd\""),
                );
                (vec![], None)
            }
            Self::Internal(source) => (vec![], Some(source)),
            Self::BadRequest(_)
            | Self::Forbidden(_)
            | Self::InvalidPath(_)
            | Self::WorkspaceNotAllowed(_)
            | Self::PreconditionFailed(_)
            | Self::NotFound(_)
            | Self::MethodNotAllowed
            | Self::RequestTimeout
            | Self::Timeout
            | Self::Conflict(_)
            | Self::ConversationBusy
            | Self::ApprovalDecided(_)
            | Self::ApprovalExpired(_)
            | Self::PayloadTooLarge(_)
            | Self::UnsupportedMediaType(_)
            | Self::NoLlmConfigured(_)
            | Self::SandboxUnavailable(_)
            | Self::WorkspaceUnavailable(_)
            | Self::LlmTimeout
            | Self::ContextOverflow(_) => (vec![], None),
        };
        response.extensions_mut().insert(ErrorReport {
            error_type,
            message,
            details,
            source: source.map(Arc::from),
        });
        response
    }
}

/// `Retry-After` in whole seconds, rounded up, at least 1.
fn set_retry_after(response: &mut Response, retry_after: Duration) {
    let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
    response
        .headers_mut()
        .insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(secs.max(1)));
}

impl From<LlmError> for ApiError {
    fn from(err: LlmError) -> Self {
        let upstream = |err: LlmError| Self::LlmUpstream {
            message: format!("the language model provider failed ({})", err.kind()),
            source: Box::new(err),
        };
        match err {
            LlmError::NotConfigured { agent_type } => Self::NoLlmConfigured(format!(
                "no language model is configured for agent type {agent_type:?}"
            )),
            LlmError::Unavailable { retry_after } => Self::LlmUnavailable { retry_after },
            LlmError::Timeout { .. } => Self::LlmTimeout,
            LlmError::ContextOverflow { message } => Self::ContextOverflow(message),
            LlmError::Cancelled => Self::Unavailable {
                message: "the request was cancelled; try again later".into(),
                details: vec![],
                source: Some(Box::new(err)),
            },
            LlmError::RateLimited { .. }
            | LlmError::Overloaded { .. }
            | LlmError::Server { .. }
            | LlmError::Connect { .. }
            | LlmError::Auth { .. }
            | LlmError::BadRequest { .. }
            | LlmError::ContentFiltered { .. }
            | LlmError::NotFound { .. }
            | LlmError::Protocol { .. } => upstream(err),
        }
    }
}

/// Result alias for handlers.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use agentd_core::WorkspacePath;
    use agentd_core::workspace::ContentHash;

    use agentd_llm::TimeoutPhase;

    use super::*;

    fn kind(err: impl Into<ApiError>) -> (ErrorType, u16, String) {
        let (t, status, message) = err.into().parts();
        (t, status.as_u16(), message)
    }

    #[test]
    fn workspace_errors_map_to_their_documented_types() {
        let p = WorkspacePath::parse("a/b.txt").unwrap_or_else(|e| panic!("{e}"));
        let cases: Vec<(WorkspaceError, ErrorType, u16)> = vec![
            (PathError::ParentSegment.into(), ErrorType::InvalidPath, 400),
            (WorkspaceError::OutsideWorkspace, ErrorType::InvalidPath, 400),
            (WorkspaceError::FileNotFound(p.clone()), ErrorType::NotFound, 404),
            (WorkspaceError::NotAFile(p.clone()), ErrorType::Conflict, 409),
            (WorkspaceError::PathConflict { path: p, existing: "file" }, ErrorType::Conflict, 409),
            (
                WorkspaceError::PreconditionFailed { current: Some(ContentHash::of(b"x")) },
                ErrorType::PreconditionFailed,
                412,
            ),
            (WorkspaceError::FileTooLarge { size: 2, limit: 1 }, ErrorType::PayloadTooLarge, 413),
            (WorkspaceError::ProjectTooLarge { limit: 1 }, ErrorType::PayloadTooLarge, 413),
            (WorkspaceError::TooManyFiles { limit: 1 }, ErrorType::ValidationError, 422),
            (
                WorkspaceError::Unavailable {
                    root: "/srv/ws".into(),
                    source: std::io::ErrorKind::NotFound.into(),
                },
                ErrorType::WorkspaceUnavailable,
                503,
            ),
            (
                WorkspaceError::UnknownRevision { requested: 9, current: 1 },
                ErrorType::ValidationError,
                422,
            ),
            (
                WorkspaceError::NotAllowed("outside the allowed roots".into()),
                ErrorType::WorkspaceNotAllowed,
                400,
            ),
            (
                WorkspaceError::Io { op: "read the file", source: std::io::Error::other("disk") },
                ErrorType::InternalError,
                500,
            ),
            (
                WorkspaceError::Store(StoreError::NotFound { entity: "project" }),
                ErrorType::NotFound,
                404,
            ),
        ];
        for (err, t, status) in cases {
            let shown = err.to_string();
            let (got_t, got_status, message) = kind(err);
            assert_eq!((got_t, got_status), (t, status), "{shown}");
            if status == 422 {
                assert_eq!(message, "the request is invalid", "the problem is in details");
            } else if status < 500 {
                assert_eq!(message, shown);
            } else if t == ErrorType::WorkspaceUnavailable {
                assert!(message.contains("cannot be opened"), "{message}");
                assert!(!message.contains("/srv/ws"), "5xx never show internals: {message}");
            } else {
                assert_eq!(message, "internal error", "5xx never show internals");
            }
        }
    }

    fn parts(err: LlmError) -> (StatusCode, ErrorType, Option<String>, String) {
        let response = ApiError::from(err).into_response();
        let report = response.extensions().get::<ErrorReport>().cloned();
        let retry_after = response
            .headers()
            .get(axum::http::header::RETRY_AFTER)
            .map(|v| v.to_str().unwrap_or_default().to_owned());
        let report = report.unwrap_or_else(|| panic!("no report"));
        (response.status(), report.error_type, retry_after, report.message)
    }

    #[test]
    fn each_llm_error_maps_to_its_type_and_status() {
        let cases = [
            (
                LlmError::NotConfigured { agent_type: "code".into() },
                503,
                ErrorType::NoLlmConfigured,
            ),
            (
                LlmError::Unavailable { retry_after: Duration::from_secs(3) },
                503,
                ErrorType::LlmUnavailable,
            ),
            (LlmError::Timeout { phase: TimeoutPhase::Deadline }, 504, ErrorType::LlmTimeout),
            (
                LlmError::ContextOverflow { message: "too long".into() },
                400,
                ErrorType::ContextOverflow,
            ),
            (
                LlmError::Server { status: 500, retry_after: None, message: "boom".into() },
                502,
                ErrorType::LlmUpstreamError,
            ),
            (
                LlmError::Auth { status: 401, message: "bad key sk-123".into() },
                502,
                ErrorType::LlmUpstreamError,
            ),
            (
                LlmError::BadRequest { status: 400, message: "x".into() },
                502,
                ErrorType::LlmUpstreamError,
            ),
            (LlmError::Protocol { message: "x".into() }, 502, ErrorType::LlmUpstreamError),
            (LlmError::Cancelled, 503, ErrorType::ServiceUnavailable),
        ];
        for (err, status, error_type) in cases {
            let (s, t, _, _) = parts(err.clone());
            assert_eq!((s.as_u16(), t), (status, error_type), "{err:?}");
        }
    }

    #[test]
    fn limit_messages_name_the_setting() {
        let (_, _, message) = kind(WorkspaceError::TooManyFiles { limit: 3 });
        assert_eq!(message, "the request is invalid");
        let ApiError::Validation(details) =
            ApiError::from(WorkspaceError::TooManyFiles { limit: 3 })
        else {
            panic!("not a validation error");
        };
        assert!(details[0].message.contains("AGENTD_MAX_PROJECT_FILES"));
    }

    #[test]
    fn field_problems_become_one_validation_error_with_a_detail_each() {
        let problems = vec![
            FieldProblem { field: "title", message: "must not be empty".into() },
            FieldProblem { field: "mode", message: "bad".into() },
        ];
        let ApiError::Validation(details) = ApiError::from(problems) else {
            panic!("not a validation error");
        };
        assert_eq!(details[0], ErrorDetail::field("title", "must not be empty"));
        assert_eq!(details[1].field.as_deref(), Some("mode"));
    }

    #[test]
    fn llm_unavailable_carries_retry_after_rounded_up() {
        let (_, _, retry_after, _) =
            parts(LlmError::Unavailable { retry_after: Duration::from_millis(28_500) });
        assert_eq!(retry_after.as_deref(), Some("29"));
    }

    #[test]
    fn upstream_messages_never_repeat_the_provider_s_words() {
        let (_, _, _, message) =
            parts(LlmError::Auth { status: 401, message: "Incorrect API key sk-123".into() });
        assert!(!message.contains("sk-123"), "{message}");
        assert!(message.contains("auth_error"), "{message}");
    }
}
