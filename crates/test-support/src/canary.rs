//! A workspace directory with canaries around it, for tests that try to read or write outside a
//! directory workspace.
//!
//! The layout, under a fresh temporary directory `top` (its real path):
//!
//! ```text
//! top/canary.txt              the canary (outside)
//! top/ws-sibling/canary.txt   the canary again, in a directory beside the workspace
//! top/ws/                     the workspace directory (and the allowed root)
//! top/ws/sub/inside.txt       an ordinary file
//! ```
//!
//! The canary is a unique string. A test passes when no response ever carries it (or its
//! SHA-256, or a system file's content) and [`CanaryTree::outside_snapshot`] is the same before
//! and after.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use agentd_core::workspace::ContentHash;
use tempfile::TempDir;

use crate::traversal::{CANARY_FILE, SIBLING_DIR};

/// A workspace directory in a temporary directory, with canaries outside it.
#[derive(Debug)]
pub struct CanaryTree {
    /// The real path of the temporary directory holding everything.
    pub top: PathBuf,
    /// The real path of the workspace directory, `top/ws`.
    pub workspace: PathBuf,
    /// The canary's content: `CANARY-<uuid>`.
    pub canary: String,
    _dir: TempDir,
}

impl CanaryTree {
    /// Creates the layout.
    #[must_use]
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let top = std::fs::canonicalize(dir.path()).unwrap();
        let workspace = top.join("ws");
        let canary = format!("CANARY-{}", uuid::Uuid::new_v4());
        std::fs::create_dir_all(workspace.join("sub")).unwrap();
        std::fs::create_dir_all(top.join(SIBLING_DIR)).unwrap();
        std::fs::write(top.join(CANARY_FILE), &canary).unwrap();
        std::fs::write(top.join(SIBLING_DIR).join(CANARY_FILE), &canary).unwrap();
        std::fs::write(workspace.join("sub/inside.txt"), b"inside").unwrap();
        Self { top, workspace, canary, _dir: dir }
    }

    /// The workspace directory as text, as a client names it when creating a project.
    #[must_use]
    pub fn workspace_path(&self) -> &str {
        self.workspace.to_str().unwrap()
    }

    /// Every entry outside the workspace (under `top` but not under `ws`) with the SHA-256 of
    /// its content (or its link target), plus a few system files: what must never change.
    #[must_use]
    pub fn outside_snapshot(&self) -> BTreeMap<PathBuf, String> {
        let mut out = BTreeMap::new();
        hash_tree(&self.top, &self.workspace, &mut out);
        for system in ["/etc/passwd", "/etc/hosts", "/etc/hostname"] {
            let path = Path::new(system);
            if let Ok(bytes) = std::fs::read(path) {
                out.insert(path.to_owned(), ContentHash::of(&bytes).to_string());
            }
        }
        out
    }

    /// Whether `bytes` carries the canary, its SHA-256, or a system file's content.
    #[must_use]
    pub fn leaks(&self, bytes: &[u8]) -> bool {
        let text = String::from_utf8_lossy(bytes);
        text.contains(&self.canary)
            || text.contains(ContentHash::of(self.canary.as_bytes()).as_str())
            || text.contains("root:x:0:0")
    }
}

impl Default for CanaryTree {
    fn default() -> Self {
        Self::new()
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
            let target = std::fs::read_link(&path).unwrap();
            out.insert(path, format!("link:{}", target.display()));
        } else {
            out.insert(path.clone(), ContentHash::of(&std::fs::read(&path).unwrap()).to_string());
        }
    }
}
