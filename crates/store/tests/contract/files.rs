use std::sync::Arc;

use agentd_core::page::PageRequest;
use agentd_core::project::{NewProject, Project};
use agentd_core::revision;
use agentd_core::user::{NewUser, Role, User};
use agentd_core::workspace::{
    Author, Blob, ContentHash, FileEdit, ManagedWorkspace, NewChange, Precondition, Workspace,
    WorkspaceError, WorkspaceLimits,
};
use agentd_core::{RunId, Store, StoreError, WorkspacePath};
use agentd_store::Database;

use crate::contract;

fn path(s: &str) -> WorkspacePath {
    WorkspacePath::parse(s).unwrap()
}

async fn setup(db: &Database) -> (Arc<dyn Store>, User, Project) {
    let store = db.store();
    let owner = store
        .create_user(NewUser {
            email: "owner@example.com".into(),
            password_hash: "x".into(),
            role: Role::Member,
        })
        .await
        .unwrap();
    let project = store.create_project(NewProject::managed(owner.id, "files")).await.unwrap();
    (store, owner, project)
}

fn workspace(
    store: &Arc<dyn Store>,
    project: &Project,
    limits: WorkspaceLimits,
) -> ManagedWorkspace {
    ManagedWorkspace::new(store.clone(), project.id, limits)
}

async fn text_and_binary_files_round_trip_with_their_etags(db: &Database) {
    let (store, owner, project) = setup(db).await;
    let ws = workspace(&store, &project, WorkspaceLimits::default());
    let me = Author::User(owner.id);
    let created = ws
        .write(&path("src/main.rs"), b"fn main() {}\n".to_vec(), Precondition::None, me)
        .await
        .unwrap();
    assert!(created.created && created.changed);
    assert_eq!(created.revision, 1);
    assert_eq!(created.file.sha256, ContentHash::of(b"fn main() {}\n"));
    assert_eq!(created.file.language.as_deref(), Some("rust"));
    assert_eq!(created.file.size, 13);

    let binary: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
    let out =
        ws.write(&path("img/logo.png"), binary.clone(), Precondition::None, me).await.unwrap();
    assert_eq!(out.revision, 2);
    assert_eq!(out.file.language, None);
    let read = ws.read(&path("img/logo.png")).await.unwrap();
    assert_eq!(read.content, binary);
    assert_eq!(read.entry.sha256, ContentHash::of(&binary));
    assert_eq!(read.entry.size, 512);
    let text = ws.read(&path("src/main.rs")).await.unwrap();
    assert_eq!(text.entry, created.file);

    let replaced = ws
        .write(&path("src/main.rs"), b"fn main() { run() }\n".to_vec(), Precondition::None, me)
        .await
        .unwrap();
    assert!(!replaced.created && replaced.changed);
    assert_eq!(replaced.revision, 3);
    assert_eq!(store.revision(project.id).await.unwrap(), 3);
    let empty = ws.write(&path("empty"), Vec::new(), Precondition::None, me).await.unwrap();
    assert_eq!(ws.read(&path("empty")).await.unwrap().content, b"");
    assert_eq!(empty.file.size, 0);
}

async fn writing_identical_content_is_not_a_new_revision(db: &Database) {
    let (store, owner, project) = setup(db).await;
    let ws = workspace(&store, &project, WorkspaceLimits::default());
    let me = Author::User(owner.id);
    let first = ws.write(&path("a"), b"x".to_vec(), Precondition::None, me).await.unwrap();
    let again = ws.write(&path("a"), b"x".to_vec(), Precondition::None, me).await.unwrap();
    assert!(!again.changed && !again.created);
    assert_eq!(again.revision, first.revision);
    assert_eq!(again.file, first.file);
    assert_eq!(store.changes_between(project.id, 0, 10).await.unwrap().len(), 1);
}

