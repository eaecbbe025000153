//! The HTTP stack end to end, through a real socket: the server runs in-process on port 0 with a
//! fresh database.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api_keys;
mod approvals;
mod authz;
mod browser;
mod envelope;
mod health;
mod limits;
mod llm;
mod openapi;
mod rate_limits;
mod runs;
mod sessions;

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
