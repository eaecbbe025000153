//! Routes that exist only when `http.debug_routes` is on (never in production): they let the
//! end-to-end tests and operators exercise the failure paths of the HTTP stack (a panic, a slow
//! request, JSON validation) against a real server.

use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use crate::extract::{ApiJson, ApiQuery};
use crate::state::AppState;

/// The debug routes.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/debug/panic", get(panic_now))
        .route("/debug/sleep", get(sleep))
        .route("/debug/echo", post(echo))
}

async fn panic_now() -> &'static str {
    panic!("the /debug/panic route was called")
}

#[derive(Debug, Deserialize)]
struct SleepQuery {
    ms: u64,
}

#[derive(Debug, Serialize)]
struct Slept {
    slept_ms: u64,
}

async fn sleep(ApiQuery(q): ApiQuery<SleepQuery>) -> ApiJson<Slept> {
    let ms = q.ms.min(60_000);
    tracing::info!(ms, "debug sleep started");
    tokio::time::sleep(Duration::from_millis(ms)).await;
    ApiJson(Slept { slept_ms: ms })
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Echo {
    name: String,
    count: u32,
    #[serde(default)]
    tags: Vec<String>,
}

async fn echo(ApiJson(body): ApiJson<Echo>) -> ApiJson<Echo> {
    ApiJson(body)
}
