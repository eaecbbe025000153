//! Symbolic links inside a directory workspace that point outside it are never followed: reads,
//! writes and deletes through them fail and nothing outside changes. Links that stay inside
//! work for reads.

use std::os::unix::fs::symlink;

use agentd_core::WorkspacePath;
use agentd_core::page::PageRequest;
use agentd_core::workspace::{Author, Precondition, WorkspaceError};
use agentd_test_support::traversal::{CANARY_FILE, SIBLING_DIR};

use crate::fixture::Fixture;

fn path(s: &str) -> WorkspacePath {
    WorkspacePath::parse(s).unwrap()
}

#[tokio::test]
async fn links_pointing_outside_are_refused_for_every_operation() {
    let fx = Fixture::new().await;
    let top = fx.top();
    symlink(top.join(CANARY_FILE), fx.root.join("file-link")).unwrap();
    symlink(top.join(SIBLING_DIR), fx.root.join("dir-link")).unwrap();
    symlink(format!("../{CANARY_FILE}"), fx.root.join("relative-link")).unwrap();
    symlink("/etc/passwd", fx.root.join("absolute-link")).unwrap();
    symlink("/proc/self/root/etc/passwd", fx.root.join("magic-link")).unwrap();
    symlink("/proc/self/cwd", fx.root.join("cwd-link")).unwrap();
    symlink("sub/../../ws-sibling", fx.root.join("sub-escape")).unwrap();
    let before = fx.outside_snapshot();
    let me = Author::User(fx.owner.id);
    let ws = &fx.workspace;

    let through = [
        "file-link",
        "relative-link",
        "absolute-link",
        "magic-link",
        "dir-link/canary.txt",
        "sub-escape/canary.txt",
        "cwd-link/Cargo.toml",
    ];
    for p in through {
        let err = ws.read(&path(p)).await.unwrap_err();
        assert!(matches!(err, WorkspaceError::OutsideWorkspace), "read {p}: {err:?}");
        let err = ws.write(&path(p), b"pwned".to_vec(), Precondition::None, me).await.unwrap_err();
        assert!(matches!(err, WorkspaceError::OutsideWorkspace), "write {p}: {err:?}");
        let err = ws.delete(&path(p), Precondition::None, me).await.unwrap_err();
        assert!(matches!(err, WorkspaceError::OutsideWorkspace), "delete {p}: {err:?}");
    }
    // New files below a link to a directory outside are refused too, also several levels down.
    for p in ["dir-link/new.txt", "dir-link/deep/er/new.txt", "sub-escape/x"] {
        let err = ws.write(&path(p), b"pwned".to_vec(), Precondition::None, me).await.unwrap_err();
        assert!(matches!(err, WorkspaceError::OutsideWorkspace), "write {p}: {err:?}");
    }
    assert_eq!(fx.outside_snapshot(), before);
    // The links themselves are untouched, and listings neither show nor follow them.
    assert!(std::fs::symlink_metadata(fx.root.join("file-link")).unwrap().file_type().is_symlink());
    let listed = ws.list(None, PageRequest::first(100)).await.unwrap();
    let names: Vec<_> = listed.items.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(names, ["sub/inside.txt"]);
    // Under the link there is no directory of the workspace: an empty listing, not the outside.
    let under = ws.list(Some(&path("dir-link")), PageRequest::first(10)).await.unwrap();
    assert!(under.items.is_empty(), "{under:?}");
    // Nothing was recorded: no change happened.
    assert_eq!(fx.store.revision(fx.project.id).await.unwrap(), 0);
}

#[tokio::test]
async fn links_that_stay_inside_can_be_read_but_not_written_through() {
    let fx = Fixture::new().await;
    symlink("sub/inside.txt", fx.root.join("alias")).unwrap();
    symlink("sub", fx.root.join("sub-alias")).unwrap();
    let me = Author::User(fx.owner.id);
    let ws = &fx.workspace;
    assert_eq!(ws.read(&path("alias")).await.unwrap().content, b"inside");
    assert_eq!(ws.read(&path("sub-alias/inside.txt")).await.unwrap().content, b"inside");
    // Writing the link's name would replace the link; that is refused rather than surprising.
    let err = ws.write(&path("alias"), b"x".to_vec(), Precondition::None, me).await.unwrap_err();
    assert!(matches!(err, WorkspaceError::OutsideWorkspace), "{err:?}");
    // A directory link inside the root may be written below.
    ws.write(&path("sub-alias/new.txt"), b"new".to_vec(), Precondition::None, me).await.unwrap();
    assert_eq!(std::fs::read(fx.root.join("sub/new.txt")).unwrap(), b"new");
}

#[tokio::test]
async fn special_files_are_refused_without_hanging() {
    let fx = Fixture::new().await;
    let fifo = fx.root.join("pipe");
    rustix::fs::mkfifoat(rustix::fs::CWD, &fifo, rustix::fs::Mode::from_raw_mode(0o644)).unwrap();
    let me = Author::User(fx.owner.id);
    let pipe = path("pipe");
    let read = tokio::time::timeout(std::time::Duration::from_secs(2), fx.workspace.read(&pipe));
    let err = read.await.expect("reading a FIFO must not block").unwrap_err();
    assert!(matches!(err, WorkspaceError::NotAFile(_)), "{err:?}");
    let err =
        fx.workspace.write(&path("pipe"), b"x".to_vec(), Precondition::None, me).await.unwrap_err();
    assert!(matches!(err, WorkspaceError::NotAFile(_)), "{err:?}");
    let err = fx.workspace.read(&path("sub")).await.unwrap_err();
    assert!(matches!(err, WorkspaceError::NotAFile(_)), "{err:?}");
    let err = fx.workspace.delete(&path("sub"), Precondition::None, me).await.unwrap_err();
    assert!(matches!(err, WorkspaceError::NotAFile(_)), "{err:?}");
    assert!(fx.root.join("sub/inside.txt").exists());
}
