//! Approvals of risky steps and the grants they leave: list, read, decide; list and revoke
//! grants; decide several at once for existing clients.

use agentd_core::approval::{Approval, ApprovalStatus, Decided, Decision, Grant, GrantScope};
use agentd_core::auth::Principal;
use agentd_core::{ApprovalId, GrantId, StoreError};
use agentd_protocol::approval::{
    ApprovalListQuery, ApprovalResponse, DecideRequest, DecisionBody, ExecutePendingItem,
    ExecutePendingRequest, ExecutePendingResponse, GrantResponse, ScopeBody,
};
use agentd_protocol::{ErrorEnvelope, ListResponse, PageQuery};
use axum::extract::State;
use axum::http::StatusCode;

use super::{check_len, list, page_request, rfc3339};
use crate::auth::middleware::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;

/// The longest decision reason, in characters.
const MAX_REASON_CHARS: usize = 2000;
/// The most approvals one `execute-pending` request decides.
const MAX_BATCH: usize = 100;

pub(crate) fn approval_response(a: Approval) -> ApprovalResponse {
    ApprovalResponse {
        available_decisions: a.available_decisions().into_iter().map(str::to_owned).collect(),
        id: a.id.to_string(),
        run_id: a.run_id.to_string(),
        project_id: a.project_id.map(|p| p.to_string()),
        call_id: a.call_id,
        tool: a.tool,
        arguments: a.arguments,
        action_hash: a.action_hash,
        risk: a.risk.to_string(),
        reason: a.reason,
        grant_key: a.grant_key,
        status: a.status.to_string(),
        scope: a.scope.map(|s| s.to_string()),
        decision_reason: a.decision_reason,
        decided_by: a.decided_by.map(|u| u.to_string()),
        decided_at: a.decided_at.map(rfc3339),
        expires_at: rfc3339(a.expires_at),
        created_at: rfc3339(a.created_at),
    }
}

fn grant_response(g: Grant) -> GrantResponse {
    GrantResponse {
        id: g.id.to_string(),
        scope: if g.run_id.is_some() { "run" } else { "project" }.to_owned(),
        project_id: g.project_id.map(|p| p.to_string()),
        run_id: g.run_id.map(|r| r.to_string()),
        tool: g.tool,
        key: g.key,
        created_by: g.created_by.to_string(),
        created_at: rfc3339(g.created_at),
    }
}

const fn decision(d: DecisionBody) -> Decision {
    match d {
        DecisionBody::Approve => Decision::Approve,
        DecisionBody::Reject => Decision::Reject,
    }
}

fn check_reason(field: &str, reason: Option<&str>) -> ApiResult<()> {
    match reason {
        Some(r) => check_len(field, r, 1, MAX_REASON_CHARS),
        None => Ok(()),
    }
}

/// What one decision did, before it becomes a response.
enum Outcome {
    Decided(Approval),
    /// The same decision was already recorded: answered as if made now.
    Repeated(Approval),
    Conflict(Approval),
    Expired(Approval),
}

async fn decide(
    state: &AppState,
    caller: &Principal,
    id: ApprovalId,
    d: Decision,
    scope: GrantScope,
    reason: Option<String>,
) -> ApiResult<Outcome> {
    let owner = caller.owner_filter();
    let approval = state.store.approval(owner, id).await?;
    if scope != GrantScope::Once && d == Decision::Approve && approval.grant_key.is_none() {
        return Err(ApiError::invalid(
            "scope",
            format!(
                "this {} call can only be approved once; `run` and `project` scopes apply to commands",
                approval.tool
            ),
        ));
    }
    Ok(match state.store.decide_approval(owner, id, d, scope, caller.user_id, reason).await? {
        Decided::Now(a) => Outcome::Decided(a),
        Decided::Already(a) if a.status == ApprovalStatus::Expired => Outcome::Expired(a),
        Decided::Already(a) if a.decided_by == Some(caller.user_id) && a.records(d, scope) => {
            Outcome::Repeated(a)
        }
        Decided::Already(a) => Outcome::Conflict(a),
    })
}

