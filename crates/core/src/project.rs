//! Projects: the unit of ownership for files, runs and conversations.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::{ProjectId, UserId};

/// Whether a project is in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProjectStatus {
    /// In use.
    Active,
    /// Kept, but no longer worked on.
    Archived,
}

impl ProjectStatus {
    /// The stored and wire name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Archived => "archived",
        }
    }
}

impl fmt::Display for ProjectStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status name that is not `active` or `archived`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown project status {0:?}: expected active or archived")]
pub struct UnknownProjectStatus(pub String);

impl FromStr for ProjectStatus {
    type Err = UnknownProjectStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "active" => Ok(Self::Active),
            "archived" => Ok(Self::Archived),
            other => Err(UnknownProjectStatus(other.to_owned())),
        }
    }
}

/// Where a project's files live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WorkspaceKind {
    /// In the database, one row per file: every node sees them. The default.
    Managed,
    /// An existing directory on the server, inside one of the operator's allowed roots.
    Directory {
        /// The directory's canonical absolute path, resolved when the project was created.
        root: String,
    },
}

impl WorkspaceKind {
    /// `managed` or `directory`: the stored and wire name of the kind.
    #[must_use]
    pub const fn as_str(&self) -> &'static str {
        match self {
            Self::Managed => "managed",
            Self::Directory { .. } => "directory",
        }
    }
}

/// A stored project.
#[derive(Debug, Clone, PartialEq)]
pub struct Project {
    /// The project's id.
    pub id: ProjectId,
    /// The user who owns it.
    pub owner_id: UserId,
    /// A short name.
    pub title: String,
    /// A longer description.
    pub description: Option<String>,
    /// A client-defined label of how the project is worked on; agentd stores it and does not
    /// interpret it. Set at creation.
    pub mode: String,
    /// The languages, frameworks and tools the project uses, as the client describes them.
    pub tech_stack: Option<serde_json::Value>,
    /// Per-project settings: a JSON object.
    pub settings: serde_json::Map<String, serde_json::Value>,
    /// Active or archived.
    pub status: ProjectStatus,
    /// Where the files live. Set at creation.
    pub workspace: WorkspaceKind,
    /// The revision number; every change to the project's files increments it.
    pub revision: i64,
    /// When the project was created.
    pub created_at: OffsetDateTime,
    /// When the project was last changed.
    pub updated_at: OffsetDateTime,
}

/// The mode a project gets when the client names none.
pub const DEFAULT_MODE: &str = "default";
/// The longest title, in characters.
pub const MAX_TITLE_CHARS: usize = 200;
/// The longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 10_000;
/// The longest mode, in bytes.
pub const MAX_MODE_BYTES: usize = 64;
/// The largest `tech_stack` and `settings`, each serialised as JSON, in bytes.
pub const MAX_JSON_FIELD_BYTES: usize = 64 * 1024;

/// What it takes to create a project.
#[derive(Debug, Clone, PartialEq)]
pub struct NewProject {
    /// The owner.
    pub owner_id: UserId,
    /// A short name.
    pub title: String,
    /// A longer description.
    pub description: Option<String>,
    /// The mode; [`DEFAULT_MODE`] when the client names none.
    pub mode: String,
    /// The tech stack.
    pub tech_stack: Option<serde_json::Value>,
    /// Initial settings.
    pub settings: serde_json::Map<String, serde_json::Value>,
    /// Where the files live. A directory root must already be validated against the allowed
    /// roots (see `agentd-workspace`).
    pub workspace: WorkspaceKind,
}

impl NewProject {
    /// A managed project with only a title: the defaults for everything else.
    #[must_use]
    pub fn managed(owner_id: UserId, title: impl Into<String>) -> Self {
        Self {
            owner_id,
            title: title.into(),
            description: None,
            mode: DEFAULT_MODE.to_owned(),
            tech_stack: None,
            settings: serde_json::Map::new(),
            workspace: WorkspaceKind::Managed,
        }
    }

