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

/// A stored project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    /// The project's id.
    pub id: ProjectId,
    /// The user who owns it.
    pub owner_id: UserId,
    /// A short name.
    pub title: String,
    /// A longer description.
    pub description: Option<String>,
    /// Active or archived.
    pub status: ProjectStatus,
    /// The revision number; every change to the project's files increments it.
    pub revision: i64,
    /// When the project was created.
    pub created_at: OffsetDateTime,
    /// When the project was last changed.
    pub updated_at: OffsetDateTime,
}

/// What it takes to create a project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewProject {
    /// The owner.
    pub owner_id: UserId,
    /// A short name.
    pub title: String,
    /// A longer description.
    pub description: Option<String>,
}
