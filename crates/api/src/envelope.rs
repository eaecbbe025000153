//! Renders every error response as the JSON envelope and logs server-side failures once.
//!
//! Error responses reach this layer in two forms: with an [`ErrorReport`] (from `ApiError`, our
//! rejections and the panic handler), or bare (a tower layer's 413, hyper's or the router's
//! defaults). Both leave as `{"error": {"type", "message", "request_id", "details"?}}`. A bare
//! error response's own body is discarded: it may carry internals.

use std::fmt::Write as _;

use agentd_protocol::{ErrorBody, ErrorEnvelope, ErrorType};
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::error::ErrorReport;
use crate::request_id::RequestId;

/// Middleware: turn error responses into envelopes.
pub(crate) async fn render_errors(request: Request, next: Next) -> Response {
    let request_id =
        request.extensions().get::<RequestId>().map(|r| r.as_str().to_owned()).unwrap_or_default();
    let mut response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let report = response.extensions_mut().remove::<ErrorReport>().unwrap_or_else(|| {
        let error_type = ErrorType::from_http_status(status.as_u16());
        ErrorReport {
            error_type,
            message: default_message(status.as_u16()).to_owned(),
            details: vec![],
            source: None,
        }
    });
    if status.is_server_error() {
        log_failure(&report, status.as_u16());
    }
    let envelope = ErrorEnvelope {
        error: ErrorBody {
            error_type: report.error_type,
            message: report.message,
            request_id,
            details: report.details,
        },
    };
    let body = serde_json::to_vec(&envelope).unwrap_or_else(|_| b"{}".to_vec());
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.remove(header::CONTENT_LENGTH);
    *response.body_mut() = Body::from(body);
    response
}

fn default_message(status: u16) -> &'static str {
    match status {
        400 => "the request is malformed",
        401 => "authentication is required",
        403 => "not allowed",
        404 => "no such route or resource",
        405 => "method not allowed",
        408 => "the request took too long to arrive",
        413 => "the request body is too large",
        415 => "unsupported media type",
        429 => "rate limit exceeded",
        503 => "the service is unavailable; try again later",
        504 => "the request took too long to process",
        _ if status < 500 => "the request cannot be served",
        _ => "internal error",
    }
}

fn log_failure(report: &ErrorReport, status: u16) {
    let mut chain = String::new();
    let mut source: Option<&(dyn std::error::Error + 'static)> =
        report.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static));
    while let Some(err) = source {
        if !chain.is_empty() {
            chain.push_str(": ");
        }
        let _ = write!(chain, "{err}");
        source = err.source();
    }
    if status == 500 {
        tracing::error!(status, error.type = %report.error_type, error.cause = %chain, "request failed");
    } else {
        tracing::warn!(status, error.type = %report.error_type, error.cause = %chain, "request failed");
    }
}
