//! The store traits: what the domain needs from persistence.
//!
//! One implementation per database lives in `agentd-store`; both pass the same contract suite.
//! Queries that read owned resources take the owner, so tenancy is enforced by construction.

use async_trait::async_trait;

use time::OffsetDateTime;

use crate::approval::{
    Approval, ApprovalStatus, Decided, Decision, Grant, GrantScope, NewApproval,
};
use crate::auth::{ApiKey, Lockout, NewApiKey, RefreshOutcome, Session};
use crate::conversation::{Conversation, ConversationMessage, NewConversation, NewMessage};
use crate::page::{Page, PageRequest};
use crate::project::{NewProject, Project, ProjectFilter, ProjectPatch};
use crate::run::{
    Created, Finish, Heartbeat, Lease, NewEvent, NewRun, Run, RunEvent, RunFilter, RunUsage, Step,
};
use crate::signal::Signals;
use crate::usage::{NewUsage, UsageBucket, UsageQuery};
use crate::user::{NewUser, User, UserPatch};
use crate::workspace::{
    ApplyOutcome, Author, Change, ChangeCursor, ContentHash, DeleteOutcome, FileContent, FileEdit,
    FileEntry, FileWrite, NewChange, Precondition, RevertOutcome, WorkspaceLimits, WorkspaceResult,
    WriteOutcome,
};
use crate::workspace_path::WorkspacePath;
use crate::{
    ApiKeyId, ApprovalId, ConversationId, GrantId, ProjectId, RunId, SessionId, StoreResult, UserId,
};

/// The whole store, as the application holds it.
pub trait Store:
    Health
    + UserStore
    + SessionStore
    + ApiKeyStore
    + LockoutStore
    + ProjectStore
    + FileStore
    + UsageStore
    + RunStore
    + ConversationStore
    + MaintenanceStore
    + ApprovalStore
    + Signals
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
        + UsageStore
        + RunStore
        + ConversationStore
        + MaintenanceStore
        + ApprovalStore
        + Signals
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
    /// Applies writes and deletes of managed files (distinct paths) as one new revision, or
    /// none: every precondition is checked first, then the tree, file and project limits.
    /// Returns the current revision and no paths when nothing differs.
    async fn apply_files(
        &self,
        project: ProjectId,
        edits: Vec<FileEdit>,
        author: Author,
        limits: WorkspaceLimits,
    ) -> WorkspaceResult<ApplyOutcome>;
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

