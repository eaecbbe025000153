use std::collections::BTreeSet;

use agentd_core::auth::{NewApiKey, RefreshOutcome, Scope};
use agentd_core::page::PageRequest;
use agentd_core::user::{NewUser, Role, User, UserPatch};
use agentd_core::{ApiKeyId, StoreError};
use agentd_store::Database;
use time::{Duration, OffsetDateTime};

use crate::contract;

async fn user(db: &Database, email: &str) -> User {
    db.store()
        .create_user(NewUser { email: email.into(), password_hash: "h".into(), role: Role::Member })
        .await
        .unwrap()
}

fn later(days: i64) -> OffsetDateTime {
    OffsetDateTime::now_utc() + Duration::days(days)
}

async fn a_user_can_be_patched(db: &Database) {
    let u = user(db, "p@example.com").await;
    let patched = db
        .store()
        .update_user(
            u.id,
            UserPatch { role: Some(Role::Admin), disabled: Some(true), password_hash: None },
        )
        .await
        .unwrap();
    assert_eq!(patched.role, Role::Admin);
    assert!(patched.disabled);
    assert_eq!(patched.password_hash, "h");
    assert_eq!(db.store().user(u.id).await.unwrap(), patched);
    let err =
        db.store().update_user(agentd_core::UserId::new(), UserPatch::default()).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
}

async fn a_refresh_token_rotates_once_and_its_reuse_revokes_the_session(db: &Database) {
    let store = db.store();
    let u = user(db, "r@example.com").await;
    let session = store.create_session(u.id, b"first", later(30)).await.unwrap();
    let outcome = store.rotate_refresh_token(b"first", b"second", later(30)).await.unwrap();
    assert!(
        matches!(outcome, RefreshOutcome::Rotated { ref session } if session.user_id == u.id),
        "{outcome:?}"
    );
    let (s, su) = store.session_with_user(session.id).await.unwrap();
    assert_eq!(s.revoked_at, None);
    assert_eq!(su.id, u.id);
    // Presenting the used token again revokes the whole family, including the newer token.
    let outcome = store.rotate_refresh_token(b"first", b"third", later(30)).await.unwrap();
    assert_eq!(outcome, RefreshOutcome::Reused { session_id: session.id });
    assert!(store.session_with_user(session.id).await.unwrap().0.revoked_at.is_some());
    let outcome = store.rotate_refresh_token(b"second", b"fourth", later(30)).await.unwrap();
    assert_eq!(outcome, RefreshOutcome::Expired);
    assert_eq!(
        store.rotate_refresh_token(b"never", b"x", later(30)).await.unwrap(),
        RefreshOutcome::Unknown
    );
}

async fn an_expired_refresh_token_does_not_rotate(db: &Database) {
    let store = db.store();
    let u = user(db, "e@example.com").await;
    store.create_session(u.id, b"old", later(-1)).await.unwrap();
    assert_eq!(
        store.rotate_refresh_token(b"old", b"new", later(30)).await.unwrap(),
        RefreshOutcome::Expired
    );
}

async fn sessions_can_be_revoked_by_id_token_or_user(db: &Database) {
    let store = db.store();
    let u = user(db, "s@example.com").await;
    let a = store.create_session(u.id, b"a", later(1)).await.unwrap();
    let b = store.create_session(u.id, b"b", later(1)).await.unwrap();
    let c = store.create_session(u.id, b"c", later(1)).await.unwrap();
    store.revoke_session(a.id).await.unwrap();
    store.revoke_session(a.id).await.unwrap();
    assert!(store.session_with_user(a.id).await.unwrap().0.revoked_at.is_some());
    assert_eq!(store.revoke_session_of_token(b"b").await.unwrap(), Some(b.id));
    assert_eq!(store.revoke_session_of_token(b"zzz").await.unwrap(), None);
    assert!(store.session_with_user(c.id).await.unwrap().0.revoked_at.is_none());
    store.revoke_user_sessions(u.id).await.unwrap();
    assert!(store.session_with_user(c.id).await.unwrap().0.revoked_at.is_some());
}

