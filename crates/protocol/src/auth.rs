//! Sign-in, tokens, users and API keys.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /v1/auth/login`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// The account's email.
    pub email: String,
    /// The password.
    pub password: String,
    /// Set the tokens as `HttpOnly` cookies (for browsers) instead of returning them.
    #[serde(default)]
    pub use_cookies: bool,
}

/// Tokens issued by sign-in and refresh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    /// The access token (a JWT), absent in cookie mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    /// The refresh token (single use), absent in cookie mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// `bearer`, or `cookie` when the tokens were set as cookies.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
}

/// `POST /v1/auth/refresh`; in cookie mode the body may be empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// The refresh token from sign-in or the previous refresh.
    #[serde(default)]
    pub refresh_token: Option<String>,
}

/// `POST /v1/auth/logout`: ends the caller's session; a refresh token, if given, ends its
/// session too.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogoutRequest {
    /// A refresh token whose session should end.
    #[serde(default)]
    pub refresh_token: Option<String>,
}

/// `GET /v1/auth/csrf`: the double-submit token for cookie sessions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CsrfResponse {
    /// Send this in `X-CSRF-Token` on every state-changing request made with cookies.
    pub csrf_token: String,
}

/// A user as the API shows it (never the password hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UserResponse {
    /// The user's id.
    pub id: String,
    /// The sign-in email (lower case).
    pub email: String,
    /// `admin` or `member`.
    pub role: String,
    /// Whether sign-in is disabled.
    pub disabled: bool,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

/// `POST /v1/users` (admins).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    /// The sign-in email.
    pub email: String,
    /// The initial password (at least 8 characters).
    pub password: String,
    /// `admin` or `member` (default).
    #[serde(default)]
    pub role: Option<String>,
}

/// `PATCH /v1/users/{id}` (admins): any subset of the fields.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserRequest {
    /// `admin` or `member`.
    #[serde(default)]
    pub role: Option<String>,
    /// Disable (ends every session) or re-enable.
    #[serde(default)]
    pub disabled: Option<bool>,
    /// A new password (ends every session).
    #[serde(default)]
    pub password: Option<String>,
}

/// `POST /v1/api-keys`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKeyRequest {
    /// A label, 1–100 characters.
    pub name: String,
    /// Any of `read`, `write`, `admin` (default: `read` and `write`).
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// RFC 3339; the key stops working then. Must be in the future.
    #[serde(default)]
    pub expires_at: Option<String>,
}

/// An API key as listed (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyResponse {
    /// The key's id.
    pub id: String,
    /// The label.
    pub name: String,
    /// What it may do.
    pub scopes: Vec<String>,
    /// The beginning of the key text, to recognise it (`agk_<id>_`).
    pub prefix: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339, if it expires.
    pub expires_at: Option<String>,
    /// RFC 3339, if ever used (recorded at most once a minute).
    pub last_used_at: Option<String>,
}

/// The answer to `POST /v1/api-keys`: the only time the key text is shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CreatedApiKeyResponse {
    /// The key as stored.
    #[serde(flatten)]
    pub key: ApiKeyResponse,
    /// The full key, `agk_<id>_<secret>`. Store it now: it cannot be shown again.
    pub api_key: String,
}

/// `GET /v1/me`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MeResponse {
    /// The caller.
    #[serde(flatten)]
    pub user: UserResponse,
    /// `session` or `api_key`.
    pub credential: String,
    /// What the caller may do with these credentials.
    pub scopes: Vec<String>,
}
