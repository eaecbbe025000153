//! One log line per request, at completion, inside a span that carries the request id.
//!
//! Only the method, the matched route (never the raw URI, which may carry ids and tokens), the
//! status and the latency are logged: never bodies, query strings or headers.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use crate::request_id::RequestId;

/// Middleware (outer): open the request span and log the completion.
pub(crate) async fn log_request(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id =
        request.extensions().get::<RequestId>().map(|r| r.as_str().to_owned()).unwrap_or_default();
    let method = request.method().clone();
    let span =
        tracing::info_span!("request", request_id = %request_id, route = tracing::field::Empty);
    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    let latency_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    span.in_scope(|| {
        tracing::info!(method = %method, status, latency_us, "request completed");
    });
    response
}

/// Middleware (route layer, so only for matched routes): note the matched route template on the
/// request span, so that it is on every line logged for the request, the completion included.
pub(crate) async fn record_route(request: Request, next: Next) -> Response {
    if let Some(route) = request.extensions().get::<MatchedPath>() {
        tracing::Span::current().record("route", route.as_str());
    }
    next.run(request).await
}
