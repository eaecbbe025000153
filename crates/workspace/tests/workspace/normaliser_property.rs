//! Property: whatever text arrives, the normaliser either refuses it or yields a path that,
//! joined to a root, stays inside it, lexically and when resolved by the beneath primitive on
//! a real directory full of links that point outside.

use std::os::unix::fs::symlink;
use std::path::{Component, Path};

use agentd_core::WorkspacePath;
use agentd_core::workspace::WorkspaceError;
use agentd_workspace::beneath::BeneathRoot;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

const CASES: u32 = 10_000;

const TOKENS: &[&str] = &[
    "..",
    ".",
    "/",
    "//",
    "\\",
    "%2e",
    "%2E",
    "%2f",
    "%2F",
    "%5c",
    "%25",
    "%252e",
    "%252f",
    "%00",
    "%0a",
    "%c0%ae",
    "%c0%af",
    "%e0%80%ae",
    "%u002e",
    "%e2%88%95",
    "%ef%bc%8e",
    "a",
    "b",
    "sub",
    "link",
    "out",
    "fileout",
    "magic",
    "~",
    ";",
    " ",
    "%20",
    "C:",
    "é",
    "\u{0}",
    "\u{2215}",
    ".txt",
    "...",
    "%",
    "%2",
    "file",
];

fn arbitrary_path() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(TOKENS), 0..14).prop_map(|t| t.concat())
}

#[test]
fn normalised_paths_always_stay_inside_the_root() {
    let top = tempfile::tempdir().unwrap();
    let top = std::fs::canonicalize(top.path()).unwrap();
    let root = top.join("ws");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::create_dir_all(top.join("outside")).unwrap();
    std::fs::write(top.join("outside/canary"), b"canary").unwrap();
    symlink("sub", root.join("link")).unwrap();
    symlink("../outside", root.join("out")).unwrap();
    symlink("../outside/canary", root.join("fileout")).unwrap();
    symlink("/proc/self/root", root.join("magic")).unwrap();
    let beneath = BeneathRoot::open(&root).unwrap();

    let mut runner =
        TestRunner::new(Config { cases: CASES, failure_persistence: None, ..Config::default() });
    let accepted = std::cell::Cell::new(0usize);
    runner
        .run(&arbitrary_path(), |raw| {
            for parsed in [WorkspacePath::from_url(&raw), WorkspacePath::parse(&raw)] {
                let Ok(path) = parsed else { continue };
                accepted.set(accepted.get() + 1);
                // Lexically: only normal components, so the join cannot climb or restart.
                let joined = root.join(path.as_str());
                prop_assert!(joined.starts_with(&root), "{raw:?} -> {path}");
                let below: Vec<_> = joined.strip_prefix(&root).unwrap().components().collect();
                prop_assert!(
                    below.iter().all(|c| matches!(c, Component::Normal(_))),
                    "{raw:?} -> {path}"
                );
                // Resolved by the kernel: a write lands inside the root, or is refused.
                match beneath.slot(&path, true).and_then(|slot| slot.replace(b"probe")) {
                    Ok(_) => {
                        let real = std::fs::canonicalize(&joined).unwrap();
                        prop_assert!(real.starts_with(&root), "{raw:?} wrote {}", real.display());
                    }
                    Err(
                        WorkspaceError::OutsideWorkspace
                        | WorkspaceError::PathConflict { .. }
                        | WorkspaceError::NotAFile(_),
                    ) => {}
                    Err(e) => prop_assert!(false, "{raw:?}: {e:?}"),
                }
                match beneath.read(&path, 1024) {
                    Ok(data) => prop_assert_ne!(data.content, b"canary".to_vec(), "{:?}", raw),
                    Err(WorkspaceError::Io { .. }) => prop_assert!(false, "{raw:?}: I/O error"),
                    Err(_) => {}
                }
            }
            Ok(())
        })
        .unwrap();
    assert_eq!(std::fs::read(top.join("outside/canary")).unwrap(), b"canary");
    let outside: Vec<_> = std::fs::read_dir(top.join("outside")).unwrap().collect();
    assert_eq!(outside.len(), 1, "nothing was created outside the root");
    let accepted = accepted.get();
    assert!(accepted > 1_000, "only {accepted} accepted paths were exercised");
    assert!(Path::new(&root).join("sub").is_dir());
}
