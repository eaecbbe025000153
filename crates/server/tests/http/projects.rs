//! Projects over HTTP: create, read, list with pagination and the status filter, the PATCH
//! whitelist, delete, directory workspaces and tenancy.

use std::collections::BTreeSet;

use agentd_core::page::PageRequest;
use agentd_core::user::Role;
use agentd_test_support::canary::CanaryTree;
use agentd_test_support::{TestApp, TestDatabase, spawn_app, spawn_app_with};
use serde_json::{Value, json};

use crate::{create_project, expect_envelope, managed_project, put_file};

async fn get_project(app: &TestApp, token: &str, id: &str) -> reqwest::Response {
    app.client.get(app.url(&format!("/v1/projects/{id}"))).bearer_auth(token).send().await.unwrap()
}

async fn patch_project(app: &TestApp, token: &str, id: &str, body: &Value) -> reqwest::Response {
    app.client
        .patch(app.url(&format!("/v1/projects/{id}")))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn list(app: &TestApp, token: &str, query: &str) -> reqwest::Response {
    app.client
        .get(app.url(&format!("/v1/projects{query}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// Every project id the listing returns, following `next_cursor` with pages of `limit`.
async fn walk(app: &TestApp, token: &str, limit: u32, extra: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1000 {
        let mut query = format!("?limit={limit}{extra}");
        if let Some(c) = &cursor {
            query.push_str(&format!("&cursor={c}"));
        }
        let res = list(app, token, &query).await;
        assert_eq!(res.status(), 200);
        let page: Value = res.json().await.unwrap();
        let data = page["data"].as_array().unwrap();
        assert!(data.len() <= limit as usize);
        ids.extend(data.iter().map(|p| p["id"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return ids,
        }
    }
    panic!("the listing never ended");
}

#[tokio::test]
async fn a_project_is_created_read_and_deleted_with_its_files() {
    let app = spawn_app().await;
    let (me, token) = app.signed_in("owner@example.com", Role::Member).await;
    let created = create_project(
        &app,
        &token,
        json!({
            "title": "Demo",
            "description": "A demo project",
            "mode": "pair_programming",
            "tech_stack": {"languages": ["rust"]},
        }),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["owner_id"], me.id.to_string());
    assert_eq!(created["title"], "Demo");
    assert_eq!(created["description"], "A demo project");
    assert_eq!(created["mode"], "pair_programming");
    assert_eq!(created["tech_stack"], json!({"languages": ["rust"]}));
    assert_eq!(created["settings"], json!({}));
    assert_eq!(created["status"], "active");
    assert_eq!(created["workspace"], json!({"kind": "managed"}));
    assert_eq!(created["revision"], 0);
    assert!(created["created_at"].as_str().unwrap().ends_with('Z'));

    let res = get_project(&app, &token, &id).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap(), created);

    // Defaults: mode `default`, managed workspace, no description.
    let plain = create_project(&app, &token, json!({"title": "Plain", "workspace": null})).await;
    assert_eq!(plain["mode"], "default");
    assert_eq!(plain["workspace"]["kind"], "managed");
    assert_eq!(plain["description"], Value::Null);

    assert_eq!(put_file(&app, &token, &id, "src/main.rs", "fn main() {}").await.status(), 201);
    let res = app
        .client
        .delete(app.url(&format!("/v1/projects/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    expect_envelope(get_project(&app, &token, &id).await, 404, "not_found").await;
    let res = app
        .client
        .get(app.url(&format!("/v1/projects/{id}/files/src/main.rs")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    expect_envelope(res, 404, "not_found").await;
    let files =
        app.store.list_files(id.parse().unwrap(), None, PageRequest::default()).await.unwrap();
    assert!(files.items.is_empty(), "the project's files outlived it: {files:?}");
    let res = app
        .client
        .delete(app.url(&format!("/v1/projects/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    expect_envelope(res, 404, "not_found").await;
}

#[tokio::test]
async fn invalid_projects_are_refused_with_every_problem_named() {
    let app = spawn_app().await;
    let (_, token) = app.signed_in("v@example.com", Role::Member).await;
    let res = app
        .client
        .post(app.url("/v1/projects"))
        .bearer_auth(&token)
        .json(&json!({"title": " ", "mode": "Not A Mode"}))
        .send()
        .await
        .unwrap();
    let body = expect_envelope(res, 422, "validation_error").await;
    let fields: Vec<&str> = body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["title", "mode"]);
    for bad in [
        json!({}),
        json!({"title": "t", "owner_id": "x"}),
        json!({"title": "t", "settings": {}}),
        json!({"title": "t", "workspace": {"kind": "cloud"}}),
        json!({"title": "t", "workspace": {"kind": "directory"}}),
    ] {
        let res = app
            .client
            .post(app.url("/v1/projects"))
            .bearer_auth(&token)
            .json(&bad)
            .send()
            .await
            .unwrap();
        expect_envelope(res, 422, "validation_error").await;
    }
    let page: Value = list(&app, &token, "").await.json().await.unwrap();
    assert_eq!(page["data"], json!([]), "nothing was created");
}

#[tokio::test]
async fn the_listing_walks_every_project_once_newest_first() {
    let app = spawn_app().await;
    let (_, token) = app.signed_in("lister@example.com", Role::Member).await;
    let mut created = Vec::new();
    for i in 0..53 {
        created.push(managed_project(&app, &token, &format!("p{i}")).await);
    }
    let newest_first: Vec<String> = created.iter().rev().cloned().collect();

    // The default page is 50.
    let page: Value = list(&app, &token, "").await.json().await.unwrap();
    assert_eq!(page["data"].as_array().unwrap().len(), 50);
    assert!(page["next_cursor"].is_string());

    for limit in [1, 7, 50, 100] {
        let ids = walk(&app, &token, limit, "").await;
        assert_eq!(ids, newest_first, "limit {limit}: gaps, repeats or disorder");
    }

    for bad in ["?limit=0", "?limit=101", "?limit=-1", "?limit=many", "?cursor=nope", "?x=1"] {
        let res = list(&app, &token, bad).await;
        let body = expect_envelope(res, 422, "validation_error").await;
        assert!(body["error"]["details"].is_array(), "{bad}: {body}");
    }
}

#[tokio::test]
async fn the_status_filter_lists_only_projects_in_that_status() {
    let app = spawn_app().await;
    let (_, token) = app.signed_in("f@example.com", Role::Member).await;
    let mut archived = BTreeSet::new();
    let mut active = BTreeSet::new();
    for i in 0..6 {
        let id = managed_project(&app, &token, &format!("p{i}")).await;
        if i % 3 == 0 {
            let res = patch_project(&app, &token, &id, &json!({"status": "archived"})).await;
            assert_eq!(res.status(), 200);
            archived.insert(id);
        } else {
            active.insert(id);
        }
    }
    let got: BTreeSet<String> =
        walk(&app, &token, 2, "&status=archived").await.into_iter().collect();
    assert_eq!(got, archived);
    let got: BTreeSet<String> = walk(&app, &token, 2, "&status=active").await.into_iter().collect();
    assert_eq!(got, active);
    assert_eq!(walk(&app, &token, 100, "").await.len(), 6);
    expect_envelope(list(&app, &token, "?status=deleted").await, 422, "validation_error").await;
}

#[tokio::test]
async fn a_patch_changes_each_whitelisted_field_and_nothing_else() {
    let app = spawn_app().await;
    let (_, token) = app.signed_in("p@example.com", Role::Member).await;
    let project = create_project(
        &app,
        &token,
        json!({"title": "Before", "description": "d", "tech_stack": ["go"]}),
    )
    .await;
    let id = project["id"].as_str().unwrap().to_owned();

    let allowed = [
        ("title", json!("After")),
        ("description", json!("a new description")),
        ("status", json!("archived")),
        ("tech_stack", json!({"languages": ["rust", "python"]})),
        ("settings", json!({"model": "large", "max_steps": 40})),
    ];
    for (field, value) in &allowed {
        let res = patch_project(&app, &token, &id, &json!({ *field: value.clone() })).await;
        assert_eq!(res.status(), 200, "{field}");
        let patched: Value = res.json().await.unwrap();
        assert_eq!(&patched[*field], value, "{field}");
        let read: Value = get_project(&app, &token, &id).await.json().await.unwrap();
        assert_eq!(&read[*field], value, "{field} was not stored");
    }
    // `null` clears what may be cleared.
    let res = patch_project(
        &app,
        &token,
        &id,
        &json!({"description": null, "tech_stack": null, "settings": null}),
    )
    .await;
    let cleared: Value = res.json().await.unwrap();
    assert_eq!(cleared["description"], Value::Null);
    assert_eq!(cleared["tech_stack"], Value::Null);
    assert_eq!(cleared["settings"], json!({}));

    let before: Value = get_project(&app, &token, &id).await.json().await.unwrap();
    for forbidden in [
        json!({"owner_id": uuid::Uuid::now_v7().to_string()}),
        json!({"id": uuid::Uuid::now_v7().to_string()}),
        json!({"revision": 99}),
        json!({"workspace": {"kind": "directory", "path": "/"}}),
        json!({"mode": "other"}),
        json!({"created_at": "2020-01-01T00:00:00Z"}),
        json!({"colour": "blue"}),
        json!({"title": "Sneaky", "owner_id": uuid::Uuid::now_v7().to_string()}),
        json!({"status": "deleted"}),
        json!({"title": ""}),
        json!({"settings": ["not", "an", "object"]}),
    ] {
        let res = patch_project(&app, &token, &id, &forbidden).await;
        expect_envelope(res, 422, "validation_error").await;
        let after: Value = get_project(&app, &token, &id).await.json().await.unwrap();
        assert_eq!(after, before, "{forbidden} changed the project");
    }
}

#[tokio::test]
async fn members_see_only_their_projects_and_admins_see_all() {
    let app = spawn_app().await;
    let (_, alice) = app.signed_in("alice@example.com", Role::Member).await;
    let (_, bob) = app.signed_in("bob@example.com", Role::Member).await;
    let (_, admin) = app.signed_in("admin@example.com", Role::Admin).await;
    let a = managed_project(&app, &alice, "alice's").await;
    let b = managed_project(&app, &bob, "bob's").await;
    assert_eq!(walk(&app, &alice, 10, "").await, std::slice::from_ref(&a));
    assert_eq!(walk(&app, &bob, 10, "").await, std::slice::from_ref(&b));
    assert_eq!(walk(&app, &admin, 10, "").await, [b.clone(), a.clone()]);
    expect_envelope(get_project(&app, &bob, &a).await, 404, "not_found").await;
    assert_eq!(get_project(&app, &admin, &a).await.status(), 200);
    let res = patch_project(&app, &admin, &a, &json!({"title": "renamed by an admin"})).await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn a_directory_workspace_must_be_a_directory_inside_an_allowed_root() {
    let tree = CanaryTree::new();
    let project_dir = tree.workspace.join("project");
    std::fs::create_dir(&project_dir).unwrap();
    std::os::unix::fs::symlink(&tree.top, tree.workspace.join("escape")).unwrap();
    let root = tree.workspace.clone();
    let app = spawn_app_with(TestDatabase::sqlite(), move |s| {
        s.workspace.allowed_roots = vec![root];
    })
    .await;
    let (_, token) = app.signed_in("dir@example.com", Role::Member).await;
    let (_, other) = app.signed_in("other@example.com", Role::Member).await;
    let (_, admin) = app.signed_in("admin@example.com", Role::Admin).await;

    let via_dots = format!("{}/project/../project", tree.workspace_path());
    for requested in [project_dir.to_str().unwrap(), tree.workspace_path(), via_dots.as_str()] {
        let created = create_project(
            &app,
            &token,
            json!({"title": "dir", "workspace": {"kind": "directory", "path": requested}}),
        )
        .await;
        assert_eq!(created["workspace"]["kind"], "directory");
        let shown = created["workspace"]["path"].as_str().unwrap();
        assert!(shown == project_dir.to_str().unwrap() || shown == tree.workspace_path());
        let id = created["id"].as_str().unwrap();
        let as_admin: Value = get_project(&app, &admin, id).await.json().await.unwrap();
        assert_eq!(as_admin["workspace"]["path"], shown, "admins see the path");
        expect_envelope(get_project(&app, &other, id).await, 404, "not_found").await;
    }

    let sibling = tree.top.join("ws-sibling");
    let missing = tree.workspace.join("missing");
    let file = tree.workspace.join("sub/inside.txt");
    let escape = tree.workspace.join("escape");
    let outside_via_dots = format!("{}/../ws-sibling", tree.workspace_path());
    for requested in [
        "/",
        "/etc",
        "relative/path",
        "",
        sibling.to_str().unwrap(),
        missing.to_str().unwrap(),
        file.to_str().unwrap(),
        escape.to_str().unwrap(),
        outside_via_dots.as_str(),
    ] {
        let res = app
            .client
            .post(app.url("/v1/projects"))
            .bearer_auth(&token)
            .json(&json!({"title": "bad", "workspace": {"kind": "directory", "path": requested}}))
            .send()
            .await
            .unwrap();
        let body = expect_envelope(res, 400, "workspace_not_allowed").await;
        assert!(!tree.leaks(body.to_string().as_bytes()));
    }
}

#[tokio::test]
async fn directory_workspaces_are_refused_when_no_root_is_allowed() {
    let tree = CanaryTree::new();
    let app = spawn_app().await;
    let (_, token) = app.signed_in("d@example.com", Role::Member).await;
    let res = app
        .client
        .post(app.url("/v1/projects"))
        .bearer_auth(&token)
        .json(&json!({
            "title": "dir",
            "workspace": {"kind": "directory", "path": tree.workspace_path()},
        }))
        .send()
        .await
        .unwrap();
    let body = expect_envelope(res, 400, "workspace_not_allowed").await;
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("AGENTD_WORKSPACE_ALLOWED_ROOTS"), "{message}");
}

#[tokio::test]
async fn a_read_only_key_can_list_projects_but_not_create_them() {
    let app = spawn_app().await;
    let (_, token) = app.signed_in("k@example.com", Role::Member).await;
    managed_project(&app, &token, "mine").await;
    let res = app
        .client
        .post(app.url("/v1/api-keys"))
        .bearer_auth(&token)
        .json(&json!({"name": "ro", "scopes": ["read"]}))
        .send()
        .await
        .unwrap();
    let key = res.json::<Value>().await.unwrap()["api_key"].as_str().unwrap().to_owned();
    let res =
        app.client.get(app.url("/v1/projects")).header("x-api-key", &key).send().await.unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["data"].as_array().unwrap().len(), 1);
    let res = app
        .client
        .post(app.url("/v1/projects"))
        .header("x-api-key", &key)
        .json(&json!({"title": "no"}))
        .send()
        .await
        .unwrap();
    expect_envelope(res, 403, "forbidden").await;
}