/// Runs: the queue, leases, the journal and the event log.
///
/// Every status change appends its `run.status` event (and the terminal ones `run.completed`) in
/// the same transaction, so the event log is a complete history by construction. Writes a worker
/// makes carry its [`Lease`]; the store refuses them with [`StoreError::LeaseLost`](crate::StoreError::LeaseLost)
/// once the lease is no longer current.
#[async_trait]
pub trait RunStore: Send + Sync {
    /// Creates a run (queued), or finds the one created with the same idempotency key.
    async fn create_run(&self, new: NewRun) -> StoreResult<Created>;
    /// The run if `owner` owns it (any run when `None`).
    async fn run(&self, owner: Option<UserId>, id: RunId) -> StoreResult<Run>;
    /// Runs `owner` owns (all when `None`), newest first.
    async fn list_runs(
        &self,
        owner: Option<UserId>,
        filter: RunFilter,
        page: PageRequest<RunId>,
    ) -> StoreResult<Page<Run, RunId>>;
    /// Asks to cancel: a queued or waiting run is cancelled at once; a running one is flagged
    /// for its worker. Returns the run afterwards. Terminal runs are returned unchanged.
    async fn request_cancel(&self, owner: Option<UserId>, id: RunId) -> StoreResult<Run>;
    /// Takes up to `limit` claimable runs for `worker` with a lease of `lease`: each becomes
    /// `running` with its attempt incremented. At most one run per conversation is active, and a
    /// conversation's queued runs are taken in order.
    async fn claim_runs(
        &self,
        worker: &str,
        limit: u32,
        lease: std::time::Duration,
    ) -> StoreResult<Vec<Run>>;
    /// Extends the lease and records progress; says whether cancellation was requested.
    async fn heartbeat(
        &self,
        lease: &Lease,
        extend: std::time::Duration,
        progress: Option<(u8, String)>,
    ) -> StoreResult<Heartbeat>;
    /// The run's journal, in order.
    async fn steps(&self, run: RunId) -> StoreResult<Vec<Step>>;
    /// Writes journal steps (inserting each, or replacing the step with the same `seq`) together
    /// with `events` and the usage they added, in one transaction. `steps` must not repeat a
    /// `seq`.
    async fn record_steps(
        &self,
        lease: &Lease,
        steps: Vec<Step>,
        usage: Option<RunUsage>,
        events: Vec<NewEvent>,
    ) -> StoreResult<()>;
    /// [`record_steps`](Self::record_steps) of one step.
    async fn record_step(
        &self,
        lease: &Lease,
        step: Step,
        usage: Option<RunUsage>,
        events: Vec<NewEvent>,
    ) -> StoreResult<()> {
        self.record_steps(lease, vec![step], usage, events).await
    }
    /// Appends events on behalf of the worker holding `lease`.
    async fn append_events(&self, lease: &Lease, events: Vec<NewEvent>) -> StoreResult<()>;
    /// The run's events after `after`, at most `limit`.
    async fn events(&self, run: RunId, after: i64, limit: u32) -> StoreResult<Vec<RunEvent>>;
    /// Ends the worker's attempt (see [`Finish`]) and frees the lease, adding `active_ms` to
    /// the run's active time in the same transaction.
    async fn end_attempt(&self, lease: &Lease, active_ms: u64, finish: Finish) -> StoreResult<Run>;
    /// [`end_attempt`](Self::end_attempt) without active time.
    async fn finish_attempt(&self, lease: &Lease, finish: Finish) -> StoreResult<Run> {
        self.end_attempt(lease, 0, finish).await
    }
    /// Runs whose lease expired (their worker died): each goes back to the queue, or fails when
    /// its attempts are used up, or is cancelled when cancellation was requested. Returns how
    /// many were rescued.
    async fn rescue_expired(&self, max_attempts_error: &str) -> StoreResult<u32>;
    /// The ids of running runs held by `worker` whose cancellation was requested.
    async fn cancel_requested(&self, worker_prefix: &str) -> StoreResult<Vec<RunId>>;
    /// Stores a large output of the run apart from its journal; returns its id.
    async fn put_run_blob(&self, lease: &Lease, content: Vec<u8>) -> StoreResult<uuid::Uuid>;
    /// A stored output of `run`.
    async fn run_blob(&self, run: RunId, id: uuid::Uuid) -> StoreResult<Vec<u8>>;
    /// Deletes terminal runs that finished before `before` (their journal and events go too);
    /// at most `limit` per call. Returns how many were deleted.
    async fn delete_runs_before(&self, before: OffsetDateTime, limit: u32) -> StoreResult<u64>;
}

/// Conversations and their messages.
#[async_trait]
pub trait ConversationStore: Send + Sync {
    /// Creates a conversation.
    async fn create_conversation(&self, new: NewConversation) -> StoreResult<Conversation>;
    /// The conversation if `owner` owns it (any when `None`).
    async fn conversation(
        &self,
        owner: Option<UserId>,
        id: ConversationId,
    ) -> StoreResult<Conversation>;
    /// Conversations `owner` owns (all when `None`), newest first.
    async fn list_conversations(
        &self,
        owner: Option<UserId>,
        page: PageRequest<ConversationId>,
    ) -> StoreResult<Page<Conversation, ConversationId>>;
    /// Deletes a conversation `owner` owns, with its messages; its runs stay (unlinked).
    async fn delete_conversation(
        &self,
        owner: Option<UserId>,
        id: ConversationId,
    ) -> StoreResult<()>;
    /// The messages, in order.
    async fn messages(&self, id: ConversationId) -> StoreResult<Vec<ConversationMessage>>;
    /// Appends messages (written by `run`, if a run wrote them) and marks the conversation active.
    async fn append_messages(
        &self,
        id: ConversationId,
        run: Option<RunId>,
        messages: Vec<NewMessage>,
    ) -> StoreResult<()>;
    /// Deletes conversations with no activity since `before` and no active run; at most `limit`.
    async fn delete_conversations_before(
        &self,
        before: OffsetDateTime,
        limit: u32,
    ) -> StoreResult<u64>;
}

