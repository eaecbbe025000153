use agentd_core::page::PageRequest;
use agentd_core::project::{NewProject, ProjectFilter, ProjectPatch, ProjectStatus, WorkspaceKind};
use agentd_core::user::{NewUser, Role, User};
use agentd_core::workspace::{Author, Precondition};
use agentd_core::workspace::{FileWrite, WorkspaceLimits};
use agentd_core::{ProjectId, StoreError};
use agentd_store::Database;

use crate::contract;

async fn user(db: &Database, email: &str) -> User {
    db.store()
        .create_user(NewUser { email: email.into(), password_hash: "x".into(), role: Role::Member })
        .await
        .unwrap()
}

fn new_project(owner: &User, title: &str) -> NewProject {
    NewProject { description: Some("d".into()), ..NewProject::managed(owner.id, title) }
}

async fn a_created_project_reads_back_identically(db: &Database) {
    let owner = user(db, "owner@example.com").await;
    let created = db.store().create_project(new_project(&owner, "demo")).await.unwrap();
    assert_eq!(created.status, ProjectStatus::Active);
    assert_eq!(created.revision, 0);
    let read = db.store().project(Some(owner.id), created.id).await.unwrap();
    assert_eq!(read, created);
}

async fn another_owner_cannot_see_a_project(db: &Database) {
    let a = user(db, "a@example.com").await;
    let b = user(db, "b@example.com").await;
    let project = db.store().create_project(new_project(&a, "a's")).await.unwrap();
    let err = db.store().project(Some(b.id), project.id).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { entity: "project" }), "got {err:?}");
    // Unscoped (admin) reads see it.
    assert_eq!(db.store().project(None, project.id).await.unwrap().id, project.id);
    // And a project that does not exist is the same NotFound.
    let err = db.store().project(Some(b.id), ProjectId::new()).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { entity: "project" }), "got {err:?}");
}

async fn listing_is_scoped_to_the_owner(db: &Database) {
    let a = user(db, "a@example.com").await;
    let b = user(db, "b@example.com").await;
    for i in 0..3 {
        db.store().create_project(new_project(&a, &format!("a{i}"))).await.unwrap();
    }
    db.store().create_project(new_project(&b, "b0")).await.unwrap();
    let a_page = db
        .store()
        .list_projects(Some(a.id), ProjectFilter::default(), PageRequest::first(10))
        .await
        .unwrap();
    assert_eq!(a_page.items.len(), 3);
    assert!(a_page.items.iter().all(|p| p.owner_id == a.id));
    assert!(a_page.next.is_none());
    let titles: Vec<_> = a_page.items.iter().map(|p| p.title.as_str()).collect();
    assert_eq!(titles, ["a2", "a1", "a0"]);
    let all = db
        .store()
        .list_projects(None, ProjectFilter::default(), PageRequest::first(10))
        .await
        .unwrap();
    assert_eq!(all.items.len(), 4);
}

async fn a_project_needs_an_existing_owner(db: &Database) {
    let ghost = User {
        id: agentd_core::UserId::new(),
        email: "ghost@example.com".into(),
        password_hash: String::new(),
        role: Role::Member,
        disabled: false,
        created_at: time::OffsetDateTime::UNIX_EPOCH,
        updated_at: time::OffsetDateTime::UNIX_EPOCH,
    };
    let err = db.store().create_project(new_project(&ghost, "orphan")).await.unwrap_err();
    assert!(matches!(err, StoreError::Backend(_)), "got {err:?}");
}

async fn every_field_round_trips_including_json_and_the_workspace_kind(db: &Database) {
    let owner = user(db, "owner@example.com").await;
    let mut settings = serde_json::Map::new();
    settings.insert("model".into(), serde_json::json!({"name": "m", "temperature": 0.2}));
    let new = NewProject {
        mode: "pair-programming".into(),
        tech_stack: Some(serde_json::json!(["rust", {"db": "postgres"}])),
        settings,
        workspace: WorkspaceKind::Directory { root: "/srv/work/demo".into() },
        ..new_project(&owner, "full")
    };
    let created = db.store().create_project(new.clone()).await.unwrap();
    let read = db.store().project(Some(owner.id), created.id).await.unwrap();
    assert_eq!(read, created);
    assert_eq!(read.mode, "pair-programming");
    assert_eq!(read.tech_stack, new.tech_stack);
    assert_eq!(read.settings, new.settings);
    assert_eq!(read.workspace, WorkspaceKind::Directory { root: "/srv/work/demo".into() });
    let plain = db.store().create_project(new_project(&owner, "plain")).await.unwrap();
    let plain = db.store().project(None, plain.id).await.unwrap();
    assert_eq!(plain.mode, "default");
    assert_eq!(plain.tech_stack, None);
    assert!(plain.settings.is_empty());
    assert_eq!(plain.workspace, WorkspaceKind::Managed);
}

