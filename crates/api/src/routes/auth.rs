//! Sign-in, refresh, sign-out and the CSRF token.

use agentd_core::user::validate_email;
use agentd_protocol::ErrorEnvelope;
use agentd_protocol::auth::{
    CsrfResponse, LoginRequest, LogoutRequest, RefreshRequest, TokenResponse,
};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::auth::middleware::{check_csrf, client_of};
use crate::auth::{AuthError, IssuedTokens, cookies, secrets};
use crate::client::ClientAddr;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, parse_json, read_body};
use crate::state::AppState;

fn token_body(tokens: IssuedTokens) -> TokenResponse {
    TokenResponse {
        access_token: Some(tokens.access_token),
        refresh_token: Some(tokens.refresh_token),
        token_type: "bearer".into(),
        expires_in: tokens.expires_in.as_secs(),
    }
}

/// Puts the tokens in cookies and answers without them.
fn cookie_response(state: &AppState, tokens: IssuedTokens) -> Response {
    let secure = state.auth.config().secure_cookies;
    let mut headers = HeaderMap::new();
    cookies::set(
        &mut headers,
        cookies::SESSION,
        &tokens.access_token,
        "/",
        Some(tokens.expires_in),
        secure,
    );
    cookies::set(
        &mut headers,
        cookies::REFRESH,
        &tokens.refresh_token,
        "/v1/auth",
        Some(state.auth.config().refresh_ttl),
        secure,
    );
    let body = TokenResponse {
        access_token: None,
        refresh_token: None,
        token_type: "cookie".into(),
        expires_in: tokens.expires_in.as_secs(),
    };
    (headers, ApiJson(body)).into_response()
}

/// Sign in with email and password.
#[utoipa::path(
    post, path = "/v1/auth/login", tag = "auth", operation_id = "login",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in: tokens, or cookies when `use_cookies` is set.", body = TokenResponse),
        (status = 401, description = "Wrong email or password, or the account is disabled.", body = ErrorEnvelope),
        (status = 429, description = "Too many failed sign-ins; see `Retry-After`.", body = ErrorEnvelope),
    ),
)]
pub(crate) async fn login(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    ApiJson(body): ApiJson<LoginRequest>,
) -> ApiResult<Response> {
    validate_email(&body.email).map_err(|m| ApiError::invalid("email", m))?;
    if body.password.is_empty() || body.password.len() > agentd_core::user::MAX_PASSWORD_LEN {
        return Err(ApiError::invalid("password", "must be 1 to 1024 bytes"));
    }
    let (_, tokens) = state.auth.login(&body.email, body.password, client).await?;
    Ok(if body.use_cookies {
        cookie_response(&state, tokens)
    } else {
        ApiJson(token_body(tokens)).into_response()
    })
}

/// A JSON body that may be empty (cookie clients send none).
async fn optional_body<T: serde::de::DeserializeOwned + Default>(request: Request) -> ApiResult<T> {
    let bytes = read_body(request).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    parse_json(&bytes)
}

/// Exchange a refresh token for new tokens. Each refresh token works once: presenting a used
/// one ends its whole session.
#[utoipa::path(
    post, path = "/v1/auth/refresh", tag = "auth", operation_id = "refresh",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "New tokens (or cookies, for cookie sessions).", body = TokenResponse),
        (status = 401, description = "The refresh token is unknown, used, expired or revoked.", body = ErrorEnvelope),
        (status = 403, description = "A cookie refresh failed the CSRF checks.", body = ErrorEnvelope),
    ),
)]
pub(crate) async fn refresh(
    State(state): State<AppState>,
    request: Request,
) -> ApiResult<Response> {
    let client = client_of(request.extensions());
    let headers = request.headers().clone();
    let body: RefreshRequest = optional_body(request).await?;
    let (token, from_cookie) = match body.refresh_token {
        Some(token) => (token, false),
        None => match cookies::get(&headers, cookies::REFRESH) {
            Some(token) => (token, true),
            None => return Err(ApiError::invalid("refresh_token", "is required")),
        },
    };
    if from_cookie {
        check_csrf(&headers, &state.config.browser.cors_origins)
            .map_err(|r| ApiError::Forbidden(format!("CSRF check failed: {r}")))?;
    }
    let tokens = state.auth.refresh(&token, client).await?;
    Ok(if from_cookie {
        cookie_response(&state, tokens)
    } else {
        ApiJson(token_body(tokens)).into_response()
    })
}

/// Sign out: ends the session of the access token (and of the refresh token, if given). Cookie
/// sessions also get their cookies cleared.
#[utoipa::path(
    post, path = "/v1/auth/logout", tag = "auth", operation_id = "logout",
    request_body = LogoutRequest,
    responses(
        (status = 204, description = "Signed out."),
        (status = 401, description = "No valid credentials.", body = ErrorEnvelope),
        (status = 403, description = "A cookie sign-out failed the CSRF checks.", body = ErrorEnvelope),
    ),
    security(("bearer" = [])),
)]
pub(crate) async fn logout(State(state): State<AppState>, request: Request) -> ApiResult<Response> {
    let client = client_of(request.extensions());
    let headers = request.headers().clone();
    let body: LogoutRequest = optional_body(request).await?;
    let refresh_cookie = cookies::get(&headers, cookies::REFRESH);
    let uses_cookies =
        cookies::get(&headers, cookies::SESSION).is_some() || refresh_cookie.is_some();
    if uses_cookies && !headers.contains_key("authorization") {
        check_csrf(&headers, &state.config.browser.cors_origins)
            .map_err(|r| ApiError::Forbidden(format!("CSRF check failed: {r}")))?;
    }
    let refresh_token = body.refresh_token.or(refresh_cookie);
    match state.auth.authenticate(&headers, client).await {
        Ok((principal, _)) => {
            state.auth.logout(&principal, refresh_token.as_deref(), client).await?
        }
        // A cookie session whose access token has expired can still end its session.
        Err(AuthError::Missing | AuthError::Expired) if refresh_token.is_some() => {
            state
                .auth
                .logout_refresh_token(refresh_token.as_deref().unwrap_or_default(), client)
                .await?;
        }
        Err(err) => return Err(err.into()),
    }
    let mut response_headers = HeaderMap::new();
    if uses_cookies {
        let secure = state.auth.config().secure_cookies;
        cookies::set(&mut response_headers, cookies::SESSION, "", "/", None, secure);
        cookies::set(&mut response_headers, cookies::REFRESH, "", "/v1/auth", None, secure);
    }
    Ok((StatusCode::NO_CONTENT, response_headers).into_response())
}

/// The CSRF token for cookie sessions: send it as `X-CSRF-Token` on state-changing requests.
#[utoipa::path(
    get, path = "/v1/auth/csrf", tag = "auth", operation_id = "csrf_token",
    responses((status = 200, description = "A token, also set as an HttpOnly cookie.", body = CsrfResponse)),
)]
pub(crate) async fn csrf(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let token = cookies::get(&headers, cookies::CSRF).unwrap_or_else(secrets::random_token);
    let mut response_headers = HeaderMap::new();
    cookies::set(
        &mut response_headers,
        cookies::CSRF,
        &token,
        "/",
        Some(state.auth.config().refresh_ttl),
        state.auth.config().secure_cookies,
    );
    (response_headers, ApiJson(CsrfResponse { csrf_token: token })).into_response()
}
