//! API keys for services: created by signed-in users, shown once, stored hashed.

use std::collections::BTreeSet;

use agentd_core::ApiKeyId;
use agentd_core::auth::{ApiKey, NewApiKey, Scope};
use agentd_protocol::auth::{ApiKeyResponse, CreateApiKeyRequest, CreatedApiKeyResponse};
use agentd_protocol::{ErrorEnvelope, ListResponse, PageQuery};
use axum::extract::State;
use axum::http::StatusCode;
use time::OffsetDateTime;

use super::{check_len, list, page_request, parse_time, rfc3339};
use crate::auth::api_key;
use crate::auth::middleware::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;

fn key_response(key: ApiKey) -> ApiKeyResponse {
    ApiKeyResponse {
        prefix: api_key::display_prefix(key.id),
        id: key.id.to_string(),
        name: key.name,
        scopes: key.scopes.iter().map(|s| s.as_str().to_owned()).collect(),
        created_at: rfc3339(key.created_at),
        expires_at: key.expires_at.map(rfc3339),
        last_used_at: key.last_used_at.map(rfc3339),
    }
}

/// Create an API key. Only signed-in users may create keys (a key cannot mint keys).
#[utoipa::path(
    post, path = "/v1/api-keys", tag = "api-keys", operation_id = "create_api_key",
    request_body = CreateApiKeyRequest,
    responses(
        (status = 201, description = "The key; its text is shown only now.", body = CreatedApiKeyResponse),
        (status = 401, description = "Not signed in.", body = ErrorEnvelope),
        (status = 403, description = "An API key tried to create a key, or a member asked for the admin scope.", body = ErrorEnvelope),
    ),
    security(("bearer" = [])),
)]
pub(crate) async fn create_api_key(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiJson(body): ApiJson<CreateApiKeyRequest>,
) -> ApiResult<(StatusCode, ApiJson<CreatedApiKeyResponse>)> {
    caller.require_human()?;
    check_len("name", &body.name, 1, 100)?;
    let scopes: BTreeSet<Scope> = match body.scopes {
        Some(names) => names
            .iter()
            .map(|n| n.parse::<Scope>())
            .collect::<Result<_, _>>()
            .map_err(|e| ApiError::invalid("scopes", e.to_string()))?,
        None => BTreeSet::from([Scope::Read, Scope::Write]),
    };
    if scopes.is_empty() {
        return Err(ApiError::invalid("scopes", "must name at least one scope"));
    }
    if scopes.contains(&Scope::Admin) && !caller.is_admin() {
        return Err(ApiError::Forbidden("only admins may create keys with the admin scope".into()));
    }
    let expires_at = body.expires_at.as_deref().map(|t| parse_time("expires_at", t)).transpose()?;
    if expires_at.is_some_and(|t| t <= OffsetDateTime::now_utc()) {
        return Err(ApiError::invalid("expires_at", "must be in the future"));
    }
    let generated = api_key::generate();
    let key = state
        .store
        .create_api_key(NewApiKey {
            id: generated.id,
            owner_id: caller.user_id,
            name: body.name,
            scopes,
            secret_hash: generated.secret_hash,
            expires_at,
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        ApiJson(CreatedApiKeyResponse { key: key_response(key), api_key: generated.text }),
    ))
}

/// List the caller's keys (admins: everyone's), never their secrets.
#[utoipa::path(
    get, path = "/v1/api-keys", tag = "api-keys", operation_id = "list_api_keys",
    params(PageQuery),
    responses(
        (status = 200, description = "A page of keys, newest first.", body = ListResponse<ApiKeyResponse>),
        (status = 401, description = "Not signed in.", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
pub(crate) async fn list_api_keys(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> ApiResult<ApiJson<ListResponse<ApiKeyResponse>>> {
    let page = state.store.list_api_keys(caller.owner_filter(), page_request(&query)?).await?;
    Ok(ApiJson(list(page, key_response)))
}

/// Revoke a key. It stops working at once.
#[utoipa::path(
    delete, path = "/v1/api-keys/{id}", tag = "api-keys", operation_id = "revoke_api_key",
    params(("id" = String, Path, description = "The key's id.")),
    responses(
        (status = 204, description = "Revoked."),
        (status = 401, description = "Not signed in.", body = ErrorEnvelope),
        (status = 404, description = "No such key visible to the caller.", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
pub(crate) async fn revoke_api_key(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiPath(id): ApiPath<ApiKeyId>,
) -> ApiResult<StatusCode> {
    state.store.revoke_api_key(caller.owner_filter(), id).await?;
    Ok(StatusCode::NO_CONTENT)
}
