//! Batches of writes and deletes: one revision, or nothing, in both kinds of workspace.

use std::sync::Arc;

use agentd_core::project::NewProject;
use agentd_core::workspace::{
    Author, ContentHash, FileEdit, ManagedWorkspace, Precondition, Workspace, WorkspaceError,
    WorkspaceLimits,
};
use agentd_core::{ProjectId, RunId, WorkspacePath};

use crate::fixture::Fixture;

fn path(s: &str) -> WorkspacePath {
    WorkspacePath::parse(s).unwrap()
}

fn edit(p: &str, content: Option<&str>, precondition: Precondition) -> FileEdit {
    FileEdit { path: path(p), content: content.map(|c| c.as_bytes().to_vec()), precondition }
}

async fn content(ws: &dyn Workspace, p: &str) -> Option<String> {
    ws.read(&path(p)).await.ok().map(|f| String::from_utf8(f.content).unwrap())
}

async fn batches_are_all_or_nothing(fx: &Fixture, id: ProjectId, ws: Arc<dyn Workspace>) {
    let project = fx.store.revision(id).await.unwrap();
    let me = Author::Run(RunId::new());
    ws.write(&path("a.txt"), b"alpha\n".to_vec(), Precondition::None, me).await.unwrap();
    ws.write(&path("b.txt"), b"beta\n".to_vec(), Precondition::None, me).await.unwrap();
    let a = ContentHash::of(b"alpha\n");
    let start = project + 2;

    // A stale precondition on one file fails the batch: nothing changes.
    let stale = ContentHash::of(b"old");
    let err = ws
        .apply(
            vec![
                edit("a.txt", Some("ALPHA\n"), Precondition::IfMatch(a.clone())),
                edit("c/new.txt", Some("new\n"), Precondition::IfNotExists),
                edit("b.txt", None, Precondition::IfMatch(stale)),
            ],
            me,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, WorkspaceError::PreconditionFailed { .. }), "{err:?}");
    assert_eq!(content(ws.as_ref(), "a.txt").await.as_deref(), Some("alpha\n"));
    assert_eq!(content(ws.as_ref(), "c/new.txt").await, None);
    assert_eq!(content(ws.as_ref(), "b.txt").await.as_deref(), Some("beta\n"));
    // Deleting a missing file fails the batch too.
    let err = ws
        .apply(
            vec![
                edit("a.txt", Some("ALPHA\n"), Precondition::None),
                edit("missing.txt", None, Precondition::None),
            ],
            me,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, WorkspaceError::FileNotFound(_)), "{err:?}");
    assert_eq!(content(ws.as_ref(), "a.txt").await.as_deref(), Some("alpha\n"));

    // A good batch is one revision with every change in it.
    let done = ws
        .apply(
            vec![
                edit("a.txt", Some("ALPHA\n"), Precondition::IfMatch(a)),
                edit("c/new.txt", Some("new\n"), Precondition::IfNotExists),
                edit("b.txt", None, Precondition::IfExists),
            ],
            me,
        )
        .await
        .unwrap();
    assert_eq!(done.revision, start + 1);
    let names: Vec<&str> = done.changed.iter().map(WorkspacePath::as_str).collect();
    assert_eq!(names, ["a.txt", "b.txt", "c/new.txt"]);
    let changes = fx.store.changes_between(id, start, done.revision).await.unwrap();
    assert_eq!(changes.len(), 3);
    assert!(changes.iter().all(|c| c.revision == done.revision && c.author == me));
    assert_eq!(content(ws.as_ref(), "b.txt").await, None);
    assert_eq!(content(ws.as_ref(), "c/new.txt").await.as_deref(), Some("new\n"));
    // Nothing different: no new revision.
    let same = ws.apply(vec![edit("a.txt", Some("ALPHA\n"), Precondition::None)], me).await;
    assert_eq!(same.unwrap().revision, done.revision);
}

#[tokio::test]
async fn a_directory_workspace_applies_a_batch_as_one_revision_or_not_at_all() {
    let fx = Fixture::new().await;
    batches_are_all_or_nothing(&fx, fx.project.id, fx.workspace.clone()).await;
    assert_eq!(std::fs::read(fx.root.join("a.txt")).unwrap(), b"ALPHA\n");
    assert!(!fx.root.join("b.txt").exists());
}

#[tokio::test]
async fn a_managed_workspace_applies_a_batch_as_one_revision_or_not_at_all() {
    let fx = Fixture::new().await;
    let project =
        fx.store.create_project(NewProject::managed(fx.owner.id, "managed")).await.unwrap();
    let ws: Arc<dyn Workspace> =
        Arc::new(ManagedWorkspace::new(fx.store.clone(), project.id, WorkspaceLimits::default()));
    batches_are_all_or_nothing(&fx, project.id, ws).await;
}
