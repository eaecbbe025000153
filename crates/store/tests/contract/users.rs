use agentd_core::StoreError;
use agentd_core::page::PageRequest;
use agentd_core::user::{NewUser, Role};
use agentd_store::Database;

use crate::contract;

fn new_user(email: &str) -> NewUser {
    NewUser { email: email.into(), password_hash: "$argon2id$v=19$fake".into(), role: Role::Member }
}

async fn a_created_user_reads_back_identically(db: &Database) {
    let store = db.store();
    let created = store.create_user(new_user("Ada@Example.com")).await.unwrap();
    assert_eq!(created.email, "ada@example.com");
    let by_id = store.user(created.id).await.unwrap();
    assert_eq!(by_id, created);
    let by_email = store.user_by_email("  ADA@example.COM ").await.unwrap();
    assert_eq!(by_email, created);
}

async fn emails_are_unique_whatever_their_case(db: &Database) {
    let store = db.store();
    store.create_user(new_user("grace@example.com")).await.unwrap();
    let err = store.create_user(new_user("GRACE@example.com")).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict { entity: "user", field: "email" }), "got {err:?}");
}

async fn a_missing_user_is_not_found(db: &Database) {
    let err = db.store().user(agentd_core::UserId::new()).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { entity: "user" }), "got {err:?}");
    let err = db.store().user_by_email("nobody@example.com").await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { entity: "user" }), "got {err:?}");
}

async fn users_page_newest_first_without_gaps_or_repeats(db: &Database) {
    let store = db.store();
    let mut made = Vec::new();
    for i in 0..5 {
        made.push(store.create_user(new_user(&format!("u{i}@example.com"))).await.unwrap().id);
    }
    made.reverse();
    let mut seen = Vec::new();
    let mut page = PageRequest::first(2);
    loop {
        let result = store.list_users(page.clone()).await.unwrap();
        assert!(result.items.len() <= 2);
        seen.extend(result.items.iter().map(|u| u.id));
        match result.next {
            Some(next) => page.after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, made);
}

contract!(
    users: a_created_user_reads_back_identically,
    emails_are_unique_whatever_their_case,
    a_missing_user_is_not_found,
    users_page_newest_first_without_gaps_or_repeats,
);
