//! agentd workspaces: where a project's files live, behind core's `Workspace` trait.
//!
//! - [`Workspaces`] is the one entry point the HTTP layer (and later the agent tools) use: it
//!   validates a directory workspace at project creation, and opens a project's workspace,
//!   managed or directory, as an `Arc<dyn Workspace>` so that callers treat both kinds alike.
//! - [`beneath`] is the only way this crate touches the filesystem under a workspace: every
//!   access is resolved by the kernel beneath the root's directory descriptor
//!   (`openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`).
//! - [`roots`] holds the operator's allowed roots (`AGENTD_WORKSPACE_ALLOWED_ROOTS`).
//!
//! This crate must not open workspace files any other way, hold database code (the revision log
//! goes through core's `FileStore`), or spawn processes.

pub mod beneath;
pub mod directory;
pub mod error;
pub mod roots;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};

use agentd_core::page::{Page, PageRequest};
use agentd_core::project::{NewProject, Project, WorkspaceKind};
use agentd_core::store::Store;
use agentd_core::workspace::{
    Change, ChangeCursor, ManagedWorkspace, Workspace, WorkspaceError, WorkspaceLimits,
    WorkspaceResult,
};
use agentd_core::{ProjectId, UserId, revision};

pub use directory::DirectoryWorkspace;
pub use error::RootsError;
pub use roots::AllowedRoots;

/// How workspaces behave: the allowed roots and the size limits.
#[derive(Debug, Clone, Default)]
pub struct WorkspaceConfig {
    /// Where directory workspaces may live; none means they are disabled.
    pub allowed_roots: AllowedRoots,
    /// The file and project limits.
    pub limits: WorkspaceLimits,
}

/// Opens project workspaces of either kind.
#[derive(Debug)]
pub struct Workspaces {
    store: Arc<dyn Store>,
    config: WorkspaceConfig,
    writers: Mutex<HashMap<ProjectId, Weak<tokio::sync::Mutex<()>>>>,
}

impl Workspaces {
    /// Workspaces over `store` with `config`.
    #[must_use]
    pub fn new(store: Arc<dyn Store>, config: WorkspaceConfig) -> Self {
        Self { store, config, writers: Mutex::new(HashMap::new()) }
    }

    /// The limits in force.
    #[must_use]
    pub fn limits(&self) -> WorkspaceLimits {
        self.config.limits
    }

    /// Stores a new project whose input the caller has validated (`NewProject::validate`). For
    /// a directory workspace, `root` is the path the client asked for; it is replaced by its
    /// real path after checking it against the allowed roots.
    ///
    /// # Errors
    /// `NotAllowed` for a directory outside the allowed roots; store failures.
    pub async fn create_project(&self, mut new: NewProject) -> WorkspaceResult<Project> {
        if let WorkspaceKind::Directory { root } = &new.workspace {
            let requested = root.clone();
            let roots = self.config.allowed_roots.clone();
            let real = tokio::task::spawn_blocking(move || roots.resolve(&requested))
                .await
                .map_err(|join| WorkspaceError::Io {
                    op: "check the workspace directory",
                    source: std::io::Error::other(join),
                })??;
            let Some(real) = real.to_str() else {
                return Err(WorkspaceError::NotAllowed(
                    "the workspace directory's path is not valid UTF-8".into(),
                ));
            };
            new.workspace = WorkspaceKind::Directory { root: real.to_owned() };
        }
        Ok(self.store.create_project(new).await?)
    }

    /// The project `id` if `owner` may see it (any when `None`), with its workspace.
    ///
    /// # Errors
    /// `Store(NotFound)` when the project is not visible; `NotAllowed` when its directory is no
    /// longer inside an allowed root.
    pub async fn open(
        &self,
        owner: Option<UserId>,
        id: ProjectId,
    ) -> WorkspaceResult<(Project, Arc<dyn Workspace>)> {
        let project = self.store.project(owner, id).await?;
        let workspace = self.workspace(&project)?;
        Ok((project, workspace))
    }

    /// The workspace of a project already read through its owner.
    ///
    /// # Errors
    /// `NotAllowed` when directory workspaces are disabled or the root is not allowed.
    pub fn workspace(&self, project: &Project) -> WorkspaceResult<Arc<dyn Workspace>> {
        let files = self.store.clone();
        match &project.workspace {
            WorkspaceKind::Managed => {
                Ok(Arc::new(ManagedWorkspace::new(files, project.id, self.config.limits)))
            }
            WorkspaceKind::Directory { root } => {
                let root = PathBuf::from(root);
                if !self.config.allowed_roots.contains(&root) {
                    return Err(WorkspaceError::NotAllowed(
                        "the workspace directory is no longer inside an allowed root".into(),
                    ));
                }
                Ok(Arc::new(DirectoryWorkspace::new(
                    root,
                    self.config.allowed_roots.clone(),
                    project.id,
                    files,
                    self.config.limits,
                    self.writer_lock(project.id),
                )))
            }
        }
    }

    /// The changes of `project` after revision `since`, in order, one page at a time.
    ///
    /// # Errors
    /// `UnknownRevision` when `since` is outside the history; store failures.
    pub async fn changes(
        &self,
        project: &Project,
        since: i64,
        page: PageRequest<ChangeCursor>,
    ) -> WorkspaceResult<Page<Change, ChangeCursor>> {
        let current = self.store.revision(project.id).await?;
        revision::check_revision(since, current)?;
        Ok(self.store.list_changes(project.id, since, page).await?)
    }

    /// The unified diff of `project`'s files from revision `from` to revision `to`.
    ///
    /// # Errors
    /// `UnknownRevision`; store failures.
    pub async fn diff(&self, project: &Project, from: i64, to: i64) -> WorkspaceResult<String> {
        let current = self.store.revision(project.id).await?;
        revision::diff(self.store.as_ref(), project.id, from, to, current).await
    }

    /// One lock per project with a directory workspace, shared by every open instance.
    fn writer_lock(&self, project: ProjectId) -> Arc<tokio::sync::Mutex<()>> {
        let mut writers = self.writers.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(lock) = writers.get(&project).and_then(Weak::upgrade) {
            return lock;
        }
        writers.retain(|_, w| w.strong_count() > 0);
        let lock = Arc::new(tokio::sync::Mutex::new(()));
        writers.insert(project, Arc::downgrade(&lock));
        lock
    }
}
