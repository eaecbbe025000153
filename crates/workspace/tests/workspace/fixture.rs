//! A directory workspace in a temporary directory, with canaries outside it, and a database.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use agentd_core::Store;
use agentd_core::project::{NewProject, Project, WorkspaceKind};
use agentd_core::user::{NewUser, Role, User};
use agentd_core::workspace::{Workspace, WorkspaceLimits};
use agentd_test_support::TestDatabase;
use agentd_test_support::canary::CanaryTree;
use agentd_workspace::{AllowedRoots, WorkspaceConfig, Workspaces};

/// A [`CanaryTree`] (the workspace `top/ws` with canaries around it) and a directory project on
/// it, in a fresh database.
pub(crate) struct Fixture {
    tree: CanaryTree,
    pub(crate) root: PathBuf,
    pub(crate) canary: String,
    pub(crate) workspaces: Workspaces,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) owner: User,
    pub(crate) project: Project,
    pub(crate) workspace: Arc<dyn Workspace>,
    _db: TestDatabase,
}

impl Fixture {
    pub(crate) async fn new() -> Self {
        Self::with_limits(WorkspaceLimits::default()).await
    }

    pub(crate) async fn with_limits(limits: WorkspaceLimits) -> Self {
        let tree = CanaryTree::new();
        let root = tree.workspace.clone();
        let canary = tree.canary.clone();

        let db = TestDatabase::sqlite();
        let database = db.open().await;
        let store = database.store();
        let owner = store
            .create_user(NewUser {
                email: "owner@example.com".into(),
                password_hash: "x".into(),
                role: Role::Member,
            })
            .await
            .unwrap();
        let config = WorkspaceConfig {
            allowed_roots: AllowedRoots::new(std::slice::from_ref(&root)).unwrap(),
            limits,
        };
        let workspaces = Workspaces::new(store.clone(), config);
        let new = NewProject {
            workspace: WorkspaceKind::Directory { root: root.to_str().unwrap().to_owned() },
            ..NewProject::managed(owner.id, "dir")
        };
        let project = workspaces.create_project(new).await.unwrap();
        let workspace = workspaces.workspace(&project).unwrap();
        Self { tree, root, canary, workspaces, store, owner, project, workspace, _db: db }
    }

    pub(crate) fn top(&self) -> PathBuf {
        self.tree.top.clone()
    }

    /// What must never change: see [`CanaryTree::outside_snapshot`].
    pub(crate) fn outside_snapshot(&self) -> BTreeMap<PathBuf, String> {
        self.tree.outside_snapshot()
    }

    /// Whether `bytes` carries the canary, its hash, or a system file's content.
    pub(crate) fn leaks(&self, bytes: &[u8]) -> bool {
        self.tree.leaks(bytes)
    }
}
