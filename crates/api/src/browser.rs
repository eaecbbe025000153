//! What browsers need from an API server: security headers on every response, CORS for the
//! configured origins only, and a `Host` allow-list against DNS rebinding.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::Method;
use axum::http::header::{self, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::error::ApiError;

/// Browser-facing settings.
#[derive(Debug, Clone, Default)]
pub struct BrowserConfig {
    /// agentd is reached over https (sets HSTS and `Secure` cookies).
    pub https: bool,
    /// Origins allowed to call the API from a browser (`*` for any, without credentials).
    pub cors_origins: Vec<String>,
    /// Whether cross-origin requests may carry cookies.
    pub cors_allow_credentials: bool,
    /// Accepted `Host` values (`api.example.com`, `*.example.com`); empty accepts any.
    pub allowed_hosts: Vec<String>,
}

/// The API's policy: it serves JSON, never documents, so nothing may load or frame it.
const API_CSP: &str =
    "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";
/// Swagger UI needs its own scripts, styles and inline bootstrap; still nothing from elsewhere.
const DOCS_CSP: &str = "default-src 'self'; script-src 'self' 'unsafe-inline'; \
    style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
    frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// Middleware: security headers on every response.
pub(crate) async fn security_headers(
    State(config): State<Arc<BrowserConfig>>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    let docs = path == "/docs" || path.starts_with("/docs/");
    let api = path.starts_with("/v1/");
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(if docs { DOCS_CSP } else { API_CSP }),
    );
    headers.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    if config.https {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    if api && !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// Middleware: refuse requests for hosts not on the allow-list.
pub(crate) async fn check_host(
    State(config): State<Arc<BrowserConfig>>,
    request: Request,
    next: Next,
) -> Response {
    if config.allowed_hosts.is_empty() {
        return next.run(request).await;
    }
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| request.uri().authority().map(axum::http::uri::Authority::as_str))
        .unwrap_or_default();
    if host_allowed(host, &config.allowed_hosts) {
        next.run(request).await
    } else {
        ApiError::BadRequest("this Host is not served here".into()).into_response()
    }
}

/// Whether `host` (with or without a port) matches one of `allowed`.
#[must_use]
pub fn host_allowed(host: &str, allowed: &[String]) -> bool {
    let name = strip_port(host).to_ascii_lowercase();
    allowed.iter().any(|pattern| {
        let pattern = pattern.to_ascii_lowercase();
        match pattern.strip_prefix("*.") {
            Some(suffix) => name.len() > suffix.len() + 1 && name.ends_with(&format!(".{suffix}")),
            None => name == pattern,
        }
    })
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_once(']').map_or(host, |(h, _)| &h[1..]);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// The CORS layer for the configured origins; `None` when there are none (then no cross-origin
/// browser request is allowed).
#[must_use]
pub fn cors_layer(config: &BrowserConfig) -> Option<CorsLayer> {
    if config.cors_origins.is_empty() {
        return None;
    }
    let any = config.cors_origins.iter().any(|o| o == "*");
    let origin = if any {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            config
                .cors_origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o).ok())
                .collect::<Vec<_>>(),
        )
    };
    Some(
        CorsLayer::new()
            .allow_origin(origin)
            .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::IF_MATCH,
                header::IF_NONE_MATCH,
                HeaderName::from_static("x-api-key"),
                HeaderName::from_static("x-csrf-token"),
                HeaderName::from_static("x-request-id"),
                HeaderName::from_static("idempotency-key"),
                HeaderName::from_static("last-event-id"),
            ])
            .expose_headers([
                HeaderName::from_static("x-request-id"),
                header::RETRY_AFTER,
                header::ETAG,
            ])
            // A wildcard never carries credentials (browsers refuse the combination anyway).
            .allow_credentials(config.cors_allow_credentials && !any)
            .max_age(Duration::from_secs(600)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_match_exactly_or_by_wildcard_ignoring_ports_and_case() {
        let allowed = vec!["api.example.com".to_owned(), "*.agentd.dev".to_owned()];
        for ok in ["api.example.com", "API.example.com:8080", "x.agentd.dev", "a.b.agentd.dev:443"]
        {
            assert!(host_allowed(ok, &allowed), "{ok}");
        }
        for bad in ["evil.com", "api.example.com.evil.com", "agentd.dev", "xagentd.dev", ""] {
            assert!(!host_allowed(bad, &allowed), "{bad}");
        }
        assert!(host_allowed("[::1]:8080", &["::1".to_owned()]));
    }
}
