//! The store traits: what the domain needs from persistence.
//!
//! One implementation per database lives in `agentd-store`; both pass the same contract suite.
//! Queries that read owned resources take the owner, so tenancy is enforced by construction.

use async_trait::async_trait;

use time::OffsetDateTime;

use crate::auth::{ApiKey, Lockout, NewApiKey, RefreshOutcome, Session};
use crate::page::{Page, PageRequest};
use crate::project::{NewProject, Project};
use crate::user::{NewUser, User, UserPatch};
use crate::{ApiKeyId, ProjectId, SessionId, StoreResult, UserId};

/// The whole store, as the application holds it.
pub trait Store:
    Health + UserStore + SessionStore + ApiKeyStore + LockoutStore + ProjectStore + std::fmt::Debug
{
}

impl<T> Store for T where
    T: Health
        + UserStore
        + SessionStore
        + ApiKeyStore
        + LockoutStore
        + ProjectStore
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
    /// The projects `owner` owns (all when `None`), newest first.
    async fn list_projects(
        &self,
        owner: Option<UserId>,
        page: PageRequest<ProjectId>,
    ) -> StoreResult<Page<Project, ProjectId>>;
}