    /// Checks every field, reporting each problem (the API answers 422 with these as details).
    ///
    /// # Errors
    /// One [`FieldProblem`] per invalid field.
    pub fn validate(&self) -> Result<(), Vec<FieldProblem>> {
        let mut problems = Vec::new();
        check_title(&self.title, &mut problems);
        check_description(self.description.as_deref(), &mut problems);
        check_mode(&self.mode, &mut problems);
        check_json("tech_stack", self.tech_stack.as_ref(), &mut problems);
        check_settings(&self.settings, &mut problems);
        finish(problems)
    }
}

/// A change to a project's editable fields: the only fields a `PATCH` may touch. A field left
/// `None` is unchanged.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProjectPatch {
    /// A new title.
    pub title: Option<String>,
    /// A new description; `Some(None)` clears it.
    pub description: Option<Option<String>>,
    /// A new status.
    pub status: Option<ProjectStatus>,
    /// A new tech stack; `Some(None)` clears it.
    pub tech_stack: Option<Option<serde_json::Value>>,
    /// New settings, replacing the old ones whole.
    pub settings: Option<serde_json::Map<String, serde_json::Value>>,
}

impl ProjectPatch {
    /// Whether the patch changes nothing.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }

    /// Checks every field present, reporting each problem.
    ///
    /// # Errors
    /// One [`FieldProblem`] per invalid field.
    pub fn validate(&self) -> Result<(), Vec<FieldProblem>> {
        let mut problems = Vec::new();
        if let Some(title) = &self.title {
            check_title(title, &mut problems);
        }
        if let Some(description) = &self.description {
            check_description(description.as_deref(), &mut problems);
        }
        if let Some(tech_stack) = &self.tech_stack {
            check_json("tech_stack", tech_stack.as_ref(), &mut problems);
        }
        if let Some(settings) = &self.settings {
            check_settings(settings, &mut problems);
        }
        finish(problems)
    }

    /// The project with this patch applied (what the store writes).
    #[must_use]
    pub fn apply(&self, mut project: Project) -> Project {
        if let Some(title) = &self.title {
            project.title.clone_from(title);
        }
        if let Some(description) = &self.description {
            project.description.clone_from(description);
        }
        if let Some(status) = self.status {
            project.status = status;
        }
        if let Some(tech_stack) = &self.tech_stack {
            project.tech_stack.clone_from(tech_stack);
        }
        if let Some(settings) = &self.settings {
            project.settings.clone_from(settings);
        }
        project
    }
}

/// Which projects a listing returns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProjectFilter {
    /// Only projects with this status; all when `None`.
    pub status: Option<ProjectStatus>,
}

/// One problem with one input field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldProblem {
    /// The field's wire name (`title`, `settings`).
    pub field: &'static str,
    /// What is wrong, for humans.
    pub message: String,
}

impl FieldProblem {
    fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self { field, message: message.into() }
    }
}

fn finish(problems: Vec<FieldProblem>) -> Result<(), Vec<FieldProblem>> {
    if problems.is_empty() { Ok(()) } else { Err(problems) }
}

fn check_title(title: &str, problems: &mut Vec<FieldProblem>) {
    if title.trim().is_empty() {
        problems.push(FieldProblem::new("title", "must not be empty"));
    } else if title.chars().count() > MAX_TITLE_CHARS {
        problems.push(FieldProblem::new(
            "title",
            format!("must be at most {MAX_TITLE_CHARS} characters"),
        ));
    } else if title.chars().any(char::is_control) {
        problems.push(FieldProblem::new("title", "must not contain control characters"));
    }
}

fn check_description(description: Option<&str>, problems: &mut Vec<FieldProblem>) {
    if description.is_some_and(|d| d.chars().count() > MAX_DESCRIPTION_CHARS) {
        problems.push(FieldProblem::new(
            "description",
            format!("must be at most {MAX_DESCRIPTION_CHARS} characters"),
        ));
    }
}

fn check_mode(mode: &str, problems: &mut Vec<FieldProblem>) {
    let valid = !mode.is_empty()
        && mode.len() <= MAX_MODE_BYTES
        && mode
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if !valid {
        problems.push(FieldProblem::new(
            "mode",
            format!("must be 1 to {MAX_MODE_BYTES} characters of a-z, 0-9, `_` and `-`"),
        ));
    }
}

