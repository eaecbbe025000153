use agentd_core::page::PageRequest;
use agentd_core::project::{NewProject, ProjectStatus};
use agentd_core::user::{NewUser, Role, User};
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
    NewProject { owner_id: owner.id, title: title.into(), description: Some("d".into()) }
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
    let a_page = db.store().list_projects(Some(a.id), PageRequest::first(10)).await.unwrap();
    assert_eq!(a_page.items.len(), 3);
    assert!(a_page.items.iter().all(|p| p.owner_id == a.id));
    assert!(a_page.next.is_none());
    let titles: Vec<_> = a_page.items.iter().map(|p| p.title.as_str()).collect();
    assert_eq!(titles, ["a2", "a1", "a0"]);
    let all = db.store().list_projects(None, PageRequest::first(10)).await.unwrap();
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

contract!(
    projects: a_created_project_reads_back_identically,
    another_owner_cannot_see_a_project,
    listing_is_scoped_to_the_owner,
    a_project_needs_an_existing_owner,
);
