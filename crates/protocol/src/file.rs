//! A project's files, their changes, diffs and reverts.
//!
//! File content travels in two forms. Raw: `PUT /v1/projects/{id}/files/{path}` takes the body's
//! bytes as the file, and `GET` of the same URL returns them (unless the client asks for JSON).
//! JSON: content is a string with an `encoding`, `utf-8` (the text itself) or `base64` (standard
//! alphabet, padded), so binary files fit in JSON too.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// How `content` is written in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum ContentEncoding {
    /// The content is the text itself (the file is valid UTF-8).
    #[serde(rename = "utf-8")]
    Utf8,
    /// The content is the file's bytes in standard base64, padded.
    #[serde(rename = "base64")]
    Base64,
}

/// A file as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FileResponse {
    /// The path inside the workspace, `/`-separated.
    pub path: String,
    /// The size in bytes.
    pub size: u64,
    /// The SHA-256 of the content, 64 hex digits.
    pub sha256: String,
    /// The ETag: `sha256` in double quotes. Send it back in `If-Match`.
    pub etag: String,
    /// The language detected from the path, if known (`rust`, `python`, ...).
    pub language: Option<String>,
    /// RFC 3339: when the file last changed.
    pub updated_at: String,
}

/// A file with its content (`GET /v1/projects/{id}/files/{path}` with
/// `Accept: application/json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FileContentResponse {
    /// What the listing says about the file.
    #[serde(flatten)]
    pub file: FileResponse,
    /// `utf-8` when the file is valid UTF-8 text, else `base64`.
    pub encoding: ContentEncoding,
    /// The content, written as `encoding` says.
    pub content: String,
}

/// `POST /v1/projects/{id}/files`: create or replace a file with content given in JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WriteFileRequest {
    /// The path inside the workspace, as plain text (not percent-encoded).
    pub path: String,
    /// The content, written as `encoding` says.
    pub content: String,
    /// `utf-8` (default) or `base64`.
    #[serde(default)]
    pub encoding: Option<ContentEncoding>,
    /// Accepted for compatibility and ignored: agentd detects the language from the path.
    #[serde(default)]
    pub language: Option<String>,
}

/// The answer to a write: the file as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FileWriteResponse {
    /// The file as stored.
    #[serde(flatten)]
    pub file: FileResponse,
    /// Whether the file did not exist before (the status is then 201).
    pub created: bool,
    /// The project's revision after the write (unchanged when the content was identical).
    pub revision: i64,
}

/// The answer to a delete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FileDeleteResponse {
    /// The path that was deleted.
    pub path: String,
    /// The project's revision after the delete.
    pub revision: i64,
}

/// `GET /v1/projects/{id}/files` query parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FileListQuery {
    /// Only files inside this directory (a workspace path, not percent-encoded beyond the
    /// query string's own encoding).
    pub prefix: Option<String>,
    /// Items per page, 1–100 (default 50).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// One recorded change to one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ChangeResponse {
    /// The revision the change belongs to (several files may change in one revision).
    pub revision: i64,
    /// The file.
    pub path: String,
    /// The SHA-256 before; absent when the change created the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_sha256: Option<String>,
    /// The SHA-256 after; absent when the change deleted the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_sha256: Option<String>,
    /// Who made it: `user:<id>` or `run:<id>`.
    pub author: String,
    /// RFC 3339.
    pub created_at: String,
}

/// `GET /v1/projects/{id}/changes` query parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ChangesQuery {
    /// List the changes after this revision (default 0: every change).
    pub since: Option<i64>,
    /// Items per page, 1–100 (default 50).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// `GET /v1/projects/{id}/diff` query parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DiffQuery {
    /// The revision to diff from (default 0, the empty project).
    pub from: Option<i64>,
    /// The revision to diff to (default: the current revision).
    pub to: Option<i64>,
}

/// A diff as JSON (`GET /v1/projects/{id}/diff` with `Accept: application/json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DiffResponse {
    /// The revision diffed from.
    pub from: i64,
    /// The revision diffed to.
    pub to: i64,
    /// The unified diff (git style); empty when nothing differs.
    pub diff: String,
}

/// `POST /v1/projects/{id}/revert`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevertRequest {
    /// The revision whose files to restore, 0 to the current revision.
    pub to: i64,
}

/// The answer to a revert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RevertResponse {
    /// The project's revision afterwards: a new one, or the current one when nothing differed.
    pub revision: i64,
    /// The changes the revert made, all at `revision`.
    pub changes: Vec<ChangeResponse>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn encodings_have_their_wire_names() {
        assert_eq!(serde_json::to_value(ContentEncoding::Utf8).unwrap(), json!("utf-8"));
        assert_eq!(serde_json::to_value(ContentEncoding::Base64).unwrap(), json!("base64"));
        let req: WriteFileRequest = serde_json::from_value(
            json!({"path": "a.bin", "content": "AAE=", "encoding": "base64"}),
        )
        .unwrap();
        assert_eq!(req.encoding, Some(ContentEncoding::Base64));
        assert!(
            serde_json::from_value::<WriteFileRequest>(
                json!({"path": "a", "content": "", "owner": "x"})
            )
            .is_err()
        );
    }

    #[test]
    fn file_content_flattens_the_entry() {
        let body = FileContentResponse {
            file: FileResponse {
                path: "a.txt".into(),
                size: 2,
                sha256: "ab".into(),
                etag: "\"ab\"".into(),
                language: Some("plaintext".into()),
                updated_at: "2026-01-01T00:00:00Z".into(),
            },
            encoding: ContentEncoding::Utf8,
            content: "hi".into(),
        };
        let v = serde_json::to_value(body).unwrap();
        assert_eq!(v["path"], "a.txt");
        assert_eq!(v["encoding"], "utf-8");
        assert_eq!(v["content"], "hi");
    }
}
