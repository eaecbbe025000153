//! The authentication layer of `/v1` routes, and the `Caller` extractor.
//!
//! Every `/v1` route but sign-in, refresh and the CSRF token passes through [`require_principal`]:
//! no credentials is a 401 with `WWW-Authenticate`; an API key lacking the scope the method needs
//! (`read` for GET and HEAD, `write` otherwise) is a 403; a state-changing request authenticated
//! by the session cookie must pass the CSRF checks (double-submit token, `Origin`,
//! `Sec-Fetch-Site`), else 403. Bearer clients are not affected by the CSRF checks: browsers do
//! not attach `Authorization` headers on their own.

use std::net::{IpAddr, Ipv4Addr};

use agentd_core::auth::{Principal, Scope};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq as _;

use super::{CredentialSource, cookies};
use crate::client::ClientAddr;
use crate::error::ApiError;
use crate::rate_limit::{Bucket, Decision};
use crate::state::AppState;

/// The authenticated caller of a `/v1` route.
#[derive(Debug, Clone)]
pub(crate) struct Caller(pub(crate) Principal);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .map(Self)
            .ok_or_else(|| ApiError::Unauthorized("authentication required".into()))
    }
}

/// The client address of the request (resolved by the client layer).
pub(crate) fn client_of(extensions: &axum::http::Extensions) -> IpAddr {
    extensions.get::<ClientAddr>().map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0)
}

/// Middleware: establish the principal or refuse the request.
pub(crate) async fn require_principal(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
    expensive: bool,
) -> Response {
    let client = client_of(request.extensions());
    let (principal, source) = match state.auth.authenticate(request.headers(), client).await {
        Ok(found) => found,
        Err(err) => return ApiError::from(err).into_response(),
    };
    let method = request.method();
    let safe = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    let scope = if safe { Scope::Read } else { Scope::Write };
    if let Err(denied) = principal.require_scope(scope) {
        return ApiError::from(denied).into_response();
    }
    if source == CredentialSource::Cookie
        && !safe
        && let Err(reason) = check_csrf(request.headers(), &state.config.browser.cors_origins)
    {
        tracing::warn!(
            target: super::SECURITY,
            event = "csrf",
            outcome = reason,
            client = %client,
            "a cookie-authenticated request failed the CSRF checks"
        );
        return ApiError::Forbidden(format!("CSRF check failed: {reason}")).into_response();
    }
    if expensive
        && let Decision::Deny { retry_after } =
            state.limiter.check(Bucket::Expensive, &principal.user_id.to_string()).await
    {
        return ApiError::RateLimited { retry_after }.into_response();
    }
    request.extensions_mut().insert(principal);
    next.run(request).await
}

/// The CSRF checks for a state-changing request carrying cookies.
pub(crate) fn check_csrf(
    headers: &HeaderMap,
    allowed_origins: &[String],
) -> Result<(), &'static str> {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
        && !(site == "same-site" && origin_allowed(headers, allowed_origins))
    {
        return Err("cross-site request");
    }
    if headers.contains_key("origin") && !origin_allowed(headers, allowed_origins) {
        return Err("origin not allowed");
    }
    let cookie =
        cookies::get(headers, cookies::CSRF).ok_or("no CSRF cookie; GET /v1/auth/csrf first")?;
    let header = headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .ok_or("missing X-CSRF-Token header")?;
    if cookie.is_empty() || !bool::from(cookie.as_bytes().ct_eq(header.as_bytes())) {
        return Err("X-CSRF-Token does not match");
    }
    Ok(())
}

/// Whether the request's `Origin` is its own host or one of the allowed CORS origins.
pub(crate) fn origin_allowed(headers: &HeaderMap, allowed_origins: &[String]) -> bool {
    let Some(origin) = headers.get("origin").and_then(|v| v.to_str().ok()) else {
        return false;
    };
    if allowed_origins.iter().any(|o| o == origin) {
        return true;
    }
    let host = headers.get("host").and_then(|v| v.to_str().ok()).unwrap_or_default();
    origin
        .split_once("://")
        .is_some_and(|(_, authority)| !host.is_empty() && authority.eq_ignore_ascii_case(host))
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn a_same_origin_request_with_the_token_passes() {
        let h = headers(&[
            ("host", "agentd.example"),
            ("origin", "https://agentd.example"),
            ("sec-fetch-site", "same-origin"),
            ("cookie", "agentd_csrf=tok123"),
            ("x-csrf-token", "tok123"),
        ]);
        assert_eq!(check_csrf(&h, &[]), Ok(()));
    }

    #[test]
    fn cross_site_or_tokenless_requests_are_refused() {
        let base = [("host", "agentd.example"), ("cookie", "agentd_csrf=tok123")];
        let cases: Vec<Vec<(&'static str, &'static str)>> = vec![
            vec![("sec-fetch-site", "cross-site"), ("x-csrf-token", "tok123")],
            vec![("origin", "https://evil.example"), ("x-csrf-token", "tok123")],
            vec![("origin", "https://agentd.example")],
            vec![("origin", "https://agentd.example"), ("x-csrf-token", "other")],
        ];
        for extra in cases {
            let mut pairs = base.to_vec();
            pairs.extend(extra.iter().copied());
            assert!(check_csrf(&headers(&pairs), &[]).is_err(), "{extra:?}");
        }
        let no_cookie = headers(&[("host", "a"), ("x-csrf-token", "t")]);
        assert!(check_csrf(&no_cookie, &[]).is_err());
    }

    #[test]
    fn an_allowed_cors_origin_passes() {
        let h = headers(&[
            ("host", "api.example"),
            ("origin", "https://console.example"),
            ("sec-fetch-site", "same-site"),
            ("cookie", "agentd_csrf=t"),
            ("x-csrf-token", "t"),
        ]);
        assert_eq!(check_csrf(&h, &["https://console.example".to_owned()]), Ok(()));
        assert!(check_csrf(&h, &[]).is_err());
    }
}
