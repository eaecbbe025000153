//! Users: admins manage them; everyone reads themselves.

use agentd_core::StoreError;
use agentd_core::UserId;
use agentd_core::auth::Credential;
use agentd_core::user::{NewUser, Role, User, UserPatch, validate_email, validate_password};
use agentd_protocol::auth::{CreateUserRequest, MeResponse, UpdateUserRequest, UserResponse};
use agentd_protocol::{ErrorEnvelope, ListResponse, PageQuery};
use axum::extract::State;
use axum::http::StatusCode;

use super::{list, page_request, rfc3339};
use crate::auth::middleware::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;

pub(crate) fn user_response(user: User) -> UserResponse {
    UserResponse {
        id: user.id.to_string(),
        email: user.email,
        role: user.role.to_string(),
        disabled: user.disabled,
        created_at: rfc3339(user.created_at),
        updated_at: rfc3339(user.updated_at),
    }
}

fn parse_role(text: &str) -> Result<Role, ApiError> {
    text.parse().map_err(|_| ApiError::invalid("role", "must be admin or member"))
}

/// Create a user (admins only).
#[utoipa::path(
    post, path = "/v1/users", tag = "users", operation_id = "create_user",
    request_body = CreateUserRequest,
    responses(
        (status = 201, description = "Created.", body = UserResponse),
        (status = 401, description = "Not signed in.", body = ErrorEnvelope),
        (status = 403, description = "Not an admin.", body = ErrorEnvelope),
        (status = 409, description = "The email is taken.", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
pub(crate) async fn create_user(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiJson(body): ApiJson<CreateUserRequest>,
) -> ApiResult<(StatusCode, ApiJson<UserResponse>)> {
    caller.require_admin()?;
    let mut problems = Vec::new();
    if let Err(m) = validate_email(&body.email) {
        problems.push(agentd_protocol::ErrorDetail::field("email", m));
    }
    if let Err(m) = validate_password(&body.password) {
        problems.push(agentd_protocol::ErrorDetail::field("password", m));
    }
    let role = match body.role.as_deref() {
        Some(text) => match parse_role(text) {
            Ok(role) => role,
            Err(_) => {
                problems
                    .push(agentd_protocol::ErrorDetail::field("role", "must be admin or member"));
                Role::Member
            }
        },
        None => Role::Member,
    };
    if !problems.is_empty() {
        return Err(ApiError::Validation(problems));
    }
    let password_hash = state.auth.hasher().hash(body.password).await?;
    let user = state.store.create_user(NewUser { email: body.email, password_hash, role }).await?;
    Ok((StatusCode::CREATED, ApiJson(user_response(user))))
}

/// List users (admins only).
#[utoipa::path(
    get, path = "/v1/users", tag = "users", operation_id = "list_users",
    params(PageQuery),
    responses(
        (status = 200, description = "A page of users, newest first.", body = ListResponse<UserResponse>),
        (status = 401, description = "Not signed in.", body = ErrorEnvelope),
        (status = 403, description = "Not an admin.", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
pub(crate) async fn list_users(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> ApiResult<ApiJson<ListResponse<UserResponse>>> {
    caller.require_admin()?;
    let page = state.store.list_users(page_request(&query)?).await?;
    Ok(ApiJson(list(page, user_response)))
}

/// A user visible to the caller: themselves, or anyone for admins. Others are "not found".
async fn visible_user(
    state: &AppState,
    caller: &agentd_core::auth::Principal,
    id: UserId,
) -> ApiResult<User> {
    if caller.user_id != id && !caller.is_admin() {
        return Err(StoreError::NotFound { entity: "user" }.into());
    }
    Ok(state.store.user(id).await?)
}

/// Get a user (admins: anyone; members: themselves).
#[utoipa::path(
    get, path = "/v1/users/{id}", tag = "users", operation_id = "get_user",
    params(("id" = String, Path, description = "The user's id.")),
    responses(
        (status = 200, description = "The user.", body = UserResponse),
        (status = 401, description = "Not signed in.", body = ErrorEnvelope),
        (status = 404, description = "No such user visible to the caller.", body = ErrorEnvelope),
        (status = 422, description = "The id is not a UUID.", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
pub(crate) async fn get_user(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiPath(id): ApiPath<UserId>,
) -> ApiResult<ApiJson<UserResponse>> {
    Ok(ApiJson(user_response(visible_user(&state, &caller, id).await?)))
}

/// Change a user's role, disabled flag or password (admins only). Disabling a user or changing
/// their password ends all their sessions.
#[utoipa::path(
    patch, path = "/v1/users/{id}", tag = "users", operation_id = "update_user",
    params(("id" = String, Path, description = "The user's id.")),
    request_body = UpdateUserRequest,
    responses(
        (status = 200, description = "The updated user.", body = UserResponse),
        (status = 401, description = "Not signed in.", body = ErrorEnvelope),
        (status = 403, description = "Not an admin.", body = ErrorEnvelope),
        (status = 404, description = "No such user visible to the caller.", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
pub(crate) async fn update_user(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiPath(id): ApiPath<UserId>,
    ApiJson(body): ApiJson<UpdateUserRequest>,
) -> ApiResult<ApiJson<UserResponse>> {
    visible_user(&state, &caller, id).await?;
    caller.require_admin()?;
    let role = body.role.as_deref().map(parse_role).transpose()?;
    let password_hash = match body.password {
        Some(password) => {
            validate_password(&password).map_err(|m| ApiError::invalid("password", m))?;
            Some(state.auth.hasher().hash(password).await?)
        }
        None => None,
    };
    let ends_sessions = body.disabled == Some(true) || password_hash.is_some();
    let user = state
        .store
        .update_user(id, UserPatch { role, disabled: body.disabled, password_hash })
        .await?;
    if ends_sessions {
        state.store.revoke_user_sessions(id).await?;
    }
    Ok(ApiJson(user_response(user)))
}

/// The caller.
#[utoipa::path(
    get, path = "/v1/me", tag = "users", operation_id = "me",
    responses(
        (status = 200, description = "The signed-in user and how they authenticated.", body = MeResponse),
        (status = 401, description = "Not signed in.", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
pub(crate) async fn me(
    State(state): State<AppState>,
    Caller(caller): Caller,
) -> ApiResult<ApiJson<MeResponse>> {
    let user = state.store.user(caller.user_id).await?;
    let (credential, scopes) = match &caller.credential {
        Credential::Session { .. } => ("session", vec!["read", "write", "admin"]),
        Credential::ApiKey { scopes, .. } => {
            ("api_key", scopes.iter().map(|s| s.as_str()).collect())
        }
    };
    let scopes = scopes
        .into_iter()
        .filter(|s| *s != "admin" || user.role == Role::Admin)
        .map(str::to_owned)
        .collect();
    Ok(ApiJson(MeResponse { user: user_response(user), credential: credential.into(), scopes }))
}
