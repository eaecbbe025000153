//! The agentd domain.
//!
//! `core` owns the entities (users, projects, ...), their ids and invariants, the policies (such
//! as the command policy: which shell commands run, wait for approval, or are refused), and the
//! traits that adapters implement: the stores, the clock, and later the LLM client and tool
//! executor. It must not depend on an HTTP framework, a database driver, an HTTP client or
//! process spawning; those live in the adapter crates and are reached only through the traits
//! defined here.

pub mod approval;
pub mod auth;
pub mod check;
pub mod clock;
pub mod command_policy;
pub mod conversation;
pub mod error;
pub mod id;
pub mod page;
pub mod project;
pub mod revision;
pub mod run;
pub mod signal;
pub mod store;
pub mod tool;
pub mod usage;
pub mod user;
pub mod workspace;
pub mod workspace_path;

pub use clock::{Clock, SystemClock};
pub use command_policy::{
    CommandPolicy, CommandPolicySettings, Decision, PolicyError, RuleConfig, Verdict,
};
pub use error::{StoreError, StoreResult};
pub use id::{ApiKeyId, ApprovalId, ConversationId, GrantId, ProjectId, RunId, SessionId, UserId};
pub use page::{Page, PageRequest};
pub use store::{Store, UsageStore};
pub use usage::{NewUsage, UsageBucket, UsageQuery};
pub use workspace::{Workspace, WorkspaceError, WorkspaceResult};
pub use workspace_path::{PathError, WorkspacePath};