/// Approvals of risky steps, and the grants that spare asking again.
///
/// Deciding and finishing an attempt both lock the run's row first, so a decision that lands
/// while the worker is still parking the run is never lost: whichever commits second sees the
/// other, and the run goes back to the queue as soon as it has no pending approval left.
#[async_trait]
pub trait ApprovalStore: Send + Sync {
    /// Asks for an approval on behalf of the worker holding `lease` and appends
    /// `approval.requested`. Asking again for the same tool call returns the existing approval.
    async fn request_approval(&self, lease: &Lease, new: NewApproval) -> StoreResult<Approval>;
    /// The approval if `owner` owns its run (any when `None`).
    async fn approval(&self, owner: Option<UserId>, id: ApprovalId) -> StoreResult<Approval>;
    /// The approval asked for the tool call `call_id` of `run`, if any.
    async fn approval_for_call(&self, run: RunId, call_id: &str) -> StoreResult<Option<Approval>>;
    /// Approvals of runs `owner` owns (all when `None`), newest first, of one status or all.
    async fn list_approvals(
        &self,
        owner: Option<UserId>,
        status: Option<ApprovalStatus>,
        page: PageRequest<ApprovalId>,
    ) -> StoreResult<Page<Approval, ApprovalId>>;
    /// Decides a pending approval: the first decision wins and later ones get
    /// [`Decided::Already`]; a pending approval past its deadline becomes `expired` instead.
    /// Approving with a `run` or `project` scope stores a grant. A run with no pending approval
    /// left goes back to the queue. Appends `approval.decided`.
    async fn decide_approval(
        &self,
        owner: Option<UserId>,
        id: ApprovalId,
        decision: Decision,
        scope: GrantScope,
        decided_by: UserId,
        reason: Option<String>,
    ) -> StoreResult<Decided>;
    /// Expires up to `limit` pending approvals past their deadline (their runs resume and the
    /// model is told). Returns how many.
    async fn expire_approvals(&self, limit: u32) -> StoreResult<u32>;
    /// Whether a grant lets `tool` with `key` run in `run` (a run grant) or its project (a
    /// project grant) without asking.
    async fn granted(
        &self,
        owner: UserId,
        project: Option<ProjectId>,
        run: RunId,
        tool: &str,
        key: &str,
    ) -> StoreResult<bool>;
    /// Grants `owner` made (all when `None`), newest first.
    async fn list_grants(
        &self,
        owner: Option<UserId>,
        page: PageRequest<GrantId>,
    ) -> StoreResult<Page<Grant, GrantId>>;
    /// Revokes a grant `owner` made (any when `None`); `NotFound` otherwise.
    async fn delete_grant(&self, owner: Option<UserId>, id: GrantId) -> StoreResult<()>;
}

/// Coordination of periodic work between nodes.
#[async_trait]
pub trait MaintenanceStore: Send + Sync {
    /// Takes (or renews) the lock `name` for `holder` until `ttl` from now, if it is free,
    /// expired, or already `holder`'s. Returns whether `holder` has it.
    async fn try_lock(
        &self,
        name: &str,
        holder: &str,
        ttl: std::time::Duration,
    ) -> StoreResult<bool>;
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
