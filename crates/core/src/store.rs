//! The store traits: what the domain needs from persistence.
//!
//! One implementation per database lives in `agentd-store`; both pass the same contract suite.
//! Queries that read owned resources take the owner, so tenancy is enforced by construction.

use async_trait::async_trait;

use time::OffsetDateTime;

use crate::auth::{ApiKey, Lockout, NewApiKey, RefreshOutcome, Session};
use crate::page::{Page, PageRequest};
use crate::project::{NewProject, Project, ProjectFilter, ProjectPatch};
use crate::user::{NewUser, User, UserPatch};
use crate::workspace::{
    Author, Change, ChangeCursor, ContentHash, DeleteOutcome, FileContent, FileEntry, FileWrite,
    NewChange, Precondition, RevertOutcome, WorkspaceLimits, WorkspaceResult, WriteOutcome,
};
use crate::workspace_path::WorkspacePath;
use crate::{ApiKeyId, ProjectId, SessionId, StoreResult, UserId};

/// The whole store, as the application holds it.
pub trait Store:
    Health
    + UserStore
    + SessionStore
    + ApiKeyStore
    + LockoutStore
    + ProjectStore
    + FileStore
    + std::fmt::Debug
{
}

impl<T> Store for T where
    T: Health
        + UserStore
        + SessionStore
        + ApiKeyStore
        + LockoutStore
        + ProjectStore
        + FileStore
        + std::fmt::Debug
{
}

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
    /// Applies `patch` to the user and returns the result.
    async fn update_user(&self, id: UserId, patch: UserPatch) -> StoreResult<User>;
}

/// Signed-in sessions and their rotating refresh tokens.
///
/// Refresh tokens are stored as hashes only. Each is single-use: presenting one rotates it, and
/// presenting one that was already used revokes its whole session (the token was stolen, or a
/// client is misbehaving; either way the family is no longer trusted).
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Starts a session for `user_id` with its first refresh token.
    async fn create_session(
        &self,
        user_id: UserId,
        refresh_hash: &[u8],
        refresh_expires_at: OffsetDateTime,
    ) -> StoreResult<Session>;
    /// Presents the refresh token with hash `token_hash`: when it is valid it is marked used and
    /// `new_hash` becomes the session's next token, atomically.
    async fn rotate_refresh_token(
        &self,
        token_hash: &[u8],
        new_hash: &[u8],
        new_expires_at: OffsetDateTime,
    ) -> StoreResult<RefreshOutcome>;
    /// The session and its user, for authenticating an access token.
    async fn session_with_user(&self, id: SessionId) -> StoreResult<(Session, User)>;
    /// Revokes a session (idempotent).
    async fn revoke_session(&self, id: SessionId) -> StoreResult<()>;
    /// Revokes the session a refresh token belongs to, if the token is known.
    async fn revoke_session_of_token(&self, token_hash: &[u8]) -> StoreResult<Option<SessionId>>;
    /// Revokes every session of a user (when they are disabled or change password).
    async fn revoke_user_sessions(&self, user_id: UserId) -> StoreResult<()>;
}

/// API keys, stored as hashes.
#[async_trait]
pub trait ApiKeyStore: Send + Sync {
    /// Stores a new key.
    async fn create_api_key(&self, new: NewApiKey) -> StoreResult<ApiKey>;
    /// The key with this id, whoever owns it (for authentication only).
    async fn api_key(&self, id: ApiKeyId) -> StoreResult<ApiKey>;
    /// The keys `owner` owns (all when `None`), newest first, revoked ones excluded.
    async fn list_api_keys(
        &self,
        owner: Option<UserId>,
        page: PageRequest<ApiKeyId>,
    ) -> StoreResult<Page<ApiKey, ApiKeyId>>;
    /// Revokes a key `owner` owns (any key when `None`); `NotFound` otherwise.
    async fn revoke_api_key(&self, owner: Option<UserId>, id: ApiKeyId) -> StoreResult<()>;
    /// Records a use at `at`, unless one was recorded after `unless_after` (to keep writes rare).
    async fn touch_api_key(
        &self,
        id: ApiKeyId,
        at: OffsetDateTime,
        unless_after: OffsetDateTime,
    ) -> StoreResult<()>;
}

/// Failed sign-in counters, shared by every node through the database.
#[async_trait]
pub trait LockoutStore: Send + Sync {
    /// The counter for `key` (zero when none).
    async fn lockout(&self, key: &str) -> StoreResult<Lockout>;
    /// Adds a failure to `key`'s counter and returns the new count.
    async fn record_failure(&self, key: &str) -> StoreResult<u32>;
    /// Refuses sign-in for `key` until `until`.
    async fn lock_until(&self, key: &str, until: OffsetDateTime) -> StoreResult<()>;
    /// Forgets `key`'s failures (after a successful sign-in).
    async fn clear_lockout(&self, key: &str) -> StoreResult<()>;
}