async fn listing_filters_by_status_and_pages_with_a_cursor(db: &Database) {
    let owner = user(db, "owner@example.com").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            db.store().create_project(new_project(&owner, &format!("p{i}"))).await.unwrap().id,
        );
    }
    let archive = ProjectPatch { status: Some(ProjectStatus::Archived), ..ProjectPatch::default() };
    for id in [ids[1], ids[3]] {
        db.store().update_project(Some(owner.id), id, archive.clone()).await.unwrap();
    }
    let archived = ProjectFilter { status: Some(ProjectStatus::Archived) };
    let page =
        db.store().list_projects(Some(owner.id), archived, PageRequest::first(10)).await.unwrap();
    let got: Vec<_> = page.items.iter().map(|p| p.id).collect();
    assert_eq!(got, [ids[3], ids[1]]);

    let active = ProjectFilter { status: Some(ProjectStatus::Active) };
    let mut seen = Vec::new();
    let mut request = PageRequest::first(2);
    loop {
        let page = db.store().list_projects(Some(owner.id), active, request.clone()).await.unwrap();
        assert!(page.items.len() <= 2);
        seen.extend(page.items.iter().map(|p| p.id));
        match page.next {
            Some(next) => request.after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, [ids[4], ids[2], ids[0]]);
}

async fn a_patch_changes_only_the_fields_it_names(db: &Database) {
    let owner = user(db, "owner@example.com").await;
    let created = db.store().create_project(new_project(&owner, "before")).await.unwrap();
    let mut settings = serde_json::Map::new();
    settings.insert("k".into(), serde_json::json!(1));
    let patch = ProjectPatch {
        title: Some("after".into()),
        description: Some(None),
        tech_stack: Some(Some(serde_json::json!({"lang": "go"}))),
        settings: Some(settings.clone()),
        ..ProjectPatch::default()
    };
    let patched = db.store().update_project(Some(owner.id), created.id, patch).await.unwrap();
    assert_eq!(patched.title, "after");
    assert_eq!(patched.description, None);
    assert_eq!(patched.tech_stack, Some(serde_json::json!({"lang": "go"})));
    assert_eq!(patched.settings, settings);
    assert_eq!(patched.status, ProjectStatus::Active);
    assert_eq!(patched.mode, created.mode);
    assert!(patched.updated_at >= created.updated_at);
    let read = db.store().project(None, created.id).await.unwrap();
    assert_eq!(read, patched);
    let unchanged = db
        .store()
        .update_project(Some(owner.id), created.id, ProjectPatch::default())
        .await
        .unwrap();
    assert_eq!(unchanged, read);
}

async fn another_owner_can_neither_patch_nor_delete(db: &Database) {
    let a = user(db, "a@example.com").await;
    let b = user(db, "b@example.com").await;
    let project = db.store().create_project(new_project(&a, "a's")).await.unwrap();
    let patch = ProjectPatch { title: Some("stolen".into()), ..ProjectPatch::default() };
    let err = db.store().update_project(Some(b.id), project.id, patch).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { entity: "project" }), "got {err:?}");
    let err = db.store().delete_project(Some(b.id), project.id).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { entity: "project" }), "got {err:?}");
    assert_eq!(db.store().project(Some(a.id), project.id).await.unwrap().title, "a's");
}

async fn deleting_a_project_removes_its_files_and_history(db: &Database) {
    let owner = user(db, "owner@example.com").await;
    let project = db.store().create_project(new_project(&owner, "doomed")).await.unwrap();
    let keep = db.store().create_project(new_project(&owner, "kept")).await.unwrap();
    for p in [project.id, keep.id] {
        let write = FileWrite {
            path: "a.txt".parse().unwrap(),
            blob: agentd_core::workspace::Blob::new(b"same content".to_vec()),
            precondition: Precondition::None,
            author: Author::User(owner.id),
        };
        db.store().write_file(p, write, WorkspaceLimits::default()).await.unwrap();
    }
    db.store().delete_project(Some(owner.id), project.id).await.unwrap();
    let err = db.store().project(None, project.id).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { entity: "project" }), "got {err:?}");
    let files = db.store().list_files(project.id, None, PageRequest::first(10)).await.unwrap();
    assert!(files.items.is_empty());
    assert!(db.store().changes_between(project.id, 0, 10).await.unwrap().is_empty());
    // The other project's identical content is its own and survives.
    let kept = db.store().read_file(keep.id, &"a.txt".parse().unwrap()).await.unwrap();
    assert_eq!(kept.content, b"same content");
    let err = db.store().delete_project(None, project.id).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { entity: "project" }), "got {err:?}");
}

contract!(
    projects: a_created_project_reads_back_identically,
    every_field_round_trips_including_json_and_the_workspace_kind,
    listing_filters_by_status_and_pages_with_a_cursor,
    a_patch_changes_only_the_fields_it_names,
    another_owner_can_neither_patch_nor_delete,
    deleting_a_project_removes_its_files_and_history,
    another_owner_cannot_see_a_project,
    listing_is_scoped_to_the_owner,
    a_project_needs_an_existing_owner,
);
