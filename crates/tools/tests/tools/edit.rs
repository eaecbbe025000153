//! `edit_file` on a managed workspace: uniqueness, and patches that apply whole or not at all.

use std::sync::Arc;

use agentd_core::WorkspacePath;
use agentd_core::project::NewProject;
use agentd_core::tool::Tool as _;
use agentd_core::user::{NewUser, Role};
use agentd_core::workspace::{Author, ManagedWorkspace, Precondition, Workspace, WorkspaceLimits};
use agentd_test_support::TestDatabase;
use agentd_tools::edit::EditFile;
use serde_json::json;

struct Project {
    ws: Arc<dyn Workspace>,
    store: Arc<dyn agentd_core::Store>,
    id: agentd_core::ProjectId,
    _db: TestDatabase,
}

async fn project(files: &[(&str, &str)]) -> Project {
    let db = TestDatabase::sqlite();
    let store = db.open().await.store();
    let owner = store
        .create_user(NewUser {
            email: "o@example.com".into(),
            password_hash: "x".into(),
            role: Role::Member,
        })
        .await
        .unwrap();
    let project = store.create_project(NewProject::managed(owner.id, "p")).await.unwrap();
    let ws: Arc<dyn Workspace> =
        Arc::new(ManagedWorkspace::new(store.clone(), project.id, WorkspaceLimits::default()));
    for (path, content) in files {
        let p = WorkspacePath::parse(path).unwrap();
        ws.write(&p, content.as_bytes().to_vec(), Precondition::None, Author::User(owner.id))
            .await
            .unwrap();
    }
    Project { ws, store, id: project.id, _db: db }
}

async fn read(p: &Project, path: &str) -> String {
    let file = p.ws.read(&WorkspacePath::parse(path).unwrap()).await.unwrap();
    String::from_utf8(file.content).unwrap()
}

#[tokio::test]
async fn a_replacement_must_be_unique_unless_replace_all() {
    let p = project(&[("src/lib.rs", "let x = 1;\nlet x = 1;\nlet y = 2;\n")]).await;
    let ctx = crate::context(Some(p.ws.clone()), None, None);
    let tool = EditFile::new();
    let twice = tool
        .call(
            &ctx,
            json!({"path": "src/lib.rs", "old_string": "let x = 1;", "new_string": "let x = 3;"}),
        )
        .await;
    assert!(twice.is_error && twice.content.contains("occurs 2 times"), "{}", twice.content);
    assert_eq!(read(&p, "src/lib.rs").await, "let x = 1;\nlet x = 1;\nlet y = 2;\n");
    let once = tool
        .call(
            &ctx,
            json!({"path": "src/lib.rs", "old_string": "let y = 2;", "new_string": "let y = 5;"}),
        )
        .await;
    assert!(!once.is_error, "{}", once.content);
    let all = tool
        .call(
            &ctx,
            json!({"path": "src/lib.rs", "old_string": "x = 1", "new_string": "x = 9", "replace_all": true}),
        )
        .await;
    assert!(!all.is_error, "{}", all.content);
    assert_eq!(read(&p, "src/lib.rs").await, "let x = 9;\nlet x = 9;\nlet y = 5;\n");
    let missing =
        tool.call(&ctx, json!({"path": "nope.rs", "old_string": "a", "new_string": "b"})).await;
    assert!(missing.is_error && missing.content.contains("no such file"), "{}", missing.content);
}

#[tokio::test]
async fn a_patch_with_one_bad_hunk_writes_nothing_and_a_good_one_is_one_revision() {
    let p = project(&[("a.txt", "alpha\n"), ("b.txt", "beta\n"), ("c.txt", "gamma\n")]).await;
    let before = p.store.revision(p.id).await.unwrap();
    let ctx = crate::context(Some(p.ws.clone()), None, None);
    let tool = EditFile::new();
    let bad = tool
        .call(
            &ctx,
            json!({"edits": [
                {"path": "a.txt", "old_string": "alpha", "new_string": "ALPHA"},
                {"path": "b.txt", "old_string": "beta", "new_string": "BETA"},
                {"path": "c.txt", "old_string": "delta", "new_string": "DELTA"}
            ]}),
        )
        .await;
    assert!(bad.is_error, "{}", bad.content);
    assert!(bad.content.contains("c.txt") && bad.content.contains("not found"), "{}", bad.content);
    assert_eq!(read(&p, "a.txt").await, "alpha\n");
    assert_eq!(read(&p, "b.txt").await, "beta\n");
    assert_eq!(p.store.revision(p.id).await.unwrap(), before, "no revision for a failed patch");

    let good = tool
        .call(
            &ctx,
            json!({"edits": [
                {"path": "a.txt", "old_string": "alpha", "new_string": "ALPHA"},
                {"path": "b.txt", "old_string": "beta", "new_string": "BETA"},
                {"path": "a.txt", "old_string": "ALPHA", "new_string": "ALPHA!"}
            ]}),
        )
        .await;
    assert!(!good.is_error, "{}", good.content);
    assert_eq!(read(&p, "a.txt").await, "ALPHA!\n");
    assert_eq!(read(&p, "b.txt").await, "BETA\n");
    let after = p.store.revision(p.id).await.unwrap();
    assert_eq!(after, before + 1, "one revision for the whole patch");
    let changes = p.store.changes_between(p.id, before, after).await.unwrap();
    assert_eq!(changes.len(), 2);
    assert!(changes.iter().all(|c| c.author == ctx.author()));
}
