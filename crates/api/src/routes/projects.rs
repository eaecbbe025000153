//! Projects: owned by the user who creates them; admins see every project. A project the
//! caller may not see is "not found", exactly like one that does not exist.

use agentd_core::ProjectId;
use agentd_core::auth::Principal;
use agentd_core::project::{
    DEFAULT_MODE, NewProject, Project, ProjectFilter, ProjectPatch, ProjectStatus, WorkspaceKind,
};
use agentd_protocol::project::{
    self as wire, CreateProjectRequest, ProjectListQuery, ProjectResponse, UpdateProjectRequest,
    WorkspaceRequest, WorkspaceResponse,
};
use agentd_protocol::{ErrorEnvelope, ListResponse, PageQuery};
use axum::extract::State;
use axum::http::StatusCode;

use super::{list, page_request, rfc3339};
use crate::auth::middleware::Caller;
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;

const fn status_to_wire(status: ProjectStatus) -> wire::ProjectStatus {
    match status {
        ProjectStatus::Active => wire::ProjectStatus::Active,
        ProjectStatus::Archived => wire::ProjectStatus::Archived,
    }
}

const fn status_from_wire(status: wire::ProjectStatus) -> ProjectStatus {
    match status {
        wire::ProjectStatus::Active => ProjectStatus::Active,
        wire::ProjectStatus::Archived => ProjectStatus::Archived,
    }
}

/// A project as `caller` sees it: a directory workspace's path only for its owner and admins.
fn project_response(project: Project, caller: &Principal) -> ProjectResponse {
    let may_see_path = caller.is_admin() || caller.user_id == project.owner_id;
    let workspace = WorkspaceResponse {
        kind: project.workspace.as_str().to_owned(),
        path: match project.workspace {
            WorkspaceKind::Directory { root } if may_see_path => Some(root),
            WorkspaceKind::Directory { .. } | WorkspaceKind::Managed => None,
        },
    };
    ProjectResponse {
        id: project.id.to_string(),
        owner_id: project.owner_id.to_string(),
        title: project.title,
        description: project.description,
        mode: project.mode,
        tech_stack: project.tech_stack,
        settings: project.settings,
        status: status_to_wire(project.status),
        workspace,
        revision: project.revision,
        created_at: rfc3339(project.created_at),
        updated_at: rfc3339(project.updated_at),
    }
}

