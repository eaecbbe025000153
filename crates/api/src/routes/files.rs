//! A project's files, changes, diffs and reverts, over either kind of workspace.
//!
//! Each route first checks its URL (the file path, the query), which needs no I/O and answers
//! the same for every project; then opens the project through its owner (another tenant's
//! project is "not found", exactly like a missing one); and only then looks at the precondition
//! headers and the body, and reaches the files. A file path in a URL is taken from
//! the raw request target, still percent-encoded, and decoded exactly once by
//! `WorkspacePath::from_url`: axum's own decoding of path parameters is never used for it. These
//! handlers never touch files themselves; the workspace does, beneath its root.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use agentd_core::auth::Principal;
use agentd_core::page::PageRequest;
use agentd_core::project::Project;
use agentd_core::workspace::{
    Author, Change, ChangeCursor, ContentHash, FileContent, FileEntry, Precondition, Workspace,
};
use agentd_core::{ProjectId, WorkspacePath};
use agentd_protocol::file::{
    ChangeResponse, ChangesQuery, ContentEncoding, DiffQuery, DiffResponse, FileContentResponse,
    FileDeleteResponse, FileListQuery, FileResponse, FileWriteResponse, RevertRequest,
    RevertResponse, WriteFileRequest,
};
use agentd_protocol::{ErrorEnvelope, ListResponse, PageQuery};
use axum::extract::{OriginalUri, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

use super::{page_request, rfc3339};
use crate::auth::middleware::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery, read_body, read_json};
use crate::state::AppState;

/// The prefix of every file URL, before the project id.
const PROJECTS_PREFIX: &str = "/v1/projects/";
/// What follows the project id in a file URL, before the file path.
const FILES_SEGMENT: &str = "files/";

/// The project `id` if the caller may see it, and its workspace.
async fn open(
    state: &AppState,
    caller: &Principal,
    id: ProjectId,
) -> ApiResult<(Project, Arc<dyn Workspace>)> {
    Ok(state.workspaces.open(caller.owner_filter(), id).await?)
}

/// The project id and the still-encoded file path of a `/v1/projects/{id}/files/{path}` URL.
fn file_target(uri: &Uri) -> ApiResult<(ProjectId, &str)> {
    let malformed = || ApiError::NotFound(format!("no route for {}", uri.path()));
    let rest = uri.path().strip_prefix(PROJECTS_PREFIX).ok_or_else(malformed)?;
    let (id, rest) = rest.split_once('/').ok_or_else(malformed)?;
    let raw_path = rest.strip_prefix(FILES_SEGMENT).ok_or_else(malformed)?;
    let id = id.parse().map_err(|_| ApiError::invalid("id", "must be a UUID"))?;
    Ok((id, raw_path))
}

fn file_response(entry: FileEntry) -> FileResponse {
    FileResponse {
        path: entry.path.to_string(),
        size: entry.size,
        etag: entry.sha256.to_etag(),
        sha256: entry.sha256.to_string(),
        language: entry.language,
        updated_at: rfc3339(entry.updated_at),
    }
}

fn change_response(change: Change) -> ChangeResponse {
    ChangeResponse {
        revision: change.revision,
        path: change.path.to_string(),
        old_sha256: change.old_sha256.map(|h| h.to_string()),
        new_sha256: change.new_sha256.map(|h| h.to_string()),
        author: change.author.to_string(),
        created_at: rfc3339(change.created_at),
    }
}

fn etag_header(sha256: &ContentHash) -> HeaderValue {
    // 64 hex digits in quotes: always a valid header value.
    HeaderValue::from_str(&sha256.to_etag()).unwrap_or_else(|_| HeaderValue::from_static("\"\""))
}

