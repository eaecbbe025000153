//! A directory workspace in a temporary directory, with canaries outside it, and a database.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use agentd_core::Store;
use agentd_core::project::{NewProject, Project, WorkspaceKind};
use agentd_core::user::{NewUser, Role, User};
use agentd_core::workspace::{Workspace, WorkspaceLimits};
use agentd_test_support::TestDatabase;
use agentd_test_support::traversal::{CANARY_FILE, SIBLING_DIR};
use agentd_workspace::{AllowedRoots, WorkspaceConfig, Workspaces};
use sha2::{Digest, Sha256};
use tempfile::TempDir;

/// The layout, under a fresh temporary directory `top`:
///
/// ```text
/// top/canary.txt              canary (outside)
/// top/ws-sibling/canary.txt   canary in a directory beside the workspace
/// top/ws/                     the workspace root
/// top/ws/sub/inside.txt       an ordinary file
/// ```
pub(crate) struct Fixture {
    pub(crate) top: TempDir,
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
        let top = tempfile::tempdir().unwrap();
        let top_real = std::fs::canonicalize(top.path()).unwrap();
        let root = top_real.join("ws");
        let canary = format!("CANARY-{}", uuid::Uuid::new_v4());
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::create_dir_all(top_real.join(SIBLING_DIR)).unwrap();
        std::fs::write(top_real.join(CANARY_FILE), &canary).unwrap();
        std::fs::write(top_real.join(SIBLING_DIR).join(CANARY_FILE), &canary).unwrap();
        std::fs::write(root.join("sub/inside.txt"), b"inside").unwrap();

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
        Self { top, root, canary, workspaces, store, owner, project, workspace, _db: db }
    }

    pub(crate) fn top(&self) -> PathBuf {
        std::fs::canonicalize(self.top.path()).unwrap()
    }

    /// The SHA-256 of every file outside the workspace (under `top` but not under `ws`), plus
    /// a few system files, keyed by path: what must never change.
    pub(crate) fn outside_snapshot(&self) -> BTreeMap<PathBuf, String> {
        let mut out = BTreeMap::new();
        hash_tree(&self.top(), &self.root, &mut out);
        for system in ["/etc/passwd", "/etc/hosts", "/etc/hostname"] {
            let path = Path::new(system);
            if let Ok(bytes) = std::fs::read(path) {
                out.insert(path.to_owned(), hex(&bytes));
            }
        }
        out
    }

    /// Whether `bytes` contains the canary or a system file's content.
    pub(crate) fn leaks(&self, bytes: &[u8]) -> bool {
        let text = String::from_utf8_lossy(bytes);
        text.contains(&self.canary) || text.contains("root:x:0:0")
    }
}

fn hash_tree(dir: &Path, skip: &Path, out: &mut BTreeMap<PathBuf, String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path == skip {
            continue;
        }
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            out.insert(path.clone(), "dir".into());
            hash_tree(&path, skip, out);
        } else if meta.file_type().is_symlink() {
            out.insert(
                path.clone(),
                format!("link:{}", std::fs::read_link(&path).unwrap().display()),
            );
        } else {
            out.insert(path.clone(), hex(&std::fs::read(&path).unwrap()));
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}