async fn missing_files_are_not_found_and_other_projects_files_are_invisible(db: &Database) {
    let (store, owner, project) = setup(db).await;
    let other = store.create_project(NewProject::managed(owner.id, "other")).await.unwrap();
    let me = Author::User(owner.id);
    workspace(&store, &other, WorkspaceLimits::default())
        .write(&path("secret.txt"), b"other project".to_vec(), Precondition::None, me)
        .await
        .unwrap();
    let ws = workspace(&store, &project, WorkspaceLimits::default());
    let err = ws.read(&path("secret.txt")).await.unwrap_err();
    assert!(matches!(err, WorkspaceError::FileNotFound(_)), "got {err:?}");
    let err = ws.delete(&path("secret.txt"), Precondition::None, me).await.unwrap_err();
    assert!(matches!(err, WorkspaceError::FileNotFound(_)), "got {err:?}");
    assert!(ws.list(None, PageRequest::first(10)).await.unwrap().items.is_empty());
    let sha = ContentHash::of(b"other project");
    let err = store.blob(project.id, &sha).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { entity: "blob" }), "got {err:?}");
    let gone = agentd_core::ProjectId::new();
    let err =
        workspace(&store, &Project { id: gone, ..project.clone() }, WorkspaceLimits::default())
            .write(&path("a"), b"x".to_vec(), Precondition::None, me)
            .await
            .unwrap_err();
    assert!(
        matches!(err, WorkspaceError::Store(StoreError::NotFound { entity: "project" })),
        "got {err:?}"
    );
}

