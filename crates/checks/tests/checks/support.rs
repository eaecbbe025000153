//! A sandbox, project directories and a log store for the execution tests.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use agentd_checks::{Checker, LogStore};
use agentd_core::check::CheckKind;
use agentd_sandbox::{Sandbox, SandboxSettings};
use async_trait::async_trait;
use serde_json::{Map, Value};

/// A checker over the default sandbox; panics with an install hint when it is unavailable.
pub(crate) async fn checker() -> Checker {
    let sandbox = Sandbox::new(SandboxSettings::default()).await;
    assert!(
        sandbox.is_available(),
        "these tests need bubblewrap and writable cgroups (run as root; apt-get install -y \
         bubblewrap); the probe said: {}",
        sandbox.capabilities().reasons.join("; ")
    );
    Checker::new(sandbox)
}

/// A project directory holding `files`, traversable by the sandbox's uid.
pub(crate) struct Project {
    _root: tempfile::TempDir,
    pub(crate) dir: PathBuf,
}

impl Project {
    pub(crate) fn new(files: &[(&str, &str)]) -> Self {
        let root = tempfile::tempdir().unwrap();
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let dir = root.path().join("project");
        std::fs::create_dir(&dir).unwrap();
        for (name, content) in files {
            std::fs::write(dir.join(name), content).unwrap();
        }
        Self { _root: root, dir }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.dir
    }
}

/// Project settings with `checks`.
pub(crate) fn settings(checks: Value) -> Map<String, Value> {
    let mut map = Map::new();
    map.insert("checks".into(), checks);
    map
}

/// Keeps stored logs in memory.
#[derive(Debug, Default)]
pub(crate) struct MemoryLogs {
    pub(crate) logs: Mutex<Vec<(CheckKind, Vec<u8>)>>,
}

#[async_trait]
impl LogStore for MemoryLogs {
    async fn store_log(&self, kind: CheckKind, content: Vec<u8>) -> Result<String, String> {
        let mut logs = self.logs.lock().unwrap();
        logs.push((kind, content));
        Ok(format!("log-{}", logs.len()))
    }
}

/// Python unit tests, two of which pass; with `failing`, a third fails.
pub(crate) fn unittest_file(failing: bool) -> String {
    let mut text = String::from(
        "import unittest\n\n\
         class MathTest(unittest.TestCase):\n\
         \x20   def test_add(self):\n\
         \x20       self.assertEqual(1 + 1, 2)\n\n\
         \x20   def test_mul(self):\n\
         \x20       self.assertEqual(2 * 3, 6)\n",
    );
    if failing {
        text.push_str(
            "\n    def test_sub(self):\n        self.assertEqual(3 - 1, 1, 'subtraction is broken')\n",
        );
    }
    text
}
