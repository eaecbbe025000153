//! Directory workspaces behave like managed ones: CRUD with ETags and preconditions, paginated
//! listings, the revision log, diffs and reverts; and only allowed roots become workspaces.

use std::os::unix::fs::symlink;

use agentd_core::page::PageRequest;
use agentd_core::project::{NewProject, WorkspaceKind};
use agentd_core::workspace::{Author, ContentHash, Precondition, WorkspaceError, WorkspaceLimits};
use agentd_core::{RunId, WorkspacePath};
use agentd_workspace::{AllowedRoots, WorkspaceConfig, Workspaces};

use crate::fixture::Fixture;

fn path(s: &str) -> WorkspacePath {
    WorkspacePath::parse(s).unwrap()
}

#[tokio::test]
async fn files_are_written_read_listed_and_deleted_on_disk_with_etags() {
    let fx = Fixture::new().await;
    let ws = &fx.workspace;
    let me = Author::User(fx.owner.id);
    let out = ws
        .write(&path("src/main.rs"), b"fn main() {}\n".to_vec(), Precondition::IfNotExists, me)
        .await
        .unwrap();
    assert!(out.created && out.changed);
    assert_eq!(out.revision, 1);
    assert_eq!(out.file.language.as_deref(), Some("rust"));
    assert_eq!(std::fs::read(fx.root.join("src/main.rs")).unwrap(), b"fn main() {}\n");
    let binary: Vec<u8> = (0..=255).collect();
    ws.write(&path("bin/blob"), binary.clone(), Precondition::None, me).await.unwrap();
    let read = ws.read(&path("bin/blob")).await.unwrap();
    assert_eq!(read.content, binary);
    assert_eq!(read.entry.sha256, ContentHash::of(&binary));

    let err = ws
        .write(&path("src/main.rs"), b"x".to_vec(), Precondition::IfNotExists, me)
        .await
        .unwrap_err();
    assert!(matches!(err, WorkspaceError::PreconditionFailed { current: Some(_) }), "{err:?}");
    let err =
        ws.write(&path("new/dir/x"), b"x".to_vec(), Precondition::IfExists, me).await.unwrap_err();
    assert!(matches!(err, WorkspaceError::PreconditionFailed { current: None }), "{err:?}");
    assert!(!fx.root.join("new").exists(), "a failed write leaves no directories behind");
    let stale = ContentHash::of(b"something else");
    let err = ws
        .write(&path("src/main.rs"), b"x".to_vec(), Precondition::IfMatch(stale.clone()), me)
        .await
        .unwrap_err();
    assert!(matches!(err, WorkspaceError::PreconditionFailed { .. }), "{err:?}");
    let err = ws.delete(&path("src/main.rs"), Precondition::IfMatch(stale), me).await.unwrap_err();
    assert!(matches!(err, WorkspaceError::PreconditionFailed { .. }), "{err:?}");
    let same = ws
        .write(&path("src/main.rs"), b"fn main() {}\n".to_vec(), Precondition::None, me)
        .await
        .unwrap();
    assert!(!same.changed);
    assert_eq!(same.revision, 2);

    let mut seen = Vec::new();
    let mut request = PageRequest::first(2);
    loop {
        let page = ws.list(None, request.clone()).await.unwrap();
        for f in &page.items {
            let content = std::fs::read(fx.root.join(f.path.as_str())).unwrap();
            assert_eq!(f.sha256, ContentHash::of(&content));
            assert_eq!(f.size, content.len() as u64);
        }
        seen.extend(page.items.iter().map(|f| f.path.as_str().to_owned()));
        match page.next {
            Some(next) => request.after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, ["bin/blob", "src/main.rs", "sub/inside.txt"]);
    let under = ws.list(Some(&path("src")), PageRequest::first(10)).await.unwrap();
    assert_eq!(under.items.len(), 1);

    let tag = ws.read(&path("src/main.rs")).await.unwrap().entry.sha256;
    let deleted = ws.delete(&path("src/main.rs"), Precondition::IfMatch(tag), me).await.unwrap();
    assert_eq!(deleted.revision, 3);
    assert!(!fx.root.join("src/main.rs").exists());
    let err = ws.read(&path("src/main.rs")).await.unwrap_err();
    assert!(matches!(err, WorkspaceError::FileNotFound(_)), "{err:?}");
    let err = ws.delete(&path("nope/never"), Precondition::None, me).await.unwrap_err();
    assert!(matches!(err, WorkspaceError::FileNotFound(_)), "{err:?}");
    let err = ws.delete(&path("nope/never"), Precondition::IfExists, me).await.unwrap_err();
    assert!(matches!(err, WorkspaceError::PreconditionFailed { current: None }), "{err:?}");
    let err =
        ws.write(&path("bin/blob/inner"), b"x".to_vec(), Precondition::None, me).await.unwrap_err();
    assert!(matches!(err, WorkspaceError::PathConflict { existing: "file", .. }), "{err:?}");
    let temps: Vec<_> =
        walk_names(&fx.root).into_iter().filter(|n| n.contains(".agentd-tmp-")).collect();
    assert!(temps.is_empty(), "temporary files left behind: {temps:?}");
}

#[tokio::test]
async fn changes_made_through_agentd_can_be_diffed_and_reverted_on_disk() {
    let fx = Fixture::new().await;
    let ws = &fx.workspace;
    let user = Author::User(fx.owner.id);
    let run = Author::Run(RunId::new());
    ws.write(&path("notes.md"), b"plan\n".to_vec(), Precondition::None, user).await.unwrap();
    let checkpoint = fx.store.revision(fx.project.id).await.unwrap();
    // An agent edits a file that was on disk before agentd, edits ours, adds and deletes.
    ws.write(&path("sub/inside.txt"), b"changed by the agent".to_vec(), Precondition::None, run)
        .await
        .unwrap();
    ws.write(&path("notes.md"), b"plan\nmore\n".to_vec(), Precondition::None, run).await.unwrap();
    ws.write(&path("added/new.rs"), b"new".to_vec(), Precondition::None, run).await.unwrap();
    ws.delete(&path("notes.md"), Precondition::None, run).await.unwrap();
    let now = fx.store.revision(fx.project.id).await.unwrap();
    assert_eq!(now, checkpoint + 4);

    let changes =
        fx.workspaces.changes(&fx.project, checkpoint, PageRequest::first(10)).await.unwrap();
    assert_eq!(changes.items.len(), 4);
    assert!(changes.items.iter().all(|c| c.author == run));
    let diff = fx.workspaces.diff(&fx.project, checkpoint, now).await.unwrap();
    assert!(diff.contains("--- a/sub/inside.txt\n+++ b/sub/inside.txt\n"), "{diff}");
    assert!(diff.contains("-inside\n"), "{diff}");
    assert!(diff.contains("--- a/notes.md\n+++ /dev/null\n"), "{diff}");
    assert!(diff.contains("+++ b/added/new.rs\n"), "{diff}");

    let out = ws.revert(checkpoint, user).await.unwrap();
    assert_eq!(out.revision, now + 1);
    let paths: Vec<_> = out.changes.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(paths, ["added/new.rs", "notes.md", "sub/inside.txt"]);
    assert_eq!(std::fs::read(fx.root.join("sub/inside.txt")).unwrap(), b"inside");
    assert_eq!(std::fs::read(fx.root.join("notes.md")).unwrap(), b"plan\n");
    assert!(!fx.root.join("added/new.rs").exists());
    // Back to before agentd touched anything: the original file content is restored too.
    ws.revert(0, user).await.unwrap();
    assert!(!fx.root.join("notes.md").exists());
    assert_eq!(std::fs::read(fx.root.join("sub/inside.txt")).unwrap(), b"inside");
    let err = ws.revert(1_000, user).await.unwrap_err();
    assert!(matches!(err, WorkspaceError::UnknownRevision { .. }), "{err:?}");
    let err = fx.workspaces.changes(&fx.project, -1, PageRequest::first(1)).await.unwrap_err();
    assert!(matches!(err, WorkspaceError::UnknownRevision { .. }), "{err:?}");
}

#[tokio::test]
async fn replacing_a_file_keeps_its_permissions_and_owner() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let fx = Fixture::new().await;
    let script = fx.root.join("run.sh");
    std::fs::write(&script, b"#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o750)).unwrap();
    let before = std::fs::metadata(&script).unwrap();
    let me = Author::User(fx.owner.id);
    fx.workspace
        .write(&path("run.sh"), b"#!/bin/sh\necho hi\n".to_vec(), Precondition::None, me)
        .await
        .unwrap();
    let after = std::fs::metadata(&script).unwrap();
    assert_eq!(after.permissions().mode() & 0o777, 0o750);
    assert_eq!((after.uid(), after.gid()), (before.uid(), before.gid()));
    assert_ne!(after.ino(), before.ino(), "replaced by rename, not rewritten in place");
    fx.workspace.write(&path("fresh.txt"), b"x".to_vec(), Precondition::None, me).await.unwrap();
    let fresh = std::fs::metadata(fx.root.join("fresh.txt")).unwrap();
    assert_eq!(fresh.permissions().mode() & 0o777, 0o644);
}

#[tokio::test]
async fn the_file_size_limit_applies_to_directory_workspaces() {
    let limits = WorkspaceLimits { max_file_bytes: 10, ..WorkspaceLimits::default() };
    let fx = Fixture::with_limits(limits).await;
    let me = Author::User(fx.owner.id);
    let err =
        fx.workspace.write(&path("big"), vec![0; 11], Precondition::None, me).await.unwrap_err();
    assert!(matches!(err, WorkspaceError::FileTooLarge { size: 11, limit: 10 }), "{err:?}");
    assert!(!fx.root.join("big").exists());
    std::fs::write(fx.root.join("huge-on-disk"), vec![0; 1000]).unwrap();
    let err = fx.workspace.read(&path("huge-on-disk")).await.unwrap_err();
    assert!(matches!(err, WorkspaceError::FileTooLarge { size: 1000, limit: 10 }), "{err:?}");
    // Listing still shows it, with its hash.
    let listed = fx.workspace.list(None, PageRequest::first(10)).await.unwrap();
    let huge = listed.items.iter().find(|f| f.path.as_str() == "huge-on-disk").unwrap();
    assert_eq!(huge.sha256, ContentHash::of(&[0; 1000]));
}

#[tokio::test]
async fn only_directories_inside_an_allowed_root_become_workspaces() {
    let fx = Fixture::new().await;
    let top = fx.top();
    std::fs::create_dir_all(fx.root.join("projects/demo")).unwrap();
    std::fs::write(fx.root.join("a-file"), b"x").unwrap();
    symlink(top.join("ws-sibling"), fx.root.join("escape")).unwrap();
    symlink(fx.root.join("projects/demo"), top.join("link-to-demo")).unwrap();
    let new = |root: &str| NewProject {
        workspace: WorkspaceKind::Directory { root: root.to_owned() },
        ..NewProject::managed(fx.owner.id, "p")
    };
    let dotdot = format!("{}/projects/../../ws-sibling", fx.root.display());
    for bad in [
        "/".to_owned(),
        "/etc".to_owned(),
        "..".to_owned(),
        "relative/dir".to_owned(),
        top.join("ws-sibling").display().to_string(),
        fx.root.join("escape").display().to_string(),
        fx.root.join("a-file").display().to_string(),
        fx.root.join("missing").display().to_string(),
        dotdot,
    ] {
        let err = fx.workspaces.create_project(new(&bad)).await.unwrap_err();
        assert!(matches!(err, WorkspaceError::NotAllowed(_)), "{bad}: {err:?}");
    }
    // A path reaching an allowed directory through a link is stored as its real path.
    let via_link = top.join("link-to-demo");
    let project = fx.workspaces.create_project(new(via_link.to_str().unwrap())).await.unwrap();
    let real = fx.root.join("projects/demo");
    assert_eq!(project.workspace, WorkspaceKind::Directory { root: real.display().to_string() });

    // Without allowed roots, directory workspaces are off, and existing ones are closed.
    let disabled = Workspaces::new(fx.store.clone(), WorkspaceConfig::default());
    let err = disabled.create_project(new(real.to_str().unwrap())).await.unwrap_err();
    assert!(err.to_string().contains("AGENTD_WORKSPACE_ALLOWED_ROOTS"), "{err}");
    let err = disabled.workspace(&project).unwrap_err();
    assert!(matches!(err, WorkspaceError::NotAllowed(_)), "{err:?}");
    let elsewhere = WorkspaceConfig {
        allowed_roots: AllowedRoots::new(&[top.join("ws-sibling")]).unwrap(),
        ..WorkspaceConfig::default()
    };
    let err =
        Workspaces::new(fx.store.clone(), elsewhere).open(None, project.id).await.unwrap_err();
    assert!(matches!(err, WorkspaceError::NotAllowed(_)), "{err:?}");
    // Replacing the workspace directory with a link closes it as well.
    std::fs::rename(&real, fx.root.join("moved")).unwrap();
    symlink(top.join("ws-sibling"), &real).unwrap();
    let ws = fx.workspaces.workspace(&project).unwrap();
    let err = ws.read(&path("canary.txt")).await.unwrap_err();
    assert!(matches!(err, WorkspaceError::NotAllowed(_)), "{err:?}");
}

#[tokio::test]
async fn another_owner_cannot_open_a_workspace() {
    let fx = Fixture::new().await;
    let err =
        fx.workspaces.open(Some(agentd_core::UserId::new()), fx.project.id).await.unwrap_err();
    assert!(
        matches!(
            err,
            WorkspaceError::Store(agentd_core::StoreError::NotFound { entity: "project" })
        ),
        "{err:?}"
    );
    let (project, _) = fx.workspaces.open(Some(fx.owner.id), fx.project.id).await.unwrap();
    assert_eq!(project.id, fx.project.id);
}

fn walk_names(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        out.push(entry.file_name().to_string_lossy().into_owned());
        if entry.file_type().unwrap().is_dir() {
            out.extend(walk_names(&entry.path()));
        }
    }
    out
}
