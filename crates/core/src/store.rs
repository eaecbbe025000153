//! The store traits: what the domain needs from persistence.
//!
//! One implementation per database lives in `agentd-store`; both pass the same contract suite.
//! Queries that read owned resources take the owner, so tenancy is enforced by construction.

use async_trait::async_trait;

use crate::page::{Page, PageRequest};
use crate::project::{NewProject, Project};
use crate::usage::{NewUsage, UsageBucket, UsageQuery};
use crate::user::{NewUser, User};
use crate::{ProjectId, StoreResult, UserId};

/// The whole store, as the application holds it.
pub trait Store: Health + UserStore + ProjectStore + UsageStore + std::fmt::Debug {}

impl<T> Store for T where T: Health + UserStore + ProjectStore + UsageStore + std::fmt::Debug {}

/// Reachability of the store, for readiness checks.
#[async_trait]
pub trait Health: Send + Sync {
    /// A cheap round trip to the database.
    async fn ping(&self) -> StoreResult<()>;
}

/// Users.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Stores a new user. A second user with the same (normalised) email is a `Conflict`.
    async fn create_user(&self, new: NewUser) -> StoreResult<User>;
    /// The user with this id.
    async fn user(&self, id: UserId) -> StoreResult<User>;
    /// The user with this email (normalised before the look-up).
    async fn user_by_email(&self, email: &str) -> StoreResult<User>;
    /// Users, newest first.
    async fn list_users(&self, page: PageRequest<UserId>) -> StoreResult<Page<User, UserId>>;
}

/// Projects, always read through their owner.
#[async_trait]
pub trait ProjectStore: Send + Sync {
    /// Stores a new project owned by `new.owner_id`.
    async fn create_project(&self, new: NewProject) -> StoreResult<Project>;
    /// The project with this id if `owner` owns it (any project when `owner` is `None`, for
    /// admins); otherwise `NotFound`, whether or not it exists.
    async fn project(&self, owner: Option<UserId>, id: ProjectId) -> StoreResult<Project>;
    /// The projects `owner` owns (all when `None`), newest first.
    async fn list_projects(
        &self,
        owner: Option<UserId>,
        page: PageRequest<ProjectId>,
    ) -> StoreResult<Page<Project, ProjectId>>;
}

/// The usage ledger of LLM calls.
#[async_trait]
pub trait UsageStore: Send + Sync {
    /// Appends one attempt.
    async fn record_usage(&self, usage: NewUsage) -> StoreResult<()>;
    /// Sums of the attempts in the query's days, per day, model, agent type and project,
    /// ordered by day, provider, model, agent type, then project (none first).
    async fn usage_summary(&self, query: &UsageQuery) -> StoreResult<Vec<UsageBucket>>;
}
