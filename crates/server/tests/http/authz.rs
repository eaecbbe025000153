//! Roles, scopes, humans-only acts, and the tenancy rule on every route with a path parameter.

use agentd_core::user::Role;
use agentd_test_support::approvals::park_all;
use agentd_test_support::{TestApp, TestDatabase, spawn_app, spawn_app_with};
use serde_json::{Value, json};

use crate::expect_envelope;

async fn key_with(app: &TestApp, token: &str, scopes: &[&str]) -> String {
    let res = app
        .client
        .post(app.url("/v1/api-keys"))
        .bearer_auth(token)
        .json(&json!({"name": "k", "scopes": scopes}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    res.json::<Value>().await.unwrap()["api_key"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn members_cannot_manage_users_but_admins_can() {
    let app = spawn_app().await;
    let (_, member) = app.signed_in("m@example.com", Role::Member).await;
    let (_, admin) = app.signed_in("a@example.com", Role::Admin).await;
    let new_user = json!({"email": "n@example.com", "password": "long enough password"});
    let res = app
        .client
        .post(app.url("/v1/users"))
        .bearer_auth(&member)
        .json(&new_user)
        .send()
        .await
        .unwrap();
    expect_envelope(res, 403, "forbidden").await;
    let res = app.client.get(app.url("/v1/users")).bearer_auth(&member).send().await.unwrap();
    expect_envelope(res, 403, "forbidden").await;
    let res = app
        .client
        .post(app.url("/v1/users"))
        .bearer_auth(&admin)
        .json(&new_user)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let res = app
        .client
        .post(app.url("/v1/users"))
        .bearer_auth(&admin)
        .json(&new_user)
        .send()
        .await
        .unwrap();
    expect_envelope(res, 409, "conflict").await;
    let res =
        app.client.get(app.url("/v1/users?limit=2")).bearer_auth(&admin).send().await.unwrap();
    let page: Value = res.json().await.unwrap();
    assert_eq!(page["data"].as_array().unwrap().len(), 2);
    assert!(page["next_cursor"].is_string());
    // The new user can sign in.
    let res = app
        .client
        .post(app.url("/v1/auth/login"))
        .json(&json!({"email": "n@example.com", "password": "long enough password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn a_member_cannot_change_their_own_role() {
    let app = spawn_app().await;
    let (me, token) = app.signed_in("self@example.com", Role::Member).await;
    let res = app
        .client
        .patch(app.url(&format!("/v1/users/{}", me.id)))
        .bearer_auth(&token)
        .json(&json!({"role": "admin"}))
        .send()
        .await
        .unwrap();
    expect_envelope(res, 403, "forbidden").await;
    let res = app
        .client
        .get(app.url(&format!("/v1/users/{}", me.id)))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["role"], "member");
}

#[tokio::test]
async fn keys_are_limited_by_scope_and_are_never_human() {
    let app = spawn_app().await;
    let (_, admin) = app.signed_in("a@example.com", Role::Admin).await;
    let read_only = key_with(&app, &admin, &["read"]).await;
    let writer = key_with(&app, &admin, &["read", "write"]).await;
    let admin_key = key_with(&app, &admin, &["read", "write", "admin"]).await;
    let get_users =
        |key: &str| app.client.get(app.url("/v1/users")).header("x-api-key", key.to_owned()).send();
    // Reading users needs admin powers: only the key with the admin scope has them.
    expect_envelope(get_users(&read_only).await.unwrap(), 403, "forbidden").await;
    expect_envelope(get_users(&writer).await.unwrap(), 403, "forbidden").await;
    assert_eq!(get_users(&admin_key).await.unwrap().status(), 200);
    // A read-only key cannot write.
    let res = app
        .client
        .delete(app.url(&format!("/v1/api-keys/{}", uuid::Uuid::now_v7())))
        .header("x-api-key", &read_only)
        .send()
        .await
        .unwrap();
    expect_envelope(res, 403, "forbidden").await;
    // Keys cannot do humans-only acts, whatever their scopes.
    let res = app
        .client
        .post(app.url("/v1/api-keys"))
        .header("x-api-key", &admin_key)
        .json(&json!({"name": "minted"}))
        .send()
        .await
        .unwrap();
    expect_envelope(res, 403, "forbidden").await;
}

#[tokio::test]
async fn malformed_ids_in_paths_get_422() {
    let app = spawn_app().await;
    let (_, token) = app.signed_in("p@example.com", Role::Admin).await;
    for path in ["/v1/users/not-a-uuid", "/v1/users/123", "/v1/users/%00"] {
        let res = app.client.get(app.url(path)).bearer_auth(&token).send().await.unwrap();
        let body = expect_envelope(res, 422, "validation_error").await;
        assert_eq!(body["error"]["details"][0]["field"], "id", "{path}: {body}");
    }
    let res =
        app.client.get(app.url("/v1/users?limit=1000")).bearer_auth(&token).send().await.unwrap();
    expect_envelope(res, 422, "validation_error").await;
    let res =
        app.client.get(app.url("/v1/users?cursor=zzz")).bearer_auth(&token).send().await.unwrap();
    expect_envelope(res, 422, "validation_error").await;
}

/// A resource owned by `owner` for a route template, so that the tenancy test can ask another
/// tenant for it. Routes added later must add their fixture here: the test fails for a template
/// it does not know, so no route escapes it.
async fn fixture(app: &TestApp, template: &str, owner_token: &str, owner_id: &str) -> String {
    match template {
        "/v1/users/{id}" => template.replace("{id}", owner_id),
        "/v1/api-keys/{id}" => {
            let res = app
                .client
                .post(app.url("/v1/api-keys"))
                .bearer_auth(owner_token)
                .json(&json!({"name": "tenant"}))
                .send()
                .await
                .unwrap();
            let id = res.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
            template.replace("{id}", &id)
        }
        "/v1/projects/{id}/runs" | "/v1/jobs/{id}/list" | "/v1/projects/{id}/checks" => {
            let owner = app.store.user(owner_id.parse().unwrap()).await.unwrap();
            template.replace("{id}", &app.project(&owner).await.id.to_string())
        }
        t if t.starts_with("/v1/runs/{id}") || t == "/v1/jobs/{id}" => {
            let owner = app.store.user(owner_id.parse().unwrap()).await.unwrap();
            let project = app.project(&owner).await;
            let res = app
                .client
                .post(app.url(&format!("/v1/projects/{}/runs", project.id)))
                .bearer_auth(owner_token)
                .json(&json!({"agent": "code", "input": {"task": "tenancy"}}))
                .send()
                .await
                .unwrap();
            let id = res.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
            // A stored output of the run (the tenancy check stops at the run either way).
            template.replace("{id}", &id).replace("{blob_id}", &uuid::Uuid::now_v7().to_string())
        }
        "/v1/conversations/{id}" => {
            let res = app
                .client
                .post(app.url("/v1/conversations"))
                .bearer_auth(owner_token)
                .json(&json!({"title": "tenancy"}))
                .send()
                .await
                .unwrap();
            let id = res.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
            template.replace("{id}", &id)
        }
        "/v1/approvals/{id}" => {
            let approval = approval_fixture(app, owner_token, owner_id).await;
            template.replace("{id}", &approval)
        }
        "/v1/grants/{id}" => {
            let approval = approval_fixture(app, owner_token, owner_id).await;
            let res = app
                .client
                .post(app.url(&format!("/v1/approvals/{approval}")))
                .bearer_auth(owner_token)
                .json(&json!({"decision": "approve", "scope": "project"}))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
            let grants: Value = app
                .client
                .get(app.url("/v1/grants"))
                .bearer_auth(owner_token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            template.replace("{id}", grants["data"][0]["id"].as_str().unwrap())
        }
        "/v1/projects/{id}"
        | "/v1/projects/{id}/files"
        | "/v1/projects/{id}/files/{path}"
        | "/v1/projects/{id}/changes"
        | "/v1/projects/{id}/diff"
        | "/v1/projects/{id}/revert" => {
            let id = crate::managed_project(app, owner_token, "tenant").await;
            let res = crate::put_file(app, owner_token, &id, "src/main.rs", "fn main() {}").await;
            assert_eq!(res.status(), 201);
            template.replace("{id}", &id).replace("{path}", "src/main.rs")
        }
        other => panic!("no tenancy fixture for {other}: add one to authz.rs"),
    }
}

/// A pending approval of a new run of the owner's (the server runs no workers: the fixture
/// parks the run itself).
async fn approval_fixture(app: &TestApp, owner_token: &str, owner_id: &str) -> String {
    let owner = app.store.user(owner_id.parse().unwrap()).await.unwrap();
    let project = app.project(&owner).await;
    let res = app
        .client
        .post(app.url(&format!("/v1/projects/{}/runs", project.id)))
        .bearer_auth(owner_token)
        .json(&json!({"agent": "code", "input": {"task": "tenancy"}}))
        .send()
        .await
        .unwrap();
    let run = res.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let parked = park_all(app.store.as_ref(), "make deploy", time::Duration::DAY).await;
    parked.into_iter().find(|a| a.run_id.to_string() == run).unwrap().id.to_string()
}

/// A valid body for a route that takes one, so that the answer depends on who asks, not on
/// what is sent.
fn body_for(method: &str, template: &str) -> Option<Value> {
    if !matches!(method, "post" | "put" | "patch") {
        return None;
    }
    Some(match template {
        "/v1/projects/{id}/runs" => json!({"agent": "code", "input": {"task": "x"}}),
        "/v1/approvals/{id}" => json!({"decision": "approve"}),
        _ => json!({}),
    })
}

#[tokio::test]
async fn every_route_with_a_path_parameter_hides_other_tenants_and_refuses_anonymous_callers() {
    // No workers: fixtures arrange runs (and park them on approvals) themselves.
    let app = spawn_app_with(TestDatabase::sqlite(), |s| s.runs.workers = 0).await;
    let (owner, owner_token) = app.signed_in("owner@example.com", Role::Member).await;
    let (_, other_token) = app.signed_in("other@example.com", Role::Member).await;
    let doc: Value =
        app.client.get(app.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    let mut checked = 0;
    for (template, item) in doc["paths"].as_object().unwrap() {
        if !template.contains('{') {
            continue;
        }
        for method in item.as_object().unwrap().keys() {
            let path = fixture(&app, template, &owner_token, &owner.id.to_string()).await;
            let send = |token: Option<&str>| {
                let mut req =
                    app.client.request(method.to_uppercase().parse().unwrap(), app.url(&path));
                if let Some(t) = token {
                    req = req.bearer_auth(t);
                }
                if let Some(body) = body_for(method, template) {
                    req = req.json(&body);
                }
                req.send()
            };
            let res = send(None).await.unwrap();
            assert_eq!(res.status(), 401, "anonymous {method} {template}");
            let res = send(Some(&other_token)).await.unwrap();
            let status = res.status();
            let text = res.text().await.unwrap();
            assert_eq!(status, 404, "another tenant's {method} {template}: {text}");
            assert!(!text.contains("owner@example.com"), "{text}");
            checked += 1;
        }
    }
    assert!(checked >= 3, "only {checked} operations checked");
}

#[tokio::test]
async fn every_route_without_a_path_parameter_refuses_anonymous_callers() {
    let app = spawn_app_with(TestDatabase::sqlite(), |s| s.runs.workers = 0).await;
    let doc: Value =
        app.client.get(app.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    let public = ["/v1/auth/login", "/v1/auth/refresh", "/v1/auth/logout", "/v1/auth/csrf"];
    let mut checked = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        if path.contains('{') || !path.starts_with("/v1/") || public.contains(&path.as_str()) {
            continue;
        }
        for method in item.as_object().unwrap().keys() {
            let mut req = app.client.request(method.to_uppercase().parse().unwrap(), app.url(path));
            if method != "get" {
                req = req.json(&json!({}));
            }
            let res = req.send().await.unwrap();
            assert_eq!(res.status(), 401, "anonymous {method} {path}");
            checked.push(format!("{method} {path}"));
        }
    }
    for expected in [
        "post /v1/conversations",
        "post /v1/run-agent",
        "post /v1/agent/chat",
        "get /v1/system/capabilities",
    ] {
        assert!(checked.iter().any(|c| c == expected), "{expected} not checked: {checked:?}");
    }
}
