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
    /// 500: agentd failed. The source is logged; the client sees a generic message.
    #[error("internal error")]
    Internal(#[source] BoxError),
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
            Self::Internal(_) => {
                (ErrorType::InternalError, StatusCode::INTERNAL_SERVER_ERROR, self.to_string())
            }
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
            Self::RateLimited { retry_after } => {
                let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
                response.headers_mut().insert(
                    axum::http::header::RETRY_AFTER,
                    axum::http::HeaderValue::from(secs.max(1)),
                );
                (vec![], None)
            }
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
            | Self::PayloadTooLarge(_)
            | Self::UnsupportedMediaType(_) => (vec![], None),
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

/// Result alias for handlers.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use agentd_core::WorkspacePath;
    use agentd_core::workspace::ContentHash;

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
            } else {
                assert_eq!(message, "internal error", "5xx never show internals");
            }
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
}
