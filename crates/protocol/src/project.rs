//! Projects: create, list, read, change and delete.
//!
//! A project owns a workspace (its files) of one of two kinds, chosen at creation and never
//! changed: `managed` (files in the database) or `directory` (an existing directory on the server,
//! inside a root the operator allows).

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

/// Whether a project is in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProjectStatus {
    /// In use (every new project).
    Active,
    /// Kept, but no longer worked on.
    Archived,
}

/// The workspace a new project gets: `{"kind": "managed"}` (the default) or
/// `{"kind": "directory", "path": "/srv/agentd/ws/demo"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum WorkspaceRequest {
    /// Files live in the database; every node of a deployment sees them. (A struct variant, so
    /// that unknown fields are refused here too.)
    Managed {},
    /// An existing directory on the server. Its real path must exist, be a directory and lie
    /// inside one of `AGENTD_WORKSPACE_ALLOWED_ROOTS`, else 400 `workspace_not_allowed`.
    Directory {
        /// The directory's absolute path on the server.
        path: String,
    },
}

/// `POST /v1/projects`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProjectRequest {
    /// A short name, 1–200 characters, one line.
    pub title: String,
    /// A longer description, up to 10,000 characters.
    #[serde(default)]
    pub description: Option<String>,
    /// A client-defined label of how the project is worked on (1–64 of `a-z 0-9 _ -`; default
    /// `default`). agentd stores it and does not interpret it.
    #[serde(default)]
    pub mode: Option<String>,
    /// The languages, frameworks and tools the project uses: any JSON, up to 64 KiB.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub tech_stack: Option<Value>,
    /// Where the files live; `managed` when absent.
    #[serde(default)]
    pub workspace: Option<WorkspaceRequest>,
}

/// `PATCH /v1/projects/{id}`: any subset of these fields, and only these (any other field,
/// such as `id`, `owner_id`, `mode`, `workspace` or `revision`, is a 422). `null` clears
/// `description` and `tech_stack`, and empties `settings`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProjectRequest {
    /// A new title.
    #[serde(default)]
    pub title: Option<String>,
    /// A new description, or `null` to clear it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, nullable)]
    pub description: Option<Option<String>>,
    /// `active` or `archived`.
    #[serde(default)]
    pub status: Option<ProjectStatus>,
    /// A new tech stack, or `null` to clear it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>, nullable)]
    pub tech_stack: Option<Option<Value>>,
    /// New settings (a JSON object, up to 64 KiB), replacing the old ones whole; `null` empties
    /// them.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>, nullable)]
    pub settings: Option<Option<Map<String, Value>>>,
}

/// Tells a field that is absent (`None`, through `#[serde(default)]`) from one that is `null`
/// (`Some(None)`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// A project's workspace as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WorkspaceResponse {
    /// `managed` or `directory`.
    pub kind: String,
    /// For a directory workspace, its real path on the server; shown only to the project's owner
    /// and to admins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// A project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ProjectResponse {
    /// The project's id.
    pub id: String,
    /// The user who owns it (who created it).
    pub owner_id: String,
    /// A short name.
    pub title: String,
    /// A longer description.
    pub description: Option<String>,
    /// The client-defined mode.
    pub mode: String,
    /// The tech stack, as the client described it.
    #[schema(value_type = Option<Object>)]
    pub tech_stack: Option<Value>,
    /// Per-project settings: a JSON object.
    #[schema(value_type = Object)]
    pub settings: Map<String, Value>,
    /// `active` or `archived`.
    pub status: ProjectStatus,
    /// Where the files live.
    pub workspace: WorkspaceResponse,
    /// The revision number: 0 at creation, incremented by every change to the files.
    pub revision: i64,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

/// `GET /v1/projects` query parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ProjectListQuery {
    /// Items per page, 1–100 (default 50).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Only projects with this status (`active` or `archived`); all when absent.
    pub status: Option<ProjectStatus>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_patch_tells_null_from_absent() {
        let patch: UpdateProjectRequest =
            serde_json::from_value(json!({"description": null, "title": "t"})).unwrap();
        assert_eq!(patch.description, Some(None));
        assert_eq!(patch.tech_stack, None);
        assert_eq!(patch.settings, None);
        let patch: UpdateProjectRequest =
            serde_json::from_value(json!({"settings": {"a": 1}})).unwrap();
        assert_eq!(patch.settings.unwrap().unwrap()["a"], 1);
    }

    #[test]
    fn a_patch_refuses_every_field_outside_the_whitelist() {
        for field in ["id", "owner_id", "mode", "workspace", "revision", "created_at", "x"] {
            let body = json!({ field: "v" });
            assert!(serde_json::from_value::<UpdateProjectRequest>(body).is_err(), "{field}");
        }
    }

    #[test]
    fn workspaces_are_tagged_by_kind() {
        let managed: WorkspaceRequest = serde_json::from_value(json!({"kind": "managed"})).unwrap();
        assert_eq!(managed, WorkspaceRequest::Managed {});
        let dir: WorkspaceRequest =
            serde_json::from_value(json!({"kind": "directory", "path": "/srv/ws"})).unwrap();
        assert_eq!(dir, WorkspaceRequest::Directory { path: "/srv/ws".into() });
        for bad in [
            json!({"kind": "directory"}),
            json!({"kind": "cloud"}),
            json!({"kind": "managed", "path": "/x"}),
            json!("managed"),
        ] {
            assert!(serde_json::from_value::<WorkspaceRequest>(bad.clone()).is_err(), "{bad}");
        }
    }
}