/// Approvals of the caller's runs, newest first (every approval for admins).
#[utoipa::path(
    get, path = "/v1/approvals", tag = "approvals", operation_id = "list_approvals",
    params(ApprovalListQuery),
    responses(
        (status = 200, description = "A page of approvals.", body = ListResponse<ApprovalResponse>),
        (status = 401, description = "Not signed in.", body = ErrorEnvelope),
        (status = 422, description = "Unknown status, bad limit or cursor.", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
pub(crate) async fn list_approvals(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiQuery(query): ApiQuery<ApprovalListQuery>,
) -> ApiResult<ApiJson<ListResponse<ApprovalResponse>>> {
    let status = query
        .status
        .as_deref()
        .map(|s| {
            s.parse::<ApprovalStatus>().map_err(|_| {
                ApiError::invalid(
                    "status",
                    "must be pending, approved, rejected, expired or cancelled",
                )
            })
        })
        .transpose()?;
    let page = page_request(&PageQuery { limit: query.limit, cursor: query.cursor })?;
    let approvals = state.store.list_approvals(caller.owner_filter(), status, page).await?;
    Ok(ApiJson(list(approvals, approval_response)))
}

/// An approval.
#[utoipa::path(
    get, path = "/v1/approvals/{id}", tag = "approvals", operation_id = "get_approval",
    params(("id" = String, Path, description = "The approval's id.")),
    responses(
        (status = 200, description = "The approval.", body = ApprovalResponse),
        (status = 401, description = "Not signed in.", body = ErrorEnvelope),
        (status = 404, description = "No such approval visible to the caller.", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
pub(crate) async fn get_approval(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiPath(id): ApiPath<ApprovalId>,
) -> ApiResult<ApiJson<ApprovalResponse>> {
    Ok(ApiJson(approval_response(state.store.approval(caller.owner_filter(), id).await?)))
}

/// Decide an approval. Only a signed-in human may (API keys get 403). The first decision wins:
/// repeating it returns the approval unchanged, a different one gets 409 `approval_decided`,
/// and a decision after the deadline gets 409 `approval_expired` (the approval counts as
/// rejected). Approving with `scope` `run` or `project` also stores a grant for the command
/// prefix. The run resumes as soon as it has no pending approval left.
#[utoipa::path(
    post, path = "/v1/approvals/{id}", tag = "approvals", operation_id = "decide_approval",
    params(("id" = String, Path, description = "The approval's id.")),
    request_body = DecideRequest,
    responses(
        (status = 200, description = "The approval, decided.", body = ApprovalResponse),
        (status = 401, description = "Not signed in.", body = ErrorEnvelope),
        (status = 403, description = "Only a signed-in human may decide (not an API key).", body = ErrorEnvelope),
        (status = 404, description = "No such approval visible to the caller.", body = ErrorEnvelope),
        (status = 409, description = "`approval_decided`: decided otherwise before; `approval_expired`: too late.", body = ErrorEnvelope),
        (status = 422, description = "Bad decision, scope or reason.", body = ErrorEnvelope),
    ),
    security(("bearer" = [])),
)]
pub(crate) async fn decide_approval(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiPath(id): ApiPath<ApprovalId>,
    ApiJson(body): ApiJson<DecideRequest>,
) -> ApiResult<ApiJson<ApprovalResponse>> {
    caller.require_human()?;
    check_reason("reason", body.reason.as_deref())?;
    let d = decision(body.decision);
    let scope = match (d, body.scope) {
        (Decision::Reject, Some(ScopeBody::Run | ScopeBody::Project)) => {
            return Err(ApiError::invalid("scope", "applies to approvals only"));
        }
        (_, None | Some(ScopeBody::Once)) => GrantScope::Once,
        (_, Some(ScopeBody::Run)) => GrantScope::Run,
        (_, Some(ScopeBody::Project)) => GrantScope::Project,
    };
    match decide(&state, &caller, id, d, scope, body.reason).await? {
        Outcome::Decided(a) | Outcome::Repeated(a) => Ok(ApiJson(approval_response(a))),
        Outcome::Expired(a) => Err(ApiError::ApprovalExpired(format!(
            "the approval expired at {}; it counts as rejected",
            rfc3339(a.expires_at)
        ))),
        Outcome::Conflict(a) => Err(ApiError::ApprovalDecided(format!(
            "the approval was already decided: it is {}",
            a.status
        ))),
    }
}

/// Decide several approvals at once (the form existing clients use). Each id gets its own
/// outcome; one that cannot be decided does not stop the others. Humans only.
#[utoipa::path(
    post, path = "/v1/agent/execute-pending", tag = "approvals", operation_id = "execute_pending",
    request_body = ExecutePendingRequest,
    responses(
        (status = 200, description = "One result per id, in request order.", body = ExecutePendingResponse),
        (status = 401, description = "Not signed in.", body = ErrorEnvelope),
        (status = 403, description = "Only a signed-in human may decide (not an API key).", body = ErrorEnvelope),
        (status = 422, description = "No ids, too many, or a malformed id.", body = ErrorEnvelope),
    ),
    security(("bearer" = [])),
)]
pub(crate) async fn execute_pending(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiJson(body): ApiJson<ExecutePendingRequest>,
) -> ApiResult<ApiJson<ExecutePendingResponse>> {
    caller.require_human()?;
    if body.approval_ids.is_empty() || body.approval_ids.len() > MAX_BATCH {
        return Err(ApiError::invalid("approval_ids", format!("must hold 1 to {MAX_BATCH} ids")));
    }
    check_reason("reason", body.reason.as_deref())?;
    let ids = body
        .approval_ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            id.parse::<ApprovalId>()
                .map_err(|_| ApiError::invalid(format!("approval_ids[{i}]"), "is not an id"))
        })
        .collect::<ApiResult<Vec<_>>>()?;
    let d = decision(body.decision);
    let mut results = Vec::with_capacity(ids.len());
    for (raw, id) in body.approval_ids.into_iter().zip(ids) {
        let outcome =
            match decide(&state, &caller, id, d, GrantScope::Once, body.reason.clone()).await {
                Ok(o) => o,
                Err(ApiError::NotFound(_)) => {
                    results.push(ExecutePendingItem {
                        approval_id: raw,
                        outcome: "not_found".into(),
                        approval: None,
                    });
                    continue;
                }
                Err(e) => return Err(e),
            };
        let (outcome, approval) = match outcome {
            Outcome::Decided(a) | Outcome::Repeated(a) => ("decided", a),
            Outcome::Conflict(a) => ("already_decided", a),
            Outcome::Expired(a) => ("expired", a),
        };
        results.push(ExecutePendingItem {
            approval_id: raw,
            outcome: outcome.into(),
            approval: Some(approval_response(approval)),
        });
    }
    Ok(ApiJson(ExecutePendingResponse { results }))
}