async fn api_keys_are_owner_scoped(db: &Database) {
    let store = db.store();
    let a = user(db, "ka@example.com").await;
    let b = user(db, "kb@example.com").await;
    let new = |owner: &User, name: &str| NewApiKey {
        id: ApiKeyId::new(),
        owner_id: owner.id,
        name: name.into(),
        scopes: BTreeSet::from([Scope::Read, Scope::Write]),
        secret_hash: vec![1, 2, 3],
        expires_at: Some(later(10)),
    };
    let ka = store.create_api_key(new(&a, "ci")).await.unwrap();
    store.create_api_key(new(&b, "other")).await.unwrap();
    let read = store.api_key(ka.id).await.unwrap();
    assert_eq!(read, ka);
    let mine = store.list_api_keys(Some(a.id), PageRequest::first(10)).await.unwrap();
    assert_eq!(mine.items.iter().map(|k| k.id).collect::<Vec<_>>(), vec![ka.id]);
    assert!(matches!(
        store.revoke_api_key(Some(b.id), ka.id).await,
        Err(StoreError::NotFound { .. })
    ));
    store.revoke_api_key(Some(a.id), ka.id).await.unwrap();
    assert!(store.api_key(ka.id).await.unwrap().revoked_at.is_some());
    assert!(
        store.list_api_keys(Some(a.id), PageRequest::first(10)).await.unwrap().items.is_empty()
    );
    assert!(matches!(
        store.revoke_api_key(Some(a.id), ka.id).await,
        Err(StoreError::NotFound { .. })
    ));
}

async fn api_key_use_is_recorded_at_most_once_per_interval(db: &Database) {
    let store = db.store();
    let a = user(db, "t@example.com").await;
    let key = store
        .create_api_key(NewApiKey {
            id: ApiKeyId::new(),
            owner_id: a.id,
            name: "t".into(),
            scopes: BTreeSet::from([Scope::Read]),
            secret_hash: vec![9],
            expires_at: None,
        })
        .await
        .unwrap();
    let t0 = agentd_core::clock::truncate_to_micros(OffsetDateTime::now_utc());
    store.touch_api_key(key.id, t0, t0 - Duration::minutes(1)).await.unwrap();
    assert_eq!(store.api_key(key.id).await.unwrap().last_used_at, Some(t0));
    let t1 = t0 + Duration::seconds(10);
    store.touch_api_key(key.id, t1, t1 - Duration::minutes(1)).await.unwrap();
    assert_eq!(store.api_key(key.id).await.unwrap().last_used_at, Some(t0));
    let t2 = t0 + Duration::minutes(2);
    store.touch_api_key(key.id, t2, t2 - Duration::minutes(1)).await.unwrap();
    assert_eq!(store.api_key(key.id).await.unwrap().last_used_at, Some(t2));
}

async fn lockout_counters_count_lock_and_clear(db: &Database) {
    let store = db.store();
    assert_eq!(store.lockout("acct:x").await.unwrap().failures, 0);
    for expected in 1..=3 {
        assert_eq!(store.record_failure("acct:x").await.unwrap(), expected);
    }
    assert_eq!(store.record_failure("ip:1").await.unwrap(), 1);
    let until = agentd_core::clock::truncate_to_micros(later(1));
    store.lock_until("acct:x", until).await.unwrap();
    let l = store.lockout("acct:x").await.unwrap();
    assert_eq!((l.failures, l.locked_until), (3, Some(until)));
    store.clear_lockout("acct:x").await.unwrap();
    assert_eq!(store.lockout("acct:x").await.unwrap().failures, 0);
    assert_eq!(store.lockout("ip:1").await.unwrap().failures, 1);
}

contract!(
    identity: a_user_can_be_patched,
    a_refresh_token_rotates_once_and_its_reuse_revokes_the_session,
    an_expired_refresh_token_does_not_rotate,
    sessions_can_be_revoked_by_id_token_or_user,
    api_keys_are_owner_scoped,
    api_key_use_is_recorded_at_most_once_per_interval,
    lockout_counters_count_lock_and_clear,
);