fn check_json(
    field: &'static str,
    value: Option<&serde_json::Value>,
    problems: &mut Vec<FieldProblem>,
) {
    let size = value.map_or(0, |v| serde_json::to_vec(v).map_or(usize::MAX, |b| b.len()));
    if size > MAX_JSON_FIELD_BYTES {
        problems.push(FieldProblem::new(
            field,
            format!("must be at most {MAX_JSON_FIELD_BYTES} bytes of JSON"),
        ));
    }
}

fn check_settings(
    settings: &serde_json::Map<String, serde_json::Value>,
    problems: &mut Vec<FieldProblem>,
) {
    let value = serde_json::Value::Object(settings.clone());
    check_json("settings", Some(&value), problems);
    if let Err(invalid) = crate::check::ChecksSettings::from_project_settings(settings) {
        problems.extend(invalid.into_iter().map(|i| FieldProblem::new(i.path, i.message)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(r: Result<(), Vec<FieldProblem>>) -> Vec<&'static str> {
        r.err().unwrap_or_default().into_iter().map(|p| p.field).collect()
    }

    #[test]
    fn a_new_project_with_defaults_is_valid() {
        assert_eq!(NewProject::managed(UserId::new(), "demo").validate(), Ok(()));
    }

    #[test]
    fn every_invalid_field_is_reported_at_once() {
        let mut new = NewProject::managed(UserId::new(), "   ");
        new.description = Some("d".repeat(MAX_DESCRIPTION_CHARS + 1));
        new.mode = "Not A Mode".into();
        new.tech_stack = Some(serde_json::Value::String("x".repeat(MAX_JSON_FIELD_BYTES)));
        let mut big = serde_json::Map::new();
        big.insert("k".into(), serde_json::Value::String("v".repeat(MAX_JSON_FIELD_BYTES)));
        new.settings = big;
        assert_eq!(
            fields(new.validate()),
            ["title", "description", "mode", "tech_stack", "settings"]
        );
    }

    #[test]
    fn titles_are_bounded_and_single_line() {
        let long = NewProject::managed(UserId::new(), "t".repeat(MAX_TITLE_CHARS + 1));
        assert_eq!(fields(long.validate()), ["title"]);
        let exact = NewProject::managed(UserId::new(), "é".repeat(MAX_TITLE_CHARS));
        assert_eq!(exact.validate(), Ok(()));
        let control = NewProject::managed(UserId::new(), "a\u{0}b");
        assert_eq!(fields(control.validate()), ["title"]);
    }

    #[test]
    fn a_patch_checks_only_what_it_sets_and_applies_only_that() {
        let patch = ProjectPatch { title: Some(String::new()), ..ProjectPatch::default() };
        assert_eq!(fields(patch.validate()), ["title"]);
        assert!(ProjectPatch::default().is_empty());
        assert_eq!(ProjectPatch::default().validate(), Ok(()));

        let now = OffsetDateTime::UNIX_EPOCH;
        let project = Project {
            id: ProjectId::new(),
            owner_id: UserId::new(),
            title: "old".into(),
            description: Some("keep?".into()),
            mode: DEFAULT_MODE.into(),
            tech_stack: Some(serde_json::json!(["rust"])),
            settings: serde_json::Map::new(),
            status: ProjectStatus::Active,
            workspace: WorkspaceKind::Managed,
            revision: 3,
            created_at: now,
            updated_at: now,
        };
        let patch = ProjectPatch {
            title: Some("new".into()),
            description: Some(None),
            status: Some(ProjectStatus::Archived),
            ..ProjectPatch::default()
        };
        let patched = patch.apply(project.clone());
        assert_eq!(patched.title, "new");
        assert_eq!(patched.description, None);
        assert_eq!(patched.status, ProjectStatus::Archived);
        assert_eq!(patched.tech_stack, project.tech_stack);
        assert_eq!(patched.revision, 3);
    }

    #[test]
    fn a_patch_with_a_bad_checks_setting_names_the_bad_field() {
        let mut settings = serde_json::Map::new();
        settings.insert(
            "checks".into(),
            serde_json::json!({"test": {"command": "cargo test", "timeout_seconds": "soon"}}),
        );
        let patch = ProjectPatch { settings: Some(settings), ..ProjectPatch::default() };
        assert_eq!(fields(patch.validate()), ["settings.checks.test.timeout_seconds"]);
    }
}