/// The precondition of a write or delete, from `If-Match` and `If-None-Match`.
///
/// `If-Match` takes `*` or one strong ETag. A weak tag (`W/"…"`) never matches: `If-Match`
/// compares strongly (RFC 9110), and agentd's tags, content hashes, are always strong.
/// `If-None-Match` takes only `*` (create only).
fn precondition(headers: &HeaderMap) -> ApiResult<Precondition> {
    let if_match = single_header(headers, header::IF_MATCH)?;
    let if_none_match = single_header(headers, header::IF_NONE_MATCH)?;
    match (if_match, if_none_match) {
        (None, None) => Ok(Precondition::None),
        (Some(_), Some(_)) => {
            Err(ApiError::BadRequest("send If-Match or If-None-Match, not both".into()))
        }
        (None, Some("*")) => Ok(Precondition::IfNotExists),
        (None, Some(_)) => Err(ApiError::BadRequest(
            "If-None-Match takes only `*` (create only) on writes and deletes".into(),
        )),
        (Some("*"), None) => Ok(Precondition::IfExists),
        (Some(tag), None) if tag.starts_with("W/") => Err(ApiError::PreconditionFailed(
            "a weak entity tag never matches If-Match; send the ETag as agentd returned it".into(),
        )),
        (Some(tag), None) => {
            let hash = tag
                .strip_prefix('"')
                .and_then(|t| t.strip_suffix('"'))
                .and_then(|t| t.parse::<ContentHash>().ok())
                .ok_or_else(|| {
                    ApiError::BadRequest(
                        "If-Match takes `*` or one ETag as agentd returned it: a SHA-256 in \
                         double quotes"
                            .into(),
                    )
                })?;
            Ok(Precondition::IfMatch(hash))
        }
    }
}

/// The one value of a header, trimmed; a repeated or non-text header is malformed.
fn single_header(headers: &HeaderMap, name: header::HeaderName) -> ApiResult<Option<&str>> {
    let mut values = headers.get_all(&name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::BadRequest(format!("send {name} once")));
    }
    let text = value
        .to_str()
        .map_err(|_| ApiError::BadRequest(format!("{name} must be ASCII text")))?
        .trim();
    Ok(Some(text))
}

/// Whether `Accept` asks for JSON at least as much as for `alternative` (the route's default
/// representation): `application/json` is listed with a quality above 0 and not below
/// `alternative`'s.
fn wants_json(headers: &HeaderMap, alternative: &str) -> bool {
    let mut json = 0.0f32;
    let mut other = 0.0f32;
    for value in headers.get_all(header::ACCEPT) {
        let Ok(text) = value.to_str() else { continue };
        for range in text.split(',') {
            let mut params = range.split(';');
            let media = params.next().unwrap_or_default().trim().to_ascii_lowercase();
            let quality = params
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            if media == "application/json" {
                json = json.max(quality);
            } else if media == alternative {
                other = other.max(quality);
            }
        }
    }
    json > 0.0 && json >= other
}

/// The media type of a file served raw, from its name and content. Text (UTF-8 without NUL) is
/// served as its named type only when that is a textual one (`text/*`, JSON, XML), otherwise as
/// `text/plain` (a `.ts` file is TypeScript, not video), and `text/*` types carry
/// `charset=utf-8`. Other content gets its named type, or `application/octet-stream`.
fn media_type(path: &WorkspacePath, content: &[u8]) -> String {
    let is_text = !content.contains(&0) && std::str::from_utf8(content).is_ok();
    let guess = mime_guess::from_path(path.as_str()).first();
    match guess {
        Some(mime) if is_text && mime.type_() == mime_guess::mime::TEXT => {
            format!("{}; charset=utf-8", mime.essence_str())
        }
        Some(mime) if is_text && is_textual(&mime) => mime.essence_str().to_owned(),
        _ if is_text => "text/plain; charset=utf-8".to_owned(),
        Some(mime) => mime.essence_str().to_owned(),
        None => "application/octet-stream".to_owned(),
    }
}

fn is_textual(mime: &mime_guess::Mime) -> bool {
    let suffix = mime.suffix().map(|s| s.as_str());
    matches!(mime.subtype().as_str(), "json" | "xml" | "javascript")
        || matches!(suffix, Some("json" | "xml"))
}