/// Projects, always read through their owner.
#[async_trait]
pub trait ProjectStore: Send + Sync {
    /// Stores a new project owned by `new.owner_id`.
    async fn create_project(&self, new: NewProject) -> StoreResult<Project>;
    /// The project with this id if `owner` owns it (any project when `owner` is `None`, for
    /// admins); otherwise `NotFound`, whether or not it exists.
    async fn project(&self, owner: Option<UserId>, id: ProjectId) -> StoreResult<Project>;
    /// The projects `owner` owns (all when `None`) that pass `filter`, newest first.
    async fn list_projects(
        &self,
        owner: Option<UserId>,
        filter: ProjectFilter,
        page: PageRequest<ProjectId>,
    ) -> StoreResult<Page<Project, ProjectId>>;
    /// Applies a validated patch to the project if `owner` owns it (any when `None`) and returns
    /// the result; an empty patch returns the project unchanged. `NotFound` otherwise.
    async fn update_project(
        &self,
        owner: Option<UserId>,
        id: ProjectId,
        patch: ProjectPatch,
    ) -> StoreResult<Project>;
    /// Deletes the project with its files, blobs and change log if `owner` owns it (any when
    /// `None`); `NotFound` otherwise. A directory workspace's directory is left alone.
    async fn delete_project(&self, owner: Option<UserId>, id: ProjectId) -> StoreResult<()>;
}

/// Managed files and the revision log of every project.
///
/// Callers have already checked that the principal may see `project` (through
/// [`ProjectStore::project`]). A change to a project that has gone since fails with
/// `NotFound { entity: "project" }`; reads find no files.
/// Every mutation runs in one transaction that locks the project's row: preconditions and
/// limits are checked against the state the change applies to, so concurrent writers cannot
/// get past either.
#[async_trait]
pub trait FileStore: Send + Sync + std::fmt::Debug {
    /// Managed files under `prefix` (all when `None`) in path order, after `page.after`.
    async fn list_files(
        &self,
        project: ProjectId,
        prefix: Option<&WorkspacePath>,
        page: PageRequest<WorkspacePath>,
    ) -> StoreResult<Page<FileEntry, WorkspacePath>>;
    /// A managed file with its content; `FileNotFound` when there is none.
    async fn read_file(
        &self,
        project: ProjectId,
        path: &WorkspacePath,
    ) -> WorkspaceResult<FileContent>;
    /// Creates or replaces a managed file: checks the precondition, that no file stands where a
    /// directory is needed (or the reverse), and the limits; stores the blob; records the change
    /// as a new revision. Identical content changes nothing.
    async fn write_file(
        &self,
        project: ProjectId,
        write: FileWrite,
        limits: WorkspaceLimits,
    ) -> WorkspaceResult<WriteOutcome>;
    /// Deletes a managed file if the precondition holds, recording the change.
    async fn delete_file(
        &self,
        project: ProjectId,
        path: &WorkspacePath,
        precondition: Precondition,
        author: Author,
    ) -> WorkspaceResult<DeleteOutcome>;
    /// Restores the managed files changed after revision `to` to their content at `to`, as one
    /// new revision (see `revision::revert_targets`).
    async fn revert_files(
        &self,
        project: ProjectId,
        to: i64,
        author: Author,
        limits: WorkspaceLimits,
    ) -> WorkspaceResult<RevertOutcome>;
    /// Records changes made outside the database (to a directory workspace) as one new
    /// revision, keeping both contents as blobs. Returns the new revision, or the current one
    /// when `changes` is empty.
    async fn record_changes(
        &self,
        project: ProjectId,
        changes: Vec<NewChange>,
        author: Author,
    ) -> StoreResult<i64>;
    /// The project's current revision.
    async fn revision(&self, project: ProjectId) -> StoreResult<i64>;
    /// Changes with a revision above `since`, in (revision, path) order, after `page.after`.
    async fn list_changes(
        &self,
        project: ProjectId,
        since: i64,
        page: PageRequest<ChangeCursor>,
    ) -> StoreResult<Page<Change, ChangeCursor>>;
    /// Every change with `after < revision <= up_to`, in (revision, path) order.
    async fn changes_between(
        &self,
        project: ProjectId,
        after: i64,
        up_to: i64,
    ) -> StoreResult<Vec<Change>>;
    /// The content with this hash in the project's blob store; `NotFound { entity: "blob" }`.
    async fn blob(&self, project: ProjectId, sha256: &ContentHash) -> StoreResult<Vec<u8>>;
}