async fn listings_are_in_path_order_paginated_and_limited_to_a_prefix(db: &Database) {
    let (store, owner, project) = setup(db).await;
    let ws = workspace(&store, &project, WorkspaceLimits::default());
    let me = Author::User(owner.id);
    let paths = ["b.txt", "a/z.rs", "a/b/c.rs", "a.txt", "ab/x", "a-b/y", "Z", "a/é.md"];
    for p in paths {
        ws.write(&path(p), p.as_bytes().to_vec(), Precondition::None, me).await.unwrap();
    }
    let mut expected: Vec<&str> = paths.to_vec();
    expected.sort_unstable();
    let mut seen = Vec::new();
    let mut request = PageRequest::first(3);
    loop {
        let page = ws.list(None, request.clone()).await.unwrap();
        assert!(page.items.len() <= 3);
        for f in &page.items {
            assert_eq!(f.sha256, ContentHash::of(f.path.as_str().as_bytes()));
            assert_eq!(f.size, f.path.as_str().len() as u64);
        }
        seen.extend(page.items.into_iter().map(|f| f.path.as_str().to_owned()));
        match page.next {
            Some(next) => request.after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, expected, "byte order, every file exactly once");
    let under_a = ws.list(Some(&path("a")), PageRequest::first(10)).await.unwrap();
    let names: Vec<_> = under_a.items.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(names, ["a/b/c.rs", "a/z.rs", "a/é.md"]);
    let mut after = PageRequest::first(10);
    after.after = Some(path("a/b/c.rs"));
    let rest = ws.list(Some(&path("a")), after).await.unwrap();
    assert_eq!(rest.items.len(), 2);
}

async fn if_match_and_if_none_match_guard_writes_and_deletes(db: &Database) {
    let (store, owner, project) = setup(db).await;
    let ws = workspace(&store, &project, WorkspaceLimits::default());
    let me = Author::User(owner.id);
    let p = path("doc.md");
    let v1 = ws.write(&p, b"v1".to_vec(), Precondition::IfNotExists, me).await.unwrap();
    let err = ws.write(&p, b"again".to_vec(), Precondition::IfNotExists, me).await.unwrap_err();
    assert!(
        matches!(&err, WorkspaceError::PreconditionFailed { current: Some(c) } if *c == v1.file.sha256),
        "got {err:?}"
    );
    let v2 = ws
        .write(&p, b"v2".to_vec(), Precondition::IfMatch(v1.file.sha256.clone()), me)
        .await
        .unwrap();
    let err = ws
        .write(&p, b"v3".to_vec(), Precondition::IfMatch(v1.file.sha256.clone()), me)
        .await
        .unwrap_err();
    assert!(matches!(err, WorkspaceError::PreconditionFailed { .. }), "got {err:?}");
    assert_eq!(ws.read(&p).await.unwrap().content, b"v2");
    let err = ws.delete(&p, Precondition::IfMatch(v1.file.sha256.clone()), me).await.unwrap_err();
    assert!(matches!(err, WorkspaceError::PreconditionFailed { .. }), "got {err:?}");
    let err = ws.write(&path("new"), b"x".to_vec(), Precondition::IfExists, me).await.unwrap_err();
    assert!(matches!(err, WorkspaceError::PreconditionFailed { current: None }), "got {err:?}");
    let deleted = ws.delete(&p, Precondition::IfMatch(v2.file.sha256.clone()), me).await.unwrap();
    assert_eq!(deleted.revision, v2.revision + 1);
    let err = ws.read(&p).await.unwrap_err();
    assert!(matches!(err, WorkspaceError::FileNotFound(_)), "got {err:?}");
    let err =
        ws.write(&p, b"v4".to_vec(), Precondition::IfMatch(v2.file.sha256), me).await.unwrap_err();
    assert!(matches!(err, WorkspaceError::PreconditionFailed { current: None }), "got {err:?}");
}

async fn concurrent_if_match_writers_let_exactly_one_through(db: &Database) {
    let (store, owner, project) = setup(db).await;
    let ws = Arc::new(workspace(&store, &project, WorkspaceLimits::default()));
    let me = Author::User(owner.id);
    let v1 = ws.write(&path("race"), b"v1".to_vec(), Precondition::None, me).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..10 {
        let ws = ws.clone();
        let tag = v1.file.sha256.clone();
        tasks.push(tokio::spawn(async move {
            ws.write(
                &path("race"),
                format!("writer {i}").into_bytes(),
                Precondition::IfMatch(tag),
                me,
            )
            .await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(WorkspaceError::PreconditionFailed { .. }) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(ok, 1);
    assert_eq!(store.revision(project.id).await.unwrap(), 2);
}

async fn each_limit_is_enforced_with_a_clear_error(db: &Database) {
    let (store, owner, project) = setup(db).await;
    let limits =
        WorkspaceLimits { max_file_bytes: 10, max_project_bytes: 25, max_project_files: 3 };
    let ws = workspace(&store, &project, limits);
    let me = Author::User(owner.id);
    let err = ws.write(&path("big"), vec![b'x'; 11], Precondition::None, me).await.unwrap_err();
    assert!(matches!(err, WorkspaceError::FileTooLarge { size: 11, limit: 10 }), "got {err:?}");
    assert!(err.to_string().contains("AGENTD_MAX_FILE_BYTES"));
    ws.write(&path("a"), vec![b'a'; 10], Precondition::None, me).await.unwrap();
    ws.write(&path("b"), vec![b'b'; 10], Precondition::None, me).await.unwrap();
    let err = ws.write(&path("c"), vec![b'c'; 6], Precondition::None, me).await.unwrap_err();
    assert!(matches!(err, WorkspaceError::ProjectTooLarge { limit: 25 }), "got {err:?}");
    assert!(err.to_string().contains("AGENTD_MAX_PROJECT_BYTES"));
    ws.write(&path("c"), vec![b'c'; 5], Precondition::None, me).await.unwrap();
    let err = ws.write(&path("d"), Vec::new(), Precondition::None, me).await.unwrap_err();
    assert!(matches!(err, WorkspaceError::TooManyFiles { limit: 3 }), "got {err:?}");
    assert!(err.to_string().contains("AGENTD_MAX_PROJECT_FILES"));
    // Replacing a file counts its new size, not both.
    ws.write(&path("a"), vec![b'A'; 10], Precondition::None, me).await.unwrap();
    // A project over a limit that was lowered since may still shrink.
    let tighter =
        WorkspaceLimits { max_file_bytes: 10, max_project_bytes: 5, max_project_files: 1 };
    let ws = workspace(&store, &project, tighter);
    ws.write(&path("a"), vec![b'a'; 1], Precondition::None, me).await.unwrap();
    ws.delete(&path("b"), Precondition::None, me).await.unwrap();
    let err = ws.write(&path("e"), vec![], Precondition::None, me).await.unwrap_err();
    assert!(matches!(err, WorkspaceError::TooManyFiles { limit: 1 }), "got {err:?}");
    let files = ws.list(None, PageRequest::first(10)).await.unwrap();
    assert_eq!(files.items.len(), 2);
}

async fn concurrent_writers_cannot_exceed_the_file_count_limit(db: &Database) {
    let (store, owner, project) = setup(db).await;
    let limits =
        WorkspaceLimits { max_file_bytes: 100, max_project_bytes: 1000, max_project_files: 5 };
    let ws = Arc::new(workspace(&store, &project, limits));
    let me = Author::User(owner.id);
    let mut tasks = Vec::new();
    for i in 0..20 {
        let ws = ws.clone();
        tasks.push(tokio::spawn(async move {
            ws.write(&path(&format!("f{i}")), vec![b'x'; 10], Precondition::None, me).await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(WorkspaceError::TooManyFiles { limit: 5 }) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(ok, 5);
    assert_eq!(ws.list(None, PageRequest::first(100)).await.unwrap().items.len(), 5);
}

async fn a_file_cannot_stand_where_a_directory_is_or_the_reverse(db: &Database) {
    let (store, owner, project) = setup(db).await;
    let ws = workspace(&store, &project, WorkspaceLimits::default());
    let me = Author::User(owner.id);
    ws.write(&path("a/b/c.txt"), b"c".to_vec(), Precondition::None, me).await.unwrap();
    let err = ws.write(&path("a/b"), b"x".to_vec(), Precondition::None, me).await.unwrap_err();
    assert!(
        matches!(err, WorkspaceError::PathConflict { existing: "directory", .. }),
        "got {err:?}"
    );
    let err =
        ws.write(&path("a/b/c.txt/d"), b"x".to_vec(), Precondition::None, me).await.unwrap_err();
    assert!(matches!(err, WorkspaceError::PathConflict { existing: "file", .. }), "got {err:?}");
    ws.write(&path("a/b0"), b"sibling".to_vec(), Precondition::None, me).await.unwrap();
    ws.write(&path("a/b.txt"), b"sibling".to_vec(), Precondition::None, me).await.unwrap();
}

async fn every_change_is_logged_and_listed_since_a_revision(db: &Database) {
    let (store, owner, project) = setup(db).await;
    let ws = workspace(&store, &project, WorkspaceLimits::default());
    let user = Author::User(owner.id);
    let run = Author::Run(RunId::new());
    ws.write(&path("a"), b"1".to_vec(), Precondition::None, user).await.unwrap();
    ws.write(&path("a"), b"2".to_vec(), Precondition::None, run).await.unwrap();
    ws.write(&path("b"), b"b".to_vec(), Precondition::None, run).await.unwrap();
    ws.delete(&path("a"), Precondition::None, user).await.unwrap();
    let all = store.list_changes(project.id, 0, PageRequest::first(10)).await.unwrap();
    let summary: Vec<_> = all
        .items
        .iter()
        .map(|c| {
            (c.revision, c.path.as_str(), c.old_sha256.is_some(), c.new_sha256.is_some(), c.author)
        })
        .collect();
    assert_eq!(
        summary,
        [
            (1, "a", false, true, user),
            (2, "a", true, true, run),
            (3, "b", false, true, run),
            (4, "a", true, false, user),
        ]
    );
    assert_eq!(all.items[1].old_sha256, Some(ContentHash::of(b"1")));
    assert_eq!(all.items[1].new_sha256, Some(ContentHash::of(b"2")));
    let since = store.list_changes(project.id, 2, PageRequest::first(1)).await.unwrap();
    assert_eq!(since.items.len(), 1);
    assert_eq!(since.items[0].revision, 3);
    let mut next = PageRequest::first(1);
    next.after = since.next.clone();
    let rest = store.list_changes(project.id, 2, next).await.unwrap();
    assert_eq!(rest.items[0].revision, 4);
    assert!(rest.next.is_none());
}

async fn diffs_between_revisions_are_unified_and_work_both_ways(db: &Database) {
    let (store, owner, project) = setup(db).await;
    let ws = workspace(&store, &project, WorkspaceLimits::default());
    let me = Author::User(owner.id);
    ws.write(&path("src/lib.rs"), b"one\ntwo\nthree\n".to_vec(), Precondition::None, me)
        .await
        .unwrap();
    ws.write(&path("logo.bin"), vec![0, 1, 2], Precondition::None, me).await.unwrap();
    ws.write(&path("src/lib.rs"), b"one\n2\nthree\n".to_vec(), Precondition::None, me)
        .await
        .unwrap();
    ws.write(&path("logo.bin"), vec![0, 1, 3], Precondition::None, me).await.unwrap();
    ws.delete(&path("src/lib.rs"), Precondition::None, me).await.unwrap();
    let current = store.revision(project.id).await.unwrap();
    assert_eq!(current, 5);

    let d = revision::diff(store.as_ref(), project.id, 1, 3, current).await.unwrap();
    assert!(
        d.contains("--- a/src/lib.rs\n+++ b/src/lib.rs\n@@ -1,3 +1,3 @@\n one\n-two\n+2\n three\n"),
        "{d}"
    );
    assert!(
        d.contains("new file mode 100644\nBinary files /dev/null and b/logo.bin differ\n"),
        "{d}"
    );
    let back = revision::diff(store.as_ref(), project.id, 3, 1, current).await.unwrap();
    assert!(back.contains("-2\n+two\n"), "{back}");
    assert!(
        back.contains("deleted file mode 100644\nBinary files a/logo.bin and /dev/null differ\n"),
        "{back}"
    );
    let d = revision::diff(store.as_ref(), project.id, 0, 5, current).await.unwrap();
    assert!(!d.contains("src/lib.rs"), "created and deleted within the range: {d}");
    let deleted = revision::diff(store.as_ref(), project.id, 3, 5, current).await.unwrap();
    assert!(deleted.contains("--- a/src/lib.rs\n+++ /dev/null\n"), "{deleted}");
    assert_eq!(revision::diff(store.as_ref(), project.id, 2, 2, current).await.unwrap(), "");
    let err = revision::diff(store.as_ref(), project.id, 0, 6, current).await.unwrap_err();
    assert!(
        matches!(err, WorkspaceError::UnknownRevision { requested: 6, current: 5 }),
        "got {err:?}"
    );
}

async fn revert_restores_a_revision_as_one_new_revision(db: &Database) {
    let (store, owner, project) = setup(db).await;
    let ws = workspace(&store, &project, WorkspaceLimits::default());
    let user = Author::User(owner.id);
    let run = Author::Run(RunId::new());
    ws.write(&path("keep.txt"), b"kept".to_vec(), Precondition::None, user).await.unwrap();
    ws.write(&path("edit.txt"), b"original".to_vec(), Precondition::None, user).await.unwrap();
    ws.write(&path("gone.txt"), b"will be deleted".to_vec(), Precondition::None, user)
        .await
        .unwrap();
    let checkpoint = store.revision(project.id).await.unwrap();
    // What an agent did afterwards.
    ws.write(&path("edit.txt"), b"agent edit".to_vec(), Precondition::None, run).await.unwrap();
    ws.write(&path("edit.txt"), b"agent edit 2".to_vec(), Precondition::None, run).await.unwrap();
    ws.delete(&path("gone.txt"), Precondition::None, run).await.unwrap();
    ws.write(&path("new/file.rs"), b"new".to_vec(), Precondition::None, run).await.unwrap();
    // A directory where a file stood at the checkpoint, and the reverse.
    ws.delete(&path("keep.txt"), Precondition::None, run).await.unwrap();
    ws.write(&path("keep.txt/inner"), b"x".to_vec(), Precondition::None, run).await.unwrap();
    let before_revert = store.revision(project.id).await.unwrap();

    let out = ws.revert(checkpoint, user).await.unwrap();
    assert_eq!(out.revision, before_revert + 1);
    assert!(out.changes.iter().all(|c| c.revision == out.revision && c.author == user));
    let changed: Vec<_> = out.changes.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(changed, ["edit.txt", "gone.txt", "keep.txt", "keep.txt/inner", "new/file.rs"]);
    let files = ws.list(None, PageRequest::first(10)).await.unwrap();
    let names: Vec<_> = files.items.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(names, ["edit.txt", "gone.txt", "keep.txt"]);
    assert_eq!(ws.read(&path("edit.txt")).await.unwrap().content, b"original");
    assert_eq!(ws.read(&path("gone.txt")).await.unwrap().content, b"will be deleted");
    assert_eq!(ws.read(&path("keep.txt")).await.unwrap().content, b"kept");
    // The revert is itself a revision that can be diffed and reverted.
    let d = revision::diff(store.as_ref(), project.id, checkpoint, out.revision, out.revision)
        .await
        .unwrap();
    assert_eq!(d, "");
    let undo = ws.revert(before_revert, user).await.unwrap();
    assert_eq!(ws.read(&path("edit.txt")).await.unwrap().content, b"agent edit 2");
    assert_eq!(undo.revision, out.revision + 1);
    // Reverting to the current revision changes nothing.
    let noop = ws.revert(undo.revision, user).await.unwrap();
    assert_eq!(noop.revision, undo.revision);
    assert!(noop.changes.is_empty());
    let err = ws.revert(undo.revision + 1, user).await.unwrap_err();
    assert!(matches!(err, WorkspaceError::UnknownRevision { .. }), "got {err:?}");
    let to_empty = ws.revert(0, user).await.unwrap();
    assert!(ws.list(None, PageRequest::first(10)).await.unwrap().items.is_empty());
    assert_eq!(to_empty.revision, undo.revision + 1);
}

async fn recorded_changes_keep_both_contents_for_diffs(db: &Database) {
    let (store, owner, project) = setup(db).await;
    let me = Author::User(owner.id);
    let old = Blob::new(b"on disk before\n".to_vec());
    let new = Blob::new(b"written by agentd\n".to_vec());
    let revision = store
        .record_changes(
            project.id,
            vec![
                NewChange { path: path("a.txt"), old: Some(old.clone()), new: Some(new.clone()) },
                NewChange { path: path("b.txt"), old: None, new: Some(old.clone()) },
            ],
            me,
        )
        .await
        .unwrap();
    assert_eq!(revision, 1);
    assert_eq!(store.record_changes(project.id, vec![], me).await.unwrap(), 1);
    assert_eq!(store.blob(project.id, &old.sha256).await.unwrap(), old.content);
    assert_eq!(store.blob(project.id, &new.sha256).await.unwrap(), new.content);
    let d = revision::diff(store.as_ref(), project.id, 0, 1, 1).await.unwrap();
    assert!(d.contains("-on disk before\n+written by agentd\n"), "{d}");
    // Recorded changes are history only: managed files are untouched.
    let files = store.list_files(project.id, None, PageRequest::first(10)).await.unwrap();
    assert!(files.items.is_empty());
}

async fn a_batch_is_one_revision_or_nothing_within_the_limits(db: &Database) {
    let (store, owner, project) = setup(db).await;
    let limits =
        WorkspaceLimits { max_file_bytes: 100, max_project_bytes: 1000, max_project_files: 3 };
    let ws = workspace(&store, &project, limits);
    let me = Author::User(owner.id);
    let put = |p: &str, c: &str| FileEdit {
        path: path(p),
        content: Some(c.as_bytes().to_vec()),
        precondition: Precondition::None,
    };
    let done = ws.apply(vec![put("a", "1"), put("d/b", "2")], me).await.unwrap();
    assert_eq!(done.revision, 1);
    // Too many files, a file where a directory is, a file too large: nothing of the batch lands.
    for bad in [
        vec![put("c", "3"), put("e", "4")],
        vec![put("a", "changed"), put("d", "file over a directory")],
        vec![put("a", "changed"), put("big", &"x".repeat(101))],
    ] {
        assert!(ws.apply(bad, me).await.is_err());
        assert_eq!(store.revision(project.id).await.unwrap(), 1);
        assert_eq!(ws.read(&path("a")).await.unwrap().content, b"1");
    }
    // Deleting and creating in one batch frees the place first.
    let delete =
        FileEdit { path: path("d/b"), content: None, precondition: Precondition::IfExists };
    let done = ws.apply(vec![put("d", "now a file"), delete], me).await.unwrap();
    assert_eq!(done.revision, 2);
    assert_eq!(ws.read(&path("d")).await.unwrap().content, b"now a file");
    let changes = store.changes_between(project.id, 1, 2).await.unwrap();
    assert_eq!(changes.len(), 2);
}

contract!(
    files: text_and_binary_files_round_trip_with_their_etags,
    a_batch_is_one_revision_or_nothing_within_the_limits,
    writing_identical_content_is_not_a_new_revision,
    missing_files_are_not_found_and_other_projects_files_are_invisible,
    listings_are_in_path_order_paginated_and_limited_to_a_prefix,
    if_match_and_if_none_match_guard_writes_and_deletes,
    concurrent_if_match_writers_let_exactly_one_through,
    each_limit_is_enforced_with_a_clear_error,
    concurrent_writers_cannot_exceed_the_file_count_limit,
    a_file_cannot_stand_where_a_directory_is_or_the_reverse,
    every_change_is_logged_and_listed_since_a_revision,
    diffs_between_revisions_are_unified_and_work_both_ways,
    revert_restores_a_revision_as_one_new_revision,
    recorded_changes_keep_both_contents_for_diffs,
);
