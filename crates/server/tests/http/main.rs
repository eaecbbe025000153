//! The HTTP stack end to end, through a real socket: the server runs in-process on port 0 with a
//! fresh database.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api_keys;
mod approvals;
mod authz;
mod browser;
mod chat;
mod checks;
mod conversations;
mod envelope;
mod files;
mod health;
mod jobs;
mod limits;
mod llm;
mod openapi;
mod projects;
mod rate_limits;
mod run_socket;
mod runs;
mod sessions;
mod symlinks;
mod tools;
mod traversal;

use agentd_test_support::TestApp;
use serde_json::Value;

/// Asserts `response` is an error envelope of `error_type` and returns the parsed body.
pub(crate) async fn expect_envelope(
    response: reqwest::Response,
    status: u16,
    error_type: &str,
) -> Value {
    assert_eq!(response.status().as_u16(), status, "status");
    let request_id = response
        .headers()
        .get("x-request-id")
        .map(|v| v.to_str().unwrap().to_owned())
        .expect("every response carries x-request-id");
    assert_eq!(
        response.headers().get("content-type").map(|v| v.to_str().unwrap()),
        Some("application/json")
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], error_type, "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    assert_eq!(body["error"]["request_id"], request_id.as_str(), "{body}");
    body
}

/// Whether a client-facing text leaks internals.
pub(crate) fn leaks_internals(text: &str) -> bool {
    ["panicked", ".rs:", "src/", "/root", "/home", "sqlx", "SELECT ", "stack backtrace", "RUST_"]
        .iter()
        .any(|needle| text.contains(needle))
}

/// Creates a project as the holder of `token`; returns it as the API shows it.
pub(crate) async fn create_project(app: &TestApp, token: &str, body: Value) -> Value {
    let res = app
        .client
        .post(app.url("/v1/projects"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = res.status();
    let text = res.text().await.unwrap();
    assert_eq!(status, 201, "creating a project: {text}");
    serde_json::from_str(&text).unwrap()
}

/// Creates a managed project titled `title`; returns its id.
pub(crate) async fn managed_project(app: &TestApp, token: &str, title: &str) -> String {
    let project = create_project(app, token, serde_json::json!({"title": title})).await;
    project["id"].as_str().unwrap().to_owned()
}

/// The URL of a file of a project (`path` as it goes in the URL).
pub(crate) fn file_url(app: &TestApp, project: &str, path: &str) -> String {
    app.url(&format!("/v1/projects/{project}/files/{path}"))
}

/// `PUT`s `content` as the file `path`.
pub(crate) async fn put_file(
    app: &TestApp,
    token: &str,
    project: &str,
    path: &str,
    content: impl Into<reqwest::Body>,
) -> reqwest::Response {
    app.client
        .put(file_url(app, project, path))
        .bearer_auth(token)
        .body(content)
        .send()
        .await
        .unwrap()
}

/// The raw content of the file `path`.
pub(crate) async fn get_file(app: &TestApp, token: &str, project: &str, path: &str) -> Vec<u8> {
    let res = app.client.get(file_url(app, project, path)).bearer_auth(token).send().await.unwrap();
    assert_eq!(res.status(), 200, "reading {path}");
    res.bytes().await.unwrap().to_vec()
}
