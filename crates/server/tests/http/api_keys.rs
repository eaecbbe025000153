use std::collections::BTreeSet;

use agentd_api::auth::api_key;
use agentd_core::auth::{NewApiKey, Scope};
use agentd_core::user::Role;
use agentd_test_support::{TestApp, spawn_app};
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

use crate::expect_envelope;

async fn create_key(app: &TestApp, token: &str, body: Value) -> reqwest::Response {
    app.client.post(app.url("/v1/api-keys")).bearer_auth(token).json(&body).send().await.unwrap()
}

#[tokio::test]
async fn a_key_is_shown_once_works_by_either_header_and_stops_when_revoked() {
    let app = spawn_app().await;
    let (user, token) = app.signed_in("k@example.com", Role::Member).await;
    let res = create_key(&app, &token, json!({"name": "ci"})).await;
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    let key = created["api_key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("agk_"));
    assert_eq!(created["scopes"], json!(["read", "write"]));
    assert!(key.starts_with(created["prefix"].as_str().unwrap()));

    for (header, value) in [("authorization", format!("Bearer {key}")), ("x-api-key", key.clone())]
    {
        let res = app.client.get(app.url("/v1/me")).header(header, value).send().await.unwrap();
        assert_eq!(res.status(), 200, "{header}");
        let me: Value = res.json().await.unwrap();
        assert_eq!(me["id"], user.id.to_string());
        assert_eq!(me["credential"], "api_key");
    }

    let res = app.client.get(app.url("/v1/api-keys")).bearer_auth(&token).send().await.unwrap();
    let listed = res.text().await.unwrap();
    assert!(!listed.contains(&key[key.len() - 20..]), "the secret was listed: {listed}");
    let listed: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed["data"][0]["id"], created["id"]);
    // last_used_at is recorded (asynchronously, so poll briefly).
    let mut used = false;
    for _ in 0..50 {
        let res = app.client.get(app.url("/v1/api-keys")).bearer_auth(&token).send().await.unwrap();
        let body: Value = res.json().await.unwrap();
        if body["data"][0]["last_used_at"].is_string() {
            used = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(used, "last_used_at was never recorded");

    let id = created["id"].as_str().unwrap();
    let res = app
        .client
        .delete(app.url(&format!("/v1/api-keys/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let res = app.client.get(app.url("/v1/me")).header("x-api-key", &key).send().await.unwrap();
    expect_envelope(res, 401, "unauthorized").await;
}

#[tokio::test]
async fn an_expired_key_is_refused() {
    let app = spawn_app().await;
    let user = app.user("e@example.com", Role::Member).await;
    let generated = api_key::generate();
    app.store
        .create_api_key(NewApiKey {
            id: generated.id,
            owner_id: user.id,
            name: "old".into(),
            scopes: BTreeSet::from([Scope::Read]),
            secret_hash: generated.secret_hash,
            expires_at: Some(OffsetDateTime::now_utc() - Duration::minutes(1)),
        })
        .await
        .unwrap();
    let res = app
        .client
        .get(app.url("/v1/me"))
        .header("x-api-key", &generated.text)
        .send()
        .await
        .unwrap();
    expect_envelope(res, 401, "unauthorized").await;
}

#[tokio::test]
async fn forged_and_malformed_keys_are_refused() {
    let app = spawn_app().await;
    let (_, token) = app.signed_in("f@example.com", Role::Member).await;
    let res = create_key(&app, &token, json!({"name": "real"})).await;
    let key = res.json::<Value>().await.unwrap()["api_key"].as_str().unwrap().to_owned();
    let forged = format!("{}{}", &key[..key.len() - 43], "A".repeat(43));
    for bad in [forged.as_str(), "agk_", "agk_nothex_secret", &format!("{key}x")] {
        let res = app.client.get(app.url("/v1/me")).header("x-api-key", bad).send().await.unwrap();
        expect_envelope(res, 401, "unauthorized").await;
    }
}

#[tokio::test]
async fn key_creation_input_is_validated() {
    let app = spawn_app().await;
    let (_, token) = app.signed_in("v@example.com", Role::Member).await;
    for body in [
        json!({"name": ""}),
        json!({"name": "x".repeat(101)}),
        json!({"name": "x", "scopes": ["root"]}),
        json!({"name": "x", "scopes": []}),
        json!({"name": "x", "expires_at": "tomorrow"}),
        json!({"name": "x", "expires_at": "2001-01-01T00:00:00Z"}),
    ] {
        expect_envelope(create_key(&app, &token, body).await, 422, "validation_error").await;
    }
    // A member may not mint admin keys.
    expect_envelope(
        create_key(&app, &token, json!({"name": "x", "scopes": ["admin"]})).await,
        403,
        "forbidden",
    )
    .await;
}