/// A cursor over file paths, opaque on the wire (base64url of the path) so that any path
/// survives a query string.
struct PathCursor(WorkspacePath);

impl fmt::Display for PathCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&URL_SAFE_NO_PAD.encode(self.0.as_str()))
    }
}

impl FromStr for PathCursor {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = URL_SAFE_NO_PAD.decode(s).map_err(|_| ())?;
        let text = String::from_utf8(bytes).map_err(|_| ())?;
        WorkspacePath::parse(&text).map(Self).map_err(|_| ())
    }
}

/// A cursor over changes: the last change's revision and path, opaque on the wire.
struct ChangeCursorText(ChangeCursor);

impl fmt::Display for ChangeCursorText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = format!("{}:{}", self.0.revision, self.0.path);
        f.write_str(&URL_SAFE_NO_PAD.encode(text))
    }
}

impl FromStr for ChangeCursorText {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = URL_SAFE_NO_PAD.decode(s).map_err(|_| ())?;
        let text = String::from_utf8(bytes).map_err(|_| ())?;
        let (revision, path) = text.split_once(':').ok_or(())?;
        Ok(Self(ChangeCursor {
            revision: revision.parse().map_err(|_| ())?,
            path: WorkspacePath::parse(path).map_err(|_| ())?,
        }))
    }
}

/// The answer to a write: 201 when the file was created, 200 when replaced, with the ETag.
fn write_answer(outcome: agentd_core::workspace::WriteOutcome) -> Response {
    let status = if outcome.created { StatusCode::CREATED } else { StatusCode::OK };
    let etag = etag_header(&outcome.file.sha256);
    let body = FileWriteResponse {
        file: file_response(outcome.file),
        created: outcome.created,
        revision: outcome.revision,
    };
    (status, [(header::ETAG, etag)], ApiJson(body)).into_response()
}