/// Grants the caller made (every grant for admins), newest first.
#[utoipa::path(
    get, path = "/v1/grants", tag = "approvals", operation_id = "list_grants",
    params(PageQuery),
    responses(
        (status = 200, description = "A page of grants.", body = ListResponse<GrantResponse>),
        (status = 401, description = "Not signed in.", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
pub(crate) async fn list_grants(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> ApiResult<ApiJson<ListResponse<GrantResponse>>> {
    let grants = state.store.list_grants(caller.owner_filter(), page_request(&query)?).await?;
    Ok(ApiJson(list(grants, grant_response)))
}

/// Revoke a grant: matching calls need approval again. API keys may revoke (it only takes
/// permission away).
#[utoipa::path(
    delete, path = "/v1/grants/{id}", tag = "approvals", operation_id = "delete_grant",
    params(("id" = String, Path, description = "The grant's id.")),
    responses(
        (status = 204, description = "Revoked."),
        (status = 401, description = "Not signed in.", body = ErrorEnvelope),
        (status = 404, description = "No such grant visible to the caller.", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
pub(crate) async fn delete_grant(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiPath(id): ApiPath<GrantId>,
) -> ApiResult<StatusCode> {
    match state.store.delete_grant(caller.owner_filter(), id).await {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(StoreError::NotFound { .. }) => Err(ApiError::NotFound("grant not found".into())),
        Err(e) => Err(e.into()),
    }
}