/// Create a project owned by the caller.
#[utoipa::path(
    post, path = "/v1/projects", tag = "projects", operation_id = "create_project",
    request_body = CreateProjectRequest,
    responses(
        (status = 201, description = "Created, at revision 0.", body = ProjectResponse),
        (status = 400, description = "A directory workspace whose real path does not exist, is not a directory or is outside `AGENTD_WORKSPACE_ALLOWED_ROOTS`, or directory workspaces are disabled (`workspace_not_allowed`).", body = ErrorEnvelope),
        (status = 401, description = "Not signed in.", body = ErrorEnvelope),
        (status = 403, description = "An API key without the `write` scope.", body = ErrorEnvelope),
        (status = 422, description = "A field is invalid (`validation_error`); `details` names each.", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
pub(crate) async fn create_project(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiJson(body): ApiJson<CreateProjectRequest>,
) -> ApiResult<(StatusCode, ApiJson<ProjectResponse>)> {
    let new = NewProject {
        owner_id: caller.user_id,
        title: body.title,
        description: body.description,
        mode: body.mode.unwrap_or_else(|| DEFAULT_MODE.to_owned()),
        tech_stack: body.tech_stack,
        settings: serde_json::Map::new(),
        workspace: match body.workspace {
            None | Some(WorkspaceRequest::Managed {}) => WorkspaceKind::Managed,
            Some(WorkspaceRequest::Directory { path }) => WorkspaceKind::Directory { root: path },
        },
    };
    new.validate()?;
    let project = state.workspaces.create_project(new).await?;
    Ok((StatusCode::CREATED, ApiJson(project_response(project, &caller))))
}

/// List the caller's projects (admins: everyone's), newest first.
#[utoipa::path(
    get, path = "/v1/projects", tag = "projects", operation_id = "list_projects",
    params(ProjectListQuery),
    responses(
        (status = 200, description = "A page of projects, newest first.", body = ListResponse<ProjectResponse>),
        (status = 401, description = "Not signed in.", body = ErrorEnvelope),
        (status = 403, description = "An API key without the `read` scope.", body = ErrorEnvelope),
        (status = 422, description = "`limit` outside 1–100, a cursor not from this list, or an unknown status (`validation_error`).", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
pub(crate) async fn list_projects(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiQuery(query): ApiQuery<ProjectListQuery>,
) -> ApiResult<ApiJson<ListResponse<ProjectResponse>>> {
    let page = page_request(&PageQuery { limit: query.limit, cursor: query.cursor })?;
    let filter = ProjectFilter { status: query.status.map(status_from_wire) };
    let page = state.store.list_projects(caller.owner_filter(), filter, page).await?;
    Ok(ApiJson(list(page, |p| project_response(p, &caller))))
}

/// Get a project.
#[utoipa::path(
    get, path = "/v1/projects/{id}", tag = "projects", operation_id = "get_project",
    params(("id" = String, Path, description = "The project's id.")),
    responses(
        (status = 200, description = "The project.", body = ProjectResponse),
        (status = 401, description = "Not signed in.", body = ErrorEnvelope),
        (status = 403, description = "An API key without the `read` scope.", body = ErrorEnvelope),
        (status = 404, description = "No such project visible to the caller.", body = ErrorEnvelope),
        (status = 422, description = "The id is not a UUID.", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
pub(crate) async fn get_project(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiPath(id): ApiPath<ProjectId>,
) -> ApiResult<ApiJson<ProjectResponse>> {
    let project = state.store.project(caller.owner_filter(), id).await?;
    Ok(ApiJson(project_response(project, &caller)))
}

/// Change a project's title, description, status, tech stack or settings. Any other field is
/// refused (422) and nothing changes.
#[utoipa::path(
    patch, path = "/v1/projects/{id}", tag = "projects", operation_id = "update_project",
    params(("id" = String, Path, description = "The project's id.")),
    request_body = UpdateProjectRequest,
    responses(
        (status = 200, description = "The updated project.", body = ProjectResponse),
        (status = 401, description = "Not signed in.", body = ErrorEnvelope),
        (status = 403, description = "An API key without the `write` scope.", body = ErrorEnvelope),
        (status = 404, description = "No such project visible to the caller.", body = ErrorEnvelope),
        (status = 422, description = "A field outside the whitelist, or an invalid value (`validation_error`).", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
pub(crate) async fn update_project(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiPath(id): ApiPath<ProjectId>,
    ApiJson(body): ApiJson<UpdateProjectRequest>,
) -> ApiResult<ApiJson<ProjectResponse>> {
    let patch = ProjectPatch {
        title: body.title,
        description: body.description,
        status: body.status.map(status_from_wire),
        tech_stack: body.tech_stack,
        settings: body.settings.map(Option::unwrap_or_default),
    };
    patch.validate()?;
    let project = state.store.update_project(caller.owner_filter(), id, patch).await?;
    Ok(ApiJson(project_response(project, &caller)))
}

/// Delete a project with its files and history. A directory workspace's directory is left on
/// the server, untouched.
#[utoipa::path(
    delete, path = "/v1/projects/{id}", tag = "projects", operation_id = "delete_project",
    params(("id" = String, Path, description = "The project's id.")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 401, description = "Not signed in.", body = ErrorEnvelope),
        (status = 403, description = "An API key without the `write` scope.", body = ErrorEnvelope),
        (status = 404, description = "No such project visible to the caller.", body = ErrorEnvelope),
        (status = 422, description = "The id is not a UUID.", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
pub(crate) async fn delete_project(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiPath(id): ApiPath<ProjectId>,
) -> ApiResult<StatusCode> {
    state.store.delete_project(caller.owner_filter(), id).await?;
    Ok(StatusCode::NO_CONTENT)
}