/// List a project's files, recursively, in path order.
#[utoipa::path(
    get, path = "/v1/projects/{id}/files", tag = "files", operation_id = "list_files",
    params(("id" = String, Path, description = "The project's id."), FileListQuery),
    responses(
        (status = 200, description = "A page of files in path order, with sizes and ETags.", body = ListResponse<FileResponse>),
        (status = 400, description = "The prefix is not a valid workspace path (`invalid_path`), or the project's directory is no longer inside an allowed root (`workspace_not_allowed`).", body = ErrorEnvelope),
        (status = 401, description = "Not signed in.", body = ErrorEnvelope),
        (status = 403, description = "An API key without the `read` scope.", body = ErrorEnvelope),
        (status = 404, description = "No such project visible to the caller.", body = ErrorEnvelope),
        (status = 422, description = "The id is not a UUID, `limit` is outside 1–100, or the cursor is not from this list.", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
pub(crate) async fn list_files(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiPath(id): ApiPath<ProjectId>,
    ApiQuery(query): ApiQuery<FileListQuery>,
) -> ApiResult<ApiJson<ListResponse<FileResponse>>> {
    let prefix = query.prefix.as_deref().map(WorkspacePath::parse).transpose()?;
    let page: PageRequest<PathCursor> =
        page_request(&PageQuery { limit: query.limit, cursor: query.cursor })?;
    let page = PageRequest { limit: page.limit, after: page.after.map(|c| c.0) };
    let (_, workspace) = open(&state, &caller, id).await?;
    let page = workspace.list(prefix.as_ref(), page).await?;
    Ok(ApiJson(ListResponse {
        data: page.items.into_iter().map(file_response).collect(),
        next_cursor: page.next.map(|p| PathCursor(p).to_string()),
    }))
}

/// Read a file: its bytes (by default, or with `Accept: application/octet-stream`) with the
/// detected media type, or JSON (with `Accept: application/json`); the `ETag` header either way.
#[utoipa::path(
    get, path = "/v1/projects/{id}/files/{path}", tag = "files", operation_id = "read_file",
    params(
        ("id" = String, Path, description = "The project's id."),
        ("path" = String, Path, description = "The file's path in the workspace, `/`-separated, percent-encoded once."),
    ),
    responses(
        (status = 200, description = "The file, with its `ETag`.",
            headers(("ETag" = String, description = "The SHA-256 of the content, quoted.")),
            content(
                (Vec<u8> = "application/octet-stream"),
                (FileContentResponse = "application/json"),
            ),
        ),
        (status = 400, description = "The path is not acceptable (`invalid_path`): absolute, `..`, encoded traversal, control characters, or through a symbolic link leading outside a directory workspace; or the project's directory is no longer inside an allowed root (`workspace_not_allowed`).", body = ErrorEnvelope),
        (status = 401, description = "Not signed in.", body = ErrorEnvelope),
        (status = 403, description = "An API key without the `read` scope.", body = ErrorEnvelope),
        (status = 404, description = "No such project visible to the caller, or no file at the path.", body = ErrorEnvelope),
        (status = 409, description = "The path names a directory, FIFO or device, not a regular file (`conflict`).", body = ErrorEnvelope),
        (status = 413, description = "The file is larger than `AGENTD_MAX_FILE_BYTES` (`payload_too_large`).", body = ErrorEnvelope),
        (status = 422, description = "The project id is not a UUID.", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
pub(crate) async fn read_file(
    State(state): State<AppState>,
    Caller(caller): Caller,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let (id, raw_path) = file_target(&uri)?;
    let path = WorkspacePath::from_url(raw_path)?;
    let (_, workspace) = open(&state, &caller, id).await?;
    let FileContent { entry, content } = workspace.read(&path).await?;
    let etag = etag_header(&entry.sha256);
    if wants_json(&headers, "application/octet-stream") {
        let (encoding, text) = match String::from_utf8(content) {
            Ok(text) => (ContentEncoding::Utf8, text),
            Err(err) => (ContentEncoding::Base64, STANDARD.encode(err.as_bytes())),
        };
        let body = FileContentResponse { file: file_response(entry), encoding, content: text };
        return Ok(([(header::ETAG, etag)], ApiJson(body)).into_response());
    }
    let media = HeaderValue::from_str(&media_type(&entry.path, &content))
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
    Ok(([(header::ETAG, etag), (header::CONTENT_TYPE, media)], content).into_response())
}

/// Create or replace a file with the request body's bytes (any content type).
#[utoipa::path(
    put, path = "/v1/projects/{id}/files/{path}", tag = "files", operation_id = "write_file",
    params(
        ("id" = String, Path, description = "The project's id."),
        ("path" = String, Path, description = "The file's path in the workspace, `/`-separated, percent-encoded once."),
        ("If-Match" = Option<String>, Header, description = "Write only if the file's ETag is this one, or with `*` only if the file exists."),
        ("If-None-Match" = Option<String>, Header, description = "`*`: create only; fail if the file exists."),
    ),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The file's new content, byte for byte."),
    responses(
        (status = 200, description = "Replaced.", body = FileWriteResponse,
            headers(("ETag" = String, description = "The new content's SHA-256, quoted."))),
        (status = 201, description = "Created.", body = FileWriteResponse,
            headers(("ETag" = String, description = "The new content's SHA-256, quoted."))),
        (status = 400, description = "The path is not acceptable (`invalid_path`), a precondition header is malformed (`bad_request`), or the project's directory is no longer inside an allowed root (`workspace_not_allowed`).", body = ErrorEnvelope),
        (status = 401, description = "Not signed in.", body = ErrorEnvelope),
        (status = 403, description = "An API key without the `write` scope.", body = ErrorEnvelope),
        (status = 404, description = "No such project visible to the caller.", body = ErrorEnvelope),
        (status = 409, description = "A file stands where a directory is needed, or the reverse, or the path names something other than a regular file (`conflict`).", body = ErrorEnvelope),
        (status = 412, description = "`If-Match` or `If-None-Match` does not hold (`precondition_failed`); nothing changed.", body = ErrorEnvelope),
        (status = 413, description = "The file is larger than `AGENTD_MAX_FILE_BYTES`, the project would exceed `AGENTD_MAX_PROJECT_BYTES`, or the body exceeds `AGENTD_REQUEST_BODY_MAX_BYTES` (`payload_too_large`).", body = ErrorEnvelope),
        (status = 422, description = "The project would have more files than `AGENTD_MAX_PROJECT_FILES`, or the project id is not a UUID (`validation_error`).", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
pub(crate) async fn write_file(
    State(state): State<AppState>,
    Caller(caller): Caller,
    OriginalUri(uri): OriginalUri,
    request: Request,
) -> ApiResult<Response> {
    let (id, raw_path) = file_target(&uri)?;
    let path = WorkspacePath::from_url(raw_path)?;
    let (_, workspace) = open(&state, &caller, id).await?;
    let precondition = precondition(request.headers())?;
    let content = read_body(request).await?;
    let outcome = workspace
        .write(&path, content.to_vec(), precondition, Author::User(caller.user_id))
        .await?;
    Ok(write_answer(outcome))
}

/// Create or replace a file with content given in JSON (`utf-8` text or `base64`).
#[utoipa::path(
    post, path = "/v1/projects/{id}/files", tag = "files", operation_id = "create_file",
    params(
        ("id" = String, Path, description = "The project's id."),
        ("If-Match" = Option<String>, Header, description = "Write only if the file's ETag is this one, or with `*` only if the file exists."),
        ("If-None-Match" = Option<String>, Header, description = "`*`: create only; fail if the file exists."),
    ),
    request_body = WriteFileRequest,
    responses(
        (status = 200, description = "Replaced.", body = FileWriteResponse,
            headers(("ETag" = String, description = "The new content's SHA-256, quoted."))),
        (status = 201, description = "Created.", body = FileWriteResponse,
            headers(("ETag" = String, description = "The new content's SHA-256, quoted."))),
        (status = 400, description = "The path is not acceptable (`invalid_path`), a precondition header is malformed (`bad_request`), or the project's directory is no longer inside an allowed root (`workspace_not_allowed`).", body = ErrorEnvelope),
        (status = 401, description = "Not signed in.", body = ErrorEnvelope),
        (status = 403, description = "An API key without the `write` scope.", body = ErrorEnvelope),
        (status = 404, description = "No such project visible to the caller.", body = ErrorEnvelope),
        (status = 409, description = "A file stands where a directory is needed, or the reverse, or the path names something other than a regular file (`conflict`).", body = ErrorEnvelope),
        (status = 412, description = "`If-Match` or `If-None-Match` does not hold (`precondition_failed`); nothing changed.", body = ErrorEnvelope),
        (status = 413, description = "The file is larger than `AGENTD_MAX_FILE_BYTES`, the project would exceed `AGENTD_MAX_PROJECT_BYTES`, or the body exceeds `AGENTD_REQUEST_BODY_MAX_BYTES` (`payload_too_large`).", body = ErrorEnvelope),
        (status = 415, description = "The body is not JSON.", body = ErrorEnvelope),
        (status = 422, description = "The body is invalid (a missing or unknown field, content that is not valid base64), the project would have more files than `AGENTD_MAX_PROJECT_FILES`, or the id is not a UUID (`validation_error`).", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
pub(crate) async fn create_file(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiPath(id): ApiPath<ProjectId>,
    request: Request,
) -> ApiResult<Response> {
    let (_, workspace) = open(&state, &caller, id).await?;
    let precondition = precondition(request.headers())?;
    let body: WriteFileRequest = read_json(request).await?;
    let path = WorkspacePath::parse(&body.path)?;
    let content = match body.encoding.unwrap_or(ContentEncoding::Utf8) {
        ContentEncoding::Utf8 => body.content.into_bytes(),
        ContentEncoding::Base64 => STANDARD
            .decode(body.content.as_bytes())
            .map_err(|_| ApiError::invalid("content", "is not valid base64 (standard, padded)"))?,
    };
    let outcome =
        workspace.write(&path, content, precondition, Author::User(caller.user_id)).await?;
    Ok(write_answer(outcome))
}

/// Delete a file.
#[utoipa::path(
    delete, path = "/v1/projects/{id}/files/{path}", tag = "files", operation_id = "delete_file",
    params(
        ("id" = String, Path, description = "The project's id."),
        ("path" = String, Path, description = "The file's path in the workspace, `/`-separated, percent-encoded once."),
        ("If-Match" = Option<String>, Header, description = "Delete only if the file's ETag is this one (or, with `*`, if it exists)."),
    ),
    responses(
        (status = 200, description = "Deleted; the project's new revision.", body = FileDeleteResponse),
        (status = 400, description = "The path is not acceptable (`invalid_path`), a precondition header is malformed (`bad_request`), or the project's directory is no longer inside an allowed root (`workspace_not_allowed`).", body = ErrorEnvelope),
        (status = 401, description = "Not signed in.", body = ErrorEnvelope),
        (status = 403, description = "An API key without the `write` scope.", body = ErrorEnvelope),
        (status = 404, description = "No such project visible to the caller, or no file at the path.", body = ErrorEnvelope),
        (status = 409, description = "The path names something other than a regular file (`conflict`).", body = ErrorEnvelope),
        (status = 412, description = "`If-Match` does not hold (`precondition_failed`); nothing changed.", body = ErrorEnvelope),
        (status = 422, description = "The project id is not a UUID.", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
pub(crate) async fn delete_file(
    State(state): State<AppState>,
    Caller(caller): Caller,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> ApiResult<ApiJson<FileDeleteResponse>> {
    let (id, raw_path) = file_target(&uri)?;
    let path = WorkspacePath::from_url(raw_path)?;
    let (_, workspace) = open(&state, &caller, id).await?;
    let precondition = precondition(&headers)?;
    let outcome = workspace.delete(&path, precondition, Author::User(caller.user_id)).await?;
    Ok(ApiJson(FileDeleteResponse { path: path.to_string(), revision: outcome.revision }))
}

/// The project's changes after a revision, oldest first.
#[utoipa::path(
    get, path = "/v1/projects/{id}/changes", tag = "files", operation_id = "list_changes",
    params(("id" = String, Path, description = "The project's id."), ChangesQuery),
    responses(
        (status = 200, description = "A page of changes in (revision, path) order.", body = ListResponse<ChangeResponse>),
        (status = 401, description = "Not signed in.", body = ErrorEnvelope),
        (status = 403, description = "An API key without the `read` scope.", body = ErrorEnvelope),
        (status = 404, description = "No such project visible to the caller.", body = ErrorEnvelope),
        (status = 422, description = "`since` is outside 0 to the current revision, `limit` outside 1–100, the cursor not from this list, or the id not a UUID (`validation_error`).", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
pub(crate) async fn list_changes(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiPath(id): ApiPath<ProjectId>,
    ApiQuery(query): ApiQuery<ChangesQuery>,
) -> ApiResult<ApiJson<ListResponse<ChangeResponse>>> {
    let page: PageRequest<ChangeCursorText> =
        page_request(&PageQuery { limit: query.limit, cursor: query.cursor })?;
    let page = PageRequest { limit: page.limit, after: page.after.map(|c| c.0) };
    let project = state.store.project(caller.owner_filter(), id).await?;
    let page = state.workspaces.changes(&project, query.since.unwrap_or(0), page).await?;
    Ok(ApiJson(ListResponse {
        data: page.items.into_iter().map(change_response).collect(),
        next_cursor: page.next.map(|c| ChangeCursorText(c).to_string()),
    }))
}

/// A unified diff of the project's files between two revisions: `text/x-diff` by default, or
/// JSON with `Accept: application/json`.
#[utoipa::path(
    get, path = "/v1/projects/{id}/diff", tag = "files", operation_id = "diff_project",
    params(("id" = String, Path, description = "The project's id."), DiffQuery),
    responses(
        (status = 200, description = "The unified diff (git style); empty when nothing differs.",
            content(
                (String = "text/x-diff"),
                (DiffResponse = "application/json"),
            ),
        ),
        (status = 401, description = "Not signed in.", body = ErrorEnvelope),
        (status = 403, description = "An API key without the `read` scope.", body = ErrorEnvelope),
        (status = 404, description = "No such project visible to the caller.", body = ErrorEnvelope),
        (status = 422, description = "`from` or `to` is outside 0 to the current revision, or the id is not a UUID (`validation_error`).", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
pub(crate) async fn diff_project(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiPath(id): ApiPath<ProjectId>,
    ApiQuery(query): ApiQuery<DiffQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let project = state.store.project(caller.owner_filter(), id).await?;
    let from = query.from.unwrap_or(0);
    let to = query.to.unwrap_or(project.revision);
    let diff = state.workspaces.diff(&project, from, to).await?;
    if wants_json(&headers, "text/x-diff") {
        return Ok(ApiJson(DiffResponse { from, to, diff }).into_response());
    }
    let media = HeaderValue::from_static("text/x-diff; charset=utf-8");
    Ok(([(header::CONTENT_TYPE, media)], diff).into_response())
}

/// Put every file changed after a revision back to its content at that revision, as one new
/// revision.
#[utoipa::path(
    post, path = "/v1/projects/{id}/revert", tag = "files", operation_id = "revert_project",
    params(("id" = String, Path, description = "The project's id.")),
    request_body = RevertRequest,
    responses(
        (status = 200, description = "Reverted; the new revision and the changes it made (none, and the current revision, when nothing differed).", body = RevertResponse),
        (status = 400, description = "The project's directory is no longer inside an allowed root (`workspace_not_allowed`).", body = ErrorEnvelope),
        (status = 401, description = "Not signed in.", body = ErrorEnvelope),
        (status = 403, description = "An API key without the `write` scope.", body = ErrorEnvelope),
        (status = 404, description = "No such project visible to the caller.", body = ErrorEnvelope),
        (status = 409, description = "A file restored would stand where a directory now is, or the reverse (`conflict`).", body = ErrorEnvelope),
        (status = 413, description = "The restored files would exceed `AGENTD_MAX_FILE_BYTES` or `AGENTD_MAX_PROJECT_BYTES` (`payload_too_large`).", body = ErrorEnvelope),
        (status = 415, description = "The body is not JSON.", body = ErrorEnvelope),
        (status = 422, description = "`to` is outside 0 to the current revision, the restored files would exceed `AGENTD_MAX_PROJECT_FILES`, the body is invalid, or the id is not a UUID (`validation_error`).", body = ErrorEnvelope),
    ),
    security(("bearer" = []), ("api_key" = [])),
)]
pub(crate) async fn revert_project(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiPath(id): ApiPath<ProjectId>,
    request: Request,
) -> ApiResult<ApiJson<RevertResponse>> {
    let (_, workspace) = open(&state, &caller, id).await?;
    let body: RevertRequest = read_json(request).await?;
    let outcome = workspace.revert(body.to, Author::User(caller.user_id)).await?;
    Ok(ApiJson(RevertResponse {
        revision: outcome.revision,
        changes: outcome.changes.into_iter().map(change_response).collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn preconditions_come_from_if_match_and_if_none_match() {
        let hash = ContentHash::of(b"x");
        let tag: &'static str = Box::leak(hash.to_etag().into_boxed_str());
        assert_eq!(precondition(&headers(&[])).unwrap(), Precondition::None);
        assert_eq!(precondition(&headers(&[("if-match", "*")])).unwrap(), Precondition::IfExists);
        assert_eq!(
            precondition(&headers(&[("if-none-match", "*")])).unwrap(),
            Precondition::IfNotExists
        );
        assert_eq!(
            precondition(&headers(&[("if-match", tag)])).unwrap(),
            Precondition::IfMatch(hash)
        );
    }

    #[test]
    fn weak_tags_fail_the_precondition_and_malformed_headers_are_bad_requests() {
        let weak = headers(&[("if-match", "W/\"abc\"")]);
        assert!(matches!(precondition(&weak), Err(ApiError::PreconditionFailed(_))));
        for bad in [
            vec![("if-match", "abc")],
            vec![("if-match", "\"abc\"")],
            vec![("if-none-match", "\"abc\"")],
            vec![("if-match", "*"), ("if-none-match", "*")],
            vec![("if-match", "*"), ("if-match", "*")],
        ] {
            assert!(
                matches!(precondition(&headers(&bad)), Err(ApiError::BadRequest(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn json_is_chosen_only_when_accept_prefers_it() {
        let raw = "application/octet-stream";
        assert!(!wants_json(&headers(&[]), raw));
        assert!(!wants_json(&headers(&[("accept", "*/*")]), raw));
        assert!(!wants_json(&headers(&[("accept", raw)]), raw));
        assert!(wants_json(&headers(&[("accept", "application/json")]), raw));
        assert!(wants_json(&headers(&[("accept", "Application/JSON; charset=utf-8")]), raw));
        assert!(wants_json(&headers(&[("accept", "application/json, */*;q=0.1")]), raw));
        assert!(!wants_json(&headers(&[("accept", "application/json;q=0")]), raw));
        assert!(!wants_json(
            &headers(&[("accept", "application/json;q=0.5, application/octet-stream")]),
            raw
        ));
    }

    #[test]
    fn media_types_come_from_the_name_and_the_content() {
        let p = |s: &str| WorkspacePath::parse(s).unwrap();
        assert_eq!(media_type(&p("a.png"), &[0x89, 0x50, 0]), "image/png");
        assert_eq!(media_type(&p("a.txt"), b"hi"), "text/plain; charset=utf-8");
        assert_eq!(media_type(&p("README"), b"hi"), "text/plain; charset=utf-8");
        assert_eq!(media_type(&p("blob"), &[0xff, 0]), "application/octet-stream");
        assert_eq!(media_type(&p("a.txt"), &[0xff]), "text/plain");
        assert_eq!(media_type(&p("src/app.ts"), b"let x = 1;"), "text/plain; charset=utf-8");
        assert_eq!(media_type(&p("src/main.rs"), b"fn main() {}"), "text/x-rust; charset=utf-8");
        assert_eq!(media_type(&p("package.json"), b"{}"), "application/json");
        assert_eq!(media_type(&p("logo.svg"), b"<svg/>"), "image/svg+xml");
    }

    #[test]
    fn cursors_round_trip_and_refuse_anything_else() {
        let path = WorkspacePath::parse("dir/a b&c+d.txt").unwrap();
        let text = PathCursor(path.clone()).to_string();
        assert!(text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(text.parse::<PathCursor>().map(|c| c.0), Ok(path.clone()));
        let change = ChangeCursor { revision: 7, path };
        let text = ChangeCursorText(change.clone()).to_string();
        assert_eq!(text.parse::<ChangeCursorText>().map(|c| c.0), Ok(change));
        assert!("zzz".parse::<PathCursor>().is_err());
        assert!(URL_SAFE_NO_PAD.encode("../x").parse::<PathCursor>().is_err());
        assert!(URL_SAFE_NO_PAD.encode("x:a").parse::<ChangeCursorText>().is_err());
    }

    #[test]
    fn file_urls_yield_the_id_and_the_raw_path() {
        let id = ProjectId::new();
        let uri: Uri = format!("/v1/projects/{id}/files/a/%2e%2e/b?x=1").parse().unwrap();
        let (got, raw) = file_target(&uri).unwrap();
        assert_eq!((got, raw), (id, "a/%2e%2e/b"));
        let bad: Uri = "/v1/projects/nope/files/a".parse().unwrap();
        assert!(matches!(file_target(&bad), Err(ApiError::Validation(_))));
    }
}
